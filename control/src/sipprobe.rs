//! SIP OPTIONS health probes of the real servers, as Kamailio's dispatcher
//! and OpenSIPS's load balancer do: an IVR whose SIP stack stops answering
//! is taken out of scheduling although its heartbeat goes on (a hung
//! application on a live host).
//!
//! [`ProbeSet`] is the sans-IO part: which server to probe when, what a
//! reply or a timeout means, when a server changes state. The daemon owns
//! the I/O: it writes the requests [`ProbeSet::due`] returns and feeds back
//! what arrives ([`ProbeSet::reply`]) and the time ([`ProbeSet::expire`]).
//!
//! Method kinds: getters ([`ProbeSet::targets`], [`ProbeSet::is_up`],
//! [`ProbeSet::is_empty`]); events with their time ([`ProbeSet::reply`],
//! [`ProbeSet::expire`]); what it wants done ([`ProbeSet::due`]: the
//! requests to send now, [`ProbeSet::poll_timeout`]).
//!
//! **Addressing.** In NAT mode the request goes to the real server's own
//! address and port over a plain UDP socket. In DR mode the real server's
//! SIP stack listens on the VIP (on its loopback), so the request is an
//! Ethernet frame to the real server's MAC with the VIP as destination
//! address — what the dispatcher itself does — from the director's service
//! address and the probe socket's port, where the reply comes back.
//!
//! **Verdict.** Any SIP response from 100 to 499 counts as alive (a 404 or
//! 405 still proves a working SIP stack); 5xx, 6xx or silence past the
//! timeout count as a failure; `failures` in a row make the server down,
//! one good answer makes it up again. A server starts up (probing begins
//! with the service; its heartbeat, if any, decides on its own).

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

/// `[[service]] sip_options`: how one service's servers are probed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProbeConfig {
    pub interval: Duration,
    pub timeout: Duration,
    /// Consecutive failures before a server is down.
    pub failures: u32,
}

/// One real server to probe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// Service and real server index in the configuration.
    pub service: usize,
    pub real: usize,
    /// The virtual service (DR: the request's destination address).
    pub vip: Ipv4Addr,
    pub vport: u16,
    /// The real server.
    pub addr: Ipv4Addr,
    /// NAT: its port (0: the virtual port).
    pub port: u16,
    pub mac: [u8; 6],
    /// Direct routing (frame to the MAC, addressed to the VIP).
    pub dr: bool,
    pub cfg: ProbeConfig,
}

#[derive(Clone, Debug)]
struct State {
    up: bool,
    fails: u32,
    /// The outstanding request: its number and when it left.
    pending: Option<(u64, Instant)>,
    next: Instant,
}

/// A request to send now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub target: usize,
    pub seq: u64,
}

/// A server went down or came back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Change {
    pub service: usize,
    pub real: usize,
    pub up: bool,
}

/// The probes of every configured server.
pub struct ProbeSet {
    targets: Vec<Target>,
    states: Vec<State>,
    seq: u64,
}

impl ProbeSet {
    pub fn new(targets: Vec<Target>, now: Instant) -> ProbeSet {
        let states = targets
            .iter()
            .map(|_| State {
                up: true,
                fails: 0,
                pending: None,
                next: now,
            })
            .collect();
        ProbeSet {
            targets,
            states,
            seq: 0,
        }
    }

    pub fn targets(&self) -> &[Target] {
        &self.targets
    }

