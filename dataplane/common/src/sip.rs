//! SIP Call-ID recognition for Call-ID persistence (`FLAG_SIP_PERSIST`,
//! the dispatcher's answer to IPVS `--pe sip`): a byte-at-a-time scanner
//! that the XDP program runs over the first [`SIP_SCAN_LEN`] bytes of a
//! UDP/TCP payload (one `bpf_loop` iteration per byte), and the 64-bit
//! hash of the Call-ID that keys the `CALLS` table.
//!
//! What counts as a Call-ID (the host's reference model implements the
//! same rules independently, line by line, and the differential test
//! compares the two):
//! - The payload must look like SIP: it starts with a token of 1 to 16
//!   characters, the first `A`–`Z`, the others `A`–`Z`, `0`–`9`, `/` or
//!   `.`, followed by a space (`INVITE `, `REGISTER `, `SIP/2.0 `). That
//!   line (the request or status line) is skipped.
//! - Each following line (lines end at LF; CRLF or a bare LF) is a header
//!   until the first empty line (`CRLF` or `LF` alone), which ends the
//!   header section: nothing in a body is looked at.
//! - A Call-ID header is a line that starts with `Call-ID` or the compact
//!   form `i` (case-insensitive), then optional SP/HTAB, then `:`, then
//!   optional SP/HTAB, then the value, which runs to the first CR or LF;
//!   trailing SP/HTAB are trimmed. The first such header decides: an
//!   empty value, or a value not terminated by CR/LF within the scan
//!   window (cut off by the end of the payload or by the window), means
//!   "no Call-ID". Folded (continued) header lines are not joined: the
//!   value ends at the line end.
//! - Only the first [`MAX_CALLID_LEN`] bytes of a longer value are kept
//!   and hashed (a Call-ID is normally 20–60 bytes; two longer ones that
//!   share their first 128 bytes are one call to the dispatcher).
//!
//! Limits: a Call-ID beyond the first [`SIP_SCAN_LEN`] bytes of the
//! payload is not seen (SIPp's INVITE has it within the first ~250
//! bytes; a request through three proxies within ~700), and only a
//! segment or datagram that starts with a SIP message is looked at (SIP
//! over TCP is a stream; messages that start mid-segment are not found).


/// Bytes of the payload the scanner looks at (a power of two: the kernel
/// masks indices with `SIP_SCAN_LEN - 1`).
pub const SIP_SCAN_LEN: usize = 1024;
/// Bytes of a Call-ID value kept and hashed.
pub const MAX_CALLID_LEN: usize = 128;
/// Longest first token of a message that still looks like SIP.
pub const SIP_MAX_TOKEN: u32 = 16;

/// Does a SIP message starting with these 8 bytes end its dialog or its
/// call attempt: a BYE or a CANCEL request? Its call is then no longer
/// counted as an active connection of its real server (IPVS counts a
/// TCP connection active until its FIN); the entry stays, so that the
/// answer and retransmissions still reach the same server, until it is
/// idle for the call timeout. A BYE the IVR sends (in DR it goes to the
/// caller directly) is not seen; the caller's answer to it is
/// ([`answers_bye`], [`CseqScan`]).
pub const fn ends_dialog(head: &[u8; 8]) -> bool {
    let bye = head[0] == b'B' && head[1] == b'Y' && head[2] == b'E' && head[3] == b' ';
    let cancel = head[0] == b'C'
        && head[1] == b'A'
        && head[2] == b'N'
        && head[3] == b'C'
        && head[4] == b'E'
        && head[5] == b'L'
        && head[6] == b' ';
    bye || cancel
}

/// Does a SIP message starting with these 8 bytes look like a response
/// (`SIP/2.0 `)? Only a response is looked at by [`CseqScan`].
pub const fn is_response(head: &[u8; 8]) -> bool {
    head[0] == b'S'
        && head[1] == b'I'
        && head[2] == b'P'
        && head[3] == b'/'
        && head[4] == b'2'
        && head[5] == b'.'
        && head[6] == b'0'
        && head[7] == b' '
}

