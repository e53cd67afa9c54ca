//! Kafka consumer lag: honest (clamped, counted, no -1), trended (rates, time lag, drain ETA,
//! lag state) and cheap (a steady cycle costs two ListOffsets per partition leader plus one
//! OffsetFetch per group coordinator, whatever the partition and group counts). Targets are
//! the configured clusters.
//!
//! A cycle: log-end and log-start offsets of every partition (read first), then every
//! group's committed offsets, on the exporter's own protocol client (`client`, over `wire`).
//! Every `discovery_interval` the topic layout and group list are refreshed and groups are
//! described — after the offsets, because a broker that cannot describe groups may drop the
//! connection (tansu does), and that must not cost the offsets. A group that cannot be
//! described keeps its lag; its state is `Unknown`, its member count absent, and the error is
//! counted for it.

mod client;
mod collect;
mod config;
mod lag;
mod samples;
mod sasl;
mod stall;
mod trend;
mod wire;

use std::sync::Arc;
use std::time::Duration;

use anyhow::anyhow;
use async_trait::async_trait;
use surge_metrics::SampleSet;

use self::collect::{ClusterState, ClusterTarget};
pub(crate) use self::config::{Section, Settings};
use self::wire::{SaslLogin, Security};
#[doc(hidden)]
pub use self::wire::{fuzz_answer, fuzz_answer_seeds};
use crate::check::ConfigError;
use crate::source::Source;

pub(crate) struct KafkaSource {
    settings: Arc<Settings>,
    clusters: Vec<Arc<ClusterTarget>>,
}

impl KafkaSource {
    /// Build the source; reads SASL passwords now, so a missing secret is a startup error.
    pub(crate) fn new(settings: &Settings) -> Result<Self, ConfigError> {
        let clusters = settings
            .clusters
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let at = |f: &str| format!("kafka.clusters[{i}].{f}");
                let s = &c.connection;
                let tls = if s.tls {
                    let connector = wire::tls_connector(
                        s.ca.as_deref(),
                        s.certificate.as_deref(),
                        s.key.as_deref(),
                    )
                    .map_err(|e| ConfigError::field(at("properties"), e))?;
                    Some(connector)
                } else {
                    None
                };
                let sasl = match (&s.sasl, &c.sasl_password) {
                    (Some((mechanism, username)), Some(secret)) => Some(SaslLogin {
                        mechanism: *mechanism,
                        username: username.clone(),
                        password: secret.read()?,
                    }),
                    _ => None,
                };
                Ok(Arc::new(ClusterTarget {
                    name: c.name.clone(),
                    bootstrap_servers: c.bootstrap_servers.clone(),
                    security: Security {
                        tls,
                        sasl,
                        client_id: s
                            .client_id
                            .clone()
                            .unwrap_or_else(|| "surge-exporter".into()),
                        max_answer: s.max_answer,
                    },
                    groups: c.groups.clone(),
                    topics: c.topics.clone(),
                    limits: c.limits,
                    state: tokio::sync::Mutex::new(ClusterState::default()),
                }))
            })
            .collect::<Result<Vec<_>, ConfigError>>()?;
        Ok(KafkaSource {
            settings: Arc::new(settings.clone()),
            clusters,
        })
    }
}

#[async_trait]
impl Source for KafkaSource {
    fn name(&self) -> &'static str {
        "kafka"
    }
    fn interval(&self) -> Duration {
        self.settings.interval
    }
    fn timeout(&self) -> Duration {
        self.settings.timeout
    }
    fn targets(&self) -> Vec<String> {
        self.clusters.iter().map(|c| c.name.clone()).collect()
    }
    async fn collect(&self, target: &str) -> anyhow::Result<SampleSet> {
        let cluster = self
            .clusters
            .iter()
            .find(|c| c.name == target)
            .cloned()
            .ok_or_else(|| anyhow!("unknown target {target}"))?;
        // Finish a little before the scheduler's timeout so a slow broker yields our own
        // error message.
        let deadline = tokio::time::Instant::now() + self.settings.timeout.mul_f64(0.9);
        cluster.collect(&self.settings, deadline).await
    }
}
