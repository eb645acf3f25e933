//! The announcement's schedule on a simulated clock: a driver plays the
//! dataplane and the socket with scripted outcomes.

use std::time::{Duration, Instant};

use super::*;

const MS: Duration = Duration::from_millis(1);

/// Drives `a` from `t0` until it is idle or `until` passes, answering each
/// GARP with `garp(n, at)` (n: the attempt number from 0) and each
/// dataplane update with `own(n)`. Returns the GARP attempts' times
/// (relative to `t0`) and every notice.
fn drive(
    a: &mut Announcement,
    t0: Instant,
    until: Duration,
    mut own: impl FnMut(u32) -> Outcome,
    mut garp: impl FnMut(u32, Duration) -> Outcome,
) -> (Vec<Duration>, Vec<Notice>) {
    let (mut sends, mut notices) = (Vec::new(), Vec::new());
    let (mut n_own, mut n_garp) = (0, 0);
    let mut now = t0;
    for _ in 0..10_000 {
        while a.poll_own(now) || a.poll_send(now) {
            if a.poll_own(now) {
                a.handle_owned(own(n_own), now);
                n_own += 1;
            } else {
                sends.push(now - t0);
                a.handle_sent(garp(n_garp, now - t0), now);
                n_garp += 1;
            }
        }
        notices.extend(std::iter::from_fn(|| a.poll_notice()));
        match a.poll_timeout() {
            Some(at) if at - t0 <= until => {
                assert!(at > now, "a timeout in the past would spin the loop");
                now = at;
            }
            _ => break,
        }
    }
    (sends, notices)
}

fn ok(_: u32) -> Outcome {
    Ok(())
}

#[test]
fn a_clean_takeover_owns_then_sends_the_burst_at_the_interval() {
    let t0 = Instant::now();
    let mut a = Announcement::new();
    a.take(t0, 5, 10 * MS);
    assert!(a.poll_own(t0) && !a.poll_send(t0), "ownership first");
    let (sends, notices) = drive(&mut a, t0, Duration::from_secs(5), ok, |_, _| Ok(()));
    assert_eq!(
        sends,
        vec![Duration::ZERO, 10 * MS, 20 * MS, 30 * MS, 40 * MS]
    );
    assert!(notices.is_empty(), "{notices:?}");
    assert!(a.is_idle());
    assert_eq!(
        a.stats(),
        AnnounceStats {
            garp_sent: 5,
            ..AnnounceStats::default()
        }
    );
}

#[test]
fn a_count_of_zero_still_sends_one_garp() {
    let t0 = Instant::now();
    let mut a = Announcement::new();
    a.take(t0, 0, 10 * MS);
    let (sends, _) = drive(&mut a, t0, Duration::from_secs(1), ok, |_, _| Ok(()));
    assert_eq!(sends, vec![Duration::ZERO]);
}

#[test]
fn enobufs_is_reported_once_retried_and_the_burst_still_completes() {
    let t0 = Instant::now();
    let mut a = Announcement::new();
    a.take(t0, 5, 10 * MS);
    // The queue refuses the first three GARPs.
    let (sends, notices) = drive(&mut a, t0, Duration::from_secs(5), ok, |n, _| {
        if n < 3 { Err(libc::ENOBUFS) } else { Ok(()) }
    });
    // Retries at 10, then 20, then 40 ms of backoff; then the burst at its interval.
    assert_eq!(
        sends,
        vec![
            Duration::ZERO,
            10 * MS,
            30 * MS,
            70 * MS,
            80 * MS,
            90 * MS,
            100 * MS,
            110 * MS
        ]
    );
    assert_eq!(
        notices,
        vec![
            Notice::GarpFailing {
                errno: libc::ENOBUFS,
                retrying: true
            },
            Notice::GarpRecovered { failed: 3 }
        ]
    );
    let s = a.stats();
    assert_eq!(
        (s.garp_sent, s.garp_failed, s.garp_retried, s.garp_dropped),
        (5, 3, 3, 0)
    );
    assert_eq!(s.garp_last_errno, Some(libc::ENOBUFS));
    assert!(a.is_idle());
}

#[test]
fn a_queue_that_stays_full_is_retried_with_bounded_backoff_then_given_up() {
    let t0 = Instant::now();
    let mut a = Announcement::new();
    a.take(t0, 3, 10 * MS);
    let (sends, notices) = drive(&mut a, t0, Duration::from_secs(60), ok, |_, _| {
        Err(libc::ENOBUFS)
    });
    // MAX_RETRIES re-sends of the first GARP, then the rest of the burst
    // (no budget left: each lost once).
    assert_eq!(sends.len() as u32, 1 + MAX_RETRIES + 2);
    let gaps: Vec<Duration> = sends.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        gaps.iter().all(|g| *g >= MIN_BACKOFF && *g <= MAX_BACKOFF),
        "{gaps:?}"
    );
    assert_eq!(gaps[..4], [10 * MS, 20 * MS, 40 * MS, 80 * MS]);
    assert!(
        *sends.last().unwrap() < Duration::from_secs(20),
        "bounded in time: {sends:?}"
    );
    assert_eq!(
        notices,
        vec![
            Notice::GarpFailing {
                errno: libc::ENOBUFS,
                retrying: true
            },
            Notice::GarpGaveUp {
                failed: 1 + MAX_RETRIES + 2
            }
        ]
    );
    let s = a.stats();
    assert_eq!(
        (s.garp_sent, s.garp_retried, s.garp_dropped),
        (0, u64::from(MAX_RETRIES), 3)
    );
    assert!(a.is_idle());
    // The next burst that gets out reports the recovery.
    let t1 = t0 + Duration::from_secs(60);
    a.announce(t1, 1, 10 * MS);
    let (_, notices) = drive(&mut a, t1, Duration::from_secs(1), ok, |_, _| Ok(()));
    assert_eq!(
        notices,
        vec![Notice::GarpRecovered {
            failed: 1 + MAX_RETRIES + 2
        }]
    );
}

