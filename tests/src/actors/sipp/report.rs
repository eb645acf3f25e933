//! Reading what SIPp reports: its statistics file (`-trace_stat`, the
//! last row's cumulative counters and failures by cause), the caller's
//! `<log>` lines (one [`CallRecord`] per call) and the caller's whole
//! report ([`CallerReport`]). Parsing only: it starts no process.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use super::{SippError, io_err};

/// The last row of a SIPp statistics file (`-trace_stat`): cumulative
/// counters, by SIPp's column names without the `(C)`.
#[derive(Clone, Debug, Default)]
pub struct SippStats {
    values: BTreeMap<String, String>,
}

impl SippStats {
    /// Parses a `-trace_stat` file (`;`-separated, a header line, then one
    /// row per report period and a last one at exit).
    pub fn parse(text: &str) -> Result<SippStats, String> {
        let mut lines = text.lines().filter(|l| !l.trim().is_empty());
        let header = lines.next().ok_or("empty file")?;
        let last = lines.next_back().ok_or("no statistics row yet")?;
        let names: Vec<&str> = header.split(';').collect();
        let cells: Vec<&str> = last.split(';').collect();
        if !names.contains(&"SuccessfulCall(C)") {
            return Err(format!("no SuccessfulCall(C) column in {header:?}"));
        }
        let mut values = BTreeMap::new();
        for (n, v) in names.iter().zip(cells) {
            let key = n.trim().trim_end_matches("(C)");
            if n.ends_with("(P)") {
                continue;
            }
            values.insert(key.to_string(), v.trim().to_string());
        }
        Ok(SippStats { values })
    }

    /// Reads and parses a statistics file.
    pub fn read(path: &Path) -> Result<SippStats, SippError> {
        let text = std::fs::read_to_string(path).map_err(io_err("reading", path))?;
        SippStats::parse(&text).map_err(|what| SippError::Stats {
            path: path.to_owned(),
            what,
        })
    }

    /// A cumulative counter (0 if absent).
    pub fn get(&self, name: &str) -> u64 {
        self.values
            .get(name)
            .and_then(|v| v.parse::<f64>().ok())
            .map_or(0, |v| v as u64)
    }

    pub fn created(&self) -> u64 {
        self.get("TotalCallCreated")
    }
    pub fn incoming(&self) -> u64 {
        self.get("IncomingCall")
    }
    pub fn outgoing(&self) -> u64 {
        self.get("OutgoingCall")
    }
    pub fn current(&self) -> u64 {
        self.get("CurrentCall")
    }
    pub fn successful(&self) -> u64 {
        self.get("SuccessfulCall")
    }
    pub fn failed(&self) -> u64 {
        self.get("FailedCall")
    }
    pub fn retransmissions(&self) -> u64 {
        self.get("Retransmissions")
    }
    pub fn out_of_call(&self) -> u64 {
        self.get("OutOfCallMsgs")
    }
    pub fn dead_call(&self) -> u64 {
        self.get("DeadCallMsgs")
    }

    /// Failed calls by SIPp's cause (`MaxUDPRetrans`, `UnexpectedMessage`,
    /// `TimeoutOnRecv`, …), non-zero ones only.
    pub fn failures(&self) -> BTreeMap<String, u64> {
        self.values
            .keys()
            .filter(|k| k.starts_with("Failed") && k.as_str() != "FailedCall")
            .map(|k| (k.trim_start_matches("Failed").to_string(), self.get(k)))
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    /// `created 200, successful 200, failed 0, retransmissions 3`, and the causes.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "created {}, successful {}, failed {}, retransmissions {}",
            self.created(),
            self.successful(),
            self.failed(),
            self.retransmissions()
        );
        if self.current() > 0 {
            let _ = write!(s, ", in progress {}", self.current());
        }
        if self.out_of_call() > 0 {
            let _ = write!(s, ", out-of-call messages {}", self.out_of_call());
        }
        let f = self.failures();
        if !f.is_empty() {
            let causes: Vec<String> = f.iter().map(|(k, v)| format!("{k} {v}")).collect();
            let _ = write!(s, " (failed: {})", causes.join(", "));
        }
        s
    }
}

/// One call of the caller, from its `<log>` lines.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CallRecord {
    /// SIPp's call number, from 1.
    pub number: u64,
    /// When the INVITE was first sent (wall clock, s since the epoch).
    pub started: Option<f64>,
    /// When the ACK was sent.
    pub established: Option<f64>,
    /// The IVR that answered (its `X-IVR`).
    pub ivr: Option<String>,
    pub call_id: Option<String>,
    /// When the BYE got its 200.
    pub done: Option<f64>,
    /// The IVR that answered the BYE.
    pub bye_ivr: Option<String>,
}

