//! The iperf3 lab tests: the unmodified Debian `iperf3` client against `ringstack serve`'s
//! iperf3-compatible server (plain, `-R`, `-P 4`, `-n 20M`, a second client while busy), and
//! `ringstack iperf` against a real `iperf3 -s`, each in a private network namespace.
//!
//! Needs root and `iperf3`/`ip`/`ethtool`. Without them the tests print why and pass, unless
//! `RINGSTACK_REQUIRE_LAB=1` (CI) makes them fail. Every process is bounded by a timeout and
//! ended by PID; the namespace goes with the [`Lab`].

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{have, run, serial, skip, EXE, KERNEL, RS};
use ringstack_nic::lab::{Lab, LabLink};
use serde_json::Value;

/// The lab, or `None` (test skipped, reason printed) when this machine cannot host it.
fn lab_or_skip() -> Option<Lab> {
    if !have("iperf3") {
        skip("`iperf3` is not installed: install the Debian package `iperf3`");
        return None;
    }
    common::lab_or_skip(LabLink::VethRing)
}

/// A process started in the lab (ended by PID when dropped), its stdout forwarded line by line.
struct Proc {
    proc: common::Proc,
    output: mpsc::Receiver<String>,
}

impl Proc {
    /// Waits for an output line containing `needle`; panics after `timeout`.
    fn wait_for_line(&mut self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.output.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return,
                Ok(_) => {}
                Err(_) => panic!(
                    "{} printed no line containing {needle:?} within {timeout:?} (exited: {:?})",
                    self.proc.name,
                    self.proc.child.try_wait()
                ),
            }
        }
    }
}

/// Starts `cmd` with its stdout forwarded line by line (and echoed to the test's stderr).
fn spawn(mut cmd: Command, name: &'static str) -> Proc {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {name}: {e}"));
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            eprintln!("[{name}] {line}");
            let _ = tx.send(line);
        }
    });
    Proc {
        proc: common::Proc { child, name },
        output: rx,
    }
}

/// `ringstack serve` on the lab's veth, once it says `ready`.
fn start_serve(lab: &Lab) -> Proc {
    let mut p = spawn(common::serve_command(lab), "ringstack serve");
    p.wait_for_line("ready", Duration::from_secs(20));
    p
}

fn num(v: &Value, path: &[&str]) -> f64 {
    let mut cur = v;
    for p in path {
        cur = &cur[*p];
    }
    cur.as_f64()
        .unwrap_or_else(|| panic!("no number at {path:?} in {v:#}"))
}

/// A complete iperf3 JSON report: no error, both sums present and positive, every stream with
/// a sender and a receiver side.
fn check_report(j: &Value, streams: usize) {
    assert!(j.get("error").is_none(), "iperf3 reported an error: {j:#}");
    let end = &j["end"];
    for sum in ["sum_sent", "sum_received"] {
        assert!(num(end, &[sum, "bytes"]) > 0.0, "{sum}.bytes is 0: {end:#}");
        assert!(num(end, &[sum, "seconds"]) > 0.0);
        assert!(num(end, &[sum, "bits_per_second"]) > 0.0);
    }
    let st = end["streams"].as_array().expect("end.streams");
    assert_eq!(st.len(), streams, "streams in {end:#}");
    let (mut sent, mut received) = (0.0, 0.0);
    for s in st {
        sent += num(s, &["sender", "bytes"]);
        received += num(s, &["receiver", "bytes"]);
        assert!(num(s, &["receiver", "bytes"]) > 0.0);
    }
    assert_eq!(sent, num(end, &["sum_sent", "bytes"]));
    assert_eq!(received, num(end, &["sum_received", "bytes"]));
    assert!(
        received <= sent,
        "received {received} more than was sent {sent}"
    );
}

/// Runs the real `iperf3 -c 198.18.0.2 --json ARGS` in the lab against `ringstack serve`.
fn iperf3_against_ringstack(lab: &Lab, args: &[&str]) -> Value {
    let mut cmd = lab.command("iperf3");
    cmd.args(["-c", RS, "--json", "--connect-timeout", "5000"])
        .args(args);
    let (ok, out, err) = run(cmd, Duration::from_secs(60));
    let j: Value = serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("iperf3 printed no JSON ({e}): {out}\n{err}"));
    assert!(ok, "iperf3 {args:?} failed: {}\n{err}", j["error"]);
    let end = &j["end"];
    eprintln!(
        "iperf3 {args:?} -> ringstack: sent {} B, received {} B, {:.1} Mbit/s",
        end["sum_sent"]["bytes"],
        end["sum_received"]["bytes"],
        end["sum_received"]["bits_per_second"]
            .as_f64()
            .unwrap_or(0.0)
            / 1e6
    );
    j
}

#[test]
fn iperf3_client_timed() {
    let _g = serial();
    let Some(lab) = lab_or_skip() else { return };
    let _serve = start_serve(&lab);
    let j = iperf3_against_ringstack(&lab, &["-t", "3"]);
    check_report(&j, 1);
    let secs = num(&j["end"], &["sum_received", "seconds"]);
    assert!((2.5..4.5).contains(&secs), "a 3 s test took {secs} s");
}

