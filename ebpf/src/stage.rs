//! The dispatcher's stage pipeline in one place: the per-CPU scratch state
//! passed from one tail-called stage to the next ([`Pkt`], [`SipScratch`],
//! [`LeastScratch`](tandem_common::sched::LeastScratch)), the program
//! array of the stages ([`STAGES`], indexed by [`Stage`]), the SIP modes a
//! stage leaves for the next, and [`Next`], what a stage does with the frame
//! when it returns. It holds no decision: the stages are `entry`, `conn`,
//! `calls` and `new_flow`, and this module imports none of them.
//!
//! ```text
//!                  tandem_xdp (entry)
//!   parse ── Err(Arp) ──────────────► arp ─────────────► Tx | Pass
//!     │ ─── Err(other) ─────────────────────────────────► Pass
//!     ├── echo to/from the hb port ─► echo ────────────► Tx (reflected) | Drop
//!     ├── heartbeat port ───────────► heartbeat ───────► Drop
//!     ├── VIP not owned, or fenced ─────────────────────► Drop (VIP guard)
//!     ├── no service on the port ───► forward::reverse_nat ► Tx | Redirect | Pass | Drop
//!     ├── UDP to a PORT_SIP port ═══► Stage::Sip (sip_mode = MODE_DISPATCH)
//!     └── conn::connections
//!           ├── established, kept ──► forward ─────────► Tx | Redirect | Pass | Drop
//!           │     └ TCP data, SIP ══► Stage::Sip (sip_mode = MODE_LEARN)
//!           ├── no service ─────────► forward::reverse_nat
//!           └── new or expired ═════► Stage::NewFlow | Stage::NewFlowLoad
//!
//!                  tandem_sip (calls, Stage::Sip)
//!   MODE_LEARN ── learn the Call-ID ► forward
//!   MODE_DISPATCH ─ call kept ──────► forward
//!     ├── new or expired call ══════► Stage::NewFlow[Load] (sip_mode = MODE_NEW_CALL)
//!     └── no Call-ID ───────────────► conn::connections (as above)
//!
//!                  tandem_new_flow[_load] (new_flow, Stage::NewFlow[Load])
//!   schedule ── no real server ─────► Drop
//!     └── record the flow or call ──► forward
//! ```
//!
//! `══►` is a tail call: it does not return, unless the slot is empty (the
//! loader fills every slot, so only a broken load gets there; each caller
//! says what it does then). The reference model
//! (`tandem_dataplane::model`) follows the same diagram.

use aya_ebpf::{
    macros::map,
    maps::{PerCpuArray, ProgramArray},
    programs::XdpContext,
};
use tandem_common::{XDP_DROP, XDP_PASS, XDP_REDIRECT, XDP_TX};

/// What a stage does with the frame when it returns (the XDP verdict). The
/// other thing a stage may do next is a tail call to a [`Stage`]
/// ([`tail_call`]), which does not return.
#[repr(u32)]
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Consume the frame (heartbeats, no real server, a failed redirect).
    Drop = XDP_DROP,
    /// Hand the frame to the kernel's stack untouched (and counted).
    Pass = XDP_PASS,
    /// Send the rewritten frame back out of the interface it came in by.
    Tx = XDP_TX,
    /// Send the rewritten frame out of another interface (`TX_PORTS`).
    Redirect = XDP_REDIRECT,
}

/// The later stages of the dispatcher, entered by tail call: their index
/// in [`STAGES`] (the loader fills the same slots, `tandem_common::progs`).
#[repr(u32)]
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// `tandem_new_flow`: schedules a new flow (`new_flow`).
    NewFlow = 0,
    /// `tandem_new_flow_load`: the same for services with
    /// `FLAG_REPORTED_LOAD`.
    NewFlowLoad = 1,
    /// `tandem_sip`: Call-ID scan, `CALLS`, TCP learning (`calls`).
    Sip = 2,
}

/// The stages' program array. Separate programs keep the verifier's work
/// linear: the schedulers' loops and the SIP scanner are verified once,
/// not once per parse path.
#[map]
pub static STAGES: ProgramArray = ProgramArray::with_max_entries(4, 0);

