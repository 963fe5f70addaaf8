//! HTTP/1.1 (RFC 9112), sans-IO: what every I/O model of `ringstack serve` shares.
//!
//! A [`Handler`] holds the site (a root directory, or a built-in page) and the response
//! counters; a [`Session`] is one connection's protocol state. The model's I/O loop — direct on
//! the stack, reactor, proactor or a thread per connection (`apps/src/models/`) — only moves
//! bytes: it hands what it reads to [`Session::on_data`], sends the [`Chunk`]s that
//! [`Session::front`] returns (in-memory bytes, or a range of a file for `send_file`), reports
//! what it sent with [`Session::advance`], and closes when [`Session::finished`] says so.
//! Parsing, routing, `Range`, `If-Modified-Since`, MIME types and keep-alive live here once.
//!
//! What the server does: GET and HEAD of files under the root; keep-alive and pipelining
//! (requests are answered in order, several responses may be queued); Content-Length,
//! Content-Type, Last-Modified; `If-Modified-Since` → 304 (RFC 9110 §13.1.3); `Range: bytes=`
//! with one range → 206 and `Content-Range`, several → 206 `multipart/byteranges` (RFC 9110
//! §14.6), overlapping or adjacent ranges coalesced, more than [`MAX_RANGES`] ignored (200, the
//! whole file), none satisfiable → 416; 400/404/405/431; and no way out of the root (`..`
//! segments are refused, symlinks are resolved and checked).

use std::collections::VecDeque;
use std::fs::File;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::Result;

/// Largest request head we accept (request line + headers): beyond it, 431.
pub const MAX_HEAD: usize = 16 * 1024;
/// Most range-specs in one `Range` header; a header with more is ignored (200, the whole file),
/// so a request cannot make us build thousands of parts (cf. CVE-2011-3192).
pub const MAX_RANGES: usize = 32;
/// Responses queued per connection before we stop parsing pipelined requests (backpressure).
const MAX_QUEUED: usize = 32;
/// In-memory response bytes queued per connection before we stop parsing pipelined requests.
const MAX_QUEUED_BYTES: usize = 64 * 1024;

const INDEX: &str = "<!doctype html><title>ringstack</title><h1>ringstack</h1>\
<p>This page was served by a userspace TCP/IP stack. Start it with <code>--http-root DIR</code> \
to serve files.</p>\n";

/// Something to send: bytes in memory, or a range of a file (for `send_file`).
#[derive(Debug)]
pub enum Chunk {
    /// `buf[pos..]` is still to be sent.
    Bytes {
        /// The bytes.
        buf: Vec<u8>,
        /// How much of them is already sent.
        pos: usize,
    },
    /// `len` bytes of `file` from `offset` are still to be sent.
    File {
        /// The open file (shared: a multipart response has several ranges of one file).
        file: Arc<File>,
        /// Next byte to send.
        offset: u64,
        /// Bytes left.
        len: u64,
    },
}

impl Chunk {
    /// Bytes left to send.
    pub fn remaining(&self) -> u64 {
        match self {
            Chunk::Bytes { buf, pos } => (buf.len() - pos) as u64,
            Chunk::File { len, .. } => *len,
        }
    }

    /// Copies up to `max` of the next bytes into `out` (cleared first), reading the file with
    /// `pread` if it is a file range: for I/O styles that need owned buffers (the proactor).
    /// Does not consume them: call [`Session::advance`] once they are sent.
    pub fn copy_to(&self, out: &mut Vec<u8>, max: usize) -> io::Result<()> {
        out.clear();
        match self {
            Chunk::Bytes { buf, pos } => {
                let n = (buf.len() - pos).min(max);
                out.extend_from_slice(&buf[*pos..*pos + n]);
            }
            Chunk::File { file, offset, len } => {
                use std::os::unix::fs::FileExt;
                let n = (*len).min(max as u64) as usize;
                out.resize(n, 0);
                file.read_exact_at(out, *offset)?;
            }
        }
        Ok(())
    }
}

