//! The proactor: the program never waits for a socket and never copies out of one. It submits
//! operations with owned buffers — `accept`, `read` into this buffer, `write` all of that
//! buffer — to a completion queue ([`Ring`]) and handles what comes back: the notes' Proactor
//! ("将所有的I/O操作都交给内核来处理…在I/O操作完成后通知应用程序"), with the driver in the
//! kernel's role. A read completes with the bytes already in the submitted buffer (the one
//! copy of stage two was done by the driver); the handler only parses and answers.
//!
//! Echo shows the style at its best: the buffer a read completes with is submitted, as is, as
//! the write of the echo — no copy in the program at all. HTTP bodies are read from the file
//! into owned buffers (`pread`) and submitted as writes: a completion queue takes buffers, not
//! file ranges (as with io_uring, which has no `sendfile` either), so the proactor pays the
//! read + write copy that `send_file` avoids in the other socket models. Up to two writes are
//! in flight per connection, so the send buffer never runs dry between them.
//!
//! When no driver thread runs, [`Ring::wait`] drives the stack itself: one thread does all.

use std::collections::HashMap;
use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant as StdInstant};

use anyhow::Result;
use ringstack_sockets::{Completion, Events, Net, Ring, TcpListener, TcpStream, UdpSocket};

use super::reactor::Svc;
use super::{any, App, DiscardTally, Hooks, StackServices, Ticker, ECHO_HIGH_WATER, READ_CHUNK};
use crate::services::http::Session;

/// Accepts kept in flight per listener (fewer when near `--max-clients`).
const ACCEPT_DEPTH: usize = 16;
/// Writes in flight per connection.
const WRITE_DEPTH: usize = 2;
/// Bytes of a file body per submitted write.
const WRITE_CHUNK: usize = 128 * 1024;
/// How often idle connections are looked for.
const SWEEP: Duration = Duration::from_secs(1);

/// What a completion is for: the low bits of its token.
const OP_ACCEPT: u64 = 0;
const OP_READ: u64 = 1;
const OP_WRITE: u64 = 2;
const OP_UDP: u64 = 3;

fn token(id: u64, op: u64) -> u64 {
    (id << 2) | op
}

enum State {
    /// Bytes read, handed to writes and not yet completed.
    Echo {
        queued: usize,
        eof: bool,
    },
    Discard(Option<DiscardTally>),
    Http(Session),
}

struct Conn {
    stream: TcpStream,
    svc: Svc,
    state: State,
    /// A read is in flight.
    reading: bool,
    writes: usize,
    last_active: StdInstant,
}

struct Listener {
    listener: TcpListener,
    svc: Svc,
    in_flight: usize,
    waiting: bool,
}

/// The proactor's state: the ring, its connections, and buffers to reuse.
struct Proactor<'a> {
    app: &'a App,
    ring: Ring,
    listeners: Vec<Listener>,
    conns: HashMap<u64, Conn>,
    next_id: u64,
    pool: Vec<Vec<u8>>,
    udp: Option<UdpSocket>,
}

/// Runs the services as a proactor until `hooks.stop`.
pub fn run(net: &Net, app: &Arc<App>, hooks: Hooks<'_>) -> Result<()> {
    let mut listeners = Vec::new();
    for svc in Svc::enabled(app) {
        listeners.push(Listener {
            listener: TcpListener::listen(net, any(svc.port()), super::BACKLOG)?,
            svc,
            in_flight: 0,
            waiting: false,
        });
    }
    let udp = if app.opts.services.echo {
        Some(UdpSocket::bind(net, any(super::ECHO_PORT))?)
    } else {
        None
    };
    let mut p = Proactor {
        app,
        ring: Ring::new(net),
        listeners,
        conns: HashMap::new(),
        next_id: 1,
        pool: Vec::new(),
        udp,
    };
    if let Some(u) = &p.udp {
        p.ring.read(u.fd(), vec![0; READ_CHUNK], token(0, OP_UDP))?;
    }
    p.top_up_accepts()?;
    let mut stack_services = StackServices::new(net, app)?;
    (hooks.ready)();
    let mut tick = hooks.tick;
    let mut ticker = Ticker::new();
    let mut done: Vec<Completion> = Vec::with_capacity(256);
    let mut last_sweep = StdInstant::now();
    while !hooks.stop.load(Ordering::Relaxed) {
        p.ring
            .wait(&mut done, 1, Some(stack_services.wait_budget()))?;
        for c in done.drain(..) {
            p.complete(c)?;
        }
        if last_sweep.elapsed() >= SWEEP {
            last_sweep = StdInstant::now();
            p.sweep();
        }
        p.top_up_accepts()?;
        stack_services.poll(net);
        ticker.maybe(net, &mut *tick);
    }
    Ok(())
}

