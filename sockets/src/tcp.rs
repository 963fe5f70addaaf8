//! [`TcpListener`] and [`TcpStream`]: std-like TCP sockets over a [`Net`].
//!
//! The call sequence of the notes — server: `socket`/`bind`/`listen` ([`TcpListener::bind`]),
//! `accept` ([`TcpListener::accept`]), `read`/`write`, `close` (drop); client: `connect`
//! ([`TcpStream::connect`]), `write`/`read`, `close` — with their return values:
//!
//! - `read` returns `n > 0` bytes, `0` once the peer has closed its side (end of stream), or an
//!   error: `WouldBlock` (`EAGAIN`) on a non-blocking socket with nothing buffered or when a
//!   read timeout expires, `ConnectionReset`, `TimedOut`...;
//! - a blocking `write` returns once *all* of the buffer is in the send buffer (as Linux's
//!   blocking `send` does); a non-blocking one copies what fits (`n > 0`) or fails with
//!   `WouldBlock`; after `shutdown(Write)` it fails with `BrokenPipe`.
//!
//! **Blocking** (the default) is I/O model 1: the call drives the stack until the data is there
//! *and* copied. **Non-blocking** ([`TcpStream::set_nonblocking`]) is model 2: the call
//! returns `WouldBlock` at once and the program polls again later.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddrV4};
use std::time::Duration;

use ringstack_stack::tcp::{State, TcpInfo};
use ringstack_stack::TcpError;

use crate::core::Kind;
use crate::error;
use crate::events::Events;
use crate::fd::Fd;
use crate::net::Net;

/// The listen backlog used by [`TcpListener::bind`] (std uses 128 too).
pub const DEFAULT_BACKLOG: usize = 128;

pub(crate) fn timeout_for(nonblocking: bool, t: Option<Duration>) -> Option<Duration> {
    if nonblocking {
        Some(Duration::ZERO)
    } else {
        t
    }
}

/// A listening TCP socket. Closed when dropped.
pub struct TcpListener {
    net: Net,
    fd: Fd,
}

impl TcpListener {
    /// `socket` + `bind` + `listen(DEFAULT_BACKLOG)`. The address must be this machine's or
    /// `0.0.0.0`; the port must not be 0.
    pub fn bind(net: &Net, addr: SocketAddrV4) -> io::Result<TcpListener> {
        TcpListener::listen(net, addr, DEFAULT_BACKLOG)
    }

    /// `socket` + `bind` + `listen(backlog)`: at most `backlog` established connections wait
    /// in the accept queue; beyond that new handshakes are not completed.
    pub fn listen(net: &Net, addr: SocketAddrV4, backlog: usize) -> io::Result<TcpListener> {
        let fd = net.call(|core, p| {
            let stack = core.stack(p);
            let ours = stack.config().addr;
            if !addr.ip().is_unspecified() && *addr.ip() != ours {
                return Err(io::Error::new(
                    io::ErrorKind::AddrNotAvailable,
                    format!("{} is not this machine's address ({ours})", addr.ip()),
                ));
            }
            let h = stack.tcp_listen(addr.port(), backlog).map_err(error::tcp)?;
            Ok(core.open(p, Kind::Tcp(h)))
        })?;
        Ok(TcpListener {
            net: net.clone(),
            fd,
        })
    }

    /// The listener's descriptor.
    pub fn fd(&self) -> Fd {
        self.fd
    }

    /// The `Net` it lives on.
    pub fn net(&self) -> &Net {
        &self.net
    }

    /// `accept`: the next established connection and its peer's address. Blocks (driving the
    /// stack) unless non-blocking, in which case an empty queue gives `WouldBlock`.
    pub fn accept(&self) -> io::Result<(TcpStream, SocketAddrV4)> {
        let fd = self.fd;
        let nonblocking = self
            .net
            .with_raw(|c, p| c.file(p, fd).map(|f| f.nonblocking))?;
        let new = self.net.block(timeout_for(nonblocking, None), |core, p| {
            match core.tcp_accept(p, fd) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => None,
                r => Some(r),
            }
        })?;
        let stream = TcpStream::from_fd(&self.net, new);
        let peer = stream.peer_addr()?;
        Ok((stream, peer))
    }

    /// An iterator over accepted connections (like std's `incoming`).
    pub fn incoming(&self) -> impl Iterator<Item = io::Result<TcpStream>> + '_ {
        std::iter::from_fn(move || Some(self.accept().map(|(s, _)| s)))
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddrV4> {
        socket_local_addr(&self.net, self.fd)
    }

    /// `O_NONBLOCK`.
    pub fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        set_nonblocking(&self.net, self.fd, on)
    }

    /// Registers a readiness callback (see [`crate::signal`]): `IN` = a connection to accept.
    pub fn on_ready(
        &self,
        interest: Events,
        f: impl FnMut(Fd, Events) + Send + 'static,
    ) -> io::Result<()> {
        self.net.set_readiness_callback(self.fd, interest, f)
    }
}

