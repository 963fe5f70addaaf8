//! Segment generation: what a connection sends next (RFC 9293 §3.8.6 flow control and SWS
//! avoidance, Nagle per RFC 9293 §3.7.4 in Minshall's variant, RFC 5681/6582/6675 retransmission
//! choice, RFC 3042 limited transmit), and writing it on the wire.

use super::connection::{Env, Tcb};
use super::options::{SackBlock, TcpOptions, MAX_SACK_BLOCKS};
use super::segment::{fill_checksum, Flags, SegmentHeader, HEADER_LEN};
use super::seq::SeqNum;
use super::state::State;
use crate::counters::Counter;
use crate::time::Duration;
use crate::trace::{Direction, Layer, Verdict};

/// What to put in the next segment.
#[derive(Clone, Copy, Debug)]
struct Plan {
    seq: SeqNum,
    len: u32,
    flags: Flags,
    /// Some of it was sent before.
    retransmit: bool,
    /// It starts at SND.NXT (advance SND.NXT past it).
    advances_nxt: bool,
}

impl Tcb {
    /// Writes the next segment this connection wants to send into `buf` (TCP header + data,
    /// checksum filled); returns its length, or `None` when there is nothing to send now.
    pub(crate) fn poll_segment(&mut self, env: &mut Env<'_, '_>, buf: &mut [u8]) -> Option<usize> {
        if buf.len() < HEADER_LEN + 40 + 1 {
            return None;
        }
        let now = env.now();
        let mut opts = TcpOptions::default();
        let plan = match self.state {
            State::Closed | State::Listen => return None,
            State::SynSent | State::SynReceived => {
                if self.snd_nxt == self.iss {
                    self.syn_options(env, &mut opts);
                    let mut flags = Flags::SYN;
                    if self.state == State::SynReceived {
                        flags |= Flags::ACK;
                    }
                    Plan {
                        seq: self.iss,
                        len: 0,
                        flags,
                        retransmit: self.snd_max != self.iss,
                        advances_nxt: true,
                    }
                } else if self.ack_now && self.state == State::SynReceived {
                    self.data_options(now, &mut opts);
                    Plan {
                        seq: self.snd_nxt,
                        len: 0,
                        flags: Flags::ACK,
                        retransmit: false,
                        advances_nxt: false,
                    }
                } else {
                    return None;
                }
            }
            _ => {
                self.data_options(now, &mut opts);
                let max_payload = self.max_payload(&opts, buf.len());
                match self.plan_data(max_payload) {
                    Some(p) => p,
                    None => {
                        self.arm_persist(env);
                        return None;
                    }
                }
            }
        };
        let syn_or_fin = plan.flags.has(Flags::SYN) as u32 + plan.flags.has(Flags::FIN) as u32;
        let hdr = SegmentHeader {
            src_port: self.local.port(),
            dst_port: self.remote.port(),
            seq: plan.seq,
            ack: if plan.flags.has(Flags::ACK) {
                self.rcv_nxt
            } else {
                SeqNum(0)
            },
            flags: plan.flags,
            window: if plan.flags.has(Flags::SYN) {
                self.syn_window()
            } else {
                self.window_field()
            },
            urgent: 0,
            options: opts,
        };
        if plan.flags.has(Flags::SYN) && plan.flags.has(Flags::ACK) {
            self.rcv_adv = self.rcv_nxt + hdr.window as u32;
        } else if plan.flags.has(Flags::SYN) {
            self.rcv_adv = SeqNum(0);
        }
        let hlen = hdr.emit(buf);
        let len = plan.len as usize;
        if len > 0 {
            let off = plan.seq.since(self.snd_una) as usize;
            let n = self.snd_buf.read_at(off, &mut buf[hlen..hlen + len]);
            debug_assert_eq!(n, len);
        }
        let total = hlen + len;
        fill_checksum(*self.local.ip(), *self.remote.ip(), &mut buf[..total]);
        if len > 0 {
            // Copy accounting: bytes below SND.MAX were sent before (a go-back-N segment may
            // run on past SND.MAX into new data).
            let resent = if plan.seq < self.snd_max {
                (self.snd_max.since(plan.seq) as usize).min(len)
            } else {
                0
            };
            env.cx
                .counters
                .add(Counter::CopySndBufToFrameRetrans, resent as u64);
            env.cx
                .counters
                .add(Counter::CopySndBufToFrame, (len - resent) as u64);
        }

        // Bookkeeping.
        let end = plan.seq + plan.len + syn_or_fin;
        if plan.advances_nxt {
            self.snd_nxt = self.snd_nxt.max_seq(end);
        }
        if end > self.snd_max {
            self.snd_max = end;
        }
        if plan.flags.has(Flags::FIN) {
            self.fin_seq = Some(plan.seq + plan.len);
        }
        if plan.len > 0 || syn_or_fin > 0 {
            if self.timers.retransmit.is_none() {
                self.timers.retransmit = Some(self.rto_deadline(now));
            }
            self.timers.persist = None;
            if plan.retransmit {
                self.stats.retrans_segs += 1;
                self.stats.bytes_retrans += plan.len as u64;
                env.cx.inc(Counter::TcpRetransSegs);
                self.rtt_timing = None; // Karn
            } else if !self.ts_enabled && self.rtt_timing.is_none() {
                self.rtt_timing = Some((end, now));
            }
            if !plan.retransmit && plan.len > 0 && plan.len < self.smss() {
                self.snd_sml = end;
            }
            if plan.len > 0 {
                self.stats.data_segs_out += 1;
                self.stats.bytes_sent += plan.len as u64;
            }
        }
        if plan.flags.has(Flags::ACK) {
            self.dup_acks_owed = self.dup_acks_owed.saturating_sub(1);
            self.ack_now = self.dup_acks_owed > 0;
            self.timers.delayed_ack = None;
            self.rcv_unacked = 0;
            self.last_ack_sent = self.rcv_nxt;
        }
        self.probe_now = false;
        self.force_send = false;
        self.stats.segs_out += 1;
        env.cx.inc(Counter::TcpOutSegs);
        env.cx
            .trace(Direction::Tx, Layer::Tcp, Verdict::Emit, total, len, || {
                hdr.summary(len)
            });
        Some(total)
    }

