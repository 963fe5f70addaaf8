//! `ringstack iperf -c SERVER`: an iperf3-compatible client over the stack on a real NIC. It
//! speaks iperf3's control protocol (see [`crate::services::iperf`]) so it runs tests against an
//! unmodified `iperf3 -s` as well as against `ringstack serve`, and prints iperf3's summary
//! (or, with `--json`, a report shaped like `iperf3 --json`).

use std::net::{Ipv4Addr, SocketAddrV4};

use anyhow::{bail, Context, Result};
use clap::Args;
use ringstack_stack::{Duration, Instant, Stack, TcpError, TcpHandle};
use serde_json::{json, Value};

use crate::client::{Progress, ProgressOpts};
use crate::netopts::NetOpts;
use crate::runtime::Runtime;
use crate::services::flush;
use crate::services::iperf::{
    cookie_str, data_block, frame_json, ierr, make_cookie, msg, secs, CpuMeter, Inbox, Params,
    Results, StreamResult, COOKIE_SIZE, DEFAULT_BLKSIZE, MAX_BLOCKSIZE, MAX_STREAMS, PORT,
};

/// Options of `ringstack iperf`.
#[derive(Args, Debug, Clone)]
#[command(after_help = "Examples:
  ringstack iperf --nic ring:veth1 --addr 198.18.0.2/24 -c 198.18.0.1 -t 3
  ringstack iperf --nic ring:veth1 -c 198.18.0.1 -n 20M -P 4 -R --json")]
pub struct IperfArgs {
    #[command(flatten)]
    pub net: NetOpts,
    /// The iperf3 server to test against (an IPv4 address).
    #[arg(short = 'c', long = "client", value_name = "SERVER")]
    pub server: Ipv4Addr,
    /// The server's port.
    #[arg(short = 'p', long, default_value_t = PORT)]
    pub port: u16,
    /// Seconds to transmit for (default 10).
    #[arg(short = 't', long = "time", conflicts_with = "bytes")]
    pub time: Option<u64>,
    /// Bytes to transmit instead of a time (K/M/G suffixes are powers of 1024, as in iperf3).
    #[arg(short = 'n', long = "bytes", value_parser = parse_size)]
    pub bytes: Option<u64>,
    /// Block size: bytes per write (default 128K).
    #[arg(short = 'l', long = "length", value_parser = parse_size)]
    pub length: Option<u64>,
    /// Parallel streams.
    #[arg(short = 'P', long = "parallel", default_value_t = 1)]
    pub parallel: u32,
    /// Reverse: the server sends, we receive.
    #[arg(short = 'R', long)]
    pub reverse: bool,
    /// Seconds between interval reports (0 turns them off).
    #[arg(short = 'i', long, default_value_t = 1.0)]
    pub interval: f64,
    /// Print the report as JSON (like `iperf3 --json`).
    #[arg(short = 'J', long)]
    pub json: bool,
    /// Give up when nothing has moved for this many seconds.
    #[arg(long, default_value_t = 30)]
    pub stall_timeout: u64,
    #[command(flatten)]
    pub progress: ProgressOpts,
}

/// Parses `20M`, `128K`, `1G`, `1000` (iperf3's `unit_atoi`: suffixes are powers of 1024).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, mult) = match s.chars().last() {
        Some('k' | 'K') => (&s[..s.len() - 1], 1u64 << 10),
        Some('m' | 'M') => (&s[..s.len() - 1], 1 << 20),
        Some('g' | 'G') => (&s[..s.len() - 1], 1 << 30),
        Some('t' | 'T') => (&s[..s.len() - 1], 1 << 40),
        _ => (s, 1),
    };
    let v: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size (examples: 1000, 128K, 20M, 1G)"))?;
    if v.is_nan() || v < 0.0 {
        return Err(format!("{s:?}: a size cannot be negative"));
    }
    Ok((v * mult as f64) as u64)
}

/// iperf3's `unit_snprintf`: 3 significant digits, binary units for bytes, decimal for bits.
fn unit(value: f64, base: f64, units: [&str; 5]) -> String {
    let mut v = value;
    let mut i = 0;
    while v >= base && i < units.len() - 1 {
        v /= base;
        i += 1;
    }
    if v < 9.995 {
        format!("{v:4.2} {}", units[i])
    } else if v < 99.95 {
        format!("{v:4.1} {}", units[i])
    } else {
        format!("{v:4.0} {}", units[i])
    }
}

