//! The per-connection timers (RFC 9293 §3.8, RFC 6298, RFC 1122 §4.2.2.17 and §4.2.3.6).
//!
//! Each timer is an optional deadline; the connection's next wake-up is the earliest of them.
//! What happens when each one fires is in `connection.rs` (`Tcb::on_timer`).

use super::congestion::CongestionControl;
use super::connection::{Env, Tcb};
use super::state::State;
use super::TcpError;
use crate::counters::Counter;
use crate::time::{Duration, Instant};

/// Which timer fired.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimerKind {
    /// Retransmission timeout (also SYN / SYN-ACK retransmission). RFC 6298.
    Retransmit,
    /// Persist: zero-window probe or SWS override. RFC 9293 §3.8.6.1.
    Persist,
    /// Delayed ACK. RFC 9293 §3.8.6.3, RFC 1122 §4.2.3.2.
    DelayedAck,
    /// Keepalive. RFC 1122 §4.2.3.6.
    Keepalive,
    /// TIME-WAIT (2*MSL), or the FIN-WAIT-2 timeout of an orphaned connection.
    Linger,
    /// Tail loss probe timeout (PTO). RFC 8985 §7.
    LossProbe,
    /// RACK reordering timer: look again for segments that were not yet late enough to be
    /// deemed lost. RFC 8985 §6.2 step 5.
    Reorder,
}

/// All deadlines of one connection.
#[derive(Clone, Copy, Debug, Default)]
pub struct Timers {
    /// Retransmission deadline.
    pub retransmit: Option<Instant>,
    /// Persist deadline.
    pub persist: Option<Instant>,
    /// Delayed ACK deadline.
    pub delayed_ack: Option<Instant>,
    /// Keepalive deadline.
    pub keepalive: Option<Instant>,
    /// TIME-WAIT / FIN-WAIT-2 deadline.
    pub linger: Option<Instant>,
    /// Probe timeout deadline (armed alongside the retransmission timer, never after it).
    pub loss_probe: Option<Instant>,
    /// RACK reordering deadline.
    pub reorder: Option<Instant>,
}

impl Timers {
    /// The earliest deadline.
    ///
    /// Runs after every segment in and out, so it is written to compile to a branch-free
    /// minimum over the seven slots (an unset one counts as the latest possible time) rather
    /// than an iterator chain that tests each slot.
    #[inline]
    pub fn next(&self) -> Option<Instant> {
        let slots = [
            self.retransmit,
            self.persist,
            self.delayed_ack,
            self.keepalive,
            self.linger,
            self.loss_probe,
            self.reorder,
        ];
        let mut any = false;
        let mut min = i64::MAX;
        for t in slots {
            any |= t.is_some();
            min = min.min(t.map_or(i64::MAX, |t| t.total_micros()));
        }
        any.then(|| Instant::from_micros(min))
    }

    /// The first timer that has expired at `now`, clearing it. Call repeatedly until `None`.
    pub fn take_expired(&mut self, now: Instant) -> Option<TimerKind> {
        // The probe runs before the retransmission timer it may share a deadline with: it
        // re-arms that timer (RFC 8985 §7.3).
        let slots: [(&mut Option<Instant>, TimerKind); 7] = [
            (&mut self.linger, TimerKind::Linger),
            (&mut self.reorder, TimerKind::Reorder),
            (&mut self.loss_probe, TimerKind::LossProbe),
            (&mut self.retransmit, TimerKind::Retransmit),
            (&mut self.persist, TimerKind::Persist),
            (&mut self.delayed_ack, TimerKind::DelayedAck),
            (&mut self.keepalive, TimerKind::Keepalive),
        ];
        for (slot, kind) in slots {
            if matches!(*slot, Some(t) if t <= now) {
                *slot = None;
                return Some(kind);
            }
        }
        None
    }

    /// Stops every timer.
    pub fn clear(&mut self) {
        *self = Timers::default();
    }
}

