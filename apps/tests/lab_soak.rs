//! Impairment soak against the Linux peer (issue 8): bulk transfers both ways at once between
//! ringstack and the kernel's own TCP, through `serve --impair` with 5% loss, 2% reordering,
//! 1% duplication and 0.5% corruption (applied inside ringstack's NIC layer, both directions),
//! on the AF_PACKET ring backend and on TAP:
//!
//! - Linux → ringstack: `nc` sends a file to the discard service, which reports the SHA-256 of
//!   what it received;
//! - ringstack → Linux: `curl` fetches the same file from the HTTP service (`--http-root`).
//!
//! Every byte must arrive intact (SHA-256), both transfers must complete, and neither may stall:
//! progress is sampled every 100 ms (curl's output file; the kernel socket's `bytes_acked` from
//! `ss` for nc) and no gap may exceed [`STALL_LIMIT`] — a few retransmission timeouts (200 ms
//! minimum, doubled per backoff).
//!
//! Size: [`DEFAULT_MB`] (100) each way by default; `RINGSTACK_SOAK_MB` changes it.
//! `RINGSTACK_SOAK_SEED` picks the impairment seed. The long-running variant, `lab_soak_long_running` (ignored by default: run
//! it with `cargo test -p ringstack --test lab_soak -- --ignored`), repeats 100 MB each way
//! `RINGSTACK_SOAK_ROUNDS` times (default 5) on both backends with a new seed each round.
//! `RINGSTACK_SOAK_BIN` runs another `ringstack` binary (to compare builds);
//! `RINGSTACK_SOAK_PCAP=FILE` makes serve write every frame to FILE.
//!
//! Needs root (CAP_NET_ADMIN/CAP_NET_RAW) and the lab's Debian packages (`scripts/test.sh`
//! installs them). Without them the tests print why and pass, unless `RINGSTACK_REQUIRE_LAB=1`
//! (CI) makes them fail.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{lab_or_skip, random_file, serial, sha256_file, Proc, Server, RS};
use ringstack_nic::lab::{Lab, LabLink};

/// The impairment (a seed is appended).
const IMPAIRMENT: &str = "loss=5%,reorder=2%,dup=1%,corrupt=0.5%";

/// Megabytes each way by default: the full 100 MB (both backends take about 40 s in
/// the debug build on two cores).
const DEFAULT_MB: usize = 100;

/// Longest time a transfer may make no progress: four back-to-back timeouts (200 + 400 + 800 +
/// 1600 ms: the minimum RTO, doubling — Linux's persist timer backs off the same way when the
/// window update that reopens a full receive buffer is lost), plus two seconds of slack for
/// scheduling on a busy two-core machine (the debug build's discard service is CPU-bound).
/// Observed: at most 1.4 s in release builds, 3.1 s once in a debug build on a loaded machine.
const STALL_LIMIT: Duration = Duration::from_secs(5);

/// How long one transfer of `mb` megabytes may take before the soak gives up.
fn transfer_limit(mb: usize) -> Duration {
    Duration::from_secs(60 + 3 * mb as u64)
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn ringstack_bin() -> PathBuf {
    std::env::var_os("RINGSTACK_SOAK_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_ringstack")))
}

/// Starts `ringstack serve` in the lab with `--impair`; its stdout lines are collected.
fn start_server(lab: &Lab, root: &Path, impair: &str) -> Server {
    let mut cmd = lab.command(ringstack_bin());
    cmd.args([
        "serve",
        "--nic",
        lab.link().nic_spec(),
        "--addr",
        "198.18.0.2/24",
        "--services",
        "discard,http",
        "--impair",
        impair,
        "--http-root",
    ])
    .arg(root);
    if let Some(p) = std::env::var_os("RINGSTACK_SOAK_PCAP") {
        cmd.arg("--pcap").arg(p);
    }
    Server::start(&mut cmd)
}

/// A shell command line running in the lab, in the background, with a time limit.
fn spawn_sh(lab: &Lab, name: &'static str, limit: Duration, script: &str) -> Proc {
    let child = lab
        .command("sh")
        .args(["-c", &format!("exec timeout {} {script}", limit.as_secs())])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {name}: {e}"));
    Proc { child, name }
}