/// Responses sent, by status class, plus what the connection limit did; shared by every
/// connection of a service (atomics: the threaded styles update them from many threads).
#[derive(Debug, Default)]
pub struct HttpCounters {
    /// Responses by status class: index 1..=5 (1xx..5xx).
    pub responses: [AtomicU64; 6],
}

impl HttpCounters {
    fn count(&self, code: u16) {
        self.responses[(code / 100).min(5) as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// A snapshot of the responses by class (index 1..=5).
    pub fn snapshot(&self) -> [u64; 6] {
        std::array::from_fn(|i| self.responses[i].load(Ordering::Relaxed))
    }
}

/// The site: where files come from, and the counters. Share it between connections (and
/// threads) with an `Arc`.
#[derive(Debug)]
pub struct Handler {
    root: Option<PathBuf>,
    /// Responses sent.
    pub counters: HttpCounters,
    hasher: std::collections::hash_map::RandomState,
    next_boundary: AtomicU64,
}

/// A parsed request head.
struct Request<'a> {
    method: &'a str,
    target: &'a str,
    keep_alive: bool,
    range: Option<&'a str>,
    if_modified_since: Option<&'a str>,
}

/// What a `Range` header asks of a file of `len` bytes (RFC 9110 §14).
#[derive(Debug, PartialEq, Eq)]
enum RangeAsk {
    /// No (usable) range: the whole file, 200.
    Whole,
    /// These byte ranges, `first..=last` each, ascending and disjoint (non-adjacent): 206.
    Parts(Vec<(u64, u64)>),
    /// Nothing of the file satisfies it: 416.
    Unsatisfiable,
}

/// Parses `bytes=` range-specs (RFC 9110 §14.1.2) against a file of `len` bytes.
///
/// Any syntax error, another unit, or more than [`MAX_RANGES`] specs: the header is ignored
/// (a server may always answer with the whole representation). Specs that start at or beyond
/// the end are unsatisfiable and left out; if none is left, 416. The satisfiable ones are
/// sorted and coalesced where they overlap or touch (§14.6 allows it, "regardless of the order
/// in which the corresponding range-spec appeared"), so the parts never overlap.
fn parse_range(value: &str, len: u64) -> RangeAsk {
    let Some(set) = value.trim().strip_prefix("bytes=") else {
        return RangeAsk::Whole;
    };
    // `1#range-spec`: empty list elements are allowed and ignored (RFC 9110 §5.6.1.2).
    let specs: Vec<&str> = set
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if specs.is_empty() || specs.len() > MAX_RANGES {
        return RangeAsk::Whole;
    }
    let mut parts = Vec::with_capacity(specs.len());
    for spec in specs {
        let Some((a, b)) = spec.split_once('-') else {
            return RangeAsk::Whole;
        };
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
        if a.is_empty() {
            // suffix-range: the last N bytes.
            let Some(n) = digits(b).then(|| b.parse::<u64>().ok()).flatten() else {
                return RangeAsk::Whole;
            };
            if n > 0 && len > 0 {
                parts.push((len.saturating_sub(n), len - 1));
            }
            continue;
        }
        let Some(first) = digits(a).then(|| a.parse::<u64>().ok()).flatten() else {
            return RangeAsk::Whole;
        };
        let last = if b.is_empty() {
            u64::MAX
        } else {
            match digits(b).then(|| b.parse::<u64>().ok()).flatten() {
                Some(l) if l >= first => l,
                // A-B with B < A is invalid: the whole header is.
                _ => return RangeAsk::Whole,
            }
        };
        if first < len {
            parts.push((first, last.min(len - 1)));
        }
    }
    if parts.is_empty() {
        return RangeAsk::Unsatisfiable;
    }
    parts.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::with_capacity(parts.len());
    for (a, b) in parts {
        match merged.last_mut() {
            Some((_, end)) if a <= end.saturating_add(1) => *end = (*end).max(b),
            _ => merged.push((a, b)),
        }
    }
    RangeAsk::Parts(merged)
}

/// The MIME type for a file name.
pub fn content_type(path: &Path) -> &'static str {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("html" | "htm") => "text/html; charset=utf-8",
        Some("txt" | "md") => "text/plain; charset=utf-8",
        Some("css") => "text/css",
        Some("js" | "mjs") => "text/javascript",
        Some("json") => "application/json",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("gif") => "image/gif",
        Some("svg") => "image/svg+xml",
        Some("ico") => "image/x-icon",
        Some("pdf") => "application/pdf",
        Some("wasm") => "application/wasm",
        _ => "application/octet-stream",
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Parses the head (everything before the blank line). `None` = malformed.
fn parse_head(head: &str) -> Option<Request<'_>> {
    let mut lines = head.split("\r\n");
    let mut parts = lines.next()?.split(' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || !target.starts_with('/') {
        return None;
    }
    let (mut range, mut if_modified_since) = (None, None);
    let mut keep_alive = match version {
        "HTTP/1.1" => true,
        "HTTP/1.0" => false,
        _ => return None,
    };
    for line in lines {
        let (name, value) = line.split_once(':')?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("connection") {
            if value.eq_ignore_ascii_case("close") {
                keep_alive = false;
            } else if value.eq_ignore_ascii_case("keep-alive") {
                keep_alive = true;
            }
        } else if name.eq_ignore_ascii_case("range") {
            range = Some(value);
        } else if name.eq_ignore_ascii_case("if-modified-since") {
            if_modified_since = Some(value);
        } else if (name.eq_ignore_ascii_case("content-length") && value != "0")
            || name.eq_ignore_ascii_case("transfer-encoding")
        {
            return None; // GET/HEAD with a body: not supported, refuse cleanly
        }
    }
    Some(Request {
        method,
        target,
        keep_alive,
        range,
        if_modified_since,
    })
}

