//! Zero-copy and copy accounting, counted (the notes' "零拷贝" section): a 10 MB file sent
//! with `read`+`write` (3 CPU copies per byte), `send_file` (1: mapping → frame) and
//! `send_with`, received with `read` and `recv_with`, over a clean in-memory link on virtual
//! time; every transfer SHA-256-checked and its copies per byte asserted exactly from the
//! stack's counters. `send_file` is also run over a lossy link: retransmissions re-read the
//! mapping.
//!
//! What each counter measures (bytes of TCP payload, per machine; see
//! `ringstack_sockets::zero_copy`):
//! - `CopyFrameToRcvBuf`: copied by the stack from a received frame into the receive buffer;
//! - `CopyRcvBufToApp`: copied by `read` from the receive buffer into the application's buffer;
//! - `CopyRcvBufToAppInPlace`: consumed by `recv_with` where they lie (no copy);
//! - `CopyAppToSndBuf`: copied by `write` from the application's buffer into the send buffer;
//! - `CopyAppToSndBufInPlace`: written into lent send-buffer space by `send_with` (not a stack
//!   copy; when the writer `memcpy`d each such byte from a buffer, it *is* one CPU copy);
//! - `CopyAppToSndBufByRef`: queued by reference by `send_file`/`send_shared` — the send buffer
//!   holds (mapping, range) descriptors, no byte is copied into it;
//! - `CopySndBufToFrame` / `…Retrans`: copied from the send buffer into an outgoing frame,
//!   first transmission / retransmission (zero on a clean link);
//! - the application's own `read(file)` into its buffer is not a stack counter: the test
//!   counts it from `read`'s return values (`Transfer::app_copied`).

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use ringstack_nic::{Impairment, LinkConfig};
use ringstack_sockets::scenarios::{self, RecvMethod, SendMethod, Transfer};
use ringstack_sockets::{Copies, Net, TcpStream};
use ringstack_stack::{Config, Counter, SharedBytes};
use ringstack_tests::io_models::{connected, nets};
use sha2::{Digest, Sha256};

const MB10: u64 = 10 * 1024 * 1024;

/// Byte `i` of the test content: a position-addressable pseudo-random function, so a misplaced
/// byte changes the hash, and a generator can produce any piece without copying it from anywhere.
fn byte_at(i: u64) -> u8 {
    let x = (i ^ 0x5DEE_CE66).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    ((x >> 32) ^ (x >> 56)) as u8
}

fn content(len: usize) -> Vec<u8> {
    (0..len as u64).map(byte_at).collect()
}

/// The 10 MB test file — a temporary file, created once, its name unlinked at once (the open
/// descriptor keeps it alive until the process exits) — its content, and the content's SHA-256.
fn file() -> &'static (File, Vec<u8>, [u8; 32]) {
    static FILE: OnceLock<(File, Vec<u8>, [u8; 32])> = OnceLock::new();
    FILE.get_or_init(|| {
        let data = content(MB10 as usize);
        let path =
            std::env::temp_dir().join(format!("ringstack-zero-copy-{}.bin", std::process::id()));
        let mut f = File::options()
            .create_new(true)
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        std::fs::remove_file(&path).unwrap();
        f.write_all(&data).unwrap();
        f.sync_all().unwrap();
        assert_eq!(f.metadata().unwrap().len(), MB10);
        let sum = Sha256::digest(&data).into();
        (f, data, sum)
    })
}

/// Runs one transfer from `b` to `a` and checks that what the peer received hashes (SHA-256)
/// to the file's content.
fn run_between(a: &Net, b: &Net, send: SendMethod<'_>, recv: RecvMethod) -> Transfer {
    let mut h = Sha256::new();
    let t = scenarios::transfer_between(a, b, send, recv, |b| h.update(b)).unwrap();
    let sum: [u8; 32] = h.finalize().into();
    assert_eq!(
        sum,
        file().2,
        "{} → {}: content differs",
        send.name(),
        recv.name()
    );
    assert_eq!(t.bytes, MB10);
    t
}

/// Runs one transfer over a clean link, checks its SHA-256 and the sanity invariants of a
/// clean link.
fn run(send: SendMethod<'_>, recv: RecvMethod) -> Transfer {
    let (a, b) = scenarios::pair();
    let t = run_between(&a, &b, send, recv);
    // Clean link: every byte framed exactly once, nothing retransmitted, and the receiver
    // copied each byte into its receive buffer exactly once.
    assert_eq!(t.sender.sndbuf_to_frame, MB10, "first transmissions");
    assert_eq!(t.sender.sndbuf_to_frame_retrans, 0, "retransmissions");
    assert_eq!(t.receiver.frame_to_rcvbuf, MB10);
    // Nothing else moved: no UDP/ICMP, and each side only did its own direction.
    assert_eq!(t.sender.app_to_frame + t.receiver.app_to_frame, 0);
    assert_eq!(t.sender.frame_to_rcvbuf, 0);
    assert_eq!(t.receiver.send_copied(), 0);
    t
}

