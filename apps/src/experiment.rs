//! `ringstack experiment NAME`: the notes' demonstrations, run on the in-memory link on a
//! virtual clock (no privileges, no network), each printing a short explanation that cites the
//! notes and a table of what it counted. The measurements themselves live in
//! [`ringstack_sockets::scenarios`], shared with the tests.

use std::fs::File;
use std::io::Write;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use clap::{Args, Subcommand};
use ringstack_sockets::scenarios::{self, RecvMethod, SendMethod, Transfer};
use sha2::{Digest, Sha256};

/// Options of `ringstack experiment`.
#[derive(Args, Debug)]
#[command(after_help = "Examples:
  ringstack experiment lt-blocking-starvation
  ringstack experiment et-vs-lt
  ringstack experiment thundering-herd --waiters 8
  ringstack experiment select-vs-epoll --sizes 10,1000,100000
  ringstack experiment copies --mb 10")]
pub struct ExperimentArgs {
    #[command(subcommand)]
    which: Experiment,
}

#[derive(Subcommand, Debug)]
enum Experiment {
    /// The notes' open question: does a single-threaded LT loop with blocking reads starve the
    /// other connections? (Yes; ET + non-blocking does not.)
    #[command(
        after_help = "Example:\n  ringstack experiment lt-blocking-starvation --read-timeout-secs 60"
    )]
    LtBlockingStarvation {
        /// How long the blocked read waits before its timeout stands in for "forever".
        #[arg(long, default_value_t = 60)]
        read_timeout_secs: u64,
    },
    /// Level- vs edge-triggered epoll: events returned per wait for the same arrivals and reads.
    #[command(after_help = "Example:\n  ringstack experiment et-vs-lt")]
    EtVsLt,
    /// One connection, N workers' epoll instances on one listener: woken with and without
    /// EPOLLEXCLUSIVE.
    #[command(after_help = "Example:\n  ringstack experiment thundering-herd --waiters 8")]
    ThunderingHerd {
        /// Epoll instances (workers) watching the listening socket.
        #[arg(long, default_value_t = 4)]
        waiters: usize,
    },
    /// Entries examined per wait by select, poll and epoll for 10..100,000 registered sockets
    /// with 10 ready.
    #[command(
        after_help = "Example:\n  ringstack experiment select-vs-epoll --sizes 10,100,1000 --ready 10"
    )]
    SelectVsEpoll {
        /// Numbers of registered sockets, comma-separated (at most 125,000).
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "10,100,1000,10000,100000"
        )]
        sizes: Vec<usize>,
        /// Sockets with a datagram waiting (at most the smallest size).
        #[arg(long, default_value_t = 10)]
        ready: usize,
    },
    /// CPU copies per byte: read+write vs send_file vs send_with, read vs recv_with, from the
    /// stack's copy counters.
    #[command(after_help = "Example:\n  ringstack experiment copies --mb 10")]
    Copies {
        /// Size of the file sent, in MiB.
        #[arg(long, default_value_t = 10)]
        mb: u64,
    },
}

/// Runs the chosen experiment.
pub fn run(args: &ExperimentArgs) -> Result<()> {
    match &args.which {
        Experiment::LtBlockingStarvation { read_timeout_secs } => {
            starvation(Duration::from_secs(*read_timeout_secs))
        }
        Experiment::EtVsLt => et_vs_lt(),
        Experiment::ThunderingHerd { waiters } => herd(*waiters),
        Experiment::SelectVsEpoll { sizes, ready } => select_vs_epoll(sizes, *ready),
        Experiment::Copies { mb } => copies(*mb),
    }
}

fn starvation(timeout: Duration) -> Result<()> {
    println!(
        "The notes (epoll, LT mode) leave an experiment open: \"在 LT + 阻塞模式 + 单线程 下使用 \
         while 循环接收数据，阻塞在一个文件描述符的缓冲区之后，还能不能接受其他文件描述符的数据？\"\n\
         Two clients each send a 9-byte request; one thread serves them from one epoll_wait.\n\
         LT + blocking: the handler reads \"until the buffer is empty\" — but on an empty buffer a\n\
         blocking read does not return, it waits (\"read 或 recv 会阻塞等待数据到来\"). Here the read\n\
         timeout ({}s of virtual time) stands in for \"forever\".\n\
         ET + non-blocking: each handler reads until EAGAIN (\"ET 模式必须对用于通信的文件描述符设置非阻塞\").\n",
        timeout.as_secs()
    );
    let lt = scenarios::lt_blocking_round(timeout)?;
    let et = scenarios::et_nonblocking_round()?;
    println!(
        "{:<22} {:>7} {:>9} {:>9} {:>10} {:>10} {:>12}",
        "loop", "events", "served 1", "served 2", "unread 1", "unread 2", "blocked ms"
    );
    for (name, r) in [("LT + blocking reads", &lt), ("ET + non-blocking", &et)] {
        println!(
            "{:<22} {:>7} {:>9} {:>9} {:>10} {:>10} {:>12}",
            name, r.events, r.served[0], r.served[1], r.left[0], r.left[1], r.blocked_ms
        );
    }
    println!();
    println!(
        "verdict: LT + blocking {}: the thread sat {} ms in a read on connection 1 while \
         connection 2's request waited unread in its buffer.",
        if lt.starved() {
            "STARVES"
        } else {
            "does not starve"
        },
        lt.blocked_ms
    );
    println!(
        "verdict: ET + non-blocking {}: both requests served in one round, {} ms blocked.",
        if et.starved() {
            "STARVES"
        } else {
            "does not starve"
        },
        et.blocked_ms
    );
    Ok(())
}