/// Whether a file modified at `modified` is not newer than the client's copy (RFC 9110
/// §13.1.3, at the one-second resolution of HTTP dates).
fn not_modified_since(modified: Option<std::time::SystemTime>, since: Option<&str>) -> bool {
    let secs = |t: std::time::SystemTime| {
        t.duration_since(std::time::UNIX_EPOCH)
            .ok()
            .map(|d| d.as_secs())
    };
    match (
        modified.and_then(secs),
        since
            .and_then(|v| httpdate::parse_http_date(v).ok())
            .and_then(secs),
    ) {
        (Some(m), Some(s)) => m <= s,
        _ => false,
    }
}

/// One response being built: appended to the session's queue.
struct Out<'a> {
    chunks: &'a mut VecDeque<Chunk>,
    close: bool,
    /// A HEAD request: headers only (RFC 9110 §9.3.2), also for errors.
    head_only: bool,
}

impl Out<'_> {
    fn bytes(&mut self, b: &[u8]) {
        if let Some(Chunk::Bytes { buf, .. }) = self.chunks.back_mut() {
            buf.extend_from_slice(b);
        } else {
            self.chunks.push_back(Chunk::Bytes {
                buf: b.to_vec(),
                pos: 0,
            });
        }
    }

    fn file(&mut self, file: &Arc<File>, offset: u64, len: u64) {
        if len > 0 {
            self.chunks.push_back(Chunk::File {
                file: Arc::clone(file),
                offset,
                len,
            });
        }
    }

    fn head(&mut self, code: u16, reason: &str, len: Option<u64>, ctype: &str, extra: &str) {
        // 304 carries no body and so no Content-Length (RFC 9110 §15.4.5).
        let len = len
            .map(|l| format!("Content-Length: {l}\r\n"))
            .unwrap_or_default();
        let conn = if self.close { "close" } else { "keep-alive" };
        self.bytes(
            format!(
                "HTTP/1.1 {code} {reason}\r\nServer: ringstack\r\n{len}Content-Type: {ctype}\r\n{extra}Connection: {conn}\r\n\r\n"
            )
            .as_bytes(),
        );
    }
}

