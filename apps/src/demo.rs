//! The in-memory demo: host A (198.18.0.1) and host B (198.18.0.2) on one simulated Ethernet
//! link, driven on a virtual clock. Every step prints the journey of its frames through both
//! stacks; the end prints both stacks' counters.

use std::net::{Ipv4Addr, SocketAddrV4};

use anyhow::{bail, Context, Result};
use clap::Args;
use ringstack_nic::{Impairment, LinkConfig, MemoryLink, Nic, PcapNic};
use ringstack_sockets::sim::Sim;
use ringstack_sockets::Host;
use ringstack_stack::time::Duration;
use ringstack_stack::{Config, PingEvent, Readiness, TcpError};

use crate::render;

/// In `ringstack trace --json`, standard output carries only JSON: narration goes to stderr.
static NARRATE_TO_STDERR: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

macro_rules! say {
    ($($t:tt)*) => {
        if NARRATE_TO_STDERR.load(std::sync::atomic::Ordering::Relaxed) {
            eprintln!($($t)*)
        } else {
            println!($($t)*)
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

type DemoHost = Host<Box<dyn Nic>>;

fn header(title: &str) {
    say!(
        "\n── {title} {}",
        "─".repeat(70usize.saturating_sub(title.len()))
    );
}

fn show(args: &DemoArgs, a: &mut DemoHost, b: &mut DemoHost) {
    if args.journey > 0 {
        render::journey(
            &mut [("A", a.stack()), ("B", b.stack())],
            &args.filter,
            args.journey,
        );
    }
}

/// Runs the demo.
pub fn run(args: &DemoArgs) -> Result<()> {
    NARRATE_TO_STDERR.store(args.filter.json, std::sync::atomic::Ordering::Relaxed);
    // A 20 µs propagation delay makes cause and effect visible in the timestamps.
    let mut link = LinkConfig::impaired(Impairment {
        delay: Duration::from_micros(20),
        ..Impairment::none()
    });
    if let Some(spec) = &args.impair {
        let imp: Impairment = match spec.parse() {
            Ok(i) => i,
            Err(e) => crate::usage!("--impair {spec:?}: {e}"),
        };
        link = LinkConfig::impaired(imp);
    }
    let (nic_a, nic_b) = MemoryLink::pair(link);
    let nic_a: Box<dyn Nic> = match &args.pcap {
        Some(path) => Box::new(
            PcapNic::create(nic_a, path)
                .with_context(|| format!("creating pcap file {}", path.display()))?,
        ),
        None => Box::new(nic_a),
    };
    let nic_b: Box<dyn Nic> = Box::new(nic_b);
    let mut sim = Sim::new();
    let mut a = Host::new(nic_a, Config::new([0; 6], A, 24), sim.now);
    let mut b = Host::new(nic_b, Config::new([0; 6], B, 24), sim.now);
    let trace = if args.journey > 0 { 10_000 } else { 0 };
    a.stack().set_trace_capacity(trace);
    b.stack().set_trace_capacity(trace);

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
    let _ = a.stack().tracer().drain().count();
    let _ = b.stack().tracer().drain().count();
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

/// Options of `ringstack trace`.
#[derive(Args, Debug, Clone)]
pub struct TraceArgs {
    #[command(flatten)]
    pub filter: render::TraceFilter,
    /// Impair the demo's link, e.g. `loss=5%,seed=3` (drops and retransmissions appear).
    #[arg(long)]
    pub impair: Option<String>,
    /// Bytes the TCP step sends.
    #[arg(long, default_value_t = 20_000)]
    pub tcp_bytes: usize,
}

/// `ringstack trace`: the demo's traffic, every event that passes the filter, in time order.
pub fn trace(args: &TraceArgs) -> Result<()> {
    run(&DemoArgs {
        journey: usize::MAX,
        impair: args.impair.clone(),
        pcap: None,
        tcp_bytes: args.tcp_bytes,
        filter: args.filter.clone(),
    })
}
