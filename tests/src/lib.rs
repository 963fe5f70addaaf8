//! # ringstack-tests: end-to-end tests
//!
//! Shared helpers for the tests in `tests/tests/`: two hosts (A = 198.18.0.1, B = 198.18.0.2)
//! over an in-memory Ethernet link with seeded impairment, stepped on one virtual clock.
#![warn(missing_docs)]
#![deny(unsafe_code)]

pub mod io_models;
pub mod script;

use std::net::Ipv4Addr;

use ringstack_nic::{Impairment, LinkConfig, MemoryLink, MemoryNic};
use ringstack_sockets::sim::Sim;
use ringstack_sockets::Host;
use ringstack_stack::Config;

/// Host A's address.
pub const A: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
/// Host B's address.
pub const B: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);

/// Two hosts on one in-memory link and the virtual clock driving them.
pub struct Pair {
    /// The clock.
    pub sim: Sim,
    /// Host A (198.18.0.1).
    pub a: Host<MemoryNic>,
    /// Host B (198.18.0.2).
    pub b: Host<MemoryNic>,
}

impl Pair {
    /// Two hosts over a link with `impairment` in both directions, seeded with `seed`, each
    /// stack configured by `tweak` (called with the default config of each host).
    pub fn new(impairment: Impairment, seed: u64, tweak: impl Fn(&mut Config)) -> Pair {
        let mut link = LinkConfig::impaired(impairment);
        link.seed = seed;
        let (na, nb) = MemoryLink::pair(link);
        let sim = Sim::new();
        let mut ca = Config::new([0; 6], A, 24);
        let mut cb = Config::new([0; 6], B, 24);
        ca.seed = seed;
        cb.seed = seed.wrapping_add(1);
        tweak(&mut ca);
        tweak(&mut cb);
        Pair {
            a: Host::new(na, ca, sim.now),
            b: Host::new(nb, cb, sim.now),
            sim,
        }
    }

    /// A clean link (no impairment).
    pub fn clean() -> Pair {
        Pair::new(Impairment::none(), 1, |_| {})
    }

    /// Steps the simulation until `done(now, a, b)` or `timeout` of virtual time.
    pub fn run_until(
        &mut self,
        timeout: ringstack_stack::Duration,
        mut done: impl FnMut(
            ringstack_stack::Instant,
            &mut Host<MemoryNic>,
            &mut Host<MemoryNic>,
        ) -> bool,
    ) -> bool {
        let (a, b) = (&mut self.a, &mut self.b);
        self.sim
            .run_until(&mut [a, b], timeout, |now, hosts| {
                let (x, y) = hosts.split_at_mut(1);
                done(now, x[0], y[0])
            })
            .expect("in-memory link never fails")
    }

    /// Lets `d` of virtual time pass, serving every timer and frame.
    pub fn advance(&mut self, d: ringstack_stack::Duration) {
        self.run_until(d, |_, _, _| false);
    }
}
