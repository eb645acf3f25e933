//! The admin socket's and the metrics endpoint's clients, served from the
//! ring without ever blocking it: every accepted connection is
//! non-blocking, polled for readiness, framed by
//! [`crate::admin::Connection`] / [`crate::admin::HttpConnection`] within
//! their byte and time budgets, and closed when finished, expired or in
//! error. At most [`MAX_CLIENTS`] of each kind are held; when a new one
//! comes to a full table, the one closest to its deadline is closed to
//! make room, so idle connections cannot lock operators out.
//!
//! A slow or hostile client costs itself, never the heartbeats: the loop
//! does at most one bounded read and one bounded write per readiness. An
//! admin connection carries one request: its answer is sent and the
//! connection closed, so clients that read to end of file work.
//!
//! Answers can be large (≈ 0.9 MB at the design maximum): each is
//! sent as its socket takes it, and a client that stops reading is dropped
//! at its deadline (see [`crate::admin::server`]). The memory they hold is
//! bounded per endpoint: while its connections hold more than
//! [`MAX_HELD`] unsent bytes, a new request gets a short refusal (an admin
//! error, HTTP 503) instead of its answer, and is counted.

use std::{
    io,
    os::{
        fd::{AsRawFd, RawFd},
        unix::net::UnixListener,
    },
    path::Path,
    time::Instant,
};

use anyhow::{Context, Result};

use super::{
    Daemon,
    token::{Ring, Token},
};
use crate::{
    admin::{self, Connection, HttpConnection, HttpRead},
    config::AdminConfig,
    uring::Completion,
};

/// Connections held per endpoint.
pub const MAX_CLIENTS: usize = 512;

/// Most unsent answer bytes the connections of one endpoint hold before a
/// new request is refused (each answer is also within
/// [`admin::MAX_OUTPUT`]).
pub const MAX_HELD: usize = 64 * 1024 * 1024;

/// What a connection's framer offers the table.
trait Client {
    fn fd(&self) -> RawFd;
    fn wants_read(&self) -> bool;
    fn wants_write(&self) -> bool;
    fn is_finished(&self) -> bool;
    fn deadline(&self) -> Instant;
    fn queued(&self) -> usize;
}

impl Client for Connection {
    fn fd(&self) -> RawFd {
        Connection::fd(self)
    }
    fn wants_read(&self) -> bool {
        Connection::wants_read(self)
    }
    fn wants_write(&self) -> bool {
        Connection::wants_write(self)
    }
    fn is_finished(&self) -> bool {
        Connection::is_finished(self)
    }
    fn deadline(&self) -> Instant {
        Connection::deadline(self)
    }
    fn queued(&self) -> usize {
        Connection::queued(self)
    }
}

impl Client for HttpConnection {
    fn fd(&self) -> RawFd {
        HttpConnection::fd(self)
    }
    fn wants_read(&self) -> bool {
        HttpConnection::wants_read(self)
    }
    fn wants_write(&self) -> bool {
        HttpConnection::wants_write(self)
    }
    fn is_finished(&self) -> bool {
        HttpConnection::is_finished(self)
    }
    fn deadline(&self) -> Instant {
        HttpConnection::deadline(self)
    }
    fn queued(&self) -> usize {
        HttpConnection::queued(self)
    }
}

/// The connections of one endpoint, by slot (the slot is in their token).
struct Table<C> {
    slots: Vec<Option<C>>,
    token: fn(usize) -> Token,
}

impl<C: Client> Table<C> {
    fn new(token: fn(usize) -> Token) -> Table<C> {
        Table {
            slots: Vec::new(),
            token,
        }
    }

    fn len(&self) -> usize {
        self.slots.iter().filter(|s| s.is_some()).count()
    }

    /// Unsent answer bytes its connections hold.
    fn held(&self) -> usize {
        self.slots.iter().flatten().map(Client::queued).sum()
    }