impl Handler {
    /// Serves files under `root` (or a built-in page at `/` without one).
    pub fn new(root: Option<&Path>) -> Result<Handler> {
        let root = match root {
            Some(r) => Some(
                r.canonicalize()
                    .map_err(|e| anyhow::anyhow!("--http-root {}: {e}", r.display()))?,
            ),
            None => None,
        };
        Ok(Handler {
            root,
            counters: HttpCounters::default(),
            hasher: std::collections::hash_map::RandomState::new(),
            next_boundary: AtomicU64::new(0),
        })
    }

    /// A multipart boundary no file is likely to contain (RFC 2046 §5.1.1: at most 70
    /// characters; unpredictable, so a file cannot be crafted to contain it).
    fn boundary(&self) -> String {
        let mut h = self.hasher.build_hasher();
        h.write_u64(self.next_boundary.fetch_add(1, Ordering::Relaxed));
        format!("ringstack-{:016x}", h.finish())
    }

    /// Maps a request target to a file under the root, refusing any escape.
    fn resolve(&self, target: &str) -> Result<PathBuf, u16> {
        let root = self.root.as_ref().ok_or(404u16)?;
        let path = target.split(['?', '#']).next().unwrap_or("/");
        let path = percent_decode(path).ok_or(400u16)?;
        if path.contains('\0') {
            return Err(400);
        }
        let mut full = root.clone();
        for c in Path::new(&path).components() {
            match c {
                Component::Normal(p) => full.push(p),
                Component::RootDir | Component::CurDir => {}
                Component::ParentDir | Component::Prefix(_) => return Err(400),
            }
        }
        if full.is_dir() {
            full.push("index.html");
        }
        let real = full.canonicalize().map_err(|_| 404u16)?;
        if !real.starts_with(root) || !real.is_file() {
            return Err(404);
        }
        Ok(real)
    }

