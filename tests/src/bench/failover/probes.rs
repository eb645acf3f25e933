//! The client's probe stream: one UDP datagram to VIP:5060 every
//! [`PROBE_EVERY`], a sequence number in the payload, from one socket in
//! the client's namespace, with every send and reply stamped on
//! CLOCK_MONOTONIC. A sender and a receiver thread, both bounded.

use std::net::{SocketAddr, UdpSocket};
use std::sync::{
    Arc, Mutex,
    atomic::{AtomicBool, Ordering},
};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tandem_dataplane::monotonic_ns;

use super::os::sleep_until_ns;
use super::{MAX_PROBES, PROBE_EVERY};
use crate::lab::{self, VIP, netns};

pub(super) struct ProbeLog {
    pub(super) sent: Vec<u64>,
    /// Reply time per sequence number (0: none).
    pub(super) replied: Vec<u64>,
}

pub(super) struct Probes {
    pub(super) log: Arc<Mutex<ProbeLog>>,
    pub(super) stop_send: Arc<AtomicBool>,
    pub(super) stop_recv: Arc<AtomicBool>,
    pub(super) sender: Option<JoinHandle<()>>,
    pub(super) receiver: Option<JoinHandle<()>>,
}

impl Probes {
    pub(super) fn start(client_ns: &str) -> Result<Probes> {
        let sock = netns::try_in_netns(client_ns, || UdpSocket::bind((lab::CLIENT_ADDR, 0)))?
            .context("binding the probe socket")?;
        sock.set_read_timeout(Some(Duration::from_millis(5)))?;
        let rx = sock.try_clone()?;
        let log = Arc::new(Mutex::new(ProbeLog {
            sent: Vec::with_capacity(MAX_PROBES),
            replied: vec![0; MAX_PROBES],
        }));
        let stop_send = Arc::new(AtomicBool::new(false));
        let stop_recv = Arc::new(AtomicBool::new(false));
        let (log_s, stop_s) = (log.clone(), stop_send.clone());
        let to = SocketAddr::from((VIP, 5060));
        let sender = std::thread::Builder::new()
            .name("probe send".into())
            .spawn(move || {
                let period = PROBE_EVERY.as_nanos() as u64;
                let mut next = monotonic_ns();
                for seq in 0..MAX_PROBES {
                    if stop_s.load(Ordering::Relaxed) {
                        break;
                    }
                    sleep_until_ns(next);
                    let msg = format!("p{seq}");
                    let at = monotonic_ns();
                    let _ = sock.send_to(msg.as_bytes(), to);
                    log_s
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .sent
                        .push(at);
                    next += period;
                    let now = monotonic_ns();
                    if next < now {
                        // Late (a busy core): keep the period, skip the backlog.
                        next = now + period / 2;
                    }
                }
            })?;
        let (log_r, stop_r) = (log.clone(), stop_recv.clone());
        let receiver = std::thread::Builder::new()
            .name("probe recv".into())
            .spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(120);
                let mut buf = [0u8; 512];
                while !stop_r.load(Ordering::Relaxed) && Instant::now() < deadline {
                    let Ok((n, _)) = rx.recv_from(&mut buf) else {
                        continue;
                    };
                    let at = monotonic_ns();
                    let text = String::from_utf8_lossy(&buf[..n]);
                    let Some(seq) = text
                        .rsplit(' ')
                        .next()
                        .and_then(|t| t.strip_prefix('p'))
                        .and_then(|s| s.parse::<usize>().ok())
                    else {
                        continue;
                    };
                    let mut l = log_r.lock().unwrap_or_else(|e| e.into_inner());
                    if seq < l.replied.len() && l.replied[seq] == 0 {
                        l.replied[seq] = at;
                    }
                }
            })?;
        Ok(Probes {
            log,
            stop_send,
            stop_recv,
            sender: Some(sender),
            receiver: Some(receiver),
        })
    }

    /// (sent, replied) snapshot.
    pub(super) fn snapshot(&self) -> (Vec<u64>, Vec<u64>) {
        let l = self.log.lock().unwrap_or_else(|e| e.into_inner());
        let n = l.sent.len();
        (l.sent.clone(), l.replied[..n].to_vec())
    }

    /// Whether the last `run` probes sent at least `settle_ns` ago were all answered.
    pub(super) fn answered_run(&self, run: usize, settle_ns: u64, after_ns: u64) -> bool {
        let now = monotonic_ns();
        let l = self.log.lock().unwrap_or_else(|e| e.into_inner());
        let eligible: Vec<usize> = (0..l.sent.len())
            .filter(|&i| l.sent[i] >= after_ns && l.sent[i] + settle_ns <= now)
            .collect();
        eligible.len() >= run
            && eligible[eligible.len() - run..]
                .iter()
                .all(|&i| l.replied[i] != 0)
    }

    pub(super) fn stop(mut self) -> (Vec<u64>, Vec<u64>) {
        self.stop_send.store(true, Ordering::Relaxed);
        if let Some(t) = self.sender.take() {
            let _ = t.join();
        }
        std::thread::sleep(Duration::from_millis(10));
        self.stop_recv.store(true, Ordering::Relaxed);
        if let Some(t) = self.receiver.take() {
            let _ = t.join();
        }
        self.snapshot()
    }
}

impl Drop for Probes {
    fn drop(&mut self) {
        self.stop_send.store(true, Ordering::Relaxed);
        self.stop_recv.store(true, Ordering::Relaxed);
        for t in [self.sender.take(), self.receiver.take()]
            .into_iter()
            .flatten()
        {
            let _ = t.join();
        }
    }
}
