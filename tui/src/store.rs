//! The state store: the latest data from every source, its history, and the rows the views
//! show, derived once per update. Plain data: unit-tested without a terminal or a network.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::model::{
    Alert, AlertState, Health, History, Labels, Metrics, Point, RangeSeries, Silence,
};

/// Metrics whose history the views draw.
pub const HISTORY_METRICS: [&str; 6] = [
    "surge_workload_cpu_utilization_ratio",
    "surge_source_errors_total",
    "surge_hpa_current_replicas",
    "surge_kafka_group_topic_lag",
    "surge_postgres_replay_lag_seconds",
    "surge_postgres_replica_lag_bytes",
];

/// The always-firing dead man's switch (alerts/rules.yml).
pub const WATCHDOG: &str = "Watchdog";

/// Seconds of CPU × replicas history the time-to-max forecast fits.
pub const FORECAST_WINDOW: f64 = 900.0;

/// History key of the alert timeline (Prometheus' own `ALERTS` series).
pub const ALERTS: &str = "ALERTS";

/// The labels that identify an alert on the timeline: all but Prometheus' `alertstate`.
pub fn timeline_key(alert: &Alert) -> Labels {
    let mut labels = alert.labels.clone();
    labels.remove("alertstate");
    labels
}

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

/// One row of the Overview: a scaled service.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ServiceRow {
    pub namespace: String,
    pub workload: String,
    pub current: Option<f64>,
    pub desired: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub cpu: Option<f64>,
    pub target: Option<f64>,
    pub cpu_history: Vec<(f64, f64)>,
    pub scaling_limited: bool,
    pub able_to_scale: Option<bool>,
    /// Replicas left before max.
    pub headroom: Option<f64>,
    /// At max replicas and above target: cannot scale further.
    pub saturated: bool,
    pub kafka: Option<GroupRow>,
    pub db_lag_seconds: Option<f64>,
    pub pods_without_request: f64,
    pub forecast: Forecast,
}

/// When the HPA would run out of replicas at the current CPU trend.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Forecast {
    /// Not enough history, or no HPA.
    #[default]
    Unknown,
    /// Demand is flat or falling.
    NotRising,
    /// Demand moves, but not along a line (R² < 0.5): no honest projection.
    NoTrend,
    /// Already needs more than max.
    Now,
    /// Seconds until demand needs max replicas.
    In(f64),
}

/// A consumer group on a topic.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GroupRow {
    pub cluster: String,
    pub group: String,
    pub topic: String,
    pub lag: Option<f64>,
    pub lag_seconds: Option<f64>,
    pub lower_bound: bool,
    pub state: String,
    pub consume_rate: Option<f64>,
    pub produce_rate: Option<f64>,
    pub eta: Option<f64>,
    pub members: Option<f64>,
    pub group_state: String,
    pub history: Vec<(f64, f64)>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct PartitionRow {
    pub partition: String,
    pub committed: Option<f64>,
    pub log_end: Option<f64>,
    pub lag: Option<f64>,
    pub has_commit: bool,
}

/// A PostgreSQL server as surge-exporter sees it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ServerRow {
    pub target: String,
    /// `primary`, `replica`, or `down`.
    pub role: String,
    pub receiver_streaming: Option<bool>,
    pub replay_lag_seconds: Option<f64>,
    pub replay_lag_bytes: Option<f64>,
    pub receive_lag_bytes: Option<f64>,
    pub paused: bool,
    pub history: Vec<(f64, f64)>,
}

