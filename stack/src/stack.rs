//! [`Stack`]: the sans-IO entry points (`handle_frame`, `handle_timeout`, `poll_transmit`,
//! `poll_at`) and the socket API of every protocol.

use core::net::{Ipv4Addr, SocketAddrV4};

use smoltcp::wire::ArpOperation;

use crate::arp::ArpEntry;
use crate::config::Config;
use crate::counters::{Counter, Counters, DropReason};
use crate::cx::Cx;
use crate::ethernet;
use crate::icmp::PingEvent;
use crate::interface::Interface;
use crate::ipv4;
use crate::socket::{IcmpHandle, Readiness, ReadinessQueue, SocketHandle, TcpHandle, UdpHandle};
use crate::tcp::send_buffer::SharedBytes;
use crate::tcp::{TcpError, TcpLayer};
use crate::time::Instant;
use crate::trace::{Direction, Layer, Tracer, Verdict};
use crate::udp::UdpError;

/// Errors of the ping socket API.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PingError {
    /// Another ping socket uses this identifier.
    #[error("echo identifier already in use")]
    IdentInUse,
    /// No such socket.
    #[error("no such ping socket")]
    InvalidHandle,
    /// The request could not be sent.
    #[error("echo request not sent: {0}")]
    NotSent(DropReason),
}

/// A host's whole network stack, sans-IO. See the crate docs for the driver loop.
#[derive(Debug)]
pub struct Stack {
    iface: Interface,
    counters: Counters,
    tracer: Tracer,
    readiness: ReadinessQueue,
    frame_seq: u64,
    /// The latest `now` passed in (for trace events of calls that take no time, like reads).
    last_now: Instant,
}

/// Builds a [`Cx`] from disjoint fields of a [`Stack`] (a macro, so the borrow checker sees the
/// fields separately from `iface`).
macro_rules! cx {
    ($s:ident, $now:expr) => {{
        $s.frame_seq += 1;
        $s.last_now = $now;
        Cx {
            now: $now,
            frame: $s.frame_seq,
            counters: &mut $s.counters,
            tracer: &mut $s.tracer,
            readiness: &mut $s.readiness,
        }
    }};
}

impl Stack {
    /// A stack with `config`, started at `now`: announces itself with a gratuitous ARP
    /// (RFC 5227 §2.3) if configured to.
    pub fn new(config: Config, now: Instant) -> Stack {
        let mut s = Stack {
            iface: Interface::new(config, now),
            counters: Counters::default(),
            tracer: Tracer::new(0),
            readiness: ReadinessQueue::default(),
            frame_seq: 0,
            last_now: now,
        };
        if s.iface.config.arp.gratuitous {
            let me = s.iface.config.addr;
            let mut cx = cx!(s, now);
            s.iface.arp_send(&mut cx, ArpOperation::Request, [0; 6], me);
        }
        s
    }

    /// The configuration the stack was built with.
    pub fn config(&self) -> &Config {
        &self.iface.config
    }

    /// Enables tracing, keeping at most `capacity` events (0 disables).
    pub fn set_trace_capacity(&mut self, capacity: usize) {
        self.tracer.set_capacity(capacity);
    }

    /// The trace buffer (drain it to render the journey of frames).
    pub fn tracer(&mut self) -> &mut Tracer {
        &mut self.tracer
    }

    /// Every counter and drop count.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The ARP cache, like `ip neigh`.
    pub fn arp_entries(&self) -> Vec<ArpEntry> {
        self.iface.arp.entries()
    }

    /// Bytes held by IPv4 reassembly right now.
    pub fn reassembly_memory(&self) -> usize {
        self.iface.reassembler.memory_used()
    }

    /// Frames built and waiting for [`Stack::poll_transmit`].
    pub fn tx_queue_len(&self) -> usize {
        self.iface.tx.len()
    }

    /// Processes one received Ethernet frame (borrowed: nothing is copied unless a socket keeps
    /// the payload).
    pub fn handle_frame(&mut self, now: Instant, frame: &[u8]) {
        let mut cx = cx!(self, now);
        cx.trace(
            Direction::Rx,
            Layer::Nic,
            Verdict::Pass,
            frame.len(),
            0,
            String::new,
        );
        self.iface.ethernet_input(&mut cx, frame);
    }

