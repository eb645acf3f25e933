//! The sync wire format with literal bytes, both directions, and every
//! way a frame can be wrong: none may panic, each must name what is wrong.

use super::records::{
    CALL_CHANNEL, CALL_FLOW, CALL_IVR, CALL_V4, FORM_SERVICE_IS_DST, FORM_V4, v4_mapped,
};
use super::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use tandem_common::FlowKey;

const KEY: [u8; 32] = [
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25,
    26, 27, 28, 29, 30, 31,
];

fn key() -> MacKey {
    MacKey::new(KEY)
}

fn other_key() -> MacKey {
    MacKey::new([0; 32])
}

fn v4(a: u8, b: u8, c: u8, d: u8) -> [u8; 16] {
    v4_mapped([a, b, c, d])
}

fn v6(last: u8) -> [u8; 16] {
    let mut a = [0u8; 16];
    a[0] = 0x20;
    a[1] = 0x01;
    a[2] = 0x0d;
    a[3] = 0xb8;
    a[15] = last;
    a
}

/// Header and body bytes followed by their MAC under KEY.
fn sealed(mut bytes: Vec<u8>) -> Vec<u8> {
    let mac = key().tag(&bytes);
    bytes.extend_from_slice(&mac);
    bytes
}

fn header(kind: u8, flags: u16, node: u32, body_len: u32, epoch: u64, seq: u64) -> Vec<u8> {
    let mut h = b"TSYN".to_vec();
    h.push(2);
    h.push(kind);
    h.extend_from_slice(&flags.to_be_bytes());
    h.extend_from_slice(&node.to_be_bytes());
    h.extend_from_slice(&body_len.to_be_bytes());
    h.extend_from_slice(&epoch.to_be_bytes());
    h.extend_from_slice(&seq.to_be_bytes());
    h
}

/// Parses `bytes` and emits `repr`, both ways, through the view and the
/// writer.
fn check_both_ways(bytes: &[u8], repr: &Repr) {
    let frame = Frame::new_checked(bytes).expect("a whole frame");
    assert_eq!(frame.frame_len(), bytes.len());
    assert!(frame.verify(&key()));
    assert_eq!(Repr::parse(&frame, &key()).as_ref(), Ok(repr));
    assert_eq!(repr.to_bytes(&key()).as_deref(), Ok(bytes));
    assert_eq!(repr.buffer_len(), bytes.len());
    let mut buf = vec![0xeeu8; repr.buffer_len() + 3];
    let mut out = Frame::new_unchecked(&mut buf[..]);
    repr.emit(&mut out, &key()).expect("room enough");
    assert_eq!(&buf[..bytes.len()], bytes);
    let mut short = vec![0u8; repr.buffer_len() - 1];
    let err = repr.emit(&mut Frame::new_unchecked(&mut short[..]), &key());
    assert!(matches!(err, Err(Error::Truncated { .. })), "{err:?}");
}

fn sample_flow() -> FlowRecord {
    let key = FlowKey::new(v4(198, 18, 0, 1), v4(198, 19, 0, 1), 40_000, 5060, 17);
    FlowRecord {
        key,
        service: VirtualService {
            addr: key.dst,
            port: 5060,
            proto: 17,
        },
        real_addr: v4(198, 19, 1, 1),
        real_port: 5060,
        age_ms: 5,
        flags: 1,
    }
}

/// `sample_flow` as a record: 31 bytes.
const FLOW_BYTES: [u8; 31] = [
    0x01, 0x00, 0x1c, // flow, 28 bytes
    0x03, // V4 | service is the destination
    0xc6, 0x12, 0x00, 0x01, // src 198.18.0.1
    0xc6, 0x13, 0x00, 0x01, // dst 198.19.0.1
    0x9c, 0x40, // sport 40000
    0x13, 0xc4, // dport 5060
    0x11, // UDP
    0xc6, 0x13, 0x01, 0x01, // real 198.19.1.1
    0x13, 0xc4, // real port 5060
    0x00, 0x00, 0x00, 0x05, // age 5 ms
    0x00, 0x00, 0x00, 0x01, // flags
];

fn sample_channel() -> ChannelState {
    ChannelState {
        node: 9,
        channel: 3,
        state: CallState::Answered,
        updated_ms: 0x0102_0304_0506_0708,
    }
}

const CHANNEL_BYTES: [u8; 20] = [
    0x05, 0x00, 0x11, // channel, 17 bytes
    0x00, 0x00, 0x00, 0x09, // IVR node 9
    0x00, 0x00, 0x00, 0x03, // channel 3
    0x02, // answered
    0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, // updated
];

fn sample_call() -> CallRecord {
    CallRecord {
        id: "c1".into(),
        channel: Some(ChannelRef {
            span: 1,
            channel: 23,
        }),
        flow: Some(sample_flow().key),
        ivr: Some(v4(198, 19, 1, 2)),
        state: CallState::OnHold,
        created_ms: 1000,
        updated_ms: 2000,
    }
}

