//! The stateful fuzzing harness of the sync sessions: [`exercise_sessions`]
//! reads arbitrary bytes as a script of events (frames either way, honest,
//! mutated, replayed or made up; records; time passing; cuts and
//! reconnects) and plays it against an honest [`Publisher`] and
//! [`Subscriber`] and against a second publisher that only ever hears an
//! attacker, checking the invariants after every step.
//!
//! The invariants: nothing panics; the publishers' queues and in-flight
//! bytes stay within their bounds; and the attacker's publisher, which
//! gets every byte an attacker on the wire could send (anything made up,
//! and every honest frame recorded, replayed, mutated) but never a live
//! frame of the honest subscriber, sends nothing but handshake Replies and
//! never leaves the handshake. Used by the `sync_session` fuzz target and
//! a unit test; it must stay deterministic (no clock, no randomness).

use std::num::NonZeroU64;
use std::time::{Duration, Instant};

use super::{Publisher, PublisherConfig, PublisherState, Subscriber, SubscriberConfig};
use crate::sync::store::Store;
use crate::sync::wire::{
    CallRecord, CallState, FlowRecord, Greeting, Kind, Message, Nonce, PROTOCOL, Record, Repr,
    Role, SyncKey, VirtualService,
};
use tandem_common::FlowKey;

const KEY: [u8; 16] = [0x42; 16];
const ACTIVE: u32 = 1;
const STANDBY: u32 = 2;
/// Frames recorded for replays, at most.
const RECORDED: usize = 64;
/// Steps of one script, at most.
const STEPS: usize = 4096;

/// Reads a script from fuzz bytes.
struct Script<'a>(&'a [u8]);

impl Script<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(*b)
    }
    fn u16(&mut self) -> u16 {
        let a = self.byte().unwrap_or(0) as u16;
        let b = self.byte().unwrap_or(0) as u16;
        a << 8 | b
    }
    fn bytes(&mut self, n: usize) -> &[u8] {
        let n = n.min(self.0.len());
        let (a, rest) = self.0.split_at(n);
        self.0 = rest;
        a
    }
}

fn record(kind: u8, i: u16) -> Record {
    let mut a = [0u8; 16];
    a[10] = 0xff;
    a[11] = 0xff;
    a[12..].copy_from_slice(&[198, 18, (i >> 8) as u8, i as u8]);
    let key = FlowKey::new(a, a, i, 5060, 17);
    match kind % 4 {
        0 => Record::Flow(FlowRecord {
            key,
            service: VirtualService {
                addr: a,
                port: 5060,
                proto: 17,
            },
            real_addr: a,
            real_port: 5060,
            age_ms: 0,
            flags: 0,
        }),
        1 => Record::FlowRemoved(key),
        2 => Record::Call(CallRecord {
            id: format!("call-{i}@198.18.0.1"),
            channel: None,
            flow: Some(key),
            ivr: None,
            state: CallState::from_u8((i % 5) as u8).unwrap_or_default(),
            created_ms: i as u64,
            updated_ms: i as u64,
        }),
        _ => Record::CallRemoved(format!("call-{i}@198.18.0.1")),
    }
}

struct World {
    now: Instant,
    p: Publisher,
    s: Subscriber,
    source: Store,
    /// The publisher only an attacker talks to.
    attacked: Publisher,
    to_sub: Vec<Vec<u8>>,
    to_pub: Vec<Vec<u8>>,
    /// Every frame seen on the wire, for replays and mutations.
    recorded: Vec<Vec<u8>>,
    nonces: u64,
}

impl World {
    fn new() -> World {
        let stream = NonZeroU64::new(7).unwrap_or(NonZeroU64::MIN);
        let pcfg = PublisherConfig {
            window_records: 512,
            window_bytes: 64 << 10,
            max_in_flight: 16 << 10,
            ..PublisherConfig::new(ACTIVE, KEY, stream)
        };
        World {
            now: Instant::now(),
            p: Publisher::new(pcfg.clone()),
            s: Subscriber::new(SubscriberConfig::new(STANDBY, KEY)),
            source: Store::new(),
            attacked: Publisher::new(pcfg),
            to_sub: Vec::new(),
            to_pub: Vec::new(),
            recorded: Vec::new(),
            nonces: 0,
        }
    }

    /// A nonce never drawn before, in `space` (each machine its own, so
    /// no replay can ever match a live nonce by chance).
    fn nonce(&mut self, space: u8) -> Nonce {
        self.nonces += 1;
        let mut n = Nonce::from(self.nonces).0;
        n[31] = space;
        Nonce::new(n)
    }

    fn remember(&mut self, f: &[u8]) {
        if self.recorded.len() >= RECORDED {
            self.recorded.remove(0);
        }
        self.recorded.push(f.to_vec());
    }

    fn connect(&mut self) {
        let (a, b, c) = (self.nonce(1), self.nonce(2), self.nonce(3));
        self.p.connected(self.now, a);
        self.s.connected(self.now, b);
        self.attacked.connected(self.now, c);
        self.to_sub.clear();
        self.to_pub.clear();
    }

    fn pump(&mut self) {
        for _ in 0..8 {
            while let Some(f) = self.p.poll_transmit(self.now, &self.source) {
                self.remember(&f);
                self.to_sub.push(f);
            }
            while let Some(f) = self.s.poll_transmit(self.now) {
                self.remember(&f);
                self.to_pub.push(f);
            }
        }
    }

