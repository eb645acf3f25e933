//! The rule for tests that need root: run when possible, say why when not,
//! and never skip silently where skipping is forbidden (CI as root sets
//! `TANDEM_REQUIRE_PRIVILEGED=1`). The benchmarks and `tandem-lab` do not
//! skip: without root they fail at once, saying so ([`ensure_root`]).

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

/// Set to `1` to make a privileged test fail instead of skipping.
pub const REQUIRE_ENV: &str = "TANDEM_REQUIRE_PRIVILEGED";

/// True if this process can build labs (root, network namespaces, `ip`).
/// Otherwise: with `TANDEM_REQUIRE_PRIVILEGED=1` it panics, naming the test
/// and the reason; without, it prints `SKIP <test>: <reason>` to stderr and
/// returns false, and the test should return at once.
pub fn require_privileged(test_name: &str) -> bool {
    let Some(reason) = missing() else { return true };
    if std::env::var(REQUIRE_ENV).is_ok_and(|v| v == "1") {
        panic!("{test_name}: {reason}, and {REQUIRE_ENV}=1 forbids skipping it");
    }
    // Straight to fd 2, not through eprintln!: libtest captures the macros'
    // output of passing tests, and a skip must be seen.
    let _ = writeln!(std::io::stderr(), "SKIP {test_name}: {reason}");
    false
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
fn missing() -> Option<String> {
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
