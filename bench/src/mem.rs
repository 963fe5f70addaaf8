//! Workload 1: in-memory bulk TCP, one way, CPU-bound in one thread.
//!
//! Two endpoints (ringstack [`Host`]s or smoltcp `Interface`s over [`SmoltcpDevice`]) on one
//! clean [`MemoryLink`] (no delay, no loss: a FIFO), driven on a virtual clock the way
//! `tests/tests/smoltcp_interop.rs` drives them: move frames until both sides are quiet at this
//! instant, then jump to the earliest deadline. The sender (198.18.0.1) connects to the
//! receiver (198.18.0.2) and writes `bytes` from a 1 MiB pattern; the run ends when the
//! receiver has read them all. Both stacks get 256 KiB send and receive buffers.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Instant as WallInstant;

use anyhow::{bail, Result};
use ringstack_nic::{LinkConfig, MemoryLink, MemoryNic, Nic, SmoltcpDevice};
use ringstack_sockets::Host;
use ringstack_stack::{Config, Duration, Instant, TcpError, TcpHandle};
use smoltcp::iface::{Config as IfaceConfig, Interface, PollResult, SocketHandle, SocketSet};
use smoltcp::socket::tcp;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr};

const A: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const B: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const PORT: u16 = 5001;
const BUF: usize = 256 * 1024;

/// Which stack each end runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// ringstack.
    Ring,
    /// smoltcp 0.14.
    Smol,
}

/// A sender → receiver pairing.
#[derive(Clone, Copy, Debug)]
pub struct Contender {
    /// Short name, used by `--callgrind-workload`.
    pub name: &'static str,
    /// The sending stack.
    pub sender: Kind,
    /// The receiving stack.
    pub receiver: Kind,
}

/// The contenders of the in-memory bulk workload, in the order they alternate.
pub const CONTENDERS: [Contender; 4] = [
    Contender {
        name: "rs-rs",
        sender: Kind::Ring,
        receiver: Kind::Ring,
    },
    Contender {
        name: "smol-smol",
        sender: Kind::Smol,
        receiver: Kind::Smol,
    },
    Contender {
        name: "rs-smol",
        sender: Kind::Ring,
        receiver: Kind::Smol,
    },
    Contender {
        name: "smol-rs",
        sender: Kind::Smol,
        receiver: Kind::Ring,
    },
];

/// Finds a contender by name.
pub fn contender(name: &str) -> Result<Contender> {
    match CONTENDERS.iter().find(|c| c.name == name) {
        Some(c) => Ok(*c),
        None => bail!(
            "unknown workload {name:?}: use one of {}",
            CONTENDERS.map(|c| c.name).join(", ")
        ),
    }
}

struct Smol {
    dev: SmoltcpDevice<MemoryNic>,
    iface: Interface,
    sockets: SocketSet<'static>,
    tcp: SocketHandle,
}

enum Peer {
    Ring {
        host: Box<Host<MemoryNic>>,
        listener: Option<TcpHandle>,
        conn: Option<TcpHandle>,
    },
    Smol(Box<Smol>),
}

impl Peer {
    fn new(kind: Kind, nic: MemoryNic, mac: [u8; 6], addr: Ipv4Addr, now: Instant) -> Peer {
        match kind {
            Kind::Ring => {
                let mut cfg = Config::new(mac, addr, 24);
                cfg.seed = u64::from(mac[5]);
                cfg.tcp.rcv_buf = BUF;
                cfg.tcp.snd_buf = BUF;
                Peer::Ring {
                    host: Box::new(Host::new(nic, cfg, now)),
                    listener: None,
                    conn: None,
                }
            }
            Kind::Smol => {
                let mut dev = SmoltcpDevice::new(nic);
                dev.set_flush_each(false);
                let mut cfg = IfaceConfig::new(HardwareAddress::Ethernet(EthernetAddress(mac)));
                cfg.random_seed = u64::from(mac[5]);
                let mut iface = Interface::new(cfg, &mut dev, now);
                iface.update_ip_addrs(|a| {
                    a.push(IpCidr::new(IpAddress::Ipv4(addr), 24))
                        .expect("one address")
                });
                let sock = tcp::Socket::new(
                    tcp::SocketBuffer::new(vec![0; BUF]),
                    tcp::SocketBuffer::new(vec![0; BUF]),
                );
                let mut sockets = SocketSet::new(vec![]);
                let tcp = sockets.add(sock);
                Peer::Smol(Box::new(Smol {
                    dev,
                    iface,
                    sockets,
                    tcp,
                }))
            }
        }
    }

    fn listen(&mut self) -> Result<()> {
        match self {
            Peer::Ring { host, listener, .. } => {
                *listener = Some(
                    host.stack()
                        .tcp_listen(PORT, 4)
                        .map_err(anyhow::Error::msg)?,
                )
            }
            Peer::Smol(s) => s
                .sockets
                .get_mut::<tcp::Socket>(s.tcp)
                .listen(PORT)
                .map_err(|e| anyhow::anyhow!("smoltcp listen: {e:?}"))?,
        }
        Ok(())
    }

    fn connect(&mut self, now: Instant) -> Result<()> {
        match self {
            Peer::Ring { host, conn, .. } => {
                *conn = Some(
                    host.stack()
                        .tcp_connect(now, SocketAddrV4::new(B, PORT), 0)
                        .map_err(anyhow::Error::msg)?,
                )
            }
            Peer::Smol(s) => {
                let cx = s.iface.context();
                s.sockets
                    .get_mut::<tcp::Socket>(s.tcp)
                    .connect(cx, (IpAddress::Ipv4(B), PORT), 49_152)
                    .map_err(|e| anyhow::anyhow!("smoltcp connect: {e:?}"))?
            }
        }
        Ok(())
    }

