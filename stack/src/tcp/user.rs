//! The application's calls on a connection (RFC 9293 §3.10.1-§3.10.6: SEND, RECEIVE, CLOSE,
//! ABORT) and what it may wait for (readiness, epoll semantics).

use super::connection::{Env, Tcb};
use super::state::State;
use super::TcpError;
use crate::counters::Counter;
use crate::socket::Readiness;
use crate::trace::{Direction, Layer, Verdict};

impl Tcb {
    /// RFC 9293 §3.10.2 SEND: queues as much of `data` as the send buffer takes.
    pub(crate) fn send(&mut self, env: &mut Env<'_, '_>, data: &[u8]) -> Result<usize, TcpError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        if self.fin_queued || !self.state.can_send() {
            return Err(match self.state {
                State::Closed => TcpError::NotConnected,
                _ => TcpError::BrokenPipe,
            });
        }
        if data.is_empty() {
            return Ok(0);
        }
        let was_empty = self.snd_buf.is_empty();
        let n = self.snd_buf.write(data);
        if n == 0 {
            return Err(TcpError::WouldBlock);
        }
        if was_empty {
            self.last_progress = env.now();
        }
        env.cx
            .trace(Direction::Tx, Layer::Socket, Verdict::Queued, n, n, || {
                format!(
                    "{} > {} send buffer {} bytes",
                    self.local.port(),
                    self.remote.port(),
                    self.snd_buf.len()
                )
            });
        Ok(n)
    }

    /// RFC 9293 §3.10.3 RECEIVE: copies readable bytes into `buf`; `Ok(0)` at end of stream.
    pub(crate) fn recv(
        &mut self,
        env: &mut Env<'_, '_>,
        buf: &mut [u8],
    ) -> Result<usize, TcpError> {
        let n = self.rcv_buf.read(buf);
        if n > 0 {
            env.cx
                .trace(Direction::Rx, Layer::App, Verdict::Deliver, n, n, || {
                    format!(
                        "{} > {} read {} bytes",
                        self.remote.port(),
                        self.local.port(),
                        n
                    )
                });
            self.maybe_window_update();
            return Ok(n);
        }
        if buf.is_empty() {
            return Ok(0);
        }
        if self.fin_received {
            return Ok(0);
        }
        if let Some(e) = self.error {
            return Err(e);
        }
        match self.state {
            State::Closed => Ok(0),
            _ => Err(TcpError::WouldBlock),
        }
    }

    /// After the application read: send a window update when the window grew enough to matter
    /// (receiver SWS avoidance, RFC 9293 §3.8.6.2.2; Linux's tcp_cleanup_rbuf rule).
    fn maybe_window_update(&mut self) {
        if !self.state.can_receive() {
            return;
        }
        let cur = self.rcv_adv.since(self.rcv_nxt);
        let max_wnd = 65535u32 << self.rcv_wscale;
        let potential = (self.rcv_buf.free().min(u32::MAX as usize) as u32).min(max_wnd);
        let thresh = ((self.rcv_buf.capacity() / 2) as u32).min(self.rcv_mss.max(536));
        if potential >= cur.saturating_add(thresh) && potential >= cur.saturating_mul(2) {
            self.ack_now = true;
        }
    }

    /// Shuts down the sending side: FIN after the queued data (RFC 9293 §3.10.4).
    pub(crate) fn shutdown(&mut self, env: &mut Env<'_, '_>) -> Result<(), TcpError> {
        match self.state {
            State::Closed => return Err(self.error.unwrap_or(TcpError::NotConnected)),
            State::Listen => return Err(TcpError::InvalidState),
            State::SynSent => self.set_state(env.cx, State::Closed),
            State::SynReceived => self.fin_queued = true,
            State::Established => {
                self.fin_queued = true;
                self.set_state(env.cx, State::FinWait1);
            }
            State::CloseWait => {
                self.fin_queued = true;
                self.set_state(env.cx, State::LastAck);
            }
            _ => {}
        }
        Ok(())
    }

    /// CLOSE: the application lets go. Unread data turns it into an abort (RFC 2525 §2.17).
    pub(crate) fn close(&mut self, env: &mut Env<'_, '_>) {
        self.app_closed = true;
        if !self.rcv_buf.is_empty() && self.state != State::Closed {
            self.abort(env);
            return;
        }
        let _ = self.shutdown(env);
        if self.state == State::FinWait2 && self.timers.linger.is_none() {
            self.timers.linger = Some(env.now() + env.cfg.fin_timeout);
        }
    }

    /// ABORT (RFC 9293 §3.10.5): RST to the peer, then gone.
    pub(crate) fn abort(&mut self, env: &mut Env<'_, '_>) {
        match self.state {
            State::Closed | State::Listen | State::SynSent | State::TimeWait => {}
            State::Established | State::CloseWait => {
                env.cx.inc(Counter::TcpEstabResets);
                self.send_rst(env);
            }
            _ => self.send_rst(env),
        }
        self.set_state(env.cx, State::Closed);
    }

    /// What the application may do without blocking (epoll semantics).
    pub(crate) fn readiness(&self) -> Readiness {
        let mut r = Readiness::NONE;
        if !self.rcv_buf.is_empty() || self.fin_received {
            r |= Readiness::READABLE;
        }
        if self.fin_received {
            r |= Readiness::READ_CLOSED;
        }
        match self.state {
            State::Established | State::CloseWait
                if !self.fin_queued && self.snd_buf.free() > 0 =>
            {
                r |= Readiness::WRITABLE;
            }
            _ => {}
        }
        if self.fin_queued && self.state.is_synchronized() {
            r |= Readiness::WRITABLE;
        }
        if self.state == State::Closed {
            r |= Readiness::READABLE
                | Readiness::WRITABLE
                | Readiness::READ_CLOSED
                | Readiness::HANGUP;
        } else if self.fin_received && self.fin_queued {
            r |= Readiness::HANGUP;
        }
        if self.error.is_some() {
            r |= Readiness::ERROR;
        }
        r
    }
}
