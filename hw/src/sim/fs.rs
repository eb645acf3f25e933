//! The FUSE filesystem of one simulated card: `ctl`, `channel` and
//! `chan/SSS/CCC` as regular files that answer DAHDI ioctls.
//!
//! This module owns the translation between FUSE requests and the model:
//! it decodes ioctl arguments from bytes (checking that the request's encoded
//! size matches the struct, which is what FUSE's "restricted" ioctls copy),
//! calls [`World`] (the watchdog ioctls with the current time), encodes the
//! answer, and turns FUSE poll requests into
//! model wakers that send `FUSE_NOTIFY_POLL` when an event arrives.
//!
//! It holds no simulated state of its own beyond which channel each open
//! file is bound to, and it never blocks: every request is answered at once.
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
    ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyIoctl, ReplyOpen, ReplyPoll, Request,
};
use nix::errno::Errno;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::model::{ChannelId, World};
use crate::abi::{self, IoctlRequest};

const TTL: Duration = Duration::from_secs(3600);

const INO_CTL: u64 = 2;
const INO_CHANNEL: u64 = 3;
const INO_CHAN_DIR: u64 = 4;
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
    ChanDir,
    SpanDir(i32),
    ChanFile(i32, i32),
}

/// What an open file is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Opened {
    Ctl,
    /// `channel` before `DAHDI_SPECIFY`.
    Unbound,
    Bound(ChannelId),
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
    /// Set when the mount is being taken down: files still open answer `ENODEV`.
    gone: Arc<AtomicBool>,
}

