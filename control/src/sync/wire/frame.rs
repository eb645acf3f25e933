//! The frame header in the smoltcp style: [`Frame`], a checked view over a
//! buffer with one getter and setter per field of the private `field`
//! ranges; [`peek_frame_len`], which judges a frame from its first 16
//! bytes; [`FrameWriter`], the one encoder every sender uses; and
//! [`Deframer`], which cuts whole frames out of a TCP byte stream.
//!
//! The layout is the table in [`super`]. Nothing here parses a body
//! ([`super::Repr`] does) or keeps session state; nothing panics on any
//! input, and nothing is allocated for a frame longer than
//! [`MAX_FRAME_LEN`].

use super::{
    Cipher, Error, HEADER_LEN, Kind, MAGIC, MAX_BODY_LEN, MAX_FRAME_LEN, MIN_FRAME_LEN, MacKey,
    Record, TAG_LEN, VERSION,
};

pub(super) mod field {
    use core::ops::Range;
    pub const MAGIC: Range<usize> = 0..4;
    pub const VERSION: usize = 4;
    pub const KIND: usize = 5;
    pub const FLAGS: Range<usize> = 6..8;
    pub const NODE_ID: Range<usize> = 8..12;
    pub const BODY_LEN: Range<usize> = 12..16;
    pub const EPOCH: Range<usize> = 16..24;
    pub const SEQ: Range<usize> = 24..32;
    pub const BODY: usize = 32;
}

// ---- frame view -----------------------------------------------------------

/// A read/write view of a sync frame in a buffer (which may be longer than
/// the frame).
#[derive(Debug, Clone)]
pub struct Frame<T: AsRef<[u8]>> {
    buffer: T,
}

/// How long the frame starting in `prefix` is, once its first 16 bytes are
/// there: `Ok(None)` until then, an error as soon as the magic, version or
/// length is wrong (before anything is allocated for it).
pub fn peek_frame_len(prefix: &[u8]) -> Result<Option<usize>, Error> {
    let Some(head) = prefix.get(..field::BODY_LEN.end) else {
        // Bad magic is visible early: report it without waiting.
        let n = prefix.len().min(4);
        if prefix[..n] != MAGIC[..n] {
            let mut m = [0u8; 4];
            m[..n].copy_from_slice(&prefix[..n]);
            return Err(Error::BadMagic(m));
        }
        return Ok(None);
    };
    let f = Frame::new_unchecked(head);
    if f.magic() != MAGIC {
        return Err(Error::BadMagic(f.magic()));
    }
    if f.version() != VERSION {
        return Err(Error::BadVersion(f.version()));
    }
    let body = f.body_len() as usize;
    if body > MAX_BODY_LEN {
        return Err(Error::Oversized {
            len: HEADER_LEN + body + TAG_LEN,
            max: MAX_FRAME_LEN,
        });
    }
    Ok(Some(HEADER_LEN + body + TAG_LEN))
}

impl<T: AsRef<[u8]>> Frame<T> {
    /// Wraps a buffer without checking it: the getters panic if it is
    /// shorter than the header.
    pub const fn new_unchecked(buffer: T) -> Frame<T> {
        Frame { buffer }
    }

    /// Wraps a buffer, checking that it holds a whole frame of at most
    /// [`MAX_FRAME_LEN`] bytes.
    pub fn new_checked(buffer: T) -> Result<Frame<T>, Error> {
        let f = Frame::new_unchecked(buffer);
        f.check_len()?;
        Ok(f)
    }

