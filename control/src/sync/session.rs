//! State-sync sessions: the [`Publisher`] on the serving node, which sends
//! every change of its flows, calls and IVR channels to a standing-by node,
//! and the [`Subscriber`] there, which applies them in order.
//!
//! Sans-IO in the style of quinn-proto: the runtime owns the TCP connection
//! and the clock. It calls `connected` with a fresh random nonce when a
//! connection is up, feeds every whole frame (cut with
//! [`super::wire::Deframer`]) to `handle_frame`, writes what `poll_transmit`
//! returns (calling it after every input until it returns `None`), calls
//! `handle_timeout` at `poll_timeout`, and `disconnected` when the
//! connection goes. Any error from `handle_frame` or `handle_timeout` means:
//! close the connection (the machine has already dropped it). This module
//! must not do I/O, read a clock, sleep, spawn, or block; its memory is
//! bounded whatever the peer does.
//!
//! # Sequences, acknowledgements, snapshots
//! Every recorded change gets the next sequence number of the publisher's
//! *stream* (a random id per publisher process). Deltas carry runs of
//! changes; the subscriber applies a delta only if it continues what it
//! holds, skips what it already has, and acknowledges the last sequence it
//! applied and the bytes it received. The publisher keeps the changes not
//! yet acknowledged (its *window*, bounded in records and bytes) so that a
//! subscriber reconnecting with `Hello(stream, last sequence)` resumes from
//! the next one. When that is impossible (another stream, or changes it
//! needs already dropped) it gets a *snapshot*: SnapshotBegin(base),
//! chunks of the current records walked from a [`SnapshotSource`],
//! SnapshotEnd(base), then every change after `base`. The walk is fuzzy (the
//! tables may change between chunks), which is safe because upserts and
//! removals are idempotent and every change after `base` follows the
//! snapshot. At SnapshotEnd the subscriber removes what the snapshot did
//! not mention.
//!
//! # Bounded memory
//! A slow or dead subscriber never blocks the publisher. Bytes in flight
//! (sent and not acknowledged as received) are capped, so the runtime's
//! send queue is bounded; when the window overflows, the publisher drops
//! it whole, marks the subscriber out of date and stops keeping changes
//! (the next snapshot covers them). Once the subscriber has caught up on
//! what was in flight, it gets a new snapshot.
//!
//! A publisher serves one subscriber; a node with several standbys runs
//! one publisher per peer (node ids are on the wire; nothing assumes two).

use std::collections::VecDeque;
use std::num::NonZeroU64;
use std::time::{Duration, Instant};

use tandem_common::heartbeat::Key;

use super::store::{SnapshotCursor, SnapshotSource, Store};
use super::wire::{
    self, FLAG_STREAMING, Frame, FrameWriter, Hello, Kind, MAX_FRAME_LEN, MIN_FRAME_LEN, Message,
    PROTOCOL, Record, Repr, Role, session_key,
};

