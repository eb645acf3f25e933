//! Sends this node's heartbeats on every configured path: one fixed-size,
//! authenticated datagram (`tandem_common::heartbeat`) per path per
//! interval, to the peer's heartbeat port. The peer's XDP program verifies
//! and records them; nothing here receives.
//!
//! The sequence number starts from the wall clock's nanoseconds and grows
//! by one per datagram, so that a restarted daemon continues above what
//! the peer's kernel last recorded (which refuses anything not above it).

use std::{
    io,
    net::{SocketAddr, UdpSocket},
    time::{SystemTime, UNIX_EPOCH},
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
    seq: u64,
    paths: Vec<Path>,
}

/// What one round of sends did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Round {
    pub sent: u32,
    pub failed: u32,
}

impl Sender {
    /// Opens one non-blocking UDP socket per path.
    pub fn new(key: Key, node_id: u32, kind: Kind, paths: &[PathSpec]) -> io::Result<Sender> {
        let mut out = Vec::with_capacity(paths.len());
        for spec in paths {
            let socket = UdpSocket::bind(SocketAddr::new(spec.local.ip(), 0)).map_err(|e| {
                io::Error::new(e.kind(), format!("heartbeat path {}: binding {}: {e}", spec.index, spec.local.ip()))
            })?;
            socket.set_nonblocking(true)?;
            out.push(Path { spec: spec.clone(), socket, sent: 0, failed: 0 });
        }
        let seq = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1);
        Ok(Sender { key, node_id, kind, seq, paths: out })
    }

    /// Sends one heartbeat on every path. A path that fails (link down,
    /// no route) is counted; the others still get theirs.
    pub fn send_all(&mut self, state: NodeState, epoch: u64, priority: u8, load: (u32, u32), now_ns: u64) -> Round {
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
                seq: self.seq,
                sent_ns: now_ns,
                active_channels: load.0,
                capacity: load.1,
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

    /// Per path: (index, sent, failed).
    pub fn stats(&self) -> Vec<(u8, u64, u64)> {
        self.paths.iter().map(|p| (p.spec.index, p.sent, p.failed)).collect()
    }

    pub fn seq(&self) -> u64 {
        self.seq
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn heartbeats_go_out_on_every_path_with_increasing_sequence() {
        let rx1 = UdpSocket::bind("127.0.0.1:0").unwrap();
        let rx2 = UdpSocket::bind("127.0.0.1:0").unwrap();
        for s in [&rx1, &rx2] {
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        }
        let key = Key::from_bytes(&[7; 16]);
        let paths = [
            PathSpec { index: 0, local: "127.0.0.1:0".parse().unwrap(), peer: rx1.local_addr().unwrap() },
            PathSpec { index: 1, local: "127.0.0.1:0".parse().unwrap(), peer: rx2.local_addr().unwrap() },
        ];
        let mut s = Sender::new(key, 9, Kind::Director, &paths).unwrap();
        let r = s.send_all(NodeState::Standby, 3, 100, (1, 2), 42);
        assert_eq!(r, Round { sent: 2, failed: 0 });
        let mut seqs = Vec::new();
        for (rx, path) in [(&rx1, 0u8), (&rx2, 1u8)] {
            let mut buf = [0u8; 128];
            let n = rx.recv(&mut buf).unwrap();
            assert_eq!(n, heartbeat::LEN);
            let repr = Repr::parse(&Packet::new_checked(&buf[..n]).unwrap(), &key).unwrap();
            assert_eq!((repr.node_id, repr.path, repr.state, repr.epoch, repr.priority), (9, path, NodeState::Standby, 3, 100));
            assert_eq!((repr.active_channels, repr.capacity, repr.sent_ns), (1, 2, 42));
            seqs.push(repr.seq);
        }
        assert!(seqs[1] > seqs[0]);
        assert!(seqs[0] > 1_600_000_000_000_000_000, "sequence starts from the wall clock");
    }
}
