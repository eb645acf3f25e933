//! IPv4 addresses of an interface over rtnetlink: `RTM_NEWADDR` (add),
//! `RTM_DELADDR` (remove) and the `RTM_GETADDR` dump (list).
//!
//! The messages are `netlink-packet-route`'s [`AddressMessage`]s; each call
//! is one request on a [`RouteSocket`] and returns the kernel's errno as it
//! came (`EEXIST`, `EADDRNOTAVAIL`, …). Naming the interface and the
//! operation in an error, and deciding that an address already there is no
//! failure, are the caller's (`crate::vip`).

use std::{
    io,
    net::{IpAddr, Ipv4Addr},
};

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL, NlasIterator, Parseable};
use netlink_packet_route::{
    AddressFamily, RouteNetlinkMessage,
    address::{AddressAttribute, AddressHeader, AddressMessage, AddressScope},
};

use super::socket::RouteSocket;

/// An IPv4 address message for the interface `index`: header, `IFA_LOCAL`,
/// and `IFA_ADDRESS` when `with_address`.
fn message(index: u32, addr: Ipv4Addr, prefix_len: u8, with_address: bool) -> AddressMessage {
    let mut m = AddressMessage::default();
    m.header = AddressHeader {
        family: AddressFamily::Inet,
        prefix_len,
        scope: AddressScope::Universe,
        index,
        ..AddressHeader::default()
    };
    m.attributes.push(AddressAttribute::Local(IpAddr::V4(addr)));
    if with_address {
        m.attributes
            .push(AddressAttribute::Address(IpAddr::V4(addr)));
    }
    m
}

/// The `RTM_NEWADDR` that adds `addr/prefix_len` (`IFA_LOCAL` and
/// `IFA_ADDRESS`); with `NLM_F_CREATE | NLM_F_EXCL`, so that an address
/// already there fails with `EEXIST`.
pub fn add_request(index: u32, addr: Ipv4Addr, prefix_len: u8) -> RouteNetlinkMessage {
    RouteNetlinkMessage::NewAddress(message(index, addr, prefix_len, true))
}

/// The `RTM_DELADDR` that removes `addr` whatever its prefix length:
/// `IFA_LOCAL` only, so that the kernel matches the address alone.
pub fn remove_request(index: u32, addr: Ipv4Addr) -> RouteNetlinkMessage {
    RouteNetlinkMessage::DelAddress(message(index, addr, 32, false))
}

/// Adds `addr/prefix_len` to the interface `index`; `EEXIST` if it is there.
pub fn add(sock: &mut RouteSocket, index: u32, addr: Ipv4Addr, prefix_len: u8) -> io::Result<()> {
    sock.request(
        NLM_F_CREATE | NLM_F_EXCL,
        add_request(index, addr, prefix_len),
    )
}

/// Removes `addr` from the interface `index`; `EADDRNOTAVAIL` if it is not
/// there.
pub fn remove(sock: &mut RouteSocket, index: u32, addr: Ipv4Addr) -> io::Result<()> {
    sock.request(0, remove_request(index, addr))
}

/// The IPv4 addresses of the interface `index` with their prefix lengths.
pub fn list(sock: &mut RouteSocket, index: u32) -> io::Result<Vec<(Ipv4Addr, u8)>> {
    let mut request = AddressMessage::default();
    request.header.family = AddressFamily::Inet;
    let mut out = Vec::new();
    sock.dump(RouteNetlinkMessage::GetAddress(request), |m| {
        if m.kind == libc::RTM_NEWADDR
            && let Some(entry) = ipv4_on(m.payload, index)
        {
            out.push(entry);
        }
    })?;
    Ok(out)
}

/// An `RTM_NEWADDR` payload → (address, prefix length) if it is IPv4 on
/// the interface `index`. The address is `IFA_LOCAL`, else `IFA_ADDRESS`
/// (a point-to-point link's peer has both); attributes this module does
/// not read, or cannot parse, are skipped.
pub fn ipv4_on(payload: &[u8], index: u32) -> Option<(Ipv4Addr, u8)> {
    let header = AddressHeader::parse(payload).ok()?;
    if header.family != AddressFamily::Inet || header.index != index {
        return None;
    }
    let attrs = payload.get(8..)?;
    let (mut local, mut address) = (None, None);
    for nla in NlasIterator::new(attrs).map_while(Result::ok) {
        match AddressAttribute::parse(&nla) {
            Ok(AddressAttribute::Local(IpAddr::V4(a))) => local = Some(a),
            Ok(AddressAttribute::Address(IpAddr::V4(a))) => address = Some(a),
            _ => {}
        }
    }
    Some((local.or(address)?, header.prefix_len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::socket::{encode, messages};

    #[test]
    fn add_request_layout() {
        let m = encode(9, 0x605, add_request(7, Ipv4Addr::new(198, 18, 0, 100), 32));
        assert_eq!(m.len(), 16 + 8 + 8 + 8);
        assert_eq!(u32::from_ne_bytes([m[0], m[1], m[2], m[3]]), 40);
        assert_eq!(u16::from_ne_bytes([m[4], m[5]]), libc::RTM_NEWADDR);
        assert_eq!(u16::from_ne_bytes([m[6], m[7]]), 0x605);
        assert_eq!(u32::from_ne_bytes([m[8], m[9], m[10], m[11]]), 9);
        assert_eq!(
            &m[16..20],
            &[libc::AF_INET as u8, 32, 0, libc::RT_SCOPE_UNIVERSE]
        );
        assert_eq!(u32::from_ne_bytes([m[20], m[21], m[22], m[23]]), 7);
        assert_eq!(u16::from_ne_bytes([m[24], m[25]]), 8);
        assert_eq!(u16::from_ne_bytes([m[26], m[27]]), libc::IFA_LOCAL);
        assert_eq!(&m[28..32], &[198, 18, 0, 100]);
        assert_eq!(u16::from_ne_bytes([m[34], m[35]]), libc::IFA_ADDRESS);
        assert_eq!(&m[36..40], &[198, 18, 0, 100]);
        let parsed: Vec<_> = messages(&m).collect();
        assert_eq!(parsed.len(), 1);
        assert_eq!(
            ipv4_on(parsed[0].payload, 7),
            Some((Ipv4Addr::new(198, 18, 0, 100), 32))
        );
        assert_eq!(ipv4_on(parsed[0].payload, 8), None);
        assert_eq!(ipv4_on(&parsed[0].payload[..4], 7), None);
    }

    #[test]
    fn remove_request_has_the_local_address_only() {
        let m = encode(1, 0x5, remove_request(3, Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(m.len(), 16 + 8 + 8);
        assert_eq!(u16::from_ne_bytes([m[4], m[5]]), libc::RTM_DELADDR);
        assert_eq!(&m[16..20], &[libc::AF_INET as u8, 32, 0, 0]);
        assert_eq!(u16::from_ne_bytes([m[26], m[27]]), libc::IFA_LOCAL);
        assert_eq!(&m[28..32], &[10, 0, 0, 1]);
    }

    #[test]
    fn address_falls_back_to_ifa_address() {
        let mut msg = message(2, Ipv4Addr::new(192, 0, 2, 1), 24, true);
        msg.attributes.remove(0);
        let m = encode(1, 0, RouteNetlinkMessage::NewAddress(msg));
        assert_eq!(
            ipv4_on(&m[16..], 2),
            Some((Ipv4Addr::new(192, 0, 2, 1), 24))
        );
    }
}
