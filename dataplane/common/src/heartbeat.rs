//! The heartbeat message, one fixed-size UDP payload for both uses:
//! director to director (the pair's failure detection) and IVR server to
//! director (real-server health and load). The XDP program verifies and
//! records it in the kernel; the control plane builds and sends it.
//!
//! Layout (56 bytes, integers big-endian except the MAC):
//!
//! ```text
//!  0 magic "TNDM"      4 version (1)   5 kind   6 state   7 priority
//!  8 node id (u32)    12 path (u8)    13..16 reserved (0)
//! 16 epoch (u64)      24 sequence (u64)       32 sender time, ns (u64)
//! 40 active channels (u32)            44 channel capacity (u32)
//! 48 SipHash-2-4 of bytes 0..48 under the shared 16-byte key (u64, little-endian)
//! ```
//!
//! Written in the smoltcp style: [`Packet`] is a checked view over a
//! buffer with one getter/setter per field, [`Repr`] the parsed form with
//! `parse`/`emit`. The MAC function works on six 64-bit words so that the
//! kernel program computes it without loops over bytes.

use crate::node::NodeState;

/// Default UDP port (Linux-HA heartbeat's).
pub const DEFAULT_PORT: u16 = 694;
/// Length of the message.
pub const LEN: usize = 56;
/// Bytes covered by the MAC.
pub const MAC_COVERS: usize = 48;
pub const MAGIC: [u8; 4] = *b"TNDM";
pub const VERSION: u8 = 1;

/// Byte offsets of the fields (the layout above), shared by [`Packet`]
/// and the kernel's decoder, which reads the message as 16-bit words and
/// derives every index from these.
pub mod field {
    use core::ops::Range;
    pub const MAGIC: Range<usize> = 0..4;
    pub const VERSION: usize = 4;
    pub const KIND: usize = 5;
    pub const STATE: usize = 6;
    pub const PRIORITY: usize = 7;
    pub const NODE_ID: Range<usize> = 8..12;
    pub const PATH: usize = 12;
    pub const RESERVED: Range<usize> = 13..16;
    pub const EPOCH: Range<usize> = 16..24;
    pub const SEQ: Range<usize> = 24..32;
    pub const SENT_NS: Range<usize> = 32..40;
    pub const ACTIVE: Range<usize> = 40..44;
    pub const CAPACITY: Range<usize> = 44..48;
    pub const MAC: Range<usize> = 48..56;

    const _: () = {
        assert!(MAC.start == super::MAC_COVERS && MAC.end == super::LEN);
        assert!(super::LEN.is_multiple_of(8) && super::MAC_COVERS.is_multiple_of(8));
    };
}

/// Who sent a heartbeat.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A director of the pair.
    Director = 1,
    /// An IVR server reporting its health and load.
    Ivr = 2,
}

impl Kind {
    pub const fn from_u8(v: u8) -> Option<Kind> {
        match v {
            1 => Some(Kind::Director),
            2 => Some(Kind::Ivr),
            _ => None,
        }
    }
}

/// Why a buffer is not a valid heartbeat.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// Shorter than [`LEN`].
    Truncated,
    /// Wrong magic or version.
    BadMagic,
    /// Unknown kind or state.
    BadField,
    /// The MAC does not match (forged, corrupted, or another key).
    BadMac,
}

/// The SipHash key, as the two little-endian 64-bit halves of the 16
/// key bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Key {
    pub k0: u64,
    pub k1: u64,
}

impl Key {
    pub fn from_bytes(b: &[u8; 16]) -> Key {
        let mut k0 = [0u8; 8];
        let mut k1 = [0u8; 8];
        k0.copy_from_slice(&b[..8]);
        k1.copy_from_slice(&b[8..]);
        Key { k0: u64::from_le_bytes(k0), k1: u64::from_le_bytes(k1) }
    }
}

#[inline(always)]
fn sipround(v: &mut [u64; 4]) {
    v[0] = v[0].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(13);
    v[1] ^= v[0];
    v[0] = v[0].rotate_left(32);
    v[2] = v[2].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(16);
    v[3] ^= v[2];
    v[0] = v[0].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(21);
    v[3] ^= v[0];
    v[2] = v[2].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(17);
    v[1] ^= v[2];
    v[2] = v[2].rotate_left(32);
}

