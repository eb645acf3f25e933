//! The rule for tests that need root: run when possible, say why when not,
//! and never skip silently where skipping is forbidden (CI as root sets
//! `TANDEM_REQUIRE_PRIVILEGED=1`). A test names what it needs ([`Need`]:
//! a lab's network namespaces, a FUSE mount, loading BPF programs, root
//! for something else, or a program that `cargo xtask setup` installs)
//! and asks [`require`]; every privileged test of the
//! workspace goes through it, the dataplane's and the card simulator's as
//! well. Lab tests of one test binary that run daemons take turns
//! ([`lab_turn`]). The benchmarks and `tandem-lab` do not skip: without
//! root they fail at once, saying so ([`ensure_root`]).

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard};

/// Set to `1` to make a privileged test fail instead of skipping.
pub const REQUIRE_ENV: &str = "TANDEM_REQUIRE_PRIVILEGED";

/// What a privileged test needs of the machine it runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Building labs: root, network namespaces and iproute2's `ip`.
    Netns,
    /// Mounting FUSE filesystems (the card simulator): root and /dev/fuse.
    Fuse,
    /// Loading BPF programs (`BPF_PROG_LOAD`): root.
    Bpf,
    /// Root for what the text names, e.g. `Root("raw ICMP socket")`.
    Root(&'static str),
    /// A program on `PATH` (or in `/usr/sbin`, `/sbin`), from the named
    /// Debian package, e.g. `Program("dahdi_cfg", "dahdi")`.
    Program(&'static str, &'static str),
}

impl Need {
    /// Why this process cannot have it, if it cannot.
    fn missing(self) -> Option<String> {
        match self {
            Need::Netns => missing_netns(),
            Need::Fuse if !is_root() => Some("needs root to mount FUSE filesystems".into()),
            Need::Fuse if !Path::new("/dev/fuse").exists() => Some("needs /dev/fuse".into()),
            Need::Fuse => None,
            Need::Bpf if !is_root() => {
                Some("needs root to load BPF programs (BPF_PROG_LOAD)".into())
            }
            Need::Bpf => None,
            Need::Root(what) if !is_root() => Some(format!("needs root ({what})")),
            Need::Root(_) => None,
            Need::Program(program, package) => find_program(program).is_none().then(|| {
                format!(
                    "needs `{program}` (Debian package {package}; `cargo xtask setup` installs it)"
                )
            }),
        }
    }
}

/// Where `program` is: the first executable file of that name in `PATH`,
/// then `/usr/sbin` and `/sbin` (where Debian puts administrators' tools).
pub fn find_program(program: &str) -> Option<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|dir| dir.join(program))
        .find(|candidate| {
            candidate
                .metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// True if this process has everything in `needs`. Otherwise: with
/// `TANDEM_REQUIRE_PRIVILEGED=1` it panics, naming the test and the first
/// thing missing; without, it prints `SKIP <test>: <reason>` to stderr and
/// returns false, and the test should return at once.
pub fn require(test_name: &str, needs: &[Need]) -> bool {
    let Some(reason) = needs.iter().find_map(|need| need.missing()) else {
        return true;
    };
    if std::env::var(REQUIRE_ENV).is_ok_and(|v| v == "1") {
        panic!("{test_name}: {reason}, and {REQUIRE_ENV}=1 forbids skipping it");
    }
    // Straight to fd 2, not through eprintln!: libtest captures the macros'
    // output of passing tests, and a skip must be seen.
    let _ = writeln!(std::io::stderr(), "SKIP {test_name}: {reason}");
    false
}

/// True if this process can build labs: [`require`] with [`Need::Netns`].
pub fn require_privileged(test_name: &str) -> bool {
    require(test_name, &[Need::Netns])
}

/// One lab at a time in this process (test binary).
static LAB_TURNS: Mutex<()> = Mutex::new(());

/// A lab test's turn: while it is held, no other test of the same test
/// binary that asked for one runs. Dropping it passes the turn on.
pub struct LabTurn {
    _turn: MutexGuard<'static, ()>,
}

/// [`require_privileged`], then this test's turn among the lab tests of
/// its test binary (libtest runs tests on threads of one process): a pair
/// lab runs two `tandemd` with 10 ms heartbeats (a calls lab, SIPp as
/// well), and a dozen of them at once on two cores starve each other's
/// heartbeats into spurious takeovers. `None` when the test must skip
/// (return at once). A test that failed while holding its turn does not
/// stop the next one.
pub fn lab_turn(test_name: &str) -> Option<LabTurn> {
    if !require_privileged(test_name) {
        return None;
    }
    let turn = LAB_TURNS.lock().unwrap_or_else(|e| e.into_inner());
    Some(LabTurn { _turn: turn })
}

/// Fails, naming `who` and what it needs root for (`needs`), unless this
/// process runs as root: for the benchmarks and `tandem-lab`, which are
/// asked for by hand and must not skip.
pub fn ensure_root(who: &str, needs: &str) -> Result<(), NotRoot> {
    if is_root() {
        Ok(())
    } else {
        Err(NotRoot(format!("{who} needs root ({needs})")))
    }
}

/// The error of [`ensure_root`]: who needs root, and for what.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct NotRoot(String);

/// True if this process runs as root.
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Why labs cannot be built here, if they cannot.
fn missing_netns() -> Option<String> {
    if !is_root() {
        return Some("needs root (network namespaces)".into());
    }
    if !Path::new("/proc/self/ns/net").exists() {
        return Some("needs network namespace support (no /proc/self/ns/net)".into());
    }
    let ip = Command::new("ip")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !ip.is_ok_and(|s| s.success()) {
        return Some("needs iproute2's `ip` (`cargo xtask setup` installs it)".into());
    }
    None
}
