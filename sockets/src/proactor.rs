//! Asynchronous I/O, the proactor: submit an operation with an owned buffer, reap its
//! completion later.
//!
//! In the other four models the application performs the copy out of the socket buffer itself
//! ("stage two", synchronous even with epoll). Here it hands the buffer over with the request
//! ([`Ring::read`], [`Ring::write`], [`Ring::accept`], [`Ring::connect`]) and returns at once;
//! the driver ("the kernel") performs the operation when the socket is ready — the arriving
//! bytes are copied straight from the socket buffer into the submitted buffer, no staging copy
//! — and posts a [`Completion`] to the ring's completion queue. The application reaps
//! completions with [`Ring::reap`] (non-blocking) or [`Ring::wait`] (blocking): the shape of
//! io_uring (submission, then completion queue entries) and of POSIX `aio_read`.
//!
//! Operations on one descriptor complete in submission order per direction (reads/accepts,
//! writes). A write completes once the *whole* buffer is in the send buffer. Closing a
//! descriptor cancels its pending operations (completed with `Interrupted`); dropping a ring
//! discards its future completions (a connection accepted for it is closed).

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddrV4;
use std::time::Duration;

use crate::core::Kind;
use crate::fd::Fd;
use crate::net::Net;
use crate::tcp::TcpStream;

/// What a pending operation will do.
pub(crate) enum OpKind {
    Read(Vec<u8>),
    Write { buf: Vec<u8>, written: usize },
    Accept,
    Connect,
}

/// A submitted operation waiting for its socket.
pub(crate) struct PendingOp {
    pub ring: u64,
    pub user_data: u64,
    pub kind: OpKind,
}

/// A completion as posted by the driver (descriptors not yet wrapped in socket objects).
pub(crate) struct RawCompletion {
    pub ring: u64,
    pub user_data: u64,
    pub result: io::Result<usize>,
    pub buf: Vec<u8>,
    pub fd: Option<Fd>,
    pub from: Option<SocketAddrV4>,
}

impl RawCompletion {
    pub fn failed(op: PendingOp, e: io::Error) -> RawCompletion {
        let buf = match op.kind {
            OpKind::Read(b) | OpKind::Write { buf: b, .. } => b,
            _ => Vec::new(),
        };
        RawCompletion {
            ring: op.ring,
            user_data: op.user_data,
            result: Err(e),
            buf,
            fd: None,
            from: None,
        }
    }
}

/// A completion queue entry.
#[derive(Debug)]
pub struct Completion {
    /// The token given at submission.
    pub user_data: u64,
    /// Bytes read (`0` = end of stream) or written; `0` for accept/connect; or the error.
    pub result: io::Result<usize>,
    /// The submitted buffer, given back (a read's data is in `buf[..n]`).
    pub buf: Vec<u8>,
    /// The connection, for a successful accept or connect.
    pub stream: Option<TcpStream>,
    /// The sender, for a read on a UDP socket.
    pub from: Option<SocketAddrV4>,
}

/// A submission/completion ring on one machine.
pub struct Ring {
    net: Net,
    id: u64,
}

impl Ring {
    /// A ring with an empty completion queue.
    pub fn new(net: &Net) -> Ring {
        let id = net.with_raw(|core, _| {
            let id = core.next_ring;
            core.next_ring += 1;
            core.rings.insert(id, VecDeque::new());
            id
        });
        Ring {
            net: net.clone(),
            id,
        }
    }

    fn submit(&self, fd: Fd, user_data: u64, kind: OpKind) -> io::Result<()> {
        let ring = self.id;
        self.net.call(|core, p| {
            core.file_mut(p, fd)?.ops.push_back(PendingOp {
                ring,
                user_data,
                kind,
            });
            // Like io_uring, try at once: data already buffered completes immediately.
            core.progress_ops(p, fd);
            Ok(())
        })
    }

    /// Submits a read of up to `buf.len()` bytes from socket `fd` into `buf`.
    pub fn read(&self, fd: Fd, buf: Vec<u8>, user_data: u64) -> io::Result<()> {
        self.submit(fd, user_data, OpKind::Read(buf))
    }

    /// Submits a write of all of `buf` to socket `fd`.
    pub fn write(&self, fd: Fd, buf: Vec<u8>, user_data: u64) -> io::Result<()> {
        self.submit(fd, user_data, OpKind::Write { buf, written: 0 })
    }

    /// Submits an accept on listening socket `fd`; the completion carries the stream.
    pub fn accept(&self, fd: Fd, user_data: u64) -> io::Result<()> {
        self.submit(fd, user_data, OpKind::Accept)
    }

    /// Starts connecting to `addr` and submits the wait for the handshake; the completion
    /// carries the stream (or the error: `ConnectionRefused`, `TimedOut`).
    pub fn connect(&self, addr: SocketAddrV4, user_data: u64) -> io::Result<()> {
        let ring = self.id;
        self.net.call(|core, p| {
            let now = core.now;
            let h = core
                .stack(p)
                .tcp_connect(now, addr, 0)
                .map_err(crate::error::tcp)?;
            let fd = core.open(p, Kind::Tcp(h));
            core.file_mut(p, fd)?.ops.push_back(PendingOp {
                ring,
                user_data,
                kind: OpKind::Connect,
            });
            core.progress_ops(p, fd);
            Ok(())
        })
    }

    /// Moves every completion posted so far into `out` without waiting; returns how many.
    pub fn reap(&self, out: &mut Vec<Completion>) -> io::Result<usize> {
        let id = self.id;
        let raw: Vec<RawCompletion> = self.net.call(|core, _| {
            Ok(core
                .rings
                .get_mut(&id)
                .map_or_else(Vec::new, |q| q.drain(..).collect()))
        })?;
        let n = raw.len();
        for c in raw {
            out.push(self.wrap(c));
        }
        Ok(n)
    }

    /// Drives until at least `min` completions are queued (or `timeout` passes, `None` =
    /// forever), then reaps them all; returns how many were reaped.
    pub fn wait(
        &self,
        out: &mut Vec<Completion>,
        min: usize,
        timeout: Option<Duration>,
    ) -> io::Result<usize> {
        let id = self.id;
        let r = self.net.block(timeout, |core, _| {
            let len = core.rings.get(&id).map_or(0, |q| q.len());
            (len >= min).then_some(Ok(()))
        });
        match r {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
        self.reap(out)
    }

    /// Number of completions waiting to be reaped.
    pub fn ready(&self) -> usize {
        let id = self.id;
        self.net
            .with_raw(|core, _| core.rings.get(&id).map_or(0, |q| q.len()))
    }

    fn wrap(&self, c: RawCompletion) -> Completion {
        let stream = match (c.fd, &c.result) {
            (Some(fd), Ok(_)) => Some(TcpStream::from_fd(&self.net, fd)),
            (Some(fd), Err(_)) => {
                let _ = self.net.call(|core, p| core.close(p, fd));
                None
            }
            (None, _) => None,
        };
        Completion {
            user_data: c.user_data,
            result: c.result,
            buf: c.buf,
            stream,
            from: c.from,
        }
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        let id = self.id;
        let leftover: Vec<RawCompletion> = self.net.with_raw(|core, _| {
            core.rings
                .remove(&id)
                .map_or_else(Vec::new, |q| q.into_iter().collect())
        });
        for c in leftover {
            if let Some(fd) = c.fd {
                let _ = self.net.call(|core, p| core.close(p, fd));
            }
        }
    }
}
