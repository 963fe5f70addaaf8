//! The notes' claims about sockets and the five I/O models, proved by counting work (never by
//! timing): return values, error kinds, blocking vs non-blocking, select/poll/epoll costs,
//! level vs edge triggering, ONESHOT/EXCLUSIVE/DEL/close, readiness callbacks and completions.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddrV4};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ringstack_sockets::{
    poll::poll, select::select, Epoll, EpollEvent, Events, FdSet, Net, PollFd, Ring, TcpListener,
    TcpStream, UdpSocket, FD_SETSIZE,
};
use ringstack_tests::io_models::{a_addr, connected, drain, nets, nets_with, send};
use ringstack_tests::{A, B};

fn conns_pop(mut v: Vec<(TcpStream, TcpStream)>) -> (TcpStream, TcpStream) {
    v.pop().unwrap()
}

fn kind<T: std::fmt::Debug>(r: io::Result<T>) -> io::ErrorKind {
    r.expect_err("expected an error").kind()
}

// ----- 1. blocking I/O and the return values of the notes -----

#[test]
fn blocking_echo_read_returns_n_then_zero_at_eof() {
    let (a, b) = nets();
    let (_l, mut conns) = connected(&a, &b, 7, 1).unwrap();
    let (server, client) = conns.pop().unwrap();
    assert_eq!(server.peer_addr().unwrap(), client.local_addr().unwrap());
    assert_eq!(client.peer_addr().unwrap(), a_addr(7));

    (&client).write_all(b"hello").unwrap();
    let mut buf = [0u8; 64];
    // n > 0: the bytes that arrived (the blocking read drove both machines until they did).
    let n = (&server).read(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"hello");
    (&server).write_all(&buf[..n]).unwrap();
    assert_eq!((&client).read(&mut buf).unwrap(), 5);

    // 0: the peer closed.
    drop(client);
    assert_eq!((&server).read(&mut buf).unwrap(), 0);
    assert_eq!((&server).read(&mut buf).unwrap(), 0);
}

#[test]
fn blocking_read_waits_for_data_and_a_timeout_gives_wouldblock() {
    let (a, b) = nets();
    let (_l, mut conns) = connected(&a, &b, 7, 1).unwrap();
    let (server, _client) = conns.pop().unwrap();
    server
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let t0 = a.now();
    let mut buf = [0u8; 8];
    // Nothing arrives: the read blocks the whole 3 s (of virtual time), then EAGAIN.
    assert_eq!(kind((&server).read(&mut buf)), io::ErrorKind::WouldBlock);
    assert_eq!((a.now() - t0).total_millis(), 3000);
}

#[test]
fn blocking_read_with_nothing_coming_fails_instead_of_hanging_the_simulation() {
    let (a, b) = nets();
    let (_l, mut conns) = connected(&a, &b, 7, 1).unwrap();
    let (server, _client) = conns.pop().unwrap();
    let e = (&server).read(&mut [0u8; 8]).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::TimedOut);
    assert!(e.to_string().contains("idle"), "{e}");
}

#[test]
fn error_kinds_map_to_errno() {
    let (a, b) = nets();
    // ECONNREFUSED: nobody listens (RST in reply to SYN).
    assert_eq!(
        kind(TcpStream::connect(&b, a_addr(9))),
        io::ErrorKind::ConnectionRefused
    );
    // EADDRINUSE.
    let _l = TcpListener::bind(&a, a_addr(80)).unwrap();
    assert_eq!(
        kind(TcpListener::bind(&a, a_addr(80))),
        io::ErrorKind::AddrInUse
    );
    let _u = UdpSocket::bind(&a, a_addr(53)).unwrap();
    assert_eq!(
        kind(UdpSocket::bind(&a, a_addr(53))),
        io::ErrorKind::AddrInUse
    );
    // EADDRNOTAVAIL: not our address.
    assert_eq!(
        kind(TcpListener::bind(&a, SocketAddrV4::new(B, 81))),
        io::ErrorKind::AddrNotAvailable
    );
    // EPIPE: writing after shutdown(SHUT_WR).
    let (_l2, mut conns) = connected(&a, &b, 7, 1).unwrap();
    let (server, client) = conns.pop().unwrap();
    client.shutdown(Shutdown::Write).unwrap();
    assert_eq!(kind((&client).write(b"x")), io::ErrorKind::BrokenPipe);
    assert_eq!((&server).read(&mut [0u8; 4]).unwrap(), 0);
    // ECONNRESET: closing with unread data sends RST.
    let (server, client) = conns_pop(connected(&a, &b, 8, 1).unwrap().1);
    (&server).write_all(b"unread").unwrap();
    a.run_for(Duration::from_millis(10)).unwrap();
    drop(client);
    assert_eq!(
        kind((&server).read(&mut [0u8; 4])),
        io::ErrorKind::ConnectionReset
    );
    // ETIMEDOUT: a host that never answers.
    let far = SocketAddrV4::new(std::net::Ipv4Addr::new(198, 18, 0, 99), 80);
    assert_eq!(
        kind(TcpStream::connect_timeout(&b, far, Duration::from_secs(2))),
        io::ErrorKind::TimedOut
    );
}

