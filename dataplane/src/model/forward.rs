//! The model's forwarding: counting, NAT rewriting with incremental
//! checksums, reverse NAT and the choice of XDP_TX or XDP_REDIRECT,
//! mirroring the kernel's `forward`.

use tandem_common::{csum, *};

use super::{Model, Parsed};

impl Model {
    /// `reverse`: record the NAT reverse entry even for a packet that is
    /// not a new flow (a SIP call's message from a new 5-tuple).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn forward(
        &mut self,
        out: &mut [u8],
        p: &Parsed,
        svc: &Service,
        real_idx: u32,
        new_flow: bool,
        reverse: bool,
        ingress: u32,
    ) -> u32 {
        let slot = (svc.id * MAX_REALS + real_idx) as usize;
        let real = self.reals[slot];
        let bytes = out.len() as u64;
        for c in [
            &mut self.service_stats[svc.id as usize],
            &mut self.real_stats[slot],
        ] {
            c.packets += 1;
            c.bytes += bytes;
            if new_flow {
                c.new_flows += 1;
            }
        }
        if svc.forward == Forward::Nat as u8 {
            let port = if real.port != 0 { real.port } else { p.dport };
            rewrite(out, p, true, &real.addr, port);
            if new_flow || reverse {
                let rkey = FlowKey::new(real.addr, p.src, port, p.sport, p.proto);
                self.nat_reverse.insert(
                    rkey,
                    NatReverse {
                        service_id: svc.id,
                        real_idx,
                    },
                );
            }
            self.count(Reason::ForwardNat);
        } else {
            self.count(Reason::ForwardDr);
        }
        self.send(out, real.ifindex, real.mac, ingress)
    }

    pub(super) fn reverse_nat(&mut self, out: &mut [u8], p: &Parsed, ingress: u32, nat_services: u32) -> u32 {
        if nat_services == 0 {
            self.count(Reason::NotService);
            return XDP_PASS;
        }
        let rkey = FlowKey::new(p.src, p.dst, p.sport, p.dport, p.proto);
        let Some(rev) = self.nat_reverse.get(&rkey).copied() else {
            self.count(Reason::NotService);
            return XDP_PASS;
        };
        let svc = match self.conf.get(rev.service_id as usize) {
            Some(s)
                if s.id == rev.service_id
                    && s.key.family == p.family
                    && s.forward == Forward::Nat as u8 =>
            {
                *s
            }
            _ => {
                self.count(Reason::BadServiceConfig);
                return XDP_PASS;
            }
        };
        rewrite(out, p, false, &svc.key.addr, svc.key.port);
        self.count(Reason::ReverseNat);
        self.send(out, svc.client_ifindex, svc.gateway_mac, ingress)
    }

    pub(super) fn send(&mut self, out: &mut [u8], ifindex: u32, dst_mac: [u8; 6], ingress: u32) -> u32 {
        let same = ifindex == 0 || ifindex == ingress;
        let mut src_mac = [0u8; 6];
        src_mac.copy_from_slice(&out[0..6]);
        if !same && let Some(i) = self.ifaces.get(&ifindex) {
            src_mac = i.mac;
        }
        out[0..6].copy_from_slice(&dst_mac);
        out[6..12].copy_from_slice(&src_mac);
        if same {
            return XDP_TX;
        }
        if self.tx_ports.contains(&ifindex) {
            XDP_REDIRECT
        } else {
            self.count(Reason::RedirectFailed);
            XDP_DROP
        }
    }
}

fn get16(f: &[u8], off: usize) -> u16 {
    u16::from_be_bytes([f[off], f[off + 1]])
}

fn put16(f: &mut [u8], off: usize, v: u16) {
    f[off..off + 2].copy_from_slice(&v.to_be_bytes());
}

/// Rewrites the destination (or source) address and port with incremental
/// checksum updates, as the kernel's `forward::rewrite`.
fn rewrite(f: &mut [u8], p: &Parsed, dest: bool, new_addr: &[u8; 16], new_port: u16) {
    let old_addr = if dest { p.dst } else { p.src };
    let old_port = if dest { p.dport } else { p.sport };
    let csum_off = if p.proto == PROTO_UDP {
        p.l4 + 6
    } else {
        p.l4 + 16
    };
    let old_l4 = get16(f, csum_off);
    let skip_l4 = p.proto == PROTO_UDP && p.family == FAMILY_V4 && old_l4 == 0;
    let mut l4c = old_l4;
    if p.family == FAMILY_V4 {
        let o: [u8; 4] = old_addr[12..16].try_into().expect("4 bytes");
        let n: [u8; 4] = new_addr[12..16].try_into().expect("4 bytes");
        let aoff = if dest { p.l3 + 16 } else { p.l3 + 12 };
        let ipc = get16(f, p.l3 + 10);
        put16(f, p.l3 + 10, csum::replace32(ipc, o, n));
        f[aoff..aoff + 4].copy_from_slice(&n);
        if !skip_l4 {
            l4c = csum::replace32(l4c, o, n);
        }
    } else {
        let aoff = if dest { p.l3 + 24 } else { p.l3 + 8 };
        f[aoff..aoff + 16].copy_from_slice(new_addr);
        l4c = csum::replace128(l4c, &old_addr, new_addr);
    }
    if new_port != old_port {
        put16(f, if dest { p.l4 + 2 } else { p.l4 }, new_port);
        if !skip_l4 {
            l4c = csum::replace16(l4c, old_port, new_port);
        }
    }
    if !skip_l4 {
        if p.proto == PROTO_UDP {
            l4c = csum::udp_fixup(l4c);
        }
        put16(f, csum_off, l4c);
    }
}
