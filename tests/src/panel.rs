//! The `surge` binary as the scenarios run it.

use std::path::Path;

/// `surge --once` with the config file `config` and `args`, in the mono theme. A source that
/// failed makes `--once` exit 1; the frame is still what counts, so only a worse exit (or no
/// frame) is an error.
pub fn frame_with_config(config: &Path, args: &[&str]) -> anyhow::Result<String> {
    let surge = surge_stack::stack::sibling_binary("surge", "SURGE_BIN")?;
    let out = std::process::Command::new(surge)
        .args(["--once", "--wait", "15s"])
        .arg("--config")
        .arg(config)
        .args(args)
        .env("NO_COLOR", "1")
        .output()?;
    anyhow::ensure!(
        out.status.code().is_some_and(|c| c <= 1) && !out.stdout.is_empty(),
        "surge exited {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?)
}
