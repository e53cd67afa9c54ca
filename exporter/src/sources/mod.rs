//! One file per source. [`build`] turns a validated config into the list of sources.

pub mod kafka;
pub mod kubernetes;
pub mod postgres;
pub mod processes;

use std::sync::Arc;

use crate::config::{Config, ConfigError};
use crate::source::Source;

/// Instantiate every configured source.
pub fn build(config: &Config) -> Result<Vec<Arc<dyn Source>>, ConfigError> {
    let mut sources: Vec<Arc<dyn Source>> = Vec::new();
    if let Some(section) = &config.postgres {
        sources.push(Arc::new(postgres::PostgresSource::new(section)?));
    }
    if let Some(section) = &config.kafka {
        sources.push(Arc::new(kafka::KafkaSource::new(section)?));
    }
    if let Some(section) = &config.kubernetes {
        sources.push(Arc::new(kubernetes::KubernetesSource::new(section)));
    }
    if let Some(section) = &config.processes {
        sources.push(Arc::new(processes::ProcessSource::new(section)?));
    }
    Ok(sources)
}

/// Every family the exporter can emit: its own, then each source's. Naming and lint tests
/// walk this list, so a new family cannot skip them.
pub fn all_families() -> Vec<&'static crate::source::Family> {
    let mut all: Vec<&'static crate::source::Family> = crate::store::SELF_FAMILIES.to_vec();
    all.extend(postgres::FAMILIES.iter().copied());
    all.extend(kafka::FAMILIES.iter().copied());
    all.extend(crate::cpu::CPU_FAMILIES.iter().copied());
    all.extend(kubernetes::HPA_FAMILIES.iter().copied());
    all.push(&kubernetes::POD_METRICS_AVAILABLE);
    all
}