/// Progress of one transfer, sampled.
struct Flow {
    name: &'static str,
    proc: Proc,
    bytes: u64,
    last_progress: Instant,
    longest_stall: Duration,
    /// When the longest stall ended, from the client's start.
    longest_stall_at: Duration,
    started: Option<Instant>,
    spawned: Instant,
    samples: u32,
    finished: Option<(Instant, std::process::ExitStatus)>,
}

impl Flow {
    fn new(name: &'static str, proc: Proc) -> Flow {
        Flow {
            name,
            proc,
            bytes: 0,
            last_progress: Instant::now(),
            longest_stall: Duration::ZERO,
            longest_stall_at: Duration::ZERO,
            started: None,
            spawned: Instant::now(),
            samples: 0,
            finished: None,
        }
    }

    /// Records a sample of the bytes moved so far.
    fn sample(&mut self, bytes: u64, now: Instant) {
        if self.finished.is_some() {
            return;
        }
        self.samples += 1;
        if bytes > self.bytes {
            if self.started.is_none() {
                self.started = Some(now);
            } else if now - self.last_progress > self.longest_stall {
                self.longest_stall = now - self.last_progress;
                self.longest_stall_at = now - self.spawned;
            }
            self.bytes = bytes;
            self.last_progress = now;
        }
        if let Ok(Some(status)) = self.proc.child.try_wait() {
            self.finished = Some((now, status));
        }
    }

    fn stalled_for(&self, now: Instant) -> Duration {
        if self.finished.is_some() || self.started.is_none() {
            Duration::ZERO
        } else {
            now - self.last_progress
        }
    }

    /// From the client's start to its exit (connection set-up and teardown included).
    fn seconds(&self) -> f64 {
        self.finished
            .map_or(f64::NAN, |(f, _)| (f - self.spawned).as_secs_f64())
    }

    fn stderr(&mut self) -> String {
        let mut s = String::new();
        if let Some(mut e) = self.proc.child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut s);
        }
        s
    }
}

/// Bytes the kernel's socket to ringstack's port `port` has had acknowledged (`ss`), if any.
fn kernel_bytes_acked(lab: &Lab, port: u16) -> Option<u64> {
    let out = lab
        .command("ss")
        .args(["-tinH", &format!("dport = :{port}")])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|w| w.strip_prefix("bytes_acked:"))
        .filter_map(|n| n.parse().ok())
        .max()
}

/// The value of counter `name` in serve's exit report, if printed.
fn counter(log: &[String], name: &str) -> Option<u64> {
    log.iter().find_map(|l| {
        let mut w = l.split_whitespace();
        (w.next() == Some(name)).then(|| w.next()?.parse().ok())?
    })
}

