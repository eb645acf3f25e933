//! Connections a publishing node accepted that have not authenticated yet:
//! each runs its own [`Handshake`] within a budget of time
//! ([`HANDSHAKE_TIMEOUT`](crate::sync::session::HANDSHAKE_TIMEOUT)) and
//! bytes ([`HANDSHAKE_BYTES`]), at most [`MAX_PENDING`] at once (the oldest
//! dropped for a new one), and none replaces the standby's session until
//! its handshake completed. [`AuthCounters`] counts what became of them.
//!
//! The I/O of one pending connection (non-blocking reads within the
//! budget, writes of the handshake's frames) lives here; what the
//! handshake answers, and whether it succeeded, is the [`Handshake`]'s.
//! Nothing here blocks or decides which connection serves (the runtime
//! does, on [`Outcome::Done`]).

use std::{
    io::{self, Read, Write},
    time::Instant,
};

use super::Conn;
use crate::sync::session::{Established, Handshake, SessionError};

/// Unauthenticated connections kept at once, at most.
pub const MAX_PENDING: usize = 8;
/// Bytes an unauthenticated connection may send before its handshake is
/// done: the Init and the Confirm take 164, the sealed Hello that may
/// follow at once 72.
pub const HANDSHAKE_BYTES: usize = 1024;

/// What became of the connections accepted on the sync port, over the
/// runtime's life.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AuthCounters {
    /// Connections accepted.
    pub accepted: u64,
    /// Closed at once: from an address that is not the peer's, or while
    /// this node does not publish.
    pub refused: u64,
    /// Dropped unauthenticated to make room for a newer one.
    pub pending_dropped: u64,
    /// Handshakes completed: the connection became the standby's session.
    pub handshakes: u64,
    /// Handshakes not completed within the time budget.
    pub timeouts: u64,
    /// Handshakes whose proof of the key did not verify (a replay, or
    /// another key).
    pub bad_proof: u64,
    /// Handshakes that got a bad frame (garbage, a bad MAC, out of order).
    pub bad_frames: u64,
    /// Peers that sent more than [`HANDSHAKE_BYTES`] before authenticating.
    pub over_budget: u64,
    /// Peers that closed (or failed) before authenticating.
    pub closed: u64,
}

/// Why a pending connection was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    Timeout,
    BadProof,
    BadFrame,
    OverBudget,
    Closed,
}

impl AuthCounters {
    pub fn count(&mut self, f: Failure) {
        match f {
            Failure::Timeout => self.timeouts += 1,
            Failure::BadProof => self.bad_proof += 1,
            Failure::BadFrame => self.bad_frames += 1,
            Failure::OverBudget => self.over_budget += 1,
            Failure::Closed => self.closed += 1,
        }
    }
}

fn failure_of(e: &SessionError) -> Failure {
    match e {
        SessionError::HandshakeTimeout(_) => Failure::Timeout,
        SessionError::BadProof => Failure::BadProof,
        _ => Failure::BadFrame,
    }
}

/// What a turn of a pending connection came to.
#[derive(Debug)]
pub enum Outcome {
    /// Still handshaking.
    Waiting,
    Failed(Failure),
    /// Authenticated: the connection (with what it buffered after the
    /// handshake) may serve the standby.
    Done(Established),
}

/// An accepted connection and its handshake.
pub(super) struct Pending {
    pub conn: Conn,
    pub handshake: Handshake,
    /// Bytes read so far.
    read: usize,
}

impl Pending {
    pub fn new(conn: Conn, handshake: Handshake) -> Pending {
        Pending {
            conn,
            handshake,
            read: 0,
        }
    }

    pub fn started(&self) -> Instant {
        self.handshake.started()
    }

    /// The poll events it waits for.
    pub fn events(&self) -> u32 {
        let mut ev = libc::POLLIN as u32;
        if !self.conn.out.is_empty() {
            ev |= libc::POLLOUT as u32;
        }
        ev
    }

    /// Reads what arrived (within the byte budget), hands whole frames to
    /// the handshake, and writes what it answers.
    pub fn on_ready(&mut self, now: Instant) -> Outcome {
        let mut buf = [0u8; HANDSHAKE_BYTES + 1];
        loop {
            if let Some(o) = self.feed(now) {
                return o;
            }
            // Room for one byte over the budget, to see it overrun.
            let room = HANDSHAKE_BYTES + 1 - self.read.min(HANDSHAKE_BYTES);
            match self.conn.stream.read(&mut buf[..room]) {
                Ok(0) => return Outcome::Failed(Failure::Closed),
                Ok(n) => {
                    self.read += n;
                    if self.read > HANDSHAKE_BYTES {
                        return Outcome::Failed(Failure::OverBudget);
                    }
                    if self.conn.deframer.push(&buf[..n]).is_err() {
                        return Outcome::Failed(Failure::BadFrame);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return Outcome::Failed(Failure::Closed),
            }
        }
        self.flush()
    }

    /// Feeds buffered frames to the handshake until it completes, fails or
    /// needs more bytes (`None`).
    fn feed(&mut self, now: Instant) -> Option<Outcome> {
        loop {
            let frame = match self.conn.deframer.next_frame() {
                Ok(Some(f)) => f.to_vec(),
                Ok(None) => return None,
                Err(_) => return Some(Outcome::Failed(Failure::BadFrame)),
            };
            if let Err(e) = self.handshake.handle_frame(&frame, now) {
                return Some(Outcome::Failed(failure_of(&e)));
            }
            while let Some(f) = self.handshake.poll_transmit() {
                self.conn.out.extend(f);
            }
            if let Some(est) = self.handshake.take_established() {
                // What follows the Confirm is the standby's: it stays in
                // the deframer for the publisher.
                return Some(Outcome::Done(est));
            }
        }
    }

    /// Writes the handshake's frames, as far as the socket takes them.
    pub fn flush(&mut self) -> Outcome {
        while !self.conn.out.is_empty() {
            let (a, _) = self.conn.out.as_slices();
            match self.conn.stream.write(a) {
                Ok(0) => break,
                Ok(n) => {
                    self.conn.out.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return Outcome::Failed(Failure::Closed),
            }
        }
        Outcome::Waiting
    }

    /// Fails the handshake once its time is up.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<Failure> {
        self.handshake
            .handle_timeout(now)
            .err()
            .map(|e| failure_of(&e))
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.handshake.poll_timeout()
    }
}
