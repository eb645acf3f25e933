//! The faults of the campaign: what each is, whom it befalls, and how many
//! acquisitions of the active role it may cause. How a fault is injected
//! and repaired lives with the lab it acts on ([`super::rig`]).

use std::time::Duration;

/// How long a hang (SIGSTOP), a link down, a partition, an alarm, a cut
/// trunk or a CPU hog lasts before it is undone.
pub const FAULT_HOLD: Duration = Duration::from_secs(2);
/// How long the heartbeat paths lose packets in [`Fault::HeartbeatLoss`].
pub const LOSS_HOLD: Duration = Duration::from_secs(10);
/// The share of heartbeat packets [`Fault::HeartbeatLoss`] drops, %.
pub const LOSS_PERCENT: u32 = 30;

/// The faults of the campaign.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    /// `kill -9` of the active's daemon; restarted after the takeover.
    Kill9,
    /// SIGSTOP of the active's daemon for [`FAULT_HOLD`], then SIGCONT.
    Hang,
    /// The active's links down and its daemon killed at once (a machine
    /// crash); links back and daemon restarted after the takeover.
    Crash,
    /// The active's service link (`eth0`) down for [`FAULT_HOLD`].
    ServiceLinkDown,
    /// The heartbeat link (`hb0`) of the active down for [`FAULT_HOLD`]:
    /// heartbeats go on over the service network, so no role change.
    HeartbeatLinkCut,
    /// Both links of the active down for [`FAULT_HOLD`] (a full partition:
    /// the standby takes over, the witness tells it the service network
    /// is still there), then both back (the heal: one active remains).
    Partition,
    /// [`LOSS_PERCENT`] % of the packets each director sends to the other
    /// on both heartbeat paths dropped at random for [`LOSS_HOLD`]
    /// (nftables `numgen random` in each director's namespace: there is no
    /// netem here). No role change may follow.
    HeartbeatLoss,
    /// A SCHED_FIFO busy loop at the daemons' own priority pinned to the
    /// CPU the active's daemon last ran on, for [`FAULT_HOLD`]. No role
    /// change, or a clean one.
    CpuStarvation,
    /// RED alarm on the active's span for [`FAULT_HOLD`] (its card only:
    /// the standby's span is fine, so the trunk moves to it).
    RedAlarm,
    /// The shared trunk itself cut for [`FAULT_HOLD`]: both spans see it;
    /// one handover, no bouncing; restored after.
    TrunkCut,
    /// One IVR killed (SIPp and its heartbeats); restarted after.
    IvrKill,
    /// One IVR's SIPp stopped (SIGSTOP) for [`FAULT_HOLD`] while its
    /// heartbeats go on.
    IvrHang,
    /// `kill -9` of the standby's daemon while new calls are being set up,
    /// restarted at once: its resync (the snapshot) while calls flow.
    StandbyKill,
    /// `tandemctl switchover` on the active while calls are set up.
    Switchover,
}

impl Fault {
    pub const ALL: [Fault; 14] = [
        Fault::Kill9,
        Fault::Hang,
        Fault::Crash,
        Fault::ServiceLinkDown,
        Fault::HeartbeatLinkCut,
        Fault::Partition,
        Fault::HeartbeatLoss,
        Fault::CpuStarvation,
        Fault::RedAlarm,
        Fault::TrunkCut,
        Fault::IvrKill,
        Fault::IvrHang,
        Fault::StandbyKill,
        Fault::Switchover,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Fault::Kill9 => "kill9",
            Fault::Hang => "hang",
            Fault::Crash => "crash",
            Fault::ServiceLinkDown => "service_link_down",
            Fault::HeartbeatLinkCut => "heartbeat_link_cut",
            Fault::Partition => "partition",
            Fault::HeartbeatLoss => "heartbeat_loss",
            Fault::CpuStarvation => "cpu_starvation",
            Fault::RedAlarm => "red_alarm",
            Fault::TrunkCut => "trunk_cut",
            Fault::IvrKill => "ivr_kill",
            Fault::IvrHang => "ivr_hang",
            Fault::StandbyKill => "standby_kill",
            Fault::Switchover => "switchover",
        }
    }

    pub fn parse(s: &str) -> Option<Fault> {
        Fault::ALL.into_iter().find(|f| f.name() == s)
    }

    /// Whether it befalls a director (the targets for director
    /// faults: no established call lost, MTTR p99 ≤ 10 ms).
    pub fn on_director(self) -> bool {
        !matches!(self, Fault::IvrKill | Fault::IvrHang)
    }

    /// Whether it befalls an IVR: the calls that IVR held are its own.
    pub fn on_ivr(self) -> bool {
        !self.on_director()
    }

    /// The least and the most acquisitions of the active role it calls for
    /// (a partition's heal may hand the role back: 2; a starved node may
    /// hand over cleanly or not at all).
    pub fn role_changes(self) -> (u64, u64) {
        match self {
            Fault::Kill9
            | Fault::Hang
            | Fault::Crash
            | Fault::ServiceLinkDown
            | Fault::RedAlarm
            | Fault::TrunkCut
            | Fault::Switchover => (1, 1),
            Fault::Partition => (1, 2),
            Fault::CpuStarvation => (0, 1),
            Fault::HeartbeatLinkCut
            | Fault::HeartbeatLoss
            | Fault::IvrKill
            | Fault::IvrHang
            | Fault::StandbyKill => (0, 0),
        }
    }

    /// The bench waits for the standby to take over (it must).
    pub fn moves_role(self) -> bool {
        self.role_changes().0 > 0
    }

    /// The faults the thesis's availability model has, by its names.
    pub fn availability_name(self) -> Option<&'static str> {
        match self {
            Fault::Crash => Some("crash"),
            Fault::Kill9 => Some("kill9"),
            Fault::Hang => Some("hang"),
            Fault::ServiceLinkDown => Some("link_down"),
            Fault::RedAlarm => Some("card"),
            _ => None,
        }
    }

    /// Whether it needs `nft` (Debian's `nftables`).
    pub fn needs_nft(self) -> bool {
        self == Fault::HeartbeatLoss
    }

    /// Whether it needs `stress-ng`.
    pub fn needs_stress_ng(self) -> bool {
        self == Fault::CpuStarvation
    }
}
