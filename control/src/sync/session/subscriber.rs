//! The [`Subscriber`]: a standing-by node's end of a sync connection,
//! which applies the publisher's snapshot and deltas to its [`Store`] in
//! order, yields each change for the runtime to write into the kernel, and
//! acknowledges what it holds; a gap makes it ask for a resync.
//!
//! Sans-IO (see [`super`] for how to drive it): no sockets, clocks or
//! threads; it must not block, and its memory is its store and one frame.

use std::time::{Duration, Instant};

use super::SessionError;
use super::handshake::{
    HANDSHAKE_TIMEOUT, Handshake, check_peer_hello, hello_frame, is_wire_error, open_sealed,
    own_hello,
};
use crate::sync::store::Store;
use crate::sync::wire::{
    Ciphers, FLAG_STREAMING, FrameWriter, KeyRing, Kind, MAX_FRAME_LEN, Message, Nonce, Record,
    Repr, Role, SyncKeys,
};

/// Settings of a [`Subscriber`].
#[derive(Clone, Debug)]
pub struct SubscriberConfig {
    pub node_id: u32,
    /// The sync pre-shared key (`sync.key`) and, during a key rotation,
    /// the next one (`sync.next_key`).
    pub key: SyncKeys,
    pub keepalive_interval: Duration,
    pub idle_timeout: Duration,
    /// A resync request (Hello) unanswered this long is sent again.
    pub resync_timeout: Duration,
    /// A handshake not completed this long after the connection came up
    /// fails.
    pub handshake_timeout: Duration,
    /// The node ids of the directors this one syncs with (`node.peer_id`);
    /// a handshake from any other node id fails. Empty: any but its own.
    pub peers: Vec<u32>,
}

impl SubscriberConfig {
    /// Defaults: keepalives every second, 3 s idle, resync retried after
    /// 100 ms, 1 s for the handshake.
    pub fn new(node_id: u32, key: impl Into<SyncKeys>) -> SubscriberConfig {
        SubscriberConfig {
            node_id,
            key: key.into(),
            keepalive_interval: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(3),
            resync_timeout: Duration::from_millis(100),
            handshake_timeout: HANDSHAKE_TIMEOUT,
            peers: Vec::new(),
        }
    }
}

/// Counters of a [`Subscriber`], over its life.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SubscriberStats {
    pub frames_received: u64,
    pub bytes_received: u64,
    pub frames_sent: u64,
    pub bytes_sent: u64,
    /// Delta records applied.
    pub records_applied: u64,
    /// Snapshot records received.
    pub snapshot_records: u64,
    /// Snapshots completed.
    pub snapshots: u64,
    /// Records removed because a snapshot did not have them.
    pub swept: u64,
    /// Deltas that held nothing new.
    pub duplicates: u64,
    /// Frames that did not continue what this node holds.
    pub gaps: u64,
    /// Resync requests sent.
    pub resyncs: u64,
    /// Records of unknown types, skipped.
    pub unknown_records: u64,
    pub bad_frames: u64,
    pub protocol_errors: u64,
    pub connections: u64,
    /// Handshakes completed.
    pub handshakes: u64,
    /// Handshakes that failed (bad proof, bad frame, timeout).
    pub handshake_failures: u64,
}

/// Where a subscriber's connection stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubscriberState {
    Disconnected,
    /// Connected, the handshake under way.
    Handshake,
    /// Authenticated, waiting for the publisher's Hello.
    AwaitingHello,
    /// Waiting for or receiving a snapshot (or a resync).
    CatchingUp,
    /// Holding the publisher's stream and applying its deltas.
    InSync,
}

/// A change for the runtime to apply to its own tables (the kernel's
/// connection table, the call store), in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    /// The change's sequence; `None` for snapshot records and for the
    /// removals at a snapshot's end.
    pub seq: Option<u64>,
    pub record: Record,
}

#[derive(Debug)]
struct SnapshotIn {
    base: u64,
    id: u32,
    next_chunk: u32,
    records: u64,
    /// The publisher asked to keep the calls the snapshot does not carry.
    keep_calls: bool,
}

