//! Every kind of frame ringstack emits, parsed by an independent codebase (etherparse) with its
//! checksums recomputed by etherparse's calculators.
//!
//! The verifier checks every byte of a frame (addresses, lengths, flags, checksums, payload), and
//! `every_single_byte_flip_is_caught` proves it: flipping any one bit of any captured frame makes
//! the verification fail. So a wrong byte written by ringstack cannot pass these tests.

mod common;

use core::net::Ipv4Addr;

use common::*;
use etherparse::{
    ArpHardwareId, ArpOperation, EtherType, IpNumber, LinkSlice, NetSlice, PacketHeaders,
    SlicedPacket, TransportSlice, UdpHeader,
};
use ringstack_stack::Stack;

/// What a transport payload must be.
#[derive(Clone, Debug)]
enum Body {
    Icmp {
        ty: u8,
        code: u8,
        rest: [u8; 4],
        data: Vec<u8>,
    },
    Udp {
        sport: u16,
        dport: u16,
        data: Vec<u8>,
    },
}

/// What a frame must be.
#[derive(Clone, Debug)]
enum Want {
    Arp {
        dst_mac: [u8; 6],
        op: u16,
        tha: [u8; 6],
        tpa: Ipv4Addr,
    },
    Ip {
        dst_mac: [u8; 6],
        dst: Ipv4Addr,
        body: Body,
    },
}

macro_rules! ensure {
    ($cond:expr, $($msg:tt)*) => {
        if !$cond {
            return Err(format!($($msg)*));
        }
    };
}

fn check_eth(frame: &[u8], dst_mac: [u8; 6], ty: EtherType) -> Result<(), String> {
    let p = SlicedPacket::from_ethernet(frame).map_err(|e| format!("etherparse: {e:?}"))?;
    let Some(LinkSlice::Ethernet2(e)) = p.link else {
        return Err("no Ethernet II header".into());
    };
    ensure!(
        e.destination() == dst_mac,
        "dst MAC {:02x?}",
        e.destination()
    );
    ensure!(e.source() == OUR_MAC, "src MAC {:02x?}", e.source());
    ensure!(e.ether_type() == ty, "EtherType {:?}", e.ether_type());
    Ok(())
}

fn verify_arp(
    frame: &[u8],
    dst_mac: [u8; 6],
    op: u16,
    tha: [u8; 6],
    tpa: Ipv4Addr,
) -> Result<(), String> {
    check_eth(frame, dst_mac, EtherType::ARP)?;
    ensure!(frame.len() == 14 + 28, "ARP frame length {}", frame.len());
    let h = PacketHeaders::from_ethernet_slice(frame).map_err(|e| format!("etherparse: {e:?}"))?;
    let Some(etherparse::NetHeaders::Arp(a)) = h.net else {
        return Err("not ARP".into());
    };
    ensure!(
        a.hw_addr_type == ArpHardwareId::ETHERNET,
        "htype {:?}",
        a.hw_addr_type
    );
    ensure!(
        a.proto_addr_type == EtherType::IPV4,
        "ptype {:?}",
        a.proto_addr_type
    );
    let a = a
        .try_eth_ipv4()
        .map_err(|e| format!("not Ethernet/IPv4 ARP: {e:?}"))?;
    ensure!(a.operation == ArpOperation(op), "op {:?}", a.operation);
    ensure!(a.sender_mac == OUR_MAC, "sha {:02x?}", a.sender_mac);
    ensure!(a.sender_ipv4 == OUR_IP.octets(), "spa {:?}", a.sender_ipv4);
    ensure!(a.target_mac == tha, "tha {:02x?}", a.target_mac);
    ensure!(a.target_ipv4 == tpa.octets(), "tpa {:?}", a.target_ipv4);
    Ok(())
}

