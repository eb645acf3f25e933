//! The card simulator: DAHDI's user ABI served from FUSE mounts, for tests
//! and demos.
//!
//! A [`Simulator`] holds one model ([`model::World`]) of N cards × spans ×
//! channels and the trunks behind them; each card is mounted as its own
//! device root ([`Simulator::mount`]) with `ctl`, `channel` and
//! `chan/SSS/CCC` regular files that answer the same ioctls as a card under
//! `/dev/dahdi`, and raise `POLLPRI` when a channel has an event. The far end
//! of the trunks and fault injection are driven through methods here or the
//! line protocol of [`control`] (also on a Unix socket).
//!
//! Each card's failover-switch watchdog expires by itself: the simulator
//! runs one timer thread ([`Simulator::new`] starts it) that wakes at the
//! next watchdog deadline (at least every [`WATCHDOG_TICK`]) and lets the
//! model expire what is due; it ends once the last handle to the model is
//! gone.
//!
//! The simulator is a device, never a mock inside the control plane: the
//! control plane reaches it only through [`crate::device`], exactly as it
//! reaches a real card. Nothing here is used by the driver.

pub mod control;
mod fs;
mod ioctl;
pub mod model;
pub mod mount;
mod pacer;

use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use nix::errno::Errno;

pub use control::ControlServer;
pub use model::{
    CallState, ChannelReport, ConfigError, ECHO_CANCELLERS, HdlcRate, PseudoTotals, SimConfig,
    SpanReport, ToneZone, ToneZoneReport, WatchdogReport,
};
pub use mount::{MountError, MountOptions, MountScratch, MountedCard, clean_stale_mount, is_mount_point};

use crate::abi;
use crate::device::Alarms;
use fs::SharedWorld;

/// A far-end or fault-injection operation the model refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("simulator: {operation} card {card} span {span} channel {channel}: {errno}")]
pub struct SimError {
    pub operation: &'static str,
    pub card: usize,
    pub span: i32,
    pub channel: i32,
    pub errno: Errno,
}

/// Simulated cards and trunks, shared by every mount and control socket made from it.
#[derive(Clone)]
pub struct Simulator {
    world: SharedWorld,
}

impl Simulator {
    /// Build the model (every span starts shut down) and start the
    /// watchdog timer thread.
    pub fn new(config: SimConfig) -> Result<Simulator, ConfigError> {
        let world = Arc::new(Mutex::new(model::World::new(config)?));
        let weak = Arc::downgrade(&world);
        let spawned = std::thread::Builder::new()
            .name("cardsim-watchdog".into())
            .spawn(move || watchdog_timer(&weak));
        if let Err(e) = spawned {
            // Without the thread no watchdog ever expires: say so loudly.
            tracing::error!(error = %e, "cannot start the watchdog timer thread");
        }
        Ok(Simulator { world })
    }

    /// Card `card`'s failover-switch watchdog and where the relay holds its trunk.
    pub fn watchdog(&self, card: usize) -> Result<WatchdogReport, SimError> {
        fs::lock(&self.world)
            .watchdog_report(card, Instant::now())
            .map_err(|errno| SimError {
                operation: "watchdog",
                card,
                span: 0,
                channel: 0,
                errno,
            })
    }

    /// The configuration the simulator was built from.
    pub fn config(&self) -> SimConfig {
        fs::lock(&self.world).config().clone()
    }