/// Why a session ended. Every variant but `NotConnected` means the
/// machine dropped the connection: close it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error("bad frame: {0}")]
    Frame(#[from] wire::Error),
    #[error("{0} bytes after the end of the frame")]
    TrailingBytes(usize),
    #[error("unexpected {kind:?} frame: {why}")]
    Unexpected { kind: Kind, why: &'static str },
    #[error("peer speaks sync protocol {0}, this node speaks {PROTOCOL}")]
    Protocol(u16),
    #[error("peer says it is a {got:?}, expected a {expected:?}")]
    Role { got: Role, expected: Role },
    #[error("peer claims this node's id {0}")]
    SameNodeId(u32),
    #[error("peer accepts frames of at most {0} bytes, below the minimum {MIN_FRAME_LEN}")]
    MaxFrame(u32),
    #[error("peer changed its nonce within the connection: {was:#x}, then {got:#x}")]
    NonceChanged { was: u64, got: u64 },
    #[error("ack of sequence {got}, beyond the last recorded {last}")]
    AckBeyond { got: u64, last: u64 },
    #[error("frame of epoch {got} after epoch {seen} on this connection")]
    StaleEpoch { got: u64, seen: u64 },
    #[error("peer silent for {0:?}")]
    PeerSilent(Duration),
    #[error("no connection")]
    NotConnected,
}

/// Parses one whole frame, authenticated under the shared key (Hello) or
/// the session key (everything else).
fn open(bytes: &[u8], shared: &Key, session: Option<&Key>) -> Result<Repr, SessionError> {
    // Magic, version and length first: garbage is reported as such.
    wire::peek_frame_len(bytes)?;
    let frame = Frame::new_checked(bytes)?;
    if bytes.len() > frame.frame_len() {
        return Err(SessionError::TrailingBytes(bytes.len() - frame.frame_len()));
    }
    let key = if frame.kind() == Kind::Hello as u8 {
        shared
    } else {
        match session {
            Some(k) => k,
            None => {
                // Report garbage as garbage; a well-formed frame as out of place.
                let kind = match Kind::from_u8(frame.kind()) {
                    Some(k) if frame.magic() == wire::MAGIC && frame.version() == wire::VERSION => {
                        k
                    }
                    _ => {
                        return Err(Repr::parse(&frame, shared)
                            .err()
                            .unwrap_or(wire::Error::BadMac)
                            .into());
                    }
                };
                return Err(SessionError::Unexpected {
                    kind,
                    why: "before the peer's Hello",
                });
            }
        }
    };
    Ok(Repr::parse(&frame, key)?)
}

fn is_wire_error(e: &SessionError) -> bool {
    matches!(e, SessionError::Frame(_) | SessionError::TrailingBytes(_))
}

fn elapsed_ms(now: Instant, since: Instant) -> u32 {
    now.saturating_duration_since(since)
        .as_millis()
        .min(u32::MAX as u128) as u32
}

// ---- publisher ------------------------------------------------------------

/// Settings of a [`Publisher`].
#[derive(Clone, Debug)]
pub struct PublisherConfig {
    pub node_id: u32,
    /// The shared key (the heartbeat's).
    pub key: Key,
    /// This process's stream id: random, drawn once per start.
    pub stream: NonZeroU64,
    /// A delta leaves once it holds this many records…
    pub batch_records: usize,
    /// …or when its oldest record waited this long.
    pub max_delay: Duration,
    /// Changes kept for a resume, at most (the queue bound). A kept change
    /// takes about 170 bytes of memory plus a call id.
    pub window_records: usize,
    /// Bytes of changes kept, at most, counted as they go on the wire.
    pub window_bytes: usize,
    /// Bytes sent and not acknowledged as received, at most (one frame may
    /// go over).
    pub max_in_flight: usize,
    /// Frames sent are at most this long (and at most what the subscriber
    /// accepts): smaller snapshot chunks leave room for other traffic.
    pub max_frame: usize,
    /// A keepalive leaves after this long without sending.
    pub keepalive_interval: Duration,
    /// The connection is dead after this long without a frame from the peer.
    pub idle_timeout: Duration,
}

impl PublisherConfig {
    /// Defaults: deltas of 256 records or 2 ms, a window of 65,536 changes
    /// or 8 MiB, 1 MiB in flight, keepalives every second, 3 s idle.
    pub fn new(node_id: u32, key: Key, stream: NonZeroU64) -> PublisherConfig {
        PublisherConfig {
            node_id,
            key,
            stream,
            batch_records: 256,
            max_delay: Duration::from_millis(2),
            window_records: 65_536,
            window_bytes: 8 << 20,
            max_in_flight: 1 << 20,
            max_frame: MAX_FRAME_LEN,
            keepalive_interval: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(3),
        }
    }
}

/// Counters of a [`Publisher`], over its life.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PublisherStats {
    pub frames_sent: u64,
    pub bytes_sent: u64,
    pub frames_received: u64,
    pub bytes_received: u64,
    /// Changes recorded.
    pub records: u64,
    /// Records sent in deltas (resent ones again).
    pub records_sent: u64,
    /// Records sent in snapshot chunks.
    pub snapshot_records: u64,
    /// Snapshots begun.
    pub snapshots: u64,
    /// Connections (or resyncs) that resumed without a snapshot.
    pub resumes: u64,
    /// Times the window overflowed and was dropped.
    pub overflows: u64,
    /// Frames that did not parse or authenticate.
    pub bad_frames: u64,
    /// Frames that parsed but broke the protocol.
    pub protocol_errors: u64,
    pub connections: u64,
}

