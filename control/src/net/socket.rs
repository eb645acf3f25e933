//! The `NETLINK_ROUTE` socket and its three ways of talking to the kernel:
//! a request that waits for its acknowledgement ([`RouteSocket::request`]),
//! a dump read to its end ([`RouteSocket::dump`]), and the raw datagrams of
//! a non-blocking, subscribed socket ([`RouteSocket::send`] +
//! [`RouteSocket::recv`], split by [`messages`]).
//!
//! Messages are encoded by `netlink-packet-core` / `netlink-packet-route`;
//! this module only numbers them, sends them and walks the replies. It
//! knows no message kinds beyond the acknowledgement and the end of a dump,
//! and decides nothing about what a reply means to the caller.

use std::{
    io,
    os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd},
    time::Duration,
};

use netlink_packet_core::{
    ErrorBuffer, NLMSG_DONE, NLMSG_ERROR, NetlinkBuffer, NetlinkHeader, NetlinkMessage,
    NetlinkPayload,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};
use nix::sys::{socket::sockopt, time::TimeVal};

/// Receive buffer: the kernel sizes a dump's datagrams to what the reader
/// took before, so one page-multiple buffer reads any of them whole.
const RECV_BUF: usize = 32 * 1024;

/// One message of a datagram: its type, sequence number and payload (what
/// follows the 16-byte `nlmsghdr`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Message<'a> {
    pub kind: u16,
    pub seq: u32,
    pub payload: &'a [u8],
}

impl Message<'_> {
    /// For an `NLMSG_ERROR`: `Ok` for an acknowledgement, the kernel's
    /// errno otherwise. `None` for any other message.
    pub fn ack(&self) -> Option<io::Result<()>> {
        if self.kind != NLMSG_ERROR {
            return None;
        }
        Some(match ErrorBuffer::new_checked(self.payload) {
            Err(_) => Err(bad_reply("truncated error message")),
            Ok(e) => match e.code() {
                None => Ok(()),
                Some(code) => Err(io::Error::from_raw_os_error(-code.get())),
            },
        })
    }
}

/// Splits a datagram into its netlink messages; stops at anything
/// malformed (a length shorter than the header or past the datagram).
pub fn messages(mut datagram: &[u8]) -> impl Iterator<Item = Message<'_>> {
    std::iter::from_fn(move || {
        let buf = NetlinkBuffer::new_checked(datagram).ok()?;
        let len = buf.length() as usize;
        let message = Message {
            kind: buf.message_type(),
            seq: buf.sequence_number(),
            payload: buf.payload(),
        };
        datagram = &datagram[align4(len).min(datagram.len())..];
        Some(message)
    })
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// The bytes of one request: `msg` with `flags` and `seq` in its header.
pub fn encode(seq: u32, flags: u16, msg: RouteNetlinkMessage) -> Vec<u8> {
    let mut header = NetlinkHeader::default();
    header.flags = flags;
    header.sequence_number = seq;
    let mut m = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
    m.finalize();
    let mut bytes = vec![0; m.buffer_len()];
    m.serialize(&mut bytes);
    bytes
}

pub(crate) fn bad_reply(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("rtnetlink: {what}"))
}

/// A `NETLINK_ROUTE` socket in the network namespace of the thread that
/// opened it, numbering its requests.
pub struct RouteSocket {
    socket: Socket,
    seq: u32,
    buf: Vec<u8>,
}

impl RouteSocket {
    /// A blocking socket for requests and dumps; a reply that does not come
    /// within `timeout` fails the call with `TimedOut`, so that a lost
    /// reply cannot hang the caller.
    pub fn open(timeout: Duration) -> io::Result<RouteSocket> {
        let s = RouteSocket::bound(0)?;
        let tv = TimeVal::new(timeout.as_secs() as _, timeout.subsec_micros() as _);
        nix::sys::socket::setsockopt(&s.socket, sockopt::ReceiveTimeout, &tv)?;
        Ok(s)
    }

    /// A non-blocking socket subscribed to the multicast `groups`
    /// (`RTMGRP_*` bits); read with [`RouteSocket::recv`].
    pub fn subscribe(groups: u32) -> io::Result<RouteSocket> {
        let s = RouteSocket::bound(groups)?;
        s.socket.set_non_blocking(true)?;
        Ok(s)
    }

