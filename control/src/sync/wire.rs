//! The state-sync wire format: length-prefixed, authenticated frames that
//! the serving director (the publisher) and the standing-by directors (the
//! subscribers) exchange over TCP, and the records the frames carry.
//!
//! This module owns the byte layout and nothing else: it parses and emits
//! frames and records, authenticates them, and cuts frames out of a byte
//! stream ([`Deframer`]). It must not keep session state (sequence numbers,
//! acknowledgements, snapshots: that is [`super::session`]), do I/O, panic
//! on any input, or allocate for a frame longer than [`MAX_FRAME_LEN`].
//!
//! Written in the smoltcp style: [`Frame`] is a checked view over a buffer
//! with one getter and setter per header field, [`Repr`] the parsed frame
//! with `parse` / `emit` / `buffer_len`, [`Record`] the parsed record.
//!
//! # Frame
//! Integers are big-endian except the MAC. The MAC is SipHash-2-4 under a
//! 16-byte key of every byte before it (header and body); Hellos use the
//! shared key, every other frame the session key both Hellos derive
//! ([`session_key`]), so that frames recorded from one connection fail on
//! any other.
//!
//! ```text
//!  0 magic "TSYN"    4 version (1)    5 kind    6 flags (u16; unknown bits ignored)
//!  8 node id of the sender (u32)     12 body length (u32)
//! 16 epoch of the sender (u64)       24 sequence (u64, meaning per kind)
//! 32 body (body length bytes)
//! 32 + body length: MAC (u64, little-endian)
//! ```
//!
//! | kind | sequence | body |
//! | --- | --- | --- |
//! | 1 Hello | last sequence the sender holds of `stream` | protocol u16, role u8 (1 publisher, 2 subscriber), 0 u8, max frame u32, stream u64, nonce u64, bytes received u64 |
//! | 2 SnapshotBegin | base: the snapshot holds every change up to it | stream u64, snapshot id u32, 0 u32 |
//! | 3 SnapshotChunk | base | snapshot id u32, chunk index u32, records |
//! | 4 SnapshotEnd | base | snapshot id u32, chunk count u32, record count u64 |
//! | 5 Delta | sequence of its first record (one per record) | records (at least one) |
//! | 6 Ack | last sequence applied (0: none of the publisher's stream) | bytes received u64 |
//! | 7 Keepalive | publisher: last sequence sent; subscriber: as Ack | empty |
//!
//! One flag is defined: [`FLAG_STREAMING`] on a publisher's Keepalive.
//! A Hello's body may be longer than this version's (later versions append
//! fields; they are ignored); every other body must be exactly as long as
//! its fields.
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

use tandem_common::FlowKey;
use tandem_common::heartbeat::{Key, siphash24};

/// Default TCP port of the sync connection.
pub const DEFAULT_PORT: u16 = 8848;
pub const MAGIC: [u8; 4] = *b"TSYN";
/// Version of the frame layout (the header's version byte).
pub const VERSION: u8 = 1;
/// Version of the sync protocol (a Hello's protocol field).
pub const PROTOCOL: u16 = 1;
pub const HEADER_LEN: usize = 32;
pub const MAC_LEN: usize = 8;
/// The largest frame this node sends or accepts, header and MAC included.
pub const MAX_FRAME_LEN: usize = 64 * 1024;
pub const MAX_BODY_LEN: usize = MAX_FRAME_LEN - HEADER_LEN - MAC_LEN;
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

mod field {
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

/// Record type bytes.
pub mod record_type {
    pub const FLOW: u8 = 1;
    pub const FLOW_REMOVED: u8 = 2;
    pub const CALL: u8 = 3;
    pub const CALL_REMOVED: u8 = 4;
    pub const CHANNEL: u8 = 5;
    pub const CHANNEL_REMOVED: u8 = 6;
}

/// Flow record form bits.
const FORM_V4: u8 = 0x01;
const FORM_SERVICE_IS_DST: u8 = 0x02;
/// Call record field bits.
const CALL_CHANNEL: u8 = 0x01;
const CALL_FLOW: u8 = 0x02;
const CALL_IVR: u8 = 0x04;
const CALL_V4: u8 = 0x08;

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
    #[error("MAC mismatch: forged, corrupted, or sent under another key")]
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
            _ => None,
        }
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

