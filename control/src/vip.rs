//! Taking and releasing a virtual IP address, fast.
//!
//! This module owns the two system calls a takeover is made of: adding (or
//! removing) an IPv4 address on an interface over rtnetlink
//! ([`AddressSocket`], on [`crate::net`]), and announcing it with gratuitous
//! ARP through a raw `AF_PACKET` socket bound to the interface
//! ([`GarpSender`], through `nix`). Both sockets are opened once and kept,
//! so a takeover costs a netlink round trip and one `sendto` per ARP:
//! microseconds, not the milliseconds of forking `ip`. [`Vip`] bundles them
//! for one address.
//!
//! Sockets belong to the network namespace of the thread that opens them.
//! Adding an address that is there, or removing one that is not, succeeds
//! (the [`Change`] says which). The decisions of a takeover's announcement
//! (when the next GARP is due, what a failed one becomes) are the sans-IO
//! [`announce::Announcement`]'s; each [`GarpSender`] carries one for its
//! VIP and only executes it ([`GarpSender::announce_due`]). Nothing here
//! keeps a timer: the daemon's timer calls at the announcement's
//! `poll_timeout`, except in the blocking [`GarpSender::send_burst`] meant
//! for tests and tools.

use std::{
    io, mem,
    net::Ipv4Addr,
    os::fd::{AsRawFd, OwnedFd},
    time::{Duration, Instant},
};

use nix::sys::socket::{self, AddressFamily, LinkAddr, MsgFlags, SockFlag, SockType, SockaddrLike};
use pnet_packet::{
    MutablePacket,
    arp::{ArpHardwareTypes, ArpOperations, MutableArpPacket},
    ethernet::{EtherTypes, MutableEthernetPacket},
};

use crate::net::{self, RouteSocket};

pub mod announce;

use announce::{Announcement, Outcome};

/// Length of a gratuitous ARP frame on the wire (Ethernet minimum, without FCS).
pub const GARP_FRAME_LEN: usize = 60;

/// A failure of the address or ARP machinery, naming the interface, the
/// address and the errno.
#[derive(Debug, thiserror::Error)]
pub enum VipError {
    #[error("interface `{name}`: {source}")]
    NoInterface { name: String, source: io::Error },
    #[error("{op} {addr}/{prefix_len} on `{iface}`: {source}")]
    Address {
        op: &'static str,
        iface: String,
        addr: Ipv4Addr,
        prefix_len: u8,
        source: io::Error,
    },
    #[error("listing the addresses of `{iface}`: {source}")]
    List { iface: String, source: io::Error },
    #[error("rtnetlink socket: {0}")]
    Netlink(io::Error),
    #[error("interface `{iface}`: {what}: {source}")]
    Packet {
        iface: String,
        what: &'static str,
        source: io::Error,
    },
    #[error("interface `{iface}` is not Ethernet (hardware type {hw_type})")]
    NotEthernet { iface: String, hw_type: u16 },
    #[error("gratuitous ARP for {vip} on `{iface}`: {source}")]
    Send {
        iface: String,
        vip: Ipv4Addr,
        source: io::Error,
    },
}

impl VipError {
    /// The errno of the failed system call, if it had one (0 if not).
    pub fn errno(&self) -> i32 {
        let source = match self {
            VipError::NoInterface { source, .. }
            | VipError::Address { source, .. }
            | VipError::List { source, .. }
            | VipError::Netlink(source)
            | VipError::Packet { source, .. }
            | VipError::Send { source, .. } => source,
            VipError::NotEthernet { .. } => return libc::ENODEV,
        };
        source.raw_os_error().unwrap_or(0)
    }
}

/// A network interface by name and index, in the caller's namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    pub index: u32,
}

impl Interface {
    /// Looks the interface up in the calling thread's network namespace.
    pub fn by_name(name: &str) -> Result<Interface, VipError> {
        match nix::net::if_::if_nametoindex(name) {
            Ok(index) => Ok(Interface {
                name: name.to_string(),
                index,
            }),
            Err(e) => Err(VipError::NoInterface {
                name: name.to_string(),
                source: io::Error::from_raw_os_error(e as i32),
            }),
        }
    }
}

/// What an idempotent address operation did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    Added,
    /// The address was there already.
    AlreadyPresent,
    Removed,
    /// The address was not there.
    AlreadyAbsent,
}

