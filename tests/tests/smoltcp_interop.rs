//! Interoperation with a second, independent TCP: ringstack (host A, 198.18.0.1) against
//! smoltcp (host B, 198.18.0.2) over the same impaired in-memory link, each as client and as
//! server, with SHA-256-checked transfers both ways.

use std::net::{Ipv4Addr, SocketAddrV4};

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use ringstack_nic::{Impairment, LinkConfig, MemoryLink, MemoryNic, Nic, SmoltcpDevice};
use ringstack_sockets::Host;
use ringstack_stack::{Config, Duration, Instant, Readiness, TcpError, TcpHandle};
use sha2::{Digest, Sha256};
use smoltcp::iface::{Config as IfaceConfig, Interface, SocketHandle, SocketSet};
use smoltcp::socket::tcp;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr};

const A: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const B: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const PORT: u16 = 5001;

struct Smol {
    dev: SmoltcpDevice<MemoryNic>,
    iface: Interface,
    sockets: SocketSet<'static>,
    tcp: SocketHandle,
}

impl Smol {
    fn new(nic: MemoryNic, seed: u64, now: Instant) -> Smol {
        let mut dev = SmoltcpDevice::new(nic);
        let mut cfg = IfaceConfig::new(HardwareAddress::Ethernet(EthernetAddress([
            2, 0, 0, 0, 0, 2,
        ])));
        cfg.random_seed = seed;
        let mut iface = Interface::new(cfg, &mut dev, now);
        iface.update_ip_addrs(|a| a.push(IpCidr::new(IpAddress::Ipv4(B), 24)).unwrap());
        let sock = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; 256 * 1024]),
            tcp::SocketBuffer::new(vec![0; 256 * 1024]),
        );
        let mut sockets = SocketSet::new(vec![]);
        let tcp = sockets.add(sock);
        Smol {
            dev,
            iface,
            sockets,
            tcp,
        }
    }

    fn poll(&mut self, now: Instant) -> bool {
        let r = self.iface.poll(now, &mut self.dev, &mut self.sockets);
        self.dev.flush(now).unwrap();
        r != smoltcp::iface::PollResult::None
    }

    fn poll_at(&mut self, now: Instant) -> Option<Instant> {
        let a = self.iface.poll_at(now, &self.sockets);
        match (a, self.dev.get_ref().poll_at()) {
            (Some(x), Some(y)) => Some(x.min(y)),
            (x, y) => x.or(y),
        }
    }

    fn sock(&mut self) -> &mut tcp::Socket<'static> {
        self.sockets.get_mut::<tcp::Socket>(self.tcp)
    }
}

fn data(seed: u64, len: usize) -> Vec<u8> {
    let mut d = vec![0u8; len];
    ChaCha8Rng::seed_from_u64(seed).fill_bytes(&mut d);
    d
}

