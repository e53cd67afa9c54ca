//! Prometheus from Debian's package, with a given config and its own TSDB directory.

use std::process::Command;

use crate::launch::{http_ready, program, wait_ready};
use crate::process::ServerProcess;
use crate::workdir::Workdir;

/// Prometheus with a given config (rule files referenced from it by absolute path).
pub struct Prometheus {
    port: u16,
    process: ServerProcess,
    _dir: Workdir,
}

impl Prometheus {
    pub fn start_in(dir: Workdir, port: u16, config_yaml: &str) -> anyhow::Result<Self> {
        let config = dir.path().join("prometheus.yml");
        std::fs::write(&config, config_yaml)?;
        let mut cmd = Command::new(program("prometheus")?);
        cmd.arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--web.enable-lifecycle")
            // Alerts found before Alertmanager discovery completes (its first 5 s) are
            // dropped and only re-sent after this delay; the 1 m default would make every
            // local alert a minute late.
            .arg("--rules.alert.resend-delay=2s")
            .arg("--log.level=warn");
        let mut process =
            ServerProcess::spawn("prometheus", cmd, &dir.path().join("prometheus.log"))?;
        wait_ready(&mut process, "prometheus", || http_ready(port, "/-/ready"))?;
        Ok(Prometheus {
            port,
            process,
            _dir: dir,
        })
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }
}
