//! The "kernel" side of a [`crate::Net`]: hosts, descriptor tables, and the dispatch of
//! readiness changes to epoll ready lists, readiness callbacks and pending asynchronous
//! operations.
//!
//! Everything here runs with the `Net`'s lock held. The public types in the other modules are
//! the "system call" layer: they take the lock, call into `Core`, and release it.
//!
//! # The callback path (how epoll avoids scanning)
//!
//! The stack pushes every socket whose readiness *may* have changed onto its readiness queue
//! ([`Stack::poll_readiness`](ringstack_stack::Stack::poll_readiness)). After each round of
//! frames and timers, `Core::drive` drains that queue and calls `Core::notify` for each
//! socket that has a descriptor. `notify` computes the socket's readiness once and hands it to
//! everything attached to the descriptor — the Linux "wait queue" of a file:
//!
//! 1. each epoll instance watching it (`ep_poll_callback`: put the item on the ready list);
//! 2. its readiness callback, if any (the `SIGIO` analogue);
//! 3. its pending asynchronous operations (the proactor: do the I/O now, post a completion).
//!
//! Idle sockets are never visited: the work is proportional to the sockets that changed.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::mem;
use std::ops::Range;

use ringstack_nic::Nic;
use ringstack_stack::time::Instant;
use ringstack_stack::{Counter, SharedBytes, SocketHandle, Stack, TcpHandle, UdpHandle};

use crate::epoll::{EpollInstance, Wants, Watch};
use crate::error;
use crate::events::Events;
use crate::fd::{Fd, FdTable};
use crate::host::Host;
use crate::proactor::{OpKind, PendingOp, RawCompletion};
use crate::signal;

/// The NIC type every [`crate::Net`] holds (boxed, so sockets need no type parameter).
pub type DynNic = Box<dyn Nic + Send>;

/// Rounds of polling every host before a drive gives up settling (a livelock guard).
const SETTLE_ROUNDS: usize = 10_000;

/// Work done by one host's I/O multiplexing and dispatch, counted so that tests can prove the
/// notes' claims by counting instead of timing. All counters only increase (see
/// [`crate::Net::reset_work`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Work {
    /// Sockets taken from the stack's readiness queue and dispatched (the epoll "callbacks").
    pub readiness_callbacks: u64,
    /// Calls to [`crate::select::select`] scans (one per pass, a blocking call may pass often).
    pub select_scans: u64,
    /// Descriptors whose readiness `select` checked (its linear scan).
    pub select_examined: u64,
    /// Calls to [`crate::poll::poll`] scans.
    pub poll_scans: u64,
    /// Entries whose readiness `poll` checked (its linear scan).
    pub poll_examined: u64,
    /// Bytes of `fd_set`s and `pollfd` arrays copied in and out ("user ↔ kernel" copies).
    pub set_bytes_copied: u64,
    /// Passes of `epoll_wait` over its ready list.
    pub epoll_scans: u64,
    /// Ready-list entries `epoll_wait` examined (never the idle ones).
    pub epoll_examined: u64,
    /// Times an epoll instance was woken: an item newly put on its ready list.
    pub epoll_wakeups: u64,
    /// Readiness callbacks (`SIGIO` analogue) queued for delivery.
    pub signals: u64,
    /// Asynchronous operations completed (posted to a completion queue).
    pub completions: u64,
    /// Bytes copied between socket buffers and application buffers (stage two of a read, the
    /// first copy of a write), whoever did the copy.
    pub user_copy_bytes: u64,
    /// Bytes the application consumed from or wrote into socket buffers *in place*
    /// ([`crate::TcpStream::recv_with`], [`crate::TcpStream::send_with`]) or handed over by
    /// reference ([`crate::TcpStream::send_shared`], [`crate::TcpStream::send_file`]): no copy
    /// by the socket layer.
    pub in_place_bytes: u64,
}