/// One soak round: `mb` megabytes each way at once through the impairment seeded with `seed`.
fn soak(link: LabLink, mb: usize, seed: u64) {
    let _serial = serial(); // the soaks run one at a time: each wants both cores
    let Some(lab) = lab_or_skip(link) else {
        return;
    };
    let ns = lab.name().to_string();
    eprintln!(
        "soak on {}: {mb} MB each way, {IMPAIRMENT},seed={seed}",
        link.nic_spec()
    );
    let dir = std::env::temp_dir().join(format!("ringstack-soak-{ns}"));
    std::fs::create_dir_all(&dir).unwrap();
    let len = mb << 20;
    let file = random_file(&dir, "soak.bin", len, seed);
    let want = sha256_file(&file);
    let got = dir.join("got.bin");
    let impair = format!("{IMPAIRMENT},seed={seed}");
    let mut server = start_server(&lab, &dir, &impair);
    let log = Arc::clone(&server.log);
    let limit = transfer_limit(mb);
    let mut download = Flow::new(
        "ringstack → Linux (curl GET)",
        spawn_sh(
            &lab,
            "curl",
            limit,
            &format!("curl -sSf -o {} http://{RS}/soak.bin", got.display()),
        ),
    );
    let mut upload = Flow::new(
        "Linux → ringstack (nc to discard)",
        spawn_sh(
            &lab,
            "nc",
            limit,
            &format!("nc -N {RS} 9 < {}", file.display()),
        ),
    );
    let deadline = Instant::now() + limit + Duration::from_secs(10);
    loop {
        let now = Instant::now();
        let down = std::fs::metadata(&got).map_or(0, |m| m.len());
        download.sample(down, now);
        if upload.finished.is_none() {
            let up = kernel_bytes_acked(&lab, 9).unwrap_or(0);
            upload.sample(up, now);
        }
        for f in [&download, &upload] {
            let stalled = f.stalled_for(now);
            assert!(
                stalled <= STALL_LIMIT,
                "{}: no progress for {stalled:?} at {} of {len} bytes\nserve:\n{}",
                f.name,
                f.bytes,
                log.lock().unwrap().join("\n")
            );
        }
        if download.finished.is_some() && upload.finished.is_some() {
            break;
        }
        assert!(now < deadline, "the soak did not finish within {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    for f in [&mut download, &mut upload] {
        let (_, status) = f.finished.unwrap();
        let err = f.stderr();
        assert!(status.success(), "{} failed ({status}): {err}", f.name);
    }
    assert_eq!(
        std::fs::metadata(&got).map_or(0, |m| m.len()),
        len as u64,
        "curl: byte count"
    );
    assert_eq!(sha256_file(&got), want, "ringstack → Linux: bytes differ");
    let report = format!("{len} bytes sha256 {want}");
    let t = Instant::now();
    while !log
        .lock()
        .unwrap()
        .iter()
        .any(|l| l.starts_with("discard:") && l.ends_with(&report))
    {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "Linux → ringstack: discard never reported {report}:\n{}",
            log.lock().unwrap().join("\n")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = server.stop();
    let log = server.lines();
    assert!(status.success(), "serve exited with {status}");
    for f in [&download, &upload] {
        eprintln!(
            "  {:<34} {mb} MB in {:>6.2} s ({:>5.1} MB/s), longest stall {:>4} ms (ending {:.1} s \
             in; {} samples)",
            f.name,
            f.seconds(),
            mb as f64 / f.seconds(),
            f.longest_stall.as_millis(),
            f.longest_stall_at.as_secs_f64(),
            f.samples
        );
    }
    let show = [
        "TcpRetransSegs",
        "TcpExtTCPTimeouts",
        "TcpExtTCPLossProbes",
        "TcpExtTCPSackRecovery",
        "TcpExtTCPRackLost",
        "TcpInCsumErrors",
    ];
    let counters: Vec<String> = show
        .iter()
        .filter_map(|n| counter(&log, n).map(|v| format!("{n} {v}")))
        .collect();
    eprintln!("  ringstack: {}", counters.join(", "));
    assert!(
        counter(&log, "TcpRetransSegs").unwrap_or(0) > 0,
        "the impairment should have forced retransmissions:\n{}",
        log.join("\n")
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn lab_soak_ring_backend() {
    soak(
        LabLink::VethRing,
        env_or("RINGSTACK_SOAK_MB", DEFAULT_MB),
        env_or("RINGSTACK_SOAK_SEED", 1),
    );
}

#[test]
fn lab_soak_tap_backend() {
    soak(
        LabLink::Tap,
        env_or("RINGSTACK_SOAK_MB", DEFAULT_MB),
        env_or("RINGSTACK_SOAK_SEED", 1),
    );
}

/// The long-running soak: 100 MB each way (or `RINGSTACK_SOAK_MB`), `RINGSTACK_SOAK_ROUNDS`
/// rounds (default 5) per backend, a new impairment seed each round.
#[test]
#[ignore = "long-running soak: run with --ignored"]
fn lab_soak_long_running() {
    let mb = env_or("RINGSTACK_SOAK_MB", 100);
    let rounds: u64 = env_or("RINGSTACK_SOAK_ROUNDS", 5);
    let first: u64 = env_or("RINGSTACK_SOAK_SEED", 1);
    for round in 0..rounds {
        for link in [LabLink::VethRing, LabLink::Tap] {
            soak(link, mb, first + round);
        }
    }
}

/// Measures (asserts nothing about time): `curl` fetching `RINGSTACK_MEASURE_MB` (default 10) MB
/// from ringstack's HTTP service under `RINGSTACK_MEASURE_IMPAIR` (default `loss=5%`) on the ring
/// backend, for seeds 1..=`RINGSTACK_MEASURE_SEEDS` (default 3), printing the time each took.
/// With `RINGSTACK_SOAK_BIN` it compares builds (the loss-recovery issue's before/after).
#[test]
#[ignore = "measurement: run with --ignored --nocapture"]
fn lab_measure_download_under_loss() {
    let _serial = serial();
    let Some(lab) = lab_or_skip(LabLink::VethRing) else {
        return;
    };
    let mb: usize = env_or("RINGSTACK_MEASURE_MB", 10);
    let seeds: u64 = env_or("RINGSTACK_MEASURE_SEEDS", 3);
    let spec: String = env_or("RINGSTACK_MEASURE_IMPAIR", "loss=5%".to_string());
    let dir = std::env::temp_dir().join(format!("ringstack-measure-{}", lab.name()));
    std::fs::create_dir_all(&dir).unwrap();
    let want = sha256_file(&random_file(&dir, "f.bin", mb << 20, 7));
    for seed in 1..=seeds {
        let mut server = start_server(&lab, &dir, &format!("{spec},seed={seed}"));
        let got = dir.join("got.bin");
        let t = Instant::now();
        let out = lab
            .sh(&format!(
                "timeout 300 curl -sSf -o {} http://{RS}/f.bin",
                got.display()
            ))
            .expect("curl");
        let secs = t.elapsed().as_secs_f64();
        assert!(out.status.success(), "curl failed: {out:?}");
        assert_eq!(sha256_file(&got), want, "bytes differ");
        server.stop();
        let log = server.lines();
        eprintln!(
            "{} {mb} MB ringstack → Linux under {spec},seed={seed}: {secs:.2} s ({:.1} MB/s); \
             RTOs {}, loss probes {}, retransmitted {}",
            ringstack_bin().display(),
            mb as f64 / secs,
            counter(&log, "TcpExtTCPTimeouts").unwrap_or(0),
            counter(&log, "TcpExtTCPLossProbes").unwrap_or(0),
            counter(&log, "TcpRetransSegs").unwrap_or(0),
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Measures (asserts nothing about time) the other direction: `nc` sending
/// `RINGSTACK_MEASURE_MB` (default 10) MB to ringstack's discard service under
/// `RINGSTACK_MEASURE_IMPAIR` (default `loss=5%`), seeds 1..=`RINGSTACK_MEASURE_SEEDS`.
#[test]
#[ignore = "measurement: run with --ignored --nocapture"]
fn lab_measure_upload_under_loss() {
    let _serial = serial();
    let Some(lab) = lab_or_skip(LabLink::VethRing) else {
        return;
    };
    let mb: usize = env_or("RINGSTACK_MEASURE_MB", 10);
    let seeds: u64 = env_or("RINGSTACK_MEASURE_SEEDS", 3);
    let spec: String = env_or("RINGSTACK_MEASURE_IMPAIR", "loss=5%".to_string());
    let dir = std::env::temp_dir().join(format!("ringstack-measure-{}", lab.name()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = random_file(&dir, "f.bin", mb << 20, 8);
    let want = format!("{} bytes sha256 {}", mb << 20, sha256_file(&file));
    for seed in 1..=seeds {
        let mut server = start_server(&lab, &dir, &format!("{spec},seed={seed}"));
        let t = Instant::now();
        let out = lab
            .sh(&format!("timeout 300 nc -N {RS} 9 < {}", file.display()))
            .expect("nc");
        let secs = t.elapsed().as_secs_f64();
        assert!(out.status.success(), "nc failed: {out:?}");
        let t = Instant::now();
        while !server
            .log
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.starts_with("discard:") && l.ends_with(&want))
        {
            assert!(t.elapsed() < Duration::from_secs(30), "no discard report");
            std::thread::sleep(Duration::from_millis(20));
        }
        server.stop();
        eprintln!(
            "{} {mb} MB Linux → ringstack under {spec},seed={seed}: {secs:.2} s ({:.1} MB/s)",
            ringstack_bin().display(),
            mb as f64 / secs,
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