/// Checks one IPv4 frame's Ethernet and IP headers; returns the header, the fragment offset in
/// bytes, MF, and the IP payload.
fn check_ip(
    frame: &[u8],
    dst_mac: [u8; 6],
    dst: Ipv4Addr,
    proto: u8,
) -> Result<(etherparse::Ipv4Header, usize, bool, Vec<u8>), String> {
    check_eth(frame, dst_mac, EtherType::IPV4)?;
    let p = SlicedPacket::from_ethernet(frame).map_err(|e| format!("etherparse: {e:?}"))?;
    let Some(NetSlice::Ipv4(ip)) = p.net else {
        return Err("not IPv4".into());
    };
    let h = ip.header().to_header();
    ensure!(ip.header().ihl() == 5, "IHL {}", ip.header().ihl());
    ensure!(
        h.total_len as usize == frame.len() - 14,
        "total length {} vs frame {}",
        h.total_len,
        frame.len()
    );
    ensure!(
        h.header_checksum == h.calc_header_checksum(),
        "IPv4 header checksum {:#06x}, expected {:#06x}",
        h.header_checksum,
        h.calc_header_checksum()
    );
    ensure!(h.source == OUR_IP.octets(), "src {:?}", h.source);
    ensure!(h.destination == dst.octets(), "dst {:?}", h.destination);
    ensure!(h.protocol == IpNumber(proto), "protocol {:?}", h.protocol);
    ensure!(h.time_to_live == 64, "TTL {}", h.time_to_live);
    ensure!(!h.dont_fragment, "DF set");
    // etherparse's header model has no field for the reserved flag bit (RFC 791: must be zero).
    ensure!(frame[14 + 6] & 0x80 == 0, "reserved flag bit set");
    ensure!(
        u8::from(h.dscp) == 0 && u8::from(h.ecn) == 0,
        "TOS byte not zero"
    );
    let off = h.fragment_offset.value() as usize * 8;
    let mf = h.more_fragments;
    Ok((h, off, mf, ip.payload().payload.to_vec()))
}

fn verify_transport(h: &etherparse::Ipv4Header, payload: &[u8], body: &Body) -> Result<(), String> {
    match body {
        Body::Icmp {
            ty,
            code,
            rest,
            data,
        } => {
            let icmp =
                etherparse::Icmpv4Slice::from_slice(payload).map_err(|e| format!("ICMP: {e:?}"))?;
            let calc = icmp.header().icmp_type.calc_checksum(icmp.payload());
            ensure!(
                icmp.checksum() == calc,
                "ICMP checksum {:#06x}, expected {calc:#06x}",
                icmp.checksum()
            );
            ensure!(
                icmp.type_u8() == *ty && icmp.code_u8() == *code,
                "ICMP type/code {}/{}",
                icmp.type_u8(),
                icmp.code_u8()
            );
            ensure!(
                icmp.bytes5to8() == *rest,
                "ICMP bytes 5-8 {:02x?}",
                icmp.bytes5to8()
            );
            ensure!(
                icmp.payload() == &data[..],
                "ICMP payload differs ({} vs {} bytes)",
                icmp.payload().len(),
                data.len()
            );
            ensure!(
                payload.len() == 8 + data.len(),
                "ICMP length {}",
                payload.len()
            );
        }
        Body::Udp { sport, dport, data } => {
            let (u, rest) = UdpHeader::from_slice(payload).map_err(|e| format!("UDP: {e:?}"))?;
            let calc = u
                .calc_checksum_ipv4(h, rest)
                .map_err(|e| format!("UDP checksum: {e:?}"))?;
            ensure!(
                u.checksum == calc,
                "UDP checksum {:#06x}, expected {calc:#06x}",
                u.checksum
            );
            ensure!(
                u.checksum != 0,
                "UDP checksum must not be 0 (RFC 768: computed zero is sent as 0xffff)"
            );
            ensure!(
                u.length as usize == payload.len(),
                "UDP length {} vs {}",
                u.length,
                payload.len()
            );
            ensure!(
                u.source_port == *sport && u.destination_port == *dport,
                "ports {}>{}",
                u.source_port,
                u.destination_port
            );
            ensure!(rest == &data[..], "UDP payload differs");
        }
    }
    Ok(())
}

fn proto_of(body: &Body) -> u8 {
    match body {
        Body::Icmp { .. } => PROTO_ICMP,
        Body::Udp { .. } => PROTO_UDP,
    }
}

