//! Prometheus HTTP API: instant and range queries, alerts, rules. Parsing is separate from
//! the requests so every shape of answer (good, error, garbage) is unit-tested.

use std::borrow::Cow;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use surge_metrics::catalogue::workload;
use tokio::sync::{mpsc, watch};

use super::access::SourceClient;
use super::clock::{now, ticker};
use super::http::{FetchError, get_body, one_line};
use super::plan::{Request, Want, every, overview_query, partitions_query, plan, range_query};
use super::signals::{self, Choice, FAMILY_LABEL, Group, Signals};
use super::update::Update;
use crate::model::{Alert, AlertState, Labels, Metrics, Range, RangeSeries, check_label_sizes};

#[derive(Debug, Clone)]
pub struct Prometheus {
    base: String,
    http: SourceClient,
    /// The last answers to instant queries, so an answer that only differs from the last
    /// one in its evaluation time (Prometheus scrapes every 15 s or so, the panel asks every
    /// second) is not parsed again.
    last: Arc<Mutex<Vec<LastAnswer>>>,
    /// Which exporters' series to read, and the context's label selector.
    signals: Signals,
    /// Every query evaluated at this Unix time instead of now (`--at`: a past moment).
    at: Option<f64>,
}

/// One instant query's last answer with its evaluation time taken out, and its parse.
#[derive(Debug)]
struct LastAnswer {
    query: String,
    timeless: Vec<u8>,
    metrics: Metrics,
}

/// Instant queries whose last answer is kept: every query of an Overview and one partition
/// drill-in. Kept in the order they were first asked, so fewer slots than queries a refresh
/// would evict each answer before it is asked again.
const LAST_ANSWERS: usize = super::plan::OVERVIEW_REQUESTS + 1;

/// What the loaded alert rules say.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleSummary {
    pub cpu_alert: Option<f64>,
    /// The other lines the views judge by, where the rules set them.
    pub lines: crate::store::SetLines,
    pub rules: usize,
    pub unhealthy: usize,
}

impl Prometheus {
    pub fn new(base: &str, http: impl Into<SourceClient>) -> Self {
        Prometheus {
            base: base.trim_end_matches('/').to_string(),
            http: http.into(),
            last: Arc::default(),
            signals: Signals::default(),
            at: None,
        }
    }

    /// Read each signal group from `signals` (detected or fixed providers, a selector).
    pub fn with_signals(mut self, signals: Signals) -> Self {
        self.signals = signals;
        self
    }

    /// Evaluate every query at `at` (Unix seconds) rather than now.
    pub fn at(mut self, at: Option<f64>) -> Self {
        self.at = at;
        self
    }

    /// The time queries are evaluated at.
    pub fn time(&self) -> f64 {
        self.at.unwrap_or_else(now)
    }

    pub async fn instant(&self, query: &str) -> Result<Metrics, FetchError> {
        let url = format!("{}/api/v1/query", self.base);
        let mut params = vec![("query", query.to_string())];
        if let Some(at) = self.at {
            params.push(("time", format!("{at:.3}")));
        }
        let body = get_body(&self.http, &url, &params).await?;
        let timeless = without_evaluation_time(&body);
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(same) = last
            .iter()
            .find(|a| a.query == query && a.timeless == timeless)
        {
            return Ok(same.metrics.clone());
        }
        let metrics = parse_vector(&body).map_err(|e| FetchError::new(&url, e))?;
        last.retain(|a| a.query != query);
        if last.len() >= LAST_ANSWERS {
            last.remove(0);
        }
        last.push(LastAnswer {
            query: query.to_string(),
            timeless,
            metrics: metrics.clone(),
        });
        Ok(metrics)
    }

    pub async fn range(
        &self,
        query: &str,
        start: f64,
        end: f64,
        step: f64,
    ) -> Result<RangeSeries, FetchError> {
        let url = format!("{}/api/v1/query_range", self.base);
        let params = [
            ("query", query.to_string()),
            ("start", format!("{start:.3}")),
            ("end", format!("{end:.3}")),
            ("step", format!("{step:.3}")),
        ];
        let body = get_body(&self.http, &url, &params).await?;
        parse_matrix(&body).map_err(|e| FetchError::new(&url, e))
    }