const CALL_BYTES: [u8; 50] = [
    0x03, 0x00, 0x2f, // call, 47 bytes
    0x00, 0x02, b'c', b'1', // id
    0x0f, // channel | flow | IVR | V4
    0x03, // on hold
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0xe8, // created 1000
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x07, 0xd0, // updated 2000
    0x00, 0x00, 0x00, 0x01, // span 1
    0x00, 0x00, 0x00, 0x17, // channel 23
    0xc6, 0x12, 0x00, 0x01, 0xc6, 0x13, 0x00, 0x01, 0x9c, 0x40, 0x13, 0xc4, 0x11, // flow key
    0xc6, 0x13, 0x01, 0x02, // IVR 198.19.1.2
];

fn repr(node_id: u32, epoch: u64, flags: u16, message: Message) -> Repr {
    Repr {
        node_id,
        epoch,
        flags,
        message,
    }
}

// ---- literal frames, both directions --------------------------------------

#[test]
fn hello_literal_bytes() {
    let mut bytes = header(1, 0, 1, 24, 7, 0x10);
    bytes.extend_from_slice(&[
        0x00, 0x02, // protocol 2
        0x02, // subscriber
        0x00, // reserved
        0x00, 0x01, 0x00, 0x00, // max frame 65536
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xaa, 0xbb, // stream
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, // received 256
    ]);
    let bytes = sealed(bytes);
    assert_eq!(bytes.len(), 72);
    let hello = Hello {
        role: Role::Subscriber,
        protocol: 2,
        max_frame: 65536,
        stream: 0xaabb,
        last_seq: 0x10,
        received: 256,
    };
    check_both_ways(&bytes, &repr(1, 7, 0, Message::Hello(hello)));
}

#[test]
fn hello_with_fields_of_a_later_version_still_parses() {
    let mut bytes = header(1, 0, 1, 28, 7, 0);
    bytes.extend_from_slice(&[0, 3, 1, 0, 0, 1, 0, 0]);
    bytes.extend_from_slice(&[0; 16]);
    bytes.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef]); // appended by protocol 3
    let bytes = sealed(bytes);
    let r = Repr::parse(&Frame::new_checked(&bytes[..]).unwrap(), &key()).expect("parses");
    let Message::Hello(h) = r.message else {
        panic!("not a hello: {r:?}")
    };
    assert_eq!((h.protocol, h.role), (3, Role::Publisher));
}

#[test]
fn handshake_literal_bytes() {
    let nonce = |b: u8| Nonce::new([b; NONCE_LEN]);
    // Init: protocol 2, subscriber, the subscriber's nonce.
    let mut bytes = header(8, 0, 2, 36, 7, 0);
    bytes.extend_from_slice(&[0x00, 0x02, 0x02, 0x00]);
    bytes.extend_from_slice(&[0x11; NONCE_LEN]);
    let bytes = sealed(bytes);
    assert_eq!(bytes.len(), HEADER_LEN + 36 + TAG_LEN);
    let init = Greeting {
        role: Role::Subscriber,
        protocol: 2,
        nonce: nonce(0x11),
    };
    check_both_ways(&bytes, &repr(2, 7, 0, Message::Init(init)));
    // Reply: protocol 2, publisher, its nonce, its proof.
    let mut bytes = header(9, 0, 1, 68, 3, 0);
    bytes.extend_from_slice(&[0x00, 0x02, 0x01, 0x00]);
    bytes.extend_from_slice(&[0x22; NONCE_LEN]);
    bytes.extend_from_slice(&[0x33; PROOF_LEN]);
    let bytes = sealed(bytes);
    let reply = Message::Reply {
        greeting: Greeting {
            role: Role::Publisher,
            protocol: 2,
            nonce: nonce(0x22),
        },
        proof: [0x33; PROOF_LEN],
    };
    check_both_ways(&bytes, &repr(1, 3, 0, reply));
    // Confirm: the subscriber's proof, nothing after it.
    let mut bytes = header(10, 0, 2, 32, 7, 0);
    bytes.extend_from_slice(&[0x44; PROOF_LEN]);
    let confirm = sealed(bytes.clone());
    check_both_ways(
        &confirm,
        &repr(
            2,
            7,
            0,
            Message::Confirm {
                proof: [0x44; PROOF_LEN],
            },
        ),
    );
    bytes[12..16].copy_from_slice(&33u32.to_be_bytes());
    bytes.push(0);
    let long = sealed(bytes);
    let r = Repr::parse(&Frame::new_checked(&long[..]).unwrap(), &key());
    assert!(matches!(r, Err(Error::BadField { .. })), "{r:?}");
}

#[test]
fn snapshot_begin_literal_bytes() {
    let mut bytes = header(2, 0, 0x0102_0304, 16, 3, 500);
    bytes.extend_from_slice(&[
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xaa, 0xbb, // stream
        0x00, 0x00, 0x00, 0x02, // snapshot 2
        0x00, 0x00, 0x00, 0x00, // flags
    ]);
    let bytes = sealed(bytes);
    let m = Message::SnapshotBegin {
        base: 500,
        stream: 0xaabb,
        snapshot: 2,
        keep_calls: false,
    };
    check_both_ways(&bytes, &repr(0x0102_0304, 3, 0, m));
}

#[test]
fn snapshot_begin_keeping_calls_literal_bytes() {
    let mut bytes = header(2, 0, 0x0102_0304, 16, 3, 500);
    bytes.extend_from_slice(&[
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xaa, 0xbb, // stream
        0x00, 0x00, 0x00, 0x02, // snapshot 2
        0x00, 0x00, 0x00, 0x01, // flags: keep calls
    ]);
    let bytes = sealed(bytes);
    let m = Message::SnapshotBegin {
        base: 500,
        stream: 0xaabb,
        snapshot: 2,
        keep_calls: true,
    };
    check_both_ways(&bytes, &repr(0x0102_0304, 3, 0, m));
}

