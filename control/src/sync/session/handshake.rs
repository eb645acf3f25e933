//! The sync handshake: a sans-IO [`Handshake`] machine per connection that
//! proves, both ways, that the other end holds the sync key over nonces
//! both ends drew fresh, and yields the session's ciphers
//! ([`Established`]); and what both session machines share to read frames
//! (clear handshake frames under the MAC key, sealed ones under the
//! receiving cipher) and to check a peer's Hello.
//!
//! Init(subscriber nonce) → Reply(publisher nonce, publisher proof) →
//! Confirm(subscriber proof): see [`crate::sync::wire`] for the bytes.
//! During a key rotation each end holds two keys ([`KeyRing`]): it makes
//! its frames and proof under its current key and takes the peer's under
//! either; the session's ciphers derive from the key the publisher's
//! Reply was made under (its current key, which the subscriber found
//! among its own), so both ends agree whichever step each is at. A
//! publisher's handshake yields [`Established`] only once the Confirm
//! verifies; a subscriber's once its Confirm has been taken for sending,
//! after the Reply's proof verified. Nothing here sends state, does I/O,
//! reads a clock (every input carries `now`) or draws randomness (the
//! caller brings the nonce).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::SessionError;
use crate::sync::wire::{
    self, Ciphers, Frame, Greeting, Hello, KeyRing, KeySlot, Kind, MAX_FRAME_LEN, Message, Nonce,
    PROTOCOL, Repr, Role, Transcript,
};

/// How long a handshake may take by default.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(1);

/// What a completed handshake yields: who the peer is and the session's
/// ciphers, for [`super::Publisher::adopt`] or the subscriber.
#[derive(Debug)]
pub struct Established {
    /// The peer's node id, as it proved it.
    pub peer_node: u32,
    /// The peer's epoch in its last handshake frame.
    pub peer_epoch: u64,
    pub(super) ciphers: Ciphers,
}

#[derive(Debug)]
enum Step {
    /// Subscriber: the Init is to be sent, then the Reply awaited.
    AwaitReply,
    /// Publisher: waiting for the subscriber's Init.
    AwaitInit,
    /// Publisher: Reply sent, waiting for the Confirm over it.
    AwaitConfirm {
        transcript: Transcript,
        peer_node: u32,
    },
    /// Done: the ciphers are ready (once the last frame is taken).
    Done(Established),
    /// Taken, failed or timed out: every further input is an error.
    Over,
}

/// One end of a handshake.
///
/// - Getters: [`role`](Self::role), [`is_done`](Self::is_done),
///   [`started`](Self::started).
/// - `handle_*(…, now)`: [`handle_frame`](Self::handle_frame),
///   [`handle_timeout`](Self::handle_timeout).
/// - `poll_*`: [`poll_transmit`](Self::poll_transmit) (Init, Reply or
///   Confirm), [`poll_timeout`](Self::poll_timeout).
/// - [`take_established`](Self::take_established) once it is done.
#[derive(Debug)]
pub struct Handshake {
    role: Role,
    node_id: u32,
    epoch: u64,
    keys: KeyRing,
    nonce: Nonce,
    step: Step,
    out: VecDeque<Vec<u8>>,
    started: Instant,
    timeout: Duration,
    /// The node ids this end may talk to (empty: any but its own).
    peers: Vec<u32>,
}

impl Handshake {
    /// Refuses a peer whose node id is not one of `peers` (empty: any).
    pub fn expecting(mut self, peers: &[u32]) -> Handshake {
        self.peers = peers.to_vec();
        self
    }

    /// One end at its first step (the publisher waits for an Init, the
    /// subscriber for the Reply to its own), with nothing sent yet.
    fn new(
        role: Role,
        node_id: u32,
        epoch: u64,
        keys: KeyRing,
        nonce: Nonce,
        now: Instant,
        timeout: Duration,
    ) -> Handshake {
        let step = if role == Role::Publisher {
            Step::AwaitInit
        } else {
            Step::AwaitReply
        };
        Handshake {
            role,
            node_id,
            epoch,
            keys,
            nonce,
            step,
            out: VecDeque::new(),
            started: now,
            timeout,
            peers: Vec::new(),
        }
    }

    /// The publisher's end: waits for an Init. `nonce` must be fresh;
    /// `keys`: one sync key, or a node's current and next ([`KeyRing`]).
    pub fn publisher(
        node_id: u32,
        epoch: u64,
        keys: impl Into<KeyRing>,
        nonce: Nonce,
        now: Instant,
        timeout: Duration,
    ) -> Handshake {
        Handshake::new(
            Role::Publisher,
            node_id,
            epoch,
            keys.into(),
            nonce,
            now,
            timeout,
        )
    }

