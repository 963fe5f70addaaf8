//! The same echo, discard and HTTP services written in four I/O styles (`serve --model`), so the
//! notes' Reactor/Proactor comparison ("Reactor模式 … Proactor模式") can be run and measured:
//!
//! | model | who waits | who copies | file |
//! |---|---|---|---|
//! | `direct` | the driver loop polls every service once per round | the service, on the sans-IO `Stack` | [`direct`] |
//! | `reactor` | one thread in `epoll_wait` (edge-triggered), dispatching "ready" to handlers — or, with `--workers N`, to a pool (`EPOLLONESHOT`, re-armed after each job) | the handler's own non-blocking `read`/`write`/`send_file` | [`reactor`] |
//! | `proactor` | one thread reaping a completion queue | the driver ("the kernel"): reads land in the buffers submitted with them, writes are whole buffers handed over | [`proactor`] |
//! | `threads` | every connection's own thread, blocked in `read`/`write` | that thread | [`threads`] |
//!
//! The reactor, proactor and threads models use the `ringstack-sockets` API (a [`Net`] with
//! [`Epoll`](ringstack_sockets::Epoll), [`Ring`](ringstack_sockets::Ring) or blocking
//! [`TcpStream`](ringstack_sockets::TcpStream)s); the direct model uses the stack itself and is
//! driven by `serve`'s real-time loop (or, on a `Net`, by [`run`] polling it). Only the I/O
//! loop differs: HTTP is [`crate::services::http`] (parse, route, ranges, 304, MIME) in every
//! model, echo and discard are a few lines each.
//!
//! The iperf3-compatible server is written once, on the stack (`services::iperf`): in the
//! socket models it is polled from the model's main loop through [`Net::with_stack`].
//!
//! # Limits
//!
//! `--max-clients N` caps the connections *each* TCP service (echo, discard, http) serves at
//! once. Excess connections are **queued, not refused** (as Apache's `MaxRequestWorkers`
//! does): the service stops accepting while it is full, so they wait in the listener's accept
//! queue — the stack completes their handshakes up to the backlog (`--accept-backlog`), then
//! drops the completing ACKs (`Drop.TcpAcceptQueueFull`) and the clients retransmit — and are
//! served as soon as a connection ends. While some wait, [`ServiceStats::waiting`] is set, and
//! each connection accepted after waiting like this is counted in [`ServiceStats::queued`].
//! (`--max-connections`, the stack's own limit on TCP sockets, is the one that refuses.)
//! HTTP connections with nothing to send that receive nothing for `--idle-timeout` are closed
//! in every model
//! ([`ServiceStats::idle_closed`]).

pub mod direct;
pub mod proactor;
pub mod reactor;
pub mod threads;

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant as StdInstant};

use anyhow::Result;
use ringstack_sockets::Net;
use serde_json::json;

use crate::services::http::Handler;
use crate::services::iperf::Iperf;
use crate::services::Service;

/// TCP and UDP port of echo (RFC 862).
pub const ECHO_PORT: u16 = 7;
/// TCP port of discard (RFC 863).
pub const DISCARD_PORT: u16 = 9;
/// TCP port of HTTP.
pub const HTTP_PORT: u16 = 80;
/// Listen backlog of every service (connections the stack holds before we accept them).
pub const BACKLOG: usize = 1024;
/// Default `--idle-timeout`: HTTP connections idle this long are closed (slowloris defence).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Echo: bytes read but not yet written back, per connection, before reading stops
/// (backpressure to the peer).
pub const ECHO_HIGH_WATER: usize = 256 * 1024;
/// Size of each read buffer.
pub const READ_CHUNK: usize = 64 * 1024;
/// How often the main loop of every model runs its housekeeping (the `tick` hook: control
/// socket, SIGUSR1, `--stats-interval`), at least.
pub const TICK: Duration = Duration::from_millis(20);

/// An I/O style for the services (`serve --model`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Model {
    /// Services polled on the sans-IO stack by the driver loop (the default).
    Direct,
    /// An epoll loop dispatching readiness to handlers (optionally a worker pool).
    Reactor,
    /// Owned-buffer reads, writes and accepts submitted to a completion queue, reaped.
    Proactor,
    /// A blocking thread per connection.
    Threads,
}