/// Where a publisher's connection stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PublisherState {
    Disconnected,
    /// Connected, waiting for the subscriber's Hello.
    AwaitingHello,
    /// Sending a snapshot (or about to).
    Snapshot,
    /// Sending deltas.
    Streaming,
}

#[derive(Debug)]
struct Logged {
    seq: u64,
    at: Instant,
    len: usize,
    record: Record,
}

#[derive(Debug)]
struct SnapshotOut {
    base: u64,
    id: u32,
    cursor: SnapshotCursor,
    chunks: u32,
    records: u64,
}

#[derive(Debug)]
enum Phase {
    AwaitHello,
    NeedSnapshot,
    Snapshot(SnapshotOut),
    Streaming,
}

#[derive(Debug)]
struct PubConn {
    nonce: u64,
    hello_due: bool,
    session: Option<Key>,
    peer_node: u32,
    peer_epoch: u64,
    peer_nonce: u64,
    peer_max_frame: usize,
    phase: Phase,
    /// Streaming: the last sequence sent on this connection.
    sent_upto: u64,
    bytes_sent: u64,
    peer_received: u64,
    last_sent: Instant,
    last_heard: Instant,
}

impl PubConn {
    fn in_flight(&self) -> u64 {
        self.bytes_sent.saturating_sub(self.peer_received)
    }
}

/// The serving node's end of a sync connection.
#[derive(Debug)]
pub struct Publisher {
    cfg: PublisherConfig,
    epoch: u64,
    /// Sequence of the next change.
    next_seq: u64,
    /// Changes not known to be held by the subscriber, with contiguous
    /// sequences ending at `next_seq - 1` (unless `out_of_date`).
    log: VecDeque<Logged>,
    log_bytes: usize,
    /// The subscriber needs a snapshot; changes are not kept meanwhile.
    out_of_date: bool,
    /// The last sequence the subscriber holds, as far as is known.
    acked: u64,
    snapshot_id: u32,
    link: Option<PubConn>,
    stats: PublisherStats,
    /// When the changes the last acks covered were recorded (for the
    /// runtime's lag measurement; at most [`ACKED_TIMES`] kept).
    acked_times: Vec<Instant>,
}

/// Record times kept for [`Publisher::take_acked_times`] between calls.
const ACKED_TIMES: usize = 1 << 16;

impl Publisher {
    pub fn new(cfg: PublisherConfig) -> Publisher {
        let cfg = PublisherConfig {
            batch_records: cfg.batch_records.max(1),
            ..cfg
        };
        Publisher {
            cfg,
            epoch: 0,
            next_seq: 1,
            log: VecDeque::new(),
            log_bytes: 0,
            // Nobody holds anything of a new stream.
            out_of_date: true,
            acked: 0,
            snapshot_id: 0,
            link: None,
            stats: PublisherStats::default(),
            acked_times: Vec::new(),
        }
    }

    /// The epoch sent in every frame from now on.
    pub fn set_epoch(&mut self, epoch: u64) {
        self.epoch = epoch;
    }