/// The state of a call or of an IVR channel.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum CallState {
    #[default]
    Idle = 0,
    Ringing = 1,
    Answered = 2,
    OnHold = 3,
    HungUp = 4,
}

impl CallState {
    pub const fn from_u8(v: u8) -> Option<CallState> {
        match v {
            0 => Some(CallState::Idle),
            1 => Some(CallState::Ringing),
            2 => Some(CallState::Answered),
            3 => Some(CallState::OnHold),
            4 => Some(CallState::HungUp),
            _ => None,
        }
    }
}

/// The key of a virtual service: what identifies it on every node (its
/// numeric id differs from node to node).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct VirtualService {
    /// The VIP (IPv4-mapped for IPv4).
    pub addr: [u8; 16],
    /// Virtual port, host order.
    pub port: u16,
    pub proto: u8,
}

impl VirtualService {
    /// The dataplane's service key for this service.
    pub fn service_key(&self) -> tandem_common::ServiceKey {
        let family = if is_v4_mapped(&self.addr) {
            tandem_common::FAMILY_V4
        } else {
            tandem_common::FAMILY_V6
        };
        tandem_common::ServiceKey::new(self.addr, self.port, self.proto, family)
    }
}

/// An entry of the connection table: which real server a flow goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowRecord {
    /// The client-side 5-tuple (the connection table's key).
    pub key: FlowKey,
    pub service: VirtualService,
    /// The real server's address (not its slot, which differs between nodes).
    pub real_addr: [u8; 16],
    /// The real server's port, host order (0: the virtual port).
    pub real_port: u16,
    /// Milliseconds since the flow was scheduled, when the record was made.
    pub age_ms: u32,
    /// `tandem_common::FLOW_*` bits.
    pub flags: u32,
}

/// The span and channel a call is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ChannelRef {
    pub span: u32,
    pub channel: u32,
}

/// A call (CTI session) record.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CallRecord {
    /// At most [`MAX_CALL_ID`] bytes.
    pub id: String,
    /// The telephony channel it is on, if any.
    pub channel: Option<ChannelRef>,
    /// The flow that carries it, if any.
    pub flow: Option<FlowKey>,
    /// The IVR server it was given to (IPv4-mapped for IPv4).
    pub ivr: Option<[u8; 16]>,
    pub state: CallState,
    /// Milliseconds since the Unix epoch.
    pub created_ms: u64,
    pub updated_ms: u64,
}

/// The state of one channel of an IVR server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ChannelState {
    /// The IVR server's node id.
    pub node: u32,
    pub channel: u32,
    pub state: CallState,
    /// Milliseconds since the Unix epoch.
    pub updated_ms: u64,
}

/// One change of the synced state: an upsert or a removal.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Record {
    Flow(FlowRecord),
    FlowRemoved(FlowKey),
    Call(CallRecord),
    CallRemoved(String),
    Channel(ChannelState),
    ChannelRemoved {
        node: u32,
        channel: u32,
    },
    /// A record of a type this version does not know: skipped on receipt.
    Unknown {
        kind: u8,
        data: Vec<u8>,
    },
}

// ---- byte helpers ---------------------------------------------------------

/// Is this address IPv4-mapped IPv6 (`::ffff:a.b.c.d`)?
pub fn is_v4_mapped(a: &[u8; 16]) -> bool {
    a[..10].iter().all(|b| *b == 0) && a[10] == 0xff && a[11] == 0xff
}

fn v4_mapped(b: [u8; 4]) -> [u8; 16] {
    let mut a = [0u8; 16];
    a[10] = 0xff;
    a[11] = 0xff;
    a[12..].copy_from_slice(&b);
    a
}

