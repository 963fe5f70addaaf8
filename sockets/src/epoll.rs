//! `epoll(7)`: an interest table plus a ready list filled by callbacks.
//!
//! As the notes describe it (and as `fs/eventpoll.c` builds it):
//!
//! - [`Epoll::create`] makes an instance, itself a descriptor (`epoll_create`);
//! - [`Epoll::ctl`] adds, modifies or deletes an *item* in the **interest table**, ordered by
//!   descriptor (a `BTreeMap` here, a red-black tree in Linux): O(log n) per call, and the table is
//!   kept across calls — nothing is copied in again on every wait, unlike `select`/`poll`;
//! - when a watched socket's readiness changes, the stack's readiness queue (the "callback",
//!   `ep_poll_callback`) puts the item on the instance's **ready list** — see
//!   [`crate::core`] — and wakes a waiter;
//! - [`Epoll::wait`] takes items off the ready list only: it never looks at an idle socket, so
//!   its cost is proportional to the number of *ready* sockets, not registered ones (counted in
//!   [`Work::epoll_examined`](crate::Work::epoll_examined)), and it reports exactly which
//!   descriptors are ready and for what ("明确通知", explicit notification).
//!
//! # Level- and edge-triggered
//!
//! For each item taken off the ready list, `wait` re-checks the socket's current readiness
//! (`ep_item_poll`). Then:
//!
//! - **level-triggered** (default): an item still ready is put back on the ready list, so data
//!   left unread is reported by *every* `wait` — LT never loses an event;
//! - **edge-triggered** ([`Events::ET`]): the item is not put back; it is queued again only on
//!   a *new transition* to ready (bits that were not set at the last observation). A reader
//!   must therefore drain the socket until `WouldBlock` — which is why ET requires
//!   non-blocking sockets — or the data left behind is never announced again ("积压").
//!   Linux's `ep_poll_callback` actually re-queues an ET item on every wakeup (so new data on
//!   a partially read socket does fire again); we model the textbook transition rule the
//!   notes state, which is the contract portable code must assume anyway.
//! - [`Events::ONESHOT`]: after one report the item is disarmed (no event bits) until
//!   [`CtlOp::Mod`] re-arms it;
//! - [`Events::EXCLUSIVE`]: when several instances watch one descriptor (e.g. one per worker
//!   on a shared listening socket), a readiness change wakes only one of them instead of all —
//!   the thundering-herd fix. We pick the first instance (in attach order) that has a thread
//!   blocked in `wait`, else the first one. (Linux would also queue the item on instances with
//!   no waiter; in a single-threaded simulation nobody is blocked when the callback runs, so
//!   we keep the "one wakeup per event" rule the flag exists for.)
//!
//! `ERR` and `HUP` are always reported, whether asked for or not (`epoll_ctl(2)`).

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::mem;
use std::time::Duration;

use crate::core::{Core, Kind};
use crate::events::Events;
use crate::fd::Fd;
use crate::net::Net;

/// `struct epoll_event`: what happened, and the user's 64-bit token (`epoll_data_t`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EpollEvent {
    /// Interest (in `ctl`) or readiness (from `wait`).
    pub events: Events,
    /// The user token given to `ctl`, returned as is (commonly the descriptor itself).
    pub data: u64,
}

impl EpollEvent {
    /// An event with `events` and token `data`.
    pub fn new(events: Events, data: u64) -> Self {
        EpollEvent { events, data }
    }
}

/// `EPOLL_CTL_ADD`, `EPOLL_CTL_MOD`, `EPOLL_CTL_DEL`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CtlOp {
    /// Add a descriptor to the interest table (`EEXIST` if present).
    Add,
    /// Change an item's events and token; re-arms a `ONESHOT` item (`ENOENT` if absent).
    Mod,
    /// Remove a descriptor (`ENOENT` if absent).
    Del,
}

