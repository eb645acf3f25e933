//! Bounded polling: every wait in the lab, the tests and the benchmarks
//! ends, by a condition or by its timeout; and sleeping until an absolute
//! CLOCK_MONOTONIC instant (paced loops). Owns nothing else.

use std::time::{Duration, Instant};

/// Polls `f` every `every` until it holds (true) or `timeout` has passed
/// (false). `f` is tried at least once, and once more at the deadline.
pub fn wait_until(timeout: Duration, every: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(every);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_at_once_or_times_out() {
        assert!(wait_until(Duration::ZERO, Duration::from_millis(1), || true));
        let t = Instant::now();
        let mut tries = 0;
        assert!(!wait_until(Duration::from_millis(20), Duration::from_millis(5), || {
            tries += 1;
            false
        }));
        assert!(t.elapsed() >= Duration::from_millis(20));
        assert!(tries >= 2, "tried {tries} times");
    }

    #[test]
    fn stops_polling_once_it_holds() {
        let mut n = 0;
        assert!(wait_until(Duration::from_secs(5), Duration::from_millis(1), || {
            n += 1;
            n == 3
        }));
        assert_eq!(n, 3);
    }
}

/// Sleeps until `t_ns` on CLOCK_MONOTONIC (absolute: wake-up latency does
/// not accumulate into a paced schedule).
pub fn sleep_until_ns(t_ns: u64) {
    let ts = libc::timespec {
        tv_sec: (t_ns / 1_000_000_000) as libc::time_t,
        tv_nsec: (t_ns % 1_000_000_000) as libc::c_long,
    };
    // SAFETY: ts is valid; a null remainder is allowed with TIMER_ABSTIME.
    unsafe { libc::clock_nanosleep(libc::CLOCK_MONOTONIC, libc::TIMER_ABSTIME, &ts, std::ptr::null_mut()) };
}
