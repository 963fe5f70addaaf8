//! Privileged lab tests of the real backends (ring, TAP, pnet, and smoltcp over the ring).
//!
//! Each test runs its body on a dedicated thread that first moves itself — and only itself —
//! into a fresh, empty network namespace (`unshare_thread_network_namespace`). Every `ip`
//! command is a child process of that thread and so runs in that namespace; the test checks
//! that the namespace holds nothing but `lo` before configuring anything. When the thread ends
//! (after the backends, i.e. their sockets and TAP descriptors, were dropped), nothing refers to
//! the namespace any more and the kernel deletes it with its veth pair / TAP. The helper then
//! checks, from the root namespace, that no thread of this process is still in the lab
//! namespace and that none of the lab's interface names exists in the root namespace.
//!
//! Addresses: 198.18.0.1/24 (kernel peer) and 198.18.0.2/24 (ringstack), RFC 2544 lab space.
//! Test frames use the broadcast MAC and the local experimental ethertype 0x88b5; every wait is
//! bounded. Without the needed capabilities the tests print why and pass, unless
//! `RINGSTACK_REQUIRE_LAB=1`, in which case they fail.

use std::io;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant as StdInstant};

use ringstack_nic::{
    disable_offloads, unshare_thread_network_namespace, Nic, NicError, PnetNic, RingConfig,
    RingNic, RingVersion, SmoltcpDevice, TapNic,
};
use smoltcp::time::Instant;

/// Frames per direction.
const N: u32 = 10_000;
/// Frames sent before the receiver drains them (keeps well below socket buffers and the
/// per-CPU backlog, so a correct backend loses nothing).
const BATCH: u32 = 32;
/// Ethertype of the test frames (IEEE 802 local experimental).
const ETHERTYPE: u16 = 0x88b5;
/// Interface names the lab uses (never present in the root namespace).
const LAB_NAMES: [&str; 3] = ["veth0", "veth1", "rstap0"];

fn now() -> Instant {
    Instant::ZERO
}

/// Why a lab test could not run.
fn skip_or_fail(reason: String) {
    if std::env::var("RINGSTACK_REQUIRE_LAB").as_deref() == Ok("1") {
        panic!("RINGSTACK_REQUIRE_LAB=1 but the lab cannot run: {reason}");
    }
    println!("skipping lab test: {reason}");
}

fn root_link_names() -> Vec<String> {
    let out = Command::new("ip")
        .args(["-o", "link"])
        .output()
        .expect("ip -o link");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split(':').nth(1))
        .map(|n| n.trim().split('@').next().unwrap_or("").to_string())
        .collect()
}

fn thread_netns() -> String {
    std::fs::read_link("/proc/thread-self/ns/net")
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

/// Runs `body` on a fresh thread inside a private network namespace.
fn lab(body: impl FnOnce() + Send + 'static) {
    if Command::new("ip").arg("-V").output().is_err() {
        return skip_or_fail("the `ip` tool (iproute2) is not installed".into());
    }
    let before = root_link_names();
    for name in LAB_NAMES {
        assert!(
            !before.iter().any(|n| n == name),
            "{name} exists in the root namespace: refusing to run the lab"
        );
    }
    let root_ns = thread_netns();
    let worker = thread::spawn(move || -> Result<String, String> {
        match unshare_thread_network_namespace() {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                return Err(format!(
                    "unshare(CLONE_NEWNET) was refused ({e}): needs CAP_SYS_ADMIN, \
                     CAP_NET_ADMIN and CAP_NET_RAW (run as root)"
                ));
            }
            Err(e) => panic!("unshare(CLONE_NEWNET) failed: {e}"),
        }
        let ns = thread_netns();
        assert_ne!(ns, root_ns, "the lab thread is still in the root namespace");
        // Isolation proof before touching anything: the namespace is empty but for `lo`.
        let links = ip_output(&["-o", "link"]);
        assert_eq!(
            links.lines().count(),
            1,
            "fresh namespace should only hold lo:\n{links}"
        );
        assert!(links.contains("lo:"), "{links}");
        body();
        Ok(ns)
    });
    let result = match worker.join() {
        Ok(result) => result,
        Err(panic) => std::panic::resume_unwind(panic),
    };
    let lab_ns = match result {
        Ok(ns) => ns,
        Err(reason) => return skip_or_fail(reason),
    };
    // Cleanup proof: no thread of ours is in the lab namespace any more (the thread has
    // exited, its sockets and TAP fds were dropped inside it) and no lab interface leaked into
    // the root namespace.
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let ns = std::fs::read_link(task.path().join("ns/net"))
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        assert_ne!(ns, lab_ns, "a thread is still in the lab namespace");
    }
    let after = root_link_names();
    for name in LAB_NAMES {
        assert!(
            !after.iter().any(|n| n == name),
            "{name} leaked into the root namespace"
        );
    }
}

