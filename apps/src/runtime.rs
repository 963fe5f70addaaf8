//! The real-time driver: a stack on a real NIC, a monotonic clock, and a loop that receives,
//! runs timers, lets the application act, transmits, and sleeps on the NIC's descriptor (the
//! "interrupt") until the next frame or timer.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration as StdDuration;

use anyhow::Result;
use ringstack_nic::Nic;
use ringstack_sockets::{Clock, Host, SystemClock};
use ringstack_stack::{Config, Instant, Stack};

/// Longest sleep between two looks at the stack (bounds timer lateness without an fd).
const MAX_SLEEP: StdDuration = StdDuration::from_millis(5);

/// A stack on a NIC, driven on wall-clock time until SIGINT/SIGTERM.
pub struct Runtime {
    host: Host<Box<dyn Nic>>,
    clock: SystemClock,
    stop: Arc<AtomicBool>,
    busy_poll: bool,
}

impl Runtime {
    /// Builds the stack on `nic` and installs the SIGINT/SIGTERM handlers.
    pub fn new(nic: Box<dyn Nic>, config: Config) -> Result<Runtime> {
        let clock = SystemClock::new();
        let stop = Arc::new(AtomicBool::new(false));
        for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            signal_hook::flag::register(sig, Arc::clone(&stop))?;
        }
        Ok(Runtime {
            host: Host::new(nic, config, clock.now()),
            clock,
            stop,
            busy_poll: false,
        })
    }

    /// Spin instead of sleeping on the NIC's descriptor between rounds.
    pub fn set_busy_poll(&mut self, on: bool) {
        self.busy_poll = on;
    }

    /// The stack.
    pub fn stack(&mut self) -> &mut Stack {
        self.host.stack()
    }

    /// The NIC.
    pub fn nic(&self) -> &dyn Nic {
        &**self.host.nic()
    }

    /// The current time.
    pub fn now(&self) -> Instant {
        self.clock.now()
    }

    /// Runs until a signal arrives or `app` returns `false`. `app(now, stack)` is called every
    /// round and returns whether it wants to go on; the driver sleeps only when a round moved
    /// no frame.
    pub fn run(&mut self, mut app: impl FnMut(Instant, &mut Stack) -> Result<bool>) -> Result<()> {
        while !self.stop.load(Ordering::Relaxed) {
            let now = self.clock.now();
            let mut busy = self.host.poll(now)?;
            if !app(now, self.host.stack())? {
                // One last round so that what the app just queued goes out.
                self.host.poll(self.clock.now())?;
                break;
            }
            busy |= self.host.poll(now)?;
            if busy || self.busy_poll {
                continue;
            }
            let now = self.clock.now();
            let sleep = match self.host.poll_at() {
                Some(t) if t <= now => continue,
                Some(t) => StdDuration::from_micros((t - now).total_micros()).min(MAX_SLEEP),
                None => MAX_SLEEP,
            };
            if self.host.nic().wait_fd().is_some() {
                self.host.nic().wait_readable(sleep)?;
            } else {
                std::thread::sleep(sleep);
            }
        }
        Ok(())
    }

    /// Whether a stop signal arrived.
    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}
