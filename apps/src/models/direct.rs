//! The direct model: each service is a state machine polled on the sans-IO [`Stack`] once per
//! round of the driver loop (`serve`'s real-time `Runtime`, or [`run_on_net`]). No descriptors,
//! no readiness: every round every connection is tried — simple, and fast while connections
//! are few and busy. File bodies go from the file into the send buffer's free space with one
//! `pread` per piece ([`Stack::tcp_send_with`]), with no buffer in between.

use std::os::unix::fs::FileExt;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use anyhow::Result;
use ringstack_sockets::Net;
use ringstack_stack::{Duration, Instant, Readiness, Stack, TcpError, TcpHandle, UdpHandle};

use super::{
    any, App, DiscardTally, Hooks, ServiceStats, Ticker, DISCARD_PORT, ECHO_HIGH_WATER, ECHO_PORT,
    HTTP_PORT, READ_CHUNK,
};
use crate::services::http::{Chunk, Handler, Session};
use crate::services::iperf::Iperf;
use crate::services::Service;

/// The services `app` asks for, on `stack` (iperf included).
pub fn services(stack: &mut Stack, app: &Arc<App>) -> Result<Vec<Box<dyn Service + Send>>> {
    let mut v: Vec<Box<dyn Service + Send>> = Vec::new();
    let s = app.opts.services;
    if s.echo {
        v.push(Box::new(Echo::new(stack, Arc::clone(app))?));
    }
    if s.discard {
        v.push(Box::new(Discard::new(stack, Arc::clone(app))?));
    }
    if s.http {
        v.push(Box::new(Http::new(stack, Arc::clone(app))?));
    }
    if s.iperf {
        v.push(Box::new(Iperf::new(stack, crate::services::iperf::PORT)?));
    }
    Ok(v)
}

/// The direct services on a [`Net`] (for tests on the in-memory link: `serve --model direct`
/// drives them from its own real-time loop instead): polled once per drive, sleeping at most
/// a millisecond when nothing moved.
pub fn run_on_net(net: &Net, app: &Arc<App>, hooks: Hooks<'_>) -> Result<()> {
    let mut services = net.with_stack(|s| services(s, app))?;
    (hooks.ready)();
    let mut tick = hooks.tick;
    let mut ticker = Ticker::new();
    while !hooks.stop.load(Ordering::Relaxed) {
        let now = net.now();
        let did = net.with_stack(|s| {
            let mut did = false;
            for svc in &mut services {
                did |= svc.poll(now, s);
            }
            did
        });
        net.poll()?;
        ticker.maybe(net, &mut *tick);
        if !did {
            net.run_for(StdDuration::from_millis(1))?;
        }
    }
    Ok(())
}

/// Accepts what `listener` holds while `stats` has room under `max`. `waiting` remembers that
/// connections were left in the accept queue because the service was full: the ones accepted
/// after that are counted as queued.
fn accept_within(
    stack: &mut Stack,
    listener: TcpHandle,
    stats: &ServiceStats,
    max: Option<usize>,
    waiting: &mut bool,
    mut f: impl FnMut(&mut Stack, TcpHandle),
) -> bool {
    let mut any = false;
    loop {
        if !stats.has_room(max) {
            // Full: does anyone wait in the accept queue?
            *waiting = stack
                .readiness(listener.into())
                .contains(Readiness::READABLE);
            stats.set_waiting(*waiting);
            return any;
        }
        match stack.tcp_accept(listener) {
            Ok(h) => {
                stats.admitted(*waiting);
                f(stack, h);
                any = true;
            }
            Err(TcpError::WouldBlock) => {
                *waiting = false;
                stats.set_waiting(false);
                return any;
            }
            Err(e) => {
                eprintln!("ringstack: accept failed: {e}");
                return any;
            }
        }
    }
}

struct EchoConn {
    h: TcpHandle,
    pending: Vec<u8>,
    eof: bool,
}

/// Echo (RFC 862) on TCP and UDP 7: every byte received is sent back.
pub struct Echo {
    app: Arc<App>,
    listener: TcpHandle,
    udp: UdpHandle,
    conns: Vec<EchoConn>,
    waiting: bool,
    buf: Vec<u8>,
}

