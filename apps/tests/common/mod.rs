//! Helpers shared by the lab tests (`mod common;` in each): skipping when this machine cannot
//! host a lab (unless `RINGSTACK_REQUIRE_LAB=1`), processes ended by PID, `ringstack serve`
//! started in the lab, commands bounded in time, and SHA-256 of test files.
//!
//! Not every test uses every helper.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use ringstack_nic::lab::{Lab, LabError, LabLink};
use sha2::{Digest, Sha256};

/// ringstack's address in the lab.
pub const RS: &str = "198.18.0.2";
/// The kernel's address in the lab.
pub const KERNEL: &str = "198.18.0.1";
pub const EXE: &str = env!("CARGO_BIN_EXE_ringstack");

/// Whether CI asked for the lab tests to fail instead of skipping (`RINGSTACK_REQUIRE_LAB=1`).
pub fn require_lab() -> bool {
    std::env::var("RINGSTACK_REQUIRE_LAB").as_deref() == Ok("1")
}

/// Skips the test: prints `why`, or fails when the lab is required.
pub fn skip(why: &str) {
    assert!(
        !require_lab(),
        "lab required (RINGSTACK_REQUIRE_LAB=1): {why}"
    );
    eprintln!("SKIPPED: {why}");
}

/// Whether `tool` is on the PATH.
pub fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The lab, or `None` (test skipped, reason printed) when this machine cannot host it.
pub fn lab_or_skip(link: LabLink) -> Option<Lab> {
    match Lab::create(link) {
        Ok(lab) => Some(lab),
        Err(e @ (LabError::NoPrivilege(_) | LabError::MissingTool(..))) => {
            assert!(
                !require_lab(),
                "lab required (RINGSTACK_REQUIRE_LAB=1) but unavailable: {e}"
            );
            eprintln!("SKIPPED: {e}");
            None
        }
        Err(e) => panic!("lab setup failed: {e}"),
    }
}

static SERIAL: Mutex<()> = Mutex::new(());