fn fmt_bytes(b: u64) -> String {
    unit(
        b as f64,
        1024.0,
        ["Bytes", "KBytes", "MBytes", "GBytes", "TBytes"],
    )
}

fn fmt_rate(bps: f64) -> String {
    unit(
        bps,
        1000.0,
        [
            "bits/sec",
            "Kbits/sec",
            "Mbits/sec",
            "Gbits/sec",
            "Tbits/sec",
        ],
    )
}

fn rate(bytes: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        bytes as f64 * 8.0 / seconds
    } else {
        0.0
    }
}

/// A seed for the cookie: hashed by std's randomly keyed hasher with the time and PID.
fn cookie_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.write_u32(std::process::id());
    h.finish()
}

/// One data connection.
struct Stream {
    h: TcpHandle,
    id: u32,
    cookie_sent: usize,
    bytes: u64,
    interval_bytes: u64,
    retransmits: i64,
    local: Option<SocketAddrV4>,
}

/// What the next bytes on the control connection are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    State,
    ServerResults,
    ErrorCodes,
}

/// One interval's figures (bytes per stream, in stream order).
struct Interval {
    start: f64,
    end: f64,
    bytes: Vec<u64>,
}

/// The client's side of one test.
struct Test {
    params: Params,
    server: SocketAddrV4,
    cookie: [u8; COOKIE_SIZE],
    ctrl: TcpHandle,
    ctrl_cookie_sent: usize,
    inbox: Inbox,
    out: Vec<u8>,
    expect: Expect,
    streams: Vec<Stream>,
    creating: bool,
    start: Option<Instant>,
    running: bool,
    end: Option<Instant>,
    server_results: Option<Results>,
    done: bool,
    interval: Option<Duration>,
    interval_start: Option<Instant>,
    intervals: Vec<Interval>,
    sent_total: u64,
    received_total: u64,
    cpu: CpuMeter,
    our_cpu: (f64, f64, f64),
    last_progress: Instant,
    block: Vec<u8>,
    buf: Vec<u8>,
    text: bool,
    congestion: Option<String>,
    /// The progress bar (on standard error, when wanted).
    progress: Progress,
}

impl Test {
    fn control_message(&mut self, now: Instant, stack: &mut Stack, m: i8) -> Result<()> {
        match m {
            msg::PARAM_EXCHANGE => self.out.extend(frame_json(&self.params.to_json())),
            msg::CREATE_STREAMS => self.creating = true,
            msg::TEST_START => {
                self.start = Some(now);
                self.interval_start = Some(now);
            }
            msg::TEST_RUNNING => {
                self.running = true;
                if self.start.is_none() {
                    self.start = Some(now);
                    self.interval_start = Some(now);
                }
            }
            msg::EXCHANGE_RESULTS => {
                if self.end.is_none() {
                    self.finish_data(now, stack);
                }
                let r = self.our_results(stack);
                self.out.extend(frame_json(&r.to_json()));
                self.expect = Expect::ServerResults;
            }
            msg::DISPLAY_RESULTS => {
                for s in &mut self.streams {
                    if let Some(info) = stack.tcp().info(s.h) {
                        if !self.params.reverse {
                            s.retransmits = info.total_retrans as i64;
                        }
                    }
                    let _ = stack.tcp_close(now, s.h);
                }
                self.out.push(msg::IPERF_DONE as u8);
                self.done = true;
            }
            msg::ACCESS_DENIED => bail!("the server is busy running a test. try again later"),
            msg::SERVER_ERROR => self.expect = Expect::ErrorCodes,
            msg::SERVER_TERMINATE => bail!("the server has terminated"),
            m => bail!(
                "received an unknown control message {m} ({}) from the server",
                msg::name(m)
            ),
        }
        Ok(())
    }

    /// The test is over on our side: stop counting, tell the server.
    fn finish_data(&mut self, now: Instant, stack: &Stack) {
        self.end = Some(now);
        self.running = false;
        self.close_interval(now, true);
        self.our_cpu = self.cpu.percent();
        self.congestion = stack
            .tcp()
            .info(self.ctrl)
            .map(|i| i.congestion.to_string());
    }