#[test]
fn descriptors_are_the_lowest_free_number() {
    let (a, _b) = nets();
    let u1 = UdpSocket::bind(&a, a_addr(1001)).unwrap();
    let u2 = UdpSocket::bind(&a, a_addr(1002)).unwrap();
    let u3 = UdpSocket::bind(&a, a_addr(1003)).unwrap();
    assert_eq!((u1.fd(), u2.fd(), u3.fd()), (3, 4, 5));
    drop(u2);
    let ep = Epoll::create(&a).unwrap();
    assert_eq!(
        ep.fd(),
        4,
        "epoll_create takes the lowest free descriptor too"
    );
    assert_eq!(a.open_fds(), 3);
}

#[test]
fn tcp_options_and_udp_basics() {
    let (a, b) = nets();
    let (_l, mut conns) = connected(&a, &b, 7, 1).unwrap();
    let (server, client) = conns.pop().unwrap();
    server.set_nodelay(true).unwrap();
    assert!(server.nodelay().unwrap());
    assert_eq!(
        kind(server.set_read_timeout(Some(Duration::ZERO))),
        io::ErrorKind::InvalidInput
    );
    client
        .set_write_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    assert_eq!(
        client.write_timeout().unwrap(),
        Some(Duration::from_secs(1))
    );

    let ua = UdpSocket::bind(&a, a_addr(5353)).unwrap();
    let ub = UdpSocket::bind(&b, SocketAddrV4::new(B, 0)).unwrap();
    ub.send_to(b"ping", a_addr(5353)).unwrap();
    let mut buf = [0u8; 16];
    let (n, from) = ua.recv_from(&mut buf).unwrap();
    assert_eq!((&buf[..n], from), (&b"ping"[..], ub.local_addr().unwrap()));
    ua.connect(from).unwrap();
    ua.send(b"pong").unwrap();
    assert_eq!(ub.recv(&mut buf).unwrap(), 4);
    ua.set_nonblocking(true).unwrap();
    assert_eq!(kind(ua.recv(&mut buf)), io::ErrorKind::WouldBlock);
}

// ----- 2. non-blocking I/O -----

#[test]
fn nonblocking_calls_return_wouldblock_at_once() {
    let (a, b) = nets();
    let l = TcpListener::bind(&a, a_addr(7)).unwrap();
    l.set_nonblocking(true).unwrap();
    let t0 = a.now();
    assert_eq!(kind(l.accept()), io::ErrorKind::WouldBlock);
    let c = TcpStream::connect_nonblocking(&b, a_addr(7)).unwrap();
    // The busy loop of the notes: try, do something else, try again.
    let mut spins = 0;
    let server = loop {
        match l.accept() {
            Ok((s, _)) => break s,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                spins += 1;
                a.run_for(Duration::from_micros(100)).unwrap();
            }
            Err(e) => panic!("{e}"),
        }
    };
    assert!(c.readiness().contains(Events::OUT), "connected: writable");
    assert!(c.take_error().unwrap().is_none());
    server.set_nonblocking(true).unwrap();
    assert_eq!(
        kind((&server).read(&mut [0u8; 4])),
        io::ErrorKind::WouldBlock
    );
    assert_eq!(
        a.now(),
        t0 + ringstack_stack::Duration::from_micros(100 * spins)
    );
    (&c).write_all(b"abc").unwrap();
    assert_eq!(drain(&server).unwrap(), b"abc");
}

#[test]
fn nonblocking_connect_reports_refusal_through_err_and_take_error() {
    let (a, b) = nets();
    let c = TcpStream::connect_nonblocking(&b, a_addr(9)).unwrap();
    a.run_for(Duration::from_millis(1)).unwrap();
    assert!(c.readiness().contains(Events::ERR));
    assert_eq!(
        c.take_error().unwrap().unwrap().kind(),
        io::ErrorKind::ConnectionRefused
    );
}

// ----- 3. multiplexing: epoll LT / ET -----