/// A bounds-checked reader over a byte slice: every read either succeeds
/// or returns `Truncated` naming the field.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf }
    }

    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], Error> {
        if self.buf.len() < n {
            return Err(Error::Truncated {
                field,
                need: n,
                got: self.buf.len(),
            });
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], Error> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N, field)?);
        Ok(a)
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, Error> {
        Ok(self.array::<1>(field)?[0])
    }
    fn u16(&mut self, field: &'static str) -> Result<u16, Error> {
        Ok(u16::from_be_bytes(self.array(field)?))
    }
    fn u32(&mut self, field: &'static str) -> Result<u32, Error> {
        Ok(u32::from_be_bytes(self.array(field)?))
    }
    fn u64(&mut self, field: &'static str) -> Result<u64, Error> {
        Ok(u64::from_be_bytes(self.array(field)?))
    }
    fn addr(&mut self, v4: bool, field: &'static str) -> Result<[u8; 16], Error> {
        if v4 {
            Ok(v4_mapped(self.array(field)?))
        } else {
            self.array(field)
        }
    }
    fn flow_key(&mut self, v4: bool) -> Result<FlowKey, Error> {
        let src = self.addr(v4, "flow source address")?;
        let dst = self.addr(v4, "flow destination address")?;
        let sport = self.u16("flow source port")?;
        let dport = self.u16("flow destination port")?;
        let proto = self.u8("flow protocol")?;
        Ok(FlowKey::new(src, dst, sport, dport, proto))
    }
    fn call_id(&mut self) -> Result<String, Error> {
        let len = self.u16("call id length")? as usize;
        if len > MAX_CALL_ID {
            return Err(Error::BadField {
                field: "call id length",
                value: len as u64,
            });
        }
        let bytes = self.take(len, "call id")?;
        match core::str::from_utf8(bytes) {
            Ok(s) => Ok(s.to_owned()),
            Err(e) => Err(Error::BadField {
                field: "call id (not UTF-8) at byte",
                value: e.valid_up_to() as u64,
            }),
        }
    }
    fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
    fn len(&self) -> usize {
        self.buf.len()
    }
}

fn put_addr(out: &mut Vec<u8>, a: &[u8; 16], v4: bool) {
    if v4 {
        out.extend_from_slice(&a[12..])
    } else {
        out.extend_from_slice(a)
    }
}

fn put_flow_key(out: &mut Vec<u8>, k: &FlowKey, v4: bool) {
    put_addr(out, &k.src, v4);
    put_addr(out, &k.dst, v4);
    out.extend_from_slice(&k.sport.to_be_bytes());
    out.extend_from_slice(&k.dport.to_be_bytes());
    out.push(k.proto);
}

fn flow_key_v4(k: &FlowKey) -> bool {
    is_v4_mapped(&k.src) && is_v4_mapped(&k.dst)
}

fn flow_key_len(v4: bool) -> usize {
    if v4 { 4 + 4 + 5 } else { 16 + 16 + 5 }
}

fn addr_len(v4: bool) -> usize {
    if v4 { 4 } else { 16 }
}

// ---- records --------------------------------------------------------------

impl FlowRecord {
    fn service_is_dst(&self) -> bool {
        self.service.addr == self.key.dst
            && self.service.port == self.key.dport
            && self.service.proto == self.key.proto
    }

    fn form(&self) -> u8 {
        let implied = self.service_is_dst();
        let v4 = flow_key_v4(&self.key)
            && (implied || is_v4_mapped(&self.service.addr))
            && is_v4_mapped(&self.real_addr);
        (if v4 { FORM_V4 } else { 0 }) | (if implied { FORM_SERVICE_IS_DST } else { 0 })
    }

    fn value_len(&self) -> usize {
        let form = self.form();
        let v4 = form & FORM_V4 != 0;
        let service = if form & FORM_SERVICE_IS_DST != 0 {
            0
        } else {
            addr_len(v4) + 3
        };
        1 + flow_key_len(v4) + service + addr_len(v4) + 2 + 4 + 4
    }

