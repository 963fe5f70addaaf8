//! Lab test of `--vnet-hdr` on the TAP backend (IFF_VNET_HDR + TUNSETOFFLOAD): ringstack tells
//! the kernel that its TAP takes partial checksums and TCP super-frames, so Linux sends through
//! `rstap0` without segmenting (TSO on the TAP) and hands ringstack frames of up to 64 KiB;
//! ringstack must complete the checksums, take the big segments whole, and deliver every byte.
//! Checked by SHA-256 both ways (Linux → discard, HTTP GET back), and the average frame size
//! Linux sent out of `rstap0` proves that super-frames were really used.
//!
//! Needs root (CAP_NET_ADMIN), `ip`, `ethtool`, `nc`, `curl`. Without them the test prints why
//! and passes, unless `RINGSTACK_REQUIRE_LAB=1` (CI) makes it fail.

mod common;

use common::{
    expect_discard_report, lab_or_skip, random_file, sh, sha256_file, tx_counters, Server,
};
use ringstack_nic::lab::{Lab, LabLink};

fn transfer(lab: &Lab, vnet: bool) -> u64 {
    let dir = std::env::temp_dir().join(format!("ringstack-tapvnet-{}-{vnet}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let len = 24 << 20;
    let file = random_file(&dir, "big.bin", len, 11);
    let want = sha256_file(&file);

    let extra: &[&str] = if vnet { &["--vnet-hdr"] } else { &[] };
    let server = Server::start(
        common::serve_command(lab)
            .args(["--services", "discard,http", "--http-root"])
            .arg(&dir)
            .args(extra),
    );
    // TUNSETOFFLOAD turned the TAP's offloads on (the kernel may now skip segmenting and
    // checksumming towards ringstack), or off again for a plain TAP.
    let features = sh(lab, "ethtool -k rstap0");
    let tso_on = features.contains("tcp-segmentation-offload: on");
    assert_eq!(tso_on, vnet, "rstap0 TSO should be {vnet}: {features}");
    let (p0, b0) = tx_counters(lab, "rstap0");
    sh(lab, &format!("nc -q 1 198.18.0.2 9 < {}", file.display()));
    let (p1, b1) = tx_counters(lab, "rstap0");
    expect_discard_report(&server, len, &want);
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
    assert_eq!(sha256_file(&got), want);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
    avg
}

#[test]
fn lab_tap_vnet_hdr_takes_tso_super_frames_byte_exact() {
    let Some(lab) = lab_or_skip(LabLink::Tap) else {
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
