//! The client subcommands: `ringstack get URL` (HTTP/1.1 GET) and `ringstack send HOST:PORT
//! [FILE]` (stream a file or stdin, then close), over the stack on a real NIC.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle, TermLike};
use ringstack_stack::tcp::State;
use ringstack_stack::{Duration, Instant, TcpError};

use crate::netopts::NetOpts;
use crate::runtime::Runtime;

/// `--progress` / `--no-progress`: a progress bar on standard error for long transfers — by
/// default only when standard error is a terminal, so scripts and logs get no bar noise.
#[derive(Args, Debug, Clone, Default)]
pub struct ProgressOpts {
    /// Show a progress bar on standard error even when it is not a terminal.
    #[arg(long, overrides_with = "no_progress")]
    pub progress: bool,
    /// Never show a progress bar (default: shown when standard error is a terminal).
    #[arg(long, overrides_with = "progress")]
    pub no_progress: bool,
}

impl ProgressOpts {
    /// Whether to draw a bar, given whether standard error is a terminal.
    pub fn wanted(&self, stderr_is_terminal: bool) -> bool {
        !self.no_progress && (self.progress || stderr_is_terminal)
    }

    /// A progress bar for a transfer of `total` bytes (unknown: a spinner and a byte count),
    /// labelled `what` — hidden unless [`ProgressOpts::wanted`].
    pub fn bar(&self, total: Option<u64>, what: &str) -> Progress {
        match total {
            Some(n) => self.make(BYTES_BAR, Some(n), what),
            None => self.make(BYTES_SPINNER, None, what),
        }
    }

    /// A progress bar for a transfer that lasts `secs` seconds; [`Progress::set_note`] tells
    /// what moved so far.
    pub fn timed(&self, secs: u64, what: &str) -> Progress {
        self.make(TIMED_BAR, Some(secs.max(1) * 1000), what)
    }

    fn make(&self, template: &str, len: Option<u64>, what: &str) -> Progress {
        use std::io::IsTerminal;
        let tty = std::io::stderr().is_terminal();
        if !self.wanted(tty) {
            return Progress(None);
        }
        let pb = match len {
            Some(n) => ProgressBar::new(n),
            None => ProgressBar::new_spinner(),
        };
        pb.set_style(style(template));
        // Forced on a non-terminal (a log, `script`): draw anyway, a few times a second.
        if !tty {
            pb.set_draw_target(ProgressDrawTarget::term_like_with_hz(
                Box::new(PlainStderr),
                4,
            ));
        }
        pb.set_message(what.to_string());
        Progress(Some(pb))
    }
}

const BYTES_BAR: &str = "{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}";
const BYTES_SPINNER: &str = "{msg} {spinner} {bytes} {binary_bytes_per_sec}";
const TIMED_BAR: &str = "{msg} [{bar:30}] {elapsed} {prefix}";

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .expect("valid progress template")
        .progress_chars("=> ")
}

/// A progress bar, or nothing (not wanted).
pub struct Progress(Option<ProgressBar>);

impl Progress {
    /// No bar.
    pub fn none() -> Self {
        Progress(None)
    }

    /// Sets the total bytes, once known (a spinner becomes a bar).
    pub fn set_length(&self, n: u64) {
        if let Some(pb) = &self.0 {
            if pb.length() != Some(n) {
                pb.set_length(n);
                pb.set_style(style(BYTES_BAR));
            }
        }
    }

    /// Sets the note after a timed bar (e.g. bytes moved and the rate).
    pub fn set_note(&self, note: impl Into<std::borrow::Cow<'static, str>>) {
        if let Some(pb) = &self.0 {
            pb.set_prefix(note);
        }
    }

    /// Sets how far the transfer is.
    pub fn set_position(&self, n: u64) {
        if let Some(pb) = &self.0 {
            pb.set_position(n);
        }
    }

    /// Runs `f` (which prints) with the bar out of the way.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        match &self.0 {
            Some(pb) => pb.suspend(f),
            None => f(),
        }
    }

    /// Removes the bar (once: later calls do nothing).
    pub fn finish(&self) {
        if let Some(pb) = self.0.as_ref().filter(|pb| !pb.is_finished()) {
            pb.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Standard error as a terminal, for `--progress` when it is not one (ANSI cursor moves).
#[derive(Debug)]
struct PlainStderr;

impl TermLike for PlainStderr {
    fn width(&self) -> u16 {
        100
    }
    fn move_cursor_up(&self, n: usize) -> std::io::Result<()> {
        self.write_str(&format!("\x1b[{n}A"))
    }
    fn move_cursor_down(&self, n: usize) -> std::io::Result<()> {
        self.write_str(&format!("\x1b[{n}B"))
    }
    fn move_cursor_right(&self, n: usize) -> std::io::Result<()> {
        self.write_str(&format!("\x1b[{n}C"))
    }
    fn move_cursor_left(&self, n: usize) -> std::io::Result<()> {
        self.write_str(&format!("\x1b[{n}D"))
    }
    fn write_line(&self, s: &str) -> std::io::Result<()> {
        writeln!(std::io::stderr(), "{s}")
    }
    fn write_str(&self, s: &str) -> std::io::Result<()> {
        write!(std::io::stderr(), "{s}")
    }
    fn clear_line(&self) -> std::io::Result<()> {
        self.write_str("\r\x1b[2K")
    }
    fn flush(&self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

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
    #[command(flatten)]
    pub progress: ProgressOpts,
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
    #[command(flatten)]
    pub progress: ProgressOpts,
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
    let progress = args.progress.bar(None, &format!("GET {path}"));
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
            progress.set_length(len);
            done |= body_len >= len;
        }
        progress.set_position(body_len);
        Ok(!done)
    })?;
    progress.finish();
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
    let (mut input, size): (Box<dyn Read>, Option<u64>) = match &args.file {
        Some(p) => {
            let f = File::open(p).with_context(|| format!("opening {}", p.display()))?;
            let size = f.metadata().ok().filter(|m| m.is_file()).map(|m| m.len());
            (Box::new(f), size)
        }
        None => (Box::new(std::io::stdin().lock()), None),
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
    let progress = args.progress.bar(size, &format!("send to {}", args.target));
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
        progress.set_position(total);
        // Our FIN acknowledged means every byte was.
        let state = stack.tcp().state(conn);
        let finished = shut
            && matches!(
                state,
                Some(State::FinWait2 | State::TimeWait | State::Closed) | None
            );
        Ok(!finished)
    })?;
    progress.finish();
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
    fn progress_only_on_a_terminal_unless_told() {
        let auto = ProgressOpts::default();
        assert!(auto.wanted(true));
        assert!(!auto.wanted(false), "no bar in a pipe or a log");
        let on = ProgressOpts {
            progress: true,
            no_progress: false,
        };
        assert!(on.wanted(false));
        let off = ProgressOpts {
            progress: false,
            no_progress: true,
        };
        assert!(!off.wanted(true));
    }

    #[test]
    fn response_heads() {
        let r = b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello";
        assert_eq!(parse_response_head(r), Some((38, 200, Some(5))));
        assert_eq!(parse_response_head(b"HTTP/1.0 200 OK\r\n"), None);
    }
}
