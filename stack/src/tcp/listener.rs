//! Passive open (RFC 9293 §3.10.7.2, SEGMENT ARRIVES in LISTEN): the SYN backlog of half-open
//! connections, the bounded accept queue, and SYN cookies when the backlog is full.

use core::net::SocketAddrV4;
use std::collections::VecDeque;

use super::connection::{Env, Tcb};
use super::options::TcpOptions;
use super::reset::RstSpec;
use super::segment::{fill_checksum, Flags, Segment, SegmentHeader};
use super::seq::SeqNum;
use super::state::State;
use super::{isn, syn_cookie, Socket, SocketOptions, TcpLayer, TcpTransmit};
use crate::counters::{Counter, DropReason};
use crate::cx::Cx;
use crate::socket::TcpHandle;
use crate::trace::{Direction, Layer, Verdict};

/// Most cookie SYN-ACKs waiting to be sent.
const MAX_PENDING_COOKIES: usize = 256;

/// A listening socket.
#[derive(Debug)]
pub(super) struct Listener {
    /// The address it listens on (0.0.0.0 = any of ours).
    pub local: SocketAddrV4,
    /// Accept queue bound.
    pub backlog: usize,
    /// SYN backlog bound (half-open connections).
    pub syn_backlog: usize,
    /// Half-open connections (children in SYN-RECEIVED).
    pub syn_queue_len: usize,
    /// Established connections waiting for `accept`.
    pub accept_queue: VecDeque<TcpHandle>,
    /// Options every accepted connection starts with.
    pub options: SocketOptions,
}

impl Listener {
    pub fn new(
        local: SocketAddrV4,
        backlog: usize,
        syn_backlog: usize,
        options: SocketOptions,
    ) -> Listener {
        Listener {
            local,
            backlog,
            syn_backlog: syn_backlog.max(1),
            syn_queue_len: 0,
            accept_queue: VecDeque::new(),
            options,
        }
    }
}

/// A stateless SYN-ACK carrying a SYN cookie.
#[derive(Clone, Copy, Debug)]
pub(super) struct CookieSynAck {
    local: SocketAddrV4,
    remote: SocketAddrV4,
    seq: SeqNum,
    ack: SeqNum,
    mss: u16,
    window: u16,
}

/// Writes a cookie SYN-ACK (MSS option only: see `syn_cookie.rs`).
pub(super) fn emit_cookie_syn_ack(
    cx: &mut Cx<'_>,
    c: &CookieSynAck,
    buf: &mut [u8],
) -> TcpTransmit {
    let hdr = SegmentHeader {
        src_port: c.local.port(),
        dst_port: c.remote.port(),
        seq: c.seq,
        ack: c.ack,
        flags: Flags::SYN | Flags::ACK,
        window: c.window,
        urgent: 0,
        options: TcpOptions {
            mss: Some(c.mss),
            ..Default::default()
        },
    };
    let len = hdr.emit(buf);
    fill_checksum(*c.local.ip(), *c.remote.ip(), &mut buf[..len]);
    cx.inc(Counter::TcpOutSegs);
    cx.trace(Direction::Tx, Layer::Tcp, Verdict::Reply, len, 0, || {
        format!("{} (syn cookie)", hdr.summary(0))
    });
    TcpTransmit {
        src: *c.local.ip(),
        dst: *c.remote.ip(),
        len,
    }
}

