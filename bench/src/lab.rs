//! Workload 4: the lab (root only). Linux clients in a private namespace talk over a veth pair
//! (offloads off, as `ringstack_nic::lab::Lab` sets them, except for the vnet contender) to a
//! server at 198.18.0.2 that is
//!
//! - `ring`: `ringstack serve --nic ring:veth1` on TPACKET_V3 rings (1 MiB or 64 KiB blocks)
//!   or TPACKET_V2 (the CLI's default), and TPACKET_V2 with `--ring-vnet-hdr` with the
//!   kernel-side offloads *on* (64 KiB GSO super-frames in),
//! - `pnet`: `ringstack serve --nic pnet:veth1` (one syscall per frame),
//! - `tap`: `ringstack serve --nic tap:rstap0` on a TAP lab (the kernel side is `rstap0`),
//!   plain and with `--vnet-hdr` (TSO on towards ringstack),
//! - `kernel`: the Linux kernel's own TCP (this binary's `kernel-servers` helper: discard, echo,
//!   HTTP with sendfile) in a second namespace that holds `veth1`, so that the kernel peer is
//!   reached over exactly the same veth as ringstack — not over `lo`; offloads off (the
//!   CPU-for-CPU comparison with ringstack's plain ring) and on (the kernel's best),
//!
//! each in its own namespace pair, alternating contenders within every round. Clients (same
//! binaries for every contender): this binary's `bulk-client` → discard (TCP 9), `curl` of a
//! file from a tmpfs directory over HTTP (TCP 80), `rr-client` 1-byte ping-pong → echo (TCP 7),
//! the last on a fresh server process. Frames are counted on the kernel side of the link
//! (`/sys/class/net/{veth0,rstap0}/statistics`); the bulk server's CPU time comes from
//! `/proc/PID/stat` (for the kernel server it misses softirq work, so those figures are compared
//! only between ringstack backends), the request/response server's from `schedstat` (kernel
//! work in its system calls included, for every contender). [`Pin`] places server and client on
//! CPUs with `taskset`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use ringstack_nic::lab::{Lab, LabLink};

use crate::helpers::field;
use crate::stats::Samples;

/// The lab's contenders.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Server {
    /// ringstack on the AF_PACKET ring, TPACKET_V3 with 1 MiB blocks (`--ring-version 3`).
    Ring,
    /// ringstack on the AF_PACKET ring with 64 KiB blocks (`--ring-block-size 65536`).
    RingSmall,
    /// ringstack on the AF_PACKET ring in TPACKET_V2 mode (`--ring-version 2`).
    RingV2,
    /// ringstack on a TPACKET_V2 ring with `PACKET_VNET_HDR` (`--ring-vnet-hdr`), the
    /// kernel-side veth's offloads left on: Linux hands over 64 KiB GSO super-frames.
    RingVnet,
    /// ringstack on the plain packet socket.
    Pnet,
    /// Linux, veth offloads off.
    KernelOff,
    /// Linux, veth offloads on.
    KernelOn,
    /// ringstack on a TAP device (`tap:rstap0`), no offloads: one read/write per frame.
    Tap,
    /// ringstack on a TAP with `--vnet-hdr` (IFF_VNET_HDR + TUNSETOFFLOAD): Linux sends TCP
    /// super-frames through it (TSO on the TAP).
    TapVnet,
    /// `RingV2` with `--spin-us 0` (sleep in poll() as soon as a round finds nothing): the
    /// driver without its spin window, request/response only.
    RingV2NoSpin,
}

impl Server {
    /// All, in round order (`main.rs` reads the first five by position: add new ones last).
    pub const ALL: [Server; 10] = [
        Server::Ring,
        Server::Pnet,
        Server::RingSmall,
        Server::KernelOff,
        Server::KernelOn,
        Server::RingV2,
        Server::RingVnet,
        Server::Tap,
        Server::TapVnet,
        Server::RingV2NoSpin,
    ];

