//! I/O model 5, asynchronous (proactor): submit operations with owned buffers and return at
//! once; the driver performs them — copying arriving bytes straight into the submitted buffer —
//! and posts completions, which the program reaps. Neither stage waits in the program.
//!
//! Run: `cargo run -p ringstack --example proactor`

use std::net::{Ipv4Addr, SocketAddrV4};

use ringstack_nic::LinkConfig;
use ringstack_sockets::{Net, Ring, TcpListener};
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
    let listener = TcpListener::bind(&a, addr)?;
    let server_ring = Ring::new(&a);
    let client_ring = Ring::new(&b);

    server_ring.accept(listener.fd(), 1)?;
    client_ring.connect(addr, 2)?;
    println!("submitted: accept (token 1) on A, connect (token 2) on B — both returned at once");

    let mut done = Vec::new();
    client_ring.wait(&mut done, 1, None)?;
    let client = done
        .pop()
        .and_then(|c| c.stream)
        .expect("connect completed");
    server_ring.wait(&mut done, 1, None)?;
    let server = done.pop().and_then(|c| c.stream).expect("accept completed");
    println!(
        "completed: connect → fd {} on B, accept → fd {} on A",
        client.fd(),
        server.fd()
    );

    // The read is submitted *before* any data exists.
    server_ring.read(server.fd(), vec![0; 64], 10)?;
    println!("submitted: read into a 64-byte buffer (token 10); nothing to read yet");
    let copies_before = a.work().user_copy_bytes;
    client_ring.write(client.fd(), b"straight into your buffer".to_vec(), 20)?;

    client_ring.wait(&mut done, 1, None)?;
    let w = done.pop().expect("write completed");
    println!(
        "completed: write token {} → {:?} bytes queued",
        w.user_data, w.result
    );
    server_ring.wait(&mut done, 1, None)?;
    let r = done.pop().expect("read completed");
    let n = r.result?;
    println!(
        "completed: read token {} → {n} bytes: {:?}",
        r.user_data,
        String::from_utf8_lossy(&r.buf[..n])
    );
    println!(
        "bytes copied socket buffer → application: {} (one copy per byte, done by the driver)",
        a.work().user_copy_bytes - copies_before
    );
    Ok(())
}
