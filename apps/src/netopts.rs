//! The options every networked subcommand shares (`--nic`, `--addr`, `--gateway`, `--mac`,
//! `--pcap`, `--impair`, `--trace`…), and opening the NIC they name.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use ringstack_nic::ring::RingGeometry;
use ringstack_nic::{
    ImpairNic, Impairment, Nic, NicError, NicInfo, NicStats, PcapNic, PnetNic, RingConfig, RingNic,
    RingVersion, TapNic,
};
use ringstack_stack::config::Mac;
use ringstack_stack::Config;
use ringstack_stack::Instant as NicInstant;

use crate::render::TraceFilter;

/// Where the stack runs and who it is.
#[derive(Args, Debug, Clone)]
pub struct NetOpts {
    /// The NIC: `ring:IFACE` (AF_PACKET TPACKET_V3 mmap ring), `tap:NAME` (TAP device) or
    /// `pnet:IFACE` (plain packet socket).
    #[arg(long, value_name = "KIND:NAME")]
    pub nic: String,
    /// Our IPv4 address and prefix, e.g. 198.18.0.2/24.
    #[arg(long, default_value = "198.18.0.2/24")]
    pub addr: String,
    /// Next hop for destinations outside the subnet.
    #[arg(long)]
    pub gateway: Option<Ipv4Addr>,
    /// Our MAC address (default: the NIC's; a TAP needs one: 02:00:00:00:00:02).
    #[arg(long)]
    pub mac: Option<String>,
    /// Write every frame sent and received to this pcap file.
    #[arg(long)]
    pub pcap: Option<PathBuf>,
    /// ring: bytes per TPACKET_V3 block (a power-of-two multiple of the page size).
    #[arg(long, default_value_t = 1 << 20)]
    pub ring_block_size: usize,
    /// ring: number of RX blocks.
    #[arg(long, default_value_t = 8)]
    pub ring_blocks: usize,
    /// ring: TPACKET version: 2 (one status word per frame: each frame visible at once; the
    /// default, p50 request/response ~13 µs on the lab's veth) or 3 (RX blocks handed over
    /// when full or after the 1 ms block-retire timeout: ~1 ms per round trip when traffic is
    /// light; see BENCHMARKS.md).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(2..=3))]
    pub ring_version: u8,
    /// ring: send with PACKET_QDISC_BYPASS (skip the kernel's queueing discipline).
    #[arg(long)]
    pub qdisc_bypass: bool,
    /// ring: PACKET_VNET_HDR: take 64 KiB GSO super-frames and partial checksums from the
    /// kernel, so its offloads can stay on (RX slots sized for 64 KiB frames; see
    /// `RingConfig::with_vnet_hdr`). Overrides --ring-block-size/--ring-blocks under version 2.
    /// tap: IFF_VNET_HDR and TUNSETOFFLOAD, the same for a TAP (`TapNic::with_vnet_hdr`).
    #[arg(long, alias = "vnet-hdr")]
    pub ring_vnet_hdr: bool,
    /// Impair traffic both ways inside the NIC layer (this kernel has no netem), e.g.
    /// `loss=5%,dup=1%,reorder=2%,corrupt=0.5%,delay=1ms,seed=7`.
    #[arg(long)]
    pub impair: Option<String>,
    /// Spin on the NIC instead of sleeping in poll() between frames (lower latency, one busy
    /// core).
    #[arg(long)]
    pub busy_poll: bool,
    /// ring: after a round that moved frames, keep looking at the ring for this many
    /// microseconds (yielding the CPU between looks) before sleeping in poll(): a request that
    /// follows within it is taken without a wake-up. 0: sleep at once.
    #[arg(long, value_name = "US", default_value_t = 50)]
    pub spin_us: u64,
    /// Print the journey of every frame through the layers on standard error as it happens:
    /// NIC ring block/slot, Ethernet, ARP/IPv4, TCP/UDP, socket buffer, application read, with
    /// verdicts, drop reasons, copies and the stack's time per frame. FILTER is a comma-separated
    /// list of `port=N`, `conn=IP:PORT`, `drops`, `json` (e.g. `--trace=port=80`); `--trace`
    /// alone shows everything.
    #[arg(
        long,
        value_name = "FILTER",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "all"
    )]
    pub trace: Option<String>,
}

