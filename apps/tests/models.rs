//! Each `serve --model` passes the same echo, discard and HTTP tests, on the in-memory link and
//! without privileges: the services run through the library entry point
//! [`ringstack::models::run`] on one end of a [`Net::memory_pair_with_clock`], a client `Net`
//! on the other end talks to them with blocking sockets. (The lab tests in `lab_interop.rs` run
//! the same models against curl, nc, wrk and ab.)
//!
//! One test body, [`echo_discard_and_http`], runs against every model; the connection limit
//! and the idle timeout have a body each too. Nothing asserts on timing: waits have generous
//! limits and only fail when something never happens.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use ringstack::models::{self, App, Hooks, Model, Options, Services};
use ringstack_nic::LinkConfig;
use ringstack_sockets::{Driver, Net, SystemClock, TcpStream, UdpSocket};
use ringstack_stack::Config;

const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const SERVER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
/// Every blocking call of the client gives up after this (a hang fails instead of stalling).
const PATIENCE: Duration = Duration::from_secs(30);

/// A model serving on one end of an in-memory link; stopped and joined when dropped.
struct Served {
    client: Net,
    app: Arc<App>,
    stop: Arc<AtomicBool>,
    server: Option<JoinHandle<anyhow::Result<()>>>,
    _driver: Driver,
}

impl Served {
    fn start(model: Model, opts: Options) -> Served {
        let (client, server) = Net::memory_pair_with_clock(
            Config::new([0; 6], CLIENT, 24),
            Config::new([0; 6], SERVER, 24),
            LinkConfig::default(),
            SystemClock::new(),
        );
        // Two application threads share the group (the client here, the server's): one driver
        // thread drives both machines.
        let driver = client.spawn_driver().expect("driver");
        let app = App::new(opts).expect("app");
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = mpsc::channel();
        let handle = std::thread::spawn({
            let (app, stop) = (Arc::clone(&app), Arc::clone(&stop));
            move || {
                models::run(
                    model,
                    &server,
                    &app,
                    Hooks {
                        stop: &stop,
                        ready: Box::new(move || ready_tx.send(()).unwrap()),
                        tick: Box::new(|_| {}),
                    },
                )
            }
        });
        ready_rx
            .recv_timeout(PATIENCE)
            .unwrap_or_else(|_| panic!("{} never became ready", model.name()));
        Served {
            client,
            app,
            stop,
            server: Some(handle),
            _driver: driver,
        }
    }

    fn connect(&self, port: u16) -> TcpStream {
        let s = TcpStream::connect_timeout(&self.client, SocketAddrV4::new(SERVER, port), PATIENCE)
            .expect("connect");
        s.set_read_timeout(Some(PATIENCE)).unwrap();
        s.set_write_timeout(Some(PATIENCE)).unwrap();
        s
    }

    /// Waits until `cond` holds, panicking with `what` after [`PATIENCE`].
    fn wait_for(&self, what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + PATIENCE;
        while !cond() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.server.take() {
            let r = h.join();
            if !std::thread::panicking() {
                r.expect("server thread panicked").expect("server failed");
            }
        }
    }
}

fn random(len: usize, seed: u64) -> Vec<u8> {
    let mut v = vec![0u8; len];
    ChaCha8Rng::seed_from_u64(seed).fill_bytes(&mut v);
    v
}