#[test]
fn a_lasting_failure_is_not_retried_and_the_burst_goes_on() {
    let t0 = Instant::now();
    let mut a = Announcement::new();
    a.take(t0, 4, 10 * MS);
    let (sends, notices) = drive(&mut a, t0, Duration::from_secs(5), ok, |n, _| {
        if n == 1 { Err(libc::ENETDOWN) } else { Ok(()) }
    });
    assert_eq!(sends, vec![Duration::ZERO, 10 * MS, 20 * MS, 30 * MS]);
    assert_eq!(
        notices,
        vec![
            Notice::GarpFailing {
                errno: libc::ENETDOWN,
                retrying: false
            },
            Notice::GarpRecovered { failed: 1 }
        ]
    );
    let s = a.stats();
    assert_eq!((s.garp_sent, s.garp_dropped, s.garp_retried), (3, 1, 0));
}

#[test]
fn another_errno_in_the_same_run_is_reported_again() {
    let t0 = Instant::now();
    let mut a = Announcement::new();
    a.take(t0, 2, 10 * MS);
    let script = [
        Err(libc::ENOBUFS),
        Err(libc::ENOBUFS),
        Err(libc::EAGAIN),
        Ok(()),
        Ok(()),
    ];
    let (_, notices) = drive(&mut a, t0, Duration::from_secs(5), ok, |n, _| {
        script[n as usize]
    });
    assert_eq!(
        notices,
        vec![
            Notice::GarpFailing {
                errno: libc::ENOBUFS,
                retrying: true
            },
            Notice::GarpFailing {
                errno: libc::EAGAIN,
                retrying: true
            },
            Notice::GarpRecovered { failed: 3 }
        ]
    );
}

#[test]
fn back_to_back_bursts_still_wait_between_retries() {
    let t0 = Instant::now();
    let mut a = Announcement::new();
    a.take(t0, 3, Duration::ZERO);
    let (sends, _) = drive(&mut a, t0, Duration::from_secs(5), ok, |n, _| {
        if n == 0 { Err(libc::ENOBUFS) } else { Ok(()) }
    });
    assert_eq!(
        sends,
        vec![Duration::ZERO, MIN_BACKOFF, MIN_BACKOFF, MIN_BACKOFF]
    );
}

#[test]
fn a_refused_ownership_is_retried_without_holding_the_garps() {
    let t0 = Instant::now();
    let mut a = Announcement::new();
    a.take(t0, 3, 10 * MS);
    let mut owns = Vec::new();
    let (sends, notices) = drive(
        &mut a,
        t0,
        Duration::from_secs(5),
        |n| {
            owns.push(n);
            if n < 2 { Err(libc::ENOMEM) } else { Ok(()) }
        },
        |_, _| Ok(()),
    );
    assert_eq!(owns, vec![0, 1, 2]);
    // The GARPs keep their schedule around the retries.
    assert_eq!(sends, vec![Duration::ZERO, 10 * MS, 20 * MS]);
    assert_eq!(
        notices,
        vec![
            Notice::OwnFailing {
                errno: libc::ENOMEM,
                retrying: true
            },
            Notice::OwnRecovered { failed: 2 }
        ]
    );
    assert_eq!(a.stats().own_failed, 2);
    assert!(a.is_idle());
}

#[test]
fn stop_ends_the_burst_and_the_retries() {
    let t0 = Instant::now();
    let mut a = Announcement::new();
    a.take(t0, 5, 10 * MS);
    a.handle_owned(Err(libc::ENOMEM), t0);
    assert!(a.poll_timeout().is_some());
    a.stop();
    assert!(a.is_idle());
    assert_eq!(a.poll_timeout(), None);
    assert!(!a.poll_own(t0 + Duration::from_secs(9)) && !a.poll_send(t0 + Duration::from_secs(9)));
}

#[test]
fn a_heal_burst_sends_garps_without_touching_ownership() {
    let t0 = Instant::now();
    let mut a = Announcement::new();
    a.announce(t0, 2, 10 * MS);
    assert!(!a.poll_own(t0));
    let (sends, _) = drive(
        &mut a,
        t0,
        Duration::from_secs(1),
        |_| panic!("no ownership update"),
        |_, _| Ok(()),
    );
    assert_eq!(sends, vec![Duration::ZERO, 10 * MS]);
}

#[test]
fn transient_errnos() {
    assert!(
        is_transient(libc::ENOBUFS) && is_transient(libc::EAGAIN) && is_transient(libc::ENOMEM)
    );
    assert!(
        !is_transient(libc::ENETDOWN) && !is_transient(libc::ENXIO) && !is_transient(libc::EPERM)
    );
}