impl Drop for TcpListener {
    fn drop(&mut self) {
        let fd = self.fd;
        let _ = self.net.call(|core, p| core.close(p, fd));
    }
}

impl std::fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpListener").field("fd", &self.fd).finish()
    }
}

/// A TCP connection. Closed (orderly FIN) when dropped. `&TcpStream` implements `Read` and
/// `Write` too, so it can be shared between threads (in the threaded model) like std's.
pub struct TcpStream {
    net: Net,
    fd: Fd,
}

impl TcpStream {
    pub(crate) fn from_fd(net: &Net, fd: Fd) -> TcpStream {
        TcpStream {
            net: net.clone(),
            fd,
        }
    }

    /// `connect`, blocking until the handshake completes or fails (`ConnectionRefused` on RST,
    /// `TimedOut` after the SYN retries).
    pub fn connect(net: &Net, addr: SocketAddrV4) -> io::Result<TcpStream> {
        Self::connect_inner(net, addr, None)
    }

    /// `connect` giving up after `timeout` (`TimedOut`).
    pub fn connect_timeout(
        net: &Net,
        addr: SocketAddrV4,
        timeout: Duration,
    ) -> io::Result<TcpStream> {
        Self::connect_inner(net, addr, Some(timeout))
    }

    /// A non-blocking `connect` (`EINPROGRESS`): returns a non-blocking stream at once; it
    /// becomes writable (`OUT`) when the handshake completes, or reports `ERR` — then
    /// [`TcpStream::take_error`] says why.
    pub fn connect_nonblocking(net: &Net, addr: SocketAddrV4) -> io::Result<TcpStream> {
        let fd = net.call(|core, p| {
            let now = core.now;
            let h = core
                .stack(p)
                .tcp_connect(now, addr, 0)
                .map_err(error::tcp)?;
            let fd = core.open(p, Kind::Tcp(h));
            core.file_mut(p, fd)?.nonblocking = true;
            Ok(fd)
        })?;
        Ok(TcpStream::from_fd(net, fd))
    }

