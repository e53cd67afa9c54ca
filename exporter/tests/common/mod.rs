//! Shared helpers for the exporter's real-server tests: drive sources through the same
//! scheduler and store the binary uses, then look series up.

#![allow(dead_code)]

use std::sync::Arc;

use surge_exporter::config::Config;
use surge_exporter::schedule::collect_cycle;
use surge_exporter::source::{Sample, Source};
use surge_exporter::store::Store;

pub struct Exporter {
    pub sources: Vec<Arc<dyn Source>>,
    pub store: Arc<Store>,
}

impl Exporter {
    pub fn from_toml(text: &str) -> anyhow::Result<Self> {
        let config = Config::parse(text)?;
        let sources = surge_exporter::sources::build(&config)?;
        Ok(Exporter {
            sources,
            store: Store::new(),
        })
    }

    pub async fn start(&self) {
        for source in &self.sources {
            source.start().await;
        }
    }

    /// One cycle of every source; true if every target succeeded.
    pub async fn cycle(&self) -> bool {
        let mut ok = true;
        for source in &self.sources {
            ok &= collect_cycle(source.as_ref(), &self.store).await;
        }
        ok
    }

    pub fn samples(&self) -> Vec<Sample> {
        self.store
            .snapshot()
            .into_iter()
            .flat_map(|(_, state)| state.samples.as_ref().clone())
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
        self.store.is_up(source, target)
    }

    pub fn last_error(&self, source: &str, target: &str) -> Option<String> {
        self.store
            .snapshot()
            .into_iter()
            .find(|((s, t), _)| s == source && t == target)
            .and_then(|(_, state)| state.last_error)
    }

    pub fn text(&self) -> String {
        self.store.encode_prometheus_text().unwrap_or_default()
    }
}
