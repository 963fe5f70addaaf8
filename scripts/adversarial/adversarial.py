#!/usr/bin/env python3
"""The adversarial packet suite: hostile, malformed and abusive traffic against a running
`ringstack serve`, sent with scapy from the kernel side of a lab namespace while legitimate
transfers run.

Run by apps/tests/lab_adversarial.rs inside the lab namespace (never anywhere else: it writes raw
frames to --iface). The driver and this script talk over stdin/stdout, one line each:

    script: READY {"upload_port": P, "download_port": Q}
    script: BEGIN <case>             driver snapshots counters and memory, answers "go"
    script: END {"case": .., "ok": bool, "expect": {"Drop.X": n, "Counter": n}, "note": ".."}
                                     driver snapshots again, checks, answers "next"
    script: DONE {"upload_bytes": .., "download_sha256": .., ...}

`expect` maps counter names (as `ringstack serve` prints them on SIGUSR1: `Drop.<Reason>` or a
counter name) to the least increase the case must cause; the driver asserts it. Every case also
checks on its own what it can see on the wire (a reply, a challenge ACK, an echo), and ends by
probing the services (echo round trip + HTTP GET) so that "the stack still serves" is checked
after every case.

Deterministic: every random choice comes from --seed. Bounded: every loop has a count and every
wait a timeout.

Usage (standalone, for debugging, inside the lab namespace):
    python3 adversarial.py --iface veth0 --rs-mac AA:.. --standalone [--cases a,b]
"""

import argparse
import fcntl
import hashlib
import json
import os
import random
import socket
import struct
import subprocess
import sys
import termios
import threading
import time
import xml.etree.ElementTree as ET

from scapy.config import conf
from scapy.layers.inet import ICMP, IP, TCP, UDP, fragment
from scapy.layers.l2 import ARP, Ether
from scapy.packet import Raw

conf.verb = 0

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10


def log(msg):
    print(f"# {msg}", file=sys.stderr, flush=True)


def mac_bytes(s):
    return bytes(int(x, 16) for x in s.split(":"))


def ip_bytes(s):
    return socket.inet_aton(s)


# --------------------------------------------------------------------------- wire parsing


class Seg:
    """A TCP segment ringstack sent (parsed by hand: fast enough for floods)."""

    __slots__ = ("src", "dst", "sport", "dport", "seq", "ack", "flags", "win", "opts", "payload")

    def __repr__(self):
        return (f"Seg({socket.inet_ntoa(self.src)}:{self.sport} > {socket.inet_ntoa(self.dst)}:"
                f"{self.dport} seq={self.seq} ack={self.ack} flags={self.flags:#x} win={self.win}"
                f" len={len(self.payload)})")


def parse_ipv4(frame):
    """(header, payload, protocol) of an IPv4 frame, or None."""
    if len(frame) < 34 or frame[12:14] != b"\x08\x00":
        return None
    ip = frame[14:]
    ihl = (ip[0] & 0xF) * 4
    total = struct.unpack("!H", ip[2:4])[0]
    if ihl < 20 or total < ihl or total > len(ip):
        return None
    return ip[:ihl], ip[ihl:total], ip[9]


def parse_tcp(frame):
    p = parse_ipv4(frame)
    if p is None or p[2] != 6 or len(p[1]) < 20:
        return None
    hdr, t, _ = p
    s = Seg()
    s.src, s.dst = hdr[12:16], hdr[16:20]
    s.sport, s.dport, s.seq, s.ack, off_flags, s.win = struct.unpack("!HHIIHH", t[:16])
    doff = (off_flags >> 12) * 4
    s.flags = off_flags & 0x1FF
    s.opts = t[20:doff]
    s.payload = t[doff:]
    return s


def tcp_ts_option(opts):
    """(TSval, TSecr) of a TCP options area, or None."""
    i = 0
    while i < len(opts):
        k = opts[i]
        if k == 0:
            break
        if k == 1:
            i += 1
            continue
        if i + 1 >= len(opts) or opts[i + 1] < 2:
            break
        if k == 8 and opts[i + 1] == 10:
            return struct.unpack("!II", opts[i + 2:i + 10])
        i += opts[i + 1]
    return None


def inet_checksum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack(f"!{len(b) // 2}H", b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def tcp_checksum(src, dst, seg, proto=6):
    return inet_checksum(src + dst + struct.pack("!BBH", 0, proto, len(seg)) + seg)


def raw_tcp(src, dst, sport, dport, seq, ack, flags, win=65535, opts=b"", payload=b"", doff=None):
    """A TCP segment built by hand (scapy would repair what we break on purpose)."""
    doff = (20 + len(opts)) // 4 if doff is None else doff
    seg = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, doff << 4,
                      flags, win, 0, 0) + opts + payload
    c = tcp_checksum(ip_bytes(src), ip_bytes(dst), seg)
    return seg[:16] + struct.pack("!H", c) + seg[18:]


def raw_ipv4(src, dst, proto, payload, ident=0, ttl=64, flags_frag=0, options=b""):
    """An IPv4 packet built by hand, checksum filled in."""
    h = struct.pack("!BBHHHBBH4s4s", 0x40 | (20 + len(options)) // 4, 0,
                    20 + len(options) + len(payload), ident, flags_frag, ttl, proto, 0,
                    ip_bytes(src), ip_bytes(dst)) + options
    return h[:10] + struct.pack("!H", inet_checksum(h)) + h[12:] + payload


def cut_ip(frame, n):
    """Keeps the IPv4 header and the first `n` bytes of its payload, the header made consistent
    (total length and checksum), so that only the transport header is short."""
    ip = bytearray(frame[14:34])
    ip[2:4] = struct.pack("!H", 20 + n)
    ip[10:12] = b"\0\0"
    ip[10:12] = struct.pack("!H", inet_checksum(bytes(ip)))
    return frame[:14] + bytes(ip) + frame[34:34 + n]


# --------------------------------------------------------------------------- the link


class Link:
    """Raw access to the kernel side of the lab link: sends frames, and keeps every frame
    ringstack sends (except the legitimate connections' ACKs, which only update `legit_last`).
    Answers ARP for the fake hosts registered in `fake`."""

    def __init__(self, iface, rs_mac, my_mac):
        self.iface = iface
        self.rs_mac = rs_mac
        self.my_mac = my_mac
        self.tx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        self.tx.bind((iface, 0))
        self.rx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        try:
            self.rx.setsockopt(socket.SOL_SOCKET, 33, 32 << 20)  # SO_RCVBUFFORCE
        except OSError:
            self.rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 << 20)
        self.rx.bind((iface, ETH_P_ALL))
        self.cond = threading.Condition()
        self.frames = []
        self.fake = {}  # IPv4 bytes -> MAC bytes
        self.legit_ports = set()  # our ports of the legitimate connections
        self.legit_last = {}  # port -> Seg: the latest segment ringstack sent on it
        self.keep = True  # False: only count frames (floods)
        self.count = 0
        threading.Thread(target=self._run, daemon=True).start()

    def send(self, frame):
        try:
            self.tx.send(bytes(frame))
        except OSError as e:  # e.g. EMSGSIZE for an oversized frame: report, go on
            log(f"send failed ({len(bytes(frame))} bytes): {e}")
            return False
        return True

    def _run(self):
        while True:
            data, addr = self.rx.recvfrom(65600)
            if addr[2] == PACKET_OUTGOING or data[6:12] != self.rs_mac:
                continue
            if data[12:14] == b"\x08\x06" and len(data) >= 42 and data[20:22] == b"\x00\x01":
                mac = self.fake.get(data[38:42])
                if mac is not None:
                    self.send(Ether(src=mac, dst=self.rs_mac) / ARP(
                        op=2, hwsrc=mac, psrc=socket.inet_ntoa(data[38:42]),
                        hwdst=self.rs_mac, pdst=socket.inet_ntoa(data[28:32])))
            if self.legit_ports and data[23:24] == b"\x06" and data[12:14] == b"\x08\x00":
                s = parse_tcp(data)
                if s is not None and s.dport in self.legit_ports:
                    self.legit_last[s.dport] = s
                    continue
            with self.cond:
                self.count += 1
                if self.keep:
                    self.frames.append(data)
                self.cond.notify_all()

    def reset(self, keep=True):
        with self.cond:
            self.frames = []
            self.count = 0
            self.keep = keep

    def wait(self, pred, timeout, start=0):
        """The first frame at index >= start with pred(frame) true, and the index after it;
        (None, index) on timeout."""
        deadline = time.monotonic() + timeout
        i = start
        with self.cond:
            while True:
                while i < len(self.frames):
                    f = self.frames[i]
                    i += 1
                    if pred(f):
                        return f, i
                left = deadline - time.monotonic()
                if left <= 0:
                    return None, i
                self.cond.wait(left)

    def tcp_from(self, start=0, **match):
        """Every TCP segment ringstack sent from index `start` matching the fields given."""
        out = []
        with self.cond:
            frames = self.frames[start:]
        for f in frames:
            s = parse_tcp(f)
            if s is not None and all(getattr(s, k) == v for k, v in match.items()):
                out.append(s)
        return out


