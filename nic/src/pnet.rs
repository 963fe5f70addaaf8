//! The plain packet-socket backend: [`PnetNic`], the copy path the ring is measured against.
//!
//! An `AF_PACKET` socket driven through `pnet_datalink`: one `poll` + `recvfrom` per received
//! frame (copied into pnet's buffer, then lent to the sink) and one `poll` + `sendto` per
//! transmitted frame (written by `fill` into an internal buffer). No mmap ring.
//!
//! The socket is created here (protocol 0, so it receives nothing before pnet binds it to the
//! interface with `ETH_P_ALL`) with `PACKET_IGNORE_OUTGOING` set, so frames this host transmits
//! on the interface are not received; pnet then owns and closes it. Reads are non-blocking
//! (pnet read timeout 0); a driver waits on [`Nic::wait_fd`].
//!
//! Needs CAP_NET_RAW; the interface is looked up in the calling thread's network namespace.

use std::fmt;
use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

use pnet_datalink::{Channel, DataLinkReceiver, DataLinkSender, NetworkInterface};
use smoltcp::time::Instant;

use crate::sys::socket::{interface_facts, PacketSocket};
use crate::{Nic, NicError, NicInfo, NicStats, ETHERNET_HEADER_LEN};

/// Configuration of a [`PnetNic`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PnetConfig {
    /// Receive frames not addressed to the interface's MAC (default false).
    pub promiscuous: bool,
    /// How long a transmit may wait for the socket to become writable (default 10 ms) before
    /// the frame is refused with a `WouldBlock` error.
    pub write_timeout: Duration,
    /// Receive buffer (the largest frame received whole; default 65536).
    pub read_buffer_size: usize,
}

impl Default for PnetConfig {
    fn default() -> Self {
        PnetConfig {
            promiscuous: false,
            write_timeout: Duration::from_millis(10),
            read_buffer_size: 65536,
        }
    }
}

/// A plain packet socket via `pnet_datalink`. See the [module docs](self).
pub struct PnetNic {
    tx: Box<dyn DataLinkSender>,
    rx: Box<dyn DataLinkReceiver>,
    fd: RawFd,
    info: NicInfo,
    slot: Vec<u8>,
    stats: NicStats,
}

impl PnetNic {
    /// Opens interface `ifname` with the default [`PnetConfig`].
    pub fn open(ifname: &str) -> Result<Self, NicError> {
        PnetNic::with_config(ifname, PnetConfig::default())
    }

    /// Opens interface `ifname` with `config`.
    pub fn with_config(ifname: &str, config: PnetConfig) -> Result<Self, NicError> {
        let facts = interface_facts(ifname)?;
        let socket = PacketSocket::open()?;
        socket.set_ignore_outgoing()?;
        let interface = NetworkInterface {
            name: ifname.to_string(),
            description: String::new(),
            index: facts.index,
            mac: None,
            ips: Vec::new(),
            flags: 0,
        };
        let fd = socket.into_raw();
        let pnet_config = pnet_datalink::Config {
            read_buffer_size: config.read_buffer_size,
            write_buffer_size: 4096,
            read_timeout: Some(Duration::ZERO),
            write_timeout: Some(config.write_timeout),
            promiscuous: config.promiscuous,
            // pnet owns (and on error or drop closes) the descriptor from here on.
            socket_fd: Some(fd),
            ..pnet_datalink::Config::default()
        };
        let (tx, rx) = match pnet_datalink::channel(&interface, pnet_config) {
            Ok(Channel::Ethernet(tx, rx)) => (tx, rx),
            Ok(_) => {
                return Err(NicError::Io(io::Error::other(
                    "pnet_datalink returned a non-Ethernet channel",
                )))
            }
            Err(e) => {
                return Err(NicError::Io(io::Error::new(
                    e.kind(),
                    format!("packet socket on {ifname:?}: pnet channel failed: {e}"),
                )))
            }
        };
        let max_frame = facts.mtu + ETHERNET_HEADER_LEN;
        Ok(PnetNic {
            tx,
            rx,
            fd,
            info: NicInfo {
                name: ifname.to_string(),
                mtu: facts.mtu,
                mac: facts.mac,
                max_frame,
                max_rx_frame: max_frame,
            },
            slot: vec![0; max_frame],
            stats: NicStats::default(),
        })
    }
}

impl Nic for PnetNic {
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
            match self.rx.next() {
                Ok(frame) => {
                    if frame.len() > self.info.max_frame {
                        self.stats.rx_dropped += 1;
                        continue;
                    }
                    sink(frame);
                    handed += 1;
                    self.stats.rx_frames += 1;
                    self.stats.rx_bytes += frame.len() as u64;
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::TimedOut
                            | io::ErrorKind::WouldBlock
                            | io::ErrorKind::Interrupted
                    ) =>
                {
                    break
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(handed)
    }

    fn transmit(
        &mut self,
        _now: Instant,
        fill: &mut dyn FnMut(&mut [u8]) -> usize,
    ) -> Result<usize, NicError> {
        let max = self.info.max_frame;
        let len = fill(&mut self.slot[..max]);
        if len == 0 {
            return Ok(0);
        }
        if len > max {
            self.stats.tx_dropped += 1;
            return Err(NicError::TooLarge { len, max });
        }
        self.stats.syscalls += 1;
        match self.tx.send_to(&self.slot[..len], None) {
            Some(Ok(())) => {
                self.stats.tx_frames += 1;
                self.stats.tx_bytes += len as u64;
                Ok(len)
            }
            Some(Err(e)) => {
                self.stats.tx_dropped += 1;
                let kind = if e.kind() == io::ErrorKind::TimedOut {
                    io::ErrorKind::WouldBlock
                } else {
                    e.kind()
                };
                Err(NicError::Io(io::Error::new(
                    kind,
                    format!("packet socket send failed: {e}"),
                )))
            }
            None => {
                self.stats.tx_dropped += 1;
                Err(NicError::Io(io::Error::other("pnet send_to sent nothing")))
            }
        }
    }

    fn wait_fd(&self) -> Option<RawFd> {
        Some(self.fd)
    }

    fn stats(&self) -> NicStats {
        self.stats
    }
}

impl fmt::Debug for PnetNic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PnetNic")
            .field("info", &self.info)
            .field("fd", &self.fd)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}
