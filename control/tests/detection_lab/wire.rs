//! The service network's wire, as the detection lab tests watch it: a
//! packet socket on a bridge port (in the lab's switch namespace) that
//! records, with the kernel's receive time (`CLOCK_REALTIME`, from
//! `SO_TIMESTAMPNS`), every frame a director sends that answers for the
//! VIP or carries VIP traffic ([`PortCapture`]); and a prober in the
//! client's namespace that, every few milliseconds, asks "who has the VIP"
//! and sends one UDP datagram to VIP:5060 straight to one director's MAC
//! ([`Prober`]), so that a director that still dispatches shows it.
//!
//! It watches and asks; it never answers, and it sends only inside the
//! lab's namespaces. Every thread it starts ends when its handle is
//! dropped, or after [`MAX_LIFETIME`] whatever happens.

use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tandem_tests::lab::packet;
use tandem_tests::lab::VIP;
use tandem_tests::try_in_netns;

/// No capture or prober thread outlives this.
pub const MAX_LIFETIME: Duration = Duration::from_secs(180);

/// The UDP source port of the prober's datagrams to VIP:5060.
pub const PROBE_PORT: u16 = 5999;

/// `CLOCK_REALTIME` now, in ns (the clock of the kernel's packet stamps
/// and of SIPp's call log).
pub fn realtime_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime(2) writes the timespec passed.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// What a recorded frame did for the VIP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Carries {
    /// An ARP frame whose sender address is the VIP (a reply to a request
    /// for it, or a gratuitous ARP): the sender claims the VIP.
    ArpForVip { op: u16 },
    /// An IPv4 packet to the VIP sent on toward another MAC: dispatched.
    ToVip,
    /// An IPv4 packet from the VIP (an answer or an ICMP error).
    FromVip,
}

/// One frame seen on a bridge port.
#[derive(Clone, Copy, Debug)]
pub struct Seen {
    /// Kernel receive time, `CLOCK_REALTIME` ns.
    pub at_ns: u64,
    pub src: [u8; 6],
    pub dst: [u8; 6],
    pub carries: Carries,
    /// A [`Prober`] datagram (UDP from [`PROBE_PORT`]); read by the
    /// restart lab, not by every test binary that shares this module.
    #[allow(dead_code)]
    pub probe: bool,
}

/// Whether the IPv4 frame `f` is UDP from [`PROBE_PORT`].
fn is_probe(f: &[u8]) -> bool {
    if f.len() < 34 || f[12..14] != [0x08, 0x00] || f[23] != 17 {
        return false;
    }
    let l4 = 14 + usize::from(f[14] & 0x0f) * 4;
    f.get(l4..l4 + 2).is_some_and(|p| u16::from_be_bytes([p[0], p[1]]) == PROBE_PORT)
}

/// A packet socket on one bridge port recording the frames the host at
/// the other end sends (not those the bridge sends to it) that carry the
/// VIP ([`Carries`]).
pub struct PortCapture {
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

fn os_err(what: &str) -> String {
    format!("{what}: {}", std::io::Error::last_os_error())
}

/// An `AF_PACKET` raw socket for every protocol in the calling thread's
/// namespace, bound to `ifindex`, with a 5 ms receive timeout.
fn packet_socket(ifindex: u32, timestamps: bool) -> Result<OwnedFd, String> {
    let fd = packet::packet_socket(ifindex, (libc::ETH_P_ALL as u16).to_be()).map_err(|e| e.to_string())?;
    let tv = libc::timeval {
        tv_sec: 0,
        tv_usec: 5_000,
    };
    let one: libc::c_int = 1;
    let rcvbuf: libc::c_int = 8 << 20;
    // SAFETY: setsockopt(2) with values of the sizes passed.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&raw const tv).cast(),
            size_of::<libc::timeval>() as libc::socklen_t,
        );
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&raw const rcvbuf).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        );
        if timestamps
            && libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_TIMESTAMPNS,
                (&raw const one).cast(),
                size_of::<libc::c_int>() as libc::socklen_t,
            ) != 0
        {
            return Err(os_err("setsockopt(SO_TIMESTAMPNS)"));
        }
    }
    Ok(fd)
}

