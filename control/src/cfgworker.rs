//! Configurations read and checked off the loop. A reload reads a file
//! (which may sit on a slow disk or a hung NFS mount), reads key files,
//! parses and validates the whole of it and looks up the interfaces it
//! names: none of that may hold the io_uring loop, which keeps sending
//! heartbeats meanwhile. The loop hands a [`Job`] to this worker thread
//! and goes on; the result comes back as a [`Done`], signalled on an
//! eventfd the ring polls (as [`crate::addrworker`] does for addresses).
//!
//! One thread, jobs in order. What it returns is everything the loop
//! needs to apply the configuration without another lookup: the
//! dataplane's services, the heartbeat senders and the SIP probe targets.
//! The thread keeps normal scheduling when the loop runs at a real-time
//! priority.

use std::{
    os::fd::{AsRawFd, OwnedFd, RawFd},
    path::PathBuf,
    sync::{
        Arc, mpsc,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use tandem_dataplane::{HeartbeatSender, ServiceConfig};

use crate::config::{Config, OpenKeys};

/// What to read.
#[derive(Clone, Debug)]
pub enum Source {
    /// A `tandem.toml` on disk.
    File(PathBuf),
    /// This node's configuration with its `[[service]]` tables replaced
    /// by these (the active's, replicated over sync); with `follow`, the
    /// file there is then made to hold them too (so that a restart of
    /// this node runs what the pair runs).
    Services {
        base: Box<Config>,
        services: String,
        follow: Option<PathBuf>,
    },
}

/// A job: what to read, with the caller's ticket (which answers wait on it).
#[derive(Clone, Debug)]
pub struct Job {
    pub ticket: u64,
    pub source: Source,
}

/// A configuration read, checked and resolved for this host.
#[derive(Clone, Debug)]
pub struct Loaded {
    pub cfg: Config,
    /// [`Config::services_toml`] and [`Config::fingerprint`], computed
    /// here: the text of the design maximum takes milliseconds to write.
    pub services_text: String,
    pub fingerprint: u64,
    pub services: Vec<ServiceConfig>,
    pub senders: Vec<HeartbeatSender>,
    pub targets: Vec<crate::sipprobe::Target>,
    /// A `follow` file written with these services (Some(Err): it could
    /// not be; None: not asked, or it held them already).
    pub followed: Option<(PathBuf, Result<(), String>)>,
}

/// A finished job.
#[derive(Debug)]
pub struct Done {
    pub ticket: u64,
    /// The error names the file and every problem found in it.
    pub result: Result<Box<Loaded>, String>,
    /// From the request to its completion (queueing included).
    pub took: Duration,
}

/// Reads, checks and resolves what `source` names; nothing changes. Key
/// material others may read is refused, or under [`OpenKeys::Warn`]
/// logged as a warning (once per reload).
pub fn load(source: &Source, open_keys: OpenKeys) -> Result<Loaded, String> {
    match source {
        Source::File(path) => {
            let (cfg, open) = Config::load_with(path, open_keys).map_err(|e| e.to_string())?;
            for k in open {
                tracing::warn!(path = %k.path.display(), mode = k.mode, "{k}; accepted: --allow-open-keys");
            }
            resolve(cfg)
        }
        Source::Services { base, services, follow } => {
            let cfg = base
                .with_services(services)
                .map_err(|e| format!("the peer's services: {e}"))?;
            let mut loaded = resolve(cfg)?;
            loaded.followed = follow
                .as_ref()
                .and_then(|path| follow_file(path, &loaded).map(|r| (path.clone(), r)));
            Ok(loaded)
        }
    }
}

/// Makes the file at `path` hold the services of `loaded` (its other
/// tables and comments kept), unless it holds them already (None).
fn follow_file(path: &std::path::Path, loaded: &Loaded) -> Option<Result<(), String>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => return Some(Err(format!("cannot read it: {e}"))),
    };
    if Config::parse(&text).is_ok_and(|c| c.fingerprint() == loaded.fingerprint) {
        return None;
    }
    let out = match crate::config::edit::replace_services(&text, &loaded.services_text) {
        Ok(o) => o,
        Err(e) => return Some(Err(e.to_string())),
    };
    Some(crate::config::edit::write_atomically(path, &out).map_err(|e| format!("cannot write it: {e}")))
}