/// Runs `ip args` (in the calling thread's namespace) and returns stdout; panics on failure.
fn ip_output(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn ip(args: &str) {
    ip_output(&args.split_whitespace().collect::<Vec<_>>());
}

/// The MAC of `ifname` as `ip` reports it.
fn mac_of(ifname: &str) -> [u8; 6] {
    let out = ip_output(&["-o", "link", "show", ifname]);
    let hex = out
        .split_whitespace()
        .skip_while(|w| *w != "link/ether")
        .nth(1)
        .expect("link/ether");
    let mut mac = [0u8; 6];
    for (b, h) in mac.iter_mut().zip(hex.split(':')) {
        *b = u8::from_str_radix(h, 16).unwrap();
    }
    mac
}

/// veth0 (kernel side) <-> veth1 (ringstack side), both up, offloads off on veth0 if possible.
fn veth_pair() {
    ip("link set lo up");
    ip("link add veth0 type veth peer name veth1");
    ip("link set veth0 up");
    ip("link set veth1 up");
    match disable_offloads("veth0") {
        Ok(()) => {
            let out = Command::new("ethtool")
                .args(["-k", "veth0"])
                .output()
                .unwrap();
            let features = String::from_utf8_lossy(&out.stdout);
            for off in [
                "tcp-segmentation-offload: off",
                "generic-segmentation-offload: off",
                "generic-receive-offload: off",
                "tx-checksumming: off",
            ] {
                assert!(features.contains(off), "{off} expected:\n{features}");
            }
        }
        Err(e) => println!("note: offloads left on: {e}"),
    }
}

/// Test frame `seq`: broadcast, from `src`, ethertype 0x88b5, then the sequence number and a
/// pattern; lengths vary from 60 to 1514 bytes.
fn test_frame(seq: u32, src: [u8; 6]) -> Vec<u8> {
    let len = 60 + (seq as usize * 7919) % (1514 - 60 + 1);
    let mut f = Vec::with_capacity(len);
    f.extend_from_slice(&[0xff; 6]);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ETHERTYPE.to_be_bytes());
    f.extend_from_slice(&seq.to_be_bytes());
    while f.len() < len {
        f.push((seq as u8).wrapping_mul(31).wrapping_add(f.len() as u8));
    }
    f
}

/// Sends `N` test frames from `tx` and checks that `rx` receives all of them, in order and
/// byte for byte (frames of other ethertypes, e.g. IPv6 chatter, are ignored).
fn transfer(tx: &mut dyn Nic, rx: &mut dyn Nic, src: [u8; 6], what: &str) {
    let deadline = StdInstant::now() + Duration::from_secs(20);
    let mut next_rx = 0u32;
    let mut sent = 0u32;
    let mut mismatch = None;
    while next_rx < N {
        assert!(
            StdInstant::now() < deadline,
            "{what}: timed out with {next_rx} of {N} frames received ({sent} sent; rx {:?}, tx {:?})",
            rx.stats(),
            tx.stats()
        );
        // Send the next batch once the previous one has arrived.
        if sent == next_rx && sent < N {
            let end = (sent + BATCH).min(N);
            while sent < end {
                let frame = test_frame(sent, src);
                match tx.send(now(), &frame) {
                    Ok(len) => assert_eq!(len, frame.len()),
                    Err(NicError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                        tx.flush(now()).unwrap();
                        thread::sleep(Duration::from_micros(200));
                        assert!(StdInstant::now() < deadline, "{what}: TX stuck");
                        continue;
                    }
                    Err(e) => panic!("{what}: send {sent}: {e}"),
                }
                sent += 1;
            }
            tx.flush(now()).unwrap();
        }
        let got = rx
            .receive(now(), 64, &mut |f| {
                if f.len() < 18 || f[12..14] != ETHERTYPE.to_be_bytes() {
                    return;
                }
                let expected = test_frame(next_rx, src);
                if f != expected.as_slice() && mismatch.is_none() {
                    let seq = u32::from_be_bytes(f[14..18].try_into().unwrap());
                    mismatch = Some(format!(
                        "frame #{next_rx}: got seq {seq}, len {} (expected len {})",
                        f.len(),
                        expected.len()
                    ));
                }
                next_rx += 1;
            })
            .unwrap();
        if let Some(m) = &mismatch {
            panic!("{what}: {m}");
        }
        if got == 0 {
            thread::sleep(Duration::from_micros(100));
        }
    }
    assert_eq!(next_rx, N);
    assert_eq!(tx.stats().tx_dropped, 0, "{what}");
    assert_eq!(rx.stats().rx_dropped, 0, "{what}");
}

