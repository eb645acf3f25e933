//! `tandemctl`: asks a running `tandemd` over its admin socket and prints
//! the answer as a table (ipvsadm-like for services and reals) or, with
//! `--json`, as the raw JSON object. Answers can be large (≈ 0.9 MB of
//! metrics at the design maximum); one cut short by a closed pipe
//! (`tandemctl metrics | head`) ends quietly.

use std::{io::Write, path::PathBuf, process::ExitCode, time::Duration};

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};

mod edit;

use edit::{EditCommand, EditFile, RealCommand, ServiceCommand, edit_command};
use tandem_control::{
    admin::{self, Request, Response},
    config::{DEFAULT_ADMIN_SOCKET, import},
};

#[derive(Parser)]
#[command(name = "tandemctl", version, about = "Control a running tandemd")]
struct Cli {
    /// The daemon's admin socket.
    #[arg(long, default_value = DEFAULT_ADMIN_SOCKET)]
    socket: PathBuf,
    /// Print the daemon's JSON answer instead of a table.
    #[arg(long)]
    json: bool,
    /// How long to wait for the answer, in milliseconds.
    #[arg(long, default_value_t = 5000)]
    timeout_ms: u64,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// This node's state, its peer, the heartbeat paths and the VIPs.
    Status,
    /// Hand the active role to the peer. The node that hands it over
    /// holds off preemption until released (or `node.switchover_hold_ms`).
    Switchover {
        /// End this node's switchover hold instead (preemption resumes).
        #[arg(long)]
        release: bool,
    },
    /// Virtual services and their real servers (like `ipvsadm -Ln`);
    /// with --rate, their rates (like `ipvsadm -Ln --rate`).
    Services {
        /// Connections, packets and bytes per second of each service and
        /// real server (CPS InPPS OutPPS InBPS OutBPS), from `services`
        /// asked twice, --interval-ms apart, over tandemd's clock. Only
        /// the in direction (clients to the VIP) is counted: in DR mode the
        /// real servers answer the clients directly, not through the
        /// director, and NAT replies are counted node-wide only (`tandemctl
        /// stats`, reverse_nat), so OutPPS and OutBPS show `-` (null in JSON).
        #[arg(long)]
        rate: bool,
        /// The interval of --rate, in milliseconds.
        #[arg(long, default_value_t = 1000, requires = "rate", value_parser = clap::value_parser!(u64).range(1..=600_000))]
        interval_ms: u64,
    },
    /// Every real server with its health, load and counters.
    Reals,
    /// Telephony card spans, their alarms and channel states (like dahdi_tool).
    Cards,
    /// State sync with the peer: role, tables, sequence, lag.
    Sync,
    /// Prometheus metrics in the Prometheus text format.
    Metrics,
    /// The dispatcher's packet counters by reason (non-zero ones; all with --json).
    Stats,
    /// The daemon's timeline: numbered events with CLOCK_MONOTONIC times.
    Events {
        /// Only events numbered above this.
        #[arg(long, default_value_t = 0)]
        after: u64,
    },
    /// The running configuration as a `tandem.toml` (inline keys
    /// included: keep it as you keep the file), e.g. `tandemctl save >
    /// tandem.toml.new && tandemd --check --config tandem.toml.new`.
    Save,
    /// What a reload of a configuration file would do to the running
    /// daemon, compared with its running configuration (`save`): the
    /// live changes in the order they apply and what is refused and why.
    /// Changes nothing. Exits 0 when all of it could be applied live, 1
    /// when something is refused, 2 when the file itself is refused.
    Diff {
        /// The new configuration.
        #[arg(long, default_value = "/etc/tandem/tandem.toml")]
        config: PathBuf,
    },
    /// Re-read the daemon's configuration file, check it whole and apply
    /// what changed, live (like keepalived's SIGHUP, or `ipvsadm-restore`
    /// applied as a diff). A bad file, or a change that cannot be taken
    /// live, changes nothing and says why. Exits 0 when applied (or, with
    /// --dry-run, when it would be), 1 when refused.
    Reload {
        /// Only say what would change.
        #[arg(long)]
        dry_run: bool,
    },
    /// Add, edit or delete a virtual service (ipvsadm -A, -E, -D): the
    /// daemon's configuration file is edited (comments kept, checked
    /// whole, written atomically) and reloaded, so the change is live and
    /// survives a restart.
    #[command(subcommand)]
    Service(ServiceCommand),
    /// Add, edit, delete or drain a real server (ipvsadm -a, -e, -d; a
    /// weight of 0 is quiescent as in IPVS: its flows and dialogs go on,
    /// it gets no new ones). Edits the file and reloads, as `service`.
    #[command(subcommand)]
    Real(RealCommand),
    /// The idle timeouts (like `ipvsadm -L --timeout`); `--set TCP TCPFIN
    /// UDP` (seconds, 0: unchanged, as `ipvsadm --set`) and `--sip-call S`
    /// edit the file's [timeouts] and reload, on both nodes.
    Timeouts {
        #[arg(long, num_args = 3, value_names = ["TCP", "TCPFIN", "UDP"])]
        set: Option<Vec<u32>>,
        /// Idle timeout of SIP dialogs, in seconds.
        #[arg(long)]
        sip_call: Option<u32>,
        #[command(flatten)]
        file: EditFile,
    },
    /// Enter or leave maintenance (no takeover, no election).
    Maintenance {
        #[arg(value_enum)]
        mode: OnOff,
    },
    /// Keys, without a daemon: a fresh one, or an IVR's own heartbeat key.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Turn an LVS director's configuration into a tandem.toml, without a
    /// daemon: the base's tables (inline keys included) with the imported
    /// [[service]] list, on stdout (or --output). Every line not expressed
    /// goes to stderr.
    /// Exits 0 when everything was expressed, 1 when something was listed,
    /// 2 when a file cannot be read, parsed or written.
    #[command(subcommand)]
    Import(ImportKind),
    /// The kernel's connection-table entries and SIP dialogs (like
    /// `ipvsadm -Lnc`).
    ///
    /// Each row: protocol, expiry (mm:ss to the idle timeout),
    /// state, client, VIP, real server, whether the entry is synced with
    /// the peer (`to peer`, `from peer`, `no`; `-`: sync off) and a
    /// dialog's Call-ID (its hash when the text is not known). Filters
    /// apply in tandemd, which walks its tables a few milliseconds per
    /// answer; this asks again until the walk is over, so the count of
    /// matching entries is the whole tables'.
    Conns {
        /// Only entries to this VIP.
        #[arg(long)]
        vip: Option<std::net::IpAddr>,
        /// Only entries sent to this real server.
        #[arg(long)]
        real: Option<std::net::IpAddr>,
        /// Only the SIP dialog of this Call-ID.
        #[arg(long)]
        call_id: Option<String>,
        /// Most rows printed (the others are counted).
        #[arg(long, default_value_t = admin::MAX_CONNS as u32)]
        limit: u32,
    },
    /// Zero the counters of the `services` and `reals` views (like
    /// `ipvsadm -Z`); `metrics` counts on.
    ///
    /// The packet, byte and connection counters of every service or of
    /// one, and of their real servers. `metrics` is not zeroed: tandemd keeps the views' zero as a
    /// baseline and exports the kernel's counters, which never go back
    /// (Prometheus counters). Root only.
    Zero {
        /// Only this service (and its real servers): PROTO:VIP:PORT, e.g.
        /// udp:198.18.0.100:5060.
        #[arg(long)]
        service: Option<String>,
    },
}

