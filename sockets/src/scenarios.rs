//! The notes' demonstrations as functions that return what they measured, shared by the tests
//! (`tests/tests/zero_copy.rs`, `tests/src/io_models.rs`), the examples and
//! `ringstack experiment`. Each runs two simulated machines over a clean in-memory link on a
//! virtual clock ([`pair`]): A = 198.18.0.1 (the server), B = 198.18.0.2 (the client). Every
//! number is counted, never timed, so it is the same on every run.

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddrV4};
use std::os::unix::fs::FileExt;
use std::time::Duration;

use ringstack_nic::LinkConfig;
use ringstack_stack::Config;

use crate::epoll::Epoll;
use crate::events::Events;
use crate::net::Net;
use crate::poll::{poll, PollFd};
use crate::select::{select, FdSet, FD_SETSIZE};
use crate::tcp::{TcpListener, TcpStream};
use crate::udp::UdpSocket;
use crate::zero_copy::Copies;
use crate::VirtualClock;

/// Machine A's address (the server).
pub const A: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
/// Machine B's address (the client).
pub const B: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);

/// Two machines on a fresh virtual clock over a clean link, seeded 1 and 2: `(a, b)`.
pub fn pair() -> (Net, Net) {
    pair_with(VirtualClock::new(), |_| {})
}

/// [`pair`] on `clock`, each stack configured by `tweak`.
pub fn pair_with(clock: impl crate::DriverClock, tweak: impl Fn(&mut Config)) -> (Net, Net) {
    let mut ca = Config::new([0; 6], A, 24);
    let mut cb = Config::new([0; 6], B, 24);
    ca.seed = 1;
    cb.seed = 2;
    tweak(&mut ca);
    tweak(&mut cb);
    Net::memory_pair_with_clock(ca, cb, LinkConfig::default(), clock)
}

/// A's address with `port`.
pub fn a_addr(port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(A, port)
}

/// A listener on A:`port` (on `a`) and `n` clients from `b` (`TCP_NODELAY` on both sides),
/// accepted in order: `(listener, [(server side, client side)])`.
pub fn connected(
    a: &Net,
    b: &Net,
    port: u16,
    n: usize,
) -> io::Result<(TcpListener, Vec<(TcpStream, TcpStream)>)> {
    let addr = SocketAddrV4::new(a.addr(), port);
    let l = TcpListener::bind(a, addr)?;
    let mut conns = Vec::new();
    for _ in 0..n {
        let c = TcpStream::connect(b, addr)?;
        let (s, _) = l.accept()?;
        // Small writes go out at once (no Nagle waiting for a delayed ACK), so "send, then
        // look" sees the data arrived.
        c.set_nodelay(true)?;
        s.set_nodelay(true)?;
        conns.push((s, c));
    }
    Ok((l, conns))
}

/// Reads until `WouldBlock` (non-blocking socket) or end of stream; returns the bytes.
pub fn drain(mut s: &TcpStream) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Ok(out),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(out),
            Err(e) => return Err(e),
        }
    }
}

// ----- level-triggered + blocking reads vs edge-triggered + non-blocking -----

/// One round of a single-threaded server loop serving two connections that each sent a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServeRound {
    /// Events the round's `epoll_wait` returned.
    pub events: usize,
    /// Bytes served (read by the handler) per connection.
    pub served: [usize; 2],
    /// Virtual time the round took, in milliseconds (the time the thread was stuck in a read).
    pub blocked_ms: u64,
    /// Bytes left unread in each connection's receive buffer after the round.
    pub left: [usize; 2],
}

impl ServeRound {
    /// Whether a connection with a request got nothing served in the round.
    pub fn starved(&self) -> bool {
        self.served.contains(&0)
    }
}

