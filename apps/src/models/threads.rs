//! Thread per connection: every accepted connection gets its own thread, which reads, handles
//! and writes with plain blocking calls — the straight-line code of the notes' server call
//! sequence (`accept`, `read`, `write`, `close`), with no state machine and no readiness. Each
//! blocked thread sleeps until the driver thread (which this model starts) reports progress;
//! the price is a thread, its stack and its wakeups per connection.
//!
//! The main thread is the acceptor: it waits on the listeners (an epoll set, so that one thread
//! serves them all and still runs its housekeeping) and spawns the threads, within
//! `--max-clients`. Blocking calls use short timeouts so a thread notices `stop`, and the
//! idle timeout, without anyone having to interrupt it.

use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant as StdInstant};

use anyhow::Result;
use ringstack_sockets::{Epoll, Events, Net, TcpStream, UdpSocket};

use super::reactor::{Listener, Svc};
use super::{any, App, DiscardTally, Hooks, StackServices, Ticker, ECHO_PORT, READ_CHUNK};
use crate::services::http::{Chunk, Session};

/// The longest a blocking call waits before its thread looks at `stop` and the idle clock.
const SLICE: Duration = Duration::from_millis(200);
/// Stack of each connection thread (the buffers live on the heap).
const THREAD_STACK: usize = 256 * 1024;

/// Runs the services with a thread per connection until `hooks.stop`.
pub fn run(net: &Net, app: &Arc<App>, hooks: Hooks<'_>) -> Result<()> {
    let _driver = super::ensure_driver(net)?;
    let ep = Epoll::create(net)?;
    let mut listeners = Listener::bind_all(net, app)?;
    for (i, l) in listeners.iter().enumerate() {
        ep.add(l.listener.fd(), Events::IN, i as u64)?;
    }
    let udp = if app.opts.services.echo {
        let u = UdpSocket::bind(net, any(ECHO_PORT))?;
        u.set_read_timeout(Some(SLICE))?;
        Some(u)
    } else {
        None
    };
    let mut stack_services = StackServices::new(net, app)?;
    let stop = hooks.stop;
    (hooks.ready)();
    let mut tick = hooks.tick;
    let mut ticker = Ticker::new();
    std::thread::scope(|scope| -> Result<()> {
        if let Some(u) = &udp {
            std::thread::Builder::new()
                .name("udp-echo".into())
                .spawn_scoped(scope, move || udp_echo(u, app, stop))?;
        }
        // Whether each listener is in the epoll set (it leaves it while its service is full, or
        // `epoll_wait` would report the waiting connections again and again).
        let mut armed = vec![true; listeners.len()];
        let mut events = Vec::with_capacity(16);
        while !stop.load(Ordering::Relaxed) {
            ep.wait(
                &mut events,
                16,
                stack_services.wait_budget().as_millis() as i32,
            )?;
            for (i, l) in listeners.iter_mut().enumerate() {
                let ready = events.iter().any(|e| e.data == i as u64);
                let room = l.svc.stats(app).has_room(app.opts.max_clients);
                if !room {
                    // Disarmed while full: see whether someone is waiting to be accepted.
                    l.waiting = net
                        .readiness(l.listener.fd())
                        .is_some_and(|e| e.contains(Events::IN));
                    l.svc.stats(app).set_waiting(l.waiting);
                }
                if ready || (l.waiting && room) {
                    let mut fresh = Vec::new();
                    l.accept(app, |c| fresh.push(c));
                    for c in fresh {
                        let (stream, svc) = c.into_parts();
                        let spawned = std::thread::Builder::new()
                            .name(format!("{svc:?}-conn").to_lowercase())
                            .stack_size(THREAD_STACK)
                            .spawn_scoped(scope, move || {
                                serve(stream, svc, app, stop);
                                svc.stats(app).closed();
                            });
                        if let Err(e) = spawned {
                            eprintln!("ringstack: cannot start a connection thread: {e}");
                            svc.stats(app).closed();
                        }
                    }
                }
                let room = l.svc.stats(app).has_room(app.opts.max_clients);
                if room != armed[i] {
                    let interest = if room { Events::IN } else { Events::NONE };
                    ep.modify(l.listener.fd(), interest, i as u64)?;
                    armed[i] = room;
                }
            }
            stack_services.poll(net);
            ticker.maybe(net, &mut *tick);
        }
        Ok(())
    })
}

