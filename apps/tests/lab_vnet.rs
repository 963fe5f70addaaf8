//! Lab test of `--ring-vnet-hdr` (PACKET_VNET_HDR): the kernel-side veth keeps its offloads
//! (TSO, GSO, GRO, checksum offload) on, so Linux hands ringstack 64 KiB TCP super-frames with
//! partial checksums; ringstack must complete the checksums, take the big segments whole, and
//! deliver every byte. Checked by SHA-256 both ways (Linux → discard, HTTP GET back), and the
//! average frame size on veth0 proves that super-frames were really used.
//!
//! Needs root (CAP_NET_ADMIN/CAP_NET_RAW), `ip`, `ethtool`, `nc`, `curl`. Without them the test
//! prints why and passes, unless `RINGSTACK_REQUIRE_LAB=1` (CI) makes it fail.

mod common;

use common::{
    expect_discard_report, lab_or_skip, random_file, sh, sha256_file, tx_counters, Server,
};
use ringstack_nic::lab::LabLink;

fn gso_transfer_is_byte_exact(ring_version: &str) {
    let Some(lab) = lab_or_skip(LabLink::VethRing) else {
        return;
    };
    // The lab turned the offloads off; this test needs them on.
    sh(&lab, "ethtool -K veth0 tso on gso on gro on tx on sg on");
    let dir = std::env::temp_dir().join(format!(
        "ringstack-vnet-{}-{ring_version}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let len = 24 << 20;
    let file = random_file(&dir, "big.bin", len, 7);
    let want = sha256_file(&file);

    let server = Server::start(
        common::serve_command(&lab)
            .args(["--services", "discard,http", "--http-root"])
            .arg(&dir)
            .args(["--ring-version", ring_version, "--ring-vnet-hdr"]),
    );
    let (p0, b0) = tx_counters(&lab, "veth0");
    sh(&lab, &format!("nc -q 1 198.18.0.2 9 < {}", file.display()));
    let (p1, b1) = tx_counters(&lab, "veth0");
    expect_discard_report(&server, len, &want);
    // Super-frames: Linux sent the 24 MiB in frames far larger than the 1514-byte MTU frame.
    let avg = (b1 - b0) / (p1 - p0).max(1);
    eprintln!("  veth0 sent {} frames, {avg} bytes on average", p1 - p0);
    assert!(
        avg > 8_000,
        "no GSO super-frames reached ringstack (avg {avg} B)"
    );

    // ringstack → Linux through the same ring (an all-zero virtio header before every frame).
    let got = dir.join("got.bin");
    sh(
        &lab,
        &format!("curl -s -f -o {} http://198.18.0.2/big.bin", got.display()),
    );
    assert_eq!(sha256_file(&got), want);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn lab_vnet_hdr_v2_takes_gso_super_frames_byte_exact() {
    gso_transfer_is_byte_exact("2");
}

#[test]
fn lab_vnet_hdr_v3_takes_gso_super_frames_byte_exact() {
    gso_transfer_is_byte_exact("3");
}