#[test]
fn ring_backend_moves_10k_frames_each_way_on_a_veth() {
    lab(|| ring_moves_10k_frames_each_way(RingVersion::V3));
}

#[test]
fn ring_v2_backend_moves_10k_frames_each_way_on_a_veth() {
    lab(|| ring_moves_10k_frames_each_way(RingVersion::V2));
}

fn ring_moves_10k_frames_each_way(version: RingVersion) {
    veth_pair();
    let mut ring = RingNic::with_config(
        "veth1",
        RingConfig {
            version,
            ..RingConfig::default()
        },
    )
    .unwrap();
    assert_eq!(ring.version(), version);
    let mut peer = PnetNic::open("veth0").unwrap();
    let info = ring.info();
    assert_eq!(info.mac, Some(mac_of("veth1")));
    assert_eq!((info.mtu, info.max_frame), (1500, 1514));
    assert!(ring.wait_fd().is_some());
    // Drain whatever IPv6 chatter may already be there.
    ring.wait(Duration::from_millis(5)).unwrap();
    ring.receive(now(), usize::MAX, &mut |_| {}).unwrap();
    transfer(&mut peer, &mut ring, mac_of("veth0"), "veth0 -> ring");
    transfer(&mut ring, &mut peer, info.mac.unwrap(), "ring -> veth0");
    let rs = ring.ring_stats();
    assert_eq!(rs.kernel_drops, 0);
    match version {
        RingVersion::V3 => assert!(rs.blocks_released > 0, "{rs:?}"),
        RingVersion::V2 => {
            assert_eq!(rs.blocks_released, 0, "{rs:?}");
            assert!(rs.frames_released >= u64::from(N), "{rs:?}");
        }
    }
    assert!(rs.tx_kicks > 0 && rs.tx_kicks <= u64::from(N), "{rs:?}");
    assert_eq!(
        rs.outgoing_skipped, 0,
        "PACKET_IGNORE_OUTGOING hides our own TX"
    );
    let st = ring.stats();
    assert_eq!(st.tx_frames, u64::from(N));
    assert!(st.rx_frames >= u64::from(N));
}

#[test]
fn ring_receive_respects_the_budget_and_wait_wakes_up() {
    lab(|| {
        veth_pair();
        let mut ring = RingNic::with_config(
            "veth1",
            RingConfig {
                block_size: 1 << 16,
                block_count: 4,
                ..RingConfig::default()
            },
        )
        .unwrap();
        let mut peer = PnetNic::open("veth0").unwrap();
        let src = mac_of("veth0");
        for seq in 0..100 {
            peer.send(now(), &test_frame(seq, src)).unwrap();
        }
        assert!(ring.wait(Duration::from_secs(2)).unwrap());
        let mut seen = Vec::new();
        let deadline = StdInstant::now() + Duration::from_secs(5);
        while seen.len() < 100 {
            assert!(StdInstant::now() < deadline, "got {}", seen.len());
            let n = ring
                .receive(now(), 3, &mut |f| {
                    if f[12..14] == ETHERTYPE.to_be_bytes() {
                        seen.push(u32::from_be_bytes(f[14..18].try_into().unwrap()));
                    }
                })
                .unwrap();
            assert!(n <= 3, "budget exceeded: {n}");
            if n == 0 {
                ring.wait(Duration::from_millis(50)).unwrap();
            }
        }
        assert_eq!(seen, (0..100).collect::<Vec<_>>());
        assert!(ring.receive(now(), 0, &mut |_| panic!("budget 0")).unwrap() == 0);
    });
}

