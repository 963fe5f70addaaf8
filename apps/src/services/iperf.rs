//! An iperf3-compatible server on TCP port 5201, speaking iperf3's own control protocol so that
//! the unmodified `iperf3 -c` works against ringstack (and the pieces `ringstack iperf`, the
//! client, shares).
//!
//! ## The protocol (iperf3 3.x, `iperf_api.c`, `iperf_server_api.c`, `iperf_client_api.c`)
//!
//! Everything goes to one port. The client opens the *control* connection and sends a 37-byte
//! cookie (36 characters and a NUL) that names the test. The server then drives the test by
//! writing single signed bytes, the states of [`msg`]:
//!
//! ```text
//!  client                                   server
//!  cookie ───────────────────────────────►
//!         ◄─────────────────────────────── PARAM_EXCHANGE (9)
//!  [len:u32 BE][JSON params] ────────────►
//!         ◄─────────────────────────────── CREATE_STREAMS (10)   (or SERVER_ERROR -2, i_errno, errno)
//!  N data connections, each sends cookie ►
//!         ◄─────────────────────────────── TEST_START (1), TEST_RUNNING (2)
//!  data on the streams (client→server, or server→client with -R)
//!  TEST_END (4) ─────────────────────────►
//!         ◄─────────────────────────────── EXCHANGE_RESULTS (13)
//!  [len][JSON client results] ───────────►
//!         ◄─────────────────────────────── [len][JSON server results], DISPLAY_RESULTS (14)
//!  IPERF_DONE (16) ──────────────────────►
//! ```
//!
//! A connection that arrives while a test is running (and not in the stream-creation phase)
//! gets `ACCESS_DENIED` (-1) and is closed, as does a stream whose cookie does not match.
//! Streams are numbered 1, 3, 4, 5… in the order they arrive (iperf3 skips 2; both sides do, so
//! the ids in the results match).
//!
//! The protocol pieces ([`Inbox`], [`frame_json`], [`Params`], [`Results`], [`Session`]) are
//! sans-IO and unit-tested below; [`Iperf`] is the [`Service`] that binds them to the stack.

use std::net::SocketAddrV4;

use anyhow::Result;
use ringstack_stack::{Duration, Instant, Stack, TcpError, TcpHandle};
use serde_json::{json, Map, Value};

use super::{accept_all, flush, Service};

/// The iperf3 port.
pub const PORT: u16 = 5201;
/// Cookie length on the wire: 36 characters and a NUL (`COOKIE_SIZE`).
pub const COOKIE_SIZE: usize = 37;
/// iperf3's default TCP block size (`DEFAULT_TCP_BLKSIZE`, 128 KiB).
pub const DEFAULT_BLKSIZE: usize = 128 * 1024;
/// Most parallel streams iperf3 accepts (`MAX_STREAMS`).
pub const MAX_STREAMS: u32 = 128;
/// Largest block size iperf3 accepts (`MAX_BLOCKSIZE`, 1 MiB).
pub const MAX_BLOCKSIZE: usize = 1024 * 1024;
/// Largest JSON message we accept (params and results are a few hundred bytes).
pub const MAX_JSON: usize = 1 << 20;

/// The control-channel state bytes (`iperf.h`).
pub mod msg {
    /// The streams are created; timers start.
    pub const TEST_START: i8 = 1;
    /// Data flows.
    pub const TEST_RUNNING: i8 = 2;
    /// Client → server: the test is over.
    pub const TEST_END: i8 = 4;
    /// Server → client: send your parameters.
    pub const PARAM_EXCHANGE: i8 = 9;
    /// Server → client: open the data connections.
    pub const CREATE_STREAMS: i8 = 10;
    /// The server is going away.
    pub const SERVER_TERMINATE: i8 = 11;
    /// The client is going away.
    pub const CLIENT_TERMINATE: i8 = 12;
    /// Server → client: results JSON are swapped (client first).
    pub const EXCHANGE_RESULTS: i8 = 13;
    /// Server → client: print them.
    pub const DISPLAY_RESULTS: i8 = 14;
    /// Client → server: finished.
    pub const IPERF_DONE: i8 = 16;
    /// Server → client: busy with another test (or wrong cookie).
    pub const ACCESS_DENIED: i8 = -1;
    /// Server → client: followed by two big-endian `i32`: iperf3's `i_errno` and `errno`.
    pub const SERVER_ERROR: i8 = -2;

    /// The name iperf3's sources use for a state byte.
    pub fn name(m: i8) -> &'static str {
        match m {
            TEST_START => "TEST_START",
            TEST_RUNNING => "TEST_RUNNING",
            TEST_END => "TEST_END",
            PARAM_EXCHANGE => "PARAM_EXCHANGE",
            CREATE_STREAMS => "CREATE_STREAMS",
            SERVER_TERMINATE => "SERVER_TERMINATE",
            CLIENT_TERMINATE => "CLIENT_TERMINATE",
            EXCHANGE_RESULTS => "EXCHANGE_RESULTS",
            DISPLAY_RESULTS => "DISPLAY_RESULTS",
            IPERF_DONE => "IPERF_DONE",
            ACCESS_DENIED => "ACCESS_DENIED",
            SERVER_ERROR => "SERVER_ERROR",
            _ => "unknown state",
        }
    }
}

/// The iperf3 error numbers (`i_errno`, `iperf_api.h`) we send or explain.
pub mod ierr {
    /// Number of parallel streams too large.
    pub const IENUMSTREAMS: i32 = 6;
    /// Block size too large.
    pub const IEBLOCKSIZE: i32 = 7;
    /// Not implemented yet.
    pub const IEUNIMP: i32 = 13;

    /// iperf3's text for the errors a server sends at parameter exchange.
    pub fn describe(i_errno: i32) -> String {
        match i_errno {
            IENUMSTREAMS => format!(
                "number of parallel streams too large (maximum = {})",
                super::MAX_STREAMS
            ),
            IEBLOCKSIZE => format!(
                "block size too large (maximum = {} bytes)",
                super::MAX_BLOCKSIZE
            ),
            IEUNIMP => "not implemented yet (by this server)".to_string(),
            n => format!("iperf3 error number {n}"),
        }
    }
}

