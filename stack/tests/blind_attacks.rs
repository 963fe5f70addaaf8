//! Blind (off-path) attacks on established connections, found by the adversarial lab suite
//! (`scripts/adversarial/adversarial.py`, cases `ts_recent_poisoning` and
//! `challenge_ack_side_channel`) and reproduced here sans-IO. Both used to succeed; the fixes
//! are described below and in docs/security.md.
//!
//! 1. TS.Recent poisoning: `on_segment_otherwise` recorded TS.Recent (RFC 7323 §4.3) before the
//!    SYN and ACK checks, so a segment that covers RCV.NXT but has no ACK bit, or acknowledges
//!    data never sent (RFC 5961 §5), still moved TS.Recent. With a TSval 2^30 ahead, every
//!    later segment of the real peer fails PAWS: one blind segment (only the sequence number
//!    needs guessing, not the ACK) stalled the connection for good. Fixed as Linux does: TS.Recent
//!    is updated only after the ACK is validated (`tcp_ack(.., FLAG_UPDATE_TS_RECENT)`).
//! 2. The challenge-ACK budget (RFC 5961 §7) was one fixed count per second for the whole stack:
//!    spending it on one connection silences challenge ACKs on every other, which is the
//!    CVE-2016-5696 side channel (an off-path attacker learns whether a four-tuple exists and
//!    then its sequence numbers). Linux made the limit per socket (`tcp_invalid_ratelimit`) and
//!    the global one random, then off by default; so does ringstack now (`tcp/reset.rs`).

mod common;

use common::*;
use ringstack_stack::{Config, Counter, DropReason, Stack};

const PROTO_TCP: u8 = 6;
const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const PSH: u8 = 0x08;
const ACK: u8 = 0x10;

/// A peer → us TCP frame with `opts` (a multiple of 4 bytes) and a correct checksum.
fn tcp_frame(
    sport: u16,
    dport: u16,
    seq: u32,
    ack: u32,
    flags: u8,
    opts: &[u8],
    payload: &[u8],
) -> Vec<u8> {
    assert_eq!(opts.len() % 4, 0);
    let mut s = Vec::new();
    s.extend_from_slice(&sport.to_be_bytes());
    s.extend_from_slice(&dport.to_be_bytes());
    s.extend_from_slice(&seq.to_be_bytes());
    s.extend_from_slice(&ack.to_be_bytes());
    s.push((((20 + opts.len()) / 4) as u8) << 4);
    s.push(flags);
    s.extend_from_slice(&65535u16.to_be_bytes());
    s.extend_from_slice(&[0, 0, 0, 0]);
    s.extend_from_slice(opts);
    s.extend_from_slice(payload);
    let len = (s.len() as u16).to_be_bytes();
    let c = inet_checksum(&[
        &PEER_IP.octets(),
        &OUR_IP.octets(),
        &[0, PROTO_TCP, len[0], len[1]],
        &s,
    ]);
    s[16..18].copy_from_slice(&c.to_be_bytes());
    from_peer(&Ip::new(PEER_IP, OUR_IP, PROTO_TCP).build(&s))
}

/// NOP, NOP, Timestamps (RFC 7323 Appendix A layout).
fn ts(val: u32, ecr: u32) -> Vec<u8> {
    let mut o = vec![1, 1, 8, 10];
    o.extend_from_slice(&val.to_be_bytes());
    o.extend_from_slice(&ecr.to_be_bytes());
    o
}

