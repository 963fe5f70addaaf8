//! An owned `AF_PACKET` socket, interface queries and `poll`.

use std::ffi::CString;
use std::io;
use std::mem;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// Message of the error returned when opening an `AF_PACKET` socket is refused.
pub(crate) const NEED_CAP_NET_RAW: &str = "opening AF_PACKET needs CAP_NET_RAW: run as root or \
     grant the capability (setcap cap_net_raw,cap_net_admin+ep)";

/// `ETH_P_ALL` in network byte order, as `sll_protocol` wants it.
fn eth_p_all_be() -> u16 {
    (libc::ETH_P_ALL as u16).to_be()
}

/// Static facts about a network interface of the caller's network namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct InterfaceFacts {
    /// `ifindex`.
    pub index: u32,
    /// Hardware address (`SIOCGIFHWADDR`), if the interface has a 6-byte one.
    pub mac: Option<[u8; 6]>,
    /// IP MTU (`SIOCGIFMTU`).
    pub mtu: usize,
}

/// `struct ifreq`: the name, then a 24-byte union (`ifr_hwaddr`, `ifr_mtu`, ...).
#[repr(C)]
pub(crate) struct IfReq {
    pub name: [libc::c_char; libc::IFNAMSIZ],
    pub data: [u8; 24],
}

impl IfReq {
    /// A zeroed request for interface `name` (checked: 1 to IFNAMSIZ - 1 bytes, no NUL).
    pub fn new(name: &str) -> io::Result<Self> {
        let bytes = name.as_bytes();
        if bytes.is_empty() || bytes.len() >= libc::IFNAMSIZ || bytes.contains(&0) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "invalid interface name {name:?}: use 1 to {} bytes, no NUL",
                    libc::IFNAMSIZ - 1
                ),
            ));
        }
        let mut req = IfReq {
            name: [0; libc::IFNAMSIZ],
            data: [0; 24],
        };
        for (dst, &src) in req.name.iter_mut().zip(bytes) {
            *dst = src as libc::c_char;
        }
        Ok(req)
    }
}

fn no_such_interface(name: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!(
            "no network interface named {name:?} in this network namespace: check `ip link` \
             (lab interfaces live in the lab's own namespace)"
        ),
    )
}

/// Looks up `name` in the calling thread's network namespace: index, MAC and MTU.
///
/// Uses a throwaway `AF_INET` datagram socket, so it needs no privileges.
pub(crate) fn interface_facts(name: &str) -> io::Result<InterfaceFacts> {
    let cname = CString::new(name).map_err(|_| no_such_interface(name))?;
    // SAFETY: `cname` is a valid NUL-terminated string for the duration of the call.
    let index = unsafe { libc::if_nametoindex(cname.as_ptr()) };
    if index == 0 {
        return Err(no_such_interface(name));
    }
    // SAFETY: plain socket(2) call with constant arguments; the result is checked.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by socket(2) and is owned by nobody else.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };

    let mut req = IfReq::new(name)?;
    // SAFETY: SIOCGIFHWADDR reads the name and writes a `struct sockaddr` (16 bytes) into the
    // 24-byte union of `req`, which is a valid, exclusively borrowed `struct ifreq`.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFHWADDR, &mut req) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    // sockaddr: sa_family (u16), then sa_data; ARPHRD_ETHER = 1.
    let family = u16::from_ne_bytes([req.data[0], req.data[1]]);
    let mac = (family == libc::ARPHRD_ETHER).then(|| {
        let mut mac = [0u8; 6];
        mac.copy_from_slice(&req.data[2..8]);
        mac
    });

    let mut req = IfReq::new(name)?;
    // SAFETY: SIOCGIFMTU reads the name and writes a C int into the union of `req`.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFMTU, &mut req) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    let mtu = i32::from_ne_bytes([req.data[0], req.data[1], req.data[2], req.data[3]]);
    Ok(InterfaceFacts {
        index,
        mac,
        mtu: usize::try_from(mtu).unwrap_or(0),
    })
}

/// Statistics of a packet socket (`struct tpacket_stats_v3`), read-and-reset by the kernel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct PacketStats {
    pub packets: u32,
    pub drops: u32,
    pub freeze_q_cnt: u32,
}

/// An owned `AF_PACKET`/`SOCK_RAW` socket (closed on drop).
#[derive(Debug)]
pub(crate) struct PacketSocket {
    fd: OwnedFd,
}