/// Where a connection's authentication stands.
#[derive(Debug)]
enum Auth {
    Handshake(Box<Handshake>),
    /// Both ends proved the key: sealed frames both ways.
    Open(Ciphers),
}

#[derive(Debug)]
struct SubConn {
    auth: Auth,
    hello_due: bool,
    /// The publisher's Hello arrived.
    peer_hello: bool,
    peer_node: u32,
    peer_stream: u64,
    max_epoch: u64,
    snapshot: Option<SnapshotIn>,
    /// When the pending resync request left.
    resync_at: Option<Instant>,
    /// Bytes of sealed frames received.
    received: u64,
    acked_received: u64,
    acked_seq: u64,
    last_sent: Instant,
    last_heard: Instant,
}

/// A standing-by node's end of a sync connection.
///
/// - Getters: [`state`](Self::state), [`stats`](Self::stats),
///   [`peer`](Self::peer), [`store`](Self::store),
///   [`last_applied`](Self::last_applied), [`stream`](Self::stream);
///   [`into_store`](Self::into_store) gives the tables up on a takeover.
/// - `handle_*(…, now)`: [`handle_frame`](Self::handle_frame) (a frame
///   from the publisher; returns the changes to apply),
///   [`handle_timeout`](Self::handle_timeout).
/// - Mutators: [`connected`](Self::connected),
///   [`disconnected`](Self::disconnected), [`set_epoch`](Self::set_epoch), [`set_keys`](Self::set_keys).
/// - `poll_*`: [`poll_transmit`](Self::poll_transmit) (Hello, Ack,
///   Keepalive), [`poll_timeout`](Self::poll_timeout).
#[derive(Debug)]
pub struct Subscriber {
    cfg: SubscriberConfig,
    keys: KeyRing,
    epoch: u64,
    store: Store,
    /// The publisher stream `store` is consistent with (0: none).
    stream: u64,
    last_applied: u64,
    link: Option<SubConn>,
    stats: SubscriberStats,
}

impl Subscriber {
    pub fn new(cfg: SubscriberConfig) -> Subscriber {
        Subscriber::with_store(cfg, Store::new())
    }

    /// A subscriber starting from tables it already has (a node that
    /// stepped down keeps its records: the snapshot then changes only what
    /// differs).
    pub fn with_store(cfg: SubscriberConfig, store: Store) -> Subscriber {
        Subscriber {
            keys: cfg.key.handshake_keys(),
            cfg,
            epoch: 0,
            store,
            stream: 0,
            last_applied: 0,
            link: None,
            stats: SubscriberStats::default(),
        }
    }

    pub fn set_epoch(&mut self, epoch: u64) {
        self.epoch = epoch;
    }

    /// New sync keys (a key rotation's step): the next handshakes use
    /// them; the session in progress goes on under its own keys.
    pub fn set_keys(&mut self, keys: SyncKeys) {
        self.keys = keys.handshake_keys();
        self.cfg.key = keys;
    }

    /// A connection to the publisher is up; `nonce` must be fresh and
    /// random. The handshake comes first: nothing is applied and no Hello
    /// leaves before the publisher proved the key.
    pub fn connected(&mut self, now: Instant, nonce: impl Into<Nonce>) {
        self.stats.connections += 1;
        let hs = Handshake::subscriber(
            self.cfg.node_id,
            self.epoch,
            self.keys.clone(),
            nonce.into(),
            now,
            self.cfg.handshake_timeout,
        )
        .expecting(&self.cfg.peers);
        self.link = Some(SubConn {
            auth: Auth::Handshake(Box::new(hs)),
            hello_due: false,
            peer_hello: false,
            peer_node: 0,
            peer_stream: 0,
            max_epoch: 0,
            snapshot: None,
            resync_at: None,
            received: 0,
            acked_received: 0,
            acked_seq: 0,
            last_sent: now,
            last_heard: now,
        });
    }

    /// The connection is gone. A snapshot cut short leaves the tables as
    /// they were plus what arrived; the next connection starts a new one.
    pub fn disconnected(&mut self) {
        self.link = None;
    }

