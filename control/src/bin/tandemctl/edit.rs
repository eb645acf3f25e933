//! `tandemctl service|real|timeouts`: the edits of the daemon's file
//! (`config::edit`), then its reload (`admin::edits`), and their
//! command-line arguments.

use super::*;

/// A virtual service, as ipvsadm names it.
#[derive(clap::Args, Clone)]
pub(crate) struct ServiceName {
    /// A UDP service (ipvsadm -u).
    #[arg(short = 'u', long = "udp-service", value_name = "VIP:PORT")]
    pub(crate) udp: Option<std::net::SocketAddr>,
    /// A TCP service (ipvsadm -t).
    #[arg(short = 't', long = "tcp-service", value_name = "VIP:PORT", conflicts_with = "udp")]
    pub(crate) tcp: Option<std::net::SocketAddr>,
}

impl ServiceName {
    fn id(&self) -> Option<tandem_control::config::diff::ServiceId> {
        use tandem_control::config::diff::ServiceId;
        use tandem_dataplane::config::Protocol;
        let (protocol, a) = match (self.udp, self.tcp) {
            (Some(a), _) => (Protocol::Udp, a),
            (None, Some(a)) => (Protocol::Tcp, a),
            (None, None) => return None,
        };
        Some(ServiceId {
            protocol,
            vip: a.ip(),
            port: a.port(),
        })
    }
}

/// Where the edit goes.
#[derive(clap::Args, Clone)]
pub(crate) struct EditFile {
    /// The configuration file to edit (default: the one tandemd reads on reload).
    #[arg(long)]
    pub(crate) config: Option<PathBuf>,
}

#[derive(clap::Args, Clone)]
pub(crate) struct ServiceFields {
    /// rr, wrr, lc, wlc, sed, nq, sh, dh, mh (ipvsadm -s); a change affects new flows only.
    #[arg(short = 's', long)]
    pub(crate) scheduler: Option<String>,
    /// dr or nat (ipvsadm -g, -m).
    #[arg(long)]
    pub(crate) forward: Option<String>,
    /// Service flags, comma-separated (expire_nodest, sched_fallback, sched_port, one_packet, reported_load, sip_persist).
    #[arg(long, value_delimiter = ',')]
    pub(crate) flags: Option<Vec<String>>,
    /// Maglev table size (a prime).
    #[arg(long)]
    pub(crate) mh_size: Option<u32>,
    /// NAT: the MAC of the gateway toward the clients.
    #[arg(long)]
    pub(crate) gateway_mac: Option<String>,
    /// NAT: the interface replies to clients leave by.
    #[arg(long)]
    pub(crate) client_interface: Option<String>,
}

#[derive(clap::Args, Clone)]
pub(crate) struct RealFields {
    /// Its MAC (required on add).
    #[arg(long)]
    pub(crate) mac: Option<String>,
    /// ipvsadm -w; 0: quiescent.
    #[arg(short = 'w', long)]
    pub(crate) weight: Option<u32>,
    /// up, draining (no new calls) or down.
    #[arg(long)]
    pub(crate) state: Option<String>,
    /// The node id its IVR heartbeats carry.
    #[arg(long)]
    pub(crate) node_id: Option<u32>,
    /// The interface toward it.
    #[arg(long)]
    pub(crate) interface: Option<String>,
}

#[derive(Subcommand)]
pub(crate) enum ServiceCommand {
    /// Add a service (ipvsadm -A).
    Add {
        #[command(flatten)]
        name: ServiceName,
        #[command(flatten)]
        fields: ServiceFields,
        #[command(flatten)]
        file: EditFile,
    },
    /// Change a service's settings (ipvsadm -E).
    Edit {
        #[command(flatten)]
        name: ServiceName,
        #[command(flatten)]
        fields: ServiceFields,
        #[command(flatten)]
        file: EditFile,
    },
    /// Delete a service and its real servers (ipvsadm -D).
    Delete {
        #[command(flatten)]
        name: ServiceName,
        #[command(flatten)]
        file: EditFile,
    },
}

#[derive(Subcommand)]
pub(crate) enum RealCommand {
    /// Add a real server to a service (ipvsadm -a).
    Add {
        #[command(flatten)]
        name: ServiceName,
        /// ADDR or ADDR:PORT (NAT: the port on the real server).
        #[arg(short = 'r', long = "real-server")]
        real: String,
        #[command(flatten)]
        fields: RealFields,
        #[command(flatten)]
        file: EditFile,
    },
    /// Change a real server (ipvsadm -e); without -u/-t, in every service it serves.
    Edit {
        #[command(flatten)]
        name: ServiceName,
        #[arg(short = 'r', long = "real-server")]
        real: String,
        #[command(flatten)]
        fields: RealFields,
        #[command(flatten)]
        file: EditFile,
    },
    /// Delete a real server (ipvsadm -d); its flows follow the service's
    /// expire_nodest. Without -u/-t, from every service.
    Delete {
        #[command(flatten)]
        name: ServiceName,
        #[arg(short = 'r', long = "real-server")]
        real: String,
        #[command(flatten)]
        file: EditFile,
    },
    /// Stop new calls to a real server in every service it serves (state
    /// draining); with --wait, return when its active calls reach 0, or
    /// say how many are left at the timeout (exit 1).
    Drain {
        /// ADDR or ADDR:PORT.
        real: String,
        #[arg(long)]
        wait: bool,
        /// Seconds --wait waits at most.
        #[arg(long, default_value_t = 600)]
        timeout: u64,
        #[command(flatten)]
        file: EditFile,
    },
}

