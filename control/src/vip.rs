//! Taking and releasing a virtual IP address, fast.
//!
//! This module owns the two system calls a takeover is made of: adding (or
//! removing) an IPv4 address on an interface through a raw rtnetlink socket
//! ([`AddressSocket`]), and announcing it with gratuitous ARP through a raw
//! `AF_PACKET` socket bound to the interface ([`GarpSender`]). Both sockets
//! are opened once and kept, so a takeover costs a netlink round trip and
//! one `sendto` per ARP: microseconds, not the milliseconds of forking `ip`.
//! [`Vip`] bundles them for one address.
//!
//! Sockets belong to the network namespace of the thread that opens them.
//! Adding an address that is there, or removing one that is not, succeeds
//! (the [`Change`] says which). This module decides nothing and keeps no
//! timers: the spacing of a GARP burst is the caller's timer, except in the
//! blocking [`GarpSender::send_burst`] meant for tests and tools.

use std::{
    io, mem,
    net::Ipv4Addr,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    time::Duration,
};

use pnet_packet::{
    MutablePacket,
    arp::{ArpHardwareTypes, ArpOperations, MutableArpPacket},
    ethernet::{EtherTypes, MutableEthernetPacket},
};

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

// rtnetlink layouts (linux/netlink.h, linux/if_addr.h).
const NLMSG_HDRLEN: usize = 16;
const IFADDRMSG_LEN: usize = 8;
const RTA_HDRLEN: usize = 4;
const NETLINK_TIMEOUT: Duration = Duration::from_secs(2);

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

fn last_os_error() -> io::Error {
    io::Error::last_os_error()
}

/// Sets a receive timeout so that a lost reply cannot hang the caller.
fn set_rcvtimeo(fd: &OwnedFd, t: Duration) -> io::Result<()> {
    let tv = libc::timeval {
        tv_sec: t.as_secs() as libc::time_t,
        tv_usec: t.subsec_micros() as libc::suseconds_t,
    };
    // SAFETY: fd is open; tv is a valid timeval of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            &tv as *const _ as *const libc::c_void,
            mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if rc < 0 { Err(last_os_error()) } else { Ok(()) }
}

/// An rtnetlink (`NETLINK_ROUTE`) socket for IPv4 address changes; every
/// request waits for the kernel's acknowledgement.
pub struct AddressSocket {
    fd: OwnedFd,
    seq: u32,
    buf: Vec<u8>,
}

