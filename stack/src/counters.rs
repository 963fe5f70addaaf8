//! Counters, named like `nstat`'s, and drop reasons: every frame the stack refuses is counted
//! under exactly one [`DropReason`], so "why was my packet dropped?" always has an answer.

use core::fmt;

/// Declares a flat enum of named counters with a stable index, a name and a description.
macro_rules! named_enum {
    ($(#[$meta:meta])* $vis:vis enum $name:ident { $( $(#[$vm:meta])* $variant:ident = $label:literal ),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
        #[repr(u16)]
        $vis enum $name { $( $(#[$vm])* #[doc = $label] $variant ),* }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),*];
            /// Number of values.
            pub const COUNT: usize = Self::ALL.len();
            /// The stable nstat-like name, e.g. `Ipv4InHdrErrors` or `Ipv4BadChecksum`.
            pub const fn name(self) -> &'static str {
                match self { $($name::$variant => stringify!($variant)),* }
            }
            /// A sentence saying what it means.
            pub const fn describe(self) -> &'static str {
                match self { $($name::$variant => $label),* }
            }
            /// Index into a counter array.
            pub const fn index(self) -> usize { self as usize }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(self.name()) }
        }
    };
}

named_enum! {
    /// Why a frame, packet or segment was dropped. One reason per drop, named by layer.
    pub enum DropReason {
        // --- link (NIC / Ethernet) ---
        EthTruncated = "frame shorter than an Ethernet header",
        EthNotForUs = "destination MAC is neither ours, broadcast, nor a joined multicast group",
        EthUnknownType = "EtherType is not ARP or IPv4",
        EthIpv6Unsupported = "IPv6 frame: IPv6 is not implemented yet",
        EthOwnSource = "frame claims to come from our own MAC address",
        TxQueueFull = "transmit queue full: the NIC is not draining frames fast enough",
        // --- ARP ---
        ArpTruncated = "ARP packet shorter than its declared lengths",
        ArpUnsupported = "ARP hardware/protocol type is not Ethernet/IPv4",
        ArpBadOperation = "ARP operation is neither request nor reply",
        ArpNotForUs = "ARP request for an address that is not ours",
        ArpBadSender = "ARP sender address is broadcast, multicast or ours",
        ArpPendingFull = "packet waiting for ARP resolution dropped: pending queue full",
        ArpUnresolved = "packet waiting for ARP resolution dropped: neighbour never answered",
        // --- IPv4 ---
        Ipv4Truncated = "IPv4 packet shorter than its header",
        Ipv4BadVersion = "IP version field is not 4",
        Ipv4BadHeaderLength = "IHL below 5 or beyond the packet",
        Ipv4BadTotalLength = "total length exceeds the frame or is below the header length",
        Ipv4BadChecksum = "IPv4 header checksum mismatch",
        Ipv4TtlExpired = "TTL is zero",
        Ipv4BadSource = "source address is broadcast, multicast, loopback or ours",
        Ipv4NotForUs = "destination is not one of our addresses (we are a host, not a router)",
        Ipv4UnknownProtocol = "no handler for this IP protocol number",
        Ipv4FragMalformed = "fragment with bad offset/length (beyond 65535, or non-final not a multiple of 8)",
        Ipv4FragConflict = "fragment overlaps earlier data with different bytes",
        Ipv4FragTimeout = "reassembly timed out before all fragments arrived",
        Ipv4FragMemoryFull = "reassembly memory bound reached",
        Ipv4NoRoute = "no route: destination off-link and no gateway configured",
        Ipv4FragNeededDf = "datagram larger than the MTU with Don't Fragment set",
        // --- ICMP ---
        IcmpTruncated = "ICMP message shorter than its header",
        IcmpBadChecksum = "ICMP checksum mismatch",
        IcmpUnsupportedType = "ICMP type not handled",
        IcmpRateLimited = "ICMP error not sent: rate limit",
        IcmpEchoBroadcast = "echo request to a broadcast/multicast address ignored (smurf defence)",
        IcmpNoSocket = "ICMP echo reply with no ping socket waiting for it",
        IcmpBadError = "ICMP error quoting a packet we could not have sent",
        // --- UDP ---
        UdpTruncated = "UDP datagram shorter than its header",
        UdpBadLength = "UDP length field disagrees with the IP payload",
        UdpBadChecksum = "UDP checksum mismatch",
        UdpNoPort = "no socket bound to the destination port",
        UdpRcvBufFull = "socket receive queue full",
        UdpSndBufFull = "socket send queue full",
        // --- TCP (owned by the tcp module; add new reasons here) ---
        TcpTruncated = "TCP segment shorter than its header",
        TcpBadHeaderLength = "TCP data offset below 5 or beyond the segment",
        TcpBadChecksum = "TCP checksum mismatch",
        TcpBadOptions = "TCP options malformed",
        TcpBadFlags = "invalid flag combination (e.g. SYN+FIN, no flags)",
        TcpNoSocket = "no connection or listener for this four-tuple (RST sent)",
        TcpOutOfWindow = "segment outside the receive window (ACK sent)",
        TcpPawsRejected = "timestamp older than TS.Recent (PAWS, RFC 7323 §5)",
        TcpBadAck = "ACK acknowledges data never sent",
        TcpRstChallenged = "RST in window but not exact: challenge ACK sent (RFC 5961 §3)",
        TcpSynChallenged = "SYN on a synchronized connection: challenge ACK sent (RFC 5961 §4)",
        TcpOfoQueueFull = "out-of-order queue memory bound reached",
        TcpRcvBufFull = "receive buffer full",
        TcpAcceptQueueFull = "listener accept queue full",
        TcpSynBacklogFull = "SYN backlog full and SYN cookies disabled",
        TcpBadSynCookie = "ACK to a listener carries no valid SYN cookie",
        TcpInTimeWait = "segment for a connection in TIME-WAIT",
        TcpSocketLimit = "connection limit reached",
    }
}

