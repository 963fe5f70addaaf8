//! The host: every layer's state in one place, so that each layer's code (in its own file, as an
//! `impl Interface` block) can hand a packet to the next layer with a plain method call.
//!
//! Counters, the tracer and the readiness queue live outside, in [`crate::Stack`], and reach the
//! layers through [`Cx`](crate::cx::Cx) — that split is what lets a layer borrow both at once.

use std::collections::VecDeque;

use crate::arp::ArpCache;
use crate::config::Config;
use crate::icmp::{PingTable, TokenBucket};
use crate::ipv4::fragment::Reassembler;
use crate::tcp::TcpLayer;
use crate::time::Instant;
use crate::udp::UdpTable;

/// Frames built and ready for the NIC, with a pool of spare buffers so that steady-state
/// transmission does not allocate.
#[derive(Debug)]
pub(crate) struct TxQueue {
    frames: VecDeque<Vec<u8>>,
    pool: Vec<Vec<u8>>,
    limit: usize,
}

impl TxQueue {
    pub(crate) fn new(limit: usize) -> Self {
        TxQueue {
            frames: VecDeque::new(),
            pool: Vec::new(),
            limit,
        }
    }

    /// An empty buffer, recycled when possible.
    pub(crate) fn buffer(&mut self) -> Vec<u8> {
        let mut b = self.pool.pop().unwrap_or_default();
        b.clear();
        b
    }

    /// Returns a buffer to the pool.
    pub(crate) fn recycle(&mut self, b: Vec<u8>) {
        if self.pool.len() < 256 {
            self.pool.push(b);
        }
    }

    /// Queues a finished frame; `false` (and the buffer recycled) when the queue is full.
    pub(crate) fn push(&mut self, frame: Vec<u8>) -> bool {
        if self.frames.len() >= self.limit {
            self.recycle(frame);
            return false;
        }
        self.frames.push_back(frame);
        true
    }

    pub(crate) fn pop(&mut self) -> Option<Vec<u8>> {
        self.frames.pop_front()
    }

    pub(crate) fn len(&self) -> usize {
        self.frames.len()
    }
}

/// All per-layer state of one host.
#[derive(Debug)]
pub(crate) struct Interface {
    pub(crate) config: Config,
    pub(crate) arp: ArpCache,
    pub(crate) reassembler: Reassembler,
    pub(crate) tx: TxQueue,
    pub(crate) ip_ident: u16,
    pub(crate) icmp_limiter: TokenBucket,
    pub(crate) udp: UdpTable,
    pub(crate) ping: PingTable,
    pub(crate) tcp: TcpLayer,
    /// Scratch buffer for reassembled datagrams and ICMP quotes (reused, never shrunk).
    pub(crate) scratch: Vec<u8>,
}

impl Interface {
    pub(crate) fn new(mut config: Config, now: Instant) -> Self {
        // RFC 791: every internet module must handle 68-byte datagrams; below that we could not
        // even fragment.
        config.mtu = config.mtu.max(68);
        let mut tcp_config = config.tcp.clone();
        tcp_config.mtu = config.mtu;
        tcp_config.seed ^= config.seed;
        Interface {
            arp: ArpCache::new(config.arp.clone(), config.seed),
            reassembler: Reassembler::new(config.reassembly.clone()),
            tx: TxQueue::new(4096),
            // Distinct per host even with one seed, so two simulated hosts never share ids.
            ip_ident: ((config.seed ^ u32::from(config.addr) as u64)
                .wrapping_mul(0x9e37_79b9_7f4a_7c15)
                >> 48) as u16,
            icmp_limiter: TokenBucket::new(
                config.icmp_errors_per_sec,
                config.icmp_error_burst,
                now,
            ),
            udp: UdpTable::new(config.seed),
            ping: PingTable::default(),
            tcp: TcpLayer::new(tcp_config),
            scratch: Vec::new(),
            config,
        }
    }

    /// Whether `addr` is the directed broadcast of our subnet or the limited broadcast.
    pub(crate) fn is_broadcast(&self, addr: core::net::Ipv4Addr) -> bool {
        addr.is_broadcast() || addr == self.subnet_broadcast()
    }

    pub(crate) fn subnet_broadcast(&self) -> core::net::Ipv4Addr {
        let mask = self.netmask();
        core::net::Ipv4Addr::from(u32::from(self.config.addr) | !mask)
    }

    pub(crate) fn netmask(&self) -> u32 {
        match self.config.prefix_len {
            0 => 0,
            p => u32::MAX << (32 - p.min(32) as u32),
        }
    }

    /// Whether `addr` is on our subnet (reachable without a gateway).
    pub(crate) fn on_link(&self, addr: core::net::Ipv4Addr) -> bool {
        let mask = self.netmask();
        u32::from(addr) & mask == u32::from(self.config.addr) & mask
    }
}
