//! The command line's contract: `--help` with an example for every subcommand, bad arguments as
//! one clear line with exit status 2, the demo exiting 0.

use std::process::Command;

fn ringstack(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ringstack"))
        .args(args)
        .output()
        .expect("run ringstack")
}

#[test]
fn every_subcommand_help_has_an_example() {
    for sub in [
        "demo", "trace", "serve", "stats", "get", "send", "iperf", "lab",
    ] {
        let out = ringstack(&[sub, "--help"]);
        assert!(out.status.success(), "{sub} --help failed");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("Example"),
            "`ringstack {sub} --help` has no example:\n{text}"
        );
        assert!(
            text.contains(&format!("ringstack {sub}")) || sub == "lab",
            "{sub}: example does not show the command"
        );
    }
}

#[test]
fn bad_arguments_are_one_line_and_exit_2() {
    for args in [
        &["serve", "--nic", "ring:x", "--addr", "1.2.3"][..],
        &["serve", "--nic", "foo"],
        &["serve", "--nic", "bar:x"],
        &["serve", "--nic", "ring:x", "--mac", "zz"],
        &["serve", "--nic", "ring:x", "--impair", "loss=200%"],
        &["demo", "--impair", "nonsense"],
        &["serve", "--nic", "ring:x", "--model", "bogus"],
        &["serve", "--nic", "ring:x", "--workers", "2"],
        &[
            "serve",
            "--nic",
            "ring:x",
            "--model",
            "reactor",
            "--workers",
            "x",
        ],
        &["serve", "--nic", "ring:x", "--max-clients", "0"],
        &["serve", "--nic", "ring:x", "--idle-timeout", "-1"],
        &["serve", "--nic", "ring:x", "--services", "echo,gopher"],
        &[
            "serve",
            "--nic",
            "ring:x",
            "--model",
            "threads",
            "--busy-poll",
        ],
        &["bogus"],
    ] {
        let out = ringstack(args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.trim().is_empty(), "{args:?}: no message");
        if args[0] != "bogus" {
            assert_eq!(
                err.trim().lines().count(),
                1,
                "{args:?}: not one line:\n{err}"
            );
        }
    }
}

#[test]
fn the_demo_runs_without_privileges_and_exits_0() {
    let out = ringstack(&["demo", "--journey", "3"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    for want in [
        "3/3 echo replies received",
        "echoed 4000 bytes intact",
        "sent and echoed back intact",
        "IcmpOutEchoReps",
    ] {
        assert!(text.contains(want), "demo output lacks {want:?}:\n{text}");
    }
}

#[test]
fn stats_without_a_serve_says_so_in_one_line() {
    let path = std::env::temp_dir().join(format!("ringstack-no-serve-{}.sock", std::process::id()));
    let out = ringstack(&["stats", "--control", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("cannot reach a serve"), "{err}");
}