impl CardFs {
    pub(crate) fn new(world: SharedWorld, card: usize, gone: Arc<AtomicBool>) -> CardFs {
        let (spans, channels) = {
            let w = lock(&world);
            (w.config().spans as i32, w.config().channels as i32)
        };
        CardFs {
            world,
            card,
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
    ) -> Result<Vec<u8>, Errno> {
        let opened = *self.files().get(&fh).ok_or(Errno::EBADF)?;
        let mut world = lock(&self.world);
        if self.vanished(&world) {
            return Err(Errno::ENODEV);
        }
        let card = self.card;
        match (opened, cmd) {
            (Opened::Ctl, abi::DAHDI_GETVERSION) => reply(out_size, &world.version(card)?),
            (Opened::Ctl, abi::DAHDI_SPANSTAT) => {
                let info: abi::dahdi_spaninfo = arg(input, out_size)?;
                if info.spanno == 0 {
                    // No channel behind the control node.
                    return Err(Errno::EINVAL);
                }
                reply(out_size, &world.span_info(card, info.spanno)?)
            }
            (Opened::Ctl, abi::DAHDI_GET_PARAMS) => {
                let params: abi::dahdi_params = arg(input, out_size)?;
                let id = world.channel_by_number(
                    card,
                    params.channo & !abi::DAHDI_GET_PARAMS_RETURN_MASTER,
                )?;
                reply(out_size, &world.params(id)?)
            }
            (Opened::Ctl, abi::DAHDI_SET_PARAMS) => {
                let params: abi::dahdi_params = arg(input, 0)?;
                let id = world.channel_by_number(card, params.channo)?;
                world.set_params(id, &params)?;
                Ok(Vec::new())
            }
            (Opened::Ctl, abi::DAHDI_SPANCONFIG) => {
                world.span_config(card, &arg(input, 0)?)?;
                Ok(Vec::new())
            }
            (Opened::Ctl, abi::DAHDI_CHANCONFIG) => {
                world.chan_config(card, &arg(input, 0)?)?;
                Ok(Vec::new())
            }
            (Opened::Ctl, abi::DAHDI_STARTUP) => {
                world.startup(card, arg(input, 0)?)?;
                Ok(Vec::new())
            }
            (Opened::Ctl, abi::DAHDI_SHUTDOWN) => {
                world.shutdown(card, arg(input, 0)?)?;
                Ok(Vec::new())
            }
            (Opened::Ctl, abi::DAHDI_MAINT) => {
                world.maint(card, &arg(input, 0)?)?;
                Ok(Vec::new())
            }
            (Opened::Ctl, abi::TANDEM_WATCHDOG_ARM) => {
                let timeout_ms: u32 = arg(input, 0)?;
                world.watchdog_arm(card, timeout_ms, Instant::now())?;
                Ok(Vec::new())
            }
            (Opened::Ctl, abi::TANDEM_WATCHDOG_KICK) => {
                expect_no_input(input)?;
                world.watchdog_kick(card, Instant::now())?;
                Ok(Vec::new())
            }
            (Opened::Ctl, abi::TANDEM_WATCHDOG_DISARM) => {
                expect_no_input(input)?;
                world.watchdog_disarm(card)?;
                Ok(Vec::new())
            }
            (Opened::Ctl, abi::TANDEM_WATCHDOG_STATUS) => {
                expect_no_input(input)?;
                reply(out_size, &world.watchdog_status(card, Instant::now())?)
            }
            (Opened::Unbound, abi::DAHDI_SPECIFY) => {
                let id = world.specify(card, arg(input, 0)?)?;
                drop(world);
                self.files().insert(fh, Opened::Bound(id));
                Ok(Vec::new())
            }
            // An unbound `channel` file only takes DAHDI_SPECIFY (dahdi_prechan_ioctl).
            (Opened::Unbound, _) => Err(Errno::ENOSYS),
            (Opened::Bound(id), abi::DAHDI_GET_PARAMS) => {
                let _: abi::dahdi_params = arg(input, out_size)?;
                reply(out_size, &world.params(id)?)
            }
            (Opened::Bound(id), abi::DAHDI_SET_PARAMS) => {
                world.set_params(id, &arg(input, 0)?)?;
                Ok(Vec::new())
            }
            (Opened::Bound(id), abi::DAHDI_HOOK) => {
                world.hook(id, arg(input, 0)?)?;
                Ok(Vec::new())
            }
            (Opened::Bound(id), abi::DAHDI_GETEVENT) => {
                expect_no_input(input)?;
                reply(out_size, &world.take_event(id)?)
            }
            (Opened::Bound(id), abi::DAHDI_CHANNO) => {
                expect_no_input(input)?;
                reply(out_size, &world.channo(id))
            }
            (Opened::Bound(_), abi::DAHDI_GET_BUFINFO) => {
                expect_no_input(input)?;
                let info = abi::dahdi_bufferinfo {
                    txbufpolicy: 0,
                    rxbufpolicy: 0,
                    numbufs: 2,
                    bufsize: 1024,
                    readbufs: 0,
                    writebufs: 0,
                };
                reply(out_size, &info)
            }
            (Opened::Bound(id), abi::DAHDI_SPANSTAT) => {
                let info: abi::dahdi_spaninfo = arg(input, out_size)?;
                let spanno = if info.spanno == 0 {
                    id.span as i32 + 1
                } else {
                    info.spanno
                };
                reply(out_size, &world.span_info(card, spanno)?)
            }
            // Anything else, including a known number with another size or direction.
            _ => Err(Errno::ENOTTY),
        }
    }
}

/// Decode an ioctl argument: the input must be exactly one `T`, and the
/// output (if any) exactly one `T` too.
fn arg<T: FromBytes>(input: &[u8], out_size: usize) -> Result<T, Errno> {
    if out_size != 0 && out_size != size_of::<T>() {
        return Err(Errno::EINVAL);
    }
    T::read_from_bytes(input).map_err(|_| Errno::EINVAL)
}

fn expect_no_input(input: &[u8]) -> Result<(), Errno> {
    if input.is_empty() {
        Ok(())
    } else {
        Err(Errno::EINVAL)
    }
}

/// Encode an ioctl answer; the caller's buffer must be exactly one `T`.
fn reply<T: IntoBytes + Immutable + KnownLayout>(
    out_size: usize,
    value: &T,
) -> Result<Vec<u8>, Errno> {
    if out_size != size_of::<T>() {
        return Err(Errno::EINVAL);
    }
    Ok(value.as_bytes().to_vec())
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
        reply.opened(
            FileHandle(fh),
            FopenFlags::FOPEN_NOFLUSH | FopenFlags::FOPEN_NONSEEKABLE,
        );
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
        if let Some(Opened::Bound(id)) = self.files().remove(&fh.0) {
            lock(&self.world).forget_waker(id, fh.0);
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
            Err(errno) => {
                tracing::debug!(
                    card = self.card,
                    ioctl = abi::ioctl_name(request).unwrap_or("unknown"),
                    cmd = format_args!("{cmd:#x}"),
                    %errno,
                    "ioctl refused"
                );
                reply.error(fuse_errno(errno));
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
