//! Parsed frames: [`Repr`] (who sent it, at which epoch, with which flags)
//! and the [`Message`] its kind and body say, with `parse` (which checks
//! the MAC first) and `open` (which opens a sealed frame first),
//! `to_bytes` / `emit` (MAC'd) and `seal`, and `buffer_len`. Which kinds
//! may travel in clear is the session's decision, not this file's.
//!
//! Bodies follow the table in [`super`]; every body but a Hello's must be
//! exactly as long as its fields. Parsing never panics and names the field
//! that is wrong. This file must not keep session state.

use super::records::Reader;
use super::{
    Cipher, Error, Frame, FrameWriter, HEADER_LEN, Kind, MAGIC, MAX_FRAME_LEN, MacKey, NONCE_LEN,
    Nonce, PROOF_LEN, Record, Role, TAG_LEN, VERSION, parse_records,
};

/// A Hello: who the sender is and what it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hello {
    pub role: Role,
    /// The sync protocol version the sender speaks ([`super::PROTOCOL`]).
    pub protocol: u16,
    /// The largest frame the sender accepts.
    pub max_frame: u32,
    /// The publisher's stream its sequence numbers belong to (0: none).
    pub stream: u64,
    /// The last sequence of `stream` the sender holds.
    pub last_seq: u64,
    /// Bytes of sealed frames the sender received on this connection.
    pub received: u64,
}

/// A handshake's opening (Init) or the publisher's answer (Reply): who the
/// sender is and its fresh nonce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Greeting {
    pub role: Role,
    /// The sync protocol version the sender speaks ([`super::PROTOCOL`]).
    pub protocol: u16,
    /// Drawn fresh for this connection.
    pub nonce: Nonce,
}

/// What a frame says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// The subscriber opens the handshake.
    Init(Greeting),
    /// The publisher answers, proving it holds the key.
    Reply {
        greeting: Greeting,
        proof: [u8; PROOF_LEN],
    },
    /// The subscriber proves it holds the key.
    Confirm {
        proof: [u8; PROOF_LEN],
    },
    Hello(Hello),
    SnapshotBegin {
        base: u64,
        stream: u64,
        snapshot: u32,
        /// The publisher does not know every call the subscriber may hold
        /// (it resumed a predecessor's tables, whose Call-ID table keeps
        /// hashes): the subscriber keeps the calls the snapshot does not
        /// carry instead of sweeping them (flag bit 0).
        keep_calls: bool,
    },
    SnapshotChunk {
        base: u64,
        snapshot: u32,
        index: u32,
        records: Vec<Record>,
    },
    SnapshotEnd {
        base: u64,
        snapshot: u32,
        chunks: u32,
        records: u64,
    },
    Delta {
        first: u64,
        records: Vec<Record>,
    },
    Ack {
        seq: u64,
        received: u64,
    },
    Keepalive {
        seq: u64,
    },
}

impl Message {
    pub fn kind(&self) -> Kind {
        match self {
            Message::Init(_) => Kind::Init,
            Message::Reply { .. } => Kind::Reply,
            Message::Confirm { .. } => Kind::Confirm,
            Message::Hello(_) => Kind::Hello,
            Message::SnapshotBegin { .. } => Kind::SnapshotBegin,
            Message::SnapshotChunk { .. } => Kind::SnapshotChunk,
            Message::SnapshotEnd { .. } => Kind::SnapshotEnd,
            Message::Delta { .. } => Kind::Delta,
            Message::Ack { .. } => Kind::Ack,
            Message::Keepalive { .. } => Kind::Keepalive,
        }
    }

    fn seq(&self) -> u64 {
        match self {
            Message::Init(_) | Message::Reply { .. } | Message::Confirm { .. } => 0,
            Message::Hello(h) => h.last_seq,
            Message::SnapshotBegin { base, .. }
            | Message::SnapshotChunk { base, .. }
            | Message::SnapshotEnd { base, .. } => *base,
            Message::Delta { first, .. } => *first,
            Message::Ack { seq, .. } | Message::Keepalive { seq } => *seq,
        }
    }
}

/// SnapshotBegin's flag: keep the calls the snapshot does not carry.
pub const SNAPSHOT_KEEP_CALLS: u32 = 1;

/// A parsed frame (authenticated by [`Repr::parse`] or [`Repr::open`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Repr {
    /// The sender's node id.
    pub node_id: u32,
    /// The sender's epoch (its pair's term of the active role).
    pub epoch: u64,
    /// `FLAG_*` bits; unknown bits are ignored.
    pub flags: u16,
    pub message: Message,
}

fn exact(body: &Reader<'_>, kind: &'static str) -> Result<(), Error> {
    if body.is_empty() {
        Ok(())
    } else {
        Err(Error::BadField {
            field: kind,
            value: body.len() as u64,
        })
    }
}

