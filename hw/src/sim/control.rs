//! The simulator's control interface: a line protocol for the far end of the
//! trunks and for fault injection, served on a Unix socket.
//!
//! This module owns the protocol (parsing a command, running it against the
//! model, one line of answer) and the socket server. Cards are numbered from
//! 0, spans and channels from 1, as in the device tree:
//!
//! ```text
//! ring CARD SPAN CHAN        far end calls the timeslot behind chan/SPAN/CHAN
//! answer CARD SPAN CHAN      far end answers our ringing
//! hangup CARD SPAN CHAN      far end hangs up
//! call CARD SPAN CHAN        → ok idle|ringing|alerting|answered|on-hold|hung-up|orphaned
//! alarm CARD SPAN ALARMS     inject alarms on a span: RED,LOS / YELLOW / none
//! cut CARD SPAN              cut the trunk behind a span (its carrier sees RED|LOS)
//! restore CARD SPAN          restore it
//! unplug CARD                hot-unplug a card (its files answer ENODEV)
//! watchdog CARD              → ok armed=yes timeout_ms=100 since_kick_ms=12 expired=0 released=no relay=0
//! status CARD                → ok span=1 running=yes carrier=yes trunk=0 alarms=OK calls=idle,… ; span=2 …
//! ```
//!
//! Every answer is one line: `ok[ detail]` or `error: reason`. It must not
//! reach into FUSE: it only calls the model, which wakes pollers itself.

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use nix::errno::Errno;

use super::fs::{SharedWorld, lock};
use super::model::World;
use crate::device::Alarms;

/// Run one command line against the model; the answer line, without newline.
pub fn execute(world: &mut World, line: &str) -> String {
    match run(world, line) {
        Ok(detail) if detail.is_empty() => "ok".to_string(),
        Ok(detail) => format!("ok {detail}"),
        Err(reason) => format!("error: {reason}"),
    }
}

fn run(world: &mut World, line: &str) -> Result<String, String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let Some((&command, args)) = words.split_first() else {
        return Err("empty command".into());
    };
    let number = |i: usize, what: &str| -> Result<i64, String> {
        let text = args
            .get(i)
            .ok_or_else(|| format!("{command}: missing {what}"))?;
        text.parse::<i64>()
            .map_err(|_| format!("{command}: {what} must be a number, got {text:?}"))
    };
    let card = || -> Result<usize, String> {
        let n = number(0, "card")?;
        usize::try_from(n).map_err(|_| format!("{command}: card must be 0 or more, got {n}"))
    };
    let span = || -> Result<i32, String> { Ok(number(1, "span")? as i32) };
    let chan = || -> Result<i32, String> { Ok(number(2, "channel")? as i32) };
    let refused = |errno: Errno| format!("{command} {}: {errno}", args.join(" "));

    match command {
        "ring" => world.far_ring(card()?, span()?, chan()?).map_err(refused)?,
        "answer" => world
            .far_answer(card()?, span()?, chan()?)
            .map_err(refused)?,
        "hangup" => world
            .far_hangup(card()?, span()?, chan()?)
            .map_err(refused)?,
        "call" => {
            let state = world.call(card()?, span()?, chan()?).map_err(refused)?;
            return Ok(state.to_string());
        }
        "alarm" => {
            let text = args
                .get(2)
                .ok_or("alarm: missing alarm names (RED,LOS or none)")?;
            let alarms = Alarms::parse(text)
                .ok_or_else(|| format!("alarm: unknown alarm name in {text:?}"))?;
            world
                .inject_alarms(card()?, span()?, alarms.0)
                .map_err(refused)?;
        }
        "cut" => world.cut_trunk(card()?, span()?, true).map_err(refused)?,
        "restore" => world.cut_trunk(card()?, span()?, false).map_err(refused)?,
        "unplug" => world.unplug(card()?).map_err(refused)?,
        "watchdog" => {
            let r = world
                .watchdog_report(card()?, std::time::Instant::now())
                .map_err(refused)?;
            let yes = |b: bool| if b { "yes" } else { "no" };
            return Ok(format!(
                "armed={} timeout_ms={} since_kick_ms={} expired={} released={} relay={}",
                yes(r.armed),
                r.timeout.as_millis(),
                r.since_kick
                    .map_or("never".to_string(), |d| d.as_millis().to_string()),
                r.expired,
                yes(r.released),
                r.relay_holder.map_or("none".to_string(), |c| c.to_string()),
            ));
        }
        "status" => {
            let spans = world.report(card()?).map_err(refused)?;
            let text: Vec<String> = spans
                .iter()
                .map(|s| {
                    let calls: Vec<String> = s.calls.iter().map(ToString::to_string).collect();
                    format!(
                        "span={} running={} carrier={} trunk={} alarms={} calls={}",
                        s.span,
                        if s.running { "yes" } else { "no" },
                        if s.carrier { "yes" } else { "no" },
                        s.trunk,
                        Alarms(s.alarms),
                        calls.join(",")
                    )
                })
                .collect();
            return Ok(text.join(" ; "));
        }
        other => return Err(format!("unknown command {other:?}")),
    }
    Ok(String::new())
}