#[test]
fn level_triggered_keeps_reporting_unread_data() {
    let (a, b) = nets();
    let (_l, mut conns) = connected(&a, &b, 7, 1).unwrap();
    let (server, client) = conns.pop().unwrap();
    let ep = Epoll::create(&a).unwrap();
    ep.add(server.fd(), Events::IN, 42).unwrap();
    send(&client, b"0123456789").unwrap();
    let mut ev = Vec::new();
    for _ in 0..5 {
        assert_eq!(
            ep.wait(&mut ev, 8, 0).unwrap(),
            1,
            "LT: unread data reported by every wait"
        );
        assert_eq!(ev[0], EpollEvent::new(Events::IN, 42));
    }
    // Read part of it: still reported.
    (&server).read_exact(&mut [0u8; 4]).unwrap();
    assert_eq!(ep.wait(&mut ev, 8, 0).unwrap(), 1);
    // Read the rest: no longer ready, no event.
    server.set_nonblocking(true).unwrap();
    assert_eq!(drain(&server).unwrap(), b"456789");
    assert_eq!(ep.wait(&mut ev, 8, 0).unwrap(), 0);
}

#[test]
fn edge_triggered_fires_once_until_drained_to_wouldblock() {
    let (a, b) = nets();
    let (_l, mut conns) = connected(&a, &b, 7, 1).unwrap();
    let (server, client) = conns.pop().unwrap();
    server.set_nonblocking(true).unwrap();
    let ep = Epoll::create(&a).unwrap();
    ep.add(server.fd(), Events::IN | Events::ET, 1).unwrap();
    let mut ev = Vec::new();
    assert_eq!(ep.wait(&mut ev, 8, 0).unwrap(), 0);

    send(&client, b"first").unwrap();
    assert_eq!(
        ep.wait(&mut ev, 8, 0).unwrap(),
        1,
        "the transition to readable"
    );
    assert_eq!(ep.wait(&mut ev, 8, 0).unwrap(), 0, "no second event");

    // Read only part: more data arrives, but the socket never stopped being readable, so
    // there is no new edge — the backlog (积压) the notes warn about.
    (&server).read_exact(&mut [0u8; 2]).unwrap();
    send(&client, b"second").unwrap();
    assert_eq!(
        ep.wait(&mut ev, 8, 0).unwrap(),
        0,
        "no edge: data left behind"
    );

    // Drain until WouldBlock: that is what re-arms the edge.
    assert_eq!(drain(&server).unwrap(), b"rstsecond");
    send(&client, b"third").unwrap();
    assert_eq!(
        ep.wait(&mut ev, 8, 0).unwrap(),
        1,
        "new edge after the drain"
    );
    assert_eq!(ev[0].events, Events::IN);
}

#[test]
fn epoll_wait_blocks_until_data_and_times_out() {
    let (a, b) = nets();
    let (_l, mut conns) = connected(&a, &b, 7, 1).unwrap();
    let (server, _client) = conns.pop().unwrap();
    let ep = Epoll::create(&a).unwrap();
    ep.add(server.fd(), Events::IN, 7).unwrap();
    let mut ev = Vec::new();
    let t0 = a.now();
    assert_eq!(ep.wait(&mut ev, 8, 250).unwrap(), 0);
    assert_eq!((a.now() - t0).total_millis(), 250);
    assert_eq!(kind(ep.wait(&mut ev, 0, 0)), io::ErrorKind::InvalidInput);
}

#[test]
fn maxevents_limits_and_the_rest_waits_its_turn() {
    let (a, b) = nets();
    let (_l, conns) = connected(&a, &b, 7, 5).unwrap();
    let ep = Epoll::create(&a).unwrap();
    for (s, c) in &conns {
        ep.add(s.fd(), Events::IN, s.fd() as u64).unwrap();
        send(c, b"x").unwrap();
    }
    let mut ev = Vec::new();
    assert_eq!(ep.wait(&mut ev, 2, 0).unwrap(), 2);
    let first: Vec<u64> = ev.iter().map(|e| e.data).collect();
    assert_eq!(ep.wait(&mut ev, 2, 0).unwrap(), 2);
    let second: Vec<u64> = ev.iter().map(|e| e.data).collect();
    assert!(
        first.iter().all(|d| !second.contains(d)),
        "round robin over the ready list"
    );
}

// ----- epoll vs poll vs select: work with 100,000 idle sockets -----