#[test]
fn pnet_backend_moves_10k_frames_each_way_on_a_veth() {
    lab(|| {
        veth_pair();
        let mut pnet = PnetNic::open("veth1").unwrap();
        let mut peer = RingNic::open("veth0").unwrap();
        assert_eq!(pnet.info().mac, Some(mac_of("veth1")));
        assert!(pnet.wait_fd().is_some());
        transfer(&mut peer, &mut pnet, mac_of("veth0"), "ring(veth0) -> pnet");
        transfer(&mut pnet, &mut peer, mac_of("veth1"), "pnet -> ring(veth0)");
    });
}

/// A broadcast ARP request "who has 198.18.0.1? tell 198.18.0.2" from `mac`.
fn arp_request(mac: [u8; 6]) -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&mac);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&[198, 18, 0, 2]);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&[198, 18, 0, 1]);
    f
}

#[test]
fn tap_backend_gets_arp_replies_and_moves_10k_frames_each_way() {
    lab(|| {
        ip("link set lo up");
        let mut tap = TapNic::create("rstap0").unwrap();
        assert_eq!(tap.name(), "rstap0");
        let info = tap.info();
        assert_eq!(info.mac, None, "ringstack chooses its own MAC behind a TAP");
        assert_eq!(info.max_frame, info.mtu + 14);
        ip("link set rstap0 up");
        ip("addr add 198.18.0.1/24 dev rstap0");
        let kernel_mac = tap.kernel_mac().unwrap().expect("a TAP has a MAC");
        assert_eq!(kernel_mac, mac_of("rstap0"));

        // ARP: the kernel behind the TAP answers ringstack's request, byte for byte.
        let ours = [0x02, 0, 0, 0, 0, 0x02];
        let mut expected = ours.to_vec();
        expected.extend_from_slice(&kernel_mac);
        expected.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 2]);
        expected.extend_from_slice(&kernel_mac);
        expected.extend_from_slice(&[198, 18, 0, 1]);
        expected.extend_from_slice(&ours);
        expected.extend_from_slice(&[198, 18, 0, 2]);
        let deadline = StdInstant::now() + Duration::from_secs(5);
        let mut reply = None;
        let mut asked = StdInstant::now() - Duration::from_secs(1);
        while reply.is_none() {
            assert!(StdInstant::now() < deadline, "no ARP reply from the kernel");
            if asked.elapsed() >= Duration::from_millis(500) {
                assert_eq!(tap.send(now(), &arp_request(ours)).unwrap(), 42);
                asked = StdInstant::now();
            }
            tap.receive(now(), 16, &mut |f| {
                if f.len() >= 14 && f[12..14] == [0x08, 0x06] {
                    reply = Some(f.to_vec());
                }
            })
            .unwrap();
            thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(reply.unwrap(), expected);

        // Bulk: the kernel side of the TAP is a ring socket on rstap0.
        let mut kernel_side = RingNic::open("rstap0").unwrap();
        transfer(&mut tap, &mut kernel_side, ours, "tap -> kernel");
        transfer(&mut kernel_side, &mut tap, kernel_mac, "kernel -> tap");
    });
}

