//! The [`Publisher`]: the serving node's end of a sync connection, which
//! numbers every change, keeps those not yet acknowledged in a bounded
//! window, and sends them as deltas, or a snapshot when the subscriber
//! cannot resume.
//!
//! Sans-IO (see [`super`] for how to drive it): no sockets, clocks or
//! threads; it must not block or grow past its window whatever the
//! subscriber does.

use std::collections::VecDeque;
use std::num::NonZeroU64;
use std::time::{Duration, Instant};

use tandem_common::heartbeat::Key;

use super::SessionError;
use super::handshake::{check_peer_hello, hello_frame, is_wire_error, open};
use crate::sync::store::{SnapshotCursor, SnapshotSource};
use crate::sync::wire::{
    self, FLAG_STREAMING, FrameWriter, Hello, Kind, MAX_FRAME_LEN, MIN_FRAME_LEN, Message,
    PROTOCOL, Record, Role, session_key,
};

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
///
/// - Getters: [`state`](Self::state), [`stats`](Self::stats),
///   [`peer`](Self::peer), [`last_seq`](Self::last_seq),
///   [`acked`](Self::acked), [`queue_len`](Self::queue_len),
///   [`queue_bytes`](Self::queue_bytes), [`out_of_date`](Self::out_of_date),
///   [`in_flight`](Self::in_flight), [`stream`](Self::stream),
///   [`epoch`](Self::epoch), [`config`](Self::config).
/// - `handle_*(…, now)`: [`handle_frame`](Self::handle_frame) (a frame
///   from the subscriber), [`handle_timeout`](Self::handle_timeout).
/// - Mutators: [`record`](Self::record) (a change),
///   [`connected`](Self::connected), [`disconnected`](Self::disconnected),
///   [`set_epoch`](Self::set_epoch), [`take_acked_times`](Self::take_acked_times)
///   (drains the lag samples).
/// - `poll_*`: [`poll_transmit`](Self::poll_transmit) (the next frame, given
///   the snapshot source), [`poll_timeout`](Self::poll_timeout).
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
        check_peer_hello(&h, node, self.cfg.node_id, Role::Subscriber)?;
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
            let hello = Hello {
                role: Role::Publisher,
                protocol: PROTOCOL,
                max_frame: MAX_FRAME_LEN as u32,
                stream: self.cfg.stream.get(),
                last_seq: self.next_seq - 1,
                nonce: conn.nonce,
                received: 0,
            };
            return Some(hello_frame(
                &self.cfg.key,
                self.cfg.node_id,
                self.epoch,
                &hello,
            ));
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
    /// When each change acknowledged since the last call was recorded
    /// (`ack time − record time` is the sync lag, bounded above).
    pub fn take_acked_times(&mut self) -> Vec<Instant> {
        std::mem::take(&mut self.acked_times)
    }
    /// The last sequence the subscriber is known to hold.
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

fn elapsed_ms(now: Instant, since: Instant) -> u32 {
    now.saturating_duration_since(since)
        .as_millis()
        .min(u32::MAX as u128) as u32
}
