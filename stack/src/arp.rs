//! ARP (RFC 826) for IPv4 over Ethernet: answer requests for our address, learn neighbours,
//! resolve next hops while holding a bounded queue of packets for each, retry, and expire entries.
//!
//! The cache is deliberately simple — an entry is either `Reachable` (with an expiry time) or
//! `Incomplete` (resolving, with the packets waiting for it) — and every bound is configured in
//! [`ArpConfig`]. Expired entries are removed; the next packet to that neighbour re-resolves it.

use core::net::Ipv4Addr;
use std::collections::VecDeque;

use smoltcp::wire::{ArpHardware, ArpOperation, ArpPacket, EthernetProtocol};

use crate::config::{seeded_map, ArpConfig, Mac, SeededMap};
use crate::counters::{Counter, DropReason};
use crate::cx::Cx;
use crate::ethernet::{self, fmt_mac, BROADCAST};
use crate::interface::Interface;
use crate::time::Instant;
use crate::trace::{Direction, Layer, Verdict};

/// Length of an ARP packet for Ethernet/IPv4.
pub const PACKET_LEN: usize = 28;

/// What the cache knows about one neighbour.
#[derive(Debug)]
enum Neighbor {
    /// Resolved: frames can go straight out.
    Reachable { mac: Mac, expires_at: Instant },
    /// Resolving: requests sent so far, when to send the next, and frames waiting (their
    /// destination MAC is filled in when the reply arrives).
    Incomplete {
        requests: u32,
        next_request: Instant,
        pending: VecDeque<Vec<u8>>,
    },
}

/// A row of [`ArpCache::entries`], for display (like `ip neigh`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArpEntry {
    /// The neighbour's IPv4 address.
    pub ip: Ipv4Addr,
    /// Its MAC address, once resolved.
    pub mac: Option<Mac>,
    /// Packets waiting for resolution.
    pub pending: usize,
}

/// The neighbour cache.
#[derive(Debug)]
pub struct ArpCache {
    config: ArpConfig,
    entries: SeededMap<Ipv4Addr, Neighbor>,
}

/// What to do after asking the cache about a next hop.
pub(crate) enum Resolution {
    /// Send now to this MAC.
    Ready(Mac),
    /// The frame was queued; send an ARP request now if `request` is set.
    Queued { request: bool },
    /// The frame could not be queued.
    Dropped(DropReason),
}

impl ArpCache {
    /// An empty cache; `seed` keys its table.
    pub fn new(config: ArpConfig, seed: u64) -> Self {
        ArpCache {
            config,
            entries: seeded_map(seed ^ 0x6172_7000),
        }
    }

    /// The MAC of `ip` if it is resolved and not expired.
    pub fn lookup(&self, ip: Ipv4Addr, now: Instant) -> Option<Mac> {
        match self.entries.get(&ip) {
            Some(Neighbor::Reachable { mac, expires_at }) if *expires_at > now => Some(*mac),
            _ => None,
        }
    }

    /// Every entry, sorted by address.
    pub fn entries(&self) -> Vec<ArpEntry> {
        let mut v: Vec<ArpEntry> = self
            .entries
            .iter()
            .map(|(&ip, n)| match n {
                Neighbor::Reachable { mac, .. } => ArpEntry {
                    ip,
                    mac: Some(*mac),
                    pending: 0,
                },
                Neighbor::Incomplete { pending, .. } => ArpEntry {
                    ip,
                    mac: None,
                    pending: pending.len(),
                },
            })
            .collect();
        v.sort_by_key(|e| e.ip);
        v
    }

