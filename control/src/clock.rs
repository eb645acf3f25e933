//! One conversion between the kernel's `CLOCK_MONOTONIC` nanoseconds (the
//! stamps XDP writes with `bpf_ktime_get_ns`, the io_uring absolute
//! timeouts, the timeline) and `std::time::Instant` (what the sans-IO
//! machines take). On Linux both are the same clock; `Instant` is opaque,
//! so the conversion goes through one anchor — an `Instant` and the
//! clock's reading taken together once per process — and converting the
//! same stamp twice gives the same `Instant`.
//!
//! It reads the clock and does arithmetic; nothing else.

use std::{
    sync::OnceLock,
    time::{Duration, Instant},
};

use nix::time::{ClockId, clock_gettime};

/// `CLOCK_MONOTONIC` now, in nanoseconds.
pub fn now_ns() -> u64 {
    // CLOCK_MONOTONIC cannot fail on Linux; 0 would only make stamps look old.
    clock_gettime(ClockId::CLOCK_MONOTONIC).map_or(0, |ts| {
        ts.tv_sec() as u64 * 1_000_000_000 + ts.tv_nsec() as u64
    })
}

fn anchor() -> (Instant, u64) {
    static ANCHOR: OnceLock<(Instant, u64)> = OnceLock::new();
    *ANCHOR.get_or_init(|| (Instant::now(), now_ns()))
}

/// The `Instant` of a `CLOCK_MONOTONIC` stamp.
pub fn instant_of(ns: u64) -> Instant {
    let (i, n) = anchor();
    if ns >= n {
        i + Duration::from_nanos(ns - n)
    } else {
        i.checked_sub(Duration::from_nanos(n - ns)).unwrap_or(i)
    }
}

/// The `CLOCK_MONOTONIC` stamp of an `Instant`.
pub fn ns_of(at: Instant) -> u64 {
    let (i, n) = anchor();
    match at.checked_duration_since(i) {
        Some(ahead) => n.saturating_add(ahead.as_nanos() as u64),
        None => n.saturating_sub(i.duration_since(at).as_nanos() as u64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_round_trip_and_agree_with_the_clock() {
        let ns = now_ns();
        let at = instant_of(ns);
        assert_eq!(
            instant_of(ns),
            at,
            "the same stamp converts to the same Instant"
        );
        assert!(ns_of(at).abs_diff(ns) <= 1, "round trip");
        let later = Instant::now() + Duration::from_millis(5);
        let diff = ns_of(later) as i128 - now_ns() as i128;
        assert!(
            (4_000_000..6_000_000).contains(&diff),
            "5 ms ahead: {diff} ns"
        );
        let past = instant_of(ns.saturating_sub(2_000_000));
        assert!(at.duration_since(past) >= Duration::from_micros(1_999));
    }
}
