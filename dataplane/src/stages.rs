//! The tail-call stages (`tandem_new_flow`, `tandem_new_flow_load`,
//! `tandem_sip`) loaded apart from the entry programs: they are what the
//! verifier spends start-up on (half a second of CPU here for the SIP
//! stage, ~30 ms each for the new-flow stages, against ~20 ms for the
//! entry program), and nothing needs them before the node dispatches. So the daemon attaches the entry program first — the
//! kernel then records the peer's heartbeats — and verifies the stages
//! while the pair listens ([`Dataplane::load_entry`], then
//! [`Dataplane::load_stages`]).
//!
//! Until the stages are in the stage array, a packet that needs one is
//! passed and counted (`BadServiceConfig`); a node that owns no VIP drops
//! the traffic to the VIPs before any stage (the VIP guard).

use std::time::Instant;

use tandem_common::{DEFAULT_CALL_ENTRIES, maps, progs};

use crate::{Dataplane, Error, LoadOptions, error::map_err};

/// The programs [`Dataplane::load_entry`] loads: the dispatcher and the
/// XDP_PASS helper.
pub(crate) const ENTRY: [&str; 2] = [progs::DISPATCH, progs::PASS];

/// The stages by their slot in the stage array.
const STAGES: [(u32, &str); 3] = [
    (0, progs::NEW_FLOW),
    (1, progs::NEW_FLOW_LOAD),
    (2, progs::SIP),
];

impl Dataplane {
    /// Loads the object and its entry programs, not the stages: what may
    /// be attached at once. [`Dataplane::load_stages`] completes it.
    pub fn load_entry(options: LoadOptions) -> Result<Dataplane, Error> {
        Dataplane::load_entry_with_calls(options, DEFAULT_CALL_ENTRIES)
    }

    /// Verifies the stages (one thread each) and puts them in the stage
    /// array. Again once loaded: a no-op.
    pub fn load_stages(&mut self) -> Result<(), Error> {
        if self.stages_loaded() {
            return Ok(());
        }
        let t = Instant::now();
        let names: Vec<&'static str> = STAGES.iter().map(|(_, n)| *n).collect();
        let loads = crate::timings::load_programs(&mut self.ebpf, &names)?;
        for (index, name) in STAGES {
            let fd = self.prog_fd(name)?;
            self.maps
                .node
                .stages
                .set(index, &fd, 0)
                .map_err(map_err(maps::STAGES))?;
        }
        self.load_timings.programs.extend(loads);
        self.load_timings.stages = t.elapsed();
        Ok(())
    }

    /// Whether every stage is loaded and in the stage array.
    pub fn stages_loaded(&self) -> bool {
        STAGES
            .iter()
            .all(|(_, name)| self.ebpf.program(name).is_some_and(|p| p.fd().is_ok()))
    }
}