named_enum! {
    /// Event counters per layer, with nstat's names where nstat has one.
    pub enum Counter {
        // --- link ---
        EthInFrames = "frames received from the NIC",
        EthInOctets = "bytes received from the NIC",
        EthOutFrames = "frames handed to the NIC",
        EthOutOctets = "bytes handed to the NIC",
        // --- ARP ---
        ArpInRequests = "ARP requests received",
        ArpInReplies = "ARP replies received",
        ArpOutRequests = "ARP requests sent (including retries and gratuitous)",
        ArpOutReplies = "ARP replies sent",
        ArpCacheUpdates = "ARP cache entries created or refreshed",
        ArpCacheExpired = "ARP cache entries expired",
        // --- IPv4 ---
        IpInReceives = "IPv4 packets received",
        IpInHdrErrors = "IPv4 packets with header errors",
        IpInAddrErrors = "IPv4 packets not addressed to us",
        IpInUnknownProtos = "IPv4 packets for an unknown protocol",
        IpInDelivers = "IPv4 packets delivered to ICMP/UDP/TCP",
        IpOutRequests = "IPv4 packets sent",
        IpReasmReqds = "fragments received that needed reassembly",
        IpReasmOKs = "datagrams successfully reassembled",
        IpReasmFails = "reassembly failures (timeout, memory, malformed)",
        IpFragOKs = "datagrams fragmented on transmit",
        IpFragCreates = "fragments created on transmit",
        IpFragFails = "datagrams not sent because they needed fragmentation with DF set",
        // --- ICMP ---
        IcmpInMsgs = "ICMP messages received",
        IcmpInErrors = "ICMP messages with errors",
        IcmpInEchos = "echo requests received",
        IcmpInEchoReps = "echo replies received",
        IcmpInDestUnreachs = "destination unreachable received",
        IcmpInTimeExcds = "time exceeded received",
        IcmpOutMsgs = "ICMP messages sent",
        IcmpOutEchos = "echo requests sent",
        IcmpOutEchoReps = "echo replies sent",
        IcmpOutDestUnreachs = "destination unreachable sent",
        IcmpOutRateLimited = "ICMP errors suppressed by the rate limit",
        // --- UDP ---
        UdpInDatagrams = "UDP datagrams delivered to a socket",
        UdpNoPorts = "UDP datagrams to a port with no socket",
        UdpInErrors = "UDP datagrams with errors",
        UdpRcvbufErrors = "UDP datagrams dropped: receive queue full",
        UdpOutDatagrams = "UDP datagrams sent",
        UdpInCsumErrors = "UDP checksum errors",
        // --- TCP (owned by the tcp module; add new counters here) ---
        TcpActiveOpens = "connections opened by connect (SYN-SENT)",
        TcpPassiveOpens = "connections opened by a listener (SYN-RECEIVED)",
        TcpAttemptFails = "connection attempts failed",
        TcpEstabResets = "connections reset from ESTABLISHED or CLOSE-WAIT",
        TcpCurrEstab = "connections currently ESTABLISHED or CLOSE-WAIT (gauge)",
        TcpInSegs = "segments received",
        TcpOutSegs = "segments sent",
        TcpRetransSegs = "segments retransmitted",
        TcpInErrs = "segments received with errors",
        TcpInCsumErrors = "segments with a bad checksum",
        TcpOutRsts = "RST segments sent",
        TcpExtTCPTimeouts = "retransmission timeouts",
        TcpExtTCPFastRetrans = "fast retransmits",
        TcpExtTCPSackRecovery = "recoveries driven by SACK",
        TcpExtTCPLossProbes = "tail loss probes sent",
        TcpExtTCPLossProbeRecovery = "losses repaired by a tail loss probe alone (RFC 8985 §7.4)",
        TcpExtTCPRackLost = "segments RACK marked lost by time (RFC 8985 §6)",
        TcpExtTCPLostRetransmit = "retransmissions found lost (RACK)",
        TcpExtTCPSACKReneging = "receivers that reneged on SACKed data (RFC 2018 §8)",
        TcpExtTCPDSACKRecv = "D-SACK blocks received (RFC 2883)",
        TcpExtTCPSpuriousRTOs = "retransmission timeouts found spurious and undone (RFC 3522)",
        TcpExtSyncookiesSent = "SYN cookies sent",
        TcpExtSyncookiesRecv = "SYN cookies validated",
        TcpExtSyncookiesFailed = "SYN cookies that failed validation",
        TcpExtTCPChallengeACK = "challenge ACKs sent (RFC 5961)",
        TcpExtTCPACKSkippedChallenge = "challenge ACKs not sent: per-connection rate limit (RFC 5961 §7)",
        TcpExtTCPChallengeACKLimited = "challenge ACKs not sent: stack-wide randomized budget (RFC 5961 §7)",
        TcpExtTCPOFOQueue = "segments queued out of order",
        TcpExtTCPOFODrop = "out-of-order segments dropped: queue full",
        TcpExtPAWSEstab = "segments rejected by PAWS",
        TcpExtListenOverflows = "accept queue overflows",
        TcpExtTCPDelayedACKs = "delayed ACKs sent by the timer",
        TcpExtTCPKeepAlive = "keepalive probes sent",
        TcpExtTCPZeroWindowProbes = "zero window probes sent",
        TcpExtTCPAbortOnTimeout = "connections aborted: retransmission/user timeout",
        TcpExtTW = "connections that finished TIME-WAIT",
        TcpExtTCPMemoryPressures = "times the buffer storage of all connections went over TcpConfig::buffer_pressure",
        TcpBufMemory = "bytes of send/receive buffer storage held by all connections (gauge)",
        TcpBufGrows = "buffer storage allocations and doublings",
        TcpBufReleases = "drained buffers that gave their storage back (memory pressure, or that direction finished)",
        // --- copies: payload bytes moved across each boundary of a frame's journey ---
        CopyFrameToRcvBuf = "bytes copied from received frames into socket receive buffers (TCP, UDP, echo replies)",
        CopyRcvBufToApp = "bytes copied from socket receive buffers to the application (TCP recv, UDP recv_from, ping)",
        CopyRcvBufToAppInPlace = "bytes the application consumed in place from TCP receive buffers (recv_with: no copy)",
        CopyAppToSndBuf = "bytes copied from the application into TCP send buffers (send)",
        CopyAppToSndBufInPlace = "bytes the application wrote in place into TCP send buffers (send_with: no copy)",
        CopyAppToSndBufByRef = "bytes queued in TCP send buffers by reference to shared application memory (send_external, send_file: no copy)",
        CopySndBufToFrame = "bytes copied from TCP send buffers into transmit frames, first transmissions",
        CopySndBufToFrameRetrans = "bytes copied from TCP send buffers into transmit frames, retransmissions",
        CopyAppToFrame = "bytes copied from the application straight into transmit frames (UDP, ICMP echo)",
    }
}