/// One interest-table entry (`struct epitem`).
#[derive(Debug)]
struct Item {
    /// Interest and flags; always includes `ERR | HUP` unless disarmed.
    events: Events,
    data: u64,
    /// On the ready list now.
    queued: bool,
    /// Readiness at the last observation (for edge detection).
    last: Events,
}

/// What a readiness change means for one instance.
pub(crate) enum Wants {
    Nothing,
    Wake,
    WakeExclusive,
}

/// The kernel side of an epoll instance (`struct eventpoll`).
#[derive(Debug, Default)]
pub(crate) struct EpollInstance {
    interest: BTreeMap<Fd, Item>,
    ready: VecDeque<Fd>,
    /// Scratch list for level-triggered re-queueing (kept to avoid allocating per wait).
    requeue: Vec<Fd>,
    /// Threads blocked in `wait` on this instance.
    pub waiters: usize,
}

impl EpollInstance {
    pub fn has_ready(&self) -> bool {
        !self.ready.is_empty()
    }

    pub fn watched(&self) -> impl Iterator<Item = Fd> + '_ {
        self.interest.keys().copied()
    }

    /// The callback: readiness of `fd` is now `cur`. Updates the edge-detection state and says
    /// whether the item should go on the ready list.
    pub fn wants(&mut self, fd: Fd, cur: Events) -> Wants {
        let Some(item) = self.interest.get_mut(&fd) else {
            return Wants::Nothing;
        };
        let newly = cur & !item.last;
        item.last = cur;
        let mask = item.events & Events::IO;
        let fire = if item.events.contains(Events::ET) {
            newly.intersects(mask)
        } else {
            cur.intersects(mask)
        };
        if !fire {
            Wants::Nothing
        } else if item.events.contains(Events::EXCLUSIVE) {
            Wants::WakeExclusive
        } else {
            Wants::Wake
        }
    }

    /// Puts `fd` on the ready list; returns whether it was newly queued (a wakeup).
    pub fn enqueue(&mut self, fd: Fd) -> bool {
        match self.interest.get_mut(&fd) {
            Some(item) if !item.queued => {
                item.queued = true;
                self.ready.push_back(fd);
                true
            }
            _ => false,
        }
    }

    /// Drops every trace of `fd` (it was closed).
    pub fn forget(&mut self, fd: Fd) {
        if self.interest.remove(&fd).is_some() {
            self.ready.retain(|&f| f != fd);
        }
    }

    fn ctl(&mut self, op: CtlOp, fd: Fd, ev: EpollEvent, cur: Events) -> io::Result<()> {
        let einval = |msg: &str| io::Error::new(io::ErrorKind::InvalidInput, msg.to_string());
        let flags = ev.events;
        if flags.contains(Events::EXCLUSIVE) {
            if op == CtlOp::Mod {
                return Err(einval("EPOLLEXCLUSIVE is only allowed with EPOLL_CTL_ADD"));
            }
            if flags.contains(Events::ONESHOT) {
                return Err(einval(
                    "EPOLLEXCLUSIVE cannot be combined with EPOLLONESHOT",
                ));
            }
        }
        let events = flags | Events::ERR | Events::HUP;
        match op {
            CtlOp::Add => {
                if self.interest.contains_key(&fd) {
                    return Err(io::Error::new(
                        io::ErrorKind::AlreadyExists,
                        format!("descriptor {fd} is already registered (EEXIST): use Mod"),
                    ));
                }
                self.interest.insert(
                    fd,
                    Item {
                        events,
                        data: ev.data,
                        queued: false,
                        last: cur,
                    },
                );
            }
            CtlOp::Mod => {
                let item = self
                    .interest
                    .get_mut(&fd)
                    .ok_or_else(|| not_registered(fd))?;
                if item.events.contains(Events::EXCLUSIVE) {
                    return Err(einval("an EPOLLEXCLUSIVE item cannot be modified"));
                }
                item.events = events;
                item.data = ev.data;
                item.last = cur;
            }
            CtlOp::Del => {
                self.interest
                    .remove(&fd)
                    .ok_or_else(|| not_registered(fd))?;
                self.ready.retain(|&f| f != fd);
                return Ok(());
            }
        }
        // Like ep_insert/ep_modify: an item that is ready already goes on the ready list now.
        if cur.intersects(events & Events::IO) {
            self.enqueue(fd);
        }
        Ok(())
    }

    /// One pass of `ep_send_events`: takes up to `max` events off the ready list, re-checking
    /// each item's readiness with `readiness` (and counting it in `examined`).
    fn harvest(
        &mut self,
        max: usize,
        out: &mut Vec<EpollEvent>,
        examined: &mut u64,
        mut readiness: impl FnMut(Fd) -> Option<Events>,
    ) {
        let mut requeue = mem::take(&mut self.requeue);
        let mut left = self.ready.len();
        while out.len() < max && left > 0 {
            left -= 1;
            let Some(fd) = self.ready.pop_front() else {
                break;
            };
            let Some(item) = self.interest.get_mut(&fd) else {
                continue;
            };
            item.queued = false;
            *examined += 1;
            let cur = readiness(fd).unwrap_or(Events::HUP);
            item.last = cur;
            let revents = cur & item.events & Events::IO;
            if revents.is_empty() {
                continue;
            }
            out.push(EpollEvent {
                events: revents,
                data: item.data,
            });
            if item.events.contains(Events::ONESHOT) {
                // Disarm: keep only the flags (EP_PRIVATE_BITS), no event bits.
                item.events = item.events & !Events::IO;
            } else if !item.events.contains(Events::ET) {
                // Level-triggered: still ready, so it stays on the ready list.
                item.queued = true;
                requeue.push(fd);
            }
        }
        self.ready.extend(requeue.drain(..));
        self.requeue = requeue;
    }
}