/// Bytes received on a control connection, taken apart as state bytes, 32-bit integers and
/// length-prefixed JSON as they complete.
#[derive(Debug, Default)]
pub struct Inbox {
    buf: Vec<u8>,
}

/// A malformed control message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// The length prefix announces more than [`MAX_JSON`] bytes.
    TooLong(u32),
    /// The body is not JSON (or not an object).
    BadJson(String),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::TooLong(n) => write!(f, "JSON message of {n} bytes is too long"),
            FrameError::BadJson(e) => write!(f, "bad JSON message: {e}"),
        }
    }
}

impl Inbox {
    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes not yet taken.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether nothing is buffered.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// One state byte, if there is one.
    pub fn take_state(&mut self) -> Option<i8> {
        if self.buf.is_empty() {
            return None;
        }
        Some(self.buf.remove(0) as i8)
    }

    /// A big-endian 32-bit integer, if four bytes are there.
    pub fn take_i32(&mut self) -> Option<i32> {
        let b: [u8; 4] = self.buf.get(..4)?.try_into().ok()?;
        self.buf.drain(..4);
        Some(i32::from_be_bytes(b))
    }

    /// A length-prefixed JSON object (`JSON_read`), once all of it has arrived.
    pub fn take_json(&mut self) -> Option<Result<Value, FrameError>> {
        let len = u32::from_be_bytes(self.buf.get(..4)?.try_into().ok()?);
        if len as usize > MAX_JSON {
            return Some(Err(FrameError::TooLong(len)));
        }
        let end = 4 + len as usize;
        if self.buf.len() < end {
            return None;
        }
        let parsed = serde_json::from_slice::<Value>(&self.buf[4..end]);
        self.buf.drain(..end);
        Some(match parsed {
            Ok(v) if v.is_object() => Ok(v),
            Ok(_) => Err(FrameError::BadJson("not an object".into())),
            Err(e) => Err(FrameError::BadJson(e.to_string())),
        })
    }
}

/// A JSON value as iperf3 sends it (`JSON_write`): a 32-bit big-endian length, then the
/// unformatted text (no NUL).
pub fn frame_json(v: &Value) -> Vec<u8> {
    let text = v.to_string();
    let mut out = Vec::with_capacity(4 + text.len());
    out.extend_from_slice(&(text.len() as u32).to_be_bytes());
    out.extend_from_slice(text.as_bytes());
    out
}

/// A `SERVER_ERROR` message: the state byte, `i_errno` and `errno` (big-endian).
pub fn server_error(i_errno: i32, errno: i32) -> Vec<u8> {
    let mut out = vec![msg::SERVER_ERROR as u8];
    out.extend_from_slice(&i_errno.to_be_bytes());
    out.extend_from_slice(&errno.to_be_bytes());
    out
}

/// The id of the `index`-th stream (0-based): 1, 3, 4, 5… (`iperf_add_stream` skips 2).
pub fn stream_id(index: usize) -> u32 {
    if index == 0 {
        1
    } else {
        index as u32 + 2
    }
}

/// A test cookie (`make_cookie`): 36 characters from iperf3's alphabet and a NUL, from `seed`.
pub fn make_cookie(mut seed: u64) -> [u8; COOKIE_SIZE] {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut c = [0u8; COOKIE_SIZE];
    for b in c.iter_mut().take(COOKIE_SIZE - 1) {
        // splitmix64
        seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = seed;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        *b = ALPHABET[(z % 32) as usize];
    }
    c
}

/// The printable part of a cookie (without the NUL).
pub fn cookie_str(c: &[u8]) -> String {
    String::from_utf8_lossy(c.split(|&b| b == 0).next().unwrap_or(&[])).into_owned()
}

fn get_u64(j: &Value, key: &str) -> Option<u64> {
    let v = j.get(key)?;
    v.as_u64()
        .or_else(|| v.as_i64().map(|i| i.max(0) as u64))
        .or_else(|| v.as_f64().map(|f| f.max(0.0) as u64))
}

fn get_i64(j: &Value, key: &str) -> Option<i64> {
    let v = j.get(key)?;
    v.as_i64().or_else(|| v.as_f64().map(|f| f as i64))
}

fn get_f64(j: &Value, key: &str) -> Option<f64> {
    j.get(key)?.as_f64()
}

/// The test parameters the client sends at `PARAM_EXCHANGE` (`send_parameters`). Keys that
/// iperf3 only sends when set (`reverse`, `nodelay`, `udp`…) are present-means-true.
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    /// TCP test (`"tcp": true`).
    pub tcp: bool,
    /// The protocol named when it is not TCP (`udp`, `sctp`).
    pub other_protocol: Option<String>,
    /// Seconds to omit at the start (`-O`).
    pub omit: u64,
    /// Test length in seconds (`-t`; 0 with `-n`/`-k`).
    pub time: u64,
    /// Bytes to transfer (`-n`), 0 = by time.
    pub num: u64,
    /// Blocks to transfer (`-k`), 0 = by time.
    pub blockcount: u64,
    /// Parallel streams (`-P`).
    pub parallel: u32,
    /// The server sends (`-R`).
    pub reverse: bool,
    /// Both directions (`--bidir`).
    pub bidirectional: bool,
    /// Block size (`-l`).
    pub len: usize,
    /// Socket buffer (`-w`), 0 = default.
    pub window: u64,
    /// `TCP_NODELAY` (`-N`).
    pub nodelay: bool,
    /// Target bitrate (`-b`), 0 = unlimited.
    pub bandwidth: u64,
    /// The client's version string.
    pub client_version: Option<String>,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            tcp: true,
            other_protocol: None,
            omit: 0,
            time: 10,
            num: 0,
            blockcount: 0,
            parallel: 1,
            reverse: false,
            bidirectional: false,
            len: DEFAULT_BLKSIZE,
            window: 0,
            nodelay: false,
            bandwidth: 0,
            client_version: None,
        }
    }
}