/// Whether a connection filed in the layer's timer set under `filed` must be re-filed now that
/// its earliest deadline is `next`.
///
/// A deadline that moved *later* is left filed early: the connection wakes up at the old time,
/// finds nothing expired and is re-filed under its real deadline then (`TcpLayer::handle_timeout`
/// → `settle`). The retransmission and probe timers move later on almost every ACK, so this
/// saves a set removal and insertion per segment for one spurious wake-up per deadline, as
/// Linux's lazily re-armed timers do (`sk_reset_timer` callers that only ever push an armed
/// timer later, e.g. the TLP/RTO rearm in `tcp_rearm_rto`). An earlier deadline, or none, is
/// filed exactly, so that [`TcpLayer::poll_at`](super::TcpLayer::poll_at) is never late and is
/// `None` when no timer is armed.
#[inline]
pub(crate) fn needs_refile(next: Option<Instant>, filed: Option<Instant>) -> bool {
    match (next, filed) {
        (Some(n), Some(f)) => n < f,
        (None, None) => false,
        _ => true,
    }
}

impl Tcb {
    /// Runs every expired timer of this connection.
    pub(crate) fn on_timers(&mut self, env: &mut Env<'_, '_>) {
        while let Some(kind) = self.timers.take_expired(env.now()) {
            if self.state == State::Closed {
                self.timers.clear();
                return;
            }
            self.on_timer(env, kind);
        }
    }

    fn on_timer(&mut self, env: &mut Env<'_, '_>, kind: TimerKind) {
        let now = env.now();
        match kind {
            TimerKind::Linger => {
                if self.state == State::TimeWait {
                    env.cx.inc(Counter::TcpExtTW);
                }
                self.set_state(env.cx, State::Closed);
            }
            TimerKind::Retransmit => self.on_rto(env),
            TimerKind::LossProbe => self.on_probe_timeout(env),
            TimerKind::Reorder => {
                if self.sack_enabled && self.snd_max > self.snd_una {
                    self.rack_detect_loss(env);
                    if self.sent.pending_rexmits() > 0
                        && !self.recovering()
                        && self.snd_una >= self.recover
                    {
                        let mss = self.smss();
                        self.enter_recovery(env, mss);
                    }
                }
            }
            TimerKind::Persist => {
                if self.snd_wnd == 0 {
                    self.probe_now = true;
                    env.cx.inc(Counter::TcpExtTCPZeroWindowProbes);
                } else {
                    self.force_send = true;
                }
                self.persist_backoff = self.persist_backoff.saturating_add(1);
                if let Some(u) = self.user_timeout {
                    if now - self.last_progress >= u {
                        env.cx.inc(Counter::TcpExtTCPAbortOnTimeout);
                        self.fail(env.cx, TcpError::TimedOut);
                    }
                }
            }
            TimerKind::DelayedAck => {
                self.ack_now = true;
                env.cx.inc(Counter::TcpExtTCPDelayedACKs);
            }
            TimerKind::Keepalive => {
                if !self.keepalive
                    || !matches!(
                        self.state,
                        State::Established | State::CloseWait | State::FinWait2
                    )
                {
                    return;
                }
                if self.keepalive_probes >= env.cfg.keepalive_probes {
                    // The last probe went unanswered: tell the peer before giving up, as
                    // Linux does (tcp_keepalive_timer → tcp_send_active_reset), so that a peer
                    // that is alive but whose ACKs are lost learns the connection is gone.
                    env.cx.inc(Counter::TcpExtTCPAbortOnTimeout);
                    self.send_rst(env);
                    self.fail(env.cx, TcpError::TimedOut);
                    return;
                }
                if self.snd_max == self.snd_una {
                    self.probe_now = true;
                    self.keepalive_probes += 1;
                    env.cx.inc(Counter::TcpExtTCPKeepAlive);
                }
                let interval = env.cfg.keepalive_interval.max(Duration::from_millis(1));
                self.timers.keepalive = Some(now + interval);
            }
        }
    }