    fn connect_inner(
        net: &Net,
        addr: SocketAddrV4,
        timeout: Option<Duration>,
    ) -> io::Result<TcpStream> {
        let stream = TcpStream::connect_nonblocking(net, addr)?;
        let fd = stream.fd;
        net.with_raw(|c, p| c.file_mut(p, fd).map(|f| f.nonblocking = false))?;
        let r = net.block(timeout, |core, p| core.tcp_connect_result(p, fd));
        match r {
            Ok(()) => Ok(stream),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "connect timed out (ETIMEDOUT)",
            )),
            Err(e) => Err(e),
        }
    }

    /// The connection's descriptor.
    pub fn fd(&self) -> Fd {
        self.fd
    }

    /// The `Net` it lives on.
    pub fn net(&self) -> &Net {
        &self.net
    }

    fn with_handle<T>(
        &self,
        f: impl FnOnce(&mut ringstack_stack::Stack, ringstack_stack::TcpHandle) -> T,
    ) -> io::Result<T> {
        let fd = self.fd;
        self.net.with_raw(|core, p| {
            let h = core.tcp_handle(p, fd)?;
            Ok(f(core.stack(p), h))
        })
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddrV4> {
        self.with_handle(|s, h| s.tcp().peer_addr(h))?
            .ok_or_else(|| error::tcp(TcpError::NotConnected))
    }

    /// Our address.
    pub fn local_addr(&self) -> io::Result<SocketAddrV4> {
        socket_local_addr(&self.net, self.fd)
    }

    /// The RFC 9293 state (`None` once the stack has forgotten the connection).
    pub fn state(&self) -> Option<State> {
        self.with_handle(|s, h| s.tcp().state(h)).ok().flatten()
    }

    /// A snapshot like `ss -ti`.
    pub fn info(&self) -> Option<TcpInfo> {
        self.with_handle(|s, h| s.tcp().info(h)).ok().flatten()
    }

    /// What the socket is ready for now.
    pub fn readiness(&self) -> Events {
        self.net.readiness(self.fd).unwrap_or(Events::NVAL)
    }

    /// `SO_ERROR`: takes the pending error, if any.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        Ok(self
            .with_handle(|s, h| s.tcp_mut().take_error(h))?
            .map(error::tcp))
    }

    /// `shutdown(2)`: `Write` sends FIN after the queued data (later writes fail with
    /// `BrokenPipe`); `Read` makes later reads return 0; `Both` does both.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        let fd = self.fd;
        self.net.call(|core, p| {
            if matches!(how, Shutdown::Read | Shutdown::Both) {
                core.file_mut(p, fd)?.read_shut = true;
            }
            if matches!(how, Shutdown::Write | Shutdown::Both) {
                let h = core.tcp_handle(p, fd)?;
                let now = core.now;
                core.stack(p).tcp_shutdown(now, h).map_err(error::tcp)?;
            }
            core.notify(p, fd);
            Ok(())
        })
    }

    /// `TCP_NODELAY`: disables Nagle's algorithm.
    pub fn set_nodelay(&self, on: bool) -> io::Result<()> {
        self.with_handle(|s, h| s.tcp_mut().set_nodelay(h, on))?
            .map_err(error::tcp)?;
        let fd = self.fd;
        self.net
            .with_raw(|c, p| c.file_mut(p, fd).map(|f| f.nodelay = Some(on)))
    }

    /// Whether `TCP_NODELAY` is set.
    pub fn nodelay(&self) -> io::Result<bool> {
        let fd = self.fd;
        self.net.with_raw(|c, p| {
            let set = c.file(p, fd)?.nodelay;
            Ok(set.unwrap_or_else(|| c.stack(p).tcp().config().nodelay))
        })
    }

    /// `SO_SNDBUF` (possible while the send buffer is empty).
    pub fn set_send_buffer_size(&self, bytes: usize) -> io::Result<()> {
        self.with_handle(|s, h| s.tcp_mut().set_send_buffer(h, bytes))?
            .map_err(error::tcp)
    }

    /// `O_NONBLOCK`: model 2 — calls that cannot complete return `WouldBlock` at once.
    pub fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        set_nonblocking(&self.net, self.fd, on)
    }

    /// `SO_RCVTIMEO`: a blocking read gives up with `WouldBlock` after `t` (`None` = never).
    /// A zero duration is refused, as std does.
    pub fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        check_timeout(t)?;
        let fd = self.fd;
        self.net
            .with_raw(|c, p| c.file_mut(p, fd).map(|f| f.read_timeout = t))
    }

    /// `SO_SNDTIMEO`: a blocking write gives up after `t`, returning what it queued so far
    /// (or `WouldBlock` if nothing).
    pub fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        check_timeout(t)?;
        let fd = self.fd;
        self.net
            .with_raw(|c, p| c.file_mut(p, fd).map(|f| f.write_timeout = t))
    }

    /// The read timeout.
    pub fn read_timeout(&self) -> io::Result<Option<Duration>> {
        let fd = self.fd;
        self.net
            .with_raw(|c, p| c.file(p, fd).map(|f| f.read_timeout))
    }

    /// The write timeout.
    pub fn write_timeout(&self) -> io::Result<Option<Duration>> {
        let fd = self.fd;
        self.net
            .with_raw(|c, p| c.file(p, fd).map(|f| f.write_timeout))
    }

    /// Registers a readiness callback (see [`crate::signal`]).
    pub fn on_ready(
        &self,
        interest: Events,
        f: impl FnMut(Fd, Events) + Send + 'static,
    ) -> io::Result<()> {
        self.net.set_readiness_callback(self.fd, interest, f)
    }

    fn read_impl(&self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let fd = self.fd;
        let (nb, t) = self
            .net
            .with_raw(|c, p| c.file(p, fd).map(|f| (f.nonblocking, f.read_timeout)))?;
        self.net.block(timeout_for(nb, t), |core, p| {
            match core.tcp_recv(p, fd, buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => None,
                r => Some(r),
            }
        })
    }

    fn write_impl(&self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let fd = self.fd;
        let (nb, t) = self
            .net
            .with_raw(|c, p| c.file(p, fd).map(|f| (f.nonblocking, f.write_timeout)))?;
        let mut done = 0;
        let r = self.net.block(timeout_for(nb, t), |core, p| {
            match core.tcp_send(p, fd, &buf[done..]) {
                Ok(n) => {
                    done += n;
                    (done == buf.len() || nb).then_some(Ok(done))
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => None,
                Err(_) if done > 0 => Some(Ok(done)),
                Err(e) => Some(Err(e)),
            }
        });
        match r {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && done > 0 => Ok(done),
            r => r,
        }
    }
}

impl Read for TcpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_impl(buf)
    }
}

impl Read for &TcpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_impl(buf)
    }
}

impl Write for TcpStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_impl(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Write for &TcpStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_impl(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for TcpStream {
    fn drop(&mut self) {
        let fd = self.fd;
        let _ = self.net.call(|core, p| core.close(p, fd));
    }
}

impl std::fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpStream").field("fd", &self.fd).finish()
    }
}

pub(crate) fn set_nonblocking(net: &Net, fd: Fd, on: bool) -> io::Result<()> {
    net.with_raw(|c, p| c.file_mut(p, fd).map(|f| f.nonblocking = on))
}

pub(crate) fn check_timeout(t: Option<Duration>) -> io::Result<()> {
    if t == Some(Duration::ZERO) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a zero timeout is not allowed: use set_nonblocking(true) instead",
        ));
    }
    Ok(())
}

pub(crate) fn socket_local_addr(net: &Net, fd: Fd) -> io::Result<SocketAddrV4> {
    net.with_raw(|core, p| match core.file(p, fd)?.kind {
        Kind::Tcp(h) => core
            .stack(p)
            .tcp()
            .local_addr(h)
            .ok_or_else(|| error::tcp(TcpError::InvalidHandle)),
        Kind::Udp(h) => core.stack(p).udp_local_addr(h).map_err(error::udp),
        Kind::Epoll(_) => Err(error::bad_fd(fd)),
    })
}