/// What `f` (a whole Ethernet frame) carries for the VIP, if anything.
pub fn classify(f: &[u8]) -> Option<Carries> {
    if f.len() < 14 {
        return None;
    }
    let ip4 = |o: usize| {
        f.get(o..o + 4)
            .map(|b| Ipv4Addr::new(b[0], b[1], b[2], b[3]))
    };
    match [f[12], f[13]] {
        [0x08, 0x06] if f.len() >= 42 && f[16..18] == [0x08, 0x00] => {
            let op = u16::from_be_bytes([f[20], f[21]]);
            (ip4(28)? == VIP).then_some(Carries::ArpForVip { op })
        }
        [0x08, 0x00] if f.len() >= 34 && f[14] >> 4 == 4 => {
            if ip4(30)? == VIP {
                // A director's own SIP OPTIONS health probe of a DR real
                // server (addressed to the VIP the server listens on) is
                // not client traffic dispatched: a standby probes too.
                let l4 = 14 + usize::from(f[14] & 0x0f) * 4;
                let payload = f.get(l4 + 8..).unwrap_or(&[]);
                if f[23] == 17 && payload.starts_with(b"OPTIONS ") {
                    return None;
                }
                Some(Carries::ToVip)
            } else if ip4(26)? == VIP {
                Some(Carries::FromVip)
            } else {
                None
            }
        }
        _ => None,
    }
}

impl PortCapture {
    /// Starts recording on `ifindex` in namespace `ns` (a bridge port).
    pub fn start(ns: &str, ifindex: u32) -> Result<PortCapture, String> {
        let fd = try_in_netns(ns, || packet_socket(ifindex, true)).map_err(|e| e.to_string())??;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (seen_t, stop_t) = (seen.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name(format!("capture {ifindex}"))
            .spawn(move || capture_loop(&fd, &seen_t, &stop_t))
            .map_err(|e| format!("spawning the capture thread: {e}"))?;
        Ok(PortCapture {
            seen,
            stop,
            thread: Some(thread),
        })
    }

    /// What it recorded so far, in arrival order.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Drop for PortCapture {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn capture_loop(fd: &OwnedFd, seen: &Mutex<Vec<Seen>>, stop: &AtomicBool) {
    let end = Instant::now() + MAX_LIFETIME;
    let mut buf = [0u8; 2048];
    // Room for one SCM_TIMESTAMPNS (a timespec) and then some.
    let mut control = [0u64; 16];
    while !stop.load(Ordering::Relaxed) && Instant::now() < end {
        // SAFETY: an all-zero sockaddr_ll and msghdr are valid; the
        // pointers set below stay valid for the call.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_name = (&raw mut sll).cast();
        msg.msg_namelen = size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        msg.msg_iov = &raw mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = size_of_val(&control);
        // SAFETY: msg describes buffers valid for their lengths.
        let n = unsafe { libc::recvmsg(fd.as_raw_fd(), &raw mut msg, 0) };
        let fallback = realtime_ns();
        if n < 14 {
            continue;
        }
        // Frames the bridge sends toward the host are not the host's.
        if sll.sll_pkttype == libc::PACKET_OUTGOING as u8 {
            continue;
        }
        let f = &buf[..n as usize];
        let Some(carries) = classify(f) else { continue };
        let at_ns = kernel_stamp(&msg).unwrap_or(fallback);
        let mut src = [0u8; 6];
        let mut dst = [0u8; 6];
        dst.copy_from_slice(&f[0..6]);
        src.copy_from_slice(&f[6..12]);
        seen.lock().unwrap_or_else(|e| e.into_inner()).push(Seen {
            at_ns,
            src,
            dst,
            carries,
            probe: is_probe(f),
        });
    }
}

/// The `SCM_TIMESTAMPNS` of a received message, in ns.
fn kernel_stamp(msg: &libc::msghdr) -> Option<u64> {
    // SAFETY: CMSG_FIRSTHDR/NXTHDR walk the control buffer the kernel
    // filled, within msg_controllen.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                return Some(ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64);
            }
            c = libc::CMSG_NXTHDR(msg, c);
        }
    }
    None
}

