//! `tandem-bench`: tandem's benchmarks, run by `cargo xtask bench <which>`.
//!
//! `dispatch`, `failover` (`--noisy`, `--steal PCT`), `sync`, `calls`,
//! `faults`, `reload` (`--edits N`, `--big-rounds N`), `startup` and
//! `availability` (computed from the others' reports: no lab, no root).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "tandem-bench", about = "tandem's benchmarks")]
struct Cli {
    #[command(subcommand)]
    which: Which,
}

#[derive(Subcommand)]
enum Which {
    /// XDP dispatch cost per packet (BPF_PROG_TEST_RUN), against a trivial XDP_TX program.
    Dispatch,
    /// Director failover: peer loss detection and takeover time, and
    /// spontaneous role changes in steady state.
    Failover {
        /// Run beside a noisy neighbour started by the bench: stress-ng CPU
        /// load on both CPUs, an RT worker at the daemons' priority and a
        /// second tandem pair (also `TANDEM_BENCH_NOISY=1`).
        #[arg(long)]
        noisy: bool,
        /// Run under simulated hypervisor steal time of PCT % (1..=60): one
        /// spinner per CPU, pinned, at SCHED_FIFO 99, in random bursts of
        /// ~2 ms (at most 10 ms); also `TANDEM_BENCH_STEAL=PCT`. May be
        /// combined with --noisy.
        #[arg(long, value_name = "PCT", value_parser = clap::value_parser!(u8).range(1..=60))]
        steal: Option<u8>,
    },
    /// State sync throughput and lag.
    Sync,
    /// End-to-end calls through the lab (SIPp).
    Calls,
    /// The fault campaign: each fault injected under SIP load, calls lost,
    /// dual-active time, client gap and times to recover
    /// (`TANDEM_BENCH_FAULTS`, `TANDEM_BENCH_RATE`, `TANDEM_BENCH_CALL_MS`,
    /// `TANDEM_BENCH_HEARTBEAT_MS`, `TANDEM_BENCH_MULTIPLIER`).
    Faults {
        /// Trials per fault (also `TANDEM_BENCH_TRIALS`; default 10).
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1000))]
        trials: Option<u64>,
        /// The soak instead: MINUTES at 50 calls/s, a director fault every
        /// 2 minutes, leak checks after each (also `TANDEM_BENCH_SOAK_MIN`).
        #[arg(long, value_name = "MINUTES", value_parser = clap::value_parser!(u64).range(2..=1440))]
        soak: Option<u64>,
        /// SIP over one TCP connection (SIPp `-t t1`) to the service's TCP
        /// twin (also `TANDEM_BENCH_TRANSPORT=tcp`); writes faults-tcp.*.
        #[arg(long)]
        tcp: bool,
    },
    /// Live changes on a pair under SIP load: weight edits (reply, the
    /// daemon's read and apply, the standby holding them) and reloads of
    /// the design maximum (64 services × 32 real servers).
    Reload {
        /// Weight edits to time.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=10_000))]
        edits: u64,
        /// Rounds of the design-maximum reloads: reloads to 64 × 32 on the
        /// edits' pair, then (one weight in an mh and in a wlc service, the
        /// same file) on a pair at 64 × 32 from the start, then back once.
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(0..=50))]
        big_rounds: u64,
    },
    /// tandemd's start-up, exec to READY (alone and beside an active
    /// peer), against keepalived's and a trivial XDP program's
    /// (`TANDEM_BENCH_STARTS`, default 20).
    Startup,
    /// Steady-state availability, downtime and calls lost per year of a
    /// single director, keepalived pairs and tandem's pair, from
    /// failover.json (and calls.json, startup.json) and stated assumptions
    /// (`TANDEM_AVAIL_*`); no lab, no root.
    Availability,
}

fn main() -> ExitCode {
    match Cli::parse().which {
        Which::Dispatch => dispatch(),
        Which::Failover { noisy, steal } => failover(noisy, steal),
        Which::Sync => sync(),
        Which::Calls => calls(),
        Which::Faults { trials, soak, tcp } => faults(trials, soak, tcp),
        Which::Reload { edits, big_rounds } => reload(edits as usize, big_rounds as usize),
        Which::Startup => startup(),
        Which::Availability => availability(),
    }
}