#[derive(Subcommand)]
enum ImportKind {
    /// `ipvsadm-save -n` (`ipvsadm -Sn`) output.
    Ipvsadm(ImportArgs),
    /// A keepalived.conf's virtual_server blocks.
    Keepalived(ImportArgs),
}

#[derive(clap::Args)]
struct ImportArgs {
    /// The file to import.
    file: PathBuf,
    /// The director's existing tandem.toml: every table but [[service]] is kept.
    #[arg(long)]
    base: PathBuf,
    /// A real server's MAC address (repeatable); else the base's, else /proc/net/arp's.
    #[arg(long = "mac", value_name = "ADDR=MAC", value_parser = import::parse_mac_option)]
    macs: Vec<(std::net::IpAddr, [u8; 6])>,
    /// The MAC of the gateway toward the clients, for NAT services.
    #[arg(long, value_name = "MAC", value_parser = import::parse_mac_value)]
    gateway_mac: Option<[u8; 6]>,
    /// The neighbour table, as /proc/net/arp prints it [default: /proc/net/arp].
    #[arg(long, value_name = "FILE")]
    arp: Option<PathBuf>,
    /// Write the tandem.toml here (replaced atomically) instead of stdout.
    #[arg(long, value_name = "OUT")]
    output: Option<PathBuf>,
}