/// Verifies a whole datagram: one frame, or the fragments of one datagram in any order.
fn verify(frames: &[Vec<u8>], want: &Want) -> Result<(), String> {
    match want {
        Want::Arp {
            dst_mac,
            op,
            tha,
            tpa,
        } => {
            ensure!(frames.len() == 1, "{} frames", frames.len());
            verify_arp(&frames[0], *dst_mac, *op, *tha, *tpa)
        }
        Want::Ip { dst_mac, dst, body } => {
            let proto = proto_of(body);
            let mut parts = Vec::new();
            for f in frames {
                parts.push(check_ip(f, *dst_mac, *dst, proto)?);
            }
            parts.sort_by_key(|p| p.1);
            let ident = parts[0].0.identification;
            let mut whole = Vec::new();
            for (i, (h, off, mf, payload)) in parts.iter().enumerate() {
                ensure!(h.identification == ident, "fragments with different idents");
                ensure!(
                    *off == whole.len(),
                    "fragment at {off}, expected {}",
                    whole.len()
                );
                ensure!(*mf == (i + 1 < parts.len()), "MF wrong on fragment {i}");
                if *mf {
                    ensure!(
                        payload.len() % 8 == 0,
                        "non-final fragment of {} bytes",
                        payload.len()
                    );
                    ensure!(
                        h.total_len == 1500,
                        "non-final fragment does not fill the MTU"
                    );
                }
                whole.extend_from_slice(payload);
            }
            let mut h = parts[0].0.clone();
            h.more_fragments = false;
            h.fragment_offset = etherparse::IpFragOffset::ZERO;
            verify_transport(&h, &whole, body)
        }
    }
}