impl Repr {
    fn check_head<T: AsRef<[u8]>>(frame: &Frame<T>) -> Result<(), Error> {
        frame.check_len()?;
        if frame.magic() != MAGIC {
            return Err(Error::BadMagic(frame.magic()));
        }
        if frame.version() != VERSION {
            return Err(Error::BadVersion(frame.version()));
        }
        Ok(())
    }

    /// Parses and authenticates a frame sent in clear: length, magic,
    /// version, MAC under `key`, kind, body, in that order.
    pub fn parse<T: AsRef<[u8]>>(frame: &Frame<T>, key: &MacKey) -> Result<Repr, Error> {
        Self::check_head(frame)?;
        if !frame.verify(key) {
            return Err(Error::BadMac);
        }
        Self::parse_verified(frame)
    }

    /// Opens and parses a sealed frame, in place (`bytes` is exactly one
    /// whole frame; its body is decrypted): length, magic, version, then
    /// the AEAD under `cipher` as the next frame of its direction, kind,
    /// body.
    pub fn open(bytes: &mut [u8], cipher: &mut Cipher) -> Result<Repr, Error> {
        let len = Frame::new_checked(&*bytes)?.frame_len();
        let Some(whole) = bytes.get_mut(..len) else {
            return Err(Error::Truncated {
                field: "sealed frame",
                need: len,
                got: 0,
            });
        };
        Self::check_head(&Frame::new_unchecked(&*whole))?;
        cipher.open(whole)?;
        Self::parse_verified(&Frame::new_unchecked(&*whole))
    }

    /// Parses a frame whose length, magic and tag were checked.
    fn parse_verified<T: AsRef<[u8]>>(frame: &Frame<T>) -> Result<Repr, Error> {
        let kind = Kind::from_u8(frame.kind()).ok_or(Error::UnknownKind(frame.kind()))?;
        let seq = frame.seq();
        let mut b = Reader::new(frame.body());
        let message = match kind {
            Kind::Init | Kind::Reply => {
                let protocol = b.u16("greeting protocol")?;
                let role = match b.u8("greeting role")? {
                    1 => Role::Publisher,
                    2 => Role::Subscriber,
                    v => {
                        return Err(Error::BadField {
                            field: "greeting role",
                            value: v as u64,
                        });
                    }
                };
                let _reserved = b.u8("greeting reserved")?;
                let nonce = Nonce::new(b.array::<NONCE_LEN>("greeting nonce")?);
                let greeting = Greeting {
                    role,
                    protocol,
                    nonce,
                };
                if kind == Kind::Init {
                    Message::Init(greeting)
                } else {
                    let proof = b.array::<PROOF_LEN>("reply proof")?;
                    Message::Reply { greeting, proof }
                }
                // Fields a later version appends are ignored.
            }
            Kind::Confirm => {
                let proof = b.array::<PROOF_LEN>("confirm proof")?;
                exact(&b, "confirm trailing bytes")?;
                Message::Confirm { proof }
            }
            Kind::Hello => {
                let protocol = b.u16("hello protocol")?;
                let role = match b.u8("hello role")? {
                    1 => Role::Publisher,
                    2 => Role::Subscriber,
                    v => {
                        return Err(Error::BadField {
                            field: "hello role",
                            value: v as u64,
                        });
                    }
                };
                let _reserved = b.u8("hello reserved")?;
                let max_frame = b.u32("hello max frame")?;
                let stream = b.u64("hello stream")?;
                let received = b.u64("hello bytes received")?;
                // Fields a later version appends are ignored.
                Message::Hello(Hello {
                    role,
                    protocol,
                    max_frame,
                    stream,
                    last_seq: seq,
                    received,
                })
            }
            Kind::SnapshotBegin => {
                let stream = b.u64("snapshot stream")?;
                let snapshot = b.u32("snapshot id")?;
                let flags = b.u32("snapshot flags")?;
                exact(&b, "snapshot begin trailing bytes")?;
                Message::SnapshotBegin {
                    base: seq,
                    stream,
                    snapshot,
                    keep_calls: flags & SNAPSHOT_KEEP_CALLS != 0,
                }
            }
            Kind::SnapshotChunk => {
                let snapshot = b.u32("snapshot id")?;
                let index = b.u32("chunk index")?;
                let records = parse_records(b.take(b.len(), "chunk records")?)?;
                Message::SnapshotChunk {
                    base: seq,
                    snapshot,
                    index,
                    records,
                }
            }
            Kind::SnapshotEnd => {
                let snapshot = b.u32("snapshot id")?;
                let chunks = b.u32("snapshot chunk count")?;
                let records = b.u64("snapshot record count")?;
                exact(&b, "snapshot end trailing bytes")?;
                Message::SnapshotEnd {
                    base: seq,
                    snapshot,
                    chunks,
                    records,
                }
            }
            Kind::Delta => {
                let records = parse_records(b.take(b.len(), "delta records")?)?;
                if records.is_empty() {
                    return Err(Error::BadField {
                        field: "delta record count",
                        value: 0,
                    });
                }
                if seq == 0 || seq.checked_add(records.len() as u64 - 1).is_none() {
                    return Err(Error::BadField {
                        field: "delta first sequence",
                        value: seq,
                    });
                }
                Message::Delta {
                    first: seq,
                    records,
                }
            }
            Kind::Ack => {
                let received = b.u64("ack bytes received")?;
                exact(&b, "ack trailing bytes")?;
                Message::Ack { seq, received }
            }
            Kind::Keepalive => {
                exact(&b, "keepalive trailing bytes")?;
                Message::Keepalive { seq }
            }
        };
        Ok(Repr {
            node_id: frame.node_id(),
            epoch: frame.epoch(),
            flags: frame.flags(),
            message,
        })
    }

