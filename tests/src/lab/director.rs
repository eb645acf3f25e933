//! Puts tandem's dispatcher on a lab director: the XDP program natively on
//! the director's interface and XDP_PASS on the bridge-side end of the same
//! veth (a veth only accepts XDP_TX/REDIRECT frames when its peer runs XDP;
//! GRO alone is not enough on this kernel). In a pair lab, where `tandemd`
//! attaches the dispatcher itself, only the bridge side is done here
//! ([`attach_pair_bridge_pass`]). Shared by the tests, the demo and the
//! benchmarks; it configures no service.

use anyhow::{Context, Result, ensure};
use tandem_dataplane::{AttachMode, Attached, Dataplane, LoadOptions};

use crate::lab::{DIRECTOR, DIRECTOR_A, DIRECTOR_B};
use crate::{Lab, in_netns};

/// Attaches the dispatcher to the director's `iface` (native XDP) and the
/// pass program to its peer; declares `iface` as a redirect target.
pub fn attach_director(dp: &mut Dataplane, lab: &Lab, iface: &str) -> Result<Attached> {
    let ns = lab.ns(DIRECTOR)?.to_string();
    let i = lab.iface(DIRECTOR, iface)?.clone();
    let mode = in_netns(&ns, || -> Result<Attached> {
        let mode = dp
            .attach(iface, AttachMode::Native)
            .with_context(|| format!("attaching to {ns}/{iface}"))?;
        dp.add_tx_port(i.ifindex, i.mac)
            .with_context(|| format!("devmap entry for {iface}"))?;
        Ok(mode)
    })?;
    ensure!(
        mode == Attached::Native,
        "{iface}: native XDP expected on a veth"
    );
    in_netns(&i.peer_ns, || dp.attach_pass(&i.peer, AttachMode::Native))
        .with_context(|| format!("attaching XDP_PASS to the peer {}/{}", i.peer_ns, i.peer))?;
    Ok(mode)
}

/// XDP_PASS on the bridge-side ends of both pair directors' service and
/// heartbeat veths (`eth0`, `hb0`), so that they accept the XDP_TX frames
/// (ARP replies, dispatch, reflected echoes) of the dispatcher each
/// `tandemd` attaches. The programs stay attached while the returned
/// object lives: drop it after the daemons and before the lab.
pub fn attach_pair_bridge_pass(lab: &Lab) -> Result<Dataplane> {
    let mut peers = Dataplane::load(LoadOptions {
        flow_entries: 1024,
        nat_entries: 1024,
    })
    .context("loading the XDP object for the bridge side")?;
    for d in [DIRECTOR_A, DIRECTOR_B] {
        // `hb0` too: the peer's echoes are reflected there with XDP_TX.
        for ifname in ["eth0", "hb0"] {
            let Ok(i) = lab.iface(d, ifname).cloned() else {
                continue;
            };
            in_netns(&i.peer_ns, || peers.attach_pass(&i.peer, AttachMode::Native))
                .with_context(|| format!("XDP_PASS on {}", i.peer))?;
        }
    }
    Ok(peers)
}
