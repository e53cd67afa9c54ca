//! The state store: the latest data from every source, its history, and the rows the views
//! show, derived once per update. Plain data: unit-tested without a terminal or a network.
//!
//! `mod.rs` absorbs updates and knows each source's health; `rows` derives what each view
//! lists; `alerts` merges and orders alerts; `forecast` projects time to max replicas.

mod alerts;
mod contexts;
mod forecast;
mod rows;
mod verdict;

pub use alerts::{WATCHDOG, firing, merge_alerts, timeline_key};
pub use contexts::{ContextSummary, ServiceLine};
pub use forecast::{FORECAST_WINDOW, Forecast, counter_rate, time_to_max};
pub use rows::{
    Database, GroupRow, PartitionRow, PodRow, Role, ScalingMetric, ServerRow, ServiceAlert,
    ServiceRow, SlotRow, StalledPartition, StandbyRow,
};
pub use verdict::{Urgency, Verdict, verdict};

use rows::Rows;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use surge_metrics::Family;
use surge_metrics::catalogue::{self, exporter};

use crate::fetch::Update;
use crate::fetch::plan::{ALERTS, HISTORY};
use crate::model::{Alert, AlertState, Health, History, Metrics, Range, Silence};

/// A source (Prometheus, Alertmanager, an exporter) and whether its data is current.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceRow {
    pub name: String,
    pub health: Health,
    /// Seconds since the last good fetch.
    pub age: Option<f64>,
    pub stale: bool,
}

/// Everything the views show, derived from the raw data.
#[derive(Debug, Clone, Default)]
pub struct Derived {
    pub services: Vec<ServiceRow>,
    pub groups: Vec<GroupRow>,
    pub servers: Vec<ServerRow>,
    pub standbys: Vec<StandbyRow>,
    pub slots: Vec<SlotRow>,
    pub alerts: Vec<Alert>,
    /// The Watchdog alert is firing: alerting works end to end (to where we read it).
    pub watchdog: bool,
}

/// The CPU alert line when Prometheus' rules do not say (alerts/rules.yml: ServiceCPUHigh).
pub const DEFAULT_CPU_ALERT: f64 = 0.85;

/// The lines verdicts and colours judge by: the config's where it sets them, else the loaded
/// alert rules' (Surge's rules as deployed, thresholds edited or not), else [`lines`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Lines {
    pub replica_lag_warning: f64,
    pub replica_lag_page: f64,
    pub connections_warning: f64,
    pub connections_page: f64,
    pub memory_of_limit: f64,
    pub idle_in_transaction: f64,
}

impl Default for Lines {
    fn default() -> Self {
        Lines {
            replica_lag_warning: lines::REPLICA_LAG_WARNING,
            replica_lag_page: lines::REPLICA_LAG_PAGE,
            connections_warning: lines::CONNECTIONS_WARNING,
            connections_page: lines::CONNECTIONS_PAGE,
            memory_of_limit: lines::MEMORY_OF_LIMIT,
            idle_in_transaction: lines::IDLE_IN_TRANSACTION,
        }
    }
}

/// Lines some source sets (the rules, the config), each where it does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct SetLines {
    pub replica_lag_warning: Option<f64>,
    pub replica_lag_page: Option<f64>,
    pub connections_warning: Option<f64>,
    pub connections_page: Option<f64>,
    pub memory_of_limit: Option<f64>,
    pub idle_in_transaction: Option<f64>,
}

impl SetLines {
    /// `self` where set, else `under`.
    pub fn over(&self, under: Lines) -> Lines {
        Lines {
            replica_lag_warning: self
                .replica_lag_warning
                .unwrap_or(under.replica_lag_warning),
            replica_lag_page: self.replica_lag_page.unwrap_or(under.replica_lag_page),
            connections_warning: self
                .connections_warning
                .unwrap_or(under.connections_warning),
            connections_page: self.connections_page.unwrap_or(under.connections_page),
            memory_of_limit: self.memory_of_limit.unwrap_or(under.memory_of_limit),
            idle_in_transaction: self
                .idle_in_transaction
                .unwrap_or(under.idle_in_transaction),
        }
    }
}

/// The other alert lines of alerts/rules.yml the views colour by (a test keeps them in step):
/// replica lag (PostgresReplicaLagHigh warning and page), a pod's memory of its limit
/// (PodMemoryNearLimit), connection slots in use (PostgresConnectionsHigh warning and page)
/// and the longest idle transaction (PostgresIdleInTransaction).
pub mod lines {
    pub const REPLICA_LAG_WARNING: f64 = 30.0;
    pub const REPLICA_LAG_PAGE: f64 = 300.0;
    pub const MEMORY_OF_LIMIT: f64 = 0.9;
    pub const CONNECTIONS_WARNING: f64 = 0.8;
    pub const CONNECTIONS_PAGE: f64 = 0.95;
    pub const IDLE_IN_TRANSACTION: f64 = 300.0;
}

/// Actions the store keeps for the views (the audit log keeps them all).
pub const ACTIONS_KEPT: usize = 50;

