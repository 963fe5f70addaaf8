//! `ringstack lab`: builds a private network namespace with a veth pair (or TAP), runs
//! `ringstack serve` on the ringstack side, and tells you how to talk to it with the kernel's
//! own tools. Ctrl-C tears everything down.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use ringstack_nic::lab::{Lab, LabLink, KERNEL_ADDR, PREFIX_LEN, RINGSTACK_ADDR};

/// Which backend the lab runs ringstack on.
#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum Backend {
    /// AF_PACKET TPACKET_V3 ring on a veth.
    Ring,
    /// Plain packet socket (pnet) on a veth.
    Pnet,
    /// A TAP device.
    Tap,
}

/// Options of `ringstack lab`.
#[derive(Args, Debug, Clone)]
pub struct LabArgs {
    /// The NIC backend ringstack uses.
    #[arg(long, value_enum, default_value_t = Backend::Ring)]
    pub backend: Backend,
    /// Directory for the http service.
    #[arg(long)]
    pub http_root: Option<PathBuf>,
    /// Write ringstack's frames to this pcap file.
    #[arg(long)]
    pub pcap: Option<PathBuf>,
    /// A command to run inside the namespace (after `--`); the lab ends when it exits, with its
    /// exit status. Without one, the lab runs until Ctrl-C.
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// A `ringstack serve` running inside a lab namespace; ended (SIGTERM, then SIGKILL) on drop.
pub struct LabServer {
    child: Child,
}

impl LabServer {
    /// Starts `ringstack serve` in `lab` with `extra` arguments and waits for its `ready` line.
    pub fn start(lab: &Lab, extra: &[String]) -> Result<LabServer> {
        let exe = std::env::current_exe()?;
        let mut cmd = lab.command_tied(exe);
        cmd.args(["serve", "--nic", lab.link().nic_spec(), "--addr"])
            .arg(format!("{RINGSTACK_ADDR}/{PREFIX_LEN}"))
            .args(extra)
            .stdout(Stdio::piped());
        let mut child = cmd.spawn().context("starting ringstack serve in the lab")?;
        let stdout = child.stdout.take().expect("piped");
        let mut lines = BufReader::new(stdout).lines();
        let mut server = LabServer { child };
        match lines.next() {
            Some(Ok(l)) if l.contains("ready") => eprintln!("{l}"),
            other => {
                let status = server.child.wait()?;
                bail!("ringstack serve did not become ready ({other:?}, {status})");
            }
        }
        // Keep echoing the server's output (its counters at exit) on stderr, so that stdout
        // belongs to the command run in the lab.
        std::thread::spawn(move || {
            for l in lines.map_while(Result::ok) {
                eprintln!("  serve | {l}");
            }
        });
        Ok(server)
    }

    /// Asks the server to stop (SIGTERM) and waits up to 5 s, then kills it.
    pub fn stop(&mut self) -> Result<std::process::ExitStatus> {
        let pid = self.child.id().to_string();
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status();
        for _ in 0..50 {
            if let Some(s) = self.child.try_wait()? {
                return Ok(s);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        self.child.kill()?;
        Ok(self.child.wait()?)
    }
}

impl Drop for LabServer {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.stop();
        }
    }
}

/// Runs the lab until Ctrl-C.
pub fn run(args: &LabArgs) -> Result<()> {
    let link = match args.backend {
        Backend::Ring => LabLink::VethRing,
        Backend::Pnet => LabLink::VethPnet,
        Backend::Tap => LabLink::Tap,
    };
    let stop = Arc::new(AtomicBool::new(false));
    // Every catchable way of being told to stop (Ctrl-C, kill, a closed terminal) ends in the
    // same teardown. A SIGKILLed lab cannot clean up: the kernel then kills its `serve` (see
    // `Lab::command_tied`), and the next `Lab::create` removes the stale namespace name.
    for sig in [
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
        signal_hook::consts::SIGQUIT,
    ] {
        signal_hook::flag::register(sig, Arc::clone(&stop))?;
    }
    let lab = Lab::create(link)?;
    let mut extra = Vec::new();
    if let Some(root) = &args.http_root {
        extra.push("--http-root".to_string());
        extra.push(root.canonicalize()?.display().to_string());
    }
    if let Some(pcap) = &args.pcap {
        extra.push("--pcap".to_string());
        extra.push(pcap.display().to_string());
    }
    let mut server = LabServer::start(&lab, &extra)?;
    let ns = lab.name();
    if let Some((program, args_)) = args.command.split_first() {
        let status = lab.command(program).args(args_).status();
        server.stop()?;
        drop(lab);
        let status = status.with_context(|| format!("running {program:?} in the lab"))?;
        if !status.success() {
            bail!("{program} exited with {status}");
        }
        return Ok(());
    }
    println!("lab namespace {ns}: kernel {KERNEL_ADDR}/{PREFIX_LEN} on {} <-> ringstack {RINGSTACK_ADDR} on {}", link.kernel_if(), link.nic_spec());
    println!("try, from another terminal (as root):");
    println!("  ip netns exec {ns} ping -c 3 {RINGSTACK_ADDR}");
    println!("  ip netns exec {ns} curl -v http://{RINGSTACK_ADDR}/");
    println!("  ip netns exec {ns} nc {RINGSTACK_ADDR} 7        # echo");
    println!("  ip netns exec {ns} tshark -i {}", link.kernel_if());
    println!("Ctrl-C ends the lab and removes the namespace.");
    while !stop.load(Ordering::Relaxed) {
        if let Some(status) = server.child.try_wait()? {
            bail!("ringstack serve exited: {status}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = server.stop()?;
    drop(lab);
    println!("lab ended (serve exited with {status}); namespace removed");
    Ok(())
}
