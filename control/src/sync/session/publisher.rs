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

use super::SessionError;
use super::handshake::{
    Established, HANDSHAKE_TIMEOUT, Handshake, check_peer_hello, hello_frame, is_wire_error,
    open_sealed, own_hello,
};
use crate::sync::store::{SnapshotCursor, SnapshotSource};
use crate::sync::wire::{
    self, Ciphers, FLAG_STREAMING, FrameWriter, Hello, KeyRing, Kind, MAX_FRAME_LEN, MIN_FRAME_LEN,
    Message, Nonce, Record, Role, SyncKeys,
};

/// Settings of a [`Publisher`].
#[derive(Clone, Debug)]
pub struct PublisherConfig {
    pub node_id: u32,
    /// The sync pre-shared key (`sync.key`) and, during a key rotation,
    /// the next one (`sync.next_key`).
    pub key: SyncKeys,
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
    /// Bytes sent (sealed) and not acknowledged as received, at most (one
    /// frame may go over).
    pub max_in_flight: usize,
    /// Frames sent are at most this long (and at most what the subscriber
    /// accepts): smaller snapshot chunks leave room for other traffic.
    pub max_frame: usize,
    /// A keepalive leaves after this long without sending.
    pub keepalive_interval: Duration,
    /// The connection is dead after this long without a frame from the peer.
    pub idle_timeout: Duration,
    /// A handshake not completed this long after the connection came up
    /// fails.
    pub handshake_timeout: Duration,
    /// The node ids of the directors this one syncs with (`node.peer_id`);
    /// a handshake from any other node id fails. Empty: any but its own.
    pub peers: Vec<u32>,
}