    fn error(&self, out: &mut Out<'_>, code: u16, reason: &str, close: bool, extra: &str) {
        self.counters.count(code);
        out.close |= close;
        let body = format!("{code} {reason}\n");
        let conn = if out.close { "close" } else { "keep-alive" };
        out.bytes(
            format!(
                "HTTP/1.1 {code} {reason}\r\n{extra}Server: ringstack\r\nContent-Length: {}\r\nContent-Type: text/plain\r\nConnection: {conn}\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        );
        if !out.head_only {
            out.bytes(body.as_bytes());
        }
    }

    /// Appends the response to one request head to `out`; sets `out.close` when the
    /// connection must close after it.
    fn respond(&self, out: &mut Out<'_>, head: &str) {
        let Some(req) = parse_head(head) else {
            return self.error(out, 400, "Bad Request", true, "");
        };
        out.close |= !req.keep_alive;
        out.head_only = req.method == "HEAD";
        let head_only = match req.method {
            "GET" => false,
            "HEAD" => true,
            _ => {
                let allow = "Allow: GET, HEAD\r\n";
                return self.error(out, 405, "Method Not Allowed", false, allow);
            }
        };
        if self.root.is_none() && (req.target == "/" || req.target == "/index.html") {
            self.counters.count(200);
            let ctype = "text/html; charset=utf-8";
            out.head(200, "OK", Some(INDEX.len() as u64), ctype, "");
            if !head_only {
                out.bytes(INDEX.as_bytes());
            }
            return;
        }
        let (path, file, len) = match self.resolve(req.target).and_then(|p| {
            let f = File::open(&p).map_err(|_| 404u16)?;
            let len = f.metadata().map_err(|_| 404u16)?.len();
            Ok((p, f, len))
        }) {
            Ok(found) => found,
            Err(400) => return self.error(out, 400, "Bad Request", false, ""),
            Err(_) => return self.error(out, 404, "Not Found", false, ""),
        };
        let modified = file.metadata().and_then(|m| m.modified()).ok();
        let ctype = content_type(&path);
        let mut extra = String::from("Accept-Ranges: bytes\r\n");
        if let Some(m) = modified {
            extra += &format!("Last-Modified: {}\r\n", httpdate::fmt_http_date(m));
        }
        if not_modified_since(modified, req.if_modified_since) {
            self.counters.count(304);
            out.head(304, "Not Modified", None, ctype, &extra);
            return;
        }
        let file = Arc::new(file);
        match req.range.map_or(RangeAsk::Whole, |r| parse_range(r, len)) {
            RangeAsk::Whole => {
                self.counters.count(200);
                out.head(200, "OK", Some(len), ctype, &extra);
                if !head_only {
                    out.file(&file, 0, len);
                }
            }
            RangeAsk::Parts(parts) if parts.len() == 1 => {
                let (first, last) = parts[0];
                self.counters.count(206);
                extra += &format!("Content-Range: bytes {first}-{last}/{len}\r\n");
                let n = last - first + 1;
                out.head(206, "Partial Content", Some(n), ctype, &extra);
                if !head_only {
                    out.file(&file, first, n);
                }
            }
            RangeAsk::Parts(parts) => {
                // RFC 9110 §14.6: each part has its own Content-Type and Content-Range; the
                // boundary delimiters are CRLF "--" boundary, the last one followed by "--".
                self.counters.count(206);
                let boundary = self.boundary();
                let part_heads: Vec<String> = parts
                    .iter()
                    .map(|(a, b)| {
                        format!(
                            "\r\n--{boundary}\r\nContent-Type: {ctype}\r\nContent-Range: bytes {a}-{b}/{len}\r\n\r\n"
                        )
                    })
                    .collect();
                let closing = format!("\r\n--{boundary}--\r\n");
                let total: u64 = part_heads.iter().map(|h| h.len() as u64).sum::<u64>()
                    + parts.iter().map(|(a, b)| b - a + 1).sum::<u64>()
                    + closing.len() as u64;
                let mtype = format!("multipart/byteranges; boundary={boundary}");
                out.head(206, "Partial Content", Some(total), &mtype, &extra);
                if !head_only {
                    for (h, (a, b)) in part_heads.iter().zip(&parts) {
                        out.bytes(h.as_bytes());
                        out.file(&file, *a, b - a + 1);
                    }
                    out.bytes(closing.as_bytes());
                }
            }
            RangeAsk::Unsatisfiable => {
                let cr = format!("Content-Range: bytes */{len}\r\n");
                self.error(out, 416, "Range Not Satisfiable", false, &cr);
            }
        }
    }
}

/// One connection's HTTP state: received bytes not yet parsed, responses queued, and whether
/// the connection ends after them.
#[derive(Debug, Default)]
pub struct Session {
    input: Vec<u8>,
    out: VecDeque<Chunk>,
    /// Bytes of `Chunk::Bytes` queued in `out`.
    queued_bytes: usize,
    close_after: bool,
    eof: bool,
}

impl Session {
    /// A fresh connection.
    pub fn new() -> Session {
        Session::default()
    }

    /// Bytes received from the peer.
    pub fn on_data(&mut self, data: &[u8]) {
        self.input.extend_from_slice(data);
    }

    /// The peer closed its side (a read returned 0).
    pub fn on_eof(&mut self) {
        self.eof = true;
    }

    /// Whether the I/O loop should read more now: not after end of stream or a response that
    /// closes the connection, and not while a request head too large to buffer waits.
    pub fn wants_read(&self) -> bool {
        !self.eof && !self.close_after && self.input.len() <= MAX_HEAD
    }

    /// Whether anything is queued to send.
    pub fn has_output(&self) -> bool {
        !self.out.is_empty()
    }

    /// Parses queued requests into responses while there is room in the output queue.
    fn fill(&mut self, h: &Handler) {
        while !self.close_after
            && self.out.len() < MAX_QUEUED
            && self.queued_bytes < MAX_QUEUED_BYTES
        {
            if let Some(end) = self.input.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.input[..end]).into_owned();
                self.input.drain(..end + 4);
                let mut out = Out {
                    chunks: &mut self.out,
                    close: false,
                    head_only: false,
                };
                h.respond(&mut out, &head);
                self.close_after |= out.close;
            } else if self.input.len() > MAX_HEAD {
                h.counters.count(431);
                self.close_after = true;
                Out {
                    chunks: &mut self.out,
                    close: true,
                    head_only: false,
                }
                .bytes(
                    b"HTTP/1.1 431 Request Header Fields Too Large\r\nServer: ringstack\r\n\
                      Content-Length: 0\r\nConnection: close\r\n\r\n",
                );
            } else {
                break;
            }
            self.recount();
        }
    }

