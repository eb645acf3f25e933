//! The lab: hosts as network namespaces, joined by veths to bridges that live
//! in a switch namespace, addressed from 198.18.0.0/15.
//!
//! Owns the two topologies tandem is tested on — direct routing ([`Lab::dr`]:
//! one service network, the VIP on every IVR's loopback with ARP for it
//! suppressed) and NAT ([`Lab::nat`]: a front and a back network with the
//! director routing between them) — and what tests need to know about them:
//! namespace names, interface names, MACs, ifindexes and the bridge-side
//! veth of every host interface. A lab removes all its namespaces when
//! dropped, also while a test panics; veths die with their namespaces.
//!
//! It does not start daemons or load BPF programs; it only builds the wires.

use std::fmt;
use std::net::Ipv4Addr;
use std::sync::Once;

use crate::LabError;
use crate::lab::cmd;
use crate::lab::netns;

/// The virtual IP services are offered on.
pub const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);
/// Host name of the client.
pub const CLIENT: &str = "client";
/// Host name of the director (the node running tandem's XDP program).
pub const DIRECTOR: &str = "dir";
/// The client's address (front/service network).
pub const CLIENT_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);
/// The director's address on the front/service network (its `eth0`).
pub const DIRECTOR_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
/// NAT only: the director's address on the back network (its `eth1`), the IVRs' gateway.
pub const DIRECTOR_BACK_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 1);
/// The most IVR hosts a lab can have (their addresses are .21 to .(20+N)).
pub const MAX_IVRS: usize = 200;

/// The name of IVR host `k` (1-based): `ivr1`, `ivr2`, …
pub fn ivr_name(k: usize) -> String {
    format!("ivr{k}")
}

/// The address of IVR `k` (1-based) in a DR lab: 198.18.0.(20+k).
pub fn dr_ivr_addr(k: usize) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, 0, host_octet(k))
}

/// The address of IVR `k` (1-based) in a NAT lab: 198.18.1.(20+k).
pub fn nat_ivr_addr(k: usize) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, 1, host_octet(k))
}

fn host_octet(k: usize) -> u8 {
    u8::try_from(20 + k.min(MAX_IVRS)).unwrap_or(u8::MAX)
}

/// Which wiring a lab has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Topology {
    /// Direct routing: one bridge `br0`, 198.18.0.0/24; IVRs answer the client directly from the VIP.
    Dr,
    /// NAT: front bridge `br0` 198.18.0.0/24 and back bridge `br1` 198.18.1.0/24; replies go back through the director.
    Nat,
    /// A hot-standby pair: directors `a` (198.18.0.2) and `b` (198.18.0.3)
    /// and a witness (198.18.0.5) on the service bridge `br0` with the
    /// client and the IVRs (DR), plus a dedicated heartbeat link between
    /// the directors on `br2` (`hb0`: a 198.18.3.1, b 198.18.3.2). No
    /// director holds the VIP: taking it is the daemon's job.
    Pair,
}

/// Director `a` of a pair lab.
pub const DIRECTOR_A: &str = "a";
/// Director `b` of a pair lab.
pub const DIRECTOR_B: &str = "b";
/// The witness of a pair lab (answers pings and ARP on the service network).
pub const WITNESS: &str = "witness";
pub const DIRECTOR_A_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
pub const DIRECTOR_B_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 3);
pub const WITNESS_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 5);
pub const HB_A_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 3, 1);
pub const HB_B_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 3, 2);

/// Knobs for building a lab; [`LabOptions::default`] is what [`Lab::dr`] and [`Lab::nat`] use.
#[derive(Clone, Debug)]
pub struct LabOptions {
    /// The director holds the VIP /32 on its `eth0`, so the client's ARP for
    /// the VIP resolves to it (until tandem answers ARP itself). Default: true.
    pub director_holds_vip: bool,
    /// Turn GRO on for the bridge-side veths of the director, so frames its
    /// XDP program sends with XDP_TX are accepted. Default: true.
    pub director_peer_gro: bool,
    /// Keep IPv6 on the lab's interfaces (with DAD off). Default: false, IPv6
    /// disabled so that no router solicitations or DAD probes cross the lab.
    pub ipv6: bool,
    /// A fixed name prefix for a lab that outlives this process (see
    /// [`Lab::into_persistent`]); `None` (default) picks a unique `tdm<pid>x<n>`.
    pub fixed_prefix: Option<String>,
}

