//! The collector abstraction: a [`Source`] knows a set of targets and turns one target into
//! a [`SampleSet`] per cycle. Scheduling, timeouts, panics and self-observability live
//! in [`crate::schedule`], so every source gets them the same way.

use std::time::Duration;

use async_trait::async_trait;
use surge_metrics::SampleSet;

/// A collector of one kind of signal (PostgreSQL, Kubernetes, processes, ...).
///
/// One implementation per file under `sources/`. A source must be cheap to call
/// concurrently for different targets; [`crate::schedule`] calls `collect` for every target
/// of a cycle at once, each under the source's timeout.
#[async_trait]
pub(crate) trait Source: Send + Sync + 'static {
    /// Short lowercase name used as the `source` label, e.g. `postgres`.
    fn name(&self) -> &'static str;

    /// Time between the starts of two cycles.
    fn interval(&self) -> Duration;

    /// Upper bound for collecting one target; a target that takes longer is marked down.
    fn timeout(&self) -> Duration;

    /// The targets of this source, used as the `target` label of self-metrics.
    fn targets(&self) -> Vec<String>;

    /// Called once before the first cycle, e.g. to start watches. Must not fail because a
    /// target is down: a down target is reported by `collect`.
    async fn start(&self) {}

    /// Collect one target. An error marks only this target down for this cycle.
    async fn collect(&self, target: &str) -> anyhow::Result<SampleSet>;
}