/// The notes' open question: a single-threaded **level-triggered** loop whose handler reads
/// "until the buffer is empty" with **blocking** reads. After the first request is read, the
/// next read blocks on the empty buffer — here for the `read_timeout` (a stand-in for
/// "forever") — and the other connection's request waits, unserved: starvation.
pub fn lt_blocking_round(read_timeout: Duration) -> io::Result<ServeRound> {
    let (a, b) = pair();
    let (_l, conns) = connected(&a, &b, 7, 2)?;
    let ep = Epoll::create(&a)?;
    for (i, (s, _)) in conns.iter().enumerate() {
        ep.add(s.fd(), Events::IN, i as u64)?;
        s.set_read_timeout(Some(read_timeout))?;
    }
    (&conns[0].1).write_all(b"request-1")?;
    (&conns[1].1).write_all(b"request-2")?;

    let t0 = a.now();
    let mut served = [0; 2];
    let mut ev = Vec::new();
    let events = ep.wait(&mut ev, 16, -1)?;
    // The handler of the first ready connection runs; the second would run only after it
    // returns.
    let i = ev[0].data as usize;
    let mut buf = [0u8; 64];
    loop {
        match (&conns[i].0).read(&mut buf) {
            Ok(0) => break,
            Ok(n) => served[i] += n,
            // The buffer is empty, but a blocking read does not say so: it waits for more.
            // Only the read timeout gets us out.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => return Err(e),
        }
    }
    let blocked_ms = (a.now() - t0).total_millis();
    Ok(ServeRound {
        events,
        served,
        blocked_ms,
        left: left(&conns),
    })
}

/// The fix: **edge-triggered** registration and **non-blocking** sockets; each handler drains
/// until `WouldBlock` and returns, so one round serves every ready connection and no read ever
/// waits.
pub fn et_nonblocking_round() -> io::Result<ServeRound> {
    let (a, b) = pair();
    let (_l, conns) = connected(&a, &b, 7, 2)?;
    let ep = Epoll::create(&a)?;
    for (i, (s, _)) in conns.iter().enumerate() {
        s.set_nonblocking(true)?;
        ep.add(s.fd(), Events::IN | Events::ET, i as u64)?;
    }
    (&conns[0].1).write_all(b"request-1")?;
    (&conns[1].1).write_all(b"request-2")?;

    let t0 = a.now();
    let mut served = [0; 2];
    let mut ev = Vec::new();
    let events = ep.wait(&mut ev, 16, -1)?;
    for e in &ev {
        let i = e.data as usize;
        served[i] += drain(&conns[i].0)?.len();
    }
    let blocked_ms = (a.now() - t0).total_millis();
    Ok(ServeRound {
        events,
        served,
        blocked_ms,
        left: left(&conns),
    })
}

fn left(conns: &[(TcpStream, TcpStream)]) -> [usize; 2] {
    let q = |s: &TcpStream| s.info().map_or(0, |i| i.recv_queue);
    [q(&conns[0].0), q(&conns[1].0)]
}

// ----- level vs edge triggering: events per wait -----

/// One step of [`et_vs_lt`]: what happened before the wait, and what each mode reported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TriggerStep {
    /// What the program did before this `epoll_wait`.
    pub action: &'static str,
    /// Events returned by the level-triggered instance.
    pub lt: usize,
    /// Events returned by the edge-triggered instance.
    pub et: usize,
}

/// One connection watched by two epoll instances, one level-triggered and one
/// edge-triggered; a script of arrivals and partial reads, and the events each `wait(0)`
/// returns.
pub fn et_vs_lt() -> io::Result<Vec<TriggerStep>> {
    let (a, b) = pair();
    let (_l, mut conns) = connected(&a, &b, 7, 1)?;
    let (server, client) = conns.pop().expect("one connection");
    server.set_nonblocking(true)?;
    let lt = Epoll::create(&a)?;
    let et = Epoll::create(&a)?;
    lt.add(server.fd(), Events::IN, 0)?;
    et.add(server.fd(), Events::IN | Events::ET, 0)?;
    let mut ev = Vec::new();
    let mut steps = Vec::new();
    let mut step = |action: &'static str| -> io::Result<()> {
        let l = lt.wait(&mut ev, 8, 0)?;
        let e = et.wait(&mut ev, 8, 0)?;
        steps.push(TriggerStep {
            action,
            lt: l,
            et: e,
        });
        Ok(())
    };
    step("nothing arrived")?;
    (&client).write_all(b"0123456789")?;
    step("10 bytes arrive")?;
    step("wait again, nothing read")?;
    step("wait again, nothing read")?;
    (&server).read_exact(&mut [0u8; 4])?;
    step("read 4 of 10 bytes")?;
    (&client).write_all(b"more")?;
    step("4 more bytes arrive, 6 still unread")?;
    drain(&server)?;
    step("drained until WouldBlock")?;
    (&client).write_all(b"new")?;
    step("3 new bytes arrive after the drain")?;
    Ok(steps)
}

