//! The in-memory demo: host A (198.18.0.1) and host B (198.18.0.2) on one simulated Ethernet
//! link, driven on a virtual clock. Every step prints the journey of its frames through both
//! stacks; the end prints both stacks' counters.

use std::net::{Ipv4Addr, SocketAddrV4};

use anyhow::{bail, Context, Result};
use clap::Args;
use ringstack_nic::{Impairment, LinkConfig, MemoryLink, Nic, PcapNic};
use ringstack_stack::time::{Duration, Instant};
use ringstack_stack::{Config, PingEvent, Readiness, TcpError};

use crate::models::{direct, App, Options, Services};
use crate::render;
use crate::runtime::{Driver, NicTrace};
use crate::services::Service;

/// In `ringstack trace --json`, standard output carries only JSON: narration goes to stderr.
static NARRATE_TO_STDERR: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

macro_rules! say {
    ($($t:tt)*) => {
        if NARRATE_TO_STDERR.load(std::sync::atomic::Ordering::Relaxed) {
            eprintln!($($t)*)
        } else {
            render::out!($($t)*)
        }
    };
}

/// Options of `ringstack demo`.
#[derive(Args, Debug, Clone)]
pub struct DemoArgs {
    /// Trace lines to print per step (0 prints counters only).
    #[arg(long, default_value_t = 40)]
    pub journey: usize,
    /// Impair the link, e.g. `loss=5%,dup=1%,reorder=2%,corrupt=0.5%,delay=1ms,seed=7`.
    #[arg(long)]
    pub impair: Option<String>,
    /// Write every frame host A sends or receives to this pcap file (open it in Wireshark).
    #[arg(long)]
    pub pcap: Option<std::path::PathBuf>,
    /// Bytes the TCP step sends (and gets echoed back).
    #[arg(long, default_value_t = 200_000)]
    pub tcp_bytes: usize,
    /// Which events the journey shows (set by `ringstack trace`).
    #[arg(skip)]
    pub filter: render::TraceFilter,
}

impl Default for DemoArgs {
    fn default() -> Self {
        DemoArgs {
            journey: 40,
            impair: None,
            pcap: None,
            tcp_bytes: 200_000,
            filter: render::TraceFilter::default(),
        }
    }
}

const A: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const B: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const STEP_TIMEOUT: Duration = Duration::from_secs(120);

type DemoHost = Driver;

/// The demo's virtual clock: hosts are polled until nothing moves at the current instant, then
/// time jumps to the earliest deadline (as `ringstack_sockets::sim::Sim`, over [`Driver`]s so
/// that the NIC's side of each frame is traced too). The same seed always gives the same run.
struct Sim {
    now: Instant,
}

impl Sim {
    fn new() -> Self {
        Sim {
            now: Instant::from_millis(0),
        }
    }

    /// Polls every host until none moves a frame (bounded as a guard against livelock).
    fn settle(&mut self, hosts: &mut [&mut DemoHost]) -> Result<()> {
        for _ in 0..10_000 {
            let mut moved = false;
            for h in hosts.iter_mut() {
                moved |= h.poll(self.now)?;
            }
            if !moved {
                break;
            }
        }
        Ok(())
    }

    /// Steps until `done(now, hosts)` or `timeout` of virtual time has passed; returns whether
    /// `done` became true.
    fn run_until(
        &mut self,
        hosts: &mut [&mut DemoHost],
        timeout: Duration,
        mut done: impl FnMut(Instant, &mut [&mut DemoHost]) -> bool,
    ) -> Result<bool> {
        let deadline = self.now + timeout;
        loop {
            self.settle(hosts)?;
            if done(self.now, hosts) {
                return Ok(true);
            }
            if self.now >= deadline {
                return Ok(false);
            }
            self.settle(hosts)?;
            let Some(next) = hosts.iter().filter_map(|h| h.poll_at()).min() else {
                // Idle: nothing will ever happen by itself.
                return Ok(done(self.now, hosts));
            };
            let t = next.min(deadline);
            // Deadlines in the past are served at the next instant.
            self.now = if t > self.now {
                t
            } else {
                self.now + Duration::from_micros(1)
            };
        }
    }
}