    /// Resolves `ip` for `frame` (an Ethernet frame whose destination MAC is still unset).
    fn resolve(
        &mut self,
        ip: Ipv4Addr,
        now: Instant,
        frame: Vec<u8>,
    ) -> (Resolution, Option<Vec<u8>>) {
        let len = self.entries.len();
        match self.entries.get_mut(&ip) {
            Some(Neighbor::Reachable { mac, expires_at }) if *expires_at > now => {
                (Resolution::Ready(*mac), Some(frame))
            }
            Some(Neighbor::Incomplete { pending, .. }) => {
                if pending.len() >= self.config.pending_per_neighbor {
                    return (Resolution::Dropped(DropReason::ArpPendingFull), Some(frame));
                }
                pending.push_back(frame);
                (Resolution::Queued { request: false }, None)
            }
            existing => {
                // Absent or expired: start resolving.
                if existing.is_none() && len >= self.config.max_entries && !self.evict_one(now) {
                    return (Resolution::Dropped(DropReason::ArpPendingFull), Some(frame));
                }
                let mut pending = VecDeque::new();
                pending.push_back(frame);
                self.entries.insert(
                    ip,
                    Neighbor::Incomplete {
                        requests: 1,
                        next_request: now + self.config.retry_interval,
                        pending,
                    },
                );
                (Resolution::Queued { request: true }, None)
            }
        }
    }

    /// Makes room by removing an expired or resolved entry (never one with waiting packets).
    fn evict_one(&mut self, now: Instant) -> bool {
        let victim = self
            .entries
            .iter()
            .filter_map(|(&ip, n)| match n {
                Neighbor::Reachable { expires_at, .. } => {
                    Some((*expires_at <= now, *expires_at, ip))
                }
                Neighbor::Incomplete { .. } => None,
            })
            .min_by_key(|&(expired, at, _)| (!expired, at))
            .map(|(_, _, ip)| ip);
        match victim {
            Some(ip) => {
                self.entries.remove(&ip);
                true
            }
            None => false,
        }
    }

    /// Records `ip` is at `mac`. Returns the frames that were waiting for it. Only creates a new
    /// entry when `create` (RFC 826: the merge step updates existing entries; only packets
    /// addressed to us add new ones).
    fn learn(
        &mut self,
        ip: Ipv4Addr,
        mac: Mac,
        now: Instant,
        create: bool,
    ) -> Option<VecDeque<Vec<u8>>> {
        let expires_at = now + self.config.cache_ttl;
        match self.entries.get_mut(&ip) {
            Some(entry) => {
                let old = core::mem::replace(entry, Neighbor::Reachable { mac, expires_at });
                match old {
                    Neighbor::Incomplete { pending, .. } => Some(pending),
                    Neighbor::Reachable { .. } => None,
                }
            }
            None if create => {
                if self.entries.len() >= self.config.max_entries && !self.evict_one(now) {
                    return None;
                }
                self.entries
                    .insert(ip, Neighbor::Reachable { mac, expires_at });
                None
            }
            None => None,
        }
    }

    /// The earliest time [`Interface::arp_timeout`] has work.
    pub fn poll_at(&self) -> Option<Instant> {
        self.entries
            .values()
            .map(|n| match n {
                Neighbor::Reachable { expires_at, .. } => *expires_at,
                Neighbor::Incomplete { next_request, .. } => *next_request,
            })
            .min()
    }
}