// ----- thundering herd -----

/// What one connection arriving at a listener watched by N epoll instances caused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Herd {
    /// Epoll instances watching the listener (one per worker).
    pub waiters: usize,
    /// Wakeups counted by the dispatch (ready-list insertions).
    pub wakeups: u64,
    /// Instances whose `wait` returned the event.
    pub woken: usize,
    /// Accepts that succeeded (the others got `WouldBlock`: woken for nothing).
    pub accepted: usize,
}

/// `waiters` epoll instances on one listening socket, with or without `EPOLLEXCLUSIVE`; one
/// connection arrives; every woken worker tries to accept.
pub fn herd(waiters: usize, exclusive: bool) -> io::Result<Herd> {
    let (a, b) = pair();
    let l = TcpListener::bind(&a, a_addr(80))?;
    l.set_nonblocking(true)?;
    let flags = if exclusive {
        Events::IN | Events::EXCLUSIVE
    } else {
        Events::IN
    };
    let eps: Vec<Epoll> = (0..waiters)
        .map(|_| Epoll::create(&a))
        .collect::<io::Result<_>>()?;
    for ep in &eps {
        ep.add(l.fd(), flags, 0)?;
    }
    a.reset_work();
    let _c = TcpStream::connect(&b, a_addr(80))?;
    let wakeups = a.work().epoll_wakeups;
    let mut ev = Vec::new();
    let mut woken = 0;
    for ep in &eps {
        if ep.wait(&mut ev, 8, 0)? > 0 {
            woken += 1;
        }
    }
    let mut accepted = 0;
    for _ in 0..woken {
        match l.accept() {
            Ok(_) => accepted += 1,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Herd {
        waiters,
        wakeups,
        woken,
        accepted,
    })
}

// ----- select vs poll vs epoll: work per wait -----

/// The work of one wait of each multiplexer over `registered` idle sockets of which `ready`
/// have a datagram waiting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MultiplexCost {
    /// Sockets registered (watched).
    pub registered: usize,
    /// Sockets with data waiting.
    pub ready: usize,
    /// Descriptors `select` examined, or `None` when the sockets do not fit an `fd_set`
    /// (a descriptor ≥ `FD_SETSIZE` = 1024).
    pub select_examined: Option<u64>,
    /// Ready descriptors `select` reported (a count only).
    pub select_found: Option<usize>,
    /// Entries `poll` examined.
    pub poll_examined: u64,
    /// Bytes of `pollfd` arrays copied in and out by `poll`.
    pub poll_bytes_copied: u64,
    /// Ready entries `poll` reported.
    pub poll_found: usize,
    /// Ready-list entries `epoll_wait` examined.
    pub epoll_examined: u64,
    /// Events `epoll_wait` returned.
    pub epoll_found: usize,
}

/// Registers `registered` sockets on machine A (UDP sockets on ports 1..=60,000, then TCP
/// listeners on ports 1.., so up to 125,000), sends one datagram to `ready` of them (spread
/// evenly; `ready` ≤ `registered` and ≤ 60,000), and counts the work of one `select` (when
/// the descriptors fit), one `poll` and one `epoll_wait`.
pub fn multiplex_cost(registered: usize, ready: usize) -> io::Result<MultiplexCost> {
    const MAX_UDP: usize = 60_000;
    assert!(ready <= registered && ready <= MAX_UDP && registered <= 125_000);
    let (a, b) = pair();
    let udp_n = registered.min(MAX_UDP);
    let socks: Vec<UdpSocket> = (1..=udp_n)
        .map(|port| UdpSocket::bind(&a, a_addr(port as u16)))
        .collect::<io::Result<_>>()?;
    let listeners: Vec<TcpListener> = (1..=registered - udp_n)
        .map(|port| TcpListener::listen(&a, a_addr(port as u16), 1))
        .collect::<io::Result<_>>()?;
    let fds: Vec<i32> = socks
        .iter()
        .map(|s| s.fd())
        .chain(listeners.iter().map(|l| l.fd()))
        .collect();

    let ep = Epoll::create(&a)?;
    for &fd in &fds {
        ep.add(fd, Events::IN, fd as u64)?;
    }
    let sender = UdpSocket::bind(&b, SocketAddrV4::new(B, 0))?;
    let stride = (udp_n / ready.max(1)).max(1);
    for i in 0..ready {
        sender.send_to(b"hi", a_addr((1 + i * stride) as u16))?;
    }
    a.poll()?;

    let (select_examined, select_found) = if fds.iter().all(|&fd| (fd as usize) < FD_SETSIZE) {
        let mut set = FdSet::new();
        for &fd in &fds {
            set.insert(fd)?;
        }
        let nfds = fds.iter().map(|&fd| fd as usize + 1).max().unwrap_or(0);
        a.reset_work();
        let n = select(&a, nfds, Some(&mut set), None, None, Some(Duration::ZERO))?;
        (Some(a.work().select_examined), Some(n))
    } else {
        (None, None)
    };

    let mut pfds: Vec<PollFd> = fds.iter().map(|&fd| PollFd::new(fd, Events::IN)).collect();
    a.reset_work();
    let poll_found = poll(&a, &mut pfds, 0)?;
    let w = a.work();

    a.reset_work();
    let mut ev = Vec::new();
    let epoll_found = ep.wait(&mut ev, ready.max(1), 0)?;
    let epoll_examined = a.work().epoll_examined;
    Ok(MultiplexCost {
        registered,
        ready,
        select_examined,
        select_found,
        poll_examined: w.poll_examined,
        poll_bytes_copied: w.set_bytes_copied,
        poll_found,
        epoll_examined,
        epoll_found,
    })
}

