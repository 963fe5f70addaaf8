//! The reactor: one thread waits in `epoll_wait` and dispatches each "ready" event to the
//! connection's handler, which then does the I/O itself with non-blocking `read`, `write` and
//! `send_file` until `WouldBlock` (the notes' Reactor: 事件分发器, 事件处理器, 事件循环).
//!
//! **Without workers** (the default) the handlers run on the epoll thread; every connection is
//! registered once, edge-triggered (`IN | OUT | RDHUP | ET`), so no `epoll_ctl` is needed per
//! event — which is why each handler must drain its socket until `WouldBlock`, or stop only
//! where a new edge is certain to come (a full send buffer: `OUT` rises again when it drains).
//! When no driver thread runs, `epoll_wait` itself drives the stack and sleeps on the NIC: one
//! thread does everything.
//!
//! **With `--workers N`** the epoll thread only waits and dispatches, as the notes describe the
//! pattern ("主线程只负责监听…交给工作线程处理"): each event's connection goes to a pool of N
//! threads through a queue. Connections are registered `EPOLLONESHOT`, so one event hands a
//! connection to exactly one worker, which re-arms it (`EPOLL_CTL_MOD`, with exactly the
//! interest it has now: `IN` while it wants input, `OUT` while output waits) when it is done.
//! A driver thread drives the stack.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant as StdInstant};

use anyhow::Result;
use ringstack_sockets::{Epoll, EpollEvent, Events, Fd, Net, TcpListener, TcpStream, UdpSocket};

use super::{
    any, App, DiscardTally, Hooks, ServiceStats, StackServices, Ticker, DISCARD_PORT,
    ECHO_HIGH_WATER, ECHO_PORT, HTTP_PORT, READ_CHUNK,
};
use crate::services::http::{Chunk, Session};

/// Which service a connection belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Svc {
    Echo,
    Discard,
    Http,
}

impl Svc {
    pub fn port(self) -> u16 {
        match self {
            Svc::Echo => ECHO_PORT,
            Svc::Discard => DISCARD_PORT,
            Svc::Http => HTTP_PORT,
        }
    }

    pub fn stats(self, app: &App) -> &ServiceStats {
        match self {
            Svc::Echo => &app.echo,
            Svc::Discard => &app.discard,
            Svc::Http => &app.http_stats,
        }
    }

    /// The listening services `app` runs.
    pub fn enabled(app: &App) -> Vec<Svc> {
        let s = app.opts.services;
        [
            (s.echo, Svc::Echo),
            (s.discard, Svc::Discard),
            (s.http, Svc::Http),
        ]
        .into_iter()
        .filter_map(|(on, svc)| on.then_some(svc))
        .collect()
    }
}

/// A connection's protocol state.
enum State {
    Echo {
        pending: Vec<u8>,
        pos: usize,
        eof: bool,
    },
    Discard(Option<DiscardTally>),
    Http(Session),
}

/// One connection: the socket and what its service knows of it.
pub(crate) struct Conn {
    stream: TcpStream,
    svc: Svc,
    state: State,
    last_active: StdInstant,
}

/// What a handler left the connection in.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Still open; waiting for the next event.
    Open,
    /// Finished (or failed): drop it to close.
    Done,
}

/// HTTP connections send with `TCP_NODELAY`, as nginx does on keep-alive connections: a
/// response goes out as a head `write` and a body `send_file`, and with Nagle's algorithm the
/// body would wait for the ACK of the head — which a Linux client delays by up to 40 ms. (The
/// direct model queues both within one round, so they leave in one segment anyway; these
/// sockets transmit at every call. There is no `TCP_CORK` to hold the head back instead.)
pub(crate) fn nodelay_for_http(stream: &TcpStream) -> io::Result<()> {
    stream.set_nodelay(true)
}

fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

impl Conn {
    /// A freshly accepted connection (made non-blocking).
    pub fn new(stream: TcpStream, svc: Svc) -> io::Result<Conn> {
        stream.set_nonblocking(true)?;
        if svc == Svc::Http {
            nodelay_for_http(&stream)?;
        }
        let state = match svc {
            Svc::Echo => State::Echo {
                pending: Vec::new(),
                pos: 0,
                eof: false,
            },
            Svc::Discard => State::Discard(Some(DiscardTally::default())),
            Svc::Http => State::Http(Session::new()),
        };
        Ok(Conn {
            stream,
            svc,
            state,
            last_active: StdInstant::now(),
        })
    }

