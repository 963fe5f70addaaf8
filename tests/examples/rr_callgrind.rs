//! Request/response over the in-memory link, for instruction counts under callgrind (the
//! in-memory bench has only the bulk workload): B connects to A, then sends `--req` bytes
//! and reads `--resp` bytes back, `N` times, one transaction at a time, on the virtual clock.
//!
//! ```sh
//! cargo build --release -p ringstack-tests --example rr_callgrind
//! valgrind --tool=callgrind target/release/examples/rr_callgrind 1000 64 64
//! valgrind --tool=callgrind target/release/examples/rr_callgrind 11000 64 64
//! # marginal cost per transaction = ΔIr / 10,000
//! ```
//!
//! Optional fourth argument: `pressure` sets the buffer memory pressure threshold to 0, so
//! every buffer is released as soon as it drains (the worst case of that policy).

use std::net::SocketAddrV4;

use ringstack_stack::{Duration, TcpHandle};
use ringstack_tests::{Pair, A};

fn arg(i: usize, default: usize) -> usize {
    std::env::args()
        .nth(i)
        .map_or(default, |s| s.parse().expect("a number"))
}

fn main() {
    let (n, req, resp) = (arg(1, 1000), arg(2, 64), arg(3, 64));
    let pressure = std::env::args().nth(4).as_deref() == Some("pressure");
    let mut pair = Pair::new(ringstack_nic::Impairment::none(), 1, |c| {
        if pressure {
            c.tcp.buffer_pressure = 0;
        }
    });
    let l = pair.a.stack().tcp_listen(7000, 8).expect("listen");
    let now = pair.sim.now;
    let c = pair
        .b
        .stack()
        .tcp_connect(now, SocketAddrV4::new(A, 7000), 0)
        .expect("connect");
    let mut s: Option<TcpHandle> = None;
    assert!(pair.run_until(Duration::from_secs(5), |_, a, _| {
        s = a.stack().tcp_accept(l).ok();
        s.is_some()
    }));
    let s = s.unwrap();
    let (qbuf, rbuf) = (vec![0x51u8; req], vec![0x52u8; resp]);
    let mut buf = vec![0u8; req.max(resp)];
    for i in 0..n {
        let now = pair.sim.now;
        assert_eq!(pair.b.stack().tcp_send(now, c, &qbuf).unwrap(), req);
        let mut got = 0;
        let ok = pair.run_until(Duration::from_secs(5), |now, a, _| {
            while let Ok(k) = a.stack().tcp_recv(now, s, &mut buf) {
                if k == 0 {
                    break;
                }
                got += k;
            }
            if got == req {
                assert_eq!(a.stack().tcp_send(now, s, &rbuf).unwrap(), resp);
                return true;
            }
            false
        });
        assert!(ok, "request {i} served");
        let mut got = 0;
        let ok = pair.run_until(Duration::from_secs(5), |now, _, b| {
            while let Ok(k) = b.stack().tcp_recv(now, c, &mut buf) {
                if k == 0 {
                    break;
                }
                got += k;
            }
            got == resp
        });
        assert!(ok, "response {i} read");
    }
    let counters = pair.a.stack_ref().counters();
    println!(
        "transactions={n} req={req} resp={resp} a_segs_out={}",
        counters.get(ringstack_stack::Counter::TcpOutSegs)
    );
}