    fn recount(&mut self) {
        self.queued_bytes = self
            .out
            .iter()
            .map(|c| match c {
                Chunk::Bytes { buf, pos } => buf.len() - pos,
                Chunk::File { .. } => 0,
            })
            .sum();
    }

    /// The next chunk to send, parsing the next pipelined request if nothing is queued.
    pub fn front(&mut self, h: &Handler) -> Option<&mut Chunk> {
        if self.out.is_empty() {
            self.fill(h);
        }
        self.out.front_mut()
    }

    /// Takes the next piece of output as one owned buffer, for completion-based I/O that hands
    /// buffers over (the proactor): queued chunks are gathered into `spare` (or a new buffer)
    /// up to `max` bytes — in-memory bytes copied (or handed over as they are when they come
    /// first and alone), file ranges read with `pread` — so a response head and the start of
    /// its body leave in one write. The piece is consumed at once: the caller must send all
    /// of it. `Ok(None)`: nothing to send now.
    pub fn take_next(
        &mut self,
        h: &Handler,
        spare: Option<Vec<u8>>,
        max: usize,
    ) -> io::Result<Option<Vec<u8>>> {
        if self.front(h).is_none() {
            return Ok(None);
        }
        // Bytes alone at the front (or already at the limit): hand the buffer over as it is.
        let alone = matches!(self.out.front(), Some(Chunk::Bytes { buf, pos }) if buf.len() - pos >= max)
            || (self.out.len() == 1 && matches!(self.out.front(), Some(Chunk::Bytes { .. })));
        if alone {
            if let Some(Chunk::Bytes { mut buf, pos }) = self.out.pop_front() {
                buf.drain(..pos);
                self.recount();
                return Ok(Some(buf));
            }
        }
        let mut out = spare.unwrap_or_default();
        out.clear();
        let mut piece = Vec::new();
        while out.len() < max {
            let Some(chunk) = self.out.front() else {
                break;
            };
            chunk.copy_to(&mut piece, max - out.len())?;
            out.extend_from_slice(&piece);
            self.advance(piece.len() as u64);
        }
        Ok(Some(out))
    }

    /// `n` bytes of the front chunk were sent.
    pub fn advance(&mut self, n: u64) {
        let Some(front) = self.out.front_mut() else {
            return;
        };
        let done = match front {
            Chunk::Bytes { buf, pos } => {
                *pos = (*pos + n as usize).min(buf.len());
                self.queued_bytes = self.queued_bytes.saturating_sub(n as usize);
                *pos == buf.len()
            }
            Chunk::File { offset, len, .. } => {
                let n = n.min(*len);
                *offset += n;
                *len -= n;
                *len == 0
            }
        };
        if done {
            self.out.pop_front();
        }
    }