/// What a descriptor refers to.
#[derive(Debug)]
pub(crate) enum Kind {
    Tcp(TcpHandle),
    Udp(UdpHandle),
    Epoll(EpollInstance),
}

/// An open descriptor ("open file description" and socket in one).
pub(crate) struct File {
    pub kind: Kind,
    /// `O_NONBLOCK`.
    pub nonblocking: bool,
    /// `SO_RCVTIMEO` (`None` = wait forever).
    pub read_timeout: Option<std::time::Duration>,
    /// `SO_SNDTIMEO` (`None` = wait forever).
    pub write_timeout: Option<std::time::Duration>,
    /// `shutdown(SHUT_RD)` was called: reads return 0.
    pub read_shut: bool,
    /// `TCP_NODELAY` as last set (`None`: the stack's default).
    pub nodelay: Option<bool>,
    /// Epoll instances with this descriptor in their interest table, in attach order, each
    /// with the key of its item there (the callback reaches the item in O(1)).
    pub watchers: Vec<Watch>,
    /// The readiness callback, if registered.
    pub sigio: Option<signal::Registration>,
    /// Submitted asynchronous operations, oldest first.
    pub ops: VecDeque<PendingOp>,
}

impl File {
    pub fn new(kind: Kind) -> File {
        File {
            kind,
            nonblocking: false,
            read_timeout: None,
            write_timeout: None,
            read_shut: false,
            nodelay: None,
            watchers: Vec::new(),
            sigio: None,
            ops: VecDeque::new(),
        }
    }

    pub fn socket(&self) -> Option<SocketHandle> {
        match self.kind {
            Kind::Tcp(h) => Some(h.into()),
            Kind::Udp(h) => Some(h.into()),
            Kind::Epoll(_) => None,
        }
    }
}

/// One machine's process-side state: its descriptor table and counters.
#[derive(Default)]
pub(crate) struct Proc {
    pub files: FdTable<File>,
    pub by_handle: HashMap<SocketHandle, Fd>,
    pub work: Work,
}

/// Everything behind a `Net`'s lock.
pub(crate) struct Core {
    pub hosts: Vec<Host<DynNic>>,
    pub procs: Vec<Proc>,
    /// Readiness callbacks waiting to run (outside the lock).
    pub signals: Vec<signal::Pending>,
    /// Completion queues by ring id.
    pub rings: HashMap<u64, VecDeque<RawCompletion>>,
    pub next_ring: u64,
    /// The time of the last drive.
    pub now: Instant,
}

impl Core {
    pub fn new(hosts: Vec<Host<DynNic>>, now: Instant) -> Core {
        let procs = hosts.iter().map(|_| Proc::default()).collect();
        Core {
            hosts,
            procs,
            signals: Vec::new(),
            rings: HashMap::new(),
            next_ring: 1,
            now,
        }
    }

    pub fn stack(&mut self, p: usize) -> &mut Stack {
        self.hosts[p].stack()
    }

    pub fn file(&self, p: usize, fd: Fd) -> io::Result<&File> {
        self.procs[p].files.get(fd).ok_or_else(|| error::bad_fd(fd))
    }

    pub fn file_mut(&mut self, p: usize, fd: Fd) -> io::Result<&mut File> {
        self.procs[p]
            .files
            .get_mut(fd)
            .ok_or_else(|| error::bad_fd(fd))
    }

    pub fn tcp_handle(&self, p: usize, fd: Fd) -> io::Result<TcpHandle> {
        match self.file(p, fd)?.kind {
            Kind::Tcp(h) => Ok(h),
            _ => Err(error::bad_fd(fd)),
        }
    }

    pub fn udp_handle(&self, p: usize, fd: Fd) -> io::Result<UdpHandle> {
        match self.file(p, fd)?.kind {
            Kind::Udp(h) => Ok(h),
            _ => Err(error::bad_fd(fd)),
        }
    }

