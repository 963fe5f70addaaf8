//! Rendering for people: the journey of frames and nstat-like counters.

use ringstack_stack::trace::TraceEvent;
use ringstack_stack::Stack;

/// Prints the trace events of several stacks, merged in time order, each line prefixed by the
/// stack's name. At most `limit` lines; says how many were left out.
pub fn journey(stacks: &mut [(&str, &mut Stack)], limit: usize) {
    let mut events: Vec<(usize, TraceEvent)> = Vec::new();
    for (i, (_, s)) in stacks.iter_mut().enumerate() {
        events.extend(s.tracer().drain().map(|e| (i, e)));
    }
    // Stable: within one instant, keep each stack's own order.
    events.sort_by_key(|(i, e)| (e.at, *i, e.frame));
    let total = events.len();
    for (i, e) in events.iter().take(limit) {
        let t = e.at.total_micros();
        println!(
            "  {:>8}.{:03}ms  {}  {}",
            t / 1000,
            t % 1000,
            stacks[*i].0,
            e
        );
    }
    if total > limit {
        println!("  … {} more events not shown", total - limit);
    }
}

/// Prints two stacks' counters side by side, nstat style (only non-zero rows).
pub fn counters(a: (&str, &Stack), b: (&str, &Stack)) {
    use ringstack_stack::{Counter, DropReason};
    println!("  {:<30}{:>12}{:>12}", "counter", a.0, b.0);
    for &c in Counter::ALL {
        let (x, y) = (a.1.counters().get(c), b.1.counters().get(c));
        if x != 0 || y != 0 {
            println!("  {:<30}{:>12}{:>12}", c.name(), x, y);
        }
    }
    let mut any = false;
    for &r in DropReason::ALL {
        let (x, y) = (a.1.counters().drops(r), b.1.counters().drops(r));
        if x != 0 || y != 0 {
            if !any {
                println!("  drops (reason):");
                any = true;
            }
            println!(
                "  {:<30}{:>12}{:>12}   {}",
                format!("Drop.{}", r.name()),
                x,
                y,
                r.describe()
            );
        }
    }
    if !any {
        println!("  no drops");
    }
}