    fn our_results(&self, stack: &Stack) -> Results {
        let (total, user, system) = self.our_cpu;
        let seconds = self.seconds();
        Results {
            cpu_util_total: total,
            cpu_util_user: user,
            cpu_util_system: system,
            sender_has_retransmits: if self.params.reverse { -1 } else { 1 },
            congestion_used: self.congestion.clone(),
            streams: self
                .streams
                .iter()
                .map(|s| StreamResult {
                    id: s.id,
                    bytes: s.bytes,
                    retransmits: if self.params.reverse {
                        -1
                    } else {
                        stack.tcp().info(s.h).map_or(0, |i| i.total_retrans as i64)
                    },
                    jitter: 0.0,
                    errors: 0,
                    packets: 0,
                    start_time: 0.0,
                    end_time: seconds,
                })
                .collect(),
        }
    }

    fn seconds(&self) -> f64 {
        match (self.start, self.end) {
            (Some(s), Some(e)) => secs(s, e),
            _ => 0.0,
        }
    }

    /// Closes the current interval at `now` (a last, partial one only if `last`).
    fn close_interval(&mut self, now: Instant, last: bool) {
        let (Some(start), Some(from)) = (self.start, self.interval_start) else {
            return;
        };
        if self.interval.is_none() || (last && secs(from, now) < 0.01) {
            return;
        }
        let iv = Interval {
            start: secs(start, from),
            end: secs(start, now),
            bytes: self.streams.iter().map(|s| s.interval_bytes).collect(),
        };
        for s in &mut self.streams {
            s.interval_bytes = 0;
        }
        if self.text {
            self.progress.suspend(|| {
                if self.intervals.is_empty() {
                    println!("[ ID] Interval           Transfer     Bitrate");
                }
                let secs = iv.end - iv.start;
                for (s, b) in self.streams.iter().zip(&iv.bytes) {
                    println!(
                        "[{:>3}] {:6.2}-{:<6.2} sec  {}  {}",
                        s.id,
                        iv.start,
                        iv.end,
                        fmt_bytes(*b),
                        fmt_rate(rate(*b, secs))
                    );
                }
                if self.streams.len() > 1 {
                    let sum: u64 = iv.bytes.iter().sum();
                    println!(
                        "[SUM] {:6.2}-{:<6.2} sec  {}  {}",
                        iv.start,
                        iv.end,
                        fmt_bytes(sum),
                        fmt_rate(rate(sum, secs))
                    );
                }
            });
        }
        self.intervals.push(iv);
        self.interval_start = Some(now);
    }

