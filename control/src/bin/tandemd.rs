//! `tandemd --config tandem.toml`: one director of a hot-standby pair.
//! Refuses a bad configuration before changing anything; runs until
//! SIGTERM/SIGINT, then releases the VIPs and detaches XDP.

use std::{path::PathBuf, process::ExitCode};

use clap::Parser;

#[derive(Parser)]
#[command(name = "tandemd", about = "tandem director daemon: XDP dispatch, heartbeats, failover")]
struct Cli {
    /// The configuration file.
    #[arg(long, short, default_value = "/etc/tandem/tandem.toml")]
    config: PathBuf,
    /// Only check the configuration and exit.
    #[arg(long)]
    check: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let cfg = match tandem_control::config::Config::load(&cli.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("tandemd: {}: {e}", cli.config.display());
            return ExitCode::from(2);
        }
    };
    if cli.check {
        println!("tandemd: {}: configuration ok", cli.config.display());
        return ExitCode::SUCCESS;
    }
    let mut d = match tandem_control::daemon::Daemon::new(cfg) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("tandemd: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    match d.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tandemd: {e:#}");
            ExitCode::FAILURE
        }
    }
}