    fn emit_value(&self, out: &mut Vec<u8>, age_ms: u32) {
        let form = self.form();
        let v4 = form & FORM_V4 != 0;
        out.push(form);
        put_flow_key(out, &self.key, v4);
        if form & FORM_SERVICE_IS_DST == 0 {
            put_addr(out, &self.service.addr, v4);
            out.extend_from_slice(&self.service.port.to_be_bytes());
            out.push(self.service.proto);
        }
        put_addr(out, &self.real_addr, v4);
        out.extend_from_slice(&self.real_port.to_be_bytes());
        out.extend_from_slice(&age_ms.to_be_bytes());
        out.extend_from_slice(&self.flags.to_be_bytes());
    }

    fn parse_value(r: &mut Reader<'_>) -> Result<FlowRecord, Error> {
        let form = r.u8("flow form")?;
        if form & !(FORM_V4 | FORM_SERVICE_IS_DST) != 0 {
            return Err(Error::BadField {
                field: "flow form",
                value: form as u64,
            });
        }
        let v4 = form & FORM_V4 != 0;
        let key = r.flow_key(v4)?;
        let service = if form & FORM_SERVICE_IS_DST != 0 {
            VirtualService {
                addr: key.dst,
                port: key.dport,
                proto: key.proto,
            }
        } else {
            VirtualService {
                addr: r.addr(v4, "service address")?,
                port: r.u16("service port")?,
                proto: r.u8("service protocol")?,
            }
        };
        Ok(FlowRecord {
            key,
            service,
            real_addr: r.addr(v4, "real server address")?,
            real_port: r.u16("real server port")?,
            age_ms: r.u32("flow age")?,
            flags: r.u32("flow flags")?,
        })
    }
}

impl CallRecord {
    fn v4(&self) -> bool {
        self.flow.as_ref().is_none_or(flow_key_v4) && self.ivr.as_ref().is_none_or(is_v4_mapped)
    }

    fn fields(&self) -> u8 {
        let mut f = 0;
        if self.channel.is_some() {
            f |= CALL_CHANNEL;
        }
        if self.flow.is_some() {
            f |= CALL_FLOW;
        }
        if self.ivr.is_some() {
            f |= CALL_IVR;
        }
        if self.v4() {
            f |= CALL_V4;
        }
        f
    }

    fn value_len(&self) -> usize {
        let v4 = self.v4();
        2 + self.id.len()
            + 1
            + 1
            + 8
            + 8
            + if self.channel.is_some() { 8 } else { 0 }
            + if self.flow.is_some() {
                flow_key_len(v4)
            } else {
                0
            }
            + if self.ivr.is_some() { addr_len(v4) } else { 0 }
    }

    fn emit_value(&self, out: &mut Vec<u8>) {
        let fields = self.fields();
        let v4 = fields & CALL_V4 != 0;
        put_call_id(out, &self.id);
        out.push(fields);
        out.push(self.state as u8);
        out.extend_from_slice(&self.created_ms.to_be_bytes());
        out.extend_from_slice(&self.updated_ms.to_be_bytes());
        if let Some(c) = &self.channel {
            out.extend_from_slice(&c.span.to_be_bytes());
            out.extend_from_slice(&c.channel.to_be_bytes());
        }
        if let Some(k) = &self.flow {
            put_flow_key(out, k, v4);
        }
        if let Some(a) = &self.ivr {
            put_addr(out, a, v4);
        }
    }

    fn parse_value(r: &mut Reader<'_>) -> Result<CallRecord, Error> {
        let id = r.call_id()?;
        let fields = r.u8("call fields")?;
        if fields & !(CALL_CHANNEL | CALL_FLOW | CALL_IVR | CALL_V4) != 0 {
            return Err(Error::BadField {
                field: "call fields",
                value: fields as u64,
            });
        }
        let v4 = fields & CALL_V4 != 0;
        let state = parse_state(r.u8("call state")?, "call state")?;
        let created_ms = r.u64("call created")?;
        let updated_ms = r.u64("call updated")?;
        let channel = if fields & CALL_CHANNEL != 0 {
            Some(ChannelRef {
                span: r.u32("call span")?,
                channel: r.u32("call channel")?,
            })
        } else {
            None
        };
        let flow = if fields & CALL_FLOW != 0 {
            Some(r.flow_key(v4)?)
        } else {
            None
        };
        let ivr = if fields & CALL_IVR != 0 {
            Some(r.addr(v4, "call IVR address")?)
        } else {
            None
        };
        Ok(CallRecord {
            id,
            channel,
            flow,
            ivr,
            state,
            created_ms,
            updated_ms,
        })
    }
}

