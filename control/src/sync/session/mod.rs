//! State-sync sessions: the [`Publisher`] on the serving node, which sends
//! every change of its flows, calls and IVR channels to a standing-by node,
//! and the [`Subscriber`] there, which applies them in order.
//!
//! Sans-IO in the style of quinn-proto: the runtime owns the TCP connection
//! and the clock. It calls `connected` with a fresh random nonce when a
//! connection is up (or, on the publisher, `adopt` with what a separate
//! [`Handshake`] of that connection established), feeds every whole frame (cut with
//! [`super::wire::Deframer`]) to `handle_frame`, writes what `poll_transmit`
//! returns (calling it after every input until it returns `None`), calls
//! `handle_timeout` at `poll_timeout`, and `disconnected` when the
//! connection goes. Any error from `handle_frame` or `handle_timeout` means:
//! close the connection (the machine has already dropped it). This module
//! must not do I/O, read a clock, sleep, spawn, or block; its memory is
//! bounded whatever the peer does.
//!
//! # Method kinds
//! [`Publisher`] and [`Subscriber`] have the same surface, sorted as in
//! quinn-proto so that a reader knows at a glance how to drive them:
//! - **Getters** (`state`, `stats`, `peer`, `stream`, `last_seq` /
//!   `last_applied`, …) read and never change anything.
//! - **`handle_*(…, now)`**: `handle_frame(bytes, now)` for every whole
//!   frame from the peer, `handle_timeout(now)` once `poll_timeout` is due.
//!   An error means the machine dropped the connection.
//! - **Mutators**: the runtime's own events, `connected(now, nonce)`,
//!   `disconnected()`, `set_epoch(epoch)`, and on the publisher
//!   `adopt(now, established)` and `record(record, now)` for every change.
//! - **`poll_*`**: what the machine wants done, `poll_transmit(now, …)`
//!   (the next frame to write) and `poll_timeout()` (when to call
//!   `handle_timeout`).
//!
//! # Files
//! `publisher.rs` and `subscriber.rs` hold one machine each;
//! `handshake.rs` the [`Handshake`] machine both run first, and what both
//! share: opening a frame in clear (handshake) or sealed, writing and
//! checking Hellos; `fuzzing.rs` the stateful fuzzing harness
//! ([`exercise_sessions`]).
//!
//! # Authentication first
//! A connection starts with the handshake (see [`crate::sync::wire`]):
//! Init(subscriber nonce) → Reply(publisher nonce, publisher proof) →
//! Confirm(subscriber proof), each proof an HMAC under a key derived from
//! the sync key over both fresh nonces, both node ids and the prover's
//! role. Until the publisher has checked the subscriber's Confirm it sends
//! nothing but its Reply: no Hello, no snapshot, no delta. A replayed Init
//! (or a whole replayed handshake) cannot produce a Confirm over the
//! publisher's fresh nonce, so it gets nothing and the handshake times out
//! ([`HANDSHAKE_TIMEOUT`]). Every frame after the handshake is sealed with
//! ChaCha20-Poly1305 under a per-direction key both nonces derive, its
//! nonce the direction's frame count: a frame replayed, dropped, reordered
//! or taken from another connection fails to open, and the session closes
//! (the next connection resumes). Then both ends send a sealed Hello; the
//! subscriber's says what it holds.
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
//! chunks of the current records walked from a
//! [`SnapshotSource`](crate::sync::SnapshotSource),
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

use std::time::Duration;

use super::wire::{self, Kind, MIN_FRAME_LEN, PROTOCOL, Role};

mod fuzzing;
mod handshake;
mod publisher;
mod subscriber;

#[doc(hidden)]
pub use fuzzing::exercise_sessions;
pub use handshake::{Established, HANDSHAKE_TIMEOUT, Handshake};

pub use publisher::{Publisher, PublisherConfig, PublisherState, PublisherStats};
pub use subscriber::{Applied, Subscriber, SubscriberConfig, SubscriberState, SubscriberStats};

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
    #[error("node {0} is not a configured peer")]
    NotAPeer(u32),
    #[error("peer accepts frames of at most {0} bytes, below the minimum {MIN_FRAME_LEN}")]
    MaxFrame(u32),
    #[error("the peer's proof of the sync key does not verify (another key, or a replay)")]
    BadProof,
    #[error("handshake not completed after {0:?}")]
    HandshakeTimeout(Duration),
    #[error("peer changed its node id within the handshake: {was}, then {got}")]
    PeerChanged { was: u32, got: u32 },
    #[error("ack of sequence {got}, beyond the last recorded {last}")]
    AckBeyond { got: u64, last: u64 },
    #[error("frame of epoch {got} after epoch {seen} on this connection")]
    StaleEpoch { got: u64, seen: u64 },
    #[error("peer silent for {0:?}")]
    PeerSilent(Duration),
    #[error("no connection")]
    NotConnected,
}

#[cfg(test)]
mod rotation_tests;
#[cfg(test)]
mod tests;
