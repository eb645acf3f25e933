//! The message in literal bytes both ways, the MAC against the reference
//! vectors, refusals, and the admission rule case by case (the property
//! test is in the dataplane's `heartbeat_window` test).

use super::*;
use crate::node::NodeState;

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
    // The word form agrees with the byte form on the 56 bytes it covers.
    let m: [u8; MAC_COVERS] = core::array::from_fn(|i| (i * 7) as u8);
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
        boot_id: 0xa1a2_a3a4_a5a6_a7a8,
        seq: 0x1122_3344_5566_7788,
        sent_ns: 1_000_000_000,
        active_channels: 30,
        capacity: 120,
        restart_grace_ms: 0,
    }
}

const BYTES: [u8; MAC_COVERS] = [
    b'T', b'N', b'D', b'M', 2, 1, 3, 200, // magic, version, kind, state, priority
    0x01, 0x02, 0x03, 0x04, 1, 0, 0, 0, // node id, path, flags, restart grace
    0, 0, 0, 0, 0, 0, 0, 7, // epoch
    0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, // boot id
    0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, // seq
    0, 0, 0, 0, 0x3b, 0x9a, 0xca, 0x00, // sent ns
    0, 0, 0, 30, 0, 0, 0, 120, // active, capacity
];

#[test]
fn emit_writes_the_literal_bytes_and_parse_reads_them() {
    let key = Key::from_bytes(&KEY);
    let mut buf = [0u8; LEN];
    sample().emit(&mut Packet::new_unchecked(&mut buf[..]), &key);
    assert_eq!(&buf[..MAC_COVERS], &BYTES[..]);
    assert_eq!(&buf[MAC_COVERS..], &siphash24(&key, &BYTES).to_le_bytes());
    let p = Packet::new_checked(&buf[..]).unwrap();
    assert_eq!(Repr::parse(&p, &key), Ok(sample()));
}

#[test]
fn a_restarting_heartbeat_carries_its_flag_and_grace_under_the_mac() {
    let key = Key::from_bytes(&KEY);
    let mut buf = [0u8; LEN];
    let r = Repr { restart_grace_ms: 0x1388, ..sample() };
    r.emit(&mut Packet::new_unchecked(&mut buf[..]), &key);
    assert_eq!(&buf[12..16], &[1, FLAG_RESTARTING, 0x13, 0x88]);
    let p = Packet::new_checked(&buf[..]).unwrap();
    assert_eq!(Repr::parse(&p, &key), Ok(r));
    // The flag is covered by the MAC: cleared in transit, it is refused.
    let mut forged = buf;
    forged[13] = 0;
    assert_eq!(Repr::parse(&Packet::new_checked(&forged[..]).unwrap(), &key), Err(Error::BadMac));
    // A grace without the flag is no restart.
    let mut plain = [0u8; LEN];
    sample().emit(&mut Packet::new_unchecked(&mut plain[..]), &key);
    let mut p = Packet::new_unchecked(&mut plain[..]);
    p.set_restart_grace_ms(500);
    p.fill_mac(&key);
    assert_eq!(Repr::parse(&Packet::new_checked(&plain[..]).unwrap(), &key).map(|r| r.restart_grace_ms), Ok(0));
}

