//! The FUSE filesystem of one simulated card: `ctl`, `channel`, `pseudo`
//! and `chan/SSS/CCC` as regular files that answer DAHDI ioctls.
//!
//! This module owns the translation between FUSE requests and the model:
//! it hands ioctls to the table of [`super::ioctl`] (which decodes and
//! encodes their arguments) and logs what it refuses — a request the
//! simulator does not serve at `warn`, by name or decoded form, with the
//! card and the file, and noted in the model ([`World::unserved`]); it turns
//! FUSE poll requests into model wakers that send `FUSE_NOTIFY_POLL` when
//! an event arrives; and it answers reads of `pseudo` files from the
//! model's sample clock (opened with `FOPEN_DIRECT_IO`, so every read
//! reaches it), handing a read whose block is not there yet to the card's
//! [`Pacer`].
//!
//! It holds no simulated state of its own beyond which channel each open
//! file is bound to, and it never blocks: every request is answered at
//! once, or (a pseudo read) by the pacer when its block is due.
//! Errnos are DAHDI's; note that the FUSE kernel side turns a server's
//! `ENOSYS` into `ENOTTY`, so callers of the mount see `ENOTTY` where a real
//! card says `ENOSYS` (unknown maintenance command, unbound `channel` file).
//! Files are opened with `FOPEN_NOFLUSH`, so closing one never waits on this
//! server (a process that serves and uses the mount would otherwise hang on exit).

use std::collections::HashMap;
use std::ffi::OsStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use fuser::{
    Errno as FuseErrno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation,
    INodeNo, IoctlFlags, LockOwner, OpenFlags, PollEvents, PollFlags, PollNotifier, ReplyAttr,
    ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyIoctl, ReplyOpen, ReplyPoll,
    ReplyWrite, Request, WriteFlags,
};
use nix::errno::Errno;

use super::ioctl::{self, Opened, Refusal};
use super::model::{PseudoRead, World};
use super::pacer::Pacer;
use crate::abi::{self, IoctlRequest};

const TTL: Duration = Duration::from_secs(3600);

const INO_CTL: u64 = 2;
const INO_CHANNEL: u64 = 3;
const INO_CHAN_DIR: u64 = 4;
const INO_PSEUDO: u64 = 5;
/// `chan/SSS` directories: `SPAN_DIR_BASE + span`.
const SPAN_DIR_BASE: u64 = 1 << 32;
/// `chan/SSS/CCC` files: `CHAN_FILE_BASE + (span << 16) + chanpos`.
const CHAN_FILE_BASE: u64 = 2 << 32;

/// A node of the card's filesystem.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Node {
    Root,
    Ctl,
    Channel,
    Pseudo,
    ChanDir,
    SpanDir(i32),
    ChanFile(i32, i32),
}

/// The shared model, locked for each request.
pub(crate) type SharedWorld = Arc<Mutex<World>>;

pub(crate) fn lock(world: &SharedWorld) -> MutexGuard<'_, World> {
    // A panic while holding the lock leaves the model as it was at the panic;
    // serving it is better than hanging every client on a poisoned mutex.
    world
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One card served over FUSE.
pub(crate) struct CardFs {
    world: SharedWorld,
    card: usize,
    spans: i32,
    channels: i32,
    uid: u32,
    gid: u32,
    next_fh: AtomicU64,
    files: Mutex<HashMap<u64, Opened>>,
    /// Answers the reads of `pseudo` files whose block is not there yet.
    pacer: Pacer,
    /// Set when the mount is being taken down: files still open answer `ENODEV`.
    gone: Arc<AtomicBool>,
}

impl CardFs {
    pub(crate) fn new(world: SharedWorld, card: usize, gone: Arc<AtomicBool>) -> CardFs {
        let (spans, channels) = {
            let w = lock(&world);
            (w.config().spans as i32, w.config().channels as i32)
        };
        let pacer = Pacer::start(world.clone(), card);
        CardFs {
            world,
            card,
            pacer,
            spans,
            channels,
            uid: nix::unistd::geteuid().as_raw(),
            gid: nix::unistd::getegid().as_raw(),
            next_fh: AtomicU64::new(1),
            files: Mutex::new(HashMap::new()),
            gone,
        }
    }

