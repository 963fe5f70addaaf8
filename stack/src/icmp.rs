//! ICMPv4 (RFC 792, RFC 1122 §3.2.2): echo replies (so `ping` works), ping sockets for our own
//! echo requests, rate-limited error generation, and delivery of arriving errors to the socket
//! whose packet they quote.

use core::net::{Ipv4Addr, SocketAddrV4};
use std::collections::VecDeque;

use slotmap::SlotMap;

use crate::checksum;
use crate::counters::{Counter, DropReason};
use crate::cx::Cx;
use crate::interface::Interface;
use crate::ipv4::{IpMeta, HEADER_LEN as IP_HEADER_LEN, PROTO_ICMP, PROTO_TCP, PROTO_UDP};
use crate::socket::IcmpHandle;
use crate::time::Instant;
use crate::trace::{Direction, Layer, Verdict};

/// Length of the fixed ICMP header (type, code, checksum, 4 bytes of rest-of-header).
pub const HEADER_LEN: usize = 8;
/// RFC 1812 §4.3.2.3: an error message should not exceed 576 bytes.
const MAX_ERROR_LEN: usize = 576;

/// ICMP type numbers used here.
mod kind {
    pub const ECHO_REPLY: u8 = 0;
    pub const DEST_UNREACHABLE: u8 = 3;
    pub const SOURCE_QUENCH: u8 = 4;
    pub const REDIRECT: u8 = 5;
    pub const ECHO_REQUEST: u8 = 8;
    pub const TIME_EXCEEDED: u8 = 11;
    pub const PARAMETER_PROBLEM: u8 = 12;
}

/// An ICMP error, sent or received.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IcmpError {
    /// Destination unreachable, code 0.
    NetUnreachable,
    /// Destination unreachable, code 1.
    HostUnreachable,
    /// Destination unreachable, code 2.
    ProtocolUnreachable,
    /// Destination unreachable, code 3.
    PortUnreachable,
    /// Destination unreachable, code 4 (with the next-hop MTU, RFC 1191).
    FragmentationNeeded {
        /// The MTU of the next hop.
        mtu: u16,
    },
    /// Destination unreachable, another code.
    Unreachable {
        /// The code.
        code: u8,
    },
    /// Time exceeded, code 0 (TTL reached zero in transit).
    TtlExceeded,
    /// Time exceeded, code 1 (fragment reassembly time exceeded).
    ReassemblyTimeExceeded,
    /// Parameter problem.
    ParameterProblem,
}

impl IcmpError {
    fn type_code(self) -> (u8, u8) {
        match self {
            IcmpError::NetUnreachable => (kind::DEST_UNREACHABLE, 0),
            IcmpError::HostUnreachable => (kind::DEST_UNREACHABLE, 1),
            IcmpError::ProtocolUnreachable => (kind::DEST_UNREACHABLE, 2),
            IcmpError::PortUnreachable => (kind::DEST_UNREACHABLE, 3),
            IcmpError::FragmentationNeeded { .. } => (kind::DEST_UNREACHABLE, 4),
            IcmpError::Unreachable { code } => (kind::DEST_UNREACHABLE, code),
            IcmpError::TtlExceeded => (kind::TIME_EXCEEDED, 0),
            IcmpError::ReassemblyTimeExceeded => (kind::TIME_EXCEEDED, 1),
            IcmpError::ParameterProblem => (kind::PARAMETER_PROBLEM, 0),
        }
    }

