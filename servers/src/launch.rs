//! What starting any of our servers shares: finding its program, and waiting until it is
//! ready with its log in the error when it is not.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::process::ServerProcess;
use crate::wait::wait_until;

/// Find a program on PATH or in the sbin directories Debian uses for daemons.
pub(crate) fn program(name: &str) -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin"].iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .with_context(|| format!("{name} not found; run scripts/install-deps"))
}

pub(crate) fn wait_ready(
    process: &mut ServerProcess,
    what: &str,
    mut ready: impl FnMut() -> bool,
) -> anyhow::Result<()> {
    let result = wait_until(
        what,
        Duration::from_secs(30),
        Duration::from_millis(50),
        || Ok(ready()),
    );
    if let Err(e) = result {
        let running = process.is_running();
        bail!(
            "{e:#} (running: {running}); log:\n{}",
            process.log_tail(2000)
        );
    }
    Ok(())
}

pub(crate) fn http_ready(port: u16, path: &str) -> bool {
    crate::http::get(&format!("127.0.0.1:{port}"), path, None)
        .is_ok_and(|(status, _, _)| status == 200)
}