    /// After a reload: takes over what `old` knew of every target that is
    /// still probed the same way (`moved` gives a real server's new place
    /// from its old one, [`crate::reload::Places::get`]): its verdict, its
    /// count of failures and its outstanding request (whose answer is then
    /// still taken). New targets start up, as at start-up.
    pub fn carry_from(&mut self, old: &ProbeSet, moved: impl Fn((usize, usize)) -> Option<(usize, usize)>) {
        self.seq = self.seq.max(old.seq);
        for (t, st) in old.targets.iter().zip(&old.states) {
            let Some(place) = moved((t.service, t.real)) else {
                continue;
            };
            let again = |n: &Target| {
                (n.service, n.real) == place && n.addr == t.addr && n.port == t.port && n.cfg == t.cfg && n.dr == t.dr
            };
            if let Some(i) = self.targets.iter().position(again) {
                self.states[i] = st.clone();
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    /// Is this server up as far as SIP is concerned?
    pub fn is_up(&self, service: usize, real: usize) -> bool {
        self.targets
            .iter()
            .zip(&self.states)
            .find(|(t, _)| t.service == service && t.real == real)
            .is_none_or(|(_, s)| s.up)
    }

    fn fail(&mut self, i: usize, out: &mut Vec<Change>) {
        let (t, s) = (&self.targets[i], &mut self.states[i]);
        s.fails = s.fails.saturating_add(1);
        if s.up && s.fails >= t.cfg.failures.max(1) {
            s.up = false;
            out.push(Change {
                service: t.service,
                real: t.real,
                up: false,
            });
        }
    }

    /// Requests due at `now` (each target at most one outstanding).
    pub fn due(&mut self, now: Instant) -> Vec<Request> {
        let mut out = Vec::new();
        for (i, (t, s)) in self.targets.iter().zip(self.states.iter_mut()).enumerate() {
            if s.pending.is_none() && now >= s.next {
                self.seq += 1;
                s.pending = Some((self.seq, now));
                s.next = now + t.cfg.interval;
                out.push(Request {
                    target: i,
                    seq: self.seq,
                });
            }
        }
        out
    }

    /// Timeouts at `now`.
    pub fn expire(&mut self, now: Instant) -> Vec<Change> {
        let mut out = Vec::new();
        for i in 0..self.targets.len() {
            if let Some((_, sent)) = self.states[i].pending
                && now >= sent + self.targets[i].cfg.timeout
            {
                self.states[i].pending = None;
                self.fail(i, &mut out);
            }
        }
        out
    }

    /// A response to request `seq` with this status code.
    pub fn reply(&mut self, seq: u64, status: u16) -> Vec<Change> {
        let mut out = Vec::new();
        let Some(i) = self
            .states
            .iter()
            .position(|s| s.pending.is_some_and(|(q, _)| q == seq))
        else {
            return out; // late or unknown: the timeout already counted it
        };
        self.states[i].pending = None;
        if (100..500).contains(&status) {
            let (t, s) = (&self.targets[i], &mut self.states[i]);
            s.fails = 0;
            if !s.up {
                s.up = true;
                out.push(Change {
                    service: t.service,
                    real: t.real,
                    up: true,
                });
            }
        } else {
            self.fail(i, &mut out);
        }
        out
    }

    /// When [`Self::due`] or [`Self::expire`] has work next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.targets
            .iter()
            .zip(&self.states)
            .map(|(t, s)| match s.pending {
                Some((_, sent)) => sent + t.cfg.timeout,
                None => s.next,
            })
            .min()
    }
}

/// The Call-ID of probe `seq` (how a reply is matched).
pub fn call_id(seq: u64, node_id: u32) -> String {
    format!("tandem-options-{node_id}-{seq}")
}

/// An OPTIONS request to `target` from `src:sport`.
pub fn options_request(t: &Target, src: Ipv4Addr, sport: u16, seq: u64, node_id: u32) -> String {
    let (host, port) = if t.dr {
        (t.vip, t.vport)
    } else {
        (t.addr, if t.port == 0 { t.vport } else { t.port })
    };
    format!(
        "OPTIONS sip:{host}:{port} SIP/2.0\r\n\
Via: SIP/2.0/UDP {src}:{sport};branch=z9hG4bK-tandem-{seq}\r\n\
Max-Forwards: 70\r\n\
From: <sip:tandem@{src}>;tag=tandem{node_id}\r\n\
To: <sip:{host}:{port}>\r\n\
Call-ID: {cid}\r\n\
CSeq: {seq} OPTIONS\r\n\
Accept: application/sdp\r\n\
Content-Length: 0\r\n\r\n",
        cid = call_id(seq, node_id),
    )
}

/// A SIP response's status code and the probe number in its Call-ID
/// (None: not a response to one of this node's probes).
pub fn parse_response(msg: &[u8], node_id: u32) -> Option<(u64, u16)> {
    let text = std::str::from_utf8(msg).ok()?;
    let mut lines = text.split("\r\n").flat_map(|l| l.split('\n'));
    let status = lines
        .next()?
        .strip_prefix("SIP/2.0 ")?
        .get(..3)?
        .parse::<u16>()
        .ok()?;
    let prefix = format!("tandem-options-{node_id}-");
    for l in lines {
        if l.is_empty() {
            break;
        }
        let Some((name, value)) = l.split_once(':') else {
            continue;
        };
        let name = name.trim();
        if name.eq_ignore_ascii_case("call-id") || name.eq_ignore_ascii_case("i") {
            return Some((value.trim().strip_prefix(&prefix)?.parse().ok()?, status));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(service: usize, real: usize, failures: u32) -> Target {
        Target {
            service,
            real,
            vip: Ipv4Addr::new(198, 18, 0, 100),
            vport: 5060,
            addr: Ipv4Addr::new(198, 18, 0, 21),
            port: 0,
            mac: [2, 0, 0, 0, 0, 0x21],
            dr: true,
            cfg: ProbeConfig {
                interval: Duration::from_secs(1),
                timeout: Duration::from_millis(500),
                failures,
            },
        }
    }

    #[test]
    fn down_after_n_silent_probes_up_on_one_answer() {
        let t0 = Instant::now();
        let mut p = ProbeSet::new(vec![target(0, 1, 3)], t0);
        let mut now = t0;
        let mut changes = Vec::new();
        for round in 0..3 {
            let due = p.due(now);
            assert_eq!(due.len(), 1, "round {round}");
            assert!(p.due(now).is_empty(), "one outstanding at a time");
            now += Duration::from_millis(600);
            changes.extend(p.expire(now));
            if round < 2 {
                assert!(
                    changes.is_empty() && p.is_up(0, 1),
                    "not down before 3 failures"
                );
            }
            now += Duration::from_millis(400);
        }
        assert_eq!(
            changes,
            vec![Change {
                service: 0,
                real: 1,
                up: false
            }]
        );
        assert!(!p.is_up(0, 1));
        let r = p.due(now);
        assert_eq!(
            p.reply(r[0].seq, 200),
            vec![Change {
                service: 0,
                real: 1,
                up: true
            }]
        );
        assert!(p.is_up(0, 1));
        assert!(
            p.reply(r[0].seq, 200).is_empty(),
            "a duplicate reply changes nothing"
        );
    }

    #[test]
    fn statuses_late_replies_and_timers() {
        let t0 = Instant::now();
        let mut p = ProbeSet::new(vec![target(0, 0, 1), target(1, 0, 1)], t0);
        let r = p.due(t0);
        assert_eq!(r.len(), 2);
        assert_eq!(p.poll_timeout(), Some(t0 + Duration::from_millis(500)));
        // 404 proves a SIP stack; 503 does not.
        assert!(p.reply(r[0].seq, 404).is_empty());
        assert_eq!(
            p.reply(r[1].seq, 503),
            vec![Change {
                service: 1,
                real: 0,
                up: false
            }]
        );
        assert_eq!(p.poll_timeout(), Some(t0 + Duration::from_secs(1)));
        // A reply after its timeout is ignored.
        let r = p.due(t0 + Duration::from_secs(1));
        assert!(!p.expire(t0 + Duration::from_millis(1600)).is_empty() || !p.is_up(0, 0));
        assert!(p.reply(r[0].seq, 200).is_empty());
        assert!(p.is_up(5, 5), "a server nobody probes is up");
    }

    #[test]
    fn a_reload_keeps_the_verdicts_of_targets_that_stay() {
        let t0 = Instant::now();
        let mut old = ProbeSet::new(vec![target(0, 0, 1), target(0, 1, 1)], t0);
        let r = old.due(t0);
        assert_eq!(old.reply(r[1].seq, 503).len(), 1, "(0, 1) down");
        // Reloaded: (0, 1) moved to (1, 0), (0, 0) removed, (1, 1) is new.
        let mut new = ProbeSet::new(vec![target(1, 0, 1), target(1, 1, 1)], t0);
        new.carry_from(&old, |p| (p == (0, 1)).then_some((1, 0)));
        assert!(!new.is_up(1, 0), "the verdict followed the real server");
        assert!(new.is_up(1, 1), "a new target starts up");
        let r = new.due(t0 + Duration::from_secs(1));
        assert!(r.iter().all(|q| q.seq > 2), "sequence numbers are not reused: {r:?}");
        // A target probed differently now starts afresh.
        let mut changed = ProbeSet::new(vec![target(1, 0, 5)], t0);
        changed.carry_from(&old, |p| (p == (0, 1)).then_some((1, 0)));
        assert!(changed.is_up(1, 0));
    }

    #[test]
    fn requests_and_responses_on_the_wire() {
        let t = target(0, 0, 3);
        let req = options_request(&t, Ipv4Addr::new(198, 18, 0, 2), 40000, 7, 1);
        assert!(
            req.starts_with("OPTIONS sip:198.18.0.100:5060 SIP/2.0\r\n"),
            "{req}"
        );
        assert!(req.contains("\r\nCall-ID: tandem-options-1-7\r\n"));
        assert!(req.ends_with("Content-Length: 0\r\n\r\n"));
        let nat = Target {
            dr: false,
            port: 5080,
            ..t
        };
        assert!(
            options_request(&nat, Ipv4Addr::new(198, 18, 1, 1), 40000, 8, 1)
                .starts_with("OPTIONS sip:198.18.0.21:5080 SIP/2.0")
        );
        let ok =
            b"SIP/2.0 200 OK\r\nVia: x\r\ncall-id:  tandem-options-1-7 \r\nCSeq: 7 OPTIONS\r\n\r\n";
        assert_eq!(parse_response(ok, 1), Some((7, 200)));
        assert_eq!(
            parse_response(b"SIP/2.0 486 Busy Here\ni: tandem-options-1-9\n\n", 1),
            Some((9, 486))
        );
        for bad in [
            &b"SIP/2.0 200 OK\r\nCall-ID: tandem-options-2-7\r\n\r\n"[..], // another node's probe
            b"OPTIONS sip:x SIP/2.0\r\nCall-ID: tandem-options-1-7\r\n\r\n", // a request
            b"SIP/2.0 200 OK\r\n\r\nCall-ID: tandem-options-1-7\r\n",      // in the body
            b"ivr1 OPTIONS",
            b"\xff\xfe",
            b"",
        ] {
            assert_eq!(
                parse_response(bad, 1),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