// CSeq scanner states.
/// Skipping to the end of the line (the status line first).
const C_SKIP: u32 = 0;
/// At the start of a header line.
const C_LINE: u32 = 1;
/// A CR at the start of a line.
const C_LINE_CR: u32 = 2;
/// Matching `cseq`; `n` = characters matched.
const C_NAME: u32 = 3;
/// The name matched; SP/HTAB until `:`.
const C_AFTER_NAME: u32 = 4;
/// After the colon; SP/HTAB until the sequence number.
const C_BEFORE_NUM: u32 = 5;
/// In the sequence number.
const C_NUM: u32 = 6;
/// SP/HTAB between the number and the method.
const C_BEFORE_METHOD: u32 = 7;
/// Matching `BYE`; `n` = characters matched.
const C_METHOD: u32 = 8;
/// Done: the CSeq's method is BYE.
const C_BYE: u32 = 9;
/// Done: another method, a malformed CSeq, or no CSeq in the headers.
const C_OTHER: u32 = 10;

const CSEQ: [u8; 4] = *b"cseq";
const BYE: [u8; 3] = *b"BYE";

/// Finds whether a SIP response answers a BYE: the first `CSeq` header
/// (case-insensitive name, then optional SP/HTAB, `:`, optional SP/HTAB,
/// digits, SP/HTAB, the method) names the method `BYE` (case-sensitive,
/// as SIP methods are), followed by the line end or SP/HTAB. Fed the
/// message from its first byte (the status line is skipped); the header
/// section ends at the first empty line. In DR mode the IVR's BYE goes
/// to the caller directly, and the caller's answer to it comes back
/// through the VIP: that answer is when the director learns the call is
/// over.
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, Default)]
pub struct CseqScan {
    pub state: u32,
    pub n: u32,
}

impl CseqScan {
    pub const fn new() -> CseqScan {
        CseqScan { state: C_SKIP, n: 0 }
    }

    /// Did the scan end on a CSeq naming BYE?
    #[inline(always)]
    pub fn is_bye(&self) -> bool {
        self.state == C_BYE
    }

    /// Feeds one byte; true when the scan is over.
    #[inline(always)]
    pub fn step(&mut self, b: u8) -> bool {
        let n = self.n;
        match self.state {
            C_SKIP if b == b'\n' => self.state = C_LINE,
            C_LINE => {
                self.state = if lower(b) == b'c' {
                    self.n = 1;
                    C_NAME
                } else if b == b'\r' {
                    C_LINE_CR
                } else if b == b'\n' {
                    C_OTHER
                } else {
                    C_SKIP
                };
            }
            C_LINE_CR => self.state = if b == b'\n' { C_OTHER } else { C_SKIP },
            C_NAME => {
                let want = match CSEQ.get(n as usize) {
                    Some(c) => *c,
                    None => 0,
                };
                if lower(b) == want {
                    self.n = n + 1;
                    if n + 1 >= CSEQ.len() as u32 {
                        self.state = C_AFTER_NAME;
                    }
                } else if b == b'\n' {
                    self.state = C_LINE;
                } else {
                    self.state = C_SKIP;
                }
            }
            C_AFTER_NAME => {
                if b == b':' {
                    self.state = C_BEFORE_NUM;
                } else if b == b'\n' {
                    self.state = C_LINE;
                } else if !is_ws(b) {
                    // Another header whose name starts with "cseq".
                    self.state = C_SKIP;
                }
            }
            C_BEFORE_NUM => {
                if b.is_ascii_digit() {
                    self.state = C_NUM;
                } else if !is_ws(b) {
                    self.state = C_OTHER;
                }
            }
            C_NUM => {
                if is_ws(b) {
                    self.state = C_BEFORE_METHOD;
                } else if !b.is_ascii_digit() {
                    self.state = C_OTHER;
                }
            }
            C_BEFORE_METHOD => {
                if b == BYE[0] {
                    self.state = C_METHOD;
                    self.n = 1;
                } else if !is_ws(b) {
                    self.state = C_OTHER;
                }
            }
            C_METHOD => {
                if (n as usize) < BYE.len() {
                    let want = match BYE.get(n as usize) {
                        Some(c) => *c,
                        None => 0,
                    };
                    if b == want {
                        self.n = n + 1;
                    } else {
                        self.state = C_OTHER;
                    }
                } else {
                    self.state = if b == b'\r' || b == b'\n' || is_ws(b) { C_BYE } else { C_OTHER };
                }
            }
            // C_SKIP before the line end, and the final states.
            _ => {}
        }
        self.state >= C_BYE
    }
}

