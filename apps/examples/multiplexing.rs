//! I/O model 3, multiplexing: one call waits on many sockets — `select`, `poll`, `epoll` — and
//! what each costs, counted.
//!
//! Machine A has 2,000 idle UDP sockets plus three TCP connections; one client sends. All
//! three multiplexers find the one ready socket, but `select` and `poll` examine every watched
//! descriptor (and copy their sets in and out) while `epoll_wait` examines only its ready list.
//! Then a level-triggered and an edge-triggered epoll show the difference between the modes.
//! Run: `cargo run -p ringstack --example multiplexing`

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use ringstack_nic::LinkConfig;
use ringstack_sockets::poll::poll;
use ringstack_sockets::select::select;
use ringstack_sockets::{Epoll, Events, FdSet, Net, PollFd, TcpListener, TcpStream, UdpSocket};
use ringstack_stack::Config;

const A: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const B: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);

fn main() -> std::io::Result<()> {
    let (a, b) = Net::memory_pair(
        Config::new([0; 6], A, 24),
        Config::new([0; 6], B, 24),
        LinkConfig::default(),
    );
    let listener = TcpListener::bind(&a, SocketAddrV4::new(A, 7))?;
    let mut conns = Vec::new();
    for _ in 0..3 {
        let c = TcpStream::connect(&b, SocketAddrV4::new(A, 7))?;
        c.set_nodelay(true)?;
        let (s, _) = listener.accept()?;
        conns.push((s, c));
    }
    let idle: Vec<UdpSocket> = (0..2000)
        .map(|i| UdpSocket::bind(&a, SocketAddrV4::new(A, 10_000 + i)))
        .collect::<Result<_, _>>()?;
    let mut watched: Vec<i32> = conns.iter().map(|(s, _)| s.fd()).collect();
    watched.extend(idle.iter().map(|u| u.fd()));
    println!("watching {} descriptors; client 2 sends", watched.len());
    (&conns[1].1).write_all(b"ping")?;

    // select: fd_sets of 1024 bits. Our descriptors go past 1023, so it cannot even take them.
    let mut set = FdSet::new();
    let mut refused = 0;
    for &fd in &watched {
        if set.insert(fd).is_err() {
            refused += 1;
        }
    }
    println!(
        "select: {refused} descriptors refused, e.g.: {}",
        set.insert(2000).unwrap_err()
    );
    a.reset_work();
    let n = select(&a, 1024, Some(&mut set), None, None, Some(Duration::ZERO))?;
    let w = a.work();
    println!(
        "select: returned {n} (a count only: we must scan the set for which one: {:?}); \
         examined {} descriptors, copied {} bytes of sets",
        set.iter().collect::<Vec<_>>(),
        w.select_examined,
        w.set_bytes_copied
    );

    // poll: no limit, but every entry is copied and examined on every call.
    let mut fds: Vec<PollFd> = watched
        .iter()
        .map(|&fd| PollFd::new(fd, Events::IN))
        .collect();
    a.reset_work();
    let n = poll(&a, &mut fds, 0)?;
    let w = a.work();
    println!(
        "poll:   returned {n}; examined {} entries, copied {} bytes",
        w.poll_examined, w.set_bytes_copied
    );

    // epoll: register once; wait looks at the ready list only.
    let ep = Epoll::create(&a)?;
    for &fd in &watched {
        ep.add(fd, Events::IN, fd as u64)?;
    }
    let mut events = Vec::new();
    a.reset_work();
    let n = ep.wait(&mut events, 16, 0)?;
    let w = a.work();
    println!(
        "epoll:  returned {n}: {:?}; examined {} ready-list entries, copied nothing",
        events, w.epoll_examined
    );

    // Level-triggered: unread data is reported again by every wait.
    let n2 = ep.wait(&mut events, 16, 0)?;
    println!("epoll LT: data left unread → the next wait reports it again ({n2} event)");
    let server = &conns[1].0;
    server.set_nonblocking(true)?;
    let mut buf = [0u8; 64];
    let _ = (&*server).read(&mut buf)?;

    // Edge-triggered: one event per transition; drain until WouldBlock.
    ep.modify(server.fd(), Events::IN | Events::ET, server.fd() as u64)?;
    (&conns[1].1).write_all(b"edge")?;
    let first = ep.wait(&mut events, 16, 0)?;
    let second = ep.wait(&mut events, 16, 0)?;
    println!("epoll ET: new data → {first} event, the next wait without new data → {second}");
    loop {
        match (&*server).read(&mut buf) {
            Ok(n) => println!("epoll ET: read {n} bytes"),
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                println!("epoll ET: WouldBlock — drained, the edge is re-armed");
                break;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