#[test]
fn forged_truncated_and_foreign_heartbeats_are_refused() {
    let key = Key::from_bytes(&KEY);
    let mut buf = [0u8; LEN];
    sample().emit(&mut Packet::new_unchecked(&mut buf[..]), &key);
    for cut in 0..LEN {
        assert_eq!(Packet::new_checked(&buf[..cut]).err(), Some(Error::Truncated));
    }
    // Every covered byte is under the MAC: the boot id's and the last
    // word's (capacity) included.
    for i in [field::SEQ.start + 3, field::BOOT_ID.start, field::CAPACITY.end - 1] {
        let mut forged = buf;
        forged[i] ^= 1;
        assert_eq!(Repr::parse(&Packet::new_unchecked(&forged[..]), &key), Err(Error::BadMac), "byte {i}");
    }
    let other = Key::from_bytes(&[9; 16]);
    assert_eq!(Repr::parse(&Packet::new_unchecked(&buf[..]), &other), Err(Error::BadMac));
    let mut magic = buf;
    magic[0] = b'X';
    assert_eq!(Repr::parse(&Packet::new_unchecked(&magic[..]), &key), Err(Error::BadMagic));
    let mut v1 = buf;
    v1[field::VERSION] = 1;
    assert_eq!(Repr::parse(&Packet::new_unchecked(&v1[..]), &key), Err(Error::BadMagic), "version 1 is refused");
    let mut state = buf;
    state[6] = 99;
    Packet::new_unchecked(&mut state[..]).fill_mac(&key);
    assert_eq!(Repr::parse(&Packet::new_unchecked(&state[..]), &key), Err(Error::BadField));
}

#[test]
fn a_key_debug_prints_no_key_bytes() {
    let key = Key::from_bytes(&[0xab; 16]);
    let mut out = [0u8; 64];
    let mut w = Buf(&mut out, 0);
    core::fmt::write(&mut w, format_args!("{key:?}")).unwrap();
    let n = w.1;
    assert_eq!(&out[..n], b"Key(..)");
}

struct Buf<'a>(&'a mut [u8], usize);

impl core::fmt::Write for Buf<'_> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let end = self.1 + s.len();
        self.0.get_mut(self.1..end).ok_or(core::fmt::Error)?.copy_from_slice(s.as_bytes());
        self.1 = end;
        Ok(())
    }
}

mod admission {
    use super::super::window::*;

    const MS: u64 = 1_000_000;
    const T0: u64 = 1_000 * MS;
    const A: u64 = 0xaaaa;
    const B: u64 = 0xbbbb;
    const C: u64 = 0xcccc;

    fn at(boot: u64, prev_boot: u64, seq: u64, seen_ns: u64) -> Window {
        Window { boot, prev_boot, seq, seen_ns }
    }

    #[test]
    fn first_contact_takes_anything() {
        assert_eq!(admit(None, A, 1, T0, 0), Ok(at(A, 0, 1, T0)));
        assert_eq!(admit(None, A, u64::MAX, T0, 0), Ok(at(A, 0, u64::MAX, T0)));
    }

    #[test]
    fn same_boot_takes_the_next_sequences_and_refuses_replays() {
        let w = at(A, 0, 100, T0);
        assert_eq!(admit(Some(&w), A, 101, T0 + MS, 0), Ok(at(A, 0, 101, T0 + MS)));
        assert_eq!(admit(Some(&w), A, 100 + WINDOW, T0, 0), Ok(at(A, 0, 100 + WINDOW, T0)));
        assert_eq!(admit(Some(&w), A, 100, T0 + MS, 0), Err(Reject::Replay));
        assert_eq!(admit(Some(&w), A, 3, T0 + MS, 0), Err(Reject::Replay));
    }

    #[test]
    fn a_jump_beyond_the_window_is_refused_and_moves_nothing() {
        let w = at(A, 0, 100, T0);
        assert_eq!(admit(Some(&w), A, u64::MAX, T0 + MS, 0), Err(Reject::SeqJump));
        assert_eq!(admit(Some(&w), A, 101 + WINDOW, T0, 0), Err(Reject::SeqJump));
        // The caller keeps `w`: the sender's next heartbeat is taken.
        assert_eq!(admit(Some(&w), A, 101, T0 + 2 * MS, 0), Ok(at(A, 0, 101, T0 + 2 * MS)));
    }

    #[test]
    fn the_window_grows_with_silence() {
        let w = at(A, 0, 100, T0);
        // 1 s of silence: 10,000 more.
        let s = 1_000 * MS;
        let edge = 100 + WINDOW + s / NS_PER_EXTRA_SEQ;
        assert_eq!(admit(Some(&w), A, edge, T0 + s, 0).map(|w| w.seq), Ok(edge));
        assert_eq!(admit(Some(&w), A, edge + 1, T0 + s, 0), Err(Reject::SeqJump));
    }