    /// Gives a socket the lowest free descriptor of its host.
    pub fn open(&mut self, p: usize, kind: Kind) -> Fd {
        let sock = match &kind {
            Kind::Tcp(h) => Some(SocketHandle::from(*h)),
            Kind::Udp(h) => Some(SocketHandle::from(*h)),
            Kind::Epoll(_) => None,
        };
        let proc_ = &mut self.procs[p];
        let fd = proc_.files.insert(File::new(kind));
        if let Some(s) = sock {
            proc_.by_handle.insert(s, fd);
        }
        fd
    }

    /// What a descriptor is ready for right now (`None` if it is not open).
    pub fn readiness(&self, p: usize, fd: Fd) -> Option<Events> {
        let file = self.procs[p].files.get(fd)?;
        Some(match &file.kind {
            Kind::Tcp(h) => self.hosts[p].stack_ref().readiness((*h).into()).into(),
            Kind::Udp(h) => self.hosts[p].stack_ref().readiness((*h).into()).into(),
            Kind::Epoll(ep) if ep.has_ready() => Events::IN,
            Kind::Epoll(_) => Events::NONE,
        })
    }

    /// Closes a descriptor: detaches it from every epoll instance (as the kernel does on the
    /// last `close`), cancels its pending operations, and closes the socket in the stack (an
    /// orderly FIN for TCP).
    pub fn close(&mut self, p: usize, fd: Fd) -> io::Result<()> {
        let file = self.procs[p]
            .files
            .remove(fd)
            .ok_or_else(|| error::bad_fd(fd))?;
        for w in &file.watchers {
            if let Some(inst) = self.epoll_mut(p, w.epfd) {
                inst.forget(fd);
            }
        }
        for op in file.ops {
            self.post(
                p,
                op.ring,
                RawCompletion::failed(
                    op,
                    io::Error::new(io::ErrorKind::Interrupted, "cancelled: descriptor closed"),
                ),
            );
        }
        let now = self.now;
        match file.kind {
            Kind::Tcp(h) => {
                self.procs[p].by_handle.remove(&h.into());
                // Already gone in the stack (e.g. reset and reaped) is fine.
                let _ = self.stack(p).tcp_close(now, h);
            }
            Kind::Udp(h) => {
                self.procs[p].by_handle.remove(&h.into());
                let _ = self.stack(p).udp_close(h);
            }
            Kind::Epoll(inst) => {
                for watched in inst.watched() {
                    if let Some(f) = self.procs[p].files.get_mut(watched) {
                        f.watchers.retain(|w| w.epfd != fd);
                    }
                }
            }
        }
        Ok(())
    }

    pub fn epoll_mut(&mut self, p: usize, fd: Fd) -> Option<&mut EpollInstance> {
        match &mut self.procs[p].files.get_mut(fd)?.kind {
            Kind::Epoll(ep) => Some(ep),
            _ => None,
        }
    }

    /// The earliest instant any host has work to do without new input.
    pub fn poll_at(&self) -> Option<Instant> {
        self.hosts.iter().filter_map(|h| h.poll_at()).min()
    }

    /// One round of "interrupt + softirq": polls every host at `now` until no frame moves
    /// (frames between hosts of one group cross within the round), then dispatches readiness.
    /// Returns whether any frame moved.
    pub fn drive(&mut self, now: Instant) -> io::Result<bool> {
        self.now = now;
        let mut any = false;
        for _ in 0..SETTLE_ROUNDS {
            let mut moved = false;
            for h in &mut self.hosts {
                moved |= h.poll(now).map_err(error::nic)?;
            }
            if !moved {
                break;
            }
            any = true;
        }
        self.dispatch();
        Ok(any)
    }

    /// Drains every stack's readiness queue into `Core::notify`.
    pub fn dispatch(&mut self) {
        for p in 0..self.hosts.len() {
            while let Some(h) = self.hosts[p].stack().poll_readiness() {
                if let Some(&fd) = self.procs[p].by_handle.get(&h) {
                    self.procs[p].work.readiness_callbacks += 1;
                    self.notify(p, fd);
                }
            }
        }
    }