fn et_vs_lt() -> Result<()> {
    println!(
        "The notes: LT \"只要文件描述符处于可读或可写状态，事件就会一直触发\"; ET fires \"只有当文件描述符的\n\
         状态从不可读/不可写变为可读/可写时\", so data left unread gets no second event — \"造成积压\".\n\
         One connection is watched by two epoll instances, one LT and one ET; each row is one\n\
         epoll_wait(timeout 0) on each after the action.\n"
    );
    let steps = scenarios::et_vs_lt()?;
    println!(
        "{:<40} {:>9} {:>9}",
        "action before the wait", "LT events", "ET events"
    );
    for s in &steps {
        println!("{:<40} {:>9} {:>9}", s.action, s.lt, s.et);
    }
    let (lt, et): (usize, usize) = steps.iter().fold((0, 0), |(l, e), s| (l + s.lt, e + s.et));
    println!("{:<40} {:>9} {:>9}", "total", lt, et);
    println!(
        "\nLT reports the socket on every wait while bytes remain; ET reports each transition once,\n\
         and after a partial read new data brings no event until the socket is drained to EAGAIN."
    );
    Ok(())
}

fn herd(waiters: usize) -> Result<()> {
    ensure!(waiters > 0, "--waiters must be at least 1");
    println!(
        "The notes name the thundering herd (惊群效应) next to C10K: {waiters} workers each wait in \
         their own epoll\n\
         instance on one listening socket; one connection arrives. Without EPOLLEXCLUSIVE the\n\
         callback wakes every instance, all race to accept(), one wins and the rest get EAGAIN. With\n\
         EPOLLEXCLUSIVE only one instance is woken.\n"
    );
    println!(
        "{:<18} {:>8} {:>8} {:>7} {:>9} {:>15}",
        "flag", "waiters", "wakeups", "woken", "accepted", "woken for naught"
    );
    for (name, exclusive) in [("none", false), ("EPOLLEXCLUSIVE", true)] {
        let h = scenarios::herd(waiters, exclusive)?;
        println!(
            "{:<18} {:>8} {:>8} {:>7} {:>9} {:>15}",
            name,
            h.waiters,
            h.wakeups,
            h.woken,
            h.accepted,
            h.woken - h.accepted
        );
    }
    Ok(())
}

fn select_vs_epoll(sizes: &[usize], ready: usize) -> Result<()> {
    ensure!(!sizes.is_empty(), "--sizes needs at least one number");
    for &n in sizes {
        ensure!(
            ready <= n && n <= 125_000 && ready <= 60_000,
            "--ready ({ready}) must not exceed a size ({n}); sizes at most 125,000"
        );
    }
    println!(
        "The notes: select/poll \"待检测集合需要频繁的在用户区和内核区之间进行数据的拷贝\" and scan it\n\
         linearly, their cost \"随着文件描述符数量的增加而线性增大\"; epoll keeps an interest tree and a\n\
         ready list filled by callbacks — \"不拷贝 明确通知\" — so epoll_wait looks at ready entries\n\
         only. {ready} of the registered sockets have a datagram waiting; one wait of each.\n\
         select cannot take descriptors >= FD_SETSIZE (1024): \"-\" below.\n"
    );
    println!(
        "{:>10} {:>6} {:>16} {:>14} {:>16} {:>15}",
        "registered",
        "ready",
        "select examined",
        "poll examined",
        "poll bytes copied",
        "epoll examined"
    );
    for &n in sizes {
        let c = scenarios::multiplex_cost(n, ready)?;
        ensure!(
            c.poll_found == ready && c.epoll_found == ready,
            "expected {ready} ready, poll found {} and epoll {}",
            c.poll_found,
            c.epoll_found
        );
        println!(
            "{:>10} {:>6} {:>16} {:>14} {:>16} {:>15}",
            c.registered,
            c.ready,
            c.select_examined
                .map_or_else(|| "-".to_string(), |e| e.to_string()),
            c.poll_examined,
            c.poll_bytes_copied,
            c.epoll_examined
        );
    }
    println!(
        "\nselect and poll examine every registered descriptor on every call; epoll_wait examines the\n\
         ready list: {ready} entries whatever the number registered."
    );
    Ok(())
}

