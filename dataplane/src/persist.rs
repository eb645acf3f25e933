//! Attaching the dispatcher so that it outlives the process: over
//! netlink (`RTM_SETLINK`, `IFLA_XDP`), where the interface, not a file
//! descriptor, holds the program. A bpf_link (what
//! [`Dataplane::attach`] makes) dies with its process — 18–35 ms after a
//! kill -9, during which the stack answers for the VIP on `lo` — while a
//! netlink attachment stays until it is replaced or removed, and needs no
//! bpffs. Without `XDP_FLAGS_UPDATE_IF_NOEXIST` the kernel swaps in the new
//! program atomically over whatever netlink-attached program of the same
//! mode is there (a dead tandemd's leftover, or any other), so a restart
//! never fails with EBUSY because of a leftover; the kernel still refuses
//! (EBUSY) to replace a program held by a bpf_link, and (EEXIST) one in the
//! other mode. Detaching passes `XDP_FLAGS_REPLACE` with our program as
//! the expected one, so it removes only what this dataplane attached.
//!
//! It owns the netlink request and the list of persistent attachments;
//! which interfaces to attach is the caller's business. Interfaces are
//! resolved, and the netlink socket opened, in the calling thread's
//! network namespace.

use std::{
    io,
    os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd},
};

use tandem_common::progs;

use crate::{AttachMode, Attached, Dataplane, Error, loader::ifindex};

const IFLA_XDP: u16 = 43;
const NLA_F_NESTED: u16 = 1 << 15;
const IFLA_XDP_FD: u16 = 1;
const IFLA_XDP_FLAGS: u16 = 3;
const IFLA_XDP_EXPECTED_FD: u16 = 8;
const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;
const XDP_FLAGS_REPLACE: u32 = 1 << 4;

/// One persistent attachment this dataplane made.
pub(crate) struct Persistent {
    pub ifindex: u32,
    /// `XDP_FLAGS_DRV_MODE` or `XDP_FLAGS_SKB_MODE`.
    pub mode_flags: u32,
    /// Our program, the expected one when detaching.
    pub prog: OwnedFd,
}

fn mode_label(flags: u32) -> &'static str {
    if flags & XDP_FLAGS_DRV_MODE != 0 { "native" } else { "generic" }
}

