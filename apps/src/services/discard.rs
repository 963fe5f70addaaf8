//! Discard (RFC 863) on TCP port 9: every byte received is thrown away.

use anyhow::Result;
use ringstack_stack::{Instant, Stack, TcpError, TcpHandle};

use super::{accept_all, Service};

/// The discard service.
pub struct Discard {
    listener: TcpHandle,
    conns: Vec<TcpHandle>,
    buf: Vec<u8>,
    /// Bytes discarded so far (all connections).
    pub bytes: u64,
}

impl Discard {
    /// Listens on TCP `port`.
    pub fn new(stack: &mut Stack, port: u16) -> Result<Discard> {
        Ok(Discard {
            listener: stack.tcp_listen(port, 1024)?,
            conns: Vec::new(),
            buf: vec![0; 64 * 1024],
            bytes: 0,
        })
    }
}

impl Service for Discard {
    fn name(&self) -> &'static str {
        "discard"
    }

    fn poll(&mut self, now: Instant, stack: &mut Stack) -> bool {
        let conns = &mut self.conns;
        let mut did = accept_all(stack, self.listener, |h| conns.push(h));
        let (buf, bytes) = (&mut self.buf, &mut self.bytes);
        self.conns.retain(|&h| loop {
            match stack.tcp_recv(now, h, buf) {
                Ok(0) => {
                    let _ = stack.tcp_close(now, h);
                    return false;
                }
                Ok(n) => {
                    *bytes += n as u64;
                    did = true;
                }
                Err(TcpError::WouldBlock) => return true,
                Err(_) => {
                    let _ = stack.tcp_abort(now, h);
                    return false;
                }
            }
        });
        did
    }
}
