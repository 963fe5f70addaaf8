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
//! The items themselves live in a slab (`Items`) and are named by an `ItemKey` (slot index
//! and generation): the interest table maps a descriptor to its key, and the ready list and the
//! watched socket (its `watchers`, the analogue of the `epitem` linked from the socket's wait
//! queue) hold keys. So the callback and `wait` reach an item in O(1) — only `ctl` and `close`
//! search the ordered table — and the cost of a `wait` does not grow with the number of
//! registered descriptors, not even logarithmically.
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
    /// The watched descriptor.
    fd: Fd,
    /// Interest and flags; always includes `ERR | HUP` unless disarmed.
    events: Events,
    data: u64,
    /// On the ready list now.
    queued: bool,
    /// Readiness at the last observation (for edge detection).
    last: Events,
}

/// Where an item lives in its instance's slab: the slot and the slot's generation, so a key
/// kept after its item was removed never reaches a later item in the same slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ItemKey {
    index: u32,
    gen: u32,
}

/// A socket's link to one epoll instance watching it: the instance's descriptor and the key of
/// the item there (the callback's direct way in, like the `epitem` on a socket's wait queue).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Watch {
    pub epfd: Fd,
    pub key: ItemKey,
}

/// A slab of items with generational keys: O(1) insert, lookup and removal.
#[derive(Debug, Default)]
struct Items {
    slots: Vec<Slot>,
    /// Indices of empty slots.
    free: Vec<u32>,
}

#[derive(Debug)]
struct Slot {
    gen: u32,
    item: Option<Item>,
}

impl Items {
    fn insert(&mut self, item: Item) -> ItemKey {
        if let Some(index) = self.free.pop() {
            let slot = &mut self.slots[index as usize];
            slot.item = Some(item);
            return ItemKey {
                index,
                gen: slot.gen,
            };
        }
        let index = u32::try_from(self.slots.len()).expect("fewer than 2^32 epoll items");
        self.slots.push(Slot {
            gen: 0,
            item: Some(item),
        });
        ItemKey { index, gen: 0 }
    }

    fn get_mut(&mut self, key: ItemKey) -> Option<&mut Item> {
        self.slots
            .get_mut(key.index as usize)
            .filter(|s| s.gen == key.gen)?
            .item
            .as_mut()
    }

    fn remove(&mut self, key: ItemKey) -> Option<Item> {
        let slot = self
            .slots
            .get_mut(key.index as usize)
            .filter(|s| s.gen == key.gen)?;
        let item = slot.item.take()?;
        slot.gen = slot.gen.wrapping_add(1);
        self.free.push(key.index);
        Some(item)
    }
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
    /// The interest table, ordered by descriptor (for `ctl`, `close` and listing).
    interest: BTreeMap<Fd, ItemKey>,
    /// The items (`epitem`s), reached by key from the ready list and the callbacks.
    items: Items,
    ready: VecDeque<ItemKey>,
    /// Scratch list for level-triggered re-queueing (kept to avoid allocating per wait).
    requeue: Vec<ItemKey>,
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

    /// The item `key` if it still watches `fd`.
    fn item(&mut self, key: ItemKey, fd: Fd) -> Option<&mut Item> {
        self.items.get_mut(key).filter(|i| i.fd == fd)
    }