/// Runs [`CseqScan`] over the first [`SIP_SCAN_LEN`] bytes of a payload,
/// as the kernel does: is it a response to a BYE?
pub fn answers_bye(payload: &[u8]) -> bool {
    let mut head = [0u8; 8];
    let mut i = 0;
    while i < 8 && i < payload.len() {
        head[i] = payload[i];
        i += 1;
    }
    if !is_response(&head) {
        return false;
    }
    let mut s = CseqScan::new();
    let n = if payload.len() > SIP_SCAN_LEN { SIP_SCAN_LEN } else { payload.len() };
    for b in &payload[..n] {
        if s.step(*b) {
            break;
        }
    }
    s.is_bye()
}

/// FNV-1a 64 offset basis and prime.
pub const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// One FNV-1a 64 step.
#[inline(always)]
pub fn fnv1a_step(h: u64, b: u8) -> u64 {
    (h ^ b as u64).wrapping_mul(FNV_PRIME)
}

/// The hash that keys a call in `CALLS`: FNV-1a (64-bit) over the first
/// [`MAX_CALLID_LEN`] bytes of the trimmed Call-ID value. Not keyed: it
/// only has to spread and to be the same in the kernel, on the host and
/// on the other node of the pair.
pub fn callid_hash(callid: &[u8]) -> u64 {
    let n = if callid.len() > MAX_CALLID_LEN {
        MAX_CALLID_LEN
    } else {
        callid.len()
    };
    let mut h = FNV_OFFSET;
    for b in &callid[..n] {
        h = fnv1a_step(h, *b);
    }
    h
}

/// The 32-bit form of a Call-ID hash that sh and mh use as their hash
/// input for calls (so one Call-ID always maps to one table entry).
#[inline(always)]
pub fn callid_sched_hash(h: u64) -> u32 {
    (h ^ (h >> 32)) as u32
}

// Scanner states.
/// In the first token of the start line; `n` = its length so far.
const S_FIRST: u32 = 0;
/// Skipping to the end of the line.
const S_SKIP: u32 = 1;
/// At the start of a header line.
const S_LINE: u32 = 2;
/// A CR at the start of a line (an empty line if LF follows).
const S_LINE_CR: u32 = 3;
/// Matching `call-id`; `n` = characters matched.
const S_NAME: u32 = 4;
/// The header name matched; SP/HTAB until `:`.
const S_AFTER_NAME: u32 = 5;
/// After the colon; SP/HTAB until the value.
const S_BEFORE_VALUE: u32 = 6;
/// In the value; `n` = bytes seen.
const S_VALUE: u32 = 7;
/// Done: a Call-ID was found.
pub const S_FOUND: u32 = 8;
/// Done: no Call-ID (not SIP, end of headers, empty value).
pub const S_NONE: u32 = 9;

const CALL_ID: [u8; 7] = *b"call-id";

#[inline(always)]
fn lower(b: u8) -> u8 {
    if b.is_ascii_uppercase() { b + 32 } else { b }
}

#[inline(always)]
fn is_ws(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// The scanner: feed it the window's bytes in order with [`Scanner::step`]
/// until it returns true or the window ends; then [`Scanner::found`]
/// tells whether `text[..len]` and `hash` hold a Call-ID. In the kernel it
/// lives in per-CPU map memory (`SipScratch`), so that its fields are not
/// tracked by the verifier and a loop over it is verified as one state.
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug)]
pub struct Scanner {
    /// FNV-1a over the first `MAX_CALLID_LEN` value bytes seen so far.
    pub hash_all: u64,
    /// `hash_all` as of the last non-blank value byte: the trimmed value's hash.
    pub hash: u64,
    /// One of the `S_*` states.
    pub state: u32,
    /// Token length, name position or value bytes seen (by state).
    pub n: u32,
    /// Length of the trimmed value, at most `MAX_CALLID_LEN`.
    pub len: u32,
    pub _pad: u32,
    /// The value's first `MAX_CALLID_LEN` bytes (`text[..len]` is the
    /// trimmed Call-ID; later bytes are unspecified).
    pub text: [u8; MAX_CALLID_LEN],
}

