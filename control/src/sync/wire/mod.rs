//! The state-sync wire format: length-prefixed, authenticated frames that
//! the serving director (the publisher) and the standing-by directors (the
//! subscribers) exchange over TCP, and the records the frames carry.
//!
//! This module owns the byte layout and nothing else: it parses and emits
//! frames and records, authenticates and seals them, and cuts frames out of a byte
//! stream ([`Deframer`]). It must not keep session state (sequence numbers,
//! acknowledgements, snapshots: that is [`super::session`]), do I/O, panic
//! on any input, or allocate for a frame longer than [`MAX_FRAME_LEN`].
//!
//! Written in the smoltcp style: [`Frame`] is a checked view over a buffer
//! with one getter and setter per header field, [`Repr`] the parsed frame
//! with `parse` / `emit` / `buffer_len`, [`Record`] the parsed record.
//!
//! # Files
//! `frame.rs` owns the header: the [`Frame`] view, [`peek_frame_len`], the
//! one encoder [`FrameWriter`] and the stream cutter [`Deframer`];
//! `repr.rs` the parsed frame ([`Repr`], [`Message`], [`Hello`]);
//! `records.rs` the records ([`Record`] and the structs it carries);
//! `crypto.rs` the keys, the handshake's proofs and the sealing
//! ([`SyncKey`], [`HandshakeKeys`], [`Cipher`]). This file holds the
//! constants, the error and the frame kinds.
//!
//! # Frame
//! Integers are big-endian. Every frame ends in a 16-byte tag; which one
//! depends on its kind ([`crypto`] has the derivations):
//! - the three **handshake** frames (Init, Reply, Confirm) are in clear
//!   and carry an HMAC-SHA256 tag (truncated) under a MAC key derived from
//!   the sync key: they hold nonces and proofs, no state;
//! - every **other** frame is sealed with ChaCha20-Poly1305 under the
//!   session key of its direction, which both nonces derive: the body is
//!   encrypted (Call-IDs, addresses and every other field of the records
//!   are not readable on the wire), the header is authenticated as
//!   associated data, and the AEAD nonce is the count of frames that
//!   direction sealed before it, so a frame replayed, reordered, dropped or
//!   recorded from another connection fails to open.
//!
//! ```text
//!  0 magic "TSYN"    4 version (2)    5 kind    6 flags (u16; unknown bits ignored)
//!  8 node id of the sender (u32)     12 body length (u32)
//! 16 epoch of the sender (u64)       24 sequence (u64, meaning per kind)
//! 32 body (body length bytes; sealed frames: ciphertext of the body)
//! 32 + body length: tag (16 bytes)
//! ```
//!
//! | kind | sequence | body |
//! | --- | --- | --- |
//! | 8 Init (subscriber, clear) | 0 | protocol u16, role u8 (2), 0 u8, subscriber nonce (32 bytes) |
//! | 9 Reply (publisher, clear) | 0 | protocol u16, role u8 (1), 0 u8, publisher nonce (32 bytes), publisher proof (32 bytes) |
//! | 10 Confirm (subscriber, clear) | 0 | subscriber proof (32 bytes) |
//! | 1 Hello | last sequence the sender holds of `stream` | protocol u16, role u8 (1 publisher, 2 subscriber), 0 u8, max frame u32, stream u64, bytes received u64 |
//! | 2 SnapshotBegin | base: the snapshot holds every change up to it | stream u64, snapshot id u32, flags u32 (bit 0: keep the calls it does not carry) |
//! | 3 SnapshotChunk | base | snapshot id u32, chunk index u32, records |
//! | 4 SnapshotEnd | base | snapshot id u32, chunk count u32, record count u64 |
//! | 5 Delta | sequence of its first record (one per record) | records (at least one) |
//! | 6 Ack | last sequence applied (0: none of the publisher's stream) | bytes received u64 |
//! | 7 Keepalive | publisher: last sequence sent; subscriber: as Ack | empty |
//!
//! The handshake: Init (the subscriber's fresh nonce) → Reply (the
//! publisher's fresh nonce and its proof of the key over both) → Confirm
//! (the subscriber's proof over both); a proof is an HMAC over the
//! transcript (protocol, both node ids, both nonces) and the prover's role,
//! so neither end sends a proof the other could replay, and a replayed
//! Init never gets past Reply. Only then is anything sealed sent, starting
//! with each end's Hello.
//!
//! One flag is defined: [`FLAG_STREAMING`] on a publisher's Keepalive.
//! A Hello's, Init's or Reply's body may be longer than this version's
//! (later versions append fields; they are ignored); every other body must
//! be exactly as long as its fields.
//!
//! # Records
//! `type u8, length u16, value`. A reader skips a record of a type it does
//! not know ([`Record::Unknown`]) and ignores bytes after the fields it
//! knows at the end of a value, so later versions can add record types and
//! append fields. Addresses are 16 bytes (IPv4 as IPv4-mapped IPv6), sent
//! as 4 bytes when the record's `V4` bit says all of its addresses are
//! IPv4-mapped.
//!
//! | type | value |
//! | --- | --- |
//! | 1 flow | form u8 (1: V4, 2: service is the destination), src, dst, sport u16, dport u16, proto u8, [service addr, port u16, proto u8], real addr, real port u16, age ms u32, flags u32 |
//! | 2 flow removed | form u8 (1: V4), src, dst, sport u16, dport u16, proto u8 |
//! | 3 call | id length u16, id (UTF-8, ≤ 256 bytes), fields u8 (1: channel, 2: flow, 4: IVR, 8: V4), state u8, created ms u64, updated ms u64, [span u32, channel u32], [flow key: src, dst, sport, dport, proto], [IVR addr] |
//! | 4 call removed | id length u16, id |
//! | 5 channel | IVR node id u32, channel u32, state u8, updated ms u64 |
//! | 6 channel removed | IVR node id u32, channel u32 |
//!
//! An IPv4 flow whose service is its destination takes 31 bytes.

