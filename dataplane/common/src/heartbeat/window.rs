//! Which authenticated heartbeat a receiver takes, given what it took last
//! from the same sender on the same path: the one admission rule, a pure
//! function ([`admit`]) compiled into the XDP program and into the host
//! (tests, the model). It sees only a MAC-verified message of a configured
//! sender; it keeps no state of its own and reads no clock (the caller
//! passes `now`, CLOCK_MONOTONIC in the kernel). Straight-line code: no
//! loops, no allocation, every sum saturating.
//!
//! A sender draws a random boot id when its process starts and counts its
//! sequence from 1 within that boot. The receiver keeps a [`Window`] per
//! sender and path: the boot it follows, the boot that boot replaced, the
//! last sequence it took and when. Then:
//!
//! 1. **No record, or a stale one** (nothing taken for [`STALE_NS`]):
//!    taken, whatever its boot and sequence: first contact. (A sender
//!    heard again after a long silence — a link down while it restarted
//!    and counted past [`RESTART_SEQS`] — is heard again at once.)
//! 2. **Same boot**: taken iff `last.seq < seq ≤ last.seq + allowance`,
//!    `allowance = WINDOW + silence / NS_PER_EXTRA_SEQ` (4096 plus about 10
//!    per millisecond since the last one taken: a sender sends far less).
//!    Not above: [`Reject::Replay`]. Beyond: [`Reject::SeqJump`]. Neither
//!    moves the window: a forged sequence of 2^64−1 is refused and the
//!    sender's next real heartbeat is still taken.
//! 3. **Another boot, record fresh**: taken iff `seq ≤ RESTART_SEQS` (a
//!    restarted sender counts from 1), the boot is not the one the
//!    current boot replaced (no flip back to it), and the current boot
//!    has been silent for the sender's *restart gap* (the caller's
//!    `restart_gap_ns`: two heartbeat intervals for a director) — a
//!    process that restarts is silent longer than that, a sender that is
//!    sending is not; else [`Reject::StaleBoot`]. The replaced boot is
//!    remembered as `prev_boot`.
//!
//! What it cannot do, being one-way with no challenge: tell a replayed
//! capture from the sender when the capture's boot is new to it and the
//! sender is silent. A recording of some earlier boot's first
//! [`RESTART_SEQS`] heartbeats, replayed with the sender's address on the
//! sender's path, is taken as a restart (rule 3) once the real sender has
//! missed its restart gap, and one replayed to a receiver with no record
//! (it just started) as first contact; the real sender is then refused
//! ([`Reject::StaleBoot`]) until the replay stops for [`STALE_NS`] or its
//! boot is replaced — at most [`RESTART_SEQS`] replayed heartbeats per
//! recorded boot. Boot 0 is never drawn by a sender; `prev_boot` 0 means
//! "none".

/// Sequences a sender may advance by between two heartbeats taken with no
/// silence between them.
pub const WINDOW: u64 = 4096;
/// Silence that adds one sequence to the window (10 per millisecond).
pub const NS_PER_EXTRA_SEQ: u64 = 100_000;
/// Highest sequence a new boot may start being heard at while the record
/// of the boot it replaces is fresh.
pub const RESTART_SEQS: u64 = 4096;
/// A record with nothing taken for this long no longer binds: the next
/// authenticated heartbeat is first contact.
pub const STALE_NS: u64 = 5_000_000_000;

/// What a receiver last took from one sender on one path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Window {
    /// The boot it follows.
    pub boot: u64,
    /// The boot `boot` replaced (0: none), refused from now on while the
    /// record is fresh.
    pub prev_boot: u64,
    /// The last sequence taken in `boot`.
    pub seq: u64,
    /// When it was taken (the caller's clock, ns).
    pub seen_ns: u64,
}

/// Why a heartbeat was not taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reject {
    /// Same boot, sequence not above the last taken.
    Replay,
    /// Same boot, sequence beyond the window.
    SeqJump,
    /// Another boot while the record is fresh: the replaced boot, or a
    /// sequence a restarted sender cannot have reached yet.
    StaleBoot,
}

/// The admission rule (module doc): the window after taking (`boot`,
/// `seq`) at `now_ns`, or why not. `last` is what was taken before from
/// the same sender and path (`None`: nothing); `restart_gap_ns` the
/// silence of the current boot after which a new boot may replace it.
#[inline(always)]
pub fn admit(
    last: Option<&Window>,
    boot: u64,
    seq: u64,
    now_ns: u64,
    restart_gap_ns: u64,
) -> Result<Window, Reject> {
    let taken = |prev_boot| Window { boot, prev_boot, seq, seen_ns: now_ns };
    let Some(last) = last else {
        return Ok(taken(0));
    };
    let silence = now_ns.saturating_sub(last.seen_ns);
    if silence >= STALE_NS {
        let prev = if boot == last.boot { last.prev_boot } else { last.boot };
        return Ok(taken(prev));
    }
    if boot == last.boot {
        if seq <= last.seq {
            return Err(Reject::Replay);
        }
        let allowance = WINDOW.saturating_add(silence / NS_PER_EXTRA_SEQ);
        if seq > last.seq.saturating_add(allowance) {
            return Err(Reject::SeqJump);
        }
        return Ok(taken(last.prev_boot));
    }
    if seq > RESTART_SEQS || (last.prev_boot != 0 && boot == last.prev_boot) || silence < restart_gap_ns {
        return Err(Reject::StaleBoot);
    }
    Ok(taken(last.boot))
}