fn open() -> &'static File {
    &file().0
}

#[test]
fn read_write_makes_three_copies_per_byte_and_read_two() {
    let f = open();
    let t = run(SendMethod::ReadWrite(f), RecvMethod::Read);
    // Send side: file → app buffer (the application's read), app buffer → send buffer
    // (write), send buffer → frame.
    assert_eq!(
        t.app_copied, MB10,
        "file → app buffer, counted from read()'s returns"
    );
    assert_eq!(t.sender.app_to_sndbuf, MB10);
    assert_eq!(t.sender.app_to_sndbuf_in_place, 0);
    assert_eq!(t.sender.app_to_sndbuf_by_ref, 0);
    assert_eq!(t.send_copies_per_byte(), 3.0);
    // Receive side: frame → receive buffer, receive buffer → app buffer.
    assert_eq!(t.receiver.rcvbuf_to_app, MB10);
    assert_eq!(t.receiver.rcvbuf_to_app_in_place, 0);
    assert_eq!(t.recv_copies_per_byte(), 2.0);
}

#[test]
fn send_file_makes_one_copy_per_byte_and_recv_with_one() {
    let f = open();
    let t = run(SendMethod::SendFile(f), RecvMethod::RecvWith);
    // Send side: no application copy, nothing copied into the send buffer (it references the
    // mapping); the one CPU copy is mapping → frame.
    assert_eq!(t.app_copied, 0);
    assert_eq!(
        t.sender.app_to_sndbuf, 0,
        "never copied into the send buffer"
    );
    assert_eq!(t.sender.app_to_sndbuf_in_place, 0);
    assert_eq!(
        t.sender.app_to_sndbuf_by_ref, MB10,
        "every byte queued by reference"
    );
    assert_eq!(
        t.sender.sndbuf_to_frame, MB10,
        "the one copy: mapping → frame"
    );
    assert_eq!(t.sender.send_copied(), MB10);
    assert_eq!(t.send_copies_per_byte(), 1.0);
    // Receive side: only frame → receive buffer; the hash ran on the bytes in place.
    assert_eq!(t.receiver.rcvbuf_to_app, 0);
    assert_eq!(t.receiver.rcvbuf_to_app_in_place, MB10);
    assert_eq!(t.recv_copies_per_byte(), 1.0);
}

#[test]
fn send_with_from_memory_makes_two_copies_and_generating_in_place_one() {
    let data = &file().1;
    let t = run(SendMethod::SendWith(data), RecvMethod::Read);
    assert_eq!(t.app_copied, 0);
    assert_eq!(t.sender.app_to_sndbuf, 0);
    assert_eq!(t.sender.app_to_sndbuf_in_place, MB10);
    assert_eq!(t.sender.app_to_sndbuf_by_ref, 0);
    assert_eq!(
        t.send_copies_per_byte(),
        2.0,
        "buffer → send buffer, send buffer → frame"
    );
    assert_eq!(t.recv_copies_per_byte(), 2.0);

    // Producing the bytes right in the send buffer (computed, not copied from anywhere)
    // leaves one copy: send buffer → frame.
    fn gen(offset: u64, out: &mut [u8]) {
        for (i, b) in out.iter_mut().enumerate() {
            *b = byte_at(offset + i as u64);
        }
    }
    let t = run(
        SendMethod::SendWithGenerate(MB10, gen),
        RecvMethod::RecvWith,
    );
    assert_eq!(t.sender.app_to_sndbuf_in_place, MB10);
    assert_eq!(t.sender.sndbuf_to_frame, MB10);
    assert_eq!(t.send_copies_per_byte(), 1.0);
    assert_eq!(t.recv_copies_per_byte(), 1.0);
}

#[test]
fn send_file_retransmissions_reread_the_mapping() {
    // 2% loss and 2% reordering each way (seeded): segments from the mapping are lost and
    // sent again from the same mapping; the content still arrives intact and the send buffer
    // never copies a byte.
    let lossy = Impairment {
        loss: 0.02,
        reorder: 0.02,
        ..Impairment::none()
    };
    let link = LinkConfig {
        a_to_b: lossy.clone(),
        b_to_a: lossy,
        seed: 7,
        ..LinkConfig::default()
    };
    let cfg = |ip, seed| {
        let mut c = Config::new([0; 6], ip, 24);
        c.seed = seed;
        c
    };
    let (a, b) = Net::memory_pair(cfg(scenarios::A, 1), cfg(scenarios::B, 2), link);
    let t = run_between(&a, &b, SendMethod::SendFile(open()), RecvMethod::Read);
    assert!(
        t.sender.sndbuf_to_frame_retrans > 0,
        "the link lost segments: {t:?}"
    );
    assert_eq!(
        t.sender.sndbuf_to_frame, MB10,
        "first transmissions: each byte once"
    );
    assert_eq!(t.sender.app_to_sndbuf_by_ref, MB10);
    assert_eq!(t.sender.app_to_sndbuf + t.sender.app_to_sndbuf_in_place, 0);
}