    /// Records a change (apply it to the snapshot source first); returns
    /// its sequence number. Never blocks: past the window, the subscriber
    /// is marked out of date. Fails only for a record that cannot be sent
    /// (see [`Record::check`]).
    pub fn record(&mut self, record: Record, now: Instant) -> Result<u64, wire::Error> {
        record.check()?;
        let seq = self.next_seq;
        self.next_seq += 1;
        self.stats.records += 1;
        if self.out_of_date {
            return Ok(seq);
        }
        let len = record.buffer_len();
        if self.log.len() >= self.cfg.window_records || self.log_bytes + len > self.cfg.window_bytes
        {
            self.overflow();
            return Ok(seq);
        }
        self.log.push_back(Logged {
            seq,
            at: now,
            len,
            record,
        });
        self.log_bytes += len;
        Ok(seq)
    }

    fn overflow(&mut self) {
        self.log.clear();
        self.log_bytes = 0;
        self.out_of_date = true;
        self.stats.overflows += 1;
        if let Some(c) = &mut self.link
            && matches!(c.phase, Phase::Streaming | Phase::Snapshot(_))
        {
            c.phase = Phase::NeedSnapshot;
        }
    }

    fn trim(&mut self) {
        while let Some(front) = self.log.front() {
            if front.seq > self.acked {
                break;
            }
            self.log_bytes -= front.len;
            self.log.pop_front();
        }
    }

    /// A connection to the subscriber is up; `nonce` must be fresh and
    /// random. Replaces any previous connection.
    pub fn connected(&mut self, now: Instant, nonce: u64) {
        self.stats.connections += 1;
        self.link = Some(PubConn {
            nonce,
            hello_due: true,
            session: None,
            peer_node: 0,
            peer_epoch: 0,
            peer_nonce: 0,
            peer_max_frame: MIN_FRAME_LEN,
            phase: Phase::AwaitHello,
            sent_upto: 0,
            bytes_sent: 0,
            peer_received: 0,
            last_sent: now,
            last_heard: now,
        });
    }

    /// The connection is gone. The window is kept for a resume.
    pub fn disconnected(&mut self) {
        self.link = None;
    }