/// The host lookups of a configuration already checked: interface
/// indices of its services and heartbeat senders, its probe targets.
pub fn resolve(cfg: Config) -> Result<Loaded, String> {
    let ifindex = |n: &str| crate::config::ifindex(n);
    let services = cfg.dataplane_services(ifindex).map_err(|e| e.to_string())?;
    let senders = crate::daemon::setup::heartbeat_senders(&cfg, ifindex).map_err(|e| format!("{e:#}"))?;
    let targets = crate::daemon::setup::probe_targets(&cfg);
    let services_text = cfg.services_toml();
    Ok(Loaded {
        fingerprint: crate::config::fingerprint_of(&services_text),
        services_text,
        cfg,
        services,
        senders,
        targets,
        followed: None,
    })
}

/// The worker thread and its queues.
pub struct ConfigWorker {
    tx: Option<mpsc::Sender<(Job, Instant)>>,
    rx: mpsc::Receiver<Done>,
    efd: Arc<OwnedFd>,
    thread: Option<JoinHandle<()>>,
    /// Key material others may read is warned of, not refused.
    allow_open_keys: Arc<AtomicBool>,
}

impl ConfigWorker {
    pub fn start() -> std::io::Result<ConfigWorker> {
        let efd = Arc::new(crate::addrworker::eventfd()?);
        let signal_fd = Arc::clone(&efd);
        let (tx, jobs) = mpsc::channel::<(Job, Instant)>();
        let (done, rx) = mpsc::channel();
        let allow_open_keys = Arc::new(AtomicBool::new(false));
        let allow = Arc::clone(&allow_open_keys);
        let thread = std::thread::Builder::new()
            .name("tandemd-config".into())
            .spawn(move || {
                for (job, asked) in jobs {
                    let open_keys = if allow.load(Ordering::Relaxed) {
                        OpenKeys::Warn
                    } else {
                        OpenKeys::Refuse
                    };
                    let result = load(&job.source, open_keys).map(Box::new);
                    let d = Done {
                        ticket: job.ticket,
                        result,
                        took: asked.elapsed(),
                    };
                    if done.send(d).is_err() {
                        return;
                    }
                    crate::addrworker::signal(&signal_fd);
                }
            })?;
        Ok(ConfigWorker {
            tx: Some(tx),
            rx,
            efd,
            thread: Some(thread),
            allow_open_keys,
        })
    }

    /// What the files read from now on may do with key material others
    /// may read (`tandemd --allow-open-keys`: [`OpenKeys::Warn`]).
    pub fn set_open_keys(&self, policy: OpenKeys) {
        self.allow_open_keys
            .store(policy == OpenKeys::Warn, Ordering::Relaxed);
    }

    /// Queues a job; its result comes back through [`Self::take_done`].
    pub fn request(&self, job: Job) {
        if let Some(tx) = &self.tx {
            let _ = tx.send((job, Instant::now()));
        }
    }

    /// The eventfd that becomes readable when a job finished.
    pub fn fd(&self) -> RawFd {
        self.efd.as_raw_fd()
    }

    /// Clears the eventfd and returns the finished jobs.
    pub fn take_done(&self) -> Vec<Done> {
        let _ = nix::unistd::read(&*self.efd, &mut [0u8; 8]);
        self.rx.try_iter().collect()
    }
}

impl Drop for ConfigWorker {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_file_comes_back_as_an_error_naming_it() {
        let w = ConfigWorker::start().expect("worker");
        let dir = std::env::temp_dir().join(format!("tandem-cfgworker-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bad.toml");
        std::fs::write(&path, "[node]\nid = 0\n").unwrap();
        w.request(Job {
            ticket: 7,
            source: Source::File(path.clone()),
        });
        w.request(Job {
            ticket: 8,
            source: Source::File(dir.join("missing.toml")),
        });
        let mut done = Vec::new();
        let until = Instant::now() + Duration::from_secs(10);
        while done.len() < 2 && Instant::now() < until {
            let mut p = libc::pollfd {
                fd: w.fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            unsafe { libc::poll(&mut p, 1, 100) };
            done.extend(w.take_done());
        }
        assert_eq!(done.iter().map(|d| d.ticket).collect::<Vec<_>>(), vec![7, 8], "in order");
        let e = done[0].result.as_ref().expect_err("refused");
        assert!(e.contains("bad.toml") && e.contains("node.id"), "{e}");
        let e = done[1].result.as_ref().expect_err("refused");
        assert!(e.contains("missing.toml"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
