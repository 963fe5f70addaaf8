//! [`SmoltcpDevice`]: any [`Nic`] as a `smoltcp::phy::Device`, so that smoltcp (the second,
//! independent TCP/IP peer of the tests and benchmarks) runs on exactly the same NIC code as
//! ringstack.
//!
//! # Copies and batching
//!
//! smoltcp asks for one frame at a time through tokens whose lifetime is tied to the device,
//! while [`Nic::receive`] lends frames only inside its sink. The adapter therefore copies each
//! received frame into one owned buffer (allocated once, `max_frame` bytes) that the
//! `RxToken` lends to smoltcp: one extra copy per received frame, acceptable for a reference
//! peer. Transmission is zero copy: the `TxToken` lets smoltcp write straight into the NIC's
//! TX slot (a slice of the TX ring on [`crate::RingNic`]).
//!
//! By default every transmitted frame is followed by [`Nic::flush`] (smoltcp has no notion of a
//! batch). With [`SmoltcpDevice::set_flush_each`]`(false)` frames are only queued and the driver
//! calls [`SmoltcpDevice::flush`] once after `Interface::poll`: one kick per batch.
//!
//! # Errors
//!
//! smoltcp's `Device` cannot report errors: a failing `receive` reads as "no frame", a refused
//! transmit drops the frame (smoltcp's TCP retransmits). The last error is kept in
//! [`SmoltcpDevice::take_error`]; the NIC's own counters ([`Nic::stats`]) count the drops.

use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::time::Instant;

use crate::{Nic, NicError};

/// A [`Nic`] adapted to `smoltcp::phy::Device` (medium Ethernet). See the [module docs](self).
#[derive(Debug)]
pub struct SmoltcpDevice<N: Nic> {
    nic: N,
    rx_buf: Vec<u8>,
    scratch: Vec<u8>,
    flush_each: bool,
    error: Option<NicError>,
}

impl<N: Nic> SmoltcpDevice<N> {
    /// Wraps `nic`.
    pub fn new(nic: N) -> Self {
        let max_frame = nic.info().max_frame;
        SmoltcpDevice {
            nic,
            rx_buf: Vec::with_capacity(max_frame),
            scratch: Vec::new(),
            flush_each: true,
            error: None,
        }
    }

    /// Whether every transmitted frame is flushed at once (default true). With `false` the
    /// driver must call [`SmoltcpDevice::flush`] after each `Interface::poll`.
    pub fn set_flush_each(&mut self, flush_each: bool) {
        self.flush_each = flush_each;
    }

    /// Pushes the frames queued by smoltcp out (one kick).
    pub fn flush(&mut self, now: Instant) -> Result<(), NicError> {
        self.nic.flush(now)
    }

    /// The last error the `Device` interface could not report, if any.
    pub fn take_error(&mut self) -> Option<NicError> {
        self.error.take()
    }

    /// The wrapped NIC.
    pub fn get_ref(&self) -> &N {
        &self.nic
    }

    /// The wrapped NIC, mutably.
    pub fn get_mut(&mut self) -> &mut N {
        &mut self.nic
    }

    /// Returns the wrapped NIC.
    pub fn into_inner(self) -> N {
        self.nic
    }
}

/// Lends one received frame (a copy owned by the device) to smoltcp.
#[derive(Debug)]
pub struct RxToken<'a> {
    frame: &'a [u8],
}

impl phy::RxToken for RxToken<'_> {
    fn consume<R, F>(self, f: F) -> R
    where
        F: FnOnce(&[u8]) -> R,
    {
        f(self.frame)
    }
}

/// Lets smoltcp write one frame into a TX slot of the NIC.
#[derive(Debug)]
pub struct TxToken<'a, N: Nic> {
    nic: &'a mut N,
    scratch: &'a mut Vec<u8>,
    error: &'a mut Option<NicError>,
    flush_each: bool,
    now: Instant,
}

