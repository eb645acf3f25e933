//! A micro-benchmark of the whole sync path in memory: the active's table
//! and publisher, frames cut from a byte stream, the standby's subscriber
//! and table (`tandem_control::sync`, no sockets). It measures new flows
//! per second through it and bytes per flow on the wire: what the protocol
//! alone costs, next to what [`super::sync`] measures between two
//! `tandemd` in the pair lab. It reads the wall clock (that is what it
//! measures); it lives here, out of the control plane's library, so that
//! the daemon cannot use it.
//!
//! `cargo test --release -p tandem-tests --lib bench::sync_codec -- --ignored --nocapture`
//! runs the one-million-flow measurement.

use std::num::NonZeroU64;
use std::time::{Duration, Instant};

use tandem_control::sync::{
    Deframer, FlowRecord, Publisher, PublisherConfig, Record, SessionError, Store, Subscriber,
    SubscriberConfig, VirtualService,
};
use tandem_dataplane::common::{FLOW_COUNTED, FlowKey, PROTO_UDP, heartbeat::Key};

/// What [`run`] measured.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SyncBench {
    /// New flows sent through.
    pub flows: u64,
    pub elapsed: Duration,
    pub flows_per_sec: f64,
    /// Bytes the publisher sent for them (frame headers and MACs included),
    /// per flow.
    pub bytes_per_flow: f64,
    /// Bytes of one IPv4 flow record (type and length included).
    pub record_bytes: usize,
    /// Delta frames sent.
    pub frames: u64,
    /// Bytes of acknowledgements sent back, per flow.
    pub ack_bytes_per_flow: f64,
    /// Did the standby end with every flow?
    pub complete: bool,
}

fn v4(x: u32) -> [u8; 16] {
    let mut a = [0u8; 16];
    a[10] = 0xff;
    a[11] = 0xff;
    a[12..].copy_from_slice(&x.to_be_bytes());
    a
}

/// The `i`-th new flow: a client in 198.18.0.0/15 to a SIP VIP, scheduled
/// to one of 16 real servers.
pub fn flow(i: u64) -> FlowRecord {
    let vip = v4(0xC613_0001); // 198.19.0.1
    let src = v4(0xC612_0000 | (i & 0x1_ffff) as u32);
    let sport = 1024 + (i >> 17) as u16;
    let key = FlowKey::new(src, vip, sport, 5060, PROTO_UDP);
    FlowRecord {
        key,
        service: VirtualService {
            addr: vip,
            port: 5060,
            proto: PROTO_UDP,
        },
        real_addr: v4(0xC613_0100 + (i % 16) as u32),
        real_port: 5060,
        age_ms: 0,
        flags: FLOW_COUNTED,
    }
}

struct Pair {
    publisher: Publisher,
    subscriber: Subscriber,
    active: Store,
    stream: Deframer,
    applied: u64,
}

impl Pair {
    /// Moves frames both ways until neither side has anything to send.
    fn exchange(&mut self, now: Instant) -> Result<(), SessionError> {
        loop {
            let mut moved = false;
            while let Some(f) = self.publisher.poll_transmit(now, &self.active) {
                self.stream.push(&f)?;
                moved = true;
            }
            while let Some(frame) = self.stream.next_frame()? {
                // The daemon writes these into its kernel table.
                self.applied += self.subscriber.handle_frame(frame, now)?.len() as u64;
            }
            while let Some(ack) = self.subscriber.poll_transmit(now) {
                self.publisher.handle_frame(&ack, now)?;
                moved = true;
            }
            if !moved {
                return Ok(());
            }
        }
    }
}

/// Sends `flows` new flows from an active to a standby in memory, with the
/// default settings, exchanging frames every 256 flows; returns the rate.
pub fn run(flows: u64) -> Result<SyncBench, SessionError> {
    let key = Key::from_bytes(&[0x5a; 16]);
    let pcfg = PublisherConfig::new(1, key, NonZeroU64::MIN);
    let max_delay = pcfg.max_delay;
    let mut p = Pair {
        publisher: Publisher::new(pcfg),
        subscriber: Subscriber::new(SubscriberConfig::new(2, key)),
        active: Store::new(),
        stream: Deframer::new(),
        applied: 0,
    };
    let t0 = Instant::now();
    p.publisher.connected(t0, 0x0123_4567_89ab_cdef);
    p.subscriber.connected(t0, 0xfedc_ba98_7654_3210);
    p.exchange(t0)?;
    let sent0 = p.publisher.stats().bytes_sent;
    let frames0 = p.publisher.stats().frames_sent;
    let acks0 = p.subscriber.stats().bytes_sent;

    let start = Instant::now();
    let mut now = start;
    for i in 0..flows {
        let r = Record::Flow(flow(i));
        p.active.apply(&r, now);
        p.publisher.record(r, now)?;
        if i % 256 == 255 {
            now = Instant::now();
            p.exchange(now)?;
        }
    }
    // The tail leaves at the batching delay.
    p.exchange(Instant::now().max(now + max_delay))?;
    let elapsed = start.elapsed();

    let sent = p.publisher.stats().bytes_sent - sent0;
    let n = flows.max(1) as f64;
    Ok(SyncBench {
        flows,
        elapsed,
        flows_per_sec: flows as f64 / elapsed.as_secs_f64().max(1e-9),
        bytes_per_flow: sent as f64 / n,
        record_bytes: Record::Flow(flow(0)).buffer_len(),
        frames: p.publisher.stats().frames_sent - frames0,
        ack_bytes_per_flow: (p.subscriber.stats().bytes_sent - acks0) as f64 / n,
        complete: p.subscriber.last_applied() == p.publisher.last_seq()
            && p.subscriber.store().flows_len() as u64 == flows
            && p.applied == flows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bench_sends_every_flow_and_reports_its_cost() {
        let r = run(20_000).expect("in-memory sync");
        println!(
            "sync bench: {} flows in {:?}: {:.0} flows/s, {:.2} bytes/flow on the wire \
             ({} per record, {} delta frames), {:.2} ack bytes/flow",
            r.flows,
            r.elapsed,
            r.flows_per_sec,
            r.bytes_per_flow,
            r.record_bytes,
            r.frames,
            r.ack_bytes_per_flow
        );
        assert!(r.complete, "the standby holds every flow: {r:?}");
        assert_eq!(r.record_bytes, 31);
        // 256 records of 31 bytes per 40-byte frame overhead.
        assert!(r.bytes_per_flow < 31.5, "{}", r.bytes_per_flow);
        assert!(r.frames >= 20_000 / 256);
    }

    /// `cargo test --release -p tandem-tests --lib bench::sync_codec -- --ignored --nocapture`
    #[test]
    #[ignore = "a measurement: run in release"]
    fn bench_one_million_flows() {
        let r = run(1_000_000).expect("in-memory sync");
        println!(
            "sync bench: {} flows in {:?}: {:.0} flows/s, {:.2} bytes/flow, {:.2} ack bytes/flow",
            r.flows, r.elapsed, r.flows_per_sec, r.bytes_per_flow, r.ack_bytes_per_flow
        );
        assert!(r.complete);
    }
}