/// A standby as its primary sees it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StandbyRow {
    pub primary: String,
    pub replica: String,
    pub streaming: bool,
    pub lag_bytes: Option<f64>,
    pub replay_seconds: Option<f64>,
    pub history: Vec<(f64, f64)>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct SlotRow {
    pub target: String,
    pub slot: String,
    pub active: bool,
    pub retained_bytes: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct PodRow {
    pub pod: String,
    pub ready: bool,
    pub cpu_cores: Option<f64>,
    pub request_cores: Option<f64>,
}

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

#[derive(Debug, Default)]
pub struct Store {
    /// Every source's latest instant values, side by side.
    pub metrics: Metrics,
    by_source: BTreeMap<String, Metrics>,
    pub history: History,
    pub prometheus_alerts: Vec<Alert>,
    pub alertmanager_alerts: Vec<Alert>,
    pub silences: Vec<Silence>,
    pub health: BTreeMap<String, Health>,
    pub notice: Option<String>,
    /// Unix seconds of the last data received.
    pub last_update: Option<f64>,
    pub derived: Derived,
    /// Kafka group names that belong to a service, beyond the same-name default.
    pub service_groups: BTreeMap<String, Vec<String>>,
    /// A source is stale after this many seconds without a good fetch.
    pub stale_after: f64,
    /// Utilization at which ServiceCPUHigh fires, from the loaded rules when known.
    pub cpu_alert: Option<f64>,
    /// Rules loaded in Prometheus, and how many failed their last evaluation.
    pub rules: Option<(usize, usize)>,
    /// Seconds of history the sparklines show (5m, 1h, 6h).
    pub range: f64,
    /// Prometheus gave the alert timeline (`ALERTS`); stop recording our own sightings.
    alert_history_from_prometheus: bool,
}

impl Store {
    pub fn new(stale_after: f64) -> Self {
        Store {
            stale_after,
            range: 300.0,
            ..Default::default()
        }
    }

    /// Apply one update at `now`, then rebuild the derived rows.
    pub fn apply(&mut self, update: Update, now: f64) {
        self.absorb(update, now);
        self.history.trim(now - 6.0 * 3600.0);
        self.rebuild(now);
    }

    /// Apply every update, rebuilding once.
    pub fn apply_all(&mut self, updates: Vec<Update>, now: f64) {
        for update in updates {
            self.absorb(update, now);
        }
        self.history.trim(now - 6.0 * 3600.0);
        self.rebuild(now);
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
                for name in HISTORY_METRICS {
                    for point in metrics.points(name) {
                        self.history.push(
                            (name.to_string(), point.labels.clone()),
                            at,
                            point.value,
                        );
                    }
                }
                self.by_source.insert(source.clone(), metrics);
                self.metrics = Metrics::default();
                for m in self.by_source.values() {
                    self.metrics.append(m);
                }
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
            } => {
                self.cpu_alert = cpu_alert;
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
                        self.history
                            .push((ALERTS.to_string(), timeline_key(a)), now, 1.0);
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
            Update::Failed { source, error } => {
                let entry = self.health.entry(source).or_default();
                entry.error = Some(error);
            }
            Update::Notice(text) => self.notice = Some(text),
        }
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
    pub fn age_of(&self, metric: &str, now: f64) -> Option<(f64, bool)> {
        self.by_source
            .iter()
            .filter(|(_, m)| !m.points(metric).is_empty())
            .filter_map(|(source, _)| {
                let health = self.health.get(source.split('/').next()?)?;
                let age = (now - health.last_ok?).max(0.0);
                Some((age, health.error.is_some() || age > self.stale_after))
            })
            .min_by(|a, b| a.0.total_cmp(&b.0))
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
            .points("surge_source_up")
            .iter()
            .filter(|p| p.value < 1.0)
            .map(|p| {
                let (source, target) = (p.label("source"), p.label("target"));
                let last = self
                    .metrics
                    .value(
                        "surge_source_last_success_timestamp_seconds",
                        &[("source", source), ("target", target)],
                    )
                    .filter(|t| *t > 0.0)
                    .map(|t| (now - t).max(0.0));
                (source.to_string(), target.to_string(), last)
            })
            .collect()
    }

    /// Pods of one workload (service detail).
    pub fn pods(&self, namespace: &str, workload: &str) -> Vec<PodRow> {
        let want = [("namespace", namespace), ("workload", workload)];
        let mut rows: BTreeMap<String, PodRow> = BTreeMap::new();
        for p in self.metrics.points("surge_pod_ready") {
            if want
                .iter()
                .all(|(k, v)| p.labels.get(*k).map(String::as_str) == Some(*v))
                && let Some(pod) = p.labels.get("pod")
            {
                let row = rows.entry(pod.clone()).or_default();
                row.pod = pod.clone();
                row.ready = p.value >= 1.0;
            }
        }
        for (metric, set) in [
            ("surge_pod_cpu_usage_cores", 0),
            ("surge_pod_cpu_request_cores", 1),
        ] {
            for p in self.metrics.points(metric) {
                if !want
                    .iter()
                    .all(|(k, v)| p.labels.get(*k).map(String::as_str) == Some(*v))
                {
                    continue;
                }
                let Some(pod) = p.labels.get("pod") else {
                    continue;
                };
                let row = rows.entry(pod.clone()).or_default();
                row.pod = pod.clone();
                if set == 0 {
                    row.cpu_cores = Some(p.value);
                } else {
                    row.request_cores = Some(p.value);
                }
            }
        }
        rows.into_values().collect()
    }

    /// Partitions of one group on one topic (Kafka drill-in).
    pub fn partitions(&self, group: &str, topic: &str) -> Vec<PartitionRow> {
        let want = [("group", group), ("topic", topic)];
        let mut rows: BTreeMap<i64, PartitionRow> = BTreeMap::new();
        for metric in [
            "surge_kafka_group_has_commit",
            "surge_kafka_group_committed_offset",
            "surge_kafka_group_lag",
        ] {
            for p in self.metrics.points(metric) {
                if !want
                    .iter()
                    .all(|(k, v)| p.labels.get(*k).map(String::as_str) == Some(*v))
                {
                    continue;
                }
                let Some(partition) = p.labels.get("partition") else {
                    continue;
                };
                let n = partition.parse().unwrap_or(i64::MAX);
                let row = rows.entry(n).or_default();
                row.partition = partition.clone();
                match metric {
                    "surge_kafka_group_has_commit" => row.has_commit = p.value >= 1.0,
                    "surge_kafka_group_committed_offset" => row.committed = Some(p.value),
                    _ => row.lag = Some(p.value),
                }
                row.log_end = self.metrics.value(
                    "surge_kafka_partition_log_end_offset",
                    &[("topic", topic), ("partition", partition)],
                );
            }
        }
        rows.into_values().collect()
    }

    /// Show `seconds` of history.
    pub fn set_range(&mut self, seconds: f64, now: f64) {
        self.range = seconds;
        self.rebuild(now);
    }

    /// Rebuild the rows (for a new `now` without new data, e.g. ages).
    pub fn rebuild(&mut self, now: f64) {
        let range = self.range;
        let groups = self.groups(range, now);
        let servers = self.servers(range, now);
        let worst_replica = servers
            .iter()
            .filter(|s| s.role == "replica")
            .filter_map(|s| s.replay_lag_seconds)
            .fold(None, |acc: Option<f64>, v| {
                Some(acc.map_or(v, |a| a.max(v)))
            });
        let services = self.services(range, &groups, worst_replica, now);
        let standbys = self.standbys(range, now);
        let slots = self.slots();
        let mut alerts = merge_alerts(&self.prometheus_alerts, &self.alertmanager_alerts);
        // The dead man's switch fires by design: it proves the pipeline, it is not a problem.
        let watchdog = alerts
            .iter()
            .any(|a| a.name == WATCHDOG && a.state == AlertState::Firing);
        alerts.retain(|a| a.name != WATCHDOG);
        alerts.sort_by(|a, b| {
            (severity_rank(&a.severity), a.state, &a.name).cmp(&(
                severity_rank(&b.severity),
                b.state,
                &b.name,
            ))
        });
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

    fn services(
        &self,
        range: f64,
        groups: &[GroupRow],
        db_lag: Option<f64>,
        now: f64,
    ) -> Vec<ServiceRow> {
        let mut keys: BTreeSet<(String, String)> = BTreeSet::new();
        for metric in [
            "surge_hpa_current_replicas",
            "surge_workload_cpu_utilization_ratio",
        ] {
            for p in self.metrics.points(metric) {
                if let (Some(ns), Some(w)) = (p.labels.get("namespace"), p.labels.get("workload")) {
                    keys.insert((ns.clone(), w.clone()));
                }
            }
        }
        keys.into_iter()
            .map(|(namespace, workload)| {
                let want = [
                    ("namespace", namespace.as_str()),
                    ("workload", workload.as_str()),
                ];
                let get = |m: &str| self.metrics.value(m, &want);
                let cpu_point = self
                    .metrics
                    .point("surge_workload_cpu_utilization_ratio", &want);
                let cpu = cpu_point.map(|p| p.value);
                let (current, max, target) = (
                    get("surge_hpa_current_replicas"),
                    get("surge_hpa_max_replicas"),
                    get("surge_hpa_target_cpu_utilization_ratio"),
                );
                let cpu_history = cpu_point
                    .map(|p| {
                        self.history.since(
                            "surge_workload_cpu_utilization_ratio",
                            &p.labels,
                            now - range,
                        )
                    })
                    .unwrap_or_default();
                let headroom = current.zip(max).map(|(c, m)| (m - c).max(0.0));
                let saturated =
                    headroom == Some(0.0) && cpu.zip(target).is_some_and(|(c, t)| c > t);
                let service_groups = self
                    .service_groups
                    .get(&workload)
                    .cloned()
                    .unwrap_or_else(|| vec![workload.clone()]);
                // The service's most lagging group-topic.
                let kafka = groups
                    .iter()
                    .filter(|g| service_groups.contains(&g.group))
                    .max_by(|a, b| a.lag.unwrap_or(0.0).total_cmp(&b.lag.unwrap_or(0.0)))
                    .cloned();
                let demand = cpu_point
                    .map(|p| self.demand_history(&p.labels, &want, now - FORECAST_WINDOW))
                    .unwrap_or_default();
                ServiceRow {
                    current,
                    desired: get("surge_hpa_desired_replicas"),
                    min: get("surge_hpa_min_replicas"),
                    max,
                    cpu,
                    target,
                    cpu_history,
                    scaling_limited: get("surge_hpa_scaling_limited").is_some_and(|v| v >= 1.0),
                    able_to_scale: get("surge_hpa_able_to_scale").map(|v| v >= 1.0),
                    headroom,
                    saturated,
                    kafka,
                    db_lag_seconds: db_lag,
                    pods_without_request: get("surge_workload_pods_without_cpu_request")
                        .unwrap_or(0.0),
                    forecast: match (max, target) {
                        (Some(m), Some(t)) => time_to_max(&demand, m, t),
                        _ => Forecast::Unknown,
                    },
                    namespace,
                    workload,
                }
            })
            .collect()
    }

    /// CPU demand over time in "pods at 100% of request": utilization × replicas.
    fn demand_history(
        &self,
        cpu_labels: &Labels,
        want: &[(&str, &str)],
        since: f64,
    ) -> Vec<(f64, f64)> {
        let cpu = self
            .history
            .get("surge_workload_cpu_utilization_ratio", cpu_labels);
        // HPA series carry an `hpa` label (and more): find the one for this workload.
        let replicas = self
            .metrics
            .point("surge_hpa_current_replicas", want)
            .and_then(|p| self.history.get("surge_hpa_current_replicas", &p.labels));
        let (Some(cpu), Some(replicas)) = (cpu, replicas) else {
            return Vec::new();
        };
        cpu.iter()
            .filter(|(t, _)| *t >= since)
            .filter_map(|(t, u)| {
                // The replica count in effect at t: the last one recorded at or before it.
                let r = replicas
                    .iter()
                    .take_while(|(rt, _)| rt <= t)
                    .last()
                    .map(|(_, r)| *r)?;
                Some((*t, u * r))
            })
            .collect()
    }

    fn groups(&self, range: f64, now: f64) -> Vec<GroupRow> {
        const GTOPIC: [&str; 3] = ["cluster", "group", "topic"];
        // One pass per metric, then joins by key: 200 groups cost 200 lookups, not 200 scans.
        let m = &self.metrics;
        let lag_seconds = m.index("surge_kafka_group_topic_lag_seconds", &GTOPIC);
        let lower_bound = m.index("surge_kafka_group_topic_lag_seconds_lower_bound", &GTOPIC);
        let consume = m.index("surge_kafka_group_topic_consume_rate", &GTOPIC);
        let eta = m.index("surge_kafka_group_topic_drain_eta_seconds", &GTOPIC);
        let produce = m.index("surge_kafka_topic_produce_rate", &["cluster", "topic"]);
        let members = m.index("surge_kafka_group_members", &["cluster", "group"]);
        let mut states: HashMap<Vec<&str>, &str> = HashMap::new();
        for p in m
            .points("surge_kafka_group_topic_lag_state")
            .iter()
            .filter(|p| p.value >= 1.0)
        {
            if let (Some(c), Some(g), Some(t), Some(s)) = (
                p.labels.get("cluster"),
                p.labels.get("group"),
                p.labels.get("topic"),
                p.labels.get("state"),
            ) {
                states.insert(vec![c.as_str(), g.as_str(), t.as_str()], s.as_str());
            }
        }
        let mut group_states: HashMap<Vec<&str>, &str> = HashMap::new();
        for p in m
            .points("surge_kafka_group_state")
            .iter()
            .filter(|p| p.value >= 1.0)
        {
            if let (Some(c), Some(g), Some(s)) = (
                p.labels.get("cluster"),
                p.labels.get("group"),
                p.labels.get("state"),
            ) {
                group_states.insert(vec![c.as_str(), g.as_str()], s.as_str());
            }
        }
        let mut rows: BTreeMap<(String, String, String), GroupRow> = BTreeMap::new();
        for p in m.points("surge_kafka_group_topic_lag") {
            let (Some(c), Some(g), Some(t)) = (
                p.labels.get("cluster"),
                p.labels.get("group"),
                p.labels.get("topic"),
            ) else {
                continue;
            };
            let key = vec![c.as_str(), g.as_str(), t.as_str()];
            let value =
                |index: &HashMap<Vec<&str>, &Point>, key: &[&str]| index.get(key).map(|p| p.value);
            rows.insert(
                (c.clone(), g.clone(), t.clone()),
                GroupRow {
                    cluster: c.clone(),
                    group: g.clone(),
                    topic: t.clone(),
                    lag: Some(p.value),
                    lag_seconds: value(&lag_seconds, &key),
                    lower_bound: value(&lower_bound, &key).is_some_and(|v| v >= 1.0),
                    state: states.get(&key).map_or("unknown", |s| s).to_string(),
                    consume_rate: value(&consume, &key),
                    produce_rate: value(&produce, &[c.as_str(), t.as_str()]),
                    eta: value(&eta, &key),
                    members: value(&members, &[c.as_str(), g.as_str()]),
                    group_state: group_states
                        .get(&[c.as_str(), g.as_str()][..])
                        .map_or("", |s| s)
                        .to_string(),
                    history: self.history.since(
                        "surge_kafka_group_topic_lag",
                        &p.labels,
                        now - range,
                    ),
                },
            );
        }
        rows.into_values().collect()
    }

    fn servers(&self, range: f64, now: f64) -> Vec<ServerRow> {
        let mut targets: BTreeSet<String> = BTreeSet::new();
        for p in self.metrics.points("surge_postgres_is_replica") {
            targets.extend(p.labels.get("target").cloned());
        }
        for p in self.metrics.points("surge_source_up") {
            if p.labels.get("source").map(String::as_str) == Some("postgres") {
                targets.extend(p.labels.get("target").cloned());
            }
        }
        targets
            .into_iter()
            .map(|target| {
                let want = [("target", target.as_str())];
                let get = |m: &str| self.metrics.value(m, &want);
                let up = self.metrics.value(
                    "surge_source_up",
                    &[("source", "postgres"), ("target", &target)],
                ) != Some(0.0);
                let role = match (up, get("surge_postgres_is_replica")) {
                    (false, _) | (true, None) => "down",
                    (true, Some(v)) if v >= 1.0 => "replica",
                    _ => "primary",
                };
                let history = self
                    .metrics
                    .point("surge_postgres_replay_lag_seconds", &want)
                    .map(|p| {
                        self.history.since(
                            "surge_postgres_replay_lag_seconds",
                            &p.labels,
                            now - range,
                        )
                    })
                    .unwrap_or_default();
                ServerRow {
                    role: role.into(),
                    receiver_streaming: get("surge_postgres_wal_receiver_streaming")
                        .map(|v| v >= 1.0),
                    replay_lag_seconds: get("surge_postgres_replay_lag_seconds"),
                    replay_lag_bytes: get("surge_postgres_replay_lag_bytes"),
                    receive_lag_bytes: get("surge_postgres_receive_lag_bytes"),
                    paused: get("surge_postgres_replay_paused").is_some_and(|v| v >= 1.0),
                    history,
                    target,
                }
            })
            .collect()
    }

    fn standbys(&self, range: f64, now: f64) -> Vec<StandbyRow> {
        let mut rows = Vec::new();
        for p in self.metrics.points("surge_postgres_replica_streaming") {
            let (Some(primary), Some(replica)) = (p.labels.get("target"), p.labels.get("replica"))
            else {
                continue;
            };
            let want = [("target", primary.as_str()), ("replica", replica.as_str())];
            let lag_labels = p.labels.clone();
            rows.push(StandbyRow {
                primary: primary.clone(),
                replica: replica.clone(),
                streaming: p.value >= 1.0,
                lag_bytes: self
                    .metrics
                    .value("surge_postgres_replica_lag_bytes", &want),
                replay_seconds: self.metrics.value(
                    "surge_postgres_replica_lag_seconds",
                    &[want[0], want[1], ("stage", "replay")],
                ),
                history: self.history.since(
                    "surge_postgres_replica_lag_bytes",
                    &lag_labels,
                    now - range,
                ),
            });
        }
        rows.sort_by(|a, b| (&a.primary, &a.replica).cmp(&(&b.primary, &b.replica)));
        rows
    }

    fn slots(&self) -> Vec<SlotRow> {
        let mut rows: Vec<SlotRow> = self
            .metrics
            .points("surge_postgres_replication_slot_active")
            .iter()
            .filter_map(|p| {
                let (target, slot) = (p.labels.get("target")?, p.labels.get("slot")?);
                Some(SlotRow {
                    target: target.clone(),
                    slot: slot.clone(),
                    active: p.value >= 1.0,
                    retained_bytes: self.metrics.value(
                        "surge_postgres_replication_slot_retained_bytes",
                        &[("target", target), ("slot", slot)],
                    ),
                })
            })
            .collect();
        rows.sort_by(|a, b| (&a.target, &a.slot).cmp(&(&b.target, &b.slot)));
        rows
    }
}

/// Alertmanager knows silences and inhibitions; Prometheus knows pending alerts. Prefer
/// Alertmanager's view of a firing alert, add Prometheus-only alerts (pending, or when no
/// Alertmanager is configured).
pub fn merge_alerts(prometheus: &[Alert], alertmanager: &[Alert]) -> Vec<Alert> {
    let mut out: Vec<Alert> = alertmanager.to_vec();
    for a in prometheus {
        let known = out.iter().any(|b| b.labels == a.labels && b.name == a.name);
        if !known {
            out.push(a.clone());
        }
    }
    out
}

fn severity_rank(severity: &str) -> u8 {
    match severity {
        "page" | "critical" => 0,
        "warning" => 1,
        "info" => 2,
        _ => 3,
    }
}

/// Seconds until demand (in pods at 100% of request) needs `max` replicas at `target`
/// utilization, from a least-squares trend of `demand`. Needs points spanning a minute.
pub fn time_to_max(demand: &[(f64, f64)], max: f64, target: f64) -> Forecast {
    let (Some(first), Some(last)) = (demand.first(), demand.last()) else {
        return Forecast::Unknown;
    };
    if target <= 0.0 {
        return Forecast::Unknown;
    }
    let capacity = max * target;
    if last.1 > capacity {
        return Forecast::Now;
    }
    if demand.len() < 3 || last.0 - first.0 < 60.0 {
        return Forecast::Unknown;
    }
    let n = demand.len() as f64;
    let mean_t = demand.iter().map(|(t, _)| t).sum::<f64>() / n;
    let mean_d = demand.iter().map(|(_, d)| d).sum::<f64>() / n;
    let cov: f64 = demand
        .iter()
        .map(|(t, d)| (t - mean_t) * (d - mean_d))
        .sum();
    let var: f64 = demand.iter().map(|(t, _)| (t - mean_t).powi(2)).sum();
    if var <= 0.0 {
        return Forecast::Unknown;
    }
    let slope = cov / var;
    if slope <= 0.0 {
        return Forecast::NotRising;
    }
    let var_d: f64 = demand.iter().map(|(_, d)| (d - mean_d).powi(2)).sum();
    let r_squared = if var_d > 0.0 {
        cov * cov / (var * var_d)
    } else {
        0.0
    };
    if r_squared < 0.5 {
        return Forecast::NoTrend;
    }
    // Project from the fitted value now, not the last noisy sample.
    let fitted_now = mean_d + slope * (last.0 - mean_t);
    Forecast::In(((capacity - fitted_now) / slope).max(0.0))
}

/// Per-second rate of a counter over its history (resets handled like Prometheus).
pub fn counter_rate(points: &[(f64, f64)]) -> Option<f64> {
    let (first, last) = (points.first()?, points.last()?);
    let span = last.0 - first.0;
    if span <= 0.0 {
        return None;
    }
    let mut increase = 0.0;
    for w in points.windows(2) {
        let delta = w[1].1 - w[0].1;
        // A drop is a counter reset: everything after it is new increase.
        increase += if delta >= 0.0 { delta } else { w[1].1 };
    }
    Some(increase / span)
}

/// Alerts firing (not muted) right now, for banners and snapshots.
pub fn firing(alerts: &[Alert]) -> impl Iterator<Item = &Alert> {
    alerts
        .iter()
        .filter(|a| a.state == AlertState::Firing && !a.muted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect()
    }

    #[test]
    fn forecast_from_a_rising_demand() {
        // Demand grows 0.01 pods/s from 3.0; capacity at max 10 × 0.7 = 7.0 → 400 s away.
        let demand: Vec<(f64, f64)> = (0..=10)
            .map(|i| (i as f64 * 10.0, 3.0 + i as f64 * 0.1))
            .collect();
        match time_to_max(&demand, 10.0, 0.7) {
            Forecast::In(s) => assert!((s - 300.0).abs() < 1e-6, "{s}"),
            other => panic!("{other:?}"),
        }
        let flat: Vec<(f64, f64)> = (0..=10).map(|i| (i as f64 * 10.0, 3.0)).collect();
        assert_eq!(time_to_max(&flat, 10.0, 0.7), Forecast::NotRising);
        assert_eq!(time_to_max(&[(0.0, 8.0)], 10.0, 0.7), Forecast::Now);
        assert_eq!(time_to_max(&demand[..2], 10.0, 0.7), Forecast::Unknown);
        // A spike then quiet: rising on average, but no line to project along.
        let spiky: Vec<(f64, f64)> = (0..=10)
            .map(|i| (i as f64 * 10.0, if i == 8 { 6.0 } else { 1.0 }))
            .collect();
        assert_eq!(time_to_max(&spiky, 10.0, 0.7), Forecast::NoTrend);
    }

    #[test]
    fn counter_rate_handles_resets() {
        assert_eq!(counter_rate(&[(0.0, 10.0), (10.0, 30.0)]), Some(2.0));
        // Reset to 5 after 30: increase 20 + 5 over 20 s.
        assert_eq!(
            counter_rate(&[(0.0, 10.0), (10.0, 30.0), (20.0, 5.0)]),
            Some(1.25)
        );
        assert_eq!(counter_rate(&[(0.0, 1.0)]), None);
    }

    fn shop_metrics() -> Metrics {
        let mut m = Metrics::default();
        let w = labels(&[("namespace", "shop"), ("workload", "payment")]);
        let hpa = labels(&[
            ("namespace", "shop"),
            ("workload", "payment"),
            ("hpa", "payment"),
        ]);
        m.insert("surge_workload_cpu_utilization_ratio", w.clone(), 0.9);
        m.insert("surge_hpa_current_replicas", hpa.clone(), 10.0);
        m.insert("surge_hpa_max_replicas", hpa.clone(), 10.0);
        m.insert("surge_hpa_target_cpu_utilization_ratio", hpa, 0.7);
        let gt = labels(&[
            ("cluster", "shop"),
            ("group", "payment"),
            ("topic", "order-placed"),
        ]);
        m.insert("surge_kafka_group_topic_lag", gt.clone(), 1500.0);
        let mut st = gt.clone();
        st.insert("state".into(), "draining".into());
        m.insert("surge_kafka_group_topic_lag_state", st, 1.0);
        m.insert("surge_kafka_group_topic_drain_eta_seconds", gt, 120.0);
        m.insert(
            "surge_postgres_is_replica",
            labels(&[("target", "replica1")]),
            1.0,
        );
        m.insert(
            "surge_postgres_replay_lag_seconds",
            labels(&[("target", "replica1")]),
            4.0,
        );
        m
    }

    #[test]
    fn services_join_hpa_cpu_kafka_and_db() {
        let mut store = Store::new(30.0);
        store.apply(
            Update::Metrics {
                source: "prometheus".into(),
                metrics: shop_metrics(),
                at: 100.0,
            },
            100.0,
        );
        let s = &store.derived.services[0];
        assert_eq!(
            (s.workload.as_str(), s.headroom, s.saturated),
            ("payment", Some(0.0), true)
        );
        let k = s.kafka.as_ref().map(|k| (k.state.as_str(), k.lag, k.eta));
        assert_eq!(k, Some(("draining", Some(1500.0), Some(120.0))));
        assert_eq!(s.db_lag_seconds, Some(4.0));
        assert_eq!(s.forecast, Forecast::Now);
        assert_eq!(store.derived.servers[0].role, "replica");
    }

    #[test]
    fn failures_keep_data_and_mark_the_source_stale() {
        let mut store = Store::new(30.0);
        store.apply(
            Update::Metrics {
                source: "prometheus".into(),
                metrics: shop_metrics(),
                at: 100.0,
            },
            100.0,
        );
        store.apply(
            Update::Failed {
                source: "prometheus".into(),
                error: "connection refused".into(),
            },
            110.0,
        );
        assert_eq!(store.derived.services.len(), 1, "last data kept");
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

    #[test]
    fn alertmanager_view_wins_and_pending_come_from_prometheus() {
        let alert = |name: &str, state: AlertState, muted: bool| Alert {
            name: name.into(),
            state,
            severity: "page".into(),
            labels: labels(&[("alertname", name)]),
            summary: String::new(),
            description: String::new(),
            runbook: String::new(),
            active_at: None,
            muted,
        };
        let merged = merge_alerts(
            &[
                alert("A", AlertState::Firing, false),
                alert("B", AlertState::Pending, false),
            ],
            &[alert("A", AlertState::Firing, true)],
        );
        assert_eq!(merged.len(), 2);
        assert!(merged.iter().any(|a| a.name == "A" && a.muted));
        assert_eq!(firing(&merged).count(), 0);
    }
}