#[test]
fn snapshot_chunk_literal_bytes() {
    let body_len = 8 + CALL_BYTES.len() + CHANNEL_BYTES.len();
    let mut bytes = header(3, 0, 1, body_len as u32, 3, 500);
    bytes.extend_from_slice(&[0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00]); // snapshot 2, chunk 0
    bytes.extend_from_slice(&CALL_BYTES);
    bytes.extend_from_slice(&CHANNEL_BYTES);
    let bytes = sealed(bytes);
    let m = Message::SnapshotChunk {
        base: 500,
        snapshot: 2,
        index: 0,
        records: vec![
            Record::Call(sample_call()),
            Record::Channel(sample_channel()),
        ],
    };
    check_both_ways(&bytes, &repr(1, 3, 0, m));
}

#[test]
fn snapshot_end_literal_bytes() {
    let mut bytes = header(4, 0, 1, 16, 3, 500);
    bytes.extend_from_slice(&[
        0x00, 0x00, 0x00, 0x02, // snapshot 2
        0x00, 0x00, 0x00, 0x01, // 1 chunk
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, // 2 records
    ]);
    let bytes = sealed(bytes);
    let m = Message::SnapshotEnd {
        base: 500,
        snapshot: 2,
        chunks: 1,
        records: 2,
    };
    check_both_ways(&bytes, &repr(1, 3, 0, m));
}

#[test]
fn delta_literal_bytes() {
    let mut bytes = header(
        5,
        0,
        1,
        (FLOW_BYTES.len() + CHANNEL_BYTES.len()) as u32,
        3,
        501,
    );
    bytes.extend_from_slice(&FLOW_BYTES);
    bytes.extend_from_slice(&CHANNEL_BYTES);
    let bytes = sealed(bytes);
    let m = Message::Delta {
        first: 501,
        records: vec![
            Record::Flow(sample_flow()),
            Record::Channel(sample_channel()),
        ],
    };
    check_both_ways(&bytes, &repr(1, 3, 0, m));
}

#[test]
fn ack_literal_bytes() {
    let mut bytes = header(6, 0, 2, 8, 3, 502);
    bytes.extend_from_slice(&[0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00]);
    let bytes = sealed(bytes);
    check_both_ways(
        &bytes,
        &repr(
            2,
            3,
            0,
            Message::Ack {
                seq: 502,
                received: 65536,
            },
        ),
    );
}

#[test]
fn keepalive_literal_bytes() {
    let bytes = sealed(header(7, FLAG_STREAMING, 1, 0, 3, 502));
    assert_eq!(bytes.len(), HEADER_LEN + TAG_LEN);
    check_both_ways(
        &bytes,
        &repr(1, 3, FLAG_STREAMING, Message::Keepalive { seq: 502 }),
    );
}

#[test]
fn view_getters_and_setters_agree() {
    let mut buf = [0u8; HEADER_LEN + 4 + TAG_LEN];
    let mut f = Frame::new_unchecked(&mut buf[..]);
    f.set_magic(MAGIC);
    f.set_version(VERSION);
    f.set_kind(Kind::Ack as u8);
    f.set_flags(0xa5a5);
    f.set_node_id(0xdead_beef);
    f.set_body_len(4);
    f.set_epoch(u64::MAX);
    f.set_seq(42);
    f.body_mut().copy_from_slice(&[1, 2, 3, 4]);
    f.fill_mac(&key());
    let f = Frame::new_checked(&buf[..]).expect("whole");
    assert_eq!(
        (
            f.magic(),
            f.version(),
            f.kind(),
            f.flags(),
            f.node_id(),
            f.body_len(),
            f.epoch(),
            f.seq()
        ),
        (MAGIC, 2, 6, 0xa5a5, 0xdead_beef, 4, u64::MAX, 42)
    );
    assert_eq!(f.body(), &[1, 2, 3, 4]);
    assert!(f.verify(&key()));
    assert!(!f.verify(&other_key()));
}

// ---- records --------------------------------------------------------------

fn round_trip(r: &Record) -> Vec<u8> {
    r.check().expect("sendable");
    let mut out = Vec::new();
    r.emit(&mut out);
    assert_eq!(out.len(), r.buffer_len(), "{r:?}");
    assert_eq!(Record::parse(&out), Ok((r.clone(), out.len())));
    out
}

