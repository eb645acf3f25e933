//! Running programs on frames without an interface: the dispatcher once
//! (`BPF_PROG_TEST_RUN`, [`Dataplane::test_run`]), the benchmark wrapper
//! that restores the frame before every iteration
//! ([`Dataplane::bench_run`]), live XDP frames, and the benchmark sink and
//! baseline forwarder attached to interfaces; [`BenchRunner`] runs the
//! wrapper from another thread.
//!
//! Tests and benchmarks only: the daemon runs none of this. The benchmark
//! programs are their own object (`tandem-bench`), loaded beside the
//! dataplane on first use ([`Dataplane::load_bench`]), so that a daemon's
//! dataplane holds none of them.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use aya::programs::{ProgramError, TestRun, TestRunOptions};
use tandem_common::*;

use crate::{
    AttachMode, Attached, Dataplane, Error,
    error::map_err,
    handles::{BenchMaps, BenchObject},
    loader::{BENCH_OBJECT, load_xdp},
};

impl Dataplane {
    /// Loads the benchmark object (its programs and maps) beside the
    /// dataplane, if it is not loaded yet. The benchmark methods below call
    /// it themselves; call it first to see a load error up front.
    pub fn load_bench(&mut self) -> Result<(), Error> {
        self.bench().map(|_| ())
    }

    /// The benchmark object's maps, loading the object on first use.
    fn bench(&mut self) -> Result<&mut BenchMaps, Error> {
        let bench = match self.maps.bench.take() {
            Some(b) => b,
            None => {
                let mut ebpf = aya::EbpfLoader::new().load(BENCH_OBJECT)?;
                for name in progs::BENCH {
                    load_xdp(&mut ebpf, name)?;
                }
                let maps = BenchMaps::take(&mut ebpf)?;
                BenchObject { ebpf, maps }
            }
        };
        Ok(&mut self.maps.bench.insert(bench).maps)
    }

    /// Runs the dispatcher once on `frame` (`BPF_PROG_TEST_RUN`).
    pub fn test_run(&mut self, frame: &[u8]) -> Result<RunResult, Error> {
        self.run_prog(progs::DISPATCH, frame, 1)
    }

    fn run_prog(
        &mut self,
        name: &'static str,
        frame: &[u8],
        repeat: u32,
    ) -> Result<RunResult, Error> {
        let mut out = vec![0u8; frame.len() + 256];
        let prog = self.xdp(name)?;
        let mut opts = TestRunOptions::new();
        opts.data_in = Some(frame);
        opts.data_out = Some(&mut out);
        opts.repeat = repeat;
        let r = prog
            .test_run(opts)
            .map_err(|source| Error::Program { name, source })?;
        out.truncate(r.data_size_out as usize);
        Ok(RunResult {
            verdict: r.return_value,
            frame: out,
            duration_ns: r.duration.as_nanos() as u64,
        })
    }

    /// Benchmarks a program on `frame` through the restoring wrapper:
    /// `repeat` iterations, each starting from the original frame. Returns
    /// the verdict of the last iteration and the kernel's average ns/run.
    ///
    /// With `vary_off`, a running counter is written at that offset of the
    /// frame before each iteration (every iteration a new flow).
    pub fn bench_run(
        &mut self,
        target: BenchTarget,
        frame: &[u8],
        repeat: u32,
        vary_off: Option<u32>,
    ) -> Result<RunResult, Error> {
        if frame.len() > BENCH_FRAME_MAX {
            return Err(Error::BenchFrameTooLong(frame.len()));
        }
        let mut bf = BenchFrame {
            len: frame.len() as u32,
            vary_off: vary_off.unwrap_or(0),
            seq: self.bench_seq,
            _pad: 0,
            data: [0; BENCH_FRAME_MAX],
        };
        bf.data[..frame.len()].copy_from_slice(frame);
        self.bench()?
            .frame
            .set(0, bf, 0)
            .map_err(map_err(maps::BENCH_FRAME))?;
        let name = match target {
            BenchTarget::Dispatch => progs::DISPATCH,
            BenchTarget::TrivialTx => progs::TRIVIAL_TX,
        };
        let fd = self.prog_fd(name)?;
        self.bench()?
            .target
            .set(0, &fd, 0)
            .map_err(map_err(maps::BENCH_TARGET))?;
        let r = self.run_prog(progs::BENCH_RESTORE, frame, repeat)?;
        // The next run continues the sequence: its flows are new again.
        self.bench_seq = self.bench_seq.wrapping_add(repeat);
        Ok(r)
    }

    /// Attaches the benchmark sink (count and drop) to `iface`.
    pub fn attach_sink(&mut self, iface: &str) -> Result<Attached, Error> {
        self.load_bench()?;
        self.attach_prog(progs::SINK, iface, AttachMode::Native)
    }