/// What the panel knows, fed by [`Store::apply`] and read through its methods: the views only
/// read, and the few settings the panel owns (groups, range, notice) are set by name.
#[derive(Debug, Clone, Default)]
pub struct Store {
    /// Every source's latest instant values, side by side.
    pub(crate) metrics: Metrics,
    by_source: BTreeMap<String, Metrics>,
    pub(crate) history: History,
    pub(crate) prometheus_alerts: Vec<Alert>,
    pub(crate) alertmanager_alerts: Vec<Alert>,
    pub(crate) silences: Vec<Silence>,
    pub(crate) health: BTreeMap<String, Health>,
    pub(crate) notice: Option<String>,
    /// The broker's last answer for the dead-letter view, and when it came.
    dead_letter_look: Option<(f64, Result<crate::act::dead_letters::Look, String>)>,
    /// Why the broker's last answer for the dead-letter view failed, until one succeeds.
    dead_letters_failing: Option<String>,
    /// Actions tried from the panel, oldest first (the last [`ACTIONS_KEPT`]).
    actions: std::collections::VecDeque<crate::act::audit::Entry>,
    /// Unix seconds of the last data received.
    pub(crate) last_update: Option<f64>,
    pub(crate) derived: Derived,
    /// Kafka group names that belong to a service, beyond the same-name default.
    pub(crate) service_groups: BTreeMap<String, Vec<String>>,
    /// Database servers (targets) a service uses, where configured.
    service_databases: BTreeMap<String, Vec<String>>,
    /// How dead-letter topics are named from their topic (`{topic}.dlq`).
    dead_letters: Vec<String>,
    /// A source is stale after this many seconds without a good fetch.
    pub(crate) stale_after: f64,
    /// Utilization at which ServiceCPUHigh fires, from the loaded rules when known.
    pub(crate) cpu_alert: Option<f64>,
    /// The other lines, as the loaded rules set them.
    rule_lines: SetLines,
    /// The lines the config sets (over the rules').
    configured_lines: SetLines,
    /// The CPU line the config sets (over the rules').
    configured_cpu_alert: Option<f64>,
    /// Rules loaded in Prometheus, and how many failed their last evaluation.
    pub(crate) rules: Option<(usize, usize)>,
    /// History the sparklines show.
    pub(crate) range: Range,
    /// Prometheus gave the alert timeline (`ALERTS`); stop recording our own sightings.
    alert_history_from_prometheus: bool,
    /// Sources whose TLS certificates are not verified (`insecure_skip_verify`): said in the
    /// banner for as long as the panel runs.
    pub(crate) insecure_sources: Vec<String>,
    /// Which exporter provides each signal group, as Prometheus' fetcher last found.
    providers: Vec<(String, Option<String>)>,
}

impl Store {
    /// Every source's latest instant values, side by side.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }
    pub fn history(&self) -> &History {
        &self.history
    }
    pub fn prometheus_alerts(&self) -> &[Alert] {
        &self.prometheus_alerts
    }
    pub fn alertmanager_alerts(&self) -> &[Alert] {
        &self.alertmanager_alerts
    }
    pub fn silences(&self) -> &[Silence] {
        &self.silences
    }
    /// Each source's health, by name.
    pub fn health(&self) -> &BTreeMap<String, Health> {
        &self.health
    }
    /// The status bar's one-line message.
    pub fn notice(&self) -> Option<&str> {
        self.notice.as_deref()
    }
    pub fn set_notice(&mut self, notice: Option<String>) {
        self.notice = notice;
    }
    /// Unix seconds of the last data received.
    pub fn last_update(&self) -> Option<f64> {
        self.last_update
    }
    /// The rows and verdicts the views draw.
    pub fn derived(&self) -> &Derived {
        &self.derived
    }
    /// Kafka group names that belong to a service, beyond the same-name default.
    /// How dead-letter topics are named (`{topic}` stands for the topic); default
    /// [`DEFAULT_DEAD_LETTERS`].
    pub fn set_dead_letters(&mut self, patterns: Vec<String>) {
        self.dead_letters = patterns;
    }

    /// The database servers (targets) each service uses, where the config says; the others
    /// are measured by their connections' `application_name`.
    pub fn set_service_databases(&mut self, databases: BTreeMap<String, Vec<String>>) {
        self.service_databases = databases;
    }

    pub fn set_service_groups(&mut self, groups: BTreeMap<String, Vec<String>>) {
        self.service_groups = groups;
    }
    /// Seconds without a good fetch after which a source is stale.
    pub fn stale_after(&self) -> f64 {
        self.stale_after
    }
    pub fn set_stale_after(&mut self, seconds: f64) {
        self.stale_after = seconds;
    }
    /// Utilization at which ServiceCPUHigh fires, from the loaded rules when known.
    /// The CPU alert line: the config's, else the loaded rules', else `None` (the views then
    /// use [`DEFAULT_CPU_ALERT`]).
    pub fn cpu_alert(&self) -> Option<f64> {
        self.configured_cpu_alert.or(self.cpu_alert)
    }

    /// The lines verdicts and colours judge by: config, else rules, else defaults.
    pub fn lines(&self) -> Lines {
        self.configured_lines
            .over(self.rule_lines.over(Lines::default()))
    }

