//! `ringstack-bench`: ringstack side by side with smoltcp and the Linux kernel, every workload
//! against every contender in one run, alternating within each round, reported as
//! median (min–max) and ratios of medians next to the target of issue 7. No timed assertions:
//! it prints tables (and writes them to `--markdown FILE`).
//!
//! ```text
//! ringstack-bench [--quick] [--only mem,layers,readiness,lab] [--rounds N] [--markdown FILE]
//!     [--lab-workloads bulk,http,rr] [--lab-servers ring,ring-v2,...] [--pin none|same|split]
//! ringstack-bench --callgrind-workload rs-rs --bytes N     # one transfer (run under valgrind)
//! ringstack-bench --helper NAME ARGS...                    # lab helpers (inside namespaces)
//! ```
#![deny(unsafe_code)]

mod callgrind;
mod helpers;
mod lab;
mod mem;
mod plot;
mod readiness;
mod stats;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Parser;

use stats::{num, ratio, Samples, Table};

/// Benchmarks ringstack against smoltcp and the Linux kernel.
#[derive(Parser, Debug)]
#[command(name = "ringstack-bench")]
struct Cli {
    /// Small sizes and few rounds (for CI: well under a minute plus the lab).
    #[arg(long)]
    quick: bool,
    /// Workloads to run, comma-separated: mem, layers, readiness, lab.
    #[arg(long, default_value = "mem,layers,readiness,lab")]
    only: String,
    /// Rounds per workload (default 5, quick 3; the lab 3, quick 1).
    #[arg(long)]
    rounds: Option<usize>,
    /// Megabytes per in-memory transfer (default 64, quick 8).
    #[arg(long)]
    mb: Option<u64>,
    /// Also write the tables to this Markdown file.
    #[arg(long)]
    markdown: Option<PathBuf>,
    /// Also write SVG bar charts (plotters) of the main results into this directory.
    #[arg(long)]
    svg: Option<PathBuf>,
    /// Lab workloads to run, comma-separated: bulk, http, rr.
    #[arg(long, default_value = "bulk,http,rr")]
    lab_workloads: String,
    /// Lab contenders to run, comma-separated: ring, pnet, ring-small, kernel-off, kernel-on,
    /// ring-v2, ring-vnet (default: all).
    #[arg(long)]
    lab_servers: Option<String>,
    /// CPU placement in the lab: none (float), same (server and client on CPU 0) or split
    /// (server on CPU 0, client on CPU 1).
    #[arg(long, default_value = "none")]
    pin: String,
    /// Extra arguments for every ringstack server of the lab, space-separated (e.g.
    /// `--server-args=--busy-poll`).
    #[arg(long, allow_hyphen_values = true)]
    server_args: Option<String>,
    /// The `ringstack` binary for the lab (default: next to this one).
    #[arg(long)]
    ringstack: Option<PathBuf>,
    /// Internal: run one in-memory transfer of `--bytes` with this contender (rs-rs,
    /// smol-smol, rs-smol, smol-rs) and print its frame counts; meant to run under callgrind.
    #[arg(long)]
    callgrind_workload: Option<String>,
    /// Bytes for `--callgrind-workload`.
    #[arg(long, default_value_t = 1 << 20)]
    bytes: u64,
    /// Waits for `--callgrind-workload epoll-N` / `poll-N` (N idle sockets + 10 ready).
    #[arg(long, default_value_t = 1000)]
    waits: u64,
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--helper") {
        let name = args.get(2).context("--helper NAME ARGS...")?;
        return helpers::run(name, &args[3..]);
    }
    let cli = Cli::parse();
    if let Some(name) = &cli.callgrind_workload {
        if let Some((mux, n)) = name
            .split_once('-')
            .filter(|x| x.0 == "epoll" || x.0 == "poll")
        {
            let mut s = readiness::Setup::new(n.parse().context("epoll-N: N idle sockets")?)?;
            let m = if mux == "epoll" {
                readiness::Mux::Epoll
            } else {
                readiness::Mux::Poll
            };
            for _ in 0..cli.waits {
                s.wait(m)?;
            }
            println!("waits={} sender_frames=0", cli.waits);
            return Ok(());
        }
        let c = mem::contender(name)?;
        let o = mem::transfer(c, cli.bytes)?;
        println!(
            "bytes={} sender_frames={} receiver_frames={}",
            o.bytes, o.sender_frames, o.receiver_frames
        );
        return Ok(());
    }
    run(&cli)
}