impl Default for LabOptions {
    fn default() -> Self {
        LabOptions {
            director_holds_vip: true,
            director_peer_gro: true,
            ipv6: false,
            fixed_prefix: None,
        }
    }
}

/// One interface of a lab host, and the veth at the other end of its wire.
#[derive(Clone, Debug)]
pub struct Iface {
    /// Name inside the host's namespace (`eth0`, `eth1`).
    pub name: String,
    /// Ifindex inside the host's namespace.
    pub ifindex: u32,
    pub mac: [u8; 6],
    /// IPv4 addresses with prefix length, as assigned by the lab.
    pub addrs: Vec<(Ipv4Addr, u8)>,
    /// The bridge this wire is plugged into (`br0`, `br1`).
    pub bridge: String,
    /// The bridge-side veth (in [`Iface::peer_ns`]).
    pub peer: String,
    /// The namespace of the bridge-side veth (the switch namespace).
    pub peer_ns: String,
    /// Ifindex of the bridge-side veth inside its namespace.
    pub peer_ifindex: u32,
}

impl Iface {
    /// The MAC as `aa:bb:cc:dd:ee:ff`.
    pub fn mac_string(&self) -> String {
        format_mac(&self.mac)
    }
}

/// One host of a lab: a namespace with its interfaces.
#[derive(Clone, Debug)]
pub struct Host {
    /// The role name: `client`, `dir`, `ivr1`, …
    pub name: String,
    /// Its network namespace.
    pub ns: String,
    pub ifaces: Vec<Iface>,
    /// Addresses on its `lo` besides 127.0.0.1 (the VIP on DR IVRs).
    pub loopback_addrs: Vec<Ipv4Addr>,
}

impl Host {
    /// The interface named `name`.
    pub fn iface(&self, name: &str) -> Result<&Iface, LabError> {
        self.ifaces
            .iter()
            .find(|i| i.name == name)
            .ok_or_else(|| LabError::UnknownIface {
                host: self.name.clone(),
                iface: name.to_owned(),
            })
    }

    /// The first interface (`eth0`, the one on the service/front network).
    pub fn eth0(&self) -> &Iface {
        // Every lab host is built with at least eth0.
        &self.ifaces[0]
    }

    /// The first address of `eth0`.
    pub fn addr(&self) -> Ipv4Addr {
        self.eth0()
            .addrs
            .first()
            .map_or(Ipv4Addr::UNSPECIFIED, |a| a.0)
    }
}

/// A running lab. Dropping it deletes every namespace it created.
pub struct Lab {
    prefix: String,
    topology: Topology,
    options: LabOptions,
    switch_ns: String,
    hosts: Vec<Host>,
    /// Every namespace this lab created, in creation order.
    created: Vec<String>,
    /// Set by [`Lab::into_persistent`]: Drop leaves the namespaces in place.
    persistent: bool,
}

/// A planned wire: host interface `ifname` with `addrs`, on bridge `bridge`.
struct Wire {
    ifname: &'static str,
    addrs: Vec<(Ipv4Addr, u8)>,
    bridge: &'static str,
}

static CLEANUP_STALE: Once = Once::new();

impl Lab {
    /// A DR lab with `n_ivr` IVRs and default options: client 198.18.0.10,
    /// director 198.18.0.2 (+ the VIP), ivrK 198.18.0.(20+K) with the VIP on `lo`.
    pub fn dr(n_ivr: usize) -> Result<Lab, LabError> {
        Lab::dr_with(n_ivr, LabOptions::default())
    }

    /// A DR lab with explicit options.
    pub fn dr_with(n_ivr: usize, options: LabOptions) -> Result<Lab, LabError> {
        Lab::build(Topology::Dr, n_ivr, options)
    }

