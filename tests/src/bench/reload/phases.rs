//! The bench's phases (the edits, the design-maximum reloads) and what
//! they read from the daemons' timelines and the machine.

use super::*;

/// The longest `LoopLate` gap in `events` between `from` and `to` (ns).
pub(super) fn loop_gap_max(events: &[Stamped], from: u64, to: u64) -> Option<u64> {
    events
        .iter()
        .filter(|e| e.at_ns >= from && e.at_ns <= to)
        .filter_map(|e| match e.event {
            Event::LoopLate { micros } => Some(micros),
            _ => None,
        })
        .max()
}

/// b's own apply time of the change it took between `from` and `to`:
/// its `Reloaded` event with that fingerprint.
pub(super) fn standby_apply(events: &[Stamped], from: u64, to: u64, fingerprint: &str) -> Option<u64> {
    events
        .iter()
        .filter(|e| e.at_ns >= from && e.at_ns <= to)
        .find_map(|e| match &e.event {
            Event::Reloaded {
                fingerprint: f,
                micros,
                ..
            } if f == fingerprint => Some(*micros),
            _ => None,
        })
}

/// `SlowTurn` events (turns long enough to delay heartbeats) of one
/// node, by what the turn handled, in `[from, to)`: (count, longest µs).
pub(super) fn slow_turns(events: &[Stamped], from: u64, to: u64) -> BTreeMap<String, (u64, u64)> {
    let mut out: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for e in events.iter().filter(|e| e.at_ns >= from && e.at_ns < to) {
        if let Event::SlowTurn { micros, during } = &e.event {
            let x = out.entry(during.clone()).or_default();
            x.0 += 1;
            x.1 = x.1.max(*micros);
        }
    }
    out
}

/// Other labs on the machine: `tandemd` and `sipp` processes running
/// now that this bench did not start (called when it runs none), read
/// from `/proc/*/comm`; nothing else of them is touched.
pub(super) fn other_labs() -> Value {
    let mut n = BTreeMap::from([("tandemd", 0u64), ("sipp", 0u64)]);
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        if let Ok(comm) = std::fs::read_to_string(e.path().join("comm"))
            && let Some(c) = n.get_mut(comm.trim())
        {
            *c += 1;
        }
    }
    json!(n)
}

pub(crate) fn machine() -> Value {
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map_or_else(|_| "?".into(), |s| s.trim().to_string());
    let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_string())
        })
        .unwrap_or_else(|| "?".into());
    // Other work on the machine competes with the lab's daemons and SIPp.
    let loadavg = std::fs::read_to_string("/proc/loadavg").map_or_else(
        |_| "?".into(),
        |s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
    );
    json!({
        "cpus": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "kernel": kernel,
        "cpu_model": cpu_model,
        "loadavg_at_start": loadavg,
        "other_labs_at_start": other_labs(),
    })
}

/// A small xorshift generator for the pauses between edits (seeded from
/// the clock; the seed goes into the report).
pub(super) struct Rng(pub(super) u64);