impl Params {
    /// Reads the parameters as `get_parameters` does.
    pub fn from_json(j: &Value) -> Params {
        let other_protocol = ["udp", "sctp"]
            .into_iter()
            .find(|k| j.get(k).is_some())
            .map(String::from);
        Params {
            tcp: j.get("tcp").is_some() || other_protocol.is_none(),
            other_protocol,
            omit: get_u64(j, "omit").unwrap_or(0),
            time: get_u64(j, "time").unwrap_or(0),
            num: get_u64(j, "num").unwrap_or(0),
            blockcount: get_u64(j, "blockcount").unwrap_or(0),
            parallel: get_u64(j, "parallel").unwrap_or(1).min(u32::MAX as u64) as u32,
            reverse: j.get("reverse").is_some(),
            bidirectional: j.get("bidirectional").is_some(),
            len: get_u64(j, "len")
                .map(|l| l as usize)
                .filter(|&l| l > 0)
                .unwrap_or(DEFAULT_BLKSIZE),
            window: get_u64(j, "window").unwrap_or(0),
            nodelay: j.get("nodelay").is_some(),
            bandwidth: get_u64(j, "bandwidth").unwrap_or(0),
            client_version: j
                .get("client_version")
                .and_then(Value::as_str)
                .map(String::from),
        }
    }

    /// The JSON a client sends (`send_parameters`).
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("tcp".into(), json!(true));
        m.insert("omit".into(), json!(self.omit));
        m.insert("time".into(), json!(self.time));
        if self.num > 0 {
            m.insert("num".into(), json!(self.num));
        }
        if self.blockcount > 0 {
            m.insert("blockcount".into(), json!(self.blockcount));
        }
        if self.nodelay {
            m.insert("nodelay".into(), json!(true));
        }
        m.insert("parallel".into(), json!(self.parallel));
        if self.reverse {
            m.insert("reverse".into(), json!(true));
        }
        if self.window > 0 {
            m.insert("window".into(), json!(self.window));
        }
        m.insert("len".into(), json!(self.len));
        if self.bandwidth > 0 {
            m.insert("bandwidth".into(), json!(self.bandwidth));
        }
        m.insert(
            "client_version".into(),
            json!(self
                .client_version
                .clone()
                .unwrap_or_else(|| "3.12".to_string())),
        );
        Value::Object(m)
    }

    /// What this server cannot do, as iperf3's `i_errno`.
    pub fn check(&self) -> Result<(), i32> {
        if !self.tcp || self.bidirectional || self.bandwidth > 0 {
            return Err(ierr::IEUNIMP);
        }
        if self.parallel == 0 || self.parallel > MAX_STREAMS {
            return Err(ierr::IENUMSTREAMS);
        }
        if self.len > MAX_BLOCKSIZE {
            return Err(ierr::IEBLOCKSIZE);
        }
        Ok(())
    }

    /// Bytes the sender stops at (`-n`, or `-k` blocks), `None` for a timed test.
    pub fn byte_limit(&self) -> Option<u64> {
        if self.num > 0 {
            Some(self.num)
        } else if self.blockcount > 0 {
            Some(self.blockcount.saturating_mul(self.len as u64))
        } else {
            None
        }
    }
}

/// One stream's line in the results (`send_results`).
#[derive(Debug, Clone, PartialEq)]
pub struct StreamResult {
    /// Stream id (1, 3, 4…).
    pub id: u32,
    /// Bytes sent (by a sender) or received (by a receiver).
    pub bytes: u64,
    /// Retransmitted segments (sender with `sender_has_retransmits`), else -1.
    pub retransmits: i64,
    /// UDP only.
    pub jitter: f64,
    /// UDP only.
    pub errors: i64,
    /// UDP only.
    pub packets: i64,
    /// Seconds from the test start (0).
    pub start_time: f64,
    /// Seconds from the test start to this stream's end.
    pub end_time: f64,
}

/// The results one side sends at `EXCHANGE_RESULTS`.
#[derive(Debug, Clone, PartialEq)]
pub struct Results {
    /// CPU use of the process over the test, percent of one CPU's wall time.
    pub cpu_util_total: f64,
    /// User part.
    pub cpu_util_user: f64,
    /// System part.
    pub cpu_util_system: f64,
    /// 1 if this side sent and reports retransmits, 0 if it sent without, -1 if it received.
    pub sender_has_retransmits: i64,
    /// Congestion control in use.
    pub congestion_used: Option<String>,
    /// Per stream.
    pub streams: Vec<StreamResult>,
}

impl Results {
    /// The JSON `send_results` writes.
    pub fn to_json(&self) -> Value {
        let streams: Vec<Value> = self
            .streams
            .iter()
            .map(|s| {
                json!({
                    "id": s.id,
                    "bytes": s.bytes,
                    "retransmits": s.retransmits,
                    "jitter": s.jitter,
                    "errors": s.errors,
                    "packets": s.packets,
                    "start_time": s.start_time,
                    "end_time": s.end_time,
                })
            })
            .collect();
        let mut j = json!({
            "cpu_util_total": self.cpu_util_total,
            "cpu_util_user": self.cpu_util_user,
            "cpu_util_system": self.cpu_util_system,
            "sender_has_retransmits": self.sender_has_retransmits,
            "streams": streams,
        });
        if let Some(c) = &self.congestion_used {
            j["congestion_used"] = json!(c);
        }
        j
    }

    /// Reads results as `get_results` does: the CPU figures, `sender_has_retransmits` and
    /// per stream `id`, `bytes`, `retransmits`, `jitter`, `errors`, `packets` are required.
    pub fn from_json(j: &Value) -> Result<Results, String> {
        let need = |k: &str| get_f64(j, k).ok_or_else(|| format!("results lack {k:?}"));
        let streams = j
            .get("streams")
            .and_then(Value::as_array)
            .ok_or("results lack \"streams\"")?;
        let mut out = Vec::with_capacity(streams.len());
        for s in streams {
            let id = get_u64(s, "id").ok_or("stream result lacks \"id\"")?;
            let bytes = get_u64(s, "bytes").ok_or("stream result lacks \"bytes\"")?;
            for k in ["retransmits", "jitter", "errors", "packets"] {
                if s.get(k).is_none() {
                    return Err(format!("stream result lacks {k:?}"));
                }
            }
            out.push(StreamResult {
                id: id as u32,
                bytes,
                retransmits: get_i64(s, "retransmits").unwrap_or(-1),
                jitter: get_f64(s, "jitter").unwrap_or(0.0),
                errors: get_i64(s, "errors").unwrap_or(0),
                packets: get_i64(s, "packets").unwrap_or(0),
                start_time: get_f64(s, "start_time").unwrap_or(0.0),
                end_time: get_f64(s, "end_time").unwrap_or(0.0),
            });
        }
        Ok(Results {
            cpu_util_total: need("cpu_util_total")?,
            cpu_util_user: need("cpu_util_user")?,
            cpu_util_system: need("cpu_util_system")?,
            sender_has_retransmits: get_i64(j, "sender_has_retransmits")
                .ok_or("results lack \"sender_has_retransmits\"")?,
            congestion_used: j
                .get("congestion_used")
                .and_then(Value::as_str)
                .map(String::from),
            streams: out,
        })
    }
}

