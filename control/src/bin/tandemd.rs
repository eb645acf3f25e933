//! `tandemd --config tandem.toml`: one director of a hot-standby pair.
//! Refuses a bad configuration before changing anything; runs until
//! SIGINT, then releases the VIPs and detaches XDP, as SIGTERM does unless
//! the tables are pinned (`dataplane.pin_dir`): then SIGTERM is a restart
//! without failover (`daemon::restart`). SIGHUP reads
//! the file again and applies what changed (as `tandemctl reload`).
//!
//! Logs go to stderr with timestamps, filtered by `--log-level` or, when
//! set, `RUST_LOG` (`tandem_control=debug,info`); the timeline (one
//! `<CLOCK_MONOTONIC ns> <event>` line per event) goes to stdout. Started
//! by systemd (stderr is the journal stream, or a notify socket is set),
//! logs go to journald natively instead, each record with its fields
//! (`KIND=`, `EPOCH=`, `REAL=`, `REASON=`, …, and `NODE=`/`PEER=` on
//! every record), under the identifier `tandemd`.

use std::{path::PathBuf, process::ExitCode};

use clap::{CommandFactory, FromArgMatches, Parser};
use tracing_subscriber::{EnvFilter, layer::SubscriberExt, util::SubscriberInitExt};

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
    /// Start (and reload) with key material that others than its owner may
    /// read (a key file, or this file holding a key inline), with a warning,
    /// instead of refusing it.
    #[arg(long)]
    allow_open_keys: bool,
    /// Log level (error, warn, info, debug, trace) when RUST_LOG is unset.
    #[arg(long, default_value = "info", value_parser = ["error", "warn", "info", "debug", "trace"])]
    log_level: String,
}

/// Where the logs went.
#[derive(Debug, PartialEq, Eq)]
enum LogTo {
    Stderr,
    Journald,
}

/// Logging for the daemon of node `node` (peer `peer`): journald when
/// systemd started it and the journal answers, stderr otherwise.
fn init_logging(level: &str, node: u32, peer: u32) -> Result<LogTo, String> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.is_empty() => {
            EnvFilter::try_new(&spec).map_err(|e| format!("RUST_LOG={spec}: {e}"))?
        }
        _ => EnvFilter::new(level),
    };
    let mut journal_error = None;
    if tandem_control::systemd::under_systemd() {
        match tracing_journald::layer() {
            Ok(layer) => {
                let layer = layer
                    .with_field_prefix(None)
                    .with_syslog_identifier("tandemd".into())
                    .with_custom_fields([("NODE", node.to_string()), ("PEER", peer.to_string())]);
                tracing_subscriber::registry()
                    .with(filter)
                    .with(layer)
                    .try_init()
                    .map_err(|e| e.to_string())?;
                return Ok(LogTo::Journald);
            }
            Err(e) => journal_error = Some(e),
        }
    }
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter)
        .with_ansi(false)
        .try_init()
        .map_err(|e| e.to_string())?;
    if let Some(e) = journal_error {
        tracing::warn!("started by systemd but journald does not answer ({e}): logging to stderr");
    }
    Ok(LogTo::Stderr)
}

fn main() -> ExitCode {
    use tandem_control::config::{Config, OpenKeys};
    let mut startup = tandem_control::startup::Startup::begin(std::time::Instant::now());
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
    let open_keys = if cli.allow_open_keys {
        OpenKeys::Warn
    } else {
        OpenKeys::Refuse
    };
    // Read before logging starts (the records carry the node's id); a
    // refusal goes to stderr, which under systemd is the journal too.
    let (cfg, open) = match Config::load_with(&cli.config, open_keys) {
        Ok(c) => c,
        Err(e) => {
            // Every line of the error names the file already.
            eprintln!("tandemd: {e}");
            return ExitCode::from(2);
        }
    };
    startup.handle_phase_end(tandem_control::startup::Phase::Config, std::time::Instant::now());
    if cli.check {
        for k in &open {
            eprintln!("tandemd: warning: {k}; accepted: --allow-open-keys");
        }
        println!("tandemd: {}: configuration ok", cli.config.display());
        return ExitCode::SUCCESS;
    }
    match init_logging(&cli.log_level, cfg.node.id, cfg.node.peer_id) {
        Ok(to) => tracing::debug!("logging to {to:?}"),
        Err(e) => {
            eprintln!("tandemd: logging: {e}");
            return ExitCode::from(2);
        }
    }
    for k in &open {
        tracing::warn!(path = %k.path.display(), mode = k.mode, "{k}; accepted: --allow-open-keys");
    }
    let mut d = match tandem_control::daemon::Daemon::new_timed(cfg, startup) {
        Ok(d) => d,
        Err(e) => {
            tracing::error!("{e:#}");
            return ExitCode::FAILURE;
        }
    };
    d.set_config_path(&cli.config);
    d.set_open_keys(open_keys);
    match d.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}
