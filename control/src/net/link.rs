//! Links over rtnetlink: setting one administratively up or down
//! (`RTM_NEWLINK` changing `IFF_UP` only), asking for every link
//! (`RTM_GETLINK` dump), and reading what a link message says of a link's
//! state ([`notice`]), for the notifications of `RTMGRP_LINK` and the
//! answers of the dump alike.
//!
//! Only the `ifinfomsg` header of a link message is read (its index and
//! flags): the attributes, which grow with every kernel, are never parsed,
//! so that no attribute of a new kernel can make a link's state unreadable.
//! What a state change means (a fault, a takeover) is the caller's.

use std::io;

use netlink_packet_core::{NLM_F_DUMP, NLM_F_REQUEST};
use netlink_packet_route::{
    AddressFamily, RouteNetlinkMessage,
    link::{LinkFlags, LinkHeader, LinkMessage},
};

use super::socket::{Message, RouteSocket};

/// The multicast group of link notifications (`RTMGRP_LINK`).
pub const RTMGRP_LINK: u32 = libc::RTMGRP_LINK as u32;

/// What one link message says of a link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkNotice {
    /// `RTM_NEWLINK`: the link exists; `up` when it is administratively up
    /// (`IFF_UP`) and has a carrier (`IFF_LOWER_UP`).
    Present { index: u32, up: bool },
    /// `RTM_DELLINK`: the link is gone.
    Gone { index: u32 },
}

impl LinkNotice {
    pub fn index(&self) -> u32 {
        match *self {
            LinkNotice::Present { index, .. } | LinkNotice::Gone { index } => index,
        }
    }

    /// Up with a carrier; a link that is gone is not.
    pub fn is_up(&self) -> bool {
        matches!(self, LinkNotice::Present { up: true, .. })
    }
}

/// Reads a link message (`RTM_NEWLINK` / `RTM_DELLINK` with a whole
/// `ifinfomsg`); `None` for any other message.
pub fn notice(m: &Message<'_>) -> Option<LinkNotice> {
    if m.kind != libc::RTM_NEWLINK && m.kind != libc::RTM_DELLINK {
        return None;
    }
    let header = LinkHeader::parse(m.payload).ok()?;
    let index = header.index;
    Some(if m.kind == libc::RTM_NEWLINK {
        let up = header.flags.contains(LinkFlags::Up | LinkFlags::LowerUp);
        LinkNotice::Present { index, up }
    } else {
        LinkNotice::Gone { index }
    })
}

/// The `RTM_NEWLINK` that sets the link `index` up or down: `IFF_UP` in
/// the change mask, nothing else.
pub fn set_up_request(index: u32, up: bool) -> RouteNetlinkMessage {
    let mut m = LinkMessage::default();
    m.header = LinkHeader {
        interface_family: AddressFamily::Unspec,
        index,
        flags: if up {
            LinkFlags::Up
        } else {
            LinkFlags::empty()
        },
        change_mask: LinkFlags::Up,
        ..LinkHeader::default()
    };
    RouteNetlinkMessage::NewLink(m)
}

/// Sets the link `index` administratively up or down and waits for the
/// kernel's acknowledgement.
pub fn set_up(sock: &mut RouteSocket, index: u32, up: bool) -> io::Result<()> {
    sock.request(0, set_up_request(index, up))
}

/// Asks for every link of the namespace, without waiting: the answers come
/// on `sock` as `RTM_NEWLINK` messages with the returned sequence number,
/// then `NLMSG_DONE`. The kernel paces a dump to its reader, so it cannot
/// overflow the receive queue.
pub fn request_dump(sock: &mut RouteSocket) -> io::Result<u32> {
    let mut m = LinkMessage::default();
    m.header.interface_family = AddressFamily::Unspec;
    sock.send(NLM_F_REQUEST | NLM_F_DUMP, RouteNetlinkMessage::GetLink(m))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::socket::{encode, messages};

    #[test]
    fn set_up_request_layout() {
        let m = encode(2, 0x5, set_up_request(7, true));
        assert_eq!(m.len(), 32);
        assert_eq!(u32::from_ne_bytes([m[0], m[1], m[2], m[3]]), 32);
        assert_eq!(u16::from_ne_bytes([m[4], m[5]]), libc::RTM_NEWLINK);
        assert_eq!(u16::from_ne_bytes([m[6], m[7]]), 0x5);
        // ifinfomsg: family, pad, type, index, flags, change.
        assert_eq!(&m[16..20], &[0, 0, 0, 0]);
        assert_eq!(i32::from_ne_bytes([m[20], m[21], m[22], m[23]]), 7);
        assert_eq!(
            u32::from_ne_bytes([m[24], m[25], m[26], m[27]]),
            libc::IFF_UP as u32
        );
        assert_eq!(
            u32::from_ne_bytes([m[28], m[29], m[30], m[31]]),
            libc::IFF_UP as u32
        );
        let down = encode(3, 0x5, set_up_request(7, false));
        assert_eq!(
            u32::from_ne_bytes([down[24], down[25], down[26], down[27]]),
            0
        );
        assert_eq!(
            u32::from_ne_bytes([down[28], down[29], down[30], down[31]]),
            libc::IFF_UP as u32
        );
    }

    #[test]
    fn notices_need_up_and_a_carrier() {
        let link = |flags: LinkFlags| {
            let mut m = LinkMessage::default();
            m.header.index = 4;
            m.header.flags = flags;
            RouteNetlinkMessage::NewLink(m)
        };
        let read = |bytes: &[u8]| messages(bytes).next().and_then(|m| notice(&m));
        let up = encode(
            0,
            0,
            link(LinkFlags::Up | LinkFlags::LowerUp | LinkFlags::Running),
        );
        assert_eq!(read(&up), Some(LinkNotice::Present { index: 4, up: true }));
        let no_carrier = encode(0, 0, link(LinkFlags::Up));
        assert_eq!(
            read(&no_carrier),
            Some(LinkNotice::Present {
                index: 4,
                up: false
            })
        );
        let admin_down = encode(0, 0, link(LinkFlags::LowerUp));
        assert!(!read(&admin_down).is_some_and(|n| n.is_up()));
        let mut gone = LinkMessage::default();
        gone.header.index = 4;
        gone.header.flags = LinkFlags::Up | LinkFlags::LowerUp;
        let gone = encode(0, 0, RouteNetlinkMessage::DelLink(gone));
        assert_eq!(read(&gone), Some(LinkNotice::Gone { index: 4 }));
        assert!(!read(&gone).is_some_and(|n| n.is_up()));
        // A truncated ifinfomsg says nothing.
        let mut short = up[..24].to_vec();
        short[0..4].copy_from_slice(&24u32.to_ne_bytes());
        assert_eq!(read(&short), None);
    }
}
