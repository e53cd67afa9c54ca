//! Alertmanager from Debian's package, single instance (clustering off).

use std::process::Command;

use crate::launch::{http_ready, program, wait_ready};
use crate::process::ServerProcess;
use crate::workdir::Workdir;

/// Alertmanager, single instance (clustering off).
pub struct Alertmanager {
    port: u16,
    process: ServerProcess,
    _dir: Workdir,
}

impl Alertmanager {
    pub fn start_in(dir: Workdir, port: u16, config_yaml: &str) -> anyhow::Result<Self> {
        let config = dir.path().join("alertmanager.yml");
        std::fs::write(&config, config_yaml)?;
        let mut cmd = Command::new(program("prometheus-alertmanager")?);
        cmd.arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .arg("--log.level=warn");
        let mut process =
            ServerProcess::spawn("alertmanager", cmd, &dir.path().join("alertmanager.log"))?;
        wait_ready(&mut process, "alertmanager", || {
            http_ready(port, "/-/ready")
        })?;
        Ok(Alertmanager {
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
