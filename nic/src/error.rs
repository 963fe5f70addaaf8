//! Errors at the edge of the NIC API.

use std::io;

/// What went wrong moving frames. Messages say what to do about it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NicError {
    /// The operating system refused an operation on the device or a capture file. The backends
    /// put what to do in the message (missing capability, no such interface...).
    #[error(transparent)]
    Io(#[from] io::Error),
    /// The peer end of an in-memory link is gone.
    #[error("the other end of the link was dropped: keep both ends alive while frames flow")]
    Closed,
    /// A frame to transmit is longer than the device's maximum frame.
    #[error(
        "frame of {len} bytes exceeds the device's maximum frame of {max} bytes: \
         segment below the MTU (max frame = MTU + 14) or raise the MTU"
    )]
    TooLarge {
        /// Length of the refused frame.
        len: usize,
        /// The device's maximum frame length ([`crate::NicInfo::max_frame`]).
        max: usize,
    },
}