#[test]
fn epoll_examines_only_ready_sockets_poll_and_select_examine_all() {
    const UDP: u16 = 60_000;
    const TCP: u16 = 40_000;
    let (a, b) = nets();
    let mut socks = Vec::new();
    let mut listeners = Vec::new();
    for port in 1..=UDP {
        socks.push(UdpSocket::bind(&a, a_addr(port)).unwrap());
    }
    for port in 1..=TCP {
        listeners.push(TcpListener::listen(&a, a_addr(port), 1).unwrap());
    }
    let fds: Vec<i32> = socks
        .iter()
        .map(|s| s.fd())
        .chain(listeners.iter().map(|l| l.fd()))
        .collect();
    assert_eq!(fds.len(), 100_000);

    let ep = Epoll::create(&a).unwrap();
    for &fd in &fds {
        ep.add(fd, Events::IN, fd as u64).unwrap();
    }
    assert_eq!(ep.interest_len(), 100_000);

    // Ten datagrams to ten of the sockets.
    let sender = UdpSocket::bind(&b, SocketAddrV4::new(B, 0)).unwrap();
    for i in 0..10u16 {
        sender.send_to(b"hi", a_addr(1 + i * 5_000)).unwrap();
    }

    a.reset_work();
    let mut ev = Vec::new();
    assert_eq!(ep.wait(&mut ev, 64, 0).unwrap(), 10);
    let w = a.work();
    assert_eq!(
        w.epoll_examined, 10,
        "epoll_wait looked at the ready list only"
    );
    assert_eq!(
        w.epoll_wakeups, 0,
        "the callbacks ran when the datagrams arrived"
    );

    // poll: one entry per socket, all copied in, all examined, all copied out.
    a.reset_work();
    let mut pfds: Vec<PollFd> = fds.iter().map(|&fd| PollFd::new(fd, Events::IN)).collect();
    assert_eq!(poll(&a, &mut pfds, 0).unwrap(), 10);
    let w = a.work();
    assert_eq!(w.poll_examined, 100_000);
    assert_eq!(w.set_bytes_copied, 2 * 8 * 100_000);
    assert_eq!(pfds.iter().filter(|p| !p.revents.is_empty()).count(), 10);

    // select cannot even hold them: descriptors >= 1024 do not fit an fd_set.
    let mut set = FdSet::new();
    let too_big = fds
        .iter()
        .copied()
        .find(|&fd| fd as usize >= FD_SETSIZE)
        .unwrap();
    assert_eq!(kind(set.insert(too_big)), io::ErrorKind::InvalidInput);
    // The first 1021 (3..1024) it can, and it scans all of them.
    for &fd in fds.iter().filter(|&&fd| (fd as usize) < FD_SETSIZE) {
        set.insert(fd).unwrap();
    }
    a.reset_work();
    let n = select(
        &a,
        FD_SETSIZE,
        Some(&mut set),
        None,
        None,
        Some(Duration::ZERO),
    )
    .unwrap();
    assert_eq!(n, 1, "only port 1 (fd 3) of the ten is below 1024");
    assert_eq!(a.work().select_examined, 1021);
    assert_eq!(set.iter().collect::<Vec<_>>(), vec![3]);

    // And epoll's cost is the same however many sockets are registered: all ten drained,
    // a wait examines nothing.
    let mut buf = [0u8; 8];
    for e in &ev {
        let i = fds.iter().position(|&fd| fd as u64 == e.data).unwrap();
        socks[i].recv(&mut buf).unwrap();
    }
    a.reset_work();
    assert_eq!(ep.wait(&mut ev, 64, 0).unwrap(), 0);
    assert_eq!(
        a.work().epoll_examined,
        10,
        "the LT re-queued entries, now found not ready"
    );
    assert_eq!(ep.wait(&mut ev, 64, 0).unwrap(), 0);
    assert_eq!(a.work().epoll_examined, 10, "and then nothing at all");
}

#[test]
fn select_rejects_descriptors_of_1024_and_more() {
    let (a, _b) = nets();
    let socks: Vec<UdpSocket> = (0..1100)
        .map(|i| UdpSocket::bind(&a, a_addr(2000 + i)).unwrap())
        .collect();
    let last = socks.last().unwrap().fd();
    assert!(last >= 1024);
    let mut set = FdSet::new();
    let e = set.insert(last).unwrap_err();
    assert!(e.to_string().contains("use poll or epoll"), "{e}");
    assert_eq!(
        kind(select(
            &a,
            1100,
            Some(&mut set),
            None,
            None,
            Some(Duration::ZERO)
        )),
        io::ErrorKind::InvalidInput
    );
    // poll has no such limit.
    let mut p = [PollFd::new(last, Events::OUT)];
    assert_eq!(poll(&a, &mut p, 0).unwrap(), 1);
}

