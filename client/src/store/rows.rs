//! The rows each view lists, derived from the latest instant values and history: services
//! (HPA × CPU × memory × Kafka × database), consumer groups, PostgreSQL servers, standbys
//! and slots, and on demand a workload's pods and a group's partitions.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use surge_metrics::state::{ConnectionState, GroupState, LagState, MetricType, TargetType};
use surge_metrics::{Family, catalogue};

use super::forecast::{FORECAST_WINDOW, Forecast, time_to_max};
use crate::fetch::signals::DERIVED_LABEL;
use crate::model::{History, Labels, Metrics, Point};

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
    /// Memory working set over requests (HPA arithmetic).
    pub memory: Option<f64>,
    /// The largest share of its memory limit any pod of the service holds.
    pub memory_of_limit: Option<f64>,
    pub db: Database,
    pub pods_without_request: f64,
    /// Alerts firing about this service, not muted (filled in by the store from the alerts).
    pub alerts: Vec<ServiceAlert>,
    /// Pods the workload runs (by `surge_workload_pods`, the excluded ones left out), for
    /// services without an HPA to report replicas.
    pub pods: Option<f64>,
    /// Every metric the service's HPA scales on, the one it follows first.
    pub scaling: Vec<ScalingMetric>,
    /// The database servers it uses (configured, or seen by its connections'
    /// `application_name`); `None`: not known, judged on all of them.
    pub db_servers: Option<BTreeSet<String>>,
    /// Partitions of the topic its consumer group reads (the most consumers that do work).
    pub partitions: Option<f64>,
    pub forecast: Forecast,
    /// Its numbers come from a stale source (failing, or silent too long): the last known.
    pub stale: bool,
    /// It consumes from Kafka, and the exporter's Kafka source is down: its lag is unknown.
    pub kafka_unknown: bool,
    /// Its CPU ratio is derived from other exporters' series (see the signal rules).
    pub cpu_derived: bool,
    /// The lines it is judged by (filled in by the store from the rules and config).
    pub lines: super::Lines,
}

/// An alert about a service.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceAlert {
    pub name: String,
    /// It pages (severity `page` or `critical`).
    pub page: bool,
}

/// One metric an HPA scales on, as the HPA (or the local autoscaler) reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct ScalingMetric {
    pub metric_type: Option<MetricType>,
    /// `cpu`, or a metric with its selector (`surge_kafka_group_topic_lag{group="payment",...}`).
    pub name: String,
    pub target_type: Option<TargetType>,
    pub target: f64,
    pub current: Option<f64>,
    /// Replicas this metric alone asks for.
    pub proposed: Option<f64>,
    /// The HPA follows this one (its proposal is the largest).
    pub deciding: bool,
}

impl ScalingMetric {
    /// A short name: `cpu`, `lag` for a consumer group's lag, else the metric's name.
    pub fn short_name(&self) -> &str {
        let base = self.name.split('{').next().unwrap_or_default();
        // What an HPA scales consumers on, raw or the scalable share (stalled partitions out,
        // each capped), is the group's lag to the reader.
        if base == catalogue::kafka::TOPIC_LAG.exposed
            || base == catalogue::kafka::SCALABLE_LAG.exposed
        {
            "lag"
        } else {
            base
        }
    }
}

impl ServiceRow {
    /// The metric the HPA follows, if it reported one.
    pub fn deciding(&self) -> Option<&ScalingMetric> {
        self.scaling.iter().find(|m| m.deciding)
    }
}

/// What every service depends on in PostgreSQL, at its worst across servers.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Database {
    /// The most lagging replica's replay lag.
    pub replica_lag_seconds: Option<f64>,
    /// The busiest server's share of its connection slots.
    pub connection_use: Option<f64>,
    /// Whether a server reports itself the primary; `None` with no servers watched.
    pub primary: Option<bool>,
    /// Servers whose target is down (their numbers missing, not zero).
    pub down: Vec<String>,
    /// The replica lag is derived (an exporter's replay-timestamp reading).
    pub lag_derived: bool,
}