    /// A NAT lab with `n_ivr` IVRs and default options: front 198.18.0.0/24
    /// (client .10, director eth0 .2 + the VIP), back 198.18.1.0/24 (director
    /// eth1 .1, ivrK .(20+K), default route via the director, which forwards).
    /// The client also gets a route to the back network via the director, so
    /// tests can reach an IVR directly.
    pub fn nat(n_ivr: usize) -> Result<Lab, LabError> {
        Lab::nat_with(n_ivr, LabOptions::default())
    }

    /// A hot-standby pair lab with `n_ivr` IVRs (see [`Topology::Pair`]).
    pub fn pair(n_ivr: usize) -> Result<Lab, LabError> {
        Lab::build(Topology::Pair, n_ivr, LabOptions::default())
    }

    /// Brings one interface of a host down or up (a cut cable, a repair).
    pub fn set_link(&self, host: &str, ifname: &str, up: bool) -> Result<(), LabError> {
        let ns = self.ns(host)?.to_owned();
        cmd::ip_in(
            &ns,
            &["link", "set", ifname, if up { "up" } else { "down" }],
        )
        .map(drop)
    }

    /// A NAT lab with explicit options.
    pub fn nat_with(n_ivr: usize, options: LabOptions) -> Result<Lab, LabError> {
        Lab::build(Topology::Nat, n_ivr, options)
    }

    fn build(topology: Topology, n_ivr: usize, options: LabOptions) -> Result<Lab, LabError> {
        if n_ivr > MAX_IVRS {
            return Err(LabError::BadOption {
                field: "n_ivr",
                value: format!("{n_ivr} > {MAX_IVRS}"),
            });
        }
        CLEANUP_STALE.call_once(|| {
            if let Err(e) = netns::cleanup_stale() {
                eprintln!("tandem lab: removing stale namespaces: {e}");
            }
        });
        let prefix = match &options.fixed_prefix {
            None => netns::unique_prefix(),
            Some(p) => {
                if p.is_empty() || p.contains('/') || netns::owner_pid(&format!("{p}-x")).is_some()
                {
                    return Err(LabError::BadOption {
                        field: "fixed_prefix",
                        value: p.clone(),
                    });
                }
                let taken: Vec<String> = netns::list()?
                    .into_iter()
                    .filter(|n| n.starts_with(&format!("{p}-")))
                    .collect();
                if !taken.is_empty() {
                    return Err(LabError::BadOption {
                        field: "fixed_prefix",
                        value: format!(
                            "{p}: namespaces already exist ({}); take that lab down first",
                            taken.join(" ")
                        ),
                    });
                }
                p.clone()
            }
        };
        let mut lab = Lab {
            switch_ns: format!("{prefix}-sw"),
            prefix,
            topology,
            options,
            hosts: Vec::new(),
            created: Vec::new(),
            persistent: false,
        };
        // From here on, an error drops `lab`, which removes what was built.
        lab.build_switch()?;
        let front = |a: Ipv4Addr| Wire {
            ifname: "eth0",
            addrs: vec![(a, 24)],
            bridge: "br0",
        };
        lab.add_host(CLIENT, vec![front(CLIENT_ADDR)], false)?;
        match topology {
            Topology::Pair => {
                for (name, addr, hb) in [
                    (DIRECTOR_A, DIRECTOR_A_ADDR, HB_A_ADDR),
                    (DIRECTOR_B, DIRECTOR_B_ADDR, HB_B_ADDR),
                ] {
                    let hb = Wire {
                        ifname: "hb0",
                        addrs: vec![(hb, 24)],
                        bridge: "br2",
                    };
                    lab.add_host(name, vec![front(addr), hb], false)?;
                }
                lab.add_host(WITNESS, vec![front(WITNESS_ADDR)], false)?;
                for k in 1..=n_ivr {
                    lab.add_host(&ivr_name(k), vec![front(dr_ivr_addr(k))], false)?;
                    lab.add_vip_on_loopback(&ivr_name(k))?;
                }
            }
            Topology::Dr => {
                lab.add_host(DIRECTOR, vec![front(DIRECTOR_ADDR)], false)?;
                for k in 1..=n_ivr {
                    lab.add_host(&ivr_name(k), vec![front(dr_ivr_addr(k))], false)?;
                    lab.add_vip_on_loopback(&ivr_name(k))?;
                }
            }
            Topology::Nat => {
                let back = Wire {
                    ifname: "eth1",
                    addrs: vec![(DIRECTOR_BACK_ADDR, 24)],
                    bridge: "br1",
                };
                lab.add_host(DIRECTOR, vec![front(DIRECTOR_ADDR), back], true)?;
                for k in 1..=n_ivr {
                    let name = ivr_name(k);
                    let wire = Wire {
                        ifname: "eth0",
                        addrs: vec![(nat_ivr_addr(k), 24)],
                        bridge: "br1",
                    };
                    lab.add_host(&name, vec![wire], false)?;
                    let ns = lab.ns(&name)?.to_owned();
                    cmd::ip_in(
                        &ns,
                        &[
                            "route",
                            "add",
                            "default",
                            "via",
                            &DIRECTOR_BACK_ADDR.to_string(),
                        ],
                    )?;
                }
                let client = lab.ns(CLIENT)?.to_owned();
                cmd::ip_in(
                    &client,
                    &[
                        "route",
                        "add",
                        "198.18.1.0/24",
                        "via",
                        &DIRECTOR_ADDR.to_string(),
                    ],
                )?;
            }
        }
        // Veths hand packets over with the checksum still to be completed
        // (CHECKSUM_PARTIAL); a frame an XDP program sends on with XDP_TX or
        // a redirect loses that mark and arrives with a bad checksum. Real
        // NICs finish the checksum before the wire; here the hosts compute
        // it in software.
        for host in lab.hosts.clone() {
            for iface in &host.ifaces {
                cmd::exec_in(&host.ns, "ethtool", &["-K", &iface.name, "tx", "off"])?;
            }
        }
        if lab.options.director_holds_vip && topology != Topology::Pair {
            lab.set_director_vip(true)?;
        }
        if lab.options.director_peer_gro && topology != Topology::Pair {
            lab.enable_peer_gro(DIRECTOR)?;
        }
        Ok(lab)
    }

