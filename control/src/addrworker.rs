//! VIP address changes off the loop. Adding or removing an address takes
//! the kernel's RTNL mutex inside the `sendmsg` of the netlink request, so
//! a request waits for whatever else holds it: measured in the failover
//! lab, a takeover whose failed peer's links were going down at the same
//! time waited 5–22 ms for the address. The address on `lo` is not on the
//! serving path (XDP answers ARP for an owned VIP and dispatches its
//! traffic; `lo` only lets the stack accept what XDP passes), so the loop
//! hands the change to this worker thread and goes on: the takeover is done
//! when the dataplane owns the VIP and the first GARP is out.
//!
//! One thread, requests in order (an add then a remove of the same address
//! end removed), each completion posted back and signalled on an eventfd
//! that the io_uring loop polls. The thread keeps normal scheduling even
//! when the loop runs at a real-time priority. A request that fails for a
//! reason that passes (the kernel short of buffers or memory, a lost or
//! late answer: [`retry_after`]) is tried again a few times, a little later
//! each time, before its failure is posted; the operations are idempotent,
//! so a retry after a late acknowledgement only finds the change made.

use std::{
    net::Ipv4Addr,
    os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd},
    sync::{Arc, mpsc},
    thread::JoinHandle,
    time::{Duration, Instant},
};

use crate::vip::{AddressSocket, Change, Interface, VipError};

/// What to do with an address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Add,
    Remove,
}

struct Job {
    op: Op,
    iface: Interface,
    addr: Ipv4Addr,
    prefix_len: u8,
}

/// A finished request.
#[derive(Debug)]
pub struct Done {
    pub op: Op,
    pub addr: Ipv4Addr,
    pub iface: String,
    pub result: Result<Change, VipError>,
    /// From the request to its completion (queueing included).
    pub took: Duration,
    /// How many times it was tried (1 unless a try failed and was retried).
    pub attempts: u32,
}

/// Tries of one request at most.
pub const ATTEMPTS: u32 = 4;

/// How long to wait before trying a request again after try number
/// `attempt` (from 1) failed with `errno`: never for an error that would
/// only repeat, nor after [`ATTEMPTS`] tries; else 10 ms, doubling.
pub fn retry_after(errno: i32, attempt: u32) -> Option<Duration> {
    let passes =
        crate::vip::announce::is_transient(errno) || matches!(errno, libc::EBUSY | libc::ETIMEDOUT);
    (passes && attempt < ATTEMPTS).then(|| Duration::from_millis(10) * (1 << (attempt - 1).min(8)))
}

/// Does one request, retrying as [`retry_after`] says; the last result
/// and the tries made.
fn carry_out(sock: &mut AddressSocket, job: &Job) -> (Result<Change, VipError>, u32) {
    let mut attempt = 1;
    loop {
        let result = match job.op {
            Op::Add => sock.add(&job.iface, job.addr, job.prefix_len),
            Op::Remove => sock.remove(&job.iface, job.addr),
        };
        match result
            .as_ref()
            .err()
            .and_then(|e| retry_after(e.errno(), attempt))
        {
            Some(wait) => {
                tracing::debug!(
                    "vip {} on {}: try {attempt} failed, again in {wait:?}",
                    job.addr,
                    job.iface.name
                );
                std::thread::sleep(wait);
                attempt += 1;
            }
            None => return (result, attempt),
        }
    }
}

/// The worker thread and its queues.
pub struct AddressWorker {
    tx: Option<mpsc::Sender<(Job, Instant)>>,
    rx: mpsc::Receiver<Done>,
    /// Shared with the thread, which signals completions on it.
    efd: Arc<OwnedFd>,
    thread: Option<JoinHandle<()>>,
}

