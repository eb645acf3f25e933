//! One trial: a steady pair, the probe stream and the ARP watch started,
//! the failure injected at T0, and what followed measured until the probes
//! are answered again or [`RECOVERY_LIMIT`] has passed (`hang`: then the
//! daemon is resumed at T0 + [`HANG_FOR`] and the pair watched for
//! [`COMEBACK_WATCH`]: the old active must yield without a second
//! takeover). An attempt in which the pair changed roles by itself before
//! T0 is discarded and retried (counted, never dropped); the time each
//! attempt was expected steady and the role changes seen in it are
//! summed into the trial.

use std::time::{Duration, Instant};

use anyhow::Result;
use tandem_dataplane::monotonic_ns;

use super::arp::ArpWatch;
use super::daemon::{Daemon, stop_all};
use super::harness::{Bench, verbose};
use super::probes::Probes;
use super::report::ms;
use super::{
    COMEBACK_WATCH, Failure, HANG_FOR, HARNESS_POLL, PRE_WINDOW_NS, RECOVERY_LIMIT, RESUMED_RUN,
    STEADY_RUN, System,
};
use super::tandem::{admin_status, state_of};
use crate::lab::wait::wait_until;
use crate::lab::{self, CLIENT, DIRECTOR_A, DIRECTOR_B, VIP, cmd};
use crate::spawn_udp_responder;

/// What one trial measured (times in ns after T0).
#[derive(Clone, Debug, Default)]
pub struct Trial {
    pub ok: bool,
    /// The new owner took over and the probes were answered again (a
    /// `hang` trial may recover and still fail on what followed SIGCONT).
    pub recovered: bool,
    pub reason: Option<String>,
    pub detect_ns: Option<u64>,
    pub takeover_ns: Option<u64>,
    pub garp_wire_ns: Option<u64>,
    pub gap_ns: u64,
    pub lost: u64,
    /// kill9, hang: MACs that answered an ARP request for the VIP after the
    /// takeover (hang: while the old active was still stopped).
    pub arp_answer_macs: Vec<[u8; 6]>,
    /// hang: the stopped node's MAC answered an ARP request for the VIP
    /// after the takeover, while it was still stopped.
    pub hung_answered_arp: Option<bool>,
    /// hang: the old active yielded after SIGCONT without a second takeover.
    pub returned_quietly: Option<bool>,
    /// hang: what the pair did after SIGCONT, when it was not quiet.
    pub comeback: Option<String>,
    /// Time the pair was expected steady (from its confirmed steady state
    /// to T0, or to the end of a discarded attempt), over all attempts.
    pub steady_ns: u64,
    /// Role changes (a node entering the active role) seen in that time.
    pub role_changes: usize,
    /// Attempts that reached a confirmed steady state (setups observed).
    pub steady_setups: usize,
    /// kill9, tandem: an XDP program still attached to the killed node's links.
    pub xdp_left: Option<bool>,
    /// The client's neighbour entry for the VIP pointed to the new owner at the end.
    pub neigh_on_new_owner: Option<bool>,
    /// Attempts discarded because the pair changed roles by itself before
    /// the failure (what changed, ms after the steady state was confirmed).
    pub unstable: Vec<String>,
}

pub(super) enum Attempt {
    Done(Trial),
    /// Discarded: why, how long it was steady before, role changes seen.
    Unstable(String, u64, usize),
}

/// The line of a node entering the active role.
fn enters_active(sys: System, text: &str) -> bool {
    match sys {
        System::Tandem => text.contains("state ") && text.contains("-> active"),
        _ => text.contains("Entering MASTER STATE"),
    }
}

impl Bench {
    /// One trial of `sys` under `failure`: up to 3 attempts when the pair
    /// changes roles by itself before the failure (counted in
    /// `Trial::unstable`). Errors are harness failures.
    pub(super) fn trial(&mut self, sys: System, failure: Failure, n: usize) -> Result<Trial> {
        let mut unstable = Vec::new();
        let (mut steady_ns, mut role_changes, mut setups) = (0, 0, 0);
        for _ in 0..3 {
            match self.attempt(sys, failure, n)? {
                Attempt::Done(mut t) => {
                    t.unstable = unstable;
                    t.steady_ns += steady_ns;
                    t.role_changes += role_changes;
                    t.steady_setups = setups + 1;
                    return Ok(t);
                }
                Attempt::Unstable(why, s, r) => {
                    unstable.push(why);
                    steady_ns += s;
                    role_changes += r;
                    setups += usize::from(s > 0);
                }
            }
        }
        Ok(Trial {
            steady_ns,
            role_changes,
            steady_setups: setups,
            reason: Some(format!(
                "setup: the pair changed roles by itself in {} attempts",
                unstable.len()
            )),
            unstable,
            ..Trial::default()
        })
    }