impl CallRecord {
    /// The BYE got its 200 from the IVR that answered the INVITE: the
    /// dialog stayed on one IVR from end to end.
    pub fn succeeded(&self) -> bool {
        self.done.is_some() && self.bye_ivr.is_some() && self.bye_ivr == self.ivr
    }
    /// Established at or before `t` (wall clock).
    pub fn established_before(&self, t: f64) -> bool {
        self.established.is_some_and(|e| e <= t)
    }
    /// Placed (first INVITE) at or after `t`.
    pub fn started_after(&self, t: f64) -> bool {
        self.started.is_some_and(|s| s >= t)
    }

    /// One line for an assertion message: when it started, was set up,
    /// on which IVR, and whether and by whom its BYE was answered.
    pub fn show(&self) -> String {
        format!(
            "call {} started {:?} established {:?} on {:?}, BYE answered {:?} by {:?} ({:?})",
            self.number, self.started, self.established, self.ivr, self.done, self.bye_ivr, self.call_id
        )
    }
}

/// The epoch seconds of a SIPp `[timestamp]` (`date<TAB>time<TAB>epoch.usec`):
/// the first token that is a number with a fraction above 10^9.
fn epoch_of(tokens: &[&str]) -> Option<f64> {
    tokens
        .iter()
        .filter(|t| t.contains('.') && !t.contains(':') && !t.contains('-'))
        .filter_map(|t| t.parse::<f64>().ok())
        .find(|v| *v > 1e9)
}

/// Parses the caller's log lines into one record per call, by call number.
pub fn parse_call_log(text: &str) -> Vec<CallRecord> {
    let mut calls: BTreeMap<u64, CallRecord> = BTreeMap::new();
    for line in text.lines() {
        let t: Vec<&str> = line.split_whitespace().collect();
        let (Some(kind), Some(n)) = (t.first(), t.get(1).and_then(|n| n.parse::<u64>().ok()))
        else {
            continue;
        };
        let at = epoch_of(&t);
        let c = calls.entry(n).or_insert_with(|| CallRecord {
            number: n,
            ..CallRecord::default()
        });
        match *kind {
            "S" => c.started = at,
            "E" => {
                c.established = at;
                c.ivr = t.get(2).map(|s| s.to_string());
                c.call_id = t.last().filter(|s| s.contains('@')).map(|s| s.to_string());
            }
            "D" => {
                c.done = at;
                c.bye_ivr = t.get(2).map(|s| s.to_string());
            }
            _ => {}
        }
    }
    calls.into_values().collect()
}


/// What the caller's SIPp reported.
#[derive(Clone, Debug)]
pub struct CallerReport {
    /// SIPp's exit code: 0 every call succeeded, 1 some failed, 97 quit on
    /// its timeout, 99 no call processed; None if it had to be killed.
    pub exit_code: Option<i32>,
    pub stats: SippStats,
    /// One record per call, by call number.
    pub calls: Vec<CallRecord>,
    /// The end of its error log (unexpected messages, retransmission timeouts).
    pub errors: String,
}

impl CallerReport {
    /// Calls that got no 200 to their BYE (SIPp counts each as failed).
    /// Panics unless SIPp's numbers agree with themselves: `count` calls
    /// placed, one log record each, successful + failed = placed, failed =
    /// the calls whose BYE got no 200 in its log, and its exit code 0
    /// exactly when none failed.
    pub fn assert_consistent(&self, count: u64) {
        let s = &self.stats;
        assert_eq!(s.created(), count, "SIPp placed {} calls, not {count}", s.created());
        assert_eq!(self.calls.len() as u64, count, "call log lines for {} calls", self.calls.len());
        assert_eq!(s.successful() + s.failed(), count, "{}", s.summary());
        assert_eq!(s.failed(), self.failed_calls().len() as u64, "SIPp's failed count vs its call log: {}", s.summary());
        if s.failed() == 0 {
            assert_eq!(self.exit_code, Some(0), "SIPp exit code with no failed call\n{}", self.errors);
        } else {
            assert_eq!(self.exit_code, Some(1), "SIPp exit code with failed calls");
        }
    }

    pub fn failed_calls(&self) -> Vec<&CallRecord> {
        self.calls.iter().filter(|c| !c.succeeded()).collect()
    }

    /// Established calls, by IVR.
    pub fn per_ivr(&self) -> BTreeMap<String, u64> {
        let mut m = BTreeMap::new();
        for c in &self.calls {
            if let Some(i) = &c.ivr {
                *m.entry(i.clone()).or_insert(0) += 1;
            }
        }
        m
    }
}