fn put_call_id(out: &mut Vec<u8>, id: &str) {
    // `Record::check` keeps ids within MAX_CALL_ID, so the length fits.
    out.extend_from_slice(&(id.len().min(u16::MAX as usize) as u16).to_be_bytes());
    out.extend_from_slice(id.as_bytes());
}

fn parse_state(v: u8, field: &'static str) -> Result<CallState, Error> {
    CallState::from_u8(v).ok_or(Error::BadField {
        field,
        value: v as u64,
    })
}

fn check_call_id(id: &str) -> Result<(), Error> {
    if id.len() > MAX_CALL_ID {
        return Err(Error::BadField {
            field: "call id length",
            value: id.len() as u64,
        });
    }
    Ok(())
}

impl Record {
    /// The record type byte.
    pub fn kind(&self) -> u8 {
        match self {
            Record::Flow(_) => record_type::FLOW,
            Record::FlowRemoved(_) => record_type::FLOW_REMOVED,
            Record::Call(_) => record_type::CALL,
            Record::CallRemoved(_) => record_type::CALL_REMOVED,
            Record::Channel(_) => record_type::CHANNEL,
            Record::ChannelRemoved { .. } => record_type::CHANNEL_REMOVED,
            Record::Unknown { kind, .. } => *kind,
        }
    }

    fn value_len(&self) -> usize {
        match self {
            Record::Flow(f) => f.value_len(),
            Record::FlowRemoved(k) => 1 + flow_key_len(flow_key_v4(k)),
            Record::Call(c) => c.value_len(),
            Record::CallRemoved(id) => 2 + id.len(),
            Record::Channel(_) => 4 + 4 + 1 + 8,
            Record::ChannelRemoved { .. } => 4 + 4,
            Record::Unknown { data, .. } => data.len(),
        }
    }

    /// Bytes on the wire, type and length included.
    pub fn buffer_len(&self) -> usize {
        RECORD_HEADER_LEN + self.value_len()
    }

    /// Can this record be sent? Call ids within [`MAX_CALL_ID`], at most
    /// [`MAX_RECORD_LEN`] bytes, an unknown record not using a known type.
    pub fn check(&self) -> Result<(), Error> {
        match self {
            Record::Call(c) => check_call_id(&c.id)?,
            Record::CallRemoved(id) => check_call_id(id)?,
            Record::Unknown { kind, .. } if (1..=6).contains(kind) => {
                return Err(Error::BadField {
                    field: "unknown record type",
                    value: *kind as u64,
                });
            }
            _ => {}
        }
        let len = self.buffer_len();
        if len > MAX_RECORD_LEN {
            return Err(Error::BadField {
                field: "record length",
                value: len as u64,
            });
        }
        Ok(())
    }

    /// Appends the record (type, length, value). The record must pass
    /// [`Record::check`]; otherwise its length field is clamped and the
    /// bytes do not parse back.
    pub fn emit(&self, out: &mut Vec<u8>) {
        self.emit_aged(out, 0)
    }

    /// As [`Record::emit`], with `extra_ms` added to a flow's age (the time
    /// the record waited since it was made).
    pub fn emit_aged(&self, out: &mut Vec<u8>, extra_ms: u32) {
        let len = self.value_len();
        out.push(self.kind());
        out.extend_from_slice(&(len.min(u16::MAX as usize) as u16).to_be_bytes());
        match self {
            Record::Flow(f) => f.emit_value(out, f.age_ms.saturating_add(extra_ms)),
            Record::FlowRemoved(k) => {
                let v4 = flow_key_v4(k);
                out.push(if v4 { FORM_V4 } else { 0 });
                put_flow_key(out, k, v4);
            }
            Record::Call(c) => c.emit_value(out),
            Record::CallRemoved(id) => put_call_id(out, id),
            Record::Channel(c) => {
                out.extend_from_slice(&c.node.to_be_bytes());
                out.extend_from_slice(&c.channel.to_be_bytes());
                out.push(c.state as u8);
                out.extend_from_slice(&c.updated_ms.to_be_bytes());
            }
            Record::ChannelRemoved { node, channel } => {
                out.extend_from_slice(&node.to_be_bytes());
                out.extend_from_slice(&channel.to_be_bytes());
            }
            Record::Unknown { data, .. } => out.extend_from_slice(data),
        }
    }