#[test]
fn flow_record_forms() {
    // IPv4, service implied: the literal above.
    assert_eq!(round_trip(&Record::Flow(sample_flow())), FLOW_BYTES);
    // IPv4, a service on all ports (port 0): the service is spelled out.
    let all_ports = FlowRecord {
        service: VirtualService {
            port: 0,
            ..sample_flow().service
        },
        ..sample_flow()
    };
    let b = round_trip(&Record::Flow(all_ports));
    assert_eq!((b.len(), b[3]), (31 + 7, FORM_V4));
    // IPv6 everywhere.
    let key = FlowKey::new(v6(1), v6(2), 1, 2, 6);
    let f = FlowRecord {
        key,
        service: VirtualService {
            addr: v6(2),
            port: 2,
            proto: 6,
        },
        real_addr: v6(3),
        real_port: 0,
        age_ms: u32::MAX,
        flags: 3,
    };
    let b = round_trip(&Record::Flow(f));
    assert_eq!((b.len(), b[3]), (3 + 1 + 37 + 18 + 8, FORM_SERVICE_IS_DST));
    // IPv4 clients of an IPv6 real server: all addresses go long.
    let mixed = FlowRecord {
        real_addr: v6(9),
        ..sample_flow()
    };
    let b = round_trip(&Record::Flow(mixed));
    assert_eq!((b.len(), b[3]), (3 + 1 + 37 + 18 + 8, FORM_SERVICE_IS_DST));
    // And with an explicit IPv6 service.
    let f = FlowRecord {
        service: VirtualService {
            addr: v6(7),
            port: 80,
            proto: 6,
        },
        ..f
    };
    assert_eq!(round_trip(&Record::Flow(f)).len(), 3 + 1 + 37 + 19 + 18 + 8);
}

#[test]
fn a_flow_ages_by_the_time_it_waited() {
    let mut out = Vec::new();
    Record::Flow(sample_flow()).emit_aged(&mut out, 20);
    let Ok((Record::Flow(f), _)) = Record::parse(&out) else {
        panic!("no flow")
    };
    assert_eq!(f.age_ms, 25);
    let mut out = Vec::new();
    Record::Flow(FlowRecord {
        age_ms: u32::MAX - 1,
        ..sample_flow()
    })
    .emit_aged(&mut out, 20);
    let Ok((Record::Flow(f), _)) = Record::parse(&out) else {
        panic!("no flow")
    };
    assert_eq!(f.age_ms, u32::MAX, "saturates");
}

#[test]
fn removal_and_call_records() {
    let b = round_trip(&Record::FlowRemoved(sample_flow().key));
    assert_eq!(
        b,
        [
            0x02, 0x00, 0x0e, 0x01, 0xc6, 0x12, 0x00, 0x01, 0xc6, 0x13, 0x00, 0x01, 0x9c, 0x40,
            0x13, 0xc4, 0x11
        ]
    );
    assert_eq!(
        round_trip(&Record::FlowRemoved(FlowKey::new(v6(1), v6(2), 3, 4, 6))).len(),
        3 + 1 + 37
    );
    assert_eq!(round_trip(&Record::Call(sample_call())), CALL_BYTES);
    let bare = CallRecord {
        id: String::new(),
        channel: None,
        flow: None,
        ivr: None,
        ..sample_call()
    };
    let b = round_trip(&Record::Call(bare));
    assert_eq!((b.len(), b[5]), (3 + 2 + 1 + 1 + 16, CALL_V4));
    let v6call = CallRecord {
        ivr: Some(v6(5)),
        ..sample_call()
    };
    let b = round_trip(&Record::Call(v6call));
    assert_eq!(
        b[7],
        CALL_CHANNEL | CALL_FLOW | CALL_IVR,
        "an IPv6 IVR makes every address long"
    );
    let long_id = "é".repeat(128); // 256 bytes
    round_trip(&Record::Call(CallRecord {
        id: long_id.clone(),
        ..sample_call()
    }));
    assert_eq!(
        round_trip(&Record::CallRemoved("c1".into())),
        [0x04, 0x00, 0x04, 0x00, 0x02, b'c', b'1']
    );
    round_trip(&Record::CallRemoved(long_id));
    assert_eq!(
        round_trip(&Record::ChannelRemoved {
            node: 9,
            channel: 3
        }),
        [0x06, 0x00, 0x08, 0, 0, 0, 9, 0, 0, 0, 3]
    );
    assert_eq!(
        round_trip(&Record::Channel(sample_channel())),
        CHANNEL_BYTES
    );
}

#[test]
fn unknown_record_types_are_skipped_and_known_ones_may_grow() {
    let mut body = vec![0x80, 0x00, 0x03, 0xaa, 0xbb, 0xcc]; // type 128, 3 bytes
    // A channel record with 2 bytes appended by a later version.
    let mut grown = CHANNEL_BYTES.to_vec();
    grown[2] += 2;
    grown.extend_from_slice(&[0xfe, 0xff]);
    body.extend_from_slice(&grown);
    body.extend_from_slice(&FLOW_BYTES);
    let records = parse_records(&body).expect("parses");
    assert_eq!(
        records,
        vec![
            Record::Unknown {
                kind: 0x80,
                data: vec![0xaa, 0xbb, 0xcc]
            },
            Record::Channel(sample_channel()),
            Record::Flow(sample_flow()),
        ]
    );
    // The services in parts: a full part stays within a record, and a part
    // numbered past its count is refused both ways.
    let text = "x".repeat(SERVICES_PART_TEXT * 2 + 1);
    let parts = ServicesPart::cut(7, &text);
    assert_eq!(parts.iter().map(|p| (p.part, p.parts, p.text.len())).collect::<Vec<_>>(), [(0, 3, SERVICES_PART_TEXT), (1, 3, SERVICES_PART_TEXT), (2, 3, 1)]);
    for p in &parts {
        round_trip(&Record::ServicesPart(p.clone()));
    }
    let bad = Record::ServicesPart(ServicesPart { part: 3, ..parts[0].clone() });
    assert!(bad.check().is_err());
    let mut bytes = Vec::new();
    bad.emit(&mut bytes);
    assert!(Record::parse(&bytes).is_err(), "part 3 of 3 does not parse");
    // Unknown records round-trip; one posing as a known type cannot be sent.
    round_trip(&Record::Unknown {
        kind: 0x80,
        data: vec![1, 2, 3],
    });
    assert!(
        Record::Unknown {
            kind: record_type::FLOW,
            data: vec![]
        }
        .check()
        .is_err()
    );
    assert!(
        Record::Unknown {
            kind: 0x80,
            data: vec![0; MAX_RECORD_LEN]
        }
        .check()
        .is_err()
    );
}