    /// Which provider serves each signal group: fixed in the config, else detected from the
    /// metric names Prometheus holds.
    pub async fn detect(&self) -> Result<Choice, FetchError> {
        let at = self.time();
        let url = format!("{}/api/v1/label/__name__/values", self.base);
        let params = [
            ("match[]", self.signals.detect_selector()),
            ("start", format!("{:.3}", at - 3600.0)),
            ("end", format!("{at:.3}")),
        ];
        let body = get_body(&self.http, &url, &params).await?;
        let present = data::<Vec<String>>(&body, "label values")
            .map_err(|e| FetchError::new(&url, one_line(&e)))?;
        Ok(self.signals.choose(&present.into_iter().collect()))
    }

    /// The Overview's instant values: Surge's own series by name, each group another
    /// exporter provides through its recipes, and the context's own queries, in one set.
    pub async fn overview(&self, choice: &Choice) -> Result<Metrics, FetchError> {
        let overrides = &self.signals.overrides;
        // Surge's own series of a group another exporter provides are not read: one source
        // per group, never two side by side.
        let foreign: Vec<Group> = choice.foreign().map(|(g, _)| g).collect();
        let mut queries = vec![overview_query(&self.signals.selector, |name| {
            !overrides.covers(name) && signals::group_of(name).is_none_or(|g| !foreign.contains(&g))
        })];
        for (group, provider) in choice.foreign() {
            let recipes: Vec<_> = signals::recipes(provider, group, &self.signals.selector)
                .into_iter()
                .filter(|r| !overrides.covers(r.family.exposed))
                .collect();
            if !recipes.is_empty() {
                queries.push(signals::instant_query(&recipes));
            }
        }
        let answers = futures::future::join_all(queries.iter().map(|q| self.instant(q))).await;
        let mut metrics = Metrics::default();
        for (i, answer) in answers.into_iter().enumerate() {
            let mut answer = answer?;
            if i == 0 {
                // Nor is the health of its sources for those groups.
                answer.retain_points(|name, point| {
                    !name.starts_with("surge_source_")
                        || !foreign.iter().any(|g| point.label("source") == g.label())
                });
            }
            metrics.append(&answer);
        }
        if !overrides.is_empty() {
            metrics.append(&self.overridden().await?);
        }
        Ok(metrics)
    }

    /// The context's own queries' answers, checked for their families' labels; when they
    /// fail together, each is asked alone so the error names the one at fault.
    async fn overridden(&self) -> Result<Metrics, FetchError> {
        let overrides = &self.signals.overrides;
        let url = format!("{}/api/v1/query", self.base);
        let answer = match self
            .instant(&signals::instant_query(overrides.recipes()))
            .await
        {
            Ok(answer) => answer,
            Err(together) => {
                for recipe in overrides.recipes() {
                    if let Err(e) = self.instant(&recipe.query()).await {
                        return Err(FetchError::new(
                            &url,
                            format!("query for {}: {}", recipe.family.exposed, e.reason),
                        ));
                    }
                }
                return Err(together);
            }
        };
        overrides
            .check(&answer)
            .map_err(|e| FetchError::new(&url, e))?;
        Ok(answer)
    }

    /// One group's partitions on one topic (the Kafka drill-in).
    pub async fn partitions(
        &self,
        choice: &Choice,
        cluster: &str,
        group: &str,
        topic: &str,
    ) -> Result<Metrics, FetchError> {
        let query = match choice.kafka {
            Some(provider) if provider != signals::Provider::Surge => {
                signals::partitions_query(provider, &self.signals.selector, cluster, group, topic)
            }
            _ => partitions_query(&self.signals.selector, cluster, group, topic),
        };
        self.instant(&query).await
    }