    /// Parses the record at the start of `buf`; returns it and the bytes
    /// it took.
    pub fn parse(buf: &[u8]) -> Result<(Record, usize), Error> {
        let mut r = Reader::new(buf);
        let kind = r.u8("record type")?;
        let len = r.u16("record length")? as usize;
        let value = r.take(len, "record value")?;
        let mut v = Reader::new(value);
        let record = match kind {
            record_type::FLOW => Record::Flow(FlowRecord::parse_value(&mut v)?),
            record_type::FLOW_REMOVED => {
                let form = v.u8("flow form")?;
                if form & !FORM_V4 != 0 {
                    return Err(Error::BadField {
                        field: "flow form",
                        value: form as u64,
                    });
                }
                Record::FlowRemoved(v.flow_key(form & FORM_V4 != 0)?)
            }
            record_type::CALL => Record::Call(CallRecord::parse_value(&mut v)?),
            record_type::CALL_REMOVED => Record::CallRemoved(v.call_id()?),
            record_type::CHANNEL => Record::Channel(ChannelState {
                node: v.u32("channel node id")?,
                channel: v.u32("channel number")?,
                state: parse_state(v.u8("channel state")?, "channel state")?,
                updated_ms: v.u64("channel updated")?,
            }),
            record_type::CHANNEL_REMOVED => Record::ChannelRemoved {
                node: v.u32("channel node id")?,
                channel: v.u32("channel number")?,
            },
            _ => Record::Unknown {
                kind,
                data: value.to_vec(),
            },
        };
        Ok((record, RECORD_HEADER_LEN + len))
    }
}

/// Parses a sequence of records filling `buf` exactly.
pub fn parse_records(mut buf: &[u8]) -> Result<Vec<Record>, Error> {
    // Each record takes at least its 3-byte header: no more than this many.
    let mut out = Vec::with_capacity(buf.len() / (RECORD_HEADER_LEN + 8));
    while !buf.is_empty() {
        let (rec, used) = Record::parse(buf)?;
        out.push(rec);
        buf = buf.get(used..).unwrap_or(&[]);
    }
    Ok(out)
}

// ---- session key ----------------------------------------------------------