    fn bound(groups: u32) -> io::Result<RouteSocket> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        // Port 0: the kernel assigns one.
        socket.bind(&SocketAddr::new(0, groups))?;
        Ok(RouteSocket {
            socket,
            seq: 0,
            buf: vec![0; RECV_BUF],
        })
    }

    /// Numbers `msg` and sends it to the kernel without waiting; its
    /// sequence number.
    pub fn send(&mut self, flags: u16, msg: RouteNetlinkMessage) -> io::Result<u32> {
        self.seq = self.seq.wrapping_add(1);
        let bytes = encode(self.seq, flags, msg);
        self.socket.send(&bytes, 0)?;
        Ok(self.seq)
    }

    /// Reads one datagram (`flags`: `MSG_*`, e.g. `MSG_DONTWAIT`). The
    /// error is the kernel's as it came (`EAGAIN`, `ENOBUFS`, …).
    pub fn recv(&mut self, flags: libc::c_int) -> io::Result<&[u8]> {
        let n = self.socket.recv(&mut &mut self.buf[..], flags)?;
        Ok(&self.buf[..n.min(self.buf.len())])
    }

    /// The notifications queued now, without waiting (at most 1024
    /// datagrams), and whether some were lost (`ENOBUFS`: the receive
    /// queue overflowed; the caller re-reads the state with a dump). `who`
    /// names the reader in the log of a read error.
    pub fn drain(&mut self, who: &str) -> (Vec<Vec<u8>>, bool) {
        let mut out = Vec::new();
        let mut overrun = false;
        for _ in 0..1024 {
            match self.recv(libc::MSG_DONTWAIT) {
                Ok([]) => break,
                Ok(d) => out.push(d.to_vec()),
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => overrun = true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    tracing::error!("{who}: reading rtnetlink: {e}");
                    break;
                }
            }
        }
        (out, overrun)
    }

    /// A blocking read whose receive timeout says so.
    fn recv_reply(&mut self) -> io::Result<&[u8]> {
        match self.recv(0) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no answer from the kernel",
            )),
            r => r,
        }
    }

    /// Sends `msg` with `NLM_F_REQUEST | NLM_F_ACK` added to `flags` and
    /// waits for its acknowledgement; a kernel error comes back as the
    /// errno. Replies to earlier, timed-out requests are skipped.
    pub fn request(&mut self, flags: u16, msg: RouteNetlinkMessage) -> io::Result<()> {
        use netlink_packet_core::{NLM_F_ACK, NLM_F_REQUEST};
        let seq = self.send(flags | NLM_F_REQUEST | NLM_F_ACK, msg)?;
        // Bounded: a stray datagram from an earlier request is skipped.
        for _ in 0..16 {
            let datagram = self.recv_reply()?;
            if let Some(ack) = messages(datagram)
                .filter(|m| m.seq == seq)
                .find_map(|m| m.ack())
            {
                return ack;
            }
        }
        Err(bad_reply("no acknowledgement"))
    }

    /// Sends `msg` as a dump request and hands every answer of it (not the
    /// `NLMSG_DONE` that ends it) to `each`. A kernel error ends the dump
    /// with its errno.
    pub fn dump(
        &mut self,
        msg: RouteNetlinkMessage,
        mut each: impl FnMut(Message<'_>),
    ) -> io::Result<()> {
        use netlink_packet_core::{NLM_F_DUMP, NLM_F_REQUEST};
        let seq = self.send(NLM_F_REQUEST | NLM_F_DUMP, msg)?;
        // Bounded: a dump of one namespace's addresses or links is a few
        // datagrams.
        for _ in 0..4096 {
            let datagram = self.recv_reply()?;
            for m in messages(datagram).filter(|m| m.seq == seq) {
                match m.kind {
                    NLMSG_DONE => return Ok(()),
                    // A dump is not acknowledged: an error message is its failure.
                    NLMSG_ERROR => {
                        return Err(match m.ack() {
                            Some(Err(e)) => e,
                            _ => bad_reply("error message without an errno"),
                        });
                    }
                    _ => each(m),
                }
            }
        }
        Err(bad_reply("dump did not end"))
    }
}

impl AsRawFd for RouteSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }
}

impl AsFd for RouteSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(len: u32, kind: u16, seq: u32) -> Vec<u8> {
        let mut b = vec![0u8; 16];
        b[0..4].copy_from_slice(&len.to_ne_bytes());
        b[4..6].copy_from_slice(&kind.to_ne_bytes());
        b[8..12].copy_from_slice(&seq.to_ne_bytes());
        b
    }

    #[test]
    fn messages_stop_at_malformed() {
        let mut b = header(20, 2, 9);
        b.extend_from_slice(&[0; 4]);
        assert_eq!(messages(&b).count(), 1);
        b[0..4].copy_from_slice(&200u32.to_ne_bytes());
        assert_eq!(messages(&b).count(), 0);
        assert_eq!(messages(&b[..10]).count(), 0);
        b[0..4].copy_from_slice(&8u32.to_ne_bytes());
        assert_eq!(messages(&b).count(), 0);
    }

    #[test]
    fn messages_walk_aligned() {
        // A 21-byte message is padded to 24 before the next one.
        let mut b = header(21, 100, 1);
        b.extend_from_slice(&[7, 0, 0, 0, 0, 0xee, 0xee, 0xee]);
        b.extend_from_slice(&header(16, NLMSG_DONE, 1));
        let got: Vec<_> = messages(&b).collect();
        assert_eq!(got.len(), 2);
        assert_eq!(
            (got[0].kind, got[0].seq, got[0].payload),
            (100, 1, &[7u8, 0, 0, 0, 0][..])
        );
        assert_eq!((got[1].kind, got[1].payload.len()), (NLMSG_DONE, 0));
    }

    #[test]
    fn acks_and_errors() {
        let mut ack = header(20, NLMSG_ERROR, 3);
        ack.extend_from_slice(&0i32.to_ne_bytes());
        let m = messages(&ack).next().expect("one message");
        assert!(matches!(m.ack(), Some(Ok(()))));
        let mut nack = header(20, NLMSG_ERROR, 3);
        nack.extend_from_slice(&(-libc::EEXIST).to_ne_bytes());
        let e = messages(&nack)
            .next()
            .and_then(|m| m.ack())
            .expect("an error message");
        assert_eq!(e.expect_err("a nack").raw_os_error(), Some(libc::EEXIST));
        let truncated = header(16, NLMSG_ERROR, 3);
        let e = messages(&truncated)
            .next()
            .and_then(|m| m.ack())
            .expect("an error message");
        assert_eq!(e.expect_err("truncated").kind(), io::ErrorKind::InvalidData);
        let done = header(16, NLMSG_DONE, 3);
        assert!(messages(&done).next().expect("one").ack().is_none());
    }
}