/// `tandemctl import …`: the module's shell does the work.
fn import_command(kind: ImportKind) -> ExitCode {
    let (format, a) = match kind {
        ImportKind::Ipvsadm(a) => (import::Format::Ipvsadm, a),
        ImportKind::Keepalived(a) => (import::Format::Keepalived, a),
    };
    import::command::run(&import::command::Options {
        format,
        input: a.file,
        base: a.base,
        macs: a.macs,
        gateway_mac: a.gateway_mac,
        arp: a.arp,
        output: a.output,
    })
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Print a fresh random key (32 hex digits) for `tandem.toml` or a key file.
    Generate,
    /// Print the heartbeat key of the IVR with this heartbeat node id, derived
    /// from the IVR master key of a director's configuration: give it to that
    /// IVR (and to no other host).
    Ivr {
        node_id: u32,
        /// The director's configuration (its heartbeat.ivr_key or ivr_key_file).
        #[arg(long, default_value = "/etc/tandem/tandem.toml")]
        config: PathBuf,
    },
}

/// `tandemctl key …`: prints one key on stdout (meant for a file or a
/// provisioning tool, never a log).
fn key_command(k: KeyCommand) -> ExitCode {
    let key = match k {
        KeyCommand::Generate => {
            tandem_control::keys::generate().map_err(|e| format!("getrandom: {e}"))
        }
        KeyCommand::Ivr { node_id, config } => load_config(&config)
            .map_err(|e| e.to_string())
            .and_then(|c| {
                let master = c.heartbeat.ivr_key.ok_or_else(|| {
                    format!(
                        "{}: heartbeat.ivr_key: not set (no IVR keys to derive)",
                        config.display()
                    )
                })?;
                Ok(tandem_control::keys::ivr_key_bytes(&master, node_id))
            }),
    };
    match key {
        Ok(k) => {
            println!("{}", tandem_control::keys::to_hex(&k));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tandemctl: {e}");
            ExitCode::from(2)
        }
    }
}

/// A configuration file read by tandemctl: key material others may read
/// is warned of on stderr, not refused (tandemd is the one that refuses
/// it, unless started with `--allow-open-keys`).
fn load_config(path: &std::path::Path) -> Result<tandem_control::config::Config, tandem_control::config::ConfigError> {
    use tandem_control::config::{Config, OpenKeys};
    let (cfg, open) = Config::load_with(path, OpenKeys::Warn)?;
    for k in open {
        eprintln!("tandemctl: warning: {k}");
    }
    Ok(cfg)
}

/// `tandemctl diff`: the running configuration from the daemon, the new
/// one from the file, and the plan between them.
fn diff_command(socket: &std::path::Path, timeout: Duration, file: &std::path::Path, json: bool) -> ExitCode {
    use tandem_control::config::{Config, diff};
    let new = match load_config(file) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("tandemctl: {e}");
            return ExitCode::from(2);
        }
    };
    let running = match admin::request(socket, &Request::Save, timeout) {
        Ok(Response::Config { text }) => match Config::parse(&text) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("tandemctl: the running configuration tandemd sent does not read back: {e}");
                return ExitCode::from(2);
            }
        },
        Ok(Response::Error { message }) => {
            eprintln!("tandemctl: tandemd refused: {message}");
            return ExitCode::from(2);
        }
        Ok(other) => {
            eprintln!("tandemctl: tandemd answered save with {other:?}");
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("tandemctl: {e}");
            return ExitCode::from(2);
        }
    };
    let d = diff::diff(&running, &new);
    let text = if json {
        serde_json::to_string(&d).unwrap_or_default() + "\n"
    } else {
        d.to_string()
    };
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush())
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        eprintln!("tandemctl: writing the plan: {e}");
        return ExitCode::from(2);
    }
    if d.applicable() { ExitCode::SUCCESS } else { ExitCode::from(1) }
}