/// Two hosts, A (198.18.0.1) and B (198.18.0.2), on an in-memory link with a 20 µs delay (or
/// `impair`), tracing every layer when `trace`.
fn two_hosts(
    impair: Option<&str>,
    pcap: Option<&std::path::Path>,
    trace: bool,
    configure: impl Fn(&mut Config),
) -> Result<(Sim, DemoHost, DemoHost)> {
    // A 20 µs propagation delay makes cause and effect visible in the timestamps.
    let mut link = LinkConfig::impaired(Impairment {
        delay: Duration::from_micros(20),
        ..Impairment::none()
    });
    if let Some(spec) = impair {
        let imp: Impairment = match spec.parse() {
            Ok(i) => i,
            Err(e) => crate::usage!("--impair {spec:?}: {e}"),
        };
        link = LinkConfig::impaired(imp);
    }
    let (nic_a, nic_b) = MemoryLink::pair(link);
    let nic_a: Box<dyn Nic> = match pcap {
        Some(path) => Box::new(
            PcapNic::create(nic_a, path)
                .with_context(|| format!("creating pcap file {}", path.display()))?,
        ),
        None => Box::new(nic_a),
    };
    let nic_b: Box<dyn Nic> = Box::new(nic_b);
    let sim = Sim::new();
    let (mut config_a, mut config_b) = (Config::new([0; 6], A, 24), Config::new([0; 6], B, 24));
    configure(&mut config_a);
    configure(&mut config_b);
    let mut a = Driver::new(nic_a, config_a, sim.now);
    let mut b = Driver::new(nic_b, config_b, sim.now);
    if trace {
        a.trace(10_000, NicTrace::new(None, false));
        b.trace(10_000, NicTrace::new(None, false));
    }
    Ok((sim, a, b))
}

fn header(title: &str) {
    say!(
        "\n── {title} {}",
        "─".repeat(70usize.saturating_sub(title.len()))
    );
}

fn show(args: &DemoArgs, a: &mut DemoHost, b: &mut DemoHost) {
    let events = [("A", a.drain_trace()), ("B", b.drain_trace())];
    if args.journey > 0 {
        render::journey(&events, &args.filter, args.journey);
    }
}

/// Runs the demo.
pub fn run(args: &DemoArgs) -> Result<()> {
    NARRATE_TO_STDERR.store(args.filter.json, std::sync::atomic::Ordering::Relaxed);
    let (mut sim, mut a, mut b) = two_hosts(
        args.impair.as_deref(),
        args.pcap.as_deref(),
        args.journey > 0,
        |_| {},
    )?;

    say!("ringstack demo: host A {A} and host B {B} on an in-memory Ethernet link");
    say!("(virtual time; ↑ = receive path, ↓ = transmit path; #N groups the events of one input)");

    header("1. start-up: each host announces itself with a gratuitous ARP");
    sim.run_until(&mut [&mut a, &mut b], Duration::from_millis(1), |_, _| {
        false
    })?;
    show(args, &mut a, &mut b);

    header("2. ping B from A: ARP resolves B's MAC, then ICMP echo request and reply");
    let ping = a.stack().ping_open(0x2a).context("opening a ping socket")?;
    let mut replies = 0;
    for seq in 1..=3u16 {
        let now = sim.now;
        a.stack().ping_send(
            now,
            ping,
            B,
            seq,
            b"ringstack ping payload 0123456789abcdef",
        )?;
        let got = sim.run_until(&mut [&mut a, &mut b], Duration::from_secs(3), |_, hosts| {
            matches!(hosts[0].stack().ping_recv(ping), Some(PingEvent::Reply(_)))
        })?;
        if got {
            replies += 1;
        }
        if seq == 1 {
            show(args, &mut a, &mut b);
        }
    }
    let _ = (a.drain_trace(), b.drain_trace());
    say!("  {replies}/3 echo replies received");

    header("3. UDP echo: A sends to B port 7, B echoes it back");
    let echo = b
        .stack()
        .udp_bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 7))?;
    let client = a
        .stack()
        .udp_bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0))?;
    let msg = b"hello through six layers";
    udp_echo(&mut sim, &mut a, &mut b, echo, client, msg)?;
    show(args, &mut a, &mut b);

    header("4. UDP echo of a 4000-byte datagram: IPv4 fragments it, the peer reassembles");
    let big: Vec<u8> = (0..4000u32).map(|i| (i * 31 % 251) as u8).collect();
    udp_echo(&mut sim, &mut a, &mut b, echo, client, &big)?;
    show(args, &mut a, &mut b);

    header("5. TCP: A connects to B port 7, sends data, B echoes it, both close");
    match tcp_echo(&mut sim, &mut a, &mut b, args.tcp_bytes) {
        Ok(()) => {}
        Err(e) => say!("  TCP step did not complete: {e:#}"),
    }
    show(args, &mut a, &mut b);

    header("counters (nstat style; only non-zero rows)");
    if !args.filter.json {
        render::counters(("A", a.stack_ref()), ("B", b.stack_ref()));
    }
    say!("\n  NIC A: {:?}", a.nic().stats());
    Ok(())
}

