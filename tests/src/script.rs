//! Scripted packet tests, in the spirit of packetdrill: one stack, one imaginary peer, a virtual
//! clock, and a small readable script that injects segments, expects segments, and calls the
//! socket API.
//!
//! Segments are built and parsed with `etherparse` (an independent implementation), never with
//! ringstack's own code, so a script checks ringstack against the wire format itself.
//!
//! # Script format
//!
//! One event per line; `#` starts a comment. Every event starts with a time:
//! `0.100` (seconds, absolute), `+0.040` (relative to the previous event) or `*` (any time: for
//! `>` lines only, "whenever it comes").
//!
//! ```text
//! 0      listen 8080                      # socket calls (see below)
//! 0.1    < S 0:0(0) win 65535 <mss 1460,sackOK,TS val 100 ecr 0,nop,wscale 7>
//! 0.1    > S. 0:0(0) ack 1 <mss 1460,sackOK,TS val * ecr 100,nop,wscale *>
//! 0.2    < . 1:1(0) ack 1 win 514
//! 0.2    accept
//! 0.3    < P. 1:1001(1000) ack 1 win 514
//! +0.04  > . 1:1(0) ack 1001
//! ```
//!
//! Segments: `FLAGS START:END(LEN) [ack N] [win N] [checksum bad] [<options>]`. Flags are
//! letters from `S F R P` plus `.` for ACK (`S.` is SYN-ACK). Sequence numbers are relative: those of `<`
//! lines to the peer's initial sequence number, those of `>` lines to ringstack's (learned from
//! every SYN it sends on the current peer port). The payload of injected segments is a fixed
//! pattern of the peer's stream (byte `k` of the stream has relative sequence number `k + 1`, so
//! the data of a SYN `S 0:10(10)` is bytes 0..10, the same bytes as `P. 1:11(10)`), and the
//! payload of expected segments is checked against what the script wrote. `checksum bad` (in `<`
//! lines only) corrupts the TCP checksum of the injected segment. In `>` lines, `*` is a
//! wildcard for any number, and a missing `win` or `<options>` is not checked. Options:
//! `mss N`, `wscale N`, `sackOK`, `TS val A ecr B`, `nop`, `eol`, `sack L:R L:R ...` (blocks in
//! the peer's relative sequence space). In `<` lines, `TS val N ecr *` echoes the TSval of
//! ringstack's latest segment, and `TS val N ecr *-M` the TSval it sent M ms before that one
//! (its timestamp clock ticks in milliseconds).
//!
//! Socket calls: `listen PORT [BACKLOG]`, `connect PORT` (to the peer's port, from an ephemeral
//! port), `accept` / `accept EAGAIN`, `write N [-> M]` (M accepted; default all),
//! `read N` (exactly N bytes, content checked) / `read N partial` (N bytes into an N-byte
//! buffer: more may remain) / `read EAGAIN` / `read EOF` /
//! `read ECONNRESET|ECONNREFUSED|ETIMEDOUT`, `shutdown`, `close`, `abort`,
//! `readable yes|no`, `writable yes|no`, `counter NAME N`, `drop NAME N`,
//! `state NAME` (the connection's state as `ss` names it: `ESTAB`, `TIME-WAIT`, `UNCONN` for
//! CLOSED..., or `gone` once the handle is released),
//! `info FIELD VALUE` (a field of the connection's `TcpInfo`: `cwnd`, `ssthresh` (bytes),
//! `unacked` (pipe), `sacked`, `lost` (segments), `backoff`, `in_recovery`, `reordering_seen`
//! (`true`/`false`), `loss_probes`, `rto_ms`),
//! `keepalive on|off` (`SO_KEEPALIVE`; the idle time, interval and probe count are the stack-wide
//! `config keepalive_*` values, as the TCP layer has no per-socket setting for them),
//! `user_timeout MS|off` (`TCP_USER_TIMEOUT`), and
//! `peer_port N` (later segments come from another peer port: a second connection; ringstack's
//! ISN for each peer port is remembered, so scripts may switch back and forth).
//! `SCRIPT_TRACE=1` prints every segment ringstack sends.
//!
//! Set-up lines (before any event): `config KEY=VALUE ...` with keys `mtu`, `rcv_buf`,
//! `snd_buf`, `min_rto`, `initial_rto`, `delayed_ack`, `time_wait`, `keepalive_idle`,
//! `keepalive_interval`, `fin_timeout`, `max_rto` (all times in ms), `keepalive_probes`,
//! `syn_retries`, `synack_retries`, `max_retries`, `initial_window`, `syn_backlog`,
//! `challenge_ack_limit` (per second), the switches `nodelay`, `window_scaling`, `timestamps`,
//! `sack`, `syn_cookies` (0/1), `tolerance` (ms, timing slack for `>` lines, default 5),
//! `peer_isn`, `peer_port`.
//!
//! A segment ringstack sends that no `>` line expects fails the script, as does an expected one
//! that does not come in time.

use std::collections::VecDeque;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4};

