//! Progress bars of the client subcommands (`get`, `send`, `iperf`): drawn on standard error
//! only when it is a terminal (or with `--progress`), so that scripts and logs get exactly the
//! one-line summaries and nothing else. Runs each client against the kernel's own servers
//! (`python3 -m http.server`, `nc -l`, `iperf3 -s`) in a private network namespace.
//!
//! Needs root and the lab's tools (`python3`, `nc`, `iperf3`, `ip`, `ethtool`). Without them the
//! test prints why and passes, unless `RINGSTACK_REQUIRE_LAB=1` (CI) makes it fail. Every
//! process is bounded in time and ended by PID; the namespace goes with the [`Lab`].

mod common;

use std::path::Path;
use std::process::{Output, Stdio};

use common::{
    have, kernel_http_server, kernel_nc_listener, skip, wait_listening, Proc, EXE, KERNEL,
};
use ringstack_nic::lab::{Lab, LabLink};

fn lab_or_skip() -> Option<Lab> {
    for tool in ["python3", "nc", "iperf3", "curl"] {
        if !have(tool) {
            skip(&format!(
                "`{tool}` is not installed (scripts/test.sh installs it)"
            ));
            return None;
        }
    }
    common::lab_or_skip(LabLink::VethRing)
}

/// Runs a ringstack client in the lab (its output captured: not a terminal), bounded in time.
fn client(lab: &Lab, args: &str) -> Output {
    let nic = lab.link().nic_spec();
    let out = lab
        .sh(&format!(
            "timeout 120 {EXE} {args} --nic {nic} --addr 198.18.0.2/24"
        ))
        .expect("spawn ringstack");
    assert!(
        out.status.success(),
        "ringstack {args} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// No carriage return, no escape sequence, no bar: what a script or a log must never get.
fn assert_no_progress_noise(what: &str, bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    assert!(
        !text.contains('\r') && !text.contains('\x1b') && !text.contains("=>"),
        "{what}: progress noise in non-terminal output: {text:?}"
    );
}

fn random_file(dir: &Path, len: usize) -> std::path::PathBuf {
    // A simple deterministic pattern is enough: the lab tests check integrity elsewhere.
    let data: Vec<u8> = (0..len as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let p = dir.join("file.bin");
    std::fs::write(&p, data).unwrap();
    p
}

#[test]
fn lab_clients_print_no_progress_when_not_on_a_terminal() {
    let Some(lab) = lab_or_skip() else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("ringstack-progress-{}", lab.name()));
    std::fs::create_dir_all(&dir).unwrap();
    let len = 8 << 20;
    let file = random_file(&dir, len);
    let d = dir.display();

    // get, from the kernel's http.server.
    let http = kernel_http_server(&lab, &dir);
    let url = format!("http://{KERNEL}:8000/file.bin");
    let out = client(&lab, &format!("get {url} -o {d}/got.bin"));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!("ringstack get: HTTP 200, {len} bytes\n"),
        "get: exactly its summary on standard error"
    );
    assert_eq!(
        std::fs::metadata(dir.join("got.bin")).unwrap().len(),
        len as u64
    );
    // Forced on, the bar is drawn even into a pipe (and the body is still intact).
    let out = client(&lab, &format!("get {url} -o {d}/got2.bin --progress"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("GET /file.bin") && err.contains('\x1b'),
        "get --progress draws a bar: {err:?}"
    );
    assert!(err.ends_with(&format!("ringstack get: HTTP 200, {len} bytes\n")));
    assert_eq!(
        std::fs::metadata(dir.join("got2.bin")).unwrap().len(),
        len as u64
    );
    // To standard output, the body alone.
    let out = client(&lab, &format!("get {url}"));
    assert_eq!(
        out.stdout.len(),
        len,
        "get to stdout: the body, nothing else"
    );
    assert_no_progress_noise("get (stderr)", &out.stderr);
    drop(http);

    // send, to nc -l.
    let nc = kernel_nc_listener(&lab, "/dev/null");
    let out = client(&lab, &format!("send {KERNEL}:9000 {}", file.display()));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!("ringstack send: {len} bytes sent to {KERNEL}:9000 and acknowledged\n"),
        "send: exactly its summary on standard error"
    );
    drop(nc);

    // iperf, against iperf3 -s: its report on stdout, nothing on stderr.
    let iperf = Proc {
        child: lab
            .command("iperf3")
            .args(["-s", "-1", "-B", KERNEL])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("iperf3 -s"),
        name: "iperf3 -s",
    };
    wait_listening(&lab, "iperf3 -s", 5201);
    let out = client(&lab, &format!("iperf -c {KERNEL} -n 4M"));
    assert!(
        out.stderr.is_empty(),
        "iperf: nothing on stderr: {:?}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_no_progress_noise("iperf (stdout)", &out.stdout);
    assert!(String::from_utf8_lossy(&out.stdout).contains("iperf Done."));
    drop(iperf);
    let _ = std::fs::remove_dir_all(&dir);
}
