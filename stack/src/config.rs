//! Stack configuration: addresses and every tunable, all with defaults.

use core::net::Ipv4Addr;

use crate::tcp::TcpConfig;
use crate::time::Duration;

/// An Ethernet MAC address.
pub type Mac = [u8; 6];

/// Everything a [`crate::Stack`] needs to know at creation.
#[derive(Clone, Debug)]
pub struct Config {
    /// Our MAC address.
    pub mac: Mac,
    /// Our IPv4 address.
    pub addr: Ipv4Addr,
    /// Prefix length of our subnet (e.g. 24).
    pub prefix_len: u8,
    /// Next hop for destinations outside the subnet.
    pub gateway: Option<Ipv4Addr>,
    /// IP MTU of the link (bytes of IPv4 packet, header included).
    pub mtu: usize,
    /// Multicast groups whose frames we accept (besides broadcast).
    pub multicast: Vec<Ipv4Addr>,
    /// Seed for every random choice the stack makes (IP ids, ISNs, ephemeral ports).
    pub seed: u64,
    /// Default TTL of packets we send.
    pub ttl: u8,
    /// ARP tunables.
    pub arp: ArpConfig,
    /// Fragment reassembly tunables.
    pub reassembly: ReassemblyConfig,
    /// ICMP error rate limit: at most `icmp_error_burst` errors, refilled at
    /// `icmp_errors_per_sec` (a token bucket, like Linux's `icmp_ratelimit`).
    pub icmp_errors_per_sec: u32,
    /// Burst size of the ICMP error token bucket.
    pub icmp_error_burst: u32,
    /// Bytes a UDP or ping socket may hold in its receive queue.
    pub udp_rcv_buf: usize,
    /// Upper bound on the accept queue of every TCP listener, whatever backlog the application
    /// asks for (Linux's `net.core.somaxconn`, 4096 since 5.4). A full queue drops the ACK that
    /// completes a handshake (`TcpAcceptQueueFull`).
    pub max_accept_backlog: usize,
    /// TCP tunables.
    pub tcp: TcpConfig,
}

/// ARP tunables (RFC 826, RFC 1122 §2.3.2).
#[derive(Clone, Debug)]
pub struct ArpConfig {
    /// How long a learned entry stays valid.
    pub cache_ttl: Duration,
    /// Interval between requests while resolving.
    pub retry_interval: Duration,
    /// Requests sent before giving up (and dropping the pending packets).
    pub max_requests: u32,
    /// Packets held per unresolved neighbour.
    pub pending_per_neighbor: usize,
    /// Maximum number of entries (resolved + resolving).
    pub max_entries: usize,
    /// Send a gratuitous ARP for our address when the stack starts.
    pub gratuitous: bool,
}

/// IPv4 reassembly tunables (RFC 791 §3.2, RFC 815).
#[derive(Clone, Debug)]
pub struct ReassemblyConfig {
    /// Time allowed for all fragments of a datagram to arrive.
    pub timeout: Duration,
    /// Total bytes held across all datagrams being reassembled.
    pub max_memory: usize,
    /// Maximum number of datagrams being reassembled at once.
    pub max_datagrams: usize,
}

impl Default for ArpConfig {
    fn default() -> Self {
        ArpConfig {
            cache_ttl: Duration::from_secs(60),
            retry_interval: Duration::from_millis(1000),
            max_requests: 3,
            pending_per_neighbor: 16,
            max_entries: 1024,
            gratuitous: true,
        }
    }
}

impl Default for ReassemblyConfig {
    fn default() -> Self {
        ReassemblyConfig {
            timeout: Duration::from_secs(30),
            max_memory: 4 * 1024 * 1024,
            max_datagrams: 64,
        }
    }
}

impl Config {
    /// A configuration with defaults for everything but the addresses.
    pub fn new(mac: Mac, addr: Ipv4Addr, prefix_len: u8) -> Self {
        Config {
            mac,
            addr,
            prefix_len,
            gateway: None,
            mtu: 1500,
            multicast: Vec::new(),
            seed: 0x5eed,
            ttl: 64,
            arp: ArpConfig::default(),
            reassembly: ReassemblyConfig::default(),
            icmp_errors_per_sec: 100,
            icmp_error_burst: 50,
            udp_rcv_buf: 1 << 20,
            max_accept_backlog: 4096,
            tcp: TcpConfig::default(),
        }
    }
}

/// A hash map whose hasher is seeded from [`Config::seed`]: lookups stay fast and resistant to
/// hash flooding from remote keys, and iteration order is the same in every run with the same
/// seed (deterministic simulation).
pub type SeededMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::FixedState>;

/// An empty [`SeededMap`].
pub fn seeded_map<K, V>(seed: u64) -> SeededMap<K, V> {
    std::collections::HashMap::with_hasher(foldhash::fast::FixedState::with_seed(seed))
}
