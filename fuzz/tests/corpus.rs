//! Replays every file of `corpus/<target>/` (the committed seeds, plus anything `cargo fuzz`
//! added locally) and of `regressions/<target>/` through the same harness the fuzz target
//! calls: the targets run as plain tests, with no cargo-fuzz or nightly needed.

use std::fs;
use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut n = 0;
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        let mut paths: Vec<_> = entries.map(|e| e.unwrap().path()).collect();
        paths.sort();
        for p in paths {
            let data = fs::read(&p).unwrap();
            eprintln!("{}", p.display());
            run(&data);
            n += 1;
        }
    }
    assert!(
        n > 0,
        "no corpus for {target}: run `cargo run --example make_corpus` in fuzz/"
    );
}

#[test]
fn frame_corpus() {
    replay("frame", ringstack_fuzz::frame::run);
}

#[test]
fn tcp_options_corpus() {
    replay("tcp_options", ringstack_fuzz::tcp_options::run);
}

#[test]
fn reassembly_corpus() {
    replay("reassembly", ringstack_fuzz::reassembly::run);
}

#[test]
fn script_corpus() {
    replay("script", ringstack_fuzz::script::run);
}

/// The in-memory seeds too (so a stale corpus on disk cannot hide a broken generator).
#[test]
fn generated_seeds() {
    for (target, seeds) in ringstack_fuzz::seeds::all() {
        let run: fn(&[u8]) = match target {
            "frame" => ringstack_fuzz::frame::run,
            "tcp_options" => ringstack_fuzz::tcp_options::run,
            "reassembly" => ringstack_fuzz::reassembly::run,
            _ => ringstack_fuzz::script::run,
        };
        for (_, s) in seeds {
            run(&s);
        }
    }
}

/// The script seeds are only useful if they reach the data path: each transfer seed must
/// establish its connections and move bytes both ways.
#[test]
fn script_seeds_reach_established_and_move_data() {
    for (name, seed) in ringstack_fuzz::seeds::script() {
        let s = ringstack_fuzz::script::stats(&seed);
        eprintln!("{name}: {s:?}");
        assert!(
            s.established >= 1,
            "{name} never reached ESTABLISHED: {s:?}"
        );
        if name.contains("transfer") {
            assert!(s.read > 0 && s.written > 0, "{name} moved no data: {s:?}");
        }
    }
}