    /// Options of our SYN or SYN-ACK (RFC 9293 §3.7.1, RFC 7323, RFC 2018). A SYN-ACK only
    /// carries what the peer's SYN offered.
    fn syn_options(&self, env: &Env<'_, '_>, o: &mut TcpOptions) {
        let cfg = env.cfg;
        o.mss = Some(self.pmtu_mss);
        let answering = self.state == State::SynReceived;
        if cfg.window_scaling && (!answering || self.ws_enabled) {
            o.wscale = Some(self.rcv_wscale);
        }
        if cfg.sack && (!answering || self.sack_enabled) {
            o.sack_permitted = true;
        }
        if cfg.timestamps && (!answering || self.ts_enabled) {
            let ecr = if answering { self.ts_recent } else { 0 };
            o.timestamps = Some((self.ts_now(env.now()), ecr));
        }
    }

    /// Options of a segment after the handshake: timestamps and SACK blocks.
    fn data_options(&self, now: crate::time::Instant, o: &mut TcpOptions) {
        if self.ts_enabled {
            o.timestamps = Some((self.ts_now(now), self.ts_recent));
        }
        if self.sack_enabled && !self.reasm.is_empty() {
            let max = if self.ts_enabled { 3 } else { MAX_SACK_BLOCKS };
            let mut blocks = [SackBlock::default(); MAX_SACK_BLOCKS];
            let n = self.reasm.sack_blocks(&mut blocks, max);
            o.sack_blocks = blocks;
            o.sack_count = n as u8;
        }
    }

    /// RFC 6691: data plus options must not exceed the peer's MSS; and the buffer bounds it.
    fn max_payload(&self, opts: &TcpOptions, buf_len: usize) -> u32 {
        let base = self.peer_mss.min(self.pmtu_mss) as usize;
        let by_mss = base.saturating_sub(opts.len());
        let by_buf = buf_len.saturating_sub(HEADER_LEN + opts.len());
        by_mss.min(by_buf).max(1) as u32
    }