// ----- the socket-level semantics of the zero-copy calls -----

#[test]
fn send_shared_queues_by_reference_and_releases_on_ack() {
    let (a, b) = nets();
    let (_l, mut conns) = connected(&a, &b, 7, 1).unwrap();
    let (server, client) = conns.pop().unwrap();
    let mem: SharedBytes = Arc::new(b"0123456789abcdef".to_vec());
    let b0 = b.copies();
    // Pieces of one memory, out of order with a copied write in between.
    assert_eq!(client.send_shared(&mem, 10..16).unwrap(), 6);
    (&client).write_all(b"--").unwrap();
    assert_eq!(client.send_shared(&mem, 0..4).unwrap(), 4);
    assert_eq!(client.send_shared(&mem, 4..4).unwrap(), 0, "empty range");
    let e = client.send_shared(&mem, 4..17).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    let mut got = [0u8; 12];
    (&server).read_exact(&mut got).unwrap();
    assert_eq!(&got, b"abcdef--0123");
    // Acknowledged: the stack let go of the memory.
    b.run_for(Duration::from_millis(500)).unwrap();
    assert_eq!(Arc::strong_count(&mem), 1, "released once acknowledged");
    let d = b.copies().since(&b0);
    assert_eq!(
        (d.app_to_sndbuf_by_ref, d.app_to_sndbuf, d.sndbuf_to_frame),
        (10, 2, 12)
    );
    assert_eq!(b.counters().get(Counter::CopyAppToSndBufByRef), 10);
    // After shutdown(Write): EPIPE, and nothing referenced.
    client.shutdown(Shutdown::Write).unwrap();
    assert_eq!(
        client.send_shared(&mem, 0..1).unwrap_err().kind(),
        io::ErrorKind::BrokenPipe
    );
    assert_eq!(Arc::strong_count(&mem), 1);
}

