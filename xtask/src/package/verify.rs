//! Checks of a built package, run by `cargo xtask package --verify` and by
//! this module's test (which `cargo xtask test` runs, packaging the debug
//! binaries): what `dpkg-deb -c` lists (paths, modes, owners), the control
//! fields and conffiles, the maintainer scripts' syntax, lintian with no
//! error, `systemd-analyze verify` of the unit as extracted, and the
//! extracted `tandemd --check` of the packaged configuration.
//!
//! A missing tool (lintian, systemd-analyze) is skipped with a printed
//! reason, except under `TANDEM_REQUIRE_PRIVILEGED=1` (CI, as root), where
//! it is a failure.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use super::{CONFIG_DEST, CTL_DEST, DAEMON_DEST, DOC_DIR, describe, output};

const UNIT: &str = "lib/systemd/system/tandemd.service";

/// What must be in the package: its path and `dpkg-deb -c`'s mode column.
fn expected() -> Vec<(String, &'static str)> {
    let mut v: Vec<(String, &'static str)> = vec![
        (DAEMON_DEST.into(), "-rwxr-xr-x"),
        (CTL_DEST.into(), "-rwxr-xr-x"),
        (UNIT.into(), "-rw-r--r--"),
        (CONFIG_DEST.into(), "-rw-------"),
        ("usr/share/man/man8/tandemd.8.gz".into(), "-rw-r--r--"),
        ("usr/share/man/man1/tandemctl.1.gz".into(), "-rw-r--r--"),
        ("usr/share/man/man1/tandemctl-service.1.gz".into(), "-rw-r--r--"),
        ("usr/share/man/man1/tandemctl-service-add.1.gz".into(), "-rw-r--r--"),
        ("usr/share/man/man1/tandemctl-key-generate.1.gz".into(), "-rw-r--r--"),
        (format!("{DOC_DIR}/README.md"), "-rw-r--r--"),
        (format!("{DOC_DIR}/SECURITY.md"), "-rw-r--r--"),
        (format!("{DOC_DIR}/copyright"), "-rw-r--r--"),
        (format!("{DOC_DIR}/changelog.Debian.gz"), "-rw-r--r--"),
    ];
    for bin in ["tandemd", "tandemctl"] {
        v.push((format!("usr/share/bash-completion/completions/{bin}"), "-rw-r--r--"));
        v.push((format!("usr/share/zsh/vendor-completions/_{bin}"), "-rw-r--r--"));
        v.push((format!("usr/share/fish/vendor_completions.d/{bin}.fish"), "-rw-r--r--"));
    }
    v
}

/// Runs every check on `deb`, extracting into a scratch directory beside
/// it; returns `dpkg-deb -c`'s listing and lintian's output.
pub fn verify(deb: &Path, require_tools: bool) -> Result<(String, String)> {
    let listing = String::from_utf8_lossy(&output(Command::new("dpkg-deb").arg("-c").arg(deb))?).into_owned();
    check_listing(&listing).with_context(|| format!("dpkg-deb -c {}", deb.display()))?;
    check_control(deb)?;

    let scratch = deb.with_extension("verify");
    if scratch.exists() {
        fs::remove_dir_all(&scratch).with_context(|| format!("removing {}", scratch.display()))?;
    }
    super::mkdir(&scratch)?;
    let (root, control) = (scratch.join("root"), scratch.join("DEBIAN"));
    output(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&root))?;
    output(Command::new("dpkg-deb").arg("-e").arg(deb).arg(&control))?;
    for script in ["postinst", "prerm", "postrm"] {
        output(Command::new("sh").arg("-n").arg(control.join(script)))
            .with_context(|| format!("the maintainer script {script} does not parse"))?;
    }

    let lintian = lintian(deb, require_tools)?;
    systemd_verify(&root, &scratch, require_tools)?;
    tandemd_check(&root)?;
    tandemctl_version(&root)?;
    fs::remove_dir_all(&scratch).with_context(|| format!("removing {}", scratch.display()))?;
    Ok((listing, lintian))
}