    /// The readiness of `fd` may have changed: tell its epoll instances, its readiness callback
    /// and its pending operations. Called by `Core::dispatch` for stack events, and after every
    /// application call on a socket (a read that drains the buffer is a change too).
    pub fn notify(&mut self, p: usize, fd: Fd) {
        let Some(cur) = self.readiness(p, fd) else {
            return;
        };
        let Some(file) = self.procs[p].files.get_mut(fd) else {
            return;
        };
        if file.socket().is_none() {
            return;
        }
        // 1. epoll: every non-exclusive watcher is woken; of the EPOLLEXCLUSIVE ones, only one
        //    (the first with a thread blocked in wait, else the first attached).
        let watchers = mem::take(&mut file.watchers);
        let mut exclusive: Option<(Watch, bool)> = None;
        let mut wakeups = 0;
        for &w in &watchers {
            let Some(inst) = self.epoll_mut(p, w.epfd) else {
                continue;
            };
            match inst.wants(w.key, fd, cur) {
                Wants::Nothing => {}
                Wants::Wake => wakeups += u64::from(inst.enqueue(w.key, fd)),
                Wants::WakeExclusive => {
                    let waiting = inst.waiters > 0;
                    match exclusive {
                        None => exclusive = Some((w, waiting)),
                        Some((_, false)) if waiting => exclusive = Some((w, true)),
                        _ => {}
                    }
                }
            }
        }
        if let Some((w, _)) = exclusive {
            if let Some(inst) = self.epoll_mut(p, w.epfd) {
                wakeups += u64::from(inst.enqueue(w.key, fd));
            }
        }
        self.procs[p].work.epoll_wakeups += wakeups;
        let Some(file) = self.procs[p].files.get_mut(fd) else {
            return;
        };
        file.watchers = watchers;
        // 2. the readiness callback (edge: only newly set bits).
        let pending = file.sigio.as_mut().and_then(|s| s.on_change(fd, cur));
        let has_ops = !file.ops.is_empty();
        if let Some(pending) = pending {
            self.signals.push(pending);
            self.procs[p].work.signals += 1;
        }
        // 3. the proactor: pending operations that can now progress.
        if has_ops {
            self.progress_ops(p, fd);
        }
    }

    // ----- socket calls shared by the blocking, non-blocking and asynchronous paths -----

    /// `recv` on a TCP descriptor: one copy, socket buffer → `buf`.
    pub fn tcp_recv(&mut self, p: usize, fd: Fd, buf: &mut [u8]) -> io::Result<usize> {
        let h = self.tcp_handle(p, fd)?;
        if self.file(p, fd)?.read_shut {
            return Ok(0);
        }
        let now = self.now;
        let r = self.stack(p).tcp_recv(now, h, buf).map_err(error::tcp);
        if let Ok(n) = r {
            self.procs[p].work.user_copy_bytes += n as u64;
        }
        self.notify(p, fd);
        r
    }

    /// `send` on a TCP descriptor: one copy, `buf` → send buffer.
    pub fn tcp_send(&mut self, p: usize, fd: Fd, buf: &[u8]) -> io::Result<usize> {
        let h = self.tcp_handle(p, fd)?;
        let now = self.now;
        let r = self.stack(p).tcp_send(now, h, buf).map_err(error::tcp);
        if let Ok(n) = r {
            self.procs[p].work.user_copy_bytes += n as u64;
        }
        self.notify(p, fd);
        r
    }