    /// The window field to advertise, applying receiver SWS avoidance (RFC 9293 §3.8.6.2.2) and
    /// never moving the right edge to the left (§3.8.6.2.2 / RFC 7323 §2.4) — except by less
    /// than one unit of the window scale, when rounding the field up to keep the old edge would
    /// offer space the receive buffer does not have (RFC 7323 §2.4 and Appendix F allow that
    /// retraction; a peer that sends into it has its data trimmed and retransmits it).
    ///
    /// The field never promises more than `rcv_buf.free()`: with a shift of 3 and RCV.NXT moving
    /// by amounts that are not multiples of 8, rounding up used to advertise up to 7 bytes past
    /// a full buffer. A peer that filled that phantom window (Linux does, to the byte) had its
    /// data dropped and was shown the same 8-byte window again, forever, until the application
    /// read.
    pub(crate) fn window_field(&mut self) -> u16 {
        let ws = self.rcv_wscale as u32;
        let max_wnd = 65535u32 << ws;
        let free = self.rcv_buf.free().min(u32::MAX as usize) as u32;
        let buf_edge = self.rcv_nxt + free;
        let mut right = self.rcv_nxt + free.min(max_wnd);
        let thresh = ((self.rcv_buf.capacity() / 2) as u32).min(self.rcv_mss.max(536));
        if right > self.rcv_adv && right.since(self.rcv_adv) < thresh {
            right = self.rcv_adv;
        }
        if right < self.rcv_adv {
            right = self.rcv_adv;
        }
        let wnd = right.since(self.rcv_nxt);
        let mut field = (wnd >> ws).min(65535);
        if self.rcv_nxt + (field << ws) < self.rcv_adv
            && field < 65535
            && self.rcv_nxt + ((field + 1) << ws) <= buf_edge
        {
            field += 1;
        }
        let adv = self.rcv_nxt + (field << ws);
        if adv > self.rcv_adv {
            self.rcv_adv = adv;
        }
        field as u16
    }

    /// Chooses the next segment of an established connection.
    fn plan_data(&mut self, max_payload: u32) -> Option<Plan> {
        let ack = Flags::ACK;
        if self.probe_now {
            // Zero-window probe / keepalive: an old sequence number forces an ACK (RFC 1122
            // §4.2.3.6; Linux's tcp_xmit_probe_skb).
            return Some(Plan {
                seq: self.snd_una - 1,
                len: 0,
                flags: ack,
                retransmit: false,
                advances_nxt: false,
            });
        }
        let may_send_data = matches!(
            self.state,
            State::Established
                | State::CloseWait
                | State::FinWait1
                | State::Closing
                | State::LastAck
        );
        if may_send_data {
            if let Some(p) = self.plan_retransmission(max_payload) {
                return Some(p);
            }
            if let Some(p) = self.plan_new_data(max_payload) {
                return Some(p);
            }
        }
        if self.ack_now {
            // SND.MAX, not SND.NXT: after a go-back-N rewind SND.NXT may lie below what the
            // peer already received, and an ACK with an old sequence number would be dropped
            // unprocessed (RFC 9293 §3.10.7.4 first check) — both sides would then stall.
            return Some(Plan {
                seq: self.snd_max,
                len: 0,
                flags: ack,
                retransmit: false,
                advances_nxt: false,
            });
        }
        None
    }

    /// Fast retransmit / NewReno partial-ACK retransmission, then RFC 6675 NextSeg() rule 1.
    fn plan_retransmission(&mut self, max_payload: u32) -> Option<Plan> {
        let data_end = self.data_end();
        if let Some(r) = self.rexmit_next.take() {
            if r >= self.snd_una && r < self.snd_max {
                let avail = data_end.since(r).min(self.snd_max.since(r));
                let mut len = avail.min(max_payload);
                let mut r = r;
                if self.sack_enabled {
                    // RFC 6675 §5 (4.2) / RFC 2018 §5: resend the first hole only, never
                    // SACKed bytes.
                    match self.scoreboard.first_unsacked(r, self.snd_max, len) {
                        Some((s, n)) => {
                            r = s;
                            len = n.min(data_end.since(s));
                        }
                        None => len = 0,
                    }
                }
                let fin = matches!(self.fin_seq, Some(f) if r + len == f);
                if len > 0 || fin {
                    self.rexmit_high = self.rexmit_high.max_seq(r + len);
                    return Some(self.data_plan(r, len, fin, true, false, data_end));
                }
            }
        }
        if self.in_recovery && self.sack_enabled && self.pipe() < self.cc_cwnd() {
            let lost = self.scoreboard.lost_boundary(self.smss())?;
            let from = self.rexmit_high.max_seq(self.snd_una);
            let (seq, hole) = self.scoreboard.next_hole(from, lost, max_payload)?;
            let len = hole.min(data_end.since(seq));
            if len > 0 {
                self.rexmit_high = seq + len;
                return Some(self.data_plan(seq, len, false, true, false, data_end));
            }
        }
        None
    }