/// This process's CPU use since it was created, as iperf3's `cpu_util` reports it.
#[derive(Debug, Clone, Copy)]
pub struct CpuMeter {
    wall: std::time::Instant,
    user: f64,
    system: f64,
}

/// User and system CPU seconds of this process (`/proc/self/stat`, in USER_HZ = 100 ticks).
fn cpu_seconds() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); utime is field 14, stime field 15.
    let tick = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0) / 100.0;
    (tick(11), tick(12))
}

impl CpuMeter {
    /// Starts measuring.
    pub fn start() -> CpuMeter {
        let (user, system) = cpu_seconds();
        CpuMeter {
            wall: std::time::Instant::now(),
            user,
            system,
        }
    }

    /// (total, user, system) percent since [`CpuMeter::start`].
    pub fn percent(&self) -> (f64, f64, f64) {
        let wall = self.wall.elapsed().as_secs_f64().max(1e-6);
        let (u, s) = cpu_seconds();
        let user = (u - self.user).max(0.0) / wall * 100.0;
        let system = (s - self.system).max(0.0) / wall * 100.0;
        (user + system, user, system)
    }
}

/// Where a server-side test is (the server's view of iperf3's `test->state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Cookie read, `PARAM_EXCHANGE` sent; waiting for the params JSON.
    AwaitParams,
    /// `CREATE_STREAMS` sent; waiting for the data connections.
    CreateStreams,
    /// `TEST_START`, `TEST_RUNNING` sent; data flows until the client's `TEST_END`.
    Running,
    /// `EXCHANGE_RESULTS` sent; waiting for the client's results, then sending ours.
    AwaitResults,
    /// `DISPLAY_RESULTS` sent; waiting for `IPERF_DONE`.
    AwaitDone,
    /// Finished normally.
    Done,
    /// Finished with an error (after the error message, if any, is flushed).
    Failed,
}

/// What a [`Session`] asks of its driver.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Parameters accepted; `CREATE_STREAMS` queued.
    Params(Params),
    /// The client ended the test: stop the data, note the end time.
    Ended,
    /// The client's results arrived: answer with [`Session::send_results`].
    ClientResults(Results),
    /// `IPERF_DONE`: close the control connection.
    Finished,
    /// The client gave up (`CLIENT_TERMINATE`).
    Terminated,
    /// A protocol error; the session is [`Phase::Failed`].
    Error(String),
}

/// What to do with a data connection whose cookie has arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamVerdict {
    /// Not ours or not now: send `ACCESS_DENIED` and close.
    Denied,
    /// Stream `id`; `last` means all streams are there and the test has started.
    Accepted {
        /// Its id.
        id: u32,
        /// Whether it completed the set (`TEST_START`, `TEST_RUNNING` queued).
        last: bool,
    },
}

/// The server side of one test's control connection, sans-IO: feed it the bytes received
/// ([`Session::receive`]), call [`Session::poll`] until `None`, and write [`Session::out`].
#[derive(Debug)]
pub struct Session {
    cookie: [u8; COOKIE_SIZE],
    phase: Phase,
    inbox: Inbox,
    /// Bytes to write to the control connection.
    pub out: Vec<u8>,
    params: Option<Params>,
    streams: u32,
    have_client_results: bool,
}

impl Session {
    /// A test whose control connection sent `cookie`; queues `PARAM_EXCHANGE`.
    pub fn new(cookie: [u8; COOKIE_SIZE]) -> Session {
        Session {
            cookie,
            phase: Phase::AwaitParams,
            inbox: Inbox::default(),
            out: vec![msg::PARAM_EXCHANGE as u8],
            params: None,
            streams: 0,
            have_client_results: false,
        }
    }

    /// The test's phase.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The parameters, once exchanged.
    pub fn params(&self) -> Option<&Params> {
        self.params.as_ref()
    }

    /// Bytes received on the control connection.
    pub fn receive(&mut self, bytes: &[u8]) {
        self.inbox.push(bytes);
    }

    fn fail(&mut self, why: String) -> Option<Event> {
        self.phase = Phase::Failed;
        Some(Event::Error(why))
    }

    /// Handles what has arrived; call until `None`.
    pub fn poll(&mut self) -> Option<Event> {
        match self.phase {
            Phase::AwaitParams => match self.inbox.take_json()? {
                Ok(j) => {
                    let p = Params::from_json(&j);
                    if let Err(e) = p.check() {
                        self.out.extend(server_error(e, 0));
                        return self.fail(format!("refused parameters: {}", ierr::describe(e)));
                    }
                    self.out.push(msg::CREATE_STREAMS as u8);
                    self.phase = Phase::CreateStreams;
                    self.params = Some(p.clone());
                    Some(Event::Params(p))
                }
                Err(e) => self.fail(format!("parameters: {e}")),
            },
            Phase::CreateStreams | Phase::Running => match self.inbox.take_state()? {
                msg::TEST_END => {
                    self.out.push(msg::EXCHANGE_RESULTS as u8);
                    self.phase = Phase::AwaitResults;
                    Some(Event::Ended)
                }
                msg::CLIENT_TERMINATE => {
                    self.phase = Phase::Failed;
                    Some(Event::Terminated)
                }
                m => self.fail(format!("unexpected {} ({m}) from the client", msg::name(m))),
            },
            Phase::AwaitResults if !self.have_client_results => match self.inbox.take_json()? {
                Ok(j) => match Results::from_json(&j) {
                    Ok(r) => {
                        self.have_client_results = true;
                        Some(Event::ClientResults(r))
                    }
                    Err(e) => self.fail(format!("client results: {e}")),
                },
                Err(e) => self.fail(format!("client results: {e}")),
            },
            Phase::AwaitResults => None,
            Phase::AwaitDone => match self.inbox.take_state()? {
                msg::IPERF_DONE => {
                    self.phase = Phase::Done;
                    Some(Event::Finished)
                }
                msg::CLIENT_TERMINATE => {
                    self.phase = Phase::Done;
                    Some(Event::Terminated)
                }
                m => self.fail(format!("unexpected {} ({m}) from the client", msg::name(m))),
            },
            Phase::Done | Phase::Failed => None,
        }
    }

