//! Trace events: the journey of a frame through the layers.
//!
//! Every layer boundary records one [`TraceEvent`] — which layer, what it decided, how many bytes
//! it saw, a one-line header summary, and how many payload bytes it copied. The summary string is
//! only built when tracing is enabled (the closure passed to [`Tracer::record`] is not called
//! otherwise), so a disabled tracer costs one branch per layer.

use std::collections::VecDeque;
use std::fmt;
use std::net::SocketAddrV4;

use crate::counters::DropReason;
use crate::time::Instant;

/// Which way the frame is going.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Direction {
    /// From the NIC up to a socket.
    Rx,
    /// From a socket down to the NIC.
    Tx,
}

/// The layer that recorded an event.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Layer {
    /// The NIC driver (ring slot, TAP read...).
    Nic,
    /// Ethernet II framing.
    Ethernet,
    /// ARP.
    Arp,
    /// IPv4 (including fragmentation and reassembly).
    Ipv4,
    /// ICMPv4.
    Icmp,
    /// UDP.
    Udp,
    /// TCP.
    Tcp,
    /// A socket buffer (the copy into the receive buffer, or out of the send buffer).
    Socket,
    /// The application's read or write.
    App,
}

/// What the layer decided.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Verdict {
    /// Validated; header stripped; handed to the next layer.
    Pass,
    /// Delivered into a socket buffer (the end of "stage one").
    Deliver,
    /// Answered directly (ARP reply, echo reply, RST...).
    Reply,
    /// Held back: waiting for ARP, or a fragment waiting for its siblings.
    Queued,
    /// Built and sent down (transmit path).
    Emit,
    /// Refused, with the reason that was counted.
    Drop(DropReason),
}

/// The transport flow a frame belongs to, as seen on the wire (source → destination), so that a
/// journey can be filtered by port or connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Flow {
    /// IP protocol number (6 TCP, 17 UDP).
    pub protocol: u8,
    /// Source address and port.
    pub src: SocketAddrV4,
    /// Destination address and port.
    pub dst: SocketAddrV4,
}

impl Flow {
    /// Whether either end uses `port`.
    pub fn has_port(&self, port: u16) -> bool {
        self.src.port() == port || self.dst.port() == port
    }
}

/// One step of a frame's journey.
#[derive(Clone, Debug)]
pub struct TraceEvent {
    /// When it happened (the time passed in by the driver).
    pub at: Instant,
    /// Frame sequence number: all events of one received frame share it.
    pub frame: u64,
    /// Receive or transmit path.
    pub direction: Direction,
    /// The layer that recorded it.
    pub layer: Layer,
    /// What the layer decided.
    pub verdict: Verdict,
    /// Bytes the layer saw (its header plus everything inside).
    pub len: usize,
    /// Bytes this layer copied (payload into a socket buffer, for instance); 0 for a pure view.
    pub copied: usize,
    /// A one-line header summary, e.g. `198.18.0.1 > 198.18.0.2 ttl 64 id 7 proto UDP`.
    pub summary: String,
    /// The TCP/UDP flow, once the transport header has been seen (for filtering).
    pub flow: Option<Flow>,
}

impl fmt::Display for TraceEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let arrow = match self.direction {
            Direction::Rx => "↑",
            Direction::Tx => "↓",
        };
        let verdict = match self.verdict {
            Verdict::Drop(r) => format!("DROP {}", r.name()),
            v => format!("{v:?}").to_uppercase(),
        };
        write!(
            f,
            "#{:<4} {arrow} {:<8} {:>5}B {:<8} {}",
            self.frame,
            format!("{:?}", self.layer),
            self.len,
            verdict,
            self.summary
        )?;
        if self.copied > 0 {
            write!(f, "  [copy {}B]", self.copied)?;
        }
        Ok(())
    }
}

/// A bounded buffer of trace events. Disabled by default.
#[derive(Debug, Default)]
pub struct Tracer {
    capacity: usize,
    events: VecDeque<TraceEvent>,
    lost: u64,
    /// The flow of the frame being processed, attached to the events recorded for it.
    flow: Option<(u64, Flow)>,
}

impl Tracer {
    /// A tracer keeping at most `capacity` events (0 disables tracing). When full, new events are
    /// counted as lost rather than evicting old ones, so the first frames of a run are kept.
    pub fn new(capacity: usize) -> Self {
        Tracer {
            capacity,
            events: VecDeque::new(),
            lost: 0,
            flow: None,
        }
    }

    /// Whether events are being recorded.
    #[inline]
    pub fn enabled(&self) -> bool {
        self.capacity > 0
    }

    /// Changes the capacity (0 disables).
    pub fn set_capacity(&mut self, capacity: usize) {
        self.capacity = capacity;
    }

    /// Records an event; `make` is only called when tracing is enabled and there is room.
    #[inline]
    pub fn record(&mut self, make: impl FnOnce() -> TraceEvent) {
        if self.capacity == 0 {
            return;
        }
        if self.events.len() >= self.capacity {
            self.lost += 1;
            return;
        }
        let mut ev = make();
        if ev.flow.is_none() {
            ev.flow = match self.flow {
                Some((frame, flow)) if frame == ev.frame => Some(flow),
                _ => None,
            };
        }
        self.events.push_back(ev);
    }

    /// Sets the flow of frame `frame`: its later events carry it, and so do the events already
    /// recorded for it (the lower layers, which ran before the transport header was read).
    pub fn set_flow(&mut self, frame: u64, flow: Flow) {
        if self.capacity == 0 {
            return;
        }
        self.flow = Some((frame, flow));
        for ev in self.events.iter_mut().rev() {
            if ev.frame != frame {
                break;
            }
            ev.flow.get_or_insert(flow);
        }
    }

    /// Records an event built by the caller: a driver's, for what only it sees (the NIC ring
    /// slot a frame went out through, the Ethernet header it carried). Same capacity rule as
    /// [`Tracer::record`].
    pub fn push(&mut self, ev: TraceEvent) {
        self.record(|| ev);
    }

    /// Events recorded and not yet drained.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Whether no event is waiting to be drained.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// The recorded events, oldest first, for a driver to add to their summaries what only it
    /// knows (where in the NIC's ring a received frame lay, the bytes it carried).
    pub fn events_mut(&mut self) -> impl DoubleEndedIterator<Item = &mut TraceEvent> + '_ {
        self.events.iter_mut()
    }

    /// Takes all recorded events, oldest first.
    pub fn drain(&mut self) -> impl Iterator<Item = TraceEvent> + '_ {
        self.events.drain(..)
    }

    /// Events not recorded because the buffer was full.
    pub fn lost(&self) -> u64 {
        self.lost
    }
}