# --------------------------------------------------------------------------- a fake TCP host


class FakeConn:
    """A TCP client implemented here, from a fake host (its own IPv4 and MAC, answered for by
    the Link's ARP responder), so that no kernel socket interferes with the segments we craft."""

    def __init__(self, suite, dport, ip=None, sport=None, window=65535, syn_opts=None):
        self.s = suite
        self.link = suite.link
        self.ip = ip or suite.fake_ip()
        self.mac = mac_bytes("02:00:00:00:%02x:%02x" % (ip_bytes(self.ip)[2], ip_bytes(self.ip)[3]))
        self.link.fake[ip_bytes(self.ip)] = self.mac
        self.sport = sport or suite.rng.randrange(20000, 60000)
        self.dport = dport
        self.window = window
        self.syn_opts = syn_opts if syn_opts is not None else [("MSS", 1460)]
        self.iss = suite.rng.randrange(0, 1 << 32)
        self.snd_nxt = (self.iss + 1) & 0xFFFFFFFF
        self.rcv_nxt = None
        self.received = {}  # seq -> payload (out of order)
        self.data = bytearray()
        self.cursor = 0
        self.segs = []  # every segment ringstack sent us
        self.fin = False
        self.rst = False
        self.frozen_edge = None  # set by freeze(): the application stopped reading
        # Teach ringstack our address (it answers and learns us: RFC 826 merge).
        self.link.send(Ether(src=self.mac, dst="ff:ff:ff:ff:ff:ff") / ARP(
            op=1, hwsrc=self.mac, psrc=self.ip, pdst=suite.rs_ip))

    def pkt(self, flags, seq=None, ack=None, payload=b"", window=None, options=None):
        seq = self.snd_nxt if seq is None else seq
        ack = (self.rcv_nxt or 0) if ack is None else ack
        if window is None:
            window = self.window
            if self.frozen_edge is not None:  # what is left of the buffer: never shrinks
                window = max(0, (self.frozen_edge - (self.rcv_nxt or 0)) & 0xFFFFFFFF)
                window = 0 if window >= 1 << 31 else min(window, self.window)
        t = TCP(sport=self.sport, dport=self.dport, seq=seq & 0xFFFFFFFF, ack=ack & 0xFFFFFFFF,
                flags=flags, window=window,
                options=options or [])
        p = Ether(src=self.mac, dst=self.link.rs_mac) / IP(src=self.ip, dst=self.s.rs_ip) / t
        if payload:
            p = p / Raw(payload)
        return p

    def _mine(self, s):
        return s.dst == ip_bytes(self.ip) and s.dport == self.sport and s.sport == self.dport

    def poll(self, timeout):
        """Takes ringstack's segments for us that arrived, ACKing data. Returns how many."""
        n = 0
        deadline = time.monotonic() + timeout
        while True:
            f, self.cursor = self.link.wait(
                lambda f: (s := parse_tcp(f)) is not None and self._mine(s),
                max(0.0, deadline - time.monotonic()), self.cursor)
            if f is None:
                return n
            s = parse_tcp(f)
            self.segs.append(s)
            n += 1
            if s.flags & RST:
                self.rst = True
                return n
            if self.rcv_nxt is None:
                continue
            if s.payload and self.frozen_edge is not None and \
                    0 < ((s.seq + len(s.payload) - self.frozen_edge) & 0xFFFFFFFF) < (1 << 31):
                self.link.send(self.pkt("A"))  # beyond the frozen buffer (a probe): refuse it
                continue
            if s.payload:
                self.received.setdefault(s.seq, s.payload)
            if s.flags & FIN:
                self.received.setdefault((s.seq + len(s.payload)) & 0xFFFFFFFF, None)
            progressed = False
            while self.rcv_nxt in self.received:
                d = self.received.pop(self.rcv_nxt)
                if d is None:
                    self.fin = True
                    self.rcv_nxt = (self.rcv_nxt + 1) & 0xFFFFFFFF
                else:
                    self.data += d
                    self.rcv_nxt = (self.rcv_nxt + len(d)) & 0xFFFFFFFF
                progressed = True
            if s.payload or s.flags & FIN or progressed:
                self.link.send(self.pkt("A"))
            if time.monotonic() >= deadline:
                return n

    def connect(self, timeout=3.0):
        """Three-way handshake; returns the SYN-ACK segment or None."""
        self.link.send(self.pkt("S", seq=self.iss, ack=0, options=self.syn_opts))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            f, self.cursor = self.link.wait(
                lambda f: (s := parse_tcp(f)) is not None and self._mine(s),
                deadline - time.monotonic(), self.cursor)
            if f is None:
                break
            s = parse_tcp(f)
            if s.flags & (SYN | ACK) == SYN | ACK:
                self.rcv_nxt = (s.seq + 1) & 0xFFFFFFFF
                self.link.send(self.pkt("A"))
                return s
            if s.flags & RST:
                return None
        return None

    def freeze(self):
        """The application stops reading: the window shrinks to zero as the data already
        allowed arrives, and stays there (the right edge never moves back)."""
        self.frozen_edge = ((self.rcv_nxt or 0) + self.window) & 0xFFFFFFFF

    def send(self, data, seq=None):
        """Sends `data` at `seq` (default SND.NXT); SND.NXT moves to the highest byte sent."""
        self.link.send(self.pkt("PA", seq=seq, payload=data))
        end = ((self.snd_nxt if seq is None else seq) + len(data)) & 0xFFFFFFFF
        if 0 < ((end - self.snd_nxt) & 0xFFFFFFFF) < (1 << 31):
            self.snd_nxt = end

    def read(self, n, timeout):
        deadline = time.monotonic() + timeout
        while len(self.data) < n and not self.rst and time.monotonic() < deadline:
            self.poll(min(0.2, deadline - time.monotonic()))
        return bytes(self.data)

    def abort(self):
        self.link.send(self.pkt("R", ack=0))
        self.link.fake.pop(ip_bytes(self.ip), None)


# --------------------------------------------------------------------------- legitimate traffic


