//! [`Net`]: the shared handle that socket objects drive — one machine's network stack, as seen
//! by its programs.
//!
//! A `Net` is a cheap clone of an `Arc`: a group of [`Host`]s (NIC + sans-IO stack) and one
//! [`DriverClock`] behind a mutex, plus the index of "its" host. Each host has its own
//! descriptor table (one machine, one process), so descriptors of different hosts never mix.
//!
//! # Who drives: the one-thread model
//!
//! There is no kernel thread: whoever calls into a `Net` runs the "kernel" for a moment. Every
//! call takes the lock, *drives* (polls every host of the group: frames in, timers, frames out,
//! then dispatches readiness — see [`crate::core`]), does its operation, drives again to push
//! out what it produced, and releases the lock. A **blocking** call that cannot complete then
//! waits until the next event that could change the answer (the earliest stack or NIC deadline,
//! or its own timeout) and tries again:
//!
//! - on the [`SystemClock`](crate::SystemClock) it sleeps in epoll (via `mio`) on the NICs'
//!   descriptors, so a frame arriving from a real network wakes it;
//! - on the [`VirtualClock`] nothing else can happen while the only thread
//!   waits, so time jumps to that deadline. A call that could only complete by outside action
//!   that will never come fails with `TimedOut` ("idle forever") instead of hanging.
//!
//! Two simulated machines on one [`MemoryLink`] are simply two hosts of **one group**
//! ([`Net::memory_pair`]): a blocking `accept` on machine A drives machine B too — frames cross
//! the link within one drive — so one thread can run a client and a server, deterministically.
//! (The kernel analogue: one softirq serving every device of the box.)
//!
//! # The threaded model
//!
//! [`Net::spawn_driver`] starts one driver thread that does all the driving (and runs readiness
//! callbacks); application threads on any `Net` of the group then only take the lock to do their
//! operation, kick the driver (a `mio::Waker`, an eventfd) when they produced work, and sleep on
//! a condition variable while blocked. The lock is never held while sleeping. It needs a real
//! clock.
//!
//! # Readiness callbacks
//!
//! Callbacks queued by the dispatch ([`crate::signal`]) run *outside* the lock, at the end of
//! the call that drove (like a signal delivered on return from a system call), or on the driver
//! thread in the threaded model, so they may use the socket API themselves.

use std::io;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration as StdDuration;

use ringstack_nic::{LinkConfig, MemoryLink, Nic};
use ringstack_stack::time::{Duration, Instant};
use ringstack_stack::{Config, Stack};

use crate::core::{Core, DynNic, Work};
use crate::driver_clock::{DriverClock, VirtualClock};
use crate::error;
use crate::host::Host;

/// The longest a real-clock wait sleeps before re-checking (insurance against a missed NIC
/// wakeup: mio registers descriptors edge-triggered).
const MAX_REAL_SLEEP: StdDuration = StdDuration::from_millis(100);
/// The mio token of the driver's waker.
const WAKE_TOKEN: mio::Token = mio::Token(usize::MAX);

/// What a real-clock driver sleeps on.
struct IoWait {
    poll: mio::Poll,
    events: mio::Events,
    has_fds: bool,
}

pub(crate) struct Shared {
    core: Mutex<Core>,
    /// Signalled by the driver thread after every drive (threaded model).
    cond: Condvar,
    clock: Box<dyn DriverClock>,
    io: Mutex<Option<IoWait>>,
    waker: OnceLock<mio::Waker>,
    threaded: AtomicBool,
    stop: AtomicBool,
    delivering: AtomicBool,
}

/// A handle on one machine's network stack, shared by the sockets created on it. Clone it
/// freely; see the [module docs](self) for how calls drive the stack.
#[derive(Clone)]
pub struct Net {
    shared: Arc<Shared>,
    host: usize,
}

impl std::fmt::Debug for Net {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Net").field("host", &self.host).finish()
    }
}

fn to_stack(d: StdDuration) -> Duration {
    Duration::from_micros(d.as_micros().min(u64::MAX as u128) as u64)
}

fn to_std(d: Duration) -> StdDuration {
    StdDuration::from_micros(d.total_micros())
}

impl Net {
    /// One machine: a stack on `nic`, configured by `config` (a zero MAC takes the NIC's),
    /// driven on `clock`.
    pub fn new(nic: impl Nic + Send + 'static, config: Config, clock: impl DriverClock) -> Net {
        let nic: DynNic = Box::new(nic);
        Net::group(vec![(nic, config)], clock)
            .pop()
            .expect("one machine")
    }