fn not_registered(fd: Fd) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("descriptor {fd} is not registered in this epoll instance (ENOENT)"),
    )
}

impl Core {
    pub(crate) fn epoll_ctl(
        &mut self,
        p: usize,
        epfd: Fd,
        op: CtlOp,
        fd: Fd,
        ev: EpollEvent,
    ) -> io::Result<()> {
        let target = self.file(p, fd)?;
        if target.socket().is_none() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "nesting an epoll instance in another is not supported",
            ));
        }
        let cur = self.readiness(p, fd).unwrap_or(Events::NONE);
        let inst = self
            .epoll_mut(p, epfd)
            .ok_or_else(|| crate::error::bad_fd(epfd))?;
        inst.ctl(op, fd, ev, cur)?;
        let file = self.file_mut(p, fd)?;
        match op {
            CtlOp::Add => file.watchers.push(epfd),
            CtlOp::Del => file.watchers.retain(|&e| e != epfd),
            CtlOp::Mod => {}
        }
        Ok(())
    }

    pub(crate) fn epoll_harvest(
        &mut self,
        p: usize,
        epfd: Fd,
        max: usize,
        out: &mut Vec<EpollEvent>,
    ) -> io::Result<usize> {
        let before = out.len();
        let mut inst = mem::take(
            self.epoll_mut(p, epfd)
                .ok_or_else(|| crate::error::bad_fd(epfd))?,
        );
        let mut examined = 0;
        inst.harvest(before + max, out, &mut examined, |fd| self.readiness(p, fd));
        if let Some(slot) = self.epoll_mut(p, epfd) {
            *slot = inst;
        }
        let w = &mut self.procs[p].work;
        w.epoll_scans += 1;
        w.epoll_examined += examined;
        Ok(out.len() - before)
    }
}

/// An epoll instance (`epoll_create`). Closed when dropped.
pub struct Epoll {
    net: Net,
    fd: Fd,
}