class Uploader(threading.Thread):
    """The legitimate upload: a file to the discard service (which reports its SHA-256), paced so
    that it lasts through the whole suite, then finished at full speed."""

    def __init__(self, rs_ip, port, path, chunk, interval):
        super().__init__(daemon=True)
        self.data = open(path, "rb").read()
        self.sock = socket.create_connection((rs_ip, port), timeout=30)
        self.port = self.sock.getsockname()[1]
        self.chunk, self.interval = chunk, interval
        self.sent = 0
        self.fast = threading.Event()
        self.pause = threading.Event()
        self.paused = threading.Event()
        self.error = None
        self.done = threading.Event()

    def run(self):
        try:
            while self.sent < len(self.data):
                if self.pause.is_set():
                    self.paused.set()
                    time.sleep(0.01)
                    continue
                self.paused.clear()
                n = len(self.data) - self.sent if self.fast.is_set() else self.chunk
                self.sock.sendall(self.data[self.sent:self.sent + n])
                self.sent += n
                if not self.fast.is_set():
                    time.sleep(self.interval)
            self.sock.shutdown(socket.SHUT_WR)
            self.sock.settimeout(60)
            while self.sock.recv(4096):
                pass
        except Exception as e:  # reported in DONE; the driver fails the test
            self.error = repr(e)
        finally:
            self.paused.set()
            self.done.set()

    def outq(self):
        return struct.unpack("i", fcntl.ioctl(self.sock.fileno(), termios.TIOCOUTQ, b"\0" * 4))[0]

    def quiesce(self, timeout=20.0):
        """Pauses the upload until everything sent is acknowledged. Returns ringstack's latest
        segment on the connection (its ack = ringstack's RCV.NXT, its seq = SND.NXT)."""
        self.pause.set()
        deadline = time.monotonic() + timeout
        while not self.paused.wait(0.1):
            if time.monotonic() > deadline:
                raise RuntimeError("upload did not pause")
        while self.outq() != 0:
            if time.monotonic() > deadline:
                raise RuntimeError(f"upload: {self.outq()} bytes stay unacknowledged")
            time.sleep(0.02)
        time.sleep(0.1)
        return self.sock

    def resume(self):
        self.pause.clear()


class Downloader(threading.Thread):
    """The legitimate download: an HTTP GET of a large file, read slowly (so ringstack meets a
    full receive window, zero-window probing and window updates), then at full speed."""

    def __init__(self, rs_ip, path, chunk, interval):
        super().__init__(daemon=True)
        self.sock = socket.create_connection((rs_ip, 80), timeout=60)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 256 * 1024)
        self.port = self.sock.getsockname()[1]
        self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: ringstack\r\nConnection: close\r\n\r\n".encode())
        self.chunk, self.interval = chunk, interval
        self.fast = threading.Event()
        self.sha = hashlib.sha256()
        self.body = 0
        self.status = None
        self.error = None
        self.done = threading.Event()

    def run(self):
        try:
            head = b""
            while b"\r\n\r\n" not in head:
                d = self.sock.recv(4096)
                if not d:
                    raise RuntimeError("connection closed before the response head")
                head += d
            h, rest = head.split(b"\r\n\r\n", 1)
            self.status = h.split(b"\r\n", 1)[0].decode(errors="replace")
            length = next(int(l.split(b":", 1)[1]) for l in h.split(b"\r\n")
                          if l.lower().startswith(b"content-length:"))
            self.sha.update(rest)
            self.body = len(rest)
            while self.body < length:
                d = self.sock.recv(self.chunk if not self.fast.is_set() else 1 << 20)
                if not d:
                    raise RuntimeError(f"connection closed after {self.body} of {length} bytes")
                self.sha.update(d)
                self.body += len(d)
                if not self.fast.is_set():
                    time.sleep(self.interval)
        except Exception as e:
            self.error = repr(e)
        finally:
            self.done.set()


class Slowloris(threading.Thread):
    """Slowloris against the HTTP service: `idle` connections that send half a request head and
    then nothing, and `trickle` connections that send one more byte of header every few seconds
    without ever finishing. The server's idle and request-head limits must reclaim them all."""

    def __init__(self, rs_ip, idle, trickle, period):
        super().__init__(daemon=True)
        self.rs_ip = rs_ip
        self.period = period
        self.socks = []
        for i in range(idle + trickle):
            s = socket.create_connection((rs_ip, 80), timeout=10)
            s.sendall(b"GET / HTTP/1.1\r\nHost: slowloris\r\n")
            self.socks.append((s, i >= idle))
        self.closed = {}  # index -> seconds after start when the server closed it
        self.start_time = time.monotonic()
        self.stop = threading.Event()

    def run(self):
        n = 0
        while not self.stop.wait(self.period):
            n += 1
            self.check()
            for i, (s, trickle) in enumerate(self.socks):
                if trickle and i not in self.closed:
                    try:
                        s.send(b"X-a: b\r\n"[n % 8:n % 8 + 1])
                    except OSError:
                        self.closed.setdefault(i, time.monotonic() - self.start_time)

    def check(self):
        for i, (s, _) in enumerate(self.socks):
            if i in self.closed:
                continue
            try:
                d = s.recv(65536, socket.MSG_DONTWAIT)
                if not d:
                    self.closed[i] = time.monotonic() - self.start_time
                # An error response before the close counts once the close comes.
            except BlockingIOError:
                pass
            except OSError:
                self.closed[i] = time.monotonic() - self.start_time

    def still_open(self, trickle):
        self.check()
        return sum(1 for i, (_, t) in enumerate(self.socks) if t == trickle and i not in self.closed)


# --------------------------------------------------------------------------- the suite


