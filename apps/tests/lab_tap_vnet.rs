//! Lab test of `--vnet-hdr` on the TAP backend (IFF_VNET_HDR + TUNSETOFFLOAD): ringstack tells
//! the kernel that its TAP takes partial checksums and TCP super-frames, so Linux sends through
//! `rstap0` without segmenting (TSO on the TAP) and hands ringstack frames of up to 64 KiB;
//! ringstack must complete the checksums, take the big segments whole, and deliver every byte.
//! Checked by SHA-256 both ways (Linux → discard, HTTP GET back), and the average frame size
//! Linux sent out of `rstap0` proves that super-frames were really used.
//!
//! Needs root (CAP_NET_ADMIN), `ip`, `ethtool`, `nc`, `curl`. Without them the test prints why
//! and passes, unless `RINGSTACK_REQUIRE_LAB=1` (CI) makes it fail.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use ringstack_nic::lab::{Lab, LabError, LabLink};
use sha2::{Digest, Sha256};

fn hex(d: &[u8]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

fn lab_or_skip() -> Option<Lab> {
    match Lab::create(LabLink::Tap) {
        Ok(lab) => Some(lab),
        Err(e @ (LabError::NoPrivilege(_) | LabError::MissingTool(..))) => {
            if std::env::var("RINGSTACK_REQUIRE_LAB").as_deref() == Ok("1") {
                panic!("lab required (RINGSTACK_REQUIRE_LAB=1) but unavailable: {e}");
            }
            eprintln!("SKIPPED: {e}");
            None
        }
        Err(e) => panic!("lab setup failed: {e}"),
    }
}

/// `ringstack serve`, stopped by PID (SIGTERM, then SIGKILL) when dropped.
struct Server {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(lab: &Lab, root: &Path, extra: &[&str]) -> Server {
    let mut child = lab
        .command(env!("CARGO_BIN_EXE_ringstack"))
        .args(["serve", "--nic", "tap:rstap0", "--addr", "198.18.0.2/24"])
        .args(["--services", "discard,http", "--http-root"])
        .arg(root)
        .args(extra)
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn ringstack serve");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().and_then(Result::ok).unwrap_or_default();
    let log = Arc::new(Mutex::new(vec![first.clone()]));
    let server = Server {
        child,
        log: Arc::clone(&log),
    };
    assert!(
        first.contains("ready"),
        "serve did not print ready: {first:?}"
    );
    std::thread::spawn(move || {
        for l in lines.map_while(Result::ok) {
            log.lock().unwrap().push(l);
        }
    });
    server
}

fn sh(lab: &Lab, script: &str) -> String {
    let out = lab.sh(&format!("timeout 60 {script}")).expect("spawn sh");
    assert!(
        out.status.success(),
        "{script} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn rstap0_tx(lab: &Lab) -> (u64, u64) {
    let out = sh(
        lab,
        "cat /sys/class/net/rstap0/statistics/tx_packets /sys/class/net/rstap0/statistics/tx_bytes",
    );
    let v: Vec<u64> = out.split_whitespace().map(|x| x.parse().unwrap()).collect();
    (v[0], v[1])
}

fn transfer(lab: &Lab, vnet: bool) -> u64 {
    let dir = std::env::temp_dir().join(format!("ringstack-tapvnet-{}-{vnet}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let len = 24 << 20;
    let mut data = vec![0u8; len];
    ChaCha8Rng::seed_from_u64(11).fill_bytes(&mut data);
    let file = dir.join("big.bin");
    std::fs::write(&file, &data).unwrap();
    let want = hex(&Sha256::digest(&data));

    let extra: &[&str] = if vnet { &["--vnet-hdr"] } else { &[] };
    let server = start(lab, &dir, extra);
    // TUNSETOFFLOAD turned the TAP's offloads on (the kernel may now skip segmenting and
    // checksumming towards ringstack), or off again for a plain TAP.
    let features = sh(lab, "ethtool -k rstap0");
    let tso_on = features.contains("tcp-segmentation-offload: on");
    assert_eq!(tso_on, vnet, "rstap0 TSO should be {vnet}: {features}");
    let (p0, b0) = rstap0_tx(lab);
    sh(lab, &format!("nc -q 1 198.18.0.2 9 < {}", file.display()));
    let (p1, b1) = rstap0_tx(lab);
    let report = "discard: 198.18.0.1";
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let log = server.log.lock().unwrap().clone();
        if let Some(l) = log.iter().find(|l| l.starts_with(report)) {
            assert!(
                l.ends_with(&format!("{len} bytes sha256 {want}")),
                "discard got other bytes: {l}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "no discard report: {log:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let avg = (b1 - b0) / (p1 - p0).max(1);
    eprintln!(
        "  vnet {vnet}: rstap0 sent {} frames, {avg} bytes on average",
        p1 - p0
    );

    // ringstack → Linux through the same TAP (an all-zero virtio header before every frame).
    let got = dir.join("got.bin");
    sh(
        lab,
        &format!("curl -s -f -o {} http://198.18.0.2/big.bin", got.display()),
    );
    assert_eq!(hex(&Sha256::digest(std::fs::read(&got).unwrap())), want);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
    avg
}

#[test]
fn lab_tap_vnet_hdr_takes_tso_super_frames_byte_exact() {
    let Some(lab) = lab_or_skip() else {
        return;
    };
    let avg = transfer(&lab, true);
    // Super-frames: Linux sent the 24 MiB in frames far larger than the 1514-byte MTU frame.
    assert!(
        avg > 4_000,
        "no TSO super-frames reached ringstack (avg {avg} B)"
    );
    // The control, on the same (persistent) TAP after it: a plain TAP turns the offloads off
    // again, and the kernel segments (and checksums) for it.
    let avg = transfer(&lab, false);
    assert!(
        avg <= 1514,
        "frames larger than the MTU without vnet headers (avg {avg} B)"
    );
}
