//! Mapping the stack's error enums onto [`std::io::Error`] kinds (errno analogues).
//!
//! | stack error | `io::ErrorKind` | errno |
//! |---|---|---|
//! | `WouldBlock` | `WouldBlock` | `EAGAIN`/`EWOULDBLOCK` |
//! | `ConnectionRefused` | `ConnectionRefused` | `ECONNREFUSED` |
//! | `ConnectionReset` | `ConnectionReset` | `ECONNRESET` |
//! | `TimedOut` | `TimedOut` | `ETIMEDOUT` |
//! | `BrokenPipe` | `BrokenPipe` | `EPIPE` |
//! | `NotConnected` | `NotConnected` | `ENOTCONN` |
//! | `AddrInUse` | `AddrInUse` | `EADDRINUSE` |
//! | `NoPorts` | `AddrNotAvailable` | `EADDRNOTAVAIL` |
//! | `InvalidHandle` | `InvalidInput` | `EBADF` |
//! | `InvalidState` | `InvalidInput` | `EINVAL` |

use std::io;

use ringstack_stack::{TcpError, UdpError};

pub(crate) fn tcp(e: TcpError) -> io::Error {
    use io::ErrorKind as K;
    let kind = match e {
        TcpError::WouldBlock => K::WouldBlock,
        TcpError::InvalidHandle | TcpError::InvalidState => K::InvalidInput,
        TcpError::AddrInUse => K::AddrInUse,
        TcpError::NotConnected => K::NotConnected,
        TcpError::ConnectionRefused => K::ConnectionRefused,
        TcpError::ConnectionReset => K::ConnectionReset,
        TcpError::TimedOut => K::TimedOut,
        TcpError::BrokenPipe => K::BrokenPipe,
        TcpError::NoPorts => K::AddrNotAvailable,
    };
    io::Error::new(kind, e)
}

pub(crate) fn udp(e: UdpError) -> io::Error {
    use io::ErrorKind as K;
    let kind = match e {
        UdpError::WouldBlock => K::WouldBlock,
        UdpError::InvalidHandle | UdpError::TooLarge => K::InvalidInput,
        UdpError::AddrInUse => K::AddrInUse,
        UdpError::NotConnected => K::NotConnected,
        UdpError::ConnectionRefused => K::ConnectionRefused,
        UdpError::NoPorts => K::AddrNotAvailable,
        _ => K::Other,
    };
    io::Error::new(kind, e)
}

/// `EBADF`: the descriptor is not open (or is not of the right kind).
pub(crate) fn bad_fd(fd: crate::Fd) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("bad descriptor {fd}: not open in this Net, or not a socket of the right kind"),
    )
}

/// What a blocking call returns when the simulated network is idle for good: nothing can ever
/// make it complete, so instead of hanging forever the call fails.
pub(crate) fn idle_forever() -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        "the simulated network is idle (no timer, no frame in flight) and nothing can make this \
         call complete: it would block forever",
    )
}

pub(crate) fn nic(e: ringstack_nic::NicError) -> io::Error {
    io::Error::other(e)
}