impl Interface {
    /// RFC 826 "Packet Reception": validate, merge the sender into the cache, answer requests for
    /// our address.
    pub(crate) fn arp_input(&mut self, cx: &mut Cx<'_>, eth_src: Mac, packet: &[u8]) {
        let len = packet.len();
        if len < 8 {
            return cx.drop(
                Direction::Rx,
                Layer::Arp,
                DropReason::ArpTruncated,
                len,
                String::new,
            );
        }
        let view = ArpPacket::new_unchecked(packet);
        if view.hardware_type() != ArpHardware::Ethernet
            || view.protocol_type() != EthernetProtocol::Ipv4
            || view.hardware_len() != 6
            || view.protocol_len() != 4
        {
            return cx.drop(
                Direction::Rx,
                Layer::Arp,
                DropReason::ArpUnsupported,
                len,
                || {
                    format!(
                        "htype {:?} ptype {:?}",
                        view.hardware_type(),
                        view.protocol_type()
                    )
                },
            );
        }
        if len < PACKET_LEN {
            return cx.drop(
                Direction::Rx,
                Layer::Arp,
                DropReason::ArpTruncated,
                len,
                String::new,
            );
        }
        let sha: Mac = view.source_hardware_addr().try_into().unwrap_or([0; 6]);
        let spa =
            Ipv4Addr::from(<[u8; 4]>::try_from(view.source_protocol_addr()).unwrap_or([0; 4]));
        let tpa =
            Ipv4Addr::from(<[u8; 4]>::try_from(view.target_protocol_addr()).unwrap_or([0; 4]));
        let op = view.operation();
        let summary = || match op {
            ArpOperation::Reply => format!("reply {spa} is-at {} (to {tpa})", fmt_mac(&sha)),
            _ => format!("request who-has {tpa} tell {spa} ({})", fmt_mac(&sha)),
        };
        match op {
            ArpOperation::Request => cx.inc(Counter::ArpInRequests),
            ArpOperation::Reply => cx.inc(Counter::ArpInReplies),
            _ => {
                return cx.drop(
                    Direction::Rx,
                    Layer::Arp,
                    DropReason::ArpBadOperation,
                    len,
                    summary,
                )
            }
        }
        let _ = eth_src;
        if sha == BROADCAST
            || sha[0] & 1 == 1
            || sha == self.config.mac
            || spa == self.config.addr
            || self.is_broadcast(spa)
            || spa.is_multicast()
        {
            return cx.drop(
                Direction::Rx,
                Layer::Arp,
                DropReason::ArpBadSender,
                len,
                summary,
            );
        }
        let for_us = tpa == self.config.addr;
        // Merge: a probe (spa 0.0.0.0) teaches nothing.
        if !spa.is_unspecified() {
            if let Some(waiting) = self.arp.learn(spa, sha, cx.now, for_us) {
                cx.inc(Counter::ArpCacheUpdates);
                for mut frame in waiting {
                    frame[..6].copy_from_slice(&sha);
                    self.link_push(cx, frame);
                }
            } else if for_us || self.arp.lookup(spa, cx.now).is_some() {
                cx.inc(Counter::ArpCacheUpdates);
            }
        }
        if spa == tpa && !for_us {
            // A gratuitous ARP (RFC 5227 §2.3 announcement): the merge above was all it asks for.
            return cx.trace(Direction::Rx, Layer::Arp, Verdict::Deliver, len, 0, || {
                format!("gratuitous: {spa} is-at {}", fmt_mac(&sha))
            });
        }
        if !for_us {
            return cx.drop(
                Direction::Rx,
                Layer::Arp,
                DropReason::ArpNotForUs,
                len,
                summary,
            );
        }
        if op == ArpOperation::Request {
            cx.trace(Direction::Rx, Layer::Arp, Verdict::Reply, len, 0, summary);
            self.arp_send(cx, ArpOperation::Reply, sha, spa);
        } else {
            cx.trace(Direction::Rx, Layer::Arp, Verdict::Deliver, len, 0, summary);
        }
    }

    /// Builds and queues an ARP packet from us to (`tha`, `tpa`). Requests go to broadcast.
    pub(crate) fn arp_send(&mut self, cx: &mut Cx<'_>, op: ArpOperation, tha: Mac, tpa: Ipv4Addr) {
        let mut frame = self.tx.buffer();
        frame.resize(ethernet::HEADER_LEN + PACKET_LEN, 0);
        let eth_dst = if op == ArpOperation::Request {
            BROADCAST
        } else {
            tha
        };
        ethernet::emit_header(&mut frame, eth_dst, self.config.mac, EthernetProtocol::Arp);
        let mut p = ArpPacket::new_unchecked(&mut frame[ethernet::HEADER_LEN..]);
        p.set_hardware_type(ArpHardware::Ethernet);
        p.set_protocol_type(EthernetProtocol::Ipv4);
        p.set_hardware_len(6);
        p.set_protocol_len(4);
        p.set_operation(op);
        p.set_source_hardware_addr(&self.config.mac);
        p.set_source_protocol_addr(&self.config.addr.octets());
        let tha = if op == ArpOperation::Request {
            [0; 6]
        } else {
            tha
        };
        p.set_target_hardware_addr(&tha);
        p.set_target_protocol_addr(&tpa.octets());
        cx.inc(match op {
            ArpOperation::Request => Counter::ArpOutRequests,
            _ => Counter::ArpOutReplies,
        });
        let (me, mine) = (self.config.addr, self.config.mac);
        cx.trace(
            Direction::Tx,
            Layer::Arp,
            Verdict::Emit,
            PACKET_LEN,
            0,
            || match op {
                ArpOperation::Request if tpa == me => {
                    format!("gratuitous: {me} is-at {}", fmt_mac(&mine))
                }
                ArpOperation::Request => format!("who-has {tpa} tell {me}"),
                _ => format!("{me} is-at {}", fmt_mac(&mine)),
            },
        );
        self.link_push(cx, frame);
    }