    pub fn fd(&self) -> Fd {
        self.stream.fd()
    }

    /// The socket and its service (for styles that keep their own state).
    pub fn into_parts(self) -> (TcpStream, Svc) {
        (self.stream, self.svc)
    }

    /// The events this connection waits for now (for `EPOLLONESHOT` re-arming).
    pub fn interest(&self) -> Events {
        let mut e = Events::RDHUP;
        match &self.state {
            State::Echo { pending, pos, eof } => {
                if !eof && pending.len() - pos < ECHO_HIGH_WATER {
                    e |= Events::IN;
                }
                if *pos < pending.len() {
                    e |= Events::OUT;
                }
            }
            State::Discard(_) => e |= Events::IN,
            State::Http(s) => {
                if s.has_output() {
                    e |= Events::OUT;
                } else if s.wants_read() {
                    e |= Events::IN;
                }
            }
        }
        e
    }

    /// An idle HTTP connection past `idle` (nothing to send, nothing received).
    pub fn idle_expired(&self, idle: Duration) -> bool {
        matches!(&self.state, State::Http(s) if !s.has_output())
            && self.last_active.elapsed() > idle
    }

    /// Does every bit of I/O the connection can do now without blocking.
    pub fn progress(&mut self, app: &App, buf: &mut [u8]) -> Outcome {
        let r = match &mut self.state {
            State::Echo { pending, pos, eof } => echo(&self.stream, app, buf, pending, pos, eof),
            State::Discard(tally) => discard(&self.stream, app, buf, tally),
            State::Http(session) => http(&self.stream, app, buf, session, &mut self.last_active),
        };
        r.unwrap_or(Outcome::Done)
    }
}

fn echo(
    mut s: &TcpStream,
    app: &App,
    buf: &mut [u8],
    pending: &mut Vec<u8>,
    pos: &mut usize,
    eof: &mut bool,
) -> io::Result<Outcome> {
    loop {
        if *pos < pending.len() {
            match s.write(&pending[*pos..]) {
                Ok(n) => {
                    *pos += n;
                    app.echo.bytes_out.fetch_add(n as u64, Ordering::Relaxed);
                    if *pos == pending.len() {
                        pending.clear();
                        *pos = 0;
                    }
                }
                Err(e) if would_block(&e) => {}
                Err(e) => return Err(e),
            }
        }
        if *eof || pending.len() - *pos >= ECHO_HIGH_WATER {
            break;
        }
        match s.read(buf) {
            Ok(0) => *eof = true,
            Ok(n) => {
                pending.extend_from_slice(&buf[..n]);
                app.echo.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
            }
            Err(e) if would_block(&e) => break,
            Err(e) => return Err(e),
        }
    }
    Ok(if *eof && *pos == pending.len() {
        Outcome::Done
    } else {
        Outcome::Open
    })
}

fn discard(
    mut s: &TcpStream,
    app: &App,
    buf: &mut [u8],
    tally: &mut Option<DiscardTally>,
) -> io::Result<Outcome> {
    loop {
        match s.read(buf) {
            Ok(0) => {
                if let Some(t) = tally.take() {
                    t.report(s.peer_addr().ok());
                }
                return Ok(Outcome::Done);
            }
            Ok(n) => {
                if let Some(t) = tally {
                    t.add(&buf[..n]);
                }
                app.discard.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
            }
            Err(e) if would_block(&e) => return Ok(Outcome::Open),
            Err(e) => return Err(e),
        }
    }
}

fn http(
    mut s: &TcpStream,
    app: &App,
    buf: &mut [u8],
    session: &mut Session,
    last_active: &mut StdInstant,
) -> io::Result<Outcome> {
    let h = app.http.as_deref().expect("http enabled");
    let stats = &app.http_stats;
    loop {
        while let Some(chunk) = session.front(h) {
            let r = match chunk {
                Chunk::Bytes { buf, pos } => s.write(&buf[*pos..]).map(|n| n as u64),
                Chunk::File { file, offset, len } => match s.send_file(file, *offset, *len) {
                    // The file shrank under us: the response cannot be completed.
                    Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                    r => r,
                },
            };
            match r {
                Ok(n) => {
                    session.advance(n);
                    stats.bytes_out.fetch_add(n, Ordering::Relaxed);
                }
                Err(e) if would_block(&e) => return Ok(Outcome::Open),
                Err(e) => return Err(e),
            }
        }
        if session.finished(h) {
            return Ok(Outcome::Done);
        }
        if !session.wants_read() {
            return Ok(Outcome::Open);
        }
        match s.read(buf) {
            Ok(0) => session.on_eof(),
            Ok(n) => {
                session.on_data(&buf[..n]);
                stats.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
                *last_active = StdInstant::now();
            }
            Err(e) if would_block(&e) => return Ok(Outcome::Open),
            Err(e) => return Err(e),
        }
    }
}