/// The TCP segments among `frames` to peer port `port`: (seq, ack, flags, TSval).
fn to_port(frames: &[Vec<u8>], port: u16) -> Vec<(u32, u32, u8, Option<u32>)> {
    frames
        .iter()
        .filter(|f| f.len() >= 54 && f[12..14] == [8, 0] && f[23] == PROTO_TCP)
        .map(|f| &f[14 + (f[14] as usize & 0xf) * 4..])
        .filter(|t| u16::from_be_bytes([t[2], t[3]]) == port)
        .map(|t| {
            let doff = (t[12] >> 4) as usize * 4;
            let opts = &t[20..doff];
            let mut tsval = None;
            let mut i = 0;
            while i + 1 < opts.len() {
                match opts[i] {
                    0 => break,
                    1 => i += 1,
                    8 if opts[i + 1] == 10 && i + 10 <= opts.len() => {
                        tsval = Some(u32::from_be_bytes([
                            opts[i + 2],
                            opts[i + 3],
                            opts[i + 4],
                            opts[i + 5],
                        ]));
                        break;
                    }
                    _ => i += opts[i + 1].max(2) as usize,
                }
            }
            (
                u32::from_be_bytes([t[4], t[5], t[6], t[7]]),
                u32::from_be_bytes([t[8], t[9], t[10], t[11]]),
                t[13],
                tsval,
            )
        })
        .collect()
}

struct Conn {
    port: u16,
    /// Our (the peer's) next sequence number = the stack's RCV.NXT.
    snd_nxt: u32,
    /// The stack's SND.NXT.
    rcv_nxt: u32,
    /// The stack's latest TSval (echoed in our TSecr).
    their_ts: u32,
}

/// A stack listening on port 9 and an established connection from peer port `port`, with
/// timestamps.
fn establish(s: &mut Stack, port: u16, now: u64) -> Conn {
    let iss = 7_000_000 + port as u32;
    let mut syn_opts = vec![2, 4, 0x05, 0xb4];
    syn_opts.extend_from_slice(&ts(1000, 0));
    s.handle_frame(t(now), &tcp_frame(port, 9, iss, 0, SYN, &syn_opts, &[]));
    let out = drain(s, t(now));
    let &(seq, _, flags, tsval) = to_port(&out, port).first().expect("a SYN-ACK");
    assert_eq!(flags & (SYN | ACK), SYN | ACK);
    let their_ts = tsval.expect("timestamps negotiated");
    s.handle_frame(
        t(now),
        &tcp_frame(port, 9, iss + 1, seq + 1, ACK, &ts(1001, their_ts), &[]),
    );
    let _ = drain(s, t(now));
    Conn {
        port,
        snd_nxt: iss + 1,
        rcv_nxt: seq + 1,
        their_ts,
    }
}

fn stack_listening() -> (Stack, ringstack_stack::TcpHandle) {
    let mut s = stack_with(Config::new(OUR_MAC, OUR_IP, 24));
    learn_peer(&mut s, t(0));
    let l = s.tcp_listen(9, 16).unwrap();
    (s, l)
}

