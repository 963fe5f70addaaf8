//! A TAP device opened through `/dev/net/tun` (`TUNSETIFF`), with the flags the `tap` backend
//! needs: no packet-information header, optionally `IFF_VNET_HDR` and `TUNSETOFFLOAD`.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::socket::IfReq;

/// An open TAP device (the descriptor; the device goes away with it unless persistent).
#[derive(Debug)]
pub(crate) struct TapFd {
    fd: OwnedFd,
    name: String,
}

impl TapFd {
    /// Creates (or attaches to the existing) TAP device `name` in the calling thread's network
    /// namespace: `IFF_TAP | IFF_NO_PI`, plus `IFF_VNET_HDR` with a 10-byte header if
    /// `vnet_hdr`. The descriptor is non-blocking and close-on-exec.
    pub fn open(name: &str, vnet_hdr: bool) -> io::Result<TapFd> {
        let mut req = IfReq::new(name)?;
        let mut flags = libc::IFF_TAP | libc::IFF_NO_PI;
        if vnet_hdr {
            flags |= libc::IFF_VNET_HDR;
        }
        req.data[..2].copy_from_slice(&(flags as libc::c_short).to_ne_bytes());
        // SAFETY: a constant NUL-terminated path; the result is checked.
        let fd = unsafe {
            libc::open(
                c"/dev/net/tun".as_ptr(),
                libc::O_RDWR | libc::O_CLOEXEC | libc::O_NONBLOCK,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by open(2) and is owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: TUNSETIFF reads a `struct ifreq` (name + `ifr_flags`) and writes the chosen
        // name back into it; `req` is a valid, exclusively borrowed `struct ifreq`.
        let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETIFF, &mut req) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        if vnet_hdr {
            let size: libc::c_int = crate::vnet::VNET_HDR_LEN as libc::c_int;
            // SAFETY: TUNSETVNETHDRSZ reads one C int through the pointer.
            let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETVNETHDRSZ, &size) };
            if rc < 0 {
                return Err(io::Error::last_os_error());
            }
        }
        // SAFETY: the kernel wrote a NUL-terminated name of at most IFNAMSIZ - 1 bytes.
        let name = unsafe { CStr::from_ptr(req.name.as_ptr()) }
            .to_string_lossy()
            .into_owned();
        Ok(TapFd { fd, name })
    }

    /// `TUNSETOFFLOAD`: what the kernel may hand this device (`TUN_F_CSUM`: partial checksums;
    /// `TUN_F_TSO4`: TCP/IPv4 super-frames...; 0: nothing, complete MTU-sized frames). Anything
    /// but 0 needs `IFF_VNET_HDR`.
    pub fn set_offload(&self, flags: libc::c_uint) -> io::Result<()> {
        // SAFETY: TUNSETOFFLOAD takes the flags as the (integer) argument itself.
        let rc = unsafe {
            libc::ioctl(
                self.fd.as_raw_fd(),
                libc::TUNSETOFFLOAD,
                flags as libc::c_ulong,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// The interface name the kernel gave the device.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The descriptor (for `poll`).
    pub fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Reads one frame (with its virtio header, if any) into `buf`.
    pub fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        // SAFETY: `buf` is a valid, exclusively borrowed buffer of `buf.len()` bytes.
        let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }

    /// Writes one frame (with its virtio header, if any).
    pub fn write(&self, buf: &[u8]) -> io::Result<usize> {
        // SAFETY: `buf` is a valid buffer of `buf.len()` bytes.
        let n = unsafe { libc::write(self.fd.as_raw_fd(), buf.as_ptr().cast(), buf.len()) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }
}