fn site(tag: &str) -> (PathBuf, Vec<u8>) {
    let dir = std::env::temp_dir().join(format!("ringstack-models-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let data = random(300_000, 42);
    std::fs::write(dir.join("big.bin"), &data).unwrap();
    std::fs::write(dir.join("index.html"), "<h1>hello</h1>\n").unwrap();
    (dir, data)
}

/// One HTTP response: status, head (lower-cased header names), body.
struct Response {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// Reads one response (the body by its Content-Length; none for HEAD/304).
fn read_response(s: &mut TcpStream, head_only: bool) -> Response {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = s.read(&mut byte).expect("reading the response head");
        assert_eq!(n, 1, "connection closed inside a response head: {head:?}");
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).expect("ASCII head");
    let status: u16 = head[9..12].parse().expect("status");
    let mut r = Response {
        status,
        head,
        body: Vec::new(),
    };
    let len: usize = match r.header("content-length") {
        Some(l) if !head_only && status != 304 => l.parse().unwrap(),
        _ => 0,
    };
    r.body = vec![0; len];
    s.read_exact(&mut r.body).expect("reading the body");
    r
}

fn get(s: &mut TcpStream, path: &str, extra: &str) -> Response {
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n{extra}\r\n").unwrap();
    read_response(s, false)
}

/// Splits a `multipart/byteranges` body into its parts: (Content-Range, bytes).
fn multipart(r: &Response) -> Vec<(String, Vec<u8>)> {
    let ctype = r.header("content-type").expect("content-type");
    let boundary = ctype
        .strip_prefix("multipart/byteranges; boundary=")
        .unwrap_or_else(|| panic!("not multipart: {ctype}"));
    let delim = format!("\r\n--{boundary}");
    let body = &r.body;
    let find = |from: usize, pat: &[u8]| {
        body[from..]
            .windows(pat.len())
            .position(|w| w == pat)
            .map(|i| i + from)
    };
    let mut parts = Vec::new();
    let mut at = find(0, delim.as_bytes()).expect("first boundary");
    assert_eq!(at, 0, "the body starts with the first boundary");
    loop {
        at += delim.len();
        if body[at..].starts_with(b"--\r\n") {
            assert_eq!(at + 4, body.len(), "nothing after the closing boundary");
            return parts;
        }
        let head_end = find(at, b"\r\n\r\n").expect("part head");
        let head = String::from_utf8_lossy(&body[at..head_end]).into_owned();
        let range = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Range: "))
            .expect("part Content-Range")
            .to_string();
        let (a, b) = range
            .strip_prefix("bytes ")
            .and_then(|r| r.split('/').next())
            .and_then(|r| r.split_once('-'))
            .expect("range");
        let (a, b): (usize, usize) = (a.parse().unwrap(), b.parse().unwrap());
        let data_at = head_end + 4;
        let data = body[data_at..data_at + (b - a + 1)].to_vec();
        at = data_at + data.len();
        assert!(
            body[at..].starts_with(delim.as_bytes()),
            "boundary after part"
        );
        parts.push((range, data));
    }
}

fn opts(root: &Path) -> Options {
    Options {
        services: Services::ALL,
        http_root: Some(root.to_path_buf()),
        ..Options::default()
    }
}

/// The same echo, discard and HTTP checks, for any model.
fn echo_discard_and_http(model: Model, workers: usize) {
    let tag = format!("{}{workers}", model.name());
    let (root, data) = site(&tag);
    let served = Served::start(
        model,
        Options {
            workers,
            ..opts(&root)
        },
    );

    // TCP echo: 200 kB out and back on two connections at once, each written by one thread
    // and read by another (`&TcpStream` is `Read + Write`).
    let payload = random(200_000, 7);
    let streams: Vec<TcpStream> = (0..2).map(|_| served.connect(7)).collect();
    std::thread::scope(|scope| {
        for s in &streams {
            let p = &payload;
            scope.spawn(move || {
                let mut w = s;
                w.write_all(p).unwrap();
                s.shutdown(std::net::Shutdown::Write).unwrap();
            });
        }
        for s in &streams {
            let mut r = s;
            let mut back = Vec::new();
            r.read_to_end(&mut back).expect("echo read");
            assert!(
                back == payload,
                "{tag}: echo returned {} bytes, not the same",
                back.len()
            );
        }
    });
    drop(streams);

    // UDP echo.
    let udp = UdpSocket::bind(&served.client, SocketAddrV4::new(CLIENT, 4007)).unwrap();
    udp.set_read_timeout(Some(PATIENCE)).unwrap();
    udp.send_to(b"ping over udp", SocketAddrV4::new(SERVER, 7))
        .unwrap();
    let mut buf = [0u8; 64];
    let (n, from) = udp.recv_from(&mut buf).expect("udp echo");
    assert_eq!(&buf[..n], b"ping over udp");
    assert_eq!(from, SocketAddrV4::new(SERVER, 7));

    // Discard: everything arrives, nothing comes back.
    let junk = random(100_000, 9);
    let mut s = served.connect(9);
    s.write_all(&junk).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut nothing = Vec::new();
    s.read_to_end(&mut nothing).unwrap();
    assert!(nothing.is_empty());
    served.wait_for("discard to count the bytes", || {
        served.app.discard.bytes_in.load(Ordering::Relaxed) == junk.len() as u64
    });

    // HTTP on one keep-alive connection.
    let mut s = served.connect(80);
    let r = get(&mut s, "/big.bin", "");
    assert_eq!(r.status, 200, "{tag}: {}", r.head);
    assert!(r.body == data, "{tag}: GET body differs");
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));
    let r = get(&mut s, "/", "");
    assert_eq!(
        (r.status, r.body.as_slice()),
        (200, &b"<h1>hello</h1>\n"[..])
    );
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    let r = get(&mut s, "/big.bin", "Range: bytes=1000-1999\r\n");
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-range"), Some("bytes 1000-1999/300000"));
    assert!(r.body == data[1000..2000]);
    // Several ranges: multipart/byteranges, overlapping ones coalesced, in ascending order.
    let r = get(
        &mut s,
        "/big.bin",
        "Range: bytes=299990-,0-9,20-29,25-39\r\n",
    );
    assert_eq!(r.status, 206, "{}", r.head);
    let parts = multipart(&r);
    let ranges: Vec<&str> = parts.iter().map(|(r, _)| r.as_str()).collect();
    assert_eq!(
        ranges,
        [
            "bytes 0-9/300000",
            "bytes 20-39/300000",
            "bytes 299990-299999/300000"
        ]
    );
    assert_eq!(parts[0].1, data[0..10]);
    assert_eq!(parts[1].1, data[20..40]);
    assert_eq!(parts[2].1, data[299_990..]);
    let r = get(&mut s, "/big.bin", "Range: bytes=300000-\r\n");
    assert_eq!(r.status, 416);
    assert_eq!(r.header("content-range"), Some("bytes */300000"));
    let r = get(
        &mut s,
        "/big.bin",
        "If-Modified-Since: Fri, 01 Jan 2100 00:00:00 GMT\r\n",
    );
    assert_eq!(r.status, 304);
    let r = get(&mut s, "/missing", "");
    assert_eq!(r.status, 404);
    let r = get(&mut s, "/../etc/passwd", "");
    assert_eq!(r.status, 400);
    write!(s, "HEAD /big.bin HTTP/1.1\r\n\r\n").unwrap();
    let r = read_response(&mut s, true);
    assert_eq!(
        (r.status, r.header("content-length")),
        (200, Some("300000"))
    );
    // Pipelined: three requests in one write, answered in order; the last closes.
    write!(
        s,
        "GET /index.html HTTP/1.1\r\n\r\nGET /big.bin HTTP/1.1\r\nRange: bytes=-5\r\n\r\n\
         GET /index.html HTTP/1.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    assert_eq!(read_response(&mut s, false).status, 200);
    let r = read_response(&mut s, false);
    assert_eq!((r.status, r.body.as_slice()), (206, &data[299_995..]));
    let r = read_response(&mut s, false);
    assert_eq!(r.header("connection"), Some("close"));
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).expect("server closes");
    assert!(rest.is_empty());

    let responses = served.app.http.as_ref().unwrap().counters.snapshot();
    assert_eq!(responses[2], 8, "{tag}: 2xx responses {responses:?}");
    assert_eq!(responses[3], 1);
    assert_eq!(responses[4], 3);
    served.wait_for("connections to be closed", || {
        served.app.http_stats.active.load(Ordering::SeqCst) == 0
            && served.app.echo.active.load(Ordering::SeqCst) == 0
    });
    assert_eq!(served.app.echo.accepted.load(Ordering::Relaxed), 2);
    drop(served);
    let _ = std::fs::remove_dir_all(root);
}