    /// The lines (and CPU line) the config sets.
    pub fn set_configured_lines(&mut self, lines: SetLines, cpu_alert: Option<f64>) {
        self.configured_lines = lines;
        self.configured_cpu_alert = cpu_alert;
    }
    /// Rules loaded in Prometheus, and how many failed their last evaluation.
    pub fn rules(&self) -> Option<(usize, usize)> {
        self.rules
    }
    /// History the sparklines show.
    pub fn range(&self) -> Range {
        self.range
    }
    /// Sources whose TLS certificates are not verified, said in the banner.
    /// Which exporter provides each signal group (`kubernetes`, `kafka`, `postgres`), as
    /// last detected in Prometheus; empty before the first detection or without Prometheus.
    pub fn providers(&self) -> &[(String, Option<String>)] {
        &self.providers
    }

    pub fn insecure_sources(&self) -> &[String] {
        &self.insecure_sources
    }
    pub fn set_insecure_sources(&mut self, sources: Vec<String>) {
        self.insecure_sources = sources;
    }
}

impl Store {
    pub fn new(stale_after: f64) -> Self {
        Store {
            stale_after,
            ..Default::default()
        }
    }

    /// Apply one update at `now`, then rebuild the derived rows.
    pub fn apply(&mut self, update: Update, now: f64) {
        self.absorb(update, now);
        self.history.trim(now - Range::SixHours.seconds());
        self.rebuild(now);
    }

    /// Apply every update, rebuilding once.
    pub fn apply_all(&mut self, updates: Vec<Update>, now: f64) {
        for update in updates {
            self.absorb(update, now);
        }
        self.history.trim(now - Range::SixHours.seconds());
        self.rebuild(now);
    }

    /// Apply one update at `now` without deriving the rows (a replay applies many, then
    /// derives once with [`Store::rebuild`]).
    pub fn absorb_at(&mut self, update: Update, now: f64) {
        self.absorb(update, now);
        self.history.trim(now - Range::SixHours.seconds());
    }

    fn absorb(&mut self, update: Update, now: f64) {
        match update {
            Update::Batch(updates) => {
                for update in updates {
                    self.absorb(update, now);
                }
            }
            Update::Metrics {
                source,
                metrics,
                at,
            } => {
                for family in HISTORY {
                    let name = family.exposed;
                    for point in metrics.points(name) {
                        self.history.push(name, &point.labels, at, point.value);
                    }
                }
                self.by_source.insert(source.clone(), metrics);
                // Prometheus first; an exporter's series that Prometheus also has (it scrapes
                // that exporter) are shown once.
                let mut merged = Metrics::default();
                for (name, m) in &self.by_source {
                    if name.starts_with("prometheus") {
                        merged.append(m);
                    }
                }
                // Checked against Prometheus' series only (exporters are not folded into
                // each other), then added: one copy of every point, as before there was a
                // check.
                let mut uncovered = Metrics::default();
                for (name, m) in &self.by_source {
                    if !name.starts_with("prometheus") {
                        uncovered.append_uncovered(m, &merged);
                    }
                }
                merged.append(&uncovered);
                self.metrics = merged;
                let base = source.split('/').next().unwrap_or_default().to_string();
                self.health.insert(
                    base,
                    Health {
                        last_ok: Some(at),
                        error: None,
                    },
                );
                self.last_update = Some(at);
            }
            Update::Thresholds {
                cpu_alert,
                rules,
                unhealthy,
                lines,
            } => {
                self.cpu_alert = cpu_alert;
                self.rule_lines = lines;
                self.rules = Some((rules, unhealthy));
            }
            Update::History { metric, series } => {
                if metric == ALERTS {
                    self.alert_history_from_prometheus = true;
                }
                self.history.replace_metric(&metric, series);
            }
            Update::Alerts { source, alerts } => {
                // What was seen firing, for the timeline when Prometheus cannot give its own.
                if !self.alert_history_from_prometheus {
                    for a in alerts.iter().filter(|a| a.state == AlertState::Firing) {
                        self.history.push(ALERTS, &timeline_key(a), now, 1.0);
                    }
                }
                if source == "alertmanager" {
                    self.alertmanager_alerts = alerts;
                } else {
                    self.prometheus_alerts = alerts;
                }
                self.health.insert(
                    source,
                    Health {
                        last_ok: Some(now),
                        error: None,
                    },
                );
            }
            Update::Silences(silences) => self.silences = silences,
            Update::Providers(providers) => self.providers = providers,
            Update::Failed { source, error } => {
                let entry = self.health.entry(source).or_default();
                entry.error = Some(error);
            }
            Update::Notice(text) => self.notice = Some(text),
            Update::DeadLetters(look) => {
                // An error keeps what was seen before, marked failing until an answer comes.
                self.dead_letters_failing = look.as_ref().err().cloned();
                match (&look, self.dead_letter_look.take()) {
                    (Err(e), Some((at, Ok(seen)))) => {
                        self.notice = Some(format!("kafka: {e}"));
                        self.dead_letter_look = Some((at, Ok(seen)));
                    }
                    _ => self.dead_letter_look = Some((now, look)),
                }
            }
            Update::Acted(entry) => {
                self.notice = Some(entry.summary());
                if self.actions.len() == ACTIONS_KEPT {
                    self.actions.pop_front();
                }
                self.actions.push_back(*entry);
            }
        }
    }