    /// Sends or receives on the data connections. Returns whether anything moved.
    fn pump(&mut self, now: Instant, stack: &mut Stack) -> Result<bool> {
        let mut moved = false;
        let counting = self.running && self.end.is_none();
        let limit = self.params.byte_limit();
        let len = self.params.len.clamp(1, self.block.len());
        for s in &mut self.streams {
            if s.cookie_sent < COOKIE_SIZE {
                continue;
            }
            // Always read (the receiver's job, and it keeps a sender's peer from stalling).
            loop {
                match stack.tcp_recv(now, s.h, &mut self.buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        moved = true;
                        if counting && self.params.reverse {
                            s.bytes += n as u64;
                            s.interval_bytes += n as u64;
                            self.received_total += n as u64;
                        }
                    }
                    Err(TcpError::WouldBlock) => break,
                    Err(e) if counting => bail!("stream {}: {e}", s.id),
                    Err(_) => break,
                }
            }
            if counting && !self.params.reverse {
                loop {
                    let mut want = len;
                    if let Some(l) = limit {
                        let left = l.saturating_sub(self.sent_total);
                        if left == 0 {
                            break;
                        }
                        want = want.min(left as usize);
                    }
                    match stack.tcp_send(now, s.h, &self.block[..want]) {
                        Ok(0) | Err(TcpError::WouldBlock) => break,
                        Ok(n) => {
                            s.bytes += n as u64;
                            s.interval_bytes += n as u64;
                            self.sent_total += n as u64;
                            moved = true;
                        }
                        Err(e) => bail!("stream {}: {e}", s.id),
                    }
                }
            }
        }
        Ok(moved)
    }

    /// One round of the driver loop. Returns whether to go on.
    fn step(&mut self, now: Instant, stack: &mut Stack, stall: Duration) -> Result<bool> {
        let mut progress = false;

        // The cookie opens the control connection (sent once it is established).
        if self.ctrl_cookie_sent < COOKIE_SIZE {
            match stack.tcp_send(now, self.ctrl, &self.cookie[self.ctrl_cookie_sent..]) {
                Ok(n) => {
                    self.ctrl_cookie_sent += n;
                    progress |= n > 0;
                }
                Err(TcpError::WouldBlock) => {}
                Err(e) => bail!("unable to connect to server {}: {e}", self.server),
            }
        }

        // Control messages.
        loop {
            match stack.tcp_recv(now, self.ctrl, &mut self.buf[..4096]) {
                Ok(0) => {
                    if self.done {
                        break;
                    }
                    bail!("the server has unexpectedly closed the connection");
                }
                Ok(n) => {
                    self.inbox.push(&self.buf[..n]);
                    progress = true;
                }
                Err(TcpError::WouldBlock) => break,
                Err(e) => bail!("control connection to {}: {e}", self.server),
            }
        }
        while !self.done {
            match self.expect {
                Expect::ErrorCodes => {
                    if self.inbox.len() < 8 {
                        break;
                    }
                    let i_errno = self.inbox.take_i32().unwrap_or(0);
                    let errno = self.inbox.take_i32().unwrap_or(0);
                    bail!(
                        "the server refused the test: {}{}",
                        ierr::describe(i_errno),
                        if errno != 0 {
                            format!(" (errno {errno})")
                        } else {
                            String::new()
                        }
                    );
                }
                Expect::ServerResults => match self.inbox.take_json() {
                    None => break,
                    Some(Ok(j)) => {
                        let r = Results::from_json(&j)
                            .map_err(|e| anyhow::anyhow!("server results: {e}"))?;
                        self.server_results = Some(r);
                        self.expect = Expect::State;
                    }
                    Some(Err(e)) => bail!("server results: {e}"),
                },
                Expect::State if self.inbox.is_empty() => break,
                Expect::State => match self.inbox.take_state() {
                    None => break,
                    Some(m) => self.control_message(now, stack, m)?,
                },
            }
        }

        // Streams, one after another so that the server numbers them in our order.
        if self.creating && !self.done {
            let ready = self
                .streams
                .last()
                .is_none_or(|s| s.cookie_sent == COOKIE_SIZE);
            if ready && self.streams.len() < self.params.parallel as usize {
                let h = stack
                    .tcp_connect(now, self.server, 0)
                    .context("opening a data connection")?;
                let id = crate::services::iperf::stream_id(self.streams.len());
                self.streams.push(Stream {
                    h,
                    id,
                    cookie_sent: 0,
                    bytes: 0,
                    interval_bytes: 0,
                    retransmits: -1,
                    local: None,
                });
                progress = true;
            }
            for s in self
                .streams
                .iter_mut()
                .filter(|s| s.cookie_sent < COOKIE_SIZE)
            {
                match stack.tcp_send(now, s.h, &self.cookie[s.cookie_sent..]) {
                    Ok(n) => {
                        s.cookie_sent += n;
                        progress |= n > 0;
                        s.local = stack.tcp().local_addr(s.h);
                        if s.cookie_sent == COOKIE_SIZE && self.text {
                            let local = s.local.map_or("?".to_string(), |a| a.to_string());
                            let (ip, port) = local.rsplit_once(':').unwrap_or((&local, "?"));
                            self.progress.suspend(|| {
                                println!(
                                    "[{:>3}] local {ip} port {port} connected to {} port {}",
                                    s.id,
                                    self.server.ip(),
                                    self.server.port()
                                )
                            });
                        }
                    }
                    Err(TcpError::WouldBlock) => {}
                    Err(e) => bail!("data connection to {}: {e}", self.server),
                }
            }
        }

        // Data.
        progress |= self.pump(now, stack)?;
        self.show_progress(now);
        if self.running && self.end.is_none() {
            if let (Some(iv), Some(from)) = (self.interval, self.interval_start) {
                if now - from >= iv {
                    self.close_interval(now, false);
                }
            }
            let start = self.start.unwrap_or(now);
            let over = match self.params.byte_limit() {
                Some(n) => self.sent_total >= n || self.received_total >= n,
                None => now - start >= Duration::from_secs(self.params.time + self.params.omit),
            };
            if over {
                self.finish_data(now, stack);
                self.out.push(msg::TEST_END as u8);
            }
        }

        match flush(now, stack, self.ctrl, &mut self.out) {
            Ok(p) => progress |= p,
            Err(e) => bail!("control connection to {}: {e}", self.server),
        }
        if progress {
            self.last_progress = now;
        } else if now - self.last_progress > stall {
            bail!(
                "nothing moved for {} s (waiting for the server)",
                stall.total_millis() / 1000
            );
        }
        if self.done && self.out.is_empty() {
            let _ = stack.tcp_close(now, self.ctrl);
            return Ok(false);
        }
        Ok(true)
    }

    /// Moves the progress bar: bytes so far against `-n`, or seconds against `-t`.
    fn show_progress(&self, now: Instant) {
        let Some(start) = self.start else {
            return;
        };
        let bytes = self.sent_total.max(self.received_total);
        if self.params.byte_limit().is_some() {
            self.progress.set_position(bytes);
        } else {
            let elapsed = secs(start, self.end.unwrap_or(now));
            self.progress.set_position((elapsed * 1000.0) as u64);
            self.progress.set_note(format!(
                "{}  {}",
                fmt_bytes(bytes),
                fmt_rate(rate(bytes, elapsed))
            ));
        }
    }

    /// Per stream: (sender bytes, sender seconds, receiver bytes, receiver seconds, retransmits).
    fn stream_summary(&self, s: &Stream) -> (u64, f64, u64, f64, Option<i64>) {
        let ours = self.seconds();
        let theirs = self
            .server_results
            .as_ref()
            .and_then(|r| r.streams.iter().find(|x| x.id == s.id));
        let (tb, ts) = theirs.map_or((0, ours), |t| {
            let d = t.end_time - t.start_time;
            (t.bytes, if d > 0.0 { d } else { ours })
        });
        if self.params.reverse {
            let retr = self
                .server_results
                .as_ref()
                .filter(|r| r.sender_has_retransmits == 1)
                .and(theirs)
                .map(|t| t.retransmits);
            (tb, ts, s.bytes, ours, retr)
        } else {
            (s.bytes, ours, tb, ts, Some(s.retransmits.max(0)))
        }
    }

    fn print_text(&self) {
        println!("- - - - - - - - - - - - - - - - - - - - - - - - -");
        println!("[ ID] Interval           Transfer     Bitrate         Retr");
        let (mut sb, mut ss, mut rb, mut rs, mut retr) = (0, 0.0f64, 0, 0.0f64, None::<i64>);
        for s in &self.streams {
            let (b1, t1, b2, t2, r) = self.stream_summary(s);
            let rtxt = r.map_or(String::from("   "), |r| format!("{r:3}"));
            println!(
                "[{:>3}] {:6.2}-{:<6.2} sec  {}  {}  {rtxt}             sender",
                s.id,
                0.0,
                t1,
                fmt_bytes(b1),
                fmt_rate(rate(b1, t1))
            );
            println!(
                "[{:>3}] {:6.2}-{:<6.2} sec  {}  {}                  receiver",
                s.id,
                0.0,
                t2,
                fmt_bytes(b2),
                fmt_rate(rate(b2, t2))
            );
            (sb, rb) = (sb + b1, rb + b2);
            (ss, rs) = (ss.max(t1), rs.max(t2));
            if let Some(r) = r {
                retr = Some(retr.unwrap_or(0) + r);
            }
        }
        if self.streams.len() > 1 {
            let rtxt = retr.map_or(String::from("   "), |r| format!("{r:3}"));
            println!(
                "[SUM] {:6.2}-{:<6.2} sec  {}  {}  {rtxt}             sender",
                0.0,
                ss,
                fmt_bytes(sb),
                fmt_rate(rate(sb, ss))
            );
            println!(
                "[SUM] {:6.2}-{:<6.2} sec  {}  {}                  receiver",
                0.0,
                rs,
                fmt_bytes(rb),
                fmt_rate(rate(rb, rs))
            );
        }
        println!();
        println!("iperf Done.");
    }

    fn json(&self) -> Value {
        let sample = |id: u32, start: f64, end: f64, bytes: u64, sender: bool| {
            json!({
                "socket": id,
                "start": start,
                "end": end,
                "seconds": end - start,
                "bytes": bytes,
                "bits_per_second": rate(bytes, end - start),
                "omitted": false,
                "sender": sender,
            })
        };
        let we_send = !self.params.reverse;
        let intervals: Vec<Value> = self
            .intervals
            .iter()
            .map(|iv| {
                let streams: Vec<Value> = self
                    .streams
                    .iter()
                    .zip(&iv.bytes)
                    .map(|(s, b)| sample(s.id, iv.start, iv.end, *b, we_send))
                    .collect();
                let sum: u64 = iv.bytes.iter().sum();
                json!({"streams": streams, "sum": sample(0, iv.start, iv.end, sum, we_send)})
            })
            .collect();
        let mut end_streams = Vec::new();
        let (mut sb, mut ss, mut rb, mut rs, mut retr) = (0, 0.0f64, 0, 0.0f64, None::<i64>);
        for s in &self.streams {
            let (b1, t1, b2, t2, r) = self.stream_summary(s);
            let mut sender = sample(s.id, 0.0, t1, b1, true);
            if let Some(r) = r {
                sender["retransmits"] = json!(r);
                retr = Some(retr.unwrap_or(0) + r);
            }
            let receiver = sample(s.id, 0.0, t2, b2, false);
            end_streams.push(json!({"sender": sender, "receiver": receiver}));
            (sb, rb) = (sb + b1, rb + b2);
            (ss, rs) = (ss.max(t1), rs.max(t2));
        }
        let mut sum_sent = json!({
            "start": 0.0, "end": ss, "seconds": ss, "bytes": sb,
            "bits_per_second": rate(sb, ss), "sender": true,
        });
        if let Some(r) = retr {
            sum_sent["retransmits"] = json!(r);
        }
        let sum_received = json!({
            "start": 0.0, "end": rs, "seconds": rs, "bytes": rb,
            "bits_per_second": rate(rb, rs), "sender": false,
        });
        let (ht, hu, hs) = self.our_cpu;
        let remote = self.server_results.as_ref();
        let connected: Vec<Value> = self
            .streams
            .iter()
            .map(|s| {
                json!({
                    "socket": s.id,
                    "local_host": s.local.map(|a| a.ip().to_string()),
                    "local_port": s.local.map(|a| a.port()),
                    "remote_host": self.server.ip().to_string(),
                    "remote_port": self.server.port(),
                })
            })
            .collect();
        let mut end = json!({
            "streams": end_streams,
            "sum_sent": sum_sent,
            "sum_received": sum_received,
            "cpu_utilization_percent": {
                "host_total": ht, "host_user": hu, "host_system": hs,
                "remote_total": remote.map_or(0.0, |r| r.cpu_util_total),
                "remote_user": remote.map_or(0.0, |r| r.cpu_util_user),
                "remote_system": remote.map_or(0.0, |r| r.cpu_util_system),
            },
        });
        let (ours, theirs) = (
            self.congestion.clone(),
            remote.and_then(|r| r.congestion_used.clone()),
        );
        let (snd, rcv) = if we_send {
            (ours, theirs)
        } else {
            (theirs, ours)
        };
        if let Some(c) = snd {
            end["sender_tcp_congestion"] = json!(c);
        }
        if let Some(c) = rcv {
            end["receiver_tcp_congestion"] = json!(c);
        }
        json!({
            "start": {
                "connected": connected,
                "version": concat!("ringstack ", env!("CARGO_PKG_VERSION"), " (iperf3 protocol)"),
                "connecting_to": {"host": self.server.ip().to_string(), "port": self.server.port()},
                "cookie": cookie_str(&self.cookie),
                "test_start": {
                    "protocol": "TCP",
                    "num_streams": self.params.parallel,
                    "blksize": self.params.len,
                    "omit": self.params.omit,
                    "duration": self.params.time,
                    "bytes": self.params.num,
                    "blocks": self.params.blockcount,
                    "reverse": u8::from(self.params.reverse),
                    "tos": 0,
                },
            },
            "intervals": intervals,
            "end": end,
        })
    }
}