    /// Creates a namespace and records it for cleanup; sets the sysctls every
    /// lab namespace gets before any interface exists in it.
    fn new_namespace(&mut self, ns: &str, ip_forward: bool) -> Result<(), LabError> {
        netns::add(ns)?;
        self.created.push(ns.to_owned());
        if self.options.ipv6 {
            netns::sysctl(ns, "net.ipv6.conf.default.accept_dad", "0")?;
            netns::sysctl(ns, "net.ipv6.conf.all.accept_dad", "0")?;
        } else {
            netns::sysctl(ns, "net.ipv6.conf.default.disable_ipv6", "1")?;
            netns::sysctl(ns, "net.ipv6.conf.all.disable_ipv6", "1")?;
        }
        netns::sysctl(ns, "net.ipv4.conf.all.rp_filter", "0")?;
        netns::sysctl(ns, "net.ipv4.conf.default.rp_filter", "0")?;
        netns::sysctl(
            ns,
            "net.ipv4.ip_forward",
            if ip_forward { "1" } else { "0" },
        )?;
        cmd::ip_in(ns, &["link", "set", "lo", "up"])?;
        Ok(())
    }

    fn build_switch(&mut self) -> Result<(), LabError> {
        let sw = self.switch_ns.clone();
        self.new_namespace(&sw, false)?;
        let bridges: &[&str] = match self.topology {
            Topology::Dr => &["br0"],
            Topology::Nat => &["br0", "br1"],
            Topology::Pair => &["br0", "br2"],
        };
        for br in bridges {
            cmd::ip_in(
                &sw,
                &[
                    "link",
                    "add",
                    br,
                    "type",
                    "bridge",
                    "stp_state",
                    "0",
                    "forward_delay",
                    "0",
                ],
            )?;
            cmd::ip_in(&sw, &["link", "set", br, "up"])?;
        }
        Ok(())
    }