    fn from_type_code(ty: u8, code: u8, rest: [u8; 4]) -> Option<IcmpError> {
        Some(match (ty, code) {
            (kind::DEST_UNREACHABLE, 0) => IcmpError::NetUnreachable,
            (kind::DEST_UNREACHABLE, 1) => IcmpError::HostUnreachable,
            (kind::DEST_UNREACHABLE, 2) => IcmpError::ProtocolUnreachable,
            (kind::DEST_UNREACHABLE, 3) => IcmpError::PortUnreachable,
            (kind::DEST_UNREACHABLE, 4) => IcmpError::FragmentationNeeded {
                mtu: u16::from_be_bytes([rest[2], rest[3]]),
            },
            (kind::DEST_UNREACHABLE, code) => IcmpError::Unreachable { code },
            (kind::TIME_EXCEEDED, 0) => IcmpError::TtlExceeded,
            (kind::TIME_EXCEEDED, _) => IcmpError::ReassemblyTimeExceeded,
            (kind::PARAMETER_PROBLEM, _) => IcmpError::ParameterProblem,
            _ => return None,
        })
    }

    /// RFC 1122 §4.2.3.9: protocol unreachable, port unreachable and fragmentation needed are
    /// "hard" errors (the destination answered); the others are "soft" (may be transient).
    pub fn is_hard(self) -> bool {
        matches!(
            self,
            IcmpError::ProtocolUnreachable
                | IcmpError::PortUnreachable
                | IcmpError::FragmentationNeeded { .. }
        )
    }
}

/// A token bucket (like Linux's `icmp_ratelimit`): `burst` tokens, refilled at `rate` per second.
#[derive(Debug)]
pub struct TokenBucket {
    rate: u64,
    capacity: u64,
    /// Tokens scaled by 1,000,000 so that refills per microsecond stay integral.
    micro_tokens: u64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(rate_per_sec: u32, burst: u32, now: Instant) -> Self {
        let capacity = burst as u64 * 1_000_000;
        TokenBucket {
            rate: rate_per_sec as u64,
            capacity,
            micro_tokens: capacity,
            last: now,
        }
    }

    /// Takes a token if one is available.
    pub fn take(&mut self, now: Instant) -> bool {
        if now > self.last {
            let elapsed = (now - self.last).total_micros();
            self.micro_tokens =
                (self.micro_tokens + elapsed.saturating_mul(self.rate)).min(self.capacity);
            self.last = now;
        }
        if self.micro_tokens >= 1_000_000 {
            self.micro_tokens -= 1_000_000;
            true
        } else {
            false
        }
    }
}

/// An echo reply received by a ping socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EchoReply {
    /// Who answered.
    pub from: Ipv4Addr,
    /// The sequence number echoed back.
    pub seq: u16,
    /// TTL of the reply packet.
    pub ttl: u8,
    /// The echoed payload.
    pub data: Vec<u8>,
    /// When it arrived.
    pub at: Instant,
}

/// What a ping socket receives: a reply, or an error quoting one of its requests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PingEvent {
    /// An echo reply.
    Reply(EchoReply),
    /// An ICMP error about one of our requests (e.g. host unreachable).
    Error {
        /// The router or host that reported it.
        from: Ipv4Addr,
        /// The error.
        error: IcmpError,
        /// The sequence number of the request it quotes.
        seq: u16,
    },
}

#[derive(Debug)]
pub(crate) struct PingSocket {
    ident: u16,
    events: VecDeque<PingEvent>,
    queued_bytes: usize,
}

/// Ping sockets, found by echo identifier.
#[derive(Debug, Default)]
pub(crate) struct PingTable {
    pub(crate) sockets: SlotMap<IcmpHandle, PingSocket>,
    by_ident: crate::config::SeededMap<u16, IcmpHandle>,
}

impl PingTable {
    pub(crate) fn open(&mut self, ident: u16) -> Option<IcmpHandle> {
        if self.by_ident.contains_key(&ident) {
            return None;
        }
        let h = self.sockets.insert(PingSocket {
            ident,
            events: VecDeque::new(),
            queued_bytes: 0,
        });
        self.by_ident.insert(ident, h);
        Some(h)
    }

    pub(crate) fn close(&mut self, h: IcmpHandle) -> bool {
        match self.sockets.remove(h) {
            Some(s) => {
                self.by_ident.remove(&s.ident);
                true
            }
            None => false,
        }
    }

    pub(crate) fn ident(&self, h: IcmpHandle) -> Option<u16> {
        self.sockets.get(h).map(|s| s.ident)
    }

