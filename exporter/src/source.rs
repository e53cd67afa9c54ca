//! The collector abstraction: a [`Source`] knows a set of targets and turns one target into
//! a list of [`Sample`]s per cycle. Scheduling, timeouts and self-observability live in
//! [`crate::schedule`], so every source gets them the same way.

use std::time::Duration;

use async_trait::async_trait;

/// Whether a family is a gauge or a counter (the only two kinds the exporter emits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Gauge,
    Counter,
}

/// Static description of one metric family. `name` is the full name as queried in PromQL
/// (for counters, without the `_total` suffix the encoder appends); when `unit` is set the
/// name must end in `_<unit>`.
#[derive(Debug, PartialEq, Eq)]
pub struct Family {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: Kind,
    pub unit: Option<&'static str>,
}

impl Family {
    pub const fn gauge(name: &'static str, unit: Option<&'static str>, help: &'static str) -> Self {
        Family {
            name,
            help,
            kind: Kind::Gauge,
            unit,
        }
    }

    pub const fn counter(
        name: &'static str,
        unit: Option<&'static str>,
        help: &'static str,
    ) -> Self {
        Family {
            name,
            help,
            kind: Kind::Counter,
            unit,
        }
    }

    /// The name without its unit suffix, as `prometheus-client` wants it (it appends the unit).
    pub fn base_name(&self) -> &'static str {
        match self.unit {
            Some(unit) => self
                .name
                .strip_suffix(unit)
                .and_then(|n| n.strip_suffix('_'))
                .unwrap_or(self.name),
            None => self.name,
        }
    }

    /// The sample name as it appears in the exposition (counters gain `_total`).
    pub fn sample_name(&self) -> String {
        match self.kind {
            Kind::Gauge => self.name.to_string(),
            Kind::Counter => format!("{}_total", self.name),
        }
    }
}

/// Label pairs of one sample, in the order they are written.
pub type Labels = Vec<(&'static str, String)>;

/// One value of one series at the end of a collection cycle.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub family: &'static Family,
    pub labels: Labels,
    pub value: f64,
}

impl Sample {
    pub fn new(family: &'static Family, labels: Labels, value: f64) -> Self {
        Sample {
            family,
            labels,
            value,
        }
    }

    /// Value of a label, for tests and lookups.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// A collector of one kind of signal (PostgreSQL, Kubernetes, processes, ...).
///
/// One implementation per file under `sources/`. A source must be cheap to call
/// concurrently for different targets; [`crate::schedule`] calls `collect` for every target
/// of a cycle at once, each under the source's timeout.
#[async_trait]
pub trait Source: Send + Sync + 'static {
    /// Short lowercase name used as the `source` label, e.g. `postgres`.
    fn name(&self) -> &'static str;

    /// Time between the starts of two cycles.
    fn interval(&self) -> Duration;

    /// Upper bound for collecting one target; a target that takes longer is marked down.
    fn timeout(&self) -> Duration;

    /// The targets of this source, used as the `target` label of self-metrics.
    fn targets(&self) -> Vec<String>;

    /// Every family this source may emit (documentation, lint and naming tests use it).
    fn families(&self) -> &'static [&'static Family];

    /// Called once before the first cycle, e.g. to start watches. Must not fail because a
    /// target is down: a down target is reported by `collect`.
    async fn start(&self) {}

    /// Collect one target. An error marks only this target down for this cycle.
    async fn collect(&self, target: &str) -> anyhow::Result<Vec<Sample>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    static LAG: Family = Family::gauge("surge_test_lag_bytes", Some("bytes"), "lag");
    static ERRORS: Family = Family::counter("surge_test_errors", None, "errors");

    #[test]
    fn base_name_strips_unit_suffix() {
        assert_eq!(LAG.base_name(), "surge_test_lag");
        assert_eq!(ERRORS.base_name(), "surge_test_errors");
        assert_eq!(ERRORS.sample_name(), "surge_test_errors_total");
        assert_eq!(LAG.sample_name(), "surge_test_lag_bytes");
    }
}