    /// `recv` in place on a TCP descriptor: lends the contiguous readable bytes of the receive
    /// buffer to the closure in `f` (taken out of the `Option` only if it is called, so a
    /// blocking caller can retry with the same closure). `Ok(0)` with `f` still `Some` is end of
    /// stream (or `shutdown(Read)`).
    pub fn tcp_recv_with<F: FnOnce(&[u8]) -> usize>(
        &mut self,
        p: usize,
        fd: Fd,
        f: &mut Option<F>,
    ) -> io::Result<usize> {
        let h = self.tcp_handle(p, fd)?;
        if self.file(p, fd)?.read_shut {
            return Ok(0);
        }
        let now = self.now;
        let r = self
            .stack(p)
            .tcp_recv_with(now, h, |data| f.take().map_or(0, |f| f(data)))
            .map_err(error::tcp);
        if let Ok(n) = r {
            self.procs[p].work.in_place_bytes += n as u64;
        }
        self.notify(p, fd);
        r
    }

    /// `send` in place on a TCP descriptor: lends the contiguous free space of the send buffer
    /// to the closure in `f` (taken only if called; `WouldBlock` without calling it when the
    /// buffer is full).
    pub fn tcp_send_with<F: FnOnce(&mut [u8]) -> usize>(
        &mut self,
        p: usize,
        fd: Fd,
        f: &mut Option<F>,
    ) -> io::Result<usize> {
        let h = self.tcp_handle(p, fd)?;
        let now = self.now;
        let r = self
            .stack(p)
            .tcp_send_with(now, h, |room| f.take().map_or(0, |f| f(room)))
            .map_err(error::tcp);
        if let Ok(n) = r {
            self.procs[p].work.in_place_bytes += n as u64;
        }
        self.notify(p, fd);
        r
    }

    /// `send` by reference on a TCP descriptor: queues as much of `bytes[range]` as fits,
    /// without copying (the stack keeps a reference until the bytes are acknowledged; bytes it
    /// had to copy, past its descriptor limit, count as copied). `range` must lie in `bytes`.
    pub fn tcp_send_shared(
        &mut self,
        p: usize,
        fd: Fd,
        bytes: &SharedBytes,
        range: Range<usize>,
    ) -> io::Result<usize> {
        let h = self.tcp_handle(p, fd)?;
        let now = self.now;
        let stack = self.stack(p);
        let copied_before = stack.counters().get(Counter::CopyAppToSndBuf);
        let r = stack
            .tcp_send_external(now, h, bytes, range)
            .map_err(error::tcp);
        let copied = stack.counters().get(Counter::CopyAppToSndBuf) - copied_before;
        if let Ok(n) = r {
            self.procs[p].work.user_copy_bytes += copied;
            self.procs[p].work.in_place_bytes += n as u64 - copied;
        }
        self.notify(p, fd);
        r
    }

    /// `accept` on a listening descriptor: the new connection gets the lowest free descriptor.
    pub fn tcp_accept(&mut self, p: usize, fd: Fd) -> io::Result<Fd> {
        let h = self.tcp_handle(p, fd)?;
        let r = self.stack(p).tcp_accept(h).map_err(error::tcp);
        self.notify(p, fd);
        let child = r?;
        Ok(self.open(p, Kind::Tcp(child)))
    }

    /// Whether an active open on `fd` has finished: `Some(Ok)` once synchronized, `Some(Err)`
    /// once it failed, `None` while in progress.
    pub fn tcp_connect_result(&mut self, p: usize, fd: Fd) -> Option<io::Result<()>> {
        let h = self.tcp_handle(p, fd).ok()?;
        let stack = self.stack(p);
        if let Some(e) = stack.tcp_mut().take_error(h) {
            return Some(Err(error::tcp(e)));
        }
        match stack.tcp().state(h) {
            Some(s) if s.is_synchronized() => Some(Ok(())),
            Some(ringstack_stack::tcp::State::Closed) | None => Some(Err(error::tcp(
                ringstack_stack::TcpError::ConnectionRefused,
            ))),
            Some(_) => None,
        }
    }

