//! Progress bars of the client subcommands (`get`, `send`, `iperf`): drawn on standard error
//! only when it is a terminal (or with `--progress`), so that scripts and logs get exactly the
//! one-line summaries and nothing else. Runs each client against the kernel's own servers
//! (`python3 -m http.server`, `nc -l`, `iperf3 -s`) in a private network namespace.
//!
//! Needs root and the lab's tools (`python3`, `nc`, `iperf3`, `ip`, `ethtool`). Without them the
//! test prints why and passes, unless `RINGSTACK_REQUIRE_LAB=1` (CI) makes it fail. Every
//! process is bounded in time and ended by PID; the namespace goes with the [`Lab`].

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use ringstack_nic::lab::{Lab, LabError, LabLink};

const KERNEL: &str = "198.18.0.1";
const EXE: &str = env!("CARGO_BIN_EXE_ringstack");

fn require_lab() -> bool {
    std::env::var("RINGSTACK_REQUIRE_LAB").as_deref() == Ok("1")
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn lab_or_skip() -> Option<Lab> {
    for tool in ["python3", "nc", "iperf3", "curl"] {
        if !have(tool) {
            let why = format!("`{tool}` is not installed (scripts/test.sh installs it)");
            assert!(
                !require_lab(),
                "lab required (RINGSTACK_REQUIRE_LAB=1): {why}"
            );
            eprintln!("SKIPPED: {why}");
            return None;
        }
    }
    match Lab::create(LabLink::VethRing) {
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

/// A kernel-side server, ended by PID when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(Some(_)) = self.0.try_wait() {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
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
    let http = Proc(
        lab.command("python3")
            .args(["-m", "http.server", "8000", "--bind", KERNEL, "--directory"])
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 http.server"),
    );
    wait_for(20, "http.server", || {
        lab.sh(&format!("curl -sf -o /dev/null http://{KERNEL}:8000/"))
            .is_ok_and(|o| o.status.success())
    });
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
    let nc = Proc(
        lab.command("sh")
            .args(["-c", &format!("nc -d -l {KERNEL} 9000 > /dev/null")])
            .spawn()
            .expect("nc -l"),
    );
    wait_for(20, "nc -l", || {
        lab.sh("ss -ltn 'sport = :9000' | grep -q 9000")
            .is_ok_and(|o| o.status.success())
    });
    let out = client(&lab, &format!("send {KERNEL}:9000 {}", file.display()));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!("ringstack send: {len} bytes sent to {KERNEL}:9000 and acknowledged\n"),
        "send: exactly its summary on standard error"
    );
    drop(nc);

    // iperf, against iperf3 -s: its report on stdout, nothing on stderr.
    let iperf = Proc(
        lab.command("iperf3")
            .args(["-s", "-1", "-B", KERNEL])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("iperf3 -s"),
    );
    wait_for(20, "iperf3 -s", || {
        lab.sh("ss -ltn 'sport = :5201' | grep -q 5201")
            .is_ok_and(|o| o.status.success())
    });
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