/// `TANDEM_AVAIL_*` (see `tandem_tests::bench::availability`); reads and
/// writes `bench/results/`.
fn availability() -> ExitCode {
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/results");
    match tandem_tests::bench::availability::run(&out) {
        Ok(md) => {
            println!("{md}");
            println!(
                "written: {}/availability.json, availability.md",
                out.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tandem-bench availability: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `TANDEMD` (default: next to this binary), `KEEPALIVED`, `TANDEM_BENCH_STARTS`.
fn startup() -> ExitCode {
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/results");
    let opts = match tandem_tests::bench::startup::Options::from_env() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("tandem-bench startup: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    match tandem_tests::bench::startup::run(&out, opts) {
        Ok(md) => {
            println!("{md}");
            println!("written: {}/startup.json, startup.md", out.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tandem-bench startup: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `TANDEMD`, `TANDEMCTL` (default: next to this binary); `--edits`, `--big-rounds`.
fn reload(edits: usize, big_rounds: usize) -> ExitCode {
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/results");
    let opts = match tandem_tests::bench::reload::Options::new(edits, big_rounds) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("tandem-bench reload: {e:#}");
            return ExitCode::from(2);
        }
    };
    match tandem_tests::bench::reload::run(&out, opts) {
        Ok(md) => {
            println!("{md}");
            println!("written: {}/reload.json, reload.md", out.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tandem-bench reload: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `TANDEMD`, `TANDEMCTL` (default: next to this binary),
/// `TANDEM_BENCH_RATES`, `TANDEM_BENCH_FAILOVERS` (default 20).
fn calls() -> ExitCode {
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/results");
    let opts = match tandem_tests::bench::calls::Options::from_env() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("tandem-bench calls: {e:#}");
            return ExitCode::from(2);
        }
    };
    match tandem_tests::bench::calls::run(&out, opts) {
        Ok(md) => {
            println!("{md}");
            println!("written: {}/calls.json, calls.md", out.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tandem-bench calls: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `TANDEMD`, `TANDEMCTL` (default: next to this binary), and the
/// campaign's variables (`tandem_tests::bench::faults`).
fn faults(trials: Option<u64>, soak: Option<u64>, tcp: bool) -> ExitCode {
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/results");
    let opts = match tandem_tests::bench::faults::Options::from_env() {
        Ok(mut o) => {
            if let Some(n) = trials {
                o.trials = n as usize;
            }
            if tcp {
                o.transport = tandem_tests::sipp::Transport::Tcp;
            }
            if let Some(m) = soak {
                o.set_soak(std::time::Duration::from_secs(m * 60));
            }
            o
        }
        Err(e) => {
            eprintln!("tandem-bench faults: {e:#}");
            return ExitCode::from(2);
        }
    };
    match tandem_tests::bench::faults::run(&out, opts) {
        Ok(md) => {
            println!("{md}");
            println!("written under {}", out.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tandem-bench faults: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch() -> ExitCode {
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/results");
    let repeat = std::env::var("TANDEM_BENCH_REPEAT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let runs = std::env::var("TANDEM_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    match tandem_tests::bench::dispatch::run(&out, repeat, runs) {
        Ok(_) => {
            // The written report holds both tables (test-run and live frames).
            let md = std::fs::read_to_string(out.join("dispatch.md")).unwrap_or_default();
            println!("{md}");
            println!("written: {}/dispatch.json, dispatch.md", out.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tandem-bench dispatch: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `TANDEMD`, `TANDEMCTL` (default: next to this binary).
fn sync() -> ExitCode {
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/results");
    let opts = match tandem_tests::bench::sync::Options::from_env() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("tandem-bench sync: {e:#}");
            return ExitCode::from(2);
        }
    };
    match tandem_tests::bench::sync::run(&out, opts) {
        Ok(md) => {
            println!("{md}");
            println!("written: {}/sync.json, sync.md", out.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tandem-bench sync: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `TANDEM_BENCH_TRIALS` (default 50), `TANDEM_BENCH_SYSTEMS`,
/// `TANDEM_BENCH_FAILURES`, `TANDEM_BENCH_DWELL_MS`, `TANDEMD` (default:
/// next to this binary), `TANDEM_BENCH_STEAL`; `--noisy`, `--steal PCT`.
fn failover(noisy: bool, steal: Option<u8>) -> ExitCode {
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/results");
    let opts = match tandem_tests::bench::failover::Options::from_env().map(|mut o| {
        o.noisy |= noisy;
        if steal.is_some() {
            o.steal = steal;
        }
        o
    }) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("tandem-bench failover: {e:#}");
            return ExitCode::from(2);
        }
    };
    match tandem_tests::bench::failover::run(&out, opts) {
        Ok(md) => {
            println!("{md}");
            println!(
                "written: {}/failover.json, failover.md, failover.svg",
                out.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tandem-bench failover: {e:#}");
            ExitCode::FAILURE
        }
    }
}
