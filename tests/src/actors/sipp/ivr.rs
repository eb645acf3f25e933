//! An IVR server: SIPp as a UAS on VIP:5060 in the IVR's namespace, with
//! its RTP echo and counter. Starts it, waits until it is up, and reads
//! its statistics; stops only its own process.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::process::{SippProcess, common_args, tail_of};
use super::rtp::{RtpCount, RtpCounter};
use super::scenario::ivr_scenario;
use super::{IVR_RTP_PORT, SippError, SippStats, io_err};

/// How to run an IVR's SIPp.
#[derive(Clone, Debug)]
pub struct IvrOptions {
    /// Its name, answered in `X-IVR` (lowercase letters and digits).
    pub name: String,
    /// Its namespace.
    pub ns: String,
    /// Its own address (SDP `c=`, RTP echo).
    pub addr: Ipv4Addr,
    /// Its service interface's ifindex (RTP is counted there).
    pub ifindex: u32,
    /// The VIP it answers SIP on (on its `lo`).
    pub vip: Ipv4Addr,
    /// Echo RTP (`-rtp_echo`) and count it.
    pub rtp: bool,
    /// It quits after this long (SIPp `-timeout`).
    pub lifetime: Duration,
    /// UDP, or TCP (it accepts connections on VIP:5060).
    pub transport: super::Transport,
}

impl IvrOptions {
    /// An IVR of a lab host, RTP on, living at most 10 minutes.
    pub fn for_host(host: &crate::Host, vip: Ipv4Addr) -> IvrOptions {
        IvrOptions {
            name: host.name.clone(),
            ns: host.ns.clone(),
            addr: host.addr(),
            ifindex: host.eth0().ifindex,
            vip,
            rtp: true,
            lifetime: Duration::from_secs(600),
            transport: super::Transport::Udp,
        }
    }
}

/// An IVR server: SIPp UAS on VIP:5060 in the IVR's namespace.
pub struct SippIvr {
    pub name: String,
    process: SippProcess,
    stat_file: PathBuf,
    error_file: PathBuf,
    output: PathBuf,
    rtp: Option<RtpCounter>,
    last: Option<SippStats>,
}

impl SippIvr {
    /// Writes its scenario into `dir` and starts it; returns once SIPp is
    /// up (its statistics file exists) or fails naming why.
    pub fn start(dir: &Path, o: &IvrOptions) -> Result<SippIvr, SippError> {
        let scenario = dir.join(format!("{}.xml", o.name));
        std::fs::write(&scenario, ivr_scenario(&o.name)).map_err(io_err("writing", &scenario))?;
        let stat_file = dir.join(format!("{}.csv", o.name));
        let error_file = dir.join(format!("{}-errors.log", o.name));
        let output = dir.join(format!("{}.out", o.name));
        let _ = std::fs::remove_file(&stat_file);
        let rtp = if o.rtp {
            Some(RtpCounter::start(&o.ns, o.ifindex, o.addr, IVR_RTP_PORT)?)
        } else {
            None
        };
        let mut args = common_args(
            &scenario,
            o.vip,
            SocketAddrV4::new(o.addr, IVR_RTP_PORT),
            &stat_file,
            &error_file,
            o.transport,
        );
        args.extend(
            [
                "-timeout",
                &format!("{}s", o.lifetime.as_secs().max(1)),
                // A call whose caller vanished ends after 60 s without its BYE.
                "-recv_timeout",
                "60000",
                // No default behaviours: in particular no 200 to a BYE for a
                // call this IVR does not hold (SIPp's default), which would
                // hide a BYE dispatched to the wrong IVR.
                "-nd",
                "-max_recv_loops",
                "10000",
            ]
            .map(String::from),
        );
        if o.rtp {
            args.push("-rtp_echo".into());
        }
        let mut process = SippProcess::spawn(&o.ns, &args, dir, &output)?;
        // Up when the first statistics row is written (-fd 1: within ~1 s).
        let end = Instant::now() + Duration::from_secs(10);
        while !stat_file.exists() {
            if let Some(code) = process.try_exit() {
                let out = std::fs::read_to_string(&output).unwrap_or_default();
                return Err(SippError::Other {
                    what: format!(
                        "IVR {} exited at start ({code:?}): {}\n`{}`",
                        o.name,
                        out.trim(),
                        process.cmdline
                    ),
                });
            }
            if Instant::now() >= end {
                return Err(SippError::Other {
                    what: format!("IVR {}: SIPp did not start within 10 s", o.name),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(SippIvr {
            name: o.name.clone(),
            process,
            stat_file,
            error_file,
            output,
            rtp,
            last: None,
        })
    }

    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }

    /// Whether its SIPp still runs.
    pub fn running(&mut self) -> bool {
        self.process.child.is_some() && self.process.try_exit().is_none()
    }

    /// SIGKILL, as a crashed IVR (its statistics stay as last written).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.process.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops SIPp (SIGTERM: it writes a last statistics row and quits at
    /// once; SIGKILL after 3 s) and returns its statistics.
    pub fn stop(&mut self) -> Result<SippStats, SippError> {
        self.process.stop(libc::SIGTERM, Duration::from_secs(3));
        let s = self.stats()?;
        self.last = Some(s.clone());
        Ok(s)
    }

    /// Waits up to `timeout` for it to hold no call (as its statistics,
    /// written every second, say); true if it got there.
    pub fn wait_idle(&mut self, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        loop {
            if !self.running() || self.stats().is_ok_and(|s| s.current() == 0) {
                return true;
            }
            if Instant::now() >= end {
                return false;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Its statistics as last written (every second while it runs).
    pub fn stats(&self) -> Result<SippStats, SippError> {
        match &self.last {
            Some(s) => Ok(s.clone()),
            None => SippStats::read(&self.stat_file),
        }
    }

    /// RTP seen in its namespace so far.
    pub fn rtp(&self) -> RtpCount {
        self.rtp.as_ref().map(RtpCounter::count).unwrap_or_default()
    }

    /// The end of its error log and output (for failure messages).
    pub fn diagnostics(&self) -> String {
        tail_of(&[&self.error_file, &self.output], 2000)
    }
}

