//! A small HTTP/1.1 file server (RFC 9112): GET and HEAD of files under a root directory,
//! keep-alive and pipelining, Content-Length and Content-Type, single-range requests (206/416),
//! Last-Modified and If-Modified-Since (304), 400/404/405/431, and no way out
//! of the root (`..` segments are refused, symlinks are resolved and checked).

use std::fs::File;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

use anyhow::Result;
use ringstack_stack::{Duration, Instant, Stack, TcpError, TcpHandle};

use super::{accept_all, flush, Service};

/// Largest request head we accept (request line + headers).
const MAX_HEAD: usize = 16 * 1024;
/// Connections idle this long are closed (slowloris defence).
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Bytes of a file read per refill of a connection's output buffer.
const CHUNK: usize = 64 * 1024;

const INDEX: &str = "<!doctype html><title>ringstack</title><h1>ringstack</h1>\
<p>This page was served by a userspace TCP/IP stack. Start it with <code>--http-root DIR</code> \
to serve files.</p>\n";

struct Conn {
    h: TcpHandle,
    input: Vec<u8>,
    out: Vec<u8>,
    body: Option<(File, u64)>,
    close_after: bool,
    eof: bool,
    last_active: Instant,
}

/// The HTTP service.
pub struct Http {
    listener: TcpHandle,
    root: Option<PathBuf>,
    conns: Vec<Conn>,
    buf: Vec<u8>,
    /// Responses sent, by status class (index 1..=5).
    pub responses: [u64; 6],
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
    /// Bytes `first..=last`, 206.
    Part(u64, u64),
    /// Nothing of the file satisfies it: 416.
    Unsatisfiable,
}

/// Parses a single-range `bytes=` header. Multiple ranges and other units are ignored (a server
/// may always answer with the whole representation).
fn parse_range(value: &str, len: u64) -> RangeAsk {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return RangeAsk::Whole;
    };
    if spec.contains(',') {
        return RangeAsk::Whole;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeAsk::Whole;
    };
    let (a, b) = (a.trim(), b.trim());
    match (a.parse::<u64>(), b.parse::<u64>()) {
        // bytes=-N: the last N bytes.
        (Err(_), Ok(n)) if a.is_empty() => {
            if n == 0 || len == 0 {
                RangeAsk::Unsatisfiable
            } else {
                RangeAsk::Part(len.saturating_sub(n), len - 1)
            }
        }
        // bytes=A- and bytes=A-B.
        (Ok(first), last) if b.is_empty() || last.is_ok() => {
            let last = last.unwrap_or(u64::MAX).min(len.saturating_sub(1));
            if first >= len || (!b.is_empty() && b.parse::<u64>().is_ok_and(|l| l < first)) {
                if first >= len {
                    RangeAsk::Unsatisfiable
                } else {
                    RangeAsk::Whole // A-B with B < A is syntactically invalid: ignore it
                }
            } else {
                RangeAsk::Part(first, last)
            }
        }
        _ => RangeAsk::Whole,
    }
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

