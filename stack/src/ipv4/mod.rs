//! IPv4 (RFC 791, host requirements RFC 1122 §3.2): validate, decide local delivery, reassemble,
//! dispatch by protocol; on the way down, route to a next hop, fragment to the MTU, and emit.

pub mod fragment;

use core::net::{Ipv4Addr, SocketAddrV4};

use smoltcp::wire::{EthernetProtocol, Ipv4Packet};

use crate::checksum;
use crate::counters::{Counter, DropReason};
use crate::cx::Cx;
use crate::ethernet::{self, multicast_mac, BROADCAST};
use crate::icmp::IcmpError;
use crate::interface::Interface;
use crate::trace::{Direction, Flow, Layer, Verdict};
use fragment::{FragmentKey, ReassemblyOutcome};

/// Length of an IPv4 header without options.
pub const HEADER_LEN: usize = 20;
/// IP protocol number of ICMP.
pub const PROTO_ICMP: u8 = 1;
/// IP protocol number of TCP.
pub const PROTO_TCP: u8 = 6;
/// IP protocol number of UDP.
pub const PROTO_UDP: u8 = 17;

/// Facts about a received datagram that the transport layers need.
#[derive(Clone, Copy, Debug)]
pub(crate) struct IpMeta {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub protocol: u8,
    pub ttl: u8,
    /// Addressed to our unicast address (not broadcast/multicast): only such datagrams may
    /// trigger ICMP errors or TCP (RFC 1122 §3.2.2, §4.2.3.10).
    pub unicast: bool,
    /// Not the second or later fragment of a datagram (ICMP errors quote only first fragments).
    pub first_fragment: bool,
}

/// Where a packet goes next on the link.
enum NextHop {
    /// Known without ARP (broadcast, multicast).
    Mac([u8; 6]),
    /// Must be resolved with ARP.
    Ip(Ipv4Addr),
}

/// A name for an IP protocol number, for traces.
pub fn protocol_name(p: u8) -> &'static str {
    match p {
        PROTO_ICMP => "ICMP",
        PROTO_TCP => "TCP",
        PROTO_UDP => "UDP",
        _ => "?",
    }
}

