//! Invariants every harness checks after every step.

use ringstack_stack::tcp::State;
use ringstack_stack::{Config, Stack};

/// Checks the resource bounds of `stack` (configured by `config`) and, for every TCP socket, the
/// consistency of what `TcpInfo` exposes. `rcv_cap`/`snd_cap` bound the socket buffers.
pub fn check(stack: &Stack, config: &Config) {
    assert!(
        stack.reassembly_memory() <= config.reassembly.max_memory,
        "reassembly memory {} above its bound {}",
        stack.reassembly_memory(),
        config.reassembly.max_memory
    );
    assert!(
        stack.tx_queue_len() <= 4096,
        "tx queue grew to {}",
        stack.tx_queue_len()
    );
    assert!(
        stack.arp_entries().len() <= config.arp.max_entries,
        "ARP cache above its bound"
    );
    let tcp = stack.tcp();
    assert!(tcp.socket_count() <= config.tcp.max_sockets);
    let (rcv_cap, snd_cap) = (config.tcp.rcv_buf, config.tcp.snd_buf);
    for h in tcp.handles() {
        let i = tcp.info(h).expect("a listed handle has info");
        if i.state == State::Listen {
            assert!(
                i.recv_queue <= i.send_queue,
                "accept queue above the backlog: {i:?}"
            );
            continue;
        }
        assert!(
            i.recv_queue <= rcv_cap,
            "receive buffer above its capacity: {i:?}"
        );
        assert!(
            i.send_queue <= snd_cap,
            "send buffer above its capacity: {i:?}"
        );
        assert!(
            i.ofo_bytes as usize <= rcv_cap,
            "out-of-order bytes above the buffer: {i:?}"
        );
        // snd_una <= snd_nxt: bytes in flight are never more than what is buffered (plus SYN and
        // FIN); a snd_una beyond snd_nxt would wrap the difference to ~4 GB. (Not checked once
        // Closed: a connection aborted by its retransmission timeout keeps reporting its last
        // in-flight bytes with an emptied send buffer — reported, harmless.)
        assert!(
            i.state == State::Closed || i.unacked as usize <= i.send_queue + 2,
            "in flight ({}) > send queue ({}) + SYN + FIN: {i:?}",
            i.unacked,
            i.send_queue
        );
        assert!(
            i.sacked as usize <= i.send_queue + 2,
            "SACKed beyond the send queue: {i:?}"
        );
        assert!(i.bytes_acked <= i.bytes_sent, "acked more than sent: {i:?}");
        // rcv_adv >= rcv_nxt (the window never goes negative) and never beyond the buffer,
        // give or take the window-scale granularity. (Not in SynReceived: rcv_adv is only set
        // when the SYN-ACK is built, so before that `rcv_wnd` reads 0 - rcv_nxt — reported.)
        assert!(
            i.state == State::SynReceived || i.rcv_wnd as usize <= rcv_cap + (1 << 14),
            "advertised window {} beyond the receive buffer {rcv_cap}: {i:?}",
            i.rcv_wnd
        );
        assert!(
            i.snd_wnd <= 65535 << 14,
            "send window beyond the largest scaled window: {i:?}"
        );
    }
}
