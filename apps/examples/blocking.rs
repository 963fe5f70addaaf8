//! I/O model 1, blocking: every call waits until it can complete — both stages, the data
//! arriving in the socket buffer and its copy into ours.
//!
//! Two simulated machines (A = server, B = client) share one in-memory link and one virtual
//! clock; a blocking call on either drives both, so this single thread plays client and server.
//! Run: `cargo run -p ringstack --example blocking`

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use ringstack_nic::LinkConfig;
use ringstack_sockets::{Net, TcpListener, TcpStream};
use ringstack_stack::Config;

const A: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const B: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);

fn main() -> std::io::Result<()> {
    let (a, b) = Net::memory_pair(
        Config::new([0; 6], A, 24),
        Config::new([0; 6], B, 24),
        LinkConfig::default(),
    );
    let addr = SocketAddrV4::new(A, 7);

    // Server: socket + bind + listen.
    let listener = TcpListener::bind(&a, addr)?;
    println!("server: listening on {addr} (fd {})", listener.fd());

    // Client: connect blocks until the three-way handshake is done.
    let mut client = TcpStream::connect(&b, addr)?;
    println!(
        "client: connected from {} at t={} (fd {})",
        client.local_addr()?,
        b.now(),
        client.fd()
    );

    // accept blocks until a connection is in the accept queue (it already is).
    let (mut server, peer) = listener.accept()?;
    println!("server: accepted {peer} (fd {})", server.fd());

    client.write_all(b"hello, blocking world")?;
    let mut buf = [0u8; 64];
    // read blocks until data is there and copied: returns n > 0.
    let n = server.read(&mut buf)?;
    println!(
        "server: read returned {n}: {:?}",
        String::from_utf8_lossy(&buf[..n])
    );
    server.write_all(&buf[..n])?;
    let n = client.read(&mut buf)?;
    println!("client: echo came back, read returned {n}");

    // With nothing coming, a blocking read waits; a read timeout bounds the wait (EAGAIN).
    server.set_read_timeout(Some(Duration::from_secs(2)))?;
    let t0 = a.now();
    let e = server.read(&mut buf).unwrap_err();
    println!(
        "server: read with nothing to read blocked {} ms of virtual time, then: {:?} ({e})",
        (a.now() - t0).total_millis(),
        e.kind()
    );

    // The peer closes: read returns 0 (end of stream).
    drop(client);
    let n = server.read(&mut buf)?;
    println!("server: client closed, read returned {n}");
    Ok(())
}
