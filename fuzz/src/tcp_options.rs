//! Target `tcp_options`: the TCP options parser.
//!
//! Any bytes as an options area: parsing never panics; whatever parses, emits (into a buffer of
//! exactly [`TcpOptions::len`] bytes, which must be what `emit` writes) and parses again to the
//! same value. Options areas of more than 40 bytes are tried too (the parser must not care).

use ringstack_stack::tcp::options::TcpOptions;

/// The harness.
pub fn run(data: &[u8]) {
    let Ok(o) = TcpOptions::parse(data) else {
        return;
    };
    assert!(o.sack_count as usize <= o.sack_blocks.len());
    let len = o.len();
    assert_eq!(len % 4, 0, "emitted options are 32-bit aligned");
    let mut buf = vec![0u8; len];
    let n = o.emit(&mut buf);
    assert_eq!(n, len, "emit wrote {n} bytes, len() said {len}: {o:?}");
    assert_eq!(o.is_empty(), len == 0);
    let again = TcpOptions::parse(&buf).expect("emitted options parse");
    assert_eq!(
        again, o,
        "options changed in an emit/parse round trip: {buf:02x?}"
    );
    // Emitting the re-parsed value gives the same bytes.
    let mut buf2 = vec![0u8; again.len()];
    again.emit(&mut buf2);
    assert_eq!(buf, buf2);
}