    pub(crate) fn recv(&mut self, h: IcmpHandle) -> Option<PingEvent> {
        let s = self.sockets.get_mut(h)?;
        let ev = s.events.pop_front()?;
        if let PingEvent::Reply(r) = &ev {
            s.queued_bytes -= r.data.len();
        }
        Some(ev)
    }

    pub(crate) fn has_events(&self, h: IcmpHandle) -> bool {
        self.sockets.get(h).is_some_and(|s| !s.events.is_empty())
    }
}

/// Reads the fixed 8-byte ICMP header fields.
fn header(msg: &[u8]) -> (u8, u8, [u8; 4]) {
    (msg[0], msg[1], [msg[4], msg[5], msg[6], msg[7]])
}

impl Interface {
    /// Receive path for ICMP.
    pub(crate) fn icmp_input(&mut self, cx: &mut Cx<'_>, meta: IpMeta, msg: &[u8]) {
        let len = msg.len();
        cx.inc(Counter::IcmpInMsgs);
        if len < HEADER_LEN {
            cx.inc(Counter::IcmpInErrors);
            return cx.drop(
                Direction::Rx,
                Layer::Icmp,
                DropReason::IcmpTruncated,
                len,
                String::new,
            );
        }
        if checksum::checksum(msg) != 0 {
            cx.inc(Counter::IcmpInErrors);
            return cx.drop(
                Direction::Rx,
                Layer::Icmp,
                DropReason::IcmpBadChecksum,
                len,
                String::new,
            );
        }
        let (ty, code, rest) = header(msg);
        let ident = u16::from_be_bytes([rest[0], rest[1]]);
        let seq = u16::from_be_bytes([rest[2], rest[3]]);
        match ty {
            kind::ECHO_REQUEST => {
                cx.inc(Counter::IcmpInEchos);
                if !meta.unicast {
                    // Like Linux's icmp_echo_ignore_broadcasts=1 (smurf amplification).
                    return cx.drop(
                        Direction::Rx,
                        Layer::Icmp,
                        DropReason::IcmpEchoBroadcast,
                        len,
                        || "echo request to a broadcast address ignored".into(),
                    );
                }
                cx.trace(Direction::Rx, Layer::Icmp, Verdict::Reply, len, 0, || {
                    format!(
                        "echo request id {ident} seq {seq} {} bytes",
                        len - HEADER_LEN
                    )
                });
                let mut reply = self.tx.buffer();
                reply.extend_from_slice(msg);
                reply[0] = kind::ECHO_REPLY;
                reply[2..4].fill(0);
                let c = checksum::checksum(&reply);
                reply[2..4].copy_from_slice(&c.to_be_bytes());
                cx.inc(Counter::IcmpOutMsgs);
                cx.inc(Counter::IcmpOutEchoReps);
                let _ = self.ipv4_output(cx, meta.src, PROTO_ICMP, &reply, false);
                self.tx.recycle(reply);
            }
            kind::ECHO_REPLY => {
                cx.inc(Counter::IcmpInEchoReps);
                let Some(&h) = self.ping.by_ident.get(&ident) else {
                    return cx.drop(
                        Direction::Rx,
                        Layer::Icmp,
                        DropReason::IcmpNoSocket,
                        len,
                        || format!("echo reply id {ident} seq {seq}"),
                    );
                };
                let limit = self.config.udp_rcv_buf;
                let sock = &mut self.ping.sockets[h];
                let data = &msg[HEADER_LEN..];
                if sock.queued_bytes + data.len() > limit {
                    return cx.drop(
                        Direction::Rx,
                        Layer::Icmp,
                        DropReason::UdpRcvBufFull,
                        len,
                        String::new,
                    );
                }
                sock.queued_bytes += data.len();
                sock.events.push_back(PingEvent::Reply(EchoReply {
                    from: meta.src,
                    seq,
                    ttl: meta.ttl,
                    data: data.to_vec(),
                    at: cx.now,
                }));
                cx.counters
                    .add(Counter::CopyFrameToRcvBuf, data.len() as u64);
                cx.trace(
                    Direction::Rx,
                    Layer::Socket,
                    Verdict::Deliver,
                    len,
                    data.len(),
                    || format!("echo reply id {ident} seq {seq} from {}", meta.src),
                );
                cx.notify(h);
            }
            kind::DEST_UNREACHABLE | kind::TIME_EXCEEDED | kind::PARAMETER_PROBLEM => {
                if ty == kind::DEST_UNREACHABLE {
                    cx.inc(Counter::IcmpInDestUnreachs);
                } else if ty == kind::TIME_EXCEEDED {
                    cx.inc(Counter::IcmpInTimeExcds);
                }
                let error = IcmpError::from_type_code(ty, code, rest).expect("type checked above");
                self.icmp_deliver_error(cx, meta.src, error, &msg[HEADER_LEN..]);
            }
            _ => cx.drop(
                Direction::Rx,
                Layer::Icmp,
                DropReason::IcmpUnsupportedType,
                len,
                || format!("type {ty} code {code}"),
            ),
        }
    }