    /// A free slot, after closing the connection nearest its deadline if
    /// the table is full.
    fn free_slot(&mut self, ring: &mut Ring) -> Result<usize> {
        if let Some(i) = self.slots.iter().position(Option::is_none) {
            return Ok(i);
        }
        if self.slots.len() < MAX_CLIENTS {
            self.slots.push(None);
            return Ok(self.slots.len() - 1);
        }
        let oldest = (0..self.slots.len())
            .min_by_key(|&i| self.slots[i].as_ref().map(|c| c.deadline()))
            .unwrap_or(0);
        self.close(ring, oldest)?;
        Ok(oldest)
    }

    fn insert(&mut self, ring: &mut Ring, conn: C) -> Result<()> {
        let slot = self.free_slot(ring)?;
        self.slots[slot] = Some(conn);
        self.repoll(ring, slot)
    }

    fn close(&mut self, ring: &mut Ring, slot: usize) -> Result<()> {
        // The poll first: the reactor must not wait on a closed descriptor.
        ring.cancel((self.token)(slot))?;
        if let Some(s) = self.slots.get_mut(slot) {
            *s = None;
        }
        Ok(())
    }

    /// Polls the connection for what it waits for, or closes it when it
    /// is finished.
    fn repoll(&mut self, ring: &mut Ring, slot: usize) -> Result<()> {
        let Some(c) = self.slots.get(slot).and_then(Option::as_ref) else {
            return Ok(());
        };
        let mut events = 0;
        if c.wants_read() {
            events |= libc::POLLIN as u32;
        }
        if c.wants_write() {
            events |= libc::POLLOUT as u32;
        }
        if c.is_finished() {
            return self.close(ring, slot);
        }
        let fd = c.fd();
        if events == 0 {
            // Waiting for its answer (a deferred one): held, not polled.
            ring.cancel((self.token)(slot))?;
            return Ok(());
        }
        ring.cancel((self.token)(slot))?;
        ring.poll((self.token)(slot), fd, events)?;
        Ok(())
    }

    /// Closes the connections past their deadline.
    fn expire(&mut self, ring: &mut Ring, now: Instant) -> Result<usize> {
        let mut n = 0;
        for slot in 0..self.slots.len() {
            if self.slots[slot]
                .as_ref()
                .is_some_and(|c| now >= c.deadline())
            {
                self.close(ring, slot)?;
                n += 1;
            }
        }
        Ok(n)
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.slots.iter().flatten().map(|c| c.deadline()).min()
    }
}

/// Counters of the client tables (`tandemctl status` does not show them;
/// tests and metrics do).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientStats {
    pub accepted: u64,
    pub expired: u64,
    pub errors: u64,
    /// Requests refused because the endpoint's connections held
    /// [`MAX_HELD`] unsent bytes.
    pub refused: u64,
}

/// The admin and metrics endpoints with their clients.
pub struct Clients {
    admin: Option<UnixListener>,
    metrics: Option<std::net::TcpListener>,
    admin_conns: Table<Connection>,
    metrics_conns: Table<HttpConnection>,
    pub stats: ClientStats,
    /// The last accept error logged, so that a persistent one (EMFILE) is
    /// logged once, not per attempt.
    last_accept_error: Option<i32>,
}

impl Clients {
    /// Binds the admin socket and the metrics listener; a failure of
    /// either is an error naming the path or address (the daemon does not
    /// start). Called first in the daemon's set-up, before anything on the
    /// host changes.
    pub fn bind(cfg: &AdminConfig) -> Result<Clients> {
        let metrics = match cfg.metrics_listen {
            Some(a) => {
                let l = std::net::TcpListener::bind(a)
                    .with_context(|| format!("admin.metrics_listen: listening on {a}"))?;
                l.set_nonblocking(true)?;
                Some(l)
            }
            None => None,
        };
        // Refused, not run without: a daemon nobody can ask or switch over
        // is not manageable, and a socket in use belongs to another
        // tandemd that `tandemctl` would answer for.
        let gid = match &cfg.read_group {
            Some(name) => Some(
                nix::unistd::Group::from_name(name)
                    .with_context(|| format!("admin.read_group {name:?}: looking it up"))?
                    .with_context(|| format!("admin.read_group {name:?}: no such group on this host"))?
                    .gid
                    .as_raw(),
            ),
            None => None,
        };
        let admin = admin::bind(&cfg.socket).with_context(|| {
            format!("admin.socket {}", cfg.socket.display())
        })?;
        if let Some(gid) = gid {
            admin::share_with_group(&cfg.socket, gid).with_context(|| {
                format!("admin.read_group {:?}: admin.socket {}", cfg.read_group.as_deref().unwrap_or(""), cfg.socket.display())
            })?;
        }
        let admin = Some(admin);
        Ok(Clients {
            admin,
            metrics,
            admin_conns: Table::new(Token::AdminConn),
            metrics_conns: Table::new(Token::MetricsConn),
            stats: ClientStats::default(),
            last_accept_error: None,
        })
    }