/// Runs one bidirectional transfer; `ringstack_is_client` chooses who connects.
fn transfer(seed: u64, spec: &str, len: usize, ringstack_is_client: bool) {
    let mut link = LinkConfig::impaired(spec.parse::<Impairment>().unwrap());
    link.seed = seed;
    let (na, nb) = MemoryLink::pair(link);
    let mut now = Instant::from_millis(0);
    let mut cfg = Config::new([0; 6], A, 24);
    cfg.seed = seed;
    let mut rs = Host::new(na, cfg, now);
    let mut smol = Smol::new(nb, seed, now);

    // Who is who.
    let mut listener = None;
    let mut conn: Option<TcpHandle> = None;
    if ringstack_is_client {
        smol.sock().listen(PORT).unwrap();
        conn = Some(
            rs.stack()
                .tcp_connect(now, SocketAddrV4::new(B, PORT), 0)
                .unwrap(),
        );
    } else {
        listener = Some(rs.stack().tcp_listen(PORT, 4).unwrap());
        let cx = smol.iface.context();
        smol.sockets
            .get_mut::<tcp::Socket>(smol.tcp)
            .connect(
                cx,
                (IpAddress::Ipv4(A), PORT),
                49_152 + (seed % 1000) as u16,
            )
            .unwrap();
    }

    let rs_data = data(seed * 2, len);
    let smol_data = data(seed * 2 + 1, len);
    let (mut rs_sent, mut smol_sent) = (0, 0);
    let (mut rs_got, mut smol_got) = (Sha256::new(), Sha256::new());
    let (mut rs_got_len, mut smol_got_len) = (0, 0);
    let (mut rs_shut, mut smol_shut, mut rs_eof) = (false, false, false);
    let mut buf = vec![0u8; 64 * 1024];
    let deadline = now + Duration::from_secs(3600);
    loop {
        // Move frames until both sides are quiet at this instant.
        loop {
            let a = rs.poll(now).unwrap();
            let b = smol.poll(now);
            // ringstack application.
            if conn.is_none() {
                conn = rs.stack().tcp_accept(listener.unwrap()).ok();
            }
            let mut app = false;
            if let Some(c) = conn {
                if rs_sent < len {
                    match rs.stack().tcp_send(now, c, &rs_data[rs_sent..]) {
                        Ok(n) => {
                            rs_sent += n;
                            app |= n > 0;
                        }
                        Err(TcpError::WouldBlock) => {}
                        Err(e) => panic!("ringstack send: {e}"),
                    }
                } else if !rs_shut && rs.stack().readiness(c.into()).contains(Readiness::WRITABLE) {
                    rs.stack().tcp_shutdown(now, c).unwrap();
                    rs_shut = true;
                    app = true;
                }
                loop {
                    match rs.stack().tcp_recv(now, c, &mut buf) {
                        Ok(0) => {
                            rs_eof = true;
                            break;
                        }
                        Ok(n) => {
                            rs_got.update(&buf[..n]);
                            rs_got_len += n;
                            app = true;
                        }
                        Err(TcpError::WouldBlock) => break,
                        Err(e) => panic!("ringstack recv: {e}"),
                    }
                }
            }
            // smoltcp application.
            let s = smol.sock();
            while s.can_recv() {
                let n = s.recv_slice(&mut buf).unwrap();
                smol_got.update(&buf[..n]);
                smol_got_len += n;
                app = true;
            }
            if s.may_send() && smol_sent < len {
                let n = s.send_slice(&smol_data[smol_sent..]).unwrap();
                smol_sent += n;
                app |= n > 0;
            } else if smol_sent == len && !smol_shut && s.may_send() {
                s.close(); // smoltcp's close() is a half-close: FIN after queued data
                smol_shut = true;
                app = true;
            }
            if !(a || b || app) {
                break;
            }
        }
        let smol_eof = !smol.sock().may_recv() && smol_got_len == len;
        if rs_eof && smol_eof && rs_shut && smol_shut {
            break;
        }
        let next = [rs.poll_at(), smol.poll_at(now)]
            .into_iter()
            .flatten()
            .min();
        now = match next {
            Some(t) if t > now => t,
            _ => now + Duration::from_millis(1),
        };
        assert!(
            now < deadline,
            "seed {seed}: stalled: ringstack got {rs_got_len}, smoltcp got {smol_got_len} of {len}"
        );
    }
    assert_eq!(rs_got_len, len);
    assert_eq!(smol_got_len, len);
    assert_eq!(
        rs_got.finalize()[..],
        Sha256::digest(&smol_data)[..],
        "seed {seed}: smoltcp → ringstack bytes differ"
    );
    assert_eq!(
        smol_got.finalize()[..],
        Sha256::digest(&rs_data)[..],
        "seed {seed}: ringstack → smoltcp bytes differ"
    );
}

#[test]
fn ringstack_client_smoltcp_server_clean() {
    transfer(1, "delay=1ms", 4 << 20, true);
}

#[test]
fn smoltcp_client_ringstack_server_clean() {
    transfer(2, "delay=1ms", 4 << 20, false);
}

#[test]
fn ringstack_client_smoltcp_server_impaired() {
    for seed in 1..=5 {
        transfer(
            seed,
            "loss=2%,dup=1%,reorder=3%,corrupt=0.5%,delay=1ms,jitter=200us",
            1 << 20,
            true,
        );
    }
}

#[test]
fn smoltcp_client_ringstack_server_impaired() {
    for seed in 1..=5 {
        transfer(
            seed,
            "loss=2%,dup=1%,reorder=3%,corrupt=0.5%,delay=1ms,jitter=200us",
            1 << 20,
            false,
        );
    }
}
