//! `ringstack`: the command line. With no arguments it runs the in-memory demo, which needs no
//! privileges: two stacks over a simulated Ethernet link, each frame's journey through the
//! layers printed as it happens, and every counter at the end.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod demo;
mod render;

/// A userspace TCP/IP stack over raw NIC access — and a window into protocol layering.
#[derive(Parser, Debug)]
#[command(name = "ringstack", version, about, long_about = None)]
#[command(
    after_help = "Examples:\n  ringstack                      run the in-memory demo (no privileges needed)\n  ringstack demo --impair loss=10%,seed=7 --pcap demo.pcap\n  ringstack demo --journey 0     counters only"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Two stacks over an in-memory Ethernet link: ARP, ping, UDP echo (with fragmentation) and
    /// TCP, with the journey of each frame and the counters of both sides.
    Demo(demo::DemoArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli
        .command
        .unwrap_or(Command::Demo(demo::DemoArgs::default()))
    {
        Command::Demo(args) => demo::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ringstack: {e:#}");
            ExitCode::FAILURE
        }
    }
}
