//! The context every layer handler receives: the current time and the stack-wide places where
//! layers report what happened (counters, trace, readiness changes).

use crate::counters::{Counter, Counters, DropReason};
use crate::socket::{ReadinessQueue, SocketHandle};
use crate::time::Instant;
use crate::trace::{Direction, Layer, TraceEvent, Tracer, Verdict};

/// Borrowed, per-call context. Protocol code reads the time only from here.
pub struct Cx<'a> {
    /// The time the driver passed in.
    pub now: Instant,
    /// Sequence number of the frame being processed (for trace events).
    pub frame: u64,
    /// Stack-wide counters.
    pub counters: &'a mut Counters,
    /// The trace buffer.
    pub tracer: &'a mut Tracer,
    /// Sockets whose readiness may have changed.
    pub readiness: &'a mut ReadinessQueue,
}

impl Cx<'_> {
    /// Counts `c`.
    #[inline]
    pub fn inc(&mut self, c: Counter) {
        self.counters.inc(c);
    }

    /// Counts a drop for `reason` and records it in the trace.
    pub fn drop(
        &mut self,
        direction: Direction,
        layer: Layer,
        reason: DropReason,
        len: usize,
        summary: impl FnOnce() -> String,
    ) {
        self.counters.drop(reason);
        self.trace(direction, layer, Verdict::Drop(reason), len, 0, summary);
    }

    /// Records a trace event (the summary is only built when tracing is on).
    #[inline(always)]
    pub fn trace(
        &mut self,
        direction: Direction,
        layer: Layer,
        verdict: Verdict,
        len: usize,
        copied: usize,
        summary: impl FnOnce() -> String,
    ) {
        // Tracing off (the fast path): one load and a branch, nothing built or moved.
        if self.tracer.enabled() {
            self.trace_enabled(direction, layer, verdict, len, copied, summary);
        }
    }

    #[cold]
    #[inline(never)]
    fn trace_enabled(
        &mut self,
        direction: Direction,
        layer: Layer,
        verdict: Verdict,
        len: usize,
        copied: usize,
        summary: impl FnOnce() -> String,
    ) {
        let (at, frame) = (self.now, self.frame);
        self.tracer.record(|| TraceEvent {
            at,
            frame,
            direction,
            layer,
            verdict,
            len,
            copied,
            summary: summary(),
            flow: None,
        });
    }

    /// Marks the transport flow of the frame being processed (for filtering traces).
    #[inline]
    pub fn set_flow(&mut self, flow: crate::trace::Flow) {
        self.tracer.set_flow(self.frame, flow);
    }

    /// Notes that `handle`'s readiness may have changed.
    #[inline]
    pub fn notify(&mut self, handle: impl Into<SocketHandle>) {
        self.readiness.notify(handle);
    }
}