    /// Encodes the frame, MAC included, into a new buffer. Fails if a
    /// record does not pass [`Record::check`] or the frame would be longer
    /// than [`MAX_FRAME_LEN`].
    pub fn to_bytes(&self, key: &MacKey) -> Result<Vec<u8>, Error> {
        Ok(self.writer()?.finish(key))
    }

    /// Encodes and seals the frame under `cipher` (as its next frame).
    pub fn seal(&self, cipher: &mut Cipher) -> Result<Vec<u8>, Error> {
        Ok(self.writer()?.finish_sealed(cipher))
    }

    fn writer(&self) -> Result<FrameWriter, Error> {
        let m = &self.message;
        let mut w = FrameWriter::new(m.kind(), self.node_id, self.epoch, m.seq(), MAX_FRAME_LEN);
        w.set_flags(self.flags);
        let mut records: &[Record] = &[];
        match m {
            Message::Init(g) => put_greeting(&mut w, g),
            Message::Reply { greeting, proof } => {
                put_greeting(&mut w, greeting);
                w.put_bytes(proof);
            }
            Message::Confirm { proof } => w.put_bytes(proof),
            Message::Hello(h) => {
                w.put_u16(h.protocol);
                w.put_u8(h.role as u8);
                w.put_u8(0);
                w.put_u32(h.max_frame);
                w.put_u64(h.stream);
                w.put_u64(h.received);
            }
            Message::SnapshotBegin {
                stream,
                snapshot,
                keep_calls,
                ..
            } => {
                w.put_u64(*stream);
                w.put_u32(*snapshot);
                w.put_u32(if *keep_calls { SNAPSHOT_KEEP_CALLS } else { 0 });
            }
            Message::SnapshotChunk {
                snapshot,
                index,
                records: r,
                ..
            } => {
                w.put_u32(*snapshot);
                w.put_u32(*index);
                records = r;
            }
            Message::SnapshotEnd {
                snapshot,
                chunks,
                records: n,
                ..
            } => {
                w.put_u32(*snapshot);
                w.put_u32(*chunks);
                w.put_u64(*n);
            }
            Message::Delta { records: r, .. } => records = r,
            Message::Ack { received, .. } => w.put_u64(*received),
            Message::Keepalive { .. } => {}
        }
        for r in records {
            r.check()?;
            if !w.push_record(r) {
                return Err(Error::Oversized {
                    len: self.buffer_len(),
                    max: MAX_FRAME_LEN,
                });
            }
        }
        Ok(w)
    }

    /// Bytes of the whole frame: header, body, tag.
    pub fn buffer_len(&self) -> usize {
        let records = |r: &[Record]| r.iter().map(Record::buffer_len).sum::<usize>();
        let body = match &self.message {
            Message::Init(_) => 4 + NONCE_LEN,
            Message::Reply { .. } => 4 + NONCE_LEN + PROOF_LEN,
            Message::Confirm { .. } => PROOF_LEN,
            Message::Hello(_) => 24,
            Message::SnapshotBegin { .. } => 16,
            Message::SnapshotChunk { records: r, .. } => 8 + records(r),
            Message::SnapshotEnd { .. } => 16,
            Message::Delta { records: r, .. } => records(r),
            Message::Ack { .. } => 8,
            Message::Keepalive { .. } => 0,
        };
        HEADER_LEN + body + TAG_LEN
    }

    /// Writes the frame into `frame`'s buffer, which must hold at least
    /// [`Repr::buffer_len`] bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        frame: &mut Frame<T>,
        key: &MacKey,
    ) -> Result<(), Error> {
        let bytes = self.to_bytes(key)?;
        let buf = frame.buffer_mut();
        let got = buf.len();
        let Some(dst) = buf.get_mut(..bytes.len()) else {
            return Err(Error::Truncated {
                field: "emit buffer",
                need: bytes.len(),
                got,
            });
        };
        dst.copy_from_slice(&bytes);
        Ok(())
    }
}

fn put_greeting(w: &mut FrameWriter, g: &Greeting) {
    w.put_u16(g.protocol);
    w.put_u8(g.role as u8);
    w.put_u8(0);
    w.put_bytes(&g.nonce.0);
}