    fn add_host(&mut self, name: &str, wires: Vec<Wire>, ip_forward: bool) -> Result<(), LabError> {
        let ns = format!("{}-{name}", self.prefix);
        self.new_namespace(&ns, ip_forward)?;
        let sw = self.switch_ns.clone();
        let mut ifaces = Vec::new();
        for (n, wire) in wires.iter().enumerate() {
            let peer = format!("{name}-e{n}");
            if peer.len() > 15 {
                return Err(LabError::BadOption {
                    field: "host name",
                    value: format!("{name}: veth name {peer} > 15 chars"),
                });
            }
            // Created inside the switch namespace, host end moved straight into
            // the host's: no name ever appears in the caller's namespace.
            cmd::ip_in(
                &sw,
                &[
                    "link",
                    "add",
                    &peer,
                    "type",
                    "veth",
                    "peer",
                    "name",
                    wire.ifname,
                    "netns",
                    &ns,
                ],
            )?;
            cmd::ip_in(&sw, &["link", "set", &peer, "master", wire.bridge])?;
            cmd::ip_in(&sw, &["link", "set", &peer, "up"])?;
            for (addr, len) in &wire.addrs {
                cmd::ip_in(
                    &ns,
                    &["addr", "add", &format!("{addr}/{len}"), "dev", wire.ifname],
                )?;
            }
            cmd::ip_in(&ns, &["link", "set", wire.ifname, "up"])?;
            let (ifindex, mac) = link_info(&ns, wire.ifname)?;
            let (peer_ifindex, _) = link_info(&sw, &peer)?;
            ifaces.push(Iface {
                name: wire.ifname.to_owned(),
                ifindex,
                mac,
                addrs: wire.addrs.clone(),
                bridge: wire.bridge.to_owned(),
                peer,
                peer_ns: sw.clone(),
                peer_ifindex,
            });
        }
        self.hosts.push(Host {
            name: name.to_owned(),
            ns,
            ifaces,
            loopback_addrs: Vec::new(),
        });
        Ok(())
    }

    /// DR real server setup: the VIP /32 on `lo`, and ARP for it suppressed
    /// (arp_ignore=1, arp_announce=2 on all and eth0).
    fn add_vip_on_loopback(&mut self, host: &str) -> Result<(), LabError> {
        let ns = self.ns(host)?.to_owned();
        for scope in ["all", "eth0"] {
            netns::sysctl(&ns, &format!("net.ipv4.conf.{scope}.arp_ignore"), "1")?;
            netns::sysctl(&ns, &format!("net.ipv4.conf.{scope}.arp_announce"), "2")?;
        }
        cmd::ip_in(&ns, &["addr", "add", &format!("{VIP}/32"), "dev", "lo"])?;
        self.host_mut(host)?.loopback_addrs.push(VIP);
        Ok(())
    }

    /// Adds (`true`) or removes (`false`) the VIP /32 on the director's `eth0`.
    /// Without it, the client's ARP for the VIP gets no answer unless tandem gives one.
    pub fn set_director_vip(&mut self, present: bool) -> Result<(), LabError> {
        let ns = self.ns(DIRECTOR)?.to_owned();
        let cidr = format!("{VIP}/32");
        let has = self.host(DIRECTOR)?.eth0().addrs.contains(&(VIP, 32));
        if present && !has {
            cmd::ip_in(&ns, &["addr", "add", &cidr, "dev", "eth0"])?;
            self.host_mut(DIRECTOR)?.ifaces[0].addrs.push((VIP, 32));
        } else if !present && has {
            cmd::ip_in(&ns, &["addr", "del", &cidr, "dev", "eth0"])?;
            self.host_mut(DIRECTOR)?.ifaces[0]
                .addrs
                .retain(|a| *a != (VIP, 32));
        }
        Ok(())
    }

