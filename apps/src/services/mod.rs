//! The protocols `ringstack serve` speaks, apart from how it does I/O: HTTP/1.1 ([`http`],
//! sans-IO, shared by every I/O model in `crate::models`) and the iperf3-compatible server
//! ([`iperf`], a [`Service`] on the stack). Echo and discard are a few lines in each model.

pub mod http;
pub mod iperf;

use ringstack_stack::{Instant, Stack, TcpError, TcpHandle};

/// A server run by a driver loop directly on the stack (the `direct` model, and iperf in
/// every model).
pub trait Service {
    /// Its name, for `--services` and logs.
    fn name(&self) -> &'static str;
    /// Accepts, reads, writes: whatever can be done without blocking. Returns whether it did
    /// anything.
    fn poll(&mut self, now: Instant, stack: &mut Stack) -> bool;
}

/// Accepts every connection waiting on `listener`.
pub fn accept_all(stack: &mut Stack, listener: TcpHandle, mut f: impl FnMut(TcpHandle)) -> bool {
    let mut any = false;
    loop {
        match stack.tcp_accept(listener) {
            Ok(h) => {
                f(h);
                any = true;
            }
            Err(TcpError::WouldBlock) => return any,
            Err(e) => {
                eprintln!("ringstack: accept failed: {e}");
                return any;
            }
        }
    }
}

/// Writes as much of `pending` as the send buffer takes, removing what was written.
/// Returns `Err` if the connection is gone.
pub fn flush(
    now: Instant,
    stack: &mut Stack,
    h: TcpHandle,
    pending: &mut Vec<u8>,
) -> Result<bool, TcpError> {
    if pending.is_empty() {
        return Ok(false);
    }
    match stack.tcp_send(now, h, pending) {
        Ok(0) | Err(TcpError::WouldBlock) => Ok(false),
        Ok(n) => {
            pending.drain(..n);
            Ok(true)
        }
        Err(e) => Err(e),
    }
}
