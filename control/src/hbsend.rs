//! Sends this node's heartbeats on every configured path: one fixed-size,
//! authenticated datagram (`tandem_common::heartbeat`) per path per
//! interval, to the peer's heartbeat port. The peer's XDP program verifies
//! and records them; nothing here receives.
//!
//! Each sender has a boot id drawn from the kernel's random source when it
//! is made (once per process start) and a sequence that counts from 1,
//! one per datagram: the peer's kernel takes a new boot counting from 1
//! at once (`tandem_common::heartbeat::window`), so no clock — wall or
//! monotonic — decides whether a restarted daemon is heard. The caller's
//! clock only fills the informative sender-time field ([`Sender::send_all`]'s
//! `now_ns`). Keys are never logged or put in an error.

use std::{
    io,
    net::{SocketAddr, UdpSocket},
};

use tandem_common::{
    heartbeat::{self, Key, Kind, Packet, Repr},
    node::NodeState,
};

/// One heartbeat path: where from, where to.
#[derive(Clone, Debug)]
pub struct PathSpec {
    /// The path's number (carried in the heartbeat).
    pub index: u8,
    /// Local address to send from (selects the interface).
    pub local: SocketAddr,
    /// The peer's address and heartbeat port.
    pub peer: SocketAddr,
}

struct Path {
    spec: PathSpec,
    socket: UdpSocket,
    sent: u64,
    failed: u64,
}

/// The heartbeat sender of one node.
pub struct Sender {
    key: Key,
    node_id: u32,
    kind: Kind,
    boot_id: u64,
    seq: u64,
    paths: Vec<Path>,
    /// Non-zero: every heartbeat says "restarting, count me alive this
    /// many ms" (`heartbeat::FLAG_RESTARTING`).
    restart_grace_ms: u16,
}

/// Tries of `getrandom(2)` before giving up (it fails only before the
/// kernel's pool is ready, or on a signal).
const RANDOM_TRIES: u32 = 16;

/// A fresh boot id: 64 random bits from the kernel, never 0 (0 means
/// "none" in the receiver's window).
pub fn draw_boot_id() -> io::Result<u64> {
    for _ in 0..RANDOM_TRIES {
        let mut v = 0u64;
        // SAFETY: getrandom writes at most 8 bytes into the u64 it is given.
        let n = unsafe { libc::getrandom((&raw mut v).cast(), 8, 0) };
        if n == 8 && v != 0 {
            return Ok(v);
        }
    }
    Err(io::Error::other(
        "getrandom: no boot id for the heartbeat sender",
    ))
}

/// What one round of sends did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Round {
    pub sent: u32,
    pub failed: u32,
}

impl Sender {
    /// Opens one non-blocking UDP socket per path, under a freshly drawn
    /// boot id.
    pub fn new(key: Key, node_id: u32, kind: Kind, paths: &[PathSpec]) -> io::Result<Sender> {
        Sender::with_boot_id(key, node_id, kind, draw_boot_id()?, paths)
    }