    /// Turns GRO on for the bridge-side veth of each of `host`'s interfaces
    /// (`ethtool -K <peer> gro on` in the switch namespace). A veth accepts
    /// frames that XDP on its peer sends with XDP_TX/REDIRECT only when it has
    /// an XDP program or GRO.
    pub fn enable_peer_gro(&self, host: &str) -> Result<(), LabError> {
        for iface in &self.host(host)?.ifaces {
            cmd::exec_in(&iface.peer_ns, "ethtool", &["-K", &iface.peer, "gro", "on"])?;
        }
        Ok(())
    }

    /// One ICMP echo from `from` to `to` (`ping -c 1 -W 1`), tried up to 3 times.
    pub fn ping(&self, from: &str, to: Ipv4Addr) -> Result<(), LabError> {
        let ns = self.ns(from)?;
        let target = to.to_string();
        let mut last = None;
        for _ in 0..3 {
            match cmd::exec_in(ns, "ping", &["-n", "-q", "-c", "1", "-W", "1", &target]) {
                Ok(_) => return Ok(()),
                Err(e @ LabError::Spawn { .. }) => return Err(e),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| LabError::Netns {
            ns: ns.to_owned(),
            what: "ping never ran".into(),
        }))
    }

    /// Runs `program args` inside `host`'s namespace; returns its stdout.
    pub fn exec(&self, host: &str, program: &str, args: &[&str]) -> Result<String, LabError> {
        cmd::exec_in(self.ns(host)?, program, args)
    }

    /// The name prefix of all this lab's namespaces.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn topology(&self) -> Topology {
        self.topology
    }

    /// The VIP (198.18.0.100).
    pub fn vip(&self) -> Ipv4Addr {
        VIP
    }

    /// The namespace holding the bridge(s).
    pub fn switch_ns(&self) -> &str {
        &self.switch_ns
    }

    /// Every namespace of the lab, the switch's included.
    pub fn namespaces(&self) -> Vec<String> {
        self.created.clone()
    }

    /// All hosts: client, dir, ivr1..N in that order.
    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }

    /// The IVR hosts, ivr1..N.
    pub fn ivrs(&self) -> Vec<&Host> {
        self.hosts
            .iter()
            .filter(|h| h.name.starts_with("ivr"))
            .collect()
    }

    /// The host named `name` (`client`, `dir`, `ivrK`).
    pub fn host(&self, name: &str) -> Result<&Host, LabError> {
        self.hosts
            .iter()
            .find(|h| h.name == name)
            .ok_or_else(|| self.unknown(name))
    }

    fn host_mut(&mut self, name: &str) -> Result<&mut Host, LabError> {
        let err = self.unknown(name);
        self.hosts.iter_mut().find(|h| h.name == name).ok_or(err)
    }

    fn unknown(&self, name: &str) -> LabError {
        LabError::UnknownHost {
            lab: self.prefix.clone(),
            host: name.to_owned(),
            known: self
                .hosts
                .iter()
                .map(|h| h.name.as_str())
                .collect::<Vec<_>>()
                .join(" "),
        }
    }

    /// The namespace of host `name`.
    pub fn ns(&self, name: &str) -> Result<&str, LabError> {
        Ok(&self.host(name)?.ns)
    }

    /// Interface `ifname` of host `host`.
    pub fn iface(&self, host: &str, ifname: &str) -> Result<&Iface, LabError> {
        self.host(host)?.iface(ifname)
    }

    /// Keeps the lab's namespaces after this value is gone (for `tandem-lab
    /// up`); [`Lab::remove_persistent`] removes them. Returns the prefix.
    pub fn into_persistent(mut self) -> String {
        self.persistent = true;
        self.prefix.clone()
    }

    /// Deletes every namespace `<prefix>-*` (a persistent lab). Returns the names removed.
    pub fn remove_persistent(prefix: &str) -> Result<Vec<String>, LabError> {
        let mut removed = Vec::new();
        for ns in netns::list()? {
            if ns.starts_with(&format!("{prefix}-")) {
                netns::delete(&ns)?;
                removed.push(ns);
            }
        }
        Ok(removed)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if self.persistent {
            return;
        }
        for ns in self.created.iter().rev() {
            if let Err(e) = netns::delete(ns) {
                eprintln!("tandem lab {}: removing namespace {ns}: {e}", self.prefix);
            }
        }
    }
}

