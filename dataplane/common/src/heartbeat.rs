//! The heartbeat message, one fixed-size UDP payload for both uses:
//! director to director (the pair's failure detection) and IVR server to
//! director (real-server health and load). The XDP program verifies and
//! records it in the kernel; the control plane builds and sends it. Which
//! heartbeat a receiver takes after the last one is [`window`]'s rule.
//!
//! Layout (64 bytes, version 2, integers big-endian except the MAC):
//!
//! ```text
//!  0 magic "TNDM"      4 version (2)   5 kind   6 state   7 priority
//!  8 node id (u32)    12 path (u8)    13 flags   14 restart grace, ms (u16)
//! 16 epoch (u64)      24 boot id (u64)        32 sequence (u64)
//! 40 sender time, ns (u64)            48 active channels (u32)
//! 52 channel capacity (u32)
//! 56 SipHash-2-4 of bytes 0..56 under the sender's 16-byte key (u64, little-endian)
//! ```
//!
//! Flag bit 0 ([`FLAG_RESTARTING`]) says the sender's process is stopping
//! to be restarted at once, with its kernel state kept: the receiver may
//! count it alive for the restart grace (bytes 14..16, from the arrival of
//! this heartbeat) though it falls silent. Other flag bits are 0.
//!
//! Bytes 48..56 are an IVR server's load; a director sends there the
//! fingerprint of the services it runs (high 32 bits first; 0: none
//! sent), so that each node of a pair sees whether the other dispatches
//! the same way.
//!
//! The boot id is drawn at random when the sending process starts and the
//! sequence counts from 1 within it, so nothing depends on the sender's
//! clock. The key is the sender's own: the director heartbeat key for a
//! director, a key derived from the IVR master key and its node id for an
//! IVR server; the receiver knows which key, address and interface each
//! (node id, address) must use.
//!
//! Written in the smoltcp style: [`Packet`] is a checked view over a
//! buffer with one getter/setter per field, [`Repr`] the parsed form with
//! `parse`/`emit`. The MAC function works on seven 64-bit words so that the
//! kernel program computes it without loops over bytes. Nothing here
//! allocates or loops over data in the kernel's forms ([`mac_words`],
//! [`window::admit`]).

use crate::node::NodeState;

/// Default UDP port (Linux-HA heartbeat's).
pub const DEFAULT_PORT: u16 = 694;
/// Length of the message.
pub const LEN: usize = 64;
/// Bytes covered by the MAC.
pub const MAC_COVERS: usize = 56;
/// 64-bit words covered by the MAC.
pub const MAC_WORDS: usize = MAC_COVERS / 8;
pub const MAGIC: [u8; 4] = *b"TNDM";
/// Version 2: per-boot identity and sequence, per-sender keys (version 1,
/// a 56-byte message with a wall-clock sequence, is refused as bad magic).
pub const VERSION: u8 = 2;
/// Flag: the sender restarts now, its state kept (see the module doc).
pub const FLAG_RESTARTING: u8 = 1;

pub mod window;
pub use window::{Reject, Window, admit};

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
    pub const FLAGS: usize = 13;
    pub const RESTART_GRACE: Range<usize> = 14..16;
    pub const EPOCH: Range<usize> = 16..24;
    pub const BOOT_ID: Range<usize> = 24..32;
    pub const SEQ: Range<usize> = 32..40;
    pub const SENT_NS: Range<usize> = 40..48;
    pub const ACTIVE: Range<usize> = 48..52;
    pub const CAPACITY: Range<usize> = 52..56;
    pub const MAC: Range<usize> = 56..64;

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
    /// A director's echo request (BFD echo, RFC 5880 §6.4): the same
    /// message, to the peer's heartbeat port, which the peer's XDP
    /// reflects unchanged while its daemon is alive. Never a sender's kind
    /// in `HB_SENDERS`: an echo is never taken as a heartbeat.
    Echo = 3,
}

impl Kind {
    pub const fn from_u8(v: u8) -> Option<Kind> {
        match v {
            1 => Some(Kind::Director),
            2 => Some(Kind::Ivr),
            3 => Some(Kind::Echo),
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
/// key bytes. Its `Debug` prints no key bytes.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Key {
    pub k0: u64,
    pub k1: u64,
}

impl core::fmt::Debug for Key {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Key(..)")
    }
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

/// SipHash-2-4 of 56 bytes given as seven little-endian words: the
/// heartbeat's MAC. Straight-line code (the kernel program's form).
#[inline(always)]
pub fn mac_words(key: &Key, m: &[u64; MAC_WORDS]) -> u64 {
    let mut v = init(key);
    compress(&mut v, m[0]);
    compress(&mut v, m[1]);
    compress(&mut v, m[2]);
    compress(&mut v, m[3]);
    compress(&mut v, m[4]);
    compress(&mut v, m[5]);
    compress(&mut v, m[6]);
    finish(&mut v, (MAC_COVERS as u64) << 56)
}

// `mac_words` compresses the words one by one, above: seven of them.
const _: () = assert!(MAC_WORDS == 7);

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

/// The seven MAC words of a heartbeat buffer (its first 56 bytes).
pub fn words(buf: &[u8]) -> [u64; MAC_WORDS] {
    let mut m = [0u64; MAC_WORDS];
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
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }
    /// The restart grace in ms (meaningful with [`FLAG_RESTARTING`]).
    pub fn restart_grace_ms(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::RESTART_GRACE];
        u16::from_be_bytes([b[0], b[1]])
    }
    pub fn epoch(&self) -> u64 {
        self.u64_at(field::EPOCH)
    }
    pub fn boot_id(&self) -> u64 {
        self.u64_at(field::BOOT_ID)
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

    /// Does the MAC match the first 56 bytes under `key`?
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
    }
    pub fn set_flags(&mut self, v: u8) {
        self.buffer.as_mut()[field::FLAGS] = v;
    }
    pub fn set_restart_grace_ms(&mut self, v: u16) {
        self.put(field::RESTART_GRACE, &v.to_be_bytes());
    }
    pub fn set_epoch(&mut self, v: u64) {
        self.put(field::EPOCH, &v.to_be_bytes());
    }
    pub fn set_boot_id(&mut self, v: u64) {
        self.put(field::BOOT_ID, &v.to_be_bytes());
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
    /// Computes and stores the MAC over the first 56 bytes.
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
    /// Drawn at random when the sending process starts (never 0).
    pub boot_id: u64,
    /// Counts from 1 within a boot, one per datagram (see [`window`]).
    pub seq: u64,
    pub sent_ns: u64,
    pub active_channels: u32,
    pub capacity: u32,
    /// Non-zero: the sender is restarting ([`FLAG_RESTARTING`]) and asks
    /// to be counted alive for this many ms from this heartbeat's arrival.
    pub restart_grace_ms: u16,
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
            boot_id: p.boot_id(),
            seq: p.seq(),
            sent_ns: p.sent_ns(),
            active_channels: p.active_channels(),
            capacity: p.capacity(),
            restart_grace_ms: if p.flags() & FLAG_RESTARTING != 0 { p.restart_grace_ms().max(1) } else { 0 },
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
        p.set_boot_id(self.boot_id);
        p.set_seq(self.seq);
        p.set_sent_ns(self.sent_ns);
        p.set_active_channels(self.active_channels);
        p.set_capacity(self.capacity);
        let restarting = self.restart_grace_ms != 0;
        p.set_flags(if restarting { FLAG_RESTARTING } else { 0 });
        p.set_restart_grace_ms(self.restart_grace_ms);
        p.fill_mac(key);
    }
}

#[cfg(test)]
mod tests;
