//! The control node's span operations: `DAHDI_GETVERSION`, `SPANSTAT`,
//! `SPANCONFIG`, `STARTUP`, `SHUTDOWN` and `MAINT`, answered with DAHDI's
//! errnos (`EINVAL` for an unknown span in `SPANSTAT`/`MAINT`, `ENXIO` in
//! `STARTUP`/`SHUTDOWN`/`SPANCONFIG`, `ENOSYS` for an unknown maintenance
//! command).
//!
//! This module owns a span's running state, line configuration, maintenance
//! mode and error counters. It must not compute alarms or move trunks itself:
//! after a change it calls `settle_alarms` (`alarm.rs`), and when a span starts
//! or stops it asks the failover switch (`connect`, `hand_over` in `trunk.rs`).

use nix::errno::Errno;

use super::{Counters, ECHO_CANCELLERS, TxHook, World};
use crate::abi::{self, dahdi_spaninfo};

/// Line configurations the simulated spans accept (E1 and T1 framing/coding).
pub const LINE_COMPAT: i32 = abi::DAHDI_CONFIG_D4
    | abi::DAHDI_CONFIG_ESF
    | abi::DAHDI_CONFIG_AMI
    | abi::DAHDI_CONFIG_B8ZS
    | abi::DAHDI_CONFIG_CCS
    | abi::DAHDI_CONFIG_HDB3
    | abi::DAHDI_CONFIG_CRC4;

/// Version string `DAHDI_GETVERSION` answers with.
pub const VERSION: &str = concat!("tandem-cardsim ", env!("CARGO_PKG_VERSION"));

impl World {
    /// `DAHDI_GETVERSION`.
    pub fn version(&self, card: usize) -> Result<abi::dahdi_versioninfo, Errno> {
        self.card(card)?;
        let mut info = abi::dahdi_versioninfo::default();
        abi::set_c_string(&mut info.version, VERSION);
        abi::set_c_string(&mut info.echo_canceller, &ECHO_CANCELLERS.join(" "));
        Ok(info)
    }

    /// `DAHDI_SPANSTAT` for span number `spanno` (`EINVAL` if there is no such span).
    pub fn span_info(&self, card: usize, spanno: i32) -> Result<dahdi_spaninfo, Errno> {
        let c = self.card(card)?;
        let index = self.span_index(spanno).ok_or(Errno::EINVAL)?;
        let span = &c.spans[index];
        let mut info = dahdi_spaninfo {
            spanno,
            alarms: span.alarms as i32,
            txlevel: span.lbo,
            rxlevel: 0,
            bpvcount: span.counters.bpv,
            crc4count: span.counters.crc4,
            ebitcount: span.counters.ebit,
            fascount: span.counters.fas,
            syncsrc: if span.running && span.sync > 0 {
                spanno
            } else {
                0
            },
            numchans: span.channels.iter().filter(|ch| ch.sig != 0).count() as i32,
            totalchans: self.config.channels as i32,
            totalspans: self.config.spans as i32,
            lbo: span.lbo,
            lineconfig: span.line_config,
            linecompat: LINE_COMPAT,
            ..Default::default()
        };
        let mut text = [0u8; 40];
        abi::set_c_string(&mut text[..20], &format!("CARDSIM/{card}/{spanno}"));
        info.name.copy_from_slice(&text[..20]);
        abi::set_c_string(
            &mut text,
            &format!("tandem card simulator {card} span {spanno}"),
        );
        info.desc = text;
        abi::set_c_string(&mut text, "0 db (CSU)/0-133 feet (DSX-1)");
        info.lboname = text;
        abi::set_c_string(&mut text, &format!("cardsim:{card}"));
        info.location = text;
        abi::set_c_string(&mut text, "tandem");
        info.manufacturer = text;
        abi::set_c_string(&mut text, "cardsim E1");
        info.devicetype = text;
        let mut spantype = [0u8; 6];
        abi::set_c_string(&mut spantype, "E1");
        info.spantype = spantype;
        Ok(info)
    }