impl fmt::Display for Lab {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.topology {
            Topology::Dr => "DR",
            Topology::Nat => "NAT",
            Topology::Pair => "pair",
        };
        writeln!(
            f,
            "lab {} ({kind}), VIP {VIP}, switch namespace {}",
            self.prefix, self.switch_ns
        )?;
        writeln!(
            f,
            "  {:<7} {:<22} {:<5} {:>7}  {:<17}  {:<40} bridge port (ifindex)",
            "host", "namespace", "iface", "ifindex", "mac", "addresses"
        )?;
        for h in &self.hosts {
            for i in &h.ifaces {
                let mut addrs: Vec<String> =
                    i.addrs.iter().map(|(a, l)| format!("{a}/{l}")).collect();
                if i.name == "eth0" {
                    addrs.extend(h.loopback_addrs.iter().map(|a| format!("{a}/32 on lo")));
                }
                writeln!(
                    f,
                    "  {:<7} {:<22} {:<5} {:>7}  {:<17}  {:<40} {} {} ({})",
                    h.name,
                    h.ns,
                    i.name,
                    i.ifindex,
                    i.mac_string(),
                    addrs.join(", "),
                    i.bridge,
                    i.peer,
                    i.peer_ifindex
                )?;
            }
        }
        Ok(())
    }
}

/// Ifindex and MAC of `dev` in `ns`, from `ip -j link show`.
fn link_info(ns: &str, dev: &str) -> Result<(u32, [u8; 6]), LabError> {
    let args = ["-j", "link", "show", "dev", dev];
    let out = cmd::ip_in(ns, &args)?;
    let what_cmd = || format!("ip -n {ns} {}", args.join(" "));
    let v: serde_json::Value = serde_json::from_str(&out).map_err(|e| LabError::Parse {
        cmd: what_cmd(),
        what: format!("not JSON: {e}"),
    })?;
    let link = v.get(0).ok_or_else(|| LabError::Parse {
        cmd: what_cmd(),
        what: "empty list".into(),
    })?;
    let ifindex = link
        .get("ifindex")
        .and_then(|i| i.as_u64())
        .and_then(|i| u32::try_from(i).ok())
        .ok_or_else(|| LabError::Parse {
            cmd: what_cmd(),
            what: format!("no ifindex in {link}"),
        })?;
    let mac = link
        .get("address")
        .and_then(|a| a.as_str())
        .and_then(parse_mac)
        .ok_or_else(|| LabError::Parse {
            cmd: what_cmd(),
            what: format!("no MAC address in {link}"),
        })?;
    Ok((ifindex, mac))
}

/// Parses `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for byte in &mut mac {
        let p = parts.next()?;
        if p.len() != 2 {
            return None;
        }
        *byte = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// Formats a MAC as `aa:bb:cc:dd:ee:ff`.
pub fn format_mac(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_round_trip() {
        let mac = [0x02, 0x00, 0x5e, 0x10, 0xab, 0xff];
        assert_eq!(parse_mac(&format_mac(&mac)), Some(mac));
        assert_eq!(parse_mac("02:00:5e:10:ab"), None);
        assert_eq!(parse_mac("02:00:5e:10:ab:ff:00"), None);
        assert_eq!(parse_mac("02:00:5e:10:ab:fg"), None);
        assert_eq!(parse_mac("2:00:5e:10:ab:ff"), None);
    }

    #[test]
    fn ivr_addresses_follow_the_plan() {
        assert_eq!(dr_ivr_addr(1), Ipv4Addr::new(198, 18, 0, 21));
        assert_eq!(nat_ivr_addr(4), Ipv4Addr::new(198, 18, 1, 24));
        assert_eq!(ivr_name(3), "ivr3");
    }
}
