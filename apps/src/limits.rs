//! The resource limits of `ringstack serve`, one flag each, all with the stack's defaults. Every
//! limit, when hit, is counted (the counter is named in each flag's help, and shows in the
//! counters `serve` prints on SIGUSR1 and on exit):
//!
//! | flag | bounds | counted as |
//! |---|---|---|
//! | `--max-connections` | TCP sockets (listeners + connections, half-open ones included) | `Drop.TcpSocketLimit` |
//! | `--syn-backlog` | half-open connections per listener | `TcpExtSyncookiesSent` (cookies) or `Drop.TcpSynBacklogFull` |
//! | `--accept-backlog` | established connections waiting in a listener's accept queue | `Drop.TcpAcceptQueueFull`, `TcpExtListenOverflows` |
//! | `--tcp-rcv-buf`, `--tcp-snd-buf` | buffer bytes per TCP connection (the receive window) | `Drop.TcpOutOfWindow` / `Drop.TcpRcvBufFull`; the sender blocks |
//! | `--max-buffer-memory` | buffer bytes of all TCP connections together | `Drop.TcpSocketLimit` |
//! | `--udp-rcv-buf` | bytes queued per UDP socket | `Drop.UdpRcvBufFull` |
//! | `--reassembly-memory`, `--reassembly-datagrams` | IPv4 reassembly | `Drop.Ipv4FragMemoryFull` |
//! | `--arp-pending`, `--arp-entries` | packets waiting per unresolved neighbour; neighbour cache | `Drop.ArpPendingFull` |
//!
//! `--max-buffer-memory` is admission control: each connection may grow both buffers to their
//! full size (they are allocated on first use), so the stack admits at most
//! `memory / (rcv + snd)` sockets, and the total can never exceed the bound.

use anyhow::Result;
use clap::Args;
use ringstack_stack::{Config, Duration};

/// Resource limits (see the module docs for what each counts when hit).
#[derive(Args, Debug, Clone, Default)]
pub struct LimitArgs {
    /// Most TCP sockets at once (listeners, connections, half-open and TIME-WAIT ones); beyond
    /// it SYNs are answered by SYN cookies or dropped (Drop.TcpSocketLimit). Default 65536.
    #[arg(long, value_name = "N")]
    pub max_connections: Option<usize>,
    /// Half-open connections per listener before SYN cookies take over (TcpExtSyncookiesSent),
    /// or SYNs are dropped with --no-syn-cookies (Drop.TcpSynBacklogFull). Default 256.
    #[arg(long, value_name = "N")]
    pub syn_backlog: Option<usize>,
    /// Never answer with SYN cookies: a full SYN backlog drops SYNs.
    #[arg(long)]
    pub no_syn_cookies: bool,
    /// Upper bound on every listener's accept queue, like Linux's net.core.somaxconn; a full
    /// queue drops the completing ACK (Drop.TcpAcceptQueueFull). Default 4096.
    #[arg(long, value_name = "N")]
    pub accept_backlog: Option<usize>,
    /// Receive buffer per TCP connection, bytes (its receive window). Default 262144.
    #[arg(long, value_name = "BYTES")]
    pub tcp_rcv_buf: Option<usize>,
    /// Send buffer per TCP connection, bytes. Default 262144.
    #[arg(long, value_name = "BYTES")]
    pub tcp_snd_buf: Option<usize>,
    /// Buffer memory of all TCP connections together, bytes: admits at most
    /// BYTES / (rcv buf + snd buf) sockets (Drop.TcpSocketLimit beyond). Default: unbounded
    /// but for --max-connections.
    #[arg(long, value_name = "BYTES")]
    pub max_buffer_memory: Option<usize>,
    /// Bytes a UDP socket may queue (Drop.UdpRcvBufFull beyond). Default 1048576.
    #[arg(long, value_name = "BYTES")]
    pub udp_rcv_buf: Option<usize>,
    /// Bytes held by IPv4 reassembly across all datagrams; the oldest partial datagrams are
    /// evicted beyond (Drop.Ipv4FragMemoryFull). Default 4194304.
    #[arg(long, value_name = "BYTES")]
    pub reassembly_memory: Option<usize>,
    /// Datagrams reassembled at once (Drop.Ipv4FragMemoryFull beyond). Default 64.
    #[arg(long, value_name = "N")]
    pub reassembly_datagrams: Option<usize>,
    /// Seconds all fragments of a datagram have to arrive (Drop.Ipv4FragTimeout). Default 30.
    #[arg(long, value_name = "SECS")]
    pub reassembly_timeout: Option<u64>,
    /// Packets held per neighbour while ARP resolves it (Drop.ArpPendingFull beyond).
    /// Default 16.
    #[arg(long, value_name = "N")]
    pub arp_pending: Option<usize>,
    /// Neighbour cache entries (resolved + resolving); new neighbours are refused with
    /// Drop.ArpPendingFull while every entry is resolving. Default 1024.
    #[arg(long, value_name = "N")]
    pub arp_entries: Option<usize>,
}