impl Epoll {
    /// `epoll_create1(0)`: a new instance, with its own descriptor.
    pub fn create(net: &Net) -> io::Result<Epoll> {
        let fd = net.call(|core, p| Ok(core.open(p, Kind::Epoll(EpollInstance::default()))))?;
        Ok(Epoll {
            net: net.clone(),
            fd,
        })
    }

    /// The instance's descriptor.
    pub fn fd(&self) -> Fd {
        self.fd
    }

    /// `epoll_ctl(epfd, op, fd, &event)`. For [`CtlOp::Del`] the event is ignored.
    pub fn ctl(&self, op: CtlOp, fd: Fd, event: EpollEvent) -> io::Result<()> {
        let epfd = self.fd;
        self.net
            .call(|core, p| core.epoll_ctl(p, epfd, op, fd, event))
    }

    /// `ctl(Add, fd, {events, data})`.
    pub fn add(&self, fd: Fd, events: Events, data: u64) -> io::Result<()> {
        self.ctl(CtlOp::Add, fd, EpollEvent::new(events, data))
    }

    /// `ctl(Mod, fd, {events, data})`.
    pub fn modify(&self, fd: Fd, events: Events, data: u64) -> io::Result<()> {
        self.ctl(CtlOp::Mod, fd, EpollEvent::new(events, data))
    }

    /// `ctl(Del, fd)`.
    pub fn delete(&self, fd: Fd) -> io::Result<()> {
        self.ctl(CtlOp::Del, fd, EpollEvent::new(Events::NONE, 0))
    }

    /// `epoll_wait(epfd, events, maxevents, timeout)`: clears `events`, then fills it with at
    /// most `maxevents` ready events and returns how many.
    ///
    /// `timeout_ms`: `0` returns at once, `> 0` waits at most that many milliseconds, `-1` waits
    /// until something is ready. Returns `Ok(0)` on timeout. On a simulated network that is
    /// idle for good, `-1` fails with `TimedOut` instead of hanging.
    pub fn wait(
        &self,
        events: &mut Vec<EpollEvent>,
        maxevents: usize,
        timeout_ms: i32,
    ) -> io::Result<usize> {
        events.clear();
        if maxevents == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "maxevents must be greater than zero (EINVAL)",
            ));
        }
        let epfd = self.fd;
        let timeout = timeout_from_ms(timeout_ms);
        self.net.with_raw(|core, p| {
            if let Some(i) = core.epoll_mut(p, epfd) {
                i.waiters += 1;
            }
        });
        let r = self.net.block(timeout, |core, p| {
            match core.epoll_harvest(p, epfd, maxevents, events) {
                Ok(0) => None,
                r => Some(r),
            }
        });
        self.net.with_raw(|core, p| {
            if let Some(i) = core.epoll_mut(p, epfd) {
                i.waiters -= 1;
            }
        });
        match r {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
            r => r,
        }
    }

    /// Number of registered descriptors.
    pub fn interest_len(&self) -> usize {
        let epfd = self.fd;
        self.net
            .with_raw(|core, p| core.epoll_mut(p, epfd).map_or(0, |i| i.interest.len()))
    }

    /// Number of items on the ready list right now (without waiting or driving).
    pub fn ready_len(&self) -> usize {
        let epfd = self.fd;
        self.net
            .with_raw(|core, p| core.epoll_mut(p, epfd).map_or(0, |i| i.ready.len()))
    }
}

impl Drop for Epoll {
    fn drop(&mut self) {
        let fd = self.fd;
        let _ = self.net.call(|core, p| core.close(p, fd));
    }
}

/// `0` → try once, `< 0` → forever, `ms` → that long (the C convention of `poll`/`epoll_wait`).
pub(crate) fn timeout_from_ms(ms: i32) -> Option<Duration> {
    if ms < 0 {
        None
    } else {
        Some(Duration::from_millis(ms as u64))
    }
}