impl Database {
    /// What a service that uses `used` (server targets; `None`: not known, so all) depends
    /// on: replica lag and connection use of those servers only; whether a primary is up and
    /// which servers are down, of all of them (a down server's clients cannot be counted).
    pub fn of_service(servers: &[ServerRow], used: Option<&BTreeSet<String>>) -> Database {
        let all = Database::worst(servers);
        let Some(used) = used else {
            return all;
        };
        let scoped = Database::worst_of(servers.iter().filter(|s| used.contains(&s.target)));
        Database {
            replica_lag_seconds: scoped.replica_lag_seconds,
            connection_use: scoped.connection_use,
            lag_derived: scoped.lag_derived,
            ..all
        }
    }

    /// The worst of `servers`.
    pub fn worst(servers: &[ServerRow]) -> Database {
        Database::worst_of(servers.iter())
    }

    fn worst_of<'a>(servers: impl Iterator<Item = &'a ServerRow> + Clone) -> Database {
        let max = |values: &mut dyn Iterator<Item = f64>| values.reduce(f64::max);
        let worst_replica = servers
            .clone()
            .filter(|s| s.role == Role::Replica && s.replay_lag_seconds.is_some())
            .max_by(|a, b| {
                let lag = |s: &ServerRow| s.replay_lag_seconds.unwrap_or(0.0);
                lag(a).total_cmp(&lag(b))
            });
        Database {
            lag_derived: worst_replica.is_some_and(|s| s.lag_derived),
            replica_lag_seconds: max(&mut servers
                .clone()
                .filter(|s| s.role == Role::Replica)
                .filter_map(|s| s.replay_lag_seconds)),
            connection_use: max(&mut servers.clone().filter_map(ServerRow::connection_use)),
            primary: servers
                .clone()
                .next()
                .is_some()
                .then(|| servers.clone().any(|s| s.role == Role::Primary)),
            down: servers
                .filter(|s| s.role == Role::Down)
                .map(|s| s.target.clone())
                .collect(),
        }
    }
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
    /// The exporter's lag state; `None` when it did not say (or said something unknown).
    pub state: Option<LagState>,
    pub consume_rate: Option<f64>,
    pub produce_rate: Option<f64>,
    pub eta: Option<f64>,
    pub members: Option<f64>,
    pub group_state: Option<GroupState>,
    pub history: Vec<(f64, f64)>,
    /// Its state and ETA are derived from other exporters' series (see the signal rules).
    pub derived: bool,
    /// The topic's partitions.
    pub partitions: Option<f64>,
    /// Partitions the exporter judged stalled, each with its member (surge-exporter only).
    pub stalled: Vec<StalledPartition>,
    /// The lag autoscalers scale on: the moving partitions', each capped (surge-exporter only).
    pub scalable_lag: Option<f64>,
}

/// A partition whose committed offset stands still while it has lag.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StalledPartition {
    pub partition: String,
    /// The group member it is assigned to; empty when none is.
    pub member: String,
    /// How long its committed offset has stood still.
    pub seconds: f64,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct PartitionRow {
    pub partition: String,
    pub committed: Option<f64>,
    pub log_end: Option<f64>,
    pub lag: Option<f64>,
    pub has_commit: bool,
}

impl GroupRow {
    /// The lag state as shown: its label, or `unknown`.
    pub fn state_label(&self) -> &'static str {
        self.state.map_or("unknown", LagState::label)
    }

    /// Stalled on some partitions while others move: (stalled, of the topic's partitions).
    /// `None` when no partition is stalled, or all of them are, or the counts are unknown.
    pub fn partly_stalled(&self) -> Option<(usize, usize)> {
        let of = self.partitions.filter(|p| *p >= 1.0)? as usize;
        let stalled = self.stalled.len();
        (stalled > 0 && stalled < of).then_some((stalled, of))
    }
}