    /// Sends `frame` (Ethernet header written, destination MAC unset) to next hop `ip`,
    /// resolving it first if needed.
    pub(crate) fn arp_output(&mut self, cx: &mut Cx<'_>, ip: Ipv4Addr, mut frame: Vec<u8>) {
        let (res, back) = self.arp.resolve(ip, cx.now, frame);
        match res {
            Resolution::Ready(mac) => {
                frame = back.expect("ready returns the frame");
                frame[..6].copy_from_slice(&mac);
                self.link_push(cx, frame);
            }
            Resolution::Queued { request } => {
                cx.trace(Direction::Tx, Layer::Arp, Verdict::Queued, 0, 0, || {
                    format!("waiting for {ip} to be resolved")
                });
                if request {
                    self.arp_send(cx, ArpOperation::Request, [0; 6], ip);
                }
            }
            Resolution::Dropped(reason) => {
                if let Some(f) = back {
                    self.tx.recycle(f);
                }
                cx.drop(Direction::Tx, Layer::Arp, reason, 0, || {
                    format!("next hop {ip}")
                });
            }
        }
    }

    /// Retries requests, gives up on silent neighbours (dropping what waited), expires entries.
    pub(crate) fn arp_timeout(&mut self, cx: &mut Cx<'_>) {
        let now = cx.now;
        let mut retry = Vec::new();
        let mut failed = Vec::new();
        let mut expired = Vec::new();
        for (&ip, n) in self.arp.entries.iter_mut() {
            match n {
                Neighbor::Reachable { expires_at, .. } if *expires_at <= now => expired.push(ip),
                Neighbor::Incomplete {
                    requests,
                    next_request,
                    ..
                } if *next_request <= now => {
                    if *requests >= self.arp.config.max_requests {
                        failed.push(ip);
                    } else {
                        *requests += 1;
                        *next_request = now + self.arp.config.retry_interval;
                        retry.push(ip);
                    }
                }
                _ => {}
            }
        }
        for ip in expired {
            self.arp.entries.remove(&ip);
            cx.inc(Counter::ArpCacheExpired);
        }
        for ip in failed {
            if let Some(Neighbor::Incomplete { pending, .. }) = self.arp.entries.remove(&ip) {
                for frame in pending {
                    cx.drop(
                        Direction::Tx,
                        Layer::Arp,
                        DropReason::ArpUnresolved,
                        frame.len(),
                        || format!("{ip} did not answer"),
                    );
                    self.tx.recycle(frame);
                }
            }
        }
        for ip in retry {
            self.arp_send(cx, ArpOperation::Request, [0; 6], ip);
        }
    }

    /// Hands a finished frame to the transmit queue.
    pub(crate) fn link_push(&mut self, cx: &mut Cx<'_>, frame: Vec<u8>) {
        let len = frame.len();
        if !self.tx.push(frame) {
            cx.drop(
                Direction::Tx,
                Layer::Ethernet,
                DropReason::TxQueueFull,
                len,
                String::new,
            );
        }
    }
}
