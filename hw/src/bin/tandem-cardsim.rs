//! `tandem-cardsim`: serve simulated telephony cards over FUSE.
//!
//! Mounts one device root per card (`--mount DIR`, repeated), each with
//! `ctl`, `channel` and `chan/SSS/CCC`, serves the control socket, prints
//! `ready` on stdout once everything is up, and unmounts on SIGINT/SIGTERM.
//! With `--shared-trunk`, span *s* of every card shares one trunk through a
//! failover switch.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Parser;
use nix::sys::signal::{SigSet, Signal};
use tandem_hw::abi;
use tandem_hw::sim::{MountOptions, SimConfig, Simulator, clean_stale_mount};

#[derive(Parser, Debug)]
#[command(
    version,
    about = "Serve simulated DAHDI telephony cards from FUSE mounts"
)]
struct Args {
    /// Device root to mount, one per card (card 0 first).
    #[arg(long = "mount", required = true, value_name = "DIR")]
    mounts: Vec<PathBuf>,
    /// Spans per card.
    #[arg(long, default_value_t = 1)]
    spans: usize,
    /// Channels per span (E1: 31, T1: 24).
    #[arg(long, default_value_t = 31)]
    channels: usize,
    /// Span s of every card shares trunk s through a failover switch.
    #[arg(long)]
    shared_trunk: bool,
    /// Unix socket for the control protocol (ring, answer, hangup, alarm, cut, status…).
    #[arg(long, value_name = "PATH")]
    control: Option<PathBuf>,
    /// Let other users open the device files.
    #[arg(long)]
    allow_other: bool,
    /// Leave channels unconfigured at start (as before dahdi_cfg runs).
    #[arg(long)]
    unconfigured: bool,
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();

    // Block the stop signals before any thread starts, so only sigwait sees them.
    let mut stop = SigSet::empty();
    stop.add(Signal::SIGINT);
    stop.add(Signal::SIGTERM);
    stop.thread_block().context("blocking SIGINT/SIGTERM")?;

    let config = SimConfig {
        cards: args.mounts.len(),
        spans: args.spans,
        channels: args.channels,
        shared_trunks: args.shared_trunk,
        signalling: if args.unconfigured {
            0
        } else {
            abi::DAHDI_SIG_FXSKS
        },
    };
    let simulator = Simulator::new(config).context("simulator config")?;

    let mut mounted = Vec::new();
    for (card, dir) in args.mounts.iter().enumerate() {
        // A mount left by a simulator that died answers ENOTCONN: detach it first.
        if clean_stale_mount(dir)? {
            eprintln!(
                "tandem-cardsim: detached a stale mount at {}",
                dir.display()
            );
        }
        if !dir.is_dir() {
            bail!("{}: not a directory", dir.display());
        }
        let options = MountOptions {
            allow_other: args.allow_other,
        };
        mounted.push(simulator.mount(card, dir, options)?);
    }
    let control = match &args.control {
        Some(path) => Some(
            simulator
                .serve_control(path)
                .with_context(|| format!("{}: cannot serve the control socket", path.display()))?,
        ),
        None => None,
    };

    let mut stdout = std::io::stdout();
    writeln!(stdout, "ready")?;
    stdout.flush()?;

    let signal = stop.wait().context("waiting for SIGINT/SIGTERM")?;
    tracing::info!(?signal, "stopping");
    drop(control);
    for card in mounted {
        card.unmount()?;
    }
    Ok(())
}