/// A listening service.
pub(crate) struct Listener {
    pub listener: TcpListener,
    pub svc: Svc,
    /// Connections were left in its accept queue because the service was full.
    pub waiting: bool,
}

impl Listener {
    /// Binds every listening service `app` runs (non-blocking).
    pub fn bind_all(net: &Net, app: &App) -> Result<Vec<Listener>> {
        Svc::enabled(app)
            .into_iter()
            .map(|svc| {
                let listener = TcpListener::listen(net, any(svc.port()), super::BACKLOG)?;
                listener.set_nonblocking(true)?;
                Ok(Listener {
                    listener,
                    svc,
                    waiting: false,
                })
            })
            .collect()
    }

    /// Accepts while the service has room; `f` gets each new connection.
    pub fn accept(&mut self, app: &App, mut f: impl FnMut(Conn)) {
        let stats = self.svc.stats(app);
        loop {
            if !stats.has_room(app.opts.max_clients) {
                // Full: does anyone wait in the accept queue?
                self.waiting = self
                    .listener
                    .net()
                    .readiness(self.listener.fd())
                    .is_some_and(|e| e.contains(Events::IN));
                stats.set_waiting(self.waiting);
                return;
            }
            match self.listener.accept() {
                Ok((stream, _)) => {
                    stats.admitted(self.waiting);
                    match Conn::new(stream, self.svc) {
                        Ok(c) => f(c),
                        Err(_) => stats.closed(),
                    }
                }
                Err(e) if would_block(&e) => {
                    self.waiting = false;
                    stats.set_waiting(false);
                    return;
                }
                Err(e) => {
                    eprintln!("ringstack: accept failed: {e}");
                    return;
                }
            }
        }
    }
}

/// UDP echo on a non-blocking socket: answers every datagram waiting.
pub(crate) fn udp_echo(sock: &UdpSocket, app: &App, buf: &mut [u8]) {
    while let Ok((n, from)) = sock.recv_from(buf) {
        let _ = sock.send_to(&buf[..n], from);
        app.udp_echoed.fetch_add(1, Ordering::Relaxed);
    }
}

/// Tokens of the listeners and the UDP socket (connections use their descriptor).
const LISTENER_TOKEN: u64 = 1 << 40;
const UDP_TOKEN: u64 = 1 << 41;

/// How often idle connections are looked for.
const SWEEP: Duration = Duration::from_secs(1);

/// Runs the services as a reactor until `hooks.stop`.
pub fn run(net: &Net, app: &Arc<App>, hooks: Hooks<'_>) -> Result<()> {
    if app.opts.workers > 0 {
        return run_pool(net, app, hooks);
    }
    let ep = Epoll::create(net)?;
    let mut listeners = Listener::bind_all(net, app)?;
    for (i, l) in listeners.iter().enumerate() {
        ep.add(
            l.listener.fd(),
            Events::IN | Events::ET,
            LISTENER_TOKEN + i as u64,
        )?;
    }
    let udp = bind_udp(net, app, &ep)?;
    let mut stack_services = StackServices::new(net, app)?;
    (hooks.ready)();
    let mut tick = hooks.tick;
    let mut ticker = Ticker::new();
    let mut conns: HashMap<Fd, Conn> = HashMap::new();
    let mut events = Vec::with_capacity(256);
    let mut buf = vec![0u8; READ_CHUNK];
    let mut last_sweep = StdInstant::now();
    let conn_events = Events::IN | Events::OUT | Events::RDHUP | Events::ET;
    while !hooks.stop.load(Ordering::Relaxed) {
        let budget = stack_services.wait_budget();
        ep.wait(&mut events, 256, budget.as_millis() as i32)?;
        let mut freed = Vec::new();
        for ev in &events {
            if ev.data == UDP_TOKEN {
                if let Some(u) = &udp {
                    udp_echo(u, app, &mut buf);
                }
            } else if ev.data >= LISTENER_TOKEN {
                let l = &mut listeners[(ev.data - LISTENER_TOKEN) as usize];
                accept_into(l, app, &ep, conn_events, &mut conns, &mut buf, &mut freed);
            } else {
                let fd = ev.data as Fd;
                let Some(c) = conns.get_mut(&fd) else {
                    continue;
                };
                if c.progress(app, &mut buf) == Outcome::Done {
                    let c = conns.remove(&fd).expect("present");
                    c.svc.stats(app).closed();
                    freed.push(c.svc);
                }
            }
        }
        if last_sweep.elapsed() >= SWEEP {
            last_sweep = StdInstant::now();
            let idle = app.opts.idle_timeout;
            conns.retain(|_, c| {
                if c.idle_expired(idle) {
                    app.http_stats.idle_closed.fetch_add(1, Ordering::Relaxed);
                    app.http_stats.closed();
                    freed.push(c.svc);
                    false
                } else {
                    true
                }
            });
        }
        // Room again: take the connections that waited at the limit.
        while let Some(svc) = freed.pop() {
            if let Some(l) = listeners.iter_mut().find(|l| l.svc == svc && l.waiting) {
                accept_into(l, app, &ep, conn_events, &mut conns, &mut buf, &mut freed);
            }
        }
        stack_services.poll(net);
        ticker.maybe(net, &mut *tick);
    }
    Ok(())
}