impl AddressSocket {
    /// Opens the socket in the calling thread's network namespace.
    pub fn open() -> Result<AddressSocket, VipError> {
        // SAFETY: plain socket(2); the result is checked before use.
        let raw = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        if raw < 0 {
            return Err(VipError::Netlink(last_os_error()));
        }
        // SAFETY: raw is a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: an all-zero sockaddr_nl is valid (pid 0: the kernel assigns one).
        let mut sa: libc::sockaddr_nl = unsafe { mem::zeroed() };
        sa.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: sa is a valid sockaddr_nl of the size passed.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                &sa as *const _ as *const libc::sockaddr,
                mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(VipError::Netlink(last_os_error()));
        }
        set_rcvtimeo(&fd, NETLINK_TIMEOUT).map_err(VipError::Netlink)?;
        Ok(AddressSocket {
            fd,
            seq: 0,
            buf: vec![0; 32 * 1024],
        })
    }

    /// Adds `addr/prefix_len` to the interface; [`Change::AlreadyPresent`]
    /// if it is there.
    pub fn add(
        &mut self,
        iface: &Interface,
        addr: Ipv4Addr,
        prefix_len: u8,
    ) -> Result<Change, VipError> {
        let flags = libc::NLM_F_REQUEST | libc::NLM_F_ACK | libc::NLM_F_CREATE | libc::NLM_F_EXCL;
        let msg = self.addr_request(
            libc::RTM_NEWADDR,
            flags as u16,
            iface.index,
            addr,
            prefix_len,
            true,
        );
        match self.transact(&msg) {
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
        let flags = libc::NLM_F_REQUEST | libc::NLM_F_ACK;
        // IFA_LOCAL only: the kernel then matches the address alone, not the prefix.
        let msg = self.addr_request(
            libc::RTM_DELADDR,
            flags as u16,
            iface.index,
            addr,
            32,
            false,
        );
        match self.transact(&msg) {
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
        self.dump(iface.index).map_err(|source| VipError::List {
            iface: iface.name.clone(),
            source,
        })
    }

    /// Whether `addr` is on the interface.
    pub fn contains(&mut self, iface: &Interface, addr: Ipv4Addr) -> Result<bool, VipError> {
        Ok(self.list(iface)?.iter().any(|(a, _)| *a == addr))
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    /// nlmsghdr + ifaddrmsg + IFA_LOCAL (+ IFA_ADDRESS).
    fn addr_request(
        &mut self,
        kind: u16,
        flags: u16,
        index: u32,
        addr: Ipv4Addr,
        prefix_len: u8,
        with_address: bool,
    ) -> Vec<u8> {
        let seq = self.next_seq();
        let mut m = Vec::with_capacity(NLMSG_HDRLEN + IFADDRMSG_LEN + 16);
        m.extend_from_slice(&0u32.to_ne_bytes()); // length, set below
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(&flags.to_ne_bytes());
        m.extend_from_slice(&seq.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        // ifaddrmsg: family, prefixlen, flags, scope (universe), index.
        m.extend_from_slice(&[libc::AF_INET as u8, prefix_len, 0, libc::RT_SCOPE_UNIVERSE]);
        m.extend_from_slice(&index.to_ne_bytes());
        let mut attr = |kind: u16| {
            m.extend_from_slice(&((RTA_HDRLEN + 4) as u16).to_ne_bytes());
            m.extend_from_slice(&kind.to_ne_bytes());
            m.extend_from_slice(&addr.octets());
        };
        attr(libc::IFA_LOCAL);
        if with_address {
            attr(libc::IFA_ADDRESS);
        }
        let len = m.len() as u32;
        m[0..4].copy_from_slice(&len.to_ne_bytes());
        m
    }

    fn send(&self, msg: &[u8]) -> io::Result<()> {
        // SAFETY: an all-zero sockaddr_nl addresses the kernel (pid 0).
        let mut sa: libc::sockaddr_nl = unsafe { mem::zeroed() };
        sa.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: msg and sa are valid for the lengths passed.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                msg.as_ptr() as *const libc::c_void,
                msg.len(),
                0,
                &sa as *const _ as *const libc::sockaddr,
                mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if n < 0 { Err(last_os_error()) } else { Ok(()) }
    }

    fn recv(&mut self) -> io::Result<usize> {
        // SAFETY: buf is valid for its length.
        let n = unsafe {
            libc::recv(
                self.fd.as_raw_fd(),
                self.buf.as_mut_ptr() as *mut libc::c_void,
                self.buf.len(),
                0,
            )
        };
        if n < 0 {
            let e = last_os_error();
            if e.kind() == io::ErrorKind::WouldBlock {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no answer from the kernel",
                ));
            }
            return Err(e);
        }
        Ok(n as usize)
    }

    /// Sends a request and waits for its acknowledgement; a kernel error
    /// comes back as the errno.
    fn transact(&mut self, msg: &[u8]) -> io::Result<()> {
        let seq = u32::from_ne_bytes([msg[8], msg[9], msg[10], msg[11]]);
        self.send(msg)?;
        // Bounded: a stray message from an earlier timed-out request is skipped.
        for _ in 0..16 {
            let n = self.recv()?;
            for (kind, mseq, payload) in messages(&self.buf[..n]) {
                if mseq != seq {
                    continue;
                }
                if kind == libc::NLMSG_ERROR as u16 {
                    let code = payload
                        .get(0..4)
                        .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
                        .ok_or_else(|| bad_reply("truncated error message"))?;
                    return if code == 0 {
                        Ok(())
                    } else {
                        Err(io::Error::from_raw_os_error(-code))
                    };
                }
            }
        }
        Err(bad_reply("no acknowledgement"))
    }

    fn dump(&mut self, index: u32) -> io::Result<Vec<(Ipv4Addr, u8)>> {
        let seq = self.next_seq();
        let flags = (libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16;
        let mut m = Vec::with_capacity(NLMSG_HDRLEN + IFADDRMSG_LEN);
        m.extend_from_slice(&((NLMSG_HDRLEN + IFADDRMSG_LEN) as u32).to_ne_bytes());
        m.extend_from_slice(&libc::RTM_GETADDR.to_ne_bytes());
        m.extend_from_slice(&flags.to_ne_bytes());
        m.extend_from_slice(&seq.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(&[libc::AF_INET as u8, 0, 0, 0]);
        m.extend_from_slice(&0u32.to_ne_bytes());
        self.send(&m)?;
        let mut out = Vec::new();
        // Bounded: a dump of one namespace's addresses is a few datagrams.
        for _ in 0..4096 {
            let n = self.recv()?;
            for (kind, mseq, payload) in messages(&self.buf[..n]) {
                if mseq != seq {
                    continue;
                }
                match kind {
                    k if k == libc::NLMSG_DONE as u16 => return Ok(out),
                    k if k == libc::NLMSG_ERROR as u16 => {
                        let code = payload
                            .get(0..4)
                            .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
                            .unwrap_or(-libc::EPROTO);
                        return Err(io::Error::from_raw_os_error(-code));
                    }
                    k if k == libc::RTM_NEWADDR => {
                        if let Some(entry) = parse_ifaddr(payload, index) {
                            out.push(entry);
                        }
                    }
                    _ => {}
                }
            }
        }
        Err(bad_reply("address dump did not end"))
    }
}

fn bad_reply(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("rtnetlink: {what}"))
}

/// Splits a datagram into (type, seq, payload) netlink messages; stops at
/// anything malformed.
fn messages(mut b: &[u8]) -> impl Iterator<Item = (u16, u32, &[u8])> {
    std::iter::from_fn(move || {
        if b.len() < NLMSG_HDRLEN {
            return None;
        }
        let len = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize;
        if len < NLMSG_HDRLEN || len > b.len() {
            return None;
        }
        let kind = u16::from_ne_bytes([b[4], b[5]]);
        let seq = u32::from_ne_bytes([b[8], b[9], b[10], b[11]]);
        let payload = &b[NLMSG_HDRLEN..len];
        b = &b[align4(len).min(b.len())..];
        Some((kind, seq, payload))
    })
}

/// An RTM_NEWADDR payload → (address, prefix length) if it is IPv4 on `index`.
fn parse_ifaddr(p: &[u8], index: u32) -> Option<(Ipv4Addr, u8)> {
    if p.len() < IFADDRMSG_LEN || p[0] != libc::AF_INET as u8 {
        return None;
    }
    if u32::from_ne_bytes([p[4], p[5], p[6], p[7]]) != index {
        return None;
    }
    let prefix_len = p[1];
    let mut attrs = &p[IFADDRMSG_LEN..];
    let (mut local, mut address) = (None, None);
    while attrs.len() >= RTA_HDRLEN {
        let len = u16::from_ne_bytes([attrs[0], attrs[1]]) as usize;
        let kind = u16::from_ne_bytes([attrs[2], attrs[3]]);
        if len < RTA_HDRLEN || len > attrs.len() {
            break;
        }
        let data = &attrs[RTA_HDRLEN..len];
        if data.len() == 4 {
            let a = Ipv4Addr::new(data[0], data[1], data[2], data[3]);
            if kind == libc::IFA_LOCAL {
                local = Some(a);
            } else if kind == libc::IFA_ADDRESS {
                address = Some(a);
            }
        }
        attrs = &attrs[align4(len).min(attrs.len())..];
    }
    Some((local.or(address)?, prefix_len))
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
/// gratuitous ARP for one address.
pub struct GarpSender {
    fd: OwnedFd,
    iface: Interface,
    vip: Ipv4Addr,
    mac: [u8; 6],
    frame: [u8; GARP_FRAME_LEN],
}

impl GarpSender {
    /// Opens the socket (it receives nothing) and reads the interface's
    /// MAC address. Needs CAP_NET_RAW.
    pub fn open(iface: &Interface, vip: Ipv4Addr) -> Result<GarpSender, VipError> {
        let perr = |what: &'static str| {
            let source = last_os_error();
            VipError::Packet {
                iface: iface.name.clone(),
                what,
                source,
            }
        };
        // Protocol 0: the socket is send-only, nothing queues up on it.
        // SAFETY: plain socket(2); the result is checked before use.
        let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(perr("opening an AF_PACKET socket"));
        }
        // SAFETY: raw is a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let sa = ll_addr(iface.index, 0);
        // SAFETY: sa is a valid sockaddr_ll of the size passed.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                &sa as *const _ as *const libc::sockaddr,
                mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(perr("binding the AF_PACKET socket"));
        }
        // SAFETY: an all-zero ifreq is valid; the name is copied in below.
        let mut ifr: libc::ifreq = unsafe { mem::zeroed() };
        for (dst, src) in ifr
            .ifr_name
            .iter_mut()
            .zip(iface.name.bytes().take(libc::IFNAMSIZ - 1))
        {
            *dst = src as libc::c_char;
        }
        // SAFETY: SIOCGIFHWADDR reads the name and writes ifr_hwaddr within ifr.
        let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCGIFHWADDR, &mut ifr) };
        if rc < 0 {
            return Err(perr("reading its MAC address"));
        }
        // SAFETY: SIOCGIFHWADDR filled the hwaddr member of the union.
        let hw = unsafe { ifr.ifr_ifru.ifru_hwaddr };
        if hw.sa_family != libc::ARPHRD_ETHER {
            return Err(VipError::NotEthernet {
                iface: iface.name.clone(),
                hw_type: hw.sa_family,
            });
        }
        let mut mac = [0u8; 6];
        for (m, b) in mac.iter_mut().zip(hw.sa_data.iter()) {
            *m = *b as u8;
        }
        Ok(GarpSender {
            fd,
            iface: iface.clone(),
            vip,
            mac,
            frame: garp_frame(mac, vip),
        })
    }

    /// Sends one gratuitous ARP.
    pub fn send_garp(&self) -> Result<(), VipError> {
        let mut sa = ll_addr(self.iface.index, libc::ETH_P_ARP as u16);
        sa.sll_halen = 6;
        sa.sll_addr[..6].copy_from_slice(&[0xff; 6]);
        // SAFETY: frame and sa are valid for the lengths passed.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                self.frame.as_ptr() as *const libc::c_void,
                self.frame.len(),
                0,
                &sa as *const _ as *const libc::sockaddr,
                mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if n < 0 {
            return Err(VipError::Send {
                iface: self.iface.name.clone(),
                vip: self.vip,
                source: last_os_error(),
            });
        }
        Ok(())
    }

    /// Sends any ready-made Ethernet frame out of the interface (the SIP
    /// OPTIONS probe to a DR real server, addressed to its MAC).
    pub fn send_frame(&self, frame: &[u8]) -> Result<(), VipError> {
        let mut sa = ll_addr(self.iface.index, 0);
        sa.sll_halen = 6;
        sa.sll_addr[..6].copy_from_slice(&frame[..6.min(frame.len())]);
        // SAFETY: frame and sa are valid for the lengths passed.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                frame.as_ptr() as *const libc::c_void,
                frame.len(),
                0,
                &sa as *const _ as *const libc::sockaddr,
                mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if n < 0 {
            return Err(VipError::Send { iface: self.iface.name.clone(), vip: self.vip, source: last_os_error() });
        }
        Ok(())
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

fn ll_addr(ifindex: u32, protocol: u16) -> libc::sockaddr_ll {
    // SAFETY: an all-zero sockaddr_ll is valid.
    let mut sa: libc::sockaddr_ll = unsafe { mem::zeroed() };
    sa.sll_family = libc::AF_PACKET as u16;
    sa.sll_protocol = protocol.to_be();
    sa.sll_ifindex = ifindex as i32;
    sa
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
    fn netlink_request_layout() {
        // Building a request needs no privilege; the socket is not used.
        let Ok(mut s) = AddressSocket::open() else {
            println!("SKIP netlink_request_layout: no netlink socket");
            return;
        };
        let m = s.addr_request(
            libc::RTM_NEWADDR,
            0x605,
            7,
            Ipv4Addr::new(198, 18, 0, 100),
            32,
            true,
        );
        assert_eq!(m.len(), 16 + 8 + 8 + 8);
        assert_eq!(u32::from_ne_bytes([m[0], m[1], m[2], m[3]]), 40);
        assert_eq!(u16::from_ne_bytes([m[4], m[5]]), libc::RTM_NEWADDR);
        assert_eq!(&m[16..20], &[libc::AF_INET as u8, 32, 0, 0]);
        assert_eq!(u32::from_ne_bytes([m[20], m[21], m[22], m[23]]), 7);
        assert_eq!(u16::from_ne_bytes([m[26], m[27]]), libc::IFA_LOCAL);
        assert_eq!(&m[28..32], &[198, 18, 0, 100]);
        assert_eq!(u16::from_ne_bytes([m[34], m[35]]), libc::IFA_ADDRESS);
        let parsed = parse_ifaddr(&m[16..], 7);
        assert_eq!(parsed, Some((Ipv4Addr::new(198, 18, 0, 100), 32)));
        assert_eq!(parse_ifaddr(&m[16..], 8), None);
        assert_eq!(parse_ifaddr(&m[16..20], 7), None);
    }

    #[test]
    fn messages_stop_at_malformed() {
        let mut b = vec![0u8; 20];
        b[0..4].copy_from_slice(&20u32.to_ne_bytes());
        b[4..6].copy_from_slice(&2u16.to_ne_bytes());
        b[8..12].copy_from_slice(&9u32.to_ne_bytes());
        assert_eq!(messages(&b).count(), 1);
        b[0..4].copy_from_slice(&200u32.to_ne_bytes());
        assert_eq!(messages(&b).count(), 0);
        assert_eq!(messages(&b[..10]).count(), 0);
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
