//! Looking into a running `serve` from outside: the control socket behind
//! `ringstack stats --control PATH`, the statistics it answers with, and the housekeeping every
//! model's main loop runs (the control socket, SIGUSR1, `--stats-interval`).
//!
//! # The control protocol
//!
//! `serve --control PATH` listens on a Unix stream socket at `PATH` (mode 0600: the answers
//! show every connection). A client connects, sends one line — `stats` or `stats json` — and
//! reads the answer until the server closes: the nstat-like counters of every layer, drop
//! reasons included, the services' own counters, and the `ss -ti`-like table of TCP sockets;
//! or the same as one JSON object. The socket is non-blocking and polled from the serve loop
//! (no thread of its own). A stale socket file left by a killed serve is replaced; a live one is
//! not; anything else at `PATH` is never touched. The file is removed when serve exits.

use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant as StdInstant};

use anyhow::{bail, Context, Result};
use ringstack_stack::{Counter, DropReason, Duration, Instant, Stack};
use serde_json::json;

use crate::models::App;

/// What a client asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// For people.
    Text,
    /// One JSON object.
    Json,
}

/// Longest request line accepted.
const MAX_REQUEST: usize = 256;
/// A client that has not finished within this is dropped.
const CLIENT_TIMEOUT: StdDuration = StdDuration::from_secs(5);

/// The layers counters are grouped by, in the order of a frame's journey up the stack.
const LAYERS: [&str; 8] = [
    "link", "arp", "ipv4", "icmp", "udp", "tcp", "copies", "other",
];

/// The layer a counter or drop reason belongs to, from its name.
fn layer_of(name: &str) -> &'static str {
    const PREFIXES: [(&str, &str); 8] = [
        ("Eth", "link"),
        ("TxQueue", "link"),
        ("Arp", "arp"),
        ("Ip", "ipv4"),
        ("Icmp", "icmp"),
        ("Udp", "udp"),
        ("Tcp", "tcp"),
        ("Copy", "copies"),
    ];
    PREFIXES
        .iter()
        .find(|(p, _)| name.starts_with(p))
        .map_or("other", |(_, l)| l)
}

/// The `ss -ti`-like table of every TCP socket, under a header stamped with `now`.
pub fn connection_table(now: Instant, stack: &Stack) -> String {
    let tcp = stack.tcp();
    let mut out = format!(
        "ringstack: connections at {:.3} s ({} sockets)\n{:<11} {:>7} {:>7} {:<21} {:<21}\n",
        now.total_millis() as f64 / 1000.0,
        tcp.socket_count(),
        "State",
        "Recv-Q",
        "Send-Q",
        "Local Address:Port",
        "Peer Address:Port"
    );
    for h in tcp.handles() {
        if let Some(info) = tcp.info(h) {
            out.push_str(&info.to_string());
            if !out.ends_with('\n') {
                out.push('\n');
            }
        }
    }
    out
}

/// Every layer's counters, nstat-like (`Name value`, then `Drop.Reason value  # why`), under
/// a `[layer]` heading each; a layer with nothing counted says so.
pub fn counters_by_layer(stack: &Stack) -> String {
    let c = stack.counters();
    let mut out = String::new();
    for layer in LAYERS {
        let rows: Vec<String> = c
            .iter()
            .filter(|(k, _)| layer_of(k.name()) == layer)
            .map(|(k, v)| format!("  {:<30}{:>12}\n", k.name(), v))
            .chain(
                c.iter_drops()
                    .filter(|(r, _)| layer_of(r.name()) == layer)
                    .map(|(r, v)| {
                        format!(
                            "  {:<30}{:>12}  # {}\n",
                            format!("Drop.{}", r.name()),
                            v,
                            r.describe()
                        )
                    }),
            )
            .collect();
        if rows.is_empty() && layer == "other" {
            continue;
        }
        out.push_str(&format!("[{layer}]\n"));
        if rows.is_empty() {
            out.push_str("  (nothing counted)\n");
        }
        for r in rows {
            out.push_str(&r);
        }
    }
    out
}