#[derive(Clone, Copy, ValueEnum)]
enum OnOff {
    On,
    Off,
}

fn main() -> ExitCode {
    // Parsed through `clidoc`, which adds the hidden `generate-docs DIR`
    // that `cargo xtask package` runs for the man pages and completions.
    let matches = tandem_control::clidoc::with_generator(Cli::command()).get_matches();
    if let Some(dir) = tandem_control::clidoc::requested(&matches) {
        return match tandem_control::clidoc::generate(Cli::command(), "1", &dir) {
            Ok(_) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("tandemctl: generate-docs: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let timeout = Duration::from_millis(cli.timeout_ms);
    let request = match cli.command {
        Command::Status => Some(Request::Status),
        Command::Switchover { release: false } => Some(Request::Switchover),
        Command::Switchover { release: true } => Some(Request::ReleaseHold),
        Command::Services { rate: false, .. } => Some(Request::Services),
        Command::Services {
            rate: true,
            interval_ms,
        } => {
            return rate_command(
                &cli.socket,
                timeout,
                Duration::from_millis(interval_ms),
                cli.json,
            );
        }
        Command::Reals => Some(Request::Reals),
        Command::Sync => Some(Request::Sync),
        Command::Metrics => Some(Request::Metrics),
        Command::Stats => Some(Request::Stats),
        Command::Events { after } => Some(Request::Events { after }),
        Command::Save => Some(Request::Save),
        Command::Reload { dry_run } => Some(Request::Reload { dry_run }),
        // Sent as its wire line: `Request::Cards` may be compiled out (feature admin-cards).
        Command::Cards => None,
        Command::Maintenance { mode } => Some(Request::Maintenance {
            on: matches!(mode, OnOff::On),
        }),
        Command::Key(k) => return key_command(k),
        Command::Import(kind) => return import_command(kind),
        Command::Timeouts { set: None, sip_call: None, .. } => Some(Request::Timeouts),
        Command::Timeouts { set, sip_call, file } => {
            let nz = |v: u32| (v != 0).then_some(v);
            let at = |i: usize| set.as_ref().and_then(|v| v.get(i).copied()).and_then(nz);
            return edit_command(&cli.socket, timeout, EditCommand::Timeouts {
                edit: tandem_control::config::edit::Edit::Timeouts {
                    tcp_s: at(0),
                    tcp_fin_s: at(1),
                    udp_s: at(2),
                    sip_call_s: sip_call.and_then(nz),
                },
                file,
            }, cli.json);
        }
        Command::Service(c) => return edit_command(&cli.socket, timeout, EditCommand::Service(c), cli.json),
        Command::Real(c) => return edit_command(&cli.socket, timeout, EditCommand::Real(c), cli.json),
        Command::Diff { config } => return diff_command(&cli.socket, timeout, &config, cli.json),
        Command::Conns {
            vip,
            real,
            call_id,
            limit,
        } => {
            let filter = ConnFilter { vip, real, call_id };
            return conns_command(&cli.socket, timeout, &filter, limit, cli.json);
        }
        Command::Zero { service } => match service.as_deref().map(admin::service_name).transpose() {
            Ok(service) => Some(Request::Zero { service }),
            Err(e) => {
                eprintln!("tandemctl: {e}");
                return ExitCode::from(2);
            }
        },
    };
    let answer = match &request {
        Some(request) => admin::request(&cli.socket, request, timeout),
        None => admin::request_cards(&cli.socket, timeout),
    };
    let response = match answer {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tandemctl: {e}");
            return ExitCode::from(2);
        }
    };
    show(&response, cli.json)
}

/// Prints an answer (its JSON with `--json`, else its table; an error to
/// stderr) and gives the exit code: 1 for an error answer.
fn show(response: &Response, json: bool) -> ExitCode {
    let text = if json {
        admin::format_response(response)
    } else if let Response::Error { message } = response {
        eprintln!("tandemctl: tandemd refused: {message}");
        String::new()
    } else {
        admin::render(response)
    };
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tandemctl: writing the answer: {e}");
            return ExitCode::from(2);
        }
    }
    match response {
        Response::Error { .. } => ExitCode::from(1),
        Response::Reload(r) if r.error.is_some() || !r.refused.is_empty() => ExitCode::from(1),
        _ => ExitCode::SUCCESS,
    }
}

