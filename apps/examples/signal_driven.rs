//! I/O model 4, signal-driven: register a readiness callback (the `SIGIO` analogue) and go on
//! with other work; the driver calls it when the socket *becomes* readable, and the callback
//! does the (synchronous) read.
//!
//! Machine B sends a datagram every 10 ms; machine A's program "computes" in 3 ms slices
//! (letting the network run meanwhile) and never calls recv on its own.
//! Run: `cargo run -p ringstack --example signal_driven`

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ringstack_nic::LinkConfig;
use ringstack_sockets::{Events, Net, UdpSocket};
use ringstack_stack::Config;

const A: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const B: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);

fn main() -> std::io::Result<()> {
    let (a, b) = Net::memory_pair(
        Config::new([0; 6], A, 24),
        Config::new([0; 6], B, 24),
        LinkConfig::default(),
    );
    let sock = Arc::new(UdpSocket::bind(&a, SocketAddrV4::new(A, 9000))?);
    sock.set_nonblocking(true)?;
    let log = Arc::new(Mutex::new(Vec::new()));
    {
        let weak = Arc::downgrade(&sock);
        let log = log.clone();
        let net = a.clone();
        sock.on_ready(Events::IN, move |fd, ev| {
            let Some(sock) = weak.upgrade() else { return };
            // Edge-triggered like SIGIO: drain until WouldBlock.
            let mut buf = [0u8; 64];
            while let Ok((n, from)) = sock.recv_from(&mut buf) {
                let line = format!(
                    "  [callback fd {fd} {ev:?} at t={}] {:?} from {from}",
                    net.now(),
                    String::from_utf8_lossy(&buf[..n])
                );
                log.lock().unwrap().push(line);
            }
        })?;
    }

    let sender = UdpSocket::bind(&b, SocketAddrV4::new(B, 0))?;
    let mut slices = 0;
    for i in 0..3 {
        sender.send_to(
            format!("datagram {i}").as_bytes(),
            SocketAddrV4::new(A, 9000),
        )?;
        // The program's own work; the callback runs when the datagram arrives.
        for _ in 0..3 {
            a.run_for(Duration::from_millis(3))?;
            slices += 1;
        }
        for line in log.lock().unwrap().drain(..) {
            println!("{line}");
        }
    }
    println!(
        "the program did {slices} slices of work and never blocked in recv; \
         {} callbacks were delivered",
        a.work().signals
    );
    Ok(())
}