/// The key that authenticates every frame after the Hellos of one
/// connection: SipHash-2-4 under the shared key of a label and both
/// Hellos' nonces (the caller draws a fresh random nonce per connection).
pub fn session_key(shared: &Key, publisher_nonce: u64, subscriber_nonce: u64) -> Key {
    let mut m = [0u8; 32];
    m[..15].copy_from_slice(b"tandem sync k0\0");
    m[16..24].copy_from_slice(&publisher_nonce.to_le_bytes());
    m[24..32].copy_from_slice(&subscriber_nonce.to_le_bytes());
    let k0 = siphash24(shared, &m);
    m[13] = b'1';
    let k1 = siphash24(shared, &m);
    Key { k0, k1 }
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
            len: HEADER_LEN + body + MAC_LEN,
            max: MAX_FRAME_LEN,
        });
    }
    Ok(Some(HEADER_LEN + body + MAC_LEN))
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
                len: HEADER_LEN + body + MAC_LEN,
                max: MAX_FRAME_LEN,
            });
        }
        let need = HEADER_LEN + body + MAC_LEN;
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
        HEADER_LEN + self.body_len() as usize + MAC_LEN
    }
    pub fn body(&self) -> &[u8] {
        &self.buffer.as_ref()[field::BODY..field::BODY + self.body_len() as usize]
    }
    pub fn mac(&self) -> u64 {
        let end = HEADER_LEN + self.body_len() as usize;
        u64::from_le_bytes(self.bytes(end..end + MAC_LEN))
    }
    /// The MAC the frame should carry under `key`.
    pub fn compute_mac(&self, key: &Key) -> u64 {
        siphash24(
            key,
            &self.buffer.as_ref()[..HEADER_LEN + self.body_len() as usize],
        )
    }
    /// Does the MAC match the header and body under `key`?
    pub fn verify(&self, key: &Key) -> bool {
        self.compute_mac(key) == self.mac()
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Frame<T> {
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
    pub fn fill_mac(&mut self, key: &Key) {
        let m = self.compute_mac(key);
        let end = HEADER_LEN + self.body_len() as usize;
        self.put(end..end + MAC_LEN, &m.to_le_bytes());
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

    /// Appends a record if the frame stays within its limit.
    pub fn push_record(&mut self, record: &Record) -> bool {
        self.push_record_aged(record, 0)
    }

    /// As [`FrameWriter::push_record`], adding `extra_ms` to a flow's age.
    pub fn push_record_aged(&mut self, record: &Record, extra_ms: u32) -> bool {
        if self.buf.len() + record.buffer_len() + MAC_LEN > self.max_len {
            return false;
        }
        record.emit_aged(&mut self.buf, extra_ms);
        true
    }

    pub fn body_len(&self) -> usize {
        self.buf.len() - HEADER_LEN
    }

    /// Writes the body length and the MAC; returns the frame.
    pub fn finish(mut self, key: &Key) -> Vec<u8> {
        let body = (self.buf.len() - HEADER_LEN) as u32;
        self.buf[field::BODY_LEN].copy_from_slice(&body.to_be_bytes());
        let mac = siphash24(key, &self.buf);
        self.buf.extend_from_slice(&mac.to_le_bytes());
        self.buf
    }
}

// ---- parsed frames --------------------------------------------------------

/// A Hello: who the sender is and what it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hello {
    pub role: Role,
    /// The sync protocol version the sender speaks ([`PROTOCOL`]).
    pub protocol: u16,
    /// The largest frame the sender accepts.
    pub max_frame: u32,
    /// The publisher's stream its sequence numbers belong to (0: none).
    pub stream: u64,
    /// The last sequence of `stream` the sender holds.
    pub last_seq: u64,
    /// Drawn fresh for each connection; both nonces make the session key.
    pub nonce: u64,
    /// Bytes of frames the sender received on this connection.
    pub received: u64,
}

/// What a frame says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    Hello(Hello),
    SnapshotBegin {
        base: u64,
        stream: u64,
        snapshot: u32,
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
            Message::Hello(h) => h.last_seq,
            Message::SnapshotBegin { base, .. }
            | Message::SnapshotChunk { base, .. }
            | Message::SnapshotEnd { base, .. } => *base,
            Message::Delta { first, .. } => *first,
            Message::Ack { seq, .. } | Message::Keepalive { seq } => *seq,
        }
    }
}