    /// Mount card `card` on the directory `path` (which must exist) and serve it
    /// until the returned guard is dropped.
    pub fn mount(
        &self,
        card: usize,
        path: &Path,
        options: MountOptions,
    ) -> Result<MountedCard, MountError> {
        if card >= self.config().cards {
            return Err(MountError::Mount {
                path: path.to_owned(),
                card,
                source: io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "no such card in the simulator config",
                ),
            });
        }
        MountedCard::mount(self.world.clone(), card, path, options)
    }

    /// Serve the control protocol on a Unix socket at `path`.
    pub fn serve_control(&self, path: &Path) -> io::Result<ControlServer> {
        ControlServer::start(self.world.clone(), path)
    }

    /// Run one control-protocol line (see [`control`]) and return its answer line.
    pub fn execute(&self, line: &str) -> String {
        control::execute(&mut fs::lock(&self.world), line)
    }

    fn far<F>(
        &self,
        operation: &'static str,
        card: usize,
        span: i32,
        channel: i32,
        f: F,
    ) -> Result<(), SimError>
    where
        F: FnOnce(&mut model::World) -> Result<(), Errno>,
    {
        f(&mut fs::lock(&self.world)).map_err(|errno| SimError {
            operation,
            card,
            span,
            channel,
            errno,
        })
    }

    /// The far end calls on the timeslot behind `chan/<span>/<channel>` of `card`.
    pub fn ring(&self, card: usize, span: i32, channel: i32) -> Result<(), SimError> {
        self.far("ring", card, span, channel, |w| {
            w.far_ring(card, span, channel)
        })
    }

    /// The far end answers our ringing on that timeslot.
    pub fn answer(&self, card: usize, span: i32, channel: i32) -> Result<(), SimError> {
        self.far("answer", card, span, channel, |w| {
            w.far_answer(card, span, channel)
        })
    }

    /// The far end hangs up on that timeslot.
    pub fn hangup(&self, card: usize, span: i32, channel: i32) -> Result<(), SimError> {
        self.far("hangup", card, span, channel, |w| {
            w.far_hangup(card, span, channel)
        })
    }

    /// The call state on that timeslot.
    pub fn call(&self, card: usize, span: i32, channel: i32) -> Result<CallState, SimError> {
        fs::lock(&self.world)
            .call(card, span, channel)
            .map_err(|errno| SimError {
                operation: "call",
                card,
                span,
                channel,
                errno,
            })
    }

    /// Replace the injected alarms of a span (`Alarms::NONE` clears them).
    pub fn inject_alarms(&self, card: usize, span: i32, alarms: Alarms) -> Result<(), SimError> {
        self.far("alarm", card, span, 0, |w| {
            w.inject_alarms(card, span, alarms.0)
        })
    }

    /// Cut (`true`) or restore the trunk behind a span.
    pub fn cut_trunk(&self, card: usize, span: i32, cut: bool) -> Result<(), SimError> {
        self.far("cut", card, span, 0, |w| w.cut_trunk(card, span, cut))
    }

    /// Hot-unplug a card.
    pub fn unplug(&self, card: usize) -> Result<(), SimError> {
        self.far("unplug", card, 0, 0, |w| w.unplug(card))
    }

    /// A report of `card` from the model, or the error naming `operation`.
    fn read<T>(
        &self,
        operation: &'static str,
        card: usize,
        f: impl FnOnce(&model::World) -> Result<T, Errno>,
    ) -> Result<T, SimError> {
        f(&fs::lock(&self.world)).map_err(|errno| SimError {
            operation,
            card,
            span: 0,
            channel: 0,
            errno,
        })
    }

    /// The configuration of every channel of `card` (what `dahdi_cfg` left).
    pub fn channels(&self, card: usize) -> Result<Vec<ChannelReport>, SimError> {
        self.read("channels", card, |w| w.channel_report(card))
    }

    /// The tone zones loaded on `card`, and its default zone.
    pub fn tone_zones(&self, card: usize) -> Result<ToneZoneReport, SimError> {
        self.read("tone zones", card, |w| w.tone_zones(card))
    }

    /// What the pseudo channels of `card` did since the simulator started.
    pub fn pseudo_totals(&self, card: usize) -> Result<PseudoTotals, SimError> {
        self.read("pseudo", card, |w| w.pseudo_totals(card))
    }

    /// The ioctl requests `card`'s files were sent that the simulator does
    /// not serve (each answered `ENOTTY`), with how often each came.
    pub fn unserved(&self, card: usize) -> Result<Vec<(abi::IoctlRequest, u64)>, SimError> {
        self.read("unserved", card, |w| w.unserved(card))
    }

    /// The state of every span of `card`.
    pub fn report(&self, card: usize) -> Result<Vec<SpanReport>, SimError> {
        fs::lock(&self.world)
            .report(card)
            .map_err(|errno| SimError {
                operation: "status",
                card,
                span: 0,
                channel: 0,
                errno,
            })
    }
}

/// The longest the watchdog timer thread sleeps: how late an expiry may be
/// judged after a watchdog was armed while the thread slept.
pub const WATCHDOG_TICK: Duration = Duration::from_millis(2);

/// The watchdog timer thread: sleeps until the next watchdog deadline (at
/// most [`WATCHDOG_TICK`]) and expires what is due; returns once the model
/// is dropped.
fn watchdog_timer(world: &Weak<Mutex<model::World>>) {
    loop {
        let Some(world) = world.upgrade() else {
            return;
        };
        let now = Instant::now();
        let next = {
            let mut w = fs::lock(&world);
            for card in w.watchdog_expire(now) {
                tracing::info!(
                    card,
                    "watchdog expired: the failover switch released the card"
                );
            }
            w.next_watchdog_deadline()
        };
        drop(world);
        let sleep = next
            .map(|at| at.saturating_duration_since(Instant::now()))
            .unwrap_or(WATCHDOG_TICK)
            .clamp(Duration::from_micros(200), WATCHDOG_TICK);
        std::thread::sleep(sleep);
    }
}
