//! Neighbours over rtnetlink: asking for the neighbour table
//! (`RTM_GETNEIGH` dump) and reading what a neighbour message says of one
//! address ([`notice`]), for the notifications of `RTMGRP_NEIGH` and the
//! answers of the dump alike. What a change means (a real server's MAC)
//! is the caller's ([`crate::neigh`]).

use std::{io, net::IpAddr};

use netlink_packet_core::{NLM_F_DUMP, NLM_F_REQUEST, Parseable};
use netlink_packet_route::{
    AddressFamily, RouteNetlinkMessage,
    neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourMessage, NeighbourState},
};

use super::socket::{Message, RouteSocket};

/// The multicast group of neighbour notifications (`RTMGRP_NEIGH`).
pub const RTMGRP_NEIGH: u32 = libc::RTMGRP_NEIGH as u32;

/// What one neighbour message says of an address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NeighNotice {
    /// Its link-layer address is known (reachable, stale, delay, probe,
    /// permanent or noarp, with a unicast MAC).
    Known { ifindex: u32, addr: IpAddr, mac: [u8; 6] },
    /// It is not (incomplete, failed, deleted, or no usable MAC).
    Unknown { ifindex: u32, addr: IpAddr },
}

impl NeighNotice {
    pub fn addr(&self) -> IpAddr {
        match *self {
            NeighNotice::Known { addr, .. } | NeighNotice::Unknown { addr, .. } => addr,
        }
    }
}

/// Reads a neighbour message (`RTM_NEWNEIGH` / `RTM_DELNEIGH`); `None` for
/// any other message, or one without a destination address.
pub fn notice(m: &Message<'_>) -> Option<NeighNotice> {
    if m.kind != libc::RTM_NEWNEIGH && m.kind != libc::RTM_DELNEIGH {
        return None;
    }
    let msg = NeighbourMessage::parse(m.payload).ok()?;
    let ifindex = msg.header.ifindex;
    let mut addr = None;
    let mut lladdr = None;
    for a in &msg.attributes {
        match a {
            NeighbourAttribute::Destination(NeighbourAddress::Inet(v4)) => addr = Some(IpAddr::V4(*v4)),
            NeighbourAttribute::Destination(NeighbourAddress::Inet6(v6)) => addr = Some(IpAddr::V6(*v6)),
            NeighbourAttribute::LinkLayerAddress(b) if b.len() == 6 => {
                let mut mac = [0u8; 6];
                mac.copy_from_slice(b);
                lladdr = Some(mac);
            }
            _ => {}
        }
    }
    let addr = addr?;
    let usable = matches!(
        msg.header.state,
        NeighbourState::Reachable
            | NeighbourState::Stale
            | NeighbourState::Delay
            | NeighbourState::Probe
            | NeighbourState::Permanent
            | NeighbourState::Noarp
    );
    Some(match lladdr {
        Some(mac) if m.kind == libc::RTM_NEWNEIGH && usable && mac != [0; 6] && mac[0] & 1 == 0 => {
            NeighNotice::Known { ifindex, addr, mac }
        }
        _ => NeighNotice::Unknown { ifindex, addr },
    })
}

/// Asks for the whole neighbour table of the namespace (IPv4 and IPv6),
/// without waiting: the answers come on `sock` as `RTM_NEWNEIGH` messages
/// with the returned sequence number, then `NLMSG_DONE`.
pub fn request_dump(sock: &mut RouteSocket) -> io::Result<u32> {
    let mut m = NeighbourMessage::default();
    m.header.family = AddressFamily::Unspec;
    sock.send(NLM_F_REQUEST | NLM_F_DUMP, RouteNetlinkMessage::GetNeighbour(m))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::socket::{encode, messages};
    use netlink_packet_route::neighbour::NeighbourHeader;

    fn msg(kind: u16, state: NeighbourState, mac: Option<[u8; 6]>) -> Vec<u8> {
        let mut m = NeighbourMessage::default();
        m.header = NeighbourHeader {
            family: AddressFamily::Inet,
            ifindex: 4,
            state,
            ..Default::default()
        };
        m.attributes.push(NeighbourAttribute::Destination(NeighbourAddress::Inet("198.18.0.21".parse().unwrap())));
        if let Some(mac) = mac {
            m.attributes.push(NeighbourAttribute::LinkLayerAddress(mac.to_vec()));
        }
        let rt = if kind == libc::RTM_NEWNEIGH {
            RouteNetlinkMessage::NewNeighbour(m)
        } else {
            RouteNetlinkMessage::DelNeighbour(m)
        };
        encode(1, 0, rt)
    }

    #[test]
    fn a_reachable_neighbour_is_known_and_a_failed_or_deleted_one_is_not() {
        let addr: IpAddr = "198.18.0.21".parse().unwrap();
        let mac = [2, 0, 0, 0, 0, 0x21];
        let read = |b: &[u8]| messages(b).find_map(|m| notice(&m));
        for state in [NeighbourState::Reachable, NeighbourState::Stale, NeighbourState::Permanent] {
            assert_eq!(read(&msg(libc::RTM_NEWNEIGH, state, Some(mac))), Some(NeighNotice::Known { ifindex: 4, addr, mac }));
        }
        for (kind, state, m) in [
            (libc::RTM_NEWNEIGH, NeighbourState::Failed, Some(mac)),
            (libc::RTM_NEWNEIGH, NeighbourState::Incomplete, None),
            (libc::RTM_NEWNEIGH, NeighbourState::Reachable, Some([1, 0, 0x5e, 0, 0, 1])),
            (libc::RTM_DELNEIGH, NeighbourState::Stale, Some(mac)),
        ] {
            assert_eq!(read(&msg(kind, state, m)), Some(NeighNotice::Unknown { ifindex: 4, addr }), "{kind} {state:?}");
        }
    }
}