    /// The query of a history request for `metric` under `choice`.
    pub fn history_query(&self, choice: &Choice, metric: &str) -> String {
        let own: Vec<_> = self
            .signals
            .overrides
            .recipes()
            .iter()
            .filter(|r| r.family.exposed == metric)
            .cloned()
            .collect();
        if !own.is_empty() {
            return signals::instant_query(&own);
        }
        for (group, provider) in choice.foreign() {
            let recipes: Vec<_> = signals::recipes(provider, group, &self.signals.selector)
                .into_iter()
                .filter(|r| r.family.exposed == metric)
                .collect();
            if !recipes.is_empty() {
                return signals::instant_query(&recipes);
            }
        }
        range_query(&self.signals.selector, metric)
    }

    pub async fn alerts(&self) -> Result<Vec<Alert>, FetchError> {
        let url = format!("{}/api/v1/alerts", self.base);
        let body = get_body(&self.http, &url, &[]).await?;
        parse_alerts(&body).map_err(|e| FetchError::new(&url, e))
    }

    pub async fn rules(&self) -> Result<RuleSummary, FetchError> {
        let url = format!("{}/api/v1/rules", self.base);
        let body = get_body(&self.http, &url, &[("type", "alert".to_string())]).await?;
        parse_rules(&body).map_err(|e| FetchError::new(&url, e))
    }

    /// The values `label` takes on series matching `selector` (what Grafana's
    /// `label_values(selector, label)` variables ask).
    pub async fn label_values(
        &self,
        label: &str,
        selector: &str,
    ) -> Result<Vec<String>, FetchError> {
        let url = format!("{}/api/v1/label/{label}/values", self.base);
        let body = get_body(&self.http, &url, &[("match[]", selector.to_string())]).await?;
        data::<Vec<String>>(&body, "label values").map_err(|e| FetchError::new(&url, one_line(&e)))
    }
}

/// Every API answer: `status`, then `data` or the error. Parsed straight from the bytes
/// into typed structs (no intermediate JSON tree).
#[derive(Deserialize)]
struct Envelope<T> {
    status: String,
    data: Option<T>,
    #[serde(rename = "errorType")]
    error_type: Option<String>,
    error: Option<String>,
}

fn data<'a, T: Deserialize<'a>>(body: &'a [u8], what: &str) -> Result<T, String> {
    let envelope: Envelope<T> =
        serde_json::from_slice(body).map_err(|e| format!("bad {what} answer: {e}"))?;
    match envelope.status.as_str() {
        "success" => envelope
            .data
            .ok_or_else(|| "answer has no data".to_string()),
        "error" => Err(format!(
            "{}: {}",
            envelope.error_type.as_deref().unwrap_or("error"),
            envelope.error.as_deref().unwrap_or("no message")
        )),
        other => Err(format!("not a Prometheus API answer (status {other:?})")),
    }
}

/// A query's `data`: the result, tagged by its type.
#[derive(Deserialize)]
#[serde(tag = "resultType", content = "result", rename_all = "lowercase")]
enum QueryData<'a> {
    #[serde(borrow)]
    Vector(Vec<Sample<'a>>),
    #[serde(borrow)]
    Matrix(Vec<Series<'a>>),
    Scalar(serde::de::IgnoredAny),
    String(serde::de::IgnoredAny),
}

impl QueryData<'_> {
    fn kind(&self) -> &'static str {
        match self {
            QueryData::Vector(_) => "vector",
            QueryData::Matrix(_) => "matrix",
            QueryData::Scalar(_) => "scalar",
            QueryData::String(_) => "string",
        }
    }
}

#[derive(Deserialize)]
struct Sample<'a> {
    metric: Labels,
    /// Values are numbers in quotes: borrowed from the body, not copied.
    #[serde(borrow)]
    value: (f64, Cow<'a, str>),
}

#[derive(Deserialize)]
struct Series<'a> {
    metric: Labels,
    #[serde(borrow)]
    values: Vec<(f64, Cow<'a, str>)>,
}