    #[test]
    fn a_restarted_sender_is_heard_at_once() {
        let w = at(A, 0, 1_000_000, T0);
        assert_eq!(admit(Some(&w), B, 1, T0 + MS, 0), Ok(at(B, A, 1, T0 + MS)));
        assert_eq!(admit(Some(&w), B, RESTART_SEQS, T0 + MS, 0).map(|w| w.boot), Ok(B));
        // Its sequence does not continue the old boot's: 1 after 1,000,000.
        let b = at(B, A, 1, T0 + MS);
        assert_eq!(admit(Some(&b), B, 2, T0 + 2 * MS, 0).map(|w| w.seq), Ok(2));
    }

    #[test]
    fn the_replaced_boot_and_an_advanced_new_boot_are_refused() {
        let b = at(B, A, 5, T0);
        // The boot it replaced, even at a low sequence.
        assert_eq!(admit(Some(&b), A, 1, T0 + MS, 0), Err(Reject::StaleBoot));
        assert_eq!(admit(Some(&b), A, 1_000_001, T0 + MS, 0), Err(Reject::StaleBoot));
        // A new boot past what a restart can have counted to.
        assert_eq!(admit(Some(&b), C, RESTART_SEQS + 1, T0 + MS, 0), Err(Reject::StaleBoot));
        // A third boot starting from 1 is a restart.
        assert_eq!(admit(Some(&b), C, 1, T0 + MS, 0), Ok(at(C, B, 1, T0 + MS)));
    }

    #[test]
    fn a_new_boot_waits_for_the_current_one_to_miss_its_restart_gap() {
        const GAP: u64 = 2 * MS;
        let w = at(A, 0, 500, T0);
        // A's heartbeats still arrive: a replayed boot start is refused…
        assert_eq!(admit(Some(&w), B, 1, T0 + GAP - 1, GAP), Err(Reject::StaleBoot));
        // …and refusing it moved nothing: A goes on being heard.
        assert_eq!(admit(Some(&w), A, 501, T0 + MS, GAP).map(|w| w.seq), Ok(501));
        // A restarted sender is silent longer than the gap: taken.
        assert_eq!(admit(Some(&w), B, 1, T0 + GAP, GAP), Ok(at(B, A, 1, T0 + GAP)));
        // The gap does not slow the same boot down.
        assert_eq!(admit(Some(&w), A, 501, T0 + 1, GAP).map(|w| w.seq), Ok(501));
    }

    #[test]
    fn a_stale_record_binds_nothing() {
        let b = at(B, A, 5, T0);
        let later = T0 + STALE_NS;
        assert_eq!(admit(Some(&b), C, 9_999_999, later, 0), Ok(at(C, B, 9_999_999, later)));
        assert_eq!(admit(Some(&b), A, 7, later, 0), Ok(at(A, B, 7, later)));
        assert_eq!(admit(Some(&b), B, 3, later, 0), Ok(at(B, A, 3, later)), "same boot, lower: after 5 s, taken");
        assert_eq!(admit(Some(&b), C, 9_999_999, later - 1, 0), Err(Reject::StaleBoot));
    }

    #[test]
    fn sums_saturate_at_the_top_of_the_range() {
        let w = at(A, 0, u64::MAX - 1, 0);
        assert_eq!(admit(Some(&w), A, u64::MAX, u64::MAX - 1, 0).map(|w| w.seq), Ok(u64::MAX));
        let top = at(A, 0, u64::MAX, 10);
        assert_eq!(admit(Some(&top), A, u64::MAX, 11, 0), Err(Reject::Replay));
        // A clock read before the record's (another CPU): no silence.
        assert_eq!(admit(Some(&at(A, 0, 1, 50)), A, 2, 10, 0).map(|w| w.seq), Ok(2));
    }
}