use etherparse::{PacketBuilder, SlicedPacket, TcpOptionElement, TransportSlice};
use ringstack_stack::cx::Cx;
use ringstack_stack::socket::ReadinessQueue;
use ringstack_stack::time::{Duration, Instant};
use ringstack_stack::trace::Tracer;
use ringstack_stack::{
    Config, Counter, Counters, DropReason, Readiness, SocketHandle, Stack, TcpError, TcpHandle,
};

/// The imaginary peer's address.
pub const PEER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
/// ringstack's address.
pub const LOCAL: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const PEER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const LOCAL_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];

/// A script failure: the line and what went wrong.
#[derive(Debug)]
pub struct ScriptError {
    /// 1-based line number.
    pub line: usize,
    /// The line's text.
    pub text: String,
    /// What went wrong.
    pub message: String,
}

impl fmt::Display for ScriptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}: `{}`: {}",
            self.line,
            self.text.trim(),
            self.message
        )
    }
}

type R<T> = Result<T, String>;

/// A number in an expectation: exact or `*`.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Num {
    Any,
    Is(u32),
}

impl Num {
    fn parse(s: &str) -> R<Num> {
        if s == "*" {
            Ok(Num::Any)
        } else {
            s.parse()
                .map(Num::Is)
                .map_err(|_| format!("bad number {s:?}"))
        }
    }
    fn matches(self, v: u32) -> bool {
        self == Num::Any || self == Num::Is(v)
    }
    fn value(self) -> R<u32> {
        match self {
            Num::Is(v) => Ok(v),
            Num::Any => Err("`*` is only allowed in expected (`>`) segments".into()),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Opt {
    Mss(Num),
    Wscale(Num),
    SackOk,
    Ts(Num, Num),
    /// `TS val N ecr *-M`: echo the TSval ringstack sent M ms before its latest one.
    TsEcrBack(Num, u32),
    Nop,
    Eol,
    Sack(Vec<(Num, Num)>),
}

#[derive(Clone, Debug, Default)]
struct Flags {
    syn: bool,
    fin: bool,
    rst: bool,
    psh: bool,
    ack: bool,
}

impl Flags {
    fn parse(s: &str) -> R<Flags> {
        let mut f = Flags::default();
        for c in s.chars() {
            match c {
                'S' => f.syn = true,
                'F' => f.fin = true,
                'R' => f.rst = true,
                'P' => f.psh = true,
                '.' => f.ack = true,
                _ => return Err(format!("bad flag {c:?} in {s:?}")),
            }
        }
        Ok(f)
    }
}

impl fmt::Display for Flags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (on, c) in [
            (self.syn, 'S'),
            (self.fin, 'F'),
            (self.rst, 'R'),
            (self.psh, 'P'),
            (self.ack, '.'),
        ] {
            if on {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

#[derive(Clone, Debug)]
struct Seg {
    flags: Flags,
    start: Num,
    end: Num,
    len: Num,
    ack: Option<Num>,
    win: Option<Num>,
    /// Injected with a corrupted TCP checksum.
    bad_checksum: bool,
    opts: Option<Vec<Opt>>,
}

#[derive(Clone, Debug)]
enum Event {
    Inject(Seg),
    Expect(Seg),
    Call(Vec<String>),
}

#[derive(Clone, Copy, Debug)]
enum When {
    At(Duration),
    Any,
}

/// A segment ringstack sent, as parsed by etherparse.
#[derive(Debug)]
struct Sent {
    at: Instant,
    flags: Flags,
    seq: u32,
    ack: u32,
    win: u16,
    opts: Vec<TcpOptionElement>,
    payload: Vec<u8>,
    sport: u16,
    dport: u16,
}

/// The state of one script run.
struct Run {
    stack: Stack,
    now: Instant,
    tolerance: Duration,
    peer_isn: u32,
    peer_port: u16,
    local_port: u16,
    our_isn: Option<u32>,
    /// ringstack's ISN per peer port, for scripts that switch between connections.
    isns: std::collections::HashMap<u16, u32>,
    listener: Option<TcpHandle>,
    conn: Option<TcpHandle>,
    pending: VecDeque<Sent>,
    /// Everything the script wrote, to check payloads of `>` segments.
    written: Vec<u8>,
    /// Bytes of the peer's stream the script has read so far.
    read_offset: usize,
    /// The TSval of ringstack's latest segment (injected `TS val N ecr *` echoes it).
    last_ts_val: u32,
}

/// Byte `i` of the peer's stream.
pub fn peer_byte(i: usize) -> u8 {
    (i as u32).wrapping_mul(2_654_435_761).to_be_bytes()[1]
}

/// Byte `i` of the stream the script writes.
pub fn local_byte(i: usize) -> u8 {
    (i as u32 ^ 0x5a5a).wrapping_mul(40_503).to_be_bytes()[2]
}

fn parse_time(tok: &str, prev: Duration) -> R<When> {
    if tok == "*" {
        return Ok(When::Any);
    }
    let (rel, num) = match tok.strip_prefix('+') {
        Some(n) => (true, n),
        None => (false, tok),
    };
    let secs: f64 = num.parse().map_err(|_| format!("bad time {tok:?}"))?;
    let d = Duration::from_micros((secs * 1e6).round() as u64);
    Ok(When::At(if rel { prev + d } else { d }))
}

fn parse_opts(s: &str) -> R<Vec<Opt>> {
    let mut out = Vec::new();
    for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let w: Vec<&str> = item.split_whitespace().collect();
        out.push(match w.as_slice() {
            ["mss", n] => Opt::Mss(Num::parse(n)?),
            ["wscale", n] => Opt::Wscale(Num::parse(n)?),
            ["sackOK"] => Opt::SackOk,
            ["TS", "val", v, "ecr", e] if e.starts_with("*-") => Opt::TsEcrBack(
                Num::parse(v)?,
                e[2..]
                    .parse()
                    .map_err(|_| format!("bad echo offset {e:?}"))?,
            ),
            ["TS", "val", v, "ecr", e] => Opt::Ts(Num::parse(v)?, Num::parse(e)?),
            ["nop"] => Opt::Nop,
            ["eol"] => Opt::Eol,
            ["sack", blocks @ ..] => Opt::Sack(
                blocks
                    .iter()
                    .map(|b| {
                        let (l, r) = b.split_once(':').ok_or(format!("bad SACK block {b:?}"))?;
                        Ok((Num::parse(l)?, Num::parse(r)?))
                    })
                    .collect::<R<_>>()?,
            ),
            _ => return Err(format!("unknown option {item:?}")),
        });
    }
    Ok(out)
}

fn parse_seg(rest: &str) -> R<Seg> {
    let (main, opts) = match rest.find('<') {
        Some(i) => {
            let close = rest.rfind('>').ok_or("unclosed `<` in options")?;
            (&rest[..i], Some(parse_opts(&rest[i + 1..close])?))
        }
        None => (rest, None),
    };
    let w: Vec<&str> = main.split_whitespace().collect();
    if w.len() < 2 {
        return Err("a segment needs FLAGS and START:END(LEN)".into());
    }
    let flags = Flags::parse(w[0])?;
    let (range, len) = w[1].split_once('(').ok_or("expected START:END(LEN)")?;
    let (start, end) = range.split_once(':').ok_or("expected START:END(LEN)")?;
    let len = len.strip_suffix(')').ok_or("expected START:END(LEN)")?;
    let mut seg = Seg {
        flags,
        start: Num::parse(start)?,
        end: Num::parse(end)?,
        len: Num::parse(len)?,
        ack: None,
        win: None,
        bad_checksum: false,
        opts,
    };
    let mut i = 2;
    while i < w.len() {
        let v = w.get(i + 1).ok_or(format!("`{}` needs a value", w[i]))?;
        match w[i] {
            "ack" => seg.ack = Some(Num::parse(v)?),
            "win" => seg.win = Some(Num::parse(v)?),
            "checksum" if *v == "bad" => seg.bad_checksum = true,
            k => return Err(format!("unknown segment field {k:?}")),
        }
        i += 2;
    }
    Ok(seg)
}

fn flags_of(t: &etherparse::TcpSlice<'_>) -> Flags {
    Flags {
        syn: t.syn(),
        fin: t.fin(),
        rst: t.rst(),
        psh: t.psh(),
        ack: t.ack(),
    }
}

impl Run {
    fn new(config: Config, peer_isn: u32, peer_port: u16, tolerance: Duration) -> Run {
        let now = Instant::from_millis(0);
        let mut run = Run {
            stack: Stack::new(config, now),
            now,
            tolerance,
            peer_isn,
            peer_port,
            local_port: 0,
            our_isn: None,
            isns: std::collections::HashMap::new(),
            listener: None,
            conn: None,
            pending: VecDeque::new(),
            written: Vec::new(),
            read_offset: 0,
            last_ts_val: 0,
        };
        // Teach the stack the peer's MAC (an ARP request for its address), then forget the
        // gratuitous ARP and the reply.
        let mut arp = Vec::new();
        PacketBuilder::ethernet2(PEER_MAC, [0xff; 6])
            .arp(
                etherparse::ArpPacket::new(
                    etherparse::ArpHardwareId::ETHERNET,
                    etherparse::EtherType::IPV4,
                    etherparse::ArpOperation::REQUEST,
                    &PEER_MAC,
                    &PEER.octets(),
                    &[0; 6],
                    &LOCAL.octets(),
                )
                .expect("valid ARP"),
            )
            .write(&mut arp)
            .expect("ARP fits");
        run.stack.handle_frame(now, &arp);
        let mut buf = vec![0u8; 65_536];
        while run.stack.poll_transmit(now, &mut buf).is_some() {}
        run
    }

    /// Collects what the stack sends now.
    fn drain(&mut self) -> R<()> {
        let mut buf = vec![0u8; 65_536];
        while let Some(n) = self.stack.poll_transmit(self.now, &mut buf) {
            let frame = &buf[..n];
            let p = SlicedPacket::from_ethernet(frame)
                .map_err(|e| format!("ringstack sent an unparsable frame: {e:?}"))?;
            let Some(TransportSlice::Tcp(t)) = p.transport else {
                continue; // ARP and ICMP are not the script's business
            };
            let Some(etherparse::NetSlice::Ipv4(ip)) = &p.net else {
                return Err("TCP without IPv4".into());
            };
            let src = ip.header().source_addr();
            let dst = ip.header().destination_addr();
            let want = t
                .calc_checksum_ipv4(src.octets(), dst.octets())
                .map_err(|e| format!("checksum: {e:?}"))?;
            if want != t.checksum() {
                return Err(format!(
                    "ringstack sent a bad TCP checksum {:#06x}, expected {want:#06x}",
                    t.checksum()
                ));
            }
            if dst != PEER || src != LOCAL {
                return Err(format!(
                    "segment from {src} to {dst}, expected {LOCAL} to {PEER}"
                ));
            }
            let opts = t
                .options_iterator()
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("ringstack sent malformed TCP options: {e:?}"))?;
            for o in &opts {
                if let TcpOptionElement::Timestamp(val, _) = o {
                    self.last_ts_val = *val;
                }
            }
            self.pending.push_back(Sent {
                at: self.now,
                flags: flags_of(&t),
                seq: t.sequence_number(),
                ack: t.acknowledgment_number(),
                win: t.window_size(),
                opts,
                payload: t.payload().to_vec(),
                sport: t.source_port(),
                dport: t.destination_port(),
            });
        }
        Ok(())
    }

    /// Advances the clock to `t`, firing timers on the way and collecting output.
    fn advance_to(&mut self, t: Instant) -> R<()> {
        loop {
            match self.stack.poll_at() {
                Some(at) if at <= t => {
                    self.now = self.now.max(at);
                    self.stack.handle_timeout(self.now);
                    self.drain()?;
                    if !self.pending.is_empty() {
                        return Ok(());
                    }
                    if self.stack.poll_at() == Some(at) && at <= self.now {
                        // A timer that does not move would spin forever.
                        self.now += Duration::from_micros(1);
                    }
                }
                _ => break,
            }
        }
        self.now = self.now.max(t);
        Ok(())
    }

    fn no_unexpected(&self) -> R<()> {
        match self.pending.front() {
            Some(s) => Err(format!(
                "unexpected segment from ringstack: {}",
                self.describe(s)
            )),
            None => Ok(()),
        }
    }

    fn describe(&self, s: &Sent) -> String {
        let rel_seq = s.seq.wrapping_sub(self.our_isn.unwrap_or(s.seq));
        let rel_ack = s.ack.wrapping_sub(self.peer_isn);
        let end = rel_seq.wrapping_add(s.payload.len() as u32);
        format!(
            "{:.6} > {} {rel_seq}:{end}({}) ack {rel_ack} win {} {:?}",
            s.at.total_micros() as f64 / 1e6,
            s.flags,
            s.payload.len(),
            s.win,
            s.opts
        )
    }

    fn inject(&mut self, seg: &Seg) -> R<()> {
        let start = seg.start.value()?;
        let len = seg.len.value()? as usize;
        let end = seg.end.value()?;
        if start.wrapping_add(len as u32) != end {
            return Err(format!("START + LEN != END ({start} + {len} != {end})"));
        }
        let win = seg.win.unwrap_or(Num::Is(65535)).value()?;
        let seq = self.peer_isn.wrapping_add(start);
        let mut b = PacketBuilder::ethernet2(PEER_MAC, LOCAL_MAC)
            .ipv4(PEER.octets(), LOCAL.octets(), 64)
            .tcp(self.peer_port, self.local_port, seq, win as u16);
        if seg.flags.syn {
            b = b.syn();
        }
        if seg.flags.fin {
            b = b.fin();
        }
        if seg.flags.rst {
            b = b.rst();
        }
        if seg.flags.psh {
            b = b.psh();
        }
        if let Some(ack) = seg.ack {
            let our = self
                .our_isn
                .ok_or("`ack` before ringstack's ISN is known")?;
            b = b.ack(our.wrapping_add(ack.value()?));
        } else if seg.flags.ack {
            return Err("`.` flag needs `ack N`".into());
        }
        if let Some(opts) = &seg.opts {
            let mut elems = Vec::new();
            for o in opts {
                elems.push(match o {
                    Opt::Mss(n) => TcpOptionElement::MaximumSegmentSize(n.value()? as u16),
                    Opt::Wscale(n) => TcpOptionElement::WindowScale(n.value()? as u8),
                    Opt::SackOk => TcpOptionElement::SelectiveAcknowledgementPermitted,
                    Opt::Ts(v, Num::Any) => {
                        TcpOptionElement::Timestamp(v.value()?, self.last_ts_val)
                    }
                    Opt::Ts(v, e) => TcpOptionElement::Timestamp(v.value()?, e.value()?),
                    Opt::TsEcrBack(v, back) => TcpOptionElement::Timestamp(
                        v.value()?,
                        self.last_ts_val.wrapping_sub(*back),
                    ),
                    Opt::Nop => TcpOptionElement::Noop,
                    Opt::Eol => return Err("eol: use nop padding in injected segments".into()),
                    Opt::Sack(blocks) => {
                        let our = self.our_isn.ok_or("SACK before ringstack's ISN is known")?;
                        let abs = |n: Num| -> R<u32> { Ok(our.wrapping_add(n.value()?)) };
                        let first = blocks.first().ok_or("empty SACK option")?;
                        let mut rest = [None; 3];
                        for (i, &(l, r)) in blocks.iter().skip(1).take(3).enumerate() {
                            rest[i] = Some((abs(l)?, abs(r)?));
                        }
                        TcpOptionElement::SelectiveAcknowledgement(
                            (abs(first.0)?, abs(first.1)?),
                            rest,
                        )
                    }
                });
            }
            b = b.options(&elems).map_err(|e| format!("options: {e:?}"))?;
        }
        // Byte k of the peer's stream has relative sequence number k + 1; a SYN's data starts
        // after the SYN.
        let first = if seg.flags.syn {
            start
        } else {
            start.wrapping_sub(1)
        };
        let payload: Vec<u8> = (0..len)
            .map(|i| peer_byte(first.wrapping_add(i as u32) as usize))
            .collect();
        let mut frame = Vec::new();
        b.write(&mut frame, &payload)
            .map_err(|e| format!("building the segment: {e:?}"))?;
        if seg.bad_checksum {
            // Ethernet (14) + IPv4 header (IHL words) + the checksum's offset in TCP (16).
            let at = 14 + 4 * (frame[14] & 0x0f) as usize + 16;
            frame[at] ^= 0x5a;
        }
        self.stack.handle_frame(self.now, &frame);
        self.drain()
    }

    fn expect(&mut self, when: When, seg: &Seg) -> R<()> {
        if seg.bad_checksum {
            return Err("`checksum bad` is only for injected (`<`) segments".into());
        }
        let deadline = match when {
            When::At(t) => Instant::from_micros(t.total_micros() as i64) + self.tolerance,
            When::Any => self.now + Duration::from_secs(3600),
        };
        if self.pending.is_empty() {
            self.advance_to(deadline)?;
        }
        let Some(s) = self.pending.pop_front() else {
            return Err(format!(
                "expected segment did not come by {:.6}",
                deadline.total_micros() as f64 / 1e6
            ));
        };
        if let When::At(t) = when {
            let t = Instant::from_micros(t.total_micros() as i64);
            let early = t - self.tolerance;
            if s.at < early || s.at > deadline {
                return Err(format!(
                    "segment came at {:.6}, expected {:.6} ± {} ms: {}",
                    s.at.total_micros() as f64 / 1e6,
                    t.total_micros() as f64 / 1e6,
                    self.tolerance.total_millis(),
                    self.describe(&s)
                ));
            }
        }
        if s.flags.syn {
            self.our_isn = Some(s.seq);
            self.isns.insert(self.peer_port, s.seq);
            if self.local_port == 0 {
                self.local_port = s.sport;
            }
        }
        let our = self
            .our_isn
            .ok_or_else(|| format!("first segment from ringstack is not a SYN: {s:?}"))?;
        let got = self.describe(&s);
        if std::env::var_os("SCRIPT_TRACE").is_some() {
            eprintln!("  got {got}");
        }
        let mismatch = |what: &str| Err(format!("{what} differs: got {got}"));
        if s.dport != self.peer_port || s.sport != self.local_port {
            return mismatch("ports");
        }
        let f = &seg.flags;
        if (f.syn, f.fin, f.rst, f.psh, f.ack)
            != (
                s.flags.syn,
                s.flags.fin,
                s.flags.rst,
                s.flags.psh,
                s.flags.ack,
            )
        {
            return mismatch("flags");
        }
        let rel = s.seq.wrapping_sub(our);
        if !seg.start.matches(rel)
            || !seg.len.matches(s.payload.len() as u32)
            || !seg.end.matches(rel.wrapping_add(s.payload.len() as u32))
        {
            return mismatch("sequence range");
        }
        match seg.ack {
            Some(a) if !s.flags.ack || !a.matches(s.ack.wrapping_sub(self.peer_isn)) => {
                return mismatch("ack")
            }
            None if s.flags.ack => {
                return Err(format!(
                    "the script must give `ack` for an ACK segment: got {got}"
                ))
            }
            _ => {}
        }
        if let Some(w) = seg.win {
            if !w.matches(s.win as u32) {
                return mismatch("window");
            }
        }
        if let Some(opts) = &seg.opts {
            self.match_opts(opts, &s.opts)
                .map_err(|e| format!("options: {e}: got {got}"))?;
        }
        // Payload: bytes of our stream starting at relative sequence number 1.
        if !s.payload.is_empty() {
            let off = rel.wrapping_sub(1) as usize;
            let want = self
                .written
                .get(off..off + s.payload.len())
                .ok_or("payload beyond what was written")?;
            if want != s.payload.as_slice() {
                return Err(format!(
                    "payload bytes differ from what was written at offset {off}"
                ));
            }
        }
        Ok(())
    }

    fn match_opts(&self, want: &[Opt], got: &[TcpOptionElement]) -> R<()> {
        let gw: Vec<&TcpOptionElement> = got.iter().collect();
        if want.len() != gw.len() {
            return Err(format!("expected {} options, got {}", want.len(), gw.len()));
        }
        for (w, g) in want.iter().zip(gw) {
            let ok = match (w, g) {
                (Opt::Mss(n), TcpOptionElement::MaximumSegmentSize(v)) => n.matches(*v as u32),
                (Opt::Wscale(n), TcpOptionElement::WindowScale(v)) => n.matches(*v as u32),
                (Opt::SackOk, TcpOptionElement::SelectiveAcknowledgementPermitted) => true,
                (Opt::Ts(v, e), TcpOptionElement::Timestamp(gv, ge)) => {
                    v.matches(*gv) && e.matches(*ge)
                }
                (Opt::Nop, TcpOptionElement::Noop) => true,
                (Opt::Sack(blocks), TcpOptionElement::SelectiveAcknowledgement(first, rest)) => {
                    let all: Vec<(u32, u32)> = std::iter::once(*first)
                        .chain(rest.iter().flatten().copied())
                        .collect();
                    all.len() == blocks.len()
                        && blocks.iter().zip(&all).all(|(&(l, r), &(gl, gr))| {
                            l.matches(gl.wrapping_sub(self.peer_isn))
                                && r.matches(gr.wrapping_sub(self.peer_isn))
                        })
                }
                _ => false,
            };
            if !ok {
                return Err(format!("expected {w:?}, got {g:?}"));
            }
        }
        Ok(())
    }

    fn conn(&self) -> R<TcpHandle> {
        self.conn
            .ok_or_else(|| "no connection yet (accept or connect first)".into())
    }

    fn call(&mut self, w: &[String]) -> R<()> {
        let now = self.now;
        let args: Vec<&str> = w.iter().map(String::as_str).collect();
        match args.as_slice() {
            ["listen", port, rest @ ..] => {
                let port: u16 = port.parse().map_err(|_| "bad port")?;
                let backlog = rest
                    .first()
                    .map_or(Ok(16), |b| b.parse())
                    .map_err(|_| "bad backlog")?;
                self.local_port = port;
                self.listener = Some(
                    self.stack
                        .tcp_listen(port, backlog)
                        .map_err(|e| format!("listen: {e}"))?,
                );
            }
            ["connect", port] => {
                let port: u16 = port.parse().map_err(|_| "bad port")?;
                self.peer_port = port;
                self.conn = Some(
                    self.stack
                        .tcp_connect(now, SocketAddrV4::new(PEER, port), 0)
                        .map_err(|e| format!("connect: {e}"))?,
                );
            }
            ["accept"] => {
                let l = self.listener.ok_or("accept without listen")?;
                self.conn = Some(
                    self.stack
                        .tcp_accept(l)
                        .map_err(|e| format!("accept: {e}"))?,
                );
            }
            ["accept", "EAGAIN"] => {
                let l = self.listener.ok_or("accept without listen")?;
                match self.stack.tcp_accept(l) {
                    Err(TcpError::WouldBlock) => {}
                    other => return Err(format!("accept: expected EAGAIN, got {other:?}")),
                }
            }
            ["write", n, rest @ ..] => {
                let n: usize = n.parse().map_err(|_| "bad length")?;
                let want = match rest {
                    [] => n,
                    ["->", m] => m.parse().map_err(|_| "bad length")?,
                    _ => return Err("write N [-> M]".into()),
                };
                let base = self.written.len();
                let data: Vec<u8> = (0..n).map(|i| local_byte(base + i)).collect();
                let c = self.conn()?;
                let got = match self.stack.tcp_send(now, c, &data) {
                    Ok(m) => m,
                    Err(TcpError::WouldBlock) => 0,
                    Err(e) => return Err(format!("write: {e}")),
                };
                if got != want {
                    return Err(format!("write accepted {got} bytes, expected {want}"));
                }
                self.written.extend_from_slice(&data[..got]);
            }
            ["read", what, rest @ ..] => {
                let c = self.conn()?;
                let size = match rest {
                    [] => 1 << 20,
                    ["partial"] => what.parse().map_err(|_| "read N partial")?,
                    _ => return Err("read N [partial] | EAGAIN | EOF | error".into()),
                };
                let mut buf = vec![0u8; size];
                let expect_err = |e: TcpError| match *what {
                    "ECONNRESET" => e == TcpError::ConnectionReset,
                    "ECONNREFUSED" => e == TcpError::ConnectionRefused,
                    "ETIMEDOUT" => e == TcpError::TimedOut,
                    "EAGAIN" => e == TcpError::WouldBlock,
                    _ => false,
                };
                match (*what, self.stack.tcp_recv(now, c, &mut buf)) {
                    ("EOF", Ok(0)) => {}
                    (_, Err(e)) if expect_err(e) => {}
                    (n, Ok(got)) if n.parse::<usize>().is_ok() => {
                        let n: usize = n.parse().expect("checked");
                        if got != n {
                            return Err(format!("read returned {got} bytes, expected {n}"));
                        }
                        for (i, &b) in buf[..got].iter().enumerate() {
                            if b != peer_byte(self.read_offset + i) {
                                return Err(format!(
                                    "byte {} of the peer's stream is wrong",
                                    self.read_offset + i
                                ));
                            }
                        }
                        self.read_offset += got;
                    }
                    (w, r) => return Err(format!("read: expected {w}, got {r:?}")),
                }
            }
            ["peer_port", port] => {
                // Another peer connection: its port, and ringstack's ISN on it if known (else
                // its next SYN sets it).
                self.peer_port = port.parse().map_err(|_| "bad port")?;
                self.our_isn = self.isns.get(&self.peer_port).copied();
            }
            ["state", want] => {
                let got = self
                    .stack
                    .tcp()
                    .state(self.conn()?)
                    .map_or_else(|| "gone".to_string(), |s| s.to_string());
                if got != *want {
                    return Err(format!("state is {got}, expected {want}"));
                }
            }
            ["info", field, want] => {
                let i = self
                    .stack
                    .tcp()
                    .info(self.conn()?)
                    .ok_or("no such socket")?;
                let got = match *field {
                    "cwnd" => i.cwnd.to_string(),
                    "ssthresh" => i.ssthresh.to_string(),
                    "unacked" => i.unacked.to_string(),
                    "sacked" => i.sacked.to_string(),
                    "lost" => i.lost.to_string(),
                    "backoff" => i.backoff.to_string(),
                    "in_recovery" => i.in_recovery.to_string(),
                    "reordering_seen" => i.reordering_seen.to_string(),
                    "loss_probes" => i.loss_probes.to_string(),
                    "rto_ms" => i.rto.total_millis().to_string(),
                    _ => return Err(format!("unknown info field {field}")),
                };
                if got != *want {
                    return Err(format!("info {field} is {got}, expected {want}"));
                }
            }
            ["keepalive", on @ ("on" | "off")] => {
                let c = self.conn()?;
                // The TCP layer takes a context for its readiness and counter side effects;
                // `set_keepalive` only rearms a timer, so throwaway ones do.
                let mut counters = Counters::default();
                let mut tracer = Tracer::new(0);
                let mut readiness = ReadinessQueue::default();
                let mut cx = Cx {
                    now,
                    frame: 0,
                    counters: &mut counters,
                    tracer: &mut tracer,
                    readiness: &mut readiness,
                };
                self.stack
                    .tcp_mut()
                    .set_keepalive(&mut cx, c, *on == "on")
                    .map_err(|e| format!("keepalive: {e}"))?;
            }
            ["user_timeout", ms] => {
                let c = self.conn()?;
                let t = match *ms {
                    "off" => None,
                    n => Some(Duration::from_millis(
                        n.parse().map_err(|_| "user_timeout MS|off")?,
                    )),
                };
                self.stack
                    .tcp_mut()
                    .set_user_timeout(c, t)
                    .map_err(|e| format!("user_timeout: {e}"))?;
            }
            ["shutdown"] => self
                .stack
                .tcp_shutdown(now, self.conn()?)
                .map_err(|e| format!("shutdown: {e}"))?,
            ["close"] => self
                .stack
                .tcp_close(now, self.conn()?)
                .map_err(|e| format!("close: {e}"))?,
            ["abort"] => self
                .stack
                .tcp_abort(now, self.conn()?)
                .map_err(|e| format!("abort: {e}"))?,
            [which @ ("readable" | "writable"), yes] => {
                let bit = if *which == "readable" {
                    Readiness::READABLE
                } else {
                    Readiness::WRITABLE
                };
                let h = match (self.conn, self.listener) {
                    (Some(c), _) => c,
                    (None, Some(l)) => l,
                    _ => return Err("no socket".into()),
                };
                let r = self.stack.readiness(SocketHandle::Tcp(h));
                if r.contains(bit) != (*yes == "yes") {
                    return Err(format!("readiness is {r:?}"));
                }
            }
            ["counter", name, n] => {
                let c = Counter::ALL
                    .iter()
                    .find(|c| c.name() == *name)
                    .ok_or(format!("no counter {name}"))?;
                let got = self.stack.counters().get(*c);
                if got.to_string() != *n {
                    return Err(format!("{name} is {got}"));
                }
            }
            ["drop", name, n] => {
                let r = DropReason::ALL
                    .iter()
                    .find(|r| r.name() == *name)
                    .ok_or(format!("no drop reason {name}"))?;
                let got = self.stack.counters().drops(*r);
                if got.to_string() != *n {
                    return Err(format!("Drop.{name} is {got}"));
                }
            }
            _ => return Err(format!("unknown call {w:?}")),
        }
        self.drain()
    }
}

/// Parses and runs a script. The error names the failing line.
pub fn run(script: &str) -> Result<(), ScriptError> {
    let mut config = Config::new(LOCAL_MAC, LOCAL, 24);
    config.arp.gratuitous = false;
    let mut tolerance = Duration::from_millis(5);
    let mut peer_isn = 1_000_000u32;
    let mut peer_port = 50_000u16;
    let mut events = Vec::new();
    let mut prev = Duration::ZERO;
    for (i, raw) in script.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let fail = |message: String| ScriptError {
            line: i + 1,
            text: raw.to_string(),
            message,
        };
        if let Some(rest) = line.strip_prefix("config ") {
            for kv in rest.split_whitespace() {
                let (k, v) = kv
                    .split_once('=')
                    .ok_or_else(|| fail(format!("expected KEY=VALUE, got {kv:?}")))?;
                let n: u64 = v.parse().map_err(|_| fail(format!("bad value {v:?}")))?;
                match k {
                    "mtu" => config.mtu = n as usize,
                    "rcv_buf" => config.tcp.rcv_buf = n as usize,
                    "snd_buf" => config.tcp.snd_buf = n as usize,
                    "min_rto" => config.tcp.min_rto = Duration::from_millis(n),
                    "time_wait" => config.tcp.time_wait = Duration::from_millis(n),
                    "initial_rto" => config.tcp.initial_rto = Duration::from_millis(n),
                    "delayed_ack" => config.tcp.delayed_ack = Duration::from_millis(n),
                    "nodelay" => config.tcp.nodelay = n != 0,
                    "window_scaling" => config.tcp.window_scaling = n != 0,
                    "timestamps" => config.tcp.timestamps = n != 0,
                    "sack" => config.tcp.sack = n != 0,
                    "syn_cookies" => config.tcp.syn_cookies = n != 0,
                    "syn_backlog" => config.tcp.syn_backlog = n as usize,
                    "syn_retries" => config.tcp.syn_retries = n as u32,
                    "synack_retries" => config.tcp.synack_retries = n as u32,
                    "fin_timeout" => config.tcp.fin_timeout = Duration::from_millis(n),
                    "max_rto" => config.tcp.max_rto = Duration::from_millis(n),
                    "challenge_ack_limit" => config.tcp.challenge_ack_limit = n as u32,
                    "max_retries" => config.tcp.max_retries = n as u32,
                    "initial_window" => config.tcp.initial_window = n as u32,
                    "keepalive_idle" => config.tcp.keepalive_idle = Duration::from_millis(n),
                    "keepalive_interval" => {
                        config.tcp.keepalive_interval = Duration::from_millis(n)
                    }
                    "keepalive_probes" => config.tcp.keepalive_probes = n as u32,
                    "tolerance" => tolerance = Duration::from_millis(n),
                    "peer_isn" => peer_isn = n as u32,
                    "peer_port" => peer_port = n as u16,
                    _ => return Err(fail(format!("unknown config key {k:?}"))),
                }
            }
            continue;
        }
        let (t, rest) = line
            .split_once(char::is_whitespace)
            .ok_or_else(|| fail("expected TIME EVENT".into()))?;
        let when = parse_time(t, prev).map_err(fail)?;
        if let When::At(d) = when {
            prev = d;
        }
        let rest = rest.trim();
        let ev = if let Some(s) = rest.strip_prefix('<') {
            Event::Inject(parse_seg(s).map_err(fail)?)
        } else if let Some(s) = rest.strip_prefix('>') {
            Event::Expect(parse_seg(s).map_err(fail)?)
        } else {
            Event::Call(rest.split_whitespace().map(String::from).collect())
        };
        if matches!(when, When::Any) && !matches!(ev, Event::Expect(_)) {
            return Err(fail("`*` time is only for `>` lines".into()));
        }
        events.push((i + 1, raw.to_string(), when, ev));
    }
    let mut run = Run::new(config, peer_isn, peer_port, tolerance);
    for (line, text, when, ev) in events {
        let r = (|| -> R<()> {
            match &ev {
                Event::Expect(seg) => run.expect(when, seg),
                other => {
                    let When::At(t) = when else {
                        unreachable!("checked at parse time")
                    };
                    run.advance_to(Instant::from_micros(t.total_micros() as i64))?;
                    run.no_unexpected()?;
                    match other {
                        Event::Inject(seg) => run.inject(seg),
                        Event::Call(words) => run.call(words),
                        Event::Expect(_) => unreachable!(),
                    }
                }
            }
        })();
        r.map_err(|message| ScriptError {
            line,
            text,
            message,
        })?;
    }
    run.no_unexpected().map_err(|message| ScriptError {
        line: script.lines().count(),
        text: "(end of script)".into(),
        message,
    })
}
