//! One file per source. [`build`] turns a validated config into the list of sources.

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
    if let Some(section) = &config.kubernetes {
        sources.push(Arc::new(kubernetes::KubernetesSource::new(section)));
    }
    if let Some(section) = &config.processes {
        sources.push(Arc::new(processes::ProcessSource::new(section)?));
    }
    Ok(sources)
}
