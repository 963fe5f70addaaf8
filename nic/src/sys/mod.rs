//! The only place of this crate where `unsafe` code will be allowed (with
//! `#![allow(unsafe_code)]` on this module): the AF_PACKET ring mmap, TAP ioctls and
//! setsockopt calls of the `ring`, `tap` and `pnet` backends to come.
//!
//! Empty for now: the in-memory link and the pcap tap need no unsafe code.