/// Writes a 20-byte IPv4 header (no options) with its checksum into `buf[..20]`.
#[allow(clippy::too_many_arguments)]
pub fn emit_header(
    buf: &mut [u8],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    protocol: u8,
    payload_len: usize,
    ident: u16,
    ttl: u8,
    dont_frag: bool,
    more_frags: bool,
    frag_offset: usize,
) {
    let h = &mut buf[..HEADER_LEN];
    h[0] = 0x45;
    h[1] = 0;
    h[2..4].copy_from_slice(&((HEADER_LEN + payload_len) as u16).to_be_bytes());
    h[4..6].copy_from_slice(&ident.to_be_bytes());
    let flags_off =
        ((dont_frag as u16) << 14) | ((more_frags as u16) << 13) | ((frag_offset / 8) as u16);
    h[6..8].copy_from_slice(&flags_off.to_be_bytes());
    h[8] = ttl;
    h[9] = protocol;
    h[10..12].fill(0);
    h[12..16].copy_from_slice(&src.octets());
    h[16..20].copy_from_slice(&dst.octets());
    let c = checksum::checksum(h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
}

impl Interface {
    /// Receive path, layer 3 (RFC 791 §3.2, RFC 1122 §3.2.1): every check in the order the
    /// header is read; the first failure names the drop.
    pub(crate) fn ipv4_input(&mut self, cx: &mut Cx<'_>, link_broadcast: bool, packet: &[u8]) {
        let len = packet.len();
        cx.inc(Counter::IpInReceives);
        let hdr_drop = |cx: &mut Cx<'_>, reason: DropReason| {
            cx.inc(Counter::IpInHdrErrors);
            cx.drop(Direction::Rx, Layer::Ipv4, reason, len, String::new);
        };
        if len < HEADER_LEN {
            return hdr_drop(cx, DropReason::Ipv4Truncated);
        }
        let view = Ipv4Packet::new_unchecked(packet);
        if view.version() != 4 {
            return hdr_drop(cx, DropReason::Ipv4BadVersion);
        }
        let ihl = view.header_len() as usize;
        if ihl < HEADER_LEN || ihl > len {
            return hdr_drop(cx, DropReason::Ipv4BadHeaderLength);
        }
        let total = view.total_len() as usize;
        if total > len || total < ihl {
            return hdr_drop(cx, DropReason::Ipv4BadTotalLength);
        }
        if checksum::checksum(&packet[..ihl]) != 0 {
            return hdr_drop(cx, DropReason::Ipv4BadChecksum);
        }
        let (src, dst) = (view.src_addr(), view.dst_addr());
        let protocol: u8 = view.next_header().into();
        let ttl = view.hop_limit();
        let (mf, offset) = (view.more_frags(), view.frag_offset() as usize);
        let ident = view.ident();
        let summary = || {
            let mut s = format!(
                "{src} > {dst} ttl {ttl} id {ident} proto {} len {total}",
                protocol_name(protocol)
            );
            if mf || offset != 0 {
                s += &format!(" frag off {offset}{}", if mf { " MF" } else { "" });
            }
            if ihl > HEADER_LEN {
                s += &format!(" options {}B skipped", ihl - HEADER_LEN);
            }
            s
        };
        if src.is_broadcast()
            || src.is_multicast()
            || src.is_loopback()
            || src == self.config.addr
            || self.is_broadcast(src)
        {
            cx.inc(Counter::IpInAddrErrors);
            return cx.drop(
                Direction::Rx,
                Layer::Ipv4,
                DropReason::Ipv4BadSource,
                len,
                summary,
            );
        }
        let unicast = dst == self.config.addr && !link_broadcast;
        let local = dst == self.config.addr
            || self.is_broadcast(dst)
            || (dst.is_multicast() && self.config.multicast.contains(&dst));
        if !local {
            cx.inc(Counter::IpInAddrErrors);
            return cx.drop(
                Direction::Rx,
                Layer::Ipv4,
                DropReason::Ipv4NotForUs,
                len,
                summary,
            );
        }
        if ttl == 0 {
            // A router would never have forwarded this; RFC 1122 §3.2.1.7 only forbids discarding
            // for TTL < 2 when it is non-zero, so zero is treated as a malformed header.
            cx.inc(Counter::IpInHdrErrors);
            return cx.drop(
                Direction::Rx,
                Layer::Ipv4,
                DropReason::Ipv4TtlExpired,
                len,
                summary,
            );
        }
        let payload = &packet[ihl..total];
        let meta = IpMeta {
            src,
            dst,
            protocol,
            ttl,
            unicast,
            first_fragment: offset == 0,
        };
        if !mf && offset == 0 {
            cx.trace(Direction::Rx, Layer::Ipv4, Verdict::Pass, total, 0, summary);
            return self.ipv4_dispatch(cx, meta, &packet[..ihl], payload);
        }
        // RFC 791 §3.2 reassembly.
        cx.inc(Counter::IpReasmReqds);
        let key = FragmentKey {
            src,
            dst,
            protocol,
            ident,
        };
        // Copy a completed datagram out of the reassembler so it can be dispatched.
        let outcome = match self.reassembler.insert(cx.now, key, offset, mf, payload) {
            ReassemblyOutcome::Pending => Ok(None),
            ReassemblyOutcome::Dropped(reason) => Err(reason),
            ReassemblyOutcome::Complete(datagram) => {
                let mut whole = core::mem::take(&mut self.scratch);
                whole.clear();
                whole.extend_from_slice(datagram);
                Ok(Some(whole))
            }
        };
        for _ in 0..self.reassembler.take_evicted() {
            // Older partial datagrams pushed out to make room under the memory bound.
            cx.inc(Counter::IpReasmFails);
            cx.drop(
                Direction::Rx,
                Layer::Ipv4,
                DropReason::Ipv4FragMemoryFull,
                0,
                || "oldest partial datagram evicted".into(),
            );
        }
        match outcome {
            Ok(None) => {
                cx.trace(
                    Direction::Rx,
                    Layer::Ipv4,
                    Verdict::Queued,
                    total,
                    payload.len(),
                    summary,
                );
            }
            Err(reason) => {
                cx.inc(Counter::IpReasmFails);
                cx.drop(Direction::Rx, Layer::Ipv4, reason, len, summary);
            }
            Ok(Some(whole)) => {
                cx.inc(Counter::IpReasmOKs);
                cx.trace(
                    Direction::Rx,
                    Layer::Ipv4,
                    Verdict::Pass,
                    total,
                    payload.len(),
                    || format!("{} — reassembled {} bytes", summary(), whole.len()),
                );
                let meta = IpMeta {
                    first_fragment: true,
                    ..meta
                };
                // ICMP errors must quote the datagram's header, not this fragment's.
                let mut header = [0u8; 60];
                let header = &mut header[..ihl];
                header.copy_from_slice(&packet[..ihl]);
                header[2..4].copy_from_slice(&((ihl + whole.len()) as u16).to_be_bytes());
                header[6] &= 0x40; // keep DF; clear MF and the offset
                header[7] = 0;
                header[10..12].fill(0);
                let c = checksum::checksum(header);
                header[10..12].copy_from_slice(&c.to_be_bytes());
                self.ipv4_dispatch(cx, meta, header, &whole);
                self.scratch = whole;
            }
        }
    }

    /// Hands a complete datagram's payload to its protocol.
    fn ipv4_dispatch(&mut self, cx: &mut Cx<'_>, meta: IpMeta, header: &[u8], payload: &[u8]) {
        if matches!(meta.protocol, PROTO_TCP | PROTO_UDP)
            && payload.len() >= 4
            && cx.tracer.enabled()
        {
            let port = |i: usize| u16::from_be_bytes([payload[i], payload[i + 1]]);
            cx.set_flow(Flow {
                protocol: meta.protocol,
                src: SocketAddrV4::new(meta.src, port(0)),
                dst: SocketAddrV4::new(meta.dst, port(2)),
            });
        }
        match meta.protocol {
            PROTO_ICMP => {
                cx.inc(Counter::IpInDelivers);
                self.icmp_input(cx, meta, payload);
            }
            PROTO_UDP => {
                cx.inc(Counter::IpInDelivers);
                self.udp_input(cx, meta, header, payload);
            }
            PROTO_TCP => {
                cx.inc(Counter::IpInDelivers);
                if meta.unicast {
                    self.tcp.handle_segment(cx, meta.src, meta.dst, payload);
                } else {
                    cx.drop(
                        Direction::Rx,
                        Layer::Tcp,
                        DropReason::Ipv4NotForUs,
                        payload.len(),
                        || "TCP to a broadcast/multicast address".into(),
                    );
                }
            }
            p => {
                cx.inc(Counter::IpInUnknownProtos);
                cx.drop(
                    Direction::Rx,
                    Layer::Ipv4,
                    DropReason::Ipv4UnknownProtocol,
                    payload.len(),
                    || format!("protocol {p}"),
                );
                if meta.unicast {
                    self.icmp_send_error(cx, meta, IcmpError::ProtocolUnreachable, header, payload);
                }
            }
        }
    }

    /// Chooses the next hop for `dst` (RFC 1122 §3.3.1: on-link → direct, else the gateway).
    fn next_hop(&self, dst: Ipv4Addr) -> Result<NextHop, DropReason> {
        if self.is_broadcast(dst) {
            Ok(NextHop::Mac(BROADCAST))
        } else if dst.is_multicast() {
            Ok(NextHop::Mac(multicast_mac(dst)))
        } else if self.on_link(dst) {
            Ok(NextHop::Ip(dst))
        } else {
            self.config
                .gateway
                .map(NextHop::Ip)
                .ok_or(DropReason::Ipv4NoRoute)
        }
    }

    /// Next IP identification value (RFC 6864: unique per source/destination/protocol while a
    /// datagram may be fragmented; a per-host counter satisfies that).
    pub(crate) fn next_ident(&mut self) -> u16 {
        self.ip_ident = self.ip_ident.wrapping_add(1);
        self.ip_ident
    }

    /// Transmit path, layer 3: wraps `payload` in IPv4 (fragmenting it if it exceeds the MTU and
    /// `dont_frag` is clear) and passes each packet to the link.
    pub(crate) fn ipv4_output(
        &mut self,
        cx: &mut Cx<'_>,
        dst: Ipv4Addr,
        protocol: u8,
        payload: &[u8],
        dont_frag: bool,
    ) -> Result<(), DropReason> {
        if matches!(protocol, PROTO_TCP | PROTO_UDP) && payload.len() >= 4 && cx.tracer.enabled() {
            let port = |i: usize| u16::from_be_bytes([payload[i], payload[i + 1]]);
            cx.set_flow(Flow {
                protocol,
                src: SocketAddrV4::new(self.config.addr, port(0)),
                dst: SocketAddrV4::new(dst, port(2)),
            });
        }
        let hop = match self.next_hop(dst) {
            Ok(h) => h,
            Err(r) => {
                cx.drop(Direction::Tx, Layer::Ipv4, r, payload.len(), || {
                    format!("to {dst}")
                });
                return Err(r);
            }
        };
        let mtu = self.config.mtu;
        if HEADER_LEN + payload.len() > mtu && dont_frag {
            cx.inc(Counter::IpFragFails);
            cx.drop(
                Direction::Tx,
                Layer::Ipv4,
                DropReason::Ipv4FragNeededDf,
                payload.len(),
                String::new,
            );
            return Err(DropReason::Ipv4FragNeededDf);
        }
        if HEADER_LEN + payload.len() > u16::MAX as usize {
            cx.drop(
                Direction::Tx,
                Layer::Ipv4,
                DropReason::Ipv4FragMalformed,
                payload.len(),
                || "datagram larger than 65535 bytes".into(),
            );
            return Err(DropReason::Ipv4FragMalformed);
        }
        let ident = self.next_ident();
        let (src, ttl) = (self.config.addr, self.config.ttl);
        let fragmented = HEADER_LEN + payload.len() > mtu;
        if fragmented {
            cx.inc(Counter::IpFragOKs);
        }
        for (offset, len, more) in fragment::fragments(payload.len(), HEADER_LEN, mtu) {
            let mut frame = self.tx.buffer();
            frame.resize(ethernet::HEADER_LEN + HEADER_LEN + len, 0);
            ethernet::emit_header(&mut frame, [0; 6], self.config.mac, EthernetProtocol::Ipv4);
            let ip = &mut frame[ethernet::HEADER_LEN..];
            emit_header(
                ip, src, dst, protocol, len, ident, ttl, dont_frag, more, offset,
            );
            ip[HEADER_LEN..].copy_from_slice(&payload[offset..offset + len]);
            cx.inc(Counter::IpOutRequests);
            if fragmented {
                cx.inc(Counter::IpFragCreates);
            }
            cx.trace(
                Direction::Tx,
                Layer::Ipv4,
                Verdict::Emit,
                HEADER_LEN + len,
                len,
                || {
                    let mut s = format!(
                        "{src} > {dst} ttl {ttl} id {ident} proto {} len {}",
                        protocol_name(protocol),
                        HEADER_LEN + len
                    );
                    if fragmented {
                        s += &format!(" frag off {offset}{}", if more { " MF" } else { "" });
                    }
                    s
                },
            );
            self.link_output(cx, &hop, frame);
        }
        Ok(())
    }

    /// Sends a frame to the next hop: directly when its MAC is known, via ARP otherwise.
    fn link_output(&mut self, cx: &mut Cx<'_>, hop: &NextHop, mut frame: Vec<u8>) {
        match *hop {
            NextHop::Mac(mac) => {
                frame[..6].copy_from_slice(&mac);
                self.link_push(cx, frame);
            }
            NextHop::Ip(ip) => self.arp_output(cx, ip, frame),
        }
    }

    /// Finishes a TCP segment the TCP layer wrote at `buf[34..34+tcp_len]`: writes the IPv4 and
    /// Ethernet headers. Returns the frame length if it can go out now; otherwise the frame was
    /// copied to the ARP queue (or dropped) and `None` is returned.
    pub(crate) fn finish_tcp_frame(
        &mut self,
        cx: &mut Cx<'_>,
        buf: &mut [u8],
        src: Ipv4Addr,
        dst: Ipv4Addr,
        tcp_len: usize,
    ) -> Option<usize> {
        if cx.tracer.enabled() {
            let t = &buf[ethernet::HEADER_LEN + HEADER_LEN..];
            cx.set_flow(Flow {
                protocol: PROTO_TCP,
                src: SocketAddrV4::new(src, u16::from_be_bytes([t[0], t[1]])),
                dst: SocketAddrV4::new(dst, u16::from_be_bytes([t[2], t[3]])),
            });
        }
        let ident = self.next_ident();
        let ttl = self.config.ttl;
        let frame_len = ethernet::HEADER_LEN + HEADER_LEN + tcp_len;
        emit_header(
            &mut buf[ethernet::HEADER_LEN..],
            src,
            dst,
            PROTO_TCP,
            tcp_len,
            ident,
            ttl,
            true,
            false,
            0,
        );
        ethernet::emit_header(buf, [0; 6], self.config.mac, EthernetProtocol::Ipv4);
        cx.inc(Counter::IpOutRequests);
        cx.trace(
            Direction::Tx,
            Layer::Ipv4,
            Verdict::Emit,
            HEADER_LEN + tcp_len,
            0,
            || {
                format!(
                    "{src} > {dst} ttl {ttl} id {ident} proto TCP len {}",
                    HEADER_LEN + tcp_len
                )
            },
        );
        let hop = match self.next_hop(dst) {
            Ok(h) => h,
            Err(r) => {
                cx.drop(Direction::Tx, Layer::Ipv4, r, tcp_len, || {
                    format!("to {dst}")
                });
                return None;
            }
        };
        let mac = match hop {
            NextHop::Mac(m) => Some(m),
            NextHop::Ip(ip) => self.arp.lookup(ip, cx.now),
        };
        if let Some(mac) = mac {
            buf[..6].copy_from_slice(&mac);
            return Some(frame_len);
        }
        let mut frame = self.tx.buffer();
        frame.extend_from_slice(&buf[..frame_len]);
        self.link_output(cx, &hop, frame);
        None
    }

    /// Runs the reassembly timer (RFC 791: a datagram's fragments share one timer; on expiry the
    /// partial datagram is discarded, and RFC 792 time-exceeded code 1 is sent if the first
    /// fragment had arrived).
    pub(crate) fn ipv4_timeout(&mut self, cx: &mut Cx<'_>) {
        let mut expired: Vec<(FragmentKey, Vec<u8>)> = Vec::new();
        self.reassembler.expire(cx.now, |key, first| {
            // RFC 792: the quote is the IP header plus the first 64 bits of the datagram.
            let quote = first.map(|f| f[..f.len().min(8)].to_vec());
            expired.push((key, quote.unwrap_or_default()));
        });
        for (key, first) in expired {
            cx.inc(Counter::IpReasmFails);
            cx.drop(
                Direction::Rx,
                Layer::Ipv4,
                DropReason::Ipv4FragTimeout,
                first.len(),
                || format!("{} > {} id {}", key.src, key.dst, key.ident),
            );
            if !first.is_empty() && key.dst == self.config.addr {
                let meta = IpMeta {
                    src: key.src,
                    dst: key.dst,
                    protocol: key.protocol,
                    ttl: 0,
                    unicast: true,
                    first_fragment: true,
                };
                let mut header = [0u8; HEADER_LEN];
                emit_header(
                    &mut header,
                    key.src,
                    key.dst,
                    key.protocol,
                    first.len(),
                    key.ident,
                    1,
                    false,
                    true,
                    0,
                );
                self.icmp_send_error(cx, meta, IcmpError::ReassemblyTimeExceeded, &header, &first);
            }
        }
    }
}
