//! Sync records: one change of the synced state ([`Record`]: a flow, a
//! call, an IVR channel, or its removal) and its `type, length, value`
//! bytes (the table in [`super`]).
//!
//! Parsing never panics and names the field that is wrong; a record of an
//! unknown type is kept as [`Record::Unknown`] and bytes after the known
//! fields of a value are ignored, so later versions can grow. This file
//! must not know about frames (their header, MAC or kinds).

use tandem_common::FlowKey;

use super::{Error, MAX_CALL_ID, MAX_RECORD_LEN, RECORD_HEADER_LEN};

/// Record type bytes.
pub mod record_type {
    pub const FLOW: u8 = 1;
    pub const FLOW_REMOVED: u8 = 2;
    pub const CALL: u8 = 3;
    pub const CALL_REMOVED: u8 = 4;
    pub const CHANNEL: u8 = 5;
    pub const CHANNEL_REMOVED: u8 = 6;
    pub const SERVICES_PART: u8 = 7;
}

/// Flow record form bits.
pub(super) const FORM_V4: u8 = 0x01;
pub(super) const FORM_SERVICE_IS_DST: u8 = 0x02;
/// Call record field bits.
pub(super) const CALL_CHANNEL: u8 = 0x01;
pub(super) const CALL_FLOW: u8 = 0x02;
pub(super) const CALL_IVR: u8 = 0x04;
pub(super) const CALL_V4: u8 = 0x08;

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

/// Part `part` of `parts` of the active's `[[service]]` tables as TOML
/// text (`Config::services_toml`), whose SHA-256 begins with
/// `fingerprint`: the standby applies the services once it holds every
/// part of one fingerprint. Cut at [`SERVICES_PART_TEXT`] bytes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ServicesPart {
    pub fingerprint: u64,
    pub part: u16,
    pub parts: u16,
    pub text: Vec<u8>,
}

/// Most text bytes one [`ServicesPart`] carries (its record stays within
/// `MAX_RECORD_LEN`).
pub const SERVICES_PART_TEXT: usize = 960;

impl ServicesPart {
    /// The parts of `text` (at least one, even for no text).
    pub fn cut(fingerprint: u64, text: &str) -> Vec<ServicesPart> {
        let chunks: Vec<&[u8]> = if text.is_empty() {
            vec![&[][..]]
        } else {
            text.as_bytes().chunks(SERVICES_PART_TEXT).collect()
        };
        let parts = chunks.len().min(u16::MAX as usize) as u16;
        chunks
            .iter()
            .take(parts as usize)
            .enumerate()
            .map(|(i, c)| ServicesPart {
                fingerprint,
                part: i as u16,
                parts,
                text: c.to_vec(),
            })
            .collect()
    }
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
    /// A part of the active's services (replicated configuration).
    ServicesPart(ServicesPart),
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

pub(super) fn v4_mapped(b: [u8; 4]) -> [u8; 16] {
    let mut a = [0u8; 16];
    a[10] = 0xff;
    a[11] = 0xff;
    a[12..].copy_from_slice(&b);
    a
}

/// A bounds-checked reader over a byte slice: every read either succeeds
/// or returns `Truncated` naming the field.
pub(super) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(super) fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf }
    }

    pub(super) fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], Error> {
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

    pub(super) fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], Error> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N, field)?);
        Ok(a)
    }

    pub(super) fn u8(&mut self, field: &'static str) -> Result<u8, Error> {
        Ok(self.array::<1>(field)?[0])
    }
    pub(super) fn u16(&mut self, field: &'static str) -> Result<u16, Error> {
        Ok(u16::from_be_bytes(self.array(field)?))
    }
    pub(super) fn u32(&mut self, field: &'static str) -> Result<u32, Error> {
        Ok(u32::from_be_bytes(self.array(field)?))
    }
    pub(super) fn u64(&mut self, field: &'static str) -> Result<u64, Error> {
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
    pub(super) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
    pub(super) fn len(&self) -> usize {
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
            Record::ServicesPart(_) => record_type::SERVICES_PART,
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
            Record::ServicesPart(p) => 8 + 2 + 2 + p.text.len(),
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
            Record::ServicesPart(p) if p.part >= p.parts => {
                return Err(Error::BadField {
                    field: "services part",
                    value: u64::from(p.part),
                });
            }
            Record::Unknown { kind, .. } if (1..=7).contains(kind) => {
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
            Record::ServicesPart(p) => {
                out.extend_from_slice(&p.fingerprint.to_be_bytes());
                out.extend_from_slice(&p.part.to_be_bytes());
                out.extend_from_slice(&p.parts.to_be_bytes());
                out.extend_from_slice(&p.text);
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
            record_type::SERVICES_PART => {
                let fingerprint = v.u64("services fingerprint")?;
                let part = v.u16("services part")?;
                let parts = v.u16("services parts")?;
                if part >= parts {
                    return Err(Error::BadField {
                        field: "services part",
                        value: u64::from(part),
                    });
                }
                let text = v.take(len - 12, "services text")?.to_vec();
                Record::ServicesPart(ServicesPart {
                    fingerprint,
                    part,
                    parts,
                    text,
                })
            }
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