    /// When a retransmission timer armed at `now` should fire: one RTO later, but never after
    /// the user timeout (RFC 9293 §3.8.4, RFC 5482) expires, so that the abort comes on time
    /// instead of up to one backed-off RTO late (Linux's tcp_clamp_rto_to_user_timeout). The
    /// user timeout runs from `last_progress`; once it has passed the timer fires at once.
    pub(crate) fn rto_deadline(&self, now: Instant) -> Instant {
        let rto = now + self.rtt.rto();
        match self.user_timeout {
            Some(u) if self.state.is_synchronized() => {
                let expiry = (self.last_progress + u).max(now);
                rto.min(expiry)
            }
            _ => rto,
        }
    }

    /// RFC 6298 §5.4-5.7 and RFC 5681 §3.1: the retransmission timer expired.
    fn on_rto(&mut self, env: &mut Env<'_, '_>) {
        let now = env.now();
        match self.state {
            State::SynSent | State::SynReceived => {
                self.retries += 1;
                let limit = if self.state == State::SynSent {
                    env.cfg.syn_retries
                } else {
                    env.cfg.synack_retries
                };
                if self.retries > limit {
                    if self.passive {
                        self.set_state(env.cx, State::Closed);
                    } else {
                        env.cx.inc(Counter::TcpAttemptFails);
                        self.fail(env.cx, TcpError::TimedOut);
                    }
                    return;
                }
                env.cx.inc(Counter::TcpExtTCPTimeouts);
                self.stats.timeouts += 1;
                self.rtt.back_off();
                self.rtt_timing = None;
                self.snd_nxt = self.iss;
                self.timers.retransmit = Some(now + self.rtt.rto());
            }
            State::Closed | State::Listen | State::TimeWait => {}
            _ => {
                if self.snd_max == self.snd_una {
                    return;
                }
                self.retries += 1;
                let user_expired = self
                    .user_timeout
                    .is_some_and(|u| now - self.last_progress >= u);
                if self.retries > env.cfg.max_retries || user_expired {
                    env.cx.inc(Counter::TcpExtTCPAbortOnTimeout);
                    self.fail(env.cx, TcpError::TimedOut);
                    return;
                }
                env.cx.inc(Counter::TcpExtTCPTimeouts);
                self.stats.timeouts += 1;
                let mss = self.smss();
                if self.ts_enabled && self.sack_enabled && self.rto_undo.is_none() {
                    // The first timeout of this episode: remember what to undo should it
                    // prove spurious (RFC 3522); its retransmission carries this TSval.
                    self.rto_undo = Some(super::connection::RtoUndo {
                        cwnd: self.cc.cwnd(),
                        ssthresh: self.cc.ssthresh(),
                        tsval: self.ts_now(now),
                    });
                }
                if self.rtt.backoff() == 0 && !self.in_recovery {
                    // RFC 5681 §3.1 equation (4), then cwnd = LW = 1 SMSS.
                    self.cc.on_rto(self.snd_max.since(self.snd_una), mss);
                } else {
                    // Repeated timeout of the same data, or a timeout during fast recovery
                    // (whose entry already reduced ssthresh for this loss, as Linux's
                    // tcp_enter_loss keeps it): ssthresh is held, only cwnd restarts.
                    self.cc.set_cwnd(mss);
                }
                self.rtt.back_off();
                if self.sack_enabled && self.rtt.backoff() >= 2 {
                    // The receiver may have reneged (RFC 2018 §8): stop trusting old SACKs.
                    self.scoreboard.clear();
                    self.sent.clear_sacked();
                }
                self.in_recovery = false;
                self.dupacks = 0;
                self.rexmit_next = None;
                self.recover = self.snd_max;
                self.rexmit_high = self.snd_una;
                self.rtt_timing = None;
                self.tlp.end_seq = None;
                self.tlp.pending = false;
                self.timers.loss_probe = None;
                self.timers.reorder = None;
                if self.sack_enabled {
                    // RFC 8985 §6.3: the head, and everything sent at least RACK.rtt +
                    // reo_wnd ago, is lost; it is resent as the (restarted) window allows,
                    // skipping what was SACKed, and RACK keeps finding lost retransmissions.
                    let reo = self
                        .rack
                        .reo_wnd(true, self.sent.sacked_segs(), self.rtt.srtt());
                    self.sent.mark_lost_on_rto(now, self.rack.rtt() + reo);
                    self.rto_recovery = true;
                } else {
                    self.snd_nxt = self.snd_una; // go back N, from SND.UNA (RFC 6298 §5.4)
                }
                self.timers.retransmit = Some(self.rto_deadline(now));
            }
        }
    }