/// An instant query's answer without its evaluation time: every sample carries the same
/// time (`"value":[1700000000.123,"42"]`), the time the query ran, so two answers with the
/// same series and values differ only there. Anything else is kept byte for byte.
fn without_evaluation_time(body: &[u8]) -> Vec<u8> {
    const VALUE: &[u8] = b"\"value\":[";
    let Some(at) = memchr::memmem::find(body, VALUE) else {
        return body.to_vec();
    };
    let time = at + VALUE.len();
    let Some(len) = body[time..].iter().position(|&b| b == b',') else {
        return body.to_vec();
    };
    // `"value":[<time>,` wherever it occurs becomes `"value":[,`.
    let pattern = &body[at..time + len + 1];
    let mut out = Vec::with_capacity(body.len());
    let mut rest = body;
    for found in memchr::memmem::find_iter(body, pattern) {
        let offset = body.len() - rest.len();
        out.extend_from_slice(&rest[..found - offset]);
        out.extend_from_slice(VALUE);
        out.push(b',');
        rest = &body[found + pattern.len()..];
    }
    out.extend_from_slice(rest);
    out
}

fn value(text: &str) -> Result<f64, String> {
    super::exposition::parse_value(text)
}

pub fn parse_vector(body: &[u8]) -> Result<Metrics, String> {
    parse_vector_checked(body).map_err(|e| one_line(&e))
}

fn parse_vector_checked(body: &[u8]) -> Result<Metrics, String> {
    let samples = match data::<QueryData>(body, "query")? {
        QueryData::Vector(samples) => samples,
        other => return Err(format!("expected a vector result, got {}", other.kind())),
    };
    let mut metrics = Metrics::default();
    for Sample {
        mut metric,
        value: (_, v),
    } in samples
    {
        // A recipe's series are named by their family label (PromQL drops names).
        let name = match metric.remove(FAMILY_LABEL) {
            Some(family) => {
                metric.remove("__name__");
                family
            }
            None => metric.remove("__name__").unwrap_or_default(),
        };
        check_label_sizes(&metric)?;
        metrics.insert(&name, metric, value(&v)?);
    }
    Ok(metrics)
}

pub fn parse_matrix(body: &[u8]) -> Result<RangeSeries, String> {
    parse_matrix_checked(body).map_err(|e| one_line(&e))
}

fn parse_matrix_checked(body: &[u8]) -> Result<RangeSeries, String> {
    let series = match data::<QueryData>(body, "query")? {
        QueryData::Matrix(series) => series,
        other => return Err(format!("expected a matrix result, got {}", other.kind())),
    };
    series
        .into_iter()
        .map(|Series { mut metric, values }| {
            metric.remove("__name__");
            metric.remove(FAMILY_LABEL);
            check_label_sizes(&metric)?;
            let points = values
                .into_iter()
                .map(|(t, v)| value(&v).map(|v| (t, v)))
                .collect::<Result<Vec<_>, _>>()?;
            Ok((metric, points))
        })
        .collect()
}

#[derive(Deserialize)]
struct RawAlert {
    labels: Labels,
    #[serde(default)]
    annotations: Labels,
    state: String,
    #[serde(default, rename = "activeAt")]
    active_at: Option<String>,
}

/// Unix seconds of an RFC 3339 timestamp (any offset, any fraction).
pub fn unix_seconds(text: &str) -> Option<f64> {
    let ts: jiff::Timestamp = text.parse().ok()?;
    Some(ts.as_millisecond() as f64 / 1000.0)
}

/// Turn labels and annotations into an `Alert`.
pub fn alert(
    labels: Labels,
    annotations: &Labels,
    state: AlertState,
    active_at: Option<f64>,
    muted: bool,
) -> Alert {
    let note = |k: &str| annotations.get(k).cloned().unwrap_or_default();
    Alert {
        name: labels.get("alertname").cloned().unwrap_or_default(),
        state,
        severity: labels
            .get("severity")
            .cloned()
            .unwrap_or_else(|| "none".into()),
        summary: note("summary"),
        description: note("description"),
        runbook: note("runbook_url"),
        labels,
        active_at,
        muted,
    }
}

#[derive(Deserialize)]
struct AlertsData {
    alerts: Vec<RawAlert>,
}

pub fn parse_alerts(body: &[u8]) -> Result<Vec<Alert>, String> {
    parse_alerts_checked(body).map_err(|e| one_line(&e))
}