/// Accepts on `l`, registers each connection and gives it a first go (data may be there
/// already: with edge-triggering, its arrival before registration would not be announced).
fn accept_into(
    l: &mut Listener,
    app: &App,
    ep: &Epoll,
    interest: Events,
    conns: &mut HashMap<Fd, Conn>,
    buf: &mut [u8],
    freed: &mut Vec<Svc>,
) {
    let mut fresh = Vec::new();
    l.accept(app, |c| fresh.push(c));
    for mut c in fresh {
        let fd = c.fd();
        if ep.add(fd, interest, fd as u64).is_err() || c.progress(app, buf) == Outcome::Done {
            c.svc.stats(app).closed();
            freed.push(c.svc);
            continue;
        }
        conns.insert(fd, c);
    }
}

fn bind_udp(net: &Net, app: &App, ep: &Epoll) -> Result<Option<UdpSocket>> {
    if !app.opts.services.echo {
        return Ok(None);
    }
    let u = UdpSocket::bind(net, any(ECHO_PORT))?;
    u.set_nonblocking(true)?;
    // Level-triggered: `udp_echo` drains it anyway.
    ep.add(u.fd(), Events::IN, UDP_TOKEN)?;
    Ok(Some(u))
}

/// A finished job, sent back from a worker to the epoll thread.
enum Returned {
    /// Still open and already re-armed.
    Open(Conn),
    /// Closed by the worker.
    Closed(Svc),
}