/// Tail-calls `stage`, after making sure the scratch stores reach map
/// memory. Returns only if the stage's slot is empty.
#[inline(always)]
pub fn tail_call(ctx: &XdpContext, stage: Stage) {
    core::sync::atomic::compiler_fence(core::sync::atomic::Ordering::SeqCst);
    // SAFETY: tail_call only returns if the slot is empty.
    unsafe {
        let _ = STAGES.tail_call(ctx, stage as u32);
    }
}

/// `Pkt::sip_mode` values: what the SIP stage and the new-flow stage are
/// asked to do. 0 for every freshly parsed packet.
pub const MODE_NONE: u32 = 0;
/// Entry → SIP stage: a UDP datagram to a `PORT_SIP` port.
pub const MODE_DISPATCH: u32 = 1;
/// Connections → SIP stage: a data segment of an established TCP connection.
pub const MODE_LEARN: u32 = 2;
/// SIP stage → new-flow stage: schedule and record a call.
pub const MODE_NEW_CALL: u32 = 3;

/// The parsed packet and what one stage tells the next. It lives in the
/// per-CPU [`SCRATCH`] map rather than on the stack: values read back
/// from map memory are not tracked precisely by the verifier, so the many
/// parse paths (IPv4/IPv6, VLAN, UDP/TCP) converge to one verifier state
/// before scheduling instead of multiplying its work.
#[repr(C, align(8))]
pub struct Pkt {
    /// Source and destination, IPv4-mapped for IPv4 (first, 8-byte
    /// aligned: copied and compared as 64-bit words).
    pub src: [u8; 16],
    pub dst: [u8; 16],
    /// Offset of the IP header.
    pub l3: usize,
    /// Offset of the UDP/TCP header.
    pub l4: usize,
    pub family: u8,
    pub proto: u8,
    pub sport: u16,
    pub dport: u16,
    /// TCP flags byte (0 for UDP).
    pub tcp_flags: u8,
    /// Set before the new-flow stage: the service id and the time.
    pub service_id: u32,
    pub now: u64,
    /// The UDP/TCP payload: offset from the frame start and length (by the
    /// UDP length field or the IP length, not the frame: padding excluded).
    pub payload_off: usize,
    pub payload_len: usize,
    /// The `PORT_FLAGS` entry of the destination port.
    pub port_flags: u32,
    /// What the next stage is asked to do (`MODE_*`).
    pub sip_mode: u32,
    /// `MODE_LEARN`: the connection's real server slot.
    pub real_idx: u32,
    pub _pad: u32,
    /// `MODE_NEW_CALL`: the Call-ID hash to record.
    pub call_hash: u64,
}

/// Value of [`SIP_SCRATCH`]: the scanner's state and the copy of the
/// payload window it reads (map memory, not stack: 1 KiB would not fit,
/// and the verifier does not track values stored here). The new-flow
/// stage reads the Call-ID text the SIP stage left here for the call's
/// sync event.
#[repr(C, align(8))]
pub struct SipScratch {
    pub scan: tandem_common::sip::Scanner,
    /// The CSeq scanner of a response to a counted call (is it a BYE's?).
    pub cseq: tandem_common::sip::CseqScan,
    pub buf: [u8; tandem_common::sip::SIP_SCAN_LEN],
}

/// Per-CPU scratch space for the parsed packet (see [`Pkt`]).
#[map]
pub static SCRATCH: PerCpuArray<Pkt> = PerCpuArray::with_max_entries(1, 0);
/// Per-CPU scratch of the SIP stage: the payload window and the scanner.
#[map]
pub static SIP_SCRATCH: PerCpuArray<SipScratch> = PerCpuArray::with_max_entries(1, 0);
/// Per-CPU scratch of the least-connection schedulers.
#[map]
pub static LEAST_SCRATCH: PerCpuArray<tandem_common::sched::LeastScratch> =
    PerCpuArray::with_max_entries(1, 0);