    /// The subscriber's end: sends its Init. `nonce` must be fresh.
    pub fn subscriber(
        node_id: u32,
        epoch: u64,
        keys: impl Into<KeyRing>,
        nonce: Nonce,
        now: Instant,
        timeout: Duration,
    ) -> Handshake {
        let init = Message::Init(Greeting {
            role: Role::Subscriber,
            protocol: PROTOCOL,
            nonce,
        });
        let mut h = Handshake::new(
            Role::Subscriber,
            node_id,
            epoch,
            keys.into(),
            nonce,
            now,
            timeout,
        );
        let init = h.clear_frame(init);
        h.out.push_back(init);
        h
    }

    fn check_peer(&self, node: u32) -> Result<(), SessionError> {
        if self.peers.is_empty() || self.peers.contains(&node) {
            Ok(())
        } else {
            Err(SessionError::NotAPeer(node))
        }
    }

    fn clear_frame(&self, message: Message) -> Vec<u8> {
        let repr = Repr {
            node_id: self.node_id,
            epoch: self.epoch,
            flags: 0,
            message,
        };
        // Handshake frames have no records: they always encode.
        repr.to_bytes(self.keys.current().mac()).unwrap_or_default()
    }

    pub fn role(&self) -> Role {
        self.role
    }

    /// When it began.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Has it completed (the ciphers wait in [`Self::take_established`])?
    pub fn is_done(&self) -> bool {
        matches!(self.step, Step::Done(_))
    }

    /// Handles one whole frame from the peer. An error means the handshake
    /// failed: close the connection.
    pub fn handle_frame(&mut self, bytes: &[u8], now: Instant) -> Result<(), SessionError> {
        let r = self.on_frame(bytes, now);
        if r.is_err() {
            self.step = Step::Over;
            self.out.clear();
        }
        r
    }

    fn on_frame(&mut self, bytes: &[u8], now: Instant) -> Result<(), SessionError> {
        if now >= self.started + self.timeout {
            return Err(SessionError::HandshakeTimeout(now - self.started));
        }
        let (repr, slot) = open_clear(bytes, &self.keys)?;
        let step = std::mem::replace(&mut self.step, Step::Over);
        match (step, repr.message) {
            (Step::AwaitInit, Message::Init(g)) => {
                check_greeting(&g, repr.node_id, self.node_id, Role::Subscriber)?;
                self.check_peer(repr.node_id)?;
                let transcript = Transcript {
                    protocol: PROTOCOL,
                    subscriber: repr.node_id,
                    publisher: self.node_id,
                    subscriber_nonce: g.nonce,
                    publisher_nonce: self.nonce,
                };
                let proof = self.keys.current().proof(Role::Publisher, &transcript);
                let reply = Message::Reply {
                    greeting: Greeting {
                        role: Role::Publisher,
                        protocol: PROTOCOL,
                        nonce: self.nonce,
                    },
                    proof,
                };
                let reply = self.clear_frame(reply);
                self.out.push_back(reply);
                self.step = Step::AwaitConfirm {
                    transcript,
                    peer_node: repr.node_id,
                };
                Ok(())
            }
            (
                Step::AwaitConfirm {
                    transcript,
                    peer_node,
                },
                Message::Confirm { proof },
            ) => {
                if repr.node_id != peer_node {
                    return Err(SessionError::PeerChanged {
                        was: peer_node,
                        got: repr.node_id,
                    });
                }
                // Under the key its frame verified under: the
                // subscriber's current one, this end's current or next.
                if !self
                    .keys
                    .get(slot)
                    .is_some_and(|k| k.check_proof(Role::Subscriber, &transcript, &proof))
                {
                    return Err(SessionError::BadProof);
                }
                self.step = Step::Done(Established {
                    peer_node,
                    peer_epoch: repr.epoch,
                    ciphers: self.keys.current().session(Role::Publisher, &transcript),
                });
                Ok(())
            }
            (Step::AwaitReply, Message::Reply { greeting, proof }) => {
                check_greeting(&greeting, repr.node_id, self.node_id, Role::Publisher)?;
                self.check_peer(repr.node_id)?;
                let transcript = Transcript {
                    protocol: PROTOCOL,
                    subscriber: self.node_id,
                    publisher: repr.node_id,
                    subscriber_nonce: self.nonce,
                    publisher_nonce: greeting.nonce,
                };
                // The publisher's current key, found among this end's.
                let Some(theirs) = self
                    .keys
                    .get(slot)
                    .filter(|k| k.check_proof(Role::Publisher, &transcript, &proof))
                else {
                    return Err(SessionError::BadProof);
                };
                let ciphers = theirs.session(Role::Subscriber, &transcript);
                let proof = self.keys.current().proof(Role::Subscriber, &transcript);
                // After the Init, if a driver had not taken it yet.
                let confirm = self.clear_frame(Message::Confirm { proof });
                self.out.push_back(confirm);
                self.step = Step::Done(Established {
                    peer_node: repr.node_id,
                    peer_epoch: repr.epoch,
                    ciphers,
                });
                Ok(())
            }
            (_, m) => Err(SessionError::Unexpected {
                kind: m.kind(),
                why: "out of the handshake's order",
            }),
        }
    }

