//! Running Debian's real dahdi-tools (`dahdi_cfg`, `dahdi_test`,
//! `dahdi_scan`, …) against a simulated card as on a telephony server: in
//! a private mount namespace (util-linux `unshare --mount`) whose `/dev` is
//! a fresh tmpfs holding the few nodes the tools use (`null`, `zero`,
//! `urandom`, …, a private `shm` for `dahdi_cfg`'s semaphore) and the
//! simulator's mount bound on `/dev/dahdi`. Nothing of the host's `/dev`
//! changes; the namespace ends with the tool.
//!
//! This module owns that namespace and the bounded run of one tool (killed
//! by its pid past [`TOOL_DEADLINE`]); it decides nothing about what the
//! tool's result means. [`NEEDS`] is what a test of it asks
//! [`super::privileged::require`] for.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::privileged::{Need, find_program};

/// What running the tools needs: FUSE (the simulator), `unshare`, the tools.
pub const NEEDS: &[Need] = &[
    Need::Fuse,
    Need::Program("unshare", "util-linux"),
    Need::Program("dahdi_cfg", "dahdi"),
    Need::Program("dahdi_test", "dahdi"),
    Need::Program("dahdi_scan", "dahdi"),
];

/// The longest a tool may run.
pub const TOOL_DEADLINE: Duration = Duration::from_secs(30);

/// Runs in the private mount namespace: `$1` the (empty) directory to
/// build the new `/dev` in, `$2` the simulator's mount, then the command.
const NAMESPACE_SCRIPT: &str = r#"set -e
dev=$1; sim=$2; shift 2
mount -t tmpfs -o mode=755 tandem-dev "$dev"
for node in null zero full random urandom tty; do
    touch "$dev/$node"
    mount --bind "/dev/$node" "$dev/$node"
done
mkdir "$dev/shm" "$dev/dahdi"
mount -t tmpfs -o mode=1777 tandem-shm "$dev/shm"
mount --bind "$sim" "$dev/dahdi"
mount --rbind "$dev" /dev
exec "$@"
"#;

/// What a tool did.
#[derive(Debug)]
pub struct Ran {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    /// Panics, showing its output, unless the tool succeeded.
    pub fn expect_success(self, what: &str) -> Ran {
        assert!(
            self.status.success(),
            "{what}: {}\nstdout:\n{}\nstderr:\n{}",
            self.status,
            self.stdout,
            self.stderr
        );
        self
    }
}

/// Run `args` with the simulated card mounted at `card_root` on
/// `/dev/dahdi`; `scratch` is an empty directory the new `/dev` is built
/// on (inside the namespace only). Panics past [`TOOL_DEADLINE`].
pub fn run(card_root: &Path, scratch: &Path, args: &[&str]) -> Ran {
    // The tool by its full path: /usr/sbin need not be on PATH.
    let (tool, rest) = args.split_first().expect("a command to run");
    let tool = find_program(tool).unwrap_or_else(|| PathBuf::from(tool));
    let unshare = find_program("unshare").unwrap_or_else(|| PathBuf::from("unshare"));
    let mut child = Command::new(unshare)
        .args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(NAMESPACE_SCRIPT)
        .arg("tandem-dahdi-ns")
        .arg(scratch)
        .arg(card_root)
        .arg(&tool)
        .args(rest)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn unshare");
    let collect = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let out = collect(Box::new(child.stdout.take().expect("stdout")));
    let err = collect(Box::new(child.stderr.take().expect("stderr")));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the tool") {
            break status;
        }
        if started.elapsed() > TOOL_DEADLINE {
            // Our own child, by its pid.
            let _ = child.kill();
            let _ = child.wait();
            panic!("{args:?} ran longer than {TOOL_DEADLINE:?}: killed");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Ran {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}
