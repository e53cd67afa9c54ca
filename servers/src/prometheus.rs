//! Prometheus from Debian's package, with a given config and its own TSDB directory.

use std::ops::Deref;

use crate::launch::{Configured, WebConfig};
use crate::workdir::Workdir;

/// Prometheus with a given config (rule files referenced from it by absolute path).
pub struct Prometheus(Configured);

impl Prometheus {
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
            format!("--storage.tsdb.path={}", dir.path().join("data").display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
            "--web.enable-lifecycle".into(),
            // Alerts found before Alertmanager discovery completes (its first 5 s) are
            // dropped and only re-sent after this delay; the 1 m default would make every
            // local alert a minute late.
            "--rules.alert.resend-delay=2s".into(),
        ];
        Configured::start(
            "prometheus",
            "prometheus",
            dir,
            port,
            "prometheus.yml",
            config_yaml,
            &args,
            web,
        )
        .map(Prometheus)
    }
}

impl Deref for Prometheus {
    type Target = Configured;

    fn deref(&self) -> &Configured {
        &self.0
    }
}