#[test]
fn send_shared_holds_the_memory_until_acknowledged() {
    // The peer reads nothing and its window fills: the tail stays queued, referenced.
    let (a, b) = nets();
    let (_l, mut conns) = connected(&a, &b, 7, 1).unwrap();
    let (server, client) = conns.pop().unwrap();
    client.set_nonblocking(true).unwrap();
    let mem: SharedBytes = Arc::new(vec![9u8; 8 << 20]);
    let mut queued = 0;
    loop {
        match client.send_shared(&mem, queued..8 << 20) {
            Ok(n) => queued += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(queued > 0 && queued < 8 << 20, "{queued}");
    b.run_for(Duration::from_millis(200)).unwrap();
    assert!(
        Arc::strong_count(&mem) > 1,
        "unacknowledged bytes keep it alive"
    );
    // Closing the connection (abortively: unread data) releases it.
    drop(server);
    b.run_for(Duration::from_secs(1)).unwrap();
    drop(client);
    b.run_for(Duration::from_secs(1)).unwrap();
    assert_eq!(Arc::strong_count(&mem), 1, "released with the connection");
}

#[test]
fn recv_with_blocks_like_read_and_reports_eof_without_calling_the_closure() {
    let (a, b) = nets();
    let (_l, mut conns) = connected(&a, &b, 7, 1).unwrap();
    let (server, client) = conns.pop().unwrap();
    (&client).write_all(b"hello world").unwrap();
    // Blocking: drives until data is there, lends it in place, consumes what the closure says.
    let mut seen = Vec::new();
    let n = server
        .recv_with(|d| {
            seen.extend_from_slice(d);
            5
        })
        .unwrap();
    assert_eq!((n, seen.as_slice()), (5, &b"hello world"[..]));
    // The rest is still there.
    let mut rest = [0u8; 16];
    assert_eq!((&server).read(&mut rest).unwrap(), 6);
    assert_eq!(&rest[..6], b" world");
    // Non-blocking with nothing buffered: WouldBlock, closure not called.
    server.set_nonblocking(true).unwrap();
    let e = server.recv_with(|_| panic!("not readable")).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
    // End of stream: Ok(0) without calling the closure.
    client.shutdown(Shutdown::Write).unwrap();
    a.run_for(std::time::Duration::from_millis(10)).unwrap();
    assert_eq!(server.recv_with(|_| panic!("eof")).unwrap(), 0);
    // The counters: 11 bytes framed into A's receive buffer, 5 consumed in place, 6 copied.
    let c = a.copies();
    assert_eq!(c.frame_to_rcvbuf, 11);
    assert_eq!(c.rcvbuf_to_app_in_place, 5);
    assert_eq!(c.rcvbuf_to_app, 6);
    assert_eq!(a.work().in_place_bytes, 5);
    assert_eq!(
        a.counters().get(ringstack_stack::Counter::CopyRcvBufToApp),
        6
    );
}

#[test]
fn send_with_lends_free_space_once_and_fails_when_full_or_shut() {
    let (a, b) = nets();
    let (_l, mut conns) = connected(&a, &b, 7, 1).unwrap();
    let (server, client) = conns.pop().unwrap();
    let n = client
        .send_with(|room| {
            assert!(room.len() >= 5);
            room[..5].copy_from_slice(b"abcde");
            5
        })
        .unwrap();
    assert_eq!(n, 5);
    let mut buf = [0u8; 8];
    assert_eq!((&server).read(&mut buf).unwrap(), 5);
    assert_eq!(&buf[..5], b"abcde");
    // Non-blocking: fill the send buffer (the peer does not read) until WouldBlock; the
    // closure is not called then.
    client.set_nonblocking(true).unwrap();
    let mut queued = 0;
    loop {
        match client.send_with(|room| room.len()) {
            Ok(n) => queued += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(queued > 0);
    let e = client.send_with(|_| panic!("full")).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
    // After shutdown(Write): EPIPE.
    let (_l2, mut conns) = connected(&a, &b, 8, 1).unwrap();
    let (_s, c) = conns.pop().unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    assert_eq!(
        c.send_with(|_| 0).unwrap_err().kind(),
        io::ErrorKind::BrokenPipe
    );
    assert_eq!(b.copies().app_to_sndbuf, 0, "nothing went through write()");
}

#[test]
fn send_file_honours_offset_length_end_of_file_and_nonblocking() {
    let (a, b) = nets();
    let (_l, mut conns) = connected(&a, &b, 7, 1).unwrap();
    let (server, client) = conns.pop().unwrap();
    let f = open();
    let (_, data, _) = file();
    // A range from an unaligned offset (blocking: all of it is queued).
    assert_eq!(client.send_file(f, 4097, 10_000).unwrap(), 10_000);
    let mut got = vec![0u8; 10_000];
    (&server).read_exact(&mut got).unwrap();
    assert_eq!(got, &data[4097..14_097]);
    // Past the end: clamped, then nothing.
    assert_eq!(client.send_file(f, MB10 - 3, 100).unwrap(), 3);
    let mut tail = [0u8; 3];
    (&server).read_exact(&mut tail).unwrap();
    assert_eq!(tail, data[data.len() - 3..]);
    assert_eq!(client.send_file(f, MB10, 100).unwrap(), 0);
    assert_eq!(client.send_file(f, 0, 0).unwrap(), 0);
    // Non-blocking with a peer that does not read: what fits, then WouldBlock.
    client.set_nonblocking(true).unwrap();
    let first = client.send_file(f, 0, MB10).unwrap();
    assert!(first > 0 && first < MB10, "{first}");
    let e = loop {
        match client.send_file(f, first, MB10 - first) {
            Ok(n) => assert!(n > 0),
            Err(e) => break e,
        }
    };
    assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
    assert_eq!(b.copies().app_to_sndbuf, 0, "the application never copied");
    assert_eq!(b.copies().app_to_sndbuf_in_place, 0, "nor send_file");
}

#[test]
fn copies_are_per_machine_and_since_subtracts() {
    let (a, b) = nets();
    let (_l, mut conns) = connected(&a, &b, 7, 1).unwrap();
    let (server, client): (TcpStream, TcpStream) = conns.pop().unwrap();
    let (a0, b0) = (a.copies(), b.copies());
    (&client).write_all(&[7u8; 1000]).unwrap();
    let mut buf = [0u8; 1000];
    (&server).read_exact(&mut buf).unwrap();
    let (da, db) = (a.copies().since(&a0), b.copies().since(&b0));
    assert_eq!(
        db,
        Copies {
            app_to_sndbuf: 1000,
            sndbuf_to_frame: 1000,
            ..Copies::default()
        }
    );
    assert_eq!(
        da,
        Copies {
            frame_to_rcvbuf: 1000,
            rcvbuf_to_app: 1000,
            ..Copies::default()
        }
    );
    assert_eq!((db.send_copied(), da.recv_copied()), (2000, 2000));
}
