//! `ringstack serve`: the stack on a real NIC with echo, discard, HTTP and iperf3-compatible
//! services, in the I/O style `--model` names (see `ringstack::models`), until SIGINT/SIGTERM;
//! counters on exit, on SIGUSR1, and on request over `--control PATH` (`ringstack stats`).

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::Result;
use clap::Args;
use ringstack::control::{ControlServer, Housekeeping};
use ringstack::models::{self, App, Hooks, Model, Options, Services};
use ringstack_sockets::{Net, SystemClock};
use ringstack_stack::Duration;

use crate::netopts::NetOpts;
use crate::runtime::Runtime;

/// Options of `ringstack serve`.
#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    #[command(flatten)]
    pub net: NetOpts,
    /// Services to run, comma-separated: echo (TCP+UDP 7), discard (TCP 9), http (TCP 80),
    /// iperf (TCP 5201, iperf3-compatible).
    #[arg(long, default_value = "echo,discard,http,iperf")]
    pub services: String,
    /// How the services do I/O: `direct` (polled on the stack every round of the driver
    /// loop), `reactor` (an epoll loop dispatching to handlers; see --workers), `proactor`
    /// (owned-buffer reads/writes/accepts on a completion queue) or `threads` (a blocking
    /// thread per connection). Same protocols in each; iperf runs on the stack in every model.
    #[arg(long, value_name = "MODEL", default_value = "direct")]
    pub model: String,
    /// Reactor only: N worker threads run the handlers while the epoll thread only dispatches
    /// (0: the epoll thread runs them).
    #[arg(long, value_name = "N", default_value = "0")]
    pub workers: String,
    /// Connections each TCP service (echo, discard, http) serves at once; more wait in the
    /// listener's accept queue and are served as others end (counted as <Service>Queued in
    /// the stats). Unlike --max-connections (the stack's socket limit, which refuses), nothing
    /// is refused here. Default: no limit.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub max_clients: Option<String>,
    /// Close HTTP connections that have nothing to send and receive nothing for SECS seconds
    /// (counted as HttpIdleClosed).
    #[arg(
        long,
        value_name = "SECS",
        default_value = "60",
        allow_negative_numbers = true
    )]
    pub idle_timeout: String,
    /// Listen on a Unix socket at PATH for `ringstack stats --control PATH` (removed on exit).
    #[arg(long, value_name = "PATH")]
    pub control: Option<PathBuf>,
    /// Directory the http service serves files from (without it: a built-in page at /).
    #[arg(long)]
    pub http_root: Option<PathBuf>,
    /// Every SECS seconds, print the TCP connection table (like `ss -tin`: state, queues,
    /// window, RTO, backoff, cwnd, byte counters of every socket); 0 = never. SIGUSR1 prints
    /// it at any time, with every counter.
    #[arg(long, value_name = "SECS", default_value_t = 0.0)]
    pub stats_interval: f64,
    #[command(flatten)]
    pub privilege: crate::privilege::PrivilegeArgs,
    #[command(flatten)]
    pub limits: Box<crate::limits::LimitArgs>,
}