/// The whole answer to `stats`, for people.
pub fn render_text(now: Instant, stack: &Stack, app: &App) -> String {
    let mut out = format!(
        "ringstack: stats at {:.3} s\n== counters by layer (drops with their reason) ==\n",
        now.total_millis() as f64 / 1000.0
    );
    out.push_str(&counters_by_layer(stack));
    out.push_str("== services ==\n");
    out.push_str(&app.render());
    out.push_str("== connections ==\n");
    out.push_str(&connection_table(now, stack));
    out
}

/// The whole answer to `stats json`.
pub fn render_json(now: Instant, stack: &Stack, app: &App) -> serde_json::Value {
    let c = stack.counters();
    let mut layers = serde_json::Map::new();
    for layer in LAYERS {
        let counters: serde_json::Map<String, serde_json::Value> = Counter::ALL
            .iter()
            .filter(|k| layer_of(k.name()) == layer)
            .map(|k| (k.name().to_string(), json!(c.get(*k))))
            .collect();
        let drops: serde_json::Map<String, serde_json::Value> = DropReason::ALL
            .iter()
            .filter(|r| layer_of(r.name()) == layer && c.drops(**r) > 0)
            .map(|r| {
                (
                    r.name().to_string(),
                    json!({"count": c.drops(*r), "reason": r.describe()}),
                )
            })
            .collect();
        if counters.is_empty() && drops.is_empty() {
            continue;
        }
        layers.insert(
            layer.to_string(),
            json!({"counters": counters, "drops": drops}),
        );
    }
    let us = |d: Duration| d.total_micros();
    let tcp = stack.tcp();
    let conns: Vec<serde_json::Value> = tcp
        .handles()
        .filter_map(|h| tcp.info(h))
        .map(|i| {
            json!({
                "state": i.state.ss_name(),
                "local": i.local.to_string(),
                "peer": i.remote.to_string(),
                "recv_q": i.recv_queue,
                "send_q": i.send_queue,
                "congestion": i.congestion,
                "mss": i.mss,
                "cwnd": i.cwnd,
                "ssthresh": (i.ssthresh != u32::MAX).then_some(i.ssthresh),
                "srtt_us": i.srtt.map(us),
                "rttvar_us": us(i.rttvar),
                "rto_us": us(i.rto),
                "snd_wnd": i.snd_wnd,
                "rcv_wnd": i.rcv_wnd,
                "unacked": i.unacked,
                "backoff": i.backoff,
                "retrans": i.total_retrans,
                "timeouts": i.timeouts,
                "bytes_sent": i.bytes_sent,
                "bytes_retrans": i.bytes_retrans,
                "bytes_acked": i.bytes_acked,
                "bytes_received": i.bytes_received,
                "segs_in": i.segs_in,
                "segs_out": i.segs_out,
            })
        })
        .collect();
    json!({
        "at_s": now.total_millis() as f64 / 1000.0,
        "layers": layers,
        "total_drops": c.total_drops(),
        "services": app.to_json(),
        "connections": conns,
    })
}

/// Renders the answer in `format`.
pub fn render(format: Format, now: Instant, stack: &Stack, app: &App) -> String {
    match format {
        Format::Text => render_text(now, stack, app),
        Format::Json => format!("{}\n", render_json(now, stack, app)),
    }
}

struct Client {
    stream: UnixStream,
    input: Vec<u8>,
    out: Option<(Vec<u8>, usize)>,
    since: StdInstant,
}

/// The listening control socket of a running serve.
pub struct ControlServer {
    listener: UnixListener,
    path: PathBuf,
    clients: Vec<Client>,
    /// Requests answered.
    pub answered: u64,
}