#[test]
fn select_returns_only_the_count_and_overwrites_the_sets() {
    let (a, b) = nets();
    let (_l, conns) = connected(&a, &b, 7, 3).unwrap();
    send(&conns[1].1, b"x").unwrap();
    let mut rd = FdSet::new();
    let mut wr = FdSet::new();
    for (s, _) in &conns {
        rd.insert(s.fd()).unwrap();
    }
    wr.insert(conns[2].0.fd()).unwrap();
    let nfds = conns.iter().map(|(s, _)| s.fd()).max().unwrap() as usize + 1;
    let n = select(&a, nfds, Some(&mut rd), Some(&mut wr), None, None).unwrap();
    assert_eq!(n, 2);
    // The caller scans again to learn which.
    assert_eq!(rd.iter().collect::<Vec<_>>(), vec![conns[1].0.fd()]);
    assert_eq!(wr.iter().collect::<Vec<_>>(), vec![conns[2].0.fd()]);
    // A closed descriptor in a set: EBADF.
    let mut bad = FdSet::new();
    bad.insert(900).unwrap();
    assert_eq!(
        kind(select(
            &a,
            901,
            Some(&mut bad),
            None,
            None,
            Some(Duration::ZERO)
        )),
        io::ErrorKind::InvalidInput
    );
}

#[test]
fn poll_reports_nval_and_ignores_negative_descriptors() {
    let (a, b) = nets();
    let (_l, conns) = connected(&a, &b, 7, 1).unwrap();
    let s = &conns[0].0;
    let mut p = [
        PollFd::new(s.fd(), Events::IN | Events::OUT),
        PollFd::new(-1, Events::IN),
        PollFd::new(500, Events::IN),
    ];
    assert_eq!(poll(&a, &mut p, 0).unwrap(), 2);
    assert_eq!(p[0].revents, Events::OUT);
    assert_eq!(p[1].revents, Events::NONE);
    assert_eq!(p[2].revents, Events::NVAL);
}

// ----- the notes' open question: LT + blocking reads + one thread -----

/// One round of a single-threaded level-triggered server whose handler reads "until the
/// buffer is empty" with *blocking* reads. Returns what each connection got served.
fn lt_blocking_round(ep: &Epoll, conns: &[(TcpStream, TcpStream)]) -> Vec<Vec<u8>> {
    let mut served = vec![Vec::new(); conns.len()];
    let mut ev = Vec::new();
    ep.wait(&mut ev, 16, -1).unwrap();
    assert_eq!(ev.len(), 2, "both connections are ready");
    // The handler for the first ready connection; the measurement is how long it holds the
    // thread (the second handler would run only after it returns).
    let i = ev[0].data as usize;
    let mut buf = [0u8; 64];
    loop {
        match (&conns[i].0).read(&mut buf) {
            Ok(0) => break,
            Ok(n) => served[i].extend_from_slice(&buf[..n]),
            // The buffer is empty, but a blocking read does not say so: it waits for more
            // data. Only the read timeout (a stand-in for "forever") gets us out.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => panic!("{e}"),
        }
    }
    served
}

#[test]
fn lt_with_blocking_reads_in_one_thread_starves_other_connections() {
    let (a, b) = nets();
    let (_l, conns) = connected(&a, &b, 7, 2).unwrap();
    let ep = Epoll::create(&a).unwrap();
    for (i, (s, _)) in conns.iter().enumerate() {
        ep.add(s.fd(), Events::IN, i as u64).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    }
    send(&conns[0].1, b"request-1").unwrap();
    send(&conns[1].1, b"request-2").unwrap();

    let t0 = a.now();
    let served = lt_blocking_round(&ep, &conns);
    let blocked = a.now() - t0;
    assert_eq!(served[0], b"request-1");
    // After reading request-1, the loop's next read blocked on the empty buffer for the whole
    // minute; meanwhile client 2's request sat in its socket buffer, unserved.
    assert_eq!(blocked.total_millis(), 60_000);
    assert!(served[1].is_empty());
    assert_eq!(conns[1].0.info().unwrap().recv_queue, 9, "client 2 starved");

    // Without the read timeout the blocking read would never return (in a simulation, where
    // nothing else can happen, it reports that instead of hanging).
    conns[0].0.set_read_timeout(None).unwrap();
    send(&conns[0].1, b"more").unwrap();
    let mut buf = [0u8; 64];
    assert_eq!((&conns[0].0).read(&mut buf).unwrap(), 4);
    assert_eq!(kind((&conns[0].0).read(&mut buf)), io::ErrorKind::TimedOut);
}

#[test]
fn et_with_nonblocking_reads_serves_everyone_at_once() {
    let (a, b) = nets();
    let (_l, conns) = connected(&a, &b, 7, 2).unwrap();
    let ep = Epoll::create(&a).unwrap();
    for (i, (s, _)) in conns.iter().enumerate() {
        s.set_nonblocking(true).unwrap();
        ep.add(s.fd(), Events::IN | Events::ET, i as u64).unwrap();
    }
    send(&conns[0].1, b"request-1").unwrap();
    send(&conns[1].1, b"request-2").unwrap();

    let t0 = a.now();
    let mut ev = Vec::new();
    let mut served = vec![Vec::new(); 2];
    ep.wait(&mut ev, 16, -1).unwrap();
    for e in &ev {
        // Drain until WouldBlock, then move on: no read ever waits.
        served[e.data as usize] = drain(&conns[e.data as usize].0).unwrap();
    }
    assert_eq!(served, vec![b"request-1".to_vec(), b"request-2".to_vec()]);
    assert_eq!(a.now(), t0, "no virtual time spent blocked");
}