    /// Whether the connection is over: nothing left to send, and either a response said
    /// `Connection: close` or the peer closed and no complete request is left.
    pub fn finished(&mut self, h: &Handler) -> bool {
        if self.out.is_empty() {
            self.fill(h);
        }
        self.out.is_empty() && (self.close_after || self.eof)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_parse_and_keep_alive_follows_the_version() {
        let r = parse_head("GET /a HTTP/1.1\r\nHost: x").unwrap();
        assert_eq!((r.method, r.target, r.keep_alive), ("GET", "/a", true));
        assert!(!parse_head("GET /a HTTP/1.0").unwrap().keep_alive);
        assert!(
            parse_head("GET /a HTTP/1.0\r\nConnection: keep-alive")
                .unwrap()
                .keep_alive
        );
        assert!(
            !parse_head("GET /a HTTP/1.1\r\nConnection: close")
                .unwrap()
                .keep_alive
        );
        assert!(parse_head("GET a HTTP/1.1").is_none());
        assert!(parse_head("GET /a HTTP/2").is_none());
        assert!(parse_head("GET /a HTTP/1.1\r\nbroken header").is_none());
    }

    fn parts(v: &[(u64, u64)]) -> RangeAsk {
        RangeAsk::Parts(v.to_vec())
    }

    #[test]
    fn single_ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), parts(&[(0, 9)]));
        assert_eq!(parse_range("bytes=90-", 100), parts(&[(90, 99)]));
        assert_eq!(parse_range("bytes=-10", 100), parts(&[(90, 99)]));
        assert_eq!(parse_range("bytes=-1000", 100), parts(&[(0, 99)]));
        assert_eq!(parse_range("bytes=50-1000", 100), parts(&[(50, 99)]));
        assert_eq!(parse_range("bytes=100-", 100), RangeAsk::Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 100), RangeAsk::Unsatisfiable);
        assert_eq!(parse_range("bytes=9-3", 100), RangeAsk::Whole);
        assert_eq!(parse_range("lines=1-2", 100), RangeAsk::Whole);
        assert_eq!(parse_range("bytes=x-y", 100), RangeAsk::Whole);
        assert_eq!(parse_range("bytes=+1-2", 100), RangeAsk::Whole);
        assert_eq!(parse_range("bytes=", 100), RangeAsk::Whole);
    }

    #[test]
    fn multiple_ranges_are_sorted_coalesced_and_bounded() {
        assert_eq!(
            parse_range("bytes=0-9,20-29", 100),
            parts(&[(0, 9), (20, 29)])
        );
        // Out of order, with whitespace and an empty element.
        assert_eq!(
            parse_range("bytes= 20-29 , ,0-9", 100),
            parts(&[(0, 9), (20, 29)])
        );
        // Overlapping and adjacent ranges merge.
        assert_eq!(parse_range("bytes=0-9,5-14", 100), parts(&[(0, 14)]));
        assert_eq!(parse_range("bytes=0-9,10-19", 100), parts(&[(0, 19)]));
        assert_eq!(
            parse_range("bytes=0-0,0-0,0-0,-1", 100),
            parts(&[(0, 0), (99, 99)])
        );
        // Unsatisfiable specs are left out; all unsatisfiable is 416.
        assert_eq!(parse_range("bytes=0-9,200-300", 100), parts(&[(0, 9)]));
        assert_eq!(
            parse_range("bytes=100-,200-300", 100),
            RangeAsk::Unsatisfiable
        );
        // One bad spec spoils the header.
        assert_eq!(parse_range("bytes=0-9,x", 100), RangeAsk::Whole);
        // Too many specs: ignored.
        let many: Vec<String> = (0..=MAX_RANGES)
            .map(|i| format!("{0}-{0}", i * 2))
            .collect();
        assert_eq!(
            parse_range(&format!("bytes={}", many.join(",")), 1000),
            RangeAsk::Whole
        );
        let ok: Vec<String> = (0..MAX_RANGES).map(|i| format!("{0}-{0}", i * 2)).collect();
        assert!(
            matches!(parse_range(&format!("bytes={}", ok.join(",")), 1000), RangeAsk::Parts(p) if p.len() == MAX_RANGES)
        );
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("/a%20b").as_deref(), Some("/a b"));
        assert_eq!(percent_decode("/%2e%2e/x").as_deref(), Some("/../x"));
        assert!(percent_decode("/%zz").is_none());
    }

    #[test]
    fn content_types() {
        assert_eq!(
            content_type(Path::new("a.HTML")),
            "text/html; charset=utf-8"
        );
        assert_eq!(content_type(Path::new("a.bin")), "application/octet-stream");
    }

    /// Runs `session` to completion by copying every chunk (as the proactor does).
    fn drain(s: &mut Session, h: &Handler) -> Vec<u8> {
        let mut all = Vec::new();
        let mut buf = Vec::new();
        while let Some(c) = s.front(h) {
            c.copy_to(&mut buf, 1000).unwrap();
            let n = buf.len() as u64;
            all.extend_from_slice(&buf);
            s.advance(n);
        }
        all
    }

    fn site() -> (PathBuf, Handler) {
        let dir = std::env::temp_dir().join(format!(
            "ringstack-http-unit-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let data: Vec<u8> = (0..100u8).collect();
        std::fs::write(dir.join("f.bin"), data).unwrap();
        let h = Handler::new(Some(&dir)).unwrap();
        (dir, h)
    }

    #[test]
    fn a_multipart_response_has_exact_boundaries_and_length() {
        let (dir, h) = site();
        let mut s = Session::new();
        s.on_data(b"GET /f.bin HTTP/1.1\r\nRange: bytes=20-29,0-9\r\n\r\n");
        let resp = drain(&mut s, &h);
        let text = String::from_utf8_lossy(&resp).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(
            head.starts_with("HTTP/1.1 206 Partial Content\r\n"),
            "{head}"
        );
        let boundary = head
            .split("boundary=")
            .nth(1)
            .unwrap()
            .split("\r\n")
            .next()
            .unwrap();
        let len: usize = head
            .split("Content-Length: ")
            .nth(1)
            .unwrap()
            .split("\r\n")
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let body_bytes = &resp[head.len() + 4..];
        assert_eq!(body_bytes.len(), len, "Content-Length matches the body");
        let mut want = Vec::new();
        for (a, b) in [(0u8, 9u8), (20, 29)] {
            want.extend_from_slice(
                format!(
                    "\r\n--{boundary}\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes {a}-{b}/100\r\n\r\n"
                )
                .as_bytes(),
            );
            want.extend(a..=b);
        }
        want.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        assert_eq!(body_bytes, &want[..], "{body}");
        assert!(!s.finished(&h), "keep-alive: the connection stays open");
        s.on_eof();
        assert!(s.finished(&h));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn pipelined_requests_are_answered_in_order_and_close_is_honoured() {
        let (dir, h) = site();
        let mut s = Session::new();
        s.on_data(b"GET /f.bin HTTP/1.1\r\nRange: bytes=0-1\r\n\r\nHEAD /nope HTTP/1.1\r\n\r\n");
        s.on_data(b"GET /f.bin HTTP/1.1\r\nConnection: close\r\nRange: bytes=-2\r\n\r\nGET / HTTP/1.1\r\n\r\n");
        let text = String::from_utf8_lossy(&drain(&mut s, &h)).into_owned();
        let codes: Vec<&str> = text
            .match_indices("HTTP/1.1 ")
            .map(|(i, _)| &text[i + 9..i + 12])
            .collect();
        assert_eq!(codes, ["206", "404", "206"], "{text}");
        assert!(
            text.ends_with("Connection: close\r\n\r\n\u{62}\u{63}"),
            "{text:?}"
        );
        assert!(
            s.finished(&h),
            "closes after the Connection: close response"
        );
        assert!(!s.wants_read());
        assert_eq!(h.counters.snapshot(), [0, 0, 2, 0, 1, 0]);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn an_oversized_head_gets_431_and_a_bad_one_400() {
        let (dir, h) = site();
        let mut s = Session::new();
        s.on_data(&vec![b'a'; MAX_HEAD + 1]);
        assert!(!s.wants_read());
        let text = String::from_utf8_lossy(&drain(&mut s, &h)).into_owned();
        assert!(text.starts_with("HTTP/1.1 431 "), "{text}");
        assert!(s.finished(&h));
        let mut s = Session::new();
        s.on_data(b"BREW /pot HTTP/1.1\r\n\r\nnonsense\r\n\r\n");
        let text = String::from_utf8_lossy(&drain(&mut s, &h)).into_owned();
        assert!(text.starts_with("HTTP/1.1 405 "), "{text}");
        assert!(text.contains("HTTP/1.1 400 "), "{text}");
        assert!(s.finished(&h));
        let _ = std::fs::remove_dir_all(dir);
    }
}
