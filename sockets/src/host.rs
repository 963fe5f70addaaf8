//! [`Host`]: one stack on one NIC.

use ringstack_nic::{Nic, NicError};
use ringstack_stack::time::Instant;
use ringstack_stack::{Config, Stack};

/// Frames taken from the NIC per [`Host::poll`] (one "NAPI budget").
const RX_BUDGET: usize = 64;

/// A stack bound to a NIC. Time is passed to [`Host::poll`], so the host runs equally on a real
/// clock or a virtual one.
pub struct Host<N: Nic> {
    nic: N,
    stack: Stack,
}

impl<N: Nic> Host<N> {
    /// A host on `nic`. If `config.mac` is all zeros, the NIC's own MAC is used; the stack's MTU
    /// is capped at the NIC's.
    pub fn new(nic: N, mut config: Config, now: Instant) -> Self {
        let info = nic.info();
        if config.mac == [0; 6] {
            if let Some(mac) = info.mac {
                config.mac = mac;
            }
        }
        config.mtu = config.mtu.min(info.mtu);
        Host {
            stack: Stack::new(config, now),
            nic,
        }
    }

    /// The protocol stack (for the socket API and introspection).
    pub fn stack(&mut self) -> &mut Stack {
        &mut self.stack
    }

    /// The protocol stack, read-only.
    pub fn stack_ref(&self) -> &Stack {
        &self.stack
    }

    /// The NIC.
    pub fn nic(&self) -> &N {
        &self.nic
    }

    /// The NIC, mutably (to change impairment in a simulation, say).
    pub fn nic_mut(&mut self) -> &mut N {
        &mut self.nic
    }

    /// The NIC and the stack at once, for a driver running its own loop (e.g. one that adds
    /// the NIC's side of each frame to the trace: `ringstack trace`, `serve --trace`).
    pub fn parts_mut(&mut self) -> (&mut N, &mut Stack) {
        (&mut self.nic, &mut self.stack)
    }

    /// One round of the driver loop: receive a batch of frames, run due timers, transmit every
    /// frame the stack has, and kick the NIC once. Returns whether any frame moved.
    pub fn poll(&mut self, now: Instant) -> Result<bool, NicError> {
        let stack = &mut self.stack;
        let received = self
            .nic
            .receive(now, RX_BUDGET, &mut |frame| stack.handle_frame(now, frame))?;
        if stack.poll_at().is_some_and(|t| t <= now) {
            stack.handle_timeout(now);
        }
        let mut sent = 0;
        loop {
            let len = self
                .nic
                .transmit(now, &mut |slot| stack.poll_transmit(now, slot).unwrap_or(0))?;
            if len == 0 {
                break;
            }
            sent += 1;
        }
        if sent > 0 {
            self.nic.flush(now)?;
        }
        Ok(received > 0 || sent > 0)
    }

    /// The earliest time this host has something to do without new input: a stack timer or a
    /// frame the NIC will deliver later.
    pub fn poll_at(&self) -> Option<Instant> {
        match (self.stack.poll_at(), self.nic.poll_at()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}