    /// As [`Sender::new`] under a given boot id (tests; 0 is refused).
    pub fn with_boot_id(
        key: Key,
        node_id: u32,
        kind: Kind,
        boot_id: u64,
        paths: &[PathSpec],
    ) -> io::Result<Sender> {
        if boot_id == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "heartbeat boot id 0",
            ));
        }
        let mut out = Vec::with_capacity(paths.len());
        for spec in paths {
            let socket = UdpSocket::bind(SocketAddr::new(spec.local.ip(), 0)).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!(
                        "heartbeat path {}: binding {}: {e}",
                        spec.index,
                        spec.local.ip()
                    ),
                )
            })?;
            socket.set_nonblocking(true)?;
            out.push(Path {
                spec: spec.clone(),
                socket,
                sent: 0,
                failed: 0,
            });
        }
        Ok(Sender {
            key,
            node_id,
            kind,
            boot_id,
            seq: 0,
            paths: out,
            restart_grace_ms: 0,
        })
    }

    /// Sends every heartbeat and echo from now on under `key` (the
    /// middle step of a key rotation); the boot and the sequence go on,
    /// so the peer's kernel takes the next one as the next of this boot.
    pub fn set_key(&mut self, key: Key) {
        self.key = key;
    }

    /// Sends one heartbeat on every path, each with the next sequence. A
    /// path that fails (link down, no route) is counted; the others still
    /// get theirs. `now_ns` is only carried (the sender-time field).
    pub fn send_all(
        &mut self,
        state: NodeState,
        epoch: u64,
        priority: u8,
        load: (u32, u32),
        now_ns: u64,
    ) -> Round {
        let mut round = Round::default();
        let mut buf = [0u8; heartbeat::LEN];
        for p in self.paths.iter_mut() {
            self.seq += 1;
            let repr = Repr {
                kind: self.kind,
                state,
                priority,
                node_id: self.node_id,
                path: p.spec.index,
                epoch,
                boot_id: self.boot_id,
                seq: self.seq,
                sent_ns: now_ns,
                active_channels: load.0,
                capacity: load.1,
                restart_grace_ms: self.restart_grace_ms,
            };
            repr.emit(&mut Packet::new_unchecked(&mut buf[..]), &self.key);
            match p.socket.send_to(&buf, p.spec.peer) {
                Ok(_) => {
                    p.sent += 1;
                    round.sent += 1;
                }
                Err(_) => {
                    p.failed += 1;
                    round.failed += 1;
                }
            }
        }
        round
    }

    /// Sends one echo request (BFD echo, RFC 5880 §6.4) on the path
    /// numbered `path`: a message of kind `Echo` carrying this node's id,
    /// the path, `seq` and `now_ns`, under the same key as the
    /// heartbeats, to the peer's heartbeat port from the path's socket.
    /// The peer's XDP sends it back unchanged while its daemon is alive,
    /// and this node's XDP takes it back (`Dataplane::echo_returns`);
    /// nothing here receives. Never blocks (the socket is non-blocking);
    /// an unknown path is `NotFound`.
    pub fn send_echo(&mut self, path: u8, seq: u64, state: NodeState, epoch: u64, priority: u8, now_ns: u64) -> io::Result<()> {
        let p = self
            .paths
            .iter()
            .find(|p| p.spec.index == path)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("heartbeat path {path}: none")))?;
        let repr = Repr {
            kind: Kind::Echo,
            state,
            priority,
            node_id: self.node_id,
            path,
            epoch,
            boot_id: self.boot_id,
            seq,
            sent_ns: now_ns,
            active_channels: 0,
            capacity: 0,
            restart_grace_ms: 0,
        };
        let mut buf = [0u8; heartbeat::LEN];
        repr.emit(&mut Packet::new_unchecked(&mut buf[..]), &self.key);
        p.socket.send_to(&buf, p.spec.peer).map(|_| ())
    }

    /// From now on every heartbeat announces a restart with `grace`
    /// (capped at 65.535 s; zero stops announcing it).
    pub fn set_restarting(&mut self, grace: std::time::Duration) {
        self.restart_grace_ms = grace.as_millis().min(u128::from(u16::MAX)) as u16;
    }

    /// The path numbers, in order.
    pub fn path_indices(&self) -> Vec<u8> {
        self.paths.iter().map(|p| p.spec.index).collect()
    }

    /// Per path: (index, sent, failed).
    pub fn stats(&self) -> Vec<(u8, u64, u64)> {
        self.paths
            .iter()
            .map(|p| (p.spec.index, p.sent, p.failed))
            .collect()
    }

    /// The last sequence sent (0: none yet).
    pub fn seq(&self) -> u64 {
        self.seq
    }

    pub fn boot_id(&self) -> u64 {
        self.boot_id
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn receiver() -> UdpSocket {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        rx
    }

    fn path(index: u8, rx: &UdpSocket) -> PathSpec {
        PathSpec {
            index,
            local: "127.0.0.1:0".parse().unwrap(),
            peer: rx.local_addr().unwrap(),
        }
    }

    fn recv(rx: &UdpSocket, key: &Key) -> Repr {
        let mut buf = [0u8; 128];
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(n, heartbeat::LEN);
        Repr::parse(&Packet::new_checked(&buf[..n]).unwrap(), key).unwrap()
    }

    #[test]
    fn heartbeats_go_out_on_every_path_with_increasing_sequence() {
        let (rx1, rx2) = (receiver(), receiver());
        let key = Key::from_bytes(&[7; 16]);
        let mut s = Sender::new(key, 9, Kind::Director, &[path(0, &rx1), path(1, &rx2)]).unwrap();
        let r = s.send_all(NodeState::Standby, 3, 100, (1, 2), 42);
        assert_eq!(r, Round { sent: 2, failed: 0 });
        let mut seqs = Vec::new();
        for (rx, path) in [(&rx1, 0u8), (&rx2, 1u8)] {
            let repr = recv(rx, &key);
            assert_eq!(
                (
                    repr.node_id,
                    repr.path,
                    repr.state,
                    repr.epoch,
                    repr.priority
                ),
                (9, path, NodeState::Standby, 3, 100)
            );
            assert_eq!(
                (repr.active_channels, repr.capacity, repr.sent_ns),
                (1, 2, 42)
            );
            assert_eq!(repr.boot_id, s.boot_id());
            seqs.push(repr.seq);
        }
        assert_eq!(seqs, [1, 2], "the sequence counts from 1 within the boot");
    }

    /// Issue 11, finding 4: the sequence came from the wall clock, so a
    /// daemon restarted with its clock 60 s behind was refused as a
    /// replay. Now it is a per-boot counter: whatever clock the caller
    /// reads (a stepped-back one, 0, the far future), the heartbeats of a
    /// new process are 1, 2, 3 under a new boot id.
    #[test]
    fn the_sequence_depends_on_no_clock_and_a_restart_draws_a_new_boot() {
        let rx = receiver();
        let key = Key::from_bytes(&[7; 16]);
        let mut first = Sender::new(key, 9, Kind::Director, &[path(0, &rx)]).unwrap();
        for now in [u64::MAX, 5, 0] {
            first.send_all(NodeState::Active, 1, 100, (0, 0), now);
        }
        let got: Vec<(u64, u64)> = (0..3)
            .map(|_| recv(&rx, &key))
            .map(|r| (r.seq, r.sent_ns))
            .collect();
        assert_eq!(got, [(1, u64::MAX), (2, 5), (3, 0)]);
        // "Restarted": a new sender whose clock reads far behind.
        let mut again = Sender::new(key, 9, Kind::Director, &[path(0, &rx)]).unwrap();
        again.send_all(NodeState::Active, 1, 100, (0, 0), 0);
        let r = recv(&rx, &key);
        assert_eq!(r.seq, 1);
        assert_ne!(r.boot_id, first.boot_id(), "a new process, a new boot id");
        assert!(r.boot_id != 0 && first.boot_id() != 0);
        // What the receiver's kernel does with it: taken at once.
        let last = heartbeat::Window {
            boot: first.boot_id(),
            prev_boot: 0,
            seq: 3,
            seen_ns: 1_000,
        };
        assert!(heartbeat::admit(Some(&last), r.boot_id, r.seq, 2_000, 0).is_ok());
    }

    #[test]
    fn an_echo_goes_out_on_its_path_with_this_nodes_id_and_the_given_sequence() {
        let (rx1, rx2) = (receiver(), receiver());
        let key = Key::from_bytes(&[7; 16]);
        let mut s = Sender::new(key, 9, Kind::Director, &[path(0, &rx1), path(1, &rx2)]).unwrap();
        assert_eq!(s.path_indices(), [0, 1]);
        s.send_echo(1, 41, NodeState::Standby, 3, 100, 77).unwrap();
        let r = recv(&rx2, &key);
        assert_eq!((r.kind, r.node_id, r.path, r.seq, r.sent_ns, r.epoch), (Kind::Echo, 9, 1, 41, 77, 3));
        assert_eq!(s.seq(), 0, "echoes do not use the heartbeat sequence");
        assert_eq!(s.send_echo(5, 1, NodeState::Standby, 3, 100, 0).unwrap_err().kind(), io::ErrorKind::NotFound);
    }

    /// A key rotation's middle step: the next heartbeat and echo are made
    /// under the new key, in the same boot, the sequence going on.
    #[test]
    fn a_new_key_takes_effect_at_the_next_heartbeat_in_the_same_boot() {
        let rx = receiver();
        let (old, new) = (Key::from_bytes(&[7; 16]), Key::from_bytes(&[8; 16]));
        let mut s = Sender::new(old, 9, Kind::Director, &[path(0, &rx)]).unwrap();
        s.send_all(NodeState::Active, 1, 100, (0, 0), 1);
        let first = recv(&rx, &old);
        s.set_key(new);
        s.send_all(NodeState::Active, 1, 100, (0, 0), 2);
        let mut buf = [0u8; 128];
        let n = rx.recv(&mut buf).unwrap();
        let packet = Packet::new_checked(&buf[..n]).unwrap();
        assert!(Repr::parse(&packet, &old).is_err(), "no longer under the old key");
        let second = Repr::parse(&packet, &new).expect("under the new key");
        assert_eq!((second.boot_id, second.seq), (first.boot_id, first.seq + 1));
        s.send_echo(0, 5, NodeState::Active, 1, 100, 3).unwrap();
        assert_eq!(recv(&rx, &new).kind, Kind::Echo, "echoes too");
    }

    #[test]
    fn boot_id_zero_is_refused() {
        let rx = receiver();
        assert!(Sender::with_boot_id(Key::default(), 9, Kind::Ivr, 0, &[path(0, &rx)]).is_err());
        let s = Sender::with_boot_id(Key::default(), 9, Kind::Ivr, 77, &[path(0, &rx)]).unwrap();
        assert_eq!((s.boot_id(), s.seq()), (77, 0));
    }
}