impl Http {
    /// Listens on TCP `port`, serving files under `root` (or a built-in page without one).
    pub fn new(stack: &mut Stack, port: u16, root: Option<PathBuf>) -> Result<Http> {
        let root = match root {
            Some(r) => Some(
                r.canonicalize()
                    .map_err(|e| anyhow::anyhow!("--http-root {}: {e}", r.display()))?,
            ),
            None => None,
        };
        Ok(Http {
            listener: stack.tcp_listen(port, 1024)?,
            root,
            conns: Vec::new(),
            buf: vec![0; 64 * 1024],
            responses: [0; 6],
        })
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

    /// Builds the response to one request into `c`.
    fn respond(&mut self, c: &mut Conn, head: &str) {
        let Some(req) = parse_head(head) else {
            return Self::error(&mut self.responses, c, 400, "Bad Request", true, "");
        };
        c.close_after = !req.keep_alive;
        let head_only = match req.method {
            "GET" => false,
            "HEAD" => true,
            _ => {
                let allow = "Allow: GET, HEAD\r\n";
                return Self::error(
                    &mut self.responses,
                    c,
                    405,
                    "Method Not Allowed",
                    false,
                    allow,
                );
            }
        };
        let target = req.target.to_string();
        if self.root.is_none() && (target == "/" || target == "/index.html") {
            self.responses[2] += 1;
            push_head(
                c,
                200,
                "OK",
                Some(INDEX.len() as u64),
                "text/html; charset=utf-8",
                "",
            );
            if !head_only {
                c.out.extend_from_slice(INDEX.as_bytes());
            }
            return;
        }
        match self.resolve(&target).and_then(|p| {
            let f = File::open(&p).map_err(|_| 404u16)?;
            let len = f.metadata().map_err(|_| 404u16)?.len();
            Ok((p, f, len))
        }) {
            Ok((path, mut file, len)) => {
                let modified = file.metadata().and_then(|m| m.modified()).ok();
                let last_modified = modified.map(httpdate::fmt_http_date);
                // RFC 9110 §13.1.3: not modified since the client's copy (second resolution).
                let fresh = match (
                    modified,
                    req.if_modified_since
                        .and_then(|v| httpdate::parse_http_date(v).ok()),
                ) {
                    (Some(m), Some(since)) => m
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_secs())
                        .ok()
                        .zip(
                            since
                                .duration_since(std::time::UNIX_EPOCH)
                                .ok()
                                .map(|d| d.as_secs()),
                        )
                        .is_some_and(|(m, s)| m <= s),
                    _ => false,
                };
                let ctype = content_type(&path);
                let mut extra = String::from("Accept-Ranges: bytes\r\n");
                if let Some(lm) = &last_modified {
                    extra += &format!("Last-Modified: {lm}\r\n");
                }
                if fresh {
                    self.responses[3] += 1;
                    push_head(c, 304, "Not Modified", None, ctype, &extra);
                    return;
                }
                match req.range.map_or(RangeAsk::Whole, |r| parse_range(r, len)) {
                    RangeAsk::Whole => {
                        self.responses[2] += 1;
                        push_head(c, 200, "OK", Some(len), ctype, &extra);
                        if !head_only && len > 0 {
                            c.body = Some((file, len));
                        }
                    }
                    RangeAsk::Part(first, last) => {
                        use std::io::{Seek, SeekFrom};
                        self.responses[2] += 1;
                        extra += &format!("Content-Range: bytes {first}-{last}/{len}\r\n");
                        let n = last - first + 1;
                        push_head(c, 206, "Partial Content", Some(n), ctype, &extra);
                        if !head_only && file.seek(SeekFrom::Start(first)).is_ok() {
                            c.body = Some((file, n));
                        }
                    }
                    RangeAsk::Unsatisfiable => {
                        let cr = format!("Content-Range: bytes */{len}\r\n");
                        Self::error(
                            &mut self.responses,
                            c,
                            416,
                            "Range Not Satisfiable",
                            false,
                            &cr,
                        );
                    }
                }
            }
            Err(400) => Self::error(&mut self.responses, c, 400, "Bad Request", false, ""),
            Err(_) => Self::error(&mut self.responses, c, 404, "Not Found", false, ""),
        }
    }

    fn error(
        responses: &mut [u64; 6],
        c: &mut Conn,
        code: u16,
        reason: &str,
        close: bool,
        extra: &str,
    ) {
        responses[(code / 100) as usize] += 1;
        c.close_after |= close;
        let body = format!("{code} {reason}\n");
        c.out.extend_from_slice(
            format!(
                "HTTP/1.1 {code} {reason}\r\n{extra}Server: ringstack\r\nContent-Length: {}\r\nContent-Type: text/plain\r\nConnection: {}\r\n\r\n{body}",
                body.len(),
                if c.close_after { "close" } else { "keep-alive" }
            )
            .as_bytes(),
        );
    }

