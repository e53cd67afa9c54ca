//! `surge-stack down` and `status` trust nothing in the state file they did not write: pid 0
//! (kill(2)'s "my own process group") and 1 (init) are refused, and a pid that now belongs to
//! another process is left alone. Each run of the binary is in a process group of its own, so
//! a signal to "its group" could only hit itself.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_surge-stack");

fn plant(dir: &Path, pid: u32, started: u64) -> anyhow::Result<()> {
    std::fs::write(
        dir.join("state.json"),
        serde_json::json!({
            "pid": pid, "started": started, "api": "http://127.0.0.1:1",
            "prometheus": null, "alertmanager": null, "exporter": null, "local_hpa": null,
            "postgres": [], "kafka": "127.0.0.1:1", "redis": "redis://127.0.0.1:1",
        })
        .to_string(),
    )?;
    Ok(())
}

fn surge_stack(dir: &Path, command: &str) -> anyhow::Result<Output> {
    Ok(Command::new(BIN)
        .arg("--dir")
        .arg(dir)
        .arg(command)
        .process_group(0)
        .output()?)
}

#[test]
fn pids_0_and_1_are_refused_and_nothing_is_signalled() -> anyhow::Result<()> {
    use std::os::unix::process::ExitStatusExt;
    let dir = tempfile::tempdir()?;
    let mut refused = 0;
    for pid in [0, 1] {
        plant(dir.path(), pid, 1)?;
        for command in ["down", "status"] {
            let out = surge_stack(dir.path(), command)?;
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(
                out.status.signal(),
                None,
                "{command} with pid {pid} signalled itself"
            );
            assert_eq!(out.status.code(), Some(1), "{command} pid {pid}: {stderr}");
            assert_eq!(stderr.lines().count(), 1, "{stderr}");
            assert!(
                stderr.contains(&format!(
                    "the state file names pid {pid}, which is never the stack's supervisor"
                )),
                "{stderr}"
            );
            refused += 1;
        }
    }
    assert_eq!(refused, 4);
    Ok(())
}

#[test]
fn a_pid_reused_by_another_process_is_left_alone() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut other = Command::new("sleep").arg("60").spawn()?;
    let started = std::fs::read_to_string(format!("/proc/{}/stat", other.id()))?;
    let started: u64 = started[started.rfind(')').unwrap_or(0) + 1..]
        .split_whitespace()
        .nth(19)
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no start time in /proc/PID/stat"))?;
    // The state's supervisor started earlier than the process holding its pid now.
    plant(dir.path(), other.id(), started.saturating_sub(100))?;
    let status = surge_stack(dir.path(), "status")?;
    assert_eq!(status.status.code(), Some(3), "{status:?}");
    let down = surge_stack(dir.path(), "down")?;
    let stdout = String::from_utf8_lossy(&down.stdout);
    assert!(down.status.success(), "{down:?}");
    assert!(
        stdout.contains("is another process now; nothing signalled"),
        "{stdout}"
    );
    assert!(!dir.path().join("state.json").exists(), "stale state kept");
    // A SIGTERM would have been sent before `down` returned; `sleep` dies of it within
    // scheduler latency, far under this window.
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        other.try_wait()?.is_none(),
        "the other process was signalled"
    );
    other.kill()?;
    other.wait()?;
    Ok(())
}