    /// Whether this is a ringstack server (its CPU time covers all of its work).
    pub fn is_ringstack(self) -> bool {
        !matches!(self, Server::KernelOff | Server::KernelOn)
    }

    /// Whether it only runs the request/response workload.
    pub fn rr_only(self) -> bool {
        self == Server::RingV2NoSpin
    }

    /// Its short name on the command line (`--lab-servers`).
    pub fn short(self) -> &'static str {
        match self {
            Server::Ring => "ring",
            Server::RingSmall => "ring-small",
            Server::RingV2 => "ring-v2",
            Server::RingVnet => "ring-vnet",
            Server::Pnet => "pnet",
            Server::KernelOff => "kernel-off",
            Server::KernelOn => "kernel-on",
            Server::Tap => "tap",
            Server::TapVnet => "tap-vnet",
            Server::RingV2NoSpin => "ring-v2-nospin",
        }
    }

    /// The server named `short` (see [`Server::short`]).
    pub fn parse(short: &str) -> Option<Server> {
        Server::ALL.into_iter().find(|s| s.short() == short)
    }

    /// Its name in tables.
    pub fn name(self) -> &'static str {
        match self {
            Server::Ring => "ringstack ring (TPACKET_V3)",
            Server::RingSmall => "ringstack ring V3, 64 KiB blocks",
            Server::RingV2 => "ringstack ring (TPACKET_V2)",
            Server::RingVnet => "ringstack ring V2 + vnet hdr (offloads on)",
            Server::Pnet => "ringstack pnet",
            Server::KernelOff => "kernel (offloads off)",
            Server::KernelOn => "kernel (offloads on)",
            Server::Tap => "ringstack tap",
            Server::TapVnet => "ringstack tap + vnet hdr (TSO on)",
            Server::RingV2NoSpin => "ringstack ring (TPACKET_V2), --spin-us 0",
        }
    }
}

/// Sizes of the lab workloads.
#[derive(Clone, Debug)]
pub struct Sizes {
    /// Bytes of the bulk transfer.
    pub bulk_bytes: u64,
    /// Bytes of the HTTP file.
    pub http_bytes: u64,
    /// 1-byte transactions per measurement.
    pub rr_count: u64,
    /// Rounds.
    pub rounds: usize,
    /// Which of the three workloads run (bulk, HTTP, request/response).
    pub bulk: bool,
    /// See `bulk`.
    pub http: bool,
    /// See `bulk`.
    pub rr: bool,
    /// Where the server and the clients run.
    pub pin: Pin,
    /// Extra arguments for every ringstack server (e.g. `--busy-poll`).
    pub server_args: Vec<String>,
}

/// CPU placement of the lab's server and client processes (`taskset`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pin {
    /// No pinning: both float over every CPU.
    None,
    /// Server and client on CPU 0.
    Same,
    /// Server on CPU 0, client on CPU 1.
    Split,
}

impl Pin {
    /// Parses `none`, `same` or `split`.
    pub fn parse(s: &str) -> Option<Pin> {
        match s {
            "none" => Some(Pin::None),
            "same" => Some(Pin::Same),
            "split" => Some(Pin::Split),
            _ => None,
        }
    }

    /// How a table names it.
    pub fn describe(self) -> &'static str {
        match self {
            Pin::None => "no CPU pinning: client and server float over the 2 cores",
            Pin::Same => "client and server pinned to CPU 0 (`taskset -c 0`)",
            Pin::Split => "server pinned to CPU 0, client to CPU 1 (`taskset -c`)",
        }
    }

    /// The CPU list for `taskset` of the server (`server`) or a client, if pinned.
    fn cpus(self, server: bool) -> Option<&'static str> {
        match (self, server) {
            (Pin::None, _) => None,
            (Pin::Same, _) | (Pin::Split, true) => Some("0"),
            (Pin::Split, false) => Some("1"),
        }
    }
}