#[test]
fn bad_records_name_the_field() {
    let field = |bytes: &[u8]| match Record::parse(bytes) {
        Err(Error::BadField { field, .. }) => field,
        other => panic!("{bytes:02x?}: expected a bad field, got {other:?}"),
    };
    let mut too_long = vec![0x04, 0x01, 0x03, 0x01, 0x01];
    too_long.extend_from_slice(&[b'a'; 257]);
    assert_eq!(field(&too_long), "call id length");
    assert_eq!(
        field(&[0x04, 0x00, 0x04, 0x00, 0x02, 0xff, 0xfe]),
        "call id (not UTF-8) at byte"
    );
    let mut bad_state = CHANNEL_BYTES;
    bad_state[11] = 5;
    assert_eq!(field(&bad_state), "channel state");
    let mut bad_form = FLOW_BYTES;
    bad_form[3] = 0x07;
    assert_eq!(field(&bad_form), "flow form");
    let mut bad_fields = CALL_BYTES;
    bad_fields[7] = 0x1f;
    assert_eq!(field(&bad_fields), "call fields");
    let mut bad_call_state = CALL_BYTES;
    bad_call_state[8] = 9;
    assert_eq!(field(&bad_call_state), "call state");
    let over = CallRecord {
        id: "x".repeat(257),
        ..sample_call()
    };
    assert_eq!(
        Record::Call(over).check(),
        Err(Error::BadField {
            field: "call id length",
            value: 257
        })
    );
    assert!(Record::CallRemoved("x".repeat(257)).check().is_err());
}

#[test]
fn records_truncated_at_every_length_are_errors() {
    for full in [&FLOW_BYTES[..], &CHANNEL_BYTES[..], &CALL_BYTES[..]] {
        for len in 0..full.len() {
            let r = Record::parse(&full[..len]);
            assert!(matches!(r, Err(Error::Truncated { .. })), "{len}: {r:?}");
            // The same with a length field that claims only what is there.
            if len >= 3 {
                let mut cut = full[..len].to_vec();
                cut[1..3].copy_from_slice(&((len - 3) as u16).to_be_bytes());
                let r = Record::parse(&cut);
                assert!(
                    matches!(r, Err(Error::Truncated { .. })),
                    "{len} claimed: {r:?}"
                );
            }
        }
    }
}

// ---- rejected frames ------------------------------------------------------

/// One valid frame of every kind.
fn samples() -> Vec<Vec<u8>> {
    let hello = Hello {
        role: Role::Publisher,
        protocol: 2,
        max_frame: 65536,
        stream: 9,
        last_seq: 3,
        received: 0,
    };
    let records = vec![
        Record::Flow(sample_flow()),
        Record::Call(sample_call()),
        Record::Channel(sample_channel()),
    ];
    let greeting = Greeting {
        role: Role::Subscriber,
        protocol: 2,
        nonce: Nonce::from(5),
    };
    [
        Message::Init(greeting),
        Message::Reply {
            greeting,
            proof: [7; PROOF_LEN],
        },
        Message::Confirm {
            proof: [8; PROOF_LEN],
        },
        Message::Hello(hello),
        Message::SnapshotBegin {
            base: 3,
            stream: 9,
            snapshot: 1,
            keep_calls: false,
        },
        Message::SnapshotChunk {
            base: 3,
            snapshot: 1,
            index: 0,
            records: records.clone(),
        },
        Message::SnapshotEnd {
            base: 3,
            snapshot: 1,
            chunks: 1,
            records: 3,
        },
        Message::Delta { first: 4, records },
        Message::Ack {
            seq: 4,
            received: 100,
        },
        Message::Keepalive { seq: 4 },
    ]
    .into_iter()
    .map(|m| repr(1, 1, 0, m).to_bytes(&key()).expect("encodes"))
    .collect()
}

#[test]
fn frames_truncated_at_every_length_are_errors() {
    for bytes in samples() {
        for len in 0..bytes.len() {
            let cut = &bytes[..len];
            let err = Frame::new_checked(cut).err();
            assert!(
                matches!(err, Some(Error::Truncated { .. })),
                "{len}: {err:?}"
            );
            let parsed = Repr::parse(&Frame::new_unchecked(cut), &key());
            assert!(
                matches!(parsed, Err(Error::Truncated { .. })),
                "{len}: {parsed:?}"
            );
        }
    }
}

