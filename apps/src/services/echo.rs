//! Echo (RFC 862) on TCP and UDP port 7: every byte received is sent back.

use std::net::{Ipv4Addr, SocketAddrV4};

use anyhow::Result;
use ringstack_stack::{Instant, Stack, TcpError, TcpHandle, UdpError, UdpHandle};

use super::{accept_all, flush, Service};

/// Bytes buffered per connection before we stop reading (backpressure to the peer).
const HIGH_WATER: usize = 256 * 1024;

struct Conn {
    h: TcpHandle,
    pending: Vec<u8>,
    eof: bool,
}

/// The echo service.
pub struct Echo {
    listener: TcpHandle,
    udp: UdpHandle,
    conns: Vec<Conn>,
    buf: Vec<u8>,
}

impl Echo {
    /// Listens on TCP and UDP `port`.
    pub fn new(stack: &mut Stack, port: u16) -> Result<Echo> {
        Ok(Echo {
            listener: stack.tcp_listen(port, 1024)?,
            udp: stack.udp_bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port))?,
            conns: Vec::new(),
            buf: vec![0; 64 * 1024],
        })
    }
}

impl Service for Echo {
    fn name(&self) -> &'static str {
        "echo"
    }

    fn poll(&mut self, now: Instant, stack: &mut Stack) -> bool {
        let conns = &mut self.conns;
        let mut did = accept_all(stack, self.listener, |h| {
            conns.push(Conn {
                h,
                pending: Vec::new(),
                eof: false,
            })
        });
        loop {
            match stack.udp_recv_from(self.udp, &mut self.buf) {
                Ok((n, from)) => {
                    let _ = stack.udp_send_to(now, self.udp, &self.buf[..n], from);
                    did = true;
                }
                Err(UdpError::WouldBlock) => break,
                Err(_) => break,
            }
        }
        let buf = &mut self.buf;
        self.conns.retain_mut(|c| {
            let mut alive = true;
            loop {
                match flush(now, stack, c.h, &mut c.pending) {
                    Ok(true) => did = true,
                    Ok(false) => {}
                    Err(_) => alive = false,
                }
                if !alive || c.eof || c.pending.len() >= HIGH_WATER {
                    break;
                }
                match stack.tcp_recv(now, c.h, buf) {
                    Ok(0) => c.eof = true,
                    Ok(n) => {
                        c.pending.extend_from_slice(&buf[..n]);
                        did = true;
                        continue;
                    }
                    Err(TcpError::WouldBlock) => {}
                    Err(_) => alive = false,
                }
                break;
            }
            if !alive {
                let _ = stack.tcp_abort(now, c.h);
                return false;
            }
            if c.eof && c.pending.is_empty() {
                let _ = stack.tcp_close(now, c.h);
                return false;
            }
            true
        });
        did
    }
}