impl Default for Scanner {
    fn default() -> Self {
        Scanner::new()
    }
}

impl Scanner {
    pub const fn new() -> Scanner {
        Scanner {
            hash_all: FNV_OFFSET,
            hash: FNV_OFFSET,
            state: S_FIRST,
            n: 0,
            len: 0,
            _pad: 0,
            text: [0; MAX_CALLID_LEN],
        }
    }

    /// Back to the start state (the text is left as it is).
    #[inline(always)]
    pub fn reset(&mut self) {
        self.hash_all = FNV_OFFSET;
        self.hash = FNV_OFFSET;
        self.state = S_FIRST;
        self.n = 0;
        self.len = 0;
    }

    /// Did the scan end with a Call-ID?
    #[inline(always)]
    pub fn found(&self) -> bool {
        self.state == S_FOUND
    }

    /// Feeds one byte; true when the scan is over (found or not).
    #[inline(always)]
    pub fn step(&mut self, b: u8) -> bool {
        let n = self.n;
        match self.state {
            S_FIRST => {
                let ok = b.is_ascii_uppercase()
                    || (n > 0 && (b.is_ascii_digit() || b == b'/' || b == b'.'));
                if ok && n < SIP_MAX_TOKEN {
                    self.n = n + 1;
                } else if b == b' ' && n > 0 {
                    self.state = S_SKIP;
                } else {
                    self.state = S_NONE;
                }
            }
            S_SKIP if b == b'\n' => self.state = S_LINE,
            S_LINE => {
                let l = lower(b);
                self.state = if l == b'c' {
                    self.n = 1;
                    S_NAME
                } else if l == b'i' {
                    S_AFTER_NAME
                } else if b == b'\r' {
                    S_LINE_CR
                } else if b == b'\n' {
                    S_NONE
                } else {
                    S_SKIP
                };
            }
            S_LINE_CR => {
                self.state = if b == b'\n' { S_NONE } else { S_SKIP };
            }
            S_NAME => {
                let want = match CALL_ID.get(n as usize) {
                    Some(c) => *c,
                    None => 0,
                };
                if lower(b) == want {
                    self.n = n + 1;
                    if n + 1 >= CALL_ID.len() as u32 {
                        self.state = S_AFTER_NAME;
                    }
                } else if b == b'\n' {
                    self.state = S_LINE;
                } else {
                    self.state = S_SKIP;
                }
            }
            S_AFTER_NAME => {
                if b == b':' {
                    self.state = S_BEFORE_VALUE;
                } else if b == b'\n' {
                    self.state = S_LINE;
                } else if !is_ws(b) {
                    self.state = S_SKIP;
                }
            }
            S_BEFORE_VALUE => {
                if b == b'\r' || b == b'\n' {
                    self.state = S_NONE;
                } else if !is_ws(b) {
                    self.state = S_VALUE;
                    self.n = 0;
                    self.value_byte(0, b);
                }
            }
            S_VALUE => {
                if b == b'\r' || b == b'\n' {
                    self.state = S_FOUND;
                } else {
                    self.value_byte(n, b);
                }
            }
            // S_SKIP before the line end, and the final states.
            _ => {}
        }
        self.state >= S_FOUND
    }

    #[inline(always)]
    fn value_byte(&mut self, n: u32, b: u8) {
        if let Some(t) = self.text.get_mut(n as usize) {
            *t = b;
            self.hash_all = fnv1a_step(self.hash_all, b);
        }
        if !is_ws(b) {
            self.hash = self.hash_all;
            self.len = if n < MAX_CALLID_LEN as u32 {
                n + 1
            } else {
                MAX_CALLID_LEN as u32
            };
        }
        if n < u32::MAX {
            self.n = n + 1;
        }
    }
}

/// A Call-ID as the dispatcher keys it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct CallId {
    pub hash: u64,
    pub len: usize,
    pub text: [u8; MAX_CALLID_LEN],
}

impl CallId {
    /// The (trimmed, at most `MAX_CALLID_LEN`) Call-ID bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.text[..self.len]
    }
}