    /// Arms the accepts.
    pub fn start(&mut self, ring: &mut Ring) -> Result<()> {
        if let Some(l) = &self.admin {
            ring.accept(Token::AdminAccept, l.as_raw_fd())?;
        }
        if let Some(l) = &self.metrics {
            ring.accept(Token::MetricsAccept, l.as_raw_fd())?;
        }
        Ok(())
    }

    /// Connections held now: (admin, metrics).
    pub fn open(&self) -> (usize, usize) {
        (self.admin_conns.len(), self.metrics_conns.len())
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        match (
            self.admin_conns.next_deadline(),
            self.metrics_conns.next_deadline(),
        ) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub fn remove_socket(&self, path: &Path) {
        if self.admin.is_some()
            && let Err(e) = std::fs::remove_file(path)
            && e.kind() != io::ErrorKind::NotFound
        {
            tracing::error!("admin socket {}: removing it: {e}", path.display());
        }
    }

    /// Counts an accept and logs a failed one (once per kind of failure).
    fn accept_result(&mut self, c: &Completion, what: &str) {
        match &c.result {
            Ok(_) => {
                self.last_accept_error = None;
                self.stats.accepted += 1;
            }
            Err(e) => {
                self.stats.errors += 1;
                if self.last_accept_error != e.raw_os_error() {
                    tracing::error!("{what}: accept: {e}");
                    self.last_accept_error = e.raw_os_error();
                }
            }
        }
    }
}

impl Daemon {
    /// An admin or metrics completion: a new client, a client ready, or
    /// the client deadline.
    pub(super) fn on_client(&mut self, token: Token, mut c: Completion) -> Result<()> {
        let now = Instant::now();
        match token {
            Token::AdminAccept => {
                self.clients.accept_result(&c, "admin socket");
                if let Some(fd) = c.accepted.take() {
                    match Connection::accepted(fd, now) {
                        Ok(conn) => self.clients.admin_conns.insert(&mut self.ring, conn)?,
                        Err(e) => tracing::error!("admin socket: a new connection: {e}"),
                    }
                }
                if let Some(l) = &self.clients.admin {
                    self.ring.accept(Token::AdminAccept, l.as_raw_fd())?;
                }
            }
            Token::MetricsAccept => {
                self.clients.accept_result(&c, "metrics endpoint");
                if let Some(fd) = c.accepted.take() {
                    match HttpConnection::accepted(fd, now) {
                        Ok(conn) => self.clients.metrics_conns.insert(&mut self.ring, conn)?,
                        Err(e) => tracing::error!("metrics endpoint: a new connection: {e}"),
                    }
                }
                if let Some(l) = &self.clients.metrics {
                    self.ring.accept(Token::MetricsAccept, l.as_raw_fd())?;
                }
            }
            Token::AdminConn(slot) => self.serve_admin(slot, now)?,
            Token::MetricsConn(slot) => self.serve_metrics(slot, now)?,
            Token::ClientDeadline => {
                self.client_timer_at = None;
                let n = self.clients.admin_conns.expire(&mut self.ring, now)?
                    + self.clients.metrics_conns.expire(&mut self.ring, now)?;
                self.clients.stats.expired += n as u64;
            }
            _ => {}
        }
        Ok(())
    }

