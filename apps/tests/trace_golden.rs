//! Pins the format of `ringstack trace` (the journey of frames through the layers) with a
//! golden file: the demo runs on a virtual clock with fixed seeds, so the output is exact.
//! After an intended change of format: `UPDATE_GOLDEN=1 cargo test -p ringstack --test trace_golden`.

use std::path::Path;
use std::process::Command;

fn check(name: &str, args: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_ringstack"))
        .arg("trace")
        .args(args)
        .output()
        .expect("run ringstack trace");
    assert!(
        out.status.success(),
        "ringstack trace failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = String::from_utf8(out.stdout).expect("utf-8");
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    if got != want {
        for (i, (g, w)) in got.lines().zip(want.lines()).enumerate() {
            if g != w {
                panic!("{name}: line {} differs\n  got:  {g}\n  want: {w}\n(UPDATE_GOLDEN=1 to accept)", i + 1);
            }
        }
        panic!(
            "{name}: {} lines, golden has {} (UPDATE_GOLDEN=1 to accept)",
            got.lines().count(),
            want.lines().count()
        );
    }
}

/// A TCP connection's whole life at every layer: handshake, request, echo, close.
#[test]
fn tcp_connection_journey() {
    check(
        "trace_tcp_conn.txt",
        &["--tcp-bytes", "100", "--conn", "198.18.0.1:57995"],
    );
}

/// JSON Lines for tools: one object per event, drops with their reasons.
#[test]
fn json_lines_of_the_echo_traffic() {
    check(
        "trace_udp_json.txt",
        &["--tcp-bytes", "10", "--port", "7", "--json"],
    );
}

/// Every trace line quoted in `docs/tour.md` is a real line of the golden trace, so the tour
/// cannot drift from what `ringstack trace` prints.
#[test]
fn the_tour_quotes_real_trace_lines() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let tour = std::fs::read_to_string(root.join("docs/tour.md")).expect("docs/tour.md");
    let golden =
        std::fs::read_to_string(root.join("apps/tests/golden/trace_tcp_conn.txt")).expect("golden");
    let norm = |l: &str| l.split_whitespace().collect::<Vec<_>>().join(" ");
    let lines: std::collections::HashSet<String> = golden.lines().map(norm).collect();
    let mut quoted = 0;
    for l in tour.lines() {
        let t = l.trim_start();
        if t.len() > 6 && t.as_bytes()[0].is_ascii_digit() && t.contains("ms  ") {
            quoted += 1;
            assert!(
                lines.contains(&norm(t)),
                "docs/tour.md quotes a line the trace no longer prints:\n{t}"
            );
        }
    }
    assert!(
        quoted >= 10,
        "the tour should quote the trace ({quoted} lines found)"
    );
}
