//! Target `reassembly`: arbitrary fragment sequences into the IPv4 [`Reassembler`].
//!
//! Input: a header `[max_memory: u16 (× 16 bytes)][max_datagrams: u8 % 10][timeout: u8 s]`,
//! then operations of 7 bytes `[op][key][offset: u16][len: u16][dt: u8]`. `op` bit 0..1: 0–2
//! insert, 3 expire; bit 2: MF; bit 3: offset taken raw (else × 8, always aligned); bit 4: the
//! data is a variant of the key's stream (conflicting with earlier fragments); bit 5: len raw
//! (else rounded to a multiple of 8). Four keys (`key & 3`).
//!
//! Checked after every operation: `memory_used() <= max_memory`, `len() <= max_datagrams`;
//! on `Complete`, the payload is exactly the fragments' bytes (each byte the key's stream byte,
//! or its variant, at that offset); after `expire` at a time past every deadline nothing is
//! held.

use core::net::Ipv4Addr;

use ringstack_stack::config::ReassemblyConfig;
use ringstack_stack::ipv4::fragment::{FragmentKey, Reassembler, ReassemblyOutcome, MAX_PAYLOAD};
use ringstack_stack::time::Duration;
use ringstack_stack::Instant;

use crate::input::Input;
use crate::wire::stream_byte;

fn key(k: u8) -> FragmentKey {
    FragmentKey {
        src: Ipv4Addr::new(198, 18, 0, 1 + (k & 1)),
        dst: Ipv4Addr::new(198, 18, 0, 2),
        protocol: 17,
        ident: u16::from(k >> 1),
    }
}

/// The harness.
pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let config = ReassemblyConfig {
        max_memory: usize::from(input.u16()) * 16,
        max_datagrams: usize::from(input.u8() % 10),
        timeout: Duration::from_secs(u64::from(input.u8() % 64)),
    };
    let max_memory = config.max_memory;
    let max_datagrams = config.max_datagrams;
    let timeout = config.timeout;
    let mut r = Reassembler::new(config);
    let mut now = Instant::from_millis(0);
    let mut data = Vec::new();
    while input.len() >= 7 {
        let op = input.u8();
        let k = input.u8() & 3;
        let raw_offset = usize::from(input.u16());
        let raw_len = usize::from(input.u16());
        now += Duration::from_millis(u64::from(input.u8()) * 100);
        if op & 3 == 3 {
            r.expire(now, |_, first| {
                if let Some(first) = first {
                    assert!(first.len() <= MAX_PAYLOAD);
                }
            });
        } else {
            let more = op & 4 != 0;
            let offset = if op & 8 != 0 {
                raw_offset
            } else {
                raw_offset * 8
            };
            let len = if op & 32 != 0 { raw_len } else { raw_len & !7 };
            let salt = k | ((op & 16) << 2);
            data.clear();
            data.extend((0..len).map(|i| stream_byte(salt, (offset + i) as u64)));
            let outcome = r.insert(now, key(k), offset, more, &data);
            if let ReassemblyOutcome::Complete(payload) = outcome {
                assert!(payload.len() <= MAX_PAYLOAD);
                assert!(
                    payload.len() >= offset + len,
                    "completed before this fragment's end"
                );
                for (i, &b) in payload.iter().enumerate() {
                    let a = stream_byte(k, i as u64);
                    let v = stream_byte(k | 64, i as u64);
                    assert!(
                        b == a || b == v,
                        "byte {i} of a reassembled datagram is not one sent"
                    );
                }
            }
            let _ = r.take_evicted();
        }
        assert!(
            r.memory_used() <= max_memory,
            "reassembly memory {} above {max_memory}",
            r.memory_used()
        );
        assert!(
            r.len() <= max_datagrams.max(1),
            "{} datagrams held",
            r.len()
        );
    }
    now += timeout;
    r.expire(now, |_, _| {});
    assert!(r.is_empty());
    assert_eq!(
        r.memory_used(),
        0,
        "memory held after every datagram expired"
    );
}