impl<N: Nic> phy::TxToken for TxToken<'_, N> {
    fn consume<R, F>(self, len: usize, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        let mut f = Some(f);
        let mut result = None;
        let sent = self.nic.transmit(self.now, &mut |slot: &mut [u8]| {
            if len > slot.len() {
                // Reporting the true length makes the NIC refuse (and count) the frame.
                return len;
            }
            let f = f.take().expect("fill runs once");
            result = Some(f(&mut slot[..len]));
            len
        });
        let result = match result {
            Some(result) => result,
            None => {
                // The NIC refused before or instead of filling (ring full, too large): smoltcp
                // still expects `f` to run; let it write into a scratch buffer and drop that.
                self.scratch.clear();
                self.scratch.resize(len, 0);
                let f = f.take().expect("fill did not run");
                f(&mut self.scratch[..])
            }
        };
        match sent {
            Ok(_) if self.flush_each => {
                if let Err(e) = self.nic.flush(self.now) {
                    *self.error = Some(e);
                }
            }
            Ok(_) => {}
            Err(e) => *self.error = Some(e),
        }
        result
    }
}

impl<N: Nic> Device for SmoltcpDevice<N> {
    type RxToken<'a>
        = RxToken<'a>
    where
        Self: 'a;
    type TxToken<'a>
        = TxToken<'a, N>
    where
        Self: 'a;

