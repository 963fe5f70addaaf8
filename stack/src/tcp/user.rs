//! The application's calls on a connection (RFC 9293 §3.10.1-§3.10.6: SEND, RECEIVE, CLOSE,
//! ABORT) and what it may wait for (readiness, epoll semantics).

use std::ops::Range;

use super::connection::{Env, Tcb};
use super::ring::BufferMemory;
use super::send_buffer::{Queued, SharedBytes};
use super::state::State;
use super::{TcpError, TcpLayer};
use crate::counters::Counter;
use crate::cx::Cx;
use crate::socket::{Readiness, TcpHandle};
use crate::trace::{Direction, Layer, Verdict};

impl Tcb {
    /// Whether SEND is allowed now (RFC 9293 §3.10.2): the pending error, or the state's.
    fn can_send_now(&self) -> Result<(), TcpError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        if self.fin_queued || !self.state.can_send() {
            return Err(match self.state {
                State::Closed => TcpError::NotConnected,
                _ => TcpError::BrokenPipe,
            });
        }
        Ok(())
    }

    /// RFC 9293 §3.10.2 SEND: queues as much of `data` as the send buffer takes.
    pub(crate) fn send(&mut self, env: &mut Env<'_, '_>, data: &[u8]) -> Result<usize, TcpError> {
        self.can_send_now()?;
        if data.is_empty() {
            return Ok(0);
        }
        let was_empty = self.snd_buf.is_empty();
        let n = self.snd_buf.write(data);
        if n == 0 {
            return Err(TcpError::WouldBlock);
        }
        env.cx.counters.add(Counter::CopyAppToSndBuf, n as u64);
        self.queued(env, was_empty, n, n);
        Ok(n)
    }

    /// SEND in place: lends `f` the contiguous free space of the send buffer (possibly only the
    /// first part of it, when the free space wraps around the end of the ring, or only the
    /// ring's storage while it has not grown to the capacity) and queues the
    /// first `f(..)` bytes of it (clamped to the lent length). Errors as [`Tcb::send`];
    /// `WouldBlock` without calling `f` when the buffer is full.
    pub(crate) fn send_with(
        &mut self,
        env: &mut Env<'_, '_>,
        f: impl FnOnce(&mut [u8]) -> usize,
    ) -> Result<usize, TcpError> {
        self.can_send_now()?;
        let was_empty = self.snd_buf.is_empty();
        let room = self.snd_buf.writable();
        if room.is_empty() {
            return Err(TcpError::WouldBlock);
        }
        let written = f(room);
        let n = self.snd_buf.commit(written);
        if n == 0 {
            return Ok(0);
        }
        env.cx
            .counters
            .add(Counter::CopyAppToSndBufInPlace, n as u64);
        self.queued(env, was_empty, n, 0);
        Ok(n)
    }

    /// SEND by reference: queues as much of `bytes[range]` as the send buffer has room for,
    /// without copying it — the buffer keeps a reference, segmentation copies the bytes straight
    /// into frames (see [`SendBuffer`](super::send_buffer::SendBuffer) for the accounting and the
    /// descriptor limit past which they are copied instead). Errors as [`Tcb::send`].
    pub(crate) fn send_external(
        &mut self,
        env: &mut Env<'_, '_>,
        bytes: &SharedBytes,
        range: Range<usize>,
    ) -> Result<usize, TcpError> {
        self.can_send_now()?;
        if range.is_empty() {
            return Ok(0);
        }
        let was_empty = self.snd_buf.is_empty();
        let (n, copied) = match self.snd_buf.write_external(bytes, range) {
            Queued::Referenced(n) => {
                env.cx.counters.add(Counter::CopyAppToSndBufByRef, n as u64);
                (n, 0)
            }
            Queued::Copied(n) => {
                env.cx.counters.add(Counter::CopyAppToSndBuf, n as u64);
                (n, n)
            }
        };
        if n == 0 {
            return Err(TcpError::WouldBlock);
        }
        self.queued(env, was_empty, n, copied);
        Ok(n)
    }

    /// Bookkeeping after `n` bytes were queued (`copied` of them by copying).
    fn queued(&mut self, env: &mut Env<'_, '_>, was_empty: bool, n: usize, copied: usize) {
        if was_empty {
            self.last_progress = env.now();
        }
        env.cx.trace(
            Direction::Tx,
            Layer::Socket,
            Verdict::Queued,
            n,
            copied,
            || {
                format!(
                    "{} > {} send buffer {} bytes",
                    self.local.port(),
                    self.remote.port(),
                    self.snd_buf.len()
                )
            },
        );
    }

    /// RFC 9293 §3.10.3 RECEIVE: copies readable bytes into `buf`; `Ok(0)` at end of stream.
    pub(crate) fn recv(
        &mut self,
        env: &mut Env<'_, '_>,
        buf: &mut [u8],
    ) -> Result<usize, TcpError> {
        let n = self.rcv_buf.read(buf);
        if n > 0 {
            env.cx.counters.add(Counter::CopyRcvBufToApp, n as u64);
            self.delivered(env, n, n);
            return Ok(n);
        }
        if buf.is_empty() {
            return Ok(0);
        }
        self.nothing_to_read()
    }

    /// RECEIVE in place: lends `f` the contiguous readable bytes of the receive buffer (only
    /// the first part when they wrap around the end of the ring: call again for the rest) and
    /// consumes the first `f(..)` of them (clamped to the lent length), then updates the window
    /// as [`Tcb::recv`] does. `f` is called only when bytes are readable; otherwise the result
    /// is [`Tcb::recv`]'s (`Ok(0)` at end of stream, `WouldBlock`, the connection's error).
    pub(crate) fn recv_with(
        &mut self,
        env: &mut Env<'_, '_>,
        f: impl FnOnce(&[u8]) -> usize,
    ) -> Result<usize, TcpError> {
        let data = self.rcv_buf.readable();
        if data.is_empty() {
            return self.nothing_to_read();
        }
        let used = f(data);
        let n = self.rcv_buf.consume(used);
        if n > 0 {
            env.cx
                .counters
                .add(Counter::CopyRcvBufToAppInPlace, n as u64);
            self.delivered(env, n, 0);
        }
        Ok(n)
    }

    /// Bookkeeping after the application took `n` bytes (`copied` of them by copying).
    fn delivered(&mut self, env: &mut Env<'_, '_>, n: usize, copied: usize) {
        env.cx.trace(
            Direction::Rx,
            Layer::App,
            Verdict::Deliver,
            n,
            copied,
            || {
                format!(
                    "{} > {} read {} bytes",
                    self.remote.port(),
                    self.local.port(),
                    n
                )
            },
        );
        self.maybe_window_update();
    }

    /// RECEIVE with nothing buffered: end of stream, the error, or `WouldBlock`.
    fn nothing_to_read(&self) -> Result<usize, TcpError> {
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

    /// After every event on the connection (`TcpLayer::settle`): gives back the storage of
    /// drained buffers that will not be needed soon, then brings the layer's count of buffer
    /// memory up to date. A drained buffer (nothing held, nothing out of order) releases its
    /// storage when its direction is finished — the peer's FIN received or the connection
    /// closed for the receive buffer, our FIN queued for the send buffer: no byte will come or
    /// be written again — or while the layer's buffer memory is under pressure
    /// ([`TcpConfig::buffer_pressure`](super::TcpConfig::buffer_pressure)). Otherwise it keeps
    /// it: reusing it is free, while allocating it again (and growing it again, for a bulk
    /// receiver that keeps draining its buffer) would not be.
    #[inline]
    pub(crate) fn settle_buffers(&mut self, mem: &mut BufferMemory, cx: &mut Cx<'_>) {
        // The common case (called after every segment and call) in a few instructions.
        if self.snd_buf.accounted() & self.rcv_buf.accounted() {
            let finished = self.fin_received | self.fin_queued | (self.state == State::Closed);
            if !(mem.under_pressure() | finished) {
                return;
            }
        } else {
            self.snd_buf.account(mem, cx.counters);
            self.rcv_buf.account(mem, cx.counters);
        }
        self.release_drained_buffers(mem, cx);
    }

    /// The release half of [`settle_buffers`](Self::settle_buffers).
    #[cold]
    #[inline(never)]
    fn release_drained_buffers(&mut self, mem: &mut BufferMemory, cx: &mut Cx<'_>) {
        let pressure = mem.under_pressure();
        if (pressure || self.fin_received || self.state == State::Closed)
            && self.rcv_buf.release_if_empty()
        {
            cx.inc(Counter::TcpBufReleases);
            self.rcv_buf.account(mem, cx.counters);
        }
        if (pressure || self.fin_queued) && self.snd_buf.release_if_empty() {
            cx.inc(Counter::TcpBufReleases);
            self.snd_buf.account(mem, cx.counters);
        }
    }

    /// Removes the connection's buffers from the layer's count (it is being dropped).
    pub(crate) fn forget_buffers(&self, mem: &mut BufferMemory, cx: &mut Cx<'_>) {
        self.snd_buf.forget(mem, cx.counters);
        self.rcv_buf.forget(mem, cx.counters);
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

impl TcpLayer {
    /// Zero-copy [`TcpLayer::send`] by reference: queues as much of `bytes[range]` as the send
    /// buffer has room for and returns how many bytes (from `range.start`) were taken; the
    /// buffer holds a reference to `bytes` until they are acknowledged, and segmentation copies
    /// them straight into frames — the only CPU copy (`CopySndBufToFrame`). Counted as
    /// `CopyAppToSndBufByRef`; if the connection already holds its maximum of external chunks
    /// (a bound on memory, see [`SendBuffer`](super::send_buffer::SendBuffer)) the bytes are
    /// copied into the buffer instead and counted as `CopyAppToSndBuf`. A range that continues
    /// the previous one in the same memory extends it, so a large transfer fed in pieces as
    /// space frees takes one chunk. External bytes use send space like copied ones: `WouldBlock`
    /// when the buffer is full; other errors as `send`.
    ///
    /// `bytes` must not change while queued (retransmissions re-read it).
    ///
    /// # Panics
    /// If `range` is not within `bytes`.
    pub fn send_external(
        &mut self,
        cx: &mut Cx<'_>,
        h: TcpHandle,
        bytes: &SharedBytes,
        range: Range<usize>,
    ) -> Result<usize, TcpError> {
        let (mut env, tcb) = self.env_tcb(cx, h)?;
        let r = tcb.send_external(&mut env, bytes, range);
        self.settle(cx, h);
        r
    }
}

#[cfg(test)]
mod tests {
    use core::net::{Ipv4Addr, SocketAddrV4};

    use super::super::ring::{BufferMemory, INITIAL_STORAGE};
    use super::super::{SeqNum, TcpConfig};
    use super::*;
    use crate::counters::Counters;
    use crate::socket::ReadinessQueue;
    use crate::time::Instant;
    use crate::trace::Tracer;

    fn tcb(port: u16) -> Tcb {
        let a = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 1), port);
        let b = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 2), 80);
        let mut t = Tcb::new(
            TcpHandle::default(),
            &TcpConfig::default(),
            a,
            b,
            SeqNum(1),
            0,
            Instant::from_millis(0),
        );
        t.state = State::Established;
        t
    }

    #[test]
    fn drained_buffers_keep_their_storage_unless_under_pressure_or_finished() {
        let (mut counters, mut tracer, mut readiness) = (
            Counters::default(),
            Tracer::new(0),
            ReadinessQueue::default(),
        );
        let mut cx = Cx {
            now: Instant::from_millis(0),
            frame: 0,
            counters: &mut counters,
            tracer: &mut tracer,
            readiness: &mut readiness,
        };
        let page = INITIAL_STORAGE;
        let mut mem = BufferMemory::new(3 * page);
        let mut t = tcb(1);
        t.snd_buf.write(b"request");
        t.rcv_buf.write_at(0, b"response");
        t.rcv_buf.commit(8);
        t.settle_buffers(&mut mem, &mut cx);
        assert_eq!(mem.in_use(), 2 * page);
        // Drained below the threshold: the storage stays for the next message.
        t.snd_buf.consume(7);
        assert_eq!(t.rcv_buf.read(&mut [0; 8]), 8);
        t.settle_buffers(&mut mem, &mut cx);
        assert_eq!(mem.in_use(), 2 * page);
        assert_eq!((t.snd_buf.storage(), t.rcv_buf.storage()), (page, page));

        // Another connection takes the total over the threshold.
        let mut u = tcb(2);
        u.snd_buf.write(&[1; 6000]);
        u.settle_buffers(&mut mem, &mut cx);
        assert_eq!(mem.in_use(), 4 * page);
        assert!(mem.under_pressure());
        assert_eq!(cx.counters.get(Counter::TcpExtTCPMemoryPressures), 1);
        // Out-of-order bytes stored beyond the (empty) readable ones keep the receive storage.
        t.rcv_buf.write_at(100, b"later");
        t.settle_buffers(&mut mem, &mut cx);
        assert_eq!((t.snd_buf.storage(), t.rcv_buf.storage()), (0, page));
        assert_eq!(
            mem.in_use(),
            3 * page,
            "the drained send buffer gave its storage back"
        );
        assert_eq!(cx.counters.get(Counter::TcpBufReleases), 1);
        assert_eq!(cx.counters.get(Counter::TcpBufMemory), 3 * page as u64);

        // Below the threshold again, a finished direction still gives its storage back: our
        // FIN queued, the send buffer acknowledged.
        assert!(!mem.under_pressure());
        u.fin_queued = true;
        u.snd_buf.consume(6000);
        u.settle_buffers(&mut mem, &mut cx);
        assert_eq!((u.snd_buf.storage(), mem.in_use()), (0, page));
        // And the peer's FIN: nothing will be received any more.
        t.rcv_buf.write_at(0, &[0; 100]);
        t.rcv_buf.commit(105);
        t.fin_received = true;
        t.settle_buffers(&mut mem, &mut cx);
        assert_eq!(t.rcv_buf.storage(), page, "unread bytes are kept");
        assert_eq!(t.rcv_buf.read(&mut [0; 200]), 105);
        t.settle_buffers(&mut mem, &mut cx);
        assert_eq!((t.rcv_buf.storage(), mem.in_use()), (0, 0));
        assert_eq!(cx.counters.get(Counter::TcpBufReleases), 3);
        assert_eq!(
            cx.counters.get(Counter::TcpBufGrows),
            3,
            "three allocations (6000 bytes: 8 KiB at once)"
        );
    }
}
