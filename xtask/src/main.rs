//! `cargo xtask`: the project's chores in one place — install what building and
//! testing tandem needs (`setup`), run the test suite (`test`), build the
//! Debian package (`package`), the demo, the persistent lab and the benchmarks.
//!
//! It owns no tandem logic and depends on no tandem crate: building
//! `tandem-dataplane` needs bpf-linker and the nightly `rust-src`, which `setup`
//! installs first. Everything lab- or benchmark-shaped lives in `tandem-tests`;
//! this file only delegates to its binaries.

mod package;
mod setup;
mod test;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "tandem's project chores")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install what is missing (Debian packages, nightly rust-src, bpf-linker 0.13); idempotent.
    Setup,
    /// Run setup, build and test the default members. Extra arguments go to `cargo test`.
    Test {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
    /// Run setup, build tandemd/tandemctl, then the demo (`tandem-lab demo`):
    /// SIP calls through the pair, a director and an IVR killed on the way.
    Demo {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
    /// Bring the persistent lab up or down (`tandem-lab up|down`).
    Lab {
        #[command(subcommand)]
        action: LabAction,
    },
    /// Fuzz state sync (cargo-fuzz, nightly) for a bounded time: the frame
    /// parser (`sync_frame`), then the session machines driven by scripted
    /// frames (`sync_session`), the seconds split between them; installs
    /// cargo-fuzz if missing. Fails if the fuzzer finds a crash.
    Fuzz {
        /// How long to run, in seconds.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
    },
    /// Run setup, build tandemd/tandemctl and the Debian package
    /// `tandem_<version>_<arch>.deb` (binaries, unit, /etc/tandem/tandem.toml
    /// as a conffile, man pages, completions, the operator's README).
    Package {
        /// The cargo profile of the packaged binaries (dev: the ones a plain
        /// `cargo build` makes, stripped).
        #[arg(long, value_enum, default_value_t = package::Profile::Release)]
        profile: package::Profile,
        /// Where the .deb (and its staging tree) go [default: <target>/debian].
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Then check it as the test does (listing, lintian, unit, tandemd --check).
        #[arg(long)]
        verify: bool,
    },
    /// Run a benchmark (`tandem-bench <which>`); default: dispatch.
    Bench {
        #[arg(value_enum, default_value_t = Bench::Dispatch)]
        which: Bench,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
}

#[derive(Subcommand)]
enum LabAction {
    /// Build the persistent DR lab (namespaces `tdmlab-*`) and print its topology.
    Up,
    /// Remove the persistent lab's namespaces.
    Down,
}

#[derive(Clone, Copy, ValueEnum)]
enum Bench {
    Dispatch,
    Failover,
    Sync,
    Calls,
    Faults,
    Reload,
    Startup,
    /// Computed from the other benches' reports: no lab, no root, no daemons.
    Availability,
}

impl Bench {
    fn name(self) -> &'static str {
        match self {
            Bench::Dispatch => "dispatch",
            Bench::Failover => "failover",
            Bench::Sync => "sync",
            Bench::Calls => "calls",
            Bench::Faults => "faults",
            Bench::Reload => "reload",
            Bench::Startup => "startup",
            Bench::Availability => "availability",
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cmd: Cmd) -> Result<ExitCode> {
    match cmd {
        Cmd::Setup => {
            setup::run()?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Test { args } => test::run(&args),
        Cmd::Demo { args } => {
            setup::run()?;
            // The demo runs `tandemd` and `tandemctl` as binaries, found
            // next to `tandem-lab` in the same target directory.
            let status = build_daemons()?;
            if !status.success() {
                return Ok(exit_code(status));
            }
            run_tests_bin("tandem-lab", &[OsString::from("demo")], &args)
        }
        Cmd::Lab {
            action: LabAction::Up,
        } => {
            setup::run()?;
            run_tests_bin("tandem-lab", &[OsString::from("up")], &[])
        }
        // No setup for `down`: tearing a lab down must work even if setup cannot.
        Cmd::Lab {
            action: LabAction::Down,
        } => run_tests_bin("tandem-lab", &[OsString::from("down")], &[]),
        Cmd::Fuzz { seconds } => fuzz(seconds),
        Cmd::Package {
            profile,
            out,
            verify,
        } => {
            setup::run()?;
            let deb = package::build(profile, out.as_deref())?;
            if verify {
                let (listing, lintian) = package::verify::verify(&deb, is_root())?;
                println!("package: dpkg-deb -c:\n{listing}");
                println!("package: lintian (no error):\n{lintian}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Bench { which, args } => {
            setup::run()?;
            if matches!(
                which,
                Bench::Failover
                    | Bench::Sync
                    | Bench::Calls
                    | Bench::Faults
                    | Bench::Reload
                    | Bench::Startup
            ) {
                // These benches run `tandemd` (and `tandemctl`) as binaries,
                // found next to `tandem-bench` in the same target directory.
                // (`availability` runs nothing: it reads their reports.)
                let status = build_daemons()?;
                if !status.success() {
                    return Ok(exit_code(status));
                }
            }
            run_tests_bin("tandem-bench", &[OsString::from(which.name())], &args)
        }
    }
}

/// `cargo build --release` of `tandemd` and `tandemctl`.
fn build_daemons() -> Result<std::process::ExitStatus> {
    cargo()
        .args([
            "build",
            "--release",
            "-p",
            "tandem-control",
            "--bin",
            "tandemd",
            "--bin",
            "tandemctl",
        ])
        .status()
        .context("starting cargo build -p tandem-control")
}

/// `cargo run --release -p tandem-tests --bin <bin> -- <sub> <args>`, passing
/// the binary's exit status through.
fn run_tests_bin(bin: &str, sub: &[OsString], args: &[OsString]) -> Result<ExitCode> {
    let mut cmd = cargo();
    cmd.args(["run", "--release", "-p", "tandem-tests", "--bin", bin, "--"]);
    cmd.args(sub).args(args);
    let status = cmd
        .status()
        .with_context(|| format!("starting cargo run --bin {bin}"))?;
    Ok(exit_code(status))
}

/// The cargo that runs us (same toolchain), or `cargo` from PATH, started at
/// the workspace root so that a bare `cargo build`/`cargo test` means the
/// workspace's default members wherever `cargo xtask` was typed.
pub(crate) fn cargo() -> Command {
    let mut cmd =
        Command::new(std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo")));
    cmd.current_dir(workspace_root());
    cmd
}

/// The directory above xtask's manifest (as `cargo run` reports it now, or as
/// it was at build time).
fn workspace_root() -> PathBuf {
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    manifest_dir
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or(manifest_dir)
}

pub(crate) fn exit_code(status: std::process::ExitStatus) -> ExitCode {
    match status.code() {
        Some(0) => ExitCode::SUCCESS,
        Some(c) => ExitCode::from(u8::try_from(c).unwrap_or(1).max(1)),
        None => ExitCode::FAILURE, // killed by a signal
    }
}

pub(crate) fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// `cargo xtask fuzz`: cargo-fuzz's targets in `control/fuzz` (its own
/// workspace), `sync_frame` (the frame parsers) then `sync_session` (the
/// session state machines against replays and forgeries), `seconds` split
/// between them, with each corpus kept under `control/fuzz/corpus/` between
/// runs. Stops at the first target that fails.
fn fuzz(seconds: u64) -> Result<ExitCode> {
    const TARGETS: [&str; 2] = ["sync_frame", "sync_session"];
    setup::run()?;
    let have = Command::new("cargo")
        .args(["fuzz", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !have {
        eprintln!("xtask: installing cargo-fuzz");
        let st = Command::new("cargo")
            .args(["install", "cargo-fuzz", "--locked"])
            .status()
            .context("running cargo install cargo-fuzz")?;
        if !st.success() {
            anyhow::bail!("cargo install cargo-fuzz failed ({st})");
        }
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../control/fuzz");
    let each = (seconds / TARGETS.len() as u64).max(1);
    for target in TARGETS {
        let corpus = format!("corpus/{target}");
        std::fs::create_dir_all(dir.join(&corpus)).context("creating the fuzz corpus directory")?;
        eprintln!("xtask: fuzzing {target} for {each} s");
        let st = Command::new("rustup")
            .args(["run", "nightly", "cargo", "fuzz", "run", target, &corpus, "--"])
            .arg(format!("-max_total_time={each}"))
            .arg("-print_final_stats=1")
            .current_dir(&dir)
            .env_remove("RUSTC")
            .env_remove("RUSTC_WORKSPACE_WRAPPER")
            .env_remove("CARGO_TARGET_DIR")
            .status()
            .context("running cargo fuzz")?;
        if !st.success() {
            return Ok(exit_code(st));
        }
    }
    Ok(ExitCode::SUCCESS)
}