#[test]
fn a_body_cut_between_or_inside_records_with_a_valid_mac() {
    // An authenticated delta whose declared body ends anywhere: only cuts
    // at record boundaries parse.
    let full = repr(
        1,
        1,
        0,
        Message::Delta {
            first: 1,
            records: vec![
                Record::Flow(sample_flow()),
                Record::Channel(sample_channel()),
            ],
        },
    )
    .to_bytes(&key())
    .expect("encodes");
    let body = &full[HEADER_LEN..full.len() - TAG_LEN];
    for cut in 0..=body.len() {
        let mut bytes = full[..HEADER_LEN].to_vec();
        bytes[12..16].copy_from_slice(&(cut as u32).to_be_bytes());
        bytes.extend_from_slice(&body[..cut]);
        let bytes = sealed(bytes);
        let r = Repr::parse(&Frame::new_checked(&bytes[..]).expect("whole"), &key());
        let boundary = cut == FLOW_BYTES.len() || cut == body.len();
        assert_eq!(r.is_ok(), boundary, "cut at {cut}: {r:?}");
        if cut == 0 {
            assert_eq!(
                r,
                Err(Error::BadField {
                    field: "delta record count",
                    value: 0
                })
            );
        }
    }
}

#[test]
fn oversized_frames_are_refused_from_their_header() {
    let mut h = header(5, 0, 1, (MAX_BODY_LEN + 1) as u32, 1, 1);
    let err = Error::Oversized {
        len: MAX_FRAME_LEN + 1,
        max: MAX_FRAME_LEN,
    };
    // 16 bytes are enough to know.
    assert_eq!(peek_frame_len(&h[..16]), Err(err));
    assert_eq!(peek_frame_len(&h[..15]), Ok(None));
    assert_eq!(Frame::new_checked(&h[..]).err(), Some(err));
    h[12..16].copy_from_slice(&u32::MAX.to_be_bytes());
    assert!(matches!(
        Frame::new_checked(&h[..]),
        Err(Error::Oversized { .. })
    ));
    let mut d = Deframer::new();
    assert!(matches!(d.push(&h[..16]), Err(Error::Oversized { .. })));
    // The largest allowed frame is accepted.
    let mut h = header(5, 0, 1, MAX_BODY_LEN as u32, 1, 1);
    assert_eq!(peek_frame_len(&h), Ok(Some(MAX_FRAME_LEN)));
    h.resize(MAX_FRAME_LEN, 0);
    assert!(Frame::new_checked(&h[..]).is_ok());
    // Too many records for one frame cannot be encoded.
    let records = vec![Record::Flow(sample_flow()); MAX_BODY_LEN / FLOW_BYTES.len() + 1];
    let r = repr(1, 1, 0, Message::Delta { first: 1, records }).to_bytes(&key());
    assert!(matches!(r, Err(Error::Oversized { .. })), "{r:?}");
}

#[test]
fn every_flipped_byte_is_rejected() {
    for bytes in samples() {
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x01;
            let r = Frame::new_checked(&b[..]).and_then(|f| Repr::parse(&f, &key()));
            assert!(r.is_err(), "byte {i} flipped: {r:?}");
            if (16..bytes.len()).contains(&i) {
                assert_eq!(r, Err(Error::BadMac), "byte {i}");
            }
        }
        let r = Repr::parse(&Frame::new_checked(&bytes[..]).unwrap(), &other_key());
        assert_eq!(r, Err(Error::BadMac), "another key");
    }
}

#[test]
fn bad_magic_version_and_kind_are_named() {
    let good = &samples()[5];
    let mut b = good.clone();
    b[..4].copy_from_slice(b"HTTP");
    assert_eq!(
        Repr::parse(&Frame::new_checked(&b[..]).unwrap(), &key()),
        Err(Error::BadMagic(*b"HTTP"))
    );
    assert_eq!(peek_frame_len(b"GET "), Err(Error::BadMagic(*b"GET ")));
    assert_eq!(peek_frame_len(b"TX"), Err(Error::BadMagic(*b"TX\0\0")));
    let mut b = good.clone();
    b[4] = 1; // the unauthenticated protocol before the handshake
    assert_eq!(
        Repr::parse(&Frame::new_checked(&b[..]).unwrap(), &key()),
        Err(Error::BadVersion(1))
    );
    assert_eq!(peek_frame_len(&b), Err(Error::BadVersion(1)));
    // An authenticated frame of a kind from the future.
    let mut b = header(99, 0, 1, 0, 1, 1);
    b = sealed(std::mem::take(&mut b));
    assert_eq!(
        Repr::parse(&Frame::new_checked(&b[..]).unwrap(), &key()),
        Err(Error::UnknownKind(99))
    );
    // Fixed bodies must be exact.
    let mut b = header(6, 0, 1, 9, 1, 1);
    b.extend_from_slice(&[0; 9]);
    let b = sealed(b);
    assert_eq!(
        Repr::parse(&Frame::new_checked(&b[..]).unwrap(), &key()),
        Err(Error::BadField {
            field: "ack trailing bytes",
            value: 1
        })
    );
    // A delta numbered from 0 (sequences start at 1).
    let mut b = header(5, 0, 1, FLOW_BYTES.len() as u32, 1, 0);
    b.extend_from_slice(&FLOW_BYTES);
    let b = sealed(b);
    assert_eq!(
        Repr::parse(&Frame::new_checked(&b[..]).unwrap(), &key()),
        Err(Error::BadField {
            field: "delta first sequence",
            value: 0
        })
    );
}

// ---- keys, proofs, sealing -------------------------------------------------

