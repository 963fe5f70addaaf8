//! Instruction counts with valgrind's callgrind: the bench binary re-runs itself under
//! `valgrind --tool=callgrind` in `--callgrind-workload NAME --bytes N` mode (one contender, one
//! transfer), reads the `summary:` line of the out file (total Ir), and for the per-layer
//! breakdown groups `callgrind_annotate`'s per-function costs by module path.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// What one run under callgrind reported.
#[derive(Debug, Clone)]
pub struct Run {
    /// Total instructions executed (the whole process).
    pub ir: u64,
    /// Frames the sender transmitted (printed by the workload).
    pub sender_frames: u64,
    /// The callgrind out file.
    pub out: PathBuf,
}

/// glibc tunable that keeps `memcpy` on its vector loop at every size. Without it glibc copies
/// blocks above a few KiB with `rep movsb`, which callgrind counts as one instruction *per
/// byte*: the application's large reads and writes then dominate the counts (2 Ir per payload
/// byte in the bulk workload, identical for every contender) although they are cheap on a real
/// CPU. With it a copy costs what its vector loop executes (~0.1 Ir/byte), so the counts track
/// the stacks' own work. Both figures are reported.
pub const VECTOR_MEMCPY: &str = "glibc.cpu.x86_rep_movsb_threshold=4294967295";