    /// `recvfrom` on a UDP descriptor.
    pub fn udp_recv(
        &mut self,
        p: usize,
        fd: Fd,
        buf: &mut [u8],
    ) -> io::Result<(usize, std::net::SocketAddrV4)> {
        let h = self.udp_handle(p, fd)?;
        let r = self.stack(p).udp_recv_from(h, buf).map_err(error::udp);
        if let Ok((n, _)) = r {
            self.procs[p].work.user_copy_bytes += n as u64;
        }
        self.notify(p, fd);
        r
    }

    /// `sendto` (or `send` when `dst` is `None`) on a UDP descriptor.
    pub fn udp_send(
        &mut self,
        p: usize,
        fd: Fd,
        buf: &[u8],
        dst: Option<std::net::SocketAddrV4>,
    ) -> io::Result<usize> {
        let h = self.udp_handle(p, fd)?;
        let now = self.now;
        let stack = self.stack(p);
        match dst {
            Some(d) => stack.udp_send_to(now, h, buf, d),
            None => stack.udp_send(now, h, buf),
        }
        .map_err(error::udp)?;
        self.procs[p].work.user_copy_bytes += buf.len() as u64;
        self.notify(p, fd);
        Ok(buf.len())
    }

    // ----- the proactor -----

    /// Tries every pending operation of `fd`, in submission order; the ones that complete are
    /// posted to their ring's completion queue.
    pub fn progress_ops(&mut self, p: usize, fd: Fd) {
        let Ok(file) = self.file_mut(p, fd) else {
            return;
        };
        let mut ops = mem::take(&mut file.ops);
        let mut keep = VecDeque::new();
        // A read that could not complete blocks the reads behind it (they must see the bytes
        // in order); likewise for writes.
        let (mut reads_blocked, mut writes_blocked) = (false, false);
        while let Some(op) = ops.pop_front() {
            let blocked = match op.kind {
                OpKind::Read(_) | OpKind::Accept => reads_blocked,
                OpKind::Write { .. } => writes_blocked,
                OpKind::Connect => false,
            };
            if blocked {
                keep.push_back(op);
                continue;
            }
            match self.try_op(p, fd, op) {
                Ok(done) => {
                    let ring = done.ring;
                    self.procs[p].work.completions += 1;
                    self.post(p, ring, done);
                }
                Err(op) => {
                    match op.kind {
                        OpKind::Read(_) | OpKind::Accept => reads_blocked = true,
                        OpKind::Write { .. } => writes_blocked = true,
                        OpKind::Connect => {}
                    }
                    keep.push_back(op);
                }
            }
        }
        if let Ok(file) = self.file_mut(p, fd) {
            file.ops = keep;
        }
    }