impl Model {
    /// Every model, in `--help` order.
    pub const ALL: [Model; 4] = [
        Model::Direct,
        Model::Reactor,
        Model::Proactor,
        Model::Threads,
    ];

    /// Its `--model` name.
    pub fn name(self) -> &'static str {
        match self {
            Model::Direct => "direct",
            Model::Reactor => "reactor",
            Model::Proactor => "proactor",
            Model::Threads => "threads",
        }
    }

    /// Parses a `--model` name.
    pub fn parse(s: &str) -> Option<Model> {
        Model::ALL.into_iter().find(|m| m.name() == s)
    }
}

/// Which services run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Services {
    /// Echo on TCP and UDP 7.
    pub echo: bool,
    /// Discard on TCP 9.
    pub discard: bool,
    /// HTTP on TCP 80.
    pub http: bool,
    /// iperf3-compatible on TCP 5201.
    pub iperf: bool,
}

impl Services {
    /// All four.
    pub const ALL: Services = Services {
        echo: true,
        discard: true,
        http: true,
        iperf: true,
    };

    /// Parses `--services`: names separated by commas. `Err` names the unknown one.
    pub fn parse(list: &str) -> Result<Services, String> {
        let mut s = Services::default();
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            match name {
                "echo" => s.echo = true,
                "discard" => s.discard = true,
                "http" => s.http = true,
                "iperf" => s.iperf = true,
                other => return Err(other.to_string()),
            }
        }
        Ok(s)
    }

    /// The names of the enabled services.
    pub fn names(&self) -> Vec<&'static str> {
        [
            (self.echo, "echo"),
            (self.discard, "discard"),
            (self.http, "http"),
            (self.iperf, "iperf"),
        ]
        .into_iter()
        .filter_map(|(on, n)| on.then_some(n))
        .collect()
    }
}

/// How the services run.
#[derive(Clone, Debug)]
pub struct Options {
    /// Which services.
    pub services: Services,
    /// The HTTP root (`None`: a built-in page at `/`).
    pub http_root: Option<PathBuf>,
    /// Connections served at once per TCP service; more wait in the accept queue.
    pub max_clients: Option<usize>,
    /// HTTP connections idle this long are closed.
    pub idle_timeout: Duration,
    /// Reactor: worker threads running the handlers (0 = on the epoll thread).
    pub workers: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            services: Services::ALL,
            http_root: None,
            max_clients: None,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            workers: 0,
        }
    }
}

/// What one TCP service did: its connections, and what the limits did to them. Atomics, since
/// the threaded styles update them from many threads.
#[derive(Debug, Default)]
pub struct ServiceStats {
    /// Connections accepted.
    pub accepted: AtomicU64,
    /// Connections open now.
    pub active: AtomicU64,
    /// Connections accepted only after waiting in the accept queue because the service was at
    /// `--max-clients`.
    pub queued: AtomicU64,
    /// Whether connections wait in the accept queue right now because the service is at
    /// `--max-clients` (as last seen by the model).
    pub waiting: AtomicBool,
    /// Connections closed for being idle longer than `--idle-timeout`.
    pub idle_closed: AtomicU64,
    /// Bytes received.
    pub bytes_in: AtomicU64,
    /// Bytes sent.
    pub bytes_out: AtomicU64,
}

impl ServiceStats {
    /// Whether one more connection fits under `max`.
    pub fn has_room(&self, max: Option<usize>) -> bool {
        max.is_none_or(|m| self.active.load(Ordering::SeqCst) < m as u64)
    }