// ----- ONESHOT, DEL, close, EXCLUSIVE -----

#[test]
fn oneshot_disarms_until_mod_rearms() {
    let (a, b) = nets();
    let (_l, conns) = connected(&a, &b, 7, 1).unwrap();
    let (s, c) = &conns[0];
    let ep = Epoll::create(&a).unwrap();
    ep.add(s.fd(), Events::IN | Events::ONESHOT, 5).unwrap();
    send(c, b"x").unwrap();
    let mut ev = Vec::new();
    assert_eq!(ep.wait(&mut ev, 8, 0).unwrap(), 1);
    send(c, b"y").unwrap();
    assert_eq!(
        ep.wait(&mut ev, 8, 0).unwrap(),
        0,
        "disarmed: even new data is silent"
    );
    ep.modify(s.fd(), Events::IN | Events::ONESHOT, 6).unwrap();
    assert_eq!(
        ep.wait(&mut ev, 8, 0).unwrap(),
        1,
        "re-armed, and still readable"
    );
    assert_eq!(ev[0].data, 6);
    assert_eq!(ep.wait(&mut ev, 8, 0).unwrap(), 0);
}

#[test]
fn ctl_errors_and_del_stops_events() {
    let (a, b) = nets();
    let (_l, conns) = connected(&a, &b, 7, 1).unwrap();
    let (s, c) = &conns[0];
    let ep = Epoll::create(&a).unwrap();
    assert_eq!(
        kind(ep.modify(s.fd(), Events::IN, 0)),
        io::ErrorKind::NotFound
    );
    assert_eq!(kind(ep.delete(s.fd())), io::ErrorKind::NotFound);
    ep.add(s.fd(), Events::IN, 0).unwrap();
    assert_eq!(
        kind(ep.add(s.fd(), Events::IN, 0)),
        io::ErrorKind::AlreadyExists
    );
    assert_eq!(kind(ep.add(99, Events::IN, 0)), io::ErrorKind::InvalidInput);
    assert_eq!(
        kind(ep.modify(s.fd(), Events::IN | Events::EXCLUSIVE, 0)),
        io::ErrorKind::InvalidInput
    );
    ep.delete(s.fd()).unwrap();
    send(c, b"x").unwrap();
    let mut ev = Vec::new();
    assert_eq!(ep.wait(&mut ev, 8, 0).unwrap(), 0, "DEL: no more events");
}

#[test]
fn closing_a_socket_removes_it_from_epoll() {
    let (a, b) = nets();
    let (_l, mut conns) = connected(&a, &b, 7, 1).unwrap();
    let (s, c) = conns.pop().unwrap();
    let ep = Epoll::create(&a).unwrap();
    ep.add(s.fd(), Events::IN, 0).unwrap();
    send(&c, b"x").unwrap();
    assert_eq!(ep.ready_len(), 1);
    drop(s);
    assert_eq!(ep.interest_len(), 0);
    assert_eq!(ep.ready_len(), 0);
    let mut ev = Vec::new();
    assert_eq!(ep.wait(&mut ev, 8, 0).unwrap(), 0);
}

#[test]
fn hup_and_rdhup_are_reported() {
    let (a, b) = nets();
    let (_l, mut conns) = connected(&a, &b, 7, 1).unwrap();
    let (s, c) = conns.pop().unwrap();
    let ep = Epoll::create(&a).unwrap();
    ep.add(s.fd(), Events::IN | Events::RDHUP, 0).unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    let mut ev = Vec::new();
    assert_eq!(ep.wait(&mut ev, 8, 0).unwrap(), 1);
    assert_eq!(ev[0].events, Events::IN | Events::RDHUP);
    s.shutdown(Shutdown::Write).unwrap();
    a.run_for(Duration::from_millis(1)).unwrap();
    assert_eq!(ep.wait(&mut ev, 8, 0).unwrap(), 1);
    assert!(ev[0].events.contains(Events::HUP), "{:?}", ev[0].events);
}

