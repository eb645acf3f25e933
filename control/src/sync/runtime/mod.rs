//! State sync inside `tandemd`: the sockets and roles around the sans-IO
//! [`crate::sync`] sessions, driven by the daemon's io_uring loop.
//!
//! This is the I/O shell: it owns the listening and connected sockets and
//! which session the node runs, and it must not make the protocol's
//! decisions (what to send, when a peer is dead: the sessions make them)
//! nor block (every socket is non-blocking and every call does a bounded
//! amount of work).
//!
//! # Surface
//! - Getters: `listener_fds`, `conn_poll` (the descriptor and the poll
//!   events to wait for), `pending_poll(slot)` (the same for each
//!   unauthenticated connection), `is_publishing`, `status`, `store`.
//! - From the loop: `accepted(fd, now)`, `on_readable(now)` (returns the
//!   changes to apply to the kernel), `on_pending_ready(slot, now)`,
//!   `flush(now)` (when writable and after any input), `handle_timeout(now)`
//!   at `poll_timeout()`.
//! - Mutators: `become_publisher(epoch, now)`,
//!   `become_subscriber(epoch, now)`, `record(record, now)`, `reset_lag()`,
//!   `set_keys(keys)`.
//! - Out: `take_events()`, what happened, for the daemon's timeline.
//!
//! - **Roles follow the pair state.** The active node publishes: every
//!   connection-table change the XDP program pushes to `FLOW_EVENTS` (and
//!   the call and channel records the daemon makes) goes into its
//!   [`Store`] and its [`Publisher`]. Every other state subscribes: the
//!   node dials the peer and writes what its [`Subscriber`] yields into its
//!   own kernel connection table. A takeover turns the subscriber's store
//!   into the new publisher's (it already holds every flow); a demotion
//!   turns the publisher's store into the subscriber's, so the snapshot it
//!   then receives changes only what differs.
//! - **Connections.** Every node listens on `sync.local:port`; only a
//!   subscriber dials (`sync.peer:port`, non-blocking, retried every
//!   100 ms), only a publisher keeps an accepted connection, and only one
//!   from an address of `sync.peer` (any other is closed at once and
//!   counted). An accepted connection is *pending* until its handshake
//!   proved the key ([`pending`]: at most 8, each within 1 s and 1 KiB,
//!   the oldest dropped for a new one): it replaces the standby's session
//!   only then, so connects that do not authenticate evict nothing. One
//!   session at a time; any error closes it and the sessions resume or
//!   resnapshot on the next one. Sockets are non-blocking; the loop polls
//!   them through io_uring and reads or writes what is ready, so a slow or
//!   dead peer never blocks the loop, and the publisher's window bounds its
//!   memory (past it the standby is marked out of date and resnapshotted).
//! - **Threshold.** A flow is synced when it is created (its first packet),
//!   not after 3 packets as IPVS's sync daemon does: SIP over UDP often
//!   opens a dialog with one datagram and waits seconds for the next, and a
//!   flow that moved after a takeover is a call that broke. A record costs
//!   31 bytes on the wire; syncing every flow costs less than the risk.
//! - **Lag.** The publisher stamps each change when it is recorded and,
//!   when the subscriber's ack covers it, samples `ack time − record time`:
//!   an upper bound of the time until the standby's table held it, on one
//!   clock.
//!
//! Files: `net.rs` sockets and randomness, `pending.rs` unauthenticated
//! connections, `status.rs` what `tandemctl sync` shows, `tests.rs`.