mod crypto;
mod frame;
mod records;
mod repr;

pub use crypto::{
    Cipher, Ciphers, HandshakeKeys, KeyRing, KeySlot, MacKey, NONCE_LEN, Nonce, PROOF_LEN,
    SyncKey, SyncKeys, Transcript,
};
pub use frame::{Deframer, Frame, FrameWriter, peek_frame_len};
pub use records::{
    CallRecord, CallState, ChannelRef, ChannelState, FlowRecord, Record, SERVICES_PART_TEXT,
    ServicesPart, VirtualService, is_v4_mapped, parse_records, record_type,
};
pub use repr::{Greeting, Hello, Message, Repr, SNAPSHOT_KEEP_CALLS};

/// Default TCP port of the sync connection.
pub const DEFAULT_PORT: u16 = 8848;
pub const MAGIC: [u8; 4] = *b"TSYN";
/// Version of the frame layout (the header's version byte).
/// 2: the handshake and sealed frames with 16-byte tags.
pub const VERSION: u8 = 2;
/// Version of the sync protocol (the handshake's and Hello's protocol
/// field). 2: mutual handshake, sealed stream.
pub const PROTOCOL: u16 = 2;
pub const HEADER_LEN: usize = 32;
/// Bytes of the tag that ends every frame (a MAC or the AEAD's).
pub const TAG_LEN: usize = 16;
/// The largest frame this node sends or accepts, header and MAC included.
pub const MAX_FRAME_LEN: usize = 64 * 1024;
pub const MAX_BODY_LEN: usize = MAX_FRAME_LEN - HEADER_LEN - TAG_LEN;
/// The smallest maximum frame a peer may announce in its Hello: room for
/// a chunk holding the largest record.
pub const MIN_FRAME_LEN: usize = 2048;
/// The largest record (type and length included) a node may send.
pub const MAX_RECORD_LEN: usize = 1024;
/// The longest call id, in bytes.
pub const MAX_CALL_ID: usize = 256;
/// Type, length.
pub const RECORD_HEADER_LEN: usize = 3;
/// Keepalive flag: the publisher streams deltas and has sent every record
/// up to the keepalive's sequence (a subscriber holding less lost a frame).
pub const FLAG_STREAMING: u16 = 0x0001;

/// Why bytes are not a valid frame or record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("truncated {field}: needs {need} bytes, {got} there")]
    Truncated {
        field: &'static str,
        need: usize,
        got: usize,
    },
    #[error("frame of {len} bytes is over the maximum of {max}")]
    Oversized { len: usize, max: usize },
    #[error("bad magic {0:02x?}, expected \"TSYN\"")]
    BadMagic([u8; 4]),
    #[error("frame version {0}, this node speaks version {VERSION}")]
    BadVersion(u8),
    #[error("unknown frame kind {0}")]
    UnknownKind(u8),
    #[error("tag mismatch: forged, corrupted, replayed, out of order, or sent under another key")]
    BadMac,
    #[error("bad {field}: {value}")]
    BadField { field: &'static str, value: u64 },
}

