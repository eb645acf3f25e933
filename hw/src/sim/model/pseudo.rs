//! Pseudo channels: what opening `pseudo` gives (as `/dev/dahdi/pseudo`
//! does), a channel on no span, with a card-wide number after the spans'
//! channels, a block size (`DAHDI_GET_BLOCKSIZE` / `SET_BLOCKSIZE`,
//! `EINVAL` outside 1..=8192) and audio at DAHDI's 8 kHz sample clock:
//! `dahdi_test` measures that clock by timing its reads.
//!
//! This module owns the pseudo channels and their sample clock, judged
//! with the time passed in: a channel produces 8 samples (bytes) per
//! millisecond from the moment it is opened; a read takes one block once a
//! whole block is there, and says when it will be otherwise
//! ([`PseudoRead::At`]); at most [`abi::DAHDI_DEFAULT_NUM_BUFS`] blocks wait,
//! older samples are dropped (an overrun, counted). It must not sleep or
//! reply: the filesystem holds a read that is not ready and asks again at
//! the time given. Samples are silence ([`PSEUDO_SILENCE`]); writes are
//! taken whole and dropped.

use std::time::{Duration, Instant};

use nix::errno::Errno;

use super::World;
use crate::abi::{self, dahdi_params};

/// μ-law silence: what a pseudo channel reads.
pub const PSEUDO_SILENCE: u8 = 0xFF;
/// DAHDI's sample rate, samples (bytes) per second.
const SAMPLE_RATE: u64 = 8000;

/// An open pseudo channel: its card and handle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PseudoId {
    pub card: usize,
    handle: u64,
}

/// One open pseudo channel.
pub(super) struct Pseudo {
    channo: i32,
    blocksize: usize,
    opened: Instant,
    /// Samples consumed (read or dropped) since `opened`.
    consumed: u64,
}

/// What a read of a pseudo channel gets now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PseudoRead {
    /// The bytes to return.
    Ready(Vec<u8>),
    /// No whole block yet: ask again at this time.
    At(Instant),
}

/// Everything a card's pseudo channels did, the closed ones included.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PseudoTotals {
    /// Pseudo channels opened.
    pub opened: u64,
    pub reads: u64,
    pub bytes_read: u64,
    pub overruns: u64,
}

impl Pseudo {
    /// Samples produced by `now`.
    fn produced(&self, now: Instant) -> u64 {
        let elapsed = now.saturating_duration_since(self.opened);
        (elapsed.as_micros() as u64).saturating_mul(SAMPLE_RATE) / 1_000_000
    }

    /// When `samples` samples will have been produced.
    fn produced_at(&self, samples: u64) -> Instant {
        // Rounded up: never earlier than the last of them.
        let micros = (samples * 1_000_000).div_ceil(SAMPLE_RATE);
        self.opened + Duration::from_micros(micros)
    }
}

impl World {
    /// Open a pseudo channel on `card`: the lowest free number after the
    /// spans' channels; its clock starts at `now`.
    pub fn open_pseudo(&mut self, card: usize, now: Instant) -> Result<PseudoId, Errno> {
        self.card(card)?;
        let first = (self.config.spans * self.config.channels) as i32 + 1;
        let c = &mut self.cards[card];
        let mut channo = first;
        while c.pseudos.values().any(|p| p.channo == channo) {
            channo += 1;
        }
        if channo > abi::DAHDI_MAX_CHANNELS {
            return Err(Errno::EBUSY);
        }
        let handle = c.next_pseudo;
        c.next_pseudo += 1;
        c.pseudo_totals.opened += 1;
        c.pseudos.insert(
            handle,
            Pseudo {
                channo,
                blocksize: abi::DAHDI_DEFAULT_BLOCKSIZE as usize,
                opened: now,
                consumed: 0,
            },
        );
        Ok(PseudoId { card, handle })
    }

    /// Close a pseudo channel (its number is free again).
    pub fn close_pseudo(&mut self, id: PseudoId) {
        if let Some(c) = self.cards.get_mut(id.card) {
            c.pseudos.remove(&id.handle);
        }
    }