impl LimitArgs {
    /// `config` with these limits applied (a limit not given keeps its value).
    pub fn apply(&self, mut config: Config) -> Result<Config> {
        fn positive(flag: &str, v: Option<usize>) -> Result<Option<usize>> {
            match v {
                Some(0) => crate::usage!("--{flag}: must be at least 1"),
                v => Ok(v),
            }
        }
        let tcp = &mut config.tcp;
        if let Some(n) = positive("max-connections", self.max_connections)? {
            tcp.max_sockets = n;
        }
        if let Some(n) = positive("syn-backlog", self.syn_backlog)? {
            tcp.syn_backlog = n;
        }
        if self.no_syn_cookies {
            tcp.syn_cookies = false;
        }
        if let Some(n) = positive("accept-backlog", self.accept_backlog)? {
            config.max_accept_backlog = n;
        }
        let tcp = &mut config.tcp;
        if let Some(n) = self.tcp_rcv_buf {
            if n < 1024 {
                crate::usage!("--tcp-rcv-buf: at least 1024 bytes");
            }
            tcp.rcv_buf = n;
        }
        if let Some(n) = self.tcp_snd_buf {
            if n < 1024 {
                crate::usage!("--tcp-snd-buf: at least 1024 bytes");
            }
            tcp.snd_buf = n;
        }
        if let Some(total) = self.max_buffer_memory {
            let per = tcp.rcv_buf + tcp.snd_buf;
            let n = total / per;
            if n == 0 {
                crate::usage!(
                    "--max-buffer-memory {total}: less than one connection's buffers ({per} bytes)"
                );
            }
            tcp.max_sockets = tcp.max_sockets.min(n);
        }
        if let Some(n) = positive("udp-rcv-buf", self.udp_rcv_buf)? {
            config.udp_rcv_buf = n;
        }
        if let Some(n) = positive("reassembly-memory", self.reassembly_memory)? {
            config.reassembly.max_memory = n;
        }
        if let Some(n) = positive("reassembly-datagrams", self.reassembly_datagrams)? {
            config.reassembly.max_datagrams = n;
        }
        if let Some(s) = self.reassembly_timeout {
            if s == 0 {
                crate::usage!("--reassembly-timeout: at least 1 second");
            }
            config.reassembly.timeout = Duration::from_secs(s);
        }
        if let Some(n) = positive("arp-pending", self.arp_pending)? {
            config.arp.pending_per_neighbor = n;
        }
        if let Some(n) = positive("arp-entries", self.arp_entries)? {
            config.arp.max_entries = n;
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        limits: LimitArgs,
    }

    fn apply(args: &[&str]) -> Result<Config> {
        let cli = Cli::try_parse_from(std::iter::once("t").chain(args.iter().copied()))?;
        cli.limits
            .apply(Config::new([2, 0, 0, 0, 0, 2], [198, 18, 0, 2].into(), 24))
    }

    #[test]
    fn no_flags_keep_the_defaults() {
        let c = apply(&[]).unwrap();
        let d = Config::new([2, 0, 0, 0, 0, 2], [198, 18, 0, 2].into(), 24);
        assert_eq!(c.tcp.max_sockets, d.tcp.max_sockets);
        assert_eq!(c.tcp.syn_backlog, d.tcp.syn_backlog);
        assert!(c.tcp.syn_cookies);
        assert_eq!(c.max_accept_backlog, d.max_accept_backlog);
        assert_eq!(c.reassembly.max_memory, d.reassembly.max_memory);
        assert_eq!(c.arp.pending_per_neighbor, d.arp.pending_per_neighbor);
    }

    #[test]
    fn every_flag_reaches_the_config() {
        let c = apply(&[
            "--max-connections=100",
            "--syn-backlog=8",
            "--no-syn-cookies",
            "--accept-backlog=4",
            "--tcp-rcv-buf=65536",
            "--tcp-snd-buf=32768",
            "--udp-rcv-buf=4096",
            "--reassembly-memory=65536",
            "--reassembly-datagrams=3",
            "--reassembly-timeout=5",
            "--arp-pending=2",
            "--arp-entries=32",
        ])
        .unwrap();
        assert_eq!(c.tcp.max_sockets, 100);
        assert_eq!(c.tcp.syn_backlog, 8);
        assert!(!c.tcp.syn_cookies);
        assert_eq!(c.max_accept_backlog, 4);
        assert_eq!((c.tcp.rcv_buf, c.tcp.snd_buf), (65536, 32768));
        assert_eq!(c.udp_rcv_buf, 4096);
        assert_eq!(c.reassembly.max_memory, 65536);
        assert_eq!(c.reassembly.max_datagrams, 3);
        assert_eq!(c.reassembly.timeout, Duration::from_secs(5));
        assert_eq!(c.arp.pending_per_neighbor, 2);
        assert_eq!(c.arp.max_entries, 32);
    }

    #[test]
    fn buffer_memory_bounds_the_connection_count() {
        let c = apply(&[
            "--tcp-rcv-buf=65536",
            "--tcp-snd-buf=65536",
            "--max-buffer-memory=1048576",
        ])
        .unwrap();
        assert_eq!(c.tcp.max_sockets, 8);
        // The lower of the two bounds wins.
        let c = apply(&["--max-connections=3", "--max-buffer-memory=1073741824"]).unwrap();
        assert_eq!(c.tcp.max_sockets, 3);
        let e = apply(&["--max-buffer-memory=1000"]).unwrap_err();
        assert!(e.to_string().contains("less than one connection"), "{e}");
    }

    #[test]
    fn zero_is_refused() {
        for flag in ["--max-connections=0", "--syn-backlog=0", "--arp-pending=0"] {
            let e = apply(&[flag]).unwrap_err();
            assert!(e.to_string().contains("at least 1"), "{flag}: {e}");
        }
    }
}
