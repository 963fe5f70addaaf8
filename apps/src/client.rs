//! The client subcommands: `ringstack get URL` (HTTP/1.1 GET) and `ringstack send HOST:PORT
//! [FILE]` (stream a file or stdin, then close), over the stack on a real NIC.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use ringstack_stack::tcp::State;
use ringstack_stack::{Duration, Instant, TcpError};

use crate::netopts::NetOpts;
use crate::runtime::Runtime;

/// Options of `ringstack get`.
#[derive(Args, Debug, Clone)]
pub struct GetArgs {
    #[command(flatten)]
    pub net: NetOpts,
    /// `http://IPV4[:PORT]/PATH` (no DNS: an address literal).
    pub url: String,
    /// Write the body here instead of standard output.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 60)]
    pub timeout: u64,
}

/// Options of `ringstack send`.
#[derive(Args, Debug, Clone)]
pub struct SendArgs {
    #[command(flatten)]
    pub net: NetOpts,
    /// Where to connect: IPV4:PORT.
    pub target: SocketAddrV4,
    /// The file to send (standard input without it).
    pub file: Option<PathBuf>,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 60)]
    pub timeout: u64,
}

fn parse_url(url: &str) -> Result<(SocketAddrV4, String)> {
    let rest = url
        .strip_prefix("http://")
        .context("only http:// URLs are supported")?;
    let (hostport, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = match hostport.split_once(':') {
        Some((h, p)) => (h, p.parse().context("bad port in URL")?),
        None => (hostport, 80),
    };
    let ip: Ipv4Addr = host
        .parse()
        .with_context(|| format!("{host:?} is not an IPv4 address (ringstack has no DNS)"))?;
    Ok((SocketAddrV4::new(ip, port), path.to_string()))
}

/// Finds the end of the response head and the Content-Length and status.
fn parse_response_head(buf: &[u8]) -> Option<(usize, u16, Option<u64>)> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buf[..end]);
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let len = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok());
    Some((end + 4, status, len))
}

/// `ringstack get`.
pub fn get(args: &GetArgs) -> Result<()> {
    let (remote, path) = parse_url(&args.url)?;
    let config = args.net.config()?;
    let mut rt = Runtime::new(args.net.open_nic()?, config)?;
    rt.set_busy_poll(args.net.busy_poll);
    let now = rt.now();
    let conn = rt.stack().tcp_connect(now, remote, 0)?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nUser-Agent: ringstack\r\n\r\n",
        remote.ip()
    );
    let mut out: Box<dyn Write> = match &args.output {
        Some(p) => Box::new(File::create(p).with_context(|| format!("creating {}", p.display()))?),
        None => Box::new(std::io::stdout().lock()),
    };
    let deadline = now + Duration::from_secs(args.timeout);
    let (mut sent, mut head, mut body_len, mut expected) =
        (0, Vec::new(), 0u64, None::<Option<u64>>);
    let mut status = 0;
    let mut buf = vec![0u8; 64 * 1024];
    let mut done = false;
    let mut error: Option<anyhow::Error> = None;
    rt.run(|now: Instant, stack| {
        if now > deadline {
            error = Some(anyhow::anyhow!("timed out after {} s", args.timeout));
            return Ok(false);
        }
        if sent < request.len() {
            match stack.tcp_send(now, conn, &request.as_bytes()[sent..]) {
                Ok(n) => sent += n,
                Err(TcpError::WouldBlock) => {}
                Err(e) => bail!("connecting to {remote}: {e}"),
            }
        }
        loop {
            match stack.tcp_recv(now, conn, &mut buf) {
                Ok(0) => {
                    done = true;
                    break;
                }
                Ok(n) => {
                    if expected.is_none() {
                        head.extend_from_slice(&buf[..n]);
                        if let Some((end, st, len)) = parse_response_head(&head) {
                            status = st;
                            expected = Some(len);
                            out.write_all(&head[end..])?;
                            body_len += (head.len() - end) as u64;
                        }
                    } else {
                        out.write_all(&buf[..n])?;
                        body_len += n as u64;
                    }
                }
                Err(TcpError::WouldBlock) => break,
                Err(e) => bail!("receiving from {remote}: {e}"),
            }
        }
        if let Some(Some(len)) = expected {
            done |= body_len >= len;
        }
        Ok(!done)
    })?;
    let now = rt.now();
    let _ = rt.stack().tcp_close(now, conn);
    out.flush()?;
    if let Some(e) = error {
        return Err(e);
    }
    if rt.stopped() {
        bail!("interrupted");
    }
    if let Some(Some(len)) = expected {
        if body_len != len {
            bail!("connection closed after {body_len} of {len} body bytes");
        }
    }
    eprintln!("ringstack get: HTTP {status}, {body_len} bytes");
    if !(200..300).contains(&status) {
        bail!("server answered HTTP {status}");
    }
    Ok(())
}

