//! Signal-driven I/O: a readiness callback per socket, the `SIGIO` analogue.
//!
//! With `fcntl(fd, F_SETOWN, pid)` and `O_ASYNC`, Linux sends the process `SIGIO` when a socket
//! becomes readable or writable; the process does not block and does not poll — it is
//! *told when to start* the I/O, and then does the (synchronous) read itself. Here the "signal
//! handler" is a closure registered with [`Net::set_readiness_callback`] (or `on_ready` on a
//! socket type); the driver calls it with the descriptor and the readiness bits that caused it.
//!
//! Like `SIGIO` it is **edge-triggered**: it runs when a bit of the interest set becomes newly
//! set, not again while it stays set — so a handler should drain the socket (until
//! `WouldBlock`). Registering does not fire for readiness already present.
//!
//! When it runs: outside the `Net`'s lock, at the end of the call that drove the stack (a
//! signal is delivered on return from a system call), or on the driver thread in the threaded
//! model — so the handler may use the socket API, but should be quick. While one callback runs,
//! callbacks due meanwhile are queued and run right after it (no nesting, like a blocked signal).

use std::io;
use std::sync::{Arc, Mutex};

use crate::events::Events;
use crate::fd::Fd;
use crate::net::Net;

/// A readiness callback: called with the descriptor and its readiness (within the interest).
pub type Callback = dyn FnMut(Fd, Events) + Send;

type Handler = Arc<Mutex<Box<Callback>>>;

/// A registration on a descriptor (`F_SETOWN` + `O_ASYNC`).
pub(crate) struct Registration {
    interest: Events,
    last: Events,
    handler: Handler,
}

impl Registration {
    /// Readiness is now `cur`: queue a delivery if an interesting bit is newly set.
    pub fn on_change(&mut self, fd: Fd, cur: Events) -> Option<Pending> {
        let newly = cur & !self.last & self.interest;
        self.last = cur;
        (!newly.is_empty()).then(|| Pending {
            handler: self.handler.clone(),
            fd,
            events: cur & self.interest,
        })
    }
}

/// A callback due to run.
pub(crate) struct Pending {
    handler: Handler,
    fd: Fd,
    events: Events,
}

impl Pending {
    pub fn run(self) {
        let mut h = self.handler.lock().unwrap_or_else(|p| p.into_inner());
        (h)(self.fd, self.events);
    }
}

impl Net {
    /// Registers `callback` to run whenever `fd` becomes ready for something in `interest`
    /// (`IN`, `OUT`, `RDHUP`, `ERR`, `HUP`). Replaces an earlier registration.
    pub fn set_readiness_callback(
        &self,
        fd: Fd,
        interest: Events,
        callback: impl FnMut(Fd, Events) + Send + 'static,
    ) -> io::Result<()> {
        self.with_raw(|core, p| {
            let cur = core
                .readiness(p, fd)
                .ok_or_else(|| crate::error::bad_fd(fd))?;
            let file = core.file_mut(p, fd)?;
            file.sigio = Some(Registration {
                interest: interest & Events::IO,
                last: cur,
                handler: Arc::new(Mutex::new(Box::new(callback))),
            });
            Ok(())
        })
    }

    /// Removes `fd`'s readiness callback (`fcntl(fd, F_SETFL, flags & ~O_ASYNC)`).
    pub fn clear_readiness_callback(&self, fd: Fd) -> io::Result<()> {
        self.with_raw(|core, p| {
            core.file_mut(p, fd)?.sigio = None;
            Ok(())
        })
    }
}
