//! `cargo xtask setup`: checks, and installs only when missing, what building
//! and testing tandem needs on a Debian bookworm machine that has rustup with
//! `stable` and the image's `nightly`: Debian packages (the LLVM 22 development
//! files bpf-linker links against, the lab's tools, and what `cargo xtask
//! package` and its test run: dpkg-shlibdeps, strip, lintian,
//! systemd-analyze), `rust-src` for nightly,
//! bpf-linker 0.13.0, and `promtool` (the metrics test runs `promtool check
//! metrics`), taken out of Debian's `prometheus` package alone, so that no
//! Prometheus server is installed or started. It never upgrades or removes
//! anything, and a second run changes nothing.

use std::path::Path;
use std::process::{Command, Output};

use anyhow::{Context, Result, bail};

/// Debian packages and why tandem needs each.
const DEBIAN_PACKAGES: &[(&str, &str)] = &[
    ("llvm-22-dev", "bpf-linker build"),
    ("libpolly-22-dev", "bpf-linker build"),
    ("libclang-22-dev", "bpf-linker build"),
    ("libzstd-dev", "bpf-linker build"),
    ("zlib1g-dev", "bpf-linker build"),
    ("iproute2", "lab: ip netns/link/addr"),
    ("sip-tester", "lab: SIPp"),
    ("systemd", "systemd-analyze verify of control/dist/tandemd.service"),
    ("keepalived", "failover comparison"),
    ("stress-ng", "failover bench --noisy: CPU and RT load; fault campaign: CPU starvation"),
    ("nftables", "fault campaign: random loss on the heartbeat paths (nft numgen; no netem here)"),
    ("tcpdump", "lab: captures"),
    ("bpftool", "inspecting programs and maps"),
    ("ethtool", "lab: veth GRO for XDP_TX"),
    ("iputils-ping", "lab: ping"),
    ("libfaketime", "lab: a director restarted with its wall clock behind"),
    (
        "dahdi",
        "hw: the real dahdi-tools (dahdi_cfg, dahdi_test) run against the card simulator",
    ),
    // dahdi-linux depends on `dahdi-dkms | dahdi-source`: naming the source
    // package satisfies it without a DKMS module build for a kernel that has
    // no modules (the simulator stands in for the driver).
    ("dahdi-source", "hw: satisfies dahdi-linux without a DKMS build"),
    ("dpkg-dev", "package: dpkg-shlibdeps"),
    ("binutils", "package: strip"),
    ("lintian", "package test: lintian"),
];

/// The image's nightly: the one toolchain whose LLVM matches bpf-linker 0.13.
const NIGHTLY: &str = "nightly";
const NIGHTLY_COMMIT_DATE: &str = "2026-05-19";
const NIGHTLY_LLVM_MAJOR: &str = "22";
const BPF_LINKER_VERSION: &str = "0.13.0";
const LLVM_PREFIX: &str = "/usr/lib/llvm-22";

/// The Debian package promtool comes in, and where setup puts promtool.
const PROMTOOL_PACKAGE: &str = "prometheus";
const PROMTOOL: &str = "/usr/local/bin/promtool";

pub fn run() -> Result<()> {
    let mut changed = Vec::new();
    debian_packages(&mut changed)?;
    nightly_toolchain(&mut changed)?;
    bpf_linker(&mut changed)?;
    promtool(&mut changed)?;
    if changed.is_empty() {
        println!("setup: everything was already in place, nothing changed");
    } else {
        println!("setup: done; changed: {}", changed.join(", "));
    }
    Ok(())
}

