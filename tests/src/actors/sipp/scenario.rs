//! The two SIPp scenarios, written by code: the IVR's (a UAS that stamps
//! its name on every answer in `X-IVR`) and the caller's (a UAC that logs
//! one line per call event and, with RTP, plays SIPp's G.711 recording).
//! Only text: nothing here runs SIPp or reads what it wrote.

use super::PCAP_G711A;

/// The IVR's scenario (SIPp UAS), answering as `name` (lowercase letters
/// and digits: the caller reads it back with a regular expression).
pub fn ivr_scenario(name: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<!-- tandem IVR {name}: written by tandem-tests (sipp.rs). -->
<scenario name="tandem ivr {name}">
  <recv request="INVITE" crlf="true"/>
  <send><![CDATA[
SIP/2.0 100 Trying
[last_Via:]
[last_From:]
[last_To:];tag=[pid]{name}[call_number]
[last_Call-ID:]
[last_CSeq:]
X-IVR: {name}
Content-Length: 0

]]></send>
  <send><![CDATA[
SIP/2.0 180 Ringing
[last_Via:]
[last_From:]
[last_To:];tag=[pid]{name}[call_number]
[last_Call-ID:]
[last_CSeq:]
X-IVR: {name}
Contact: <sip:ivr@[local_ip]:[local_port];transport=[transport]>
Content-Length: 0

]]></send>
  <!-- SDP: the IVR's own address (-mi), so RTP does not cross the director. -->
  <send retrans="500"><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=[pid]{name}[call_number]
[last_Call-ID:]
[last_CSeq:]
X-IVR: {name}
Contact: <sip:ivr@[local_ip]:[local_port];transport=[transport]>
Content-Type: application/sdp
Content-Length: [len]

v=0
o={name} 1 1 IN IP[media_ip_type] [media_ip]
s=tandem
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 8
a=rtpmap:8 PCMA/8000
a=ptime:30
]]></send>
  <recv request="ACK" optional="true" crlf="true"/>
  <recv request="BYE"/>
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
X-IVR: {name}
Content-Length: 0

]]></send>
  <!-- A retransmitted BYE (our 200 lost) is answered again meanwhile. -->
  <timewait milliseconds="2000"/>
</scenario>
"#
    )
}

/// The caller's scenario (SIPp UAC). Logs `S <n> <timestamp>` when call
/// `n` starts, `E <n> <ivr> <timestamp> <call-id>` once established (ACK
/// sent), `D <n> <ivr> <timestamp>` when its BYE got a 200, naming the IVR
/// that answered the BYE (which must be the one that answered the INVITE).
/// With `rtp`, plays [`PCAP_G711A`] to the IVR's SDP address after the ACK.
pub fn caller_scenario(rtp: bool) -> String {
    let play = if rtp {
        format!(r#"<exec play_pcap_audio="{PCAP_G711A}"/>"#)
    } else {
        String::new()
    };
    format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<!-- tandem caller: written by tandem-tests (sipp.rs). -->
<scenario name="tandem caller">
  <nop><action><log message="S [call_number] [timestamp]"/></action></nop>
  <send retrans="500"><![CDATA[
INVITE sip:ivr@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:caller@[local_ip]:[local_port]>;tag=[pid]caller[call_number]
To: <sip:ivr@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: <sip:caller@[local_ip]:[local_port]>
Max-Forwards: 70
Subject: tandem lab call
Content-Type: application/sdp
Content-Length: [len]

v=0
o=caller 1 1 IN IP[media_ip_type] [media_ip]
s=tandem
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 8
a=rtpmap:8 PCMA/8000
a=ptime:30
]]></send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200" rrs="true">
    <action>
      <ereg regexp="[a-z0-9]+" search_in="hdr" header="X-IVR:" assign_to="ivr"/>
    </action>
  </recv>
  <send><![CDATA[
ACK [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:caller@[local_ip]:[local_port]>;tag=[pid]caller[call_number]
To: <sip:ivr@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 1 ACK
Contact: <sip:caller@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Length: 0

]]></send>
  <nop><action>
    <log message="E [call_number] [$ivr] [timestamp] [call_id]"/>
    {play}
  </action></nop>
  <pause/>
  <send retrans="500"><![CDATA[
BYE [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:caller@[local_ip]:[local_port]>;tag=[pid]caller[call_number]
To: <sip:ivr@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 2 BYE
Contact: <sip:caller@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Length: 0

]]></send>
  <recv response="200" crlf="true">
    <action>
      <ereg regexp="[a-z0-9]+" search_in="hdr" header="X-IVR:" assign_to="byeivr"/>
      <log message="D [call_number] [$byeivr] [timestamp]"/>
    </action>
  </recv>
</scenario>
"#
    )
}

