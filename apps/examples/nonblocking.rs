//! I/O model 2, non-blocking: a call that cannot complete returns `WouldBlock` (EAGAIN) at
//! once, and the program polls again — the busy loop of the notes. Only the final, successful
//! read copies data (and that copy is still synchronous).
//!
//! The link has a 5 ms delay so that the loop visibly spins while the handshake and the data
//! are in flight. Run: `cargo run -p ringstack --example nonblocking`

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use ringstack_nic::{Impairment, LinkConfig};
use ringstack_sockets::{Net, TcpListener, TcpStream};
use ringstack_stack::Config;

const A: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const B: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);

fn main() -> std::io::Result<()> {
    let link = LinkConfig::impaired(Impairment {
        delay: ringstack_stack::Duration::from_millis(5),
        ..Impairment::none()
    });
    let (a, b) = Net::memory_pair(Config::new([0; 6], A, 24), Config::new([0; 6], B, 24), link);
    let addr = SocketAddrV4::new(A, 7);
    let listener = TcpListener::bind(&a, addr)?;
    listener.set_nonblocking(true)?;

    // A non-blocking connect returns at once (EINPROGRESS); the socket turns writable later.
    let mut client = TcpStream::connect_nonblocking(&b, addr)?;
    println!(
        "client: connect returned at once, state {:?}",
        client.state()
    );

    let mut spins = 0;
    let mut server = loop {
        match listener.accept() {
            Ok((s, _)) => break s,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                spins += 1;
                // "Do something else" — here: let 100 µs pass.
                a.run_for(Duration::from_micros(100))?;
            }
            Err(e) => return Err(e),
        }
    };
    println!(
        "server: accept said WouldBlock {spins} times, then succeeded at t={}",
        a.now()
    );
    server.set_nonblocking(true)?;

    client.write_all(b"polled for")?;
    let mut buf = [0u8; 64];
    let mut spins = 0;
    let n = loop {
        match server.read(&mut buf) {
            Ok(n) => break n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                spins += 1;
                a.run_for(Duration::from_micros(100))?;
            }
            Err(e) => return Err(e),
        }
    };
    println!(
        "server: read said WouldBlock {spins} times, then returned {n}: {:?}",
        String::from_utf8_lossy(&buf[..n])
    );
    // Drained: the next read says WouldBlock again — that is how a non-blocking reader knows
    // the buffer is empty (the errno == EAGAIN check of the notes).
    println!(
        "server: next read: {:?}",
        server.read(&mut buf).unwrap_err().kind()
    );
    Ok(())
}
