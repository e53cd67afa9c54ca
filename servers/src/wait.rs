//! Readiness polling.

use std::time::{Duration, Instant};

/// Poll `check` every `every` until it returns `Ok(true)` or `timeout` passes. The last
/// error (or "condition not met") is returned on timeout, prefixed with `what`.
pub fn wait_until(
    what: &str,
    timeout: Duration,
    every: Duration,
    mut check: impl FnMut() -> anyhow::Result<bool>,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    let mut last_error = None;
    loop {
        match check() {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) => last_error = Some(e),
        }
        if Instant::now() >= deadline {
            return Err(match last_error {
                Some(e) => e.context(format!("{what}: not ready after {timeout:?}")),
                None => anyhow::anyhow!("{what}: not ready after {timeout:?}"),
            });
        }
        std::thread::sleep(every);
    }
}
