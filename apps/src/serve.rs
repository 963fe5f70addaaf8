//! `ringstack serve`: the stack on a real NIC with echo, discard and HTTP services, until
//! SIGINT/SIGTERM; counters on exit.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;

use crate::netopts::NetOpts;
use crate::runtime::Runtime;
use crate::services::{discard::Discard, echo::Echo, http::Http, Service};

/// Options of `ringstack serve`.
#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    #[command(flatten)]
    pub net: NetOpts,
    /// Services to run, comma-separated: echo (TCP+UDP 7), discard (TCP 9), http (TCP 80).
    #[arg(long, default_value = "echo,discard,http,iperf")]
    pub services: String,
    /// Directory the http service serves files from (without it: a built-in page at /).
    #[arg(long)]
    pub http_root: Option<PathBuf>,
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
            other => bail!("--services: unknown service {other:?}: use echo, discard, http"),
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
    rt.run(|now, stack| {
        for s in services.iter_mut() {
            s.poll(now, stack);
        }
        Ok(true)
    })?;
    println!("ringstack: shutting down; counters:");
    print!("{}", rt.stack().counters());
    println!("nic: {:?}", rt.nic().stats());
    Ok(())
}
