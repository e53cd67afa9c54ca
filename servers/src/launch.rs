//! What starting any of our servers shares: finding its program, and waiting until it is
//! ready with its log in the error when it is not.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::process::ServerProcess;
use crate::wait::wait_until;
use crate::workdir::Workdir;

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

fn http_ready(port: u16, path: &str) -> bool {
    crate::http::get(&format!("127.0.0.1:{port}"), path, None)
        .is_ok_and(|(status, _, _)| status == 200)
}

/// A server of the Prometheus project (Prometheus, Alertmanager) on a loopback port, with
/// its config file and data under one directory.
pub struct Configured {
    port: u16,
    /// `https` when started with a web config that serves TLS.
    scheme: &'static str,
    process: ServerProcess,
    _dir: Workdir,
}

/// A web config (`--web.config.file`) a server is started with, and whether it serves TLS.
#[derive(Debug, Clone, Copy)]
pub struct WebConfig<'a> {
    pub file: &'a std::path::Path,
    pub tls: bool,
}

impl Configured {
    /// `config_yaml` written to `config_name` in `dir`, then `program` with `--config.file`,
    /// `args` and warn-level logs; ready when `/-/ready` answers 200 on `port`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn start(
        name: &str,
        program_name: &str,
        dir: Workdir,
        port: u16,
        config_name: &str,
        config_yaml: &str,
        args: &[String],
        web: Option<WebConfig<'_>>,
    ) -> anyhow::Result<Configured> {
        let config = dir.path().join(config_name);
        std::fs::write(&config, config_yaml)?;
        let mut cmd = std::process::Command::new(program(program_name)?);
        cmd.arg(format!("--config.file={}", config.display()))
            .args(args)
            .arg("--log.level=warn");
        if let Some(web) = web {
            cmd.arg(format!("--web.config.file={}", web.file.display()));
        }
        let mut process = ServerProcess::spawn(name, cmd, &dir.path().join(format!("{name}.log")))?;
        match web {
            // Behind authentication `/-/ready` is refused: listening is what can be seen.
            Some(_) => wait_ready(&mut process, name, || {
                std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            })?,
            None => wait_ready(&mut process, name, || http_ready(port, "/-/ready"))?,
        }
        Ok(Configured {
            port,
            scheme: if web.is_some_and(|w| w.tls) {
                "https"
            } else {
                "http"
            },
            process,
            _dir: dir,
        })
    }

    pub fn url(&self) -> String {
        format!("{}://127.0.0.1:{}", self.scheme, self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }
}
