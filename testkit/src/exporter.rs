//! surge-exporter in-process for tests, through its one entry point: collect by hand and look
//! series up, or serve it on a loopback port and scrape it.

use surge_exporter::config::Config;
use surge_metrics::Sample;

use crate::http::scrape;

/// An exporter built from config text, collected by hand.
pub struct Exporter {
    pub exporter: surge_exporter::Exporter,
}

impl Exporter {
    pub fn from_toml(text: &str) -> anyhow::Result<Self> {
        let config = Config::parse(text)?;
        Ok(Exporter {
            exporter: surge_exporter::Exporter::new(&config)?,
        })
    }

    pub async fn start(&self) {
        self.exporter.start().await;
    }

    /// One cycle of every source; true if every target succeeded.
    pub async fn cycle(&self) -> bool {
        self.exporter.collect().await
    }

    pub fn samples(&self) -> Vec<Sample> {
        self.exporter
            .store()
            .snapshot()
            .into_iter()
            .flat_map(|(_, state)| state.samples.to_vec())
            .collect()
    }

    /// Value of the one series of `family` whose labels include all of `labels`.
    pub fn value(&self, family: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let matching: Vec<f64> = self
            .samples()
            .into_iter()
            .filter(|s| s.family.name == family)
            .filter(|s| labels.iter().all(|(k, v)| s.label(k) == Some(v)))
            .map(|s| s.value)
            .collect();
        assert!(
            matching.len() <= 1,
            "{family} {labels:?} matched {} series",
            matching.len()
        );
        matching.first().copied()
    }

    pub fn up(&self, source: &str, target: &str) -> Option<bool> {
        self.exporter.store().is_up(source, target)
    }

    pub fn last_error(&self, source: &str, target: &str) -> Option<String> {
        self.exporter
            .store()
            .snapshot()
            .into_iter()
            .find(|((s, t), _)| s == source && t == target)
            .and_then(|(_, state)| state.last_error)
    }

    pub fn text(&self) -> String {
        self.exporter
            .store()
            .encode_prometheus_text()
            .unwrap_or_default()
    }
}

/// The exporter served over HTTP on a free loopback port, collecting in the background.
pub struct Served {
    pub addr: String,
    _running: surge_exporter::Running,
}

impl Served {
    pub async fn start(exporter: Exporter) -> anyhow::Result<Served> {
        let running = exporter
            .exporter
            .spawn(([127, 0, 0, 1], 0).into())
            .await
            .map_err(anyhow::Error::msg)?;
        Ok(Served {
            addr: running.addr.to_string(),
            _running: running,
        })
    }

    pub fn scrape(&self) -> anyhow::Result<String> {
        scrape(&self.addr)
    }

    /// Scrape until `check` holds (blocking the calling worker thread meanwhile).
    pub fn wait_for(
        &self,
        what: &str,
        timeout: std::time::Duration,
        check: impl Fn(&str) -> bool,
    ) -> anyhow::Result<String> {
        let mut last = String::new();
        let result = tokio::task::block_in_place(|| {
            surge_servers::wait_until(what, timeout, std::time::Duration::from_millis(200), || {
                last = self.scrape()?;
                Ok(check(&last))
            })
        });
        result.map_err(|e| anyhow::anyhow!("{e:#}\nlast scrape:\n{last}"))?;
        Ok(last)
    }
}