fn transcript(s: u64, p: u64) -> Transcript {
    Transcript {
        protocol: PROTOCOL,
        subscriber: 2,
        publisher: 1,
        subscriber_nonce: Nonce::from(s),
        publisher_nonce: Nonce::from(p),
    }
}

#[test]
fn proofs_depend_on_the_key_the_role_and_both_nonces() {
    let k = SyncKey::new([7; 16]).handshake_keys();
    let t = transcript(1, 2);
    let p = k.proof(Role::Publisher, &t);
    assert!(k.check_proof(Role::Publisher, &t, &p));
    assert!(
        !k.check_proof(Role::Subscriber, &t, &p),
        "a publisher's proof is no subscriber's (no reflection)"
    );
    assert!(!k.check_proof(Role::Publisher, &transcript(1, 3), &p));
    assert!(!k.check_proof(Role::Publisher, &transcript(3, 2), &p));
    let other = SyncKey::new([8; 16]).handshake_keys();
    assert!(!other.check_proof(Role::Publisher, &t, &p));
    let mut ids = t;
    ids.subscriber = 3;
    assert!(
        !k.check_proof(Role::Publisher, &ids, &p),
        "bound to the node ids"
    );
}

#[test]
fn sealed_frames_open_once_in_order_and_hide_their_body() {
    let k = SyncKey::new([7; 16]).handshake_keys();
    let t = transcript(1, 2);
    let mut publisher = k.session(Role::Publisher, &t);
    let mut subscriber = k.session(Role::Subscriber, &t);
    let delta = repr(
        1,
        3,
        0,
        Message::Delta {
            first: 501,
            records: vec![Record::Call(sample_call())],
        },
    );
    let plain = delta.to_bytes(&key()).expect("encodes");
    let a = delta.seal(&mut publisher.send).expect("seals");
    let b = delta.seal(&mut publisher.send).expect("seals");
    assert_eq!(a.len(), plain.len());
    assert_eq!(
        a[..HEADER_LEN],
        plain[..HEADER_LEN],
        "the header is in clear"
    );
    assert_ne!(a, b, "each frame under its own nonce");
    let id = sample_call().id;
    for f in [&a, &b] {
        assert!(
            !f.windows(id.len()).any(|w| w == id.as_bytes()),
            "the Call-ID is not on the wire"
        );
    }
    // Out of order: b first fails; then a, then b open.
    assert_eq!(
        Repr::open(&mut b.clone(), &mut subscriber.recv),
        Err(Error::BadMac)
    );
    assert_eq!(
        Repr::open(&mut a.clone(), &mut subscriber.recv),
        Ok(delta.clone())
    );
    assert_eq!(
        Repr::open(&mut a.clone(), &mut subscriber.recv),
        Err(Error::BadMac),
        "a replay"
    );
    assert_eq!(
        Repr::open(&mut b.clone(), &mut subscriber.recv),
        Ok(delta.clone())
    );
    // The other direction, another session, a flipped header bit.
    let mut back = k.session(Role::Publisher, &t);
    let c = delta.seal(&mut subscriber.send).expect("seals");
    assert_eq!(
        Repr::open(&mut c.clone(), &mut back.recv),
        Ok(delta.clone())
    );
    let mut fresh = k.session(Role::Subscriber, &transcript(1, 9));
    assert_eq!(
        Repr::open(&mut a.clone(), &mut fresh.recv),
        Err(Error::BadMac),
        "a frame of another connection"
    );
    let mut flipped = delta.seal(&mut publisher.send).expect("seals");
    flipped[24] ^= 1;
    assert_eq!(
        Repr::open(&mut flipped, &mut subscriber.recv),
        Err(Error::BadMac),
        "the header is authenticated"
    );
}

#[test]
fn no_key_shows_in_debug_output() {
    let key = SyncKey::new([0xab; 16]);
    let keys = key.handshake_keys();
    let t = transcript(1, 2);
    let c = keys.session(Role::Publisher, &t);
    let text = format!("{key:?} {keys:?} {:?} {c:?}", keys.mac());
    assert!(!text.contains("ab") && !text.contains("171"), "{text}");
    assert!(text.contains("redacted"));
}

// ---- stream reassembly ----------------------------------------------------

#[test]
fn a_stream_cut_anywhere_gives_back_the_frames() {
    let frames = samples();
    let stream: Vec<u8> = frames.concat();
    for piece in [1, 2, 3, 7, 16, 31, 32, 33, 100, stream.len()] {
        let mut d = Deframer::new();
        let mut got = Vec::new();
        for chunk in stream.chunks(piece) {
            d.push(chunk).expect("a sync stream");
            while let Some(f) = d.next_frame().expect("well-formed") {
                got.push(f.to_vec());
            }
        }
        assert_eq!(got, frames, "pieces of {piece}");
        assert_eq!(d.buffered(), 0);
    }
}

#[test]
fn a_stream_that_goes_bad_is_refused() {
    let mut d = Deframer::new();
    let good = &samples()[6];
    d.push(good).unwrap();
    assert!(d.next_frame().unwrap().is_some());
    assert_eq!(d.push(b"GARBAGE!"), Err(Error::BadMagic(*b"GARB")));
    assert!(d.next_frame().is_err());
}

// ---- properties -----------------------------------------------------------

