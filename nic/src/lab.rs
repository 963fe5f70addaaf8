//! The lab: a private network namespace holding a veth pair or a TAP device, where ringstack
//! meets the kernel's own tools (ping, curl, nc, iperf3, Python).
//!
//! Layout (addresses from 198.18.0.0/15, RFC 2544's benchmarking range):
//!
//! ```text
//!   namespace rs-<pid>-<n>
//!   ┌─────────────────────────────────────────────────────────────┐
//!   │ kernel: veth0 198.18.0.1/24  ── veth ──  veth1 (no address) │ ← ringstack opens ring:veth1
//!   │   or    rstap0 198.18.0.1/24 ── TAP ───  ringstack's fd     │ ← ringstack opens tap:rstap0
//!   └─────────────────────────────────────────────────────────────┘
//! ```
//!
//! Nothing is ever configured in the root namespace: every `ip` command is `ip -n <ns>` or runs
//! under `ip netns exec <ns>`. [`Lab`] deletes the namespace (and with it every device in it) on
//! drop, so also on panic; a namespace left by a killed run (its PID no longer exists) is
//! removed by the next [`Lab::create`].
//!
//! Offloads: the kernel side of a veth would otherwise hand ringstack GSO super-frames with
//! partial checksums, so the lab turns TSO/GSO/GRO and checksum offload off with `ethtool`
//! (the deliberate, simple choice until PACKET_VNET_HDR support lands).

use std::io;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// The kernel's address in the lab.
pub const KERNEL_ADDR: &str = "198.18.0.1";
/// ringstack's address in the lab.
pub const RINGSTACK_ADDR: &str = "198.18.0.2";
/// Prefix length of the lab subnet.
pub const PREFIX_LEN: u8 = 24;

/// Which link joins ringstack to the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LabLink {
    /// A veth pair: ringstack opens the `ring` (AF_PACKET TPACKET_V3) backend on `veth1`.
    VethRing,
    /// A veth pair: ringstack opens the plain packet-socket (`pnet`) backend on `veth1`.
    VethPnet,
    /// A persistent TAP device `rstap0`: ringstack opens the `tap` backend on it.
    Tap,
}

impl LabLink {
    /// The `--nic` argument for ringstack in this lab.
    pub fn nic_spec(self) -> &'static str {
        match self {
            LabLink::VethRing => "ring:veth1",
            LabLink::VethPnet => "pnet:veth1",
            LabLink::Tap => "tap:rstap0",
        }
    }

    /// The kernel-side interface.
    pub fn kernel_if(self) -> &'static str {
        match self {
            LabLink::VethRing | LabLink::VethPnet => "veth0",
            LabLink::Tap => "rstap0",
        }
    }
}

/// Why a lab could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// Not allowed to create namespaces or devices.
    #[error(
        "the lab needs CAP_NET_ADMIN and CAP_SYS_ADMIN to create a network namespace: run as root ({0})"
    )]
    NoPrivilege(String),
    /// A tool the lab needs is not installed.
    #[error("`{0}` is not installed: install the Debian package `{1}` (scripts/test.sh does)")]
    MissingTool(&'static str, &'static str),
    /// A setup command failed.
    #[error("lab setup failed: `{command}`: {stderr}")]
    Command {
        /// The command line.
        command: String,
        /// What it printed on stderr.
        stderr: String,
    },
    /// Spawning a command failed.
    #[error("lab: {0}")]
    Io(#[from] io::Error),
}

/// A private network namespace with one link between the kernel and ringstack. Dropping it
/// deletes the namespace and everything in it.
#[derive(Debug)]
pub struct Lab {
    name: String,
    link: LabLink,
    deleted: bool,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn run(args: &[&str]) -> Result<Output, LabError> {
    let out = Command::new(args[0]).args(&args[1..]).output()?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        if stderr.contains("Operation not permitted") || stderr.contains("Permission denied") {
            return Err(LabError::NoPrivilege(stderr));
        }
        return Err(LabError::Command {
            command: args.join(" "),
            stderr,
        });
    }
    Ok(out)
}