// ----- copies: read+write vs send_file vs send_with vs recv_with -----

/// How the sender hands the bytes to its socket.
#[derive(Clone, Copy, Debug)]
pub enum SendMethod<'a> {
    /// `read` the file into a 64 KiB application buffer, then `write` it: the traditional path.
    ReadWrite(&'a File),
    /// [`TcpStream::send_file`] of the whole file.
    SendFile(&'a File),
    /// [`TcpStream::send_with`], each lent piece filled by a `memcpy` from an in-memory buffer.
    SendWith(&'a [u8]),
    /// [`TcpStream::send_with`], each lent piece filled by `gen(offset, piece)` right in the
    /// send buffer (a generator: nothing is copied from anywhere).
    SendWithGenerate(u64, fn(u64, &mut [u8])),
}

impl SendMethod<'_> {
    /// A short name for tables.
    pub fn name(&self) -> &'static str {
        match self {
            SendMethod::ReadWrite(_) => "read+write",
            SendMethod::SendFile(_) => "send_file",
            SendMethod::SendWith(_) => "send_with (from a buffer)",
            SendMethod::SendWithGenerate(..) => "send_with (generated in place)",
        }
    }
}

/// How the receiver takes the bytes from its socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecvMethod {
    /// `read` into a 64 KiB application buffer.
    Read,
    /// [`TcpStream::recv_with`]: the bytes are consumed where they lie.
    RecvWith,
}

impl RecvMethod {
    /// A short name for tables.
    pub fn name(self) -> &'static str {
        match self {
            RecvMethod::Read => "read",
            RecvMethod::RecvWith => "recv_with",
        }
    }
}

/// What a [`transfer`] moved and copied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transfer {
    /// Bytes sent and received.
    pub bytes: u64,
    /// Bytes the sending application copied itself before handing them over (file → its
    /// buffer, counted from `read`'s return values). Not a stack counter.
    pub app_copied: u64,
    /// Whether the bytes written in place (`app_to_sndbuf_in_place`) were copied there (from a
    /// mapping or a buffer) rather than produced there.
    pub in_place_is_copy: bool,
    /// The sender's (B's) copy counters during the transfer.
    pub sender: Copies,
    /// The receiver's (A's) copy counters during the transfer.
    pub receiver: Copies,
}

impl Transfer {
    /// CPU copies per byte on the send side: the application's own copies, app → send buffer
    /// (by the stack, or in place when the writer copied), send buffer → frame (first
    /// transmissions). Exact on a clean link: a whole number.
    pub fn send_copies_per_byte(&self) -> f64 {
        let in_place = if self.in_place_is_copy {
            0
        } else {
            self.sender.app_to_sndbuf_in_place
        };
        (self.app_copied + self.sender.send_copied() - in_place) as f64 / self.bytes as f64
    }

    /// CPU copies per byte on the receive side: frame → receive buffer, receive buffer → app.
    pub fn recv_copies_per_byte(&self) -> f64 {
        self.receiver.recv_copied() as f64 / self.bytes as f64
    }
}

