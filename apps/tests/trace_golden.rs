//! Pins the format of `ringstack trace` (the journey of frames through the layers) with golden
//! files: the scenarios run on a virtual clock with fixed seeds, so the output is exact.
//! After an intended change of format: `UPDATE_GOLDEN=1 cargo test -p ringstack --test trace_golden`.

use std::path::Path;
use std::process::Command;

fn trace(args: &[&str]) -> String {
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
    String::from_utf8(out.stdout).expect("utf-8")
}

fn check(name: &str, args: &[&str]) {
    let got = trace(args);
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

/// curl's request (`GET /` exactly as curl 7.88.1 sends it) to `serve`'s HTTP service: ARP,
/// the three-way handshake, the request, the response and the FIN exchange, at every layer.
#[test]
fn http_request_journey() {
    check("trace_http.txt", &["--scenario", "http"]);
}

/// The lines of `text` for host `host`, layer `layer`, direction `arrow`, containing `part`.
fn lines_of<'a>(text: &'a str, host: &str, arrow: &str, layer: &str, part: &str) -> Vec<&'a str> {
    text.lines()
        .filter(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            w.len() > 4 && w[1] == host && w[3] == arrow && w[4] == layer && l.contains(part)
        })
        .collect()
}

/// What the issue asks of the HTTP trace, independently of the golden file: the request goes
/// up every layer of the server (NIC, Ethernet, IPv4, TCP, the socket's receive buffer with
/// the request's bytes, the application's read) and the response comes down every layer (send
/// buffer, TCP, IPv4, Ethernet, NIC), after ARP and the handshake and before both FINs.
#[test]
fn http_trace_shows_every_layer() {
    let t = trace(&["--scenario", "http"]);
    let frame = |l: &str| l.split_whitespace().nth(2).unwrap_or_default().to_string();
    let one = |host, arrow, layer, part| {
        let found = lines_of(&t, host, arrow, layer, part);
        assert!(
            !found.is_empty(),
            "no {host} {arrow} {layer} line with {part:?} in:\n{t}"
        );
        found[0].to_string()
    };
    one("A", "↓", "Arp", "who-has 198.18.0.2");
    one("B", "↓", "Arp", "198.18.0.2 is-at");
    // The SYN waited for ARP: when it finally leaves, its Ethernet and NIC lines carry the
    // number of the events that built it.
    let syn = one("A", "↓", "Tcp", "> 80 [S]");
    let syn_out: Vec<&str> = lines_of(&t, "A", "↓", "Ethernet", "type 0x0800")
        .into_iter()
        .filter(|l| frame(l) == frame(&syn))
        .collect();
    assert_eq!(
        syn_out.len(),
        1,
        "the SYN {} leaves once:\n{t}",
        frame(&syn)
    );
    assert!(syn_out[0].contains(" 74B "), "{}", syn_out[0]);
    one("B", "↑", "Tcp", "> 80 [S]");
    one("B", "↓", "Tcp", "80 > ");
    one("A", "↑", "Tcp", "[S.]");
    // The request, up B's stack: one frame number from the NIC to the receive buffer.
    let get = one(
        "B",
        "↑",
        "Socket",
        r#""GET / HTTP/1.1\r\nHost: 198.18.0.2\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n""#,
    );
    assert!(
        get.contains("DELIVER") && get.contains("[copy 74B]"),
        "{get}"
    );
    for layer in ["Nic", "Ethernet", "Ipv4", "Tcp"] {
        let l = lines_of(&t, "B", "↑", layer, "")
            .into_iter()
            .find(|l| frame(l) == frame(&get));
        assert!(
            l.is_some(),
            "the request's frame {} has no {layer} line",
            frame(&get)
        );
    }
    one("B", "↑", "App", "> 80 read 74 bytes");
    // The response, down B's stack.
    one("B", "↓", "Socket", "send buffer");
    let resp = one("B", "↓", "Tcp", r#""HTTP/1.1 200 OK\r\n"#);
    for layer in ["Ipv4", "Ethernet", "Nic"] {
        let l = lines_of(&t, "B", "↓", layer, "")
            .into_iter()
            .find(|l| frame(l) == frame(&resp));
        assert!(
            l.is_some(),
            "the response's frame {} has no {layer} line",
            frame(&resp)
        );
    }
    one("A", "↑", "App", "read");
    one("B", "↑", "Tcp", "> 80 [F.]");
    one("A", "↑", "Tcp", "[F.]");
    one("B", "↑", "Tcp", "LAST-ACK");
}

/// Every trace line of the in-memory hosts (A, B) quoted in `docs/tour.md` is a real line of a
/// golden trace, so the tour cannot drift from what `ringstack trace` prints. (Lines of a real
/// NIC, named by their interface, come from a lab run and are not checked here.)
#[test]
fn the_tour_quotes_real_trace_lines() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let tour = std::fs::read_to_string(root.join("docs/tour.md")).expect("docs/tour.md");
    let mut golden = String::new();
    for name in ["trace_http.txt", "trace_tcp_conn.txt"] {
        golden +=
            &std::fs::read_to_string(root.join("apps/tests/golden").join(name)).expect("golden");
    }
    let norm = |l: &str| l.split_whitespace().collect::<Vec<_>>().join(" ");
    let lines: std::collections::HashSet<String> = golden.lines().map(norm).collect();
    let mut quoted = 0;
    for l in tour.lines() {
        let t = l.trim_start();
        let host = t.split_whitespace().nth(1);
        if t.len() > 6
            && t.as_bytes()[0].is_ascii_digit()
            && t.contains("ms  ")
            && matches!(host, Some("A" | "B"))
        {
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