/// `ringstack send`.
pub fn send(args: &SendArgs) -> Result<()> {
    let mut input: Box<dyn Read> = match &args.file {
        Some(p) => Box::new(File::open(p).with_context(|| format!("opening {}", p.display()))?),
        None => Box::new(std::io::stdin().lock()),
    };
    let config = args.net.config()?;
    let mut rt = Runtime::new(args.net.open_nic()?, config)?;
    rt.set_busy_poll(args.net.busy_poll);
    let now = rt.now();
    let conn = rt.stack().tcp_connect(now, args.target, 0)?;
    let deadline = now + Duration::from_secs(args.timeout);
    let mut chunk = vec![0u8; 256 * 1024];
    let (mut start, mut end, mut total, mut input_done, mut shut) = (0, 0, 0u64, false, false);
    let mut drain = vec![0u8; 4096];
    rt.run(|now, stack| {
        if now > deadline {
            bail!("timed out after {} s ({total} bytes sent)", args.timeout);
        }
        loop {
            if start == end && !input_done {
                end = input.read(&mut chunk)?;
                start = 0;
                input_done = end == 0;
            }
            if start == end {
                break;
            }
            match stack.tcp_send(now, conn, &chunk[start..end]) {
                Ok(0) | Err(TcpError::WouldBlock) => break,
                Ok(n) => {
                    start += n;
                    total += n as u64;
                }
                Err(e) => bail!("sending to {}: {e}", args.target),
            }
        }
        // Whatever the peer sends back is read and dropped (so its window never closes).
        while let Ok(n) = stack.tcp_recv(now, conn, &mut drain) {
            if n == 0 {
                break;
            }
        }
        if input_done && start == end && !shut {
            match stack.tcp_shutdown(now, conn) {
                Ok(()) => shut = true,
                Err(TcpError::WouldBlock) | Err(TcpError::InvalidState) => {}
                Err(e) => bail!("closing: {e}"),
            }
        }
        // Our FIN acknowledged means every byte was.
        let state = stack.tcp().state(conn);
        let finished = shut
            && matches!(
                state,
                Some(State::FinWait2 | State::TimeWait | State::Closed) | None
            );
        Ok(!finished)
    })?;
    if rt.stopped() {
        bail!("interrupted after {total} bytes");
    }
    let now = rt.now();
    let _ = rt.stack().tcp_close(now, conn);
    eprintln!(
        "ringstack send: {total} bytes sent to {} and acknowledged",
        args.target
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let (a, p) = parse_url("http://198.18.0.1:8000/x/y").unwrap();
        assert_eq!(a, "198.18.0.1:8000".parse().unwrap());
        assert_eq!(p, "/x/y");
        assert_eq!(parse_url("http://198.18.0.1").unwrap().1, "/");
        assert!(parse_url("https://198.18.0.1/").is_err());
        assert!(parse_url("http://example.com/").is_err());
    }

    #[test]
    fn response_heads() {
        let r = b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello";
        assert_eq!(parse_response_head(r), Some((38, 200, Some(5))));
        assert_eq!(parse_response_head(b"HTTP/1.0 200 OK\r\n"), None);
    }
}
