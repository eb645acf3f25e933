//! Where an imported real server's MAC comes from: `--mac RIP=MAC`
//! options, the base file's real server of that address, then the
//! kernel's neighbour table (`/proc/net/arp`, read by the caller).

use std::{
    collections::BTreeSet,
    net::{IpAddr, Ipv4Addr},
};

use tandem_dataplane::{common::Forward, config::Protocol};

use super::{Config, one};

/// One entry of the kernel's neighbour table (`/proc/net/arp`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Neighbour {
    pub address: Ipv4Addr,
    pub mac: [u8; 6],
    pub device: String,
}

/// The complete entries of `/proc/net/arp`'s text (columns IP address, HW
/// type, Flags, HW address, Mask, Device, after a header line): entries
/// with flags 0x0 or MAC 00:00:00:00:00:00 are incomplete and left out, as
/// is any line that does not read.
pub fn parse_neighbours(text: &str) -> Vec<Neighbour> {
    text.lines()
        .filter_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let [address, _hw_type, flags, mac, _mask, device, ..] = cols[..] else {
                return None;
            };
            let address: Ipv4Addr = address.parse().ok()?;
            let flags = u32::from_str_radix(flags.strip_prefix("0x")?, 16).ok()?;
            let mac = parse_unicast_mac(mac)?;
            (flags != 0).then(|| Neighbour {
                address,
                mac,
                device: device.to_string(),
            })
        })
        .collect()
}

/// `02:18:00:00:00:21` when it is a unicast MAC address.
fn parse_unicast_mac(s: &str) -> Option<[u8; 6]> {
    let mac = (s.len() == 17)
        .then(|| tandem_dataplane::parse_mac(s))
        .flatten()?;
    (mac != [0; 6] && mac[0] & 1 == 0).then_some(mac)
}

/// `--mac ADDR=MAC`: a real server's address and MAC.
pub fn parse_mac_option(s: &str) -> Result<(IpAddr, [u8; 6]), String> {
    let (addr, mac) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` is not ADDR=MAC (e.g. 198.18.0.21=02:18:00:00:00:21)"))?;
    let addr: IpAddr = addr
        .trim()
        .parse()
        .map_err(|_| format!("`{addr}` (in `{s}`) is not an IP address"))?;
    Ok((addr, parse_mac_value(mac.trim())?))
}

/// `--gateway-mac MAC`: a unicast MAC address.
pub fn parse_mac_value(s: &str) -> Result<[u8; 6], String> {
    parse_unicast_mac(s)
        .ok_or_else(|| format!("`{s}` is not a unicast MAC address (aa:bb:cc:dd:ee:ff)"))
}

/// Where [`to_file`] finds MAC addresses, in its order of preference.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MacSource {
    /// `--mac ADDR=MAC`, first.
    pub given: Vec<(IpAddr, [u8; 6])>,
    /// `--gateway-mac`: the gateway toward the clients of every NAT service.
    pub gateway: Option<[u8; 6]>,
    /// The kernel's neighbour table ([`parse_neighbours`]), last.
    pub neighbours: Vec<Neighbour>,
}

impl MacSource {
    /// The MAC of real server `address` of service `key`: given, else the
    /// base's (the same service's real first, else every real of that
    /// address agreeing), else the neighbour table's (one MAC on every
    /// device). Ambiguous sources give nothing rather than a guess.
    pub(super) fn real(
        &self,
        address: IpAddr,
        key: (Protocol, IpAddr, u16),
        base: &Config,
    ) -> Option<[u8; 6]> {
        if let Some((_, mac)) = self.given.iter().rev().find(|(a, _)| *a == address) {
            return Some(*mac);
        }
        let same_service = base
            .services
            .iter()
            .filter(|s| (s.protocol, s.vip, s.port) == key)
            .flat_map(|s| &s.reals)
            .find(|r| r.address == address);
        if let Some(m) = same_service.and_then(|r| r.mac) {
            return Some(m);
        }
        let in_base: BTreeSet<[u8; 6]> = base
            .services
            .iter()
            .flat_map(|s| &s.reals)
            .filter(|r| r.address == address)
            .filter_map(|r| r.mac)
            .collect();
        if let Some(mac) = one(&in_base) {
            return Some(mac);
        }
        let IpAddr::V4(v4) = address else {
            return None;
        };
        let seen: BTreeSet<[u8; 6]> = self
            .neighbours
            .iter()
            .filter(|n| n.address == v4)
            .map(|n| n.mac)
            .collect();
        one(&seen)
    }

    /// The gateway MAC (and client interface) of NAT service `key`:
    /// `--gateway-mac`, else the base's same service, else the one
    /// gateway every NAT service of the base uses.
    pub(super) fn gateway(
        &self,
        key: (Protocol, IpAddr, u16),
        base: &Config,
    ) -> Option<([u8; 6], Option<String>)> {
        let same = base
            .services
            .iter()
            .find(|s| (s.protocol, s.vip, s.port) == key && s.gateway_mac.is_some());
        let client_interface = same.and_then(|s| s.client_interface.clone());
        if let Some(mac) = self.gateway {
            return Some((mac, client_interface));
        }
        if let Some(s) = same {
            return s.gateway_mac.map(|m| (m, client_interface));
        }
        let all: BTreeSet<[u8; 6]> = base
            .services
            .iter()
            .filter(|s| s.forward == Forward::Nat)
            .filter_map(|s| s.gateway_mac)
            .collect();
        one(&all).map(|m| (m, None))
    }
}

