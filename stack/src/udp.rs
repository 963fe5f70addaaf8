//! UDP (RFC 768, RFC 1122 §4.1): checksum (a zero checksum means "none" over IPv4), demux to the
//! bound socket (exact address first, then the wildcard), port unreachable for everything else,
//! and bounded per-socket receive queues.

use core::net::{Ipv4Addr, SocketAddrV4};
use std::collections::VecDeque;

use slotmap::SlotMap;

use crate::checksum;
use crate::counters::{Counter, DropReason};
use crate::cx::Cx;
use crate::icmp::IcmpError;
use crate::interface::Interface;
use crate::ipv4::{IpMeta, HEADER_LEN as IP_HEADER_LEN, PROTO_UDP};
use crate::socket::{Readiness, UdpHandle};
use crate::trace::{Direction, Layer, Verdict};

/// Length of the UDP header.
pub const HEADER_LEN: usize = 8;
/// Largest UDP payload over IPv4: 65535 - 20 (IP header) - 8 (UDP header).
pub const MAX_PAYLOAD: usize = 65_507;
/// First port of the IANA dynamic range used for ephemeral ports (RFC 6335 §6).
const EPHEMERAL_FIRST: u16 = 49_152;

/// Errors of the UDP socket API.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UdpError {
    /// Nothing to read yet (EAGAIN).
    #[error("no datagram queued")]
    WouldBlock,
    /// No such socket (closed, or a stale handle).
    #[error("no such UDP socket")]
    InvalidHandle,
    /// The address and port are taken.
    #[error("address already in use")]
    AddrInUse,
    /// `send` without a destination on an unconnected socket.
    #[error("socket is not connected: use send_to or connect first")]
    NotConnected,
    /// The payload exceeds 65,507 bytes.
    #[error("datagram too large: at most 65507 bytes fit in one IPv4 datagram")]
    TooLarge,
    /// The datagram could not be sent (no route, queue full...).
    #[error("datagram not sent: {0}")]
    NotSent(DropReason),
    /// The peer answered with ICMP port unreachable (reported once, on a connected socket).
    #[error("connection refused: the peer has no socket on that port")]
    ConnectionRefused,
    /// Another ICMP error about a datagram this socket sent.
    #[error("network error from ICMP: {0:?}")]
    Icmp(IcmpError),
    /// No free ephemeral port.
    #[error("no ephemeral port available")]
    NoPorts,
}

#[derive(Debug)]
pub(crate) struct UdpSocket {
    local: SocketAddrV4,
    remote: Option<SocketAddrV4>,
    /// Queued datagrams: (sender, length), oldest first; their bytes are in `rx_data`, in order.
    /// Both grow to the socket's bound once and are then reused: no allocation per datagram.
    rx: VecDeque<(SocketAddrV4, usize)>,
    rx_data: VecDeque<u8>,
    error: Option<IcmpError>,
}

/// Every UDP socket, and the port table that demultiplexes to them.
#[derive(Debug)]
pub(crate) struct UdpTable {
    sockets: SlotMap<UdpHandle, UdpSocket>,
    bound: crate::config::SeededMap<(Ipv4Addr, u16), UdpHandle>,
    next_port: u16,
}

impl UdpTable {
    pub(crate) fn new(seed: u64) -> Self {
        UdpTable {
            sockets: SlotMap::with_key(),
            bound: crate::config::seeded_map(seed ^ 0x7564_7000),
            next_port: EPHEMERAL_FIRST + (seed % (u16::MAX - EPHEMERAL_FIRST) as u64) as u16,
        }
    }

    pub(crate) fn bind(&mut self, mut local: SocketAddrV4) -> Result<UdpHandle, UdpError> {
        if local.port() == 0 {
            let span = (u16::MAX - EPHEMERAL_FIRST) as u32 + 1;
            let mut found = None;
            for _ in 0..span {
                let p = self.next_port;
                self.next_port = if p == u16::MAX {
                    EPHEMERAL_FIRST
                } else {
                    p + 1
                };
                if !self.bound.contains_key(&(*local.ip(), p))
                    && !self.bound.contains_key(&(Ipv4Addr::UNSPECIFIED, p))
                {
                    found = Some(p);
                    break;
                }
            }
            local.set_port(found.ok_or(UdpError::NoPorts)?);
        }
        let key = (*local.ip(), local.port());
        let wildcard_clash =
            local.ip().is_unspecified() && self.bound.keys().any(|&(_, p)| p == local.port());
        if self.bound.contains_key(&key)
            || self
                .bound
                .contains_key(&(Ipv4Addr::UNSPECIFIED, local.port()))
            || wildcard_clash
        {
            return Err(UdpError::AddrInUse);
        }
        let h = self.sockets.insert(UdpSocket {
            local,
            remote: None,
            rx: VecDeque::new(),
            rx_data: VecDeque::new(),
            error: None,
        });
        self.bound.insert(key, h);
        Ok(h)
    }

