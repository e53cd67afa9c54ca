//! The record of one run of the suite: tests that measure something (the fault drills, the
//! network faults) append one JSON object per line to `<kind>.jsonl` in the run's directory,
//! and `scripts/doc-tables` turns the last full run into RELIABILITY.md's tables.
//!
//! The directory is `$SURGE_RUN_DIR` (`scripts/test` makes one per run, with the commit it ran
//! on), else `target/surge-runs/adhoc` beside the test binary.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;

/// Where this run's records go.
pub fn dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("SURGE_RUN_DIR") {
        return Ok(PathBuf::from(dir));
    }
    let exe = std::env::current_exe()?;
    let target = exe
        .ancestors()
        .find(|a| a.file_name().is_some_and(|n| n == "target"))
        .with_context(|| format!("{} is not under a target directory", exe.display()))?;
    Ok(target.join("surge-runs").join("adhoc"))
}

/// Append `record` as one line of `<kind>.jsonl` (one write, so lines of tests running at
/// once do not interleave).
pub fn record(kind: &str, record: &serde_json::Value) -> anyhow::Result<()> {
    let dir = dir()?;
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("{kind}.jsonl"));
    let mut line = serde_json::to_vec(record)?;
    line.push(b'\n');
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| f.write_all(&line))
        .with_context(|| format!("appending to {}", path.display()))
}