impl Rng {
    pub(super) fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// The weight edits on `st`.
pub(super) fn run_edits(
    st: &Stage,
    n: usize,
    rng: &mut Rng,
    restores: &mut Vec<f64>,
    aborted: &mut Option<String>,
) -> Vec<EditTrial> {
    let mut trials = Vec::with_capacity(n);
    for i in 0..n {
        let w = 2 + (i % 99) as u32;
        let restored = match st.restore(restores) {
            Ok(r) => r,
            Err(e) => {
                *aborted = Some(format!("the edits stopped before edit {i}: {e}"));
                break;
            }
        };
        let mut t = edit_trial(&st.a, &st.b, &st.path, st.first, st.ivr1, w);
        t.after_restore = restored;
        if let Some(f) = &t.failure {
            eprintln!("reload bench: edit {i} (weight {w}): FAILED: {f}");
        }
        trials.push(t);
        // 20–60 ms apart: apart from each other, and at no fixed phase of
        // the heartbeat interval.
        std::thread::sleep(Duration::from_millis(20 + rng.below(41)));
    }
    eprintln!(
        "reload bench: {} edits, {} failed",
        trials.len(),
        trials.iter().filter(|t| t.failure.is_some()).count()
    );
    trials
}

/// The reloads of the design maximum on `st`, in order.
pub(super) fn run_bigs(
    st: &Stage,
    steps: &[(usize, BigKind, Option<String>)],
    restores: &mut Vec<f64>,
    aborted: &mut Option<String>,
) -> Vec<BigTrial> {
    let mut out = Vec::new();
    for (round, kind, text) in steps {
        let restored = match st.restore(restores) {
            Ok(r) => r,
            Err(e) => {
                *aborted = Some(format!(
                    "the reloads stopped before round {round} {}: {e}",
                    kind.name()
                ));
                break;
            }
        };
        let mut t = big_trial(&st.a, &st.b, &st.path, *round, *kind, text.as_deref());
        t.after_restore = restored;
        eprintln!(
            "reload bench: round {round} {}: {} changes, read {:?} µs, apply {:?} µs, reply {:?} µs, standby {:?} µs{}",
            kind.name(),
            t.reply.as_ref().map_or(0, |r| r.changes.len()),
            t.reply.as_ref().map(|r| r.read_us),
            t.reply.as_ref().map(|r| r.apply_us),
            t.reply_us,
            t.standby_us,
            t.failure
                .as_ref()
                .map_or(String::new(), |f| format!(": FAILED: {f}"))
        );
        out.push(t);
        std::thread::sleep(Duration::from_millis(200));
    }
    out
}

/// ivr1's weight in the first service of `text`.
pub(super) fn ivr1_weight(text: &str) -> Result<u32> {
    Config::parse(text)
        .ok()
        .and_then(|c| {
            c.services
                .first()
                .and_then(|s| s.reals.first())
                .map(|r| r.weight)
        })
        .context("reading ivr1's weight back from a's file")
}

/// Stage 2's reloads: per round one weight in the mh service, one in a
/// wlc service, the same file; then back to the pair's file; then the
/// stage ends.
pub(super) fn run_big_stage(
    st: Stage,
    opts: &Options,
    bigs: &mut Vec<BigTrial>,
    ends: &mut Vec<StageEnd>,
    restores: &mut Vec<f64>,
    aborted: &mut Option<String>,
) -> Result<()> {
    let wlc = ServiceId {
        port: st.first.port + 1,
        ..st.first
    };
    // Service 1's first real server (a made-up IVR: the lab's are only in the first service).
    let wlc_real = Config::parse(&st.big)
        .ok()
        .and_then(|c| {
            c.services
                .get(1)
                .and_then(|s| s.reals.first())
                .map(|r| r.address)
        })
        .and_then(|a| match a {
            IpAddr::V4(v) => Some(v),
            IpAddr::V6(_) => None,
        })
        .context("service 1 of the big file has no IPv4 real server")?;
    let mut steps = Vec::new();
    let mut text = st.big.clone();
    for r in 0..opts.big_rounds {
        let w = 3 + r as u32;
        let one = with_weight(&text, st.first, st.ivr1, w).map_err(anyhow::Error::msg)?;
        let other = with_weight(&one, wlc, wlc_real, w + 1).map_err(anyhow::Error::msg)?;
        steps.push((r, BigKind::OneWeight, Some(one)));
        steps.push((r, BigKind::OneWeightWlc, Some(other.clone())));
        steps.push((r, BigKind::Nothing, None));
        text = other;
    }
    let last_w = ivr1_weight(&text)?;
    let back = with_weight(&st.small, st.first, st.ivr1, last_w).map_err(anyhow::Error::msg)?;
    steps.push((0, BigKind::Back, Some(back)));
    bigs.extend(run_bigs(&st, &steps, restores, aborted));
    ends.push(st.finish()?);
    Ok(())
}