    /// Handles one whole frame from the publisher; returns the changes to
    /// apply, in order.
    pub fn handle_frame(
        &mut self,
        bytes: &[u8],
        now: Instant,
    ) -> Result<Vec<Applied>, SessionError> {
        let Some(mut conn) = self.link.take() else {
            return Err(SessionError::NotConnected);
        };
        self.stats.frames_received += 1;
        self.stats.bytes_received += bytes.len() as u64;
        let ciphers = match &mut conn.auth {
            Auth::Handshake(hs) => {
                if let Err(e) = hs.handle_frame(bytes, now) {
                    self.stats.handshake_failures += 1;
                    self.count_error(&e);
                    return Err(e);
                }
                conn.last_heard = now;
                self.link = Some(conn);
                return Ok(Vec::new());
            }
            Auth::Open(c) => c,
        };
        let result = open_sealed(bytes, ciphers).and_then(|repr| {
            if repr.node_id != conn.peer_node {
                return Err(SessionError::PeerChanged {
                    was: conn.peer_node,
                    got: repr.node_id,
                });
            }
            if repr.epoch < conn.max_epoch {
                return Err(SessionError::StaleEpoch {
                    got: repr.epoch,
                    seen: conn.max_epoch,
                });
            }
            conn.max_epoch = repr.epoch;
            conn.last_heard = now;
            conn.received += bytes.len() as u64;
            self.on_frame(&mut conn, repr, now)
        });
        match result {
            Ok(applied) => {
                self.link = Some(conn);
                Ok(applied)
            }
            Err(e) => {
                self.count_error(&e);
                Err(e)
            }
        }
    }

    fn count_error(&mut self, e: &SessionError) {
        if is_wire_error(e) {
            self.stats.bad_frames += 1;
        } else {
            self.stats.protocol_errors += 1;
        }
    }

    fn gap(&mut self, conn: &mut SubConn, now: Instant) {
        self.stats.gaps += 1;
        if conn.resync_at.is_none() {
            conn.resync_at = Some(now);
            conn.hello_due = true;
            self.stats.resyncs += 1;
        }
    }

    fn holds_peer_stream(&self, conn: &SubConn) -> bool {
        conn.peer_hello
            && conn.snapshot.is_none()
            && self.stream != 0
            && self.stream == conn.peer_stream
    }