/// Every [`expected`] entry is listed with its mode, and everything is root's.
fn check_listing(listing: &str) -> Result<()> {
    let mut entries = Vec::new();
    for line in listing.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let [mode, owner, _size, _date, _time, path, ..] = f[..] else {
            bail!("a line that is not `mode owner size date time path`: {line:?}");
        };
        if owner != "root/root" {
            bail!("{path} is owned by {owner}, not root/root");
        }
        entries.push((path.trim_start_matches("./").trim_end_matches('/').to_owned(), mode.to_owned()));
    }
    let mut problems = Vec::new();
    for (path, mode) in expected() {
        match entries.iter().find(|(p, _)| *p == path) {
            None => problems.push(format!("/{path} is missing")),
            Some((_, m)) if m != mode => problems.push(format!("/{path} has mode {m}, want {mode}")),
            Some(_) => {}
        }
    }
    if !problems.is_empty() {
        bail!("{}", problems.join("; "));
    }
    Ok(())
}

/// Section, Depends and the conffiles list.
fn check_control(deb: &Path) -> Result<()> {
    let fields = String::from_utf8_lossy(&output(Command::new("dpkg-deb").arg("-f").arg(deb))?).into_owned();
    let field = |name: &str| {
        fields
            .lines()
            .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(':')))
            .map(str::trim)
            .unwrap_or("")
            .to_owned()
    };
    if field("Package") != super::PACKAGE || field("Section") != "net" {
        bail!("{}: Package or Section is not `tandem`/`net`:\n{fields}", deb.display());
    }
    if !field("Depends").contains("libc6") {
        bail!("{}: Depends does not name libc6: {:?}", deb.display(), field("Depends"));
    }
    let conffiles = String::from_utf8_lossy(&output(Command::new("dpkg-deb").arg("-I").arg(deb).arg("conffiles"))?)
        .into_owned();
    if !conffiles.lines().any(|l| l.trim() == format!("/{CONFIG_DEST}")) {
        bail!("{}: conffiles does not list /{CONFIG_DEST}: {conffiles:?}", deb.display());
    }
    Ok(())
}

fn have(tool: &str, require: bool, why: &str) -> Result<bool> {
    let found = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()));
    match (found, require) {
        (true, _) => Ok(true),
        (false, true) => bail!("{tool} is not installed (`cargo xtask setup` installs it): {why}"),
        (false, false) => {
            println!("package verify: skipped {why}: {tool} is not installed");
            Ok(false)
        }
    }
}

/// lintian's output; any `E:` line (or lintian failing) is an error.
fn lintian(deb: &Path, require: bool) -> Result<String> {
    if !have("lintian", require, "the lintian check")? {
        return Ok(String::new());
    }
    let mut cmd = Command::new("lintian");
    cmd.args(["--tag-display-limit", "0", "--display-info"]).arg(deb);
    let out = cmd.output().with_context(|| format!("starting {}", describe(&cmd)))?;
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let errors: Vec<&str> = text.lines().filter(|l| l.starts_with("E: ")).collect();
    if !errors.is_empty() {
        bail!("lintian found {} error(s) in {}:\n{}", errors.len(), deb.display(), errors.join("\n"));
    }
    if !out.status.success() {
        bail!("{} failed ({}) without an E: line:\n{text}", describe(&cmd), out.status);
    }
    Ok(text)
}

