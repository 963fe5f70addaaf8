//! Ethernet II framing (IEEE 802.3 / RFC 894): validate the destination and EtherType, strip the
//! 14-byte header, and hand the payload to ARP or IPv4.

use core::net::Ipv4Addr;

use smoltcp::wire::{EthernetFrame, EthernetProtocol};

use crate::config::Mac;
use crate::counters::{Counter, DropReason};
use crate::cx::Cx;
use crate::interface::Interface;
use crate::trace::{Direction, Layer, Verdict};

/// Length of an Ethernet II header: destination, source, EtherType.
pub const HEADER_LEN: usize = 14;
/// The broadcast address.
pub const BROADCAST: Mac = [0xff; 6];

/// The Ethernet multicast MAC for an IPv4 group (RFC 1112 §6.4): 01:00:5e + the group's low 23 bits.
pub fn multicast_mac(group: Ipv4Addr) -> Mac {
    let o = group.octets();
    [0x01, 0x00, 0x5e, o[1] & 0x7f, o[2], o[3]]
}

/// Formats a MAC address as `aa:bb:cc:dd:ee:ff`.
pub fn fmt_mac(m: &Mac) -> String {
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    )
}

/// Writes an Ethernet header at the start of `buf`.
pub fn emit_header(buf: &mut [u8], dst: Mac, src: Mac, ethertype: EthernetProtocol) {
    let mut f = EthernetFrame::new_unchecked(&mut buf[..HEADER_LEN]);
    f.set_dst_addr(smoltcp::wire::EthernetAddress(dst));
    f.set_src_addr(smoltcp::wire::EthernetAddress(src));
    f.set_ethertype(ethertype);
}

impl Interface {
    /// Receive path, layer 2: accept frames for us, strip the header, dispatch by EtherType.
    pub(crate) fn ethernet_input(&mut self, cx: &mut Cx<'_>, frame: &[u8]) {
        cx.inc(Counter::EthInFrames);
        cx.counters.add(Counter::EthInOctets, frame.len() as u64);
        if frame.len() < HEADER_LEN {
            return cx.drop(
                Direction::Rx,
                Layer::Ethernet,
                DropReason::EthTruncated,
                frame.len(),
                || format!("{} bytes", frame.len()),
            );
        }
        let view = EthernetFrame::new_unchecked(frame);
        let dst = view.dst_addr().0;
        let src = view.src_addr().0;
        let ethertype = view.ethertype();
        let summary = || {
            format!(
                "{} > {} type {:#06x}",
                fmt_mac(&src),
                fmt_mac(&dst),
                u16::from(ethertype)
            )
        };
        let for_us = dst == self.config.mac
            || dst == BROADCAST
            || self
                .config
                .multicast
                .iter()
                .any(|&g| multicast_mac(g) == dst);
        if !for_us {
            return cx.drop(
                Direction::Rx,
                Layer::Ethernet,
                DropReason::EthNotForUs,
                frame.len(),
                summary,
            );
        }
        if src == self.config.mac {
            return cx.drop(
                Direction::Rx,
                Layer::Ethernet,
                DropReason::EthOwnSource,
                frame.len(),
                summary,
            );
        }
        let payload = &frame[HEADER_LEN..];
        match ethertype {
            EthernetProtocol::Arp => {
                cx.trace(
                    Direction::Rx,
                    Layer::Ethernet,
                    Verdict::Pass,
                    frame.len(),
                    0,
                    summary,
                );
                self.arp_input(cx, src, payload);
            }
            EthernetProtocol::Ipv4 => {
                cx.trace(
                    Direction::Rx,
                    Layer::Ethernet,
                    Verdict::Pass,
                    frame.len(),
                    0,
                    summary,
                );
                self.ipv4_input(cx, dst == BROADCAST, payload);
            }
            EthernetProtocol::Ipv6 => cx.drop(
                Direction::Rx,
                Layer::Ethernet,
                DropReason::EthIpv6Unsupported,
                frame.len(),
                summary,
            ),
            _ => cx.drop(
                Direction::Rx,
                Layer::Ethernet,
                DropReason::EthUnknownType,
                frame.len(),
                summary,
            ),
        }
    }
}