fn udp_echo(
    sim: &mut Sim,
    a: &mut DemoHost,
    b: &mut DemoHost,
    echo: ringstack_stack::UdpHandle,
    client: ringstack_stack::UdpHandle,
    msg: &[u8],
) -> Result<()> {
    let now = sim.now;
    a.stack()
        .udp_send_to(now, client, msg, SocketAddrV4::new(B, 7))
        .context("sending the UDP datagram")?;
    let mut buf = vec![0u8; 65_536];
    let mut answer = None;
    sim.run_until(&mut [a, b], Duration::from_secs(3), |now, hosts| {
        if let Ok((n, from)) = hosts[1].stack().udp_recv_from(echo, &mut buf) {
            let data = buf[..n].to_vec();
            let _ = hosts[1].stack().udp_send_to(now, echo, &data, from);
        }
        if let Ok((n, _)) = hosts[0].stack().udp_recv_from(client, &mut buf) {
            answer = Some(buf[..n].to_vec());
            return true;
        }
        false
    })?;
    match answer {
        Some(data) if data == msg => {
            say!("  echoed {} bytes intact", data.len());
            Ok(())
        }
        Some(data) => bail!("echo came back altered ({} bytes)", data.len()),
        None => {
            say!("  no echo came back within 3 s");
            Ok(())
        }
    }
}