/// `systemd-analyze verify` of the unit as extracted. The host is the
/// root (its sysinit.target, /bin/kill…), so the copy verified has the
/// packaged binaries' paths (/usr/sbin/tandemd, /usr/bin/tandemctl)
/// pointed into the extracted tree, and MANPATH points at the packaged man
/// pages, so `Documentation=man:tandemd(8)` is checked against them.
fn systemd_verify(root: &Path, scratch: &Path, require: bool) -> Result<()> {
    if !have("systemd-analyze", require, "systemd-analyze verify of the unit")? {
        return Ok(());
    }
    let packaged = root.join(UNIT);
    let text = fs::read_to_string(&packaged).with_context(|| format!("reading {}", packaged.display()))?;
    let mut text = text;
    for bin in [DAEMON_DEST, CTL_DEST] {
        text = text.replace(&format!("/{bin}"), &root.join(bin).display().to_string());
    }
    let unit = scratch.join("unit/tandemd.service");
    super::write_file(&unit, text.as_bytes(), 0o644)?;
    let mut cmd = Command::new("systemd-analyze");
    cmd.arg("verify").arg(&unit).env("MANPATH", root.join("usr/share/man"));
    let out = cmd.output().with_context(|| format!("starting {}", describe(&cmd)))?;
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    if !out.status.success() {
        bail!("{} (the packaged {UNIT}, binaries in the extracted tree) failed ({}):\n{said}", describe(&cmd), out.status);
    }
    // verify also exits 0 on some complaints (an unknown key): none about our unit is accepted.
    let ours: Vec<&str> = said.lines().filter(|l| l.contains("tandemd.service")).collect();
    if !ours.is_empty() {
        bail!("{} complained about the packaged {UNIT}:\n{}", describe(&cmd), ours.join("\n"));
    }
    Ok(())
}

/// The extracted tandemd accepts the packaged configuration.
fn tandemd_check(root: &Path) -> Result<()> {
    let config: PathBuf = root.join(CONFIG_DEST);
    let out = output(
        Command::new(root.join(DAEMON_DEST))
            .arg("--check")
            .arg("--config")
            .arg(&config),
    )
    .context("the packaged tandemd refused the packaged configuration")?;
    let text = String::from_utf8_lossy(&out);
    if !text.contains("configuration ok") {
        bail!("tandemd --check --config {} said neither ok nor an error: {text:?}", config.display());
    }
    Ok(())
}

/// The extracted (stripped) tandemctl runs and says its version.
fn tandemctl_version(root: &Path) -> Result<()> {
    let out = output(Command::new(root.join(CTL_DEST)).arg("--version"))?;
    let text = String::from_utf8_lossy(&out);
    if !text.starts_with("tandemctl ") {
        bail!("the packaged tandemctl --version printed {text:?}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds the package from the debug binaries (`cargo build`, a no-op
    /// after `cargo xtask test`'s) and runs every check on it.
    #[test]
    fn package_dev_deb_lists_lints_verifies_and_checks() {
        let root = crate::workspace_root();
        if !root.join(super::super::UNIT_SOURCE).is_file() {
            println!(
                "skipped: {} is absent (the unit is written on its own branch); the package needs it",
                super::super::UNIT_SOURCE
            );
            return;
        }
        let require = std::env::var_os("TANDEM_REQUIRE_PRIVILEGED").is_some_and(|v| v == "1");
        let out = std::env::temp_dir().join(format!("tandem-package-test-{}", std::process::id()));
        let deb = super::super::build(super::super::Profile::Dev, Some(&out)).expect("cargo xtask package --profile dev");
        let (listing, lintian) = verify(&deb, require).expect("verifying the package");
        println!("{listing}\nlintian:\n{lintian}");
        fs::remove_dir_all(&out).expect("removing the test's package directory");
    }

    #[test]
    fn listing_check_names_a_missing_file_and_a_wrong_mode() {
        let mut listing = String::new();
        for (path, mode) in expected() {
            let mode = if path == CONFIG_DEST { "-rw-r--r--" } else { mode };
            if path != CTL_DEST {
                listing.push_str(&format!("{mode} root/root 10 2026-12-03 15:44 ./{path}\n"));
            }
        }
        let err = check_listing(&listing).unwrap_err().to_string();
        assert!(err.contains("/usr/bin/tandemctl is missing"), "{err}");
        assert!(err.contains("/etc/tandem/tandem.toml has mode -rw-r--r--, want -rw-------"), "{err}");
        let good: String = expected()
            .iter()
            .map(|(p, m)| format!("{m} root/root 10 2026-12-03 15:44 ./{p}\n"))
            .collect();
        check_listing(&good).unwrap();
        let err = check_listing(&good.replace("root/root 10", "me/me 10")).unwrap_err().to_string();
        assert!(err.contains("not root/root"), "{err}");
    }
}
