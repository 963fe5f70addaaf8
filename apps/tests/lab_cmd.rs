//! `ringstack lab` as a long-running command: it tears its namespace down when told to stop
//! (SIGTERM/SIGINT), and even when it is SIGKILLed — which no handler can catch — its
//! `serve` child does not outlive it (the kernel kills it: `PR_SET_PDEATHSIG`).
//!
//! Needs root and `ip`/`ethtool`. Without them the tests print why and pass, unless
//! `RINGSTACK_REQUIRE_LAB=1` (CI) makes them fail. Processes are ended by PID.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{have, serial, skip, EXE};

fn lab_possible() -> bool {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    if root && have("ip") && have("ethtool") {
        return true;
    }
    skip("needs root and the Debian packages iproute2 and ethtool");
    false
}

/// Starts `ringstack lab` (no command: it runs until stopped) and waits until it is up;
/// returns the child and the namespace name it printed.
fn start_lab() -> (Child, String) {
    let mut child = Command::new(EXE)
        .arg("lab")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn ringstack lab");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut ns = None;
    let deadline = Instant::now() + Duration::from_secs(30);
    for line in lines.by_ref() {
        let line = line.expect("read lab output");
        if let Some(rest) = line.strip_prefix("lab namespace ") {
            ns = rest.split(':').next().map(str::to_string);
        }
        if line.starts_with("Ctrl-C ends the lab") || Instant::now() > deadline {
            break;
        }
    }
    // Keep draining so the lab never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    let ns = ns.expect("`ringstack lab` printed its namespace");
    (child, ns)
}

/// The direct children of `pid` (from /proc, no pattern matching on command lines).
fn children(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|s| s.parse().ok())
        .collect()
}

/// Whether `pid` is a live (not zombie) process.
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rsplit(')')
                .next()
                .and_then(|r| r.split_whitespace().next());
            state != Some("Z") && state != Some("X")
        }
        Err(_) => false,
    }
}

fn namespace_exists(ns: &str) -> bool {
    Command::new("ip")
        .args(["netns", "list"])
        .output()
        .is_ok_and(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l.split_whitespace().next() == Some(ns))
        })
}

fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    f()
}

#[test]
fn sigterm_tears_the_lab_down() {
    let _g = serial();
    if !lab_possible() {
        return;
    }
    let (mut lab, ns) = start_lab();
    let serve: Vec<u32> = children(lab.id());
    assert_eq!(serve.len(), 1, "one serve child: {serve:?}");
    assert!(namespace_exists(&ns));
    Command::new("kill")
        .args(["-TERM", &lab.id().to_string()])
        .status()
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(15), || matches!(
            lab.try_wait(),
            Ok(Some(_))
        )),
        "lab exits on SIGTERM"
    );
    assert!(lab.wait().unwrap().success(), "SIGTERM is a clean exit");
    assert!(!namespace_exists(&ns), "namespace {ns} removed");
    assert!(!alive(serve[0]), "serve ended with the lab");
}

#[test]
fn a_sigkilled_lab_does_not_leave_serve_running() {
    let _g = serial();
    if !lab_possible() {
        return;
    }
    let (mut lab, ns) = start_lab();
    let serve = children(lab.id());
    assert_eq!(serve.len(), 1, "one serve child: {serve:?}");
    assert!(alive(serve[0]));
    lab.kill().unwrap(); // SIGKILL: no handler runs
    lab.wait().unwrap();
    let gone = wait_until(Duration::from_secs(5), || !alive(serve[0]));
    if !gone {
        // Do not leave it behind even when the test fails.
        let _ = Command::new("kill")
            .args(["-KILL", &serve[0].to_string()])
            .status();
    }
    // The namespace name stays until the next `Lab::create` sweeps stale ones; remove it here.
    let _ = Command::new("ip").args(["netns", "del", &ns]).status();
    assert!(gone, "serve (pid {}) outlived its SIGKILLed lab", serve[0]);
}