    /// RFC 8985 §7.3: the probe timeout expired. Sends one probe at the next transmit
    /// opportunity — unless one is still outstanding or no RTT was sampled since the last —
    /// and, either way, re-arms the retransmission timer.
    fn on_probe_timeout(&mut self, env: &mut Env<'_, '_>) {
        let now = env.now();
        if self.snd_max == self.snd_una {
            return;
        }
        if self.tlp.end_seq.is_none() && self.tlp.rtt_sampled {
            self.tlp.pending = true;
        }
        self.timers.retransmit = Some(self.rto_deadline(now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Duration;

    #[test]
    fn earliest_and_expiry_order() {
        let t0 = Instant::from_secs(1);
        let mut t = Timers {
            retransmit: Some(t0 + Duration::from_millis(200)),
            delayed_ack: Some(t0 + Duration::from_millis(40)),
            ..Default::default()
        };
        assert_eq!(t.next(), Some(t0 + Duration::from_millis(40)));
        assert_eq!(t.take_expired(t0), None);
        let later = t0 + Duration::from_secs(1);
        assert_eq!(t.take_expired(later), Some(TimerKind::Retransmit));
        assert_eq!(t.take_expired(later), Some(TimerKind::DelayedAck));
        assert_eq!(t.take_expired(later), None);
        assert_eq!(t.next(), None);
    }

    #[test]
    fn only_earlier_or_vanished_deadlines_are_refiled() {
        let at = |ms: i64| Some(Instant::from_millis(ms));
        assert!(!needs_refile(None, None));
        assert!(needs_refile(at(5), None));
        assert!(needs_refile(None, at(5)));
        assert!(needs_refile(at(4), at(5)));
        assert!(!needs_refile(at(5), at(5)));
        assert!(!needs_refile(at(6), at(5)));
    }

    #[test]
    fn next_is_the_minimum_of_whichever_slots_are_set() {
        let at = |ms: i64| Some(Instant::from_millis(ms));
        let all = [at(70), at(60), at(50), at(40), at(30), at(20), at(10)];
        for set in 0u32..128 {
            let mut v = [None; 7];
            for (i, slot) in v.iter_mut().enumerate() {
                if set & (1 << i) != 0 {
                    *slot = all[i];
                }
            }
            let t = Timers {
                retransmit: v[0],
                persist: v[1],
                delayed_ack: v[2],
                keepalive: v[3],
                linger: v[4],
                loss_probe: v[5],
                reorder: v[6],
            };
            assert_eq!(t.next(), v.into_iter().flatten().min(), "slots {set:#b}");
        }
        // Negative and extreme deadlines are kept, not mistaken for an unset slot.
        let far = Some(Instant::from_micros(i64::MAX));
        let t = Timers {
            keepalive: far,
            ..Default::default()
        };
        assert_eq!(t.next(), far);
        let t = Timers {
            reorder: at(-5),
            linger: far,
            ..Default::default()
        };
        assert_eq!(t.next(), at(-5));
    }
}