    fn cc_cwnd(&self) -> u32 {
        use super::congestion::CongestionControl;
        self.cc.cwnd()
    }

    /// New data (or go-back-N retransmission after an RTO) from SND.NXT, and our FIN.
    fn plan_new_data(&mut self, max_payload: u32) -> Option<Plan> {
        if self.sack_enabled && self.snd_nxt < self.snd_max {
            while let Some(e) = self.scoreboard.sacked_end(self.snd_nxt) {
                self.snd_nxt = e;
            }
        }
        let nxt = self.snd_nxt;
        let data_end = self.data_end();
        let avail = data_end.since(nxt);
        let mut wnd_room = (self.snd_una + self.snd_wnd).since(nxt);
        if nxt == self.snd_una && nxt < self.snd_max {
            // RTO retransmission of the head (RFC 6298 §5.4): send it even beyond a (zero)
            // window, as Linux does; otherwise a lost window-opening ACK would leave nothing to
            // elicit a new one. Only bytes sent before (below SND.MAX, so within a window the
            // peer once offered) may go past SND.UNA + SND.WND: new data never does
            // (RFC 9293 §3.8.6).
            wnd_room = wnd_room.max(max_payload.min(self.snd_max.since(nxt)));
        }
        let mss = self.smss();
        let mut allowance = self.cc_cwnd();
        if !self.in_recovery && (1..3).contains(&self.dupacks) {
            allowance = allowance.saturating_add(self.dupacks * mss); // RFC 3042
        }
        let cwnd_room = allowance.saturating_sub(self.pipe());
        let is_rtx = nxt < self.snd_max;
        let mut len = avail.min(wnd_room).min(cwnd_room).min(max_payload);
        if is_rtx {
            if let Some((_, hole)) = self.scoreboard.next_hole(nxt, self.snd_max, len) {
                len = len.min(hole);
            }
        }
        let fin_pending = self.fin_queued
            && match self.fin_seq {
                None => true,
                Some(f) => nxt <= f && is_rtx,
            };
        let mut fin = fin_pending && nxt + len == data_end && (is_rtx || wnd_room > len);
        if len > 0 && !is_rtx && !fin && !self.force_send {
            // Sender SWS avoidance (RFC 9293 §3.8.6.2.1) with Nagle (Minshall's variant).
            let full = len >= mss.min(max_payload);
            let all_queued = len == avail;
            let nagle_ok = self.nodelay || self.snd_sml <= self.snd_una;
            let half_wnd = self.max_snd_wnd > 0 && len >= self.max_snd_wnd / 2;
            if !(full || (all_queued && nagle_ok) || half_wnd) {
                len = 0;
                fin = false;
            }
        }
        if len == 0 && !fin {
            return None;
        }
        Some(self.data_plan(nxt, len, fin, is_rtx, true, data_end))
    }

    fn data_plan(
        &self,
        seq: SeqNum,
        len: u32,
        fin: bool,
        retransmit: bool,
        advances_nxt: bool,
        data_end: SeqNum,
    ) -> Plan {
        let mut flags = Flags::ACK;
        if len > 0 && seq + len == data_end {
            flags |= Flags::PSH;
        }
        if fin {
            flags |= Flags::FIN;
        }
        Plan {
            seq,
            len,
            flags,
            retransmit,
            advances_nxt,
        }
    }

    /// Arms the persist timer when data waits for a window and nothing is in flight
    /// (RFC 9293 §3.8.6.1).
    fn arm_persist(&mut self, env: &Env<'_, '_>) {
        let waiting = self.data_end() > self.snd_nxt || (self.fin_queued && self.fin_seq.is_none());
        if waiting
            && self.snd_max == self.snd_una
            && self.timers.retransmit.is_none()
            && self.timers.persist.is_none()
            && matches!(
                self.state,
                State::Established
                    | State::CloseWait
                    | State::FinWait1
                    | State::Closing
                    | State::LastAck
            )
        {
            let base = self.rtt.rto().total_micros();
            let backed = base.saturating_mul(1u64 << self.persist_backoff.min(16));
            let d = Duration::from_micros(backed.min(env.cfg.max_rto.total_micros()));
            self.timers.persist = Some(env.now() + d);
        }
    }
}