pub(crate) fn eventfd() -> std::io::Result<OwnedFd> {
    // nix's EventFd is behind its `event` feature, which the workspace
    // does not turn on: the one raw call left here.
    // SAFETY: plain eventfd(2); the result is checked before use.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Adds one to the eventfd's counter (it cannot overflow here: the loop
/// reads it to zero).
pub(crate) fn signal(fd: &OwnedFd) {
    let _ = nix::unistd::write(fd, &1u64.to_ne_bytes());
}

impl AddressWorker {
    /// Opens the netlink socket (in the caller's network namespace, which
    /// the thread shares) and starts the thread.
    pub fn start() -> Result<AddressWorker, VipError> {
        let mut sock = AddressSocket::open()?;
        let efd = Arc::new(eventfd().map_err(VipError::Netlink)?);
        let signal_fd = Arc::clone(&efd);
        let (tx, jobs) = mpsc::channel::<(Job, Instant)>();
        let (done, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("tandemd-addr".into())
            .spawn(move || {
                for (job, asked) in jobs {
                    let (result, attempts) = carry_out(&mut sock, &job);
                    let d = Done {
                        op: job.op,
                        addr: job.addr,
                        iface: job.iface.name.clone(),
                        result,
                        took: asked.elapsed(),
                        attempts,
                    };
                    if done.send(d).is_err() {
                        return;
                    }
                    signal(&signal_fd);
                }
            })
            .map_err(VipError::Netlink)?;
        Ok(AddressWorker {
            tx: Some(tx),
            rx,
            efd,
            thread: Some(thread),
        })
    }

    /// Queues a change; its completion comes back through [`Self::take_done`].
    pub fn request(&self, op: Op, iface: &Interface, addr: Ipv4Addr, prefix_len: u8) {
        if let Some(tx) = &self.tx {
            let _ = tx.send((
                Job {
                    op,
                    iface: iface.clone(),
                    addr,
                    prefix_len,
                },
                Instant::now(),
            ));
        }
    }

    /// The eventfd that becomes readable when a request completed.
    pub fn fd(&self) -> RawFd {
        self.efd.as_raw_fd()
    }

    /// Clears the eventfd and returns the completed requests.
    pub fn take_done(&self) -> Vec<Done> {
        // Non-blocking: nothing to clear is EAGAIN, which changes nothing.
        let _ = nix::unistd::read(&*self.efd, &mut [0u8; 8]);
        self.rx.try_iter().collect()
    }

    /// Finishes the queued requests and stops the thread; their results.
    pub fn finish(&mut self) -> Vec<Done> {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.rx.try_iter().collect()
    }
}

impl Drop for AddressWorker {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_failures_are_retried_a_bounded_number_of_times() {
        assert_eq!(
            retry_after(libc::ENOBUFS, 1),
            Some(Duration::from_millis(10))
        );
        assert_eq!(
            retry_after(libc::EAGAIN, 2),
            Some(Duration::from_millis(20))
        );
        assert_eq!(retry_after(libc::EBUSY, 3), Some(Duration::from_millis(40)));
        assert_eq!(retry_after(libc::ENOBUFS, ATTEMPTS), None);
        // What would only fail again is not retried.
        for errno in [libc::EPERM, libc::ENODEV, libc::EINVAL, libc::EADDRNOTAVAIL] {
            assert_eq!(retry_after(errno, 1), None, "errno {errno}");
        }
    }

    #[test]
    fn privileged_requests_complete_in_order_and_signal() {
        use tandem_tests::privileged::{Need, require};
        if !require(
            "privileged_requests_complete_in_order_and_signal",
            &[Need::Root("rtnetlink address changes")],
        ) {
            return;
        }
        // In a fresh network namespace of this thread's own, so that the
        // host's lo is untouched: the worker thread is spawned after the
        // unshare and shares it.
        std::thread::spawn(|| {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
                .expect("unshare(CLONE_NEWNET)");
            let lo = Interface::by_name("lo").unwrap();
            let w = AddressWorker::start().unwrap();
            let a = Ipv4Addr::new(198, 18, 200, 1);
            w.request(Op::Add, &lo, a, 32);
            w.request(Op::Add, &lo, a, 32);
            w.request(Op::Remove, &lo, a, 32);
            let mut got = Vec::new();
            let end = Instant::now() + Duration::from_secs(5);
            while got.len() < 3 && Instant::now() < end {
                let mut pfd = libc::pollfd {
                    fd: w.fd(),
                    events: libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: one valid pollfd.
                unsafe { libc::poll(&mut pfd, 1, 100) };
                got.extend(w.take_done());
            }
            let changes: Vec<_> = got
                .iter()
                .map(|d| (d.op, d.result.as_ref().ok().copied()))
                .collect();
            assert_eq!(
                changes,
                vec![
                    (Op::Add, Some(Change::Added)),
                    (Op::Add, Some(Change::AlreadyPresent)),
                    (Op::Remove, Some(Change::Removed))
                ]
            );
            let mut s = AddressSocket::open().unwrap();
            assert!(!s.contains(&lo, a).unwrap());
        })
        .join()
        .unwrap();
    }
}
