//! Host-side description of virtual services and real servers, and its
//! validation. A configuration is checked as a whole before anything is
//! written to the kernel: an error names the field and the value it got.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use tandem_common::*;

use crate::tables;

/// Transport protocol of a virtual service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Udp,
    Tcp,
}

impl Protocol {
    pub fn number(self) -> u8 {
        match self {
            Protocol::Udp => PROTO_UDP,
            Protocol::Tcp => PROTO_TCP,
        }
    }
}

/// State of a real server, as an operator sets it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RealState {
    #[default]
    Up,
    /// No new flows; existing ones continue.
    Draining,
    /// No new flows; existing ones per the service's `expire_nodest`.
    Down,
}

impl RealState {
    pub fn raw(self) -> u8 {
        match self {
            RealState::Up => REAL_UP,
            RealState::Draining => REAL_DRAINING,
            RealState::Down => REAL_DOWN,
        }
    }
}

/// A real server of a virtual service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RealConfig {
    pub addr: IpAddr,
    /// NAT: destination port on the real server (0 or absent: the virtual port).
    #[serde(default)]
    pub port: u16,
    /// MAC address of the real server (or of the next hop toward it);
    /// all zeros: not known (yet), and the real server gets no traffic.
    pub mac: [u8; 6],
    pub weight: u32,
    #[serde(default)]
    pub state: RealState,
    /// Interface toward it (0: the interface the packet came in on).
    #[serde(default)]
    pub ifindex: u32,
}

/// A virtual service: VIP, port and protocol, with its scheduler,
/// forwarding method and real servers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceConfig {
    pub vip: IpAddr,
    pub port: u16,
    pub proto: Protocol,
    pub scheduler: Scheduler,
    pub forward: Forward,
    /// `FLAG_*` bits of `tandem_common`.
    #[serde(default)]
    pub flags: u16,
    /// Maglev table size (a prime), mh only.
    #[serde(default = "default_mh_size")]
    pub mh_size: u32,
    /// NAT: interface replies to clients leave by (0: the one they came in on).
    #[serde(default)]
    pub client_ifindex: u32,
    /// NAT: MAC address of the gateway toward the clients.
    #[serde(default)]
    pub gateway_mac: [u8; 6],
    pub reals: Vec<RealConfig>,
}

fn default_mh_size() -> u32 {
    MH_DEFAULT_SIZE
}

/// A configuration that cannot be applied; nothing was changed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("service {service}: field `{field}` is invalid: {reason}")]
    Service {
        service: String,
        field: &'static str,
        reason: String,
    },
    #[error(
        "service {service}, real server {index} ({addr}): field `{field}` is invalid: {reason}"
    )]
    Real {
        service: String,
        index: usize,
        addr: IpAddr,
        field: &'static str,
        reason: String,
    },
}

