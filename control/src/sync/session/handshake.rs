//! What both ends of a sync session share: opening a frame under the
//! right key (the shared key for a Hello, the session key the two Hellos
//! derive for everything else), writing a Hello, and the checks every
//! Hello must pass whichever end receives it.
//!
//! Pure functions over bytes and [`Hello`]s: this file keeps no state (the
//! nonces and session keys live in each machine's connection) and must not
//! do I/O or read a clock.

use tandem_common::heartbeat::Key;

use super::SessionError;
use crate::sync::wire::{
    self, Frame, FrameWriter, Hello, Kind, MAX_FRAME_LEN, PROTOCOL, Repr, Role,
};

/// Parses one whole frame, authenticated under the shared key (Hello) or
/// the session key (everything else).
pub(super) fn open(
    bytes: &[u8],
    shared: &Key,
    session: Option<&Key>,
) -> Result<Repr, SessionError> {
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

/// Was this error about the bytes (a bad frame), not about the protocol?
pub(super) fn is_wire_error(e: &SessionError) -> bool {
    matches!(e, SessionError::Frame(_) | SessionError::TrailingBytes(_))
}

/// A Hello from `node_id` at `epoch` saying `hello`, under the shared key.
/// Both ends send theirs at the start of a connection and the subscriber
/// again to ask for a resync.
pub(super) fn hello_frame(shared: &Key, node_id: u32, epoch: u64, hello: &Hello) -> Vec<u8> {
    let mut w = FrameWriter::new(Kind::Hello, node_id, epoch, hello.last_seq, MAX_FRAME_LEN);
    w.put_u16(hello.protocol);
    w.put_u8(hello.role as u8);
    w.put_u8(0);
    w.put_u32(hello.max_frame);
    w.put_u64(hello.stream);
    w.put_u64(hello.nonce);
    w.put_u64(hello.received);
    w.finish(shared)
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
    if hello.role != expected {
        return Err(SessionError::Role {
            got: hello.role,
            expected,
        });
    }
    if hello.protocol != PROTOCOL {
        return Err(SessionError::Protocol(hello.protocol));
    }
    if node == own {
        return Err(SessionError::SameNodeId(node));
    }
    Ok(())
}
