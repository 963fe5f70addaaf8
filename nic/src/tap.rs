//! The TAP backend: [`TapNic`].
//!
//! A TAP device (via the `tun-tap` crate: TAP mode, no packet-information header) whose file
//! descriptor is made non-blocking. Each frame costs one `read`/`write` and one copy through an
//! internal buffer: [`Nic::receive`] reads a frame into a 64 KiB buffer and lends it to the
//! sink; [`Nic::transmit`] lends a buffer of `max_frame` bytes and writes what `fill` put in.
//!
//! The other end of a TAP is the kernel: a frame ringstack transmits is *received* by the
//! kernel on the TAP interface, and frames the kernel sends out of the TAP interface are what
//! ringstack receives.
//!
//! # MAC address
//!
//! The TAP interface has a MAC of its own, but that one belongs to the kernel side
//! ([`TapNic::kernel_mac`]). ringstack is a separate host behind it, so
//! [`NicInfo::mac`] is `None`: the caller chooses ringstack's MAC.
//!
//! # Privileges and the lab
//!
//! Creating a TAP needs CAP_NET_ADMIN. The device is not persistent: it disappears when the
//! `TapNic` is dropped. It is created in the calling thread's network namespace; the lab
//! creates it inside a private namespace only (see `unshare_thread_network_namespace`).
//! The MTU is read once at creation (1500 for a new TAP); frames up to 64 KiB are still read
//! whole, and those longer than `max_frame` are dropped and counted in `rx_dropped`.

use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, RawFd};

use smoltcp::time::Instant;
use tun_tap::{Iface, Mode};

use crate::sys::socket::{interface_facts, set_nonblocking};
use crate::{Nic, NicError, NicInfo, NicStats, ETHERNET_HEADER_LEN};

/// Size of the receive buffer: any frame the kernel can hand a TAP without offloads.
const RX_BUFFER: usize = 65536;

/// A TAP device. See the [module docs](self).
pub struct TapNic {
    iface: Iface,
    info: NicInfo,
    rx_buf: Vec<u8>,
    tx_buf: Vec<u8>,
    stats: NicStats,
}

impl TapNic {
    /// Creates a TAP device named `name` (`%d` is replaced by a free number; the kernel may
    /// pick another name: see [`TapNic::name`]) in the calling thread's network namespace.
    ///
    /// The interface is created down and unconfigured; bring it up (and give the kernel side
    /// an address) with `ip`.
    pub fn create(name: &str) -> Result<Self, NicError> {
        let iface =
            Iface::without_packet_info(name, Mode::Tap).map_err(|e| match e.raw_os_error() {
                Some(libc::EPERM) | Some(libc::EACCES) => NicError::Io(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    "creating a TAP device needs CAP_NET_ADMIN: run as root or grant the \
                     capability (setcap cap_net_raw,cap_net_admin+ep)",
                )),
                _ => NicError::Io(io::Error::new(
                    e.kind(),
                    format!("creating TAP device {name:?} via /dev/net/tun failed: {e}"),
                )),
            })?;
        set_nonblocking(iface.as_raw_fd())?;
        let facts = interface_facts(iface.name())?;
        let max_frame = facts.mtu + ETHERNET_HEADER_LEN;
        Ok(TapNic {
            info: NicInfo {
                name: iface.name().to_string(),
                mtu: facts.mtu,
                mac: None,
                max_frame,
                max_rx_frame: max_frame,
            },
            iface,
            rx_buf: vec![0; RX_BUFFER],
            tx_buf: vec![0; max_frame],
            stats: NicStats::default(),
        })
    }

    /// The interface name the kernel gave the TAP.
    pub fn name(&self) -> &str {
        self.iface.name()
    }

    /// The MAC of the kernel side of the TAP (what the kernel uses as its source address).
    pub fn kernel_mac(&self) -> Result<Option<[u8; 6]>, NicError> {
        Ok(interface_facts(self.iface.name())?.mac)
    }
}

fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::Interrupted
}

impl Nic for TapNic {
    fn info(&self) -> NicInfo {
        self.info.clone()
    }

    fn receive(
        &mut self,
        _now: Instant,
        budget: usize,
        sink: &mut dyn FnMut(&[u8]),
    ) -> Result<usize, NicError> {
        let mut handed = 0;
        while handed < budget {
            self.stats.syscalls += 1;
            let len = match self.iface.recv(&mut self.rx_buf) {
                Ok(len) => len,
                Err(e) if would_block(&e) => break,
                Err(e) => return Err(e.into()),
            };
            if len > self.info.max_frame {
                self.stats.rx_dropped += 1;
                continue;
            }
            sink(&self.rx_buf[..len]);
            handed += 1;
            self.stats.rx_frames += 1;
            self.stats.rx_bytes += len as u64;
        }
        Ok(handed)
    }

    fn transmit(
        &mut self,
        _now: Instant,
        fill: &mut dyn FnMut(&mut [u8]) -> usize,
    ) -> Result<usize, NicError> {
        let max = self.info.max_frame;
        let len = fill(&mut self.tx_buf[..max]);
        if len == 0 {
            return Ok(0);
        }
        if len > max {
            self.stats.tx_dropped += 1;
            return Err(NicError::TooLarge { len, max });
        }
        self.stats.syscalls += 1;
        match self.iface.send(&self.tx_buf[..len]) {
            Ok(_) => {
                self.stats.tx_frames += 1;
                self.stats.tx_bytes += len as u64;
                Ok(len)
            }
            Err(e) => {
                self.stats.tx_dropped += 1;
                Err(e.into())
            }
        }
    }

    fn wait_fd(&self) -> Option<RawFd> {
        Some(self.iface.as_raw_fd())
    }

    fn stats(&self) -> NicStats {
        self.stats
    }
}

impl fmt::Debug for TapNic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TapNic")
            .field("info", &self.info)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}
