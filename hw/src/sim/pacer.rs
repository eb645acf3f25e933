//! The reads of pseudo channels that must wait for their next block.
//!
//! A pseudo channel's read blocks until a whole block of samples is there
//! (the model says when: [`PseudoRead::At`]). The filesystem must never
//! block a FUSE request, so it hands such a read to a [`Pacer`]: one thread
//! per mounted card that holds the pending replies, sleeps until the
//! earliest is due, asks the model again and replies. This module owns
//! those pending replies and their thread; it decides nothing about the
//! samples (the model does). The thread ends when the filesystem drops its
//! [`Pacer`]; reads still pending then are answered `ENODEV`.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use fuser::{Errno as FuseErrno, ReplyData};

use super::fs::{SharedWorld, lock};
use super::model::{PseudoId, PseudoRead};

/// A read waiting for its block.
struct Pending {
    id: PseudoId,
    count: usize,
    due: Instant,
    reply: ReplyData,
}

/// The handle the filesystem keeps: queue a read that is not ready yet.
pub(crate) struct Pacer {
    queue: Sender<Pending>,
}

impl Pacer {
    /// Start the thread that answers the pending reads of one card's pseudo channels.
    pub(crate) fn start(world: SharedWorld, card: usize) -> Pacer {
        let (queue, pending) = mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name(format!("cardsim-pacer-{card}"))
            .spawn(move || run(&world, &pending));
        if let Err(e) = spawned {
            // The receiver is gone with the closure: every queued read is answered ENODEV.
            tracing::error!(card, error = %e, "cannot start the pseudo channel pacer thread");
        }
        Pacer { queue }
    }

    /// Answer `reply` with pseudo channel `id`'s next block once it is due (at `due`).
    pub(crate) fn hold(&self, id: PseudoId, count: usize, due: Instant, reply: ReplyData) {
        if let Err(mpsc::SendError(p)) = self.queue.send(Pending {
            id,
            count,
            due,
            reply,
        }) {
            p.reply.error(FuseErrno::ENODEV);
        }
    }
}

fn run(world: &SharedWorld, incoming: &Receiver<Pending>) {
    let mut pending: Vec<Pending> = Vec::new();
    loop {
        let now = Instant::now();
        let wait = pending
            .iter()
            .map(|p| p.due.saturating_duration_since(now))
            .min()
            .unwrap_or(Duration::from_secs(3600));
        match incoming.recv_timeout(wait) {
            Ok(p) => pending.push(p),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                for p in pending {
                    p.reply.error(FuseErrno::ENODEV);
                }
                return;
            }
        }
        let now = Instant::now();
        let (due, waiting): (Vec<Pending>, Vec<Pending>) =
            pending.into_iter().partition(|p| p.due <= now);
        pending = waiting;
        for mut p in due {
            let answer = lock(world).pseudo_read(p.id, p.count, now);
            match answer {
                Ok(PseudoRead::Ready(bytes)) => p.reply.data(&bytes),
                Ok(PseudoRead::At(at)) => {
                    p.due = at;
                    pending.push(p);
                }
                Err(errno) => p.reply.error(FuseErrno::from_i32(errno as i32)),
            }
        }
    }
}