/// Send one command to a simulator's control socket and read its answer line.
pub fn request(socket: &Path, line: &str, timeout: Duration) -> io::Result<String> {
    let mut stream = UnixStream::connect(socket)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.write_all(line.trim_end().as_bytes())?;
    stream.write_all(b"\n")?;
    let mut answer = String::new();
    BufReader::new(stream).read_line(&mut answer)?;
    if answer.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "control socket closed without an answer",
        ));
    }
    Ok(answer.trim_end().to_string())
}

/// The control socket, served from a background thread until dropped.
#[derive(Debug)]
pub struct ControlServer {
    path: PathBuf,
    stopping: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ControlServer {
    pub(crate) fn start(world: SharedWorld, path: &Path) -> io::Result<ControlServer> {
        // A socket left behind by an earlier run is replaced; any other file is not touched.
        if let Ok(meta) = std::fs::symlink_metadata(path)
            && meta.file_type().is_socket()
        {
            std::fs::remove_file(path)?;
        }
        let listener = UnixListener::bind(path)?;
        let stopping = Arc::new(AtomicBool::new(false));
        let stop = stopping.clone();
        let thread = std::thread::Builder::new()
            .name("cardsim-control".into())
            .spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    match stream {
                        Ok(stream) => {
                            let world = world.clone();
                            let spawned = std::thread::Builder::new()
                                .name("cardsim-client".into())
                                .spawn(move || serve_client(&world, stream));
                            if let Err(e) = spawned {
                                tracing::warn!(error = %e, "cannot serve a control client");
                            }
                        }
                        Err(e) => tracing::warn!(error = %e, "control socket accept failed"),
                    }
                }
            })?;
        Ok(ControlServer {
            path: path.to_owned(),
            stopping,
            thread: Some(thread),
        })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = UnixStream::connect(&self.path);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

fn serve_client(world: &SharedWorld, stream: UnixStream) {
    let Ok(reader) = stream.try_clone() else {
        return;
    };
    let mut writer = stream;
    for line in BufReader::new(reader).lines() {
        let Ok(line) = line else {
            return;
        };
        if line.trim().is_empty() {
            continue;
        }
        let answer = execute(&mut lock(world), &line);
        if writer
            .write_all(answer.as_bytes())
            .and_then(|()| writer.write_all(b"\n"))
            .is_err()
        {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::model::SimConfig;

    #[test]
    fn commands_drive_the_model_and_answer_in_one_line() {
        let mut world = World::new(SimConfig {
            spans: 1,
            channels: 2,
            ..SimConfig::default()
        })
        .expect("config");
        assert_eq!(execute(&mut world, "call 0 1 1"), "ok idle");
        assert_eq!(execute(&mut world, "ring 0 1 1"), "ok");
        assert_eq!(execute(&mut world, "call 0 1 1"), "ok ringing");
        assert!(execute(&mut world, "ring 0 1 1").starts_with("error: ring 0 1 1: EBUSY"));
        assert_eq!(execute(&mut world, "alarm 0 1 red,los"), "ok");
        assert_eq!(
            execute(&mut world, "status 0"),
            "ok span=1 running=no carrier=no trunk=0 alarms=RED|NOTOPEN|LOS calls=ringing,idle"
        );
        assert_eq!(execute(&mut world, "alarm 0 1 none"), "ok");
        assert!(
            execute(&mut world, "alarm 0 1 purple").starts_with("error: alarm: unknown alarm name")
        );
        assert!(execute(&mut world, "ring 0 x 1").contains("span must be a number"));
        assert!(execute(&mut world, "ring 0 1 9").contains("EINVAL"));
        assert!(execute(&mut world, "fly").contains("unknown command"));
        assert!(execute(&mut world, "").contains("empty command"));
    }
}