    /// Several machines driven together (one per `(nic, config)`), e.g. the two ends of an
    /// in-memory link: a blocking call on any of them drives all of them. Returns one `Net`
    /// per machine, in order.
    pub fn group(machines: Vec<(DynNic, Config)>, clock: impl DriverClock) -> Vec<Net> {
        let now = clock.now();
        let hosts: Vec<Host<DynNic>> = machines
            .into_iter()
            .map(|(nic, config)| Host::new(nic, config, now))
            .collect();
        let n = hosts.len();
        let shared = Arc::new(Shared {
            core: Mutex::new(Core::new(hosts, now)),
            cond: Condvar::new(),
            clock: Box::new(clock),
            io: Mutex::new(None),
            waker: OnceLock::new(),
            threaded: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            delivering: AtomicBool::new(false),
        });
        (0..n)
            .map(|host| Net {
                shared: shared.clone(),
                host,
            })
            .collect()
    }

    /// Two machines configured by `a` and `b` over one in-memory link, on a fresh
    /// [`VirtualClock`]: the deterministic setup of the tests and examples.
    pub fn memory_pair(a: Config, b: Config, link: LinkConfig) -> (Net, Net) {
        Net::memory_pair_with_clock(a, b, link, VirtualClock::new())
    }

    /// [`Net::memory_pair`] on a clock of your choice (the [`SystemClock`](crate::SystemClock)
    /// for the threaded model).
    pub fn memory_pair_with_clock(
        a: Config,
        b: Config,
        link: LinkConfig,
        clock: impl DriverClock,
    ) -> (Net, Net) {
        let (na, nb) = MemoryLink::pair(link);
        let mut nets = Net::group(vec![(Box::new(na), a), (Box::new(nb), b)], clock);
        let b = nets.pop().expect("two");
        let a = nets.pop().expect("two");
        (a, b)
    }

    /// This machine's index in its group.
    pub fn host_index(&self) -> usize {
        self.host
    }

    /// This machine's IPv4 address.
    pub fn addr(&self) -> Ipv4Addr {
        self.with_stack(|s| s.config().addr)
    }

    /// The clock's current time.
    pub fn now(&self) -> Instant {
        self.shared.clock.now()
    }

