//! # ringstack-sockets: what applications hold
//!
//! A [`Host`] binds a sans-IO [`Stack`](ringstack_stack::Stack) to a [`Nic`](ringstack_nic::Nic)
//! and drives it: frames in, timers, frames out. [`sim`] steps several hosts on one virtual
//! clock (the lowest level, used by the protocol tests).
//!
//! On top of that sits what a program uses: a [`Net`] — one machine's stack, NIC and clock
//! behind a shared handle — and std-like sockets created on it ([`TcpListener`],
//! [`TcpStream`], [`UdpSocket`]) that implement `std::io::Read`/`Write` and return
//! `io::Error`s with the usual kinds (`WouldBlock` = `EAGAIN`, `ConnectionRefused`,
//! `ConnectionReset`, `TimedOut`, `BrokenPipe`, `NotConnected`, `AddrInUse`; see [`error`]).
//! Sockets get small integer descriptors ([`Fd`]) from the machine's descriptor table, lowest
//! free first, as the kernel does, and the multiplexers address them by descriptor.
//!
//! ## The five I/O models (the notes' "五种IO模型")
//!
//! A read has two stages: (1) waiting for the data to arrive in the socket buffer, (2) copying
//! it into the application's buffer. The models differ in who waits for which stage.
//!
//! | model | stage 1 (wait for data) | stage 2 (copy) | here | example |
//! |---|---|---|---|---|
//! | 1. blocking I/O | the call blocks | the call copies | [`TcpStream`] `read`/`write`, [`TcpListener::accept`], [`UdpSocket::recv_from`] (the default) | `apps/examples/blocking.rs` |
//! | 2. non-blocking I/O | the program polls; `WouldBlock` until ready | the call copies | `set_nonblocking(true)` on any socket | `apps/examples/nonblocking.rs` |
//! | 3. I/O multiplexing | one call waits for many sockets | the program's read copies | [`select::select`] + [`FdSet`], [`poll::poll`] + [`PollFd`], [`Epoll`] (`create`/`ctl`/`wait`, LT/ET/ONESHOT/EXCLUSIVE) | `apps/examples/multiplexing.rs` |
//! | 4. signal-driven I/O | a callback says "ready now" ([`Net::set_readiness_callback`], `on_ready`) | the program's read copies | [`signal`] | `apps/examples/signal_driven.rs` |
//! | 5. asynchronous I/O (proactor) | nobody waits | the driver copies into the submitted buffer, then posts a completion | [`Ring`] (`read`/`write`/`accept`/`connect`, `reap`/`wait`) | `apps/examples/proactor.rs` |
//!
//! Models 1–4 are *synchronous*: the copy of stage two happens inside the program's own read
//! call. Only model 5 is asynchronous. Reactor vs proactor: an epoll loop that dispatches
//! "ready" events to handlers which then read is a **reactor**; a loop that reaps "done"
//! completions of reads the driver already performed is a **proactor**.
//!
//! ## Cost, counted
//!
//! Every multiplexer counts its work in [`Work`] ([`Net::work`]): `select`/`poll` examine every
//! watched descriptor on every pass and copy their sets in and out; `epoll_wait` examines only
//! ready-list entries, which are put there by the stack's readiness queue — the callback — so
//! 100,000 idle sockets cost it nothing. The tests in `tests/tests/io_models.rs` assert these
//! claims by counting, never by timing.
//!
//! ## Zero-copy and copies, counted
//!
//! [`TcpStream::recv_with`] and [`TcpStream::send_with`] lend the socket buffers to a closure
//! instead of copying through an application buffer; [`TcpStream::send_file`] maps a file and
//! queues the mapping in the send buffer *by reference* ([`TcpStream::send_shared`] does the
//! same for any shared memory), so the only copy is the one into the frame. [`Net::copies`]
//! returns the stack's per-boundary copy counters ([`Copies`]); [`zero_copy`] tabulates copies
//! per byte for each path (`read`+`write` 3, `send_file` 1, `recv_with` 1 vs `read` 2).
//! [`scenarios`] holds the notes' demonstrations as functions
//! (starvation, LT/ET, thundering herd, select vs epoll, copies) shared by the tests and
//! `ringstack experiment`.
//!
//! ## Driving and threads
//!
//! See [`net`]: in the default one-thread model, every call drives the stack itself (a blocking
//! call waits until the next deadline: sleeping on a real clock, jumping on a
//! [`VirtualClock`]); [`Net::memory_pair`] puts two simulated machines in one group so that a
//! single thread runs client and server deterministically. [`Net::spawn_driver`] switches to
//! the threaded model: one driver thread, application threads using the same API.
#![warn(missing_docs)]
#![deny(unsafe_code)]

pub mod clock;
pub mod core;
pub mod driver_clock;
pub mod epoll;
pub mod error;
pub mod events;
pub mod fd;
pub mod host;
pub mod net;
pub mod poll;
pub mod proactor;
pub mod scenarios;
pub mod select;
pub mod signal;
pub mod sim;
pub mod tcp;
pub mod udp;
pub mod zero_copy;

pub use clock::{Clock, SystemClock};
pub use core::Work;
pub use driver_clock::{DriverClock, VirtualClock};
pub use epoll::{CtlOp, Epoll, EpollEvent};
pub use events::Events;
pub use fd::Fd;
pub use host::Host;
pub use net::{Driver, Net};
pub use poll::PollFd;
pub use proactor::{Completion, Ring};
pub use select::{FdSet, FD_SETSIZE};
pub use tcp::{TcpListener, TcpStream};
pub use udp::UdpSocket;
pub use zero_copy::Copies;