impl TcpLayer {
    /// RFC 9293 §3.10.7.2: a segment for listener `lh` (no connection matched).
    pub(super) fn listener_segment(
        &mut self,
        cx: &mut Cx<'_>,
        lh: TcpHandle,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        seg: &Segment<'_>,
    ) {
        let h = &seg.hdr;
        let plen = seg.payload.len();
        let Some(Socket::Listener(l)) = self.sockets.get(lh) else {
            return;
        };
        // First, check for a RST: ignore it.
        if h.flags.has(Flags::RST) {
            cx.drop(
                Direction::Rx,
                Layer::Tcp,
                DropReason::TcpNoSocket,
                plen,
                || h.summary(plen),
            );
            return;
        }
        // Second, check for an ACK: a SYN cookie, or "<SEQ=SEG.ACK><CTL=RST>".
        if h.flags.has(Flags::ACK) {
            if !h.flags.has(Flags::SYN) && self.config.syn_cookies {
                if let Some(mss) =
                    syn_cookie::check(&self.cookie_secret, local, remote, h.seq, h.ack, cx.now)
                {
                    cx.inc(Counter::TcpExtSyncookiesRecv);
                    if l.accept_queue.len() >= l.backlog {
                        cx.inc(Counter::TcpExtListenOverflows);
                        cx.drop(
                            Direction::Rx,
                            Layer::Tcp,
                            DropReason::TcpAcceptQueueFull,
                            plen,
                            || h.summary(plen),
                        );
                        return;
                    }
                    self.cookie_connection(cx, lh, local, remote, seg, mss);
                    return;
                }
                cx.inc(Counter::TcpExtSyncookiesFailed);
                cx.drop(
                    Direction::Rx,
                    Layer::Tcp,
                    DropReason::TcpBadSynCookie,
                    plen,
                    || h.summary(plen),
                );
            } else {
                cx.drop(
                    Direction::Rx,
                    Layer::Tcp,
                    DropReason::TcpNoSocket,
                    plen,
                    || h.summary(plen),
                );
            }
            if self.rsts.push(RstSpec {
                local,
                remote,
                seq: h.ack,
                ack: None,
            }) {
                cx.inc(Counter::TcpOutRsts);
            }
            return;
        }
        // Third, check for a SYN.
        if !h.flags.has(Flags::SYN) {
            cx.drop(
                Direction::Rx,
                Layer::Tcp,
                DropReason::TcpBadFlags,
                plen,
                || h.summary(plen),
            );
            return;
        }
        if l.accept_queue.len() >= l.backlog {
            cx.inc(Counter::TcpExtListenOverflows);
            cx.drop(
                Direction::Rx,
                Layer::Tcp,
                DropReason::TcpAcceptQueueFull,
                plen,
                || h.summary(plen),
            );
            return;
        }
        if l.syn_queue_len >= l.syn_backlog || self.sockets.len() >= self.config.max_sockets {
            if self.config.syn_cookies && self.cookies.len() < MAX_PENDING_COOKIES {
                let peer_mss = h.options.mss.unwrap_or(536);
                let (iss, mss) =
                    syn_cookie::make(&self.cookie_secret, local, remote, h.seq, peer_mss, cx.now);
                let window = self.config.rcv_buf.min(65535) as u16;
                let mss = mss.min(self.config.mtu.saturating_sub(40).min(65535) as u16);
                self.cookies.push_back(CookieSynAck {
                    local,
                    remote,
                    seq: iss,
                    ack: h.seq + 1,
                    mss,
                    window,
                });
                cx.inc(Counter::TcpExtSyncookiesSent);
                cx.trace(Direction::Rx, Layer::Tcp, Verdict::Reply, plen, 0, || {
                    format!("{} (answered by syn cookie)", h.summary(plen))
                });
            } else {
                let reason = if self.sockets.len() >= self.config.max_sockets {
                    DropReason::TcpSocketLimit
                } else {
                    DropReason::TcpSynBacklogFull
                };
                cx.drop(Direction::Rx, Layer::Tcp, reason, plen, || h.summary(plen));
            }
            return;
        }
        cx.trace(Direction::Rx, Layer::Tcp, Verdict::Pass, plen, 0, || {
            format!("{} LISTEN", h.summary(plen))
        });
        let iss = isn::initial_sequence_number(&self.isn_secret, local, remote, cx.now);
        let ts_offset = self.ts_secret.hash_tuple(local, remote, 0) as u32;
        let cfg = &self.config;
        let now = cx.now;
        let opts = l.options;
        let child = self.sockets.insert_with_key(|ch| {
            let mut t = Tcb::new(ch, cfg, local, remote, iss, ts_offset, now);
            t.passive = true;
            t.parent = Some(lh);
            t.apply_socket_options(cfg, &opts, now);
            t.apply_syn_options(cfg, &h.options, now);
            t.irs = h.seq;
            t.rcv_nxt = h.seq + 1;
            t.last_ack_sent = t.rcv_nxt;
            // The window our SYN-ACK will offer (RFC 9293 §3.10.7.2): RCV.WND is defined from
            // the moment the SYN is accepted, not only once the SYN-ACK is built.
            t.rcv_adv = t.rcv_nxt + t.syn_window() as u32;
            t.snd_wnd = h.window as u32;
            t.max_snd_wnd = t.snd_wnd;
            t.snd_wl1 = h.seq;
            t.state = State::SynReceived;
            Socket::Conn(Box::new(t))
        });
        if let Some(Socket::Listener(l)) = self.sockets.get_mut(lh) {
            l.syn_queue_len += 1;
        }
        self.conns.insert((local, remote), child);
        cx.inc(Counter::TcpPassiveOpens);
        self.settle(cx, child);
    }

