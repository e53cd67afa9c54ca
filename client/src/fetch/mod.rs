//! Fetchers: Prometheus, Alertmanager, and surge-exporter scraped directly. Each source runs
//! in its own task, one refresh at a time (a slow source delays only itself, never piles up
//! requests), and sends `Update`s down one channel to the store.

pub(crate) mod access;
pub(crate) mod alertmanager;
mod clock;
mod dead_letters;
pub(crate) mod direct;
pub(crate) mod exposition;
mod http;
pub mod kube;
pub(crate) mod plan;
pub(crate) mod prometheus;
pub mod signals;
mod update;

pub use self::access::{Access, BasicAuth, Endpoint, SourceClient};
pub use self::alertmanager::Alertmanager;
pub use self::clock::now;
pub use self::direct::{Exporter, source_name, with_scheme};
pub use self::http::{FetchError, MAX_ANSWER_BYTES, http_client, one_line};
pub use self::plan::{ALERTS, DeadLetterWant, Want, queries};
pub use self::prometheus::{Prometheus, RuleSummary, unix_seconds};
pub use self::update::{Command, Update};

/// The parsers of what sources answer (exposition text, Prometheus and Alertmanager API
/// bodies), for tests and the fuzz targets: each refuses bad input with a one-line error.
pub mod parse {
    pub use super::alertmanager::{parse_alerts as alertmanager_alerts, parse_silences};
    pub use super::exposition::parse as exposition;
    pub use super::prometheus::{
        parse_alerts as prometheus_alerts, parse_matrix, parse_rules, parse_vector,
    };
}

use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// Where data comes from.
#[derive(Debug, Clone, Default)]
pub struct Endpoints {
    pub prometheus: Option<Endpoint>,
    /// Grafana, where each action is posted as an annotation.
    pub grafana: Option<Endpoint>,
    /// The Kafka broker, for the dead-letter view and redrives.
    pub kafka: Option<crate::act::dead_letters::broker::KafkaAccess>,
    /// How dead-letter topics are named (`{topic}.dlq` when empty).
    pub dead_letter_patterns: Vec<String>,
    pub alertmanager: Option<Endpoint>,
    pub exporters: Vec<Endpoint>,
    pub refresh: Duration,
    pub timeout: Duration,
    /// Which exporters' series Prometheus is read for, and the context's label selector.
    pub signals: signals::Signals,
    /// Prometheus is asked about this moment (Unix seconds) instead of now.
    pub at: Option<f64>,
}

impl Endpoints {
    /// The dead-letter naming patterns, the default when none are set.
    pub fn dead_letter_patterns(&self) -> Vec<String> {
        if self.dead_letter_patterns.is_empty() {
            vec![crate::store::DEFAULT_DEAD_LETTERS.to_owned()]
        } else {
            self.dead_letter_patterns.clone()
        }
    }

    /// Every configured source with the name the store knows it by.
    pub fn named(&self) -> Vec<(String, &Endpoint)> {
        let mut out = Vec::new();
        if let Some(p) = &self.prometheus {
            out.push(("prometheus".to_string(), p));
        }
        if let Some(a) = &self.alertmanager {
            out.push(("alertmanager".to_string(), a));
        }
        for e in &self.exporters {
            out.push((direct::source_name(&e.url), e));
        }
        out
    }
}

/// Start every configured source, each with its own client (TLS, credentials, headers).
/// Tasks end when the update channel closes.
pub fn spawn(
    endpoints: &Endpoints,
    updates: mpsc::Sender<Update>,
    want: watch::Receiver<Want>,
    commands: mpsc::Receiver<Command>,
) -> Result<Vec<JoinHandle<()>>, String> {
    let client = |e: &Endpoint| {
        SourceClient::new(&e.access, endpoints.timeout).map_err(|err| format!("{}: {err}", e.url))
    };
    let mut tasks = Vec::new();
    if let Some(endpoint) = &endpoints.prometheus {
        let source = Prometheus::new(&endpoint.url, client(endpoint)?)
            .with_signals(endpoints.signals.clone())
            .at(endpoints.at);
        tasks.push(tokio::spawn(prometheus::run(
            source,
            endpoints.refresh,
            updates.clone(),
            want.clone(),
        )));
    }
    if let Some(kafka) = &endpoints.kafka {
        let broker = crate::act::dead_letters::broker::Broker::new(kafka, endpoints.timeout);
        tasks.push(tokio::spawn(dead_letters::run(
            broker,
            endpoints.dead_letter_patterns(),
            endpoints.refresh,
            updates.clone(),
            want.clone(),
        )));
    }
    match &endpoints.alertmanager {
        Some(endpoint) => {
            let source = Alertmanager::new(&endpoint.url, client(endpoint)?);
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
    for endpoint in &endpoints.exporters {
        let scraper = direct::Exporter::new(&endpoint.url, client(endpoint)?);
        tasks.push(tokio::spawn(direct::run(
            scraper,
            endpoints.refresh,
            updates.clone(),
            want.clone(),
        )));
    }
    Ok(tasks)
}
