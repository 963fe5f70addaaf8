//! Writes the seed corpus of every target to `corpus/<target>/` (run from `fuzz/`:
//! `cargo run --example make_corpus`). The seeds are committed; re-run after changing them.

use std::fs;
use std::path::Path;

fn main() -> std::io::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    for (target, seeds) in ringstack_fuzz::seeds::all() {
        let dir = root.join(target);
        fs::create_dir_all(&dir)?;
        for (name, bytes) in &seeds {
            fs::write(dir.join(format!("seed_{name}")), bytes)?;
        }
        println!("{}: {} seeds", dir.display(), seeds.len());
    }
    Ok(())
}
