//! The [`Subscriber`]: a standing-by node's end of a sync connection,
//! which applies the publisher's snapshot and deltas to its [`Store`] in
//! order, yields each change for the runtime to write into the kernel, and
//! acknowledges what it holds; a gap makes it ask for a resync.
//!
//! Sans-IO (see [`super`] for how to drive it): no sockets, clocks or
//! threads; it must not block, and its memory is its store and one frame.

use std::time::{Duration, Instant};

use tandem_common::heartbeat::Key;

use super::SessionError;
use super::handshake::{check_peer_hello, hello_frame, is_wire_error, open};
use crate::sync::store::Store;
use crate::sync::wire::{
    FLAG_STREAMING, FrameWriter, Hello, Kind, MAX_FRAME_LEN, Message, PROTOCOL, Record, Repr, Role,
    session_key,
};

/// Settings of a [`Subscriber`].
#[derive(Clone, Debug)]
pub struct SubscriberConfig {
    pub node_id: u32,
    /// The shared key (the heartbeat's).
    pub key: Key,
    pub keepalive_interval: Duration,
    pub idle_timeout: Duration,
    /// A resync request (Hello) unanswered this long is sent again.
    pub resync_timeout: Duration,
}

impl SubscriberConfig {
    /// Defaults: keepalives every second, 3 s idle, resync retried after 100 ms.
    pub fn new(node_id: u32, key: Key) -> SubscriberConfig {
        SubscriberConfig {
            node_id,
            key,
            keepalive_interval: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(3),
            resync_timeout: Duration::from_millis(100),
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
}

/// Where a subscriber's connection stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubscriberState {
    Disconnected,
    /// Connected, waiting for the publisher's Hello.
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
}

#[derive(Debug)]
struct SubConn {
    nonce: u64,
    hello_due: bool,
    session: Option<Key>,
    peer_node: u32,
    peer_stream: u64,
    peer_nonce: u64,
    max_epoch: u64,
    snapshot: Option<SnapshotIn>,
    /// When the pending resync request left.
    resync_at: Option<Instant>,
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
///   [`disconnected`](Self::disconnected), [`set_epoch`](Self::set_epoch).
/// - `poll_*`: [`poll_transmit`](Self::poll_transmit) (Hello, Ack,
///   Keepalive), [`poll_timeout`](Self::poll_timeout).
#[derive(Debug)]
pub struct Subscriber {
    cfg: SubscriberConfig,
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

    /// A connection to the publisher is up; `nonce` must be fresh and random.
    pub fn connected(&mut self, now: Instant, nonce: u64) {
        self.stats.connections += 1;
        self.link = Some(SubConn {
            nonce,
            hello_due: true,
            session: None,
            peer_node: 0,
            peer_stream: 0,
            peer_nonce: 0,
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
        let result = open(bytes, &self.cfg.key, conn.session.as_ref()).and_then(|repr| {
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
                if is_wire_error(&e) {
                    self.stats.bad_frames += 1;
                } else {
                    self.stats.protocol_errors += 1;
                }
                Err(e)
            }
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
        conn.snapshot.is_none() && self.stream != 0 && self.stream == conn.peer_stream
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
                if conn.session.is_some() {
                    if h.nonce != conn.peer_nonce {
                        return Err(SessionError::NonceChanged {
                            was: conn.peer_nonce,
                            got: h.nonce,
                        });
                    }
                } else {
                    conn.session = Some(session_key(&self.cfg.key, h.nonce, conn.nonce));
                    conn.peer_nonce = h.nonce;
                }
                conn.peer_node = repr.node_id;
                conn.peer_stream = h.stream;
            }
            Message::SnapshotBegin {
                base,
                stream,
                snapshot,
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
                let removed = self.store.sweep();
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
        let out = self.transmit(&mut conn, now);
        if let Some(frame) = &out {
            conn.last_sent = now;
            self.stats.frames_sent += 1;
            self.stats.bytes_sent += frame.len() as u64;
        }
        self.link = Some(conn);
        out
    }

    fn transmit(&mut self, conn: &mut SubConn, now: Instant) -> Option<Vec<u8>> {
        if conn.hello_due {
            conn.hello_due = false;
            let (stream, held) = if conn.snapshot.is_some() {
                (0, 0)
            } else {
                (self.stream, self.last_applied)
            };
            let hello = Hello {
                role: Role::Subscriber,
                protocol: PROTOCOL,
                max_frame: MAX_FRAME_LEN as u32,
                stream,
                last_seq: held,
                nonce: conn.nonce,
                received: conn.received,
            };
            return Some(hello_frame(
                &self.cfg.key,
                self.cfg.node_id,
                self.epoch,
                &hello,
            ));
        }
        let key = conn.session?;
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
        Some(w.finish(&key))
    }

    /// When to call [`Subscriber::handle_timeout`] (and then poll_transmit).
    pub fn poll_timeout(&self) -> Option<Instant> {
        let conn = self.link.as_ref()?;
        let mut t = conn.last_heard + self.cfg.idle_timeout;
        if conn.session.is_some() {
            t = t.min(conn.last_sent + self.cfg.keepalive_interval);
        }
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
            Some(c) if c.session.is_none() => SubscriberState::AwaitingHello,
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
    /// The publisher's node id and last epoch, once it said Hello.
    pub fn peer(&self) -> Option<(u32, u64)> {
        self.link
            .as_ref()
            .filter(|c| c.session.is_some())
            .map(|c| (c.peer_node, c.max_epoch))
    }
    pub fn stats(&self) -> &SubscriberStats {
        &self.stats
    }
}