const APP_BUF: usize = 64 * 1024;

/// Sends a whole source from B to A over one connection with `send`, receives it on A with
/// `recv`, handing every received byte to `consume` (in order; in place for `recv_with`), and
/// returns the copy counters of both machines for the transfer. Both sockets are non-blocking
/// and one loop alternates between them (the virtual clock advances only when neither can
/// progress), so one thread runs both ends. Over a clean link ([`pair`]): see
/// [`transfer_between`] for another pair of machines.
pub fn transfer(
    send: SendMethod<'_>,
    recv: RecvMethod,
    consume: impl FnMut(&[u8]),
) -> io::Result<Transfer> {
    let (a, b) = pair();
    transfer_between(&a, &b, send, recv, consume)
}

/// [`transfer`] from `b` to `a` (two machines of one group, e.g. over an impaired link made
/// with [`Net::memory_pair`]); the server listens on `a`'s port 5001.
pub fn transfer_between(
    a: &Net,
    b: &Net,
    send: SendMethod<'_>,
    recv: RecvMethod,
    mut consume: impl FnMut(&[u8]),
) -> io::Result<Transfer> {
    let len = match send {
        SendMethod::ReadWrite(f) | SendMethod::SendFile(f) => f.metadata()?.len(),
        SendMethod::SendWith(buf) => buf.len() as u64,
        SendMethod::SendWithGenerate(len, _) => len,
    };
    let (_l, mut conns) = connected(a, b, 5001, 1)?;
    let (server, client) = conns.pop().expect("one connection");
    server.set_nonblocking(true)?;
    client.set_nonblocking(true)?;
    let (sender0, receiver0) = (b.copies(), a.copies());

    let mut app_buf = vec![0u8; APP_BUF];
    let mut pending = 0..0; // read from the file, not yet written (read+write)
    let mut rbuf = vec![0u8; APP_BUF];
    let (mut sent, mut app_copied, mut received) = (0u64, 0u64, 0u64);
    let mut shut = false;
    loop {
        let mut progress = false;
        // The sender: hand over what fits.
        while sent < len {
            let r = match send {
                SendMethod::ReadWrite(file) => {
                    if pending.is_empty() {
                        let want = (len - sent).min(APP_BUF as u64) as usize;
                        let n = file.read_at(&mut app_buf[..want], sent)?;
                        if n == 0 {
                            return Err(io::ErrorKind::UnexpectedEof.into());
                        }
                        app_copied += n as u64;
                        pending = 0..n;
                    }
                    let r = (&client).write(&app_buf[pending.clone()]);
                    if let Ok(n) = r {
                        pending.start += n;
                    }
                    r
                }
                SendMethod::SendFile(file) => {
                    client.send_file(file, sent, len - sent).map(|n| n as usize)
                }
                SendMethod::SendWith(buf) => client.send_with(|room| {
                    let src = &buf[sent as usize..];
                    let n = room.len().min(src.len());
                    room[..n].copy_from_slice(&src[..n]);
                    n
                }),
                SendMethod::SendWithGenerate(_, gen) => client.send_with(|room| {
                    let n = room.len().min((len - sent) as usize);
                    gen(sent, &mut room[..n]);
                    n
                }),
            };
            match r {
                Ok(n) => {
                    sent += n as u64;
                    progress |= n > 0;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        if sent == len && !shut {
            client.shutdown(Shutdown::Write)?;
            shut = true;
        }
        // The receiver: take what arrived.
        let mut eof = false;
        loop {
            let r = match recv {
                RecvMethod::Read => (&server).read(&mut rbuf).inspect(|&n| consume(&rbuf[..n])),
                RecvMethod::RecvWith => server.recv_with(|data| {
                    consume(data);
                    data.len()
                }),
            };
            match r {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => {
                    received += n as u64;
                    progress = true;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        if eof {
            break;
        }
        if !progress {
            a.run_for(Duration::from_millis(1))?;
        }
    }
    if received != len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("received {received} of {len} bytes"),
        ));
    }
    Ok(Transfer {
        bytes: len,
        app_copied,
        in_place_is_copy: !matches!(send, SendMethod::SendWithGenerate(..)),
        sender: b.copies().since(&sender0),
        receiver: a.copies().since(&receiver0),
    })
}