fn tcp_echo(sim: &mut Sim, a: &mut DemoHost, b: &mut DemoHost, bytes: usize) -> Result<()> {
    let listener = b.stack().tcp_listen(7, 16).context("listening on B:7")?;
    let conn = a
        .stack()
        .tcp_connect(sim.now, SocketAddrV4::new(B, 7), 0)
        .context("connecting A to B:7")?;
    let data: Vec<u8> = (0..bytes as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let mut sent = 0;
    let mut echoed = Vec::with_capacity(bytes);
    let mut server = None;
    let mut buf = vec![0u8; 16 * 1024];
    let mut pending_echo: Vec<u8> = Vec::new();
    let mut closed = false;
    let mut a_shut = false;
    let done = sim.run_until(&mut [a, b], STEP_TIMEOUT, |now, hosts| {
        // Client: write what fits, read the echo.
        if sent < data.len() {
            match hosts[0].stack().tcp_send(now, conn, &data[sent..]) {
                Ok(n) => sent += n,
                Err(TcpError::WouldBlock) => {}
                Err(_) => return true,
            }
        } else if !a_shut
            && hosts[0]
                .stack()
                .readiness(conn.into())
                .contains(Readiness::WRITABLE)
        {
            // Half-close once connected: "that's all I have to say" (a shutdown before the
            // handshake completes would abort it, as in Linux).
            a_shut = hosts[0].stack().tcp_shutdown(now, conn).is_ok();
        }
        loop {
            match hosts[0].stack().tcp_recv(now, conn, &mut buf) {
                Ok(0) => {
                    closed = true;
                    break;
                }
                Ok(n) => echoed.extend_from_slice(&buf[..n]),
                Err(_) => break,
            }
        }
        // Server: accept, echo everything, close after the client's FIN.
        if server.is_none() {
            server = hosts[1].stack().tcp_accept(listener).ok();
        }
        if let Some(s) = server {
            loop {
                match hosts[1].stack().tcp_recv(now, s, &mut buf) {
                    Ok(0) => {
                        if pending_echo.is_empty() {
                            let _ = hosts[1].stack().tcp_close(now, s);
                        }
                        break;
                    }
                    Ok(n) => pending_echo.extend_from_slice(&buf[..n]),
                    Err(_) => break,
                }
            }
            if !pending_echo.is_empty() {
                if let Ok(n) = hosts[1].stack().tcp_send(now, s, &pending_echo) {
                    pending_echo.drain(..n);
                }
            }
        }
        closed
    })?;
    if !done {
        bail!(
            "timed out after {} bytes sent, {} echoed",
            sent,
            echoed.len()
        );
    }
    if echoed != data {
        bail!(
            "echo differs from what was sent ({} of {} bytes back)",
            echoed.len(),
            data.len()
        );
    }
    say!(
        "  {} bytes sent and echoed back intact; connection closed",
        data.len()
    );
    let _ = a.stack().tcp_close(sim.now, conn);
    Ok(())
}

/// What `ringstack trace` runs.
#[derive(clap::ValueEnum, Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Scenario {
    /// The demo: ARP, ping, UDP echo (with fragmentation) and a TCP echo.
    #[default]
    Demo,
    /// curl's request to ringstack's HTTP service: ARP, the three-way handshake, the GET, the
    /// response, the FIN exchange.
    Http,
}

/// Options of `ringstack trace`.
#[derive(Args, Debug, Clone)]
pub struct TraceArgs {
    /// The traffic to trace.
    #[arg(long, value_enum, default_value_t = Scenario::Demo)]
    pub scenario: Scenario,
    #[command(flatten)]
    pub filter: render::TraceFilter,
    /// Impair the link, e.g. `loss=5%,seed=3` (drops and retransmissions appear).
    #[arg(long)]
    pub impair: Option<String>,
    /// Bytes the demo's TCP step sends.
    #[arg(long, default_value_t = 20_000)]
    pub tcp_bytes: usize,
}

/// `ringstack trace`: the scenario's traffic, every event that passes the filter, in time
/// order.
pub fn trace(args: &TraceArgs) -> Result<()> {
    match args.scenario {
        Scenario::Demo => run(&DemoArgs {
            journey: usize::MAX,
            impair: args.impair.clone(),
            pcap: None,
            tcp_bytes: args.tcp_bytes,
            filter: args.filter.clone(),
        }),
        Scenario::Http => http(args),
    }
}

/// Exactly what `curl http://198.18.0.2/` (curl 7.88.1, Debian 12) sends.
pub const CURL_REQUEST: &str =
    "GET / HTTP/1.1\r\nHost: 198.18.0.2\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n";