fn verify_ok(frames: &[Vec<u8>], want: &Want) {
    if let Err(e) = verify(frames, want) {
        panic!("{e}\nframes: {frames:02x?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Capturing each kind of frame.

struct Case {
    name: &'static str,
    frames: Vec<Vec<u8>>,
    want: Want,
}

fn one(s: &mut Stack) -> Vec<Vec<u8>> {
    let out = drain(s, t(1));
    assert_eq!(out.len(), 1, "expected one frame, got {}", out.len());
    out
}

fn gratuitous_arp() -> Case {
    let mut s = Stack::new(config(), t(0));
    Case {
        name: "gratuitous ARP",
        frames: drain(&mut s, t(0)),
        want: Want::Arp {
            dst_mac: BROADCAST_MAC,
            op: 1,
            tha: [0; 6],
            tpa: OUR_IP,
        },
    }
}

fn arp_request() -> Case {
    let mut s = stack();
    let h = s.udp_bind(sock(OUR_IP, 1)).unwrap();
    s.udp_send_to(t(1), h, b"x", sock(PEER_IP, 2)).unwrap();
    Case {
        name: "ARP request",
        frames: one(&mut s),
        want: Want::Arp {
            dst_mac: BROADCAST_MAC,
            op: 1,
            tha: [0; 6],
            tpa: PEER_IP,
        },
    }
}

fn arp_reply() -> Case {
    let mut s = stack();
    s.handle_frame(t(1), &arp_request_frame(PEER_MAC, PEER_IP, OUR_IP));
    Case {
        name: "ARP reply",
        frames: one(&mut s),
        want: Want::Arp {
            dst_mac: PEER_MAC,
            op: 2,
            tha: PEER_MAC,
            tpa: PEER_IP,
        },
    }
}

fn echo_request() -> Case {
    let mut s = stack_with_peer();
    let h = s.ping_open(0xbeef).unwrap();
    s.ping_send(t(1), h, PEER_IP, 513, b"odd-length payload")
        .unwrap();
    Case {
        name: "echo request",
        frames: one(&mut s),
        want: Want::Ip {
            dst_mac: PEER_MAC,
            dst: PEER_IP,
            body: Body::Icmp {
                ty: 8,
                code: 0,
                rest: [0xbe, 0xef, 0x02, 0x01],
                data: b"odd-length payload".to_vec(),
            },
        },
    }
}

fn echo_reply() -> Case {
    let mut s = stack_with_peer();
    s.handle_frame(
        t(1),
        &icmp_frame(&icmp_echo(8, 0x0102, 0x0304, &pattern(57, 3))),
    );
    Case {
        name: "echo reply",
        frames: one(&mut s),
        want: Want::Ip {
            dst_mac: PEER_MAC,
            dst: PEER_IP,
            body: Body::Icmp {
                ty: 0,
                code: 0,
                rest: [1, 2, 3, 4],
                data: pattern(57, 3),
            },
        },
    }
}

fn port_unreachable() -> Case {
    let mut s = stack_with_peer();
    let original =
        Ip::new(PEER_IP, OUR_IP, PROTO_UDP).build(&udp(PEER_IP, OUR_IP, 5, 6, b"closed port"));
    s.handle_frame(t(1), &from_peer(&original));
    Case {
        name: "port unreachable",
        frames: one(&mut s),
        want: Want::Ip {
            dst_mac: PEER_MAC,
            dst: PEER_IP,
            body: Body::Icmp {
                ty: 3,
                code: 3,
                rest: [0; 4],
                data: original,
            },
        },
    }
}

fn protocol_unreachable() -> Case {
    let mut s = stack_with_peer();
    let original = Ip::new(PEER_IP, OUR_IP, 200).build(b"proto 200");
    s.handle_frame(t(1), &from_peer(&original));
    Case {
        name: "protocol unreachable",
        frames: one(&mut s),
        want: Want::Ip {
            dst_mac: PEER_MAC,
            dst: PEER_IP,
            body: Body::Icmp {
                ty: 3,
                code: 2,
                rest: [0; 4],
                data: original,
            },
        },
    }
}

fn udp_case(name: &'static str, len: usize) -> Case {
    let mut s = stack_with_peer();
    let h = s.udp_bind(sock(OUR_IP, 40000)).unwrap();
    let data = pattern(len, len as u8);
    s.udp_send_to(t(1), h, &data, sock(PEER_IP, 9)).unwrap();
    Case {
        name,
        frames: drain(&mut s, t(1)),
        want: Want::Ip {
            dst_mac: PEER_MAC,
            dst: PEER_IP,
            body: Body::Udp {
                sport: 40000,
                dport: 9,
                data,
            },
        },
    }
}

/// A payload whose UDP checksum computes to zero (found with our own checksum code).
fn zero_checksum_payload() -> Vec<u8> {
    (0u16..=u16::MAX)
        .map(|x| x.to_be_bytes().to_vec())
        .find(|p| {
            let mut d = udp_no_checksum(40000, 9, p);
            d[6] = 0;
            d[7] = 0;
            udp_checksum(OUR_IP, PEER_IP, &d) == 0xffff
        })
        .expect("some 2-byte payload makes the checksum zero")
}

fn udp_computed_zero() -> Case {
    let mut s = stack_with_peer();
    let h = s.udp_bind(sock(OUR_IP, 40000)).unwrap();
    let data = zero_checksum_payload();
    s.udp_send_to(t(1), h, &data, sock(PEER_IP, 9)).unwrap();
    let frames = one(&mut s);
    assert_eq!(
        &frames[0][14 + 20 + 6..14 + 20 + 8],
        &[0xff, 0xff],
        "computed zero must be sent as 0xffff"
    );
    Case {
        name: "UDP with computed checksum zero",
        frames,
        want: Want::Ip {
            dst_mac: PEER_MAC,
            dst: PEER_IP,
            body: Body::Udp {
                sport: 40000,
                dport: 9,
                data,
            },
        },
    }
}

fn fragmented_echo_reply() -> Case {
    let mut s = stack_with_peer();
    let data = pattern(3000, 11);
    let req = icmp_echo(8, 5, 6, &data);
    let mut off = 0;
    while off < req.len() {
        let end = (off + 1480).min(req.len());
        let mut ip = Ip::new(PEER_IP, OUR_IP, PROTO_ICMP);
        ip.ident = 99;
        ip.frag_offset = off;
        ip.more_frags = end < req.len();
        s.handle_frame(t(1), &from_peer(&ip.build(&req[off..end])));
        off = end;
    }
    Case {
        name: "fragmented echo reply",
        frames: drain(&mut s, t(1)),
        want: Want::Ip {
            dst_mac: PEER_MAC,
            dst: PEER_IP,
            body: Body::Icmp {
                ty: 0,
                code: 0,
                rest: [0, 5, 0, 6],
                data,
            },
        },
    }
}

fn small_cases() -> Vec<Case> {
    vec![
        gratuitous_arp(),
        arp_request(),
        arp_reply(),
        echo_request(),
        echo_reply(),
        port_unreachable(),
        protocol_unreachable(),
        udp_case("UDP small", 100),
        udp_case("UDP empty", 0),
        udp_case("UDP 1472 (fills the MTU)", 1472),
        udp_computed_zero(),
    ]
}

// ---------------------------------------------------------------------------------------------

#[test]
fn arp_frames_parse() {
    for c in [gratuitous_arp(), arp_request(), arp_reply()] {
        verify_ok(&c.frames, &c.want);
    }
}

#[test]
fn icmp_frames_parse_with_valid_checksums() {
    for c in [
        echo_request(),
        echo_reply(),
        port_unreachable(),
        protocol_unreachable(),
    ] {
        println!("{}", c.name);
        verify_ok(&c.frames, &c.want);
    }
}

#[test]
fn udp_frames_parse_with_valid_checksums() {
    for c in [
        udp_case("UDP small", 100),
        udp_case("UDP empty", 0),
        udp_case("UDP 1472", 1472),
    ] {
        assert_eq!(c.frames.len(), 1, "{}", c.name);
        verify_ok(&c.frames, &c.want);
    }
}

#[test]
fn udp_checksum_computed_zero_is_sent_as_all_ones() {
    let c = udp_computed_zero();
    verify_ok(&c.frames, &c.want);
}

#[test]
fn udp_1473_is_two_fragments() {
    let c = udp_case("UDP 1473", 1473);
    assert_eq!(c.frames.len(), 2);
    verify_ok(&c.frames, &c.want);
}

#[test]
fn largest_udp_datagram_is_fragmented_and_every_fragment_parses() {
    let c = udp_case("UDP 65507", 65507);
    // 65515 bytes of UDP in 1480-byte pieces.
    assert_eq!(c.frames.len(), 65515usize.div_ceil(1480));
    for f in &c.frames {
        let p = SlicedPacket::from_ethernet(f).unwrap();
        let Some(NetSlice::Ipv4(ip)) = &p.net else {
            panic!("not IPv4")
        };
        assert!(ip.is_payload_fragmented());
        assert!(
            p.transport.is_none(),
            "a fragment has no parsable transport header of its own"
        );
        let h = ip.header().to_header();
        assert_eq!(h.header_checksum, h.calc_header_checksum());
        assert!(f.len() <= 1514);
    }
    verify_ok(&c.frames, &c.want);
    // The same, delivered in reverse order.
    let mut rev = c.frames.clone();
    rev.reverse();
    verify_ok(&rev, &c.want);
}

#[test]
fn fragmented_echo_reply_parses() {
    let c = fragmented_echo_reply();
    assert_eq!(c.frames.len(), 3);
    verify_ok(&c.frames, &c.want);
}

#[test]
fn etherparse_agrees_on_sliced_transport_of_unfragmented_frames() {
    // A second path through etherparse: SlicedPacket's own transport slicing.
    for c in small_cases() {
        let p = SlicedPacket::from_ethernet(&c.frames[0]).unwrap();
        match (&c.want, &p.transport) {
            (Want::Arp { .. }, None) => {
                assert!(matches!(p.net, Some(NetSlice::Arp(_))), "{}", c.name)
            }
            (
                Want::Ip {
                    body: Body::Icmp { ty, .. },
                    ..
                },
                Some(TransportSlice::Icmpv4(i)),
            ) => {
                assert_eq!(i.type_u8(), *ty, "{}", c.name)
            }
            (
                Want::Ip {
                    body: Body::Udp { dport, .. },
                    ..
                },
                Some(TransportSlice::Udp(u)),
            ) => {
                assert_eq!(u.destination_port(), *dport, "{}", c.name)
            }
            (w, t) => panic!("{}: wanted {w:?}, etherparse sliced {t:?}", c.name),
        }
    }
}

#[test]
fn every_single_byte_flip_is_caught() {
    let mut cases = small_cases();
    cases.push(udp_case("UDP 3000 (3 fragments)", 3000));
    cases.push(fragmented_echo_reply());
    for c in cases {
        verify_ok(&c.frames, &c.want);
        for (fi, frame) in c.frames.iter().enumerate() {
            for at in 0..frame.len() {
                for mask in [0x01u8, 0x80] {
                    let mut frames = c.frames.clone();
                    frames[fi][at] ^= mask;
                    assert!(
                        verify(&frames, &c.want).is_err(),
                        "{}: flipping bit {mask:#04x} of byte {at} in frame {fi} went unnoticed",
                        c.name
                    );
                }
            }
        }
        // Truncation and extension are caught too.
        let mut short = c.frames.clone();
        short[0].pop();
        assert!(
            verify(&short, &c.want).is_err(),
            "{}: truncation unnoticed",
            c.name
        );
        let mut long = c.frames.clone();
        long[0].push(0);
        assert!(
            verify(&long, &c.want).is_err(),
            "{}: extension unnoticed",
            c.name
        );
    }
}