/// The reactor with a worker pool.
fn run_pool(net: &Net, app: &Arc<App>, hooks: Hooks<'_>) -> Result<()> {
    let _driver = super::ensure_driver(net)?;
    let ep = Arc::new(Epoll::create(net)?);
    let mut listeners = Listener::bind_all(net, app)?;
    for (i, l) in listeners.iter().enumerate() {
        ep.add(l.listener.fd(), Events::IN, LISTENER_TOKEN + i as u64)?;
    }
    let udp = bind_udp(net, app, &ep)?;
    let mut stack_services = StackServices::new(net, app)?;
    let (job_tx, job_rx) = mpsc::channel::<Conn>();
    let job_rx = Arc::new(Mutex::new(job_rx));
    let (done_tx, done_rx) = mpsc::channel::<Returned>();
    let mut workers = Vec::new();
    for i in 0..app.opts.workers {
        let (rx, tx, ep, app) = (
            Arc::clone(&job_rx),
            done_tx.clone(),
            Arc::clone(&ep),
            Arc::clone(app),
        );
        workers.push(
            std::thread::Builder::new()
                .name(format!("reactor-worker-{i}"))
                .spawn(move || worker(&rx, &tx, &ep, &app))?,
        );
    }
    drop(done_tx);
    (hooks.ready)();
    let mut tick = hooks.tick;
    let mut ticker = Ticker::new();
    // Connections waiting for an event; the ones being worked on are in the pool's hands.
    let mut conns: HashMap<Fd, Conn> = HashMap::new();
    // Events for connections still on their way back from a worker.
    let mut early: std::collections::HashSet<Fd> = std::collections::HashSet::new();
    let mut events = Vec::with_capacity(256);
    let mut buf = vec![0u8; READ_CHUNK];
    let mut last_sweep = StdInstant::now();
    let first = Events::IN | Events::RDHUP | Events::ONESHOT;
    while !hooks.stop.load(Ordering::Relaxed) {
        let budget = stack_services.wait_budget();
        ep.wait(&mut events, 256, budget.as_millis() as i32)?;
        let mut freed = Vec::new();
        for r in done_rx.try_iter() {
            match r {
                Returned::Open(c) if early.remove(&c.fd()) => {
                    if job_tx.send(c).is_err() {
                        anyhow::bail!("the reactor's workers are gone");
                    }
                }
                Returned::Open(c) => {
                    conns.insert(c.fd(), c);
                }
                Returned::Closed(svc) => freed.push(svc),
            }
        }
        for ev in &events {
            if ev.data == UDP_TOKEN {
                if let Some(u) = &udp {
                    udp_echo(u, app, &mut buf);
                }
            } else if ev.data >= LISTENER_TOKEN {
                let l = &mut listeners[(ev.data - LISTENER_TOKEN) as usize];
                let mut fresh = Vec::new();
                l.accept(app, |c| fresh.push(c));
                for c in fresh {
                    // The first event (data may be there already) hands it to a worker.
                    let fd = c.fd();
                    conns.insert(fd, c);
                    if ep.add(fd, first, fd as u64).is_err() {
                        if let Some(c) = conns.remove(&fd) {
                            c.svc.stats(app).closed();
                        }
                    }
                }
            } else if let Some(c) = conns.remove(&(ev.data as Fd)) {
                if job_tx.send(c).is_err() {
                    anyhow::bail!("the reactor's workers are gone");
                }
            } else {
                // Re-armed by a worker that has not handed it back yet.
                early.insert(ev.data as Fd);
            }
        }
        if last_sweep.elapsed() >= SWEEP {
            last_sweep = StdInstant::now();
            let idle = app.opts.idle_timeout;
            conns.retain(|_, c| {
                if c.idle_expired(idle) {
                    app.http_stats.idle_closed.fetch_add(1, Ordering::Relaxed);
                    app.http_stats.closed();
                    freed.push(c.svc);
                    false
                } else {
                    true
                }
            });
        }
        for svc in freed {
            if let Some(l) = listeners.iter_mut().find(|l| l.svc == svc && l.waiting) {
                let mut fresh = Vec::new();
                l.accept(app, |c| fresh.push(c));
                for c in fresh {
                    let fd = c.fd();
                    conns.insert(fd, c);
                    if ep.add(fd, first, fd as u64).is_err() {
                        if let Some(c) = conns.remove(&fd) {
                            c.svc.stats(app).closed();
                        }
                    }
                }
            }
        }
        stack_services.poll(net);
        ticker.maybe(net, &mut *tick);
    }
    drop(job_tx);
    for w in workers {
        let _ = w.join();
    }
    Ok(())
}

/// A worker: takes a ready connection, runs its handler, gives it back re-armed (or closed).
fn worker(
    jobs: &Mutex<mpsc::Receiver<Conn>>,
    done: &mpsc::Sender<Returned>,
    ep: &Epoll,
    app: &App,
) {
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        let job = jobs.lock().unwrap_or_else(|p| p.into_inner()).recv();
        let Ok(mut c) = job else {
            return; // the epoll thread is gone
        };
        if c.progress(app, &mut buf) == Outcome::Done {
            let svc = c.svc;
            svc.stats(app).closed();
            drop(c);
            if done.send(Returned::Closed(svc)).is_err() {
                return;
            }
            continue;
        }
        // Re-arm, then hand it back: an event that beats it to the epoll thread is remembered
        // there and dispatched when it arrives.
        let (fd, interest) = (c.fd(), c.interest() | Events::ONESHOT);
        let rearmed = ep.ctl(
            ringstack_sockets::CtlOp::Mod,
            fd,
            EpollEvent::new(interest, fd as u64),
        );
        let back = if rearmed.is_ok() {
            Returned::Open(c)
        } else {
            let svc = c.svc;
            svc.stats(app).closed();
            Returned::Closed(svc)
        };
        if done.send(back).is_err() {
            return;
        }
    }
}