    /// The broker's last answer for the dead-letter view and when it came.
    pub fn dead_letters(&self) -> Option<(f64, &Result<crate::act::dead_letters::Look, String>)> {
        self.dead_letter_look.as_ref().map(|(at, look)| (*at, look))
    }

    /// Why the last look at the dead letters failed, while what is shown is older.
    pub fn dead_letters_failing(&self) -> Option<&str> {
        self.dead_letters_failing.as_deref()
    }

    /// Actions tried from the panel (or in the recording being replayed), oldest first.
    pub fn actions(&self) -> impl DoubleEndedIterator<Item = &crate::act::audit::Entry> {
        self.actions.iter()
    }

    /// Sources with their age; stale when failing or silent for too long.
    pub fn sources(&self, now: f64) -> Vec<SourceRow> {
        self.health
            .iter()
            .map(|(name, health)| {
                let age = health.last_ok.map(|t| (now - t).max(0.0));
                SourceRow {
                    name: name.clone(),
                    health: health.clone(),
                    age,
                    stale: health.error.is_some() || age.is_none_or(|a| a > self.stale_after),
                }
            })
            .collect()
    }

    /// Age of the freshest data carrying `metric`, and whether that source is stale.
    pub fn age_of(&self, family: &Family, now: f64) -> Option<(f64, bool)> {
        self.by_source
            .iter()
            .filter(|(_, m)| !m.points(family.exposed).is_empty())
            .filter_map(|(source, _)| {
                let health = self.health.get(source.split('/').next()?)?;
                let age = (now - health.last_ok?).max(0.0);
                Some((age, health.error.is_some() || age > self.stale_after))
            })
            .min_by(|a, b| a.0.total_cmp(&b.0))
    }

    /// Age of the services' numbers (their HPAs', else their CPU's), and whether stale.
    pub fn services_age(&self, now: f64) -> Option<(f64, bool)> {
        self.age_of(&catalogue::hpa::CURRENT, now)
            .or_else(|| self.age_of(&catalogue::workload::CPU_UTILIZATION, now))
    }

    /// Age of the alerts shown: Alertmanager's when configured, else Prometheus'.
    pub fn alerts_age(&self, now: f64) -> Option<(f64, bool)> {
        ["alertmanager", "prometheus"].iter().find_map(|s| {
            let health = self.health.get(*s)?;
            let age = (now - health.last_ok?).max(0.0);
            Some((age, health.error.is_some() || age > self.stale_after))
        })
    }

    /// surge-exporter targets that report themselves down: (source, target, seconds since
    /// their last success). Their series are missing, not zero.
    pub fn exporter_targets_down(&self, now: f64) -> Vec<(String, String, Option<f64>)> {
        self.metrics
            .points(exporter::SOURCE_UP.exposed)
            .iter()
            .filter(|p| p.value < 1.0)
            .map(|p| {
                let (source, target) = (p.label("source"), p.label("target"));
                let last = self
                    .metrics
                    .value(
                        exporter::SOURCE_LAST_SUCCESS.exposed,
                        &[("source", source), ("target", target)],
                    )
                    .filter(|t| *t > 0.0)
                    .map(|t| (now - t).max(0.0));
                (source.to_string(), target.to_string(), last)
            })
            .collect()
    }

    fn rows(&self) -> Rows<'_> {
        Rows {
            metrics: &self.metrics,
            history: &self.history,
        }
    }

    /// Pods of one workload (service detail).
    pub fn pods(&self, namespace: &str, workload: &str) -> Vec<PodRow> {
        self.rows().pods(namespace, workload)
    }

    /// Partitions of one group on one topic (Kafka drill-in).
    pub fn partitions(&self, group: &str, topic: &str) -> Vec<PartitionRow> {
        self.rows().partitions(group, topic)
    }

    /// Show `range` of history.
    pub fn set_range(&mut self, range: Range, now: f64) {
        self.range = range;
        self.rebuild(now);
    }

    /// Rebuild the rows (for a new `now` without new data, e.g. ages).
    pub fn rebuild(&mut self, now: f64) {
        let range = self.range.seconds();
        let rows = self.rows();
        let groups = rows.groups(range, now);
        let servers = rows.servers(range, now);
        let services = rows.services(
            range,
            &groups,
            &self.service_groups,
            &servers,
            &self.service_databases,
            now,
        );
        let standbys = rows.standbys(range, now);
        let slots = rows.slots();
        let (alerts, watchdog) = alerts::shown(&self.prometheus_alerts, &self.alertmanager_alerts);
        let stale = self.services_age(now).is_some_and(|(_, stale)| stale);
        let kafka_down = self
            .exporter_targets_down(now)
            .iter()
            .any(|(source, _, _)| source == "kafka");
        // Groups with lag in the history shown: when Kafka's numbers go missing, their
        // services' lag became unknown (history, not a memory of earlier frames, so a
        // replay seeking straight to a moment judges it the same).
        let groups_seen: BTreeSet<&str> = self
            .history
            .named(catalogue::kafka::TOPIC_LAG.exposed)
            .filter(|(_, points)| !points.is_empty())
            .filter_map(|(labels, _)| labels.get("group").map(String::as_str))
            .collect();
        let mut services = services;
        for service in &mut services {
            service.alerts = about(service, &self.service_groups, &self.dead_letters, &alerts);
            service.lines = self.lines();
            service.stale = stale;
            service.kafka_unknown = kafka_down
                && service.kafka.is_none()
                && service_groups(&self.service_groups, &service.workload)
                    .iter()
                    .any(|g| groups_seen.contains(g.as_str()));
        }
        self.derived = Derived {
            services,
            groups,
            servers,
            standbys,
            slots,
            alerts,
            watchdog,
        };
    }
}