    /// A connection was accepted (`waited`: after waiting at the limit).
    pub fn admitted(&self, waited: bool) {
        self.accepted.fetch_add(1, Ordering::Relaxed);
        self.active.fetch_add(1, Ordering::SeqCst);
        if waited {
            self.queued.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Records whether connections wait at the limit.
    pub fn set_waiting(&self, on: bool) {
        self.waiting.store(on, Ordering::Relaxed);
    }

    /// A connection ended.
    pub fn closed(&self) {
        self.active.fetch_sub(1, Ordering::SeqCst);
    }

    fn get(a: &AtomicU64) -> u64 {
        a.load(Ordering::Relaxed)
    }

    fn to_json(&self) -> serde_json::Value {
        json!({
            "accepted": Self::get(&self.accepted),
            "active": Self::get(&self.active),
            "queued": Self::get(&self.queued),
            "waiting": self.waiting.load(Ordering::Relaxed),
            "idle_closed": Self::get(&self.idle_closed),
            "bytes_in": Self::get(&self.bytes_in),
            "bytes_out": Self::get(&self.bytes_out),
        })
    }
}

/// The services' shared state: options, the HTTP site, and the per-service counters.
#[derive(Debug)]
pub struct App {
    /// The options.
    pub opts: Options,
    /// The HTTP site (when http runs).
    pub http: Option<Arc<Handler>>,
    /// Echo's counters.
    pub echo: ServiceStats,
    /// Discard's counters.
    pub discard: ServiceStats,
    /// HTTP's counters.
    pub http_stats: ServiceStats,
    /// UDP echo datagrams answered.
    pub udp_echoed: AtomicU64,
}

impl App {
    /// Checks the options (opens the HTTP root).
    pub fn new(opts: Options) -> Result<Arc<App>> {
        let http = if opts.services.http {
            Some(Arc::new(Handler::new(opts.http_root.as_deref())?))
        } else {
            None
        };
        Ok(Arc::new(App {
            opts,
            http,
            echo: ServiceStats::default(),
            discard: ServiceStats::default(),
            http_stats: ServiceStats::default(),
            udp_echoed: AtomicU64::new(0),
        }))
    }

    /// The per-service counters, like `nstat` (one `name value` line each).
    pub fn render(&self) -> String {
        let mut s = String::new();
        let mut row = |name: &str, v: u64| s.push_str(&format!("{name:<28}{v:>12}\n"));
        for (svc, st, on) in [
            ("Echo", &self.echo, self.opts.services.echo),
            ("Discard", &self.discard, self.opts.services.discard),
            ("Http", &self.http_stats, self.opts.services.http),
        ] {
            if !on {
                continue;
            }
            let g = ServiceStats::get;
            row(&format!("{svc}Accepted"), g(&st.accepted));
            row(&format!("{svc}Active"), g(&st.active));
            row(&format!("{svc}Queued"), g(&st.queued));
            row(
                &format!("{svc}Waiting"),
                u64::from(st.waiting.load(Ordering::Relaxed)),
            );
            if svc == "Http" {
                row(&format!("{svc}IdleClosed"), g(&st.idle_closed));
            }
            row(&format!("{svc}BytesIn"), g(&st.bytes_in));
            row(&format!("{svc}BytesOut"), g(&st.bytes_out));
        }
        if self.opts.services.echo {
            row("EchoUdpDatagrams", ServiceStats::get(&self.udp_echoed));
        }
        if let Some(h) = &self.http {
            let r = h.counters.snapshot();
            for (class, v) in r.iter().enumerate().skip(1) {
                row(&format!("HttpResponses{class}xx"), *v);
            }
        }
        s
    }

    /// The same as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        if self.opts.services.echo {
            let mut e = self.echo.to_json();
            e["udp_datagrams"] = json!(ServiceStats::get(&self.udp_echoed));
            m.insert("echo".into(), e);
        }
        if self.opts.services.discard {
            m.insert("discard".into(), self.discard.to_json());
        }
        if let Some(h) = &self.http {
            let mut e = self.http_stats.to_json();
            let r = h.counters.snapshot();
            e["responses"] = json!({
                "1xx": r[1], "2xx": r[2], "3xx": r[3], "4xx": r[4], "5xx": r[5]
            });
            m.insert("http".into(), e);
        }
        serde_json::Value::Object(m)
    }
}

/// What `serve` plugs into a model's main loop.
pub struct Hooks<'a> {
    /// Set by SIGINT/SIGTERM (or a test): the model returns soon after.
    pub stop: &'a AtomicBool,
    /// Called once every listener is bound (`serve` prints its `ready` line).
    pub ready: Box<dyn FnOnce() + 'a>,
    /// Called from the main loop at least every [`TICK`] while running: the control socket,
    /// SIGUSR1, `--stats-interval`.
    pub tick: Box<dyn FnMut(&Net) + 'a>,
}