#[inline(always)]
fn compress(v: &mut [u64; 4], m: u64) {
    v[3] ^= m;
    sipround(v);
    sipround(v);
    v[0] ^= m;
}

#[inline(always)]
fn init(key: &Key) -> [u64; 4] {
    [
        key.k0 ^ 0x736f_6d65_7073_6575,
        key.k1 ^ 0x646f_7261_6e64_6f6d,
        key.k0 ^ 0x6c79_6765_6e65_7261,
        key.k1 ^ 0x7465_6462_7974_6573,
    ]
}

#[inline(always)]
fn finish(v: &mut [u64; 4], last: u64) -> u64 {
    compress(v, last);
    v[2] ^= 0xff;
    sipround(v);
    sipround(v);
    sipround(v);
    sipround(v);
    v[0] ^ v[1] ^ v[2] ^ v[3]
}

/// SipHash-2-4 of 48 bytes given as six little-endian words: the
/// heartbeat's MAC. Straight-line code (the kernel program's form).
#[inline(always)]
pub fn mac_words(key: &Key, m: &[u64; 6]) -> u64 {
    let mut v = init(key);
    compress(&mut v, m[0]);
    compress(&mut v, m[1]);
    compress(&mut v, m[2]);
    compress(&mut v, m[3]);
    compress(&mut v, m[4]);
    compress(&mut v, m[5]);
    finish(&mut v, (MAC_COVERS as u64) << 56)
}

/// SipHash-2-4 of any byte string (host side and tests).
pub fn siphash24(key: &Key, data: &[u8]) -> u64 {
    let mut v = init(key);
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        compress(&mut v, u64::from_le_bytes(w));
    }
    let rest = chunks.remainder();
    let mut last = (data.len() as u64 & 0xff) << 56;
    for (i, b) in rest.iter().enumerate() {
        last |= (*b as u64) << (8 * i);
    }
    finish(&mut v, last)
}

/// The six MAC words of a heartbeat buffer (its first 48 bytes).
pub fn words(buf: &[u8]) -> [u64; 6] {
    let mut m = [0u64; 6];
    for (i, w) in m.iter_mut().enumerate() {
        let mut b = [0u8; 8];
        b.copy_from_slice(&buf[i * 8..i * 8 + 8]);
        *w = u64::from_le_bytes(b);
    }
    m
}