    /// Handles one whole frame from the subscriber.
    pub fn handle_frame(&mut self, bytes: &[u8], now: Instant) -> Result<(), SessionError> {
        let Some(mut conn) = self.link.take() else {
            return Err(SessionError::NotConnected);
        };
        self.stats.frames_received += 1;
        self.stats.bytes_received += bytes.len() as u64;
        let result = open(bytes, &self.cfg.key, conn.session.as_ref()).and_then(|repr| {
            conn.last_heard = now;
            conn.peer_epoch = repr.epoch;
            match repr.message {
                Message::Hello(h) => self.on_hello(&mut conn, repr.node_id, h),
                Message::Ack { seq, received } => self.on_ack(&mut conn, seq, received),
                Message::Keepalive { .. } => Ok(()),
                m => Err(SessionError::Unexpected {
                    kind: m.kind(),
                    why: "a publisher takes only Hello, Ack and Keepalive",
                }),
            }
        });
        match result {
            Ok(()) => {
                self.link = Some(conn);
                Ok(())
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

    fn on_hello(&mut self, conn: &mut PubConn, node: u32, h: Hello) -> Result<(), SessionError> {
        if h.role != Role::Subscriber {
            return Err(SessionError::Role {
                got: h.role,
                expected: Role::Subscriber,
            });
        }
        if h.protocol != PROTOCOL {
            return Err(SessionError::Protocol(h.protocol));
        }
        if node == self.cfg.node_id {
            return Err(SessionError::SameNodeId(node));
        }
        if (h.max_frame as usize) < MIN_FRAME_LEN {
            return Err(SessionError::MaxFrame(h.max_frame));
        }
        if conn.session.is_none() {
            conn.session = Some(session_key(&self.cfg.key, conn.nonce, h.nonce));
            conn.peer_nonce = h.nonce;
        } else if h.nonce != conn.peer_nonce {
            return Err(SessionError::NonceChanged {
                was: conn.peer_nonce,
                got: h.nonce,
            });
        } else {
            // A resync: what the subscriber has not received by now is lost.
            conn.bytes_sent = h.received;
        }
        conn.peer_received = h.received;
        conn.peer_node = node;
        conn.peer_max_frame = (h.max_frame as usize)
            .min(self.cfg.max_frame)
            .clamp(MIN_FRAME_LEN, MAX_FRAME_LEN);
        let last = self.next_seq - 1;
        let held = h.last_seq;
        let resumable = h.stream == self.cfg.stream.get()
            && !self.out_of_date
            && held <= last
            && (held == last || self.log.front().is_some_and(|f| f.seq <= held + 1));
        if resumable {
            self.acked = held;
            self.trim();
            conn.sent_upto = held;
            conn.phase = Phase::Streaming;
            self.stats.resumes += 1;
        } else {
            conn.phase = Phase::NeedSnapshot;
        }
        Ok(())
    }

    fn on_ack(&mut self, conn: &mut PubConn, seq: u64, received: u64) -> Result<(), SessionError> {
        conn.peer_received = conn.peer_received.max(received);
        let last = self.next_seq - 1;
        if seq > last {
            return Err(SessionError::AckBeyond { got: seq, last });
        }
        if matches!(conn.phase, Phase::Streaming) && seq > self.acked {
            for l in self.log.iter().take_while(|l| l.seq <= seq) {
                if l.seq > self.acked && self.acked_times.len() < ACKED_TIMES {
                    self.acked_times.push(l.at);
                }
            }
            self.acked = seq;
            self.trim();
            conn.sent_upto = conn.sent_upto.max(seq);
        }
        Ok(())
    }

    /// The next frame to write, if any. Call after every input until it
    /// returns `None`. `source` must reflect every change recorded so far.
    pub fn poll_transmit(&mut self, now: Instant, source: &dyn SnapshotSource) -> Option<Vec<u8>> {
        let mut conn = self.link.take()?;
        let out = self.transmit(&mut conn, now, source);
        if let Some(frame) = &out {
            conn.bytes_sent += frame.len() as u64;
            conn.last_sent = now;
            self.stats.frames_sent += 1;
            self.stats.bytes_sent += frame.len() as u64;
        }
        self.link = Some(conn);
        out
    }

    fn writer(&self, conn: &PubConn, kind: Kind, seq: u64) -> FrameWriter {
        FrameWriter::new(kind, self.cfg.node_id, self.epoch, seq, conn.peer_max_frame)
    }

    fn transmit(
        &mut self,
        conn: &mut PubConn,
        now: Instant,
        source: &dyn SnapshotSource,
    ) -> Option<Vec<u8>> {
        if conn.hello_due {
            conn.hello_due = false;
            let mut w = FrameWriter::new(
                Kind::Hello,
                self.cfg.node_id,
                self.epoch,
                self.next_seq - 1,
                MAX_FRAME_LEN,
            );
            w.put_u16(PROTOCOL);
            w.put_u8(Role::Publisher as u8);
            w.put_u8(0);
            w.put_u32(MAX_FRAME_LEN as u32);
            w.put_u64(self.cfg.stream.get());
            w.put_u64(conn.nonce);
            w.put_u64(0);
            return Some(w.finish(&self.cfg.key));
        }
        let key = conn.session?;
        if conn.in_flight() < self.cfg.max_in_flight as u64 {
            match conn.phase {
                Phase::AwaitHello => {}
                Phase::NeedSnapshot => return Some(self.snapshot_begin(conn, &key)),
                Phase::Snapshot(_) => return Some(self.snapshot_next(conn, &key, now, source)),
                Phase::Streaming => {
                    if let Some(f) = self.delta(conn, &key, now) {
                        return Some(f);
                    }
                }
            }
        }
        // Even into a full pipe: it is small and tells what was sent.
        if now >= conn.last_sent + self.cfg.keepalive_interval {
            let streaming = matches!(conn.phase, Phase::Streaming);
            let seq = if streaming { conn.sent_upto } else { 0 };
            let mut w = self.writer(conn, Kind::Keepalive, seq);
            if streaming {
                w.set_flags(FLAG_STREAMING);
            }
            return Some(w.finish(&key));
        }
        None
    }

    fn snapshot_begin(&mut self, conn: &mut PubConn, key: &Key) -> Vec<u8> {
        // Every change so far is in the source: the log restarts after it.
        let base = self.next_seq - 1;
        self.log.clear();
        self.log_bytes = 0;
        self.out_of_date = false;
        self.acked = base;
        self.snapshot_id = self.snapshot_id.wrapping_add(1);
        self.stats.snapshots += 1;
        conn.phase = Phase::Snapshot(SnapshotOut {
            base,
            id: self.snapshot_id,
            cursor: SnapshotCursor::Start,
            chunks: 0,
            records: 0,
        });
        let mut w = self.writer(conn, Kind::SnapshotBegin, base);
        w.put_u64(self.cfg.stream.get());
        w.put_u32(self.snapshot_id);
        w.put_u32(0);
        w.finish(key)
    }

    fn snapshot_next(
        &mut self,
        conn: &mut PubConn,
        key: &Key,
        now: Instant,
        source: &dyn SnapshotSource,
    ) -> Vec<u8> {
        let (node, epoch, max) = (self.cfg.node_id, self.epoch, conn.peer_max_frame);
        let Phase::Snapshot(s) = &mut conn.phase else {
            // transmit() only calls this in the Snapshot phase.
            return Vec::new();
        };
        if s.cursor != SnapshotCursor::Done {
            let mut w = FrameWriter::new(Kind::SnapshotChunk, node, epoch, s.base, max);
            w.put_u32(s.id);
            w.put_u32(s.chunks);
            let mut n = 0u64;
            source.visit(&mut s.cursor, now, &mut |r| {
                if r.check().is_err() {
                    return true; // unsendable: skipped
                }
                let fits = w.push_record(r);
                n += fits as u64;
                fits
            });
            if n == 0 {
                // Nothing left (or a source that stopped without saying so).
                s.cursor = SnapshotCursor::Done;
            } else {
                s.chunks += 1;
                s.records += n;
                self.stats.snapshot_records += n;
                return w.finish(key);
            }
        }
        let mut w = FrameWriter::new(Kind::SnapshotEnd, node, epoch, s.base, max);
        w.put_u32(s.id);
        w.put_u32(s.chunks);
        w.put_u64(s.records);
        conn.sent_upto = s.base;
        conn.phase = Phase::Streaming;
        w.finish(key)
    }

    fn delta(&mut self, conn: &mut PubConn, key: &Key, now: Instant) -> Option<Vec<u8>> {
        let last = self.next_seq - 1;
        if self.out_of_date || conn.sent_upto >= last {
            return None;
        }
        let front = self.log.front()?.seq;
        let start = usize::try_from((conn.sent_upto + 1).checked_sub(front)?).ok()?;
        let oldest = self.log.get(start)?;
        if self.log.len() - start < self.cfg.batch_records && now < oldest.at + self.cfg.max_delay {
            return None;
        }
        let mut w = self.writer(conn, Kind::Delta, conn.sent_upto + 1);
        let mut n = 0u64;
        for e in self.log.range(start..).take(self.cfg.batch_records) {
            if !w.push_record_aged(&e.record, elapsed_ms(now, e.at)) {
                break;
            }
            n += 1;
        }
        if n == 0 {
            return None;
        }
        conn.sent_upto += n;
        self.stats.records_sent += n;
        Some(w.finish(key))
    }

    /// When to call [`Publisher::handle_timeout`] (and then poll_transmit).
    pub fn poll_timeout(&self) -> Option<Instant> {
        let conn = self.link.as_ref()?;
        let mut t = conn.last_heard + self.cfg.idle_timeout;
        if conn.session.is_some() {
            t = t.min(conn.last_sent + self.cfg.keepalive_interval);
        }
        let waiting = matches!(conn.phase, Phase::Streaming)
            && !self.out_of_date
            && conn.in_flight() < self.cfg.max_in_flight as u64;
        if waiting
            && let Some(front) = self.log.front()
            && let Some(oldest) = usize::try_from((conn.sent_upto + 1).saturating_sub(front.seq))
                .ok()
                .and_then(|i| self.log.get(i))
        {
            t = t.min(oldest.at + self.cfg.max_delay);
        }
        Some(t)
    }

    /// Checks the peer's liveness: silent for the idle timeout → the
    /// connection is dropped and the error says so.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), SessionError> {
        if let Some(conn) = &self.link
            && now >= conn.last_heard + self.cfg.idle_timeout
        {
            let silent = now - conn.last_heard;
            self.link = None;
            return Err(SessionError::PeerSilent(silent));
        }
        Ok(())
    }

    pub fn state(&self) -> PublisherState {
        match self.link.as_ref().map(|c| &c.phase) {
            None => PublisherState::Disconnected,
            Some(Phase::AwaitHello) => PublisherState::AwaitingHello,
            Some(Phase::NeedSnapshot | Phase::Snapshot(_)) => PublisherState::Snapshot,
            Some(Phase::Streaming) => PublisherState::Streaming,
        }
    }
    /// Changes kept (the bounded queue), at most `window_records`.
    pub fn queue_len(&self) -> usize {
        self.log.len()
    }
    /// Bytes of changes kept, at most `window_bytes`.
    pub fn queue_bytes(&self) -> usize {
        self.log_bytes
    }
    /// Does the subscriber need a snapshot?
    pub fn out_of_date(&self) -> bool {
        self.out_of_date
    }
    /// The last sequence the subscriber is known to hold.
    /// When each change acknowledged since the last call was recorded
    /// (`ack time − record time` is the sync lag, bounded above).
    pub fn take_acked_times(&mut self) -> Vec<Instant> {
        std::mem::take(&mut self.acked_times)
    }

    pub fn acked(&self) -> u64 {
        self.acked
    }
    /// The last sequence recorded.
    pub fn last_seq(&self) -> u64 {
        self.next_seq - 1
    }
    /// Bytes sent and not yet acknowledged as received.
    pub fn in_flight(&self) -> u64 {
        self.link.as_ref().map_or(0, PubConn::in_flight)
    }
    pub fn stream(&self) -> u64 {
        self.cfg.stream.get()
    }
    pub fn epoch(&self) -> u64 {
        self.epoch
    }
    /// The subscriber's node id and last epoch, once it said Hello.
    pub fn peer(&self) -> Option<(u32, u64)> {
        self.link
            .as_ref()
            .filter(|c| c.session.is_some())
            .map(|c| (c.peer_node, c.peer_epoch))
    }
    pub fn stats(&self) -> &PublisherStats {
        &self.stats
    }
    pub fn config(&self) -> &PublisherConfig {
        &self.cfg
    }
}

// ---- subscriber -----------------------------------------------------------

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
                if h.role != Role::Publisher {
                    return Err(SessionError::Role {
                        got: h.role,
                        expected: Role::Publisher,
                    });
                }
                if h.protocol != PROTOCOL {
                    return Err(SessionError::Protocol(h.protocol));
                }
                if repr.node_id == self.cfg.node_id {
                    return Err(SessionError::SameNodeId(repr.node_id));
                }
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
            let mut w = FrameWriter::new(
                Kind::Hello,
                self.cfg.node_id,
                self.epoch,
                held,
                MAX_FRAME_LEN,
            );
            w.put_u16(PROTOCOL);
            w.put_u8(Role::Subscriber as u8);
            w.put_u8(0);
            w.put_u32(MAX_FRAME_LEN as u32);
            w.put_u64(stream);
            w.put_u64(conn.nonce);
            w.put_u64(conn.received);
            return Some(w.finish(&self.cfg.key));
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

#[cfg(test)]
mod tests;