/// Whether valgrind is installed.
pub fn available() -> bool {
    Command::new("valgrind")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Runs `exe --callgrind-workload name --bytes bytes` under callgrind, out file in `dir`.
pub fn run(exe: &Path, dir: &Path, name: &str, bytes: u64) -> Result<Run> {
    run_with(exe, dir, name, &["--bytes", &bytes.to_string()])
}

/// Like [`run`], with `GLIBC_TUNABLES=tunables` in the workload's environment (and a distinct
/// out file).
pub fn run_tuned(exe: &Path, dir: &Path, name: &str, bytes: u64, tunables: &str) -> Result<Run> {
    run_inner(
        exe,
        dir,
        name,
        &["--bytes", &bytes.to_string()],
        None,
        Some(tunables),
    )
}

/// Runs `exe --callgrind-workload name extra...` under callgrind, out file in `dir`.
pub fn run_with(exe: &Path, dir: &Path, name: &str, extra: &[&str]) -> Result<Run> {
    run_inner(exe, dir, name, extra, None, None)
}

/// Like [`run_with`], counting only while inside function `toggle` (`--collect-atstart=no
/// --toggle-collect=toggle`).
pub fn run_toggled(
    exe: &Path,
    dir: &Path,
    name: &str,
    extra: &[&str],
    toggle: &str,
) -> Result<Run> {
    run_inner(exe, dir, name, extra, Some(toggle), None)
}

fn run_inner(
    exe: &Path,
    dir: &Path,
    name: &str,
    extra: &[&str],
    toggle: Option<&str>,
    tunables: Option<&str>,
) -> Result<Run> {
    let tag = if tunables.is_some() { ".tuned" } else { "" };
    let out = dir.join(format!("callgrind.{name}.{}{tag}.out", extra.join("")));
    let mut cmd = Command::new("valgrind");
    if let Some(t) = tunables {
        cmd.env("GLIBC_TUNABLES", t);
    }
    if let Some(t) = toggle {
        cmd.arg("--collect-atstart=no")
            .arg(format!("--toggle-collect={t}"));
    }
    let o = cmd
        .arg("--tool=callgrind")
        .arg(format!("--callgrind-out-file={}", out.display()))
        .arg(exe)
        .args(["--callgrind-workload", name])
        .args(extra)
        .output()
        .context("running valgrind")?;
    if !o.status.success() {
        bail!(
            "valgrind --tool=callgrind failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let stdout = String::from_utf8_lossy(&o.stdout);
    let sender_frames = stdout
        .split_whitespace()
        .find_map(|w| w.strip_prefix("sender_frames="))
        .and_then(|v| v.parse().ok())
        .context("workload did not print sender_frames=")?;
    let text = std::fs::read_to_string(&out).context("reading the callgrind out file")?;
    let ir = text
        .lines()
        .find_map(|l| l.strip_prefix("summary:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("no summary: line in the callgrind out file")?;
    Ok(Run {
        ir,
        sender_frames,
        out,
    })
}

/// Per-function costs from `callgrind_annotate` (`inclusive` or self): `(Ir, source file,
/// demangled function)`. Without `--inclusive`, code inlined from another file is listed
/// separately under that file (same function), which is how inlined layers are attributed.
pub fn functions(out: &Path, inclusive: bool) -> Result<Vec<(u64, String, String)>> {
    let o = Command::new("callgrind_annotate")
        .arg(format!(
            "--inclusive={}",
            if inclusive { "yes" } else { "no" }
        ))
        .arg("--threshold=100")
        .arg("--auto=no")
        .arg(out)
        .output()
        .context("running callgrind_annotate")?;
    if !o.status.success() {
        bail!(
            "callgrind_annotate failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let text = String::from_utf8_lossy(&o.stdout);
    let mut v = Vec::new();
    for line in text.lines() {
        // "  1,234,567 (12.34%)  file.rs:path::to::fn [object]" (valgrind 3.19+), or without
        // the percentage in older versions.
        let t = line.trim_start();
        let Some((num, rest)) = t.split_once(' ') else {
            continue;
        };
        let Ok(n) = num.replace(',', "").parse::<u64>() else {
            continue;
        };
        let rest = rest.trim_start();
        let rest = match rest.strip_prefix('(') {
            Some(r) => r.split_once(')').map_or(r, |x| x.1).trim_start(),
            None => rest,
        };
        let rest = rest.rsplit_once(" [").map_or(rest, |x| x.0);
        if rest.starts_with("PROGRAM TOTALS") {
            continue;
        }
        // Split "file:" off (the file part has no "::" before its single ':').
        let (file, name) = match rest.find(':') {
            Some(i) if !rest[i..].starts_with("::") => (&rest[..i], &rest[i + 1..]),
            _ => ("", rest),
        };
        if name.is_empty() {
            continue;
        }
        v.push((n, file.to_string(), name.to_string()));
    }
    Ok(v)
}

/// The module path a function belongs to: `<a::B as c::D>::f` → `a::B::f`.
fn path_of(f: &str) -> String {
    let mut s = f.trim();
    while let Some(r) = s.strip_prefix('<') {
        s = r;
    }
    let s = s.split(" as ").next().unwrap_or(s);
    s.replace(['<', '>', '&'], "")
}

/// The layer of code from source `file` (for code of our own crates and smoltcp), if known.
fn layer_of_file(file: &str) -> Option<&'static str> {
    let f = file.replace('\\', "/");
    if let Some(i) = f.find("stack/src/") {
        let rel = &f[i + "stack/src/".len()..];
        let m = rel
            .trim_end_matches(".rs")
            .replace("/mod", "")
            .replace('/', "::");
        return Some(layer_of(&format!("ringstack_stack::{m}::x")));
    }
    for (dir, path) in [
        ("nic/src/memory", "ringstack_nic::memory::x"),
        ("nic/src/smoltcp_device", "ringstack_nic::smoltcp_device::x"),
        ("nic/src/", "ringstack_nic::x"),
        ("sockets/src/", "ringstack_sockets::x"),
        ("bench/src/", "ringstack_bench::x"),
        ("/src/wire/", "smoltcp::wire::x"),
        ("/src/iface/", "smoltcp::iface::x"),
        ("/src/socket/", "smoltcp::socket::x"),
        ("rand_chacha", "rand_chacha::x"),
    ] {
        if f.contains(dir) {
            return Some(layer_of(path));
        }
    }
    None
}

/// The layer of `(file, function)`: by source file for our crates (so inlined code counts in
/// its own layer), else by the function's module path.
pub fn layer_of_code(file: &str, f: &str) -> &'static str {
    layer_of_file(file).unwrap_or_else(|| layer_of(f))
}

/// The layer (group) a function is attributed to by its module path.
pub fn layer_of(f: &str) -> &'static str {
    let p = path_of(f);
    let p = p.as_str();
    let pre = |x: &str| p.starts_with(x);
    if pre("ringstack_stack::tcp::") {
        let sub = p["ringstack_stack::tcp::".len()..]
            .split("::")
            .next()
            .unwrap_or("");
        return match sub {
            "connection" => "stack::tcp::connection",
            "output" => "stack::tcp::output",
            "segment" => "stack::tcp::segment",
            "send_buffer" => "stack::tcp::send_buffer",
            "recv_buffer" => "stack::tcp::recv_buffer",
            "reassembly" => "stack::tcp::reassembly",
            "options" => "stack::tcp::options",
            "congestion" => "stack::tcp::congestion",
            "rtt" | "timers" => "stack::tcp::{rtt,timers}",
            "sack" => "stack::tcp::sack",
            "state" => "stack::tcp::state",
            "user" => "stack::tcp::user",
            _ => "stack::tcp (mod, other)",
        };
    }
    for (prefix, name) in [
        ("ringstack_stack::ethernet", "stack::ethernet"),
        ("ringstack_stack::arp", "stack::arp"),
        ("ringstack_stack::ipv4", "stack::ipv4"),
        ("ringstack_stack::icmp", "stack::icmp"),
        ("ringstack_stack::udp", "stack::udp"),
        ("ringstack_stack::checksum", "stack::checksum"),
        ("ringstack_stack::counters", "stack::counters"),
        ("ringstack_stack::trace", "stack::trace"),
        (
            "ringstack_stack::",
            "stack (stack.rs, interface, socket, other)",
        ),
        ("ringstack_nic::memory", "nic::memory (the link)"),
        ("ringstack_nic::smoltcp_device", "nic::smoltcp_device"),
        ("ringstack_nic::", "nic (other)"),
        ("ringstack_sockets::", "sockets::Host (driver)"),
        ("smoltcp::wire", "smoltcp::wire (views, checksums)"),
        ("smoltcp::iface", "smoltcp::iface"),
        ("smoltcp::socket", "smoltcp::socket"),
        ("smoltcp::", "smoltcp (other)"),
        ("ringstack_bench::", "bench driver loop"),
        ("rand_chacha::", "link PRNG (rand_chacha)"),
        ("rand", "link PRNG (rand_chacha)"),
    ] {
        if pre(prefix) {
            return name;
        }
    }
    let lower = p.to_ascii_lowercase();
    if lower.contains("memcpy") || lower.contains("memmove") || lower.contains("memset") {
        return "libc memcpy/memmove/memset";
    }
    if lower.contains("malloc")
        || lower.contains("free")
        || lower.contains("realloc")
        || lower.contains("alloc::")
        || lower.contains("__rust_alloc")
        || lower.contains("__rust_dealloc")
    {
        return "allocator";
    }
    if lower.contains("mutex") || lower.contains("futex") || lower.contains("sync::") {
        return "std sync (mutex)";
    }
    "other (std, libc, startup)"
}

/// Self cost per layer (sums to the total: no double counting) and, per layer, the largest
/// inclusive cost of any one of its functions (≈ the layer's entry point with everything it
/// calls). Sorted by self cost, descending.
pub fn breakdown(out: &Path) -> Result<Vec<(String, u64, u64)>> {
    let mut selfc: BTreeMap<&'static str, u64> = BTreeMap::new();
    for (n, file, f) in functions(out, false)? {
        *selfc.entry(layer_of_code(&file, &f)).or_default() += n;
    }
    let mut incl: BTreeMap<&'static str, u64> = BTreeMap::new();
    for (n, _, f) in functions(out, true)? {
        let e = incl.entry(layer_of(&f)).or_default();
        *e = (*e).max(n);
    }
    let mut v: Vec<(String, u64, u64)> = selfc
        .into_iter()
        .map(|(k, s)| (k.to_string(), s, incl.get(k).copied().unwrap_or(0)))
        .collect();
    v.sort_by_key(|x| std::cmp::Reverse(x.1));
    Ok(v)
}

/// The `k` largest self costs, as `file:function` entries (inlined code listed by its file).
pub fn top_functions(out: &Path, k: usize) -> Result<Vec<(u64, String)>> {
    let mut v: Vec<(u64, String)> = functions(out, false)?
        .into_iter()
        .map(|(n, file, f)| {
            let short = file.rsplit_once("/src/").map_or(file.as_str(), |x| x.1);
            (n, format!("{short}: {f}"))
        })
        .collect();
    v.sort_by_key(|x| std::cmp::Reverse(x.0));
    v.truncate(k);
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_from_paths() {
        assert_eq!(
            layer_of("ringstack_stack::tcp::connection::Connection::on_segment"),
            "stack::tcp::connection"
        );
        assert_eq!(
            layer_of("<ringstack_nic::memory::MemoryNic as ringstack_nic::Nic>::receive"),
            "nic::memory (the link)"
        );
        assert_eq!(
            layer_of("ringstack_stack::checksum::sum"),
            "stack::checksum"
        );
        assert_eq!(
            layer_of_code(
                "/work/main/stack/src/checksum.rs",
                "ringstack_stack::tcp::segment::Segment::parse"
            ),
            "stack::checksum"
        );
        assert_eq!(
            layer_of_code("/work/main/stack/src/ipv4/mod.rs", "x"),
            "stack::ipv4"
        );
        assert_eq!(
            layer_of("__memcpy_avx_unaligned_erms"),
            "libc memcpy/memmove/memset"
        );
    }
}