/// A read/write view of a heartbeat in a buffer.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps a buffer, checking it is long enough.
    pub fn new_checked(buffer: T) -> Result<Packet<T>, Error> {
        let p = Packet::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    pub fn check_len(&self) -> Result<(), Error> {
        if self.buffer.as_ref().len() < LEN { Err(Error::Truncated) } else { Ok(()) }
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn u32_at(&self, r: core::ops::Range<usize>) -> u32 {
        let b = &self.buffer.as_ref()[r];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }

    fn u64_at(&self, r: core::ops::Range<usize>) -> u64 {
        let b = &self.buffer.as_ref()[r];
        u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
    }

    pub fn magic(&self) -> [u8; 4] {
        let b = &self.buffer.as_ref()[field::MAGIC];
        [b[0], b[1], b[2], b[3]]
    }
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VERSION]
    }
    pub fn kind(&self) -> u8 {
        self.buffer.as_ref()[field::KIND]
    }
    pub fn state(&self) -> u8 {
        self.buffer.as_ref()[field::STATE]
    }
    pub fn priority(&self) -> u8 {
        self.buffer.as_ref()[field::PRIORITY]
    }
    pub fn node_id(&self) -> u32 {
        self.u32_at(field::NODE_ID)
    }
    pub fn path(&self) -> u8 {
        self.buffer.as_ref()[field::PATH]
    }
    pub fn epoch(&self) -> u64 {
        self.u64_at(field::EPOCH)
    }
    pub fn seq(&self) -> u64 {
        self.u64_at(field::SEQ)
    }
    pub fn sent_ns(&self) -> u64 {
        self.u64_at(field::SENT_NS)
    }
    pub fn active_channels(&self) -> u32 {
        self.u32_at(field::ACTIVE)
    }
    pub fn capacity(&self) -> u32 {
        self.u32_at(field::CAPACITY)
    }
    pub fn mac(&self) -> u64 {
        let b = &self.buffer.as_ref()[field::MAC];
        u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
    }

    /// Does the MAC match the first 48 bytes under `key`?
    pub fn verify(&self, key: &Key) -> bool {
        mac_words(key, &words(self.buffer.as_ref())) == self.mac()
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    fn put(&mut self, r: core::ops::Range<usize>, v: &[u8]) {
        self.buffer.as_mut()[r].copy_from_slice(v);
    }
    pub fn set_magic(&mut self, v: [u8; 4]) {
        self.put(field::MAGIC, &v);
    }
    pub fn set_version(&mut self, v: u8) {
        self.buffer.as_mut()[field::VERSION] = v;
    }
    pub fn set_kind(&mut self, v: u8) {
        self.buffer.as_mut()[field::KIND] = v;
    }
    pub fn set_state(&mut self, v: u8) {
        self.buffer.as_mut()[field::STATE] = v;
    }
    pub fn set_priority(&mut self, v: u8) {
        self.buffer.as_mut()[field::PRIORITY] = v;
    }
    pub fn set_node_id(&mut self, v: u32) {
        self.put(field::NODE_ID, &v.to_be_bytes());
    }
    pub fn set_path(&mut self, v: u8) {
        self.buffer.as_mut()[field::PATH] = v;
        self.put(field::RESERVED, &[0, 0, 0]);
    }
    pub fn set_epoch(&mut self, v: u64) {
        self.put(field::EPOCH, &v.to_be_bytes());
    }
    pub fn set_seq(&mut self, v: u64) {
        self.put(field::SEQ, &v.to_be_bytes());
    }
    pub fn set_sent_ns(&mut self, v: u64) {
        self.put(field::SENT_NS, &v.to_be_bytes());
    }
    pub fn set_active_channels(&mut self, v: u32) {
        self.put(field::ACTIVE, &v.to_be_bytes());
    }
    pub fn set_capacity(&mut self, v: u32) {
        self.put(field::CAPACITY, &v.to_be_bytes());
    }
    /// Computes and stores the MAC over the first 48 bytes.
    pub fn fill_mac(&mut self, key: &Key) {
        let m = mac_words(key, &words(self.buffer.as_ref()));
        self.put(field::MAC, &m.to_le_bytes());
    }
}

/// A parsed heartbeat.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Repr {
    pub kind: Kind,
    pub state: NodeState,
    pub priority: u8,
    pub node_id: u32,
    /// Which of the sender's paths it was sent on.
    pub path: u8,
    pub epoch: u64,
    /// Strictly increasing per sender (start it from the wall clock's
    /// nanoseconds so that a restarted sender continues above).
    pub seq: u64,
    pub sent_ns: u64,
    pub active_channels: u32,
    pub capacity: u32,
}