fn debian_packages(changed: &mut Vec<String>) -> Result<()> {
    let missing = missing_packages()?;
    if missing.is_empty() {
        println!(
            "setup: {} Debian packages checked, all installed",
            DEBIAN_PACKAGES.len()
        );
        return Ok(());
    }
    for p in &missing {
        let why = DEBIAN_PACKAGES
            .iter()
            .find(|(name, _)| name == p)
            .map_or("", |(_, why)| *why);
        println!("setup: missing Debian package {p} ({why})");
    }
    if !crate::is_root() {
        bail!(
            "Debian packages missing: {}; installing them needs root: run `cargo xtask setup` as root, \
             or `apt-get install {}` yourself",
            missing.join(" "),
            missing.join(" ")
        );
    }
    println!("setup: apt-get update");
    check(
        Command::new("apt-get")
            .arg("update")
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )?;
    println!("setup: apt-get install -y {}", missing.join(" "));
    check(
        Command::new("apt-get")
            .args(["install", "-y"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )?;
    let still = missing_packages()?;
    if !still.is_empty() {
        bail!(
            "apt-get install finished but these are still not installed: {}",
            still.join(" ")
        );
    }
    changed.push(format!("apt-get install {}", missing.join(" ")));
    Ok(())
}

fn missing_packages() -> Result<Vec<String>> {
    let mut missing = Vec::new();
    for (name, _) in DEBIAN_PACKAGES {
        // An unknown package makes dpkg-query exit 1: that is "missing", not an error.
        let out = Command::new("dpkg-query")
            .args(["-W", "-f=${Status}", name])
            .output()
            .context("running dpkg-query (is this a Debian machine?)")?;
        let status = String::from_utf8_lossy(&out.stdout);
        if !(out.status.success() && status.split_whitespace().nth(2) == Some("installed")) {
            missing.push((*name).to_owned());
        }
    }
    Ok(missing)
}

fn nightly_toolchain(changed: &mut Vec<String>) -> Result<()> {
    let out = Command::new("rustc")
        .args([&format!("+{NIGHTLY}"), "-vV"])
        .output()
        .context("running `rustc +nightly -vV` (is rustup installed and on PATH?)")?;
    if !out.status.success() {
        bail!(
            "`rustc +{NIGHTLY} -vV` failed ({}): {}\n\
             tandem needs the toolchain named `{NIGHTLY}` (rustc 1.97.0-nightly, commit-date \
             {NIGHTLY_COMMIT_DATE}, LLVM {NIGHTLY_LLVM_MAJOR}) for the eBPF build",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .map(str::trim)
            .unwrap_or("(not reported)")
            .to_owned()
    };
    let date = field("commit-date:");
    let llvm = field("LLVM version:");
    let llvm_major = llvm.split('.').next().unwrap_or("");
    if date != NIGHTLY_COMMIT_DATE || llvm_major != NIGHTLY_LLVM_MAJOR {
        bail!(
            "toolchain `{NIGHTLY}` is commit-date {date}, LLVM {llvm}; tandem needs commit-date \
             {NIGHTLY_COMMIT_DATE} with LLVM {NIGHTLY_LLVM_MAJOR}.x, because bpf-linker \
             {BPF_LINKER_VERSION} needs LLVM {NIGHTLY_LLVM_MAJOR} (a newer nightly brings LLVM 23)"
        );
    }
    println!("setup: toolchain {NIGHTLY}: commit-date {date}, LLVM {llvm}: ok");

    let list = output(Command::new("rustup").args([
        "component",
        "list",
        "--toolchain",
        NIGHTLY,
        "--installed",
    ]))?;
    let has_src = String::from_utf8_lossy(&list.stdout)
        .lines()
        .any(|l| l.trim() == "rust-src" || l.trim().starts_with("rust-src-"));
    if has_src {
        println!("setup: rust-src for {NIGHTLY}: installed");
    } else {
        println!("setup: rustup component add rust-src --toolchain {NIGHTLY}");
        check(Command::new("rustup").args([
            "component",
            "add",
            "rust-src",
            "--toolchain",
            NIGHTLY,
        ]))?;
        changed.push(format!("rust-src for {NIGHTLY}"));
    }
    Ok(())
}

fn bpf_linker(changed: &mut Vec<String>) -> Result<()> {
    match bpf_linker_version() {
        Some(v) if v == BPF_LINKER_VERSION => {
            println!("setup: bpf-linker {v}: installed");
            return Ok(());
        }
        Some(v) => println!("setup: bpf-linker {v} found, need {BPF_LINKER_VERSION}: reinstalling"),
        None => println!("setup: bpf-linker not found on PATH: installing {BPF_LINKER_VERSION}"),
    }
    println!(
        "setup: LLVM_PREFIX={LLVM_PREFIX} cargo install bpf-linker@{BPF_LINKER_VERSION} --locked --force \
         --no-default-features --features llvm-22 (builds against LLVM 22; takes a few minutes)"
    );
    check(
        crate::cargo()
            .args([
                "install",
                &format!("bpf-linker@{BPF_LINKER_VERSION}"),
                "--locked",
                "--force",
                "--no-default-features",
                "--features",
                "llvm-22",
            ])
            .env("LLVM_PREFIX", LLVM_PREFIX),
    )?;
    match bpf_linker_version() {
        Some(v) if v == BPF_LINKER_VERSION => {}
        found => bail!(
            "cargo install bpf-linker@{BPF_LINKER_VERSION} succeeded but `bpf-linker --version` now \
             reports {found:?}; is $HOME/.cargo/bin on PATH, ahead of any other bpf-linker?"
        ),
    }
    changed.push(format!("bpf-linker {BPF_LINKER_VERSION}"));
    Ok(())
}

/// The version `bpf-linker --version` prints (`bpf-linker 0.13.0`), if it runs.
fn bpf_linker_version() -> Option<String> {
    let out = Command::new("bpf-linker").arg("--version").output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace().nth(1).map(str::to_owned)
}

/// promtool, for the metrics test (control/tests/metrics_promtool.rs). The
/// `prometheus` package itself would bring a server (enabled, and started
/// where services may start), its user and a dozen JavaScript packages:
/// setup downloads the package and installs only its `promtool` binary (a
/// static Go executable) as [`PROMTOOL`]. One already on PATH (the package
/// installed by hand) is kept.
fn promtool(changed: &mut Vec<String>) -> Result<()> {
    if let Some(v) = promtool_version() {
        println!("setup: promtool {v}: installed");
        return Ok(());
    }
    println!("setup: promtool not found (the metrics test runs `promtool check metrics`)");
    if !crate::is_root() {
        bail!(
            "promtool missing; installing it needs root: run `cargo xtask setup` as root, \
             or `apt-get install --no-install-recommends {PROMTOOL_PACKAGE}` yourself"
        );
    }
    let dir = std::env::temp_dir().join(format!("tandem-setup-promtool-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let installed = extract_promtool(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    installed?;
    match promtool_version() {
        Some(v) => println!("setup: promtool {v}: installed as {PROMTOOL}"),
        None => bail!("{PROMTOOL} was installed but `promtool --version` does not run; is /usr/local/bin on PATH?"),
    }
    changed.push(format!("promtool (from Debian's {PROMTOOL_PACKAGE} package)"));
    Ok(())
}

/// Downloads the package into `dir` (after `apt-get update` if the first
/// try fails), unpacks it there and copies its promtool to [`PROMTOOL`].
fn extract_promtool(dir: &Path) -> Result<()> {
    let download = || {
        let mut cmd = Command::new("apt-get");
        // Into a root-owned scratch directory: apt's `_apt` sandbox user
        // could not write there, so it downloads as root (as it would anyway).
        cmd.args(["-o", "APT::Sandbox::User=root", "download", PROMTOOL_PACKAGE])
            .current_dir(dir)
            .env("DEBIAN_FRONTEND", "noninteractive");
        cmd
    };
    println!("setup: apt-get download {PROMTOOL_PACKAGE} (for its promtool only)");
    if check(&mut download()).is_err() {
        println!("setup: apt-get update");
        check(
            Command::new("apt-get")
                .arg("update")
                .env("DEBIAN_FRONTEND", "noninteractive"),
        )?;
        check(&mut download())?;
    }
    let deb = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .with_context(|| format!("apt-get download {PROMTOOL_PACKAGE} left no .deb in {}", dir.display()))?;
    let root = dir.join("root");
    check(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root))?;
    let unpacked = root.join("usr/bin/promtool");
    // A temporary name, then a rename: a failed copy leaves no half a binary.
    let partial = format!("{PROMTOOL}.partial");
    std::fs::copy(&unpacked, &partial).with_context(|| format!("copying {} to {partial}", unpacked.display()))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("chmod 0755 {partial}"))?;
    std::fs::rename(&partial, PROMTOOL).with_context(|| format!("renaming {partial} to {PROMTOOL}"))?;
    Ok(())
}

/// The version `promtool --version` prints (`promtool, version 2.42.0+ds
/// (…)`), if promtool runs from PATH or from [`PROMTOOL`].
fn promtool_version() -> Option<String> {
    ["promtool", PROMTOOL].into_iter().find_map(|bin| {
        let out = Command::new(bin).arg("--version").output().ok()?;
        if !out.status.success() {
            return None;
        }
        let text = String::from_utf8_lossy(&out.stdout);
        text.split_whitespace().nth(2).map(str::to_owned)
    })
}

/// Runs `cmd` with inherited stdio; an error names the command and its status.
fn check(cmd: &mut Command) -> Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("starting {}", describe(cmd)))?;
    if !status.success() {
        bail!("{} failed: {status}", describe(cmd));
    }
    Ok(())
}

/// Runs `cmd` capturing its output; an error names the command and its stderr.
fn output(cmd: &mut Command) -> Result<Output> {
    let out = cmd
        .output()
        .with_context(|| format!("starting {}", describe(cmd)))?;
    if !out.status.success() {
        bail!(
            "{} failed ({}): {}",
            describe(cmd),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out)
}

fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}
