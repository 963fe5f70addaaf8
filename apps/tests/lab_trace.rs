//! `ringstack serve --trace` with a real curl: ringstack on the AF_PACKET ring in a private
//! network namespace, the kernel's curl fetching `/` once, and the live trace checked for the
//! whole journey — the SYN arriving from a ring slot, the SYN-ACK leaving through a TX slot,
//! curl's GET landing in the socket, the response leaving, and the FIN exchange — on both ring
//! versions (V2 names RX slots, V3 RX blocks and offsets).
//!
//! Needs root and `curl`/`ip`/`ethtool`. Without them the test prints why and passes, unless
//! `RINGSTACK_REQUIRE_LAB=1` (CI) makes it fail. Every process is bounded in time and ended by
//! PID; the namespace goes with the [`Lab`].

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{have, skip, Proc, RS};
use ringstack_nic::lab::{Lab, LabLink};

/// The lab, or `None` (test skipped, reason printed) when this machine cannot host it.
fn lab_or_skip() -> Option<Lab> {
    if !have("curl") {
        skip("`curl` is not installed: install the Debian package `curl`");
        return None;
    }
    common::lab_or_skip(LabLink::VethRing)
}

/// `ringstack serve --trace` in the lab, ended by PID (SIGTERM, then SIGKILL) when dropped;
/// its standard error (the trace) is collected line by line.
struct Server {
    proc: Proc,
    trace: Arc<Mutex<Vec<String>>>,
}

impl Server {
    fn start(lab: &Lab, ring_version: &str) -> Server {
        let mut child = common::serve_command(lab)
            .args(["--ring-version", ring_version, "--trace=port=80"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ringstack serve");
        let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        let trace = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&trace);
        let stderr = BufReader::new(child.stderr.take().unwrap());
        std::thread::spawn(move || {
            for l in stderr.lines().map_while(Result::ok) {
                sink.lock().unwrap().push(l);
            }
        });
        let server = Server {
            proc: Proc {
                child,
                name: "ringstack serve",
            },
            trace,
        };
        let first = stdout.next().and_then(Result::ok).unwrap_or_default();
        assert!(
            first.contains("ready"),
            "serve did not print ready: {first:?}\ntrace/stderr: {:#?}",
            server.lines()
        );
        std::thread::spawn(move || for _ in stdout.map_while(Result::ok) {});
        server
    }

    fn lines(&self) -> Vec<String> {
        self.trace.lock().unwrap().clone()
    }

    fn stop(&mut self) {
        self.proc.stop();
    }
}

/// The trace lines of layer `layer` going `arrow` (`↑`/`↓`) that contain every one of `parts`.
fn find<'a>(lines: &'a [String], arrow: &str, layer: &str, parts: &[&str]) -> Vec<&'a String> {
    lines
        .iter()
        .filter(|l| {
            let mut words = l
                .split_whitespace()
                .skip_while(|w| !w.starts_with('#'))
                .skip(1);
            words.next() == Some(arrow)
                && words.next() == Some(layer)
                && parts.iter().all(|p| l.contains(p))
        })
        .collect()
}

/// The `#N` of a trace line.
fn frame_of(line: &str) -> &str {
    line.split_whitespace()
        .find(|w| w.starts_with('#'))
        .unwrap_or_default()
}

/// One curl against `serve --trace` on ring version `version`; `rx_position` is how the trace
/// names where a received frame lay.
fn curl_is_traced(version: &str, rx_position: &str) {
    let Some(lab) = lab_or_skip() else {
        return;
    };
    eprintln!(
        "lab {} on {}, TPACKET_V{version}",
        lab.name(),
        lab.link().nic_spec()
    );
    let mut server = Server::start(&lab, version);
    let out = lab
        .sh(&format!("timeout 30 curl -sf http://{RS}/"))
        .expect("spawn curl");
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("ringstack"),
        "curl failed ({}): {}\ntrace: {:#?}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        server.lines()
    );
    // curl closes first; the trace is complete once ringstack's FIN is acknowledged.
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let lines = server.lines();
        let fin_acked = find(&lines, "↑", "Tcp", &["> 80 [.]", "LAST-ACK"]);
        if !fin_acked.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    server.stop();
    let lines = server.lines();
    let all = lines.join("\n");
    let need = |what: &str, found: Vec<&String>| -> String {
        assert!(!found.is_empty(), "the trace shows no {what}:\n{all}");
        eprintln!("  {what}: {}", found[0].trim());
        found[0].clone()
    };

    // The SYN arrives: from a ring slot, up through Ethernet and IPv4 to TCP's listener.
    let syn = need("SYN", find(&lines, "↑", "Tcp", &["> 80 [S] ", "LISTEN"]));
    let syn_nic = need(
        "SYN's ring position",
        find(&lines, "↑", "Nic", &[frame_of(&syn), rx_position, "stack "]),
    );
    assert!(syn_nic.contains("µs"), "per-frame stack time: {syn_nic}");
    need(
        "SYN's IPv4 header",
        find(&lines, "↑", "Ipv4", &[frame_of(&syn), "proto TCP"]),
    );
    // The SYN-ACK leaves through a TX slot.
    let syn_ack = need("SYN-ACK", find(&lines, "↓", "Tcp", &["80 > ", "[S.]"]));
    need(
        "SYN-ACK's Ethernet header",
        find(
            &lines,
            "↓",
            "Ethernet",
            &[frame_of(&syn_ack), "type 0x0800"],
        ),
    );
    need(
        "SYN-ACK's TX slot",
        find(&lines, "↓", "Nic", &[frame_of(&syn_ack), "ring tx slot "]),
    );
    // curl's GET lands in the socket's receive buffer, then the service reads it.
    let get = need(
        "GET in the receive buffer",
        find(
            &lines,
            "↑",
            "Socket",
            &[
                "DELIVER",
                r#""GET / HTTP/1.1\r\nHost: 198.18.0.2\r\nUser-Agent: curl/"#,
                "[copy ",
            ],
        ),
    );
    need(
        "GET's ring position",
        find(&lines, "↑", "Nic", &[frame_of(&get), rx_position]),
    );
    need(
        "the service's read",
        find(&lines, "↑", "App", &["> 80 read "]),
    );
    // The response leaves: TCP segment with the status line, then out through a TX slot.
    let response = need(
        "response",
        find(&lines, "↓", "Tcp", &["80 > ", r#""HTTP/1.1 200 OK\r\n"#]),
    );
    need(
        "response's TX slot",
        find(&lines, "↓", "Nic", &[frame_of(&response), "ring tx slot "]),
    );
    // The FIN exchange.
    need("curl's FIN", find(&lines, "↑", "Tcp", &["> 80 [F.]"]));
    need(
        "ringstack's FIN",
        find(&lines, "↓", "Tcp", &["80 > ", "[F.]"]),
    );
}

#[test]
fn lab_trace_of_a_real_curl_on_ring_v2() {
    curl_is_traced("2", "ring rx slot ");
}

#[test]
fn lab_trace_of_a_real_curl_on_ring_v3() {
    curl_is_traced("3", "ring rx block ");
}