    pub(crate) fn close(&mut self, h: UdpHandle) -> Result<(), UdpError> {
        let s = self.sockets.remove(h).ok_or(UdpError::InvalidHandle)?;
        self.bound.remove(&(*s.local.ip(), s.local.port()));
        Ok(())
    }

    pub(crate) fn connect(&mut self, h: UdpHandle, remote: SocketAddrV4) -> Result<(), UdpError> {
        let s = self.sockets.get_mut(h).ok_or(UdpError::InvalidHandle)?;
        s.remote = Some(remote);
        Ok(())
    }

    pub(crate) fn local_addr(&self, h: UdpHandle) -> Result<SocketAddrV4, UdpError> {
        self.sockets
            .get(h)
            .map(|s| s.local)
            .ok_or(UdpError::InvalidHandle)
    }

    pub(crate) fn remote(&self, h: UdpHandle) -> Result<Option<SocketAddrV4>, UdpError> {
        self.sockets
            .get(h)
            .map(|s| s.remote)
            .ok_or(UdpError::InvalidHandle)
    }

    /// Takes the oldest datagram, copying it into `buf` (truncated if `buf` is smaller, like
    /// `recvfrom` without MSG_TRUNC). Returns the bytes copied and the sender.
    pub(crate) fn recv_from(
        &mut self,
        h: UdpHandle,
        buf: &mut [u8],
    ) -> Result<(usize, SocketAddrV4), UdpError> {
        let s = self.sockets.get_mut(h).ok_or(UdpError::InvalidHandle)?;
        if let Some(e) = s.error.take() {
            return Err(match e {
                IcmpError::PortUnreachable => UdpError::ConnectionRefused,
                e => UdpError::Icmp(e),
            });
        }
        let (from, len) = s.rx.pop_front().ok_or(UdpError::WouldBlock)?;
        let n = len.min(buf.len());
        // Copy #2 (socket buffer → application); bytes beyond `buf` are discarded, as recvfrom
        // does without MSG_TRUNC.
        for (dst, src) in buf[..n].iter_mut().zip(s.rx_data.drain(..len)) {
            *dst = src;
        }
        Ok((n, from))
    }

    pub(crate) fn readiness(&self, h: UdpHandle) -> Readiness {
        match self.sockets.get(h) {
            None => Readiness::HANGUP,
            Some(s) => {
                let mut r = Readiness::WRITABLE;
                if !s.rx.is_empty() {
                    r |= Readiness::READABLE;
                }
                if s.error.is_some() {
                    r |= Readiness::ERROR;
                }
                r
            }
        }
    }

    fn lookup(&self, dst: Ipv4Addr, port: u16) -> Option<UdpHandle> {
        self.bound
            .get(&(dst, port))
            .or_else(|| self.bound.get(&(Ipv4Addr::UNSPECIFIED, port)))
            .copied()
    }

    /// An ICMP error about a datagram from `local` to `remote`. As on Linux, only a socket
    /// connected to `remote` is told (an unconnected socket cannot know which send failed).
    pub(crate) fn deliver_error(
        &mut self,
        cx: &mut Cx<'_>,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        e: IcmpError,
    ) {
        if let Some(h) = self.lookup(*local.ip(), local.port()) {
            let s = &mut self.sockets[h];
            if s.remote == Some(remote) {
                s.error = Some(e);
                cx.notify(h);
            }
        }
    }
}

