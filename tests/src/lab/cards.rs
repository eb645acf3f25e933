//! Two simulated DAHDI cards (FUSE) on one shared trunk — the failover
//! switch of a pair: card 0 is director a's, card 1 is b's. The pair labs,
//! the demo and the spans bench mount them the same way.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use tandem_hw::sim::{MountOptions, MountedCard, SimConfig, Simulator};

/// The simulator and its two mounted cards. Dropped in field order: the
/// mounts before the simulator.
pub struct SharedTrunkCards {
    _mounts: Vec<MountedCard>,
    pub sim: Simulator,
    /// Where each card is mounted (`dir/card0`, `dir/card1`).
    pub roots: Vec<PathBuf>,
}

impl SharedTrunkCards {
    /// Two cards of one span with `channels` channels each (FXS kewl-start
    /// signalling), sharing their trunk, mounted under `dir`.
    pub fn mount(dir: &Path, channels: usize) -> Result<SharedTrunkCards> {
        let sim = Simulator::new(SimConfig {
            cards: 2,
            spans: 1,
            channels,
            shared_trunks: true,
            signalling: tandem_hw::abi::DAHDI_SIG_FXSKS,
        })
        .context("card simulator")?;
        let mut mounts = Vec::new();
        let mut roots = Vec::new();
        for c in 0..2 {
            let root = dir.join(format!("card{c}"));
            std::fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
            mounts.push(sim.mount(c, &root, MountOptions::default()).with_context(|| format!("mounting card {c}"))?);
            roots.push(root);
        }
        Ok(SharedTrunkCards { _mounts: mounts, sim, roots })
    }

    /// The two mount points, as [`super::tandemd::Pair::build`] takes them.
    pub fn root_pair(&self) -> [&Path; 2] {
        [self.roots[0].as_path(), self.roots[1].as_path()]
    }
}