    fn tell_attacked(&mut self, f: &[u8]) {
        let _ = self.attacked.handle_frame(f, self.now);
    }

    /// A frame an attacker can make: any kind and body, the MAC under a
    /// key it does not have, or a well-formed handshake frame.
    fn made_up(&mut self, sc: &mut Script<'_>) -> Vec<u8> {
        let kind = sc.byte().unwrap_or(0);
        let node = if kind & 0x80 != 0 {
            STANDBY
        } else {
            kind as u32
        };
        let message = match kind % 3 {
            0 => Message::Init(Greeting {
                role: Role::Subscriber,
                protocol: PROTOCOL,
                nonce: Nonce::from(sc.u16() as u64),
            }),
            1 => {
                let mut proof = [0u8; 32];
                let b = sc.bytes(32);
                proof[..b.len()].copy_from_slice(b);
                Message::Confirm { proof }
            }
            _ => {
                let len = sc.byte().unwrap_or(0) as usize;
                let mut raw = sc.bytes(len).to_vec();
                if let Some(k) = raw.get_mut(5) {
                    *k %= 12;
                }
                return raw;
            }
        };
        let wrong = SyncKey::new([sc.byte().unwrap_or(0); 16]).handshake_keys();
        let repr = Repr {
            node_id: node,
            epoch: 0,
            flags: 0,
            message,
        };
        repr.to_bytes(wrong.mac()).unwrap_or_default()
    }

    fn check(&self) -> Result<(), String> {
        for p in [&self.p, &self.attacked] {
            let c = p.config();
            if p.queue_len() > c.window_records || p.queue_bytes() > c.window_bytes {
                return Err(format!(
                    "queue {} / {} bytes",
                    p.queue_len(),
                    p.queue_bytes()
                ));
            }
            if p.in_flight() > (c.max_in_flight + crate::sync::wire::MAX_FRAME_LEN) as u64 {
                return Err(format!("{} bytes in flight", p.in_flight()));
            }
        }
        match self.attacked.state() {
            PublisherState::Disconnected | PublisherState::Handshake => {}
            s => return Err(format!("the attacked publisher reached {s:?}")),
        }
        if self.attacked.peer().is_some() || self.attacked.stats().handshakes > 0 {
            return Err("an attacker completed a handshake".into());
        }
        Ok(())
    }
}

/// Plays `data` as a script against the sessions; returns the first
/// broken invariant.
#[doc(hidden)]
pub fn exercise_sessions(data: &[u8]) -> Result<(), String> {
    let mut w = World::new();
    let mut sc = Script(data);
    w.connect();
    for _ in 0..STEPS {
        let Some(op) = sc.byte() else {
            break;
        };
        match op % 12 {
            // Honest deliveries, some of them.
            0 => {
                let n = (sc.byte().unwrap_or(1) as usize).min(w.to_sub.len());
                for f in w.to_sub.drain(..n).collect::<Vec<_>>() {
                    let _ = w.s.handle_frame(&f, w.now);
                }
            }
            1 => {
                let n = (sc.byte().unwrap_or(1) as usize).min(w.to_pub.len());
                for f in w.to_pub.drain(..n).collect::<Vec<_>>() {
                    let _ = w.p.handle_frame(&f, w.now);
                }
            }
            // An attacker's frame, to every end.
            2 => {
                let f = w.made_up(&mut sc);
                let _ = w.p.handle_frame(&f, w.now);
                let _ = w.s.handle_frame(&f, w.now);
                w.tell_attacked(&f);
            }
            // A recorded frame replayed, or mutated, to every end.
            3 | 4 => {
                if w.recorded.is_empty() {
                    continue;
                }
                let i = sc.byte().unwrap_or(0) as usize % w.recorded.len();
                let mut f = w.recorded[i].clone();
                if op % 12 == 4 && !f.is_empty() {
                    let at = sc.u16() as usize % f.len();
                    f[at] ^= sc.byte().unwrap_or(1) | 1;
                }
                let _ = w.p.handle_frame(&f, w.now);
                let _ = w.s.handle_frame(&f, w.now);
                w.tell_attacked(&f);
            }
            // Time passes; timers run.
            5 => {
                w.now += Duration::from_millis(sc.byte().unwrap_or(1) as u64 * 8);
                let _ = w.p.handle_timeout(w.now);
                let _ = w.s.handle_timeout(w.now);
                let _ = w.attacked.handle_timeout(w.now);
            }
            // Changes on the active.
            6 | 7 => {
                let n = sc.byte().unwrap_or(1) % 32;
                for _ in 0..n {
                    let r = record(sc.byte().unwrap_or(0), sc.u16());
                    w.source.apply(&r, w.now);
                    let _ = w.p.record(r.clone(), w.now);
                    let _ = w.attacked.record(r, w.now);
                }
            }
            8 => w.connect(),
            9 => {
                w.p.disconnected();
                w.s.disconnected();
                w.to_sub.clear();
                w.to_pub.clear();
            }
            // The attacked publisher's output: Replies only.
            _ => {}
        }
        w.pump();
        while let Some(f) = w.attacked.poll_transmit(w.now, &w.source) {
            if f.get(5).copied() != Some(Kind::Reply as u8) {
                return Err(format!(
                    "the attacked publisher sent a frame of kind {:?}",
                    f.get(5)
                ));
            }
            // Not recorded: relayed to the honest subscriber, its Reply
            // would get a genuine Confirm back (a relay between two key
            // holders is a real session, not a break-in).
        }
        w.check()?;
    }
    Ok(())
}