    pub(super) fn attempt(&mut self, sys: System, failure: Failure, n: usize) -> Result<Attempt> {
        self.reset(sys)?;
        let mut out = Trial::default();
        let client_ns = self.lab.ns(CLIENT)?.to_string();
        // Start the pair: a alone first, then b; wait for a steady state.
        let mut responders = Vec::new();
        let (mut a, mut b);
        match sys {
            System::Tandem => match self.tandem_pair()? {
                Ok((da, db)) => {
                    a = da;
                    b = db;
                }
                Err((why, da, db)) => {
                    if let Some(da) = &da {
                        self.keep(n, sys, failure, da, db.as_ref());
                    }
                    return Ok(Attempt::Unstable(format!("setup: {why}"), 0, 0));
                }
            },
            System::KeepalivedVrrp | System::KeepalivedBfd => {
                let bfd = sys == System::KeepalivedBfd;
                for d in [DIRECTOR_A, DIRECTOR_B] {
                    responders.push(spawn_udp_responder(self.lab.ns(d)?, d, 5060)?);
                }
                let k0 = Instant::now();
                a = self.start_keepalived(DIRECTOR_A, bfd)?;
                if !wait_until(Duration::from_secs(10), HARNESS_POLL, || {
                    a.has_line("Entering MASTER STATE")
                }) {
                    return self.setup_failed(
                        n,
                        sys,
                        failure,
                        "a did not become MASTER alone",
                        &a,
                        None,
                    );
                }
                b = self.start_keepalived(DIRECTOR_B, bfd)?;
                let mut steady = wait_until(Duration::from_secs(10), HARNESS_POLL, || {
                    b.has_line("Entering BACKUP STATE")
                });
                if bfd {
                    steady = steady
                        && wait_until(Duration::from_secs(10), HARNESS_POLL, || {
                            a.has_line("Tracked BFD instance peer is UP")
                                && b.has_line("Tracked BFD instance peer is UP")
                        });
                }
                // Longer than b's master-down interval (≈ 35 ms): b must
                // have heard a by then and stayed backup.
                std::thread::sleep(Duration::from_millis(100));
                if verbose() {
                    eprintln!(
                        "  keepalived setup {:.0} ms",
                        k0.elapsed().as_secs_f64() * 1e3
                    );
                }
                if !steady
                    || b.has_line("Entering MASTER STATE")
                    || a.count_lines("Entering MASTER STATE") != 1
                {
                    return self.setup_failed(
                        n,
                        sys,
                        failure,
                        "no steady state (a MASTER, b BACKUP)",
                        &a,
                        Some(&b),
                    );
                }
            }
        }
        // From here until T0 neither node may change its role by itself.
        let role_pats: &[&str] = match sys {
            System::Tandem => &["state ", "takeover done", "released VIPs", "GARP re-sent"],
            _ => &["Entering ", "Receive advertisement timeout"],
        };
        let (a_mark, b_mark, marked_ns) = (a.lines().len(), b.lines().len(), monotonic_ns());
        let c = self.lab.iface(CLIENT, "eth0")?.clone();
        let arp = ArpWatch::start(&client_ns, c.ifindex, c.mac)?;
        let probes = Probes::start(&client_ns)?;
        let steady = wait_until(Duration::from_secs(5), HARNESS_POLL, || {
            probes.answered_run(STEADY_RUN, 5_000_000, 0)
        });
        if steady && !self.opts.dwell.is_zero() {
            std::thread::sleep(self.opts.dwell);
        }
        if !steady {
            drop(probes);
            return self.setup_failed(
                n,
                sys,
                failure,
                "probes to the VIP not answered before the failure",
                &a,
                Some(&b),
            );
        }
        let checked_ns = monotonic_ns();
        // tandem's events come twice, on its timeline (stamped with its
        // own CLOCK_MONOTONIC time) and in its log (whose time here is
        // when this harness read it, late on a busy machine): only the
        // timeline's count, so that a change made before the mark and
        // read after it is not taken for one of the steady state.
        let timed = |l: &super::daemon::Line| sys != System::Tandem || l.own_ns.is_some();
        let mut role_changes = 0;
        for (d, mark) in [(&a, a_mark), (&b, b_mark)] {
            role_changes += d
                .lines()
                .iter()
                .skip(mark)
                .filter(|l| timed(l) && l.at() > marked_ns && enters_active(sys, &l.text))
                .count();
        }
        let changed: Vec<String> = [("a", &a, a_mark), ("b", &b, b_mark)]
            .iter()
            .flat_map(|(name, d, mark)| {
                d.lines()
                    .into_iter()
                    .skip(*mark)
                    .filter(|l| timed(l) && l.at() > marked_ns && role_pats.iter().any(|p| l.text.contains(p)))
                    .map(move |l| {
                        format!(
                            "{name} +{:.1} ms: {}",
                            ms(l.at().saturating_sub(marked_ns)),
                            l.text
                        )
                    })
            })
            .collect();
        if !changed.is_empty() {
            drop(probes);
            drop(arp);
            self.keep(n, sys, failure, &a, Some(&b));
            if sys == System::Tandem {
                // The next attempt puts the roles back (switchover) or,
                // if the pair does not settle, restarts it.
                self.tandem = Some((a, b));
            }
            drop(responders);
            return Ok(Attempt::Unstable(
                changed.join("; "),
                checked_ns.saturating_sub(marked_ns),
                role_changes,
            ));
        }
        // Inject the failure.
        let t0 = monotonic_ns();
        out.steady_ns = t0.saturating_sub(marked_ns);
        out.role_changes = role_changes;
        match failure {
            Failure::Hang => a.hang(),
            Failure::Kill9 => a.kill9(),
            Failure::Crash => {
                a.kill9();
                self.set_link(DIRECTOR_A, "eth0", false)?;
                self.set_link(DIRECTOR_A, "hb0", false)?;
            }
            Failure::LinkDown => self.set_link(DIRECTOR_A, "eth0", false)?,
        }
        let (detect_pats, takeover_pats): (&[&str], &[&str]) = match sys {
            System::Tandem => (&["state standby -> "], &["takeover done"]),
            System::KeepalivedVrrp => (
                &[
                    "Receive advertisement timeout",
                    "priority 0 advertisement",
                    "Entering MASTER STATE",
                ],
                &["Sending/queueing gratuitous ARPs"],
            ),
            System::KeepalivedBfd => (
                &[
                    "Entering Down state",
                    "Receive advertisement timeout",
                    "priority 0 advertisement",
                    "Entering MASTER STATE",
                ],
                &["Sending/queueing gratuitous ARPs"],
            ),
        };
        let limit_ns = t0 + RECOVERY_LIMIT.as_nanos() as u64;
        let mut recovered = false;
        while monotonic_ns() < limit_ns {
            if monotonic_ns() > t0 + 60_000_000
                && b.first_after(t0, takeover_pats).is_some()
                && probes.answered_run(RESUMED_RUN, 10_000_000, t0)
            {
                recovered = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        if failure == Failure::Hang {
            if recovered {
                // Who answers ARP for the VIP while the old active is stopped?
                out.arp_answer_macs = arp_answers(&arp)?;
                out.hung_answered_arp = Some(out.arp_answer_macs.contains(&self.mac_a));
            }
            let cont_at = t0 + HANG_FOR.as_nanos() as u64;
            while monotonic_ns() < cont_at {
                std::thread::sleep(Duration::from_millis(2));
            }
            a.resume();
            let cont_ns = monotonic_ns();
            std::thread::sleep(COMEBACK_WATCH);
            let why = self.comeback(sys, &a, &b, t0, cont_ns);
            out.returned_quietly = Some(why.is_none());
            out.comeback = why;
        }
        let end_ns = monotonic_ns();
        let (sent, replied) = probes.stop();
        out.detect_ns = b
            .first_after(t0, detect_pats)
            .map(|l| l.at().saturating_sub(t0));
        out.takeover_ns = b
            .first_after(t0, takeover_pats)
            .map(|l| l.at().saturating_sub(t0));
        if std::env::var_os("TANDEM_BENCH_TRACE").is_some() {
            // The new owner's timeline after the failure, relative to T0.
            for l in b.lines().iter().filter(|l| l.at() >= t0 && l.at() < t0 + 50_000_000) {
                eprintln!("  trace {:?} +{:.3} ms {}", failure, (l.at() - t0) as f64 / 1e6, l.text);
            }
        }
        let garps = arp.seen();
        out.garp_wire_ns = garps
            .iter()
            .filter(|g| g.at_ns >= t0 && g.sha == self.mac_b && g.spa == VIP && g.tpa == VIP)
            .map(|g| g.at_ns - t0)
            .min();
        // Gap: the longest interval between consecutive replies from
        // T0 − 50 ms to the end (the end counts as a reply if none came
        // after T0: a censored gap).
        let from = t0.saturating_sub(PRE_WINDOW_NS);
        let mut times: Vec<u64> = replied
            .iter()
            .copied()
            .filter(|&r| r != 0 && r >= from && r <= end_ns)
            .collect();
        times.sort_unstable();
        if times.last().is_none_or(|&l| l < t0) {
            times.push(end_ns);
        }
        out.gap_ns = times
            .windows(2)
            .map(|w| w[1] - w[0])
            .max()
            .unwrap_or(end_ns - from);
        out.lost = sent
            .iter()
            .zip(&replied)
            .filter(|&(&s, &r)| s >= from && s + 20_000_000 <= end_ns && r == 0)
            .count() as u64;
        if failure == Failure::Kill9 && recovered {
            // What the killed node left behind: does it still answer ARP
            // for the VIP, and (tandem) is an XDP program still attached?
            out.arp_answer_macs = arp_answers(&arp)?;
            if sys == System::Tandem {
                let ns = self.lab.ns(DIRECTOR_A)?.to_string();
                let mut left = false;
                for dev in ["eth0", "hb0"] {
                    let j = cmd::ip_in(&ns, &["-j", "-d", "link", "show", "dev", dev])
                        .unwrap_or_default();
                    left |= j.contains("\"xdp\"");
                }
                out.xdp_left = Some(left);
            }
        }
        if recovered {
            let j = cmd::ip_in(&client_ns, &["-j", "neigh", "show", "to", &VIP.to_string()])
                .unwrap_or_default();
            out.neigh_on_new_owner = Some(j.contains(&lab::format_mac(&self.mac_b)));
        }
        drop(arp);
        out.recovered = recovered && out.takeover_ns.is_some();
        out.ok = out.recovered && out.returned_quietly != Some(false);
        if !out.ok {
            out.reason = Some(if let (true, Some(why)) = (recovered, &out.comeback) {
                format!("after SIGCONT: {why}")
            } else if out.takeover_ns.is_none() {
                format!("no takeover by b within {} ms", RECOVERY_LIMIT.as_millis())
            } else {
                format!(
                    "probes not answered again within {} ms",
                    RECOVERY_LIMIT.as_millis()
                )
            });
            self.keep(n, sys, failure, &a, Some(&b));
        }
        drop(responders);
        if sys == System::Tandem {
            self.tandem = Some((a, b));
        } else {
            // A graceful keepalived stop takes ~1 s; the trial is over and
            // `reset` removes what it leaves, so SIGKILL (by PID) it is.
            let k1 = Instant::now();
            a.kill9();
            b.kill9();
            stop_all(&mut [&mut a, &mut b]);
            if verbose() {
                eprintln!(
                    "  keepalived stop {:.0} ms",
                    k1.elapsed().as_secs_f64() * 1e3
                );
            }
        }
        Ok(Attempt::Done(out))
    }

    /// `hang`: after SIGCONT at `cont_ns`, did the old active (a) yield to
    /// b without a second takeover? `None` if so, else what happened.
    fn comeback(&self, sys: System, a: &Daemon, b: &Daemon, t0: u64, cont_ns: u64) -> Option<String> {
        let b_took = b
            .first_after(t0, &[if sys == System::Tandem { "takeover done" } else { "Sending/queueing gratuitous ARPs" }])
            .map_or(t0, |l| l.at());
        let leave: &[&str] = match sys {
            System::Tandem => &["state active -> "],
            _ => &["Entering BACKUP STATE", "Entering FAULT STATE"],
        };
        if let Some(l) = b.first_after(b_took, leave) {
            return Some(format!(
                "b left the active role +{:.1} ms after SIGCONT ({})",
                ms(l.at().saturating_sub(cont_ns)),
                l.text
            ));
        }
        match sys {
            System::Tandem => {
                let sa = self.dir.join(format!("tandem-{DIRECTOR_A}.sock"));
                let sb = self.dir.join(format!("tandem-{DIRECTOR_B}.sock"));
                let (x, y) = (state_of(&admin_status(&sa)), state_of(&admin_status(&sb)));
                if x.as_deref() != Some("standby") || y.as_deref() != Some("active") {
                    return Some(format!(
                        "{} ms after SIGCONT a is {x:?} and b {y:?}",
                        COMEBACK_WATCH.as_millis()
                    ));
                }
            }
            _ => {
                if a.first_after(cont_ns, &["Entering BACKUP STATE"]).is_none() {
                    return Some(format!(
                        "a did not enter BACKUP within {} ms of SIGCONT",
                        COMEBACK_WATCH.as_millis()
                    ));
                }
            }
        }
        None
    }
}

/// Asks the VIP's owner over ARP from the client and returns the MACs that
/// answered within 30 ms.
fn arp_answers(arp: &ArpWatch) -> Result<Vec<[u8; 6]>> {
    let asked = arp.request_vip()?;
    std::thread::sleep(Duration::from_millis(30));
    let mut macs: Vec<[u8; 6]> = arp
        .seen()
        .iter()
        .filter(|g| g.at_ns >= asked && g.op == 2 && g.spa == VIP && g.tpa == lab::CLIENT_ADDR)
        .map(|g| g.sha)
        .collect();
    macs.sort_unstable();
    macs.dedup();
    Ok(macs)
}
