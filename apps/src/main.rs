//! `ringstack`: the command line. With no arguments it runs the in-memory demo, which needs no
//! privileges: two stacks over a simulated Ethernet link, each frame's journey through the
//! layers printed as it happens, and every counter at the end.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod client;
mod demo;
mod experiment;
mod iperf_client;
mod labcmd;
mod limits;
mod netopts;
mod privilege;
mod render;
mod runtime;
mod serve;

// The services, the I/O models and the control socket live in the library (shared with the
// tests); `crate::services` keeps naming them for the modules of this binary.
use ringstack::{models, services};

/// A userspace TCP/IP stack over raw NIC access — and a window into protocol layering.
#[derive(Parser, Debug)]
#[command(name = "ringstack", version, about, long_about = None)]
#[command(after_help = "Examples:
  ringstack                                   run the in-memory demo (no privileges needed)
  ringstack demo --impair loss=10%,seed=7 --pcap demo.pcap
  ringstack trace --port 7 --drops-only --impair loss=20%,seed=1
  ringstack trace --json | jq .
  sudo ringstack lab                          a private namespace with ringstack on a veth
  ringstack serve --nic ring:veth1 --addr 198.18.0.2/24 --http-root ./site
  ringstack serve --nic ring:veth1 --model reactor --control /run/ringstack.sock
  ringstack stats --control /run/ringstack.sock --json
  ringstack get --nic ring:veth1 http://198.18.0.1:8000/file -o file
  ringstack send --nic tap:rstap0 198.18.0.1:9000 big.bin")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Two stacks over an in-memory Ethernet link: ARP, ping, UDP echo (with fragmentation) and
    /// TCP, with the journey of each frame and the counters of both sides.
    #[command(
        after_help = "Examples:\n  ringstack demo\n  ringstack demo --impair loss=10%,reorder=5%,seed=7 --pcap demo.pcap --journey 80"
    )]
    Demo(demo::DemoArgs),
    /// The journey of every frame through the layers (NIC, Ethernet, ARP/IPv4, ICMP/UDP/TCP,
    /// socket buffer, application) for the demo's traffic, with filters and JSON output.
    #[command(
        after_help = "Examples:\n  ringstack trace --conn 198.18.0.1:57995\n  ringstack trace --port 7 --drops-only --impair loss=20%,seed=1\n  ringstack trace --json | jq -c 'select(.layer == \"tcp\")'"
    )]
    Trace(demo::TraceArgs),
    /// Run the stack on a NIC with echo (TCP/UDP 7), discard (TCP 9), HTTP (TCP 80) and an
    /// iperf3-compatible server (TCP 5201) until SIGINT/SIGTERM. Prints a line containing
    /// `ready` once listening, and its counters on exit.
    #[command(after_help = "Examples:
  ringstack serve --nic ring:veth1 --addr 198.18.0.2/24 --http-root ./site
  ringstack serve --nic tap:rstap0 --services echo,http --impair loss=5%,seed=3 --stats-interval 5
  ringstack serve --nic ring:veth1 --model reactor --workers 2 --max-clients 500
  ringstack serve --nic ring:veth1 --model proactor --idle-timeout 10
  ringstack serve --nic ring:veth1 --model threads --control /run/ringstack.sock
Models (same services, different I/O style): direct (default), reactor, proactor, threads.")]
    Serve(serve::ServeArgs),
    /// Ask a running `serve --control PATH` for its counters (every layer, with drop reasons),
    /// its services' counters and its connection table (like `nstat` + `ss -ti`).
    #[command(after_help = "Examples:
  ringstack stats --control /run/ringstack.sock
  ringstack stats --control /run/ringstack.sock --json | jq '.layers.tcp.drops'")]
    Stats(serve::StatsArgs),
    /// Fetch a URL over HTTP/1.1 with the stack on a NIC.
    #[command(
        after_help = "Example:\n  ringstack get --nic ring:veth1 --addr 198.18.0.2/24 http://198.18.0.1:8000/big.bin -o big.bin"
    )]
    Get(client::GetArgs),
    /// Stream a file (or stdin) to HOST:PORT with the stack on a NIC, then close.
    #[command(
        after_help = "Example:\n  ringstack send --nic ring:veth1 --addr 198.18.0.2/24 198.18.0.1:9000 big.bin"
    )]
    Send(client::SendArgs),
    /// Create a private network namespace with a veth pair (or TAP), run `serve` in it and
    /// print how to reach it; Ctrl-C removes everything. Needs root.
    #[command(
        after_help = "Examples:\n  sudo ringstack lab --backend ring --http-root ./site\n  sudo ringstack lab -- curl -s http://198.18.0.2/"
    )]
    Lab(labcmd::LabArgs),
    /// Run an iperf3 TCP test against an iperf3 server (a real `iperf3 -s` or `ringstack
    /// serve`) with the stack on a NIC: `-t`/`-n`, `-l`, `-P`, `-R`, `--json`.
    Iperf(iperf_client::IperfArgs),
    /// The notes' demonstrations on the in-memory link, no privileges needed: LT + blocking
    /// starvation, ET vs LT, thundering herd, select vs epoll, copies per byte.
    Experiment(experiment::ExperimentArgs),
}

/// A bad command-line argument, found after parsing: reported as one line with exit status 2,
/// like clap's own usage errors.
#[derive(Debug)]
pub struct Usage(pub String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

/// Returns early with a [`Usage`] error.
#[macro_export]
macro_rules! usage {
    ($($t:tt)*) => {
        return Err(anyhow::Error::new($crate::Usage(format!($($t)*))))
    };
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli
        .command
        .unwrap_or(Command::Demo(demo::DemoArgs::default()))
    {
        Command::Demo(args) => demo::run(&args),
        Command::Trace(args) => demo::trace(&args),
        Command::Serve(args) => serve::run(&args),
        Command::Stats(args) => serve::stats(&args),
        Command::Get(args) => client::get(&args),
        Command::Send(args) => client::send(&args),
        Command::Lab(args) => labcmd::run(&args),
        Command::Iperf(args) => iperf_client::run(&args),
        Command::Experiment(args) => experiment::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ringstack: {e:#}");
            if e.downcast_ref::<Usage>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