/// What a frame is.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Hello = 1,
    SnapshotBegin = 2,
    SnapshotChunk = 3,
    SnapshotEnd = 4,
    Delta = 5,
    Ack = 6,
    Keepalive = 7,
    Init = 8,
    Reply = 9,
    Confirm = 10,
}

impl Kind {
    pub const fn from_u8(v: u8) -> Option<Kind> {
        match v {
            1 => Some(Kind::Hello),
            2 => Some(Kind::SnapshotBegin),
            3 => Some(Kind::SnapshotChunk),
            4 => Some(Kind::SnapshotEnd),
            5 => Some(Kind::Delta),
            6 => Some(Kind::Ack),
            7 => Some(Kind::Keepalive),
            8 => Some(Kind::Init),
            9 => Some(Kind::Reply),
            10 => Some(Kind::Confirm),
            _ => None,
        }
    }

    /// Is this a handshake frame (in clear, MAC'd), not a sealed one?
    pub const fn is_handshake(self) -> bool {
        matches!(self, Kind::Init | Kind::Reply | Kind::Confirm)
    }
}

/// Which end of a sync connection a node is.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// The serving node, which sends its state.
    Publisher = 1,
    /// A standing-by node, which applies it.
    Subscriber = 2,
}

// ---- fuzzing --------------------------------------------------------------

/// Runs every parser of this module on `data`: as a frame (under a fixed
/// MAC key, then again with its tag made valid so the body parsers are
/// reached; then sealed and opened under a fresh session), as records, and
/// as a stream through a [`Deframer`]. Checks that a frame that parses
/// re-encodes to one that parses the same, and that a sealed frame opens
/// to the same and to nothing once tampered.
/// Returns how many frames parsed, or what did not round-trip. The
/// `sync_frame` fuzz target and the proptests call it.
#[doc(hidden)]
pub fn exercise_parsers(data: &[u8]) -> Result<usize, String> {
    let keys = SyncKey::new([0x42; 16]).handshake_keys();
    let key = keys.mac();
    let mut parsed = 0;
    let _ = peek_frame_len(data);
    if let Ok(frame) = Frame::new_checked(data) {
        if Repr::parse(&frame, key).is_ok() {
            parsed += 1;
        }
        let mut buf = data[..frame.frame_len()].to_vec();
        let mut fixed = Frame::new_unchecked(&mut buf[..]);
        fixed.fill_mac(key);
        if let Ok(repr) = Repr::parse(&fixed, key) {
            parsed += 1;
            if let Ok(bytes) = repr.to_bytes(key) {
                let again = Frame::new_checked(&bytes[..]).and_then(|f| Repr::parse(&f, key));
                if again.as_ref() != Ok(&repr) {
                    return Err(format!(
                        "{repr:?} re-encoded as {bytes:02x?} parses as {again:?}"
                    ));
                }
            }
            check_sealing(&keys, &repr)?;
        }
    }
    let _ = Record::parse(data);
    let _ = parse_records(data);
    let mut stream = Deframer::new();
    'feed: for piece in data.chunks(7) {
        if stream.push(piece).is_err() {
            break;
        }
        loop {
            match stream.next_frame() {
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(_) => break 'feed,
            }
        }
    }
    Ok(parsed)
}

/// Seals `repr` under a session, opens it back, and checks that a copy
/// with one byte flipped (the last: the tag) and a second opening of the
/// same frame (a replay) both fail.
fn check_sealing(keys: &HandshakeKeys, repr: &Repr) -> Result<(), String> {
    let t = Transcript {
        protocol: PROTOCOL,
        subscriber: 2,
        publisher: 1,
        subscriber_nonce: Nonce::from(1),
        publisher_nonce: Nonce::from(2),
    };
    let mut tx = keys.session(Role::Publisher, &t);
    let mut rx = keys.session(Role::Subscriber, &t);
    let Ok(sealed) = repr.seal(&mut tx.send) else {
        return Ok(());
    };
    let mut tampered = sealed.clone();
    if let Some(b) = tampered.last_mut() {
        *b ^= 1;
    }
    if Repr::open(&mut tampered.clone(), &mut rx.recv).is_ok() {
        return Err(format!("{repr:?}: a tampered sealed frame opened"));
    }
    match Repr::open(&mut sealed.clone(), &mut rx.recv) {
        Ok(back) if &back == repr => {}
        other => return Err(format!("{repr:?} sealed opens as {other:?}")),
    }
    if Repr::open(&mut sealed.clone(), &mut rx.recv).is_ok() {
        return Err(format!("{repr:?}: a replayed sealed frame opened"));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
