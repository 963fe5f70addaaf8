//! `ringstack experiment NAME`: each runs (no privileges), exits 0 and prints the numbers the
//! notes' claims predict. The measurements are deterministic (virtual time, counted work), so
//! exact values are checked.

use std::process::Command;

fn experiment(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_ringstack"))
        .arg("experiment")
        .args(args)
        .output()
        .expect("run ringstack");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "ringstack experiment {args:?} failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The whitespace-separated fields after `label` on the table row starting with it (a row: the
/// first field is a number or `-`; explanation lines may start with the same words).
fn row(text: &str, label: &str) -> Vec<String> {
    text.lines()
        .map(str::trim_start)
        .filter_map(|l| l.strip_prefix(label))
        .map(|rest| {
            rest.split_whitespace()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .find(|fields| {
            fields
                .first()
                .is_some_and(|f| f == "-" || f.starts_with(|c: char| c.is_ascii_digit()))
        })
        .unwrap_or_else(|| panic!("no row {label:?} in:\n{text}"))
}

#[test]
fn help_lists_every_experiment_with_an_example() {
    let out = Command::new(env!("CARGO_BIN_EXE_ringstack"))
        .args(["experiment", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for name in [
        "lt-blocking-starvation",
        "et-vs-lt",
        "thundering-herd",
        "select-vs-epoll",
        "copies",
    ] {
        assert!(text.contains(name), "{name} missing from:\n{text}");
        assert!(
            text.contains(&format!("ringstack experiment {name}")),
            "no example for {name}"
        );
        let sub = Command::new(env!("CARGO_BIN_EXE_ringstack"))
            .args(["experiment", name, "--help"])
            .output()
            .unwrap();
        assert!(String::from_utf8_lossy(&sub.stdout).contains("Example"));
    }
    // Unknown experiment: clap's one-line error, exit 2.
    let bad = Command::new(env!("CARGO_BIN_EXE_ringstack"))
        .args(["experiment", "nope"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn lt_blocking_starves_and_et_nonblocking_does_not() {
    let out = experiment(&["lt-blocking-starvation"]);
    assert!(out.contains("在 LT + 阻塞模式 + 单线程"), "cites the notes");
    // events, served 1, served 2, unread 1, unread 2, blocked ms
    assert_eq!(
        row(&out, "LT + blocking reads"),
        ["2", "9", "0", "0", "9", "60000"]
    );
    assert_eq!(
        row(&out, "ET + non-blocking"),
        ["2", "9", "9", "0", "0", "0"]
    );
    assert!(out.contains("verdict: LT + blocking STARVES"), "{out}");
    assert!(
        out.contains("verdict: ET + non-blocking does not starve"),
        "{out}"
    );
}

#[test]
fn et_reports_transitions_lt_reports_state() {
    let out = experiment(&["et-vs-lt"]);
    assert_eq!(row(&out, "10 bytes arrive"), ["1", "1"]);
    assert_eq!(row(&out, "4 more bytes arrive, 6 still unread"), ["1", "0"]);
    assert_eq!(row(&out, "3 new bytes arrive after the drain"), ["1", "1"]);
    assert_eq!(row(&out, "total"), ["6", "2"]);
}

#[test]
fn exclusive_wakes_one_instead_of_the_herd() {
    let out = experiment(&["thundering-herd", "--waiters", "8"]);
    // waiters, wakeups, woken, accepted, woken for naught
    assert_eq!(row(&out, "none"), ["8", "8", "8", "1", "7"]);
    assert_eq!(row(&out, "EPOLLEXCLUSIVE"), ["8", "1", "1", "1", "0"]);
}

#[test]
fn epoll_examines_the_ready_ones_select_and_poll_all() {
    let out = experiment(&["select-vs-epoll", "--sizes", "10,1000,100000"]);
    // registered: ready, select examined, poll examined, poll bytes, epoll examined
    assert_eq!(row(&out, "10 "), ["10", "10", "10", "160", "10"]);
    assert_eq!(row(&out, "1000 "), ["10", "1000", "1000", "16000", "10"]);
    assert_eq!(row(&out, "100000 "), ["10", "-", "100000", "1600000", "10"]);
}

#[test]
fn copies_per_byte_three_one_two_one_and_two_one() {
    let out = experiment(&["copies", "--mb", "4"]);
    // send copies/byte, recv copies/byte
    assert_eq!(row(&out, "read+write → read"), ["3", "2"]);
    assert_eq!(row(&out, "send_file → recv_with"), ["1", "1"]);
    assert_eq!(row(&out, "send_with (from a buffer) → read"), ["2", "2"]);
    assert_eq!(
        row(&out, "send_with (generated in place) → recv_with"),
        ["1", "1"]
    );
    assert!(out.contains("SHA-256-checked"));
    let mb4 = (4u64 << 20).to_string();
    // The counter table rows repeat the labels: the second occurrence has the byte counts.
    let counters = &out[out.find("counters (bytes)").unwrap()..];
    // app file→buf, AppToSndBuf, InPlace, ByRef, SndBufToFrame, Retrans, FrameToRcvBuf,
    // RcvBufToApp, InPlace
    assert_eq!(
        row(counters, "read+write → read"),
        [&*mb4, &*mb4, "0", "0", &*mb4, "0", &*mb4, &*mb4, "0"]
    );
    assert_eq!(
        row(counters, "send_file → recv_with"),
        ["0", "0", "0", &*mb4, &*mb4, "0", &*mb4, "0", &*mb4]
    );
}