/// What a PostgreSQL server is, as surge-exporter last saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Role {
    Primary,
    Replica,
    /// Its target is down (or has not reported a role).
    #[default]
    Down,
}

impl Role {
    pub fn label(self) -> &'static str {
        match self {
            Role::Primary => "primary",
            Role::Replica => "replica",
            Role::Down => "down",
        }
    }
}

/// A PostgreSQL server as surge-exporter sees it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ServerRow {
    pub target: String,
    pub role: Role,
    pub receiver_streaming: Option<bool>,
    pub replay_lag_seconds: Option<f64>,
    pub replay_lag_bytes: Option<f64>,
    pub receive_lag_bytes: Option<f64>,
    pub paused: bool,
    pub history: Vec<(f64, f64)>,
    /// Client connections, all databases and states.
    pub connections: Option<f64>,
    /// Slots ordinary clients may use: max_connections minus the reserved ones.
    pub connection_slots: Option<f64>,
    /// Connections idle in a transaction (aborted ones included).
    pub idle_in_transaction: Option<f64>,
    pub longest_idle_in_transaction: Option<f64>,
    pub longest_lock_wait: Option<f64>,
    /// Its replay lag is derived (an exporter's replay-timestamp reading).
    pub lag_derived: bool,
}

impl ServerRow {
    /// Share of the ordinary connection slots in use.
    pub fn connection_use(&self) -> Option<f64> {
        match (self.connections, self.connection_slots) {
            (Some(used), Some(slots)) if slots > 0.0 => Some(used / slots),
            _ => None,
        }
    }
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
    pub memory_bytes: Option<f64>,
    pub memory_limit_bytes: Option<f64>,
}

impl PodRow {
    /// Share of its memory limit the pod holds.
    pub fn memory_of_limit(&self) -> Option<f64> {
        match (self.memory_bytes, self.memory_limit_bytes) {
            (Some(used), Some(limit)) if limit > 0.0 => Some(used / limit),
            _ => None,
        }
    }
}

/// Whether a point comes from a derivation rule rather than a plain reading.
fn is_derived(point: &Point) -> bool {
    point.labels.contains_key(DERIVED_LABEL)
}

/// Whether `labels` carry every `(name, value)` of `want`.
fn has_labels(labels: &Labels, want: &[(&str, &str)]) -> bool {
    want.iter()
        .all(|(k, v)| labels.get(*k).map(String::as_str) == Some(*v))
}

/// What the rows are derived from: the latest instant values and the history.
pub(super) struct Rows<'a> {
    pub(super) metrics: &'a Metrics,
    pub(super) history: &'a History,
}