    /// Delivers an arriving error to the socket that sent the quoted packet (RFC 1122 §3.2.2.1,
    /// §4.1.3.3, §4.2.3.9).
    fn icmp_deliver_error(
        &mut self,
        cx: &mut Cx<'_>,
        from: Ipv4Addr,
        error: IcmpError,
        quote: &[u8],
    ) {
        let bad = |cx: &mut Cx<'_>, why: &'static str| {
            cx.inc(Counter::IcmpInErrors);
            cx.drop(
                Direction::Rx,
                Layer::Icmp,
                DropReason::IcmpBadError,
                quote.len(),
                || why.into(),
            );
        };
        if quote.len() < IP_HEADER_LEN || quote[0] >> 4 != 4 {
            return bad(cx, "quoted packet is not IPv4");
        }
        let ihl = (quote[0] & 0x0f) as usize * 4;
        if ihl < IP_HEADER_LEN || quote.len() < ihl + 8 {
            return bad(cx, "quote shorter than IP header + 8 bytes");
        }
        let src = Ipv4Addr::new(quote[12], quote[13], quote[14], quote[15]);
        let dst = Ipv4Addr::new(quote[16], quote[17], quote[18], quote[19]);
        if src != self.config.addr {
            return bad(cx, "quoted packet was not sent by us");
        }
        let t = &quote[ihl..];
        let (sport, dport) = (
            u16::from_be_bytes([t[0], t[1]]),
            u16::from_be_bytes([t[2], t[3]]),
        );
        let (local, remote) = (SocketAddrV4::new(src, sport), SocketAddrV4::new(dst, dport));
        cx.trace(
            Direction::Rx,
            Layer::Icmp,
            Verdict::Deliver,
            quote.len() + HEADER_LEN,
            0,
            || {
                format!(
                    "{error:?} from {from} about {local} > {remote} proto {}",
                    quote[9]
                )
            },
        );
        match quote[9] {
            PROTO_UDP => self.udp.deliver_error(cx, local, remote, error),
            PROTO_TCP => {
                let seq = u32::from_be_bytes([t[4], t[5], t[6], t[7]]);
                let mtu = match error {
                    IcmpError::FragmentationNeeded { mtu } => Some(mtu),
                    _ => None,
                };
                self.tcp
                    .handle_icmp_error(cx, local, remote, seq, error.is_hard(), mtu);
            }
            PROTO_ICMP if t[0] == kind::ECHO_REQUEST => {
                let ident = u16::from_be_bytes([t[4], t[5]]);
                let seq = u16::from_be_bytes([t[6], t[7]]);
                if let Some(&h) = self.ping.by_ident.get(&ident) {
                    self.ping.sockets[h]
                        .events
                        .push_back(PingEvent::Error { from, error, seq });
                    cx.notify(h);
                }
            }
            _ => {}
        }
    }