/// Names of lab namespaces (`rs-<pid>-<n>`) that currently exist.
pub fn lab_namespaces() -> Vec<String> {
    Command::new("ip")
        .args(["netns", "list"])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .filter_map(|l| l.split_whitespace().next())
                .filter(|n| n.starts_with("rs-"))
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

/// Removes lab namespaces whose creating process no longer exists (left by a killed run).
fn remove_stale() {
    for ns in lab_namespaces() {
        let pid = ns.split('-').nth(1).and_then(|p| p.parse::<u32>().ok());
        if let Some(pid) = pid {
            if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                let _ = run(&["ip", "netns", "del", &ns]);
            }
        }
    }
}

impl Lab {
    /// Creates the namespace and the link, with the kernel side at 198.18.0.1/24 and up.
    pub fn create(link: LabLink) -> Result<Lab, LabError> {
        for (tool, package) in [("ip", "iproute2"), ("ethtool", "ethtool")] {
            if !have(tool) {
                return Err(LabError::MissingTool(tool, package));
            }
        }
        remove_stale();
        let name = format!(
            "rs-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        run(&["ip", "netns", "add", &name])?;
        // From here on, Drop deletes the namespace whatever fails.
        let lab = Lab {
            name,
            link,
            deleted: false,
        };
        lab.setup()?;
        Ok(lab)
    }

    fn setup(&self) -> Result<(), LabError> {
        let ns = self.name.as_str();
        let addr = format!("{KERNEL_ADDR}/{PREFIX_LEN}");
        run(&["ip", "-n", ns, "link", "set", "lo", "up"])?;
        // No IPv6 chatter (router solicitations, MLD) on the lab link.
        run(&[
            "ip",
            "netns",
            "exec",
            ns,
            "sysctl",
            "-q",
            "-w",
            "net.ipv6.conf.all.disable_ipv6=1",
            "net.ipv6.conf.default.disable_ipv6=1",
        ])?;
        match self.link {
            LabLink::VethRing | LabLink::VethPnet => {
                run(&[
                    "ip", "-n", ns, "link", "add", "veth0", "type", "veth", "peer", "name", "veth1",
                ])?;
                run(&["ip", "-n", ns, "addr", "add", &addr, "dev", "veth0"])?;
                run(&["ip", "-n", ns, "link", "set", "veth0", "up"])?;
                run(&["ip", "-n", ns, "link", "set", "veth1", "up"])?;
                for dev in ["veth0", "veth1"] {
                    run(&[
                        "ip", "netns", "exec", ns, "ethtool", "-K", dev, "tso", "off", "gso",
                        "off", "gro", "off", "tx", "off", "rx", "off",
                    ])?;
                }
            }
            LabLink::Tap => {
                run(&[
                    "ip", "-n", ns, "tuntap", "add", "dev", "rstap0", "mode", "tap",
                ])?;
                run(&["ip", "-n", ns, "addr", "add", &addr, "dev", "rstap0"])?;
                run(&["ip", "-n", ns, "link", "set", "rstap0", "up"])?;
            }
        }
        Ok(())
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The link kind.
    pub fn link(&self) -> LabLink {
        self.link
    }

    /// A command that runs `program` inside the namespace (`ip netns exec <ns> program`).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).arg(program);
        c
    }

    /// Like [`Lab::command`], but the kernel kills the child (SIGKILL) when the thread that
    /// spawns it exits — also when this process is SIGKILLed and cannot tear anything down.
    /// For long-running servers started from the main thread, like `ringstack lab`'s `serve`.
    pub fn command_tied(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = self.command(program);
        crate::sys::process::kill_with_parent(&mut c);
        c
    }

    /// Runs a shell command line inside the namespace and returns its output.
    pub fn sh(&self, script: &str) -> io::Result<Output> {
        self.command("sh").args(["-c", script]).output()
    }

    /// Deletes the namespace now (also done on drop). Processes still running inside keep it
    /// alive until they exit: end them first.
    pub fn teardown(&mut self) {
        if !self.deleted {
            let _ = run(&["ip", "netns", "del", &self.name]);
            self.deleted = true;
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.teardown();
    }
}