impl Echo {
    /// Listens on TCP and UDP 7.
    pub fn new(stack: &mut Stack, app: Arc<App>) -> Result<Echo> {
        Ok(Echo {
            app,
            listener: stack.tcp_listen(ECHO_PORT, super::BACKLOG)?,
            udp: stack.udp_bind(any(ECHO_PORT))?,
            conns: Vec::new(),
            waiting: false,
            buf: vec![0; READ_CHUNK],
        })
    }
}

impl Service for Echo {
    fn name(&self) -> &'static str {
        "echo"
    }

    fn poll(&mut self, now: Instant, stack: &mut Stack) -> bool {
        let app = &*self.app;
        let conns = &mut self.conns;
        let max = app.opts.max_clients;
        let mut did = accept_within(
            stack,
            self.listener,
            &app.echo,
            max,
            &mut self.waiting,
            |_, h| {
                conns.push(EchoConn {
                    h,
                    pending: Vec::new(),
                    eof: false,
                })
            },
        );
        while let Ok((n, from)) = stack.udp_recv_from(self.udp, &mut self.buf) {
            let _ = stack.udp_send_to(now, self.udp, &self.buf[..n], from);
            app.udp_echoed.fetch_add(1, Ordering::Relaxed);
            did = true;
        }
        let buf = &mut self.buf;
        let before = self.conns.len();
        self.conns.retain_mut(|c| {
            let mut alive = true;
            loop {
                if !c.pending.is_empty() {
                    match stack.tcp_send(now, c.h, &c.pending) {
                        Ok(0) | Err(TcpError::WouldBlock) => {}
                        Ok(n) => {
                            c.pending.drain(..n);
                            app.echo.bytes_out.fetch_add(n as u64, Ordering::Relaxed);
                            did = true;
                        }
                        Err(_) => alive = false,
                    }
                }
                if !alive || c.eof || c.pending.len() >= ECHO_HIGH_WATER {
                    break;
                }
                match stack.tcp_recv(now, c.h, buf) {
                    Ok(0) => c.eof = true,
                    Ok(n) => {
                        c.pending.extend_from_slice(&buf[..n]);
                        app.echo.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
                        did = true;
                        continue;
                    }
                    Err(TcpError::WouldBlock) => {}
                    Err(_) => alive = false,
                }
                break;
            }
            if !alive {
                let _ = stack.tcp_abort(now, c.h);
            } else if c.eof && c.pending.is_empty() {
                let _ = stack.tcp_close(now, c.h);
                alive = false;
            }
            if !alive {
                app.echo.closed();
            }
            alive
        });
        if self.conns.len() < before && self.waiting {
            // Room again: take the connections that waited, now rather than next round.
            did |= self.poll(now, stack);
        }
        did
    }
}

/// Discard (RFC 863) on TCP 9: every byte received is thrown away (and tallied).
pub struct Discard {
    app: Arc<App>,
    listener: TcpHandle,
    conns: Vec<(TcpHandle, DiscardTally)>,
    waiting: bool,
    buf: Vec<u8>,
}

impl Discard {
    /// Listens on TCP 9.
    pub fn new(stack: &mut Stack, app: Arc<App>) -> Result<Discard> {
        Ok(Discard {
            app,
            listener: stack.tcp_listen(DISCARD_PORT, super::BACKLOG)?,
            conns: Vec::new(),
            waiting: false,
            buf: vec![0; READ_CHUNK],
        })
    }
}

impl Service for Discard {
    fn name(&self) -> &'static str {
        "discard"
    }

    fn poll(&mut self, now: Instant, stack: &mut Stack) -> bool {
        let app = &*self.app;
        let conns = &mut self.conns;
        let max = app.opts.max_clients;
        let mut did = accept_within(
            stack,
            self.listener,
            &app.discard,
            max,
            &mut self.waiting,
            |_, h| conns.push((h, DiscardTally::default())),
        );
        let buf = &mut self.buf;
        self.conns = std::mem::take(&mut self.conns)
            .into_iter()
            .filter_map(|(h, mut tally)| loop {
                match stack.tcp_recv(now, h, buf) {
                    Ok(0) => {
                        tally.report(stack.tcp().peer_addr(h));
                        let _ = stack.tcp_close(now, h);
                        app.discard.closed();
                        return None;
                    }
                    Ok(n) => {
                        tally.add(&buf[..n]);
                        app.discard.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
                        did = true;
                    }
                    Err(TcpError::WouldBlock) => return Some((h, tally)),
                    Err(_) => {
                        let _ = stack.tcp_abort(now, h);
                        app.discard.closed();
                        return None;
                    }
                }
            })
            .collect();
        did
    }
}