/// The firing, unmuted alerts about `service`: by its workload or service label (and its
/// namespace when the alert has one), its consumer groups, or its topic's dead-letter queue.
/// The consumer groups of `workload`: as configured, else the one of its own name.
pub(super) fn service_groups(
    configured: &BTreeMap<String, Vec<String>>,
    workload: &str,
) -> Vec<String> {
    configured
        .get(workload)
        .cloned()
        .unwrap_or_else(|| vec![workload.to_string()])
}

/// How the shop names a topic's dead-letter topic; `[kafka] dead_letters` sets others
/// (Spring's `{topic}.DLT`, `{topic}-dlt`, ...).
pub const DEFAULT_DEAD_LETTERS: &str = "{topic}.dlq";

/// The dead-letter topics of `topic` under `patterns` (`{topic}` stands for it).
pub fn dead_letter_topics(patterns: &[String], topic: &str) -> Vec<String> {
    if patterns.is_empty() {
        return vec![DEFAULT_DEAD_LETTERS.replace("{topic}", topic)];
    }
    patterns
        .iter()
        .map(|p| p.replace("{topic}", topic))
        .collect()
}

fn about(
    service: &ServiceRow,
    service_groups_of: &BTreeMap<String, Vec<String>>,
    dead_letters: &[String],
    alerts: &[Alert],
) -> Vec<ServiceAlert> {
    let groups = service_groups(service_groups_of, &service.workload);
    let dlq: Vec<String> = service
        .kafka
        .as_ref()
        .map(|g| dead_letter_topics(dead_letters, &g.topic))
        .unwrap_or_default();
    alerts
        .iter()
        .filter(|a| a.state == AlertState::Firing && !a.muted)
        .filter(|a| {
            let label = |k: &str| a.labels.get(k).map(String::as_str);
            let namespace_ok = label("namespace").is_none_or(|ns| ns == service.namespace);
            let named = [label("workload"), label("service")]
                .into_iter()
                .flatten()
                .any(|w| w == service.workload);
            let group = label("group").is_some_and(|g| groups.iter().any(|x| x == g));
            let dead_letters = label("topic").is_some_and(|t| dlq.iter().any(|d| d == t));
            namespace_ok && (named || group || dead_letters)
        })
        .map(|a| ServiceAlert {
            name: a.name.clone(),
            page: matches!(a.severity.as_str(), "page" | "critical"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Labels;
    use surge_metrics::catalogue::{hpa, kafka, postgres, workload};

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect()
    }

    /// A store that has read `metrics` from Prometheus at t = 100.
    fn from_prometheus(metrics: Metrics) -> Store {
        let mut store = Store::new(30.0);
        store.apply(
            Update::Metrics {
                source: "prometheus".into(),
                metrics,
                at: 100.0,
            },
            100.0,
        );
        store
    }

    fn shop_metrics() -> Metrics {
        let mut m = Metrics::default();
        let w = labels(&[("namespace", "shop"), ("workload", "payment")]);
        let hpa = labels(&[
            ("namespace", "shop"),
            ("workload", "payment"),
            ("hpa", "payment"),
        ]);
        m.insert(workload::CPU_UTILIZATION.exposed, w.clone(), 0.9);
        m.insert(hpa::CURRENT.exposed, hpa.clone(), 10.0);
        m.insert(hpa::MAX.exposed, hpa.clone(), 10.0);
        m.insert(hpa::TARGET_CPU.exposed, hpa, 0.7);
        let gt = labels(&[
            ("cluster", "shop"),
            ("group", "payment"),
            ("topic", "order-placed"),
        ]);
        m.insert(kafka::TOPIC_LAG.exposed, gt.clone(), 1500.0);
        let mut st = gt.clone();
        st.insert("state".into(), "draining".into());
        m.insert(kafka::LAG_STATE.exposed, st, 1.0);
        m.insert(kafka::DRAIN_ETA.exposed, gt, 120.0);
        m.insert(
            kafka::TOPIC_PARTITIONS.exposed,
            labels(&[("cluster", "shop"), ("topic", "order-placed")]),
            12.0,
        );
        let lag = r#"surge_kafka_group_topic_lag{group="payment",topic="order-placed"}"#;
        for (metric_type, name, target_type, target, current, proposed, deciding) in [
            ("resource", "cpu", "utilization", 0.7, 0.9, 13.0, 0.0),
            ("external", lag, "average_value", 300.0, 4200.0, 140.0, 1.0),
        ] {
            let metric = labels(&[
                ("namespace", "shop"),
                ("hpa", "payment"),
                ("workload", "payment"),
                ("metric_type", metric_type),
                ("metric_name", name),
            ]);
            let mut typed = metric.clone();
            typed.insert("target_type".into(), target_type.into());
            m.insert(hpa::METRIC_TARGET.exposed, typed.clone(), target);
            m.insert(hpa::METRIC_CURRENT.exposed, typed, current);
            m.insert(hpa::METRIC_PROPOSED.exposed, metric.clone(), proposed);
            m.insert(hpa::METRIC_DECIDING.exposed, metric, deciding);
        }
        m.insert(
            postgres::IS_REPLICA.exposed,
            labels(&[("target", "replica1")]),
            1.0,
        );
        m.insert(
            postgres::REPLAY_LAG_SECONDS.exposed,
            labels(&[("target", "replica1")]),
            4.0,
        );
        for (pod, used, limit) in [("payment-a", 200.0, 512.0), ("payment-b", 470.0, 512.0)] {
            let l = labels(&[("namespace", "shop"), ("workload", "payment"), ("pod", pod)]);
            m.insert(workload::POD_MEMORY_WORKING_SET.exposed, l.clone(), used);
            m.insert(workload::POD_MEMORY_LIMIT.exposed, l, limit);
        }
        m.insert(workload::MEMORY_UTILIZATION.exposed, w, 1.31);
        for (target, database, state, n) in [
            ("replica1", "shop", "idle", 40.0),
            ("replica1", "shop", "idle_in_transaction", 2.0),
            ("replica1", "shop", "idle_in_transaction_aborted", 1.0),
            ("replica1", "postgres", "active", 1.0),
            ("primary", "shop", "active", 10.0),
        ] {
            let l = labels(&[("target", target), ("database", database), ("state", state)]);
            m.insert(postgres::CONNECTIONS.exposed, l, n);
        }
        m.insert(
            postgres::IS_REPLICA.exposed,
            labels(&[("target", "primary")]),
            0.0,
        );
        for target in ["replica1", "primary"] {
            let l = labels(&[("target", target)]);
            m.insert(postgres::MAX_CONNECTIONS.exposed, l.clone(), 100.0);
            m.insert(postgres::RESERVED_CONNECTIONS.exposed, l, 4.0);
        }
        m
    }

    #[test]
    fn services_join_hpa_cpu_kafka_and_db() {
        let store = from_prometheus(shop_metrics());
        let s = &store.derived.services[0];
        assert_eq!(
            (s.workload.as_str(), s.headroom, s.saturated),
            ("payment", Some(0.0), true)
        );
        let k = s.kafka.as_ref().map(|k| (k.state_label(), k.lag, k.eta));
        assert_eq!(k, Some(("draining", Some(1500.0), Some(120.0))));
        assert_eq!(s.db.replica_lag_seconds, Some(4.0));
        // Scaling: the lag decides (listed first), CPU second; the group's topic has 12
        // partitions.
        let on: Vec<(&str, bool, Option<f64>)> = s
            .scaling
            .iter()
            .map(|m| (m.short_name(), m.deciding, m.proposed))
            .collect();
        assert_eq!(on, [("lag", true, Some(140.0)), ("cpu", false, Some(13.0))]);
        assert_eq!(s.deciding().map(|m| m.current), Some(Some(4200.0)));
        assert_eq!(s.partitions, Some(12.0));
        // Memory: the HPA ratio as given; the worst pod's share of its limit.
        assert_eq!(s.memory, Some(1.31));
        assert_eq!(s.memory_of_limit, Some(470.0 / 512.0));
        // Connections: replica1 holds 44 of 96 ordinary slots, the busier server.
        assert_eq!(s.db.connection_use, Some(44.0 / 96.0));
        let replica = &store.derived.servers[1];
        assert_eq!(replica.target, "replica1");
        assert_eq!(
            (replica.connections, replica.idle_in_transaction),
            (Some(44.0), Some(3.0))
        );
        let pods = store.pods("shop", "payment");
        assert_eq!(pods.len(), 2);
        assert_eq!(pods[1].memory_of_limit(), Some(470.0 / 512.0));
        assert_eq!(s.forecast, Forecast::Now);
        assert_eq!(store.derived.servers[1].role, Role::Replica);
        assert_eq!(store.derived.servers[0].role, Role::Primary);
    }

    #[test]
    fn an_exporter_beside_the_prometheus_that_scrapes_it_shows_each_series_once() {
        let mut store = Store::new(30.0);
        // Prometheus adds job and instance to what the exporter exposes.
        let mut scraped = Metrics::default();
        let original = shop_metrics();
        for name in original.names() {
            {
                for p in original.points(name) {
                    let mut labels = p.labels.clone();
                    labels.insert("job".into(), "surge-exporter".into());
                    labels.insert("instance".into(), "127.0.0.1:9187".into());
                    scraped.insert(name, labels, p.value);
                }
            }
        }
        let mut direct = shop_metrics();
        // A server only the exporter sees (Prometheus does not scrape it) stays.
        let mut extra = Labels::new();
        extra.insert("target".into(), "replica9".into());
        direct.insert(postgres::IS_REPLICA.exposed, extra, 1.0);
        for (source, metrics) in [
            ("prometheus", scraped),
            ("exporter 127.0.0.1:9187", direct.clone()),
            // Exporters are not folded into each other: a second one with the same names
            // may be another cluster.
            ("exporter 127.0.0.1:9188", direct),
        ] {
            store.apply(
                Update::Metrics {
                    source: source.into(),
                    metrics,
                    at: 100.0,
                },
                100.0,
            );
        }
        let targets = |store: &Store| -> Vec<String> {
            store
                .metrics
                .points(postgres::IS_REPLICA.exposed)
                .iter()
                .map(|p| p.label("target").to_string())
                .collect()
        };
        let mut seen = targets(&store);
        seen.sort();
        let mut expected: Vec<String> = shop_metrics()
            .points(postgres::IS_REPLICA.exposed)
            .iter()
            .map(|p| p.label("target").to_string())
            .collect();
        assert!(!expected.is_empty());
        // Prometheus' copy of each (both exporters' copies are covered by it), and replica9
        // from each exporter.
        expected.extend(["replica9".to_string(), "replica9".to_string()]);
        expected.sort();
        assert_eq!(seen, expected);
    }

    #[test]
    fn a_service_with_no_pods_left_keeps_its_row_and_its_stalled_consumers() {
        use surge_metrics::catalogue::workload::PODS;
        let mut m = Metrics::default();
        for state in ["counted", "unready", "missing_metrics", "excluded"] {
            m.insert(
                PODS.exposed,
                labels(&[
                    ("namespace", "shop"),
                    ("workload", "payment"),
                    ("state", state),
                ]),
                0.0,
            );
        }
        let gt = [
            ("cluster", "shop"),
            ("group", "payment"),
            ("topic", "order-placed"),
        ];
        m.insert(kafka::TOPIC_LAG.exposed, labels(&gt), 420.0);
        let mut state = gt.to_vec();
        state.push(("state", "stalled"));
        m.insert(kafka::LAG_STATE.exposed, labels(&state), 1.0);
        let store = from_prometheus(m);
        let rows = &store.derived.services;
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert_eq!(rows[0].cpu, None);
        assert_eq!(verdict(&rows[0]), Verdict::ConsumersStalled);
    }

    #[test]
    fn dead_letter_topics_follow_the_teams_naming() {
        assert_eq!(dead_letter_topics(&[], "orders"), ["orders.dlq"]);
        assert_eq!(
            dead_letter_topics(&["{topic}.DLT".into(), "dlq-{topic}".into()], "orders"),
            ["orders.DLT", "dlq-orders"]
        );
    }

    /// A paused replica makes "replica behind" only the services that use it: seen by their
    /// connections' application_name, or as configured; unknown usage judges on all.
    #[test]
    fn a_service_is_judged_on_the_database_servers_it_uses() {
        use surge_metrics::catalogue::postgres::{
            CLIENT_CONNECTIONS, IS_REPLICA, REPLAY_LAG_SECONDS,
        };
        let mut m = Metrics::default();
        for (name, cpu) in [("auth", 0.3), ("shipping", 0.3), ("catalog", 0.3)] {
            let hpa = labels(&[("namespace", "shop"), ("workload", name), ("hpa", name)]);
            m.insert(hpa::CURRENT.exposed, hpa.clone(), 2.0);
            m.insert(hpa::DESIRED.exposed, hpa.clone(), 2.0);
            m.insert(hpa::MAX.exposed, hpa, 10.0);
            m.insert(
                workload::CPU_UTILIZATION.exposed,
                labels(&[("namespace", "shop"), ("workload", name)]),
                cpu,
            );
        }
        for (target, replica, lag) in [
            ("primary", 0.0, None),
            ("replica1", 1.0, Some(0.2)),
            ("replica2", 1.0, Some(95.0)),
        ] {
            m.insert(IS_REPLICA.exposed, labels(&[("target", target)]), replica);
            if let Some(lag) = lag {
                m.insert(
                    REPLAY_LAG_SECONDS.exposed,
                    labels(&[("target", target)]),
                    lag,
                );
            }
        }
        for (target, application) in [
            ("primary", "auth"),
            ("replica1", "auth"),
            ("replica2", "shipping"),
        ] {
            m.insert(
                CLIENT_CONNECTIONS.exposed,
                labels(&[("target", target), ("application", application)]),
                3.0,
            );
        }
        let mut store = from_prometheus(m);
        let verdicts = |store: &Store| -> Vec<(String, Verdict)> {
            store
                .derived()
                .services
                .iter()
                .map(|s| (s.workload.clone(), verdict(s)))
                .collect()
        };
        assert_eq!(
            verdicts(&store),
            [
                ("auth".into(), Verdict::KeepingUp),
                // Nothing says which servers catalog uses: the worst of all.
                ("catalog".into(), Verdict::ReplicaBehind { seconds: 95.0 }),
                ("shipping".into(), Verdict::ReplicaBehind { seconds: 95.0 }),
            ]
        );
        store.set_service_databases(BTreeMap::from([
            ("catalog".to_string(), vec!["replica1".to_string()]),
            ("shipping".to_string(), vec!["primary".to_string()]),
        ]));
        store.rebuild(100.0);
        assert_eq!(
            verdicts(&store),
            [
                ("auth".into(), Verdict::KeepingUp),
                ("catalog".into(), Verdict::KeepingUp),
                ("shipping".into(), Verdict::KeepingUp),
            ]
        );
    }

    #[test]
    fn alerts_about_a_service_by_label_group_or_dead_letter_topic() {
        let alert = |name: &str, severity: &str, pairs: &[(&str, &str)], muted: bool| Alert {
            name: name.into(),
            state: AlertState::Firing,
            severity: severity.into(),
            labels: labels(pairs),
            summary: String::new(),
            description: String::new(),
            runbook: String::new(),
            active_at: None,
            muted,
        };
        let mut row = ServiceRow {
            namespace: "shop".into(),
            workload: "payment".into(),
            ..ServiceRow::default()
        };
        row.kafka = Some(GroupRow {
            group: "payment".into(),
            topic: "order-placed".into(),
            ..GroupRow::default()
        });
        let alerts = vec![
            alert(
                "ServiceErrorsHigh",
                "page",
                &[("namespace", "shop"), ("service", "payment")],
                false,
            ),
            alert(
                "KafkaDeadLetterReceiving",
                "warning",
                &[("topic", "order-placed.dlq")],
                false,
            ),
            alert(
                "KafkaConsumerLagGrowing",
                "page",
                &[("group", "payment")],
                true,
            ),
            alert(
                "ServiceErrorsHigh",
                "page",
                &[("namespace", "other"), ("service", "payment")],
                false,
            ),
            alert(
                "ServiceCPUHigh",
                "warning",
                &[("namespace", "shop"), ("workload", "auth")],
                false,
            ),
        ];
        // A team whose dead letters go to Spring's `{topic}.DLT`: the shop's `.dlq` is not its.
        let spring = about(
            &row,
            &BTreeMap::new(),
            &["{topic}.DLT".to_string()],
            &alerts,
        );
        assert!(
            !spring.iter().any(|a| a.name == "KafkaDeadLetterReceiving"),
            "{spring:?}"
        );
        let found = about(&row, &BTreeMap::new(), &[], &alerts);
        let names: Vec<(&str, bool)> = found.iter().map(|a| (a.name.as_str(), a.page)).collect();
        assert_eq!(
            names,
            [
                ("ServiceErrorsHigh", true),
                ("KafkaDeadLetterReceiving", false)
            ],
            "muted, other namespaces and other services are left out"
        );
        row.alerts = found;
        assert_eq!(
            verdict(&row),
            Verdict::Alerting {
                alert: "ServiceErrorsHigh".into(),
                page: true
            }
        );
    }

    #[test]
    fn a_consumer_whose_kafka_numbers_go_missing_has_its_lag_unknown() {
        let mut store = Store::new(30.0);
        let metrics = |kafka_up: bool| {
            let all = shop_metrics();
            let mut m = Metrics::default();
            // A failing collector's series are missing, not frozen.
            for name in all.names() {
                if kafka_up || !name.starts_with("surge_kafka_") {
                    for p in all.points(name) {
                        m.insert(name, p.labels.clone(), p.value);
                    }
                }
            }
            m.insert(
                exporter::SOURCE_UP.exposed,
                labels(&[("source", "kafka"), ("target", "shop")]),
                if kafka_up { 1.0 } else { 0.0 },
            );
            m
        };
        for (at, kafka_up) in [(100.0, true), (101.0, false)] {
            store.apply(
                Update::Metrics {
                    source: "prometheus".into(),
                    metrics: metrics(kafka_up),
                    at,
                },
                at,
            );
            let row = &store.derived.services[0];
            assert_eq!(row.kafka.is_some(), kafka_up);
            assert_eq!(row.kafka_unknown, !kafka_up, "at {at}");
            assert_eq!(row.db.primary, Some(true));
        }
        // A service never seen consuming is not blind to Kafka.
        let mut fresh = Store::new(30.0);
        fresh.apply(
            Update::Metrics {
                source: "prometheus".into(),
                metrics: metrics(false),
                at: 100.0,
            },
            100.0,
        );
        assert!(!fresh.derived.services[0].kafka_unknown);
    }

    #[test]
    fn failures_keep_data_and_mark_the_source_stale() {
        let mut store = from_prometheus(shop_metrics());
        store.apply(
            Update::Failed {
                source: "prometheus".into(),
                error: "connection refused".into(),
            },
            110.0,
        );
        assert_eq!(store.derived.services.len(), 1, "last data kept");
        assert!(
            store.derived.services[0].stale,
            "the kept row is marked stale"
        );
        let sources = store.sources(110.0);
        assert!(sources[0].stale);
        assert_eq!(sources[0].age, Some(10.0));
        // Silent for longer than stale_after also counts.
        let mut quiet = Store::new(30.0);
        quiet.apply(
            Update::Metrics {
                source: "x".into(),
                metrics: Metrics::default(),
                at: 0.0,
            },
            0.0,
        );
        assert!(quiet.sources(31.0)[0].stale);
        assert!(!quiet.sources(29.0)[0].stale);
    }
}