impl PacketSocket {
    /// Opens a packet socket that receives nothing until [`PacketSocket::bind`] (protocol 0),
    /// so no frame of another interface slips into a ring set up before the bind.
    ///
    /// EPERM/EACCES become a `PermissionDenied` error saying which capability is missing.
    pub fn open() -> io::Result<Self> {
        // SAFETY: plain socket(2) call with constant arguments; the result is checked.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            let err = io::Error::last_os_error();
            return Err(match err.raw_os_error() {
                Some(libc::EPERM) | Some(libc::EACCES) => {
                    io::Error::new(io::ErrorKind::PermissionDenied, NEED_CAP_NET_RAW)
                }
                _ => err,
            });
        }
        // SAFETY: `fd` was just returned by socket(2) and is owned by nobody else.
        Ok(PacketSocket {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// The raw descriptor (still owned by `self`).
    pub fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Gives up ownership of the descriptor (the caller must close it).
    pub fn into_raw(self) -> RawFd {
        self.fd.into_raw_fd()
    }

    fn setsockopt<T>(&self, level: libc::c_int, name: libc::c_int, value: &T) -> io::Result<()> {
        // SAFETY: `value` points to a valid `T` of `size_of::<T>()` bytes for the duration of
        // the call; the kernel only reads it.
        let rc = unsafe {
            libc::setsockopt(
                self.raw(),
                level,
                name,
                (value as *const T).cast(),
                mem::size_of::<T>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    /// `PACKET_VERSION = TPACKET_V3`.
    pub fn set_tpacket_v3(&self) -> io::Result<()> {
        let version = libc::tpacket_versions::TPACKET_V3 as libc::c_int;
        self.setsockopt(libc::SOL_PACKET, libc::PACKET_VERSION, &version)
    }

    /// `PACKET_VERSION = TPACKET_V2` (applies to both rings).
    pub fn set_tpacket_v2(&self) -> io::Result<()> {
        let version = libc::tpacket_versions::TPACKET_V2 as libc::c_int;
        self.setsockopt(libc::SOL_PACKET, libc::PACKET_VERSION, &version)
    }

    /// `PACKET_RX_RING` (rx = true) or `PACKET_TX_RING` with a `tpacket_req` (TPACKET_V2:
    /// fixed-size frames, no retire timer; `retire_blk_tov_ms` is ignored).
    pub fn set_ring_v2(&self, rx: bool, req: &RingRequest) -> io::Result<()> {
        let req2 = libc::tpacket_req {
            tp_block_size: req.block_size,
            tp_block_nr: req.block_nr,
            tp_frame_size: req.frame_size,
            tp_frame_nr: req.frame_nr,
        };
        let name = if rx {
            libc::PACKET_RX_RING
        } else {
            libc::PACKET_TX_RING
        };
        self.setsockopt(libc::SOL_PACKET, name, &req2)
    }

    /// `PACKET_IGNORE_OUTGOING`: do not see frames transmitted on the interface (Linux ≥ 4.20).
    pub fn set_ignore_outgoing(&self) -> io::Result<()> {
        self.setsockopt(
            libc::SOL_PACKET,
            libc::PACKET_IGNORE_OUTGOING,
            &1 as &libc::c_int,
        )
    }

    /// `PACKET_VNET_HDR`: every frame of both rings is preceded by a 10-byte `virtio_net_hdr`
    /// (GSO and partial-checksum metadata). Must be set before the rings.
    pub fn set_vnet_hdr(&self) -> io::Result<()> {
        self.setsockopt(libc::SOL_PACKET, libc::PACKET_VNET_HDR, &1 as &libc::c_int)
    }

    /// `PACKET_QDISC_BYPASS`: transmit straight to the driver, skipping the qdisc layer.
    pub fn set_qdisc_bypass(&self) -> io::Result<()> {
        self.setsockopt(
            libc::SOL_PACKET,
            libc::PACKET_QDISC_BYPASS,
            &1 as &libc::c_int,
        )
    }

    /// `PACKET_RX_RING` (rx = true) or `PACKET_TX_RING` with a `tpacket_req3`.
    pub fn set_ring(&self, rx: bool, req: &RingRequest) -> io::Result<()> {
        let req3 = libc::tpacket_req3 {
            tp_block_size: req.block_size,
            tp_block_nr: req.block_nr,
            tp_frame_size: req.frame_size,
            tp_frame_nr: req.frame_nr,
            tp_retire_blk_tov: req.retire_blk_tov_ms,
            tp_sizeof_priv: 0,
            tp_feature_req_word: 0,
        };
        let name = if rx {
            libc::PACKET_RX_RING
        } else {
            libc::PACKET_TX_RING
        };
        self.setsockopt(libc::SOL_PACKET, name, &req3)
    }

    /// `PACKET_ADD_MEMBERSHIP` with `PACKET_MR_PROMISC` on `ifindex`.
    pub fn set_promiscuous(&self, ifindex: u32) -> io::Result<()> {
        let mreq = libc::packet_mreq {
            mr_ifindex: ifindex as libc::c_int,
            mr_type: libc::PACKET_MR_PROMISC as libc::c_ushort,
            mr_alen: 0,
            mr_address: [0; 8],
        };
        self.setsockopt(libc::SOL_PACKET, libc::PACKET_ADD_MEMBERSHIP, &mreq)
    }

    /// Binds to `ifindex`, receiving every protocol (`ETH_P_ALL`).
    pub fn bind(&self, ifindex: u32) -> io::Result<()> {
        // SAFETY: `sockaddr_ll` is plain old data; all-zero is a valid value.
        let mut addr: libc::sockaddr_ll = unsafe { mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = eth_p_all_be();
        addr.sll_ifindex = ifindex as libc::c_int;
        // SAFETY: `addr` is a valid `sockaddr_ll` and the length passed is its size.
        let rc = unsafe {
            libc::bind(
                self.raw(),
                (&addr as *const libc::sockaddr_ll).cast(),
                mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    /// `PACKET_STATISTICS` (TPACKET_V3 layout; a TPACKET_V2 socket fills only the first two
    /// fields, `tpacket_stats`). The kernel resets its counters on each read.
    pub fn statistics(&self) -> io::Result<PacketStats> {
        let mut st = libc::tpacket_stats_v3 {
            tp_packets: 0,
            tp_drops: 0,
            tp_freeze_q_cnt: 0,
        };
        let mut len = mem::size_of::<libc::tpacket_stats_v3>() as libc::socklen_t;
        // SAFETY: `st` is a valid, exclusively borrowed buffer of `len` bytes and `len` is a
        // valid in/out length.
        let rc = unsafe {
            libc::getsockopt(
                self.raw(),
                libc::SOL_PACKET,
                libc::PACKET_STATISTICS,
                (&mut st as *mut libc::tpacket_stats_v3).cast(),
                &mut len,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(PacketStats {
            packets: st.tp_packets,
            drops: st.tp_drops,
            // Short on a socket not in TPACKET_V3 mode: the field stays 0.
            freeze_q_cnt: st.tp_freeze_q_cnt,
        })
    }

    /// The TX-ring "kick": `send(fd, NULL, 0, MSG_DONTWAIT)` makes the kernel transmit every
    /// frame marked `TP_STATUS_SEND_REQUEST`. Returns `Ok(false)` when the kernel could not
    /// take everything right now (EAGAIN/ENOBUFS): the frames stay queued for the next kick.
    pub fn kick(&self) -> io::Result<bool> {
        // SAFETY: a zero-length send with a null buffer is the documented TX-ring kick; the
        // kernel reads no user buffer.
        let rc = unsafe { libc::send(self.raw(), std::ptr::null(), 0, libc::MSG_DONTWAIT) };
        if rc >= 0 {
            return Ok(true);
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EAGAIN) | Some(libc::ENOBUFS) | Some(libc::EINTR) => Ok(false),
            _ => Err(err),
        }
    }
}

/// Waits up to `timeout` for `events` (e.g. `libc::POLLIN`) on `fd`. Returns whether one of
/// them (or an error condition) is signalled; EINTR counts as "not yet".
pub(crate) fn poll_fd(fd: RawFd, events: libc::c_short, timeout: Duration) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
    // Round a sub-millisecond, non-zero timeout up so that it actually waits.
    let ms = if ms == 0 && !timeout.is_zero() { 1 } else { ms };
    // SAFETY: `pfd` is a valid, exclusively borrowed array of one pollfd.
    let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
    if rc < 0 {
        let err = io::Error::last_os_error();
        return if err.kind() == io::ErrorKind::Interrupted {
            Ok(false)
        } else {
            Err(err)
        };
    }
    Ok(rc > 0 && pfd.revents != 0)
}

/// The fields of a `tpacket_req3` (or, for TPACKET_V2, `tpacket_req`) the backends choose (the others are 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RingRequest {
    pub block_size: u32,
    pub block_nr: u32,
    pub frame_size: u32,
    pub frame_nr: u32,
    /// Must be 0 for a TX ring.
    pub retire_blk_tov_ms: u32,
}