    /// Attaches the baseline forwarder to `iface`: every frame is
    /// redirected to `to_ifindex` (in the calling thread's network
    /// namespace, like [`Dataplane::add_tx_port`]).
    pub fn attach_trivial_forwarder(&mut self, iface: &str, to_ifindex: u32) -> Result<Attached, Error> {
        let bench = self.bench()?;
        bench
            .tx_ports
            .insert(to_ifindex, to_ifindex, None, 0)
            .map_err(|source| Error::DevMap { ifindex: to_ifindex, source })?;
        bench.fwd.set(0, to_ifindex, 0).map_err(map_err(maps::BENCH_FWD))?;
        self.attach_prog(progs::BENCH_FWD, iface, AttachMode::Native)
    }

    /// Frames the sink has counted, over all CPUs (0 before the benchmark
    /// object is loaded).
    pub fn sink_count(&self) -> Result<u64, Error> {
        let Some(bench) = &self.maps.bench else {
            return Ok(0);
        };
        let v = bench.maps.count.get(&0, 0).map_err(map_err(maps::BENCH_COUNT))?;
        Ok(v.iter().sum())
    }

    /// Sends `repeat` copies of `frame` out of `ifindex` (in the calling
    /// thread's network namespace) as XDP live frames: the trivial XDP_TX
    /// program runs on each and the kernel transmits it for real.
    pub fn live_generate(&mut self, ifindex: u32, frame: &[u8], repeat: u32, batch: u32) -> Result<(), Error> {
        // struct xdp_md: data, data_end, data_meta, ingress_ifindex,
        // rx_queue_index, egress_ifindex (u32 each).
        // The kernel wants data = 0 and data_end = the frame's length.
        let mut ctx = [0u8; 24];
        ctx[4..8].copy_from_slice(&(frame.len() as u32).to_ne_bytes());
        ctx[12..16].copy_from_slice(&ifindex.to_ne_bytes());
        self.load_bench()?;
        let name = progs::TRIVIAL_TX;
        let prog = self.xdp(name)?;
        let mut opts = TestRunOptions::new();
        opts.data_in = Some(frame);
        opts.ctx_in = Some(&ctx);
        opts.repeat = repeat;
        opts.attrs = aya::programs::TestRunAttrs::new().xdp_live_frames(batch);
        prog.test_run(opts).map_err(|source| Error::Program { name, source })?;
        Ok(())
    }
}

/// Result of one `BPF_PROG_TEST_RUN`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunResult {
    pub verdict: u32,
    pub frame: Vec<u8>,
    /// Average run time per repetition as the kernel measured it.
    pub duration_ns: u64,
}

/// What [`Dataplane::bench_run`] measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BenchTarget {
    Dispatch,
    TrivialTx,
}

/// The benchmark wrapper, run from another thread while its [`Dataplane`]
/// is in use: for tests of the program and the host writing the same maps
/// at once. It holds its own descriptor of the wrapper and runs on what
/// the last [`Dataplane::bench_run`] set up (frame, target, varying
/// offset); the wrapper's counter goes on from one run to the next, so
/// with a varying offset every iteration is a new flow.
pub struct BenchRunner {
    fd: OwnedFd,
}

impl Dataplane {
    /// A [`BenchRunner`] of this dataplane's benchmark wrapper.
    pub fn bench_runner(&mut self) -> Result<BenchRunner, Error> {
        self.load_bench()?;
        let name = progs::BENCH_RESTORE;
        let fd = self.prog_fd(name)?;
        let fd = fd
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| Error::Program { name, source: ProgramError::IOError(e) })?;
        Ok(BenchRunner { fd })
    }
}

impl BenchRunner {
    /// Runs the wrapper `repeat` times (`BPF_PROG_TEST_RUN`; the wrapper
    /// replaces `frame` with its own copy) and returns the verdict of the
    /// last iteration.
    pub fn run(&self, frame: &[u8], repeat: u32) -> std::io::Result<u32> {
        let mut attr = TestRunAttr {
            prog_fd: self.fd.as_raw_fd() as u32,
            data_size_in: frame.len() as u32,
            data_in: frame.as_ptr() as u64,
            repeat,
            ..TestRunAttr::default()
        };
        let size = std::mem::size_of::<TestRunAttr>() as libc::c_uint;
        // SAFETY: attr has the layout of the BPF_PROG_TEST_RUN member of
        // `union bpf_attr` and size is its own; data_in points to
        // data_size_in readable bytes that outlive the call; no output
        // buffer is given.
        let rc = unsafe { libc::syscall(libc::SYS_bpf, BPF_PROG_TEST_RUN, &mut attr as *mut TestRunAttr, size) };
        if rc < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(attr.retval)
    }
}

/// The `bpf(2)` command (linux/bpf.h, `enum bpf_cmd`).
const BPF_PROG_TEST_RUN: libc::c_int = 10;

/// The `test` member of `union bpf_attr` (linux/bpf.h).
#[repr(C)]
#[derive(Default)]
struct TestRunAttr {
    prog_fd: u32,
    retval: u32,
    data_size_in: u32,
    data_size_out: u32,
    data_in: u64,
    data_out: u64,
    repeat: u32,
    duration: u32,
    ctx_size_in: u32,
    ctx_size_out: u32,
    ctx_in: u64,
    ctx_out: u64,
    flags: u32,
    cpu: u32,
    batch_size: u32,
    _pad: u32,
}
