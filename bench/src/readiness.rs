//! Workload 3: the cost of one readiness `wait` with N idle registered sockets plus 10 ready
//! ones, for `Epoll::wait` (level-triggered, maxevents 64, timeout 0), `poll` and `select`
//! (only while every descriptor is below FD_SETSIZE = 1024), on the `sockets` crate over the
//! in-memory pair (virtual clock).
//!
//! Idle sockets: UDP sockets bound to A:1.. (at most 50,000) and then TCP listeners on A:1..
//! (the stack's limit is 65,536 TCP sockets). Ready: ten UDP sockets on A:60001..60010, each
//! holding one datagram from B that nobody reads, so every wait finds the same ten ready.
//! Each wait also drives both hosts once (that is how the `sockets` crate works), which is
//! part of the measured cost.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use ringstack_nic::LinkConfig;
use ringstack_sockets::epoll::EpollEvent;
use ringstack_sockets::{
    poll::poll, select::select, Epoll, Events, FdSet, Net, PollFd, TcpListener, UdpSocket,
    FD_SETSIZE,
};
use ringstack_stack::Config;

const A: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const B: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);

/// The three multiplexers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mux {
    /// `Epoll::wait`.
    Epoll,
    /// `poll`.
    Poll,
    /// `select`.
    Select,
}

impl Mux {
    /// Its name in tables.
    pub fn name(self) -> &'static str {
        match self {
            Mux::Epoll => "epoll",
            Mux::Poll => "poll",
            Mux::Select => "select",
        }
    }
}

/// One machine A with `idle` idle sockets and ten ready ones registered in an epoll instance.
pub struct Setup {
    a: Net,
    _b: Net,
    _udp: Vec<UdpSocket>,
    _tcp: Vec<TcpListener>,
    fds: Vec<i32>,
    ep: Epoll,
    pfds: Vec<PollFd>,
    set: Option<FdSet>,
    nfds: usize,
    events: Vec<EpollEvent>,
}

/// Work counters of one wait.
#[derive(Clone, Copy, Debug, Default)]
pub struct WorkPerWait {
    /// Descriptors (or ready-list entries) examined.
    pub examined: f64,
    /// Bytes of `fd_set`/`pollfd` copied in and out.
    pub copied: f64,
}

impl Setup {
    /// Builds the setup (takes a while for 100,000 sockets).
    pub fn new(idle: usize) -> Result<Setup> {
        let mut ca = Config::new([0; 6], A, 24);
        let mut cb = Config::new([0; 6], B, 24);
        ca.seed = 1;
        cb.seed = 2;
        let (a, b) = Net::memory_pair(ca, cb, LinkConfig::default());
        let n_udp = idle.min(50_000);
        let n_tcp = idle - n_udp;
        if n_tcp > 60_000 {
            bail!("at most 110,000 idle sockets");
        }
        let mut udp = Vec::with_capacity(n_udp + 10);
        let mut tcp = Vec::with_capacity(n_tcp);
        for port in 1..=n_udp as u16 {
            udp.push(UdpSocket::bind(&a, SocketAddrV4::new(A, port))?);
        }
        for port in 1..=n_tcp as u16 {
            tcp.push(TcpListener::listen(&a, SocketAddrV4::new(A, port), 1)?);
        }
        let ready_ports: Vec<u16> = (60_001..=60_010).collect();
        for &port in &ready_ports {
            udp.push(UdpSocket::bind(&a, SocketAddrV4::new(A, port))?);
        }
        let fds: Vec<i32> = udp
            .iter()
            .map(|s| s.fd())
            .chain(tcp.iter().map(|l| l.fd()))
            .collect();
        let ep = Epoll::create(&a)?;
        for &fd in &fds {
            ep.add(fd, Events::IN, fd as u64)?;
        }
        let sender = UdpSocket::bind(&b, SocketAddrV4::new(B, 0))?;
        for &port in &ready_ports {
            sender.send_to(b"hi", SocketAddrV4::new(A, port))?;
        }
        // Let the datagrams arrive.
        a.run_for(Duration::from_millis(10))?;
        let pfds: Vec<PollFd> = fds.iter().map(|&fd| PollFd::new(fd, Events::IN)).collect();
        let max_fd = fds.iter().copied().max().unwrap_or(0) as usize;
        let set = if max_fd < FD_SETSIZE {
            let mut s = FdSet::new();
            for &fd in &fds {
                s.insert(fd)?;
            }
            Some(s)
        } else {
            None
        };
        let mut s = Setup {
            a,
            _b: b,
            _udp: udp,
            _tcp: tcp,
            fds,
            ep,
            pfds,
            set,
            nfds: max_fd + 1,
            events: Vec::with_capacity(64),
        };
        for m in [Mux::Epoll, Mux::Poll, Mux::Select] {
            if s.supports(m) {
                let n = s.wait(m)?;
                if n != 10 {
                    bail!("{}: {n} ready, expected 10", m.name());
                }
            }
        }
        Ok(s)
    }

    /// Registered descriptors.
    pub fn registered(&self) -> usize {
        self.fds.len()
    }

    /// Whether `m` can watch every descriptor (select: all below 1024).
    pub fn supports(&self, m: Mux) -> bool {
        m != Mux::Select || self.set.is_some()
    }

    /// One wait (timeout 0); returns the ready count.
    pub fn wait(&mut self, m: Mux) -> Result<usize> {
        Ok(match m {
            Mux::Epoll => self.ep.wait(&mut self.events, 64, 0)?,
            Mux::Poll => poll(&self.a, &mut self.pfds, 0)?,
            Mux::Select => {
                let mut set = self.set.clone().context("select unsupported")?;
                select(
                    &self.a,
                    self.nfds,
                    Some(&mut set),
                    None,
                    None,
                    Some(Duration::ZERO),
                )?
            }
        })
    }

    /// Nanoseconds per wait over a batch of about `target` duration, and the work counters
    /// of one wait.
    pub fn measure(&mut self, m: Mux, target: Duration) -> Result<(f64, WorkPerWait)> {
        // Calibrate.
        let t = Instant::now();
        self.wait(m)?;
        let one = t.elapsed().as_secs_f64().max(1e-7);
        let iters = ((target.as_secs_f64() / one) as u64).clamp(3, 1_000_000);
        self.a.reset_work();
        let t = Instant::now();
        for _ in 0..iters {
            let n = self.wait(m)?;
            debug_assert_eq!(n, 10);
        }
        let ns = t.elapsed().as_secs_f64() * 1e9 / iters as f64;
        let w = self.a.work();
        let it = iters as f64;
        let examined = match m {
            Mux::Epoll => w.epoll_examined,
            Mux::Poll => w.poll_examined,
            Mux::Select => w.select_examined,
        } as f64
            / it;
        Ok((
            ns,
            WorkPerWait {
                examined,
                copied: w.set_bytes_copied as f64 / it,
            },
        ))
    }
}
