//! Helpers for the I/O-model tests: two machines (A = 198.18.0.1 server, B = 198.18.0.2
//! client) as two [`Net`]s of one group over a clean in-memory link.

use std::io::{self, Read, Write};
use std::net::SocketAddrV4;

use ringstack_nic::LinkConfig;
use ringstack_sockets::{DriverClock, Net, TcpListener, TcpStream, VirtualClock};
use ringstack_stack::Config;

use crate::{A, B};

/// Two machines on virtual time: `(a, b)`.
pub fn nets() -> (Net, Net) {
    nets_with(VirtualClock::new(), |_| {})
}

/// Two machines on `clock`, each stack configured by `tweak`.
pub fn nets_with(clock: impl DriverClock, tweak: impl Fn(&mut Config)) -> (Net, Net) {
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

/// A listener on A:`port` and `n` clients from B (`TCP_NODELAY` on both sides), accepted in
/// order: `(listener, [(server
/// side, client side)])`.
pub fn connected(
    a: &Net,
    b: &Net,
    port: u16,
    n: usize,
) -> io::Result<(TcpListener, Vec<(TcpStream, TcpStream)>)> {
    let l = TcpListener::bind(a, a_addr(port))?;
    let mut conns = Vec::new();
    for _ in 0..n {
        let c = TcpStream::connect(b, a_addr(port))?;
        let (s, _) = l.accept()?;
        // Small writes go out at once (no Nagle waiting for a delayed ACK), so a test's
        // "send, then look" sees the data arrived.
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

/// Writes all of `data` (blocking).
pub fn send(mut s: &TcpStream, data: &[u8]) -> io::Result<()> {
    s.write_all(data)
}
