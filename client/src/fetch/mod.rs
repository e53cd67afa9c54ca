//! Fetchers: Prometheus, Alertmanager, and surge-exporter scraped directly. Each source runs
//! in its own task, one refresh at a time (a slow source delays only itself, never piles up
//! requests), and sends `Update`s down one channel to the store.

pub mod alertmanager;
pub mod direct;
pub mod exposition;
pub mod plan;
pub mod prometheus;

use std::fmt;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use self::alertmanager::Alertmanager;
use self::plan::Want;
use self::prometheus::Prometheus;
use crate::model::{Alert, Metrics, NewSilence, RangeSeries, Silence};

/// What a fetcher reports.
#[derive(Debug, Clone)]
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
    /// Alert rule thresholds read from Prometheus' rules.
    Thresholds {
        cpu_alert: Option<f64>,
        rules: usize,
        unhealthy: usize,
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
}

/// A failed request, said in one line with the URL it concerned.
#[derive(Debug, Clone, PartialEq)]
pub struct FetchError {
    pub url: String,
    pub reason: String,
}

impl FetchError {
    pub fn new(url: &str, reason: String) -> Self {
        FetchError {
            url: url.to_string(),
            reason: one_line(&reason),
        }
    }
}

/// Text from outside (an answer, a parser's message quoting it) as one short line: control
/// characters and runs of whitespace become one space, at most 200 characters.
pub fn one_line(text: &str) -> String {
    text.split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(200)
        .collect()
}

impl std::error::Error for FetchError {}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.url, self.reason)
    }
}

/// A reqwest error as one short line (its Display nests the cause chain otherwise).
pub fn describe(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "cannot connect"
    } else if error.is_decode() {
        "bad body"
    } else {
        "request failed"
    };
    let mut root: &dyn std::error::Error = error;
    while let Some(next) = root.source() {
        root = next;
    }
    format!("{kind} ({root})")
}

/// GET a document's bytes; HTTP errors carry the API's own error text when it has one.
pub async fn get_body(
    http: &reqwest::Client,
    url: &str,
    params: &[(&str, String)],
) -> Result<bytes::Bytes, FetchError> {
    let response = http
        .get(url)
        .query(params)
        .send()
        .await
        .map_err(|e| FetchError::new(url, describe(&e)))?;
    let status = response.status();
    let body = response
        .bytes()
        .await
        .map_err(|e| FetchError::new(url, describe(&e)))?;
    if status.is_success() {
        return Ok(body);
    }
    #[derive(serde::Deserialize)]
    struct ApiError {
        error: String,
    }
    let said = serde_json::from_slice::<ApiError>(&body)
        .map(|e| e.error)
        .unwrap_or_default();
    Err(FetchError::new(
        url,
        format!("HTTP {} {said}", status.as_u16())
            .trim_end()
            .to_string(),
    ))
}

/// An action the user asked for.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    CreateSilence(NewSilence),
    ExpireSilence(String),
}

/// Where data comes from.
#[derive(Debug, Clone, Default)]
pub struct Endpoints {
    pub prometheus: Option<String>,
    pub alertmanager: Option<String>,
    pub exporters: Vec<String>,
    pub refresh: Duration,
    pub timeout: Duration,
}

/// The HTTP client every fetcher shares.
pub fn http_client(timeout: Duration) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(3)))
        .pool_max_idle_per_host(2)
        .user_agent(concat!("surge/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

/// Unix seconds now.
pub fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Start every configured source. Tasks end when the update channel closes.
pub fn spawn(
    endpoints: &Endpoints,
    http: &reqwest::Client,
    updates: mpsc::Sender<Update>,
    want: watch::Receiver<Want>,
    commands: mpsc::Receiver<Command>,
) -> Vec<JoinHandle<()>> {
    let mut tasks = Vec::new();
    if let Some(url) = &endpoints.prometheus {
        let source = Prometheus::new(url, http.clone());
        tasks.push(tokio::spawn(prometheus::run(
            source,
            endpoints.refresh,
            updates.clone(),
            want,
        )));
    }
    match &endpoints.alertmanager {
        Some(url) => {
            let source = Alertmanager::new(url, http.clone());
            tasks.push(tokio::spawn(alertmanager::run(
                source,
                endpoints.refresh,
                updates.clone(),
                commands,
            )));
        }
        None => tasks.push(tokio::spawn(alertmanager::refuse_commands(
            commands,
            updates.clone(),
        ))),
    }
    for url in &endpoints.exporters {
        let scraper = direct::Exporter::new(url, http.clone());
        tasks.push(tokio::spawn(direct::run(
            scraper,
            endpoints.refresh,
            updates.clone(),
        )));
    }
    tasks
}

pub(crate) fn ticker(refresh: Duration) -> tokio::time::Interval {
    let mut interval = tokio::time::interval(refresh);
    // A refresh slower than the interval delays the next one; it never queues a burst.
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    interval
}