    /// The callback: readiness of `fd` (watched here as item `key`) is now `cur`. Updates the
    /// edge-detection state and says whether the item should go on the ready list. O(1).
    pub fn wants(&mut self, key: ItemKey, fd: Fd, cur: Events) -> Wants {
        let Some(item) = self.item(key, fd) else {
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

    /// Puts item `key` (watching `fd`) on the ready list; returns whether it was newly queued
    /// (a wakeup). O(1).
    pub fn enqueue(&mut self, key: ItemKey, fd: Fd) -> bool {
        match self.item(key, fd) {
            Some(item) if !item.queued => {
                item.queued = true;
                self.ready.push_back(key);
                true
            }
            _ => false,
        }
    }

    /// Removes the item watching `fd`, from the table and the ready list; whether there was one.
    fn remove(&mut self, fd: Fd) -> bool {
        let Some(key) = self.interest.remove(&fd) else {
            return false;
        };
        if let Some(item) = self.items.remove(key) {
            if item.queued {
                self.ready.retain(|&k| k != key);
            }
        }
        true
    }

    /// Drops every trace of `fd` (it was closed).
    pub fn forget(&mut self, fd: Fd) {
        self.remove(fd);
    }

    /// `epoll_ctl` on the instance; returns the item's key (for the socket's `watchers`).
    fn ctl(&mut self, op: CtlOp, fd: Fd, ev: EpollEvent, cur: Events) -> io::Result<ItemKey> {
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
        let key = match op {
            CtlOp::Add => {
                if self.interest.contains_key(&fd) {
                    return Err(io::Error::new(
                        io::ErrorKind::AlreadyExists,
                        format!("descriptor {fd} is already registered (EEXIST): use Mod"),
                    ));
                }
                let key = self.items.insert(Item {
                    fd,
                    events,
                    data: ev.data,
                    queued: false,
                    last: cur,
                });
                self.interest.insert(fd, key);
                key
            }
            CtlOp::Mod => {
                let key = *self.interest.get(&fd).ok_or_else(|| not_registered(fd))?;
                let item = self.item(key, fd).ok_or_else(|| not_registered(fd))?;
                if item.events.contains(Events::EXCLUSIVE) {
                    return Err(einval("an EPOLLEXCLUSIVE item cannot be modified"));
                }
                item.events = events;
                item.data = ev.data;
                item.last = cur;
                key
            }
            CtlOp::Del => {
                let key = *self.interest.get(&fd).ok_or_else(|| not_registered(fd))?;
                self.remove(fd);
                return Ok(key);
            }
        };
        // Like ep_insert/ep_modify: an item that is ready already goes on the ready list now.
        if cur.intersects(events & Events::IO) {
            self.enqueue(key, fd);
        }
        Ok(key)
    }

    /// One pass of `ep_send_events`: takes up to `max` events off the ready list, re-checking
    /// each item's readiness with `readiness` (and counting it in `examined`). Each entry is
    /// reached through its key in O(1): the interest table is not consulted.
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
            let Some(key) = self.ready.pop_front() else {
                break;
            };
            let Some(item) = self.items.get_mut(key) else {
                continue;
            };
            item.queued = false;
            *examined += 1;
            let cur = readiness(item.fd).unwrap_or(Events::HUP);
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
                requeue.push(key);
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
        let key = inst.ctl(op, fd, ev, cur)?;
        let file = self.file_mut(p, fd)?;
        match op {
            CtlOp::Add => file.watchers.push(Watch { epfd, key }),
            CtlOp::Del => file.watchers.retain(|w| w.epfd != epfd),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(events: Events, data: u64) -> EpollEvent {
        EpollEvent::new(events, data)
    }

    #[test]
    fn slab_keys_are_generational() {
        let mut items = Items::default();
        let item = |fd| Item {
            fd,
            events: Events::IN,
            data: 0,
            queued: false,
            last: Events::NONE,
        };
        let a = items.insert(item(3));
        let b = items.insert(item(4));
        assert_ne!(a, b);
        assert_eq!(items.remove(a).map(|i| i.fd), Some(3));
        assert!(items.remove(a).is_none(), "removed once");
        let c = items.insert(item(5));
        assert_eq!(c.index, a.index, "the slot is reused");
        assert!(
            items.get_mut(a).is_none(),
            "the stale key misses the new item"
        );
        assert_eq!(items.get_mut(c).map(|i| i.fd), Some(5));
        assert_eq!(items.get_mut(b).map(|i| i.fd), Some(4));
    }

    #[test]
    fn stale_keys_and_other_descriptors_reach_nothing() {
        let mut ep = EpollInstance::default();
        let k3 = ep
            .ctl(CtlOp::Add, 3, ev(Events::IN, 3), Events::NONE)
            .unwrap();
        ep.ctl(CtlOp::Del, 3, ev(Events::NONE, 0), Events::NONE)
            .unwrap();
        let k4 = ep
            .ctl(CtlOp::Add, 4, ev(Events::IN, 4), Events::NONE)
            .unwrap();
        assert_eq!(k4.index, k3.index);
        // A callback still holding 3's key (or naming the wrong descriptor) changes nothing.
        assert!(matches!(ep.wants(k3, 3, Events::IN), Wants::Nothing));
        assert!(!ep.enqueue(k3, 3));
        assert!(!ep.enqueue(k4, 3));
        assert!(!ep.has_ready());
        assert!(matches!(ep.wants(k4, 4, Events::IN), Wants::Wake));
        assert!(ep.enqueue(k4, 4));
        assert!(!ep.enqueue(k4, 4), "already queued: no second wakeup");
        assert_eq!(ep.ready.len(), 1);
    }

    #[test]
    fn harvest_reaches_items_by_key_and_requeues_level_triggered_ones() {
        let mut ep = EpollInstance::default();
        // Many idle items, ready ones in between; LT on 10, ET on 20, ONESHOT on 30.
        for fd in 0..1000 {
            ep.ctl(CtlOp::Add, fd, ev(Events::IN, fd as u64), Events::NONE)
                .unwrap();
        }
        ep.ctl(CtlOp::Del, 10, ev(Events::NONE, 0), Events::NONE)
            .unwrap();
        ep.ctl(CtlOp::Add, 10, ev(Events::IN, 110), Events::IN)
            .unwrap();
        ep.ctl(CtlOp::Mod, 20, ev(Events::IN | Events::ET, 120), Events::IN)
            .unwrap();
        ep.ctl(
            CtlOp::Mod,
            30,
            ev(Events::IN | Events::ONESHOT, 130),
            Events::IN,
        )
        .unwrap();
        let ready = |fd: Fd| {
            Some(if [10, 20, 30].contains(&fd) {
                Events::IN
            } else {
                Events::NONE
            })
        };
        let mut out = Vec::new();
        let mut examined = 0;
        ep.harvest(64, &mut out, &mut examined, ready);
        let mut data: Vec<u64> = out.iter().map(|e| e.data).collect();
        data.sort();
        assert_eq!(data, [110, 120, 130]);
        assert_eq!(
            examined, 3,
            "only the ready entries, never the 997 idle ones"
        );
        // Next pass: only the level-triggered item is still on the list.
        out.clear();
        ep.harvest(64, &mut out, &mut examined, ready);
        assert_eq!(out, [ev(Events::IN, 110)]);
        assert_eq!(examined, 4);
        // Deleting a queued item takes it off the ready list.
        ep.ctl(CtlOp::Del, 10, ev(Events::NONE, 0), Events::NONE)
            .unwrap();
        assert!(!ep.has_ready());
        assert_eq!(ep.interest.len(), 999);
    }
}
