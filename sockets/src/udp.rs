//! [`UdpSocket`]: std-like datagram sockets over a [`Net`].
//!
//! Each `recv_from` takes one whole datagram (truncated to the buffer, the rest discarded, as
//! `recvfrom(2)` does); each `send_to` sends one. Blocking by default; `WouldBlock` when
//! non-blocking and nothing is queued. A connected socket (`connect`) only receives from its
//! peer and may use `send`/`recv`; an ICMP port unreachable for it shows up as
//! `ConnectionRefused` on the next receive.

use std::io;
use std::net::SocketAddrV4;
use std::time::Duration;

use crate::core::Kind;
use crate::error;
use crate::events::Events;
use crate::fd::Fd;
use crate::net::Net;
use crate::tcp::{check_timeout, set_nonblocking, socket_local_addr};

/// A UDP socket. Closed when dropped.
pub struct UdpSocket {
    net: Net,
    fd: Fd,
}

impl UdpSocket {
    /// `socket` + `bind`: port 0 picks an ephemeral port; address `0.0.0.0` or this machine's.
    pub fn bind(net: &Net, addr: SocketAddrV4) -> io::Result<UdpSocket> {
        let fd = net.call(|core, p| {
            let h = core.stack(p).udp_bind(addr).map_err(error::udp)?;
            Ok(core.open(p, Kind::Udp(h)))
        })?;
        Ok(UdpSocket {
            net: net.clone(),
            fd,
        })
    }

    /// The socket's descriptor.
    pub fn fd(&self) -> Fd {
        self.fd
    }

    /// The `Net` it lives on.
    pub fn net(&self) -> &Net {
        &self.net
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddrV4> {
        socket_local_addr(&self.net, self.fd)
    }

    /// The connected peer.
    pub fn peer_addr(&self) -> io::Result<SocketAddrV4> {
        let fd = self.fd;
        self.net
            .with_raw(|c, p| {
                let h = c.udp_handle(p, fd)?;
                c.stack(p).udp_peer_addr(h).map_err(error::udp)
            })?
            .ok_or_else(|| error::udp(ringstack_stack::UdpError::NotConnected))
    }

    /// Sets the default destination; from now on only datagrams from `addr` are received.
    pub fn connect(&self, addr: SocketAddrV4) -> io::Result<()> {
        let fd = self.fd;
        self.net.call(|c, p| {
            let h = c.udp_handle(p, fd)?;
            c.stack(p).udp_connect(h, addr).map_err(error::udp)
        })
    }

    /// Sends one datagram to `addr`; returns its length.
    pub fn send_to(&self, buf: &[u8], addr: SocketAddrV4) -> io::Result<usize> {
        let fd = self.fd;
        self.net.call(|c, p| c.udp_send(p, fd, buf, Some(addr)))
    }

    /// Sends one datagram to the connected peer.
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        let fd = self.fd;
        self.net.call(|c, p| c.udp_send(p, fd, buf, None))
    }

    /// Receives one datagram: its length (truncated to `buf`) and sender.
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddrV4)> {
        let fd = self.fd;
        let (nb, t) = self
            .net
            .with_raw(|c, p| c.file(p, fd).map(|f| (f.nonblocking, f.read_timeout)))?;
        let timeout = if nb { Some(Duration::ZERO) } else { t };
        self.net
            .block(timeout, |core, p| match core.udp_recv(p, fd, buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => None,
                r => Some(r),
            })
    }

    /// Receives one datagram from the connected peer.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.recv_from(buf).map(|(n, _)| n)
    }

    /// `O_NONBLOCK`.
    pub fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        set_nonblocking(&self.net, self.fd, on)
    }

    /// `SO_RCVTIMEO`: a blocking receive gives up with `WouldBlock` after `t`.
    pub fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        check_timeout(t)?;
        let fd = self.fd;
        self.net
            .with_raw(|c, p| c.file_mut(p, fd).map(|f| f.read_timeout = t))
    }

    /// What the socket is ready for now.
    pub fn readiness(&self) -> Events {
        self.net.readiness(self.fd).unwrap_or(Events::NVAL)
    }

    /// Registers a readiness callback (see [`crate::signal`]).
    pub fn on_ready(
        &self,
        interest: Events,
        f: impl FnMut(Fd, Events) + Send + 'static,
    ) -> io::Result<()> {
        self.net.set_readiness_callback(self.fd, interest, f)
    }
}

impl Drop for UdpSocket {
    fn drop(&mut self) {
        let fd = self.fd;
        let _ = self.net.call(|core, p| core.close(p, fd));
    }
}

impl std::fmt::Debug for UdpSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UdpSocket").field("fd", &self.fd).finish()
    }
}
