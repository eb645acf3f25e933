//! Running the lab's external commands (`ip`, `ethtool`, `ping`) with errors
//! that carry the full command line, its exit status and its stderr, and
//! the one rule for the long-running children the lab starts (`tandemd`,
//! SIPp): they die with the thread that started them.

use std::os::unix::process::CommandExt;
use std::process::Command;

use crate::LabError;

/// Runs `cmd` to completion and returns its stdout; fails with the command,
/// status and stderr if it does not exit 0.
pub fn run(cmd: &mut Command) -> Result<String, LabError> {
    let out = cmd.output().map_err(|source| LabError::Spawn {
        cmd: describe(cmd),
        source,
    })?;
    if !out.status.success() {
        let mut stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        if stderr.contains("exec of") && stderr.contains("No such file") {
            // `ip netns exec` could not find the program.
            stderr.push_str(" (is it installed? `cargo xtask setup` installs the lab's tools)");
        }
        return Err(LabError::Command {
            cmd: describe(cmd),
            status: out.status.to_string(),
            stderr,
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `ip <args>` in the caller's namespace.
pub fn ip(args: &[&str]) -> Result<String, LabError> {
    run(Command::new("ip").args(args))
}

/// `ip -n <ns> <args>`: an iproute2 command inside namespace `ns`.
pub fn ip_in(ns: &str, args: &[&str]) -> Result<String, LabError> {
    run(Command::new("ip").args(["-n", ns]).args(args))
}

/// `ip netns exec <ns> <program> <args>`: any program inside namespace `ns`
/// (with that namespace's /sys mounted, which `ethtool` and friends want).
pub fn exec_in(ns: &str, program: &str, args: &[&str]) -> Result<String, LabError> {
    run(Command::new("ip")
        .args(["netns", "exec", ns, program])
        .args(args))
}

/// The command line, for error messages.
pub fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Makes the child die (SIGKILL) with the thread that started it, so that
/// a test that panics or is killed leaves no daemon or SIPp behind.
pub fn die_with_parent(cmd: &mut Command) {
    // SAFETY: prctl(2) is async-signal-safe and touches only the child.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}