    /// A data connection sent `cookie`.
    pub fn add_stream(&mut self, cookie: &[u8]) -> StreamVerdict {
        let wanted = self.params.as_ref().map_or(0, |p| p.parallel);
        if self.phase != Phase::CreateStreams || cookie != self.cookie || self.streams >= wanted {
            return StreamVerdict::Denied;
        }
        let id = stream_id(self.streams as usize);
        self.streams += 1;
        let last = self.streams == wanted;
        if last {
            self.out
                .extend([msg::TEST_START as u8, msg::TEST_RUNNING as u8]);
            self.phase = Phase::Running;
        }
        StreamVerdict::Accepted { id, last }
    }

    /// Our results, after [`Event::ClientResults`]: queues them and `DISPLAY_RESULTS`.
    pub fn send_results(&mut self, r: &Results) {
        if self.phase == Phase::AwaitResults && self.have_client_results {
            self.out.extend(frame_json(&r.to_json()));
            self.out.push(msg::DISPLAY_RESULTS as u8);
            self.phase = Phase::AwaitDone;
        }
    }
}

/// Seconds between two instants.
pub fn secs(from: Instant, to: Instant) -> f64 {
    if to <= from {
        0.0
    } else {
        (to - from).total_micros() as f64 / 1e6
    }
}

