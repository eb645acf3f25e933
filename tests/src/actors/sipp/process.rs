//! One SIPp process: started with `ip netns exec` (the child's PID is
//! SIPp's own), dying with the thread that started it, polled, signalled
//! and reaped by its PID only; and the tails of the files it writes, for
//! failure messages.

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use std::net::{Ipv4Addr, SocketAddrV4};

use super::{SIP_PORT, SippError, io_err};
use crate::lab::cmd::die_with_parent;

/// The arguments every SIPp of this module takes: the scenario, UDP on one
/// socket (`-t u1`) bound to `bind`:5060, media on `media`, no stdin, and
/// its statistics (every second) and errors written to files.
pub(super) fn common_args(
    scenario: &Path,
    bind: Ipv4Addr,
    media: SocketAddrV4,
    stat_file: &Path,
    error_file: &Path,
    transport: super::Transport,
) -> Vec<String> {
    [
        "-sf",
        &scenario.display().to_string(),
        "-t",
        transport.sipp_flag(),
        "-i",
        &bind.to_string(),
        "-p",
        &SIP_PORT.to_string(),
        "-mi",
        &media.ip().to_string(),
        "-mp",
        &media.port().to_string(),
        "-nostdin",
        "-trace_stat",
        "-stf",
        &stat_file.display().to_string(),
        "-fd",
        "1",
        "-trace_err",
        "-error_file",
        &error_file.display().to_string(),
    ]
    .map(String::from)
    .to_vec()
}

/// A SIPp process started with `ip netns exec` (which execs: the child's
/// PID is SIPp's own).
pub(super) struct SippProcess {
    pub(super) child: Option<Child>,
    pub(super) cmdline: String,
}

impl SippProcess {
    pub(super) fn spawn(
        ns: &str,
        args: &[String],
        cwd: &Path,
        output: &Path,
    ) -> Result<SippProcess, SippError> {
        let out = std::fs::File::create(output).map_err(io_err("creating", output))?;
        let err = out.try_clone().map_err(io_err("duplicating", output))?;
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns, "sipp"])
            .args(args)
            .current_dir(cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err));
        die_with_parent(&mut cmd);
        let cmdline = format!("ip netns exec {ns} sipp {}", args.join(" "));
        let child = cmd.spawn().map_err(|source| SippError::Spawn {
            cmd: cmdline.clone(),
            source,
        })?;
        Ok(SippProcess {
            child: Some(child),
            cmdline,
        })
    }

    pub(super) fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The exit code if it has exited (None: still running, or killed by a signal).
    pub(super) fn try_exit(&mut self) -> Option<Option<i32>> {
        let c = self.child.as_mut()?;
        match c.try_wait() {
            Ok(Some(st)) => Some(st.code()),
            _ => None,
        }
    }

    fn signal(&self, sig: libc::c_int) {
        if let Some(pid) = self.pid() {
            // SAFETY: kill(2) on the PID of our own child, not yet reaped.
            unsafe { libc::kill(pid as libc::pid_t, sig) };
        }
    }

    /// Waits up to `timeout` for the process to exit; its exit code if it did.
    pub(super) fn wait_for(&mut self, timeout: Duration) -> Option<Option<i32>> {
        let end = Instant::now() + timeout;
        loop {
            if let Some(code) = self.try_exit() {
                return Some(code);
            }
            if Instant::now() >= end {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `sig`, up to `grace` to exit, then SIGKILL; reaps it. The exit code
    /// if it exited by itself or on `sig`.
    pub(super) fn stop(&mut self, sig: libc::c_int, grace: Duration) -> Option<i32> {
        self.child.as_ref()?;
        if let Some(code) = self.try_exit() {
            self.child = None;
            return code;
        }
        self.signal(sig);
        let code = self.wait_for(grace).flatten();
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        code
    }
}

impl Drop for SippProcess {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}


/// The last `max` bytes of each file that exists.
pub(super) fn tail_of(files: &[&Path], max: usize) -> String {
    let mut s = String::new();
    for f in files {
        if let Ok(t) = std::fs::read_to_string(f) {
            let start = t.len().saturating_sub(max);
            let start = (start..t.len())
                .find(|i| t.is_char_boundary(*i))
                .unwrap_or(t.len());
            let _ = writeln!(s, "--- {}:\n{}", f.display(), &t[start..]);
        }
    }
    s
}

