//! Read-only file mappings, for `send_file` (the notes' mmap+write / sendfile zero-copy path).

use std::fs::File;
use std::io;

use memmap2::{Mmap, MmapOptions};

/// Maps `len` bytes of `file` from `offset`, read-only, advised for sequential reading.
///
/// The caller must not let the file be truncated while the mapping is used: accesses beyond the
/// new end would fault (SIGBUS) — the precondition of every mmap-based sendfile.
pub fn map_file_readonly(file: &File, offset: u64, len: usize) -> io::Result<Mmap> {
    // SAFETY: a read-only private mapping; memmap2 cannot prove that no other process modifies
    // or truncates the file, which is the documented precondition above. We never write
    // through it.
    let map = unsafe { MmapOptions::new().offset(offset).len(len).map(file)? };
    let _ = map.advise(memmap2::Advice::Sequential);
    Ok(map)
}