/// A data pattern for senders: pseudo-random bytes (so nothing compresses it).
pub fn data_block(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x1234_5678;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

// ----------------------------------------------------------------------------------------------
// The service
// ----------------------------------------------------------------------------------------------

/// How long an accepted connection may take to send its cookie.
const COOKIE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the control connection may stall outside the running phase.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(30);
/// Slack after the test's planned end (iperf3's server timer is duration + omit + 5 s).
const END_SLACK: Duration = Duration::from_secs(10);
/// An untimed (`-n`) test is abandoned after this long without data moving.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// A connection whose cookie is still arriving.
struct Pending {
    h: TcpHandle,
    cookie: Vec<u8>,
    since: Instant,
}

/// One data connection of the running test.
struct DataStream {
    h: TcpHandle,
    id: u32,
    bytes: u64,
    retransmits: i64,
    open: bool,
}

/// The test in progress.
struct Test {
    ctrl: TcpHandle,
    peer: Option<SocketAddrV4>,
    session: Session,
    streams: Vec<DataStream>,
    start: Option<Instant>,
    omit_until: Option<Instant>,
    end: Option<Instant>,
    deadline: Instant,
    cpu: CpuMeter,
    sent_total: u64,
    /// Close the control connection once `session.out` is flushed.
    closing: bool,
}

/// The iperf3-compatible server.
pub struct Iperf {
    listener: TcpHandle,
    pending: Vec<Pending>,
    denied: Vec<(TcpHandle, Instant)>,
    test: Option<Test>,
    buf: Vec<u8>,
    block: Vec<u8>,
    /// Tests completed.
    pub tests_done: u64,
}

impl Iperf {
    /// Listens on TCP `port` (5201 for iperf3).
    pub fn new(stack: &mut Stack, port: u16) -> Result<Iperf> {
        Ok(Iperf {
            listener: stack.tcp_listen(port, 128)?,
            pending: Vec::new(),
            denied: Vec::new(),
            test: None,
            buf: vec![0; 256 * 1024],
            block: data_block(MAX_BLOCKSIZE),
            tests_done: 0,
        })
    }
}

/// Sends `ACCESS_DENIED` and shuts our side down; the connection then lingers in
/// [`Iperf::denied`] until the client closes it. Closing at once would answer the client's
/// cookie (unread, or still arriving) with a RST, and a RST can make the client's `read` fail
/// with ECONNRESET before it sees the `ACCESS_DENIED` byte.
fn deny(now: Instant, stack: &mut Stack, denied: &mut Vec<(TcpHandle, Instant)>, h: TcpHandle) {
    let _ = stack.tcp_send(now, h, &[msg::ACCESS_DENIED as u8]);
    let _ = stack.tcp_shutdown(now, h);
    denied.push((h, now));
}

impl Test {
    fn params(&self) -> Params {
        self.session.params().cloned().unwrap_or_default()
    }

    /// Moves data on the streams while running. Returns whether anything moved.
    fn pump(&mut self, now: Instant, stack: &mut Stack, buf: &mut [u8], block: &[u8]) -> bool {
        let p = self.params();
        if let Some(t) = self.omit_until {
            if now >= t {
                for s in &mut self.streams {
                    s.bytes = 0;
                }
                self.sent_total = 0;
                self.start = Some(t);
                self.omit_until = None;
            }
        }
        let mut moved = false;
        let limit = p.byte_limit();
        let len = p.len.clamp(1, block.len());
        for s in self.streams.iter_mut().filter(|s| s.open) {
            if p.reverse {
                loop {
                    let mut want = len;
                    if let Some(l) = limit {
                        let left = l.saturating_sub(self.sent_total);
                        if left == 0 {
                            break;
                        }
                        want = want.min(left as usize);
                    }
                    match stack.tcp_send(now, s.h, &block[..want]) {
                        Ok(0) | Err(TcpError::WouldBlock) => break,
                        Ok(n) => {
                            s.bytes += n as u64;
                            self.sent_total += n as u64;
                            moved = true;
                        }
                        Err(_) => {
                            s.open = false;
                            break;
                        }
                    }
                }
            } else {
                loop {
                    match stack.tcp_recv(now, s.h, buf) {
                        Ok(0) => {
                            s.open = false;
                            break;
                        }
                        Ok(n) => {
                            s.bytes += n as u64;
                            moved = true;
                        }
                        Err(TcpError::WouldBlock) => break,
                        Err(_) => {
                            s.open = false;
                            break;
                        }
                    }
                }
            }
        }
        moved
    }

    /// The client said TEST_END: note the time and retransmits, close the streams.
    fn end_streams(&mut self, now: Instant, stack: &mut Stack) {
        self.end = Some(now);
        for s in &mut self.streams {
            if let Some(info) = stack.tcp().info(s.h) {
                s.retransmits = info.total_retrans as i64;
            }
            let _ = stack.tcp_close(now, s.h);
            s.open = false;
        }
    }

    fn results(&self, stack: &Stack) -> Results {
        let p = self.params();
        let (total, user, system) = self.cpu.percent();
        let start = self.start.unwrap_or(self.deadline);
        let end = self.end.unwrap_or(start);
        Results {
            cpu_util_total: total,
            cpu_util_user: user,
            cpu_util_system: system,
            sender_has_retransmits: if p.reverse { 1 } else { -1 },
            congestion_used: stack
                .tcp()
                .info(self.ctrl)
                .map(|i| i.congestion.to_string()),
            streams: self
                .streams
                .iter()
                .map(|s| StreamResult {
                    id: s.id,
                    bytes: s.bytes,
                    retransmits: if p.reverse { s.retransmits } else { -1 },
                    jitter: 0.0,
                    errors: 0,
                    packets: 0,
                    start_time: 0.0,
                    end_time: secs(start, end),
                })
                .collect(),
        }
    }

    /// Tears everything down at once (errors, timeouts, a vanished client).
    fn abort(&mut self, now: Instant, stack: &mut Stack) {
        for s in &self.streams {
            let _ = stack.tcp_abort(now, s.h);
        }
        let _ = stack.tcp_abort(now, self.ctrl);
    }
}

impl Service for Iperf {
    fn name(&self) -> &'static str {
        "iperf"
    }

    fn poll(&mut self, now: Instant, stack: &mut Stack) -> bool {
        let mut did = false;

        // New connections: a busy server denies them at once, as iperf3 does; otherwise their
        // cookie decides whether they are a control connection or a data stream.
        let mut accepted = Vec::new();
        did |= accept_all(stack, self.listener, |h| accepted.push(h));
        for h in accepted {
            let busy = self
                .test
                .as_ref()
                .is_some_and(|t| t.session.phase() != Phase::CreateStreams);
            if busy {
                deny(now, stack, &mut self.denied, h);
            } else {
                self.pending.push(Pending {
                    h,
                    cookie: Vec::with_capacity(COOKIE_SIZE),
                    since: now,
                });
            }
        }

        // Denied connections: discard what they send until they close.
        let buf = &mut self.buf;
        self.denied.retain(|&(h, since)| loop {
            match stack.tcp_recv(now, h, buf) {
                Ok(0) => {
                    let _ = stack.tcp_close(now, h);
                    return false;
                }
                Ok(_) => {}
                Err(TcpError::WouldBlock) if now - since <= COOKIE_TIMEOUT => return true,
                Err(_) => {
                    let _ = stack.tcp_abort(now, h);
                    return false;
                }
            }
        });

        // Cookies.
        let mut i = 0;
        while i < self.pending.len() {
            let p = &mut self.pending[i];
            let mut gone = false;
            while p.cookie.len() < COOKIE_SIZE {
                let want = COOKIE_SIZE - p.cookie.len();
                match stack.tcp_recv(now, p.h, &mut self.buf[..want]) {
                    Ok(0) => {
                        gone = true;
                        break;
                    }
                    Ok(n) => {
                        p.cookie.extend_from_slice(&self.buf[..n]);
                        did = true;
                    }
                    Err(TcpError::WouldBlock) => break,
                    Err(_) => {
                        gone = true;
                        break;
                    }
                }
            }
            if gone || (p.cookie.len() < COOKIE_SIZE && now - p.since > COOKIE_TIMEOUT) {
                let _ = stack.tcp_abort(now, p.h);
                self.pending.swap_remove(i);
                continue;
            }
            if p.cookie.len() < COOKIE_SIZE {
                i += 1;
                continue;
            }
            let p = self.pending.remove(i);
            let cookie: [u8; COOKIE_SIZE] = p.cookie[..].try_into().expect("cookie size");
            match &mut self.test {
                None => {
                    let peer = stack.tcp().peer_addr(p.h);
                    self.test = Some(Test {
                        ctrl: p.h,
                        peer,
                        session: Session::new(cookie),
                        streams: Vec::new(),
                        start: None,
                        omit_until: None,
                        end: None,
                        deadline: now + CONTROL_TIMEOUT,
                        cpu: CpuMeter::start(),
                        sent_total: 0,
                        closing: false,
                    });
                }
                Some(t) => match t.session.add_stream(&cookie) {
                    StreamVerdict::Accepted { id, last } => {
                        let _ = stack.tcp_mut().set_nodelay(p.h, t.params().nodelay);
                        t.streams.push(DataStream {
                            h: p.h,
                            id,
                            bytes: 0,
                            retransmits: 0,
                            open: true,
                        });
                        if last {
                            let params = t.params();
                            let omit = Duration::from_secs(params.omit);
                            t.start = Some(now);
                            t.omit_until = (params.omit > 0).then(|| now + omit);
                            t.deadline = if params.time > 0 {
                                now + Duration::from_secs(params.time) + omit + END_SLACK
                            } else {
                                now + IDLE_TIMEOUT + omit
                            };
                        }
                    }
                    StreamVerdict::Denied => deny(now, stack, &mut self.denied, p.h),
                },
            }
            did = true;
        }

        let Some(t) = &mut self.test else {
            return did;
        };

        // Data first, so that what arrived before TEST_END is counted.
        if t.session.phase() == Phase::Running && t.pump(now, stack, &mut self.buf, &self.block) {
            did = true;
            if t.params().time == 0 {
                t.deadline = now + IDLE_TIMEOUT;
            }
        }

        // Control.
        let mut finished = false;
        let mut eof = false;
        loop {
            match stack.tcp_recv(now, t.ctrl, &mut self.buf[..4096]) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => {
                    t.session.receive(&self.buf[..n]);
                    did = true;
                }
                Err(TcpError::WouldBlock) => break,
                Err(e) => {
                    eprintln!("iperf: control connection: {e}");
                    finished = true;
                    break;
                }
            }
        }
        while let Some(ev) = t.session.poll() {
            did = true;
            if !matches!(t.session.phase(), Phase::Running) {
                t.deadline = now + CONTROL_TIMEOUT;
            }
            match ev {
                Event::Params(p) => {
                    let _ = stack.tcp_mut().set_nodelay(t.ctrl, true);
                    if let Some(peer) = t.peer {
                        println!(
                            "iperf: test from {peer}: {} stream(s), {}, {}",
                            p.parallel,
                            if p.reverse {
                                "reverse (we send)"
                            } else {
                                "we receive"
                            },
                            match p.byte_limit() {
                                Some(n) => format!("{n} bytes"),
                                None => format!("{} s", p.time),
                            }
                        );
                    }
                }
                Event::Ended => t.end_streams(now, stack),
                Event::ClientResults(_) => {
                    let r = t.results(stack);
                    let bytes: u64 = r.streams.iter().map(|s| s.bytes).sum();
                    let secs = r.streams.iter().map(|s| s.end_time).fold(0.0, f64::max);
                    println!(
                        "iperf: test done: {} {bytes} bytes in {secs:.2} s = {:.1} Mbit/s",
                        if t.params().reverse {
                            "sent"
                        } else {
                            "received"
                        },
                        bytes as f64 * 8.0 / secs.max(1e-9) / 1e6
                    );
                    t.session.send_results(&r);
                }
                Event::Finished => {
                    t.closing = true;
                }
                Event::Terminated => {
                    eprintln!("iperf: the client has terminated");
                    t.closing = true;
                }
                Event::Error(e) => {
                    eprintln!("iperf: {e}");
                    t.closing = true;
                }
            }
        }
        if eof && !t.closing {
            // iperf3's server says this too when the client vanishes mid-test.
            eprintln!("iperf: the client has unexpectedly closed the connection");
            finished = true;
        }
        match flush(now, stack, t.ctrl, &mut t.session.out) {
            Ok(true) => did = true,
            Ok(false) => {}
            Err(_) => finished = true,
        }
        if t.closing && t.session.out.is_empty() {
            for s in &t.streams {
                let _ = stack.tcp_close(now, s.h);
            }
            let _ = stack.tcp_close(now, t.ctrl);
            if t.session.phase() == Phase::Done {
                self.tests_done += 1;
            }
            self.test = None;
            return true;
        }
        if finished || now > t.deadline {
            if !finished {
                eprintln!("iperf: test timed out in phase {:?}", t.session.phase());
            }
            t.abort(now, stack);
            self.test = None;
            return true;
        }
        did
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cookie() -> [u8; COOKIE_SIZE] {
        make_cookie(42)
    }

    #[test]
    fn cookie_shape() {
        let c = cookie();
        assert_eq!(c[COOKIE_SIZE - 1], 0);
        assert!(c[..36]
            .iter()
            .all(|b| b"abcdefghijklmnopqrstuvwxyz234567".contains(b)));
        assert_ne!(make_cookie(1), make_cookie(2));
        assert_eq!(cookie_str(&c).len(), 36);
    }

    #[test]
    fn stream_ids_skip_two() {
        let ids: Vec<u32> = (0..5).map(stream_id).collect();
        assert_eq!(ids, [1, 3, 4, 5, 6]);
    }

    #[test]
    fn json_framing_round_trip_and_partial_arrival() {
        let v = json!({"tcp": true, "parallel": 4});
        let framed = frame_json(&v);
        let body = v.to_string();
        assert_eq!(&framed[..4], &(body.len() as u32).to_be_bytes());
        assert_eq!(&framed[4..], body.as_bytes());
        let mut inbox = Inbox::default();
        for (i, b) in framed.iter().enumerate() {
            assert!(inbox.take_json().is_none(), "complete after {i} bytes?");
            inbox.push(&[*b]);
        }
        assert_eq!(inbox.take_json(), Some(Ok(v)));
        assert!(inbox.is_empty());
    }

    #[test]
    fn json_framing_errors() {
        let mut inbox = Inbox::default();
        inbox.push(&(MAX_JSON as u32 + 1).to_be_bytes());
        assert_eq!(
            inbox.take_json(),
            Some(Err(FrameError::TooLong(MAX_JSON as u32 + 1)))
        );
        let mut inbox = Inbox::default();
        inbox.push(&3u32.to_be_bytes());
        inbox.push(b"{x}");
        assert!(matches!(
            inbox.take_json(),
            Some(Err(FrameError::BadJson(_)))
        ));
        let mut inbox = Inbox::default();
        inbox.push(&[0xfe, 0, 0, 0, 13, 0, 0, 0]);
        assert_eq!(inbox.take_state(), Some(msg::SERVER_ERROR));
        assert_eq!(inbox.take_i32(), Some(13));
        assert_eq!(inbox.take_i32(), None);
    }

    /// What iperf3 3.12 sends for `iperf3 -c X -t 3 -P 2 -R`.
    fn iperf3_params() -> Value {
        json!({"tcp":true,"omit":0,"time":3,"num":0,"blockcount":0,"parallel":2,
               "reverse":true,"len":131072,"pacing_timer":1000,"client_version":"3.12"})
    }

    #[test]
    fn params_from_iperf3() {
        let p = Params::from_json(&iperf3_params());
        assert!(p.tcp && p.reverse && !p.bidirectional);
        assert_eq!((p.time, p.parallel, p.len, p.num), (3, 2, 131072, 0));
        assert_eq!(p.byte_limit(), None);
        assert_eq!(p.check(), Ok(()));
        let back = Params::from_json(&p.to_json());
        assert_eq!(back.time, 3);
        assert!(back.reverse);
        let udp = Params::from_json(&json!({"udp": true, "parallel": 1}));
        assert_eq!(udp.check(), Err(ierr::IEUNIMP));
        let many = Params::from_json(&json!({"tcp": true, "parallel": 500}));
        assert_eq!(many.check(), Err(ierr::IENUMSTREAMS));
        let n = Params::from_json(&json!({"tcp": true, "num": 20971520, "time": 0}));
        assert_eq!(n.byte_limit(), Some(20 << 20));
    }

    #[test]
    fn results_round_trip_and_required_fields() {
        let r = Results {
            cpu_util_total: 1.5,
            cpu_util_user: 1.0,
            cpu_util_system: 0.5,
            sender_has_retransmits: 1,
            congestion_used: Some("cubic".into()),
            streams: vec![StreamResult {
                id: 1,
                bytes: 123_456_789_012,
                retransmits: 3,
                jitter: 0.0,
                errors: 0,
                packets: 0,
                start_time: 0.0,
                end_time: 3.0,
            }],
        };
        let j = r.to_json();
        assert_eq!(j["streams"][0]["bytes"], json!(123_456_789_012u64));
        assert_eq!(Results::from_json(&j), Ok(r));
        let mut missing = j.clone();
        missing.as_object_mut().unwrap().remove("cpu_util_user");
        assert!(Results::from_json(&missing).is_err());
        let mut missing = j;
        missing["streams"][0]
            .as_object_mut()
            .unwrap()
            .remove("packets");
        assert!(Results::from_json(&missing).is_err());
    }

    fn client_results() -> Value {
        json!({"cpu_util_total":2.0,"cpu_util_user":1.0,"cpu_util_system":1.0,
               "sender_has_retransmits":0,
               "streams":[{"id":1,"bytes":1000,"retransmits":0,"jitter":0,"errors":0,
                           "packets":0,"start_time":0,"end_time":3.0}]})
    }

    #[test]
    fn session_full_test() {
        let mut s = Session::new(cookie());
        assert_eq!(s.out, [msg::PARAM_EXCHANGE as u8]);
        s.out.clear();
        assert_eq!(s.phase(), Phase::AwaitParams);
        // Parameters, in two pieces.
        let framed = frame_json(&iperf3_params());
        s.receive(&framed[..5]);
        assert_eq!(s.poll(), None);
        s.receive(&framed[5..]);
        assert!(matches!(s.poll(), Some(Event::Params(p)) if p.parallel == 2));
        assert_eq!(s.out, [msg::CREATE_STREAMS as u8]);
        s.out.clear();
        // Streams: a wrong cookie is denied, the right one accepted twice, then no more.
        assert_eq!(s.add_stream(&make_cookie(7)), StreamVerdict::Denied);
        assert_eq!(
            s.add_stream(&cookie()),
            StreamVerdict::Accepted { id: 1, last: false }
        );
        assert!(s.out.is_empty());
        assert_eq!(
            s.add_stream(&cookie()),
            StreamVerdict::Accepted { id: 3, last: true }
        );
        assert_eq!(s.out, [msg::TEST_START as u8, msg::TEST_RUNNING as u8]);
        assert_eq!(s.phase(), Phase::Running);
        assert_eq!(s.add_stream(&cookie()), StreamVerdict::Denied);
        s.out.clear();
        // TEST_END and the results exchange: the client's first, then ours.
        s.receive(&[msg::TEST_END as u8]);
        assert_eq!(s.poll(), Some(Event::Ended));
        assert_eq!(s.out, [msg::EXCHANGE_RESULTS as u8]);
        s.out.clear();
        s.receive(&frame_json(&client_results()));
        assert!(matches!(s.poll(), Some(Event::ClientResults(r)) if r.streams[0].bytes == 1000));
        assert_eq!(s.poll(), None);
        let ours = Results::from_json(&client_results()).unwrap();
        s.send_results(&ours);
        let mut inbox = Inbox::default();
        inbox.push(&s.out);
        assert_eq!(inbox.take_json(), Some(Ok(ours.to_json())));
        assert_eq!(inbox.take_state(), Some(msg::DISPLAY_RESULTS));
        assert!(inbox.is_empty());
        assert_eq!(s.phase(), Phase::AwaitDone);
        s.receive(&[msg::IPERF_DONE as u8]);
        assert_eq!(s.poll(), Some(Event::Finished));
        assert_eq!(s.phase(), Phase::Done);
        assert_eq!(s.poll(), None);
    }

    #[test]
    fn session_refuses_udp_with_server_error() {
        let mut s = Session::new(cookie());
        s.out.clear();
        s.receive(&frame_json(&json!({"udp": true, "parallel": 1, "time": 3})));
        assert!(matches!(s.poll(), Some(Event::Error(_))));
        assert_eq!(s.phase(), Phase::Failed);
        assert_eq!(s.out, server_error(ierr::IEUNIMP, 0));
        assert_eq!(s.out.len(), 9);
        assert_eq!(s.add_stream(&cookie()), StreamVerdict::Denied);
    }

    #[test]
    fn session_bad_json_and_unexpected_states_fail() {
        let mut s = Session::new(cookie());
        s.receive(&[0, 0, 0, 2, b'[', b']']);
        assert!(matches!(s.poll(), Some(Event::Error(_))));
        assert_eq!(s.phase(), Phase::Failed);

        let mut s = Session::new(cookie());
        s.receive(&frame_json(&json!({"tcp": true, "parallel": 1})));
        assert!(matches!(s.poll(), Some(Event::Params(_))));
        s.receive(&[msg::CLIENT_TERMINATE as u8]);
        assert_eq!(s.poll(), Some(Event::Terminated));

        let mut s = Session::new(cookie());
        s.receive(&frame_json(&json!({"tcp": true, "parallel": 1})));
        assert!(matches!(s.poll(), Some(Event::Params(_))));
        s.receive(&[msg::DISPLAY_RESULTS as u8]);
        assert!(matches!(s.poll(), Some(Event::Error(_))));
    }

    #[test]
    fn results_are_not_sent_before_the_clients_arrive() {
        let mut s = Session::new(cookie());
        s.receive(&frame_json(&json!({"tcp": true, "parallel": 1})));
        s.poll();
        s.add_stream(&cookie());
        s.receive(&[msg::TEST_END as u8]);
        assert_eq!(s.poll(), Some(Event::Ended));
        s.out.clear();
        s.send_results(&Results::from_json(&client_results()).unwrap());
        assert!(s.out.is_empty());
        assert_eq!(s.phase(), Phase::AwaitResults);
    }

    #[test]
    fn cpu_meter_is_sane() {
        let m = CpuMeter::start();
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = x.wrapping_add(i * i);
        }
        assert!(x > 0);
        let (t, u, s) = m.percent();
        assert!(t >= 0.0 && u >= 0.0 && s >= 0.0);
        assert!((t - (u + s)).abs() < 1e-9);
    }
}