/// A set of counters and drop counts. Cheap to increment; render with [`Counters::iter`].
#[derive(Clone, Debug)]
pub struct Counters {
    counts: [u64; Counter::COUNT],
    drops: [u64; DropReason::COUNT],
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            counts: [0; Counter::COUNT],
            drops: [0; DropReason::COUNT],
        }
    }
}

impl Counters {
    /// Adds one to `c`.
    #[inline]
    pub fn inc(&mut self, c: Counter) {
        self.counts[c.index()] += 1;
    }
    /// Adds `n` to `c`.
    #[inline]
    pub fn add(&mut self, c: Counter, n: u64) {
        self.counts[c.index()] += n;
    }
    /// Sets a gauge.
    #[inline]
    pub fn set(&mut self, c: Counter, n: u64) {
        self.counts[c.index()] = n;
    }
    /// Counts one drop for `r`.
    #[inline]
    pub fn drop(&mut self, r: DropReason) {
        self.drops[r.index()] += 1;
    }
    /// The value of `c`.
    pub fn get(&self, c: Counter) -> u64 {
        self.counts[c.index()]
    }
    /// How many drops were counted for `r`.
    pub fn drops(&self, r: DropReason) -> u64 {
        self.drops[r.index()]
    }
    /// Total drops for every reason.
    pub fn total_drops(&self) -> u64 {
        self.drops.iter().sum()
    }
    /// Non-zero counters, in declaration order.
    pub fn iter(&self) -> impl Iterator<Item = (Counter, u64)> + '_ {
        Counter::ALL
            .iter()
            .map(|&c| (c, self.get(c)))
            .filter(|&(_, v)| v != 0)
    }
    /// Non-zero drop counts, in declaration order.
    pub fn iter_drops(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        DropReason::ALL
            .iter()
            .map(|&r| (r, self.drops(r)))
            .filter(|&(_, v)| v != 0)
    }
}

impl fmt::Display for Counters {
    /// Renders like `nstat`: one `Name value` line per non-zero counter, then the drops.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (c, v) in self.iter() {
            writeln!(f, "{:<28}{:>12}", c.name(), v)?;
        }
        for (r, v) in self.iter_drops() {
            writeln!(f, "Drop.{:<23}{:>12}  # {}", r.name(), v, r.describe())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_render() {
        let mut seen = std::collections::HashSet::new();
        for r in DropReason::ALL {
            assert!(seen.insert(r.name()));
        }
        let mut c = Counters::default();
        c.inc(Counter::IpInReceives);
        c.drop(DropReason::Ipv4BadChecksum);
        c.drop(DropReason::Ipv4BadChecksum);
        let s = c.to_string();
        assert!(s.contains("IpInReceives"));
        assert!(s.contains("Drop.Ipv4BadChecksum"));
        assert_eq!(c.drops(DropReason::Ipv4BadChecksum), 2);
        assert_eq!(c.total_drops(), 2);
    }
}