/// Converts an address to the 16-byte form of the maps (IPv4-mapped).
pub fn addr16(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

pub fn family(ip: IpAddr) -> u8 {
    match ip {
        IpAddr::V4(_) => FAMILY_V4,
        IpAddr::V6(_) => FAMILY_V6,
    }
}

fn is_prime(n: u32) -> bool {
    if n < 2 {
        return false;
    }
    let mut d = 2u64;
    while d * d <= n as u64 {
        if n as u64 % d == 0 {
            return false;
        }
        d += 1;
    }
    true
}

impl ServiceConfig {
    /// `udp/198.18.0.100:5060`, the way the service is named in errors.
    pub fn name(&self) -> String {
        let p = match self.proto {
            Protocol::Udp => "udp",
            Protocol::Tcp => "tcp",
        };
        match self.vip {
            IpAddr::V4(a) => format!("{p}/{a}:{}", self.port),
            IpAddr::V6(a) => format!("{p}/[{a}]:{}", self.port),
        }
    }

    pub fn key(&self) -> ServiceKey {
        ServiceKey::new(
            addr16(self.vip),
            self.port,
            self.proto.number(),
            family(self.vip),
        )
    }

    /// Checks everything the kernel program relies on.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let service = self.name();
        let err = |field: &'static str, reason: String| ConfigError::Service {
            service: service.clone(),
            field,
            reason,
        };
        if self.port == 0 {
            return Err(err("port", "0 is not a service port".into()));
        }
        if self.vip.is_unspecified() || self.vip.is_multicast() {
            return Err(err(
                "vip",
                format!("{} cannot be a virtual address", self.vip),
            ));
        }
        if self.reals.len() > MAX_REALS as usize {
            return Err(err(
                "reals",
                format!("{} real servers, at most {MAX_REALS}", self.reals.len()),
            ));
        }
        if self.flags & !FLAGS_KNOWN != 0 {
            return Err(err(
                "flags",
                format!("unknown bits {:#x}", self.flags & !FLAGS_KNOWN),
            ));
        }
        if self.flags & FLAG_ONE_PACKET != 0 && self.proto != Protocol::Udp {
            return Err(err(
                "flags",
                "one-packet scheduling is for UDP services only".into(),
            ));
        }
        if self.scheduler == Scheduler::Mh
            && (!is_prime(self.mh_size) || self.mh_size > MH_MAX_SIZE)
        {
            return Err(err(
                "mh_size",
                format!("{} is not a prime <= {MH_MAX_SIZE}", self.mh_size),
            ));
        }
        for (index, r) in self.reals.iter().enumerate() {
            let rerr = |field: &'static str, reason: String| ConfigError::Real {
                service: service.clone(),
                index,
                addr: r.addr,
                field,
                reason,
            };
            if family(r.addr) != family(self.vip) {
                return Err(rerr("addr", "address family differs from the VIP's".into()));
            }
            if r.addr.is_unspecified() || r.addr.is_multicast() {
                return Err(rerr("addr", format!("{} cannot be a real server", r.addr)));
            }
            // All zeros: not resolved yet, the real server is down.
            if r.mac[0] & 1 != 0 {
                return Err(rerr(
                    "mac",
                    format!("{} is not a unicast MAC", crate::fmt_mac(&r.mac)),
                ));
            }
            if r.weight > 65_535 {
                return Err(rerr("weight", format!("{} exceeds 65535", r.weight)));
            }
            if self.forward == Forward::Dr && r.port != 0 && r.port != self.port {
                return Err(rerr("port", "direct routing cannot change the port".into()));
            }
            if self.reals[..index]
                .iter()
                .any(|o| o.addr == r.addr && o.port == r.port)
            {
                return Err(rerr("addr", "listed twice".into()));
            }
        }
        if self.scheduler == Scheduler::Wrr {
            let len = tables::wrr_sequence(&self.weights()).len();
            if len > WRR_SEQ_MAX as usize {
                return Err(err(
                    "reals",
                    format!(
                        "the wrr cycle has {len} entries, at most {WRR_SEQ_MAX}: use weights with a larger common divisor"
                    ),
                ));
            }
        }
        if self.forward == Forward::Nat && self.gateway_mac == [0; 6] {
            return Err(err(
                "gateway_mac",
                "NAT needs the MAC of the gateway toward the clients".into(),
            ));
        }
        Ok(())
    }

    /// Weights of the reals, 0 for a real server that may take no new flows.
    pub fn weights(&self) -> Vec<u32> {
        self.reals.iter().map(|r| r.weight).collect()
    }

    /// The map value for this service.
    pub fn raw(&self, id: u32, mh_slot: u32) -> Service {
        let table_len = match self.scheduler {
            Scheduler::Wrr => tables::wrr_sequence(&self.weights()).len() as u32,
            Scheduler::Mh => self.mh_size,
            Scheduler::Sh | Scheduler::Dh => SHDH_BUCKETS,
            _ => 0,
        };
        Service {
            key: self.key(),
            id,
            n_reals: self.reals.len() as u32,
            table_len,
            mh_slot,
            client_ifindex: self.client_ifindex,
            scheduler: self.scheduler as u8,
            forward: self.forward as u8,
            flags: self.flags,
            gateway_mac: self.gateway_mac,
            _pad: [0; 2],
        }
    }
}

impl RealConfig {
    pub fn raw(&self) -> RealServer {
        RealServer {
            addr: addr16(self.addr),
            mac: self.mac,
            port: self.port,
            weight: self.weight,
            ifindex: self.ifindex,
            // No MAC yet (the control plane resolves it): no traffic.
            state: if self.mac == [0; 6] { REAL_DOWN } else { self.state.raw() },
            _pad: [0; 7],
        }
    }
}

/// Parses a scheduler by its ipvsadm name.
pub fn parse_scheduler(s: &str) -> Option<Scheduler> {
    Scheduler::ALL.into_iter().find(|x| x.name() == s)
}