impl Interface {
    /// Receive path for UDP.
    pub(crate) fn udp_input(
        &mut self,
        cx: &mut Cx<'_>,
        meta: IpMeta,
        ip_header: &[u8],
        dgram: &[u8],
    ) {
        let len = dgram.len();
        if len < HEADER_LEN {
            cx.inc(Counter::UdpInErrors);
            return cx.drop(
                Direction::Rx,
                Layer::Udp,
                DropReason::UdpTruncated,
                len,
                String::new,
            );
        }
        let sport = u16::from_be_bytes([dgram[0], dgram[1]]);
        let dport = u16::from_be_bytes([dgram[2], dgram[3]]);
        let ulen = u16::from_be_bytes([dgram[4], dgram[5]]) as usize;
        let csum = u16::from_be_bytes([dgram[6], dgram[7]]);
        let summary = || format!("{}:{sport} > {}:{dport} len {ulen}", meta.src, meta.dst);
        // RFC 768: the length covers header and data; bytes beyond it are padding.
        if ulen < HEADER_LEN || ulen > len {
            cx.inc(Counter::UdpInErrors);
            return cx.drop(
                Direction::Rx,
                Layer::Udp,
                DropReason::UdpBadLength,
                len,
                summary,
            );
        }
        let dgram = &dgram[..ulen];
        // RFC 768 / RFC 1122 §4.1.3.4: zero means the sender computed no checksum.
        if csum != 0 && checksum::transport(meta.src, meta.dst, PROTO_UDP, dgram) != 0 {
            cx.inc(Counter::UdpInErrors);
            cx.inc(Counter::UdpInCsumErrors);
            return cx.drop(
                Direction::Rx,
                Layer::Udp,
                DropReason::UdpBadChecksum,
                len,
                summary,
            );
        }
        let payload = &dgram[HEADER_LEN..];
        let from = SocketAddrV4::new(meta.src, sport);
        let target = self.udp.lookup(meta.dst, dport).filter(|&h| {
            let r = self.udp.sockets[h].remote;
            r.is_none() || r == Some(from)
        });
        let Some(h) = target else {
            cx.inc(Counter::UdpNoPorts);
            cx.drop(
                Direction::Rx,
                Layer::Udp,
                DropReason::UdpNoPort,
                len,
                summary,
            );
            return self.icmp_send_error(cx, meta, IcmpError::PortUnreachable, ip_header, dgram);
        };
        let limit = self.config.udp_rcv_buf;
        let sock = &mut self.udp.sockets[h];
        if sock.rx_data.len() + payload.len() > limit {
            cx.inc(Counter::UdpRcvbufErrors);
            cx.inc(Counter::UdpInErrors);
            return cx.drop(
                Direction::Rx,
                Layer::Udp,
                DropReason::UdpRcvBufFull,
                len,
                summary,
            );
        }
        cx.trace(Direction::Rx, Layer::Udp, Verdict::Pass, len, 0, summary);
        sock.rx.push_back((from, payload.len()));
        sock.rx_data.extend(payload);
        cx.counters
            .add(Counter::CopyFrameToRcvBuf, payload.len() as u64);
        cx.inc(Counter::UdpInDatagrams);
        cx.trace(
            Direction::Rx,
            Layer::Socket,
            Verdict::Deliver,
            payload.len(),
            payload.len(),
            || {
                format!(
                    "udp socket {}: queued {} bytes from {from}",
                    sock.local,
                    payload.len()
                )
            },
        );
        cx.notify(h);
    }

    /// Transmit path for UDP: header + checksum, then IPv4 (which fragments large datagrams).
    pub(crate) fn udp_output(
        &mut self,
        cx: &mut Cx<'_>,
        h: UdpHandle,
        dst: Option<SocketAddrV4>,
        data: &[u8],
    ) -> Result<(), UdpError> {
        let sock = self.udp.sockets.get(h).ok_or(UdpError::InvalidHandle)?;
        let dst = dst.or(sock.remote).ok_or(UdpError::NotConnected)?;
        if data.len() > MAX_PAYLOAD {
            return Err(UdpError::TooLarge);
        }
        let src_ip = if sock.local.ip().is_unspecified() {
            self.config.addr
        } else {
            *sock.local.ip()
        };
        let sport = sock.local.port();
        let mut dgram = self.tx.buffer();
        dgram.resize(HEADER_LEN, 0);
        dgram[0..2].copy_from_slice(&sport.to_be_bytes());
        dgram[2..4].copy_from_slice(&dst.port().to_be_bytes());
        dgram[4..6].copy_from_slice(&((HEADER_LEN + data.len()) as u16).to_be_bytes());
        dgram.extend_from_slice(data);
        let c = match checksum::transport(src_ip, *dst.ip(), PROTO_UDP, &dgram) {
            0 => 0xffff, // RFC 768: a computed zero is sent as all ones.
            c => c,
        };
        dgram[6..8].copy_from_slice(&c.to_be_bytes());
        cx.inc(Counter::UdpOutDatagrams);
        cx.counters.add(Counter::CopyAppToFrame, data.len() as u64);
        cx.trace(
            Direction::Tx,
            Layer::Udp,
            Verdict::Emit,
            dgram.len(),
            data.len(),
            || format!("{src_ip}:{sport} > {dst} len {}", dgram.len()),
        );
        let r = self.ipv4_output(cx, *dst.ip(), PROTO_UDP, &dgram, false);
        self.tx.recycle(dgram);
        r.map_err(UdpError::NotSent)
    }
}

/// Bytes of IPv4 + UDP headers in front of a UDP payload.
pub const OVERHEAD: usize = IP_HEADER_LEN + HEADER_LEN;
