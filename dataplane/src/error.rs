//! The dataplane's one error type. Each variant names what was being done
//! (the program, the map, the interface); nothing here decides what to do
//! about it.

use aya::programs::ProgramError;
use tandem_common::*;

use crate::ConfigError;

/// Errors of the dataplane; each names what it was doing.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("loading the XDP object: {0}")]
    Load(#[from] aya::EbpfError),
    #[error("program `{name}`: {source}")]
    Program {
        name: &'static str,
        source: ProgramError,
    },
    #[error("program `{name}` on tracepoint `{tracepoint}`: {source}")]
    Tracepoint {
        name: &'static str,
        tracepoint: &'static str,
        source: ProgramError,
    },
    #[error("map `{name}`: {source}")]
    Map {
        name: &'static str,
        source: aya::maps::MapError,
    },
    #[error("map `{0}` is missing from the XDP object")]
    MissingMap(&'static str),
    #[error("interface `{0}` does not exist in this network namespace")]
    NoSuchInterface(String),
    #[error("attaching XDP to `{iface}` in {mode} mode: {source}")]
    Attach {
        iface: String,
        mode: &'static str,
        source: ProgramError,
    },
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("XDP link pin `{path}`: {source}")]
    Pin {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("no free virtual service id (at most {MAX_SERVICES} services)")]
    TooManyServices,
    #[error("no free Maglev slot (at most {MH_SLOTS} mh services)")]
    TooManyMaglev,
    #[error("no virtual service {0}")]
    NoSuchService(String),
    #[error("frame of {0} bytes is too long for the benchmark wrapper (max {BENCH_FRAME_MAX})")]
    BenchFrameTooLong(usize),
    #[error("devmap entry for ifindex {ifindex}: {source}")]
    DevMap {
        ifindex: u32,
        source: aya::maps::xdp::XdpMapError,
    },
}

/// Wraps a map operation's error with the map's name.
pub(crate) fn map_err(name: &'static str) -> impl Fn(aya::maps::MapError) -> Error {
    move |source| Error::Map { name, source }
}