struct HttpConn {
    h: TcpHandle,
    session: Session,
    last_active: Instant,
}

/// HTTP on TCP 80 (the protocol is [`crate::services::http`]).
pub struct Http {
    app: Arc<App>,
    handler: Arc<Handler>,
    listener: TcpHandle,
    conns: Vec<HttpConn>,
    waiting: bool,
    buf: Vec<u8>,
}

impl Http {
    /// Listens on TCP 80.
    pub fn new(stack: &mut Stack, app: Arc<App>) -> Result<Http> {
        let handler = Arc::clone(app.http.as_ref().expect("http enabled"));
        Ok(Http {
            app,
            handler,
            listener: stack.tcp_listen(HTTP_PORT, super::BACKLOG)?,
            conns: Vec::new(),
            waiting: false,
            buf: vec![0; READ_CHUNK],
        })
    }

    /// Serves one connection as far as it can go now. Returns (alive, did work).
    fn serve(&mut self, now: Instant, stack: &mut Stack, c: &mut HttpConn) -> (bool, bool) {
        let (h, stats) = (&*self.handler, &self.app.http_stats);
        let mut did = false;
        loop {
            // Send what is queued, as far as the send buffer takes it.
            while let Some(chunk) = c.session.front(h) {
                let r = match chunk {
                    Chunk::Bytes { buf, pos } => stack.tcp_send(now, c.h, &buf[*pos..]),
                    Chunk::File { file, offset, len } => {
                        let mut short = false;
                        let r = stack.tcp_send_with(now, c.h, |room| {
                            let n = room.len().min(*len as usize);
                            match file.read_exact_at(&mut room[..n], *offset) {
                                Ok(()) => n,
                                Err(_) => {
                                    short = true;
                                    0
                                }
                            }
                        });
                        if short {
                            // The file shrank under us: the response cannot be completed.
                            let _ = stack.tcp_abort(now, c.h);
                            return (false, did);
                        }
                        r
                    }
                };
                match r {
                    Ok(0) | Err(TcpError::WouldBlock) => break,
                    Ok(n) => {
                        c.session.advance(n as u64);
                        stats.bytes_out.fetch_add(n as u64, Ordering::Relaxed);
                        did = true;
                    }
                    Err(_) => return (false, did),
                }
            }
            if c.session.has_output() {
                break; // send buffer full: wait for ACKs
            }
            if c.session.finished(h) {
                let _ = stack.tcp_close(now, c.h);
                return (false, did);
            }
            if !c.session.wants_read() {
                break;
            }
            match stack.tcp_recv(now, c.h, &mut self.buf) {
                Ok(0) => c.session.on_eof(),
                Ok(n) => {
                    c.session.on_data(&self.buf[..n]);
                    stats.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
                    c.last_active = now;
                    did = true;
                }
                Err(TcpError::WouldBlock) => break,
                Err(_) => return (false, did),
            }
        }
        let idle = Duration::from_micros(self.app.opts.idle_timeout.as_micros() as u64);
        if now - c.last_active > idle && !c.session.has_output() {
            stats.idle_closed.fetch_add(1, Ordering::Relaxed);
            let _ = stack.tcp_close(now, c.h);
            return (false, did);
        }
        (true, did)
    }
}

impl Service for Http {
    fn name(&self) -> &'static str {
        "http"
    }

    fn poll(&mut self, now: Instant, stack: &mut Stack) -> bool {
        let mut fresh = Vec::new();
        let max = self.app.opts.max_clients;
        let mut did = accept_within(
            stack,
            self.listener,
            &self.app.http_stats,
            max,
            &mut self.waiting,
            |_, h| fresh.push(h),
        );
        self.conns.extend(fresh.into_iter().map(|h| HttpConn {
            h,
            session: Session::new(),
            last_active: now,
        }));
        let mut conns = std::mem::take(&mut self.conns);
        let before = conns.len();
        conns.retain_mut(|c| {
            let (alive, d) = self.serve(now, stack, c);
            did |= d;
            if !alive {
                // Frees the handle whatever state the connection ended in.
                let _ = stack.tcp_close(now, c.h);
                self.app.http_stats.closed();
            }
            alive
        });
        let freed = conns.len() < before;
        self.conns = conns;
        if freed && self.waiting {
            did |= self.poll(now, stack);
        }
        did
    }
}
