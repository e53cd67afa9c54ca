//! Alertmanager from Debian's package, single instance (clustering off).

use std::ops::Deref;

use crate::launch::{Configured, WebConfig};
use crate::workdir::Workdir;

/// Alertmanager, single instance (clustering off).
pub struct Alertmanager(Configured);

impl Alertmanager {
    pub fn start_in(dir: Workdir, port: u16, config_yaml: &str) -> anyhow::Result<Self> {
        Self::start_with_web(dir, port, config_yaml, None)
    }

    /// Like `start_in`, serving under a web config (TLS, basic auth).
    pub fn start_with_web(
        dir: Workdir,
        port: u16,
        config_yaml: &str,
        web: Option<WebConfig<'_>>,
    ) -> anyhow::Result<Self> {
        let args = [
            format!("--storage.path={}", dir.path().join("data").display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
            "--cluster.listen-address=".into(),
        ];
        Configured::start(
            "alertmanager",
            "prometheus-alertmanager",
            dir,
            port,
            "alertmanager.yml",
            config_yaml,
            &args,
            web,
        )
        .map(Alertmanager)
    }
}

impl Deref for Alertmanager {
    type Target = Configured;

    fn deref(&self) -> &Configured {
        &self.0
    }
}
