//! TEMPORARY STUB — replaced by the real reassembler.
#![allow(missing_docs, dead_code, unused)]
use crate::config::ReassemblyConfig;
use crate::counters::DropReason;
use crate::time::Instant;
use core::net::Ipv4Addr;

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct FragmentKey {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub protocol: u8,
    pub ident: u16,
}
pub enum ReassemblyOutcome<'a> {
    Complete(&'a [u8]),
    Pending,
    Dropped(DropReason),
}
#[derive(Debug)]
pub struct Reassembler {
    config: ReassemblyConfig,
}
impl Reassembler {
    pub fn new(config: ReassemblyConfig) -> Self {
        Reassembler { config }
    }
    pub fn insert(
        &mut self,
        now: Instant,
        key: FragmentKey,
        offset: usize,
        more: bool,
        data: &[u8],
    ) -> ReassemblyOutcome<'_> {
        ReassemblyOutcome::Dropped(DropReason::Ipv4FragMemoryFull)
    }
    pub fn expire(
        &mut self,
        now: Instant,
        on_expired: impl FnMut(FragmentKey, Option<&[u8]>),
    ) -> usize {
        0
    }
    pub fn poll_at(&self) -> Option<Instant> {
        None
    }
    pub fn memory_used(&self) -> usize {
        0
    }
    pub fn len(&self) -> usize {
        0
    }
    pub fn is_empty(&self) -> bool {
        true
    }
}
pub fn fragments(
    payload_len: usize,
    header_len: usize,
    mtu: usize,
) -> impl Iterator<Item = (usize, usize, bool)> {
    let step = (mtu - header_len) / 8 * 8;
    let n = payload_len.div_ceil(step).max(1);
    (0..n).map(move |i| {
        let off = i * step;
        let len = step.min(payload_len - off);
        (off, len, off + len < payload_len)
    })
}
