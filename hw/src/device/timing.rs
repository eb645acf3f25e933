//! Timing the driver: [`measure_get_params`] measures the `DAHDI_GET_PARAMS`
//! round trip on an open channel and reports it as a [`RoundTrip`].
//!
//! This module is for benchmarks and tools. It must not be called on a hot
//! path of the control plane: it issues as many ioctls as it is asked to.

use std::fmt;
use std::time::{Duration, Instant};

use super::channel::Channel;
use super::error::{Error, Result};

/// Round-trip times of one ioctl, measured over many calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RoundTrip {
    pub iterations: usize,
    pub min: Duration,
    pub median: Duration,
    pub p99: Duration,
    pub max: Duration,
    pub mean: Duration,
}

impl fmt::Display for RoundTrip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} calls: min {:?}, median {:?}, p99 {:?}, max {:?}, mean {:?}",
            self.iterations, self.min, self.median, self.p99, self.max, self.mean
        )
    }
}

/// Time `iterations` `DAHDI_GET_PARAMS` calls on `channel` (for benchmarks).
pub fn measure_get_params(channel: &Channel, iterations: usize) -> Result<RoundTrip> {
    if iterations == 0 {
        return Err(Error::Argument {
            path: channel.path().to_owned(),
            ioctl: "DAHDI_GET_PARAMS",
            field: "iterations",
            value: 0,
        });
    }
    let mut samples = Vec::with_capacity(iterations);
    let started = Instant::now();
    for _ in 0..iterations {
        let t0 = Instant::now();
        channel.params()?;
        samples.push(t0.elapsed());
    }
    let total = started.elapsed();
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    Ok(RoundTrip {
        iterations,
        min: samples[0],
        median: at(0.5),
        p99: at(0.99),
        max: samples[samples.len() - 1],
        mean: Duration::from_nanos((total.as_nanos() / iterations as u128) as u64),
    })
}