/// The filters of `tandemctl conns`.
struct ConnFilter {
    vip: Option<std::net::IpAddr>,
    real: Option<std::net::IpAddr>,
    call_id: Option<String>,
}

/// Most `conns` requests one `tandemctl conns` makes (a million-entry
/// table takes a few dozen).
const MAX_CONN_PAGES: usize = 1 << 16;

/// `tandemctl conns`: asks from where each answer stopped until the walk
/// is over, keeping at most `limit` rows and counting the rest, and
/// prints the whole as one answer.
fn conns_command(
    socket: &std::path::Path,
    timeout: Duration,
    filter: &ConnFilter,
    limit: u32,
    json: bool,
) -> ExitCode {
    let mut rows = Vec::new();
    let mut total = 0u64;
    let mut after = None;
    for _ in 0..MAX_CONN_PAGES {
        let request = Request::Conns {
            vip: filter.vip,
            real: filter.real,
            call_id: filter.call_id.clone(),
            limit: Some(limit.saturating_sub(rows.len() as u32)),
            after,
        };
        match admin::request(socket, &request, timeout) {
            Ok(Response::Conns {
                conns,
                total: t,
                next,
                ..
            }) => {
                rows.extend(conns);
                total += t;
                match next {
                    None => {
                        let truncated = total > rows.len() as u64;
                        let all = Response::Conns {
                            conns: rows,
                            total,
                            truncated,
                            next: None,
                        };
                        return show(&all, json);
                    }
                    Some(n) if Some(n) == after => {
                        eprintln!("tandemctl: tandemd's walk of its tables did not move on from {n:?}");
                        return ExitCode::from(2);
                    }
                    Some(n) => after = Some(n),
                }
            }
            Ok(r @ Response::Error { .. }) => return show(&r, json),
            Ok(other) => {
                eprintln!("tandemctl: tandemd answered conns with {other:?}");
                return ExitCode::from(2);
            }
            Err(e) => {
                eprintln!("tandemctl: {e}");
                return ExitCode::from(2);
            }
        }
    }
    eprintln!("tandemctl: tandemd's walk of its tables did not end within {MAX_CONN_PAGES} answers");
    ExitCode::from(2)
}

/// `tandemctl services --rate`: `services` twice, `interval` apart, and
/// the rates between them over tandemd's clock.
fn rate_command(socket: &std::path::Path, timeout: Duration, interval: Duration, json: bool) -> ExitCode {
    let ask = || match admin::request(socket, &Request::Services, timeout) {
        Ok(Response::Services { services, taken_ns }) => Ok((taken_ns, services)),
        Ok(Response::Error { message }) => Err((1, format!("tandemd refused: {message}"))),
        Ok(other) => Err((2, format!("tandemd answered services with {other:?}"))),
        Err(e) => Err((2, e.to_string())),
    };
    let samples = ask().and_then(|first| {
        std::thread::sleep(interval);
        Ok((first, ask()?))
    });
    let rates = samples.and_then(|((t0, s0), (t1, s1))| {
        admin::rate::rates((t0, &s0), (t1, &s1)).map_err(|e| (2, e.to_string()))
    });
    let text = match rates {
        Ok(r) if json => serde_json::to_string(&r).unwrap_or_default() + "\n",
        Ok(r) => admin::render_rates(&r),
        Err((code, e)) => {
            eprintln!("tandemctl: {e}");
            return ExitCode::from(code);
        }
    };
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            eprintln!("tandemctl: writing the rates: {e}");
            ExitCode::from(2)
        }
        _ => ExitCode::SUCCESS,
    }
}
