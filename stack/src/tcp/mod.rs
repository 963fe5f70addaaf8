//! TCP (RFC 9293). STUB: the interface the rest of the stack calls; the engine is being built.
//!
//! Call order (quinn-proto style, all sans-IO):
//! - ingress: [`TcpLayer::handle_segment`] for every TCP segment addressed to us (the IPv4
//!   header is already validated and stripped; `segment` is TCP header + payload);
//! - timers: [`TcpLayer::handle_timeout`] whenever `now >= poll_at()`;
//! - egress: [`TcpLayer::poll_transmit`] repeatedly until it returns `None`;
//! - the application API (`listen`, `connect`, `accept`, `send`, `recv`, `close`...) at any time.

use core::net::{Ipv4Addr, SocketAddrV4};

use crate::counters::DropReason;
use crate::cx::Cx;
use crate::socket::{Readiness, TcpHandle};
use crate::time::{Duration, Instant};
use crate::trace::{Direction, Layer};

/// TCP tunables. Defaults follow Linux where it has one.
#[derive(Clone, Debug)]
pub struct TcpConfig {
    /// IP MTU of the link; the advertised MSS is `mtu - 40`.
    pub mtu: usize,
    /// Seed for the ISN secret (RFC 6528) and ephemeral port choice (RFC 6056).
    pub seed: u64,
    /// Receive buffer size per connection, bytes.
    pub rcv_buf: usize,
    /// Send buffer size per connection, bytes.
    pub snd_buf: usize,
    /// Lower bound on the retransmission timeout (RFC 6298 says 1 s; Linux uses 200 ms).
    pub min_rto: Duration,
    /// TIME-WAIT duration (2*MSL).
    pub time_wait: Duration,
}

impl Default for TcpConfig {
    fn default() -> Self {
        TcpConfig {
            mtu: 1500,
            seed: 0,
            rcv_buf: 256 * 1024,
            snd_buf: 256 * 1024,
            min_rto: Duration::from_millis(200),
            time_wait: Duration::from_secs(60),
        }
    }
}

/// Errors of the TCP application API.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TcpError {
    /// The operation would block (EAGAIN).
    #[error("operation would block")]
    WouldBlock,
    /// No such socket (closed, or a stale handle).
    #[error("no such TCP socket")]
    InvalidHandle,
    /// The local address is already in use.
    #[error("address already in use")]
    AddrInUse,
    /// The operation is not valid in the socket's state.
    #[error("socket is not in a state that allows this operation")]
    InvalidState,
    /// Not connected.
    #[error("socket is not connected")]
    NotConnected,
    /// The peer refused the connection (RST in reply to SYN).
    #[error("connection refused")]
    ConnectionRefused,
    /// The connection was reset.
    #[error("connection reset by peer")]
    ConnectionReset,
    /// The connection timed out.
    #[error("connection timed out")]
    TimedOut,
    /// Writing after shutdown of the write side.
    #[error("broken pipe: the sending side is shut down")]
    BrokenPipe,
    /// No ephemeral port available.
    #[error("no ephemeral port available")]
    NoPorts,
}

/// A TCP segment ready to be wrapped in IPv4.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpTransmit {
    /// IPv4 source address.
    pub src: Ipv4Addr,
    /// IPv4 destination address.
    pub dst: Ipv4Addr,
    /// Bytes of TCP header + payload written into the buffer (checksum filled in).
    pub len: usize,
}

/// The TCP layer: every TCP socket of a stack, its demux tables and timers.
#[derive(Debug)]
pub struct TcpLayer {
    #[allow(dead_code)]
    config: TcpConfig,
}

impl TcpLayer {
    /// A TCP layer with no sockets.
    pub fn new(config: TcpConfig) -> Self {
        TcpLayer { config }
    }

