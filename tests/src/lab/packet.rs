//! Packet sockets: the lab's observers on its wires (the failover bench's
//! ARP watch, the fault campaign's dual-active watch, the detection lab's
//! wire tap) open an `AF_PACKET` raw socket bound to one interface.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// An `AF_PACKET` raw socket (close-on-exec) in the calling thread's
/// namespace, bound to `ifindex` for protocol `proto` (network byte order:
/// `(libc::ETH_P_ALL as u16).to_be()`). Created for no protocol, so nothing
/// is queued until the bind names the interface. An error names the call.
pub fn packet_socket(ifindex: u32, proto: u16) -> io::Result<OwnedFd> {
    let named = |what: &str| {
        let e = io::Error::last_os_error();
        io::Error::new(e.kind(), format!("{what}: {e}"))
    };
    // SAFETY: socket(2); the fd is owned right after.
    let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(named("socket(AF_PACKET)"));
    }
    // SAFETY: raw is a fresh fd nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: an all-zero sockaddr_ll is valid; the fields are set below.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = proto;
    sll.sll_ifindex = ifindex as i32;
    // SAFETY: sll is a valid sockaddr_ll of the size passed.
    let r = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&raw const sll).cast(),
            size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(named(&format!("bind(AF_PACKET, ifindex {ifindex})")));
    }
    Ok(fd)
}