fn copies(mb: u64) -> Result<()> {
    ensure!(mb > 0, "--mb must be at least 1");
    let len = mb * 1024 * 1024;
    println!(
        "The notes' zero-copy section counts a read()+write() file transfer as \"四次上下文切换+四次数据拷贝\"\n\
         (two by DMA, two by the CPU) and shows mmap/sendfile removing CPU copies. In a userspace\n\
         stack the socket buffers live in the process, so the CPU copies are: file → app buffer\n\
         (the application's read), app → send buffer, send buffer → frame; frame → receive buffer,\n\
         receive buffer → app. Counted by the stack per machine (bytes, first transmissions; a\n\
         {mb} MiB file, clean link, so retransmissions are 0).\n\
         send_file maps the file and queues it in the send buffer by reference (a scatter-gather\n\
         queue of (mapping, range) descriptors, the notes' SG-DMA): no application copy, no copy\n\
         into the send buffer; the one CPU copy left is mapping → frame.\n"
    );
    let data: Vec<u8> = (0..len).map(byte_at).collect();
    let want: [u8; 32] = Sha256::digest(&data).into();
    let file = temp_file(&data)?;
    fn generate(offset: u64, out: &mut [u8]) {
        for (i, b) in out.iter_mut().enumerate() {
            *b = byte_at(offset + i as u64);
        }
    }
    let runs: [(SendMethod<'_>, RecvMethod); 4] = [
        (SendMethod::ReadWrite(&file), RecvMethod::Read),
        (SendMethod::SendFile(&file), RecvMethod::RecvWith),
        (SendMethod::SendWith(&data), RecvMethod::Read),
        (
            SendMethod::SendWithGenerate(len, generate),
            RecvMethod::RecvWith,
        ),
    ];
    let mut rows: Vec<(String, Transfer)> = Vec::new();
    for (send, recv) in runs {
        let mut h = Sha256::new();
        let t = scenarios::transfer(send, recv, |b| h.update(b))
            .with_context(|| format!("{} → {}", send.name(), recv.name()))?;
        let got: [u8; 32] = h.finalize().into();
        ensure!(
            got == want,
            "{} → {}: SHA-256 mismatch",
            send.name(),
            recv.name()
        );
        rows.push((format!("{} → {}", send.name(), recv.name()), t));
    }
    println!(
        "{:<46} {:>11} {:>11}",
        "transfer (sender → receiver)", "send cp/B", "recv cp/B"
    );
    for (name, t) in &rows {
        println!(
            "{:<46} {:>11} {:>11}",
            name,
            t.send_copies_per_byte(),
            t.recv_copies_per_byte()
        );
    }
    println!("\ncounters (bytes) of each transfer:");
    println!(
        "{:<46} {:>12} {:>11} {:>10} {:>10} {:>13} {:>8} {:>13} {:>11} {:>10}",
        "",
        "app file→buf",
        "AppToSndBuf",
        "…InPlace",
        "…ByRef",
        "SndBufToFrame",
        "Retrans",
        "FrameToRcvBuf",
        "RcvBufToApp",
        "…InPlace"
    );
    for (name, t) in &rows {
        println!(
            "{:<46} {:>12} {:>11} {:>10} {:>10} {:>13} {:>8} {:>13} {:>11} {:>10}",
            name,
            t.app_copied,
            t.sender.app_to_sndbuf,
            t.sender.app_to_sndbuf_in_place,
            t.sender.app_to_sndbuf_by_ref,
            t.sender.sndbuf_to_frame,
            t.sender.sndbuf_to_frame_retrans,
            t.receiver.frame_to_rcvbuf,
            t.receiver.rcvbuf_to_app,
            t.receiver.rcvbuf_to_app_in_place
        );
    }
    println!(
        "\nEvery transfer SHA-256-checked: {}.\n\
         In-place writes count as a copy when the writer copied them (send_with from a buffer),\n\
         not when it computed them in place (the generator); bytes queued by reference (…ByRef:\n\
         send_file) are not copied until segmentation puts them in a frame.",
        hex(&want)
    );
    Ok(())
}

/// Byte `i` of the payload: position-addressable, so the generator computes any piece.
fn byte_at(i: u64) -> u8 {
    let x = (i ^ 0x5DEE_CE66).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    ((x >> 32) ^ (x >> 56)) as u8
}

/// A temporary file holding `data`, its name removed at once (the descriptor keeps it alive).
fn temp_file(data: &[u8]) -> Result<File> {
    let path = std::env::temp_dir().join(format!(
        "ringstack-experiment-copies-{}.bin",
        std::process::id()
    ));
    let mut f = File::options()
        .create_new(true)
        .read(true)
        .write(true)
        .open(&path)
        .with_context(|| format!("creating {}", path.display()))?;
    std::fs::remove_file(&path)?;
    f.write_all(data)?;
    f.flush()?;
    Ok(f)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
