//! `tandemd --config tandem.toml`: one director of a hot-standby pair.
//! Refuses a bad configuration before changing anything; runs until
//! SIGTERM/SIGINT, then releases the VIPs and detaches XDP. SIGHUP reads
//! the file again and applies what changed (as `tandemctl reload`).
//!
//! Logs go to stderr with timestamps, filtered by `--log-level` or, when
//! set, `RUST_LOG` (`tandem_control=debug,info`); the timeline (one
//! `<CLOCK_MONOTONIC ns> <event>` line per event) goes to stdout.

use std::{path::PathBuf, process::ExitCode};

use clap::{CommandFactory, FromArgMatches, Parser};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "tandemd",
    version,
    about = "tandem director daemon: XDP dispatch, heartbeats, failover"
)]
struct Cli {
    /// The configuration file.
    #[arg(long, short, default_value = "/etc/tandem/tandem.toml")]
    config: PathBuf,
    /// Only check the configuration and exit.
    #[arg(long)]
    check: bool,
    /// Log level (error, warn, info, debug, trace) when RUST_LOG is unset.
    #[arg(long, default_value = "info", value_parser = ["error", "warn", "info", "debug", "trace"])]
    log_level: String,
}

fn init_logging(level: &str) -> Result<(), String> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.is_empty() => {
            EnvFilter::try_new(&spec).map_err(|e| format!("RUST_LOG={spec}: {e}"))?
        }
        _ => EnvFilter::new(level),
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter)
        .with_ansi(false)
        .try_init()
        .map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    // Parsed through `clidoc`, which adds the hidden `--generate-docs DIR`
    // that `cargo xtask package` runs for the man page and completions.
    let matches = tandem_control::clidoc::with_generator(Cli::command()).get_matches();
    if let Some(dir) = tandem_control::clidoc::requested(&matches) {
        return match tandem_control::clidoc::generate(Cli::command(), "8", &dir) {
            Ok(_) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("tandemd: --generate-docs: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    if let Err(e) = init_logging(&cli.log_level) {
        eprintln!("tandemd: logging: {e}");
        return ExitCode::from(2);
    }
    let cfg = match tandem_control::config::Config::load(&cli.config) {
        Ok(c) => c,
        Err(e) => {
            // Every line of the error names the file already.
            eprintln!("tandemd: {e}");
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
            tracing::error!("{e:#}");
            return ExitCode::FAILURE;
        }
    };
    d.set_config_path(&cli.config);
    match d.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}
