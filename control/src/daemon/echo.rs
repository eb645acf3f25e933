//! The daemon's side of the echo (BFD echo, RFC 5880 §6.4), with
//! `heartbeat.echo` on: one echo request per heartbeat path per interval,
//! sent next to the heartbeats ([`Daemon::send_echoes`]) and told to the
//! pair ([`PairEvent::EchoSent`]); the kernel's record of the echoes that
//! came back, read every turn and fed for each newer sequence
//! ([`Daemon::refresh_echoes`], [`PairEvent::EchoReturned`]). The peer's
//! XDP reflects them while its daemon is alive and this node's XDP takes
//! them back, so what the pair learns is the peer's dataplane and dead-man
//! switch at work, not its daemon's timing.
//!
//! What an echo's return or loss means is the pair machine's decision;
//! this module only feeds it. Sending never blocks (the heartbeat sockets
//! are non-blocking): a failure is counted and logged once per episode,
//! naming the path.

use std::{collections::HashSet, time::Instant};

use super::{Daemon, mono_ns};
use crate::pair::Event as PairEvent;

/// Echo bookkeeping (no decisions).
#[derive(Debug, Default)]
pub(super) struct Echoes {
    /// The last sequence sent (one counter over all paths: increasing on
    /// each).
    seq: u64,
    /// Per path number: the newest returned sequence fed to the pair.
    fed: Vec<u64>,
    /// Paths whose sends are failing (an episode logged once).
    failing: HashSet<u8>,
    /// Echo sends that failed, since start.
    pub(super) send_failed: u64,
}

impl Echoes {
    /// Where this process's echoes start, given the kernel's records of
    /// the echoes that came back (`returns`: `(path, seq)`, adopted from a
    /// predecessor's pinned tables or zero) and the monotonic clock in µs.
    /// The kernel takes back only a sequence newer than its record, so a
    /// successor counting from 1 again would have every echo refused as
    /// stale until it passed its predecessor's count — for as long as that
    /// one ran — while the record it adopted fed the pair one old return
    /// and left the path Alive: a standby that could not see its peer die.
    /// Starting at the clock as well keeps a successor ahead of a
    /// predecessor that is still sending (at most a few echoes per ms,
    /// against 1,000 µs). The records are taken as fed, not as returns.
    pub(super) fn seeded(returns: &[(u8, u64)], mono_us: u64) -> Echoes {
        let mut fed = Vec::new();
        for &(path, seq) in returns {
            let i = usize::from(path);
            if fed.len() <= i {
                fed.resize(i + 1, 0);
            }
            fed[i] = fed[i].max(seq);
        }
        let seq = fed.iter().copied().max().unwrap_or(0).max(mono_us);
        Echoes { seq, fed, ..Echoes::default() }
    }
}

impl Daemon {
    /// Starts the echo sequence above the kernel's records
    /// ([`Echoes::seeded`]). Called once, before the first echo.
    pub(super) fn seed_echoes(&mut self) -> anyhow::Result<()> {
        let returns = self.dp.echo_returns().map_err(|e| anyhow::anyhow!("echo: reading the kernel's returns at start: {e}"))?;
        let returns: Vec<(u8, u64)> = returns.iter().map(|r| (r.path, r.seq)).collect();
        self.echoes = Echoes::seeded(&returns, mono_ns() / 1000);
        Ok(())
    }

    /// Sends one echo on every path and tells the pair (with echo on).
    /// Called next to the heartbeats, also from inside long work: the
    /// pair's actions are carried out by the loop's turn, not here.
    pub(super) fn send_echoes(&mut self) {
        if !self.cfg.heartbeat.echo {
            return;
        }
        let (state, epoch, priority) = (self.pair.state(), self.pair.epoch(), self.pair.priority());
        for path in self.sender.path_indices() {
            self.echoes.seq += 1;
            let seq = self.echoes.seq;
            match self.sender.send_echo(path, seq, state, epoch, priority, mono_ns()) {
                Ok(()) => {
                    if self.echoes.failing.remove(&path) {
                        tracing::info!("echo on path {}: sending again", self.path_name(path));
                    }
                    self.pair.handle(PairEvent::EchoSent { path, seq }, Instant::now());
                }
                Err(e) => {
                    self.echoes.send_failed += 1;
                    if self.echoes.failing.insert(path) {
                        tracing::warn!("echo on path {}: sending failed: {e}", self.path_name(path));
                    }
                }
            }
        }
    }

    /// Feeds the pair every path's newest returned echo that it has not
    /// seen, at the time the kernel took it back.
    pub(super) fn refresh_echoes(&mut self) {
        if !self.cfg.heartbeat.echo {
            return;
        }
        let returns = match self.dp.echo_returns() {
            Ok(r) => r,
            Err(e) => {
                tracing::error!("echo: reading the returns: {e}");
                return;
            }
        };
        let now = Instant::now();
        for r in returns {
            let i = usize::from(r.path);
            if self.echoes.fed.len() <= i {
                self.echoes.fed.resize(i + 1, 0);
            }
            if r.seq > self.echoes.fed[i] {
                self.echoes.fed[i] = r.seq;
                let at = crate::clock::instant_of(r.at_ns).min(now);
                self.pair.handle(PairEvent::EchoReturned { path: r.path, seq: r.seq }, at);
            }
        }
    }

    /// Per path, for status: the pair's echo state and the time since the
    /// kernel took the path's newest echo back (ms). Empty with echo off.
    pub(super) fn echo_status(&self, now: Instant) -> Vec<(&'static str, Option<u64>)> {
        if !self.cfg.heartbeat.echo {
            return Vec::new();
        }
        let returns = self.dp.echo_returns().unwrap_or_default();
        let now_ns = mono_ns();
        self.pair
            .path_liveness(now)
            .iter()
            .map(|p| {
                let last = returns.iter().find(|r| r.path == p.path).map(|r| now_ns.saturating_sub(r.at_ns) / 1_000_000);
                (p.echo.name(), last)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::Echoes;

    #[test]
    fn a_successor_starts_above_its_predecessors_returns_and_does_not_feed_them() {
        // The predecessor ran long: its records are far ahead of the clock.
        let e = Echoes::seeded(&[(0, 9_000_000), (1, 8_999_999)], 1_000);
        assert_eq!(e.seq, 9_000_000, "the next echo (seq + 1) is newer than every record");
        assert_eq!(e.fed, [9_000_000, 8_999_999], "the adopted records are not returns of this process");
        // A fresh start: zero records, the clock leads.
        let e = Echoes::seeded(&[(0, 0), (1, 0)], 5_000_000);
        assert_eq!(e.seq, 5_000_000);
        assert_eq!(e.fed, [0, 0]);
        // No records at all (echo off): the clock.
        assert_eq!(Echoes::seeded(&[], 7).seq, 7);
    }
}