impl Repr {
    /// Parses and authenticates a heartbeat.
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>, key: &Key) -> Result<Repr, Error> {
        p.check_len()?;
        if p.magic() != MAGIC || p.version() != VERSION {
            return Err(Error::BadMagic);
        }
        if !p.verify(key) {
            return Err(Error::BadMac);
        }
        Ok(Repr {
            kind: Kind::from_u8(p.kind()).ok_or(Error::BadField)?,
            state: NodeState::from_u8(p.state()).ok_or(Error::BadField)?,
            priority: p.priority(),
            node_id: p.node_id(),
            path: p.path(),
            epoch: p.epoch(),
            seq: p.seq(),
            sent_ns: p.sent_ns(),
            active_channels: p.active_channels(),
            capacity: p.capacity(),
        })
    }

    pub const fn buffer_len(&self) -> usize {
        LEN
    }

    /// Writes the heartbeat, MAC included.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>, key: &Key) {
        p.set_magic(MAGIC);
        p.set_version(VERSION);
        p.set_kind(self.kind as u8);
        p.set_state(self.state as u8);
        p.set_priority(self.priority);
        p.set_node_id(self.node_id);
        p.set_path(self.path);
        p.set_epoch(self.epoch);
        p.set_seq(self.seq);
        p.set_sent_ns(self.sent_ns);
        p.set_active_channels(self.active_channels);
        p.set_capacity(self.capacity);
        p.fill_mac(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 16] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];

    #[test]
    fn siphash_matches_the_reference_vectors() {
        // From the SipHash paper (Aumasson & Bernstein), appendix A: key
        // 00..0f, message 00..0e.
        let key = Key::from_bytes(&KEY);
        let msg: [u8; 15] = core::array::from_fn(|i| i as u8);
        assert_eq!(siphash24(&key, &msg), 0xa129_ca61_49be_45e5);
        // Empty message (first line of the reference vectors.h).
        assert_eq!(siphash24(&key, &[]).to_le_bytes(), [0x31, 0x0e, 0x0e, 0xdd, 0x47, 0xdb, 0x6f, 0x72]);
        // The word form agrees with the byte form on 48 bytes.
        let m: [u8; 48] = core::array::from_fn(|i| (i * 7) as u8);
        assert_eq!(mac_words(&key, &words(&m)), siphash24(&key, &m));
    }

    fn sample() -> Repr {
        Repr {
            kind: Kind::Director,
            state: NodeState::Active,
            priority: 200,
            node_id: 0x0102_0304,
            path: 1,
            epoch: 7,
            seq: 0x1122_3344_5566_7788,
            sent_ns: 1_000_000_000,
            active_channels: 30,
            capacity: 120,
        }
    }

    const BYTES: [u8; 48] = [
        b'T', b'N', b'D', b'M', 1, 1, 3, 200, // magic, version, kind, state, priority
        0x01, 0x02, 0x03, 0x04, 1, 0, 0, 0, // node id, path, reserved
        0, 0, 0, 0, 0, 0, 0, 7, // epoch
        0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, // seq
        0, 0, 0, 0, 0x3b, 0x9a, 0xca, 0x00, // sent ns
        0, 0, 0, 30, 0, 0, 0, 120, // active, capacity
    ];

    #[test]
    fn emit_writes_the_literal_bytes_and_parse_reads_them() {
        let key = Key::from_bytes(&KEY);
        let mut buf = [0u8; LEN];
        sample().emit(&mut Packet::new_unchecked(&mut buf[..]), &key);
        assert_eq!(&buf[..48], &BYTES[..]);
        assert_eq!(&buf[48..], &siphash24(&key, &BYTES).to_le_bytes());
        let p = Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(Repr::parse(&p, &key), Ok(sample()));
    }

    #[test]
    fn forged_truncated_and_foreign_heartbeats_are_refused() {
        let key = Key::from_bytes(&KEY);
        let mut buf = [0u8; LEN];
        sample().emit(&mut Packet::new_unchecked(&mut buf[..]), &key);
        for cut in 0..LEN {
            assert_eq!(Packet::new_checked(&buf[..cut]).err(), Some(Error::Truncated));
        }
        let mut forged = buf;
        forged[27] ^= 1; // a different sequence number, old MAC
        assert_eq!(Repr::parse(&Packet::new_unchecked(&forged[..]), &key), Err(Error::BadMac));
        let other = Key::from_bytes(&[9; 16]);
        assert_eq!(Repr::parse(&Packet::new_unchecked(&buf[..]), &other), Err(Error::BadMac));
        let mut magic = buf;
        magic[0] = b'X';
        assert_eq!(Repr::parse(&Packet::new_unchecked(&magic[..]), &key), Err(Error::BadMagic));
        let mut state = buf;
        state[6] = 99;
        Packet::new_unchecked(&mut state[..]).fill_mac(&key);
        assert_eq!(Repr::parse(&Packet::new_unchecked(&state[..]), &key), Err(Error::BadField));
    }
}