/// From the client: every `every`, an ARP request for the VIP (broadcast)
/// and, when a target MAC is set, a CRLF keepalive datagram from
/// client:[`PROBE_PORT`] to VIP:5060 sent to that MAC (as a client whose
/// ARP cache still names that director would send it).
pub struct Prober {
    target: Arc<Mutex<Option<[u8; 6]>>>,
    sent: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Prober {
    /// Starts probing from the client's `ifindex` (MAC `mac`, address `addr`) in `ns`.
    pub fn start(
        ns: &str,
        ifindex: u32,
        mac: [u8; 6],
        addr: Ipv4Addr,
        every: Duration,
    ) -> Result<Prober, String> {
        let fd =
            try_in_netns(ns, || packet_socket(ifindex, false)).map_err(|e| e.to_string())??;
        let target = Arc::new(Mutex::new(None));
        let sent = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (target_t, sent_t, stop_t) = (target.clone(), sent.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("prober".into())
            .spawn(move || {
                let end = Instant::now() + MAX_LIFETIME;
                let arp = arp_request(mac, addr);
                while !stop_t.load(Ordering::Relaxed) && Instant::now() < end {
                    let mut ok = send_frame(&fd, ifindex, &arp);
                    let to = *target_t.lock().unwrap_or_else(|e| e.into_inner());
                    if let Some(to) = to {
                        ok &= send_frame(&fd, ifindex, &probe_datagram(mac, to, addr));
                    }
                    if ok {
                        sent_t.fetch_add(1, Ordering::Relaxed);
                    }
                    std::thread::sleep(every);
                }
            })
            .map_err(|e| format!("spawning the prober: {e}"))?;
        Ok(Prober {
            target,
            sent,
            stop,
            thread: Some(thread),
        })
    }

    /// Sends the VIP datagrams to `mac` from now on (`None`: none).
    pub fn aim(&self, mac: Option<[u8; 6]>) {
        *self.target.lock().unwrap_or_else(|e| e.into_inner()) = mac;
    }

    /// Rounds sent in full.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }
}

impl Drop for Prober {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn send_frame(fd: &OwnedFd, ifindex: u32, f: &[u8]) -> bool {
    // SAFETY: an all-zero sockaddr_ll is valid; the fields are set below.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_ifindex = ifindex as i32;
    sll.sll_halen = 6;
    sll.sll_addr[..6].copy_from_slice(&f[0..6]);
    // SAFETY: f and sll are valid for the sizes passed.
    let n = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            f.as_ptr().cast(),
            f.len(),
            0,
            (&raw const sll).cast(),
            size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    n == f.len() as isize
}

/// "Who has the VIP? Tell `addr`", broadcast from `mac`.
pub fn arp_request(mac: [u8; 6], addr: Ipv4Addr) -> Vec<u8> {
    let mut f = Vec::with_capacity(42);
    f.extend_from_slice(&[0xff; 6]);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&[0x08, 0x06, 0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x01]);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&addr.octets());
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&VIP.octets());
    f
}

/// A CRLF keepalive (`\r\n\r\n`) in UDP from `addr`:[`PROBE_PORT`] to
/// VIP:5060, in an Ethernet frame from `src` to `dst` (UDP checksum 0:
/// none, as IPv4 allows).
pub fn probe_datagram(src: [u8; 6], dst: [u8; 6], addr: Ipv4Addr) -> Vec<u8> {
    let payload = b"\r\n\r\n";
    let udp_len = 8 + payload.len();
    let ip_len = 20 + udp_len;
    let mut f = Vec::with_capacity(14 + ip_len);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&[0x08, 0x00]);
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&(ip_len as u16).to_be_bytes());
    ip[6] = 0x40; // don't fragment
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&addr.octets());
    ip[16..20].copy_from_slice(&VIP.octets());
    let sum = ip
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum::<u32>();
    let folded = (sum & 0xffff) + (sum >> 16);
    let folded = (folded & 0xffff) + (folded >> 16);
    ip[10..12].copy_from_slice(&(!(folded as u16)).to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&PROBE_PORT.to_be_bytes());
    f.extend_from_slice(&5060u16.to_be_bytes());
    f.extend_from_slice(&(udp_len as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(payload);
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x10];
    const A_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];

    #[test]
    fn classifies_what_it_sends() {
        let client = Ipv4Addr::new(198, 18, 0, 10);
        // A request for the VIP is not a claim of it.
        assert_eq!(classify(&arp_request(CLIENT_MAC, client)), None);
        let d = probe_datagram(CLIENT_MAC, A_MAC, client);
        assert_eq!(classify(&d), Some(Carries::ToVip));
        // The IPv4 header checksum verifies.
        let sum = d[14..34]
            .chunks(2)
            .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
            .sum::<u32>();
        assert_eq!((sum & 0xffff) + (sum >> 16), 0xffff);
        // A reply "VIP is at A_MAC" claims it.
        let mut reply = arp_request(A_MAC, VIP);
        reply[21] = 2;
        assert_eq!(classify(&reply), Some(Carries::ArpForVip { op: 2 }));
        // From the VIP: the addresses swapped.
        let mut back = d.clone();
        back[26..30].copy_from_slice(&VIP.octets());
        back[30..34].copy_from_slice(&client.octets());
        assert_eq!(classify(&back), Some(Carries::FromVip));
        assert_eq!(classify(&d[..20]), None, "truncated");
    }
}