/// `ringstack trace --scenario http`: host A plays curl (connect, send curl's request, read
/// the response to its Content-Length, close), host B runs `serve`'s HTTP service on port 80.
fn http(args: &TraceArgs) -> Result<()> {
    NARRATE_TO_STDERR.store(args.filter.json, std::sync::atomic::Ordering::Relaxed);
    // Like a Linux host running curl, A announces nothing: it asks for B's MAC when it needs it.
    let (mut sim, mut a, mut b) = two_hosts(args.impair.as_deref(), None, true, |c| {
        if c.addr == A {
            c.arp.gratuitous = false;
        }
    })?;
    // `serve`'s HTTP service (direct model), with its built-in page at `/`.
    let app = App::new(Options {
        services: Services {
            echo: false,
            discard: false,
            http: true,
            iperf: false,
        },
        ..Options::default()
    })?;
    let mut server = direct::Http::new(b.stack(), app)?;
    let journey = |a: &mut DemoHost, b: &mut DemoHost| {
        let events = [("A", a.drain_trace()), ("B", b.drain_trace())];
        render::journey(&events, &args.filter, usize::MAX);
    };
    say!(
        "ringstack trace --scenario http: curl on host A {A} fetches http://{B}/ from ringstack's"
    );
    say!("HTTP service on host B {B}, over an in-memory Ethernet link");
    say!("(virtual time; ↑ = receive path, ↓ = transmit path; #N groups the events of one input)");

    header("0. start-up: A hears the gratuitous ARP B sent as it started");
    sim.run_until(&mut [&mut a, &mut b], Duration::from_millis(1), |_, _| {
        false
    })?;
    journey(&mut a, &mut b);

    header("1. connect: A resolves B's MAC (ARP), then the three-way handshake");
    let conn = a
        .stack()
        .tcp_connect(sim.now, SocketAddrV4::new(B, 80), 0)
        .context("connecting A to B:80")?;
    let connected = sim.run_until(&mut [&mut a, &mut b], STEP_TIMEOUT, |now, hosts| {
        server.poll(now, hosts[1].stack());
        hosts[0]
            .stack()
            .readiness(conn.into())
            .contains(Readiness::WRITABLE)
    })?;
    journey(&mut a, &mut b);
    if !connected {
        bail!("A could not connect to B:80");
    }

    header("2. the request: curl's GET, up B's stack into the HTTP service, and the response");
    let request = CURL_REQUEST.as_bytes();
    let (mut sent, mut response, mut wanted) = (0, Vec::new(), None::<usize>);
    let mut buf = vec![0u8; 16 * 1024];
    let answered = sim.run_until(&mut [&mut a, &mut b], STEP_TIMEOUT, |now, hosts| {
        if sent < request.len() {
            if let Ok(n) = hosts[0].stack().tcp_send(now, conn, &request[sent..]) {
                sent += n;
            }
        }
        server.poll(now, hosts[1].stack());
        while let Ok(n) = hosts[0].stack().tcp_recv(now, conn, &mut buf) {
            if n == 0 {
                break;
            }
            response.extend_from_slice(&buf[..n]);
        }
        if wanted.is_none() {
            wanted = response_length(&response);
        }
        wanted.is_some_and(|w| response.len() >= w)
    })?;
    journey(&mut a, &mut b);
    if !answered {
        bail!("no complete response within {STEP_TIMEOUT}");
    }

    header("3. close: curl closes, the server closes after reading end-of-file");
    let _ = a.stack().tcp_close(sim.now, conn);
    let closed = sim.run_until(&mut [&mut a, &mut b], STEP_TIMEOUT, |now, hosts| {
        server.poll(now, hosts[1].stack());
        // Done once A's FIN and B's FIN are both acknowledged: A waits in TIME-WAIT and B has
        // nothing left but its listener.
        hosts[0].stack().tcp().state(conn) == Some(ringstack_stack::tcp::State::TimeWait)
            && hosts[1].stack().tcp().socket_count() == 1
    })?;
    journey(&mut a, &mut b);
    let head = String::from_utf8_lossy(&response);
    let status = head.lines().next().unwrap_or_default();
    say!(
        "\n  A got {status:?} and {} body bytes; the connection {}",
        response.len() - response_head_len(&response).unwrap_or(0),
        if closed {
            "closed both ways"
        } else {
            "did not close"
        }
    );
    header("counters (nstat style; only non-zero rows)");
    if !args.filter.json {
        render::counters(("A", a.stack_ref()), ("B", b.stack_ref()));
    }
    Ok(())
}

/// Length of the response head, through its blank line.
fn response_head_len(r: &[u8]) -> Option<usize> {
    r.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

/// Total length of a response with a Content-Length, once its head is in.
fn response_length(r: &[u8]) -> Option<usize> {
    let head_len = response_head_len(r)?;
    let head = String::from_utf8_lossy(&r[..head_len]);
    let body: usize = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())?;
    Some(head_len + body)
}
