//! Fetchers: Prometheus, Alertmanager, and surge-exporter scraped directly. Each source runs
//! in its own task, one refresh at a time (a slow source delays only itself, never piles up
//! requests), and sends `Update`s down one channel to the store.

pub mod alertmanager;
pub mod direct;
pub mod exposition;
pub mod prometheus;

use std::fmt;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use self::alertmanager::{Alertmanager, NewSilence};
use self::prometheus::Prometheus;
use crate::store::{ALERTS, HISTORY_METRICS, Update};

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

/// What the views currently need beyond the default (asked for by the app).
#[derive(Debug, Clone, PartialEq)]
pub struct Want {
    /// The partition drill-in: (cluster, group, topic).
    pub partitions: Option<(String, String, String)>,
    /// Seconds of history to show.
    pub range: f64,
}

impl Default for Want {
    fn default() -> Self {
        Want {
            partitions: None,
            range: 300.0,
        }
    }
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

/// One request of a Prometheus refresh.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    Overview,
    Partitions(String, String, String),
    Alerts,
    Rules,
    /// History of one metric over the wanted range.
    Range(String),
}

/// The most requests one Prometheus refresh may issue.
pub const PROMETHEUS_BUDGET: usize = 4 + HISTORY_METRICS.len() + 1;

/// Refreshes between history reloads and rule reloads: history every ~15 s, rules every ~60 s.
pub fn every(period: Duration, refresh: Duration) -> u64 {
    (period.as_secs_f64() / refresh.as_secs_f64().max(0.05))
        .ceil()
        .max(1.0) as u64
}

/// The requests of refresh number `n` (0 = the first, which loads everything).
pub fn plan(
    n: u64,
    want: &Want,
    history_every: u64,
    rules_every: u64,
    range_changed: bool,
) -> Vec<Request> {
    let mut requests = vec![Request::Overview, Request::Alerts];
    if let Some((c, g, t)) = &want.partitions {
        requests.push(Request::Partitions(c.clone(), g.clone(), t.clone()));
    }
    if n % rules_every == 0 {
        requests.push(Request::Rules);
    }
    if n % history_every == 0 || range_changed {
        requests.extend(
            HISTORY_METRICS
                .iter()
                .map(|m| Request::Range((*m).to_string())),
        );
        requests.push(Request::Range(ALERTS.to_string()));
    }
    requests
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
        tasks.push(tokio::spawn(run_prometheus(
            source,
            endpoints.refresh,
            updates.clone(),
            want,
        )));
    }
    match &endpoints.alertmanager {
        Some(url) => {
            let source = Alertmanager::new(url, http.clone());
            tasks.push(tokio::spawn(run_alertmanager(
                source,
                endpoints.refresh,
                updates.clone(),
                commands,
            )));
        }
        None => tasks.push(tokio::spawn(refuse_commands(commands, updates.clone()))),
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

fn ticker(refresh: Duration) -> tokio::time::Interval {
    let mut interval = tokio::time::interval(refresh);
    // A refresh slower than the interval delays the next one; it never queues a burst.
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    interval
}

async fn run_prometheus(
    source: Prometheus,
    refresh: Duration,
    updates: mpsc::Sender<Update>,
    mut want: watch::Receiver<Want>,
) {
    let history_every = every(Duration::from_secs(15), refresh);
    let rules_every = every(Duration::from_secs(60), refresh);
    let mut interval = ticker(refresh);
    let mut last_range = None;
    let mut n: u64 = 0;
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            changed = want.changed() => {
                if changed.is_err() {
                    return;
                }
            }
        }
        let wanted = want.borrow_and_update().clone();
        let range_changed = last_range.is_some_and(|r| r != wanted.range);
        last_range = Some(wanted.range);
        let requests = plan(n, &wanted, history_every, rules_every, range_changed);
        n += 1;
        // Instant data goes out as soon as it is in; history (slower, larger) follows.
        let (instant, history): (Vec<Request>, Vec<Request>) = requests
            .into_iter()
            .partition(|r| !matches!(r, Request::Range(_)));
        let send = |batch: Vec<Request>| {
            let source = &source;
            let updates = &updates;
            async move {
                if batch.is_empty() {
                    return true;
                }
                let results = futures::future::join_all(
                    batch
                        .iter()
                        .map(|r| prometheus_request(source, r, wanted.range)),
                )
                .await;
                let mut good = Vec::new();
                let mut failure = None;
                for result in results {
                    match result {
                        Ok(update) => good.push(update),
                        Err(e) => failure = failure.or(Some(e)),
                    }
                }
                if let Some(e) = failure {
                    good.push(Update::Failed {
                        source: "prometheus".into(),
                        error: e.to_string(),
                    });
                }
                updates.send(Update::Batch(good)).await.is_ok()
            }
        };
        let (a, b) = tokio::join!(send(instant), send(history));
        if !(a && b) {
            return;
        }
    }
}