    /// The device is gone for its users: unmounted, or the card unplugged.
    fn vanished(&self, world: &World) -> bool {
        self.gone.load(Ordering::SeqCst) || world.is_removed(self.card)
    }

    fn files(&self) -> MutexGuard<'_, HashMap<u64, Opened>> {
        self.files.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn node(&self, ino: INodeNo) -> Option<Node> {
        let ino = ino.0;
        let node = match ino {
            1 => Node::Root,
            INO_CTL => Node::Ctl,
            INO_CHANNEL => Node::Channel,
            INO_PSEUDO => Node::Pseudo,
            INO_CHAN_DIR => Node::ChanDir,
            i if (SPAN_DIR_BASE..CHAN_FILE_BASE).contains(&i) => {
                Node::SpanDir(i32::try_from(i - SPAN_DIR_BASE).ok()?)
            }
            i if i >= CHAN_FILE_BASE => {
                let rest = i - CHAN_FILE_BASE;
                Node::ChanFile(i32::try_from(rest >> 16).ok()?, (rest & 0xffff) as i32)
            }
            _ => return None,
        };
        let valid = match node {
            Node::SpanDir(s) => (1..=self.spans).contains(&s),
            Node::ChanFile(s, c) => {
                (1..=self.spans).contains(&s) && (1..=self.channels).contains(&c)
            }
            _ => true,
        };
        valid.then_some(node)
    }

    fn ino(node: Node) -> INodeNo {
        INodeNo(match node {
            Node::Root => 1,
            Node::Ctl => INO_CTL,
            Node::Channel => INO_CHANNEL,
            Node::Pseudo => INO_PSEUDO,
            Node::ChanDir => INO_CHAN_DIR,
            Node::SpanDir(s) => SPAN_DIR_BASE + s as u64,
            Node::ChanFile(s, c) => CHAN_FILE_BASE + ((s as u64) << 16) + c as u64,
        })
    }

    fn attr(&self, node: Node) -> FileAttr {
        let dir = matches!(node, Node::Root | Node::ChanDir | Node::SpanDir(_));
        FileAttr {
            ino: CardFs::ino(node),
            size: 0,
            blocks: 0,
            atime: SystemTime::UNIX_EPOCH,
            mtime: SystemTime::UNIX_EPOCH,
            ctime: SystemTime::UNIX_EPOCH,
            crtime: SystemTime::UNIX_EPOCH,
            kind: if dir {
                FileType::Directory
            } else {
                FileType::RegularFile
            },
            perm: if dir { 0o755 } else { 0o660 },
            nlink: if dir { 2 } else { 1 },
            uid: self.uid,
            gid: self.gid,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        }
    }

    fn parse_number(name: &OsStr, max: i32) -> Option<i32> {
        let text = name.to_str()?;
        if text.len() != 3 || !text.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let n: i32 = text.parse().ok()?;
        (1..=max).contains(&n).then_some(n)
    }

