//! `ringstack serve`: the stack on a real NIC with echo, discard and HTTP services, until
//! SIGINT/SIGTERM; counters on exit.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;
use ringstack_stack::{Duration, Instant, Stack};

use crate::netopts::NetOpts;
use crate::runtime::Runtime;
use crate::services::{discard::Discard, echo::Echo, http::Http, Service};

/// Options of `ringstack serve`.
#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    #[command(flatten)]
    pub net: NetOpts,
    /// Services to run, comma-separated: echo (TCP+UDP 7), discard (TCP 9), http (TCP 80),
    /// iperf (TCP 5201, iperf3-compatible).
    #[arg(long, default_value = "echo,discard,http,iperf")]
    pub services: String,
    /// Directory the http service serves files from (without it: a built-in page at /).
    #[arg(long)]
    pub http_root: Option<PathBuf>,
    /// Every SECS seconds, print the TCP connection table (like `ss -tin`: state, queues,
    /// window, RTO, backoff, cwnd, byte counters of every socket); 0 = never. SIGUSR1 prints
    /// it at any time, with every counter.
    #[arg(long, value_name = "SECS", default_value_t = 0.0)]
    pub stats_interval: f64,
}

/// Prints every TCP socket of `stack` like `ss -tin`, under a header stamped with `now`.
fn print_connection_table(now: Instant, stack: &Stack) {
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
    print!("{out}");
    let _ = std::io::stdout().flush();
}

/// Runs the server.
pub fn run(args: &ServeArgs) -> Result<()> {
    let config = args.net.config()?;
    let nic = args.net.open_nic()?;
    let mut rt = Runtime::new(nic, config)?;
    rt.set_busy_poll(args.net.busy_poll);
    let mut services: Vec<Box<dyn Service>> = Vec::new();
    for name in args
        .services
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        let stack = rt.stack();
        services.push(match name {
            "echo" => Box::new(Echo::new(stack, 7)?),
            "discard" => Box::new(Discard::new(stack, 9)?),
            "http" => Box::new(Http::new(stack, 80, args.http_root.clone())?),
            "iperf" => Box::new(crate::services::iperf::Iperf::new(
                stack,
                crate::services::iperf::PORT,
            )?),
            other => crate::usage!(
                "--services: unknown service {other:?}: use echo, discard, http, iperf"
            ),
        });
    }
    let names: Vec<&str> = services.iter().map(|s| s.name()).collect();
    println!(
        "ringstack: ready on {} as {} (services: {})",
        args.net.nic,
        args.net.addr,
        names.join(", ")
    );
    std::io::stdout().flush()?;
    if !(args.stats_interval >= 0.0 && args.stats_interval.is_finite()) {
        bail!("--stats-interval: give a number of seconds (0 = off)");
    }
    let interval = Duration::from_micros((args.stats_interval * 1e6) as u64);
    let mut next_stats: Option<Instant> = None;
    // SIGUSR1 prints the counters and the connection table (like `nstat` + `ss -tin`).
    let usr1 = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGUSR1, std::sync::Arc::clone(&usr1))?;
    rt.run(|now, stack| {
        for s in services.iter_mut() {
            s.poll(now, stack);
        }
        if usr1.swap(false, std::sync::atomic::Ordering::Relaxed) {
            print!(
                "ringstack: counters at {:.3} s\n{}",
                now.total_millis() as f64 / 1000.0,
                stack.counters()
            );
            print_connection_table(now, stack);
        }
        if interval > Duration::ZERO {
            match next_stats {
                None => next_stats = Some(now + interval),
                Some(t) if now >= t => {
                    print_connection_table(now, stack);
                    next_stats = Some(now + interval);
                }
                Some(_) => {}
            }
        }
        Ok(true)
    })?;
    println!("ringstack: shutting down; counters:");
    print!("{}", rt.stack().counters());
    println!("nic: {:?}", rt.nic().stats());
    Ok(())
}
