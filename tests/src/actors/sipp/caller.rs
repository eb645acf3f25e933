//! The caller: SIPp as a UAC in the client namespace, every call from
//! client:5060 to VIP:5060, bounded by its options; how it places calls
//! ([`CallerOptions`]), the calls so far from its log, and its final
//! [`CallerReport`](super::CallerReport).

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::process::{SippProcess, common_args, tail_of};
use super::report::{CallRecord, CallerReport, SippStats, parse_call_log};
use super::scenario::caller_scenario;
use super::{CALLER_RTP_PORT, SippError, io_err, wall_now};

/// How the caller places calls.
#[derive(Clone, Debug)]
pub struct CallerOptions {
    /// Calls per second (`-r`).
    pub rate: u32,
    /// Calls in all (`-m`).
    pub count: u64,
    /// How long each call lasts once established (`-d`, ms).
    pub duration_ms: u64,
    /// Play RTP during each call.
    pub rtp: bool,
    /// Retransmissions of a request before the call fails (`-max_retrans`;
    /// T1 is 500 ms, so 4 is 0.5 + 1 + 2 + 4 s, then the last wait).
    pub max_retrans: u32,
    /// A response not received within this long fails the call (`-recv_timeout`, ms).
    pub recv_timeout_ms: u64,
    /// UDP, or one TCP connection for every call.
    pub transport: super::Transport,
}

impl CallerOptions {
    pub fn new(rate: u32, count: u64, duration_ms: u64) -> CallerOptions {
        CallerOptions {
            rate,
            count,
            duration_ms,
            rtp: true,
            max_retrans: 4,
            recv_timeout_ms: 8000,
            transport: super::Transport::Udp,
        }
    }

    /// Time to place every call at the rate.
    pub fn placing(&self) -> Duration {
        Duration::from_secs_f64(self.count as f64 / f64::from(self.rate.max(1)))
    }

    /// The longest the caller can take: placing, one call's length, and the
    /// longest a failing call can wait (retransmissions or receive timeout).
    pub fn bound(&self) -> Duration {
        let mut retrans = 0.0;
        let mut t = 0.5;
        for _ in 0..=self.max_retrans {
            retrans += t;
            t = (t * 2.0f64).min(4.0);
        }
        let wait = retrans.max(self.recv_timeout_ms as f64 / 1000.0);
        self.placing()
            + Duration::from_millis(self.duration_ms)
            + Duration::from_secs_f64(2.0 * wait + 5.0)
    }
}


/// The caller: SIPp UAC in the client namespace.
pub struct SippCaller {
    process: SippProcess,
    stat_file: PathBuf,
    log_file: PathBuf,
    error_file: PathBuf,
    output: PathBuf,
    /// It is killed if still running this long after it started.
    bound: Duration,
    started: Instant,
    /// Wall clock at start.
    pub started_wall: f64,
}

impl SippCaller {
    /// Writes the scenario into `dir` and starts SIPp in `ns`, from
    /// `local`:5060 to `target`.
    pub fn start(
        dir: &Path,
        ns: &str,
        local: Ipv4Addr,
        target: SocketAddrV4,
        o: &CallerOptions,
    ) -> Result<SippCaller, SippError> {
        let tag = format!("caller{}", CALLER_SEQ.fetch_add(1, Ordering::Relaxed));
        let scenario = dir.join(format!("{tag}.xml"));
        std::fs::write(&scenario, caller_scenario(o.rtp)).map_err(io_err("writing", &scenario))?;
        let stat_file = dir.join(format!("{tag}.csv"));
        let log_file = dir.join(format!("{tag}-calls.log"));
        let error_file = dir.join(format!("{tag}-errors.log"));
        let output = dir.join(format!("{tag}.out"));
        for f in [&stat_file, &log_file, &error_file] {
            let _ = std::fs::remove_file(f);
        }
        let bound = o.bound();
        let mut args = vec![target.to_string()];
        args.extend(common_args(
            &scenario,
            local,
            SocketAddrV4::new(local, CALLER_RTP_PORT),
            &stat_file,
            &error_file,
            o.transport,
        ));
        args.extend(
            [
                "-r",
                &o.rate.to_string(),
                "-m",
                &o.count.to_string(),
                "-d",
                &o.duration_ms.to_string(),
                "-trace_logs",
                "-log_file",
                &log_file.display().to_string(),
                "-max_retrans",
                &o.max_retrans.to_string(),
                "-recv_timeout",
                &o.recv_timeout_ms.to_string(),
                "-timeout",
                &format!("{}s", bound.as_secs() + 1),
                "-max_recv_loops",
                "10000",
            ]
            .map(String::from),
        );
        let process = SippProcess::spawn(ns, &args, dir, &output)?;
        Ok(SippCaller {
            process,
            stat_file,
            log_file,
            error_file,
            output,
            bound: bound + Duration::from_secs(5),
            started: Instant::now(),
            started_wall: wall_now(),
        })
    }

    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }

    /// Whether SIPp is still placing or holding calls.
    pub fn running(&mut self) -> bool {
        self.process.child.is_some() && self.process.try_exit().is_none()
    }

    /// Its statistics as last written (every second while it runs).
    pub fn stats(&self) -> Result<SippStats, SippError> {
        SippStats::read(&self.stat_file)
    }

    /// The calls so far, from its log (SIPp writes each line as it happens).
    pub fn calls_so_far(&self) -> Vec<CallRecord> {
        parse_call_log(&std::fs::read_to_string(&self.log_file).unwrap_or_default())
    }

    /// Waits (up to `timeout`) for an instant at least `gap` after the
    /// newest call establishment in its log, and at least one call
    /// established: a moment when no call was set up in the last `gap`.
    pub fn wait_quiet(&self, gap: Duration, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            let newest = self
                .calls_so_far()
                .iter()
                .filter_map(|c| c.established)
                .fold(f64::NAN, f64::max);
            if !newest.is_nan() && wall_now() - newest >= gap.as_secs_f64() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        false
    }

    /// Waits until SIPp has finished by itself (bounded by its options;
    /// past that it is stopped: SIGTERM, then SIGKILL) and reads its report.
    pub fn wait(mut self) -> Result<CallerReport, SippError> {
        let left = self.bound.saturating_sub(self.started.elapsed());
        let exit_code = match self.process.wait_for(left) {
            Some(code) => {
                self.process.child = None;
                code
            }
            None => {
                eprintln!(
                    "sipp caller: still running after {:?}: stopping it",
                    self.bound
                );
                self.process.stop(libc::SIGTERM, Duration::from_secs(3));
                None
            }
        };
        let stats = SippStats::read(&self.stat_file).map_err(|e| SippError::Other {
            what: format!("{e}\n{}", tail_of(&[&self.output], 2000)),
        })?;
        let log = std::fs::read_to_string(&self.log_file).unwrap_or_default();
        Ok(CallerReport {
            exit_code,
            stats,
            calls: parse_call_log(&log),
            errors: tail_of(&[&self.error_file, &self.output], 3000),
        })
    }
}

static CALLER_SEQ: AtomicU64 = AtomicU64::new(0);