impl ControlServer {
    /// Listens at `path`: replaces a stale socket left by a dead serve, refuses a live one or
    /// anything that is not a socket.
    pub fn bind(path: &Path) -> Result<ControlServer> {
        if let Ok(meta) = std::fs::symlink_metadata(path) {
            if !meta.file_type().is_socket() {
                bail!(
                    "--control {}: the path exists and is not a socket: choose another path",
                    path.display()
                );
            }
            if UnixStream::connect(path).is_ok() {
                bail!(
                    "--control {}: another serve is listening there: stop it or choose another path",
                    path.display()
                );
            }
            std::fs::remove_file(path)
                .with_context(|| format!("removing the stale socket {}", path.display()))?;
        }
        let listener = UnixListener::bind(path)
            .with_context(|| format!("--control {}: cannot listen there", path.display()))?;
        listener.set_nonblocking(true)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        Ok(ControlServer {
            listener,
            path: path.to_path_buf(),
            clients: Vec::new(),
            answered: 0,
        })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Accepts clients, reads their requests, writes the answers `answer` renders — all
    /// without blocking. Returns whether anything happened.
    pub fn poll(&mut self, mut answer: impl FnMut(Format) -> String) -> bool {
        let mut did = false;
        while let Ok((stream, _)) = self.listener.accept() {
            if stream.set_nonblocking(true).is_ok() {
                self.clients.push(Client {
                    stream,
                    input: Vec::new(),
                    out: None,
                    since: StdInstant::now(),
                });
                did = true;
            }
        }
        let answered = &mut self.answered;
        self.clients.retain_mut(|c| {
            if c.since.elapsed() > CLIENT_TIMEOUT {
                return false;
            }
            if c.out.is_none() {
                let mut buf = [0u8; MAX_REQUEST];
                let eof = loop {
                    match c.stream.read(&mut buf) {
                        Ok(0) => break true,
                        Ok(n) => {
                            c.input.extend_from_slice(&buf[..n]);
                            did = true;
                            if c.input.len() > MAX_REQUEST {
                                return false;
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break false,
                        Err(_) => return false,
                    }
                };
                let Some(end) = c.input.iter().position(|&b| b == b'\n') else {
                    return !eof;
                };
                let line = String::from_utf8_lossy(&c.input[..end]).trim().to_string();
                let reply = match line.as_str() {
                    "stats" => answer(Format::Text),
                    "stats json" => answer(Format::Json),
                    other => {
                        format!("error: unknown request {other:?}: send `stats` or `stats json`\n")
                    }
                };
                *answered += 1;
                c.out = Some((reply.into_bytes(), 0));
            }
            let Some((out, pos)) = &mut c.out else {
                return true;
            };
            loop {
                match c.stream.write(&out[*pos..]) {
                    Ok(n) => {
                        *pos += n;
                        did = true;
                        if *pos == out.len() {
                            return false; // done: dropping closes it
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                    Err(_) => return false,
                }
            }
        });
        did
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// `ringstack stats`: asks the serve listening at `path` and returns its answer.
pub fn query(path: &Path, format: Format) -> Result<String> {
    let mut s = UnixStream::connect(path).with_context(|| {
        format!(
            "cannot reach a serve at {}: is `ringstack serve --control {}` running?",
            path.display(),
            path.display()
        )
    })?;
    s.set_read_timeout(Some(StdDuration::from_secs(10)))?;
    s.set_write_timeout(Some(StdDuration::from_secs(10)))?;
    let req: &[u8] = match format {
        Format::Text => b"stats\n",
        Format::Json => b"stats json\n",
    };
    s.write_all(req)?;
    let mut answer = String::new();
    s.read_to_string(&mut answer)
        .with_context(|| format!("reading the answer from {}", path.display()))?;
    if answer.is_empty() {
        bail!("the serve at {} closed without answering", path.display());
    }
    Ok(answer)
}

/// Runs a closure on the stack: directly (`&mut |f| f(stack)`) or under a `Net`'s lock
/// (`&mut |f| net.with_stack(|s| f(s))`).
pub type WithStack<'a> = dyn FnMut(&mut dyn FnMut(&mut Stack)) + 'a;

/// What every model's main loop does besides serving: the control socket, SIGUSR1 (counters
/// and connections on stdout) and `--stats-interval` (connections on stdout).
pub struct Housekeeping {
    /// The control socket, if `--control` was given.
    pub control: Option<ControlServer>,
    usr1: Arc<AtomicBool>,
    interval: Duration,
    next_stats: Option<Instant>,
    app: Arc<App>,
    last_control: StdInstant,
}

/// How often the control socket is looked at.
const CONTROL_POLL: StdDuration = StdDuration::from_millis(10);

impl Housekeeping {
    /// `usr1` is set by the SIGUSR1 handler; `interval` zero = no periodic table.
    pub fn new(
        control: Option<ControlServer>,
        usr1: Arc<AtomicBool>,
        interval: Duration,
        app: Arc<App>,
    ) -> Housekeeping {
        Housekeeping {
            control,
            usr1,
            interval,
            next_stats: None,
            app,
            last_control: StdInstant::now(),
        }
    }

    /// One round. `with_stack` runs its argument on the stack (directly, or under a `Net`'s
    /// lock); it is called only when there is something to render.
    pub fn tick(&mut self, now: Instant, with_stack: &mut WithStack<'_>) {
        let app = &*self.app;
        if self.usr1.swap(false, Ordering::Relaxed) {
            with_stack(&mut |s| {
                print!(
                    "ringstack: counters at {:.3} s\n{}{}{}",
                    now.total_millis() as f64 / 1000.0,
                    s.counters(),
                    app.render(),
                    connection_table(now, s)
                );
            });
            let _ = io::stdout().flush();
        }
        if self.interval > Duration::ZERO {
            match self.next_stats {
                None => self.next_stats = Some(now + self.interval),
                Some(t) if now >= t => {
                    with_stack(&mut |s| print!("{}", connection_table(now, s)));
                    let _ = io::stdout().flush();
                    self.next_stats = Some(now + self.interval);
                }
                Some(_) => {}
            }
        }
        if let Some(ctl) = &mut self.control {
            if self.last_control.elapsed() < CONTROL_POLL {
                return;
            }
            self.last_control = StdInstant::now();
            ctl.poll(|format| {
                let mut out = String::new();
                with_stack(&mut |s| out = render(format, now, s, app));
                out
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_counter_and_drop_reason_has_a_layer() {
        for c in Counter::ALL {
            assert_ne!(layer_of(c.name()), "other", "{}", c.name());
        }
        for r in DropReason::ALL {
            assert_ne!(layer_of(r.name()), "other", "{}", r.name());
        }
        assert_eq!(layer_of("Ipv4BadChecksum"), "ipv4");
        assert_eq!(layer_of("TcpExtTW"), "tcp");
    }

    #[test]
    fn a_control_socket_answers_and_refuses_to_clobber() {
        let dir = std::env::temp_dir().join(format!("ringstack-ctl-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ctl.sock");
        let mut server = ControlServer::bind(&path).unwrap();
        // A live server is not replaced.
        assert!(ControlServer::bind(&path).is_err());
        let client = std::thread::spawn({
            let path = path.clone();
            move || {
                (
                    query(&path, Format::Text).unwrap(),
                    query(&path, Format::Json).unwrap(),
                )
            }
        });
        let deadline = StdInstant::now() + StdDuration::from_secs(20);
        while server.answered < 2 || !client.is_finished() {
            assert!(StdInstant::now() < deadline, "no answer");
            server.poll(|f| match f {
                Format::Text => "text answer\n".into(),
                Format::Json => "{\"a\":1}\n".into(),
            });
            std::thread::sleep(StdDuration::from_millis(5));
        }
        let (text, json) = client.join().unwrap();
        assert_eq!(text, "text answer\n");
        assert_eq!(json, "{\"a\":1}\n");
        drop(server);
        assert!(!path.exists(), "the socket file is removed on exit");
        // A regular file at the path is never touched.
        std::fs::write(&path, "precious").unwrap();
        assert!(ControlServer::bind(&path).is_err());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "precious");
        // A stale socket (no server behind it) is replaced.
        std::fs::remove_file(&path).unwrap();
        drop(UnixListener::bind(&path).unwrap());
        assert!(path.exists());
        let server = ControlServer::bind(&path).unwrap();
        drop(server);
        let _ = std::fs::remove_dir_all(dir);
    }
}
