//! Prometheus' own linters, installed by scripts/install-deps. Missing tools are errors, not
//! skips: a check that silently does not run is worse than a failing one.

use std::io::Write;
use std::process::{Command, Stdio};

/// `promtool check metrics` on exposition text. Ok(findings) when promtool accepts it; the
/// findings are empty when it has nothing to say (warnings make it exit non-zero).
pub fn check_metrics(exposition: &str) -> anyhow::Result<String> {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| anyhow::anyhow!("promtool not found ({e}); run scripts/install-deps"))?;
    child
        .stdin
        .take()
        .ok_or_else(|| anyhow::anyhow!("promtool stdin unavailable"))?
        .write_all(exposition.as_bytes())?;
    let out = child.wait_with_output()?;
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    anyhow::ensure!(
        out.status.success(),
        "promtool check metrics failed:\n{report}"
    );
    Ok(report)
}

/// Run `program` (promtool, amtool) with `args` in `dir`: its output, stdout then stderr, or
/// an error with that output when it fails.
pub fn run(program: &str, args: &[&str], dir: &std::path::Path) -> anyhow::Result<String> {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .map_err(|e| anyhow::anyhow!("{program} not found ({e}); run scripts/install-deps"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    anyhow::ensure!(out.status.success(), "{program} {args:?} failed:\n{text}");
    Ok(text)
}