    /// Performs `op` if it can complete now (`Ok(completion)`), else gives it back.
    fn try_op(&mut self, p: usize, fd: Fd, op: PendingOp) -> Result<RawCompletion, PendingOp> {
        let PendingOp {
            ring,
            user_data,
            kind,
        } = op;
        let is_tcp = matches!(self.file(p, fd).map(|f| &f.kind), Ok(Kind::Tcp(_)));
        let done = |result: io::Result<usize>, buf: Vec<u8>| RawCompletion {
            ring,
            user_data,
            result,
            buf,
            fd: None,
            from: None,
        };
        match kind {
            OpKind::Read(mut buf) => {
                // The data goes straight from the socket buffer into the submitted buffer.
                let r = if is_tcp {
                    self.tcp_recv_raw(p, fd, &mut buf).map(|n| (n, None))
                } else {
                    self.udp_recv_raw(p, fd, &mut buf)
                        .map(|(n, a)| (n, Some(a)))
                };
                match r {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => Err(PendingOp {
                        ring,
                        user_data,
                        kind: OpKind::Read(buf),
                    }),
                    Ok((n, from)) => Ok(RawCompletion {
                        from,
                        ..done(Ok(n), buf)
                    }),
                    Err(e) => Ok(done(Err(e), buf)),
                }
            }
            OpKind::Write { buf, mut written } => {
                let r = if is_tcp {
                    self.tcp_send_raw(p, fd, &buf[written..])
                } else {
                    self.udp_send_raw(p, fd, &buf)
                };
                match r {
                    Ok(n) if written + n < buf.len() => {
                        written += n;
                        Err(PendingOp {
                            ring,
                            user_data,
                            kind: OpKind::Write { buf, written },
                        })
                    }
                    Ok(n) => Ok(done(Ok(written + n), buf)),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => Err(PendingOp {
                        ring,
                        user_data,
                        kind: OpKind::Write { buf, written },
                    }),
                    Err(e) if written > 0 => {
                        let _ = e;
                        Ok(done(Ok(written), buf))
                    }
                    Err(e) => Ok(done(Err(e), buf)),
                }
            }
            OpKind::Accept => {
                let h = self.tcp_handle(p, fd);
                let r = h.and_then(|h| self.stack(p).tcp_accept(h).map_err(error::tcp));
                match r {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => Err(PendingOp {
                        ring,
                        user_data,
                        kind: OpKind::Accept,
                    }),
                    Err(e) => Ok(done(Err(e), Vec::new())),
                    Ok(child) => {
                        let new = self.open(p, Kind::Tcp(child));
                        Ok(RawCompletion {
                            fd: Some(new),
                            ..done(Ok(0), Vec::new())
                        })
                    }
                }
            }
            OpKind::Connect => match self.tcp_connect_result(p, fd) {
                None => Err(PendingOp {
                    ring,
                    user_data,
                    kind: OpKind::Connect,
                }),
                Some(r) => Ok(RawCompletion {
                    fd: Some(fd),
                    ..done(r.map(|()| 0), Vec::new())
                }),
            },
        }
    }

    // The raw variants do not call `notify` (the proactor runs inside it).
    fn tcp_recv_raw(&mut self, p: usize, fd: Fd, buf: &mut [u8]) -> io::Result<usize> {
        let h = self.tcp_handle(p, fd)?;
        let now = self.now;
        let n = self.stack(p).tcp_recv(now, h, buf).map_err(error::tcp)?;
        self.procs[p].work.user_copy_bytes += n as u64;
        Ok(n)
    }

    fn tcp_send_raw(&mut self, p: usize, fd: Fd, buf: &[u8]) -> io::Result<usize> {
        let h = self.tcp_handle(p, fd)?;
        let now = self.now;
        let n = self.stack(p).tcp_send(now, h, buf).map_err(error::tcp)?;
        self.procs[p].work.user_copy_bytes += n as u64;
        Ok(n)
    }

    fn udp_recv_raw(
        &mut self,
        p: usize,
        fd: Fd,
        buf: &mut [u8],
    ) -> io::Result<(usize, std::net::SocketAddrV4)> {
        let h = self.udp_handle(p, fd)?;
        let r = self.stack(p).udp_recv_from(h, buf).map_err(error::udp)?;
        self.procs[p].work.user_copy_bytes += r.0 as u64;
        Ok(r)
    }

    fn udp_send_raw(&mut self, p: usize, fd: Fd, buf: &[u8]) -> io::Result<usize> {
        let h = self.udp_handle(p, fd)?;
        let now = self.now;
        self.stack(p).udp_send(now, h, buf).map_err(error::udp)?;
        self.procs[p].work.user_copy_bytes += buf.len() as u64;
        Ok(buf.len())
    }

    /// Posts a completion to ring `ring`; if the ring is gone, the completion is discarded (and
    /// a descriptor it carried is closed).
    pub fn post(&mut self, p: usize, ring: u64, c: RawCompletion) {
        match self.rings.get_mut(&ring) {
            Some(q) => q.push_back(c),
            None => {
                if let Some(fd) = c.fd {
                    let _ = self.close(p, fd);
                }
            }
        }
    }
}