    pub fn check_len(&self) -> Result<(), Error> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated {
                field: "frame header",
                need: HEADER_LEN,
                got: len,
            });
        }
        let body = self.body_len() as usize;
        if body > MAX_BODY_LEN {
            return Err(Error::Oversized {
                len: HEADER_LEN + body + TAG_LEN,
                max: MAX_FRAME_LEN,
            });
        }
        let need = HEADER_LEN + body + TAG_LEN;
        if len < need {
            return Err(Error::Truncated {
                field: "frame body and MAC",
                need,
                got: len,
            });
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn bytes<const N: usize>(&self, r: core::ops::Range<usize>) -> [u8; N] {
        let mut a = [0u8; N];
        a.copy_from_slice(&self.buffer.as_ref()[r]);
        a
    }

    pub fn magic(&self) -> [u8; 4] {
        self.bytes(field::MAGIC)
    }
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VERSION]
    }
    pub fn kind(&self) -> u8 {
        self.buffer.as_ref()[field::KIND]
    }
    pub fn flags(&self) -> u16 {
        u16::from_be_bytes(self.bytes(field::FLAGS))
    }
    pub fn node_id(&self) -> u32 {
        u32::from_be_bytes(self.bytes(field::NODE_ID))
    }
    pub fn body_len(&self) -> u32 {
        u32::from_be_bytes(self.bytes(field::BODY_LEN))
    }
    pub fn epoch(&self) -> u64 {
        u64::from_be_bytes(self.bytes(field::EPOCH))
    }
    pub fn seq(&self) -> u64 {
        u64::from_be_bytes(self.bytes(field::SEQ))
    }
    /// Header, body and MAC.
    pub fn frame_len(&self) -> usize {
        HEADER_LEN + self.body_len() as usize + TAG_LEN
    }
    pub fn body(&self) -> &[u8] {
        &self.buffer.as_ref()[field::BODY..field::BODY + self.body_len() as usize]
    }
    /// The tag after the body (a MAC, or a sealed frame's AEAD tag).
    pub fn tag(&self) -> [u8; TAG_LEN] {
        let end = HEADER_LEN + self.body_len() as usize;
        self.bytes(end..end + TAG_LEN)
    }
    /// The MAC a handshake frame should carry under `key`.
    pub fn compute_mac(&self, key: &MacKey) -> [u8; TAG_LEN] {
        key.tag(&self.buffer.as_ref()[..HEADER_LEN + self.body_len() as usize])
    }
    /// Does the tag authenticate the header and body as a MAC under `key`?
    pub fn verify(&self, key: &MacKey) -> bool {
        let end = HEADER_LEN + self.body_len() as usize;
        let b = self.buffer.as_ref();
        key.verify(&b[..end], &b[end..end + TAG_LEN])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Frame<T> {
    /// The whole buffer, for [`super::Repr::emit`].
    pub(super) fn buffer_mut(&mut self) -> &mut [u8] {
        self.buffer.as_mut()
    }
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
    pub fn set_flags(&mut self, v: u16) {
        self.put(field::FLAGS, &v.to_be_bytes());
    }
    pub fn set_node_id(&mut self, v: u32) {
        self.put(field::NODE_ID, &v.to_be_bytes());
    }
    pub fn set_body_len(&mut self, v: u32) {
        self.put(field::BODY_LEN, &v.to_be_bytes());
    }
    pub fn set_epoch(&mut self, v: u64) {
        self.put(field::EPOCH, &v.to_be_bytes());
    }
    pub fn set_seq(&mut self, v: u64) {
        self.put(field::SEQ, &v.to_be_bytes());
    }
    pub fn body_mut(&mut self) -> &mut [u8] {
        let len = self.body_len() as usize;
        &mut self.buffer.as_mut()[field::BODY..field::BODY + len]
    }
    /// Computes and stores the MAC after the body.
    pub fn fill_mac(&mut self, key: &MacKey) {
        let m = self.compute_mac(key);
        let end = HEADER_LEN + self.body_len() as usize;
        self.put(end..end + TAG_LEN, &m);
    }
}

// ---- frame writer (the one encoder) ---------------------------------------

/// Builds a frame in a growing buffer: the header, then body fields and
/// records while they fit under the frame limit, then the length and MAC.
#[derive(Debug)]
pub struct FrameWriter {
    buf: Vec<u8>,
    max_len: usize,
}

impl FrameWriter {
    /// Starts a frame; `max_frame` is clamped to
    /// [`MIN_FRAME_LEN`]..=[`MAX_FRAME_LEN`].
    pub fn new(kind: Kind, node_id: u32, epoch: u64, seq: u64, max_frame: usize) -> FrameWriter {
        let max_len = max_frame.clamp(MIN_FRAME_LEN, MAX_FRAME_LEN);
        let mut buf = Vec::with_capacity(HEADER_LEN + 256);
        buf.extend_from_slice(&MAGIC);
        buf.push(VERSION);
        buf.push(kind as u8);
        buf.extend_from_slice(&0u16.to_be_bytes());
        buf.extend_from_slice(&node_id.to_be_bytes());
        buf.extend_from_slice(&0u32.to_be_bytes());
        buf.extend_from_slice(&epoch.to_be_bytes());
        buf.extend_from_slice(&seq.to_be_bytes());
        FrameWriter { buf, max_len }
    }

    pub fn set_flags(&mut self, flags: u16) {
        self.buf[field::FLAGS].copy_from_slice(&flags.to_be_bytes());
    }

    pub fn put_u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    pub fn put_u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub fn put_u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub fn put_u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub fn put_bytes(&mut self, v: &[u8]) {
        self.buf.extend_from_slice(v);
    }

    /// Appends a record if the frame stays within its limit.
    pub fn push_record(&mut self, record: &Record) -> bool {
        self.push_record_aged(record, 0)
    }

    /// As [`FrameWriter::push_record`], adding `extra_ms` to a flow's age.
    pub fn push_record_aged(&mut self, record: &Record, extra_ms: u32) -> bool {
        if self.buf.len() + record.buffer_len() + TAG_LEN > self.max_len {
            return false;
        }
        record.emit_aged(&mut self.buf, extra_ms);
        true
    }

    pub fn body_len(&self) -> usize {
        self.buf.len() - HEADER_LEN
    }

    fn set_body_len(&mut self) {
        let body = (self.buf.len() - HEADER_LEN) as u32;
        self.buf[field::BODY_LEN].copy_from_slice(&body.to_be_bytes());
    }

    /// Writes the body length and the MAC (a handshake frame, in clear);
    /// returns the frame.
    pub fn finish(mut self, key: &MacKey) -> Vec<u8> {
        self.set_body_len();
        let mac = key.tag(&self.buf);
        self.buf.extend_from_slice(&mac);
        self.buf
    }

    /// Writes the body length, encrypts the body and appends the tag under
    /// `cipher` (every frame after the handshake); returns the frame.
    pub fn finish_sealed(mut self, cipher: &mut Cipher) -> Vec<u8> {
        self.set_body_len();
        cipher.seal(&mut self.buf);
        self.buf
    }
}

// ---- stream reassembly ----------------------------------------------------

/// Cuts frames out of a TCP byte stream. Checks each frame's header as
/// soon as its first 16 bytes are there, so a bad or oversized frame is
/// refused before any of its body is waited for; buffers at most one
/// partial frame beyond what the caller pushed.
#[derive(Debug, Default)]
pub struct Deframer {
    buf: Vec<u8>,
    start: usize,
}

impl Deframer {
    pub fn new() -> Deframer {
        Deframer::default()
    }

    /// Appends bytes read from the connection. An error means the stream
    /// is not a sync stream (close the connection).
    pub fn push(&mut self, data: &[u8]) -> Result<(), Error> {
        if self.start > 0 && self.start * 2 >= self.buf.len() {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(data);
        peek_frame_len(&self.buf[self.start..]).map(|_| ())
    }

    /// The next whole frame (header, body, MAC; not yet authenticated), if
    /// one is buffered.
    pub fn next_frame(&mut self) -> Result<Option<&[u8]>, Error> {
        let pending = &self.buf[self.start..];
        let Some(len) = peek_frame_len(pending)? else {
            return Ok(None);
        };
        if pending.len() < len {
            return Ok(None);
        }
        let at = self.start;
        self.start += len;
        Ok(Some(&self.buf[at..at + len]))
    }

    /// Bytes buffered and not yet returned as frames.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }
}
