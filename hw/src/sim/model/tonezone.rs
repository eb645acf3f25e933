//! Tone zones: what `dahdi_cfg` loads for its `loadzone=` and
//! `defaultzone=` lines (through libtonezone), answered with DAHDI's errnos:
//! `DAHDI_LOADZONE` refuses a zone number outside 0..=255, a tone count
//! outside 0..=128 and a zone that is already loaded (`EINVAL`);
//! `DAHDI_FREEZONE` of a zone that is not loaded succeeds; `DAHDI_DEFAULTZONE`
//! refuses a zone that is not loaded (`EINVAL`).
//!
//! This module owns a card's table of loaded zones and its default zone.
//! The tone definitions themselves are not modelled: a FUSE server is given
//! exactly the request's encoded size, the `dahdi_tone_def_header`, and not
//! the definitions that follow it in the caller's memory (the kernel reads
//! those past the header), so a zone here is its number, name, ring cadence
//! and how many tones it declared.

use nix::errno::Errno;

use super::World;
use crate::abi::{self, dahdi_tone_def_header};

/// The largest zone number `DAHDI_LOADZONE` takes (DAHDI keeps it in a byte).
const MAX_ZONE: i32 = 255;
/// The most tone definitions one zone may declare (dahdi-base's `MAX_TONES`).
const MAX_TONES: i32 = 128;

/// A loaded tone zone, as its header described it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ToneZone {
    pub number: i32,
    /// The informational name (`dahdi_tone_def_header.name`, e.g. `Netherlands`).
    pub name: String,
    /// Ring cadence in ms, up to the first 0.
    pub ring_cadence: Vec<i32>,
    /// Tone definitions the header declared.
    pub tones: i32,
}

/// A card's tone zones: every loaded zone by number, and the default.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ToneZoneReport {
    pub zones: Vec<ToneZone>,
    /// The zone `DAHDI_DEFAULTZONE` chose; `None` until it is called (or once
    /// the default zone is freed).
    pub default: Option<i32>,
}

impl World {
    /// `DAHDI_LOADZONE` from the header alone (see the module doc).
    pub fn load_zone(&mut self, card: usize, header: &dahdi_tone_def_header) -> Result<(), Errno> {
        self.card(card)?;
        if !(0..=MAX_ZONE).contains(&header.zone) || !(0..=MAX_TONES).contains(&header.count) {
            return Err(Errno::EINVAL);
        }
        let zones = &mut self.cards[card].zones;
        if zones.contains_key(&header.zone) || zones.len() >= abi::DAHDI_TONE_ZONE_MAX {
            return Err(Errno::EINVAL);
        }
        let ring_cadence = header
            .ringcadence
            .iter()
            .copied()
            .take_while(|&ms| ms != 0)
            .collect();
        zones.insert(
            header.zone,
            ToneZone {
                number: header.zone,
                name: abi::c_string(&header.name),
                ring_cadence,
                tones: header.count,
            },
        );
        Ok(())
    }

    /// `DAHDI_FREEZONE`: unload a zone; a zone that is not loaded is no error.
    pub fn free_zone(&mut self, card: usize, zone: i32) -> Result<(), Errno> {
        self.card(card)?;
        let c = &mut self.cards[card];
        if c.zones.remove(&zone).is_some() && c.default_zone == Some(zone) {
            c.default_zone = None;
        }
        Ok(())
    }

    /// `DAHDI_DEFAULTZONE`: `EINVAL` unless the zone is loaded.
    pub fn set_default_zone(&mut self, card: usize, zone: i32) -> Result<(), Errno> {
        self.card(card)?;
        let c = &mut self.cards[card];
        if !c.zones.contains_key(&zone) {
            return Err(Errno::EINVAL);
        }
        c.default_zone = Some(zone);
        Ok(())
    }

    /// The tone zones of `card`.
    pub fn tone_zones(&self, card: usize) -> Result<ToneZoneReport, Errno> {
        let c = self.cards.get(card).ok_or(Errno::ENODEV)?;
        Ok(ToneZoneReport {
            zones: c.zones.values().cloned().collect(),
            default: c.default_zone,
        })
    }
}