#[test]
fn a_blind_segment_without_a_valid_ack_does_not_poison_ts_recent() {
    let (mut s, l) = stack_listening();
    let mut c = establish(&mut s, 40000, 1);
    let h = s.tcp_accept(l).unwrap();
    let data = pattern(100, 1);
    s.handle_frame(
        t(2),
        &tcp_frame(
            c.port,
            9,
            c.snd_nxt,
            c.rcv_nxt,
            ACK | PSH,
            &ts(1002, c.their_ts),
            &data,
        ),
    );
    c.snd_nxt += 100;
    let _ = drain(&mut s, t(2));
    // Past the delayed-ACK timer: everything is acknowledged (Last.ACK.sent = RCV.NXT).
    s.handle_timeout(t(300));
    let acks = to_port(&drain(&mut s, t(300)), c.port);
    assert!(
        acks.iter().any(|&(_, ack, _, _)| ack == c.snd_nxt),
        "{acks:?}"
    );
    // The blind segments: they cover RCV.NXT (the only guess needed), carry a TSval far ahead,
    // and no ACK bit / an ACK of data never sent.
    let future = 1002 + (1 << 30);
    for (flags, ack) in [(PSH, 0), (PSH | ACK, c.rcv_nxt + (1 << 20))] {
        s.handle_frame(
            t(400),
            &tcp_frame(
                c.port,
                9,
                c.snd_nxt - 10,
                ack,
                flags,
                &ts(future, 0),
                b"POISONPOISONPOISON",
            ),
        );
    }
    assert_eq!(s.counters().drops(DropReason::TcpBadFlags), 1);
    assert_eq!(s.counters().drops(DropReason::TcpBadAck), 1);
    let _ = drain(&mut s, t(400));
    // The real peer goes on with its own clock.
    s.handle_frame(
        t(500),
        &tcp_frame(
            c.port,
            9,
            c.snd_nxt,
            c.rcv_nxt,
            ACK | PSH | FIN,
            &ts(1003, c.their_ts),
            &data,
        ),
    );
    let mut buf = [0u8; 1024];
    let mut got = Vec::new();
    while let Ok(n) = s.tcp_recv(t(500), h, &mut buf) {
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(
        s.counters().drops(DropReason::TcpPawsRejected),
        0,
        "the real peer's segment failed PAWS: TS.Recent was poisoned"
    );
    assert_eq!(got.len(), 200, "both data segments delivered");
}

#[test]
fn challenge_acks_on_one_connection_do_not_silence_another() {
    let (mut s, _l) = stack_listening();
    let a = establish(&mut s, 40001, 1);
    let b = establish(&mut s, 40002, 1);
    // An attacker's flood of in-window RSTs on connection A (its own, or a spoofed one).
    for k in 0..1000u32 {
        s.handle_frame(
            t(2),
            &tcp_frame(a.port, 9, a.snd_nxt + 1 + k, 0, RST, &[], &[]),
        );
    }
    let _ = drain(&mut s, t(2));
    assert_eq!(s.counters().drops(DropReason::TcpRstChallenged), 1000);
    // The per-connection limit (one per 500 ms) answered the first one only.
    assert_eq!(s.counters().get(Counter::TcpExtTCPChallengeACK), 1);
    assert_eq!(s.counters().get(Counter::TcpExtTCPACKSkippedChallenge), 999);
    // In the same second, one in-window RST on connection B must still be challenged.
    s.handle_frame(t(2), &tcp_frame(b.port, 9, b.snd_nxt + 1, 0, RST, &[], &[]));
    assert_eq!(s.counters().get(Counter::TcpExtTCPChallengeACK), 2);
    let out = drain(&mut s, t(2));
    let acks = to_port(&out, b.port);
    assert!(
        acks.iter()
            .any(|&(_, ack, f, _)| f & ACK != 0 && ack == b.snd_nxt),
        "no challenge ACK on B: A's flood used up the stack-wide budget ({acks:?})"
    );
}

/// With a stack-wide limit configured, its budget is randomized each second (Linux 4.7+):
/// an attacker who spends it cannot tell from the count of challenge ACKs it got back whether
/// someone else's segment drew one in the same second.
#[test]
fn a_configured_global_challenge_budget_is_randomized() {
    let limit = 4;
    let mut sent = Vec::new();
    for seed in 1..=12u64 {
        let mut cfg = Config::new(OUR_MAC, OUR_IP, 24);
        cfg.seed = seed;
        cfg.tcp.challenge_ack_limit = limit;
        let mut s = stack_with(cfg);
        learn_peer(&mut s, t(0));
        let _l = s.tcp_listen(9, 16).unwrap();
        let conns: Vec<Conn> = (0..3 * limit as u16)
            .map(|i| establish(&mut s, 41000 + i, 1))
            .collect();
        // One in-window RST per connection (the per-connection limit never bites), same second.
        for c in &conns {
            s.handle_frame(t(2), &tcp_frame(c.port, 9, c.snd_nxt + 1, 0, RST, &[], &[]));
        }
        let _ = drain(&mut s, t(2));
        let n = s.counters().get(Counter::TcpExtTCPChallengeACK);
        let limited = s.counters().get(Counter::TcpExtTCPChallengeACKLimited);
        assert_eq!(n + limited, 3 * limit as u64);
        sent.push(n);
    }
    // limit/2 + rand(limit): 2..=5, and not always the same.
    assert!(sent.iter().all(|&n| (2..=5).contains(&n)), "{sent:?}");
    assert!(sent.iter().any(|&n| n != sent[0]), "{sent:?}");
}