    /// Runs every timer that is due (ARP retries and expiry, reassembly timeouts, TCP timers).
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut cx = cx!(self, now);
        self.iface.arp_timeout(&mut cx);
        self.iface.ipv4_timeout(&mut cx);
        self.iface.tcp.handle_timeout(&mut cx);
    }

    /// Writes the next frame to send into `buf` and returns its length, or `None` when there is
    /// nothing to send. Call repeatedly until `None`. `buf` should hold MTU + 14 bytes.
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        loop {
            if let Some(frame) = self.iface.tx.pop() {
                let len = frame.len();
                if len > buf.len() {
                    self.counters.drop(DropReason::TxQueueFull);
                    self.iface.tx.recycle(frame);
                    continue;
                }
                buf[..len].copy_from_slice(&frame);
                self.iface.tx.recycle(frame);
                self.count_out(len);
                return Some(len);
            }
            let max = buf.len().min(ethernet::HEADER_LEN + self.iface.config.mtu);
            let hdrs = ethernet::HEADER_LEN + ipv4::HEADER_LEN;
            if max < hdrs + 20 {
                return None;
            }
            let mut cx = cx!(self, now);
            let t = self.iface.tcp.poll_transmit(&mut cx, &mut buf[hdrs..max])?;
            if let Some(len) = self
                .iface
                .finish_tcp_frame(&mut cx, buf, t.src, t.dst, t.len)
            {
                self.count_out(len);
                return Some(len);
            }
        }
    }

    fn count_out(&mut self, len: usize) {
        self.counters.inc(Counter::EthOutFrames);
        self.counters.add(Counter::EthOutOctets, len as u64);
    }

    /// The earliest time [`Stack::handle_timeout`] has work to do.
    pub fn poll_at(&self) -> Option<Instant> {
        [
            self.iface.arp.poll_at(),
            self.iface.reassembler.poll_at(),
            self.iface.tcp.poll_at(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The next socket whose readiness may have changed (the epoll "callback"), oldest first.
    pub fn poll_readiness(&mut self) -> Option<SocketHandle> {
        self.readiness.pop()
    }

    /// What a socket is ready for now.
    pub fn readiness(&self, h: SocketHandle) -> Readiness {
        match h {
            SocketHandle::Tcp(t) => self.iface.tcp.readiness(t),
            SocketHandle::Udp(u) => self.iface.udp.readiness(u),
            SocketHandle::Icmp(i) => {
                let mut r = Readiness::WRITABLE;
                if self.iface.ping.has_events(i) {
                    r |= Readiness::READABLE;
                }
                r
            }
        }
    }

    // ----- UDP -----

    /// Binds a UDP socket (`0.0.0.0` = any of our addresses; port 0 = an ephemeral port).
    pub fn udp_bind(&mut self, local: SocketAddrV4) -> Result<UdpHandle, UdpError> {
        self.iface.udp.bind(local)
    }

    /// Sets the default destination and only accepts datagrams from it.
    pub fn udp_connect(&mut self, h: UdpHandle, remote: SocketAddrV4) -> Result<(), UdpError> {
        self.iface.udp.connect(h, remote)
    }

    /// The address a UDP socket is bound to.
    pub fn udp_local_addr(&self, h: UdpHandle) -> Result<SocketAddrV4, UdpError> {
        self.iface.udp.local_addr(h)
    }

    /// The peer of a connected UDP socket.
    pub fn udp_peer_addr(&self, h: UdpHandle) -> Result<Option<SocketAddrV4>, UdpError> {
        self.iface.udp.remote(h)
    }

    /// Sends one datagram to `dst`.
    pub fn udp_send_to(
        &mut self,
        now: Instant,
        h: UdpHandle,
        data: &[u8],
        dst: SocketAddrV4,
    ) -> Result<(), UdpError> {
        let mut cx = cx!(self, now);
        self.iface.udp_output(&mut cx, h, Some(dst), data)
    }

    /// Sends one datagram to the connected peer.
    pub fn udp_send(&mut self, now: Instant, h: UdpHandle, data: &[u8]) -> Result<(), UdpError> {
        let mut cx = cx!(self, now);
        self.iface.udp_output(&mut cx, h, None, data)
    }

    /// Takes the oldest queued datagram ([`UdpError::WouldBlock`] if none).
    pub fn udp_recv_from(
        &mut self,
        h: UdpHandle,
        buf: &mut [u8],
    ) -> Result<(usize, SocketAddrV4), UdpError> {
        let (n, from) = self.iface.udp.recv_from(h, buf)?;
        self.trace_app_read(SocketHandle::Udp(h), n, || {
            format!("recvfrom {n} bytes from {from}")
        });
        Ok((n, from))
    }

    /// Records the application's read: "stage two", the copy out of the socket buffer.
    fn trace_app_read(&mut self, h: SocketHandle, n: usize, summary: impl FnOnce() -> String) {
        let mut cx = cx!(self, self.last_now);
        cx.counters.add(Counter::CopyRcvBufToApp, n as u64);
        cx.trace(Direction::Rx, Layer::App, Verdict::Deliver, n, n, || {
            format!("{h:?}: {}", summary())
        });
    }

    /// Closes a UDP socket.
    pub fn udp_close(&mut self, h: UdpHandle) -> Result<(), UdpError> {
        self.iface.udp.close(h)
    }

    // ----- ICMP echo ("ping") -----

    /// Opens a ping socket that receives echo replies carrying identifier `ident`.
    pub fn ping_open(&mut self, ident: u16) -> Result<IcmpHandle, PingError> {
        self.iface.ping.open(ident).ok_or(PingError::IdentInUse)
    }

    /// Sends an echo request with sequence number `seq` and payload `data` to `dst`.
    pub fn ping_send(
        &mut self,
        now: Instant,
        h: IcmpHandle,
        dst: Ipv4Addr,
        seq: u16,
        data: &[u8],
    ) -> Result<(), PingError> {
        let ident = self.iface.ping.ident(h).ok_or(PingError::InvalidHandle)?;
        let mut cx = cx!(self, now);
        self.iface
            .icmp_send_echo(&mut cx, ident, dst, seq, data)
            .map_err(PingError::NotSent)
    }

    /// Takes the next reply or error received by a ping socket.
    pub fn ping_recv(&mut self, h: IcmpHandle) -> Option<PingEvent> {
        let ev = self.iface.ping.recv(h)?;
        if let PingEvent::Reply(r) = &ev {
            let (n, seq) = (r.data.len(), r.seq);
            self.trace_app_read(SocketHandle::Icmp(h), n, || format!("echo reply seq {seq}"));
        }
        Some(ev)
    }

    /// Closes a ping socket.
    pub fn ping_close(&mut self, h: IcmpHandle) -> Result<(), PingError> {
        self.iface
            .ping
            .close(h)
            .then_some(())
            .ok_or(PingError::InvalidHandle)
    }

    // ----- TCP -----

    /// The TCP layer, for introspection (connection table, per-connection info).
    pub fn tcp(&self) -> &TcpLayer {
        &self.iface.tcp
    }

    /// The TCP layer, for socket options (`set_nodelay`, `set_keepalive`, buffer sizes...).
    pub fn tcp_mut(&mut self) -> &mut TcpLayer {
        &mut self.iface.tcp
    }

    /// Opens a listener on `port` of our address with an accept queue of `backlog` (at most
    /// [`Config::max_accept_backlog`]).
    pub fn tcp_listen(&mut self, port: u16, backlog: usize) -> Result<TcpHandle, TcpError> {
        let local = SocketAddrV4::new(self.iface.config.addr, port);
        let backlog = backlog.min(self.iface.config.max_accept_backlog);
        self.iface.tcp.listen(local, backlog)
    }

    /// Starts connecting to `remote` from `local_port` (0 = ephemeral).
    pub fn tcp_connect(
        &mut self,
        now: Instant,
        remote: SocketAddrV4,
        local_port: u16,
    ) -> Result<TcpHandle, TcpError> {
        let local = SocketAddrV4::new(self.iface.config.addr, local_port);
        let mut cx = cx!(self, now);
        self.iface.tcp.connect(&mut cx, local, remote)
    }

    /// Takes an established connection from a listener ([`TcpError::WouldBlock`] if none).
    pub fn tcp_accept(&mut self, listener: TcpHandle) -> Result<TcpHandle, TcpError> {
        self.iface.tcp.accept(listener)
    }

    /// Queues as much of `data` as the send buffer takes; returns how much.
    pub fn tcp_send(&mut self, now: Instant, h: TcpHandle, data: &[u8]) -> Result<usize, TcpError> {
        let mut cx = cx!(self, now);
        tag_flow(&mut cx, &self.iface.tcp, h, false);
        self.iface.tcp.send(&mut cx, h, data)
    }

    /// Reads received bytes; `Ok(0)` is end of stream.
    pub fn tcp_recv(
        &mut self,
        now: Instant,
        h: TcpHandle,
        buf: &mut [u8],
    ) -> Result<usize, TcpError> {
        let mut cx = cx!(self, now);
        tag_flow(&mut cx, &self.iface.tcp, h, true);
        self.iface.tcp.recv(&mut cx, h, buf)
    }

    /// Queues bytes written in place into the send buffer (zero-copy `tcp_send`): `f` gets the
    /// contiguous free space (maybe only its first part, when it wraps around the ring) and
    /// returns how many bytes it wrote. See [`TcpLayer::send_with`].
    pub fn tcp_send_with(
        &mut self,
        now: Instant,
        h: TcpHandle,
        f: impl FnOnce(&mut [u8]) -> usize,
    ) -> Result<usize, TcpError> {
        let mut cx = cx!(self, now);
        self.iface.tcp.send_with(&mut cx, h, f)
    }

    /// Queues `bytes[range]` by reference (zero-copy `tcp_send` for shared immutable memory,
    /// e.g. a file mapping): as much as the send buffer has room for; returns how many bytes
    /// from `range.start` were taken. Segmentation copies them straight into frames. See
    /// [`TcpLayer::send_external`] (accounting, descriptor limit, panics).
    pub fn tcp_send_external(
        &mut self,
        now: Instant,
        h: TcpHandle,
        bytes: &SharedBytes,
        range: core::ops::Range<usize>,
    ) -> Result<usize, TcpError> {
        let mut cx = cx!(self, now);
        tag_flow(&mut cx, &self.iface.tcp, h, false);
        self.iface.tcp.send_external(&mut cx, h, bytes, range)
    }

    /// Reads received bytes in place (zero-copy `tcp_recv`): `f` borrows the contiguous readable
    /// bytes (maybe only their first part, when they wrap around the ring) and returns how many
    /// it consumed. See [`TcpLayer::recv_with`].
    pub fn tcp_recv_with(
        &mut self,
        now: Instant,
        h: TcpHandle,
        f: impl FnOnce(&[u8]) -> usize,
    ) -> Result<usize, TcpError> {
        let mut cx = cx!(self, now);
        self.iface.tcp.recv_with(&mut cx, h, f)
    }

    /// Shuts down the sending side.
    pub fn tcp_shutdown(&mut self, now: Instant, h: TcpHandle) -> Result<(), TcpError> {
        let mut cx = cx!(self, now);
        self.iface.tcp.shutdown(&mut cx, h)
    }

    /// Closes the connection (orderly release).
    pub fn tcp_close(&mut self, now: Instant, h: TcpHandle) -> Result<(), TcpError> {
        let mut cx = cx!(self, now);
        self.iface.tcp.close(&mut cx, h)
    }

    /// Aborts the connection with RST.
    pub fn tcp_abort(&mut self, now: Instant, h: TcpHandle) -> Result<(), TcpError> {
        let mut cx = cx!(self, now);
        self.iface.tcp.abort(&mut cx, h)
    }
}

/// Tags the events of an application call on connection `h` with its flow, as it appears on
/// the wire in that direction (`inbound`: peer → us), so traces filter by connection.
fn tag_flow(cx: &mut Cx<'_>, tcp: &TcpLayer, h: TcpHandle, inbound: bool) {
    if !cx.tracer.enabled() {
        return;
    }
    if let (Some(local), Some(peer)) = (tcp.local_addr(h), tcp.peer_addr(h)) {
        let (src, dst) = if inbound {
            (peer, local)
        } else {
            (local, peer)
        };
        cx.set_flow(crate::trace::Flow {
            protocol: ipv4::PROTO_TCP,
            src,
            dst,
        });
    }
}