    /// Reads what an admin client sent, answers each complete request,
    /// and sends what the socket takes.
    fn serve_admin(&mut self, slot: usize, now: Instant) -> Result<()> {
        let Some(mut conn) = self
            .clients
            .admin_conns
            .slots
            .get_mut(slot)
            .and_then(Option::take)
        else {
            return Ok(());
        };
        let ok = match conn.read_requests_at(now) {
            Ok(requests) => {
                // One request per connection: answered, then closed (the
                // first complete one; anything sent behind it is not read).
                if let Some(req) = requests.into_iter().next() {
                    let held = self.clients.admin_conns.held();
                    let resp = if held > MAX_HELD {
                        self.clients.stats.refused += 1;
                        admin::Response::Error {
                            message: format!(
                                "busy: {held} bytes of answers wait unread by other clients; try again"
                            ),
                        }
                    } else if let Err(message) = req.as_ref().map_or(Ok(()), |r| admin::authorize(r, conn.peer_uid())) {
                        self.clients.stats.refused += 1;
                        tracing::warn!("admin socket: refused: {message}");
                        admin::Response::Error { message }
                    } else if let Ok(admin::Request::Reload { dry_run }) = req {
                        // Answered when the file is read and checked, off the loop.
                        match self.start_reload(super::reload::Origin::Admin, dry_run) {
                            Ok(ticket) => {
                                conn.defer(ticket);
                                self.clients.admin_conns.slots[slot] = Some(conn);
                                return self.clients.admin_conns.repoll(&mut self.ring, slot);
                            }
                            Err(message) => admin::Response::Error { message },
                        }
                    } else {
                        self.answer(req)
                    };
                    conn.queue(&resp);
                    conn.stop_reading();
                }
                conn.flush_at(now).is_ok()
            }
            Err(_) => false,
        };
        let table = &mut self.clients.admin_conns;
        table.slots[slot] = Some(conn);
        if ok {
            table.repoll(&mut self.ring, slot)
        } else {
            table.close(&mut self.ring, slot)
        }
    }

    /// Queues the answer the admin connection waiting on `ticket` waits
    /// for, if it is still there (it may have expired or gone), and sends
    /// what its socket takes.
    pub(super) fn answer_deferred(&mut self, ticket: u64, resp: &admin::Response) -> Result<()> {
        let table = &mut self.clients.admin_conns;
        let Some(slot) = table
            .slots
            .iter()
            .position(|c| c.as_ref().is_some_and(|c| c.awaiting() == Some(ticket)))
        else {
            return Ok(());
        };
        let ok = match table.slots[slot].as_mut() {
            Some(conn) => {
                conn.answer(resp);
                conn.flush_at(Instant::now()).is_ok()
            }
            None => false,
        };
        if ok {
            table.repoll(&mut self.ring, slot)
        } else {
            table.close(&mut self.ring, slot)
        }
    }

    /// Reads a scrape's request head; once complete, queues the metrics
    /// and sends what the socket takes.
    fn serve_metrics(&mut self, slot: usize, now: Instant) -> Result<()> {
        let Some(mut conn) = self
            .clients
            .metrics_conns
            .slots
            .get_mut(slot)
            .and_then(Option::take)
        else {
            return Ok(());
        };
        let ok = match conn.read_request() {
            Ok(HttpRead::Complete) => {
                // Complete stays complete: answer once.
                if !conn.is_finished() && !conn.wants_write() {
                    if self.clients.metrics_conns.held() > MAX_HELD {
                        self.clients.stats.refused += 1;
                        conn.queue(crate::metrics::http_unavailable().as_bytes());
                    } else {
                        let text = self.metrics_text();
                        conn.queue(crate::metrics::http_response(&text).as_bytes());
                    }
                }
                conn.flush_at(now).is_ok()
            }
            Ok(HttpRead::Pending) => true,
            Ok(HttpRead::TooLarge | HttpRead::Closed) | Err(_) => false,
        };
        let table = &mut self.clients.metrics_conns;
        table.slots[slot] = Some(conn);
        if ok {
            table.repoll(&mut self.ring, slot)
        } else {
            table.close(&mut self.ring, slot)
        }
    }

    /// After every turn: the client deadline timer follows the earliest
    /// deadline.
    pub(super) fn clients_turn(&mut self) -> Result<()> {
        let at = self.clients.next_deadline();
        self.ring
            .rearm_if_moved(Token::ClientDeadline, at, &mut self.client_timer_at)?;
        Ok(())
    }
}