struct Report {
    tables: Vec<String>,
    svg: Option<PathBuf>,
}

impl Report {
    fn add(&mut self, t: &Table) {
        let md = t.markdown();
        println!("{md}");
        self.tables.push(md);
    }

    /// Writes `name`.svg into the `--svg` directory, if one was given.
    fn plot(&self, name: &str, title: &str, unit: &str, bars: &[plot::Bar]) -> Result<()> {
        let Some(dir) = &self.svg else {
            return Ok(());
        };
        std::fs::create_dir_all(dir)?;
        let path = dir.join(format!("{name}.svg"));
        plot::bars(&path, title, unit, bars)?;
        println!("(wrote {})\n", path.display());
        Ok(())
    }
}

/// A bar of `s`: median, whisker min–max.
fn bar(label: &str, s: &Samples) -> plot::Bar {
    plot::Bar {
        label: label.to_string(),
        value: s.median(),
        range: (s.min(), s.max()),
    }
}

fn machine() -> String {
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_default();
    format!("nproc {nproc}, kernel {}, CPU {cpu}", kernel.trim())
}

fn run(cli: &Cli) -> Result<()> {
    let started = Instant::now();
    let only: Vec<&str> = cli.only.split(',').map(str::trim).collect();
    let want = |w: &str| only.contains(&w);
    let rounds = cli.rounds.unwrap_or(if cli.quick { 3 } else { 5 });
    let exe = std::env::current_exe()?;
    let mut rep = Report {
        tables: Vec::new(),
        svg: cli.svg.clone(),
    };
    let cmdline: Vec<String> = std::env::args().collect();
    println!("# ringstack-bench\n\nmachine: {}\n", machine());
    println!("command: `{}`\n", cmdline.join(" "));

    if want("mem") {
        bulk_memory(cli, rounds, &mut rep)?;
    }
    if want("mem") || want("layers") {
        if callgrind::available() {
            instructions(cli, &exe, want("layers"), &mut rep)?;
        } else {
            println!("(callgrind workloads skipped: valgrind is not installed)\n");
        }
    }
    if want("readiness") {
        readiness_wl(cli, &exe, rounds, &mut rep)?;
    }
    if want("lab") {
        match lab::unavailable() {
            Some(why) => println!("(lab workloads skipped: {why})\n"),
            None => lab_wl(cli, &exe, &mut rep)?,
        }
    }
    let total = started.elapsed().as_secs_f64();
    println!("total time {total:.1} s");
    if let Some(path) = &cli.markdown {
        let mut s = format!(
            "machine: {}\n\ncommand: `{}` (total {total:.0} s)\n\n",
            machine(),
            cmdline.join(" ")
        );
        s.push_str(&rep.tables.join("\n"));
        std::fs::write(path, s).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// Workload 1, wall clock.
fn bulk_memory(cli: &Cli, rounds: usize, rep: &mut Report) -> Result<()> {
    let mb = cli.mb.unwrap_or(if cli.quick { 8 } else { 64 });
    let bytes = mb << 20;
    let mut s: Vec<Samples> = vec![Samples::default(); mem::CONTENDERS.len()];
    let mut segs = vec![0u64; mem::CONTENDERS.len()];
    // Warm-up (page faults, allocator) once per contender.
    for c in mem::CONTENDERS {
        mem::transfer(c, 1 << 20)?;
    }
    for r in 0..rounds {
        for k in 0..mem::CONTENDERS.len() {
            let i = (k + r) % mem::CONTENDERS.len();
            let o = mem::transfer(mem::CONTENDERS[i], bytes)?;
            s[i].push(o.bytes as f64 / 1e6 / o.wall_secs);
            segs[i] = o.sender_frames;
        }
    }
    let smol = s[1].median();
    let mut t = Table::new(
        format!(
            "In-memory bulk TCP, one way, {mb} MiB per transfer, {rounds} rounds (MB/s of wall time, one thread)"
        ),
        &[
            "sender → receiver",
            "MB/s median (min–max)",
            "Gbit/s (median)",
            "sender frames",
            "ratio vs smoltcp → smoltcp",
            "target",
        ],
    );
    let names = [
        "ringstack → ringstack",
        "smoltcp → smoltcp",
        "ringstack → smoltcp",
        "smoltcp → ringstack",
    ];
    for (i, name) in names.iter().enumerate() {
        let target = if i == 0 { "≥ 2x" } else { "—" };
        t.row(vec![
            name.to_string(),
            s[i].cell(),
            format!("{:.2}", s[i].median() * 8.0 / 1e3),
            num(segs[i] as f64),
            ratio(s[i].median(), smol),
            target.into(),
        ]);
    }
    t.note("Both stacks over one clean `MemoryLink` (FIFO, no delay), virtual clock, 256 KiB socket buffers, MTU 1500; both ends' work is in the one thread, so MB/s = payload / (sender + receiver + link CPU time).");
    t.note("Contenders alternate within each round (rotated start); wall time on a shared 2-core machine is noisy: see the callgrind table for repeatable costs.");
    rep.add(&t);
    let bars: Vec<plot::Bar> = names.iter().zip(&s).map(|(n, x)| bar(n, x)).collect();
    rep.plot(
        "mem_mbps",
        &format!("In-memory bulk TCP, {mb} MiB, median and min–max of {rounds} rounds"),
        "MB/s (one thread, both ends)",
        &bars,
    )?;
    Ok(())
}

/// Workloads 1 (instructions) and 2 (per-layer breakdown).
fn instructions(cli: &Cli, exe: &std::path::Path, layers: bool, rep: &mut Report) -> Result<()> {
    let (n1, n2): (u64, u64) = if cli.quick {
        (256 << 10, 1 << 20)
    } else {
        (2 << 20, 16 << 20)
    };
    let dir = std::env::temp_dir().join(format!("ringstack-bench-cg-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut t = Table::new(
        format!(
            "In-memory bulk TCP: instructions (callgrind, marginal cost between {} KiB and {} KiB transfers)",
            n1 >> 10,
            n2 >> 10
        ),
        &[
            "sender → receiver",
            "Ir per payload byte",
            "Ir per data segment",
            "Ir/byte, memcpy as vector loop",
            "Ir/segment, memcpy as vector loop",
            "smoltcp → smoltcp ÷ this (raw; vector memcpy)",
            "target",
        ],
    );
    let names = [
        "ringstack → ringstack",
        "smoltcp → smoltcp",
        "ringstack → smoltcp",
        "smoltcp → ringstack",
    ];
    // [raw, vector memcpy] × contender.
    let mut per_byte = [Vec::new(), Vec::new()];
    let mut per_seg = [Vec::new(), Vec::new()];
    let mut rs_out = None;
    for c in mem::CONTENDERS {
        for (k, tun) in [None, Some(callgrind::VECTOR_MEMCPY)]
            .into_iter()
            .enumerate()
        {
            let go = |n| match tun {
                None => callgrind::run(exe, &dir, c.name, n),
                Some(t) => callgrind::run_tuned(exe, &dir, c.name, n, t),
            };
            let a = go(n1)?;
            let b = go(n2)?;
            let d_ir = b.ir.saturating_sub(a.ir) as f64;
            per_byte[k].push(d_ir / (n2 - n1) as f64);
            per_seg[k].push(d_ir / b.sender_frames.saturating_sub(a.sender_frames).max(1) as f64);
            if c.name == "rs-rs" && k == 1 {
                rs_out = Some(b);
            }
        }
    }
    for (i, name) in names.iter().enumerate() {
        t.row(vec![
            name.to_string(),
            format!("{:.2}", per_byte[0][i]),
            num(per_seg[0][i]),
            format!("{:.2}", per_byte[1][i]),
            num(per_seg[1][i]),
            // Fewer instructions is better: smoltcp's cost over this contender's.
            format!(
                "{}; {}",
                ratio(per_byte[0][1], per_byte[0][i]),
                ratio(per_byte[1][1], per_byte[1][i])
            ),
            if i == 0 { "≥ 2x" } else { "—" }.into(),
        ]);
    }
    t.note("Ir = instructions executed by the whole process (both stacks, the link, the driver loop), counted by `valgrind --tool=callgrind`; the difference between two transfer sizes cancels start-up and the handshake. Repeatable to within a few instructions, so one run each.");
    t.note("Per data segment = ΔIr / Δ(frames the sender transmitted): the full cost of one ~1460-byte segment end to end, the receiver's ACKs included.");
    let mut bars = Vec::new();
    for (i, name) in names.iter().enumerate() {
        bars.push(plot::Bar::exact(
            format!("{name} (memcpy as vector loop)"),
            per_byte[1][i],
        ));
    }
    for (i, name) in names.iter().enumerate() {
        bars.push(plot::Bar::exact(format!("{name} (raw)"), per_byte[0][i]));
    }
    rep.plot(
        "mem_ir_per_byte",
        "In-memory bulk TCP: instructions per payload byte (callgrind; fewer is better)",
        "Ir per payload byte, whole process",
        &bars,
    )?;
    t.note(format!("\"memcpy as vector loop\": the same runs with `GLIBC_TUNABLES={}`. glibc otherwise copies blocks over a few KiB (the application's 64 KiB–1 MiB reads and writes, identical for every contender) with `rep movsb`, which callgrind counts as one instruction per byte (~2 Ir per payload byte here) although it is fast on a real CPU; the vector loop costs ~0.1 Ir per byte copied, which makes the counts track the stacks' own work.", callgrind::VECTOR_MEMCPY));
    rep.add(&t);

    if layers {
        let b = rs_out.context("rs-rs run")?;
        let segs = b.sender_frames.max(1) as f64;
        let total = b.ir as f64;
        let mut t = Table::new(
            format!(
                "Where the instructions go: ringstack → ringstack, {} KiB in memory, per data segment (callgrind, memcpy as vector loop)",
                n2 >> 10
            ),
            &[
                "layer (function path prefix)",
                "self Ir / segment",
                "% of total",
                "largest inclusive Ir / segment in layer",
            ],
        );
        for (layer, selfc, incl) in callgrind::breakdown(&b.out)? {
            t.row(vec![
                layer,
                num(selfc as f64 / segs),
                format!("{:.1}%", selfc as f64 * 100.0 / total),
                num(incl as f64 / segs),
            ]);
        }
        t.note(format!(
            "Total {} Ir for {} sender frames ({} Ir/segment, start-up included: the 1 MiB pattern `memset` and the handshake are in it). Self cost = instructions in the functions of that path (inlined callees count where inlined), grouped by `callgrind_annotate --inclusive=no`; the last column is `--inclusive=yes`'s largest function of the layer (its entry point, with callees).",
            num(total),
            num(segs),
            num(total / segs)
        ));
        rep.add(&t);
        let mut t = Table::new(
            "Top functions by self instructions (ringstack → ringstack, memcpy as vector loop)",
            &["self Ir / segment", "function"],
        );
        for (n, f) in callgrind::top_functions(&b.out, 15)? {
            t.row(vec![num(n as f64 / segs), format!("`{f}`")]);
        }
        rep.add(&t);
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Workload 3.
fn readiness_wl(cli: &Cli, exe: &std::path::Path, rounds: usize, rep: &mut Report) -> Result<()> {
    use readiness::{Mux, Setup};
    let ns = [1usize, 10, 1_000, 100_000];
    let target = Duration::from_millis(if cli.quick { 5 } else { 20 });
    let t0 = Instant::now();
    let mut setups = Vec::new();
    for &n in &ns {
        setups.push(Setup::new(n)?);
    }
    let setup_secs = t0.elapsed().as_secs_f64();
    // Instructions per wait (callgrind, collecting only inside `Epoll::wait`).
    let mut ir_per_wait = vec![f64::NAN; ns.len()];
    if callgrind::available() {
        let dir = std::env::temp_dir().join(format!("ringstack-bench-rd-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        for (i, &n) in ns.iter().enumerate() {
            // 100,000 sockets take minutes to set up under valgrind: full runs only.
            if cli.quick && n > 1_000 {
                continue;
            }
            let name = format!("epoll-{n}");
            let r = callgrind::run_toggled(
                exe,
                &dir,
                &name,
                &["--waits", "1000"],
                "ringstack_sockets::epoll::Epoll::wait",
            )?;
            ir_per_wait[i] = r.ir as f64 / 1000.0;
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
    let muxes = [Mux::Epoll, Mux::Poll, Mux::Select];
    let mut ns_s = vec![vec![Samples::default(); 3]; ns.len()];
    let mut work = vec![vec![readiness::WorkPerWait::default(); 3]; ns.len()];
    for r in 0..rounds {
        for (i, s) in setups.iter_mut().enumerate() {
            for k in 0..3 {
                let m = (k + r + i) % 3;
                if !s.supports(muxes[m]) {
                    continue;
                }
                let (t, w) = s.measure(muxes[m], target)?;
                ns_s[i][m].push(t);
                work[i][m] = w;
            }
        }
    }
    let epoll10 = ns_s[1][0].median();
    let mut t = Table::new(
        format!("Readiness: one wait with N idle registered sockets + 10 ready ({rounds} rounds, ns per wait)"),
        &[
            "idle N (registered)",
            "epoll ns/wait",
            "poll ns/wait",
            "select ns/wait",
            "examined per wait: epoll / poll / select",
            "bytes copied per wait: poll / select",
            "epoll Ir/wait (callgrind)",
            "epoll(N) / epoll(10): ns, Ir",
            "target",
            "poll / epoll",
        ],
    );
    for (i, &n) in ns.iter().enumerate() {
        let sel = |m: usize, v: String| {
            if setups[i].supports(muxes[m]) {
                v
            } else {
                "n/a (fd ≥ 1024)".into()
            }
        };
        t.row(vec![
            format!("{} ({})", num(n as f64), num(setups[i].registered() as f64)),
            ns_s[i][0].cell(),
            ns_s[i][1].cell(),
            sel(2, ns_s[i][2].cell()),
            format!(
                "{} / {} / {}",
                num(work[i][0].examined),
                num(work[i][1].examined),
                sel(2, num(work[i][2].examined))
            ),
            format!(
                "{} / {}",
                num(work[i][1].copied),
                sel(2, num(work[i][2].copied))
            ),
            num(ir_per_wait[i]),
            format!(
                "{}, {}",
                ratio(ns_s[i][0].median(), epoll10),
                ratio(ir_per_wait[i], ir_per_wait[1])
            ),
            if n == 100_000 { "≤ 1.2x" } else { "—" }.into(),
            ratio(ns_s[i][1].median(), ns_s[i][0].median()),
        ]);
    }
    t.note(format!("`sockets` crate over `Net::memory_pair` (virtual clock); level-triggered `Epoll::wait(maxevents 64, timeout 0)`, `poll(timeout 0)`, `select(timeout 0)` over every registered descriptor; each wait also drives both hosts once. Idle = UDP sockets (≤ 50,000) then TCP listeners; the 10 ready sockets each hold an unread datagram. Setup of all sizes took {setup_secs:.1} s."));
    t.note("Work counters are `Net::work()` divided by the number of waits: they are exact; the ns figures are wall time (noisy machine), batches of ≥ 3 waits sized to ~20 ms (5 ms quick).");
    rep.add(&t);
    Ok(())
}

/// Workload 4.
fn lab_wl(cli: &Cli, exe: &std::path::Path, rep: &mut Report) -> Result<()> {
    use lab::{Pin, Results, Server, Sizes};
    let workloads: Vec<&str> = cli.lab_workloads.split(',').map(str::trim).collect();
    for w in &workloads {
        if !matches!(*w, "bulk" | "http" | "rr") {
            anyhow::bail!("--lab-workloads: unknown workload {w:?} (bulk, http, rr)");
        }
    }
    let servers: Vec<Server> = match &cli.lab_servers {
        None => Server::ALL.to_vec(),
        Some(list) => list
            .split(',')
            .map(|n| {
                Server::parse(n.trim()).with_context(|| {
                    let names: Vec<&str> = Server::ALL.iter().map(|s| s.short()).collect();
                    format!("--lab-servers: unknown server {n:?} ({})", names.join(", "))
                })
            })
            .collect::<Result<_>>()?,
    };
    let pin = Pin::parse(&cli.pin).context("--pin: use none, same or split")?;
    let sz = Sizes {
        bulk_bytes: if cli.quick { 50 << 20 } else { 500 << 20 },
        http_bytes: if cli.quick { 20 << 20 } else { 100 << 20 },
        rr_count: if cli.quick { 2_000 } else { 20_000 },
        rounds: cli.rounds.unwrap_or(if cli.quick { 1 } else { 3 }),
        bulk: workloads.contains(&"bulk"),
        http: workloads.contains(&"http"),
        rr: workloads.contains(&"rr"),
        pin,
        server_args: cli
            .server_args
            .as_deref()
            .unwrap_or("")
            .split_whitespace()
            .map(String::from)
            .collect(),
    };
    let chosen = |s: &Server| servers.contains(s);
    let ringstack = cli.ringstack.clone().unwrap_or_else(|| {
        exe.parent()
            .map(|p| p.join("ringstack"))
            .unwrap_or_default()
    });
    let env = lab::Env::new(exe, &ringstack, sz.http_bytes)?;
    let mut res: Vec<Results> = vec![Results::default(); Server::ALL.len()];
    let mut failures = Vec::new();
    for r in 0..sz.rounds {
        for k in 0..Server::ALL.len() {
            let i = (k + r) % Server::ALL.len();
            if !chosen(&Server::ALL[i]) {
                continue;
            }
            if let Err(e) = env.round(Server::ALL[i], &sz, &mut res[i]) {
                eprintln!("lab: {} round {r}: {e:#}", Server::ALL[i].name());
                failures.push(format!("{} round {r}: {e:#}", Server::ALL[i].name()));
            }
        }
    }
    drop(env);
    if !failures.is_empty() {
        let mut t = Table::new("Lab failures", &["contender and round: error"]);
        for f in &failures {
            t.row(vec![f.clone()]);
        }
        rep.add(&t);
    }
    let lab_bars = |f: &dyn Fn(&lab::Results) -> &Samples| -> Vec<plot::Bar> {
        Server::ALL
            .iter()
            .enumerate()
            .filter(|(i, s)| chosen(s) && !f(&res[*i]).0.is_empty())
            .map(|(i, s)| bar(s.name(), f(&res[i])))
            .collect()
    };
    let (ring, pnet, small, koff, kon) = (&res[0], &res[1], &res[2], &res[3], &res[4]);
    let (v2, vnet) = (&res[5], &res[6]);
    let (tap, tap_vnet) = (&res[7], &res[8]);
    if sz.bulk {
        let mut t = Table::new(
            format!(
                "Lab bulk TCP: Linux client → server discard (TCP 9), {} MiB, {} rounds, veth",
                sz.bulk_bytes >> 20,
                sz.rounds
            ),
            &[
                "server",
                "Gbit/s",
                "frames/s on the link",
                "frames per server CPU-second",
                "MB per server CPU-second",
            ],
        );
        for (i, s) in Server::ALL
            .iter()
            .enumerate()
            .filter(|(_, s)| chosen(s) && !s.rr_only())
        {
            let (fpc, mpc) = if s.is_ringstack() {
                (
                    res[i].bulk_frames_per_cpu_s.cell(),
                    res[i].bulk_mb_per_cpu_s.cell(),
                )
            } else {
                let na = "n/a (softirq not attributed)".to_string();
                (na.clone(), na)
            };
            t.row(vec![
                s.name().into(),
                res[i].bulk_gbps.cell(),
                res[i].bulk_fps.cell(),
                fpc,
                mpc,
            ]);
        }
        t.note(format!(
            "ring / pnet: {} Gbit/s, {} frames per CPU-second (target ≥ 1.5x frames/s for the same CPU); with 64 KiB blocks {} Gbit/s, {} per CPU-second. ring / kernel (offloads off): {} (target ≥ 1x: 7.2 Gbit/s in the issue). ring / kernel (offloads on): {} (target ≥ 0.75x, needs vnet headers).",
            ratio(ring.bulk_gbps.median(), pnet.bulk_gbps.median()),
            ratio(ring.bulk_frames_per_cpu_s.median(), pnet.bulk_frames_per_cpu_s.median()),
            ratio(small.bulk_gbps.median(), pnet.bulk_gbps.median()),
            ratio(small.bulk_frames_per_cpu_s.median(), pnet.bulk_frames_per_cpu_s.median()),
            ratio(ring.bulk_gbps.median(), koff.bulk_gbps.median()),
            ratio(ring.bulk_gbps.median(), kon.bulk_gbps.median()),
        ));
        t.note(format!(
            "TPACKET_V2: ring V2 / kernel (offloads off) {} Gbit/s. With vnet headers (offloads on, GSO super-frames in): ring V2 + vnet / kernel (offloads on) {} (target ≥ 0.75x), / kernel (offloads off) {} (target ≥ 1x), / ring V2 {}; its frames/s counts super-frames, so compare it by MB per CPU-second ({} of ring V2's).",
            ratio(v2.bulk_gbps.median(), koff.bulk_gbps.median()),
            ratio(vnet.bulk_gbps.median(), kon.bulk_gbps.median()),
            ratio(vnet.bulk_gbps.median(), koff.bulk_gbps.median()),
            ratio(vnet.bulk_gbps.median(), v2.bulk_gbps.median()),
            ratio(vnet.bulk_mb_per_cpu_s.median(), v2.bulk_mb_per_cpu_s.median()),
        ));
        t.note(format!(
            "TAP (a TAP device instead of the veth; frames counted on `rstap0`): tap + vnet / tap {} Gbit/s, {} MB per CPU-second; tap / ring V2 {}.",
            ratio(tap_vnet.bulk_gbps.median(), tap.bulk_gbps.median()),
            ratio(tap_vnet.bulk_mb_per_cpu_s.median(), tap.bulk_mb_per_cpu_s.median()),
            ratio(tap.bulk_gbps.median(), v2.bulk_gbps.median()),
        ));
        t.note("ringstack's discard service hashes every byte with SHA-256 (to report it); the kernel's discard helper only reads. The kernel server runs in a second namespace holding veth1, so both contenders are reached over the same veth, never over `lo`.");
        rep.add(&t);
        rep.plot(
            "lab_bulk_gbps",
            &format!(
                "Lab bulk TCP, Linux → discard, {} MiB, median and min–max of {} rounds",
                sz.bulk_bytes >> 20,
                sz.rounds
            ),
            "Gbit/s",
            &lab_bars(&|r| &r.bulk_gbps),
        )?;
    }
    if sz.http {
        let mut t = Table::new(
            format!(
                "Lab HTTP: curl GET of a {} MiB file from tmpfs, {} rounds",
                sz.http_bytes >> 20,
                sz.rounds
            ),
            &["server", "Gbit/s", "ratio vs kernel (offloads off)"],
        );
        for (i, s) in Server::ALL
            .iter()
            .enumerate()
            .filter(|(_, s)| chosen(s) && !s.rr_only())
        {
            t.row(vec![
                s.name().into(),
                res[i].http_gbps.cell(),
                ratio(res[i].http_gbps.median(), koff.http_gbps.median()),
            ]);
        }
        t.note("Kernel server: this bench's minimal HTTP/1.1 helper, body sent with `io::copy` (sendfile). ringstack: `serve --http-root`.");
        rep.add(&t);
        rep.plot(
            "lab_http_gbps",
            &format!(
                "Lab HTTP GET of {} MiB (server → Linux)",
                sz.http_bytes >> 20
            ),
            "Gbit/s",
            &lab_bars(&|r| &r.http_gbps),
        )?;
    }
    if sz.rr {
        let mut t = Table::new(
            format!(
                "Lab 1-byte request/response → echo (TCP 7), {} transactions, {} rounds",
                sz.rr_count, sz.rounds
            ),
            &[
                "server",
                "transactions/s",
                "p50 µs",
                "p99 µs",
                "server NIC syscalls / transaction",
                "server CPU µs / transaction",
                "ratio vs kernel (offloads off)",
                "target",
            ],
        );
        for (i, s) in Server::ALL.iter().enumerate().filter(|(_, s)| chosen(s)) {
            t.row(vec![
                s.name().into(),
                res[i].rr_tps.cell(),
                res[i].rr_p50_us.cell(),
                res[i].rr_p99_us.cell(),
                res[i].rr_syscalls_per_tx.cell(),
                res[i].rr_cpu_us_per_tx.cell(),
                ratio(res[i].rr_tps.median(), koff.rr_tps.median()),
                if matches!(
                    s,
                    Server::Ring
                        | Server::RingSmall
                        | Server::RingV2
                        | Server::RingV2NoSpin
                        | Server::RingVnet
                ) {
                    "≥ 1x"
                } else {
                    "—"
                }
                .into(),
            ]);
        }
        t.note(format!("Client: this bench's `rr-client` (kernel TCP, TCP_NODELAY, 200 warm-up transactions, hdrhistogram); {}. A fresh server process per measurement.", sz.pin.describe()));
        t.note("Server NIC syscalls: ringstack's `NicStats::syscalls` (ring: TX kicks + poll() waits; pnet: every recv/send; not counted: the driver's `sched_yield` while it spins) over the whole server run divided by the transactions (warm-up included). Server CPU: the run time of the server's threads (`/proc/PID/task/*/schedstat`, ns) during the measurement per transaction, for the kernel's echo server too: it includes kernel work done in the server's system calls (for both, the veth transmit and the softirq that delivers to the client's socket), not the work done on the client's side.");
        let nospin = &res[9];
        t.note(format!(
            "The driver's spin window (`--spin-us`, default 50: after a round that moved frames it keeps looking at the ring, yielding the CPU between looks, before sleeping in poll()): ring V2 / ring V2 with `--spin-us 0`: {} transactions/s, {} p50, {} server CPU per transaction.",
            ratio(v2.rr_tps.median(), nospin.rr_tps.median()),
            ratio(v2.rr_p50_us.median(), nospin.rr_p50_us.median()),
            ratio(v2.rr_cpu_us_per_tx.median(), nospin.rr_cpu_us_per_tx.median()),
        ));
        if !sz.server_args.is_empty() {
            t.note(format!(
                "ringstack servers ran with `{}`.",
                sz.server_args.join(" ")
            ));
        }
        rep.add(&t);
        rep.plot(
            "lab_rr_tps",
            "Lab 1-byte request/response → echo",
            "transactions/s",
            &lab_bars(&|r| &r.rr_tps),
        )?;
    }
    Ok(())
}
