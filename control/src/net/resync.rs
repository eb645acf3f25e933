//! Where a notification reader stands with the dumps it asks for: a
//! monitor of `RTMGRP_*` notifications that loses some (the receive queue
//! overflowed, `ENOBUFS`) re-reads the whole state with a dump; one asked
//! while another is under way is asked again when that one ends. No I/O:
//! the monitor sends the dump when told to ([`crate::link`],
//! [`crate::neigh`]).

/// The dump bookkeeping of one monitor.
#[derive(Debug, Default)]
pub struct Resync {
    dumping: bool,
    again: bool,
    overruns: u64,
}

impl Resync {
    /// A dump is under way (its answers are being read).
    pub fn dumping(&self) -> bool {
        self.dumping
    }

    /// Receive-queue overruns seen so far.
    pub fn overruns(&self) -> u64 {
        self.overruns
    }

    /// A dump was sent.
    pub fn asked(&mut self) {
        self.dumping = true;
    }

    /// A dump is wanted (notifications were lost, or the state must be
    /// read again): true when it must be sent now; under a dump, it is
    /// sent when that one ends ([`Resync::ended`]).
    pub fn want(&mut self) -> bool {
        if self.dumping {
            self.again = true;
            false
        } else {
            true
        }
    }

    /// Notifications were lost: counted, and [`Resync::want`].
    pub fn lost(&mut self) -> bool {
        self.overruns += 1;
        self.want()
    }

    /// The dump under way ended (done or failed): true when another must
    /// be sent now.
    pub fn ended(&mut self) -> bool {
        self.dumping = false;
        std::mem::take(&mut self.again)
    }

    /// The dump under way failed: nothing more is read from it.
    pub fn failed(&mut self) {
        self.dumping = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dump_wanted_during_another_is_sent_when_that_one_ends() {
        let mut r = Resync::default();
        assert!(r.lost(), "nothing under way: send it now");
        r.asked();
        assert!(r.dumping());
        assert!(!r.lost(), "under way: later");
        assert!(!r.want());
        assert_eq!(r.overruns(), 2);
        assert!(r.ended(), "then once");
        r.asked();
        assert!(!r.ended(), "nothing more was wanted");
        assert!(!r.dumping());
    }
}