#[test]
fn iperf3_client_reverse() {
    let _g = serial();
    let Some(lab) = lab_or_skip() else { return };
    let _serve = start_serve(&lab);
    let j = iperf3_against_ringstack(&lab, &["-t", "3", "-R"]);
    assert_eq!(j["start"]["test_start"]["reverse"], 1);
    check_report(&j, 1);
}

#[test]
fn iperf3_client_parallel() {
    let _g = serial();
    let Some(lab) = lab_or_skip() else { return };
    let _serve = start_serve(&lab);
    let j = iperf3_against_ringstack(&lab, &["-t", "3", "-P", "4"]);
    check_report(&j, 4);
    // Each stream moved data (the server's per-stream ids matched the client's).
    for s in j["end"]["streams"].as_array().unwrap() {
        assert!(num(s, &["receiver", "bytes"]) > 0.0, "{s:#}");
    }
}

#[test]
fn iperf3_client_byte_count() {
    let _g = serial();
    let Some(lab) = lab_or_skip() else { return };
    let _serve = start_serve(&lab);
    let j = iperf3_against_ringstack(&lab, &["-n", "20M"]);
    check_report(&j, 1);
    assert!(num(&j["end"], &["sum_sent", "bytes"]) >= (20 << 20) as f64);
    // And reverse with a byte count: the server stops at exactly the count.
    let j = iperf3_against_ringstack(&lab, &["-n", "20M", "-R", "-P", "2"]);
    check_report(&j, 2);
    assert_eq!(num(&j["end"], &["sum_sent", "bytes"]), (20 << 20) as f64);
}

#[test]
fn second_client_is_denied_while_busy() {
    let _g = serial();
    let Some(lab) = lab_or_skip() else { return };
    let _serve = start_serve(&lab);
    let mut first = lab.command("iperf3");
    first
        .args(["-c", RS, "-t", "4", "--forceflush"])
        .stderr(Stdio::null());
    let mut first = spawn(first, "iperf3 (first)");
    first.wait_for_line("connected to", Duration::from_secs(10));
    let mut second = lab.command("iperf3");
    second.args(["-c", RS, "-t", "1"]);
    let (ok, out, err) = run(second, Duration::from_secs(20));
    assert!(!ok, "a second test ran concurrently: {out}");
    assert!(
        format!("{out}{err}").contains("busy"),
        "expected ACCESS_DENIED (\"the server is busy\"), got: {out}\n{err}"
    );
    // The first one completes normally.
    first.wait_for_line("iperf Done", Duration::from_secs(20));
}

/// Starts a real one-shot `iperf3 -s -1` on the kernel side once it listens.
fn start_iperf3_server(lab: &Lab) -> Proc {
    let mut cmd = lab.command("iperf3");
    cmd.args(["-s", "-1", "-B", KERNEL, "--forceflush"]);
    let mut p = spawn(cmd, "iperf3 -s");
    p.wait_for_line("Server listening", Duration::from_secs(10));
    p
}

/// `ringstack iperf --json ARGS` against `iperf3 -s` in the lab.
fn ringstack_against_iperf3(lab: &Lab, args: &[&str]) -> Value {
    let _server = start_iperf3_server(lab);
    let mut cmd = lab.command(EXE);
    cmd.args([
        "iperf",
        "--nic",
        LabLink::VethRing.nic_spec(),
        "--addr",
        &format!("{RS}/24"),
        "-c",
        KERNEL,
        "--json",
    ])
    .args(args);
    let (ok, out, err) = run(cmd, Duration::from_secs(60));
    let j: Value = serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("ringstack iperf printed no JSON ({e}): {out}\n{err}"));
    assert!(ok, "ringstack iperf {args:?} failed: {}\n{err}", j["error"]);
    eprintln!(
        "ringstack iperf {args:?} -> iperf3 -s: sent {} B, received {} B, {:.1} Mbit/s",
        j["end"]["sum_sent"]["bytes"],
        j["end"]["sum_received"]["bytes"],
        j["end"]["sum_received"]["bits_per_second"]
            .as_f64()
            .unwrap_or(0.0)
            / 1e6
    );
    j
}

#[test]
fn ringstack_client_against_iperf3_server() {
    let _g = serial();
    let Some(lab) = lab_or_skip() else { return };
    let j = ringstack_against_iperf3(&lab, &["-t", "3"]);
    check_report(&j, 1);
    let j = ringstack_against_iperf3(&lab, &["-t", "2", "-P", "2", "-R"]);
    check_report(&j, 2);
    let j = ringstack_against_iperf3(&lab, &["-n", "20M", "-l", "64K"]);
    check_report(&j, 1);
    assert_eq!(num(&j["end"], &["sum_sent", "bytes"]), (20 << 20) as f64);
}
