//! What fetchers send to the store, and what the user asks a fetcher to do.

use serde::{Deserialize, Serialize};

use crate::model::{Alert, Metrics, NewSilence, RangeSeries, Silence};

/// What a fetcher reports (and what a recording holds).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Update {
    /// Instant values from `source` at `at` (Unix seconds).
    Metrics {
        source: String,
        metrics: Metrics,
        at: f64,
    },
    /// A range query's series for `metric` (replaces what the store had for it).
    History {
        metric: String,
        series: RangeSeries,
    },
    /// Which exporter provides each signal group (`kubernetes`, `kafka`, `postgres`), `None`
    /// where Prometheus holds none.
    Providers(Vec<(String, Option<String>)>),
    /// Alert rule thresholds read from Prometheus' rules.
    Thresholds {
        cpu_alert: Option<f64>,
        rules: usize,
        unhealthy: usize,
        /// The other lines the rules set (absent in recordings made before they were read).
        #[serde(default)]
        lines: crate::store::SetLines,
    },
    Alerts {
        source: String,
        alerts: Vec<Alert>,
    },
    Silences(Vec<Silence>),
    /// A fetch failed; the source's data is kept, marked stale.
    Failed {
        source: String,
        error: String,
    },
    /// Several updates from one refresh, applied together.
    Batch(Vec<Update>),
    /// A one-line message for the status bar (silence created, snapshot written, ...).
    Notice(String),
    /// An action was tried from the panel (its audit line): recordings carry it, so a
    /// replayed incident shows what was done when.
    Acted(Box<crate::act::audit::Entry>),
    /// What the broker said for the dead-letter view (or why it could not be asked).
    DeadLetters(Result<crate::act::dead_letters::Look, String>),
}

/// An action the user asked for.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    CreateSilence(NewSilence),
    ExpireSilence(String),
}
