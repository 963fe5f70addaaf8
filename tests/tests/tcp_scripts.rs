//! Runs every scripted packet test in `tests/scripts/*.pkt` (format: `ringstack_tests::script`).

use std::path::Path;

#[test]
fn tcp_scripts() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/scripts exists")
        .map(|e| e.expect("readable dir").path())
        .filter(|p| p.extension().is_some_and(|e| e == "pkt"))
        // SCRIPT_ONLY=name runs the scripts whose file name contains `name`.
        .filter(|p| {
            std::env::var("SCRIPT_ONLY").map_or(true, |only| p.to_string_lossy().contains(&only))
        })
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "no scripts found in {}", dir.display());
    let mut failures = Vec::new();
    for p in &paths {
        let text = std::fs::read_to_string(p).expect("readable script");
        match ringstack_tests::script::run(&text) {
            Ok(()) => println!("ok    {}", p.file_name().unwrap().to_string_lossy()),
            Err(e) => {
                println!("FAIL  {}: {e}", p.file_name().unwrap().to_string_lossy());
                failures.push(format!("{}: {e}", p.display()));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} scripts failed:\n{}",
        failures.len(),
        paths.len(),
        failures.join("\n")
    );
    println!("{} scripts passed", paths.len());
}