/// `--max-clients 1`: a second connection waits in the accept queue until the first ends,
/// then is served, and is counted as queued.
fn limit_queues(model: Model) {
    let (root, _) = site(&format!("limit-{}", model.name()));
    let served = Served::start(
        model,
        Options {
            max_clients: Some(1),
            ..opts(&root)
        },
    );
    let mut first = served.connect(80);
    assert_eq!(get(&mut first, "/index.html", "").status, 200);
    // The handshake completes (the stack queues it), but nobody serves it yet.
    let mut second = served.connect(80);
    write!(second, "GET /index.html HTTP/1.1\r\n\r\n").unwrap();
    second
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut byte = [0u8; 1];
    let early = second.read(&mut byte);
    assert!(
        matches!(&early, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "{}: a connection beyond --max-clients was served at once: {early:?} (accepted {}, active {})",
        model.name(),
        served.app.http_stats.accepted.load(Ordering::Relaxed),
        served.app.http_stats.active.load(Ordering::Relaxed),
    );
    assert_eq!(served.app.http_stats.active.load(Ordering::SeqCst), 1);
    served.wait_for("the server to see the connection waiting", || {
        served.app.http_stats.waiting.load(Ordering::Relaxed)
    });
    drop(first);
    second.set_read_timeout(Some(PATIENCE)).unwrap();
    let r = read_response(&mut second, false);
    assert_eq!(r.status, 200);
    assert_eq!(served.app.http_stats.queued.load(Ordering::Relaxed), 1);
    assert_eq!(served.app.http_stats.accepted.load(Ordering::Relaxed), 2);
    served.wait_for("the queue to be empty", || {
        !served.app.http_stats.waiting.load(Ordering::Relaxed)
    });
    drop(second);
    drop(served);
    let _ = std::fs::remove_dir_all(root);
}

/// `--idle-timeout`: a connection that sends nothing is closed, and counted.
fn idle_connections_are_closed(model: Model) {
    let (root, _) = site(&format!("idle-{}", model.name()));
    let served = Served::start(
        model,
        Options {
            idle_timeout: Duration::from_millis(500),
            ..opts(&root)
        },
    );
    let mut s = served.connect(80);
    assert_eq!(get(&mut s, "/index.html", "").status, 200);
    let mut rest = Vec::new();
    s.read_to_end(&mut rest)
        .expect("the server closes an idle connection");
    assert!(rest.is_empty());
    assert_eq!(served.app.http_stats.idle_closed.load(Ordering::Relaxed), 1);
    drop(served);
    let _ = std::fs::remove_dir_all(root);
}

macro_rules! every_model {
    ($($name:ident: $model:expr, $workers:expr;)*) => {
        mod echo_discard_http {
            use super::*;
            $(#[test] fn $name() { echo_discard_and_http($model, $workers); })*
        }
        mod max_clients_queue {
            use super::*;
            $(#[test] fn $name() { if $workers == 0 { limit_queues($model) } })*
        }
        mod idle_timeout {
            use super::*;
            $(#[test] fn $name() { if $workers == 0 { idle_connections_are_closed($model) } })*
        }
    };
}

every_model! {
    direct: Model::Direct, 0;
    reactor: Model::Reactor, 0;
    reactor_with_workers: Model::Reactor, 2;
    proactor: Model::Proactor, 0;
    threads: Model::Threads, 0;
}