/// N epoll instances (one per worker) on one listening socket; one connection arrives.
/// Returns (wakeups, instances that saw the event, successful accepts).
fn herd(exclusive: bool) -> (u64, usize, usize) {
    const N: usize = 4;
    let (a, b) = nets();
    let l = TcpListener::bind(&a, a_addr(80)).unwrap();
    l.set_nonblocking(true).unwrap();
    let flags = if exclusive {
        Events::IN | Events::EXCLUSIVE
    } else {
        Events::IN
    };
    let eps: Vec<Epoll> = (0..N).map(|_| Epoll::create(&a).unwrap()).collect();
    for ep in &eps {
        ep.add(l.fd(), flags, 0).unwrap();
    }
    a.reset_work();
    let _c = TcpStream::connect(&b, a_addr(80)).unwrap();
    let wakeups = a.work().epoll_wakeups;
    let mut ev = Vec::new();
    // All woken workers return from epoll_wait together...
    let woken = eps
        .iter()
        .filter(|ep| ep.wait(&mut ev, 8, 0).unwrap() > 0)
        .count();
    // ...and race to accept; only one can win, the others get EAGAIN for nothing.
    let mut accepted = 0;
    for _ in 0..woken {
        match l.accept() {
            Ok(_) => accepted += 1,
            Err(e) => assert_eq!(e.kind(), io::ErrorKind::WouldBlock),
        }
    }
    (wakeups, woken, accepted)
}

#[test]
fn exclusive_wakes_one_waiter_instead_of_the_herd() {
    assert_eq!(
        herd(false),
        (4, 4, 1),
        "thundering herd: 4 woken, 3 for nothing"
    );
    let (wakeups, woken, accepted) = herd(true);
    assert_eq!(
        (wakeups, woken, accepted),
        (1, 1, 1),
        "EPOLLEXCLUSIVE: one woken"
    );
}

// ----- 4. signal-driven -----

#[test]
fn readiness_callback_runs_when_data_arrives_and_the_handler_reads() {
    let (a, b) = nets();
    let (_l, mut conns) = connected(&a, &b, 7, 1).unwrap();
    let (s, c) = conns.pop().unwrap();
    let c = &c;
    let s = Arc::new(s);
    let got = Arc::new(Mutex::new(Vec::new()));
    let calls = Arc::new(AtomicUsize::new(0));
    {
        // A weak reference: the handler must not keep its own socket open.
        let (got, calls, s2) = (got.clone(), calls.clone(), Arc::downgrade(&s));
        s.on_ready(Events::IN, move |_fd, ev| {
            assert!(ev.contains(Events::IN));
            calls.fetch_add(1, Ordering::SeqCst);
            // The "signal handler" does the (synchronous) read itself, until WouldBlock.
            if let Some(s) = s2.upgrade() {
                got.lock().unwrap().extend(drain(&s).unwrap());
            }
        })
        .unwrap();
    }
    s.set_nonblocking(true).unwrap();
    send(c, b"one").unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    send(c, b"two").unwrap();
    a.poll().unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(&*got.lock().unwrap(), b"onetwo");
    assert_eq!(a.work().signals, 2);
}

// ----- 5. asynchronous I/O: the proactor -----

#[test]
fn completion_read_submitted_before_data_arrives_completes_with_the_data() {
    let (a, b) = nets();
    let (_l, mut conns) = connected(&a, &b, 7, 1).unwrap();
    let (s, c) = conns.pop().unwrap();
    let ring = Ring::new(&a);
    ring.read(s.fd(), vec![0; 64], 7).unwrap();
    let mut done = Vec::new();
    assert_eq!(
        ring.reap(&mut done).unwrap(),
        0,
        "nothing yet: the read is pending"
    );

    let before = a.work();
    send(&c, b"hello").unwrap();
    // The driver already did the read when the data arrived; the program only reaps.
    assert_eq!(ring.ready(), 1);
    assert_eq!(ring.wait(&mut done, 1, None).unwrap(), 1);
    let comp = done.pop().unwrap();
    assert_eq!(comp.user_data, 7);
    let n = comp.result.unwrap();
    assert_eq!(&comp.buf[..n], b"hello");
    let after = a.work();
    // One copy per byte, socket buffer → the submitted buffer; no staging copy.
    assert_eq!(after.user_copy_bytes - before.user_copy_bytes, 5);
    assert_eq!(after.completions - before.completions, 1);
}