use std::{
    collections::VecDeque,
    io::{self, Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    num::NonZeroU64,
    os::fd::{AsRawFd, RawFd},
    time::{Duration, Instant},
};

use crate::sync::wire::SyncKeys;
use crate::sync::{
    Applied, Deframer, Publisher, PublisherConfig, Record, Store, Subscriber, SubscriberConfig,
    SubscriberState,
};

mod net;
pub mod pending;
mod status;

use net::{dial, set_nonblocking};
pub use net::{random_nonce, random_u64};
pub use pending::{AuthCounters, MAX_PENDING};
use pending::{Outcome, Pending};

/// How often a subscriber without a connection dials the peer.
const DIAL_RETRY: Duration = Duration::from_millis(100);
/// How long a non-blocking connect may take.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// Time one flush may spend making frames.
const FLUSH_BUDGET: Duration = Duration::from_millis(1);
/// Lag samples kept (the most recent).
const LAG_SAMPLES: usize = 1 << 18;
/// How long a hung-up SIP call's Call-ID keeps routing: 64 × T1, the
/// RFC 3261 Timer J a BYE's server transaction lives (its
/// retransmissions and their answers come within it). Past it the call
/// leaves both directors' tables.
pub const ENDED_CALL_LINGER: Duration = Duration::from_secs(32);
/// At most this many ended calls removed per turn of the loop (each is a
/// kernel map delete on each node): 1,000 calls/s end at a steady 1,000/s.
pub const ENDED_CALLS_PER_TURN: usize = 256;

enum Role {
    /// Not yet told (before the first state).
    Idle(Store),
    Publishing {
        store: Store,
        publisher: Publisher,
    },
    Subscribing(Subscriber),
}

struct Conn {
    /// Distinguishes connections that reuse a descriptor number.
    id: u64,
    stream: TcpStream,
    /// Connect in progress (dialed, not yet writable).
    connecting: Option<Instant>,
    deframer: Deframer,
    out: VecDeque<u8>,
    peer: SocketAddr,
}

/// What the runtime did with its connection (for the daemon's timeline).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Connected {
        peer: SocketAddr,
        dialed: bool,
    },
    Closed {
        peer: SocketAddr,
        why: String,
    },
    /// The subscriber holds the publisher's state (snapshot done).
    InSync,
}

/// The sync runtime of one node.
pub struct SyncRuntime {
    node_id: u32,
    /// The node ids a session may be with (empty: any but this node's).
    peer_ids: Vec<u32>,
    key: SyncKeys,
    /// The peer's addresses, dialed in turn; only they may connect.
    peers: Vec<SocketAddr>,
    next_peer: usize,
    listeners: Vec<TcpListener>,
    role: Role,
    conn: Option<Conn>,
    next_dial: Instant,
    epoch: u64,
    lag_us: VecDeque<u32>,
    /// Records applied to the kernel (subscriber side), over the life.
    pub applied: u64,
    /// Records the kernel refused (no such service or real server here).
    pub kernel_errors: u64,
    events: Vec<Event>,
    was_in_sync: bool,
    conns: u64,
    /// The last flush stopped at its budget with more to send.
    more: bool,
    /// Accepted connections not yet authenticated, by slot.
    pending: [Option<Pending>; MAX_PENDING],
    /// The poll the loop armed for each slot: (connection id, events).
    pending_polled: [Option<(u64, u32)>; MAX_PENDING],
    auth: AuthCounters,
}