/// A NIC opened by [`NetOpts::open_nic`], with what `--trace` asked for. It is a [`Nic`]
/// itself (forwarding to the one opened), so it can be handed to any driver; the real-time
/// [`Runtime`](crate::runtime::Runtime) also honours `trace`.
pub struct OpenedNic {
    /// The NIC (wrapped in the impairment and pcap layers asked for).
    pub nic: Box<dyn Nic + Send>,
    /// `--trace`: which events to print, and where the ring lies to locate frames in it.
    pub trace: Option<TraceRequest>,
    /// `--spin-us`: how long the real-time driver spins after a round that moved frames.
    pub spin: std::time::Duration,
}

impl Nic for OpenedNic {
    fn info(&self) -> NicInfo {
        self.nic.info()
    }
    fn receive(
        &mut self,
        now: NicInstant,
        budget: usize,
        sink: &mut dyn FnMut(&[u8]),
    ) -> Result<usize, NicError> {
        self.nic.receive(now, budget, sink)
    }
    fn transmit(
        &mut self,
        now: NicInstant,
        fill: &mut dyn FnMut(&mut [u8]) -> usize,
    ) -> Result<usize, NicError> {
        self.nic.transmit(now, fill)
    }
    fn flush(&mut self, now: NicInstant) -> Result<(), NicError> {
        self.nic.flush(now)
    }
    fn poll_at(&self) -> Option<NicInstant> {
        self.nic.poll_at()
    }
    fn wait_fd(&self) -> Option<std::os::fd::RawFd> {
        self.nic.wait_fd()
    }
    fn rx_ready(&self) -> Option<bool> {
        self.nic.rx_ready()
    }
    fn stats(&self) -> NicStats {
        self.nic.stats()
    }
    fn wait_readable(&self, timeout: std::time::Duration) -> Result<bool, NicError> {
        self.nic.wait_readable(timeout)
    }
}

/// What `--trace` asked for.
pub struct TraceRequest {
    /// Which events to print, and how.
    pub filter: TraceFilter,
    /// The AF_PACKET ring's mapping (`--nic ring:…`), to name the block or slot of each frame.
    pub geometry: Option<RingGeometry>,
}

/// Parses a `--trace` FILTER: `all`, or a comma-separated list of `port=N`, `conn=IP:PORT`,
/// `drops`, `json`.
pub fn parse_trace_filter(spec: &str) -> Result<TraceFilter> {
    let mut f = TraceFilter::default();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('=') {
            None if part == "all" => {}
            None if part == "drops" => f.drops_only = true,
            None if part == "json" => f.json = true,
            Some(("port", v)) if v.parse::<u16>().is_ok() => f.port = v.parse().ok(),
            Some(("conn", v)) if v.parse::<std::net::SocketAddrV4>().is_ok() => {
                f.conn = v.parse().ok()
            }
            _ => crate::usage!(
                "--trace={spec:?}: {part:?} is not a filter; use port=N, conn=IP:PORT, drops, json \
                 (comma-separated), e.g. --trace=port=80"
            ),
        }
    }
    Ok(f)
}

fn parse_mac(s: &str) -> Result<Mac> {
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() != 6 {
        crate::usage!("--mac {s:?}: expected six hex bytes like 02:00:00:00:00:02");
    }
    let mut mac = [0u8; 6];
    for (m, p) in mac.iter_mut().zip(parts) {
        match u8::from_str_radix(p, 16) {
            Ok(v) => *m = v,
            Err(_) => crate::usage!("--mac {s:?}: expected six hex bytes like 02:00:00:00:00:02"),
        }
    }
    Ok(mac)
}

