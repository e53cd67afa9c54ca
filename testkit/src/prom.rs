//! Prometheus' query API for blocking tests, through the panel's own client
//! (`surge_client::fetch::prometheus`), so tests and the panel read answers the same way.

use std::time::Duration;

use surge_client::fetch::Prometheus;
use surge_client::model::{Labels, RangeSeries};

/// One series of an instant query's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// `__name__`, empty for computed series.
    pub name: String,
    pub labels: Labels,
    pub value: f64,
}

impl std::fmt::Display for Series {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{:?} {}", self.name, self.labels, self.value)
    }
}

/// A Prometheus to query from plain (non-async) tests. Must not be used from inside a tokio
/// runtime: each call blocks on its own.
pub struct PromQl {
    api: Prometheus,
    runtime: tokio::runtime::Runtime,
}

impl PromQl {
    pub fn new(url: &str) -> anyhow::Result<PromQl> {
        let http = surge_client::fetch::http_client(Duration::from_secs(20))
            .map_err(anyhow::Error::msg)?;
        Ok(PromQl {
            api: Prometheus::new(url, http),
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?,
        })
    }

    /// An instant query's series.
    pub fn query(&self, promql: &str) -> anyhow::Result<Vec<Series>> {
        self.query_on(&self.api, promql)
    }

    /// An instant query's series at `at` (Unix seconds).
    pub fn query_at(&self, promql: &str, at: f64) -> anyhow::Result<Vec<Series>> {
        self.query_on(&self.api.clone().at(Some(at)), promql)
    }

    fn query_on(&self, api: &Prometheus, promql: &str) -> anyhow::Result<Vec<Series>> {
        let metrics = self.runtime.block_on(api.instant(promql))?;
        let mut out = Vec::with_capacity(metrics.len());
        for name in metrics.names() {
            for point in metrics.points(name) {
                out.push(Series {
                    name: name.clone(),
                    labels: point.labels.clone(),
                    value: point.value,
                });
            }
        }
        Ok(out)
    }

    /// The value of an instant query's first series, if it has one.
    pub fn value(&self, promql: &str) -> anyhow::Result<Option<f64>> {
        Ok(self.query(promql)?.first().map(|s| s.value))
    }

    /// A range query's series.
    pub fn range(
        &self,
        promql: &str,
        start: f64,
        end: f64,
        step: f64,
    ) -> anyhow::Result<RangeSeries> {
        Ok(self
            .runtime
            .block_on(self.api.range(promql, start, end, step))?)
    }

    /// The values `label` takes on series matching `selector`.
    pub fn label_values(&self, label: &str, selector: &str) -> anyhow::Result<Vec<String>> {
        Ok(self
            .runtime
            .block_on(self.api.label_values(label, selector))?)
    }
}