impl PublisherConfig {
    /// Defaults: deltas of 256 records or 2 ms, a window of 65,536 changes
    /// or 8 MiB, 1 MiB in flight, keepalives every second, 3 s idle, 1 s
    /// for the handshake.
    pub fn new(node_id: u32, key: impl Into<SyncKeys>, stream: NonZeroU64) -> PublisherConfig {
        PublisherConfig {
            node_id,
            key: key.into(),
            stream,
            batch_records: 256,
            max_delay: Duration::from_millis(2),
            window_records: 65_536,
            window_bytes: 8 << 20,
            max_in_flight: 1 << 20,
            max_frame: MAX_FRAME_LEN,
            keepalive_interval: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(3),
            handshake_timeout: HANDSHAKE_TIMEOUT,
            peers: Vec::new(),
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
    /// Handshakes this machine completed (or adopted).
    pub handshakes: u64,
    /// Handshakes that failed (bad proof, bad frame, timeout).
    pub handshake_failures: u64,
}

/// Where a publisher's connection stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PublisherState {
    Disconnected,
    /// Connected, the subscriber not yet authenticated: nothing but the
    /// handshake's Reply is sent.
    Handshake,
    /// Authenticated, waiting for the subscriber's Hello.
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

/// Where a connection's authentication stands.
#[derive(Debug)]
enum Auth {
    /// Not yet: only handshake frames pass.
    Handshake(Box<Handshake>),
    /// The subscriber proved the key: sealed frames both ways.
    Open(Ciphers),
}

#[derive(Debug)]
struct PubConn {
    auth: Auth,
    hello_due: bool,
    /// The subscriber's first Hello arrived (a later one asks for a resync).
    hello_seen: bool,
    peer_node: u32,
    peer_epoch: u64,
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
///   [`set_epoch`](Self::set_epoch), [`set_keys`](Self::set_keys), [`take_acked_times`](Self::take_acked_times)
///   (drains the lag samples).
/// - `poll_*`: [`poll_transmit`](Self::poll_transmit) (the next frame, given
///   the snapshot source), [`poll_timeout`](Self::poll_timeout).
#[derive(Debug)]
pub struct Publisher {
    cfg: PublisherConfig,
    keys: KeyRing,
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
    /// Snapshots begun before then ask the subscriber to keep the calls
    /// they do not carry ([`Publisher::keep_calls_until`]).
    keep_calls_until: Option<Instant>,
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
            keys: cfg.key.handshake_keys(),
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
            keep_calls_until: None,
        }
    }

    /// The epoch sent in every frame from now on.
    pub fn set_epoch(&mut self, epoch: u64) {
        self.epoch = epoch;
    }

    /// New sync keys (a key rotation's step): the next handshakes use
    /// them; the session in progress goes on under its own keys.
    pub fn set_keys(&mut self, keys: SyncKeys) {
        self.keys = keys.handshake_keys();
        self.cfg.key = keys;
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
    /// random. Replaces any previous connection. The connection runs the
    /// handshake first: nothing but its Reply is sent until the subscriber
    /// proved the key.
    pub fn connected(&mut self, now: Instant, nonce: impl Into<Nonce>) {
        let hs = Handshake::publisher(
            self.cfg.node_id,
            self.epoch,
            self.keys.clone(),
            nonce.into(),
            now,
            self.cfg.handshake_timeout,
        )
        .expecting(&self.cfg.peers);
        self.link = Some(self.new_conn(Auth::Handshake(Box::new(hs)), 0, 0, now));
        self.stats.connections += 1;
    }

    /// A connection whose handshake the runtime ran with a [`Handshake`] of
    /// its own (made with [`Publisher::handshake`]) and that completed:
    /// replaces any previous connection.
    pub fn adopt(&mut self, now: Instant, est: Established) {
        self.link =
            Some(self.new_conn(Auth::Open(est.ciphers), est.peer_node, est.peer_epoch, now));
        self.stats.connections += 1;
        self.stats.handshakes += 1;
    }

    /// A publisher's handshake for a new connection, under this
    /// publisher's keys, for the runtime to run before [`Publisher::adopt`].
    pub fn handshake(&self, now: Instant, nonce: impl Into<Nonce>) -> Handshake {
        Handshake::publisher(
            self.cfg.node_id,
            self.epoch,
            self.keys.clone(),
            nonce.into(),
            now,
            self.cfg.handshake_timeout,
        )
        .expecting(&self.cfg.peers)
    }

    fn new_conn(&self, auth: Auth, peer_node: u32, peer_epoch: u64, now: Instant) -> PubConn {
        PubConn {
            hello_due: matches!(auth, Auth::Open(_)),
            auth,
            hello_seen: false,
            peer_node,
            peer_epoch,
            peer_max_frame: MIN_FRAME_LEN,
            phase: Phase::AwaitHello,
            sent_upto: 0,
            bytes_sent: 0,
            peer_received: 0,
            last_sent: now,
            last_heard: now,
        }
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
        let ciphers = match &mut conn.auth {
            Auth::Handshake(hs) => {
                let r = hs.handle_frame(bytes, now);
                if let Err(e) = r {
                    self.stats.handshake_failures += 1;
                    self.count_error(&e);
                    return Err(e);
                }
                conn.last_heard = now;
                if let Some(est) = hs.take_established() {
                    conn.peer_node = est.peer_node;
                    conn.peer_epoch = est.peer_epoch;
                    conn.auth = Auth::Open(est.ciphers);
                    conn.hello_due = true;
                    self.stats.handshakes += 1;
                }
                self.link = Some(conn);
                return Ok(());
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

    fn on_hello(&mut self, conn: &mut PubConn, node: u32, h: Hello) -> Result<(), SessionError> {
        check_peer_hello(&h, node, self.cfg.node_id, Role::Subscriber)?;
        if (h.max_frame as usize) < MIN_FRAME_LEN {
            return Err(SessionError::MaxFrame(h.max_frame));
        }
        if conn.hello_seen {
            // A resync: what the subscriber has not received by now is lost.
            conn.bytes_sent = h.received;
        }
        conn.hello_seen = true;
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
        if let Auth::Handshake(hs) = &mut conn.auth {
            let out = hs.poll_transmit();
            if let Some(frame) = &out {
                self.stats.frames_sent += 1;
                self.stats.bytes_sent += frame.len() as u64;
            }
            self.link = Some(conn);
            return out;
        }
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

    /// The next sealed frame of an authenticated connection. Only ever
    /// reached once the subscriber proved the key (`Auth::Open`).
    fn transmit(
        &mut self,
        conn: &mut PubConn,
        now: Instant,
        source: &dyn SnapshotSource,
    ) -> Option<Vec<u8>> {
        let Auth::Open(_) = conn.auth else {
            return None;
        };
        if conn.hello_due {
            conn.hello_due = false;
            let hello = own_hello(Role::Publisher, self.cfg.stream.get(), self.next_seq - 1, 0);
            let (node, epoch) = (self.cfg.node_id, self.epoch);
            return Some(hello_frame(ciphers(conn)?, node, epoch, &hello));
        }
        if conn.in_flight() < self.cfg.max_in_flight as u64 {
            match conn.phase {
                Phase::AwaitHello => {}
                Phase::NeedSnapshot => return self.snapshot_begin(conn, now),
                Phase::Snapshot(_) => return self.snapshot_next(conn, now, source),
                Phase::Streaming => {
                    if let Some(f) = self.delta(conn, now) {
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
            return Some(w.finish_sealed(&mut ciphers(conn)?.send));
        }
        None
    }

    /// Until `until`, every snapshot asks the subscriber to keep the calls
    /// it does not carry: this publisher resumed a predecessor's tables and
    /// knows only the calls it saw itself (the kernel's Call-ID table holds
    /// hashes). After `until` (a call's idle timeout) snapshots sweep again.
    pub fn keep_calls_until(&mut self, until: Instant) {
        self.keep_calls_until = Some(until);
    }

    fn snapshot_begin(&mut self, conn: &mut PubConn, now: Instant) -> Option<Vec<u8>> {
        let keep_calls = self.keep_calls_until.is_some_and(|t| now < t);
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
        w.put_u32(if keep_calls { crate::sync::wire::SNAPSHOT_KEEP_CALLS } else { 0 });
        Some(w.finish_sealed(&mut ciphers(conn)?.send))
    }

    fn snapshot_next(
        &mut self,
        conn: &mut PubConn,
        now: Instant,
        source: &dyn SnapshotSource,
    ) -> Option<Vec<u8>> {
        let (node, epoch, max) = (self.cfg.node_id, self.epoch, conn.peer_max_frame);
        let Auth::Open(ciphers) = &mut conn.auth else {
            return None;
        };
        let Phase::Snapshot(s) = &mut conn.phase else {
            // transmit() only calls this in the Snapshot phase.
            return None;
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
                return Some(w.finish_sealed(&mut ciphers.send));
            }
        }
        let mut w = FrameWriter::new(Kind::SnapshotEnd, node, epoch, s.base, max);
        w.put_u32(s.id);
        w.put_u32(s.chunks);
        w.put_u64(s.records);
        let frame = w.finish_sealed(&mut ciphers.send);
        conn.sent_upto = s.base;
        conn.phase = Phase::Streaming;
        Some(frame)
    }

    fn delta(&mut self, conn: &mut PubConn, now: Instant) -> Option<Vec<u8>> {
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
        Some(w.finish_sealed(&mut ciphers(conn)?.send))
    }

    /// When to call [`Publisher::handle_timeout`] (and then poll_transmit).
    pub fn poll_timeout(&self) -> Option<Instant> {
        let conn = self.link.as_ref()?;
        if let Auth::Handshake(hs) = &conn.auth {
            return hs.poll_timeout();
        }
        let mut t = conn.last_heard + self.cfg.idle_timeout;
        t = t.min(conn.last_sent + self.cfg.keepalive_interval);
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
    /// A handshake not done in time fails the same way.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), SessionError> {
        if let Some(conn) = &mut self.link
            && let Auth::Handshake(hs) = &mut conn.auth
        {
            if let Err(e) = hs.handle_timeout(now) {
                self.link = None;
                self.stats.handshake_failures += 1;
                return Err(e);
            }
            return Ok(());
        }
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
        match self.link.as_ref().map(|c| (&c.auth, &c.phase)) {
            None => PublisherState::Disconnected,
            Some((Auth::Handshake(_), _)) => PublisherState::Handshake,
            Some((_, Phase::AwaitHello)) => PublisherState::AwaitingHello,
            Some((_, Phase::NeedSnapshot | Phase::Snapshot(_))) => PublisherState::Snapshot,
            Some((_, Phase::Streaming)) => PublisherState::Streaming,
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
    /// The subscriber's node id and last epoch, once it proved the key.
    pub fn peer(&self) -> Option<(u32, u64)> {
        self.link
            .as_ref()
            .filter(|c| matches!(c.auth, Auth::Open(_)))
            .map(|c| (c.peer_node, c.peer_epoch))
    }
    pub fn stats(&self) -> &PublisherStats {
        &self.stats
    }
    pub fn config(&self) -> &PublisherConfig {
        &self.cfg
    }
}

/// The ciphers of an authenticated connection.
fn ciphers(conn: &mut PubConn) -> Option<&mut Ciphers> {
    match &mut conn.auth {
        Auth::Open(c) => Some(c),
        Auth::Handshake(_) => None,
    }
}

fn elapsed_ms(now: Instant, since: Instant) -> u32 {
    now.saturating_duration_since(since)
        .as_millis()
        .min(u32::MAX as u128) as u32
}