impl Proactor<'_> {
    fn recycle(&mut self, mut b: Vec<u8>) {
        if self.pool.len() < 256 && b.capacity() >= READ_CHUNK {
            b.clear();
            self.pool.push(b);
        }
    }

    /// Keeps accepts in flight on every listener, within `--max-clients`.
    fn top_up_accepts(&mut self) -> io::Result<()> {
        let max = self.app.opts.max_clients;
        for (i, l) in self.listeners.iter_mut().enumerate() {
            let stats = l.svc.stats(self.app);
            let active = stats.active.load(Ordering::SeqCst) as usize;
            let room = max.map_or(ACCEPT_DEPTH, |m| m.saturating_sub(active + l.in_flight));
            let pending = l
                .listener
                .net()
                .readiness(l.listener.fd())
                .is_some_and(|e| e.contains(Events::IN));
            if room == 0 && l.in_flight == 0 {
                // Full: does anyone wait in the accept queue?
                l.waiting = pending;
                stats.set_waiting(pending);
            } else if !pending && l.in_flight > 0 {
                // Accepts in flight and nobody queued: whoever comes next is taken at once.
                l.waiting = false;
                stats.set_waiting(false);
            }
            let target = ACCEPT_DEPTH.min(l.in_flight + room);
            while l.in_flight < target {
                self.ring
                    .accept(l.listener.fd(), token(i as u64, OP_ACCEPT))?;
                l.in_flight += 1;
            }
        }
        Ok(())
    }

    fn complete(&mut self, c: Completion) -> Result<()> {
        let (id, op) = (c.user_data >> 2, c.user_data & 3);
        match op {
            OP_ACCEPT => {
                let l = &mut self.listeners[id as usize];
                l.in_flight -= 1;
                let Some(stream) = c.stream else {
                    return Ok(());
                };
                if l.svc == Svc::Http {
                    let _ = super::reactor::nodelay_for_http(&stream);
                }
                let (svc, waited) = (l.svc, l.waiting);
                svc.stats(self.app).admitted(waited);
                let id = self.next_id;
                self.next_id += 1;
                let state = match svc {
                    Svc::Echo => State::Echo {
                        queued: 0,
                        eof: false,
                    },
                    Svc::Discard => State::Discard(Some(DiscardTally::default())),
                    Svc::Http => State::Http(Session::new()),
                };
                self.conns.insert(
                    id,
                    Conn {
                        stream,
                        svc,
                        state,
                        reading: false,
                        writes: 0,
                        last_active: StdInstant::now(),
                    },
                );
                self.pump(id);
            }
            OP_UDP => {
                let mut buf = c.buf;
                if let (Some(u), Ok(n), Some(from)) = (&self.udp, &c.result, c.from) {
                    let _ = u.send_to(&buf[..*n], from);
                    self.app.udp_echoed.fetch_add(1, Ordering::Relaxed);
                }
                buf.resize(READ_CHUNK, 0);
                if let Some(u) = &self.udp {
                    self.ring.read(u.fd(), buf, token(0, OP_UDP))?;
                }
            }
            OP_READ => self.read_done(id, c.result, c.buf),
            _ => self.write_done(id, c.result, c.buf),
        }
        Ok(())
    }

    fn read_done(&mut self, id: u64, result: io::Result<usize>, mut buf: Vec<u8>) {
        let app = self.app;
        let Some(conn) = self.conns.get_mut(&id) else {
            return self.recycle(buf); // closed meanwhile: the read was cancelled
        };
        conn.reading = false;
        let n = match result {
            Ok(n) => n,
            Err(_) => {
                self.recycle(buf);
                return self.close(id);
            }
        };
        let stats = conn.svc.stats(app);
        stats.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
        match &mut conn.state {
            State::Echo { queued, eof } => {
                if n == 0 {
                    *eof = true;
                    self.recycle(buf);
                } else {
                    // The buffer the read filled is the write: no copy in the program.
                    buf.truncate(n);
                    *queued += n;
                    conn.writes += 1;
                    let fd = conn.stream.fd();
                    if self.ring.write(fd, buf, token(id, OP_WRITE)).is_err() {
                        return self.close(id);
                    }
                }
            }
            State::Discard(tally) => {
                if n == 0 {
                    if let Some(t) = tally.take() {
                        t.report(conn.stream.peer_addr().ok());
                    }
                    self.recycle(buf);
                    return self.close(id);
                }
                if let Some(t) = tally {
                    t.add(&buf[..n]);
                }
                self.recycle(buf);
            }
            State::Http(session) => {
                if n == 0 {
                    session.on_eof();
                } else {
                    session.on_data(&buf[..n]);
                    conn.last_active = StdInstant::now();
                }
                self.recycle(buf);
            }
        }
        self.pump(id);
    }

    fn write_done(&mut self, id: u64, result: io::Result<usize>, buf: Vec<u8>) {
        let want = buf.len();
        self.recycle(buf);
        let app = self.app;
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        conn.writes -= 1;
        match result {
            Ok(n) if n == want => {
                conn.svc
                    .stats(app)
                    .bytes_out
                    .fetch_add(n as u64, Ordering::Relaxed);
                if let State::Echo { queued, .. } = &mut conn.state {
                    *queued -= n;
                }
            }
            // A short write means the connection failed part-way.
            _ => return self.close(id),
        }
        self.pump(id);
    }

    /// Submits what the connection can use now: reads, the next writes; closes it when done.
    fn pump(&mut self, id: u64) {
        let h = self.app.http.clone();
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        let fd = conn.stream.fd();
        let (want_read, finished) = match &mut conn.state {
            State::Echo { queued, eof } => (!*eof && *queued < ECHO_HIGH_WATER, *eof),
            State::Discard(_) => (true, false),
            State::Http(session) => {
                let h = h.as_deref().expect("http enabled");
                let mut failed = false;
                while conn.writes < WRITE_DEPTH {
                    let out = match session.take_next(h, self.pool.pop(), WRITE_CHUNK) {
                        Ok(Some(b)) => b,
                        Ok(None) => break,
                        Err(_) => {
                            failed = true;
                            break;
                        }
                    };
                    conn.writes += 1;
                    if self.ring.write(fd, out, token(id, OP_WRITE)).is_err() {
                        failed = true;
                        break;
                    }
                }
                if failed {
                    return self.close(id);
                }
                (session.wants_read(), session.finished(h))
            }
        };
        if finished && conn.writes == 0 {
            return self.close(id);
        }
        if want_read && !conn.reading {
            conn.reading = true;
            let buf = self.pool.pop().map_or_else(
                || vec![0; READ_CHUNK],
                |mut b| {
                    b.resize(READ_CHUNK, 0);
                    b
                },
            );
            if self.ring.read(fd, buf, token(id, OP_READ)).is_err() {
                self.close(id);
            }
        }
    }

    fn close(&mut self, id: u64) {
        // Dropping the stream closes it; its pending operations complete as cancelled.
        if let Some(c) = self.conns.remove(&id) {
            c.svc.stats(self.app).closed();
        }
    }

    fn sweep(&mut self) {
        let idle = self.app.opts.idle_timeout;
        let expired: Vec<u64> = self
            .conns
            .iter()
            .filter(|(_, c)| {
                matches!(&c.state, State::Http(s) if !s.has_output())
                    && c.writes == 0
                    && c.last_active.elapsed() > idle
            })
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            self.app
                .http_stats
                .idle_closed
                .fetch_add(1, Ordering::Relaxed);
            self.close(id);
        }
    }
}