#[test]
fn completion_accept_connect_write_and_eof() {
    let (a, b) = nets();
    let l = TcpListener::bind(&a, a_addr(7)).unwrap();
    let ra = Ring::new(&a);
    let rb = Ring::new(&b);
    ra.accept(l.fd(), 1).unwrap();
    rb.connect(a_addr(7), 2).unwrap();
    let mut done = Vec::new();
    rb.wait(&mut done, 1, None).unwrap();
    let client = done.pop().unwrap().stream.expect("connected");
    ra.wait(&mut done, 1, None).unwrap();
    let accepted = done.pop().unwrap();
    assert_eq!(accepted.user_data, 1);
    let server = accepted.stream.expect("accepted");

    // Reads submitted in order complete in order.
    ra.read(server.fd(), vec![0; 3], 10).unwrap();
    ra.read(server.fd(), vec![0; 64], 11).unwrap();
    rb.write(client.fd(), b"abcdef".to_vec(), 20).unwrap();
    rb.wait(&mut done, 1, None).unwrap();
    assert_eq!(
        done.pop().unwrap().result.unwrap(),
        6,
        "whole buffer queued"
    );
    ra.wait(&mut done, 2, None).unwrap();
    let got: Vec<(u64, Vec<u8>)> = done
        .drain(..)
        .map(|c| {
            let n = c.result.unwrap();
            (c.user_data, c.buf[..n].to_vec())
        })
        .collect();
    assert_eq!(got, vec![(10, b"abc".to_vec()), (11, b"def".to_vec())]);

    // End of stream completes a read with 0.
    ra.read(server.fd(), vec![0; 8], 12).unwrap();
    drop(client);
    ra.wait(&mut done, 1, None).unwrap();
    assert_eq!(done.pop().unwrap().result.unwrap(), 0);

    // Refused connect: the completion carries the error.
    rb.connect(a_addr(9), 3).unwrap();
    rb.wait(&mut done, 1, None).unwrap();
    let c = done.pop().unwrap();
    assert_eq!(
        c.result.unwrap_err().kind(),
        io::ErrorKind::ConnectionRefused
    );
    assert!(c.stream.is_none());
}

#[test]
fn closing_a_descriptor_cancels_its_pending_operations() {
    let (a, b) = nets();
    let (_l, mut conns) = connected(&a, &b, 7, 1).unwrap();
    let (s, _c) = conns.pop().unwrap();
    let ring = Ring::new(&a);
    ring.read(s.fd(), vec![0; 8], 1).unwrap();
    drop(s);
    let mut done = Vec::new();
    assert_eq!(ring.reap(&mut done).unwrap(), 1);
    assert_eq!(
        done[0].result.as_ref().unwrap_err().kind(),
        io::ErrorKind::Interrupted
    );
    assert_eq!(done[0].buf.len(), 8, "the buffer comes back");
}

// ----- threads: one driver thread, application threads using the same API -----

#[test]
fn threaded_model_echo_between_threads() {
    let (a, b) = nets_with(ringstack_sockets::SystemClock::new(), |_| {});
    let driver = a.spawn_driver().unwrap();
    assert_eq!(
        kind(b.spawn_driver()),
        io::ErrorKind::AlreadyExists,
        "one driver per group"
    );
    let l = TcpListener::bind(&a, a_addr(7)).unwrap();
    let server = std::thread::spawn(move || {
        let (s, _) = l.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = [0u8; 1024];
        let mut total = 0;
        loop {
            let n = (&s).read(&mut buf).unwrap();
            if n == 0 {
                return total;
            }
            total += n;
            (&s).write_all(&buf[..n]).unwrap();
        }
    });
    let c = TcpStream::connect_timeout(&b, a_addr(7), Duration::from_secs(10)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let c = Arc::new(c);
    // A second application thread reads while this one writes, through &TcpStream.
    let reader = {
        let c = c.clone();
        std::thread::spawn(move || {
            let mut got = vec![0u8; 100_000];
            (&*c).read_exact(&mut got).unwrap();
            got
        })
    };
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    (&*c).write_all(&data).unwrap();
    assert_eq!(reader.join().unwrap(), data);
    c.shutdown(Shutdown::Write).unwrap();
    assert_eq!(server.join().unwrap(), 100_000);
    driver.stop().unwrap();
}

#[test]
fn threaded_model_needs_a_real_clock() {
    let (a, _b) = nets();
    assert_eq!(kind(a.spawn_driver()), io::ErrorKind::Unsupported);
}

#[test]
fn one_machine_net_on_its_own() {
    // A single machine whose NIC is one end of a link nobody reads: bind/listen/readiness work,
    // and blocking with nothing that can ever happen reports it.
    let (nic, _other) = ringstack_nic::MemoryLink::pair(ringstack_nic::LinkConfig::default());
    let net = Net::new(
        nic,
        ringstack_stack::Config::new([0; 6], A, 24),
        ringstack_sockets::VirtualClock::new(),
    );
    assert_eq!(net.addr(), A);
    let l = TcpListener::bind(&net, a_addr(80)).unwrap();
    assert_eq!(l.local_addr().unwrap(), a_addr(80));
    assert_eq!(kind(l.accept()), io::ErrorKind::TimedOut);
}