    /// Whether two handles drive the same group (the same lock).
    pub fn same_group(&self, other: &Net) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }

    /// Runs `f` on this machine's stack (for introspection: counters, `tcp().info(h)`...),
    /// without driving.
    pub fn with_stack<T>(&self, f: impl FnOnce(&mut Stack) -> T) -> T {
        self.with_raw(|core, p| f(core.stack(p)))
    }

    /// The work counters of this machine's multiplexing and dispatch.
    pub fn work(&self) -> Work {
        self.with_raw(|core, p| core.procs[p].work)
    }

    /// A snapshot of this machine's stack counters (`nstat`-like, with drop reasons).
    pub fn counters(&self) -> ringstack_stack::Counters {
        self.with_stack(|s| s.counters().clone())
    }

    /// This machine's copy counters: the bytes moved across each boundary of a frame's
    /// journey (see [`Copies`](crate::zero_copy::Copies)). Subtract an earlier snapshot with
    /// [`Copies::since`](crate::zero_copy::Copies::since) to measure one transfer.
    pub fn copies(&self) -> crate::zero_copy::Copies {
        self.with_stack(|s| crate::zero_copy::Copies::from_counters(s.counters()))
    }

    /// Resets this machine's work counters to zero.
    pub fn reset_work(&self) {
        self.with_raw(|core, p| core.procs[p].work = Work::default());
    }

    /// Number of open descriptors of this machine.
    pub fn open_fds(&self) -> usize {
        self.with_raw(|core, p| core.procs[p].files.len())
    }

    /// What descriptor `fd` is ready for now (`None` if not open), without driving.
    pub fn readiness(&self, fd: crate::Fd) -> Option<crate::Events> {
        self.with_raw(|core, p| core.readiness(p, fd))
    }

    /// Drives once without waiting: frames, due timers, readiness dispatch, callbacks.
    pub fn poll(&self) -> io::Result<()> {
        self.call(|_, _| Ok(()))
    }

    /// Lets `d` pass while driving: on virtual time it jumps from deadline to deadline, on real
    /// time it sleeps on the NICs. Readiness callbacks run meanwhile.
    pub fn run_for(&self, d: StdDuration) -> io::Result<()> {
        match self.block(Some(d), |_, _| None::<io::Result<()>>) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            r => r,
        }
    }

    /// Drives until `done()` is true (checked after each drive, without the lock held) or
    /// `timeout` passes; returns whether `done()` became true.
    pub fn run_until(
        &self,
        timeout: StdDuration,
        mut done: impl FnMut() -> bool,
    ) -> io::Result<bool> {
        let deadline = self.now() + to_stack(timeout);
        loop {
            self.poll()?;
            if done() {
                return Ok(true);
            }
            let now = self.now();
            if now >= deadline {
                return Ok(false);
            }
            // One step: until the next deadline (or the timeout).
            let step = to_std(deadline - now);
            match self.block(Some(step), |core, _| (core.now > now).then_some(Ok(()))) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::TimedOut => return Ok(done()),
                Err(e) => return Err(e),
            }
        }
    }

    // ----- the "system call" layer used by the socket types -----

    pub(crate) fn lock(&self) -> MutexGuard<'_, Core> {
        // A panic in another thread while holding the lock leaves consistent-enough state for
        // introspection; keep going.
        self.shared
            .core
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn threaded(&self) -> bool {
        self.shared.threaded.load(Ordering::SeqCst)
    }

    /// Runs `f` with the lock held and no driving (introspection, bookkeeping).
    pub(crate) fn with_raw<T>(&self, f: impl FnOnce(&mut Core, usize) -> T) -> T {
        f(&mut self.lock(), self.host)
    }

    /// A non-blocking call: drive, `f`, drive (push out what `f` produced), then run the
    /// callbacks that became due. In the threaded model: `f`, then kick the driver.
    pub(crate) fn call<T>(
        &self,
        f: impl FnOnce(&mut Core, usize) -> io::Result<T>,
    ) -> io::Result<T> {
        if self.threaded() {
            let r = f(&mut self.lock(), self.host);
            self.kick();
            return r;
        }
        let r = {
            let mut core = self.lock();
            core.drive(self.now())?;
            let r = f(&mut core, self.host);
            core.drive(self.now())?;
            r
        };
        self.deliver_signals();
        r
    }

    /// A blocking call: repeats `f` (which returns `None` while it would block) until it
    /// completes or `timeout` passes (`None` = no timeout, `Some(0)` = try once). On timeout
    /// returns `WouldBlock` (`EAGAIN`, as `SO_RCVTIMEO` does); callers remap where the
    /// system call reports something else (connect: `TimedOut`).
    pub(crate) fn block<T>(
        &self,
        timeout: Option<StdDuration>,
        mut f: impl FnMut(&mut Core, usize) -> Option<io::Result<T>>,
    ) -> io::Result<T> {
        let deadline = timeout.map(|t| self.now() + to_stack(t));
        let expired = || {
            io::Error::new(
                io::ErrorKind::WouldBlock,
                "operation would block (EAGAIN): not ready before the timeout",
            )
        };
        if self.threaded() {
            return self.block_threaded(deadline, f, expired);
        }
        loop {
            let wake_at = {
                let mut core = self.lock();
                let now = self.now();
                core.drive(now)?;
                if let Some(r) = f(&mut core, self.host) {
                    core.drive(self.now())?;
                    drop(core);
                    self.deliver_signals();
                    return r;
                }
                if deadline.is_some_and(|d| now >= d) {
                    drop(core);
                    self.deliver_signals();
                    return Err(expired());
                }
                match (core.poll_at(), deadline) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                }
            };
            self.deliver_signals();
            self.sleep_until(wake_at)?;
        }
    }

    fn block_threaded<T>(
        &self,
        deadline: Option<Instant>,
        mut f: impl FnMut(&mut Core, usize) -> Option<io::Result<T>>,
        expired: impl Fn() -> io::Error,
    ) -> io::Result<T> {
        let mut core = self.lock();
        let mut kicked = false;
        loop {
            if let Some(r) = f(&mut core, self.host) {
                drop(core);
                self.kick();
                return r;
            }
            if !kicked {
                // The attempt may have queued work (a SYN, a window update): let the driver see it.
                self.kick();
                kicked = true;
            }
            let now = self.now();
            if deadline.is_some_and(|d| now >= d) {
                return Err(expired());
            }
            let wait = deadline.map_or(StdDuration::from_secs(1), |d| to_std(d - now));
            core = self
                .shared
                .cond
                .wait_timeout(core, wait)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Lets time pass until `wake_at` (inline model).
    fn sleep_until(&self, wake_at: Option<Instant>) -> io::Result<()> {
        let clock = &self.shared.clock;
        let now = clock.now();
        if clock.is_virtual() {
            let t = wake_at.ok_or_else(error::idle_forever)?;
            clock.advance_to(if t > now {
                t
            } else {
                now + Duration::from_micros(1)
            });
            return Ok(());
        }
        let timeout = wake_at.map(|t| {
            if t > now {
                to_std(t - now)
            } else {
                StdDuration::ZERO
            }
        });
        self.io_wait(timeout, false)
    }

    /// Sleeps on the NICs' descriptors (and the waker) for at most `timeout`.
    fn io_wait(&self, timeout: Option<StdDuration>, threaded: bool) -> io::Result<()> {
        let mut guard = self.shared.io.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
            *guard = Some(self.make_io()?);
        }
        let io = guard.as_mut().expect("created above");
        if !io.has_fds && !threaded {
            // Nothing outside this thread can wake us: a plain sleep until the deadline.
            let t = timeout.ok_or_else(error::idle_forever)?;
            drop(guard);
            std::thread::sleep(t);
            return Ok(());
        }
        let t = timeout.map_or(MAX_REAL_SLEEP, |t| t.min(MAX_REAL_SLEEP));
        match io.poll.poll(&mut io.events, Some(t)) {
            Err(e) if e.kind() != io::ErrorKind::Interrupted => Err(e),
            _ => Ok(()),
        }
    }

    fn make_io(&self) -> io::Result<IoWait> {
        let poll = mio::Poll::new()?;
        let fds: Vec<_> = self.with_raw(|core, _| {
            core.hosts
                .iter()
                .filter_map(|h| h.nic().wait_fd())
                .collect()
        });
        for (i, fd) in fds.iter().enumerate() {
            poll.registry().register(
                &mut mio::unix::SourceFd(fd),
                mio::Token(i),
                mio::Interest::READABLE,
            )?;
        }
        if self.shared.waker.get().is_none() {
            let w = mio::Waker::new(poll.registry(), WAKE_TOKEN)?;
            let _ = self.shared.waker.set(w);
        }
        Ok(IoWait {
            poll,
            events: mio::Events::with_capacity(16),
            has_fds: !fds.is_empty(),
        })
    }

    /// Wakes the driver thread (threaded model) so it drives now.
    fn kick(&self) {
        if let Some(w) = self.shared.waker.get() {
            let _ = w.wake();
        }
    }

    /// Runs queued readiness callbacks, outside the lock. Only one thread delivers at a time;
    /// a nested call (a callback using the socket API) leaves new ones to the outer loop.
    pub(crate) fn deliver_signals(&self) {
        if self.shared.delivering.swap(true, Ordering::SeqCst) {
            return;
        }
        loop {
            let batch = std::mem::take(&mut self.lock().signals);
            if batch.is_empty() {
                break;
            }
            for s in batch {
                s.run();
            }
        }
        self.shared.delivering.store(false, Ordering::SeqCst);
    }

    // ----- the threaded model -----

    /// Starts the driver thread: from now on it alone drives the group's NICs, timers and
    /// readiness callbacks, and blocking calls on any thread sleep on a condition variable
    /// until it reports progress. Needs a real clock (`Unsupported` on virtual time, where
    /// "everyone waits" has no meaning across threads). Stop it by dropping the [`Driver`].
    pub fn spawn_driver(&self) -> io::Result<Driver> {
        if self.shared.clock.is_virtual() {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "the threaded model needs a real clock (SystemClock): virtual time only moves \
                 when the single thread waits",
            ));
        }
        if self.shared.threaded.swap(true, Ordering::SeqCst) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "a driver thread is already running for this group",
            ));
        }
        {
            let mut io = self.shared.io.lock().unwrap_or_else(|p| p.into_inner());
            if io.is_none() {
                *io = Some(self.make_io()?);
            }
        }
        self.shared.stop.store(false, Ordering::SeqCst);
        let net = self.clone();
        let handle = std::thread::Builder::new()
            .name("ringstack-driver".into())
            .spawn(move || net.driver_loop())?;
        Ok(Driver {
            net: self.clone(),
            handle: Some(handle),
        })
    }

    fn driver_loop(&self) -> io::Result<()> {
        while !self.shared.stop.load(Ordering::SeqCst) {
            let wake_at = {
                let mut core = self.lock();
                let now = self.now();
                let r = core.drive(now);
                self.shared.cond.notify_all();
                r?;
                core.poll_at()
            };
            self.deliver_signals();
            let now = self.now();
            let timeout = wake_at.map(|t| {
                if t > now {
                    to_std(t - now)
                } else {
                    StdDuration::ZERO
                }
            });
            self.io_wait(timeout, true)?;
        }
        Ok(())
    }
}

/// The driver thread of the threaded model; dropping it stops the thread (blocking calls then
/// drive inline again).
pub struct Driver {
    net: Net,
    handle: Option<JoinHandle<io::Result<()>>>,
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver")
            .field("running", &self.handle.is_some())
            .finish()
    }
}

impl Driver {
    /// Stops the thread and returns what it ended with (a NIC error, or `Ok`).
    pub fn stop(mut self) -> io::Result<()> {
        self.stop_inner()
    }

    fn stop_inner(&mut self) -> io::Result<()> {
        let Some(h) = self.handle.take() else {
            return Ok(());
        };
        self.net.shared.stop.store(true, Ordering::SeqCst);
        self.net.kick();
        let r = h
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the driver thread panicked")));
        self.net.shared.threaded.store(false, Ordering::SeqCst);
        self.net.shared.cond.notify_all();
        r
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.stop_inner();
    }
}