    fn children(&self, node: Node) -> Vec<(Node, String)> {
        match node {
            Node::Root => vec![
                (Node::Ctl, "ctl".into()),
                (Node::Channel, "channel".into()),
                (Node::Pseudo, "pseudo".into()),
                (Node::ChanDir, "chan".into()),
            ],
            Node::ChanDir => (1..=self.spans)
                .map(|s| (Node::SpanDir(s), format!("{s:03}")))
                .collect(),
            Node::SpanDir(s) => (1..=self.channels)
                .map(|c| (Node::ChanFile(s, c), format!("{c:03}")))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Answer one ioctl on an open file; `Ok(bytes)` is the data copied back out.
    fn ioctl(
        &self,
        fh: u64,
        cmd: IoctlRequest,
        input: &[u8],
        out_size: usize,
    ) -> Result<Vec<u8>, Refusal> {
        let opened = *self.files().get(&fh).ok_or(Errno::EBADF)?;
        let mut world = lock(&self.world);
        if self.vanished(&world) {
            return Err(Errno::ENODEV.into());
        }
        let result = ioctl::dispatch(&mut world, self.card, opened, cmd, input, out_size);
        if matches!(result, Err(Refusal::Unserved)) {
            world.note_unserved(self.card, cmd);
        }
        drop(world);
        let answer = result?;
        if let Some(rebind) = answer.rebind {
            self.files().insert(fh, rebind);
        }
        Ok(answer.out)
    }

    /// The file an open handle is, for logs.
    fn describe(&self, fh: u64) -> String {
        match self.files().get(&fh) {
            Some(Opened::Ctl) => "ctl".into(),
            Some(Opened::Unbound) => "channel".into(),
            Some(Opened::Bound(id)) => format!("chan/{:03}/{:03}", id.span + 1, id.index + 1),
            Some(Opened::Pseudo(_)) => "pseudo".into(),
            None => format!("handle {fh}"),
        }
    }
}

fn fuse_errno(errno: Errno) -> FuseErrno {
    FuseErrno::from_i32(errno as i32)
}

impl Filesystem for CardFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let found = match self.node(parent) {
            Some(Node::Root) => match name.to_str() {
                Some("ctl") => Some(Node::Ctl),
                Some("channel") => Some(Node::Channel),
                Some("pseudo") => Some(Node::Pseudo),
                Some("chan") => Some(Node::ChanDir),
                _ => None,
            },
            Some(Node::ChanDir) => CardFs::parse_number(name, self.spans).map(Node::SpanDir),
            Some(Node::SpanDir(s)) => {
                CardFs::parse_number(name, self.channels).map(|c| Node::ChanFile(s, c))
            }
            _ => None,
        };
        match found {
            Some(node) => reply.entry(&TTL, &self.attr(node), Generation(0)),
            None => reply.error(FuseErrno::ENOENT),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.node(ino) {
            Some(node) => reply.attr(&TTL, &self.attr(node)),
            None => reply.error(FuseErrno::ENOENT),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let Some(node) = self.node(ino) else {
            reply.error(FuseErrno::ENOENT);
            return;
        };
        if !matches!(node, Node::Root | Node::ChanDir | Node::SpanDir(_)) {
            reply.error(FuseErrno::ENOTDIR);
            return;
        }
        let mut entries = vec![
            (node, FileType::Directory, ".".to_string()),
            (Node::Root, FileType::Directory, "..".to_string()),
        ];
        for (child, name) in self.children(node) {
            let kind = self.attr(child).kind;
            entries.push((child, kind, name));
        }
        for (i, (child, kind, name)) in entries.into_iter().enumerate().skip(offset as usize) {
            if reply.add(CardFs::ino(child), (i + 1) as u64, kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let opened = match self.node(ino) {
            Some(Node::Ctl) => Opened::Ctl,
            Some(Node::Channel) => Opened::Unbound,
            Some(Node::Pseudo) => {
                let mut world = lock(&self.world);
                if self.vanished(&world) {
                    reply.error(FuseErrno::ENODEV);
                    return;
                }
                match world.open_pseudo(self.card, Instant::now()) {
                    Ok(id) => Opened::Pseudo(id),
                    Err(e) => {
                        reply.error(fuse_errno(e));
                        return;
                    }
                }
            }
            Some(Node::ChanFile(s, c)) => {
                let world = lock(&self.world);
                let Some(id) = world.channel_at(self.card, s, c) else {
                    reply.error(FuseErrno::ENOENT);
                    return;
                };
                if let Err(e) = world.open_channel(id) {
                    reply.error(fuse_errno(e));
                    return;
                }
                Opened::Bound(id)
            }
            Some(_) => {
                reply.error(FuseErrno::EISDIR);
                return;
            }
            None => {
                reply.error(FuseErrno::ENOENT);
                return;
            }
        };
        if self.vanished(&lock(&self.world)) {
            reply.error(FuseErrno::ENODEV);
            return;
        }
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        self.files().insert(fh, opened);
        let mut flags = FopenFlags::FOPEN_NOFLUSH | FopenFlags::FOPEN_NONSEEKABLE;
        if matches!(opened, Opened::Pseudo(_)) {
            // Every read must reach the sample clock: no page cache, no EOF at size 0.
            flags |= FopenFlags::FOPEN_DIRECT_IO;
        }
        reply.opened(FileHandle(fh), flags);
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let opened = self.files().get(&fh.0).copied();
        let Some(Opened::Pseudo(id)) = opened else {
            // No audio on span channels, nothing to read on ctl or channel.
            reply.error(FuseErrno::EINVAL);
            return;
        };
        let mut world = lock(&self.world);
        if self.vanished(&world) {
            reply.error(FuseErrno::ENODEV);
            return;
        }
        match world.pseudo_read(id, size as usize, Instant::now()) {
            Ok(PseudoRead::Ready(bytes)) => reply.data(&bytes),
            Ok(PseudoRead::At(due)) => {
                drop(world);
                self.pacer.hold(id, size as usize, due, reply);
            }
            Err(e) => reply.error(fuse_errno(e)),
        }
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let opened = self.files().get(&fh.0).copied();
        let Some(Opened::Pseudo(id)) = opened else {
            reply.error(FuseErrno::EINVAL);
            return;
        };
        let mut world = lock(&self.world);
        if self.vanished(&world) {
            reply.error(FuseErrno::ENODEV);
            return;
        }
        match world.pseudo_write(id, data.len()) {
            Ok(n) => reply.written(n as u32),
            Err(e) => reply.error(fuse_errno(e)),
        }
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        match self.files().remove(&fh.0) {
            Some(Opened::Bound(id)) => lock(&self.world).forget_waker(id, fh.0),
            Some(Opened::Pseudo(id)) => lock(&self.world).close_pseudo(id),
            _ => {}
        }
        reply.ok();
    }

    fn ioctl(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: IoctlFlags,
        cmd: u32,
        in_data: &[u8],
        out_size: u32,
        reply: ReplyIoctl,
    ) {
        let request = cmd as IoctlRequest;
        match self.ioctl(fh.0, request, in_data, out_size as usize) {
            Ok(out) => reply.ioctl(0, &out),
            Err(Refusal::Errno(errno)) => {
                tracing::debug!(
                    card = self.card,
                    file = %self.describe(fh.0),
                    ioctl = %abi::describe_request(request),
                    cmd = format_args!("{cmd:#x}"),
                    %errno,
                    "ioctl refused"
                );
                reply.error(fuse_errno(errno));
            }
            Err(Refusal::Unserved) => {
                tracing::warn!(
                    card = self.card,
                    file = %self.describe(fh.0),
                    ioctl = %abi::describe_request(request),
                    cmd = format_args!("{cmd:#x}"),
                    "ioctl not served by the simulator: ENOTTY"
                );
                reply.error(FuseErrno::ENOTTY);
            }
        }
    }

    fn poll(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        ph: PollNotifier,
        _events: PollEvents,
        flags: PollFlags,
        reply: ReplyPoll,
    ) {
        let opened = self.files().get(&fh.0).copied();
        let Some(Opened::Bound(id)) = opened else {
            // Nothing ever becomes ready on `ctl` or an unbound `channel`.
            let removed = self.vanished(&lock(&self.world));
            reply.poll(if removed {
                PollEvents::POLLERR | PollEvents::POLLHUP
            } else {
                PollEvents::empty()
            });
            return;
        };
        let waker: Option<super::model::Waker> = flags
            .contains(PollFlags::FUSE_POLL_SCHEDULE_NOTIFY)
            .then(|| {
                Box::new(move || {
                    if let Err(e) = ph.notify() {
                        tracing::debug!(error = %e, "poll notification not delivered");
                    }
                }) as super::model::Waker
            });
        // The kernel keeps one poll handle per open file; key the waker by the file.
        let mut world = lock(&self.world);
        if self.vanished(&world) {
            reply.poll(PollEvents::POLLERR | PollEvents::POLLHUP | PollEvents::POLLPRI);
            return;
        }
        match world.poll_events(id, fh.0, waker) {
            Ok(true) => reply.poll(PollEvents::POLLPRI),
            Ok(false) => reply.poll(PollEvents::empty()),
            // An unplugged card: report what DAHDI's nodev poll reports.
            Err(_) => reply.poll(PollEvents::POLLERR | PollEvents::POLLHUP | PollEvents::POLLPRI),
        }
    }
}