impl Rows<'_> {
    /// Pods of one workload (service detail).
    pub(super) fn pods(&self, namespace: &str, workload: &str) -> Vec<PodRow> {
        use catalogue::workload::{
            POD_CPU_REQUEST, POD_CPU_USAGE, POD_MEMORY_LIMIT, POD_MEMORY_WORKING_SET, POD_READY,
        };
        let want = [("namespace", namespace), ("workload", workload)];
        let mut rows: BTreeMap<String, PodRow> = BTreeMap::new();
        /// Which family fills which field of a pod's row.
        type Field = (&'static Family, fn(&mut PodRow, f64));
        let fields: [Field; 5] = [
            (&POD_READY, |r, v| r.ready = v >= 1.0),
            (&POD_CPU_USAGE, |r, v| r.cpu_cores = Some(v)),
            (&POD_CPU_REQUEST, |r, v| r.request_cores = Some(v)),
            (&POD_MEMORY_WORKING_SET, |r, v| r.memory_bytes = Some(v)),
            (&POD_MEMORY_LIMIT, |r, v| r.memory_limit_bytes = Some(v)),
        ];
        for (family, set) in fields {
            for p in self.metrics.points(family.exposed) {
                let Some(pod) = p.labels.get("pod").filter(|_| has_labels(&p.labels, &want)) else {
                    continue;
                };
                let row = rows.entry(pod.clone()).or_default();
                row.pod = pod.clone();
                set(row, p.value);
            }
        }
        rows.into_values().collect()
    }

    /// Partitions of one group on one topic (Kafka drill-in).
    pub(super) fn partitions(&self, group: &str, topic: &str) -> Vec<PartitionRow> {
        use catalogue::kafka::{COMMITTED, HAS_COMMIT, LAG, LOG_END};
        let want = [("group", group), ("topic", topic)];
        let mut rows: BTreeMap<i64, PartitionRow> = BTreeMap::new();
        for family in [&HAS_COMMIT, &COMMITTED, &LAG] {
            for p in self.metrics.points(family.exposed) {
                let Some(partition) = p
                    .labels
                    .get("partition")
                    .filter(|_| has_labels(&p.labels, &want))
                else {
                    continue;
                };
                let n = partition.parse().unwrap_or(i64::MAX);
                let row = rows.entry(n).or_default();
                row.partition = partition.clone();
                if family.name == HAS_COMMIT.name {
                    row.has_commit = p.value >= 1.0;
                } else if family.name == COMMITTED.name {
                    row.committed = Some(p.value);
                } else {
                    row.lag = Some(p.value);
                }
                row.log_end = self.metrics.value(
                    LOG_END.exposed,
                    &[("topic", topic), ("partition", partition)],
                );
            }
        }
        rows.into_values().collect()
    }

    /// One row per scaled workload; `service_groups` names a service's consumer groups
    /// beyond the one of its own name.
    /// Per application (a service's name): the servers its connections are on.
    pub(super) fn servers_used(&self) -> BTreeMap<String, BTreeSet<String>> {
        let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for p in self
            .metrics
            .points(catalogue::postgres::CLIENT_CONNECTIONS.exposed)
            .iter()
            .filter(|p| p.value > 0.0)
        {
            if let (Some(app), Some(target)) = (p.labels.get("application"), p.labels.get("target"))
            {
                out.entry(app.clone()).or_default().insert(target.clone());
            }
        }
        out
    }

    pub(super) fn services(
        &self,
        range: f64,
        groups: &[GroupRow],
        service_groups: &BTreeMap<String, Vec<String>>,
        servers: &[ServerRow],
        service_databases: &BTreeMap<String, Vec<String>>,
        now: f64,
    ) -> Vec<ServiceRow> {
        let measured = self.servers_used();
        use catalogue::hpa::{
            ABLE_TO_SCALE, CURRENT, DESIRED, MAX, MIN, SCALING_LIMITED, TARGET_CPU,
        };
        use catalogue::workload::{
            CPU_UTILIZATION, MEMORY_UTILIZATION, PODS, PODS_WITHOUT_CPU_REQUEST,
        };
        let memory_of_limit = self.memory_of_limit();
        let scaling = self.scaling_metrics();
        let partitions = self.metrics.index(
            catalogue::kafka::TOPIC_PARTITIONS.exposed,
            &["cluster", "topic"],
        );
        let mut keys: BTreeSet<(String, String)> = BTreeSet::new();
        // A workload with no pods left has no CPU ratio but still counts its pods (all 0):
        // its row stays, which is when it matters most.
        for family in [&CURRENT, &CPU_UTILIZATION, &PODS] {
            for p in self.metrics.points(family.exposed) {
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
                let get = |f: &Family| self.metrics.value(f.exposed, &want);
                let cpu_point = self.metrics.point(CPU_UTILIZATION.exposed, &want);
                let cpu = cpu_point.map(|p| p.value);
                let (current, max, target) = (get(&CURRENT), get(&MAX), get(&TARGET_CPU));
                let cpu_history = cpu_point
                    .map(|p| {
                        self.history
                            .since(CPU_UTILIZATION.exposed, &p.labels, now - range)
                    })
                    .unwrap_or_default();
                let headroom = current.zip(max).map(|(c, m)| (m - c).max(0.0));
                let saturated =
                    headroom == Some(0.0) && cpu.zip(target).is_some_and(|(c, t)| c > t);
                let service_groups = super::service_groups(service_groups, &workload);
                // The service's most lagging group-topic.
                let kafka = groups
                    .iter()
                    .filter(|g| service_groups.contains(&g.group))
                    .max_by(|a, b| a.lag.unwrap_or(0.0).total_cmp(&b.lag.unwrap_or(0.0)))
                    .cloned();
                let topic_partitions = kafka.as_ref().and_then(|g| {
                    partitions
                        .get(&vec![g.cluster.as_str(), g.topic.as_str()])
                        .map(|p| p.value)
                });
                let demand = cpu_point
                    .map(|p| self.demand_history(&p.labels, &want, now - FORECAST_WINDOW))
                    .unwrap_or_default();
                let db_servers: Option<BTreeSet<String>> = service_databases
                    .get(&workload)
                    .map(|d| d.iter().cloned().collect())
                    .or_else(|| measured.get(&workload).cloned());
                ServiceRow {
                    current,
                    desired: get(&DESIRED),
                    min: get(&MIN),
                    max,
                    cpu,
                    target,
                    cpu_history,
                    scaling_limited: get(&SCALING_LIMITED).is_some_and(|v| v >= 1.0),
                    able_to_scale: get(&ABLE_TO_SCALE).map(|v| v >= 1.0),
                    headroom,
                    saturated,
                    kafka,
                    memory: get(&MEMORY_UTILIZATION),
                    memory_of_limit: memory_of_limit
                        .get(&(namespace.as_str(), workload.as_str()))
                        .copied(),
                    db: Database::of_service(servers, db_servers.as_ref()),
                    db_servers,
                    scaling: scaling
                        .get(&(namespace.as_str(), workload.as_str()))
                        .cloned()
                        .unwrap_or_default(),
                    partitions: topic_partitions,
                    pods_without_request: get(&PODS_WITHOUT_CPU_REQUEST).unwrap_or(0.0),
                    alerts: Vec::new(),
                    pods: self
                        .metrics
                        .points(PODS.exposed)
                        .iter()
                        .filter(|p| p.matches(&want) && p.label("state") != "excluded")
                        .map(|p| p.value)
                        .reduce(|a, b| a + b),
                    forecast: match (max, target) {
                        (Some(m), Some(t)) => time_to_max(&demand, m, t),
                        _ => Forecast::Unknown,
                    },
                    stale: false,
                    kafka_unknown: false,
                    cpu_derived: cpu_point.is_some_and(is_derived),
                    lines: super::Lines::default(),
                    namespace,
                    workload,
                }
            })
            .collect()
    }

    /// Per (namespace, workload): the metrics its HPA scales on, the deciding one first.
    fn scaling_metrics(&self) -> HashMap<(&str, &str), Vec<ScalingMetric>> {
        use catalogue::hpa::{METRIC_CURRENT, METRIC_DECIDING, METRIC_PROPOSED, METRIC_TARGET};
        const KEY: [&str; 5] = ["namespace", "hpa", "workload", "metric_type", "metric_name"];
        let current = self.metrics.index(METRIC_CURRENT.exposed, &KEY);
        let proposed = self.metrics.index(METRIC_PROPOSED.exposed, &KEY);
        let deciding = self.metrics.index(METRIC_DECIDING.exposed, &KEY);
        let mut out: HashMap<(&str, &str), Vec<ScalingMetric>> = HashMap::new();
        for target in self.metrics.points(METRIC_TARGET.exposed) {
            let key: Option<Vec<&str>> = KEY
                .iter()
                .map(|k| target.labels.get(*k).map(String::as_str))
                .collect();
            let Some(key) = key else {
                continue;
            };
            let value = |index: &HashMap<Vec<&str>, &Point>| index.get(&key).map(|p| p.value);
            out.entry((key[0], key[2]))
                .or_default()
                .push(ScalingMetric {
                    metric_type: MetricType::from_label(key[3]),
                    name: key[4].to_string(),
                    target_type: target
                        .labels
                        .get("target_type")
                        .and_then(|t| TargetType::from_label(t)),
                    target: target.value,
                    current: value(&current),
                    proposed: value(&proposed),
                    deciding: value(&deciding).is_some_and(|v| v >= 1.0),
                });
        }
        for metrics in out.values_mut() {
            // The deciding one first, then as the HPA lists them (CPU first by convention).
            metrics.sort_by_key(|m| (!m.deciding, m.metric_type != Some(MetricType::Resource)));
        }
        out
    }

    /// Per (namespace, workload): the largest share of its memory limit one pod holds.
    fn memory_of_limit(&self) -> HashMap<(&str, &str), f64> {
        use catalogue::workload::{POD_MEMORY_LIMIT, POD_MEMORY_WORKING_SET};
        const POD: [&str; 3] = ["namespace", "workload", "pod"];
        let limits = self.metrics.index(POD_MEMORY_LIMIT.exposed, &POD);
        let mut out: HashMap<(&str, &str), f64> = HashMap::new();
        for (key, used) in self.metrics.index(POD_MEMORY_WORKING_SET.exposed, &POD) {
            let Some(limit) = limits.get(&key).map(|p| p.value).filter(|l| *l > 0.0) else {
                continue;
            };
            let share = out.entry((key[0], key[1])).or_insert(0.0);
            *share = share.max(used.value / limit);
        }
        out
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
            .get(catalogue::workload::CPU_UTILIZATION.exposed, cpu_labels);
        // HPA series carry an `hpa` label (and more): find the one for this workload.
        let replicas = self
            .metrics
            .point(catalogue::hpa::CURRENT.exposed, want)
            .and_then(|p| self.history.get(catalogue::hpa::CURRENT.exposed, &p.labels));
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

    pub(super) fn groups(&self, range: f64, now: f64) -> Vec<GroupRow> {
        const GTOPIC: [&str; 3] = ["cluster", "group", "topic"];
        // One pass per metric, then joins by key: 200 groups cost 200 lookups, not 200 scans.
        let m = &self.metrics;
        let lag_seconds = m.index(catalogue::kafka::LAG_SECONDS.exposed, &GTOPIC);
        let lower_bound = m.index(catalogue::kafka::LAG_SECONDS_LOWER_BOUND.exposed, &GTOPIC);
        let consume = m.index(catalogue::kafka::CONSUME_RATE.exposed, &GTOPIC);
        let eta = m.index(catalogue::kafka::DRAIN_ETA.exposed, &GTOPIC);
        let produce = m.index(
            catalogue::kafka::PRODUCE_RATE.exposed,
            &["cluster", "topic"],
        );
        let members = m.index(catalogue::kafka::MEMBERS.exposed, &["cluster", "group"]);
        let partitions = m.index(
            catalogue::kafka::TOPIC_PARTITIONS.exposed,
            &["cluster", "topic"],
        );
        let scalable = m.index(catalogue::kafka::SCALABLE_LAG.exposed, &GTOPIC);
        let mut stalled: HashMap<Vec<&str>, Vec<StalledPartition>> = HashMap::new();
        for p in m.points(catalogue::kafka::PARTITION_STALLED.exposed) {
            if let (Some(c), Some(g), Some(t), Some(partition)) = (
                p.labels.get("cluster"),
                p.labels.get("group"),
                p.labels.get("topic"),
                p.labels.get("partition"),
            ) {
                stalled
                    .entry(vec![c.as_str(), g.as_str(), t.as_str()])
                    .or_default()
                    .push(StalledPartition {
                        partition: partition.clone(),
                        member: p.labels.get("member").cloned().unwrap_or_default(),
                        seconds: p.value,
                    });
            }
        }
        for list in stalled.values_mut() {
            list.sort_by_key(|s| s.partition.parse::<i64>().unwrap_or(i64::MAX));
        }
        let mut states: HashMap<Vec<&str>, LagState> = HashMap::new();
        let mut derived: BTreeSet<Vec<&str>> = BTreeSet::new();
        for p in m
            .points(catalogue::kafka::LAG_STATE.exposed)
            .iter()
            .filter(|p| p.value >= 1.0)
        {
            if let (Some(c), Some(g), Some(t), Some(s)) = (
                p.labels.get("cluster"),
                p.labels.get("group"),
                p.labels.get("topic"),
                p.labels.get("state"),
            ) && let Some(state) = LagState::from_label(s)
            {
                let key = vec![c.as_str(), g.as_str(), t.as_str()];
                if is_derived(p) {
                    derived.insert(key.clone());
                }
                states.insert(key, state);
            }
        }
        let mut group_states: HashMap<Vec<&str>, GroupState> = HashMap::new();
        for p in m
            .points(catalogue::kafka::GROUP_STATE.exposed)
            .iter()
            .filter(|p| p.value >= 1.0)
        {
            if let (Some(c), Some(g), Some(s)) = (
                p.labels.get("cluster"),
                p.labels.get("group"),
                p.labels.get("state"),
            ) && let Some(state) = GroupState::from_label(s)
            {
                group_states.insert(vec![c.as_str(), g.as_str()], state);
            }
        }
        let mut rows: BTreeMap<(String, String, String), GroupRow> = BTreeMap::new();
        for p in m.points(catalogue::kafka::TOPIC_LAG.exposed) {
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
                    state: states.get(&key).copied(),
                    derived: derived.contains(&key),
                    consume_rate: value(&consume, &key),
                    produce_rate: value(&produce, &[c.as_str(), t.as_str()]),
                    eta: value(&eta, &key),
                    members: value(&members, &[c.as_str(), g.as_str()]),
                    group_state: group_states.get(&[c.as_str(), g.as_str()][..]).copied(),
                    partitions: value(&partitions, &[c.as_str(), t.as_str()]),
                    stalled: stalled.remove(&key).unwrap_or_default(),
                    scalable_lag: value(&scalable, &key),
                    history: self.history.since(
                        catalogue::kafka::TOPIC_LAG.exposed,
                        &p.labels,
                        now - range,
                    ),
                },
            );
        }
        rows.into_values().collect()
    }

    pub(super) fn servers(&self, range: f64, now: f64) -> Vec<ServerRow> {
        use catalogue::exporter::SOURCE_UP;
        use catalogue::postgres::{
            CONNECTIONS, IS_REPLICA, LONGEST_IDLE_IN_TRANSACTION, LONGEST_LOCK_WAIT,
            MAX_CONNECTIONS, RECEIVE_LAG_BYTES, REPLAY_LAG_BYTES, REPLAY_LAG_SECONDS,
            REPLAY_PAUSED, RESERVED_CONNECTIONS, WAL_RECEIVER_STREAMING,
        };
        // Per target: (all connections, idle in a transaction), in one pass.
        let mut connections: HashMap<&str, (f64, f64)> = HashMap::new();
        for p in self.metrics.points(CONNECTIONS.exposed) {
            let Some(target) = p.labels.get("target") else {
                continue;
            };
            let idle_in_transaction = p.labels.get("state").is_some_and(|s| {
                matches!(
                    ConnectionState::from_label(s),
                    Some(
                        ConnectionState::IdleInTransaction
                            | ConnectionState::IdleInTransactionAborted
                    )
                )
            });
            let counts = connections.entry(target).or_default();
            counts.0 += p.value;
            if idle_in_transaction {
                counts.1 += p.value;
            }
        }
        let mut targets: BTreeSet<String> = BTreeSet::new();
        for p in self.metrics.points(IS_REPLICA.exposed) {
            targets.extend(p.labels.get("target").cloned());
        }
        for p in self.metrics.points(SOURCE_UP.exposed) {
            if p.labels.get("source").map(String::as_str) == Some("postgres") {
                targets.extend(p.labels.get("target").cloned());
            }
        }
        targets
            .into_iter()
            .map(|target| {
                let want = [("target", target.as_str())];
                let get = |f: &Family| self.metrics.value(f.exposed, &want);
                let up = self.metrics.value(
                    SOURCE_UP.exposed,
                    &[("source", "postgres"), ("target", &target)],
                ) != Some(0.0);
                let role = match (up, get(&IS_REPLICA)) {
                    (false, _) | (true, None) => Role::Down,
                    (true, Some(v)) if v >= 1.0 => Role::Replica,
                    _ => Role::Primary,
                };
                let lag_point = self.metrics.point(REPLAY_LAG_SECONDS.exposed, &want);
                let history = lag_point
                    .map(|p| {
                        self.history
                            .since(REPLAY_LAG_SECONDS.exposed, &p.labels, now - range)
                    })
                    .unwrap_or_default();
                let counts = connections.get(target.as_str());
                let slots = get(&MAX_CONNECTIONS)
                    .zip(get(&RESERVED_CONNECTIONS))
                    .map(|(max, reserved)| max - reserved);
                ServerRow {
                    role,
                    connections: counts.map(|c| c.0),
                    idle_in_transaction: counts.map(|c| c.1),
                    connection_slots: slots,
                    longest_idle_in_transaction: get(&LONGEST_IDLE_IN_TRANSACTION),
                    longest_lock_wait: get(&LONGEST_LOCK_WAIT),
                    receiver_streaming: get(&WAL_RECEIVER_STREAMING).map(|v| v >= 1.0),
                    replay_lag_seconds: get(&REPLAY_LAG_SECONDS),
                    replay_lag_bytes: get(&REPLAY_LAG_BYTES),
                    receive_lag_bytes: get(&RECEIVE_LAG_BYTES),
                    paused: get(&REPLAY_PAUSED).is_some_and(|v| v >= 1.0),
                    lag_derived: lag_point.is_some_and(is_derived),
                    history,
                    target,
                }
            })
            .collect()
    }

    pub(super) fn standbys(&self, range: f64, now: f64) -> Vec<StandbyRow> {
        let mut rows = Vec::new();
        for p in self
            .metrics
            .points(catalogue::postgres::REPLICA_STREAMING.exposed)
        {
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
                    .value(catalogue::postgres::REPLICA_LAG_BYTES.exposed, &want),
                replay_seconds: self.metrics.value(
                    catalogue::postgres::REPLICA_LAG_SECONDS.exposed,
                    &[want[0], want[1], ("stage", "replay")],
                ),
                history: self.history.since(
                    catalogue::postgres::REPLICA_LAG_BYTES.exposed,
                    &lag_labels,
                    now - range,
                ),
            });
        }
        rows.sort_by(|a, b| (&a.primary, &a.replica).cmp(&(&b.primary, &b.replica)));
        rows
    }

    pub(super) fn slots(&self) -> Vec<SlotRow> {
        let mut rows: Vec<SlotRow> = self
            .metrics
            .points(catalogue::postgres::SLOT_ACTIVE.exposed)
            .iter()
            .filter_map(|p| {
                let (target, slot) = (p.labels.get("target")?, p.labels.get("slot")?);
                Some(SlotRow {
                    target: target.clone(),
                    slot: slot.clone(),
                    active: p.value >= 1.0,
                    retained_bytes: self.metrics.value(
                        catalogue::postgres::SLOT_RETAINED_BYTES.exposed,
                        &[("target", target), ("slot", slot)],
                    ),
                })
            })
            .collect();
        rows.sort_by(|a, b| (&a.target, &a.slot).cmp(&(&b.target, &b.slot)));
        rows
    }
}
