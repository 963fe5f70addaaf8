//! [`ImpairNic`]: seeded impairment (loss, duplication, reordering, corruption, delay, jitter,
//! bandwidth cap) for any NIC — the `--impair` of `ringstack serve`, for kernels without netem.
//!
//! It reuses the in-memory link: every frame received from the real NIC crosses one direction of
//! a private [`MemoryLink`] before the stack sees it, and every frame the stack transmits
//! crosses the other direction before it reaches the real NIC. So the impairment logic (and its
//! reproducibility by seed) is exactly the simulation's, at the cost of one copy per frame.

use std::os::fd::RawFd;

use smoltcp::time::Instant;

use crate::memory::{Impairment, LinkConfig, MemoryLink, MemoryNic};
use crate::{Nic, NicError, NicInfo, NicStats};

/// A NIC whose traffic, both ways, goes through an impaired in-memory link.
pub struct ImpairNic<N: Nic> {
    inner: N,
    /// Our side of the link: frames from the real NIC are sent here (towards `stack_end`), and
    /// frames the stack sent arrive here (to go out on the real NIC).
    wire_end: MemoryNic,
    /// The stack's side of the link.
    stack_end: MemoryNic,
}

impl<N: Nic> ImpairNic<N> {
    /// Wraps `inner`: `rx` impairs what the stack receives, `tx` what it sends.
    pub fn new(inner: N, rx: Impairment, tx: Impairment, seed: u64) -> Self {
        let info = inner.info();
        let (wire_end, stack_end) = MemoryLink::pair(LinkConfig {
            a_to_b: rx,
            b_to_a: tx,
            seed,
            mtu: info.mtu,
            ..LinkConfig::default()
        });
        ImpairNic {
            inner,
            wire_end,
            stack_end,
        }
    }

    /// The wrapped NIC.
    pub fn get_ref(&self) -> &N {
        &self.inner
    }

    /// Moves frames whose time has come across the link, both ways.
    fn pump(&mut self, now: Instant) -> Result<(), NicError> {
        let (wire, inner) = (&mut self.wire_end, &mut self.inner);
        inner.receive(now, usize::MAX, &mut |frame| {
            // A full link queue counts as a drop in the link's own stats.
            let _ = wire.send(now, frame);
        })?;
        let mut out = Vec::new();
        self.wire_end
            .receive(now, usize::MAX, &mut |frame| out.push(frame.to_vec()))?;
        let any = !out.is_empty();
        for frame in out {
            self.inner.send(now, &frame)?;
        }
        if any {
            self.inner.flush(now)?;
        }
        Ok(())
    }
}

impl<N: Nic> Nic for ImpairNic<N> {
    fn info(&self) -> NicInfo {
        self.inner.info()
    }

    fn receive(
        &mut self,
        now: Instant,
        budget: usize,
        sink: &mut dyn FnMut(&[u8]),
    ) -> Result<usize, NicError> {
        self.pump(now)?;
        self.stack_end.receive(now, budget, sink)
    }

    fn transmit(
        &mut self,
        now: Instant,
        fill: &mut dyn FnMut(&mut [u8]) -> usize,
    ) -> Result<usize, NicError> {
        self.stack_end.transmit(now, fill)
    }

    fn flush(&mut self, now: Instant) -> Result<(), NicError> {
        self.pump(now)
    }

    fn poll_at(&self) -> Option<Instant> {
        match (self.stack_end.poll_at(), self.wire_end.poll_at()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn wait_fd(&self) -> Option<RawFd> {
        self.inner.wait_fd()
    }

    /// The real NIC's answer (frames the impairment holds back are reported by `poll_at`).
    fn rx_ready(&self) -> Option<bool> {
        self.inner.rx_ready()
    }

    fn wait_readable(&self, timeout: std::time::Duration) -> Result<bool, NicError> {
        self.inner.wait_readable(timeout)
    }

    /// The real NIC's counters, plus the link's impairment counts (`lost`, `duplicated`...)
    /// for both directions.
    fn stats(&self) -> NicStats {
        let mut s = self.inner.stats();
        for l in [self.wire_end.stats(), self.stack_end.stats()] {
            s.lost += l.lost;
            s.duplicated += l.duplicated;
            s.reordered += l.reordered;
            s.corrupted += l.corrupted;
            s.delayed += l.delayed;
            s.queue_drops += l.queue_drops;
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_cross_both_ways_and_loss_is_applied() {
        let (mut peer, real) = MemoryLink::pair(LinkConfig::default());
        let lossy: Impairment = "loss=50%".parse().unwrap();
        let mut nic = ImpairNic::new(real, lossy.clone(), lossy, 7);
        let t = Instant::from_millis(0);
        for i in 0..200u8 {
            peer.send(t, &[i; 60]).unwrap();
            nic.send(t, &[i; 60]).unwrap();
        }
        nic.flush(t).unwrap();
        let mut got = 0;
        nic.receive(t, usize::MAX, &mut |_| got += 1).unwrap();
        let mut sent = 0;
        peer.receive(t, usize::MAX, &mut |_| sent += 1).unwrap();
        assert!((60..140).contains(&got), "rx got {got} of 200");
        assert!((60..140).contains(&sent), "tx delivered {sent} of 200");
        assert_eq!(nic.stats().lost, (400 - got - sent) as u64);
    }
}
