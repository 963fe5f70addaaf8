//! The options every networked subcommand shares (`--nic`, `--addr`, `--gateway`, `--mac`,
//! `--pcap`), and opening the NIC they name.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use ringstack_nic::{
    ImpairNic, Impairment, Nic, PcapNic, PnetNic, RingConfig, RingNic, RingVersion, TapNic,
};
use ringstack_stack::config::Mac;
use ringstack_stack::Config;

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
    /// default, p50 request/response ~55 µs) or 3 (RX blocks handed over when full or after the
    /// 1 ms block-retire timeout: ~1 ms per round trip when traffic is light; see BENCHMARKS.md).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(2..=3))]
    pub ring_version: u8,
    /// ring: send with PACKET_QDISC_BYPASS (skip the kernel's queueing discipline).
    #[arg(long)]
    pub qdisc_bypass: bool,
    /// Impair traffic both ways inside the NIC layer (this kernel has no netem), e.g.
    /// `loss=5%,dup=1%,reorder=2%,corrupt=0.5%,delay=1ms,seed=7`.
    #[arg(long)]
    pub impair: Option<String>,
    /// Spin on the NIC instead of sleeping in poll() between frames (lower latency, one busy
    /// core).
    #[arg(long)]
    pub busy_poll: bool,
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
    /// Opens the NIC (wrapped in a pcap writer if asked).
    pub fn open_nic(&self) -> Result<Box<dyn Nic>> {
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
        let nic: Box<dyn Nic> = match kind {
            "ring" => Box::new(RingNic::with_config(
                name,
                RingConfig {
                    block_size: self.ring_block_size,
                    block_count: self.ring_blocks,
                    qdisc_bypass: self.qdisc_bypass,
                    version: if self.ring_version == 2 {
                        RingVersion::V2
                    } else {
                        RingVersion::V3
                    },
                    ..RingConfig::default()
                },
            )?),
            "tap" => Box::new(TapNic::create(name)?),
            _ => Box::new(PnetNic::open(name)?),
        };
        let nic: Box<dyn Nic> = match impairment {
            Some(imp) => {
                let seed = imp.seed.unwrap_or(0);
                Box::new(ImpairNic::new(nic, imp.clone(), imp, seed))
            }
            None => nic,
        };
        Ok(match &self.pcap {
            Some(path) => Box::new(
                PcapNic::create(nic, path)
                    .with_context(|| format!("creating {}", path.display()))?,
            ),
            None => nic,
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