fn parse_alerts_checked(body: &[u8]) -> Result<Vec<Alert>, String> {
    let raw = data::<AlertsData>(body, "alerts")?.alerts;
    for a in &raw {
        check_label_sizes(&a.labels)?;
        check_label_sizes(&a.annotations)?;
    }
    Ok(raw
        .into_iter()
        .filter_map(|a| {
            let state = match a.state.as_str() {
                "firing" => AlertState::Firing,
                "pending" => AlertState::Pending,
                _ => return None,
            };
            let active = a.active_at.as_deref().and_then(unix_seconds);
            Some(alert(a.labels, &a.annotations, state, active, false))
        })
        .collect())
}

#[derive(Deserialize)]
struct RulesData {
    groups: Vec<RuleGroup>,
}

#[derive(Deserialize)]
struct RuleGroup {
    #[serde(default)]
    rules: Vec<Rule>,
}

#[derive(Deserialize)]
struct Rule {
    #[serde(default)]
    name: String,
    #[serde(default)]
    query: String,
    #[serde(default)]
    health: String,
    #[serde(default)]
    labels: Labels,
}

pub fn parse_rules(body: &[u8]) -> Result<RuleSummary, String> {
    parse_rules_checked(body).map_err(|e| one_line(&e))
}

fn parse_rules_checked(body: &[u8]) -> Result<RuleSummary, String> {
    let groups = data::<RulesData>(body, "rules")?.groups;
    let mut summary = RuleSummary {
        cpu_alert: None,
        lines: crate::store::SetLines::default(),
        rules: 0,
        unhealthy: 0,
    };
    for rule in groups.iter().flat_map(|g| &g.rules) {
        summary.rules += 1;
        if rule.health == "err" {
            summary.unhealthy += 1;
        }
        if rule.name == "ServiceCPUHigh" {
            summary.cpu_alert = cpu_threshold(&rule.query);
        }
        let severity = rule.labels.get("severity").map_or("", String::as_str);
        let page = matches!(severity, "page" | "critical");
        let lines = &mut summary.lines;
        match rule.name.as_str() {
            // The time-lag rule (the byte-lag one shares its name).
            "PostgresReplicaLagHigh" => {
                if let Some(v) = threshold_after(
                    &rule.query,
                    surge_metrics::catalogue::postgres::REPLAY_LAG_SECONDS.exposed,
                ) {
                    let line = if page {
                        &mut lines.replica_lag_page
                    } else {
                        &mut lines.replica_lag_warning
                    };
                    *line = Some(v);
                }
            }
            "PostgresConnectionsHigh" => {
                let line = if page {
                    &mut lines.connections_page
                } else {
                    &mut lines.connections_warning
                };
                *line = trailing_threshold(&rule.query);
            }
            "PodMemoryNearLimit" => lines.memory_of_limit = trailing_threshold(&rule.query),
            "PostgresIdleInTransaction" => {
                lines.idle_in_transaction = trailing_threshold(&rule.query);
            }
            _ => {}
        }
    }
    Ok(summary)
}

/// The number in `surge_workload_cpu_utilization_ratio > N`.
fn cpu_threshold(query: &str) -> Option<f64> {
    threshold_after(query, workload::CPU_UTILIZATION.exposed)
}

/// The number of the last `> N` (or `>= N`) of a query, where it ends with one.
fn trailing_threshold(query: &str) -> Option<f64> {
    let (_, rest) = query.rsplit_once('>')?;
    number(rest.trim_start().trim_start_matches('=')).filter(|_| {
        let n = rest.trim();
        n.chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | '-' | '=' | ' '))
    })
}

/// The number in `METRIC > N`.
fn threshold_after(query: &str, metric: &str) -> Option<f64> {
    let rest = query.split(metric).nth(1)?.trim_start();
    number(rest.strip_prefix('>')?.trim_start().trim_start_matches('='))
}

/// The number at the start of `text`, when it is a positive finite one.
fn number(text: &str) -> Option<f64> {
    let rest = text.trim_start();
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == 'e' || c == '-'))
        .unwrap_or(rest.len());
    rest[..end]
        .parse()
        .ok()
        .filter(|v: &f64| v.is_finite() && *v > 0.0)
}