impl SyncRuntime {
    /// Listens on every `local` address (non-blocking); a subscriber dials
    /// the `peers` in turn, the next one after each failed or lost
    /// connection.
    pub fn new(
        node_id: u32,
        key: impl Into<SyncKeys>,
        local: &[SocketAddr],
        peers: &[SocketAddr],
    ) -> io::Result<SyncRuntime> {
        let mut listeners = Vec::new();
        for a in local {
            let l = TcpListener::bind(a)
                .map_err(|e| io::Error::new(e.kind(), format!("sync: listening on {a}: {e}")))?;
            l.set_nonblocking(true)?;
            listeners.push(l);
        }
        if peers.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "sync: no peer address",
            ));
        }
        Ok(SyncRuntime {
            node_id,
            peer_ids: Vec::new(),
            key: key.into(),
            peers: peers.to_vec(),
            next_peer: 0,
            listeners,
            role: Role::Idle(Store::new()),
            conn: None,
            next_dial: Instant::now(),
            epoch: 0,
            lag_us: VecDeque::new(),
            applied: 0,
            kernel_errors: 0,
            events: Vec::new(),
            was_in_sync: false,
            conns: 0,
            more: false,
            pending: Default::default(),
            pending_polled: [None; MAX_PENDING],
            auth: AuthCounters::default(),
        })
    }

    pub fn listener_fds(&self) -> Vec<RawFd> {
        self.listeners.iter().map(|l| l.as_raw_fd()).collect()
    }

    /// The connection (its id, descriptor) and the poll events it waits for.
    pub fn conn_poll(&self) -> Option<(u64, RawFd, u32)> {
        let c = self.conn.as_ref()?;
        let mut ev = libc::POLLIN as u32;
        if c.connecting.is_some() || !c.out.is_empty() || self.more {
            ev |= libc::POLLOUT as u32;
        }
        Some((c.id, c.stream.as_raw_fd(), ev))
    }

    pub fn is_publishing(&self) -> bool {
        matches!(self.role, Role::Publishing { .. })
    }

    /// This node holds the peer's state: it subscribes and its session is
    /// in sync (snapshot applied, applying the deltas as they come).
    pub fn in_sync(&self) -> bool {
        matches!(&self.role, Role::Subscribing(sub) if sub.state() == SubscriberState::InSync)
    }

    /// What happened since the last call.
    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    fn take_store(&mut self) -> Store {
        match std::mem::replace(&mut self.role, Role::Idle(Store::new())) {
            Role::Idle(s) => s,
            Role::Publishing { store, .. } => store,
            Role::Subscribing(sub) => sub.into_store(),
        }
    }

    fn close(&mut self, why: String) {
        if let Some(c) = self.conn.take() {
            if c.connecting.is_none() {
                self.events.push(Event::Closed { peer: c.peer, why });
            }
            // Next time, the peer's next address (another network).
            if matches!(self.role, Role::Subscribing(_)) {
                self.next_peer = (self.next_peer + 1) % self.peers.len();
            }
        }
        match &mut self.role {
            Role::Publishing { publisher, .. } => publisher.disconnected(),
            Role::Subscribing(sub) => sub.disconnected(),
            Role::Idle(_) => {}
        }
        self.was_in_sync = false;
        self.next_dial = Instant::now() + DIAL_RETRY;
    }

    /// This node serves: publish from the store it holds.
    pub fn become_publisher(&mut self, epoch: u64, now: Instant) {
        self.epoch = epoch;
        if let Role::Publishing { publisher, .. } = &mut self.role {
            publisher.set_epoch(epoch);
            return;
        }
        self.close("this node took over".into());
        let store = self.take_store();
        let stream = NonZeroU64::new(random_u64() | 1).expect("non-zero");
        let mut cfg = PublisherConfig::new(self.node_id, self.key.clone(), stream);
        cfg.peers = self.peer_ids.clone();
        let mut publisher = Publisher::new(cfg);
        publisher.set_epoch(epoch);
        let _ = now;
        self.role = Role::Publishing { store, publisher };
    }

    /// New sync keys (a key rotation's step, on a reload): the next
    /// handshakes, of either role, are made under the new current key and
    /// take the peer's under the current or the next; the session in
    /// progress goes on under the keys it derived (no reconnect, no
    /// resnapshot).
    pub fn set_keys(&mut self, keys: SyncKeys) {
        match &mut self.role {
            Role::Publishing { publisher, .. } => publisher.set_keys(keys.clone()),
            Role::Subscribing(sub) => sub.set_keys(keys.clone()),
            Role::Idle(_) => {}
        }
        self.key = keys;
    }

    /// While publishing, until `until`: the standby keeps the calls this
    /// node's snapshots do not carry (see [`Publisher::keep_calls_until`]).
    pub fn keep_peer_calls_until(&mut self, until: Instant) {
        if let Role::Publishing { publisher, .. } = &mut self.role {
            publisher.keep_calls_until(until);
        }
    }

    /// Sessions only with these node ids (the configuration's peer): a
    /// handshake from another node id fails, whatever key it holds.
    pub fn with_peer_ids(mut self, ids: &[u32]) -> SyncRuntime {
        self.peer_ids = ids.to_vec();
        self
    }

    /// This node stands by: subscribe to the peer, keeping what it holds.
    pub fn become_subscriber(&mut self, epoch: u64, now: Instant) {
        self.epoch = epoch;
        if let Role::Subscribing(sub) = &mut self.role {
            sub.set_epoch(epoch);
            return;
        }
        self.close("this node stands by".into());
        let store = self.take_store();
        self.drop_pending();
        let mut cfg = SubscriberConfig::new(self.node_id, self.key.clone());
        cfg.peers = self.peer_ids.clone();
        let mut sub = Subscriber::with_store(cfg, store);
        sub.set_epoch(epoch);
        self.role = Role::Subscribing(sub);
        self.next_dial = now;
    }

    /// A change made on this node (publisher only; otherwise ignored).
    pub fn record(&mut self, record: Record, now: Instant) {
        if let Role::Publishing { store, publisher } = &mut self.role {
            store.apply(&record, now);
            if let Err(e) = publisher.record(record, now) {
                tracing::warn!("sync: record not sent: {e}");
            }
        }
    }

    /// Publisher only: the SIP calls that hung up [`ENDED_CALL_LINGER`]
    /// ago (at most [`ENDED_CALLS_PER_TURN`]), removed from the store and
    /// sent to the standby as removals; their ids are returned so that the
    /// daemon removes them from its own kernel table.
    pub fn linger_ended_calls(&mut self, now: Instant) -> Vec<String> {
        let Role::Publishing { store, .. } = &mut self.role else {
            return Vec::new();
        };
        let ids = store.lingered(now, ENDED_CALL_LINGER, ENDED_CALLS_PER_TURN);
        for id in &ids {
            self.record(Record::CallRemoved(id.clone()), now);
        }
        ids
    }

    /// An accepted connection: if this node publishes and it comes from
    /// the peer, it waits in a free slot (the oldest pending connection
    /// dropped when none is) for its handshake; the standby's session, if
    /// any, is untouched. Otherwise it is closed.
    pub fn accepted(&mut self, fd: std::os::fd::OwnedFd, now: Instant) {
        let stream = TcpStream::from(fd);
        self.auth.accepted += 1;
        let Ok(peer) = stream.peer_addr() else {
            self.auth.closed += 1;
            return;
        };
        let from_peer = self
            .peers
            .iter()
            .any(|p| p.ip().to_canonical() == peer.ip().to_canonical());
        let Role::Publishing { publisher, .. } = &self.role else {
            self.auth.refused += 1;
            return; // only the active publishes
        };
        if !from_peer {
            self.auth.refused += 1;
            tracing::debug!("sync: connection from {peer}, not a peer address: closed");
            return;
        }
        let _ = set_nonblocking(stream.as_raw_fd());
        let _ = stream.set_nodelay(true);
        let handshake = publisher.handshake(now, random_nonce());
        let slot = match self.pending.iter().position(Option::is_none) {
            Some(free) => free,
            None => {
                let oldest = (0..MAX_PENDING)
                    .min_by_key(|&i| self.pending[i].as_ref().map(Pending::started))
                    .unwrap_or(0);
                self.pending[oldest] = None;
                self.auth.pending_dropped += 1;
                oldest
            }
        };
        self.conns += 1;
        let conn = Conn {
            id: self.conns,
            stream,
            connecting: None,
            deframer: Deframer::new(),
            out: VecDeque::new(),
            peer,
        };
        self.pending[slot] = Some(Pending::new(conn, handshake));
    }

    /// Pending connection `slot` is ready: reads its handshake and answers;
    /// one that authenticated becomes the standby's session (replacing the
    /// one before), one that failed is closed and counted.
    pub fn on_pending_ready(&mut self, slot: usize, now: Instant) {
        let Some(p) = self.pending.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        match p.on_ready(now) {
            Outcome::Waiting => {}
            Outcome::Failed(f) => {
                self.auth.count(f);
                self.pending[slot] = None;
            }
            Outcome::Done(est) => {
                let Some(p) = self.pending[slot].take() else {
                    return;
                };
                self.promote(p, est, now);
            }
        }
    }

    /// An authenticated connection becomes the session.
    fn promote(&mut self, p: Pending, est: crate::sync::session::Established, now: Instant) {
        if !self.is_publishing() {
            return;
        }
        self.auth.handshakes += 1;
        if self.conn.is_some() {
            self.close("replaced by a new authenticated connection".into());
        }
        if let Role::Publishing { publisher, .. } = &mut self.role {
            publisher.adopt(now, est);
        }
        // Anything of the handshake the socket had not taken stays in
        // `out`, ahead of the publisher's first sealed frame.
        let conn = p.conn;
        let peer = conn.peer;
        self.conn = Some(conn);
        self.events.push(Event::Connected {
            peer,
            dialed: false,
        });
        // Frames the standby sent right after its Confirm.
        let mut applied = Vec::new();
        if let Some(why) = self.handle_frames(now, &mut applied) {
            self.close(why);
        }
    }

    fn drop_pending(&mut self) {
        for p in &mut self.pending {
            *p = None;
        }
    }

    /// Pending connection `slot`'s descriptor and the events it waits for,
    /// with its id.
    pub fn pending_poll(&self, slot: usize) -> Option<(u64, RawFd, u32)> {
        let p = self.pending.get(slot)?.as_ref()?;
        Some((p.conn.id, p.conn.stream.as_raw_fd(), p.events()))
    }

    /// What the loop armed for `slot` (its own bookkeeping, kept here).
    pub fn pending_polled(&mut self, slot: usize) -> &mut Option<(u64, u32)> {
        &mut self.pending_polled[slot % MAX_PENDING]
    }

    /// Reads and handles what arrived; returns the changes a subscriber
    /// must apply to the kernel, in order.
    pub fn on_readable(&mut self, now: Instant) -> Vec<Applied> {
        let mut applied = Vec::new();
        if self.conn.as_ref().is_none_or(|c| c.connecting.is_some()) {
            return applied;
        }
        let mut buf = [0u8; 64 * 1024];
        let mut err = None;
        // At most 512 KiB per call: the loop has heartbeats to send; what
        // is left stays readable for the next turn.
        for _ in 0..8 {
            let Some(c) = self.conn.as_mut() else {
                break;
            };
            match c.stream.read(&mut buf) {
                Ok(0) => {
                    err = Some("closed by the peer".to_string());
                    break;
                }
                Ok(n) => {
                    if let Err(e) = c.deframer.push(&buf[..n]) {
                        err = Some(format!("bad stream: {e}"));
                        break;
                    }
                    err = self.handle_frames(now, &mut applied);
                    if err.is_some() {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    err = Some(format!("read: {e}"));
                    break;
                }
            }
        }
        if let Some(why) = err {
            self.close(why);
        }
        applied
    }

    /// Hands every whole frame buffered on the connection to the session;
    /// returns why the connection must close, if it must.
    fn handle_frames(&mut self, now: Instant, applied: &mut Vec<Applied>) -> Option<String> {
        let SyncRuntime {
            conn, role, lag_us, ..
        } = self;
        let c = conn.as_mut()?;
        loop {
            let frame = match c.deframer.next_frame() {
                Ok(Some(f)) => f.to_vec(),
                Ok(None) => return None,
                Err(e) => return Some(format!("bad frame: {e}")),
            };
            let r = match role {
                Role::Publishing { publisher, .. } => {
                    let before = publisher.acked();
                    let r = publisher.handle_frame(&frame, now).map(|_| Vec::new());
                    if publisher.acked() > before {
                        for t in publisher.take_acked_times() {
                            if lag_us.len() >= LAG_SAMPLES {
                                lag_us.pop_front();
                            }
                            let us = now.saturating_duration_since(t).as_micros();
                            lag_us.push_back(us.min(u32::MAX as u128) as u32);
                        }
                    }
                    r
                }
                Role::Subscribing(sub) => sub.handle_frame(&frame, now),
                Role::Idle(_) => Ok(Vec::new()),
            };
            match r {
                Ok(a) => applied.extend(a),
                Err(e) => return Some(format!("{e}")),
            }
        }
    }

    /// Moves what the session wants to send into the socket, as far as it
    /// takes it; finishes a pending connect.
    pub fn flush(&mut self, now: Instant) {
        let Some(c) = self.conn.as_mut() else {
            return;
        };
        if let Some(since) = c.connecting {
            let mut pfd = libc::pollfd {
                fd: c.stream.as_raw_fd(),
                events: libc::POLLOUT,
                revents: 0,
            };
            // SAFETY: one valid pollfd, no wait.
            unsafe { libc::poll(&mut pfd, 1, 0) };
            if pfd.revents == 0 {
                if now.saturating_duration_since(since) > CONNECT_TIMEOUT {
                    self.close("connect timed out".into());
                }
                return;
            }
            match c.stream.take_error() {
                Ok(None) if pfd.revents & (libc::POLLERR | libc::POLLHUP) == 0 => {}
                Ok(Some(e)) | Err(e) => {
                    let why = format!("connect: {e}");
                    self.close(why);
                    return;
                }
                Ok(None) => {
                    self.close("connect failed".into());
                    return;
                }
            }
            c.connecting = None;
            let peer = c.peer;
            if let Role::Subscribing(sub) = &mut self.role {
                sub.connected(now, random_nonce());
            }
            self.events.push(Event::Connected { peer, dialed: true });
        }
        let Some(c) = self.conn.as_mut() else {
            return;
        };
        // Frames into the buffer while it is small (the socket's own buffer
        // paces the publisher: it stops asking when bytes are in flight).
        // A bounded amount per turn of the loop (the loop has heartbeats
        // to send); `more` keeps the connection polled for writing so that
        // the next turn comes at once.
        let started = Instant::now();
        self.more = false;
        while c.out.len() < 64 * 1024 {
            if started.elapsed() > FLUSH_BUDGET {
                self.more = true;
                break;
            }
            let f = match &mut self.role {
                Role::Publishing { store, publisher } => publisher.poll_transmit(now, store),
                Role::Subscribing(sub) => sub.poll_transmit(now),
                Role::Idle(_) => None,
            };
            match f {
                Some(f) => c.out.extend(f),
                None => break,
            }
        }
        if c.out.len() >= 64 * 1024 {
            self.more = true;
        }
        while !c.out.is_empty() {
            let (a, _) = c.out.as_slices();
            match c.stream.write(a) {
                Ok(0) => break,
                Ok(n) => {
                    c.out.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let why = format!("write: {e}");
                    self.close(why);
                    return;
                }
            }
        }
        if let Role::Subscribing(sub) = &self.role {
            let ok = sub.state() == SubscriberState::InSync;
            if ok && !self.was_in_sync {
                self.events.push(Event::InSync);
            }
            self.was_in_sync = ok;
        }
    }

    /// Timers: the sessions' keepalives and idle deadlines, dialing.
    pub fn handle_timeout(&mut self, now: Instant) {
        let r = match &mut self.role {
            Role::Publishing { publisher, .. } if self.conn.is_some() => {
                publisher.handle_timeout(now)
            }
            Role::Subscribing(sub)
                if self.conn.as_ref().is_some_and(|c| c.connecting.is_none()) =>
            {
                sub.handle_timeout(now)
            }
            _ => Ok(()),
        };
        if let Err(e) = r {
            self.close(format!("{e}"));
        }
        for slot in &mut self.pending {
            if let Some(f) = slot.as_mut().and_then(|p| p.handle_timeout(now)) {
                self.auth.count(f);
                *slot = None;
            }
        }
        if matches!(self.role, Role::Subscribing(_)) && self.conn.is_none() && now >= self.next_dial
        {
            self.next_dial = now + DIAL_RETRY;
            let peer = self.peers[self.next_peer];
            match dial(peer) {
                Ok(stream) => {
                    self.conns += 1;
                    self.conn = Some(Conn {
                        id: self.conns,
                        stream,
                        connecting: Some(now),
                        deframer: Deframer::new(),
                        out: VecDeque::new(),
                        peer,
                    });
                }
                Err(e) => {
                    tracing::debug!("sync: dialing {peer}: {e}");
                    self.next_peer = (self.next_peer + 1) % self.peers.len();
                }
            }
        }
    }

    /// When [`Self::handle_timeout`] is due next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let session = match &self.role {
            Role::Publishing { publisher, .. } if self.conn.is_some() => publisher.poll_timeout(),
            Role::Subscribing(sub)
                if self.conn.as_ref().is_some_and(|c| c.connecting.is_none()) =>
            {
                sub.poll_timeout()
            }
            _ => None,
        };
        let dial = match (&self.role, &self.conn) {
            (Role::Subscribing(_), None) => Some(self.next_dial),
            (_, Some(c)) if c.connecting.is_some() => c.connecting.map(|t| t + CONNECT_TIMEOUT),
            _ => None,
        };
        let pending = self
            .pending
            .iter()
            .flatten()
            .filter_map(Pending::poll_timeout)
            .min();
        [session, dial, pending].into_iter().flatten().min()
    }

    /// What became of the connections accepted on the sync port.
    pub fn auth_counters(&self) -> AuthCounters {
        self.auth
    }

    /// The synced tables this node holds.
    pub fn store(&self) -> &Store {
        match &self.role {
            Role::Idle(s) => s,
            Role::Publishing { store, .. } => store,
            Role::Subscribing(sub) => sub.store(),
        }
    }

    /// Clears the lag samples (a measurement window starts).
    pub fn reset_lag(&mut self) {
        self.lag_us.clear();
    }
}

#[cfg(test)]
mod tests;