class Suite:
    def __init__(self, a):
        self.a = a
        self.rng = random.Random(a.seed)
        self.rs_ip = a.rs_ip
        self.my_ip = a.my_ip
        self.rs_mac_s = a.rs_mac
        self.my_mac_s = open(f"/sys/class/net/{a.iface}/address").read().strip()
        self.link = Link(a.iface, mac_bytes(a.rs_mac), mac_bytes(self.my_mac_s))
        self.next_fake = 10
        self.results = []
        self.start = time.monotonic()

    # -- helpers

    def fake_ip(self):
        self.next_fake += 1
        return f"198.18.0.{self.next_fake}"

    def eth(self, src_mac=None):
        return Ether(src=src_mac or self.my_mac_s, dst=self.rs_mac_s)

    def eth_ipv4(self):
        """The Ethernet header of an IPv4 frame to ringstack, as bytes (for hand-built frames)."""
        return bytes(Ether(src=self.my_mac_s, dst=self.rs_mac_s, type=0x0800))

    def ip(self, **kw):
        kw.setdefault("src", self.my_ip)
        kw.setdefault("dst", self.rs_ip)
        return IP(**kw)

    def send_all(self, frames, gap=0.0005):
        for f in frames:
            self.link.send(f)
            if gap:
                time.sleep(gap)

    def closed_port(self):
        return self.rng.randrange(10000, 20000)

    def probe(self):
        """The stack still serves: an echo round trip and an HTTP GET, from kernel sockets."""
        msg = bytes(self.rng.randrange(256) for _ in range(3000))
        with socket.create_connection((self.rs_ip, 7), timeout=10) as s:
            s.settimeout(10)
            s.sendall(msg)
            got = b""
            while len(got) < len(msg):
                d = s.recv(65536)
                if not d:
                    break
                got += d
        if got != msg:
            return f"echo returned {len(got)} bytes, not the {len(msg)} sent"
        with socket.create_connection((self.rs_ip, 80), timeout=10) as s:
            s.settimeout(10)
            s.sendall(b"GET /small.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            resp = b""
            while True:
                d = s.recv(65536)
                if not d:
                    break
                resp += d
        if not resp.startswith(b"HTTP/1.1 200") or not resp.endswith(b"ringstack adversarial\n"):
            return f"http returned {resp[:80]!r}"
        return None

    # -- the protocol with the driver

    def say(self, line):
        print(line, flush=True)

    def wait_driver(self, word):
        if self.a.standalone:
            return
        line = sys.stdin.readline()
        if line.strip() != word:
            raise SystemExit(f"driver said {line!r}, expected {word!r}")

    def run_case(self, name, fn):
        self.link.reset()
        self.say(f"BEGIN {name}")
        self.wait_driver("go")
        t = time.monotonic()
        try:
            ok, expect, note = fn()
        except Exception as e:  # a case that crashes is a failed case, not a failed suite
            import traceback
            traceback.print_exc(file=sys.stderr)
            ok, expect, note = False, {}, f"exception: {e!r}"
        problem = self.probe()
        if problem:
            ok, note = False, f"{note}; service probe failed: {problem}"
        rec = {"case": name, "ok": bool(ok), "expect": expect, "note": note,
               "secs": round(time.monotonic() - t, 2)}
        self.results.append(rec)
        self.say("END " + json.dumps(rec))
        self.wait_driver("next")

    # ----------------------------------------------------------------------- cases

    def c_truncated(self):
        """Frames cut short at every layer: an IPv4 header, a TCP/UDP/ICMP header, an ARP packet."""
        full = bytes(self.eth() / self.ip() / TCP(sport=1234, dport=7, flags="S"))
        udp = bytes(self.eth() / self.ip() / UDP(sport=1234, dport=7) / (b"x" * 20))
        icmp = bytes(self.eth() / self.ip() / ICMP() / (b"x" * 20))
        arp = bytes(Ether(src=self.my_mac_s, dst="ff:ff:ff:ff:ff:ff") / ARP(psrc=self.my_ip, pdst=self.rs_ip))
        frames = []
        for n in range(20):
            frames.append(full[:14 + 1 + n % 19])  # IPv4 header cut (1..19 bytes)
        # IP header intact and consistent, transport header cut.
        for proto_frame, cut in ((full, 10), (udp, 4), (icmp, 3)):
            frames += [cut_ip(proto_frame, cut)] * 20
        frames += [arp[:14 + 6]] * 10 + [arp[:14 + 20]] * 10
        self.send_all(frames)
        return True, {"Drop.Ipv4Truncated": 20, "Drop.TcpTruncated": 20,
                      "Drop.UdpTruncated": 20, "Drop.IcmpTruncated": 20,
                      "Drop.ArpTruncated": 20}, f"{len(frames)} frames"

    def c_oversized(self):
        """Frames larger than the MTU: 1,900 bytes (fits the ring slot, IP total length beyond the
        stack's MTU) and 9,000 bytes (beyond the ring slot: the NIC layer drops it)."""
        k = self.a.kernel_if
        subprocess.run(["ip", "link", "set", k, "mtu", "9000"], check=True)
        subprocess.run(["ip", "link", "set", self.a.rs_if, "mtu", "9000"], check=True)
        try:
            mid = self.eth() / self.ip() / UDP(sport=4000, dport=self.closed_port()) / (b"m" * 1850)
            big = self.eth() / self.ip() / UDP(sport=4000, dport=self.closed_port()) / (b"b" * 8950)
            sent = sum(self.link.send(mid) for _ in range(20))
            sent_big = sum(self.link.send(big) for _ in range(20))
            time.sleep(0.3)
        finally:
            subprocess.run(["ip", "link", "set", k, "mtu", "1500"], check=True)
            subprocess.run(["ip", "link", "set", self.a.rs_if, "mtu", "1500"], check=True)
        return sent == 20 and sent_big == 20, {"Drop.UdpNoPort": 20}, \
            "1900-byte frames reach UDP (port unreachable); 9000-byte frames exceed the ring slot"

    def c_ip_header_length(self):
        """IHL 0..4 (below the minimum) and IHL 15 on a 20-byte packet (beyond the packet)."""
        frames = []
        for ihl in range(5):
            for _ in range(10):
                frames.append(self.eth() / self.ip(ihl=ihl) / TCP(dport=7, flags="S"))
        beyond = bytearray(bytes(self.eth() / self.ip() / b""))
        beyond[14] = 0x4F
        frames += [bytes(beyond)] * 10
        self.send_all(frames)
        return True, {"Drop.Ipv4BadHeaderLength": 60}, "IHL 0-4 and IHL 15 > packet"

    def c_ip_total_length(self):
        """Total length larger than the frame, smaller than the header; and smaller than the
        frame (trailing padding), which is legal: the padding must be ignored."""
        frames = []
        for _ in range(20):
            frames.append(self.eth() / self.ip(len=200) / TCP(dport=7, flags="S"))
            frames.append(self.eth() / self.ip(len=12) / TCP(dport=7, flags="S"))
        self.send_all(frames)
        # Padding: a SYN to a closed port with 50 junk bytes after its total length.
        port = self.closed_port()
        syn = bytes(self.eth() / self.ip() / TCP(sport=5555, dport=port, flags="S", seq=1000))
        self.link.send(syn + b"\xee" * 50)
        f, _ = self.link.wait(lambda f: (s := parse_tcp(f)) is not None and s.sport == port
                              and s.flags & RST, 3)
        return f is not None, {"Drop.Ipv4BadTotalLength": 40, "Drop.TcpNoSocket": 1}, \
            "padded SYN answered by RST" if f else "padded SYN got no RST"

    def c_ip_misc(self):
        """Bad IPv4 checksum, version 6 in an IPv4 frame, TTL 0, an unknown protocol, garbage
        IP options (legal: skipped), the land attack (source = destination = ringstack)."""
        frames = []
        for _ in range(20):
            frames.append(self.eth() / self.ip(chksum=0x1234) / TCP(dport=7, flags="S"))
            frames.append(self.eth() / self.ip(version=6) / TCP(dport=7, flags="S"))
            frames.append(self.eth() / self.ip(ttl=0) / TCP(dport=7, flags="S"))
            frames.append(self.eth() / self.ip(proto=253) / b"unknown protocol")
            frames.append(self.eth() / self.ip(src=self.rs_ip) /
                          TCP(sport=80, dport=80, flags="S", seq=self.rng.randrange(1 << 32)))
        self.send_all(frames)
        # IP options of junk (IHL 8): skipped, the segment is processed: RST from a closed port.
        port = self.closed_port()
        seg = raw_tcp(self.my_ip, self.rs_ip, 5556, port, 1, 0, SYN)
        opts = b"\x07\x07\x04\x00\x00\x00\x00\x01\x02\x03\x00\x00"  # record route + junk
        self.link.send(self.eth_ipv4() + raw_ipv4(self.my_ip, self.rs_ip, 6, seg, options=opts))
        f, _ = self.link.wait(lambda f: (s := parse_tcp(f)) is not None and s.sport == port
                              and s.flags & RST, 3)
        return f is not None, {"Drop.Ipv4BadChecksum": 20, "Drop.Ipv4BadVersion": 20,
                               "Drop.Ipv4TtlExpired": 20, "Drop.Ipv4UnknownProtocol": 20,
                               "Drop.Ipv4BadSource": 20}, \
            "land attack dropped as bad source; IP options skipped" + ("" if f else " (NO RST to the optioned SYN)")

    def c_transport_checksums(self):
        """Bad TCP, UDP and ICMP checksums."""
        frames = []
        for _ in range(20):
            frames.append(self.eth() / self.ip() / TCP(dport=7, flags="S", chksum=0xBAD))
            frames.append(self.eth() / self.ip() / UDP(dport=7, chksum=0xBAD) / b"bad checksum")
            frames.append(self.eth() / self.ip() / ICMP(chksum=0xBAD) / b"bad checksum")
        self.send_all(frames)
        return True, {"Drop.TcpBadChecksum": 20, "Drop.UdpBadChecksum": 20,
                      "Drop.IcmpBadChecksum": 20}, ""

    def c_udp_length(self):
        """UDP length field larger than the IP payload, and below the 8-byte header."""
        frames = []
        for _ in range(20):
            frames.append(self.eth() / self.ip() / UDP(dport=7, len=500) / b"short")
            frames.append(self.eth() / self.ip() / UDP(dport=7, len=4) / b"short")
        self.send_all(frames)
        return True, {"Drop.UdpBadLength": 40}, ""

    def c_tcp_header(self):
        """TCP data offset below 5 and beyond the segment."""
        frames = []
        for _ in range(20):
            frames.append(self.eth() / self.ip() / TCP(dport=7, flags="S", dataofs=3))
            frames.append(self.eth() / self.ip() / TCP(dport=7, flags="S", dataofs=15))
        self.send_all(frames)
        return True, {"Drop.TcpBadHeaderLength": 40}, ""

    def c_tcp_option_lengths(self):
        """Options with length 0, length 1 and a length running past the options area, on SYNs
        to an open port: malformed, dropped (never a loop or an over-read)."""
        frames = []
        for raw in (b"\x02\x00\x05\xb4", b"\x03\x01\x07\x00", b"\x08\x28\x00\x00",
                    b"\x02\x04\x05\xb4\x05\x30\x00\x00", b"\xfe\x00\x00\x00"):
            for _ in range(10):
                seg = raw_tcp(self.my_ip, self.rs_ip, 6001, 7, self.rng.randrange(1 << 32), 0, SYN,
                              opts=raw)
                frames.append(self.eth_ipv4() + raw_ipv4(self.my_ip, self.rs_ip, 6, seg))
        self.send_all(frames)
        return True, {"Drop.TcpBadOptions": 50}, "MSS len 0, WScale len 1, TS len 40 and SACK len 48 (> area), unknown kind len 0"

    def _echo_with(self, syn_opts, size=4000):
        c = FakeConn(self, 7, syn_opts=syn_opts)
        sa = c.connect()
        if sa is None:
            return None, "no SYN-ACK", c
        msg = bytes(self.rng.randrange(256) for _ in range(size))
        for i in range(0, size, 1000):
            c.send(msg[i:i + 1000])
        got = c.read(size, 10)
        c.abort()
        return sa, got == msg, c

    def c_tcp_mss_tiny(self):
        """SYNs announcing MSS 0 and MSS 1: the connection works, and ringstack clamps the MSS
        instead of sending a flood of 1-byte segments (CVE-2019-11477/11479 style)."""
        notes, ok = [], True
        for mss in (0, 1):
            sa, good, c = self._echo_with([("MSS", mss)])
            data_segs = [s for s in c.segs if s.payload]
            largest = max((len(s.payload) for s in data_segs), default=0)
            ok &= bool(sa) and good is True and largest >= 48 and len(data_segs) <= 4000 // 48 + 8
            notes.append(f"MSS {mss}: echo {'ok' if good is True else 'FAILED'}, "
                         f"{len(data_segs)} data segments of at most {largest} B")
        return ok, {"TcpPassiveOpens": 2}, "; ".join(notes)

    def c_tcp_wscale_big(self):
        """SYN with window scale 15 and 255 (RFC 7323 §2.3: use 14): the connection works."""
        notes, ok = [], True
        for ws in (15, 255):
            sa, good, _ = self._echo_with([("MSS", 1460), ("WScale", ws)], size=20000)
            ok &= bool(sa) and good is True
            notes.append(f"wscale {ws}: echo {'ok' if good is True else 'FAILED'}")
        return ok, {"TcpPassiveOpens": 2}, "; ".join(notes)

    def c_tcp_flags(self):
        """SYN+FIN, SYN+RST and no flags at all, to an open and to a closed port."""
        frames = []
        for _ in range(10):
            for port in (7, self.closed_port()):
                seq = self.rng.randrange(1 << 32)
                frames.append(self.eth() / self.ip() / TCP(sport=6000, dport=port, flags="SF", seq=seq))
                frames.append(self.eth() / self.ip() / TCP(sport=6000, dport=port, flags="SR", seq=seq))
                frames.append(self.eth() / self.ip() / TCP(sport=6000, dport=port, flags="", seq=seq))
        self.send_all(frames)
        return True, {"Drop.TcpBadFlags": 60}, ""

    def c_syn_flood(self):
        """20,000 SYNs to the HTTP port from 100 spoofed, unresolvable neighbours: the SYN backlog
        fills, SYN cookies answer, the ARP pending queues stay bounded; meanwhile a real client
        connects and fetches a page, over and over."""
        srcs = [f"198.18.0.{i}" for i in range(100, 200)]
        eth = self.eth_ipv4()
        frames = []
        rng = self.rng
        for i in range(20000):
            src = srcs[i % len(srcs)]
            seg = raw_tcp(src, self.rs_ip, rng.randrange(1024, 65536), 80, rng.randrange(1 << 32),
                          0, SYN, opts=b"\x02\x04\x05\xb4")
            frames.append(eth + raw_ipv4(src, self.rs_ip, 6, seg, ident=i & 0xFFFF))
        self.link.reset(keep=False)
        fetched, failures = [0], []
        stop = threading.Event()

        def client():
            while not stop.is_set():
                try:
                    problem = self.probe()
                    if problem:
                        failures.append(problem)
                    else:
                        fetched[0] += 1
                except OSError as e:
                    failures.append(repr(e))
                time.sleep(0.05)

        th = threading.Thread(target=client, daemon=True)
        th.start()
        t0 = time.monotonic()
        for i, f in enumerate(frames):
            self.link.send(f)
            if i % 200 == 199:
                time.sleep(0.02)  # ~10,000 SYNs/s: a flood, yet within the RX ring
        secs = time.monotonic() - t0
        time.sleep(0.5)
        stop.set()
        th.join(30)
        ok = fetched[0] >= 3 and not failures
        return ok, {"TcpExtSyncookiesSent": 1000, "Drop.ArpPendingFull": 1}, \
            f"20000 SYNs in {secs:.1f} s; real client: {fetched[0]} echo+GET ok, {len(failures)} failed {failures[:2]}"

    # -- RFC 5961 against the live upload

    def _legit(self):
        up = self.uploader
        up.quiesce()
        last = self.link.legit_last.get(up.port)
        if last is None:
            raise RuntimeError("no segment of the upload seen")
        return up, last

    def _legit_pkt(self, up, flags, seq, ack, payload=b""):
        p = self.eth() / self.ip() / TCP(sport=up.port, dport=9, flags=flags, seq=seq & 0xFFFFFFFF,
                                         ack=ack & 0xFFFFFFFF, window=502)
        return p / Raw(payload) if payload else p

    def _challenges(self, up, since_seg, rcv_nxt):
        """ACKs ringstack sent on the upload after the injection began, acknowledging RCV.NXT."""
        s = self.link.legit_last.get(up.port)
        return bool(s is not None and s is not since_seg and s.ack == rcv_nxt and s.flags & ACK)

    def _inject(self, frames, expect, note):
        up, last = self._legit()
        rcv_nxt, snd_nxt = last.ack, last.seq
        self.send_all([f(up, rcv_nxt, snd_nxt) for f in frames])
        time.sleep(0.2)
        challenged = self._challenges(up, last, rcv_nxt)
        up.resume()
        # The upload goes on: ringstack acknowledges new data.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and up.error is None:
            s = self.link.legit_last.get(up.port)
            if s is not None and 0 < ((s.ack - rcv_nxt) & 0xFFFFFFFF) < (1 << 31):
                return True, challenged
            time.sleep(0.05)
        return False, challenged

    def c_rst_in_window(self):
        """RSTs inside the window but not at RCV.NXT (RFC 5961 §3.2): challenge ACK, the
        connection survives."""
        frames = [lambda up, r, s, k=k: self._legit_pkt(up, "R", r + 1 + 100 * k, 0) for k in range(10)]
        alive, ch = self._inject(frames, None, "")
        return alive and ch, {"Drop.TcpRstChallenged": 10, "TcpExtTCPChallengeACK": 1}, \
            f"challenge ACK seen: {ch}; upload alive: {alive}"

    def c_rst_out_of_window(self):
        """RSTs far outside the window: dropped silently, the connection survives."""
        frames = [lambda up, r, s, k=k: self._legit_pkt(up, "R", r + (1 << 30) + k, 0) for k in range(10)]
        frames += [lambda up, r, s, k=k: self._legit_pkt(up, "RA", r - (1 << 30) - k, s) for k in range(10)]
        alive, _ = self._inject(frames, None, "")
        return alive, {"Drop.TcpOutOfWindow": 20}, f"upload alive: {alive}"

    def c_syn_in_window(self):
        """SYNs on the established connection, in and out of the window (RFC 5961 §4):
        challenge ACK / ACK, never a reset, the connection survives."""
        frames = [lambda up, r, s, k=k: self._legit_pkt(up, "S", r + 10 + k, 0) for k in range(10)]
        frames += [lambda up, r, s, k=k: self._legit_pkt(up, "S", r + (1 << 30) + k, 0) for k in range(5)]
        alive, ch = self._inject(frames, None, "")
        return alive and ch, {"Drop.TcpSynChallenged": 10, "Drop.TcpOutOfWindow": 5}, \
            f"challenge ACK seen: {ch}; upload alive: {alive}"

    def c_data_injection(self):
        """Blind data injection (RFC 5961 §5): data at RCV.NXT whose ACK is too old or not yet
        sent is dropped (challenge ACK); data outside the window is dropped. The upload's bytes
        stay intact: discard's SHA-256 at the end proves no injected byte got in."""
        bad = b"INJECTED" * 64
        frames = [lambda up, r, s, k=k: self._legit_pkt(up, "PA", r, s - (1 << 30) - k, bad) for k in range(10)]
        frames += [lambda up, r, s, k=k: self._legit_pkt(up, "PA", r, s + (1 << 20) + k, bad) for k in range(10)]
        frames += [lambda up, r, s, k=k: self._legit_pkt(up, "PA", r + (1 << 30), s, bad) for k in range(10)]
        frames += [lambda up, r, s, k=k: self._legit_pkt(up, "PA", r - (1 << 20), s, bad) for k in range(10)]
        alive, ch = self._inject(frames, None, "")
        return alive and ch, {"Drop.TcpBadAck": 20, "Drop.TcpOutOfWindow": 20}, \
            f"challenge ACK seen: {ch}; upload alive: {alive}"

    def c_ts_recent_poisoning(self):
        """Blind timestamp poisoning (RFC 7323 §4.3 with RFC 5961 §5): segments that cover
        RCV.NXT carry a TSval far in the future but no ACK bit, or an ACK of data never sent.
        They must be dropped without touching TS.Recent; otherwise every later segment of the
        real peer fails PAWS and the connection stalls for good."""
        up, last = self._legit()
        rcv_nxt, snd_nxt = last.ack, last.seq
        ts = tcp_ts_option(last.opts)
        if ts is None:
            up.resume()
            return False, {}, "the upload negotiated no timestamps"
        future = (ts[1] + (1 << 30)) & 0xFFFFFFFF
        bad = b"POISON" * 40
        frames = []
        for _ in range(5):
            for flags, ack in (("P", 0), ("PA", snd_nxt + (1 << 20))):
                frames.append(self.eth() / self.ip() / TCP(
                    sport=up.port, dport=9, flags=flags, seq=(rcv_nxt - 100) & 0xFFFFFFFF,
                    ack=ack & 0xFFFFFFFF, window=502,
                    options=[("NOP", None), ("NOP", None), ("Timestamp", (future, ts[0]))]) / bad)
        self.send_all(frames)
        time.sleep(0.2)
        alive, _ = self._inject([], None, "")
        return alive, {"Drop.TcpBadFlags": 5, "Drop.TcpBadAck": 5}, \
            f"TSval {future} (TS.Recent {ts[1]}) in 10 unacceptable segments; upload alive: {alive}"

    def c_challenge_ack_side_channel(self):
        """The challenge-ACK budget must not tell an off-path attacker whether a connection
        exists (CVE-2016-5696): with one shared, fixed budget per second, 1,100 in-window RSTs
        with a spoofed four-tuple use it all up if (and only if) that connection exists, which
        the attacker sees as silence on its own connection, where 50 in-window RSTs then get no
        challenge ACK. Two trials: with the upload's real four-tuple, and with one that does not
        exist; the attacker's connection must get the same treatment in both."""
        n_spoof, n_own = 1100, 50
        own = FakeConn(self, 9)
        if own.connect() is None:
            return False, {}, "no SYN-ACK"
        own.send(b"x")
        own.poll(0.3)

        def trial(victim_exists):
            time.sleep(1.5)  # a new rate-limit second
            up, last = self._legit()
            spoofed = []
            for k in range(n_spoof):
                seq = last.ack + 1 + 100 * k
                if victim_exists:
                    spoofed.append(bytes(self._legit_pkt(up, "R", seq, 0)))
                else:
                    spoofed.append(bytes(self.eth() / self.ip() / TCP(
                        sport=(up.port + 1) & 0xFFFF or 1, dport=9, flags="R", seq=seq & 0xFFFFFFFF)))
            for f in spoofed:
                self.link.send(f)
            time.sleep(0.05)
            start = len(self.link.frames)
            for k in range(n_own):
                self.link.send(own.pkt("R", seq=own.snd_nxt + 1 + k, ack=0))
                time.sleep(0.005)
            time.sleep(0.2)
            got = len(self.link.tcp_from(start, dst=ip_bytes(own.ip), dport=own.sport))
            up.resume()
            return got

        absent = trial(False)
        present = trial(True)
        own.abort()
        leak = absent >= 10 and present == 0
        return not leak, {"Drop.TcpRstChallenged": n_spoof + 2 * n_own}, \
            (f"challenge ACKs to the attacker's {n_own} RSTs: {absent} when the spoofed four-tuple "
             f"does not exist, {present} when it does" + (" -> LEAKS its existence" if leak else ""))

    # -- reassembly

    def c_tcp_overlaps(self):
        """Overlapping and conflicting retransmissions on a connection to the echo service:
        a conflicting copy of bytes already received changes nothing; conflicting out-of-order
        overlaps and many tiny overlapping segments yield a stream of the right length in which
        every byte is one of the versions sent."""
        c = FakeConn(self, 7)
        if c.connect() is None:
            return False, {}, "no SYN-ACK"
        base = c.snd_nxt
        a = bytes(self.rng.randrange(256) for _ in range(6000))
        b = bytes(x ^ 0xFF for x in a)  # the conflicting version: every byte differs
        # 1. in order, then a conflicting retransmission of the same bytes (old: trimmed).
        c.send(a[:1000], seq=base)
        c.poll(0.2)
        c.send(b[:1000], seq=base)
        # 2. out of order with conflicting overlaps: [3000,4000) a, [2500,3500) b, [2000,2600) a,
        #    then the hole [1000,2000) a.
        c.send(a[3000:4000], seq=base + 3000)
        c.send(b[2500:3500], seq=base + 2500)
        c.send(a[2000:2600], seq=base + 2000)
        c.send(a[1000:2000], seq=base + 1000)
        # 3. tiny overlapping segments: 2-byte segments every byte over [4000,5000), alternating
        #    versions, then [5000,6000).
        for i in range(4000, 5000):
            src = a if i % 2 else b
            c.send(src[i:i + 2], seq=base + i)
        c.send(a[5000:6000], seq=base + 5000)
        got = c.read(6000, 10)
        c.abort()
        ok = len(got) == 6000 and got[:1000] == a[:1000] and all(
            got[i] in (a[i], b[i]) for i in range(6000))
        first = sum(1 for i in range(1000, 6000) if got[i:i + 1] == a[i:i + 1])
        return ok, {"TcpExtTCPOFOQueue": 1}, \
            f"echoed {len(got)}/6000 bytes; acked bytes kept; {first}/5000 later bytes from the first version"

    def c_fragments(self):
        """Tiny (8-byte) fragments of an echo request, exact duplicates, conflicting overlaps,
        a fragment beyond 65,535 (ping of death), a non-final fragment not a multiple of 8,
        and 300 datagrams that never complete."""
        notes, ok = [], True
        # Tiny fragments: an ICMP echo of 400 bytes in 8-byte fragments, shuffled, with dups.
        ident = self.rng.randrange(1 << 16)
        echo = self.ip(id=ident) / ICMP(id=0x4242, seq=1) / (b"t" * 400)
        frags = fragment(echo, fragsize=8)
        frags = frags + frags[:10]
        self.rng.shuffle(frags)
        self.send_all([self.eth() / f for f in frags], gap=0.0002)
        f, _ = self.link.wait(lambda f: (p := parse_ipv4(f)) is not None and p[2] == 1
                              and len(p[1]) >= 8 and p[1][0] == 0 and p[1][4:6] == b"\x42\x42", 3)
        # The reply may itself be fragmented only if > MTU; it is not.
        ok &= f is not None
        notes.append("8-byte fragments reassembled, echo answered" if f else "NO reply to 8-byte fragments")
        # Conflicting overlap: same datagram, overlapping bytes differ.
        for k in range(10):
            ident = self.rng.randrange(1 << 16)
            udp = bytes(UDP(sport=7000, dport=7, len=8 + 64) / (b"A" * 64))
            udp = udp[:6] + b"\0\0" + udp[8:]
            f1 = self.ip(id=ident, flags="MF", frag=0, proto=17) / udp[:40]
            f2 = self.ip(id=ident, flags="MF", frag=2, proto=17) / (b"B" * 24)  # overlaps [16,40)
            f3 = self.ip(id=ident, frag=5, proto=17) / udp[40:]
            self.send_all([self.eth() / f1, self.eth() / f2, self.eth() / f3])
        # Ping of death: a last fragment ending beyond 65,535.
        for k in range(10):
            self.link.send(self.eth() / self.ip(id=9000 + k, frag=8189, proto=1) / (b"D" * 100))
        # Non-final fragment whose length is not a multiple of 8.
        for k in range(10):
            self.link.send(self.eth() / self.ip(id=9100 + k, flags="MF", frag=0, proto=17) / (b"x" * 13))
        # Never completed: 300 first fragments (beyond max_datagrams = 64: the oldest go).
        for k in range(300):
            self.link.send(self.eth() / self.ip(id=10000 + k, flags="MF", frag=0, proto=17) / (b"n" * 1000))
            time.sleep(0.0003)
        time.sleep(0.3)
        return ok, {"Drop.Ipv4FragConflict": 10, "Drop.Ipv4FragMalformed": 20,
                    "Drop.Ipv4FragMemoryFull": 200, "IpReasmOKs": 1}, "; ".join(notes)

    def c_fragment_flood(self):
        """20,000 fragments of 1,480 bytes, random identifiers and offsets, never completing:
        reassembly memory stays at its bound (the oldest partial datagrams are evicted), and a
        fragmented echo request still gets its reply afterwards."""
        eth = self.eth_ipv4()
        body = b"f" * 1480
        rng = self.rng
        self.link.reset(keep=False)
        for i in range(20000):
            # MF set, offset anywhere up to 64,000 bytes: each datagram claims up to 64 KiB.
            self.link.send(eth + raw_ipv4(self.my_ip, self.rs_ip, 17, body,
                                          ident=rng.randrange(1 << 16),
                                          flags_frag=0x2000 | rng.randrange(0, 8000)))
            if i % 200 == 199:
                time.sleep(0.02)
        time.sleep(0.3)
        self.link.reset()
        out = subprocess.run(["ping", "-c", "3", "-i", "0.2", "-W", "2", "-s", "8000", self.rs_ip],
                             capture_output=True, text=True, timeout=30)
        ok = out.returncode == 0
        return ok, {"Drop.Ipv4FragMemoryFull": 1000}, \
            "ping -s 8000 after the flood: " + (out.stdout.strip().splitlines() or ["?"])[-1]

    # -- ICMP

    def c_icmp(self):
        """An echo-request flood (5,000 as fast as they go), echo requests to the broadcast
        address (smurf), oversized echoes (ping -s 65507, reassembled and answered in fragments),
        and a flood of ICMP errors quoting connections that do not exist."""
        notes, ok = [], True
        tmpl = self.eth() / self.ip() / ICMP(id=0x7777, seq=0) / (b"p" * 56)
        flood = [bytes(tmpl)] * 5000
        self.link.reset(keep=False)
        for i, f in enumerate(flood):
            self.link.send(f)
            if i % 200 == 199:
                time.sleep(0.02)
        time.sleep(0.5)
        replies = self.link.count
        notes.append(f"echo flood: {replies} frames back for 5000 requests")
        self.link.reset()
        bc = [self.eth() / self.ip(dst="198.18.0.255") / ICMP(id=1, seq=k) for k in range(10)]
        self.send_all(bc)
        errs = []
        for k in range(200):
            quoted = IP(src=self.rs_ip, dst=self.my_ip) / TCP(sport=self.closed_port(), dport=80, seq=k)
            errs.append(self.eth() / self.ip() / ICMP(type=3, code=3) / bytes(quoted)[:28])
        self.send_all(errs, gap=0.0002)
        out = subprocess.run(["ping", "-c", "3", "-i", "0.3", "-W", "3", "-s", "65507", self.rs_ip],
                             capture_output=True, text=True, timeout=30)
        ok &= out.returncode == 0 and replies >= 4000
        notes.append("ping -s 65507: " + (out.stdout.strip().splitlines() or ["?"])[-1])
        return ok, {"IcmpInEchos": 4000, "Drop.IcmpEchoBroadcast": 10, "IcmpInDestUnreachs": 200}, \
            "; ".join(notes)

    def c_arp(self):
        """Malformed ARP (bad operation, broadcast/our own sender, unsupported hardware type)
        and a flood of requests from 3,000 different senders (the cache stays bounded)."""
        frames = []
        bmac = "ff:ff:ff:ff:ff:ff"
        for _ in range(10):
            frames.append(Ether(src=self.my_mac_s, dst=bmac) / ARP(op=7, psrc=self.my_ip, pdst=self.rs_ip))
            frames.append(Ether(src=self.my_mac_s, dst=bmac) / ARP(hwsrc=bmac, psrc=self.my_ip, pdst=self.rs_ip))
            frames.append(Ether(src=self.my_mac_s, dst=bmac) / ARP(psrc=self.rs_ip, pdst=self.rs_ip))
            frames.append(Ether(src=self.my_mac_s, dst=bmac) / ARP(hwtype=6, psrc=self.my_ip, pdst=self.rs_ip))
        self.send_all(frames)
        flood = []
        for i in range(3000):
            mac = "02:aa:%02x:%02x:00:01" % (i >> 8, i & 0xFF)
            src = f"198.18.{2 + i // 250}.{1 + i % 250}"
            flood.append(bytes(Ether(src=mac, dst=bmac) / ARP(hwsrc=mac, psrc=src, pdst=self.rs_ip)))
        self.link.reset(keep=False)
        for i, f in enumerate(flood):
            self.link.send(f)
            if i % 200 == 199:
                time.sleep(0.02)
        time.sleep(0.3)
        return True, {"Drop.ArpBadOperation": 10, "Drop.ArpBadSender": 20,
                      "Drop.ArpUnsupported": 10, "ArpOutReplies": 2000}, \
            f"{self.link.count} frames back for 3000 requests from distinct senders"

    # -- zero window

    def c_zero_window(self):
        """A client that closes its window and keeps it closed for 15 s while ACKing every
        probe: ringstack probes with a backed-off persist timer (few probes, not one per RTO
        minimum), keeps the connection, and its memory stays bounded."""
        c = FakeConn(self, 80, window=4096)
        if c.connect() is None:
            return False, {}, "no SYN-ACK"
        c.send(b"GET /big.bin HTTP/1.1\r\nHost: z\r\n\r\n")
        c.read(4096, 5)
        c.freeze()
        c.poll(1.0)  # what was in flight fills the rest of the window
        c.link.send(c.pkt("A"))
        start = len(c.segs)
        t0 = time.monotonic()
        while time.monotonic() - t0 < 15:
            n0 = len(c.segs)
            c.poll(0.5)
            for s in c.segs[n0:]:
                c.link.send(c.pkt("A"))  # answer each probe: window still 0
        probes = c.segs[start:]
        window_closed = c.pkt("A")[TCP].window == 0
        c.abort()
        # Unbacked-off probing at the 200 ms minimum RTO would be ~75 probes in 15 s.
        ok = window_closed and 2 <= len(probes) <= 12
        return ok, {"TcpExtTCPZeroWindowProbes": 2}, \
            f"{len(probes)} probes in 15 s of zero window (received {len(c.data)} bytes before)"

    # -- scanners and flooders

    def c_nmap_syn_scan(self):
        """nmap -sS over ports 1-1100 and 5201: open ports answer SYN-ACK, closed ones RST."""
        out = subprocess.run(["nmap", "-sS", "-n", "-Pn", "-p", "1-1100,5201", "--max-retries", "1",
                              "-oX", "-", self.rs_ip], capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            return False, {}, f"nmap failed: {out.stderr[-300:]}"
        root = ET.fromstring(out.stdout)
        opened = sorted(int(p.get("portid")) for p in root.iter("port")
                        if p.find("state").get("state") == "open")
        closed = sum(int(e.get("count")) for e in root.iter("extraports") if e.get("state") == "closed")
        closed += sum(1 for p in root.iter("port") if p.find("state").get("state") == "closed")
        filtered = sum(int(e.get("count")) for e in root.iter("extraports") if e.get("state") != "closed")
        ok = opened == [7, 9, 80, 5201] and closed == 1097 and filtered == 0
        return ok, {"Drop.TcpNoSocket": 1000, "TcpOutRsts": 1000}, \
            f"open {opened}, closed {closed}, other {filtered}"

    def c_nmap_os(self):
        """nmap -O (OS fingerprinting: odd flag combinations, ECN, probes to closed ports, UDP
        and ICMP probes): ringstack survives and answers."""
        out = subprocess.run(["nmap", "-O", "-n", "-Pn", "-p", "7,9,80,1", "--max-retries", "1",
                              self.rs_ip], capture_output=True, text=True, timeout=180)
        guess = [l for l in out.stdout.splitlines()
                 if l.startswith(("Running", "OS details", "Aggressive OS", "No exact OS", "Too many"))]
        return out.returncode == 0, {}, "nmap: " + (" / ".join(guess)[:200] or "no guess")

    def _hping(self, args, name):
        cmd = ["timeout", "60", "hping3", "-q"] + args + [self.rs_ip]
        out = subprocess.run(cmd, capture_output=True, text=True)
        stats = [l for l in (out.stdout + out.stderr).splitlines() if "packets" in l]
        return f"{name}: " + (stats[0].strip() if stats else f"exit {out.returncode}")

    def c_hping3_floods(self):
        """hping3 floods of each kind, bounded in count: SYN from random sources, UDP to echo,
        ICMP echo, and fragmented UDP; the stack serves after each (checked by the probe)."""
        notes = []
        for args, name in ((["-S", "-p", "80", "--rand-source", "-i", "u50", "-c", "20000"], "SYN"),
                           (["--udp", "-p", "7", "-d", "512", "-i", "u50", "-c", "20000"], "UDP"),
                           (["--icmp", "-d", "1000", "-i", "u50", "-c", "20000"], "ICMP"),
                           (["--udp", "-p", "7", "-f", "-m", "64", "-d", "1200", "-i", "u200", "-c", "3000"], "fragments")):
            self.link.reset(keep=False)
            notes.append(self._hping(args, name))
            problem = self.probe()
            if problem:
                return False, {}, "; ".join(notes) + f"; after {name}: {problem}"
        return True, {"IcmpInEchos": 10000, "UdpInDatagrams": 10000, "IpReasmOKs": 1000,
                      "TcpExtSyncookiesSent": 1}, "; ".join(notes)

    def c_slowloris(self):
        """Slowloris (started with the suite): idle half-requests are closed by the HTTP idle
        limit, and trickled headers by the request-head limit."""
        sl = self.slowloris
        wait = self.a.slowloris_wait - (time.monotonic() - sl.start_time)
        if wait > 0:
            log(f"slowloris: waiting {wait:.0f} s more for the server's limits")
            time.sleep(wait)
        idle_open = sl.still_open(False)
        trickle_open = sl.still_open(True)
        sl.stop.set()
        n_idle = self.a.slowloris_idle
        n_trickle = self.a.slowloris_trickle
        times = sorted(sl.closed.values())
        note = (f"after {time.monotonic() - sl.start_time:.0f} s: {n_idle - idle_open}/{n_idle} idle and "
                f"{n_trickle - trickle_open}/{n_trickle} trickling connections reclaimed"
                + (f" (closed at {times[0]:.0f}-{times[-1]:.0f} s)" if times else ""))
        return idle_open == 0 and trickle_open == 0, {}, note

    # ----------------------------------------------------------------------- main

    CASES = [
        "truncated", "oversized", "ip_header_length", "ip_total_length", "ip_misc",
        "transport_checksums", "udp_length", "tcp_header", "tcp_option_lengths", "tcp_mss_tiny",
        "tcp_wscale_big", "tcp_flags", "rst_in_window", "rst_out_of_window", "syn_in_window",
        "data_injection", "tcp_overlaps", "fragments", "fragment_flood", "icmp", "arp",
        "syn_flood", "zero_window", "nmap_syn_scan", "nmap_os", "hping3_floods", "slowloris",
    ]

    def main(self):
        a = self.a
        with open(os.path.join(a.http_root, "small.txt"), "rb") as f:
            assert f.read().endswith(b"ringstack adversarial\n")
        self.slowloris = Slowloris(self.rs_ip, a.slowloris_idle, a.slowloris_trickle, a.slowloris_period)
        self.slowloris.start()
        self.uploader = Uploader(self.rs_ip, 9, a.upload, a.upload_chunk, a.pace)
        self.link.legit_ports.add(self.uploader.port)
        self.uploader.start()
        self.downloader = Downloader(self.rs_ip, a.download, a.download_chunk, a.pace)
        self.link.legit_ports.add(self.downloader.port)
        self.downloader.start()
        self.say("READY " + json.dumps({"upload_port": self.uploader.port,
                                        "download_port": self.downloader.port}))
        cases = self.CASES if a.cases == "all" else a.cases.split(",")
        for name in cases:
            self.run_case(name, getattr(self, "c_" + name))
        # Finish the legitimate transfers at full speed.
        self.uploader.resume()
        self.uploader.fast.set()
        self.downloader.fast.set()
        self.uploader.done.wait(120)
        self.downloader.done.wait(120)
        self.say("DONE " + json.dumps({
            "upload_bytes": self.uploader.sent, "upload_error": self.uploader.error,
            "upload_done": self.uploader.done.is_set(),
            "download_bytes": self.downloader.body, "download_status": self.downloader.status,
            "download_sha256": self.downloader.sha.hexdigest(), "download_error": self.downloader.error,
            "failed": [r["case"] for r in self.results if not r["ok"]],
        }))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--iface", default="veth0")
    p.add_argument("--kernel-if", default="veth0")
    p.add_argument("--rs-if", default="veth1")
    p.add_argument("--rs-ip", default="198.18.0.2")
    p.add_argument("--my-ip", default="198.18.0.1")
    p.add_argument("--rs-mac", required=True)
    p.add_argument("--http-root", required=True)
    p.add_argument("--upload", required=True, help="file streamed to the discard service")
    p.add_argument("--download", default="/big.bin", help="HTTP path of the file downloaded")
    p.add_argument("--upload-chunk", type=int, default=16384)
    p.add_argument("--download-chunk", type=int, default=16384)
    p.add_argument("--pace", type=float, default=0.1, help="seconds between chunks")
    p.add_argument("--slowloris-idle", type=int, default=40)
    p.add_argument("--slowloris-trickle", type=int, default=10)
    p.add_argument("--slowloris-period", type=float, default=5.0)
    p.add_argument("--slowloris-wait", type=float, default=75.0,
                   help="seconds after the start when the slowloris connections must be gone")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--cases", default="all")
    p.add_argument("--standalone", action="store_true", help="no driver on stdin")
    a = p.parse_args()
    # Network safety: raw frames only inside a lab namespace (rs-*), to RFC 2544 addresses.
    ns = subprocess.run(["ip", "netns", "identify"], capture_output=True, text=True).stdout.strip()
    if not ns.startswith("rs-"):
        raise SystemExit(f"refusing to run outside a ringstack lab namespace (here: {ns or 'root'!r})")
    for addr in (a.rs_ip, a.my_ip):
        b = ip_bytes(addr)
        if not (b[0] == 198 and b[1] in (18, 19)):
            raise SystemExit(f"{addr} is not in 198.18.0.0/15")
    Suite(a).main()


if __name__ == "__main__":
    main()