/// The Prometheus fetcher: one refresh at a time, instant data first and history after, the
/// requests of each refresh chosen by [`plan`] within the budget.
pub async fn run(
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
    let mut choice = Choice::default();
    let mut detected_once = false;
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
        // Which exporters serve which signals: before the first Overview, then with the rules
        // (a newly deployed exporter shows within a minute).
        let mut detected = None;
        if requests.contains(&Request::Rules) || !detected_once {
            let found = source.detect().await;
            if let Ok(found) = &found {
                choice = *found;
                detected_once = true;
            }
            detected = Some(found);
        }
        n += 1;
        // Instant data goes out as soon as it is in; history (slower, larger) follows.
        let (instant, history): (Vec<Request>, Vec<Request>) = requests
            .into_iter()
            .partition(|r| !matches!(r, Request::Range(_)));
        let send = |batch: Vec<Request>, detected: Option<Result<Choice, FetchError>>| {
            let source = &source;
            let updates = &updates;
            let choice = &choice;
            async move {
                if batch.is_empty() {
                    return true;
                }
                let results = futures::future::join_all(
                    batch
                        .iter()
                        .map(|r| request(source, choice, r, wanted.range)),
                )
                .await;
                let mut good = Vec::new();
                let mut failure = None;
                match detected {
                    Some(Ok(found)) => good.push(Update::Providers(providers(&found))),
                    Some(Err(e)) => failure = Some(e),
                    None => {}
                }
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
        let (a, b) = tokio::join!(send(instant, detected), send(history, None));
        if !(a && b) {
            return;
        }
    }
}

/// Each group with the name of its provider (`None`: nothing in Prometheus serves it).
fn providers(choice: &Choice) -> Vec<(String, Option<String>)> {
    Group::ALL
        .iter()
        .map(|g| {
            (
                g.label().to_string(),
                choice.get(*g).map(|p| p.name().to_string()),
            )
        })
        .collect()
}

async fn request(
    source: &Prometheus,
    choice: &Choice,
    request: &Request,
    range: Range,
) -> Result<Update, FetchError> {
    let at = source.time();
    Ok(match request {
        Request::Overview => Update::Metrics {
            source: "prometheus".into(),
            metrics: source.overview(choice).await?,
            at,
        },
        Request::Partitions(c, g, t) => Update::Metrics {
            source: "prometheus/partitions".into(),
            metrics: source.partitions(choice, c, g, t).await?,
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
                lines: rules.lines,
            }
        }
        Request::Range(metric) => {
            let range = range.seconds();
            // About 150 points across the range: enough for any sparkline width.
            let step = (range / 150.0).max(1.0);
            Update::History {
                metric: metric.clone(),
                series: source
                    .range(&source.history_query(choice, metric), at - range, at, step)
                    .await
                    .map_err(|e| {
                        // The context's own query: name it, as the Overview does.
                        if source.signals.overrides.covers(metric) {
                            FetchError::new(&e.url, format!("query for {metric}: {}", e.reason))
                        } else {
                            e
                        }
                    })?,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    /// Every query of a refresh (an Overview of Surge's series, three other exporters' and
    /// the context's own, and a drill-in) is answered again unchanged: each is reused, not
    /// parsed again, however many there are.
    #[tokio::test]
    async fn every_query_of_a_refresh_keeps_its_last_answer() -> Result<(), String> {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        let url = format!(
            "http://{}",
            listener.local_addr().map_err(|e| e.to_string())?
        );
        let queries: Vec<String> = (0..super::super::plan::OVERVIEW_REQUESTS + 1)
            .map(|i| format!("q{i}"))
            .collect();
        let rounds = 2 * queries.len();
        std::thread::spawn(move || {
            for _ in 0..rounds {
                let Ok((mut stream, _)) = listener.accept() else {
                    return;
                };
                let mut request = [0u8; 4096];
                let _ = stream.read(&mut request);
                let body = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"__name__":"up"},"value":[1,"1"]}]}}"#;
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        let prometheus = Prometheus::new(&url, reqwest::Client::new());
        let mut first = Vec::new();
        for q in &queries {
            first.push(prometheus.instant(q).await.map_err(|e| e.to_string())?);
        }
        for (q, before) in queries.iter().zip(&first) {
            let again = prometheus.instant(q).await.map_err(|e| e.to_string())?;
            let shared = match (before.family("up"), again.family("up")) {
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                _ => false,
            };
            assert!(shared, "{q} was parsed again");
        }
        Ok(())
    }

    fn bytes(v: &Value) -> Vec<u8> {
        v.to_string().into_bytes()
    }

    #[test]
    fn answers_differing_only_in_evaluation_time_compare_equal() {
        let answer = |time: f64, value: &str| {
            bytes(
                &json!({"status": "success", "data": {"resultType": "vector", "result": [
                {"metric": {"__name__": "up", "job": "a"}, "value": [time, value]},
                {"metric": {"__name__": "up", "job": "b"}, "value": [time, "1"]}]}}),
            )
        };
        let first = without_evaluation_time(&answer(1700000000.123, "1"));
        assert_eq!(first, without_evaluation_time(&answer(1700000001.5, "1")));
        assert_ne!(first, without_evaluation_time(&answer(1700000001.5, "0")));
        assert_eq!(
            String::from_utf8_lossy(&first)
                .matches("\"value\":[,")
                .count(),
            2
        );
        // Nothing to take out: the answer as it is.
        let empty =
            bytes(&json!({"status": "success", "data": {"resultType": "vector", "result": []}}));
        assert_eq!(without_evaluation_time(&empty), empty);
    }

    #[test]
    fn answers_with_oversized_labels_are_refused_with_the_reason() {
        // At the limit: read.
        let at = "x".repeat(crate::model::MAX_LABEL_BYTES);
        let fine = json!({"status": "success", "data": {"resultType": "vector",
            "result": [{"metric": {"__name__": "up", "job": at, at.clone(): "v"}, "value": [1, "1"]}]}});
        assert!(parse_vector(&bytes(&fine)).is_ok());
        let long = "x".repeat(crate::model::MAX_LABEL_BYTES + 1);
        let named = json!({"status": "success", "data": {"resultType": "vector",
            "result": [{"metric": {"__name__": "up", long.clone(): "v"}, "value": [1, "1"]}]}});
        assert!(
            parse_vector(&bytes(&named))
                .is_err_and(|e| e.starts_with("a label name of 4097 bytes"))
        );
        let vector = json!({"status": "success", "data": {"resultType": "vector",
            "result": [{"metric": {"__name__": "up", "job": long}, "value": [1, "1"]}]}});
        assert_eq!(
            parse_vector(&bytes(&vector)).err().as_deref(),
            Some("label job has a value of 4097 bytes (at most 4096)")
        );
        let matrix = json!({"status": "success", "data": {"resultType": "matrix",
            "result": [{"metric": {"job": long}, "values": [[1, "1"]]}]}});
        assert!(parse_matrix(&bytes(&matrix)).is_err());
        let alerts = json!({"status": "success", "data": {"alerts": [
            {"labels": {"alertname": "X"}, "annotations": {"summary": long}, "state": "firing"}]}});
        assert_eq!(
            parse_alerts(&bytes(&alerts)).err().as_deref(),
            Some("label summary has a value of 4097 bytes (at most 4096)")
        );
    }

    #[test]
    fn vectors_keep_names_and_labels_and_read_special_values() -> Result<(), String> {
        let body = json!({"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"__name__":"surge_kafka_group_topic_lag","group":"payment","instance":"x:1"},"value":[1.7e9,"1500"]},
            {"metric":{"__name__":"surge_kafka_group_topic_drain_eta_seconds","group":"payment"},"value":[1.7e9,"+Inf"]},
            {"metric":{"__name__":"surge_hpa_current_replicas"},"value":[1.7e9,"NaN"]}
        ]}});
        let m = parse_vector(&bytes(&body))?;
        assert_eq!(
            m.value("surge_kafka_group_topic_lag", &[("group", "payment")]),
            Some(1500.0)
        );
        assert_eq!(
            m.value("surge_kafka_group_topic_drain_eta_seconds", &[]),
            Some(f64::INFINITY)
        );
        assert!(
            !m.points("surge_kafka_group_topic_lag")[0]
                .labels
                .contains_key("__name__")
        );
        Ok(())
    }

    #[test]
    fn api_errors_and_wrong_shapes_are_one_line_errors() {
        let err =
            json!({"status":"error","errorType":"bad_data","error":"invalid parameter \"query\""});
        assert_eq!(
            parse_vector(&bytes(&err)),
            Err("bad_data: invalid parameter \"query\"".into())
        );
        let matrix = json!({"status":"success","data":{"resultType":"matrix","result":[]}});
        assert_eq!(
            parse_vector(&bytes(&matrix)),
            Err("expected a vector result, got matrix".into())
        );
        assert!(parse_vector(&bytes(&json!({"hello":"world"}))).is_err());
        let bad_value = json!({"status":"success","data":{"resultType":"vector","result":[
            {"metric":{},"value":[1.0,"twelve"]}]}});
        assert!(parse_vector(&bytes(&bad_value)).is_err_and(|e| e.contains("twelve")));
        let bad_shape =
            json!({"status":"success","data":{"resultType":"vector","result":[{"metric":{}}]}});
        assert!(parse_vector(&bytes(&bad_shape)).is_err_and(|e| e.starts_with("bad query answer")));
    }

    #[test]
    fn matrices_and_alerts_and_rules() -> Result<(), String> {
        let body = json!({"status":"success","data":{"resultType":"matrix","result":[
            {"metric":{"__name__":"ALERTS","alertname":"X","alertstate":"firing"},"values":[[10,"1"],[20,"1"]]}]}});
        let series = parse_matrix(&bytes(&body))?;
        assert_eq!(series[0].1, vec![(10.0, 1.0), (20.0, 1.0)]);
        assert!(!series[0].0.contains_key("__name__"));

        let alerts = json!({"status":"success","data":{"alerts":[
            {"labels":{"alertname":"KafkaConsumerStalled","severity":"page","group":"shipping"},
             "annotations":{"summary":"stalled","runbook_url":"https://r"},"state":"firing",
             "activeAt":"2026-11-28T08:00:00.5+01:00","value":"1e+00"},
            {"labels":{"alertname":"P"},"state":"pending","activeAt":"2026-11-28T07:00:00Z"},
            {"labels":{"alertname":"I"},"state":"inactive"}]}});
        let alerts = parse_alerts(&bytes(&alerts))?;
        assert_eq!(alerts.len(), 2);
        assert_eq!(
            (alerts[0].name.as_str(), alerts[0].severity.as_str()),
            ("KafkaConsumerStalled", "page")
        );
        assert_eq!(alerts[0].active_at, unix_seconds("2026-11-28T07:00:00.5Z"));
        assert_eq!(alerts[1].state, AlertState::Pending);

        let rules = json!({"status":"success","data":{"groups":[{"rules":[
            {"name":"ServiceCPUHigh","query":"surge_workload_cpu_utilization_ratio > 0.85","health":"ok"},
            {"name":"PodMemoryNearLimit","query":"a / b > 0.75","health":"ok"},
            {"name":"PostgresConnectionsHigh","query":"sum(x) / y >= 0.7","labels":{"severity":"warning"}},
            {"name":"PostgresReplicaLagHigh","query":"surge_postgres_replica_lag_bytes > 1e6","labels":{"severity":"warning"}},
            {"name":"PostgresReplicaLagHigh","query":"surge_postgres_replay_lag_seconds > 45","labels":{"severity":"warning"}},
            {"name":"PostgresIdleInTransaction","query":"x > y","health":"ok"},
            {"name":"Broken","query":"x","health":"err"}]}]}});
        assert_eq!(
            parse_rules(&bytes(&rules))?,
            RuleSummary {
                cpu_alert: Some(0.85),
                lines: crate::store::SetLines {
                    memory_of_limit: Some(0.75),
                    connections_warning: Some(0.7),
                    // The byte-lag rule of the same name does not set the time line.
                    replica_lag_warning: Some(45.0),
                    // Not a number after the last `>`: not read.
                    idle_in_transaction: None,
                    ..crate::store::SetLines::default()
                },
                rules: 7,
                unhealthy: 1
            }
        );
        Ok(())
    }
}
