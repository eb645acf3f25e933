//! Repeated warnings summarised instead of logged each time: the first
//! of a kind is logged, the same ones within [`WINDOW`] after it are
//! counted, and when the window closes the count is logged once ("…
//! (repeated N times)"). A loop that is late every turn, or a GARP that
//! fails on every try, then costs the log two records per window, not
//! thousands.
//!
//! Sans-IO: times are the caller's (`CLOCK_MONOTONIC` ns), nothing is
//! logged here. `handle(key, now, item)` says whether to log `item`;
//! `poll_summary(now)` gives the windows that closed with repeats, each
//! with the last item and how many were held back.

use std::collections::HashMap;

/// How long repeats of a warning are counted before the count is logged.
pub const WINDOW_NS: u64 = 10_000_000_000;

/// Distinct warnings counted at once; beyond that a new one is logged as is.
pub const MAX_OPEN: usize = 1024;

/// What to do with one warning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Log it (the first of its window).
    Log,
    /// Count it: a summary comes when the window closes.
    Held,
}

#[derive(Debug)]
struct Open<T> {
    until_ns: u64,
    held: u64,
    last: Option<T>,
}

/// The open windows, by key.
#[derive(Debug)]
pub struct RepeatLimiter<T> {
    window_ns: u64,
    open: HashMap<String, Open<T>>,
    /// The earliest end of an open window (None: none open).
    next_close: Option<u64>,
}

impl<T> Default for RepeatLimiter<T> {
    fn default() -> Self {
        RepeatLimiter::new(WINDOW_NS)
    }
}

impl<T> RepeatLimiter<T> {
    pub fn new(window_ns: u64) -> RepeatLimiter<T> {
        RepeatLimiter {
            window_ns,
            open: HashMap::new(),
            next_close: None,
        }
    }

    /// Windows open (distinct warnings being counted).
    pub fn open(&self) -> usize {
        self.open.len()
    }

    /// A warning of `key` at `now_ns`: log it, or hold it (`item` is kept
    /// as the last of its window, for the summary).
    pub fn handle(&mut self, key: &str, now_ns: u64, item: T) -> Verdict {
        if let Some(o) = self.open.get_mut(key)
            && now_ns < o.until_ns
        {
            o.held += 1;
            o.last = Some(item);
            return Verdict::Held;
        }
        if self.open.len() >= MAX_OPEN && !self.open.contains_key(key) {
            return Verdict::Log;
        }
        // A window of this key that closed unpolled: its summary stays
        // for poll_summary under a key of its own.
        if let Some(old) = self.open.remove(key)
            && old.held > 0
        {
            self.open.insert(format!("{key}\u{0}closed@{now_ns}"), Open { until_ns: 0, ..old });
        }
        let until_ns = now_ns.saturating_add(self.window_ns);
        self.open.insert(
            key.to_owned(),
            Open {
                until_ns,
                held: 0,
                last: None,
            },
        );
        self.next_close = Some(self.next_close.map_or(until_ns, |c| c.min(until_ns)));
        Verdict::Log
    }

    /// A window closed by `now_ns` with warnings held: its last one and
    /// their count. Call until None.
    pub fn poll_summary(&mut self, now_ns: u64) -> Option<(T, u64)> {
        if self.next_close.is_none_or(|c| now_ns < c) {
            return None;
        }
        loop {
            let key = self
                .open
                .iter()
                .find(|(_, o)| o.until_ns <= now_ns)
                .map(|(k, _)| k.clone());
            let Some(key) = key else {
                self.next_close = self.open.values().map(|o| o.until_ns).min();
                return None;
            };
            let o = self.open.remove(&key)?;
            if let (Some(last), true) = (o.last, o.held > 0) {
                return Some((last, o.held));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn summaries(l: &mut RepeatLimiter<u32>, now: u64) -> Vec<(u32, u64)> {
        std::iter::from_fn(|| l.poll_summary(now)).collect()
    }

    #[test]
    fn repeats_within_the_window_are_counted_and_summarised_once() {
        let mut l = RepeatLimiter::<u32>::new(10 * S);
        assert_eq!(l.handle("late", 0, 1), Verdict::Log);
        for i in 2..=100u32 {
            assert_eq!(l.handle("late", u64::from(i) * S / 20, i), Verdict::Held);
        }
        // Another warning is not held behind the first.
        assert_eq!(l.handle("garp 198.18.0.100", S, 0), Verdict::Log);
        assert!(summaries(&mut l, 9 * S).is_empty(), "window still open");
        assert_eq!(summaries(&mut l, 10 * S), vec![(100, 99)], "the last held one, and the count");
        assert_eq!(l.open(), 1, "the second window stays open");
        assert!(summaries(&mut l, 11 * S).is_empty(), "nothing held in it: no summary");
        assert_eq!(l.open(), 0);
        // After the window: logged again, a new window.
        assert_eq!(l.handle("late", 12 * S, 7), Verdict::Log);
        assert_eq!(l.handle("late", 13 * S, 8), Verdict::Held);
        assert_eq!(summaries(&mut l, 22 * S), vec![(8, 1)]);
    }

    #[test]
    fn a_window_that_closed_unpolled_keeps_its_summary() {
        let mut l = RepeatLimiter::<u32>::new(10 * S);
        assert_eq!(l.handle("x", 0, 1), Verdict::Log);
        assert_eq!(l.handle("x", S, 2), Verdict::Held);
        assert_eq!(l.handle("x", 2 * S, 3), Verdict::Held);
        // The next one comes after the window, before any poll.
        assert_eq!(l.handle("x", 15 * S, 4), Verdict::Log);
        assert_eq!(summaries(&mut l, 15 * S), vec![(3, 2)]);
        assert_eq!(l.handle("x", 16 * S, 5), Verdict::Held);
    }

    #[test]
    fn the_number_of_open_windows_is_bounded() {
        let mut l = RepeatLimiter::<u32>::new(10 * S);
        for i in 0..MAX_OPEN {
            assert_eq!(l.handle(&format!("k{i}"), 0, 0), Verdict::Log);
        }
        assert_eq!(l.handle("one more", 0, 0), Verdict::Log);
        assert_eq!(l.handle("one more", 1, 0), Verdict::Log, "not tracked: logged");
        assert_eq!(l.open(), MAX_OPEN);
    }
}
