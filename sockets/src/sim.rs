//! Deterministic simulation: several hosts (usually over an in-memory link) stepped on one
//! virtual clock. When nobody has work, time jumps to the earliest deadline, so a simulated
//! minute of retransmission timers takes microseconds — and the same seed always gives the same
//! run.

use ringstack_nic::{Nic, NicError};
use ringstack_stack::time::{Duration, Instant};

use crate::host::Host;

/// A virtual clock and the stepping logic.
#[derive(Debug, Clone, Copy)]
pub struct Sim {
    /// The current virtual time.
    pub now: Instant,
}

impl Default for Sim {
    fn default() -> Self {
        Sim {
            now: Instant::from_millis(0),
        }
    }
}

impl Sim {
    /// A clock starting at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Polls every host until none moves a frame at the current instant (bounded to 10,000
    /// rounds as a guard against livelock). Returns whether anything happened.
    pub fn settle<N: Nic>(&mut self, hosts: &mut [&mut Host<N>]) -> Result<bool, NicError> {
        let mut any = false;
        for _ in 0..10_000 {
            let mut moved = false;
            for h in hosts.iter_mut() {
                moved |= h.poll(self.now)?;
            }
            if !moved {
                break;
            }
            any = true;
        }
        Ok(any)
    }

    /// Settles, then advances the clock to the earliest deadline of any host (at most `limit`
    /// ahead). Returns `false` when no host has any deadline (the network is idle for good).
    pub fn step<N: Nic>(
        &mut self,
        hosts: &mut [&mut Host<N>],
        limit: Duration,
    ) -> Result<bool, NicError> {
        self.settle(hosts)?;
        let next = hosts.iter().filter_map(|h| h.poll_at()).min();
        match next {
            Some(t) => {
                let t = t.min(self.now + limit);
                // Deadlines in the past are served at the next instant.
                self.now = if t > self.now {
                    t
                } else {
                    self.now + Duration::from_micros(1)
                };
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Steps until `done(now, hosts)` returns true or `timeout` of virtual time has passed. Returns whether
    /// `done` became true.
    pub fn run_until<N: Nic>(
        &mut self,
        hosts: &mut [&mut Host<N>],
        timeout: Duration,
        mut done: impl FnMut(Instant, &mut [&mut Host<N>]) -> bool,
    ) -> Result<bool, NicError> {
        let deadline = self.now + timeout;
        loop {
            self.settle(hosts)?;
            if done(self.now, hosts) {
                return Ok(true);
            }
            if self.now >= deadline {
                return Ok(false);
            }
            if !self.step(hosts, deadline - self.now)? {
                // Idle: nothing will ever happen by itself.
                return Ok(done(self.now, hosts));
            }
        }
    }
}