/// Per-contender samples.
#[derive(Clone, Debug, Default)]
pub struct Results {
    /// Bulk Gbit/s (payload).
    pub bulk_gbps: Samples,
    /// Bulk frames/s on veth0 (both directions).
    pub bulk_fps: Samples,
    /// Bulk frames per server CPU-second.
    pub bulk_frames_per_cpu_s: Samples,
    /// Bulk payload MB per server CPU-second (fair across frame sizes: GSO frames are big).
    pub bulk_mb_per_cpu_s: Samples,
    /// HTTP Gbit/s (payload, as curl reports).
    pub http_gbps: Samples,
    /// Transactions/s.
    pub rr_tps: Samples,
    /// p50 µs.
    pub rr_p50_us: Samples,
    /// p99 µs.
    pub rr_p99_us: Samples,
    /// NIC system calls of a ringstack server per request/response transaction (its
    /// `NicStats::syscalls`, printed on exit; the server runs only this workload).
    pub rr_syscalls_per_tx: Samples,
    /// Server CPU time per transaction, in µs (its threads' run time from schedstat).
    pub rr_cpu_us_per_tx: Samples,
}

/// A namespace we created ourselves (the kernel server's), deleted on drop.
struct Netns(String);

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn sh(args: &[&str]) -> Result<()> {
    let o = Command::new(args[0]).args(&args[1..]).output()?;
    if !o.status.success() {
        bail!(
            "`{}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&o.stderr).trim()
        );
    }
    Ok(())
}

/// Why the lab cannot run here, if it cannot.
pub fn unavailable() -> Option<String> {
    let uid = euid();
    if uid != 0 {
        return Some(format!(
            "not root (euid {uid}): the lab needs CAP_NET_ADMIN/CAP_SYS_ADMIN"
        ));
    }
    for tool in ["ip", "ethtool", "curl"] {
        let ok = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            return Some(format!("`{tool}` is not installed"));
        }
    }
    None
}

fn euid() -> u32 {
    // /proc/self/status "Uid: real effective saved fs".
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(u32::MAX)
}

/// A running server process (started by us; stopped by PID).
struct Proc {
    child: Child,
    /// Its standard output lines, as they come.
    lines: Arc<Mutex<Vec<String>>>,
}

