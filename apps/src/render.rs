//! Rendering for people: the journey of frames and nstat-like counters.

use ringstack_stack::trace::{Direction, TraceEvent, Verdict};

/// `println!` that ignores a closed standard output (`ringstack trace | head` ends quietly
/// instead of panicking on the broken pipe).
macro_rules! out {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}
pub(crate) use out;
use ringstack_stack::Stack;

/// Which trace events to show (`ringstack trace`, `serve --trace`).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct TraceFilter {
    /// Only frames of TCP/UDP flows with this port at either end.
    #[arg(long)]
    pub port: Option<u16>,
    /// Only frames of the connection with this endpoint (IP:PORT) at either end.
    #[arg(long, value_name = "IP:PORT")]
    pub conn: Option<std::net::SocketAddrV4>,
    /// Only drops (with their reasons).
    #[arg(long)]
    pub drops_only: bool,
    /// One JSON object per event (JSON Lines), for tools.
    #[arg(long)]
    pub json: bool,
}

impl TraceFilter {
    /// Whether `e` passes the filter.
    pub fn matches(&self, e: &TraceEvent) -> bool {
        if self.drops_only && !matches!(e.verdict, Verdict::Drop(_)) {
            return false;
        }
        if let Some(port) = self.port {
            if !e.flow.is_some_and(|f| f.has_port(port)) {
                return false;
            }
        }
        if let Some(end) = self.conn {
            if !e.flow.is_some_and(|f| f.src == end || f.dst == end) {
                return false;
            }
        }
        true
    }

    /// Renders one event: a line for people, or a JSON object.
    pub fn render(&self, side: &str, e: &TraceEvent) -> String {
        if self.json {
            let (verdict, reason) = match e.verdict {
                Verdict::Drop(r) => ("drop", Some(r.name())),
                v => (verdict_name(v), None),
            };
            serde_json::json!({
                "host": side,
                "at_us": e.at.total_micros(),
                "frame": e.frame,
                "dir": if e.direction == Direction::Rx { "rx" } else { "tx" },
                "layer": format!("{:?}", e.layer).to_lowercase(),
                "verdict": verdict,
                "drop_reason": reason,
                "len": e.len,
                "copied": e.copied,
                "summary": e.summary,
                "flow": e.flow.map(|f| serde_json::json!({
                    "protocol": f.protocol, "src": f.src.to_string(), "dst": f.dst.to_string()
                })),
            })
            .to_string()
        } else {
            let t = e.at.total_micros();
            format!("  {:>8}.{:03}ms  {side}  {e}", t / 1000, t % 1000)
        }
    }
}

fn verdict_name(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "pass",
        Verdict::Deliver => "deliver",
        Verdict::Reply => "reply",
        Verdict::Queued => "queued",
        Verdict::Emit => "emit",
        Verdict::Drop(_) => "drop",
    }
}

/// Prints the trace events of several hosts that pass `filter`, merged in time order, each line
/// prefixed by the host's name. At most `limit` lines; says how many were left out.
pub fn journey(hosts: &[(&str, Vec<TraceEvent>)], filter: &TraceFilter, limit: usize) {
    let mut events: Vec<(usize, &TraceEvent)> = hosts
        .iter()
        .enumerate()
        .flat_map(|(i, (_, evs))| {
            evs.iter()
                .filter(|e| filter.matches(e))
                .map(move |e| (i, e))
        })
        .collect();
    // Stable: within one instant, each host's events stay in the order they happened.
    events.sort_by_key(|(i, e)| (e.at, *i));
    let total = events.len();
    for (i, e) in events.iter().take(limit) {
        out!("{}", filter.render(hosts[*i].0, e));
    }
    if total > limit && !filter.json {
        out!("  … {} more events not shown", total - limit);
    }
}

/// Prints two stacks' counters side by side, nstat style (only non-zero rows).
pub fn counters(a: (&str, &Stack), b: (&str, &Stack)) {
    use ringstack_stack::{Counter, DropReason};
    out!("  {:<30}{:>12}{:>12}", "counter", a.0, b.0);
    for &c in Counter::ALL {
        let (x, y) = (a.1.counters().get(c), b.1.counters().get(c));
        if x != 0 || y != 0 {
            out!("  {:<30}{:>12}{:>12}", c.name(), x, y);
        }
    }
    let mut any = false;
    for &r in DropReason::ALL {
        let (x, y) = (a.1.counters().drops(r), b.1.counters().drops(r));
        if x != 0 || y != 0 {
            if !any {
                out!("  drops (reason):");
                any = true;
            }
            out!(
                "  {:<30}{:>12}{:>12}   {}",
                format!("Drop.{}", r.name()),
                x,
                y,
                r.describe()
            );
        }
    }
    if !any {
        out!("  no drops");
    }
}