    /// Sends an ICMP error about a received datagram (`header` = its IP header, `payload` = its
    /// payload), obeying RFC 1122 §3.2.2: never about an ICMP error, a broadcast/multicast
    /// datagram, or a non-first fragment; and never faster than the token bucket allows.
    pub(crate) fn icmp_send_error(
        &mut self,
        cx: &mut Cx<'_>,
        meta: IpMeta,
        error: IcmpError,
        header: &[u8],
        payload: &[u8],
    ) {
        let about_error = meta.protocol == PROTO_ICMP
            && payload.first().is_some_and(|&t| {
                matches!(
                    t,
                    kind::DEST_UNREACHABLE
                        | kind::SOURCE_QUENCH
                        | kind::REDIRECT
                        | kind::TIME_EXCEEDED
                        | kind::PARAMETER_PROBLEM
                )
            });
        if about_error || !meta.unicast || !meta.first_fragment || meta.src.is_unspecified() {
            return;
        }
        if !self.icmp_limiter.take(cx.now) {
            cx.inc(Counter::IcmpOutRateLimited);
            return cx.drop(
                Direction::Tx,
                Layer::Icmp,
                DropReason::IcmpRateLimited,
                0,
                || format!("{error:?} to {}", meta.src),
            );
        }
        let (ty, code) = error.type_code();
        let quote_len =
            (header.len() + payload.len()).min(MAX_ERROR_LEN - IP_HEADER_LEN - HEADER_LEN);
        let mut msg = self.tx.buffer();
        msg.resize(HEADER_LEN, 0);
        msg[0] = ty;
        msg[1] = code;
        if let IcmpError::FragmentationNeeded { mtu } = error {
            msg[6..8].copy_from_slice(&mtu.to_be_bytes());
        }
        msg.extend_from_slice(header);
        let rest = quote_len.saturating_sub(header.len());
        msg.extend_from_slice(&payload[..rest.min(payload.len())]);
        msg.truncate(HEADER_LEN + quote_len);
        let c = checksum::checksum(&msg);
        msg[2..4].copy_from_slice(&c.to_be_bytes());
        cx.inc(Counter::IcmpOutMsgs);
        if ty == kind::DEST_UNREACHABLE {
            cx.inc(Counter::IcmpOutDestUnreachs);
        }
        cx.trace(
            Direction::Tx,
            Layer::Icmp,
            Verdict::Emit,
            msg.len(),
            0,
            || format!("{error:?} to {}", meta.src),
        );
        let _ = self.ipv4_output(cx, meta.src, PROTO_ICMP, &msg, false);
        self.tx.recycle(msg);
    }

    /// Sends an echo request from ping socket `h`.
    pub(crate) fn icmp_send_echo(
        &mut self,
        cx: &mut Cx<'_>,
        ident: u16,
        dst: Ipv4Addr,
        seq: u16,
        data: &[u8],
    ) -> Result<(), DropReason> {
        let mut msg = self.tx.buffer();
        msg.resize(HEADER_LEN, 0);
        msg[0] = kind::ECHO_REQUEST;
        msg[4..6].copy_from_slice(&ident.to_be_bytes());
        msg[6..8].copy_from_slice(&seq.to_be_bytes());
        msg.extend_from_slice(data);
        let c = checksum::checksum(&msg);
        msg[2..4].copy_from_slice(&c.to_be_bytes());
        cx.inc(Counter::IcmpOutMsgs);
        cx.inc(Counter::IcmpOutEchos);
        cx.counters.add(Counter::CopyAppToFrame, data.len() as u64);
        cx.trace(
            Direction::Tx,
            Layer::Icmp,
            Verdict::Emit,
            msg.len(),
            data.len(),
            || format!("echo request id {ident} seq {seq} to {dst}"),
        );
        let r = self.ipv4_output(cx, dst, PROTO_ICMP, &msg, false);
        self.tx.recycle(msg);
        r
    }
}