/// A parsed, authenticated frame.
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
    /// Parses and authenticates a frame: length, magic, version, MAC under
    /// `key`, kind, body, in that order.
    pub fn parse<T: AsRef<[u8]>>(frame: &Frame<T>, key: &Key) -> Result<Repr, Error> {
        frame.check_len()?;
        if frame.magic() != MAGIC {
            return Err(Error::BadMagic(frame.magic()));
        }
        if frame.version() != VERSION {
            return Err(Error::BadVersion(frame.version()));
        }
        if !frame.verify(key) {
            return Err(Error::BadMac);
        }
        Self::parse_verified(frame)
    }

    /// Parses a frame whose length, magic and MAC were checked.
    fn parse_verified<T: AsRef<[u8]>>(frame: &Frame<T>) -> Result<Repr, Error> {
        let kind = Kind::from_u8(frame.kind()).ok_or(Error::UnknownKind(frame.kind()))?;
        let seq = frame.seq();
        let mut b = Reader::new(frame.body());
        let message = match kind {
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
                let nonce = b.u64("hello nonce")?;
                let received = b.u64("hello bytes received")?;
                // Fields a later version appends are ignored.
                Message::Hello(Hello {
                    role,
                    protocol,
                    max_frame,
                    stream,
                    last_seq: seq,
                    nonce,
                    received,
                })
            }
            Kind::SnapshotBegin => {
                let stream = b.u64("snapshot stream")?;
                let snapshot = b.u32("snapshot id")?;
                let _reserved = b.u32("snapshot reserved")?;
                exact(&b, "snapshot begin trailing bytes")?;
                Message::SnapshotBegin {
                    base: seq,
                    stream,
                    snapshot,
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
    pub fn to_bytes(&self, key: &Key) -> Result<Vec<u8>, Error> {
        let m = &self.message;
        let mut w = FrameWriter::new(m.kind(), self.node_id, self.epoch, m.seq(), MAX_FRAME_LEN);
        w.set_flags(self.flags);
        let mut records: &[Record] = &[];
        match m {
            Message::Hello(h) => {
                w.put_u16(h.protocol);
                w.put_u8(h.role as u8);
                w.put_u8(0);
                w.put_u32(h.max_frame);
                w.put_u64(h.stream);
                w.put_u64(h.nonce);
                w.put_u64(h.received);
            }
            Message::SnapshotBegin {
                stream, snapshot, ..
            } => {
                w.put_u64(*stream);
                w.put_u32(*snapshot);
                w.put_u32(0);
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
        Ok(w.finish(key))
    }

    /// Bytes of the whole frame: header, body, MAC.
    pub fn buffer_len(&self) -> usize {
        let records = |r: &[Record]| r.iter().map(Record::buffer_len).sum::<usize>();
        let body = match &self.message {
            Message::Hello(_) => 32,
            Message::SnapshotBegin { .. } => 16,
            Message::SnapshotChunk { records: r, .. } => 8 + records(r),
            Message::SnapshotEnd { .. } => 16,
            Message::Delta { records: r, .. } => records(r),
            Message::Ack { .. } => 8,
            Message::Keepalive { .. } => 0,
        };
        HEADER_LEN + body + MAC_LEN
    }

    /// Writes the frame into `frame`'s buffer, which must hold at least
    /// [`Repr::buffer_len`] bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        frame: &mut Frame<T>,
        key: &Key,
    ) -> Result<(), Error> {
        let bytes = self.to_bytes(key)?;
        let buf = frame.buffer.as_mut();
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

// ---- fuzzing --------------------------------------------------------------

/// Runs every parser of this module on `data`: as a frame (under a fixed
/// key, then again with its MAC made valid so the body parsers are
/// reached), as records, and as a stream through a [`Deframer`]. Checks
/// that a frame that parses re-encodes to one that parses the same.
/// Returns how many frames parsed, or what did not round-trip. The
/// `sync_frame` fuzz target and the proptests call it.
#[doc(hidden)]
pub fn exercise_parsers(data: &[u8]) -> Result<usize, String> {
    let key = Key::from_bytes(&[0x42; 16]);
    let mut parsed = 0;
    let _ = peek_frame_len(data);
    if let Ok(frame) = Frame::new_checked(data) {
        if Repr::parse(&frame, &key).is_ok() {
            parsed += 1;
        }
        let mut buf = data[..frame.frame_len()].to_vec();
        let mut fixed = Frame::new_unchecked(&mut buf[..]);
        fixed.fill_mac(&key);
        if let Ok(repr) = Repr::parse(&fixed, &key) {
            parsed += 1;
            if let Ok(bytes) = repr.to_bytes(&key) {
                let again = Frame::new_checked(&bytes[..]).and_then(|f| Repr::parse(&f, &key));
                if again.as_ref() != Ok(&repr) {
                    return Err(format!(
                        "{repr:?} re-encoded as {bytes:02x?} parses as {again:?}"
                    ));
                }
            }
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

#[cfg(test)]
mod tests;