    /// RFC 9293 §3.10.7: processes one arriving segment (`segment` = TCP header + data).
    pub fn handle_segment(
        &mut self,
        cx: &mut Cx<'_>,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        segment: &[u8],
    ) {
        let _ = (src, dst);
        cx.drop(
            Direction::Rx,
            Layer::Tcp,
            DropReason::TcpNoSocket,
            segment.len(),
            String::new,
        );
    }

    /// An ICMP error (RFC 1122 §4.2.3.9) quoting a segment we sent from `local` to `remote` with
    /// sequence number `seq`. `hard` errors (port/protocol unreachable) abort a connection in
    /// SYN-SENT; `mtu` is set for "fragmentation needed".
    pub fn handle_icmp_error(
        &mut self,
        cx: &mut Cx<'_>,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        seq: u32,
        hard: bool,
        mtu: Option<u16>,
    ) {
        let _ = (cx, local, remote, seq, hard, mtu);
    }

    /// Runs expired timers.
    pub fn handle_timeout(&mut self, cx: &mut Cx<'_>) {
        let _ = cx;
    }

    /// Writes the next segment to send into `buf` (at most `buf.len()` bytes).
    pub fn poll_transmit(&mut self, cx: &mut Cx<'_>, buf: &mut [u8]) -> Option<TcpTransmit> {
        let _ = (cx, buf);
        None
    }

    /// The earliest time a timer needs [`TcpLayer::handle_timeout`].
    pub fn poll_at(&self) -> Option<Instant> {
        None
    }

    /// Opens a listener on `local` (port must be non-zero) with an accept queue of `backlog`.
    pub fn listen(&mut self, local: SocketAddrV4, backlog: usize) -> Result<TcpHandle, TcpError> {
        let _ = (local, backlog);
        Err(TcpError::InvalidState)
    }

    /// Starts an active open from `local` (port 0 picks an ephemeral port) to `remote`.
    pub fn connect(
        &mut self,
        cx: &mut Cx<'_>,
        local: SocketAddrV4,
        remote: SocketAddrV4,
    ) -> Result<TcpHandle, TcpError> {
        let _ = (cx, local, remote);
        Err(TcpError::InvalidState)
    }

    /// Takes an established connection from a listener's accept queue.
    pub fn accept(&mut self, listener: TcpHandle) -> Result<TcpHandle, TcpError> {
        let _ = listener;
        Err(TcpError::WouldBlock)
    }

    /// Copies as much of `data` as fits into the send buffer; returns how much.
    pub fn send(&mut self, cx: &mut Cx<'_>, h: TcpHandle, data: &[u8]) -> Result<usize, TcpError> {
        let _ = (cx, h, data);
        Err(TcpError::InvalidHandle)
    }

    /// Reads received bytes; `Ok(0)` means the peer closed (end of stream).
    pub fn recv(
        &mut self,
        cx: &mut Cx<'_>,
        h: TcpHandle,
        buf: &mut [u8],
    ) -> Result<usize, TcpError> {
        let _ = (cx, h, buf);
        Err(TcpError::InvalidHandle)
    }

    /// Shuts down the sending side (FIN after queued data).
    pub fn shutdown(&mut self, cx: &mut Cx<'_>, h: TcpHandle) -> Result<(), TcpError> {
        let _ = (cx, h);
        Err(TcpError::InvalidHandle)
    }

    /// Closes the socket: FIN (or RST if unread data remains); the handle becomes invalid once the
    /// connection is gone.
    pub fn close(&mut self, cx: &mut Cx<'_>, h: TcpHandle) -> Result<(), TcpError> {
        let _ = (cx, h);
        Err(TcpError::InvalidHandle)
    }

    /// Aborts with RST.
    pub fn abort(&mut self, cx: &mut Cx<'_>, h: TcpHandle) -> Result<(), TcpError> {
        let _ = (cx, h);
        Err(TcpError::InvalidHandle)
    }

    /// What the socket is ready for.
    pub fn readiness(&self, h: TcpHandle) -> Readiness {
        let _ = h;
        Readiness::NONE
    }
}