/// How long a request waits for the kernel's answer before it fails.
const NETLINK_TIMEOUT: Duration = Duration::from_secs(2);

/// An rtnetlink (`NETLINK_ROUTE`) socket for IPv4 address changes; every
/// request waits for the kernel's acknowledgement (at most two seconds).
pub struct AddressSocket {
    sock: RouteSocket,
}

impl AddressSocket {
    /// Opens the socket in the calling thread's network namespace.
    pub fn open() -> Result<AddressSocket, VipError> {
        let sock = RouteSocket::open(NETLINK_TIMEOUT).map_err(VipError::Netlink)?;
        Ok(AddressSocket { sock })
    }

    /// Adds `addr/prefix_len` to the interface; [`Change::AlreadyPresent`]
    /// if it is there.
    pub fn add(
        &mut self,
        iface: &Interface,
        addr: Ipv4Addr,
        prefix_len: u8,
    ) -> Result<Change, VipError> {
        match net::addr::add(&mut self.sock, iface.index, addr, prefix_len) {
            Ok(()) => Ok(Change::Added),
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(Change::AlreadyPresent),
            Err(source) => Err(VipError::Address {
                op: "adding",
                iface: iface.name.clone(),
                addr,
                prefix_len,
                source,
            }),
        }
    }

    /// Removes `addr` from the interface, whatever its prefix length;
    /// [`Change::AlreadyAbsent`] if it is not there.
    pub fn remove(&mut self, iface: &Interface, addr: Ipv4Addr) -> Result<Change, VipError> {
        match net::addr::remove(&mut self.sock, iface.index, addr) {
            Ok(()) => Ok(Change::Removed),
            Err(e) if e.raw_os_error() == Some(libc::EADDRNOTAVAIL) => Ok(Change::AlreadyAbsent),
            Err(source) => Err(VipError::Address {
                op: "removing",
                iface: iface.name.clone(),
                addr,
                prefix_len: 32,
                source,
            }),
        }
    }

    /// The IPv4 addresses of the interface with their prefix lengths (an
    /// rtnetlink dump).
    pub fn list(&mut self, iface: &Interface) -> Result<Vec<(Ipv4Addr, u8)>, VipError> {
        net::addr::list(&mut self.sock, iface.index).map_err(|source| VipError::List {
            iface: iface.name.clone(),
            source,
        })
    }

    /// Whether `addr` is on the interface.
    pub fn contains(&mut self, iface: &Interface, addr: Ipv4Addr) -> Result<bool, VipError> {
        Ok(self.list(iface)?.iter().any(|(a, _)| *a == addr))
    }
}

/// The gratuitous ARP announcing `vip` at `mac`: an ARP request to the
/// broadcast address with sender and target protocol address both `vip`
/// (RFC 5227 §3), padded to the Ethernet minimum.
pub fn garp_frame(mac: [u8; 6], vip: Ipv4Addr) -> [u8; GARP_FRAME_LEN] {
    let mut frame = [0u8; GARP_FRAME_LEN];
    let mut arp_buf = [0u8; 28];
    if let Some(mut arp) = MutableArpPacket::new(&mut arp_buf) {
        arp.set_hardware_type(ArpHardwareTypes::Ethernet);
        arp.set_protocol_type(EtherTypes::Ipv4);
        arp.set_hw_addr_len(6);
        arp.set_proto_addr_len(4);
        arp.set_operation(ArpOperations::Request);
        arp.set_sender_hw_addr(mac.into());
        arp.set_sender_proto_addr(vip);
        arp.set_target_hw_addr([0u8; 6].into());
        arp.set_target_proto_addr(vip);
    }
    if let Some(mut eth) = MutableEthernetPacket::new(&mut frame) {
        eth.set_destination([0xff; 6].into());
        eth.set_source(mac.into());
        eth.set_ethertype(EtherTypes::Arp);
        eth.payload_mut()[..28].copy_from_slice(&arp_buf);
    }
    frame
}

/// A raw `AF_PACKET` socket bound to one interface, holding the ready-made
/// gratuitous ARP for one address and that address's [`Announcement`].
pub struct GarpSender {
    fd: OwnedFd,
    iface: Interface,
    vip: Ipv4Addr,
    mac: [u8; 6],
    frame: [u8; GARP_FRAME_LEN],
    /// Where a GARP goes: the broadcast address, as an ARP frame.
    broadcast: LinkAddr,
    announcement: Announcement,
}