    /// The ACK of a cookie SYN-ACK: build the connection directly in ESTABLISHED.
    fn cookie_connection(
        &mut self,
        cx: &mut Cx<'_>,
        lh: TcpHandle,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        seg: &Segment<'_>,
        mss: u16,
    ) {
        let h = &seg.hdr;
        let cfg = &self.config;
        let now = cx.now;
        let iss = h.ack - 1;
        let opts = match self.sockets.get(lh) {
            Some(Socket::Listener(l)) => l.options,
            _ => SocketOptions::default(),
        };
        let child = self.sockets.insert_with_key(|ch| {
            let mut t = Tcb::new(ch, cfg, local, remote, iss, 0, now);
            t.passive = true;
            t.parent = Some(lh);
            t.apply_socket_options(cfg, &opts, now);
            t.apply_syn_options(
                cfg,
                &TcpOptions {
                    mss: Some(mss),
                    ..Default::default()
                },
                now,
            );
            t.irs = h.seq - 1;
            t.rcv_nxt = h.seq;
            t.last_ack_sent = t.rcv_nxt;
            t.rcv_adv = t.rcv_nxt + t.syn_window() as u32;
            t.snd_una = h.ack;
            t.snd_nxt = h.ack;
            t.snd_max = h.ack;
            t.snd_sml = h.ack;
            t.recover = h.ack;
            t.rexmit_high = h.ack;
            t.snd_wnd = h.window as u32;
            t.max_snd_wnd = t.snd_wnd;
            t.snd_wl1 = h.seq;
            t.snd_wl2 = h.ack;
            Socket::Conn(Box::new(t))
        });
        self.conns.insert((local, remote), child);
        cx.inc(Counter::TcpPassiveOpens);
        if let Some(Socket::Conn(t)) = self.sockets.get_mut(child) {
            t.set_state(cx, State::Established);
            t.in_accept_queue = true;
        }
        if let Some(Socket::Listener(l)) = self.sockets.get_mut(lh) {
            l.accept_queue.push_back(child);
        }
        cx.notify(lh);
        // The ACK may carry data (or a FIN): process it as an ESTABLISHED segment.
        if let Some(Socket::Conn(t)) = self.sockets.get_mut(child) {
            let mut env = Env {
                cx,
                cfg: &self.config,
                rsts: &mut self.rsts,
                challenge: &mut self.challenge,
            };
            t.on_segment(&mut env, seg);
        }
        self.settle(cx, child);
    }

    /// A child finished its handshake: move it to the accept queue.
    pub(super) fn child_established(&mut self, cx: &mut Cx<'_>, h: TcpHandle) {
        let Some(Socket::Conn(t)) = self.sockets.get_mut(h) else {
            return;
        };
        let Some(lh) = t.parent else { return };
        match self.sockets.get_mut(lh) {
            Some(Socket::Listener(l)) => {
                l.syn_queue_len = l.syn_queue_len.saturating_sub(1);
                l.accept_queue.push_back(h);
                cx.notify(lh);
                if let Some(Socket::Conn(t)) = self.sockets.get_mut(h) {
                    t.in_accept_queue = true;
                }
            }
            _ => {
                // The listener is gone: nobody will accept this connection.
                if let Some(Socket::Conn(t)) = self.sockets.get_mut(h) {
                    t.app_closed = true;
                    let mut env = Env {
                        cx,
                        cfg: &self.config,
                        rsts: &mut self.rsts,
                        challenge: &mut self.challenge,
                    };
                    t.abort(&mut env);
                }
            }
        }
    }

    /// Closes listener `lh`: its half-open and unaccepted connections are reset.
    pub(super) fn close_listener(&mut self, cx: &mut Cx<'_>, lh: TcpHandle) {
        let Some(Socket::Listener(l)) = self.sockets.remove(lh) else {
            return;
        };
        if self.listeners.get(&l.local) == Some(&lh) {
            self.listeners.remove(&l.local);
        }
        let children: Vec<TcpHandle> = self
            .sockets
            .iter()
            .filter_map(|(h, s)| match s {
                Socket::Conn(t) if t.parent == Some(lh) => Some(h),
                _ => None,
            })
            .collect();
        for h in children {
            if let Some(Socket::Conn(t)) = self.sockets.get_mut(h) {
                t.app_closed = true;
                t.parent = None;
                t.in_accept_queue = false;
                let mut env = Env {
                    cx,
                    cfg: &self.config,
                    rsts: &mut self.rsts,
                    challenge: &mut self.challenge,
                };
                t.abort(&mut env);
            }
            self.settle(cx, h);
        }
        cx.notify(lh);
    }
}
