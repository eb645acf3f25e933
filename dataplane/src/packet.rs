//! Test and benchmark frames: Ethernet (+ optional 802.1Q tag), IPv4 (with
//! options) or IPv6, UDP or TCP, with correct checksums. Used by the
//! differential tests, the benchmarks and the lab's traffic generator; the
//! tests check its checksums independently with pnet.

use std::net::IpAddr;

use crate::config::Protocol;

/// A frame to build.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrameSpec {
    pub dst_mac: [u8; 6],
    pub src_mac: [u8; 6],
    pub vlan: Option<u16>,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: Protocol,
    pub sport: u16,
    pub dport: u16,
    /// TCP flags byte (ignored for UDP).
    pub tcp_flags: u8,
    /// IPv4 options (padded to a multiple of 4 bytes; at most 40).
    pub ipv4_options: Vec<u8>,
    /// IPv4 UDP only: send checksum 0 ("none").
    pub udp_no_checksum: bool,
    pub payload: Vec<u8>,
}

impl FrameSpec {
    /// A UDP frame with defaults for everything else.
    pub fn udp(src: IpAddr, sport: u16, dst: IpAddr, dport: u16, payload: &[u8]) -> FrameSpec {
        FrameSpec {
            dst_mac: [0x02, 0, 0, 0, 0, 0x02],
            src_mac: [0x02, 0, 0, 0, 0, 0x01],
            vlan: None,
            src,
            dst,
            proto: Protocol::Udp,
            sport,
            dport,
            tcp_flags: 0,
            ipv4_options: Vec::new(),
            udp_no_checksum: false,
            payload: payload.to_vec(),
        }
    }

    /// A TCP segment with `flags`.
    pub fn tcp(
        src: IpAddr,
        sport: u16,
        dst: IpAddr,
        dport: u16,
        flags: u8,
        payload: &[u8],
    ) -> FrameSpec {
        FrameSpec {
            proto: Protocol::Tcp,
            tcp_flags: flags,
            ..FrameSpec::udp(src, sport, dst, dport, payload)
        }
    }

    pub fn build(&self) -> Vec<u8> {
        let mut f = Vec::with_capacity(128 + self.payload.len());
        f.extend_from_slice(&self.dst_mac);
        f.extend_from_slice(&self.src_mac);
        if let Some(tag) = self.vlan {
            f.extend_from_slice(&0x8100u16.to_be_bytes());
            f.extend_from_slice(&(tag & 0x0fff).to_be_bytes());
        }
        let mut l4 = match self.proto {
            Protocol::Udp => {
                let mut h = Vec::with_capacity(8 + self.payload.len());
                h.extend_from_slice(&self.sport.to_be_bytes());
                h.extend_from_slice(&self.dport.to_be_bytes());
                h.extend_from_slice(&((8 + self.payload.len()) as u16).to_be_bytes());
                h.extend_from_slice(&[0, 0]);
                h.extend_from_slice(&self.payload);
                h
            }
            Protocol::Tcp => {
                let mut h = Vec::with_capacity(20 + self.payload.len());
                h.extend_from_slice(&self.sport.to_be_bytes());
                h.extend_from_slice(&self.dport.to_be_bytes());
                h.extend_from_slice(&0x0100_0000u32.to_be_bytes()); // seq
                h.extend_from_slice(&0u32.to_be_bytes()); // ack
                h.push(5 << 4);
                h.push(self.tcp_flags);
                h.extend_from_slice(&0xffffu16.to_be_bytes()); // window
                h.extend_from_slice(&[0, 0, 0, 0]); // checksum, urgent
                h.extend_from_slice(&self.payload);
                h
            }
        };
        let proto = self.proto.number();
        let csum_off = if proto == tandem_common::PROTO_UDP {
            6
        } else {
            16
        };
        match (self.src, self.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                let mut opts = self.ipv4_options.clone();
                while opts.len() % 4 != 0 {
                    opts.push(0);
                }
                opts.truncate(40);
                let ihl = 20 + opts.len();
                let total = ihl + l4.len();
                let mut pseudo = Vec::with_capacity(12);
                pseudo.extend_from_slice(&s.octets());
                pseudo.extend_from_slice(&d.octets());
                pseudo.extend_from_slice(&[0, proto]);
                pseudo.extend_from_slice(&(l4.len() as u16).to_be_bytes());
                if !(proto == tandem_common::PROTO_UDP && self.udp_no_checksum) {
                    let mut c = checksum(&[&pseudo, &l4]);
                    if proto == tandem_common::PROTO_UDP && c == 0 {
                        c = 0xffff;
                    }
                    l4[csum_off..csum_off + 2].copy_from_slice(&c.to_be_bytes());
                }
                f.extend_from_slice(&0x0800u16.to_be_bytes());
                let mut ip = Vec::with_capacity(ihl);
                ip.push(0x40 | (ihl / 4) as u8);
                ip.push(0);
                ip.extend_from_slice(&(total as u16).to_be_bytes());
                ip.extend_from_slice(&0x1234u16.to_be_bytes());
                ip.extend_from_slice(&0x4000u16.to_be_bytes()); // DF
                ip.push(64);
                ip.push(proto);
                ip.extend_from_slice(&[0, 0]);
                ip.extend_from_slice(&s.octets());
                ip.extend_from_slice(&d.octets());
                ip.extend_from_slice(&opts);
                let c = checksum(&[&ip]);
                ip[10..12].copy_from_slice(&c.to_be_bytes());
                f.extend_from_slice(&ip);
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                let mut pseudo = Vec::with_capacity(40);
                pseudo.extend_from_slice(&s.octets());
                pseudo.extend_from_slice(&d.octets());
                pseudo.extend_from_slice(&(l4.len() as u32).to_be_bytes());
                pseudo.extend_from_slice(&[0, 0, 0, proto]);
                let mut c = checksum(&[&pseudo, &l4]);
                if proto == tandem_common::PROTO_UDP && c == 0 {
                    c = 0xffff;
                }
                l4[csum_off..csum_off + 2].copy_from_slice(&c.to_be_bytes());
                f.extend_from_slice(&0x86ddu16.to_be_bytes());
                f.extend_from_slice(&[0x60, 0, 0, 0]);
                f.extend_from_slice(&(l4.len() as u16).to_be_bytes());
                f.push(proto);
                f.push(64);
                f.extend_from_slice(&s.octets());
                f.extend_from_slice(&d.octets());
            }
            _ => panic!("FrameSpec: source and destination families differ"),
        }
        f.extend_from_slice(&l4);
        f
    }
}

/// The Internet checksum of the concatenation of `parts`.
pub fn checksum(parts: &[&[u8]]) -> u16 {
    let mut sum: u32 = 0;
    let mut odd: Option<u8> = None;
    for part in parts {
        for b in part.iter() {
            match odd.take() {
                None => odd = Some(*b),
                Some(hi) => sum += u16::from_be_bytes([hi, *b]) as u32,
            }
        }
    }
    if let Some(hi) = odd {
        sum += u16::from_be_bytes([hi, 0]) as u32;
    }
    !tandem_common::csum::fold(sum)
}