impl GarpSender {
    /// Opens the socket (it receives nothing) and reads the interface's
    /// MAC address. Needs CAP_NET_RAW.
    pub fn open(iface: &Interface, vip: Ipv4Addr) -> Result<GarpSender, VipError> {
        let perr = |what: &'static str| {
            move |source: io::Error| VipError::Packet {
                iface: iface.name.clone(),
                what,
                source,
            }
        };
        // Protocol 0: the socket is send-only, nothing queues up on it.
        let fd = socket::socket(
            AddressFamily::Packet,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            None,
        )
        .map_err(io::Error::from)
        .map_err(perr("opening an AF_PACKET socket"))?;
        ll_addr(iface.index, 0, None)
            .and_then(|local| Ok(socket::bind(fd.as_raw_fd(), &local)?))
            .map_err(perr("binding the AF_PACKET socket"))?;
        let (hw_type, mac) =
            hardware_address(&iface.name).map_err(perr("reading its MAC address"))?;
        if hw_type != libc::ARPHRD_ETHER {
            return Err(VipError::NotEthernet {
                iface: iface.name.clone(),
                hw_type,
            });
        }
        Ok(GarpSender {
            fd,
            iface: iface.clone(),
            vip,
            mac,
            frame: garp_frame(mac, vip),
            broadcast: ll_addr(iface.index, libc::ETH_P_ARP as u16, Some([0xff; 6]))
                .map_err(perr("addressing the broadcast"))?,
            announcement: Announcement::new(),
        })
    }

    fn send_error(&self, source: io::Error) -> VipError {
        VipError::Send {
            iface: self.iface.name.clone(),
            vip: self.vip,
            source,
        }
    }

    fn send_to(&self, frame: &[u8], to: &LinkAddr) -> Result<(), VipError> {
        socket::sendto(self.fd.as_raw_fd(), frame, to, MsgFlags::empty())
            .map(drop)
            .map_err(|e| self.send_error(e.into()))
    }

    /// Sends one gratuitous ARP.
    pub fn send_garp(&self) -> Result<(), VipError> {
        self.send_to(&self.frame, &self.broadcast)
    }

    /// Sends any ready-made Ethernet frame out of the interface (the SIP
    /// OPTIONS probe to a DR real server, addressed to its MAC).
    pub fn send_frame(&self, frame: &[u8]) -> Result<(), VipError> {
        // The destination MAC is the frame's first six bytes.
        let mut dest = [0u8; 6];
        let n = frame.len().min(6);
        dest[..n].copy_from_slice(&frame[..n]);
        let to = ll_addr(self.iface.index, 0, Some(dest)).map_err(|e| self.send_error(e))?;
        self.send_to(frame, &to)
    }

    /// Sends `count` gratuitous ARPs `interval` apart, blocking (tests and
    /// tools; the daemon spaces them with its own timer).
    pub fn send_burst(&self, count: u32, interval: Duration) -> Result<(), VipError> {
        for i in 0..count {
            if i > 0 && !interval.is_zero() {
                std::thread::sleep(interval);
            }
            self.send_garp()?;
        }
        Ok(())
    }

    /// Sends the GARPs the announcement has due at `now` and hands it
    /// their outcomes (a burst with no interval sends all of its GARPs
    /// here; the loop ends because each outcome consumes a GARP or
    /// schedules its re-send later). The dataplane update, if due, is the
    /// caller's to make first ([`Announcement::poll_own`]).
    pub fn announce_due(&mut self, now: Instant) {
        while self.announcement.poll_send(now) {
            let outcome: Outcome = self.send_garp().map_err(|e| e.errno());
            self.announcement.handle_sent(outcome, now);
        }
    }

    pub fn announcement(&self) -> &Announcement {
        &self.announcement
    }

    pub fn announcement_mut(&mut self) -> &mut Announcement {
        &mut self.announcement
    }

    /// The interface's MAC address, as announced.
    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    /// The frame sent by [`GarpSender::send_garp`].
    pub fn frame(&self) -> &[u8; GARP_FRAME_LEN] {
        &self.frame
    }

    pub fn interface(&self) -> &Interface {
        &self.iface
    }
}

/// The interface's ARP hardware type and address, as `getifaddrs(3)` lists
/// its link (in the calling thread's network namespace).
fn hardware_address(name: &str) -> io::Result<(u16, [u8; 6])> {
    nix::ifaddrs::getifaddrs()?
        .filter(|a| a.interface_name == name)
        .find_map(|a| a.address.and_then(|s| s.as_link_addr().copied()))
        .and_then(|link| Some((link.hatype(), link.addr()?)))
        .ok_or_else(|| io::Error::from_raw_os_error(libc::ENODEV))
}