    fn pseudo(&self, id: PseudoId) -> Result<&Pseudo, Errno> {
        self.card(id.card)?
            .pseudos
            .get(&id.handle)
            .ok_or(Errno::EBADF)
    }

    fn pseudo_mut(&mut self, id: PseudoId) -> Result<&mut Pseudo, Errno> {
        self.card(id.card)?;
        self.cards[id.card]
            .pseudos
            .get_mut(&id.handle)
            .ok_or(Errno::EBADF)
    }

    /// A read of up to `count` bytes at `now`: one block (at most `count`
    /// bytes of it; the rest of the block is dropped, as DAHDI does), or
    /// when the next block is whole.
    pub fn pseudo_read(
        &mut self,
        id: PseudoId,
        count: usize,
        now: Instant,
    ) -> Result<PseudoRead, Errno> {
        self.card(id.card)?;
        let c = &mut self.cards[id.card];
        let p = c.pseudos.get_mut(&id.handle).ok_or(Errno::EBADF)?;
        let block = p.blocksize as u64;
        let produced = p.produced(now);
        let kept = block * abi::DAHDI_DEFAULT_NUM_BUFS as u64;
        if produced.saturating_sub(p.consumed) > kept {
            let dropped = (produced - kept - p.consumed).div_ceil(block);
            c.pseudo_totals.overruns += dropped;
            p.consumed = produced - kept;
        }
        if produced < p.consumed + block {
            return Ok(PseudoRead::At(p.produced_at(p.consumed + block)));
        }
        p.consumed += block;
        let n = count.min(p.blocksize);
        c.pseudo_totals.reads += 1;
        c.pseudo_totals.bytes_read += n as u64;
        Ok(PseudoRead::Ready(vec![PSEUDO_SILENCE; n]))
    }

    /// A write to a pseudo channel: every byte taken (and dropped).
    pub fn pseudo_write(&mut self, id: PseudoId, len: usize) -> Result<usize, Errno> {
        self.pseudo(id)?;
        Ok(len)
    }

    /// `DAHDI_GET_BLOCKSIZE`.
    pub fn pseudo_blocksize(&self, id: PseudoId) -> Result<i32, Errno> {
        Ok(self.pseudo(id)?.blocksize as i32)
    }

    /// `DAHDI_SET_BLOCKSIZE` (`EINVAL` outside 1..=`DAHDI_MAX_BLOCKSIZE`).
    pub fn set_pseudo_blocksize(&mut self, id: PseudoId, size: i32) -> Result<(), Errno> {
        if !(1..=abi::DAHDI_MAX_BLOCKSIZE).contains(&size) {
            return Err(Errno::EINVAL);
        }
        self.pseudo_mut(id)?.blocksize = size as usize;
        Ok(())
    }

    /// `DAHDI_CHANNO` of a pseudo channel.
    pub fn pseudo_channo(&self, id: PseudoId) -> Result<i32, Errno> {
        Ok(self.pseudo(id)?.channo)
    }

    /// `DAHDI_GET_PARAMS` of a pseudo channel: span 0, clear channel, μ-law,
    /// no hook signalling (`-1`, as DAHDI reports for a channel without a span).
    pub fn pseudo_params(&self, id: PseudoId, return_master: bool) -> Result<dahdi_params, Errno> {
        let p = self.pseudo(id)?;
        let mut params = dahdi_params {
            channo: p.channo,
            spanno: 0,
            chanpos: 0,
            sigtype: abi::DAHDI_SIG_CLEAR,
            sigcap: abi::DAHDI_SIG_CLEAR,
            rxbits: -1,
            txbits: -1,
            txhooksig: -1,
            rxhooksig: -1,
            curlaw: abi::DAHDI_LAW_MULAW,
            ..Default::default()
        };
        if return_master {
            params.channo |= p.channo << 16;
        }
        abi::set_c_string(&mut params.name, &format!("Pseudo/{}", p.channo));
        Ok(params)
    }

    /// What the pseudo channels of `card` did since the simulator started.
    pub fn pseudo_totals(&self, card: usize) -> Result<PseudoTotals, Errno> {
        Ok(self.cards.get(card).ok_or(Errno::ENODEV)?.pseudo_totals)
    }
}