/// Appends one netlink attribute (4-byte aligned).
fn attr(buf: &mut Vec<u8>, kind: u16, payload: &[u8]) {
    let len = 4 + payload.len();
    buf.extend_from_slice(&(len as u16).to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(payload);
    while buf.len() % 4 != 0 {
        buf.push(0);
    }
}

/// The `RTM_SETLINK` request that sets (`fd` ≥ 0) or clears (`fd` = -1)
/// the XDP program of `ifindex`.
fn request(ifindex: u32, fd: i32, flags: u32, expected: Option<i32>) -> Vec<u8> {
    let mut nested = Vec::new();
    attr(&mut nested, IFLA_XDP_FD, &fd.to_ne_bytes());
    attr(&mut nested, IFLA_XDP_FLAGS, &flags.to_ne_bytes());
    if let Some(e) = expected {
        attr(&mut nested, IFLA_XDP_EXPECTED_FD, &e.to_ne_bytes());
    }
    let mut body = Vec::new();
    // struct ifinfomsg: family, pad, type, index, flags, change.
    body.extend_from_slice(&[libc::AF_UNSPEC as u8, 0, 0, 0]);
    body.extend_from_slice(&(ifindex as i32).to_ne_bytes());
    body.extend_from_slice(&0u32.to_ne_bytes());
    body.extend_from_slice(&0u32.to_ne_bytes());
    attr(&mut body, IFLA_XDP | NLA_F_NESTED, &nested);
    let mut msg = Vec::with_capacity(16 + body.len());
    // struct nlmsghdr: len, type, flags, seq, pid.
    msg.extend_from_slice(&((16 + body.len()) as u32).to_ne_bytes());
    msg.extend_from_slice(&libc::RTM_SETLINK.to_ne_bytes());
    msg.extend_from_slice(&((libc::NLM_F_REQUEST | libc::NLM_F_ACK) as u16).to_ne_bytes());
    msg.extend_from_slice(&1u32.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes());
    msg.extend_from_slice(&body);
    msg
}

/// Sends one request to the kernel and returns its acknowledgement.
fn send(msg: &[u8]) -> io::Result<()> {
    // SAFETY: plain socket(2) call; the result is checked.
    let raw = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, libc::NETLINK_ROUTE) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: raw is a fresh descriptor we own.
    let sock = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: sockaddr_nl is plain data; all zero addresses the kernel.
    let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    sa.nl_family = libc::AF_NETLINK as u16;
    // SAFETY: msg and sa are valid for the lengths given.
    let n = unsafe {
        libc::sendto(
            sock.as_raw_fd(),
            msg.as_ptr() as *const libc::c_void,
            msg.len(),
            0,
            &sa as *const libc::sockaddr_nl as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_nl>() as u32,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut buf = [0u8; 4096];
    loop {
        // SAFETY: buf is valid for its length.
        let n = unsafe { libc::recv(sock.as_raw_fd(), buf.as_mut_ptr() as *mut libc::c_void, buf.len(), 0) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        let n = n as usize;
        if n < 20 {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "short netlink answer"));
        }
        let kind = u16::from_ne_bytes([buf[4], buf[5]]);
        if kind != libc::NLMSG_ERROR as u16 {
            continue;
        }
        let err = i32::from_ne_bytes([buf[16], buf[17], buf[18], buf[19]]);
        return if err == 0 { Ok(()) } else { Err(io::Error::from_raw_os_error(-err)) };
    }
}

impl Dataplane {
    /// Attaches the dispatcher to `iface` so that it stays attached after
    /// this process dies (netlink, see the module doc), replacing
    /// atomically a netlink-attached program in the same mode that is
    /// already there (a dead tandemd's). [`Dataplane::detach_all`] and drop
    /// detach it again.
    pub fn attach_persistent(&mut self, iface: &str, mode: AttachMode) -> Result<Attached, Error> {
        let idx = ifindex(iface)?;
        let name = progs::DISPATCH;
        let fd = self.prog_fd(name)?;
        let prog = fd
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| Error::Program { name, source: aya::programs::ProgramError::IOError(e) })?;
        let try_mode = |flags: u32| -> Result<(), Error> {
            send(&request(idx, prog.as_raw_fd(), flags, None))
                .map_err(|source| Error::Netlink { ifindex: idx, mode: mode_label(flags), source })
        };
        let (flags, attached) = match mode {
            AttachMode::Native => (try_mode(XDP_FLAGS_DRV_MODE).map(|_| XDP_FLAGS_DRV_MODE)?, Attached::Native),
            AttachMode::Generic => (try_mode(XDP_FLAGS_SKB_MODE).map(|_| XDP_FLAGS_SKB_MODE)?, Attached::Generic),
            AttachMode::Auto => match try_mode(XDP_FLAGS_DRV_MODE) {
                Ok(()) => (XDP_FLAGS_DRV_MODE, Attached::Native),
                Err(native) => {
                    tracing::warn!(%native, "falling back to generic XDP");
                    try_mode(XDP_FLAGS_SKB_MODE)?;
                    (XDP_FLAGS_SKB_MODE, Attached::Generic)
                }
            },
        };
        self.persistent.retain(|p| p.ifindex != idx);
        self.persistent.push(Persistent { ifindex: idx, mode_flags: flags, prog });
        Ok(attached)
    }

    /// Removes the persistent attachments this dataplane made (only where
    /// its own program is still the one attached).
    pub(crate) fn detach_persistent(&mut self) -> Result<(), Error> {
        let mut first = None;
        for p in std::mem::take(&mut self.persistent) {
            let flags = p.mode_flags | XDP_FLAGS_REPLACE;
            if let Err(source) = send(&request(p.ifindex, -1, flags, Some(p.prog.as_raw_fd()))) {
                // EEXIST: another program replaced ours; ENODEV: gone.
                if !matches!(source.raw_os_error(), Some(libc::EEXIST) | Some(libc::ENODEV)) && first.is_none() {
                    first = Some(Error::Netlink { ifindex: p.ifindex, mode: mode_label(p.mode_flags), source });
                }
            }
        }
        first.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_has_the_kernels_layout() {
        let m = request(7, 5, XDP_FLAGS_DRV_MODE, Some(9));
        // nlmsghdr 16 + ifinfomsg 16 + IFLA_XDP header 4 + three 8-byte attributes.
        assert_eq!(m.len(), 16 + 16 + 4 + 24);
        assert_eq!(u32::from_ne_bytes(m[0..4].try_into().unwrap()) as usize, m.len());
        assert_eq!(i32::from_ne_bytes(m[20..24].try_into().unwrap()), 7);
        assert_eq!(u16::from_ne_bytes(m[32..34].try_into().unwrap()), 28);
        assert_eq!(u16::from_ne_bytes(m[34..36].try_into().unwrap()), IFLA_XDP | NLA_F_NESTED);
        assert_eq!(i32::from_ne_bytes(m[40..44].try_into().unwrap()), 5);
        assert_eq!(u32::from_ne_bytes(m[48..52].try_into().unwrap()), XDP_FLAGS_DRV_MODE);
        assert_eq!(u16::from_ne_bytes(m[54..56].try_into().unwrap()), IFLA_XDP_EXPECTED_FD);
        assert_eq!(i32::from_ne_bytes(m[56..60].try_into().unwrap()), 9);
    }
}