fn udp_echo(u: &UdpSocket, app: &App, stop: &AtomicBool) {
    let mut buf = vec![0u8; READ_CHUNK];
    while !stop.load(Ordering::Relaxed) {
        match u.recv_from(&mut buf) {
            Ok((n, from)) => {
                let _ = u.send_to(&buf[..n], from);
                app.udp_echoed.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => std::thread::sleep(SLICE),
        }
    }
}

/// One connection, start to end, on its own thread.
fn serve(stream: TcpStream, svc: Svc, app: &App, stop: &AtomicBool) {
    if stream.set_nonblocking(false).is_err()
        || stream.set_read_timeout(Some(SLICE)).is_err()
        || stream.set_write_timeout(Some(SLICE)).is_err()
        || (svc == Svc::Http && super::reactor::nodelay_for_http(&stream).is_err())
    {
        return;
    }
    let mut conn = Blocking {
        stream: &stream,
        app,
        stop,
        svc,
        last_active: StdInstant::now(),
    };
    let _ = match svc {
        Svc::Echo => conn.echo(),
        Svc::Discard => conn.discard(),
        Svc::Http => conn.http(),
    };
    // Dropping the stream closes it (FIN after what is queued).
}

/// A connection served with blocking calls.
struct Blocking<'a> {
    stream: &'a TcpStream,
    app: &'a App,
    stop: &'a AtomicBool,
    svc: Svc,
    last_active: StdInstant,
}

impl Blocking<'_> {
    /// Whether a call that timed out should give up: serve is stopping, or (HTTP only) the
    /// connection has been idle longer than `--idle-timeout`.
    fn give_up(&self, idle_counts: bool) -> bool {
        if self.stop.load(Ordering::Relaxed) {
            return true;
        }
        if idle_counts && self.last_active.elapsed() > self.app.opts.idle_timeout {
            if self.svc == Svc::Http {
                self.app
                    .http_stats
                    .idle_closed
                    .fetch_add(1, Ordering::Relaxed);
            }
            return true;
        }
        false
    }

    /// A blocking read; `Ok(None)` when it gave up (stop or idle).
    fn read(&mut self, buf: &mut [u8], idle_counts: bool) -> io::Result<Option<usize>> {
        loop {
            match self.stream.read(buf) {
                Ok(n) => {
                    if n > 0 {
                        self.last_active = StdInstant::now();
                    }
                    self.svc
                        .stats(self.app)
                        .bytes_in
                        .fetch_add(n as u64, Ordering::Relaxed);
                    return Ok(Some(n));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if self.give_up(idle_counts) {
                        return Ok(None);
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Sends `len` bytes with `send` (a blocking write or `send_file` returning how much it
    /// queued before its timeout), retrying while the peer reads, within the idle timeout.
    fn send_all(
        &mut self,
        len: u64,
        mut send: impl FnMut(u64) -> io::Result<u64>,
    ) -> io::Result<()> {
        let mut done = 0;
        let mut stalled_since = StdInstant::now();
        while done < len {
            match send(done) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    done += n;
                    stalled_since = StdInstant::now();
                    self.svc
                        .stats(self.app)
                        .bytes_out
                        .fetch_add(n, Ordering::Relaxed);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if self.stop.load(Ordering::Relaxed)
                        || stalled_since.elapsed() > self.app.opts.idle_timeout
                    {
                        return Err(io::ErrorKind::TimedOut.into());
                    }
                }
                Err(e) => return Err(e),
            }
        }
        self.last_active = StdInstant::now();
        Ok(())
    }

    fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        let mut s = self.stream;
        self.send_all(data.len() as u64, |from| {
            s.write(&data[from as usize..]).map(|n| n as u64)
        })
    }

    fn echo(&mut self) -> io::Result<()> {
        let mut buf = vec![0u8; READ_CHUNK];
        while let Some(n) = self.read(&mut buf, false)? {
            if n == 0 {
                return Ok(());
            }
            self.write_all(&buf[..n])?;
        }
        Ok(())
    }

    fn discard(&mut self) -> io::Result<()> {
        let mut buf = vec![0u8; READ_CHUNK];
        let mut tally = DiscardTally::default();
        while let Some(n) = self.read(&mut buf, false)? {
            if n == 0 {
                tally.report(self.stream.peer_addr().ok());
                return Ok(());
            }
            tally.add(&buf[..n]);
        }
        Ok(())
    }

    fn http(&mut self) -> io::Result<()> {
        let h = Arc::clone(self.app.http.as_ref().expect("http enabled"));
        let mut session = Session::new();
        let mut buf = vec![0u8; READ_CHUNK];
        loop {
            while let Some(chunk) = session.front(&h) {
                let n = chunk.remaining();
                match chunk {
                    Chunk::Bytes { buf, pos } => {
                        let data = std::mem::take(buf);
                        let r = self.write_all(&data[*pos..]);
                        *buf = data;
                        r?;
                    }
                    Chunk::File { file, offset, len } => {
                        let (file, offset, len) = (Arc::clone(file), *offset, *len);
                        let s = self.stream;
                        self.send_all(len, |from| s.send_file(&file, offset + from, len - from))?;
                    }
                }
                session.advance(n);
            }
            if session.finished(&h) {
                return Ok(());
            }
            match self.read(&mut buf, true)? {
                None => return Ok(()),
                Some(0) => session.on_eof(),
                Some(n) => session.on_data(&buf[..n]),
            }
        }
    }
}
