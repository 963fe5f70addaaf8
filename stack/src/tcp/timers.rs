//! The per-connection timers (RFC 9293 §3.8, RFC 6298, RFC 1122 §4.2.2.17 and §4.2.3.6).
//!
//! Each timer is an optional deadline; the connection's next wake-up is the earliest of them.
//! What happens when each one fires is in `connection.rs` (`Tcb::on_timer`).

use crate::time::Instant;

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
}

impl Timers {
    /// The earliest deadline.
    pub fn next(&self) -> Option<Instant> {
        [self.retransmit, self.persist, self.delayed_ack, self.keepalive, self.linger]
            .into_iter()
            .flatten()
            .min()
    }

    /// The first timer that has expired at `now`, clearing it. Call repeatedly until `None`.
    pub fn take_expired(&mut self, now: Instant) -> Option<TimerKind> {
        let slots: [(&mut Option<Instant>, TimerKind); 5] = [
            (&mut self.linger, TimerKind::Linger),
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
}