impl NetOpts {
    /// Opens the NIC (wrapped in a pcap writer if asked), and says what `--trace` asked for.
    pub fn open_nic(&self) -> Result<OpenedNic> {
        // Check every argument before touching the device.
        let Some((kind, name)) = self.nic.split_once(':') else {
            crate::usage!("--nic {:?}: expected KIND:NAME, e.g. ring:veth1", self.nic);
        };
        if !matches!(kind, "ring" | "tap" | "pnet") {
            crate::usage!(
                "--nic {:?}: unknown kind {kind:?}: use ring, tap or pnet",
                self.nic
            );
        }
        let impairment: Option<Impairment> = match &self.impair {
            Some(spec) => match spec.parse() {
                Ok(i) => Some(i),
                Err(e) => crate::usage!("--impair {spec:?}: {e}"),
            },
            None => None,
        };
        let filter = match &self.trace {
            Some(spec) => Some(parse_trace_filter(spec)?),
            None => None,
        };
        let mut geometry = None;
        let nic: Box<dyn Nic + Send> = match kind {
            "ring" => Box::new(
                RingNic::with_config(name, {
                    let version = if self.ring_version == 2 {
                        RingVersion::V2
                    } else {
                        RingVersion::V3
                    };
                    let base = RingConfig {
                        block_size: self.ring_block_size,
                        block_count: self.ring_blocks,
                        qdisc_bypass: self.qdisc_bypass,
                        version,
                        ..RingConfig::default()
                    };
                    match (self.ring_vnet_hdr, version) {
                        (false, _) => base,
                        (true, RingVersion::V2) => RingConfig {
                            qdisc_bypass: self.qdisc_bypass,
                            ..RingConfig::with_vnet_hdr(version)
                        },
                        (true, RingVersion::V3) => RingConfig {
                            vnet_hdr: true,
                            ..base
                        },
                    }
                })
                .inspect(|ring| geometry = Some(ring.geometry()))?,
            ),
            "tap" if self.ring_vnet_hdr => Box::new(TapNic::with_vnet_hdr(name)?),
            "tap" => Box::new(TapNic::create(name)?),
            _ => Box::new(PnetNic::open(name)?),
        };
        let nic: Box<dyn Nic + Send> = match impairment {
            Some(imp) => {
                let seed = imp.seed.unwrap_or(0);
                Box::new(ImpairNic::new(nic, imp.clone(), imp, seed))
            }
            None => nic,
        };
        let nic = match &self.pcap {
            Some(path) => Box::new(
                PcapNic::create(nic, path)
                    .with_context(|| format!("creating {}", path.display()))?,
            ),
            None => nic,
        };
        Ok(OpenedNic {
            nic,
            trace: filter.map(|filter| TraceRequest { filter, geometry }),
            spin: std::time::Duration::from_micros(self.spin_us),
        })
    }

    /// The stack configuration these options describe.
    pub fn config(&self) -> Result<Config> {
        let bad = || {
            format!(
                "--addr {:?}: expected ADDRESS/PREFIX, e.g. 198.18.0.2/24",
                self.addr
            )
        };
        let Some((ip, prefix)) = self.addr.split_once('/') else {
            crate::usage!("{}", bad());
        };
        let (Ok(ip), Some(prefix)) = (
            ip.parse::<Ipv4Addr>(),
            prefix.parse::<u8>().ok().filter(|p| *p <= 32),
        ) else {
            crate::usage!("{}", bad());
        };
        let mac = match &self.mac {
            Some(m) => parse_mac(m)?,
            // A TAP's own MAC belongs to the kernel side; pick a locally administered one.
            None if self.nic.starts_with("tap:") => [0x02, 0, 0, 0, 0, 0x02],
            None => [0; 6],
        };
        let mut c = Config::new(mac, ip, prefix);
        c.gateway = self.gateway;
        c.seed = std::process::id() as u64 ^ 0x7269_6e67;
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_filters() {
        let f = parse_trace_filter("all").unwrap();
        assert!(f.port.is_none() && f.conn.is_none() && !f.drops_only && !f.json);
        let f = parse_trace_filter("port=80, drops,json").unwrap();
        assert_eq!(f.port, Some(80));
        assert!(f.drops_only && f.json);
        let f = parse_trace_filter("conn=198.18.0.1:5000").unwrap();
        assert_eq!(f.conn, Some("198.18.0.1:5000".parse().unwrap()));
        for bad in ["port=http", "conn=198.18.0.1", "verbose"] {
            let e = parse_trace_filter(bad).unwrap_err();
            assert!(e.downcast_ref::<crate::Usage>().is_some(), "{bad}: {e}");
        }
    }
}