    /// The next handshake frame to write, if any.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.out.pop_front()
    }

    /// When the handshake times out (if it has not completed).
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.step {
            Step::Done(_) | Step::Over => None,
            _ => Some(self.started + self.timeout),
        }
    }

    /// Fails the handshake once its time is up.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), SessionError> {
        if self.poll_timeout().is_some_and(|t| now >= t) {
            self.step = Step::Over;
            self.out.clear();
            return Err(SessionError::HandshakeTimeout(now - self.started));
        }
        Ok(())
    }

    /// The session, once the handshake is done and its last frame taken.
    pub fn take_established(&mut self) -> Option<Established> {
        if !self.out.is_empty() || !self.is_done() {
            return None;
        }
        match std::mem::replace(&mut self.step, Step::Over) {
            Step::Done(e) => Some(e),
            _ => None,
        }
    }
}

/// Checks a frame's length, that nothing follows it, and its magic and
/// version, so that garbage is reported as such; returns its kind.
fn frame_kind(bytes: &[u8]) -> Result<Kind, SessionError> {
    wire::peek_frame_len(bytes)?;
    let frame = Frame::new_checked(bytes)?;
    if bytes.len() > frame.frame_len() {
        return Err(SessionError::TrailingBytes(bytes.len() - frame.frame_len()));
    }
    Kind::from_u8(frame.kind()).ok_or(SessionError::Frame(wire::Error::UnknownKind(frame.kind())))
}

/// Parses one whole handshake frame, in clear, under the handshake's MAC
/// key of the current sync key or, failing that, the next one; which one
/// verified it. Any other kind is out of place before the handshake
/// completed.
pub(super) fn open_clear(bytes: &[u8], keys: &KeyRing) -> Result<(Repr, KeySlot), SessionError> {
    let kind = frame_kind(bytes)?;
    if !kind.is_handshake() {
        return Err(SessionError::Unexpected {
            kind,
            why: "before the handshake completed",
        });
    }
    let frame = Frame::new_unchecked(bytes);
    let mut first = None;
    for (slot, k) in keys.slots() {
        match Repr::parse(&frame, k.mac()) {
            Ok(repr) => return Ok((repr, slot)),
            Err(e) => {
                first.get_or_insert(e);
            }
        }
    }
    Err(first.map_or(SessionError::BadProof, SessionError::Frame))
}

/// Opens one whole sealed frame as the next of the receiving direction.
/// A handshake frame is out of place once the handshake is done.
pub(super) fn open_sealed(bytes: &[u8], ciphers: &mut Ciphers) -> Result<Repr, SessionError> {
    let kind = frame_kind(bytes)?;
    if kind.is_handshake() {
        return Err(SessionError::Unexpected {
            kind,
            why: "a handshake frame after the handshake",
        });
    }
    let mut copy = bytes.to_vec();
    Ok(Repr::open(&mut copy, &mut ciphers.recv)?)
}

/// Was this error about the bytes (a bad frame), not about the protocol?
pub(super) fn is_wire_error(e: &SessionError) -> bool {
    matches!(e, SessionError::Frame(_) | SessionError::TrailingBytes(_))
}

/// A Hello from `node_id` at `epoch` saying `hello`, sealed. Both ends
/// send theirs once the handshake is done, and the subscriber again to
/// ask for a resync.
pub(super) fn hello_frame(
    ciphers: &mut Ciphers,
    node_id: u32,
    epoch: u64,
    hello: &Hello,
) -> Vec<u8> {
    let repr = Repr {
        node_id,
        epoch,
        flags: 0,
        message: Message::Hello(*hello),
    };
    repr.seal(&mut ciphers.send).unwrap_or_default()
}

/// A Hello of this node in `role`.
pub(super) fn own_hello(role: Role, stream: u64, last_seq: u64, received: u64) -> Hello {
    Hello {
        role,
        protocol: PROTOCOL,
        max_frame: MAX_FRAME_LEN as u32,
        stream,
        last_seq,
        received,
    }
}

fn check_role_protocol(
    role: Role,
    protocol: u16,
    node: u32,
    own: u32,
    expected: Role,
) -> Result<(), SessionError> {
    if role != expected {
        return Err(SessionError::Role {
            got: role,
            expected,
        });
    }
    if protocol != PROTOCOL {
        return Err(SessionError::Protocol(protocol));
    }
    if node == own {
        return Err(SessionError::SameNodeId(node));
    }
    Ok(())
}

fn check_greeting(g: &Greeting, node: u32, own: u32, expected: Role) -> Result<(), SessionError> {
    check_role_protocol(g.role, g.protocol, node, own, expected)
}

/// The checks of a peer's Hello that do not depend on which end this is:
/// the peer plays the `expected` role, speaks this [`PROTOCOL`], and does
/// not claim this node's id `own`.
pub(super) fn check_peer_hello(
    hello: &Hello,
    node: u32,
    own: u32,
    expected: Role,
) -> Result<(), SessionError> {
    check_role_protocol(hello.role, hello.protocol, node, own, expected)
}