impl core::fmt::Debug for CallId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "CallId({:?}, {:#018x})", self.as_bytes().escape_ascii(), self.hash)
    }
}

/// Runs the scanner over the first `SIP_SCAN_LEN` bytes of `payload`, as
/// the kernel does.
pub fn find_call_id(payload: &[u8]) -> Option<CallId> {
    let mut s = Scanner::new();
    let n = if payload.len() > SIP_SCAN_LEN {
        SIP_SCAN_LEN
    } else {
        payload.len()
    };
    for b in &payload[..n] {
        if s.step(*b) {
            break;
        }
    }
    if s.found() {
        Some(CallId {
            hash: s.hash,
            len: s.len as usize,
            text: s.text,
        })
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bye_and_cancel_end_a_dialog_nothing_else_does() {
        let head = |s: &[u8]| {
            let mut h = [0u8; 8];
            h[..s.len().min(8)].copy_from_slice(&s[..s.len().min(8)]);
            h
        };
        for yes in [&b"BYE sip:ivr@x SIP/2.0"[..], b"CANCEL sip:ivr SIP/2.0"] {
            assert!(ends_dialog(&head(yes)), "{:?}", yes);
        }
        for no in [&b"INVITE sip:x SIP/2.0"[..], b"ACK sip:x", b"SIP/2.0 200 OK", b"BYEX sip", b"bye sip:x", b"CANCELLED", b"OPTIONS"] {
            assert!(!ends_dialog(&head(no)), "{:?}", no);
        }
    }

    #[test]
    fn a_response_to_a_bye_is_seen_and_nothing_else() {
        let ok = |cseq: &str| std::format!("SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 198.18.0.100\r\nCall-ID: 9@x\r\n{cseq}\r\nContent-Length: 0\r\n\r\n");
        for yes in ["CSeq: 2 BYE", "cseq:2 BYE", "CSEQ :  17\tBYE", "CSeq: 2 BYE "] {
            assert!(answers_bye(ok(yes).as_bytes()), "{yes}");
        }
        for no in ["CSeq: 1 INVITE", "CSeq: 2 BYEX", "CSeq: 2 bye", "CSeq: BYE", "CSeq-X: 2 BYE", "X-CSeq: 2 BYE", "CSeq: 2 CANCEL"] {
            assert!(!answers_bye(ok(no).as_bytes()), "{no}");
        }
        // A request is not a response; a CSeq in the body is not a header.
        assert!(!answers_bye(b"BYE sip:x SIP/2.0\r\nCSeq: 2 BYE\r\n\r\n"));
        assert!(!answers_bye(b"SIP/2.0 200 OK\r\nCall-ID: 1\r\n\r\nCSeq: 2 BYE\r\n"));
        // The first CSeq decides; a cut-off one is not a BYE.
        assert!(!answers_bye(b"SIP/2.0 200 OK\r\nCSeq: 1 INVITE\r\nCSeq: 2 BYE\r\n\r\n"));
        assert!(!answers_bye(b"SIP/2.0 200 OK\r\nCSeq: 2 BY"));
        assert!(answers_bye(b"SIP/2.0 481 Call Does Not Exist\nCSeq: 3 BYE\n\n"), "bare LF, any final status");
    }

    fn id(msg: &[u8]) -> Option<&'static str> {
        let c = find_call_id(msg)?;
        assert_eq!(c.hash, callid_hash(c.as_bytes()), "hash of the kept text");
        Some(std::string::String::from_utf8(c.as_bytes().to_vec()).unwrap().leak())
    }

    extern crate std;

    /// SIPp's built-in uac INVITE with typical values filled in.
    pub const SIPP_INVITE: &[u8] = b"INVITE sip:service@198.18.0.100:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP 198.19.0.1:5060;branch=z9hG4bK-4242-1-0\r\n\
From: sipp <sip:sipp@198.19.0.1:5060>;tag=4242SIPpTag001\r\n\
To: service <sip:service@198.18.0.100:5060>\r\n\
Call-ID: 1-4242@198.19.0.1\r\n\
CSeq: 1 INVITE\r\n\
Contact: sip:sipp@198.19.0.1:5060\r\n\
Max-Forwards: 70\r\n\
Subject: Performance Test\r\n\
Content-Type: application/sdp\r\n\
Content-Length:   129\r\n\
\r\n\
v=0\r\n\
o=user1 53655765 2353687637 IN IP4 198.19.0.1\r\n\
s=-\r\n\
c=IN IP4 198.19.0.1\r\n\
t=0 0\r\n\
m=audio 6000 RTP/AVP 0\r\n\
a=rtpmap:0 PCMU/8000\r\n";

    #[test]
    fn hash_test_vectors() {
        // The published FNV-1a 64 vectors.
        assert_eq!(callid_hash(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(callid_hash(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(callid_hash(b"foobar"), 0x8594_4171_f739_67e8);
        // Pinned: a change would split every synced call after an upgrade.
        assert_eq!(callid_hash(b"1-4242@198.19.0.1"), callid_hash(b"1-4242@198.19.0.1"));
        let long = [b'x'; 300];
        assert_eq!(callid_hash(&long), callid_hash(&long[..MAX_CALLID_LEN]));
    }

    #[test]
    fn sipp_invite_full_form() {
        assert_eq!(id(SIPP_INVITE), Some("1-4242@198.19.0.1"));
        let at = SIPP_INVITE.windows(8).position(|w| w == b"Call-ID:").unwrap();
        assert!(at < 300, "SIPp's Call-ID starts at byte {at}");
    }

    #[test]
    fn compact_form_and_case() {
        assert_eq!(id(b"BYE sip:a SIP/2.0\r\ni: abc\r\n\r\n"), Some("abc"));
        assert_eq!(id(b"BYE sip:a SIP/2.0\r\nI:abc\r\n"), Some("abc"));
        assert_eq!(id(b"BYE sip:a SIP/2.0\r\ncall-id: lower\r\n"), Some("lower"));
        assert_eq!(id(b"BYE sip:a SIP/2.0\r\nCALL-ID: upper\r\n"), Some("upper"));
        assert_eq!(id(b"BYE sip:a SIP/2.0\r\ncAlL-iD: mixed\r\n"), Some("mixed"));
        assert_eq!(id(b"SIP/2.0 200 OK\r\nCall-ID: st\r\n"), Some("st"));
    }

    #[test]
    fn whitespace_around_the_colon_and_trailing() {
        assert_eq!(id(b"ACK x SIP/2.0\r\nCall-ID \t : \t v1 \t\r\n"), Some("v1"));
        assert_eq!(id(b"ACK x SIP/2.0\r\ni\t:v2\r\n"), Some("v2"));
        // Inner blanks are part of the value.
        assert_eq!(id(b"ACK x SIP/2.0\r\nCall-ID: a b\r\n"), Some("a b"));
    }

    #[test]
    fn lf_only_line_ends() {
        assert_eq!(id(b"INVITE x SIP/2.0\nVia: v\nCall-ID: lf\nCSeq: 1\n\n"), Some("lf"));
        // A value ends at a bare CR too.
        assert_eq!(id(b"INVITE x SIP/2.0\nCall-ID: cr\rjunk\n"), Some("cr"));
    }

    #[test]
    fn first_and_deep_headers() {
        assert_eq!(id(b"OPTIONS x SIP/2.0\r\nCall-ID: first\r\nVia: v\r\n"), Some("first"));
        let mut m = b"INVITE x SIP/2.0\r\n".to_vec();
        for i in 0..12 {
            m.extend_from_slice(std::format!("Via: SIP/2.0/UDP proxy{i}.example:5060;branch=z9hG4bK{i}\r\n").as_bytes());
        }
        assert!(m.len() < SIP_SCAN_LEN - 40);
        m.extend_from_slice(b"Call-ID: deep\r\n");
        assert_eq!(id(&m), Some("deep"));
    }

    #[test]
    fn call_id_inside_other_headers_or_the_body_does_not_match() {
        assert_eq!(id(b"INVITE x SIP/2.0\r\nX-Call-ID-Foo: no\r\n\r\n"), None);
        assert_eq!(id(b"INVITE x SIP/2.0\r\nCall-ID-Foo: no\r\n\r\n"), None);
        assert_eq!(id(b"INVITE x SIP/2.0\r\nSubject: Call-ID: no\r\n\r\n"), None);
        assert_eq!(id(b"INVITE x SIP/2.0\r\nIn-Reply-To: no\r\ni-x: no\r\n\r\n"), None);
        assert_eq!(id(b"INVITE x SIP/2.0\r\n Call-ID: folded\r\n\r\n"), None);
        // In the body, after the empty line.
        assert_eq!(id(b"INVITE x SIP/2.0\r\nVia: v\r\n\r\nCall-ID: body\r\n"), None);
        assert_eq!(id(b"INVITE x SIP/2.0\nVia: v\n\nCall-ID: body\n"), None);
        // The start line is not a header.
        assert_eq!(id(b"INVITE Call-ID: x SIP/2.0\r\n\r\n"), None);
        // The first Call-ID decides, even if empty.
        assert_eq!(id(b"INVITE x SIP/2.0\r\nCall-ID:\r\nCall-ID: second\r\n"), None);
        // A CR that is not followed by LF does not end the headers.
        assert_eq!(id(b"INVITE x SIP/2.0\r\n\rX\r\nCall-ID: after\r\n"), Some("after"));
    }

    #[test]
    fn cut_off_values_are_not_call_ids() {
        assert_eq!(id(b"INVITE x SIP/2.0\r\nCall-ID: cut"), None);
        assert_eq!(id(b"INVITE x SIP/2.0\r\nCall-ID:"), None);
        assert_eq!(id(b"INVITE x SIP/2.0\r\nCall-I"), None);
        let mut m = b"INVITE x SIP/2.0\r\n".to_vec();
        m.extend_from_slice(b"X-Pad: ");
        m.resize(SIP_SCAN_LEN - 12, b'p');
        m.extend_from_slice(b"\r\nCall-ID: beyond-the-window\r\n");
        assert_eq!(id(&m), None, "Call-ID line cut by the scan window");
        let mut m = b"INVITE x SIP/2.0\r\n".to_vec();
        m.extend_from_slice(b"X-Pad: ");
        m.resize(SIP_SCAN_LEN + 10, b'p');
        m.extend_from_slice(b"\r\nCall-ID: far\r\n");
        assert_eq!(id(&m), None, "Call-ID beyond the window");
    }

    #[test]
    fn long_values_keep_their_first_128_bytes() {
        let mut m = b"INVITE x SIP/2.0\r\nCall-ID: ".to_vec();
        let v: std::vec::Vec<u8> = (0..200).map(|i| b'a' + (i % 26) as u8).collect();
        m.extend_from_slice(&v);
        m.extend_from_slice(b"   \r\n");
        let c = find_call_id(&m).unwrap();
        assert_eq!(c.as_bytes(), &v[..MAX_CALLID_LEN]);
        assert_eq!(c.hash, callid_hash(&v));
        // Trailing blanks straddling the 128-byte mark.
        let mut m = b"INVITE x SIP/2.0\r\nCall-ID: ".to_vec();
        m.extend_from_slice(&[b'z'; 126]);
        m.extend_from_slice(b"     \r\n");
        assert_eq!(find_call_id(&m).unwrap().len, 126);
    }

    #[test]
    fn not_sip() {
        assert_eq!(id(b""), None);
        assert_eq!(id(b"\r\n\r\n"), None, "keepalive");
        assert_eq!(id(b"\r\n"), None);
        assert_eq!(id(b"invite x SIP/2.0\r\nCall-ID: a\r\n"), None, "lowercase method");
        assert_eq!(id(b"INVITEINVITEINVITEX x\r\nCall-ID: a\r\n"), None, "token too long");
        assert_eq!(id(b" INVITE x\r\nCall-ID: a\r\n"), None);
        assert_eq!(id(b"\x00\xff\x13Call-ID: a\r\n"), None, "binary");
        let garbage: std::vec::Vec<u8> = (0..2000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        assert_eq!(id(&garbage), None);
        // SIP without a Call-ID.
        assert_eq!(id(b"OPTIONS sip:x SIP/2.0\r\nVia: v\r\nCSeq: 1 OPTIONS\r\n\r\n"), None);
    }
}