    fn on_frame(
        &mut self,
        conn: &mut SubConn,
        repr: Repr,
        now: Instant,
    ) -> Result<Vec<Applied>, SessionError> {
        let mut out = Vec::new();
        match repr.message {
            Message::Hello(h) => {
                check_peer_hello(&h, repr.node_id, self.cfg.node_id, Role::Publisher)?;
                if conn.peer_hello {
                    return Err(SessionError::Unexpected {
                        kind: Kind::Hello,
                        why: "a second Hello from the publisher",
                    });
                }
                conn.peer_hello = true;
                conn.peer_stream = h.stream;
            }
            Message::SnapshotBegin {
                base,
                stream,
                snapshot,
                keep_calls,
            } => {
                if stream != conn.peer_stream {
                    return Err(SessionError::Unexpected {
                        kind: Kind::SnapshotBegin,
                        why: "snapshot of another stream than the Hello's",
                    });
                }
                conn.snapshot = Some(SnapshotIn {
                    base,
                    id: snapshot,
                    next_chunk: 0,
                    records: 0,
                    keep_calls,
                });
                conn.resync_at = None;
                self.stream = 0;
                self.store.begin_sweep();
            }
            Message::SnapshotChunk {
                base,
                snapshot,
                index,
                records,
            } => {
                let Some(s) = conn
                    .snapshot
                    .as_mut()
                    .filter(|s| s.base == base && s.id == snapshot && s.next_chunk == index)
                else {
                    self.gap(conn, now);
                    return Ok(out);
                };
                s.next_chunk = s.next_chunk.wrapping_add(1);
                s.records += records.len() as u64;
                self.stats.snapshot_records += records.len() as u64;
                for record in records {
                    if let Record::Unknown { .. } = record {
                        self.stats.unknown_records += 1;
                    } else if self.store.apply(&record, now) {
                        out.push(Applied { seq: None, record });
                    }
                }
            }
            Message::SnapshotEnd {
                base,
                snapshot,
                chunks,
                records,
            } => {
                let complete = conn.snapshot.as_ref().is_some_and(|s| {
                    s.base == base
                        && s.id == snapshot
                        && s.next_chunk == chunks
                        && s.records == records
                });
                if !complete {
                    self.gap(conn, now);
                    return Ok(out);
                }
                let keep_calls = conn.snapshot.as_ref().is_some_and(|s| s.keep_calls);
                let removed = self.store.sweep_keeping(keep_calls);
                self.stats.swept += removed.len() as u64;
                self.stats.snapshots += 1;
                out.extend(
                    removed
                        .into_iter()
                        .map(|record| Applied { seq: None, record }),
                );
                conn.snapshot = None;
                conn.resync_at = None;
                self.stream = conn.peer_stream;
                self.last_applied = base;
            }
            Message::Delta { first, records } => {
                if !self.holds_peer_stream(conn) {
                    self.gap(conn, now);
                    return Ok(out);
                }
                // parse() checked that the records are there and the last fits.
                let last = first + (records.len() as u64 - 1);
                if last <= self.last_applied {
                    self.stats.duplicates += 1;
                    return Ok(out);
                }
                if first > self.last_applied + 1 {
                    self.gap(conn, now);
                    return Ok(out);
                }
                let skip = (self.last_applied + 1 - first) as usize;
                out.reserve(records.len() - skip);
                for (seq, record) in (first..).zip(records).skip(skip) {
                    if let Record::Unknown { .. } = record {
                        self.stats.unknown_records += 1;
                        continue;
                    }
                    self.store.apply(&record, now);
                    self.stats.records_applied += 1;
                    out.push(Applied {
                        seq: Some(seq),
                        record,
                    });
                }
                self.last_applied = last;
                conn.resync_at = None;
            }
            Message::Keepalive { seq } => {
                // A streaming publisher that sent more than this node holds:
                // a frame was lost.
                let streaming = repr.flags & FLAG_STREAMING != 0;
                if streaming && (!self.holds_peer_stream(conn) || seq > self.last_applied) {
                    self.gap(conn, now);
                }
            }
            Message::Ack { .. } => {
                return Err(SessionError::Unexpected {
                    kind: Kind::Ack,
                    why: "a subscriber sends Acks",
                });
            }
            m @ (Message::Init(_) | Message::Reply { .. } | Message::Confirm { .. }) => {
                // open_sealed() lets none through; here for completeness.
                return Err(SessionError::Unexpected {
                    kind: m.kind(),
                    why: "a handshake frame after the handshake",
                });
            }
        }
        Ok(out)
    }

    /// The last sequence this node holds of the publisher's stream, for
    /// its Acks (0: none).
    fn held(&self, conn: &SubConn) -> u64 {
        if self.holds_peer_stream(conn) {
            self.last_applied
        } else {
            0
        }
    }