pub(crate) fn real_id(text: &str) -> Result<tandem_control::config::diff::RealId, String> {
    use tandem_control::config::diff::RealId;
    if let Ok(a) = text.parse::<std::net::SocketAddr>() {
        return Ok(RealId {
            address: a.ip(),
            port: a.port(),
        });
    }
    text.parse::<std::net::IpAddr>()
        .map(|address| RealId { address, port: 0 })
        .map_err(|_| format!("{text:?} is not ADDR or ADDR:PORT"))
}

/// `tandemctl service|real …`: the edit, the reload, what happened.
pub(crate) fn edit_command(socket: &std::path::Path, timeout: Duration, cmd: EditCommand, json: bool) -> ExitCode {
    use tandem_control::{
        admin::edits,
        config::edit::{Edit, RealSettings, ServiceSettings},
    };
    let fail = |e: String| {
        eprintln!("tandemctl: {e}");
        ExitCode::from(1)
    };
    let need = |n: &ServiceName| n.id().ok_or_else(|| "name the service: -u VIP:PORT or -t VIP:PORT".to_string());
    let svc = |f: ServiceFields| ServiceSettings {
        scheduler: f.scheduler,
        forward: f.forward,
        flags: f.flags,
        mh_size: f.mh_size,
        gateway_mac: f.gateway_mac,
        client_interface: f.client_interface,
    };
    let real = |f: RealFields| RealSettings {
        mac: f.mac,
        weight: f.weight,
        state: f.state,
        node_id: f.node_id,
        interface: f.interface,
    };
    let built: Result<(Edit, Option<PathBuf>, Option<(std::net::IpAddr, Duration)>), String> = (|| {
        Ok(match cmd {
            EditCommand::Timeouts { edit, file } => (edit, file.config, None),
            EditCommand::Service(ServiceCommand::Add { name, fields, file }) => {
                (Edit::ServiceAdd { id: need(&name)?, settings: svc(fields) }, file.config, None)
            }
            EditCommand::Service(ServiceCommand::Edit { name, fields, file }) => {
                (Edit::ServiceEdit { id: need(&name)?, settings: svc(fields) }, file.config, None)
            }
            EditCommand::Service(ServiceCommand::Delete { name, file }) => {
                (Edit::ServiceDelete { id: need(&name)? }, file.config, None)
            }
            EditCommand::Real(RealCommand::Add { name, real: r, fields, file }) => (
                Edit::RealAdd { service: need(&name)?, real: real_id(&r)?, settings: real(fields) },
                file.config,
                None,
            ),
            EditCommand::Real(RealCommand::Edit { name, real: r, fields, file }) => (
                Edit::RealEdit { service: name.id(), real: real_id(&r)?, settings: real(fields) },
                file.config,
                None,
            ),
            EditCommand::Real(RealCommand::Delete { name, real: r, file }) => {
                (Edit::RealDelete { service: name.id(), real: real_id(&r)? }, file.config, None)
            }
            EditCommand::Real(RealCommand::Drain { real: r, wait, timeout: t, file }) => {
                let id = real_id(&r)?;
                let settings = RealSettings {
                    state: Some("draining".into()),
                    ..Default::default()
                };
                let wait = wait.then_some((id.address, Duration::from_secs(t)));
                (Edit::RealEdit { service: None, real: id, settings }, file.config, wait)
            }
        })
    })();
    let (e, explicit, wait) = match built {
        Ok(b) => b,
        Err(e) => return fail(e),
    };
    let path = match edits::config_path(socket, timeout, explicit) {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    match edits::edit_and_reload(socket, timeout, &path, &e) {
        Ok(r) if json => print!("{}", admin::format_response(&Response::Reload(r))),
        Ok(r) => print!("{}", admin::render_reload(&r)),
        Err(e) => return fail(e),
    }
    let Some((addr, limit)) = wait else {
        return ExitCode::SUCCESS;
    };
    match edits::wait_drained(socket, timeout, addr, limit) {
        Ok(0) => {
            println!("{addr}: drained, no active connection left");
            ExitCode::SUCCESS
        }
        Ok(n) => fail(format!("{addr}: {n} active connection(s) left after {} s", limit.as_secs())),
        Err(e) => fail(e),
    }
}

/// The commands that edit the file.
pub(crate) enum EditCommand {
    Service(ServiceCommand),
    Real(RealCommand),
    Timeouts {
        edit: tandem_control::config::edit::Edit,
        file: EditFile,
    },
}

