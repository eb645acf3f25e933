//! The shell of `tandemctl import`: reads the source, the base
//! configuration and the neighbour table, runs the pure parts of
//! [`super`], writes the `tandem.toml` (to stdout, or to a file replaced
//! atomically) and reports on stderr. The only I/O of the import.
//!
//! Exit codes: 0 when every line was expressed, 1 when some were listed,
//! 2 when the source, the base, the neighbour table or the output could
//! not be read, parsed or written (then nothing is written).

use std::{
    fs,
    io::{self, Write},
    net::IpAddr,
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
    process::ExitCode,
};

use super::{Format, MacSource, parse, parse_neighbours, to_file};
use crate::config::Config;

/// The kernel's neighbour table.
pub const PROC_NET_ARP: &str = "/proc/net/arp";

/// What `tandemctl import` was asked.
#[derive(Clone, Debug)]
pub struct Options {
    pub format: Format,
    /// The ipvsadm-save output or keepalived.conf.
    pub input: PathBuf,
    /// The director's existing tandem.toml.
    pub base: PathBuf,
    /// `--mac ADDR=MAC`, in order (a later one for the same address wins).
    pub macs: Vec<(IpAddr, [u8; 6])>,
    /// `--gateway-mac`.
    pub gateway_mac: Option<[u8; 6]>,
    /// `--arp FILE` (absent: [`PROC_NET_ARP`], taken as empty when it
    /// cannot be read).
    pub arp: Option<PathBuf>,
    /// `--output FILE` (absent: stdout).
    pub output: Option<PathBuf>,
}

/// Runs the import; see the module's documentation for the exit codes.
pub fn run(o: &Options) -> ExitCode {
    match import(o) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("tandemctl: {e}");
            ExitCode::from(2)
        }
    }
}

fn import(o: &Options) -> Result<ExitCode, String> {
    let bytes =
        fs::read(&o.input).map_err(|e| format!("{}: cannot read: {e}", o.input.display()))?;
    // A byte that is not UTF-8 makes its line unreadable, not the file.
    let text = String::from_utf8_lossy(&bytes);
    let (base, open) = Config::load_with(&o.base, crate::config::OpenKeys::Warn).map_err(|e| e.to_string())?;
    for k in open {
        eprintln!("tandemctl: warning: {k}");
    }
    let arp = match &o.arp {
        Some(path) => {
            fs::read_to_string(path).map_err(|e| format!("{}: cannot read: {e}", path.display()))?
        }
        None => fs::read_to_string(PROC_NET_ARP).unwrap_or_default(),
    };
    let macs = MacSource {
        given: o.macs.clone(),
        gateway: o.gateway_mac,
        neighbours: parse_neighbours(&arp),
    };
    let imported = parse(o.format, &text);
    let exported = to_file(&imported, &base, &macs).map_err(|e| e.to_string())?;
    match &o.output {
        Some(path) => write_atomically(path, &exported.toml)
            .map_err(|e| format!("{}: cannot write: {e}", path.display()))?,
        None => {
            let mut out = io::stdout().lock();
            out.write_all(exported.toml.as_bytes())
                .and_then(|()| out.flush())
                .map_err(|e| format!("writing the configuration: {e}"))?;
        }
    }
    eprint!("{}", exported.report(&o.input.display().to_string()));
    Ok(if exported.unexpressed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Replaces `path` with `text`: a temporary file in the same directory
/// (mode 0600: the base's inline keys are in it), synced, then renamed
/// over it, so that a reader sees the old file or the new one, whole.
fn write_atomically(path: &Path, text: &str) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a file name"))?;
    let tmp = dir.join(format!(
        ".{}.tmp.{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let written = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written
}