/// One lab test at a time (within one test binary): they want both cores.
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A process started in the lab, ended by PID (SIGTERM, then SIGKILL) when dropped — also when
/// the test fails.
pub struct Proc {
    pub child: Child,
    pub name: &'static str,
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM, waits up to 10 s, then SIGKILLs; returns the exit status.
    pub fn stop(&mut self) -> ExitStatus {
        if let Ok(Some(s)) = self.child.try_wait() {
            return s;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(s)) = self.child.try_wait() {
                return s;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!(
            "{} (pid {}) did not stop on SIGTERM: killing it",
            self.name,
            self.pid()
        );
        let _ = self.child.kill();
        self.child.wait().expect("wait")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `ringstack serve --nic <the lab's NIC> --addr 198.18.0.2/24`, to be completed by the caller.
pub fn serve_command(lab: &Lab) -> Command {
    let mut cmd = lab.command(EXE);
    cmd.args([
        "serve",
        "--nic",
        lab.link().nic_spec(),
        "--addr",
        "198.18.0.2/24",
    ]);
    cmd
}

/// `ringstack serve` once it printed `ready`; its stdout lines are collected in `log`.
pub struct Server {
    pub proc: Proc,
    pub log: Arc<Mutex<Vec<String>>>,
    reader: Option<JoinHandle<()>>,
}

impl Server {
    /// Starts `cmd` (a `ringstack serve` command line) and waits for its `ready` line.
    pub fn start(cmd: &mut Command) -> Server {
        let mut child = cmd
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn ringstack serve");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let proc = Proc {
            child,
            name: "ringstack serve",
        };
        let first = lines.next().and_then(Result::ok).unwrap_or_default();
        assert!(
            first.contains("ready"),
            "serve did not print ready: {first:?}"
        );
        let log = Arc::new(Mutex::new(vec![first]));
        let sink = Arc::clone(&log);
        let reader = std::thread::spawn(move || {
            for l in lines.map_while(Result::ok) {
                sink.lock().unwrap().push(l);
            }
        });
        Server {
            proc,
            log,
            reader: Some(reader),
        }
    }

    /// Every line printed so far.
    pub fn lines(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// Stops it (SIGTERM) and waits until all its output is in `log`.
    pub fn stop(&mut self) -> ExitStatus {
        let status = self.proc.stop();
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        status
    }
}

/// Runs a shell command in the lab with a time limit; panics with its output if it fails.
pub fn sh_ok(lab: &Lab, what: &str, script: &str) -> Output {
    let t = Instant::now();
    let out = lab.sh(&format!("timeout 120 {script}")).expect("spawn sh");
    let secs = t.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "{what} failed ({}): {script}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("  {what}: ok in {secs:.2} s");
    out
}

/// Runs `cmd` to completion within `timeout` (killed by PID and the test failed otherwise);
/// returns (success, stdout, stderr).
pub fn run(mut cmd: Command, timeout: Duration) -> (bool, String, String) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {cmd:?}: {e}"));
    let reader = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    };
    let out = reader(Box::new(child.stdout.take().expect("stdout")));
    let err = reader(Box::new(child.stderr.take().expect("stderr")));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = Command::new("kill")
                .args(["-KILL", &child.id().to_string()])
                .status();
            let _ = child.wait();
            panic!("{cmd:?} did not finish within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let (out, err) = (
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default(),
    );
    (status.success(), out, err)
}

/// Waits until `cond` or panics after `secs`.
pub fn wait_for(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn hex(d: &[u8]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn sha256_file(p: &Path) -> String {
    let data = std::fs::read(p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()));
    hex(&Sha256::digest(&data))
}

/// `dir/name`: `len` bytes from a ChaCha8 stream seeded with `seed`.
pub fn random_file(dir: &Path, name: &str, len: usize, seed: u64) -> PathBuf {
    let mut data = vec![0u8; len];
    ChaCha8Rng::seed_from_u64(seed).fill_bytes(&mut data);
    let p = dir.join(name);
    std::fs::write(&p, &data).expect("write test file");
    p
}

/// The kernel's `python3 -m http.server` on 198.18.0.1:8000 serving `dir`, once it answers.
pub fn kernel_http_server(lab: &Lab, dir: &Path) -> Proc {
    let http = Proc {
        child: lab
            .command("python3")
            .args(["-m", "http.server", "8000", "--bind", KERNEL, "--directory"])
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 http.server"),
        name: "python3 http.server",
    };
    wait_for(20, "http.server", || {
        lab.sh(&format!("curl -sf -o /dev/null http://{KERNEL}:8000/"))
            .is_ok_and(|o| o.status.success())
    });
    http
}

/// Waits until a kernel socket in the lab listens on TCP `port`.
pub fn wait_listening(lab: &Lab, what: &str, port: u16) {
    wait_for(20, what, || {
        lab.sh(&format!("ss -ltn 'sport = :{port}' | grep -q {port}"))
            .is_ok_and(|o| o.status.success())
    });
}

/// The kernel's `nc -d -l 198.18.0.1 9000 > out`, once it listens.
pub fn kernel_nc_listener(lab: &Lab, out: &str) -> Proc {
    let nc = Proc {
        child: lab
            .command("sh")
            .args(["-c", &format!("nc -d -l {KERNEL} 9000 > {out}")])
            .spawn()
            .expect("nc -l"),
        name: "nc -l",
    };
    wait_listening(lab, "nc -l", 9000);
    nc
}

/// Runs a shell command in the lab with a time limit; its stdout (panics if it fails).
pub fn sh(lab: &Lab, script: &str) -> String {
    String::from_utf8_lossy(&sh_ok(lab, script, script).stdout).into_owned()
}

/// (packets, bytes) the kernel-side interface `dev` has transmitted so far.
pub fn tx_counters(lab: &Lab, dev: &str) -> (u64, u64) {
    let out = sh(
        lab,
        &format!(
            "cat /sys/class/net/{dev}/statistics/tx_packets /sys/class/net/{dev}/statistics/tx_bytes"
        ),
    );
    let v: Vec<u64> = out.split_whitespace().map(|x| x.parse().unwrap()).collect();
    (v[0], v[1])
}

/// Waits (up to 30 s) for the discard service's report of the connection from the kernel
/// side and asserts it received exactly `len` bytes with SHA-256 `want`.
pub fn expect_discard_report(server: &Server, len: usize, want: &str) {
    let report = format!("discard: {KERNEL}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let log = server.lines();
        if let Some(l) = log.iter().find(|l| l.starts_with(&report)) {
            assert!(
                l.ends_with(&format!("{len} bytes sha256 {want}")),
                "discard got other bytes: {l}"
            );
            return;
        }
        assert!(Instant::now() < deadline, "no discard report: {log:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
