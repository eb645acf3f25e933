//! The bench harness: the pair lab with two UDP responders as IVRs,
//! XDP_PASS on the bridge side of the directors' service veths, a link
//! setter per director, and the scratch directory (kept, with the logs of
//! failed trials, when one failed). Between trials it puts the wires back
//! ([`Bench::reset`]); it measures nothing itself.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result};
use tandem_dataplane::Dataplane;

use super::daemon::Daemon;
use super::netlink::LinkSetter;
use super::trial::Attempt;
use super::{Failure, Options, System};
use crate::lab::director::attach_pair_bridge_pass;
use crate::lab::{CLIENT, DIRECTOR_A, DIRECTOR_B, VIP, cmd, netns};
use crate::{Lab, Responder, spawn_udp_responder};

pub(super) struct Bench {
    pub(super) lab: Lab,
    pub(super) _ivrs: Vec<Responder>,
    pub(super) _peers: Dataplane,
    pub(super) links: BTreeMap<&'static str, LinkSetter>,
    pub(super) dir: PathBuf,
    pub(super) keep_dir: bool,
    pub(super) opts: Options,
    pub(super) mac_a: [u8; 6],
    pub(super) mac_b: [u8; 6],
    /// tandem's pair, kept from one trial to the next (what a trial killed
    /// is restarted, the roles are put back with a switchover).
    pub(super) tandem: Option<(Daemon, Daemon)>,
}

impl Drop for Bench {
    fn drop(&mut self) {
        self.stop_tandem();
        if !self.keep_dir {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

pub(super) fn verbose() -> bool {
    std::env::var_os("TANDEM_BENCH_VERBOSE").is_some()
}

impl Bench {
    pub(super) fn new(opts: Options) -> Result<Bench> {
        let lab = Lab::pair(2).context("building the pair lab")?;
        let ivrs: Vec<Responder> = lab
            .ivrs()
            .iter()
            .map(|h| spawn_udp_responder(&h.ns, &h.name, 5060))
            .collect::<Result<_, _>>()?;
        let peers = attach_pair_bridge_pass(&lab)?;
        let mut links = BTreeMap::new();
        for d in [DIRECTOR_A, DIRECTOR_B] {
            links.insert(d, LinkSetter::open(lab.ns(d)?)?);
        }
        let dir =
            std::env::temp_dir().join(format!("tandem-bench-failover-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let mac_a = lab.iface(DIRECTOR_A, "eth0")?.mac;
        let mac_b = lab.iface(DIRECTOR_B, "eth0")?.mac;
        Ok(Bench {
            lab,
            _ivrs: ivrs,
            _peers: peers,
            links,
            dir,
            keep_dir: false,
            opts,
            mac_a,
            mac_b,
            tandem: None,
        })
    }

    pub(super) fn set_link(&mut self, host: &'static str, iface: &str, up: bool) -> Result<()> {
        let idx = self.lab.iface(host, iface)?.ifindex;
        self.links
            .get_mut(host)
            .context("no link setter")?
            .set(idx, up)
    }

    /// Links up, no VIP anywhere on the directors, ARP sysctls for `sys`,
    /// the client's neighbour entry for the VIP gone.
    pub(super) fn reset(&mut self, sys: System) -> Result<()> {
        for d in [DIRECTOR_A, DIRECTOR_B] {
            self.set_link(d, "eth0", true)?;
            self.set_link(d, "hb0", true)?;
            let ns = self.lab.ns(d)?.to_string();
            if sys == System::Tandem && self.tandem.is_some() {
                // A running tandemd manages the VIP itself.
                continue;
            }
            for dev in ["lo", "eth0"] {
                let _ = cmd::ip_in(&ns, &["addr", "del", &format!("{VIP}/32"), "dev", dev]);
            }
            if sys != System::Tandem {
                // tandemd sets arp_ignore=1 (only XDP answers for the VIP);
                // keepalived relies on the kernel's default ARP behaviour.
                netns::sysctl(&ns, "net.ipv4.conf.eth0.arp_ignore", "0")?;
                netns::sysctl(&ns, "net.ipv4.conf.eth0.arp_announce", "0")?;
            }
        }
        let client = self.lab.ns(CLIENT)?.to_string();
        let _ = cmd::ip_in(&client, &["neigh", "flush", "to", &VIP.to_string()]);
        Ok(())
    }


    pub(super) fn keep(&mut self, n: usize, sys: System, failure: Failure, a: &Daemon, b: Option<&Daemon>) {
        self.keep_dir = true;
        let base = format!("{}-{}-{n}", sys.key(), failure.key());
        a.dump(&self.dir.join(format!("{base}-a.log")));
        if let Some(b) = b {
            b.dump(&self.dir.join(format!("{base}-b.log")));
        }
    }

    pub(super) fn setup_failed(
        &mut self,
        n: usize,
        sys: System,
        failure: Failure,
        why: &str,
        a: &Daemon,
        b: Option<&Daemon>,
    ) -> Result<Attempt> {
        self.keep(n, sys, failure, a, b);
        Ok(Attempt::Unstable(format!("setup: {why}"), 0, 0))
    }
}
