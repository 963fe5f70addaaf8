//! Helpers for the I/O-model tests: two machines (A = 198.18.0.1 server, B = 198.18.0.2
//! client) as two [`Net`]s of one group over a clean in-memory link.

use std::io::{self, Write};
use std::net::SocketAddrV4;

use ringstack_sockets::{scenarios, DriverClock, Net, TcpListener, TcpStream, VirtualClock};
use ringstack_stack::Config;

use crate::A;

/// Two machines on virtual time: `(a, b)`.
pub fn nets() -> (Net, Net) {
    nets_with(VirtualClock::new(), |_| {})
}

/// Two machines on `clock`, each stack configured by `tweak` (seeds 1 and 2):
/// [`ringstack_sockets::scenarios::pair_with`].
pub fn nets_with(clock: impl DriverClock, tweak: impl Fn(&mut Config)) -> (Net, Net) {
    scenarios::pair_with(clock, tweak)
}

/// A's address with `port`.
pub fn a_addr(port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(A, port)
}

/// A listener on A:`port` and `n` clients from B (`TCP_NODELAY` on both sides), accepted in
/// order: `(listener, [(server side, client side)])`. Shared with `ringstack experiment`:
/// [`ringstack_sockets::scenarios::connected`].
pub fn connected(
    a: &Net,
    b: &Net,
    port: u16,
    n: usize,
) -> io::Result<(TcpListener, Vec<(TcpStream, TcpStream)>)> {
    scenarios::connected(a, b, port, n)
}

/// Reads until `WouldBlock` (non-blocking socket) or end of stream; returns the bytes
/// ([`ringstack_sockets::scenarios::drain`]).
pub fn drain(s: &TcpStream) -> io::Result<Vec<u8>> {
    scenarios::drain(s)
}

/// Writes all of `data` (blocking).
pub fn send(mut s: &TcpStream, data: &[u8]) -> io::Result<()> {
    s.write_all(data)
}