async fn prometheus_request(
    source: &Prometheus,
    request: &Request,
    range: f64,
) -> Result<Update, FetchError> {
    let at = now();
    Ok(match request {
        Request::Overview => Update::Metrics {
            source: "prometheus".into(),
            metrics: source.instant(prometheus::OVERVIEW_QUERY).await?,
            at,
        },
        Request::Partitions(c, g, t) => Update::Metrics {
            source: "prometheus/partitions".into(),
            metrics: source
                .instant(&prometheus::partitions_query(c, g, t))
                .await?,
            at,
        },
        Request::Alerts => Update::Alerts {
            source: "prometheus".into(),
            alerts: source.alerts().await?,
        },
        Request::Rules => {
            let rules = source.rules().await?;
            Update::Thresholds {
                cpu_alert: rules.cpu_alert,
                rules: rules.rules,
                unhealthy: rules.unhealthy,
            }
        }
        Request::Range(metric) => {
            // About 150 points across the range: enough for any sparkline width.
            let step = (range / 150.0).max(1.0);
            let query = if metric == ALERTS {
                "ALERTS{alertstate=\"firing\"}".to_string()
            } else {
                metric.clone()
            };
            Update::History {
                metric: metric.clone(),
                series: source.range(&query, at - range, at, step).await?,
            }
        }
    })
}

async fn run_alertmanager(
    source: Alertmanager,
    refresh: Duration,
    updates: mpsc::Sender<Update>,
    mut commands: mpsc::Receiver<Command>,
) {
    let mut interval = ticker(refresh);
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            command = commands.recv() => {
                let Some(command) = command else { return };
                let notice = match command {
                    Command::CreateSilence(silence) => match source.create_silence(&silence, now()).await {
                        Ok(id) => format!("silence {id} created for {}", humantime::format_duration(Duration::from_secs(silence.seconds))),
                        Err(e) => format!("silence not created: {e}"),
                    },
                    Command::ExpireSilence(id) => match source.expire_silence(&id).await {
                        Ok(()) => format!("silence {id} expired"),
                        Err(e) => format!("silence {id} not expired: {e}"),
                    },
                };
                if updates.send(Update::Notice(notice)).await.is_err() {
                    return;
                }
                // Fall through: show the change at once.
            }
        }
        let (alerts, silences) = tokio::join!(source.alerts(), source.silences());
        // One batch per refresh: one store rebuild, one redraw.
        let mut batch = Vec::new();
        let mut failure = None;
        match alerts {
            Ok(alerts) => batch.push(Update::Alerts {
                source: "alertmanager".into(),
                alerts,
            }),
            Err(e) => failure = Some(e),
        }
        match silences {
            Ok(silences) => batch.push(Update::Silences(silences)),
            Err(e) => failure = failure.or(Some(e)),
        }
        if let Some(e) = failure {
            batch.push(Update::Failed {
                source: "alertmanager".into(),
                error: e.to_string(),
            });
        }
        if updates.send(Update::Batch(batch)).await.is_err() {
            return;
        }
    }
}

/// Without Alertmanager, silences cannot be made: say so instead of dropping the request.
async fn refuse_commands(mut commands: mpsc::Receiver<Command>, updates: mpsc::Sender<Update>) {
    while commands.recv().await.is_some() {
        let notice =
            Update::Notice("no Alertmanager configured (--alertmanager): silences need one".into());
        if updates.send(notice).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_refresh_stays_inside_the_budget() {
        let history_every = every(Duration::from_secs(15), Duration::from_secs(1));
        let rules_every = every(Duration::from_secs(60), Duration::from_secs(1));
        assert_eq!((history_every, rules_every), (15, 60));
        let drilled = Want {
            partitions: Some(("shop".into(), "payment".into(), "order-placed".into())),
            range: 3600.0,
        };
        let mut total = 0;
        for n in 0..120 {
            for want in [&Want::default(), &drilled] {
                for changed in [false, true] {
                    let requests = plan(n, want, history_every, rules_every, changed);
                    assert!(
                        requests.len() <= PROMETHEUS_BUDGET,
                        "refresh {n}: {requests:?}"
                    );
                }
            }
            total += plan(n, &Want::default(), history_every, rules_every, false).len();
        }
        // Two requests a refresh, history (7) every 15 and rules every 60.
        assert_eq!(total, 120 * 2 + 8 * 7 + 2);
        assert_eq!(plan(0, &Want::default(), 15, 60, false).len(), 3 + 7);
    }
}