/// Checks the model-related arguments; one-line usage errors.
fn options(args: &ServeArgs) -> Result<(Model, Options)> {
    let names = Model::ALL.map(Model::name).join(", ");
    let Some(model) = Model::parse(args.model.trim()) else {
        crate::usage!("--model {:?}: use one of {names}", args.model);
    };
    let services = match Services::parse(&args.services) {
        Ok(s) if s != Services::default() => s,
        Ok(_) => crate::usage!("--services: name at least one of echo, discard, http, iperf"),
        Err(other) => {
            crate::usage!("--services: unknown service {other:?}: use echo, discard, http, iperf")
        }
    };
    let Ok(workers) = args.workers.trim().parse::<usize>() else {
        crate::usage!("--workers {:?}: give a number of threads", args.workers);
    };
    if workers > 0 && model != Model::Reactor {
        crate::usage!("--workers: only the reactor model has workers (add --model reactor)");
    }
    if workers > 1024 {
        crate::usage!("--workers {workers}: at most 1024");
    }
    let max_clients = match &args.max_clients {
        None => None,
        Some(s) => match s.trim().parse::<usize>() {
            Ok(n) if n > 0 => Some(n),
            _ => crate::usage!("--max-clients {s:?}: give a number of connections, at least 1"),
        },
    };
    let idle_timeout = match args.idle_timeout.trim().parse::<f64>() {
        Ok(s) if s > 0.0 && s.is_finite() && s < 1e9 => std::time::Duration::from_secs_f64(s),
        _ => crate::usage!(
            "--idle-timeout {:?}: give a number of seconds greater than 0",
            args.idle_timeout
        ),
    };
    if args.net.trace.is_some() && model != Model::Direct {
        crate::usage!("--trace: only the direct model traces frames live (add --model direct)");
    }
    if args.net.busy_poll && model != Model::Direct {
        crate::usage!("--busy-poll: only the direct model spins on the NIC");
    }
    if !(args.stats_interval >= 0.0 && args.stats_interval.is_finite()) {
        crate::usage!("--stats-interval: give a number of seconds (0 = off)");
    }
    Ok((
        model,
        Options {
            services,
            http_root: args.http_root.clone(),
            max_clients,
            idle_timeout,
            workers,
        },
    ))
}

/// Runs the server.
pub fn run(args: &ServeArgs) -> Result<()> {
    let (model, opts) = options(args)?;
    let config = args.limits.apply(args.net.config()?)?;
    let app = App::new(opts)?;
    let nic = args.net.open_nic()?;
    let control = args
        .control
        .as_deref()
        .map(ControlServer::bind)
        .transpose()?;
    crate::privilege::drop_privileges(&args.privilege)?;
    // SIGUSR1 prints the counters and the connection table (like `nstat` + `ss -tin`).
    let usr1 = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGUSR1, Arc::clone(&usr1))?;
    let interval = Duration::from_micros((args.stats_interval * 1e6) as u64);
    let mut hk = Housekeeping::new(control, usr1, interval, Arc::clone(&app));
    let ready = |app: &App| {
        println!(
            "ringstack: ready on {} as {} (model: {}, services: {}{})",
            args.net.nic,
            args.net.addr,
            model.name(),
            app.opts.services.names().join(", "),
            args.control
                .as_ref()
                .map(|p| format!(", control: {}", p.display()))
                .unwrap_or_default()
        );
        let _ = std::io::stdout().flush();
    };
    if model == Model::Direct {
        let mut rt = Runtime::new(nic, config)?;
        rt.set_busy_poll(args.net.busy_poll);
        let mut services = models::direct::services(rt.stack(), &app)?;
        ready(&app);
        rt.run(|now, stack| {
            for s in services.iter_mut() {
                s.poll(now, stack);
            }
            hk.tick(now, &mut |f| f(stack));
            Ok(true)
        })?;
        println!("ringstack: shutting down; counters:");
        print!("{}{}", rt.stack().counters(), app.render());
        println!("nic: {:?}", rt.nic().stats());
        return Ok(());
    }
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop))?;
    }
    let net = Net::new(nic.nic, config, SystemClock::new());
    models::run(
        model,
        &net,
        &app,
        Hooks {
            stop: &stop,
            ready: Box::new(|| ready(&app)),
            tick: Box::new(|net: &Net| {
                let now = net.now();
                hk.tick(now, &mut |f| net.with_stack(|s| f(s)));
            }),
        },
    )?;
    println!("ringstack: shutting down; counters:");
    print!("{}{}", net.counters(), app.render());
    Ok(())
}

/// Options of `ringstack stats`.
#[derive(Args, Debug, Clone)]
pub struct StatsArgs {
    /// The control socket of the serve to ask (its `--control PATH`).
    #[arg(long, value_name = "PATH")]
    pub control: PathBuf,
    /// One JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `ringstack stats`: prints what the serve at `--control` answers.
pub fn stats(args: &StatsArgs) -> Result<()> {
    let format = if args.json {
        ringstack::control::Format::Json
    } else {
        ringstack::control::Format::Text
    };
    print!("{}", ringstack::control::query(&args.control, format)?);
    Ok(())
}