/// `ringstack iperf`.
pub fn run(args: &IperfArgs) -> Result<()> {
    if args.parallel == 0 || args.parallel > MAX_STREAMS {
        bail!("-P {}: use 1..={MAX_STREAMS} streams", args.parallel);
    }
    let len = args.length.unwrap_or(DEFAULT_BLKSIZE as u64);
    if len == 0 || len > MAX_BLOCKSIZE as u64 {
        bail!("-l {len}: the block size must be 1..={MAX_BLOCKSIZE} bytes");
    }
    if args.interval.is_nan() || args.interval < 0.0 {
        bail!("-i {}: the interval cannot be negative", args.interval);
    }
    let params = Params {
        time: match args.bytes {
            Some(_) => 0,
            None => args.time.unwrap_or(10),
        },
        num: args.bytes.unwrap_or(0),
        parallel: args.parallel,
        reverse: args.reverse,
        len: len as usize,
        ..Params::default()
    };
    if params.time == 0 && params.num == 0 {
        bail!("-t 0 needs -n: give a time or a byte count");
    }
    let server = SocketAddrV4::new(args.server, args.port);
    let config = args.net.config()?;
    let mut rt = Runtime::new(args.net.open_nic()?, config)?;
    let now = rt.now();
    let ctrl = rt.stack().tcp_connect(now, server, 0)?;
    let _ = rt.stack().tcp_mut().set_nodelay(ctrl, true);
    if !args.json {
        println!("Connecting to host {}, port {}", args.server, args.port);
        if args.reverse {
            println!("Reverse mode, remote host {} is sending", args.server);
        }
    }
    let mut test = Test {
        params,
        server,
        cookie: make_cookie(cookie_seed()),
        ctrl,
        ctrl_cookie_sent: 0,
        inbox: Inbox::default(),
        out: Vec::new(),
        expect: Expect::State,
        streams: Vec::new(),
        creating: false,
        start: None,
        running: false,
        end: None,
        server_results: None,
        done: false,
        interval: (args.interval > 0.0)
            .then(|| Duration::from_micros((args.interval * 1e6) as u64)),
        interval_start: None,
        intervals: Vec::new(),
        sent_total: 0,
        received_total: 0,
        cpu: CpuMeter::start(),
        our_cpu: (0.0, 0.0, 0.0),
        last_progress: now,
        block: data_block(len as usize),
        buf: vec![0; 256 * 1024],
        text: !args.json,
        congestion: None,
        progress: Progress::none(),
    };
    test.progress = match test.params.byte_limit() {
        Some(n) => args.progress.bar(Some(n), "iperf"),
        None => args
            .progress
            .timed(test.params.time + test.params.omit, "iperf"),
    };
    let stall = Duration::from_secs(args.stall_timeout.max(1));
    let result = rt.run(|now, stack| test.step(now, stack, stall));
    test.progress.finish();
    if let Err(e) = result {
        if args.json {
            let mut j = if test.start.is_some() {
                test.json()
            } else {
                json!({"start": {}, "intervals": [], "end": {}})
            };
            j["error"] = json!(e.to_string());
            println!("{}", serde_json::to_string_pretty(&j)?);
        }
        let now = rt.now();
        let _ = rt.stack().tcp_abort(now, ctrl);
        return Err(e);
    }
    if !test.done {
        bail!("interrupted");
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&test.json())?);
    } else {
        test.print_text();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_like_iperf3() {
        assert_eq!(parse_size("20M"), Ok(20 << 20));
        assert_eq!(parse_size("128K"), Ok(128 << 10));
        assert_eq!(parse_size("1g"), Ok(1 << 30));
        assert_eq!(parse_size("1000"), Ok(1000));
        assert_eq!(parse_size("1.5K"), Ok(1536));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("-1").is_err());
    }

    #[test]
    fn units_like_iperf3() {
        assert_eq!(fmt_bytes(35_232_153), "33.6 MBytes");
        assert_eq!(fmt_bytes(512), " 512 Bytes");
        assert_eq!(fmt_rate(94_300_000.0), "94.3 Mbits/sec");
        assert_eq!(fmt_rate(1_234_000_000.0), "1.23 Gbits/sec");
    }
}