    /// Serves one connection as far as it can go now. Returns (alive, did work).
    fn serve(&mut self, now: Instant, stack: &mut Stack, c: &mut Conn) -> (bool, bool) {
        let mut did = false;
        loop {
            match flush(now, stack, c.h, &mut c.out) {
                Ok(true) => did = true,
                Ok(false) => {}
                Err(_) => return (false, did),
            }
            if !c.out.is_empty() {
                break; // send buffer full: wait for ACKs
            }
            if let Some((file, remaining)) = &mut c.body {
                let n = (*remaining as usize).min(CHUNK);
                c.out.resize(n, 0);
                if file.read_exact(&mut c.out).is_err() {
                    return (false, did); // the file shrank under us: abort the connection
                }
                *remaining -= n as u64;
                if *remaining == 0 {
                    c.body = None;
                }
                continue;
            }
            if c.close_after {
                let _ = stack.tcp_close(now, c.h);
                return (false, did);
            }
            // Next request (pipelined requests wait in `input`).
            if let Some(end) = c.input.windows(4).position(|w| w == b"\r\n\r\n") {
                let head: Vec<u8> = c.input.drain(..end + 4).collect();
                let head = String::from_utf8_lossy(&head[..end]).into_owned();
                self.respond(c, &head);
                did = true;
                continue;
            }
            if c.input.len() > MAX_HEAD {
                c.out
                    .extend_from_slice(b"HTTP/1.1 431 Request Header Fields Too Large\r\n");
                c.close_after = true;
                self.responses[4] += 1;
                c.out.extend_from_slice(
                    b"Server: ringstack\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
                continue;
            }
            if c.eof {
                let _ = stack.tcp_close(now, c.h);
                return (false, did);
            }
            match stack.tcp_recv(now, c.h, &mut self.buf) {
                Ok(0) => c.eof = true,
                Ok(n) => {
                    c.input.extend_from_slice(&self.buf[..n]);
                    c.last_active = now;
                    did = true;
                }
                Err(TcpError::WouldBlock) => break,
                Err(_) => return (false, did),
            }
        }
        if now - c.last_active > IDLE_TIMEOUT && c.out.is_empty() && c.body.is_none() {
            let _ = stack.tcp_close(now, c.h);
            return (false, did);
        }
        (true, did)
    }
}

fn push_head(c: &mut Conn, code: u16, reason: &str, len: Option<u64>, ctype: &str, extra: &str) {
    // 304 carries no body and so no Content-Length (RFC 9110 §15.4.5).
    let len = len
        .map(|l| format!("Content-Length: {l}\r\n"))
        .unwrap_or_default();
    c.out.extend_from_slice(
        format!(
            "HTTP/1.1 {code} {reason}\r\nServer: ringstack\r\n{len}Content-Type: {ctype}\r\n{extra}Connection: {}\r\n\r\n",
            if c.close_after { "close" } else { "keep-alive" }
        )
        .as_bytes(),
    );
}

impl Service for Http {
    fn name(&self) -> &'static str {
        "http"
    }

    fn poll(&mut self, now: Instant, stack: &mut Stack) -> bool {
        let mut fresh = Vec::new();
        let mut did = accept_all(stack, self.listener, |h| fresh.push(h));
        self.conns.extend(fresh.into_iter().map(|h| Conn {
            h,
            input: Vec::new(),
            out: Vec::new(),
            body: None,
            close_after: false,
            eof: false,
            last_active: now,
        }));
        let mut conns = std::mem::take(&mut self.conns);
        conns.retain_mut(|c| {
            let (alive, d) = self.serve(now, stack, c);
            did |= d;
            if !alive {
                let _ = stack.tcp_close(now, c.h);
            }
            alive
        });
        self.conns = conns;
        did
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

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), RangeAsk::Part(0, 9));
        assert_eq!(parse_range("bytes=90-", 100), RangeAsk::Part(90, 99));
        assert_eq!(parse_range("bytes=-10", 100), RangeAsk::Part(90, 99));
        assert_eq!(parse_range("bytes=-1000", 100), RangeAsk::Part(0, 99));
        assert_eq!(parse_range("bytes=50-1000", 100), RangeAsk::Part(50, 99));
        assert_eq!(parse_range("bytes=100-", 100), RangeAsk::Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 100), RangeAsk::Unsatisfiable);
        assert_eq!(parse_range("bytes=9-3", 100), RangeAsk::Whole);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), RangeAsk::Whole);
        assert_eq!(parse_range("lines=1-2", 100), RangeAsk::Whole);
        assert_eq!(parse_range("bytes=x-y", 100), RangeAsk::Whole);
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
}