#[test]
fn smoltcp_runs_on_the_ring_against_kernel_udp() {
    use smoltcp::iface::{Config, Interface, SocketSet, SocketStorage};
    use smoltcp::phy::ChecksumCapabilities;
    use smoltcp::socket::raw;
    use smoltcp::wire::{
        EthernetAddress, HardwareAddress, IpAddress, IpCidr, IpProtocol, IpVersion, Ipv4Address,
        Ipv4Packet, Ipv4Repr, UdpPacket, UdpRepr,
    };

    lab(|| {
        veth_pair();
        ip("addr add 198.18.0.1/24 dev veth0");
        let kernel = std::net::UdpSocket::bind("198.18.0.1:5000").unwrap();
        kernel.set_nonblocking(true).unwrap();

        let ring = RingNic::open("veth1").unwrap();
        let mac = ring.info().mac.unwrap();
        let mut dev = SmoltcpDevice::new(ring);
        let mut iface = Interface::new(
            Config::new(HardwareAddress::Ethernet(EthernetAddress(mac))),
            &mut dev,
            Instant::ZERO,
        );
        let ours = Ipv4Address::new(198, 18, 0, 2);
        let peer = Ipv4Address::new(198, 18, 0, 1);
        iface.update_ip_addrs(|a| a.push(IpCidr::new(IpAddress::Ipv4(ours), 24)).unwrap());
        let (mut m0, mut m1) = (
            [raw::PacketMetadata::EMPTY; 4],
            [raw::PacketMetadata::EMPTY; 4],
        );
        let (mut d0, mut d1) = ([0u8; 4096], [0u8; 4096]);
        let socket = raw::Socket::new(
            Some(IpVersion::Ipv4),
            Some(IpProtocol::Udp),
            raw::PacketBuffer::new(&mut m0[..], &mut d0[..]),
            raw::PacketBuffer::new(&mut m1[..], &mut d1[..]),
        );
        let mut storage = [SocketStorage::EMPTY; 1];
        let mut sockets = SocketSet::new(&mut storage[..]);
        let handle = sockets.add(socket);

        // smoltcp -> kernel: a UDP datagram built with smoltcp wire (checksums filled in).
        let payload = b"from smoltcp on the ring";
        let udp = UdpRepr {
            src_port: 4000,
            dst_port: 5000,
        };
        let repr = Ipv4Repr {
            src_addr: ours,
            dst_addr: peer,
            next_header: IpProtocol::Udp,
            payload_len: udp.header_len() + payload.len(),
            hop_limit: 64,
        };
        let mut packet = vec![0u8; repr.buffer_len() + repr.payload_len];
        let caps = ChecksumCapabilities::default();
        let mut ip_packet = Ipv4Packet::new_unchecked(&mut packet);
        repr.emit(&mut ip_packet, &caps);
        udp.emit(
            &mut UdpPacket::new_unchecked(ip_packet.payload_mut()),
            &ours.into(),
            &peer.into(),
            payload.len(),
            |p| p.copy_from_slice(payload),
            &caps,
        );
        sockets
            .get_mut::<raw::Socket>(handle)
            .send_slice(&packet)
            .unwrap();

        let start = StdInstant::now();
        let deadline = start + Duration::from_secs(10);
        let mut buf = [0u8; 1500];
        let mut kernel_got = None;
        let mut smoltcp_got = None;
        while smoltcp_got.is_none() {
            assert!(
                StdInstant::now() < deadline,
                "timed out (kernel got {kernel_got:?})"
            );
            let t = Instant::from_micros(start.elapsed().as_micros() as i64);
            iface.poll(t, &mut dev, &mut sockets);
            if kernel_got.is_none() {
                if let Ok((n, from)) = kernel.recv_from(&mut buf) {
                    kernel_got = Some((buf[..n].to_vec(), from));
                    // kernel -> smoltcp: the kernel ARPs for 198.18.0.2 and smoltcp answers.
                    kernel.send_to(b"from the kernel", from).unwrap();
                }
            }
            let s = sockets.get_mut::<raw::Socket>(handle);
            if s.can_recv() {
                smoltcp_got = Some(s.recv().unwrap().to_vec());
            }
            dev.get_ref().wait(Duration::from_millis(2)).unwrap();
        }
        let (data, from) = kernel_got.unwrap();
        assert_eq!(data, payload);
        assert_eq!(from.to_string(), "198.18.0.2:4000");
        let got = smoltcp_got.unwrap();
        let ip_packet = Ipv4Packet::new_checked(&got[..]).unwrap();
        assert_eq!(ip_packet.src_addr(), peer);
        let dgram = UdpPacket::new_checked(ip_packet.payload()).unwrap();
        assert_eq!(dgram.payload(), b"from the kernel");
        assert!(dev.take_error().is_none());
    });
}

#[test]
fn opening_needs_an_existing_interface_and_says_what_to_do() {
    lab(|| {
        let err = RingNic::open("veth9").unwrap_err().to_string();
        assert!(err.contains("no network interface named"), "{err}");
        let err = PnetNic::open("veth9").unwrap_err().to_string();
        assert!(err.contains("no network interface named"), "{err}");
    });
}
