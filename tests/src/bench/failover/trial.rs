//! One trial: a steady pair, the probe stream and the ARP watch started,
//! the failure injected at T0, and what followed measured until the probes
//! are answered again or [`RECOVERY_LIMIT`] has passed. An attempt in
//! which the pair changed roles by itself before T0 is discarded and
//! retried (counted, never dropped).

use std::time::{Duration, Instant};

use anyhow::Result;
use tandem_dataplane::monotonic_ns;

use super::arp::ArpWatch;
use super::daemon::stop_all;
use super::harness::{Bench, verbose};
use super::probes::Probes;
use super::report::ms;
use super::{
    Failure, HARNESS_POLL, PRE_WINDOW_NS, RECOVERY_LIMIT, RESUMED_RUN, STEADY_RUN, System,
};
use crate::lab::wait::wait_until;
use crate::lab::{self, CLIENT, DIRECTOR_A, DIRECTOR_B, VIP, cmd};
use crate::spawn_udp_responder;

/// What one trial measured (times in ns after T0).
#[derive(Clone, Debug, Default)]
pub struct Trial {
    pub ok: bool,
    pub reason: Option<String>,
    pub detect_ns: Option<u64>,
    pub takeover_ns: Option<u64>,
    pub garp_wire_ns: Option<u64>,
    pub gap_ns: u64,
    pub lost: u64,
    /// kill9: MACs that answered an ARP request for the VIP after the takeover.
    pub arp_answer_macs: Vec<[u8; 6]>,
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
    Unstable(String),
}

impl Bench {
    /// One trial of `sys` under `failure`: up to 3 attempts when the pair
    /// changes roles by itself before the failure (counted in
    /// `Trial::unstable`). Errors are harness failures.
    pub(super) fn trial(&mut self, sys: System, failure: Failure, n: usize) -> Result<Trial> {
        let mut unstable = Vec::new();
        for _ in 0..3 {
            match self.attempt(sys, failure, n)? {
                Attempt::Done(mut t) => {
                    t.unstable = unstable;
                    return Ok(t);
                }
                Attempt::Unstable(why) => unstable.push(why),
            }
        }
        Ok(Trial {
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
                    return Ok(Attempt::Unstable(format!("setup: {why}")));
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
        if !wait_until(Duration::from_secs(5), HARNESS_POLL, || {
            probes.answered_run(STEADY_RUN, 5_000_000, 0)
        }) {
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
        let changed: Vec<String> = [("a", &a, a_mark), ("b", &b, b_mark)]
            .iter()
            .flat_map(|(name, d, mark)| {
                d.lines()
                    .into_iter()
                    .skip(*mark)
                    .filter(|l| l.at() > marked_ns && role_pats.iter().any(|p| l.text.contains(p)))
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
            return Ok(Attempt::Unstable(changed.join("; ")));
        }
        // Inject the failure.
        let t0 = monotonic_ns();
        match failure {
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
            let asked = arp.request_vip()?;
            std::thread::sleep(Duration::from_millis(30));
            let mut macs: Vec<[u8; 6]> = arp
                .seen()
                .iter()
                .filter(|g| {
                    g.at_ns >= asked && g.op == 2 && g.spa == VIP && g.tpa == lab::CLIENT_ADDR
                })
                .map(|g| g.sha)
                .collect();
            macs.sort_unstable();
            macs.dedup();
            out.arp_answer_macs = macs;
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
        out.ok = recovered && out.takeover_ns.is_some();
        if !out.ok {
            out.reason = Some(if out.takeover_ns.is_none() {
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

}