    /// `DAHDI_SPANCONFIG` (`ENXIO` for an unknown span, `EINVAL` for an unsupported line config).
    pub fn span_config(&mut self, card: usize, line: &abi::dahdi_lineconfig) -> Result<(), Errno> {
        self.card(card)?;
        let index = self.span_index(line.span).ok_or(Errno::ENXIO)?;
        if line.lineconfig & 0x1ff0 & LINE_COMPAT != line.lineconfig & 0x1ff0 {
            return Err(Errno::EINVAL);
        }
        let span = &mut self.cards[card].spans[index];
        span.line_config = line.lineconfig;
        span.lbo = line.lbo;
        span.sync = line.sync;
        Ok(())
    }

    /// `DAHDI_STARTUP` (`ENXIO` for an unknown span; starting a running span is a no-op).
    pub fn startup(&mut self, card: usize, spanno: i32) -> Result<(), Errno> {
        self.card(card)?;
        let index = self.span_index(spanno).ok_or(Errno::ENXIO)?;
        if self.cards[card].spans[index].running {
            return Ok(());
        }
        let span = &mut self.cards[card].spans[index];
        span.running = true;
        for ch in &mut span.channels {
            ch.tx = TxHook::OnHook;
        }
        let trunk = span.trunk;
        if self.trunks[trunk].carrier.is_none() && self.may_carry(card, index) {
            self.connect(trunk, Some((card, index)));
        }
        self.settle_alarms();
        Ok(())
    }

    /// `DAHDI_SHUTDOWN` (`ENXIO` for an unknown span): stop the span, unconfigure its
    /// channels, and let the failover switch move the trunk on.
    pub fn shutdown(&mut self, card: usize, spanno: i32) -> Result<(), Errno> {
        self.card(card)?;
        let index = self.span_index(spanno).ok_or(Errno::ENXIO)?;
        let span = &mut self.cards[card].spans[index];
        span.running = false;
        for ch in &mut span.channels {
            ch.sig = 0;
            ch.tx = TxHook::OnHook;
        }
        self.hand_over(card, index);
        self.settle_alarms();
        Ok(())
    }

    /// `DAHDI_MAINT` (`EINVAL` for an unknown span, `ENOSYS` for an unknown command).
    pub fn maint(&mut self, card: usize, info: &abi::dahdi_maintinfo) -> Result<(), Errno> {
        self.card(card)?;
        let index = self.span_index(info.spanno).ok_or(Errno::EINVAL)?;
        let span = &mut self.cards[card].spans[index];
        match info.command {
            abi::DAHDI_MAINT_NONE => {
                span.maint = abi::DAHDI_MAINT_NONE;
                span.alarm_sim = false;
            }
            abi::DAHDI_MAINT_LOCALLOOP
            | abi::DAHDI_MAINT_NETWORKLINELOOP
            | abi::DAHDI_MAINT_NETWORKPAYLOADLOOP => span.maint = info.command,
            abi::DAHDI_MAINT_LOOPUP | abi::DAHDI_MAINT_LOOPDOWN | abi::DAHDI_MAINT_PRBS => {}
            abi::DAHDI_MAINT_FAS_DEFECT => span.counters.fas += 1,
            abi::DAHDI_MAINT_MULTI_DEFECT | abi::DAHDI_MAINT_CAS_DEFECT => span.counters.ebit += 1,
            abi::DAHDI_MAINT_CRC_DEFECT => span.counters.crc4 += 1,
            abi::DAHDI_MAINT_BIPOLAR_DEFECT | abi::DAHDI_MAINT_PRBS_DEFECT => {
                span.counters.bpv += 1
            }
            abi::DAHDI_RESET_COUNTERS => span.counters = Counters::default(),
            abi::DAHDI_MAINT_ALARM_SIM => span.alarm_sim = true,
            _ => return Err(Errno::ENOSYS),
        }
        self.settle_alarms();
        Ok(())
    }
}