/// Runs the services in `model` style on `net` until `hooks.stop` is set.
///
/// `net` may drive a real NIC ([`Net::new`]) or be one end of an in-memory link
/// ([`Net::memory_pair_with_clock`] on a [`SystemClock`](ringstack_sockets::SystemClock): the
/// threaded styles need a real clock). The threads model, and the reactor with workers, start
/// the driver thread ([`Net::spawn_driver`]) unless one runs already; the others drive the
/// stack from their own blocking calls when none runs.
pub fn run(model: Model, net: &Net, app: &Arc<App>, hooks: Hooks<'_>) -> Result<()> {
    match model {
        Model::Direct => direct::run_on_net(net, app, hooks),
        Model::Reactor => reactor::run(net, app, hooks),
        Model::Proactor => proactor::run(net, app, hooks),
        Model::Threads => threads::run(net, app, hooks),
    }
}

/// Starts the driver thread unless one runs already (`None` then: someone else owns it).
pub(crate) fn ensure_driver(net: &Net) -> Result<Option<ringstack_sockets::Driver>> {
    match net.spawn_driver() {
        Ok(d) => Ok(Some(d)),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// `0.0.0.0:port`.
pub(crate) fn any(port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port)
}

/// The stack-level services every socket model runs through [`Net::with_stack`]: iperf.
pub(crate) struct StackServices {
    services: Vec<Box<dyn Service + Send>>,
    /// Whether the last poll moved anything (then poll again soon).
    pub busy: bool,
}

impl StackServices {
    pub fn new(net: &Net, app: &App) -> Result<StackServices> {
        let mut services: Vec<Box<dyn Service + Send>> = Vec::new();
        if app.opts.services.iperf {
            let iperf = net.with_stack(|s| Iperf::new(s, crate::services::iperf::PORT))?;
            services.push(Box::new(iperf));
        }
        Ok(StackServices {
            services,
            busy: false,
        })
    }

    /// How long the main loop may wait before polling them again.
    pub fn wait_budget(&self) -> Duration {
        match (self.services.is_empty(), self.busy) {
            (true, _) => TICK,
            (false, true) => Duration::from_millis(1),
            (false, false) => Duration::from_millis(5),
        }
    }

    /// Polls them once; pushes out what they queued.
    pub fn poll(&mut self, net: &Net) {
        if self.services.is_empty() {
            return;
        }
        let now = net.now();
        let did = net.with_stack(|s| {
            let mut did = false;
            for svc in &mut self.services {
                did |= svc.poll(now, s);
            }
            did
        });
        if did {
            let _ = net.poll();
        }
        self.busy = did;
    }
}

/// Calls `tick` when [`TICK`] has passed since the last call.
pub(crate) struct Ticker {
    last: StdInstant,
}

impl Ticker {
    pub fn new() -> Ticker {
        Ticker {
            last: StdInstant::now(),
        }
    }

    pub fn maybe(&mut self, net: &Net, tick: &mut dyn FnMut(&Net)) {
        if self.last.elapsed() >= TICK {
            self.last = StdInstant::now();
            tick(net);
        }
    }
}

/// Discard's per-connection tally: bytes and SHA-256, reported on close as
/// `discard: <peer> <n> bytes sha256 <hex>` so that a test can check what arrived.
#[derive(Default)]
pub struct DiscardTally {
    bytes: u64,
    hash: sha2::Sha256,
}

impl DiscardTally {
    /// Counts `data`.
    pub fn add(&mut self, data: &[u8]) {
        use sha2::Digest;
        self.bytes += data.len() as u64;
        self.hash.update(data);
    }

    /// Prints the report line.
    pub fn report(self, peer: Option<SocketAddrV4>) {
        use sha2::Digest;
        let digest = self.hash.finalize();
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        println!(
            "discard: {} {} bytes sha256 {hex}",
            peer.map_or("?".into(), |p| p.to_string()),
            self.bytes
        );
    }
}