    /// One driver round; returns whether a frame moved.
    fn poll(&mut self, now: Instant) -> bool {
        match self {
            Peer::Ring {
                host,
                listener,
                conn,
            } => {
                let moved = host.poll(now).expect("in-memory link never fails");
                if conn.is_none() {
                    if let Some(l) = listener {
                        *conn = host.stack().tcp_accept(*l).ok();
                    }
                }
                moved
            }
            Peer::Smol(s) => {
                let r = s.iface.poll(now, &mut s.dev, &mut s.sockets);
                s.dev.flush(now).expect("in-memory link never fails");
                r != PollResult::None
            }
        }
    }

    fn poll_at(&mut self, now: Instant) -> Option<Instant> {
        match self {
            Peer::Ring { host, .. } => host.poll_at(),
            Peer::Smol(s) => {
                let a = s.iface.poll_at(now, &s.sockets);
                match (a, s.dev.get_ref().poll_at()) {
                    (Some(x), Some(y)) => Some(x.min(y)),
                    (x, y) => x.or(y),
                }
            }
        }
    }

    fn send(&mut self, now: Instant, data: &[u8]) -> usize {
        match self {
            Peer::Ring { host, conn, .. } => match conn {
                Some(c) => match host.stack().tcp_send(now, *c, data) {
                    Ok(n) => n,
                    Err(TcpError::WouldBlock) => 0,
                    Err(_) => 0,
                },
                None => 0,
            },
            Peer::Smol(s) => {
                let sock = s.sockets.get_mut::<tcp::Socket>(s.tcp);
                if sock.may_send() {
                    sock.send_slice(data).unwrap_or(0)
                } else {
                    0
                }
            }
        }
    }

    /// Reads everything available; returns the byte count.
    fn recv_all(&mut self, now: Instant, buf: &mut [u8]) -> usize {
        let mut total = 0;
        match self {
            Peer::Ring { host, conn, .. } => {
                if let Some(c) = conn {
                    while let Ok(n @ 1..) = host.stack().tcp_recv(now, *c, buf) {
                        total += n;
                    }
                }
            }
            Peer::Smol(s) => {
                let sock = s.sockets.get_mut::<tcp::Socket>(s.tcp);
                while sock.can_recv() {
                    match sock.recv_slice(buf) {
                        Ok(n @ 1..) => total += n,
                        _ => break,
                    }
                }
            }
        }
        total
    }

    fn tx_frames(&self) -> u64 {
        match self {
            Peer::Ring { host, .. } => host.nic().stats().tx_frames,
            Peer::Smol(s) => s.dev.get_ref().stats().tx_frames,
        }
    }
}

/// What one transfer measured.
#[derive(Clone, Copy, Debug)]
pub struct Outcome {
    /// Payload bytes delivered.
    pub bytes: u64,
    /// Wall-clock seconds from connect to the last byte read.
    pub wall_secs: f64,
    /// Frames the sender transmitted (data segments, plus the handshake).
    pub sender_frames: u64,
    /// Frames the receiver transmitted (ACKs).
    pub receiver_frames: u64,
}

/// Transfers `bytes` one way with `c` and returns what it measured.
pub fn transfer(c: Contender, bytes: u64) -> Result<Outcome> {
    let link = LinkConfig::default();
    let (mac_a, mac_b) = (link.mac_a, link.mac_b);
    let (na, nb) = MemoryLink::pair(link);
    let mut now = Instant::from_millis(0);
    let mut snd = Peer::new(c.sender, na, mac_a, A, now);
    let mut rcv = Peer::new(c.receiver, nb, mac_b, B, now);
    // A constant pattern (a memset): generating it must not show in the instruction counts.
    let pattern = vec![0x5au8; 1 << 20];
    let mut buf = vec![0u8; 64 * 1024];
    let start = WallInstant::now();
    rcv.listen()?;
    snd.connect(now)?;
    let (mut sent, mut got) = (0u64, 0u64);
    let deadline = now + Duration::from_secs(600);
    loop {
        loop {
            let a = snd.poll(now);
            let b = rcv.poll(now);
            let mut app = false;
            if sent < bytes {
                let off = (sent % pattern.len() as u64) as usize;
                let len = ((bytes - sent) as usize).min(pattern.len() - off);
                let n = snd.send(now, &pattern[off..off + len]);
                sent += n as u64;
                app |= n > 0;
            }
            let n = rcv.recv_all(now, &mut buf);
            got += n as u64;
            app |= n > 0;
            if !(a || b || app) {
                break;
            }
        }
        if got >= bytes {
            break;
        }
        let next = [snd.poll_at(now), rcv.poll_at(now)]
            .into_iter()
            .flatten()
            .min();
        now = match next {
            Some(t) if t > now => t,
            _ => now + Duration::from_millis(1),
        };
        if now > deadline {
            bail!(
                "{}: stalled at {got} of {bytes} bytes after 600 s of virtual time",
                c.name
            );
        }
    }
    let wall_secs = start.elapsed().as_secs_f64();
    Ok(Outcome {
        bytes: got,
        wall_secs,
        sender_frames: snd.tx_frames(),
        receiver_frames: rcv.tx_frames(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_contender_delivers() {
        for c in CONTENDERS {
            let o = transfer(c, 200_000).unwrap();
            assert_eq!(o.bytes, 200_000, "{}", c.name);
            assert!(o.sender_frames >= 200_000 / 1460, "{}", c.name);
        }
    }
}