impl Proc {
    /// Spawns `cmd` and waits (at most 20 s) for a stdout line containing `ready`.
    fn start(mut cmd: Command) -> Result<Proc> {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("spawning the server")?;
        let out = child.stdout.take().context("stdout")?;
        let (tx, rx) = mpsc::channel();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let kept = Arc::clone(&lines);
        std::thread::spawn(move || {
            let mut ready = false;
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if !ready && line.contains("ready") {
                    ready = true;
                    let _ = tx.send(());
                }
                if let Ok(mut l) = kept.lock() {
                    l.push(line);
                }
            }
        });
        let mut p = Proc { child, lines };
        if rx.recv_timeout(Duration::from_secs(20)).is_err() {
            p.stop();
            bail!("the server did not print `ready` within 20 s");
        }
        Ok(p)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// User+system CPU seconds so far.
    fn cpu_secs(&self) -> f64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap_or_default();
        // Fields after the ")" of the command name: state is field 3; utime 14, stime 15.
        let rest = stat.rsplit_once(')').map_or("", |x| x.1);
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
            + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
        ticks / clk_tck()
    }

    /// CPU seconds its threads have run so far (`/proc/PID/task/*/schedstat`, nanoseconds;
    /// kernel work done in its system calls, softirqs they run included).
    fn run_secs(&self) -> f64 {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{}/task", self.pid())) else {
            return f64::NAN;
        };
        let ns: u64 = tasks
            .flatten()
            .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
            .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
            .sum();
        ns as f64 / 1e9
    }

    /// Stops it and returns the `syscalls` count of the `nic: NicStats { .. }` line a
    /// ringstack server prints on exit.
    fn stop_for_syscalls(&mut self) -> Option<f64> {
        self.stop();
        // The reader thread may still be draining the pipe: give it a moment.
        for _ in 0..50 {
            let found = self.lines.lock().ok().and_then(|l| {
                l.iter()
                    .rev()
                    .find(|l| l.starts_with("nic: "))
                    .and_then(|l| nic_syscalls(l))
            });
            if found.is_some() {
                return found;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    /// SIGTERM (by PID), then SIGKILL after 5 s.
    fn stop(&mut self) {
        if self.child.try_wait().ok().flatten().is_some() {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(5) {
            if self.child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `syscalls: N` of a `NicStats` debug line.
fn nic_syscalls(line: &str) -> Option<f64> {
    let rest = line.split_once("syscalls: ")?.1;
    rest.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

fn clk_tck() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// Runs `cmd` to completion, killing it after `limit`.
fn run_limited(mut cmd: Command, limit: Duration) -> Result<Output> {
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
    let t = Instant::now();
    loop {
        if child.try_wait()?.is_some() {
            let o = child.wait_with_output()?;
            if !o.status.success() {
                bail!(
                    "client failed: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                );
            }
            return Ok(o);
        }
        if t.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            bail!("client took longer than {limit:?}: killed");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The environment of the lab runs: two labs (one for ringstack, one for the kernel) and the
/// kernel server's namespace, plus the tmpfs directory with the HTTP file.
pub struct Env {
    rs: Lab,
    tap: Lab,
    k: Lab,
    k2: Netns,
    dir: PathBuf,
    exe: PathBuf,
    ringstack: PathBuf,
    file: String,
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Env {
    /// Builds both labs and writes the HTTP file of `http_bytes`.
    pub fn new(exe: &Path, ringstack: &Path, http_bytes: u64) -> Result<Env> {
        if !ringstack.exists() {
            bail!(
                "{} not found: build it with `cargo build --release -p ringstack` (same target dir)",
                ringstack.display()
            );
        }
        let base = if Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let dir = base.join(format!("ringstack-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let file = "file.bin".to_string();
        let data: Vec<u8> = (0..http_bytes).map(|i| (i % 251) as u8).collect();
        std::fs::write(dir.join(&file), data)?;
        let rs = Lab::create(LabLink::VethRing)?;
        let tap = Lab::create(LabLink::Tap)?;
        let k = Lab::create(LabLink::VethRing)?;
        // The kernel server's namespace: veth1 moves there (named after the lab, so that a
        // killed run's leftovers are recognised by rs-<pid>- like the labs').
        let k2 = Netns(format!("{}-k", k.name()));
        sh(&["ip", "netns", "add", &k2.0])?;
        sh(&["ip", "-n", k.name(), "link", "set", "veth1", "netns", &k2.0])?;
        let n = k2.0.as_str();
        sh(&["ip", "-n", n, "link", "set", "lo", "up"])?;
        sh(&[
            "ip",
            "-n",
            n,
            "addr",
            "add",
            &format!("{}/24", ringstack_nic::lab::RINGSTACK_ADDR),
            "dev",
            "veth1",
        ])?;
        sh(&["ip", "-n", n, "link", "set", "veth1", "up"])?;
        Ok(Env {
            rs,
            tap,
            k,
            k2,
            dir,
            exe: exe.to_path_buf(),
            ringstack: ringstack.to_path_buf(),
            file,
        })
    }

    fn offloads(&self, on: bool) -> Result<()> {
        let v = if on { "on" } else { "off" };
        for (ns, dev) in [(self.k.name(), "veth0"), (self.k2.0.as_str(), "veth1")] {
            sh(&[
                "ip", "netns", "exec", ns, "ethtool", "-K", dev, "tso", v, "gso", v, "gro", v,
                "tx", v, "rx", v,
            ])?;
        }
        Ok(())
    }

    /// The offloads of ringstack's lab (its veth0, the kernel client's side): on only for the
    /// vnet contender.
    fn rs_offloads(&self, on: bool) -> Result<()> {
        let v = if on { "on" } else { "off" };
        sh(&[
            "ip",
            "netns",
            "exec",
            self.rs.name(),
            "ethtool",
            "-K",
            "veth0",
            "tso",
            v,
            "gso",
            v,
            "gro",
            v,
            "tx",
            v,
        ])
    }

    fn client_lab(&self, s: Server) -> &Lab {
        match s {
            Server::Ring
            | Server::RingSmall
            | Server::RingV2
            | Server::RingV2NoSpin
            | Server::RingVnet
            | Server::Pnet => &self.rs,
            Server::Tap | Server::TapVnet => &self.tap,
            Server::KernelOff | Server::KernelOn => &self.k,
        }
    }

    fn start(&self, s: Server, sz: &Sizes) -> Result<Proc> {
        let mut cmd = match s {
            Server::Ring
            | Server::RingSmall
            | Server::RingV2
            | Server::RingV2NoSpin
            | Server::RingVnet
            | Server::Pnet => {
                // Only the vnet contender takes GSO frames: the others need the offloads off.
                self.rs_offloads(s == Server::RingVnet)?;
                let nic = if s == Server::Pnet {
                    "pnet:veth1"
                } else {
                    "ring:veth1"
                };
                let mut c = in_ns(self.rs.name(), &self.ringstack, sz.pin.cpus(true));
                c.args([
                    "serve",
                    "--nic",
                    nic,
                    "--addr",
                    "198.18.0.2/24",
                    "--services",
                    "echo,discard,http",
                    "--http-root",
                ])
                .arg(&self.dir);
                // The CLI defaults to TPACKET_V2 now: name V3 explicitly.
                if s == Server::Ring {
                    c.args(["--ring-version", "3"]);
                }
                if s == Server::RingSmall {
                    c.args([
                        "--ring-version",
                        "3",
                        "--ring-block-size",
                        "65536",
                        "--ring-blocks",
                        "64",
                    ]);
                }
                if s == Server::RingV2 {
                    c.args(["--ring-version", "2"]);
                }
                if s == Server::RingV2NoSpin {
                    c.args(["--ring-version", "2", "--spin-us", "0"]);
                }
                if s == Server::RingVnet {
                    c.args(["--ring-version", "2", "--ring-vnet-hdr"]);
                }
                c.args(&sz.server_args);
                c
            }
            Server::Tap | Server::TapVnet => {
                let mut c = in_ns(self.tap.name(), &self.ringstack, sz.pin.cpus(true));
                c.args([
                    "serve",
                    "--nic",
                    "tap:rstap0",
                    "--addr",
                    "198.18.0.2/24",
                    "--services",
                    "echo,discard,http",
                    "--http-root",
                ])
                .arg(&self.dir);
                if s == Server::TapVnet {
                    c.arg("--vnet-hdr");
                }
                c.args(&sz.server_args);
                c
            }
            Server::KernelOff | Server::KernelOn => {
                self.offloads(s == Server::KernelOn)?;
                let mut c = in_ns(&self.k2.0, &self.exe, sz.pin.cpus(true));
                c.args(["--helper", "kernel-servers"]).arg(&self.dir);
                c
            }
        };
        cmd.stdin(Stdio::null());
        Proc::start(cmd)
    }

    /// Frames both ways on the kernel side of the link (`veth0`, or `rstap0` for the TAP).
    fn link_frames(&self, lab: &Lab) -> f64 {
        let dev = lab.link().kernel_if();
        let o = lab.sh(&format!(
            "cat /sys/class/net/{dev}/statistics/rx_packets /sys/class/net/{dev}/statistics/tx_packets"
        ));
        o.map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .filter_map(|v| v.parse::<f64>().ok())
                .sum()
        })
        .unwrap_or(f64::NAN)
    }

    /// One round for contender `s`: bulk and HTTP on one server process, then
    /// request/response on a fresh one (so that its counters cover only that workload); each
    /// workload only if `sz` asks for it.
    pub fn round(&self, s: Server, sz: &Sizes, r: &mut Results) -> Result<()> {
        let lab = self.client_lab(s);
        let client = |program: &Path| in_ns(lab.name(), program, sz.pin.cpus(false));
        if (sz.bulk || sz.http) && !s.rr_only() {
            let p = self.start(s, sz)?;
            if sz.bulk {
                // Bulk → discard.
                let f0 = self.link_frames(lab);
                let c0 = p.cpu_secs();
                let mut c = client(&self.exe);
                c.args([
                    "--helper",
                    "bulk-client",
                    "198.18.0.2:9",
                    &sz.bulk_bytes.to_string(),
                ]);
                let o = run_limited(c, Duration::from_secs(300))?;
                let secs =
                    field(&String::from_utf8_lossy(&o.stdout), "secs").context("bulk: no secs=")?;
                let cpu = p.cpu_secs() - c0;
                let frames = self.link_frames(lab) - f0;
                r.bulk_gbps.push(sz.bulk_bytes as f64 * 8.0 / secs / 1e9);
                r.bulk_fps.push(frames / secs);
                if cpu > 0.0 {
                    r.bulk_frames_per_cpu_s.push(frames / cpu);
                    r.bulk_mb_per_cpu_s.push(sz.bulk_bytes as f64 / 1e6 / cpu);
                }
            }
            if sz.http {
                // HTTP GET of the tmpfs file.
                let mut c = client(Path::new("curl"));
                c.args([
                    "-s",
                    "-f",
                    "-o",
                    "/dev/null",
                    "--max-time",
                    "300",
                    "-w",
                    "%{size_download} %{time_total}",
                    &format!("http://198.18.0.2/{}", self.file),
                ]);
                let o = run_limited(c, Duration::from_secs(310))?;
                let text = String::from_utf8_lossy(&o.stdout).to_string();
                let mut it = text.split_whitespace();
                let size: f64 = it.next().and_then(|v| v.parse().ok()).unwrap_or(0.0);
                let t: f64 = it.next().and_then(|v| v.parse().ok()).unwrap_or(f64::NAN);
                if size as u64 != sz.http_bytes {
                    bail!("http: got {size} bytes of {}", sz.http_bytes);
                }
                r.http_gbps.push(size * 8.0 / t / 1e9);
            }
            drop(p);
        }
        if sz.rr {
            // 1-byte request/response → echo, on a fresh server.
            let mut p = self.start(s, sz)?;
            let c0 = p.run_secs();
            let mut c = client(&self.exe);
            c.args([
                "--helper",
                "rr-client",
                "198.18.0.2:7",
                &sz.rr_count.to_string(),
            ]);
            let o = run_limited(c, Duration::from_secs(120))?;
            let cpu = p.run_secs() - c0;
            let out = String::from_utf8_lossy(&o.stdout).to_string();
            let secs = field(&out, "secs").context("rr: no secs=")?;
            r.rr_tps.push(sz.rr_count as f64 / secs);
            r.rr_p50_us
                .push(field(&out, "p50_ns").unwrap_or(f64::NAN) / 1000.0);
            r.rr_p99_us
                .push(field(&out, "p99_ns").unwrap_or(f64::NAN) / 1000.0);
            // Warm-up transactions and the handshake are in the counts too.
            let txs = (sz.rr_count + RR_WARMUP) as f64;
            r.rr_cpu_us_per_tx.push(cpu * 1e6 / txs);
            if s.is_ringstack() {
                if let Some(n) = p.stop_for_syscalls() {
                    r.rr_syscalls_per_tx.push(n / txs);
                }
            }
        }
        Ok(())
    }
}

/// The warm-up transactions of `rr-client` (see `helpers.rs`).
const RR_WARMUP: u64 = 200;

/// `program` inside network namespace `ns` (`ip netns exec`), under `taskset -c cpus` if
/// given (the affinity is inherited through `ip` by the program).
fn in_ns(ns: &str, program: &Path, cpus: Option<&str>) -> Command {
    let mut c = match cpus {
        Some(cpus) => {
            let mut c = Command::new("taskset");
            c.args(["-c", cpus, "ip"]);
            c
        }
        None => Command::new("ip"),
    };
    c.args(["netns", "exec", ns]).arg(program);
    c
}