fn runner(cases: u32) -> TestRunner {
    let config = Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    };
    TestRunner::new_with_rng(config, TestRng::deterministic_rng(RngAlgorithm::ChaCha))
}

#[test]
fn random_bytes_never_panic_the_parsers() {
    runner(3000)
        .run(&proptest::collection::vec(any::<u8>(), 0..400), |bytes| {
            prop_assert!(exercise_parsers(&bytes).is_ok());
            Ok(())
        })
        .unwrap();
    // Random bodies behind a valid header reach the record parsers.
    runner(3000)
        .run(
            &(1u8..=8, proptest::collection::vec(any::<u8>(), 0..300)),
            |(kind, body)| {
                let mut b = header(kind, 0, 1, body.len() as u32, 1, 1);
                b.extend_from_slice(&body);
                b.extend_from_slice(&[0; 8]);
                prop_assert!(exercise_parsers(&b).is_ok());
                Ok(())
            },
        )
        .unwrap();
}

#[test]
fn mutated_valid_frames_never_panic_the_parsers() {
    let samples = samples();
    let n = samples.len();
    let strategy = (
        0..n,
        proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        any::<prop::sample::Index>(),
        any::<bool>(),
    );
    runner(5000)
        .run(&strategy, |(which, edits, cut, truncate)| {
            let mut b = samples[which].clone();
            for (at, v) in edits {
                let i = at.index(b.len());
                b[i] = v;
            }
            if truncate {
                b.truncate(cut.index(b.len() + 1));
            }
            prop_assert!(exercise_parsers(&b).is_ok(), "{:?}", exercise_parsers(&b));
            Ok(())
        })
        .unwrap();
}

fn addr() -> impl Strategy<Value = [u8; 16]> {
    prop_oneof![any::<[u8; 4]>().prop_map(v4_mapped), any::<[u8; 16]>()]
}

fn flow_key() -> impl Strategy<Value = FlowKey> {
    (addr(), addr(), any::<u16>(), any::<u16>(), any::<u8>())
        .prop_map(|(s, d, sp, dp, p)| FlowKey::new(s, d, sp, dp, p))
}

fn state() -> impl Strategy<Value = CallState> {
    (0u8..5).prop_map(|v| CallState::from_u8(v).unwrap_or_default())
}

fn record() -> impl Strategy<Value = Record> {
    let flow = (
        flow_key(),
        any::<bool>(),
        addr(),
        any::<u16>(),
        addr(),
        any::<u16>(),
        any::<u32>(),
        any::<u32>(),
    )
        .prop_map(
            |(key, implied, saddr, sport, real_addr, real_port, age_ms, flags)| {
                let service = if implied {
                    VirtualService {
                        addr: key.dst,
                        port: key.dport,
                        proto: key.proto,
                    }
                } else {
                    VirtualService {
                        addr: saddr,
                        port: sport,
                        proto: key.proto ^ 1,
                    }
                };
                Record::Flow(FlowRecord {
                    key,
                    service,
                    real_addr,
                    real_port,
                    age_ms,
                    flags,
                })
            },
        );
    let call = (
        "[a-z0-9@.-]{0,40}",
        proptest::option::of((any::<u32>(), any::<u32>())),
        proptest::option::of(flow_key()),
        proptest::option::of(addr()),
        state(),
        any::<u64>(),
        any::<u64>(),
    )
        .prop_map(|(id, ch, flow, ivr, state, created_ms, updated_ms)| {
            let channel = ch.map(|(span, channel)| ChannelRef { span, channel });
            Record::Call(CallRecord {
                id,
                channel,
                flow,
                ivr,
                state,
                created_ms,
                updated_ms,
            })
        });
    prop_oneof![
        flow,
        flow_key().prop_map(Record::FlowRemoved),
        call,
        "[a-z0-9]{0,40}".prop_map(Record::CallRemoved),
        (any::<u32>(), any::<u32>(), state(), any::<u64>()).prop_map(
            |(node, channel, state, updated_ms)| Record::Channel(ChannelState {
                node,
                channel,
                state,
                updated_ms
            })
        ),
        (any::<u32>(), any::<u32>())
            .prop_map(|(node, channel)| Record::ChannelRemoved { node, channel }),
        (any::<u64>(), 1u16..500, any::<u16>(), proptest::collection::vec(any::<u8>(), 0..SERVICES_PART_TEXT))
            .prop_map(|(fingerprint, parts, part, text)| Record::ServicesPart(ServicesPart {
                fingerprint,
                part: part % parts,
                parts,
                text
            })),
        (8u8..=255, proptest::collection::vec(any::<u8>(), 0..20))
            .prop_map(|(kind, data)| Record::Unknown { kind, data }),
    ]
}

#[test]
fn any_record_round_trips_in_a_delta() {
    runner(2000)
        .run(
            &(
                proptest::collection::vec(record(), 1..20),
                1u64..u64::MAX / 2,
            ),
            |(records, first)| {
                let r = repr(3, 4, 0, Message::Delta { first, records });
                let bytes = r.to_bytes(&key()).expect("encodes");
                prop_assert_eq!(bytes.len(), r.buffer_len());
                let back = Repr::parse(&Frame::new_checked(&bytes[..]).expect("whole"), &key());
                prop_assert_eq!(back, Ok(r));
                Ok(())
            },
        )
        .unwrap();
}
