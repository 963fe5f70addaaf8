//! Small native programs the lab workloads run inside the namespaces (`ringstack-bench
//! --helper NAME ARGS...`): the Linux kernel's side of the comparison (discard, echo and HTTP
//! servers on kernel sockets, in Rust so that no interpreter handicaps the kernel) and the
//! clients that drive both contenders identically (bulk sender, 1-byte ping-pong).

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

const IO_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs helper `name` with `args`.
pub fn run(name: &str, args: &[String]) -> Result<()> {
    let arg = |i: usize| -> Result<&str> {
        args.get(i)
            .map(String::as_str)
            .with_context(|| format!("helper {name}: missing argument {}", i + 1))
    };
    match name {
        "kernel-servers" => kernel_servers(PathBuf::from(arg(0)?)),
        "bulk-client" => bulk_client(arg(0)?.parse()?, arg(1)?.parse()?),
        "rr-client" => rr_client(arg(0)?.parse()?, arg(1)?.parse()?),
        _ => bail!("unknown helper {name:?}"),
    }
}

/// Discard (TCP 9), echo (TCP 7) and HTTP (TCP 80, files from `root`) on kernel sockets,
/// one thread per service, connections served one after another. Prints `ready`.
fn kernel_servers(root: PathBuf) -> Result<()> {
    let discard = TcpListener::bind("0.0.0.0:9")?;
    let echo = TcpListener::bind("0.0.0.0:7")?;
    let http = TcpListener::bind("0.0.0.0:80")?;
    std::thread::spawn(move || serve(discard, discard_conn));
    std::thread::spawn(move || serve(echo, echo_conn));
    std::thread::spawn(move || serve(http, move |s| http_conn(s, &root)));
    println!("ready");
    io::stdout().flush()?;
    loop {
        std::thread::park();
    }
}

fn serve(l: TcpListener, f: impl Fn(TcpStream) -> io::Result<()>) {
    for s in l.incoming().flatten() {
        let _ = s.set_read_timeout(Some(IO_TIMEOUT));
        let _ = f(s);
    }
}

fn discard_conn(mut s: TcpStream) -> io::Result<()> {
    let mut buf = vec![0u8; 1 << 20];
    while s.read(&mut buf)? > 0 {}
    Ok(())
}

fn echo_conn(mut s: TcpStream) -> io::Result<()> {
    s.set_nodelay(true)?;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = s.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        s.write_all(&buf[..n])?;
    }
}

/// A minimal HTTP/1.1 GET of a file; the body goes out through `io::copy`, which std turns
/// into `sendfile`/`splice` (the kernel's zero-copy path).
fn http_conn(s: TcpStream, root: &Path) -> io::Result<()> {
    let mut r = BufReader::new(s.try_clone()?);
    let mut line = String::new();
    r.read_line(&mut line)?;
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h)? == 0 || h == "\r\n" || h == "\n" {
            break;
        }
    }
    let mut s = s;
    let name = path.trim_start_matches('/');
    if name.contains("..") || name.is_empty() {
        s.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")?;
        return Ok(());
    }
    let mut f = std::fs::File::open(root.join(name))?;
    let len = f.metadata()?.len();
    write!(
        s,
        "HTTP/1.1 200 OK\r\nContent-Length: {len}\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n"
    )?;
    io::copy(&mut f, &mut s)?;
    s.shutdown(Shutdown::Write)?;
    // Let the client close first (no RST on unread request bytes).
    let mut sink = [0u8; 256];
    while r.read(&mut sink).unwrap_or(0) > 0 {}
    Ok(())
}

/// Sends `bytes` to `addr`, half-closes, waits for the server's close; prints `secs=`.
fn bulk_client(addr: SocketAddr, bytes: u64) -> Result<()> {
    let buf: Vec<u8> = (0..1u32 << 20).map(|i| (i % 251) as u8).collect();
    let t = Instant::now();
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
    s.set_write_timeout(Some(IO_TIMEOUT))?;
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    let mut left = bytes;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        s.write_all(&buf[..n])?;
        left -= n as u64;
    }
    s.shutdown(Shutdown::Write)?;
    let mut sink = [0u8; 4096];
    while s.read(&mut sink)? > 0 {}
    println!("secs={}", t.elapsed().as_secs_f64());
    Ok(())
}

/// `count` 1-byte request/response transactions (TCP_NODELAY) after 200 of warm-up; prints
/// `secs= p50_ns= p99_ns= max_ns=`.
fn rr_client(addr: SocketAddr, count: u64) -> Result<()> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut hist = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)?;
    let mut b = [0u8; 1];
    for _ in 0..200 {
        s.write_all(b"x")?;
        s.read_exact(&mut b)?;
    }
    let t = Instant::now();
    for _ in 0..count {
        let t0 = Instant::now();
        s.write_all(b"x")?;
        s.read_exact(&mut b)?;
        hist.record((t0.elapsed().as_nanos() as u64).max(1))?;
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "secs={secs} p50_ns={} p99_ns={} max_ns={}",
        hist.value_at_quantile(0.5),
        hist.value_at_quantile(0.99),
        hist.max()
    );
    Ok(())
}

/// Parses `key=value` from a helper's output.
pub fn field(out: &str, key: &str) -> Option<f64> {
    let p = format!("{key}=");
    out.split_whitespace()
        .find_map(|w| w.strip_prefix(p.as_str()))
        .and_then(|v| v.parse().ok())
}
