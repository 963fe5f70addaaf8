//! Discard (RFC 863) on TCP port 9: every byte received is thrown away.

use anyhow::Result;
use ringstack_stack::{Instant, Stack, TcpError, TcpHandle};
use sha2::{Digest, Sha256};

use super::{accept_all, Service};

/// The discard service. Each connection's bytes are counted and hashed, and reported on close
/// (`discard: <peer> <bytes> bytes sha256 <hex>`), so a test can check what arrived.
pub struct Discard {
    listener: TcpHandle,
    conns: Vec<(TcpHandle, u64, Sha256)>,
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
        let mut did = accept_all(stack, self.listener, |h| conns.push((h, 0, Sha256::new())));
        let (buf, bytes) = (&mut self.buf, &mut self.bytes);
        self.conns.retain_mut(|(h, n_conn, hash)| loop {
            let h = *h;
            match stack.tcp_recv(now, h, buf) {
                Ok(0) => {
                    let peer = stack.tcp().peer_addr(h);
                    let digest = std::mem::take(hash).finalize();
                    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
                    println!(
                        "discard: {} {n_conn} bytes sha256 {hex}",
                        peer.map_or("?".into(), |p| p.to_string())
                    );
                    let _ = stack.tcp_close(now, h);
                    return false;
                }
                Ok(n) => {
                    *bytes += n as u64;
                    *n_conn += n as u64;
                    hash.update(&buf[..n]);
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