    /// The next frame to write (Hello, Ack, Keepalive), if any.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Vec<u8>> {
        let mut conn = self.link.take()?;
        if let Auth::Handshake(hs) = &mut conn.auth {
            let out = hs.poll_transmit();
            if let Some(est) = hs.take_established() {
                conn.peer_node = est.peer_node;
                conn.max_epoch = est.peer_epoch;
                conn.auth = Auth::Open(est.ciphers);
                conn.hello_due = true;
                self.stats.handshakes += 1;
            }
            if let Some(frame) = &out {
                conn.last_sent = now;
                self.stats.frames_sent += 1;
                self.stats.bytes_sent += frame.len() as u64;
            }
            self.link = Some(conn);
            return out;
        }
        let out = self.transmit(&mut conn, now);
        if let Some(frame) = &out {
            conn.last_sent = now;
            self.stats.frames_sent += 1;
            self.stats.bytes_sent += frame.len() as u64;
        }
        self.link = Some(conn);
        out
    }

    /// The next sealed frame; only reached once the handshake is done.
    fn transmit(&mut self, conn: &mut SubConn, now: Instant) -> Option<Vec<u8>> {
        if conn.hello_due {
            conn.hello_due = false;
            let (stream, held) = if conn.snapshot.is_some() {
                (0, 0)
            } else {
                (self.stream, self.last_applied)
            };
            let hello = own_hello(Role::Subscriber, stream, held, conn.received);
            let (node, epoch) = (self.cfg.node_id, self.epoch);
            let Auth::Open(ciphers) = &mut conn.auth else {
                return None;
            };
            return Some(hello_frame(ciphers, node, epoch, &hello));
        }
        let held = self.held(conn);
        let kind = if conn.received > conn.acked_received || held > conn.acked_seq {
            Kind::Ack
        } else if now >= conn.last_sent + self.cfg.keepalive_interval {
            Kind::Keepalive
        } else {
            return None;
        };
        let mut w = FrameWriter::new(kind, self.cfg.node_id, self.epoch, held, MAX_FRAME_LEN);
        if kind == Kind::Ack {
            w.put_u64(conn.received);
            conn.acked_received = conn.received;
            conn.acked_seq = held;
        }
        let Auth::Open(ciphers) = &mut conn.auth else {
            return None;
        };
        Some(w.finish_sealed(&mut ciphers.send))
    }

    /// When to call [`Subscriber::handle_timeout`] (and then poll_transmit).
    pub fn poll_timeout(&self) -> Option<Instant> {
        let conn = self.link.as_ref()?;
        if let Auth::Handshake(hs) = &conn.auth {
            return hs.poll_timeout();
        }
        let mut t = conn.last_heard + self.cfg.idle_timeout;
        t = t.min(conn.last_sent + self.cfg.keepalive_interval);
        if let Some(r) = conn.resync_at {
            t = t.min(r + self.cfg.resync_timeout);
        }
        Some(t)
    }

    /// Checks the peer's liveness and repeats an unanswered resync request.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), SessionError> {
        let Some(conn) = self.link.as_mut() else {
            return Ok(());
        };
        if let Auth::Handshake(hs) = &mut conn.auth {
            if let Err(e) = hs.handle_timeout(now) {
                self.link = None;
                self.stats.handshake_failures += 1;
                return Err(e);
            }
            return Ok(());
        }
        if now >= conn.last_heard + self.cfg.idle_timeout {
            let silent = now - conn.last_heard;
            self.link = None;
            return Err(SessionError::PeerSilent(silent));
        }
        if let Some(r) = conn.resync_at
            && now >= r + self.cfg.resync_timeout
        {
            conn.resync_at = Some(now);
            conn.hello_due = true;
            self.stats.resyncs += 1;
        }
        Ok(())
    }

    pub fn state(&self) -> SubscriberState {
        match &self.link {
            None => SubscriberState::Disconnected,
            Some(SubConn {
                auth: Auth::Handshake(_),
                ..
            }) => SubscriberState::Handshake,
            Some(c) if !c.peer_hello => SubscriberState::AwaitingHello,
            Some(c) if self.holds_peer_stream(c) && c.resync_at.is_none() => {
                SubscriberState::InSync
            }
            Some(_) => SubscriberState::CatchingUp,
        }
    }
    /// The synced tables.
    pub fn store(&self) -> &Store {
        &self.store
    }
    /// The tables, for a node taking over (they seed its publisher's source).
    pub fn into_store(self) -> Store {
        self.store
    }
    /// The last sequence applied of [`Subscriber::stream`].
    pub fn last_applied(&self) -> u64 {
        self.last_applied
    }
    /// The publisher stream the tables are consistent with (0: none).
    pub fn stream(&self) -> u64 {
        self.stream
    }
    /// The publisher's node id and last epoch, once it proved the key.
    pub fn peer(&self) -> Option<(u32, u64)> {
        self.link
            .as_ref()
            .filter(|c| matches!(c.auth, Auth::Open(_)))
            .map(|c| (c.peer_node, c.max_epoch))
    }
    pub fn stats(&self) -> &SubscriberStats {
        &self.stats
    }
}