/// A link-layer address on the interface `ifindex`: `protocol` is the
/// ethertype (host order, 0 for none), `dest` the destination MAC of a send.
fn ll_addr(ifindex: u32, protocol: u16, dest: Option<[u8; 6]>) -> io::Result<LinkAddr> {
    let mut sll_addr = [0u8; 8];
    if let Some(mac) = dest {
        sll_addr[..6].copy_from_slice(&mac);
    }
    let sa = libc::sockaddr_ll {
        sll_family: libc::AF_PACKET as u16,
        sll_protocol: protocol.to_be(),
        sll_ifindex: ifindex as i32,
        sll_hatype: 0,
        sll_pkttype: 0,
        sll_halen: if dest.is_some() { 6 } else { 0 },
        sll_addr,
    };
    let len = mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    // SAFETY: `sa` is a whole, initialised sockaddr_ll of family AF_PACKET
    // and `len` is its size; from_raw copies it.
    unsafe { LinkAddr::from_raw((&raw const sa).cast(), Some(len)) }
        .ok_or_else(|| io::Error::other("not a sockaddr_ll"))
}

/// One virtual address on one interface, with its sockets open: taking it
/// is [`Vip::take`] (address + one GARP), releasing it [`Vip::release`].
pub struct Vip {
    iface: Interface,
    addr: Ipv4Addr,
    prefix_len: u8,
    netlink: AddressSocket,
    garp: GarpSender,
}

impl Vip {
    /// Opens the sockets for `addr` (as a /32) on `interface`, in the
    /// calling thread's network namespace. Changes nothing.
    pub fn open(interface: &str, addr: Ipv4Addr) -> Result<Vip, VipError> {
        let iface = Interface::by_name(interface)?;
        Ok(Vip {
            netlink: AddressSocket::open()?,
            garp: GarpSender::open(&iface, addr)?,
            iface,
            addr,
            prefix_len: 32,
        })
    }

    /// Adds the address and sends the first gratuitous ARP; the rest of the
    /// burst is the caller's to send with [`Vip::send_garp`].
    pub fn take(&mut self) -> Result<Change, VipError> {
        let change = self.netlink.add(&self.iface, self.addr, self.prefix_len)?;
        self.garp.send_garp()?;
        Ok(change)
    }

    /// Removes the address.
    pub fn release(&mut self) -> Result<Change, VipError> {
        self.netlink.remove(&self.iface, self.addr)
    }

    pub fn send_garp(&self) -> Result<(), VipError> {
        self.garp.send_garp()
    }

    /// Whether the address is on the interface now.
    pub fn is_present(&mut self) -> Result<bool, VipError> {
        self.netlink.contains(&self.iface, self.addr)
    }

    pub fn address(&self) -> Ipv4Addr {
        self.addr
    }

    pub fn interface(&self) -> &Interface {
        &self.iface
    }

    pub fn garp(&self) -> &GarpSender {
        &self.garp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garp_frame_bytes() {
        let f = garp_frame([0x02, 0x18, 0, 0, 0, 0x0b], Ipv4Addr::new(198, 18, 0, 100));
        #[rustfmt::skip]
        let want: [u8; 42] = [
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // broadcast
            0x02, 0x18, 0x00, 0x00, 0x00, 0x0b, // source: the interface
            0x08, 0x06,                         // ARP
            0x00, 0x01, 0x08, 0x00, 6, 4,       // Ethernet, IPv4
            0x00, 0x01,                         // request
            0x02, 0x18, 0x00, 0x00, 0x00, 0x0b, // sender MAC
            198, 18, 0, 100,                    // sender IP: the VIP
            0, 0, 0, 0, 0, 0,                   // target MAC: unknown
            198, 18, 0, 100,                    // target IP: the VIP
        ];
        assert_eq!(&f[..42], &want[..]);
        assert!(f[42..].iter().all(|&b| b == 0));
    }

    #[test]
    fn missing_interface_is_named() {
        let e = Interface::by_name("tdm-nosuch0").expect_err("no such interface");
        assert!(
            e.to_string().starts_with("interface `tdm-nosuch0`: "),
            "{e}"
        );
    }
}