    fn receive(&mut self, timestamp: Instant) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        let rx_buf = &mut self.rx_buf;
        rx_buf.clear();
        match self.nic.receive(timestamp, 1, &mut |frame| {
            rx_buf.extend_from_slice(frame);
        }) {
            Ok(1) => {}
            Ok(_) => return None,
            Err(e) => {
                self.error = Some(e);
                return None;
            }
        }
        Some((
            RxToken {
                frame: &self.rx_buf[..],
            },
            TxToken {
                nic: &mut self.nic,
                scratch: &mut self.scratch,
                error: &mut self.error,
                flush_each: self.flush_each,
                now: timestamp,
            },
        ))
    }

    fn transmit(&mut self, timestamp: Instant) -> Option<Self::TxToken<'_>> {
        Some(TxToken {
            nic: &mut self.nic,
            scratch: &mut self.scratch,
            error: &mut self.error,
            flush_each: self.flush_each,
            now: timestamp,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        // For Ethernet, smoltcp's MTU is the whole frame without FCS: our max_frame.
        caps.max_transmission_unit = self.nic.info().max_frame;
        caps
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{LinkConfig, MemoryLink};
    use smoltcp::iface::{Config, Interface, SocketSet, SocketStorage};
    use smoltcp::phy::{ChecksumCapabilities, RxToken as _, TxToken as _};
    use smoltcp::socket::raw;
    use smoltcp::wire::{
        EthernetAddress, HardwareAddress, IpAddress, IpCidr, IpProtocol, IpVersion, Ipv4Address,
        Ipv4Packet, Ipv4Repr, UdpPacket, UdpRepr,
    };

    #[test]
    fn tokens_move_frames_both_ways() {
        let (a, b) = MemoryLink::pair(LinkConfig::default());
        let mut a = SmoltcpDevice::new(a);
        let mut b = SmoltcpDevice::new(b);
        assert_eq!(a.capabilities().max_transmission_unit, 1514);
        assert!(b.receive(Instant::ZERO).is_none());
        let tx = a.transmit(Instant::ZERO).unwrap();
        let n = tx.consume(60, |buf| {
            buf.fill(0xab);
            buf.len()
        });
        assert_eq!(n, 60);
        let (rx, tx) = b.receive(Instant::ZERO).unwrap();
        assert_eq!(rx.consume(|f| f.to_vec()), vec![0xab; 60]);
        // The TxToken of a receive pair transmits too (smoltcp answers with it).
        tx.consume(42, |buf| buf.fill(1));
        let (rx, _) = a.receive(Instant::ZERO).unwrap();
        assert_eq!(rx.consume(|f| f.len()), 42);
        // A frame larger than the NIC allows still runs `f`, is dropped, and is reported.
        let tx = a.transmit(Instant::ZERO).unwrap();
        assert_eq!(tx.consume(5000, |buf| buf.len()), 5000);
        assert!(matches!(a.take_error(), Some(NicError::TooLarge { .. })));
        assert_eq!(a.get_ref().stats().tx_dropped, 1);
    }

    fn iface(
        dev: &mut SmoltcpDevice<crate::MemoryNic>,
        mac: [u8; 6],
        ip: Ipv4Address,
    ) -> Interface {
        let config = Config::new(HardwareAddress::Ethernet(EthernetAddress(mac)));
        let mut iface = Interface::new(config, dev, Instant::ZERO);
        iface.update_ip_addrs(|addrs| {
            addrs.push(IpCidr::new(IpAddress::Ipv4(ip), 24)).unwrap();
        });
        iface
    }

    /// An IPv4/UDP packet from `src` to `dst`, checksums filled in, built with smoltcp `wire`.
    pub(crate) fn udp_packet(src: Ipv4Address, dst: Ipv4Address, payload: &[u8]) -> Vec<u8> {
        let udp = UdpRepr {
            src_port: 4000,
            dst_port: 5000,
        };
        let ip = Ipv4Repr {
            src_addr: src,
            dst_addr: dst,
            next_header: IpProtocol::Udp,
            payload_len: udp.header_len() + payload.len(),
            hop_limit: 64,
        };
        let mut buf = vec![0u8; ip.buffer_len() + ip.payload_len];
        let caps = ChecksumCapabilities::default();
        let mut packet = Ipv4Packet::new_unchecked(&mut buf);
        ip.emit(&mut packet, &caps);
        let mut dgram = UdpPacket::new_unchecked(packet.payload_mut());
        udp.emit(
            &mut dgram,
            &src.into(),
            &dst.into(),
            payload.len(),
            |p| p.copy_from_slice(payload),
            &caps,
        );
        buf
    }

    #[test]
    fn two_smoltcp_interfaces_talk_over_the_adapter() {
        let (a, b) = MemoryLink::pair(LinkConfig::default());
        let mut dev_a = SmoltcpDevice::new(a);
        let mut dev_b = SmoltcpDevice::new(b);
        dev_b.set_flush_each(false);
        let ip_a = Ipv4Address::new(198, 18, 0, 1);
        let ip_b = Ipv4Address::new(198, 18, 0, 2);
        let mut if_a = iface(&mut dev_a, [2, 0, 0, 0, 0, 1], ip_a);
        let mut if_b = iface(&mut dev_b, [2, 0, 0, 0, 0, 2], ip_b);
        let (mut meta, mut data) = ([[raw::PacketMetadata::EMPTY; 4]; 4], [[0u8; 4096]; 4]);
        let [m0, m1, m2, m3] = &mut meta;
        let [d0, d1, d2, d3] = &mut data;
        let socket_a = raw::Socket::new(
            Some(IpVersion::Ipv4),
            Some(IpProtocol::Udp),
            raw::PacketBuffer::new(&mut m0[..], &mut d0[..]),
            raw::PacketBuffer::new(&mut m1[..], &mut d1[..]),
        );
        let socket_b = raw::Socket::new(
            Some(IpVersion::Ipv4),
            Some(IpProtocol::Udp),
            raw::PacketBuffer::new(&mut m2[..], &mut d2[..]),
            raw::PacketBuffer::new(&mut m3[..], &mut d3[..]),
        );
        let (mut storage_a, mut storage_b) = ([SocketStorage::EMPTY; 1], [SocketStorage::EMPTY; 1]);
        let mut set_a = SocketSet::new(&mut storage_a[..]);
        let mut set_b = SocketSet::new(&mut storage_b[..]);
        let ha = set_a.add(socket_a);
        let hb = set_b.add(socket_b);
        set_a
            .get_mut::<raw::Socket>(ha)
            .send_slice(&udp_packet(ip_a, ip_b, b"hello over the adapter"))
            .unwrap();
        let mut got = None;
        for ms in 0..100 {
            let now = Instant::from_millis(ms);
            if_a.poll(now, &mut dev_a, &mut set_a);
            if_b.poll(now, &mut dev_b, &mut set_b);
            dev_b.flush(now).unwrap();
            let sb = set_b.get_mut::<raw::Socket>(hb);
            if sb.can_recv() {
                got = Some(sb.recv().unwrap().to_vec());
                break;
            }
        }
        let got = got.expect("B received the datagram (ARP resolved through the adapter)");
        let packet = Ipv4Packet::new_checked(&got[..]).unwrap();
        let dgram = UdpPacket::new_checked(packet.payload()).unwrap();
        assert_eq!(dgram.payload(), b"hello over the adapter");
        assert!(
            dev_a.get_ref().stats().tx_frames >= 2,
            "ARP request + datagram"
        );
        assert!(dev_b.take_error().is_none());
    }
}
