//! Kafka consumer lag: honest (clamped, counted, no -1), trended (rates, time lag, drain ETA,
//! lag state) and cheap (a cycle costs two ListOffsets per broker plus one OffsetFetch per
//! group, whatever the partition count). Targets are the configured clusters.
//!
//! A cycle: log-end and log-start offsets of every partition (read first), then every
//! group's committed offsets, all on one librdkafka handle. Every `discovery_interval` the
//! topic layout and group list are refreshed and groups are described — on a second handle,
//! after the offsets, because a broker that cannot describe groups may drop the connection
//! (tansu does), and that must not cost the offsets. A group that cannot be described keeps
//! its lag; its state is `Unknown`, its member count absent, and the error is counted for it.

mod admin;
mod lag;
pub mod trend;

pub use lag::{PartitionLag, TopicLag, Uncommitted, Watermarks, partition_lags, topic_sums};

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::anyhow;
use async_trait::async_trait;
use regex::Regex;

use self::admin::{AdminHandle, Committed, GroupDescription, OffsetSpec, TopicLayout};
use self::trend::{LagState, LogEndHistory, Point, TrendConfig};
use crate::config::{ConfigError, KafkaCluster, KafkaSection};
use crate::source::{Family, Labels, Sample, Source};
use crate::sync::lock;

macro_rules! gauge {
    ($id:ident, $name:literal, $unit:expr, $help:literal) => {
        pub static $id: Family = Family::gauge($name, $unit, $help);
    };
}

gauge!(
    LOG_END,
    "surge_kafka_partition_log_end_offset",
    None,
    "Log-end offset (high watermark) of the partition."
);
gauge!(
    LOG_START,
    "surge_kafka_partition_log_start_offset",
    None,
    "Log-start offset (earliest retained) of the partition."
);
gauge!(
    COMMITTED,
    "surge_kafka_group_committed_offset",
    None,
    "Offset the group committed on the partition."
);
gauge!(
    HAS_COMMIT,
    "surge_kafka_group_has_commit",
    None,
    "1 if the group has a committed offset on the partition, 0 if never (no lag series then)."
);
gauge!(
    LAG,
    "surge_kafka_group_lag",
    None,
    "Messages the group has not consumed on the partition: log end minus committed, clamped at 0."
);
gauge!(
    TOPIC_LAG,
    "surge_kafka_group_topic_lag",
    None,
    "Messages the group has not consumed on the topic (sum over partitions with a commit)."
);
gauge!(
    LAG_SECONDS,
    "surge_kafka_group_topic_lag_seconds",
    Some("seconds"),
    "How long ago the oldest unconsumed message of the group on the topic was appended, from log-end history."
);
gauge!(
    LAG_SECONDS_LOWER_BOUND,
    "surge_kafka_group_topic_lag_seconds_lower_bound",
    None,
    "1 if the lag in seconds is only a lower bound (history does not reach back far enough)."
);
gauge!(
    CONSUME_RATE,
    "surge_kafka_group_topic_consume_rate",
    None,
    "Messages per second the group consumes on the topic (committed offsets over the rate window)."
);
gauge!(
    PRODUCE_RATE,
    "surge_kafka_topic_produce_rate",
    None,
    "Messages per second appended to the topic (log-end offsets over the rate window)."
);
gauge!(
    DRAIN_ETA,
    "surge_kafka_group_topic_drain_eta_seconds",
    Some("seconds"),
    "Seconds until the lag reaches 0 at current rates; present only while draining."
);
gauge!(
    LAG_STATE,
    "surge_kafka_group_topic_lag_state",
    None,
    "1 for the lag state of the group on the topic (ok, growing, draining, stalled, idle), 0 for the others."
);
gauge!(
    MEMBERS,
    "surge_kafka_group_members",
    None,
    "Members of the consumer group (absent when the group could not be described)."
);
gauge!(
    GROUP_STATE,
    "surge_kafka_group_state",
    None,
    "1 for the consumer group's state (Stable, Empty, PreparingRebalance, CompletingRebalance, Dead, Unknown), 0 for the others."
);
pub static REQUESTS: Family = Family::counter(
    "surge_kafka_requests",
    None,
    "Kafka protocol requests sent by the exporter, by API, as counted by librdkafka.",
);
pub static CLAMPED: Family = Family::counter(
    "surge_kafka_lag_clamped",
    None,
    "Partition lags clamped to 0 because the committed offset was past the log end read before it.",
);
pub static GROUP_ERRORS: Family = Family::counter(
    "surge_kafka_group_errors",
    None,
    "Failed per-group requests (OffsetFetch, DescribeGroups); the rest of the cluster is unaffected.",
);

pub static FAMILIES: &[&Family] = &[
    &LOG_END,
    &LOG_START,
    &COMMITTED,
    &HAS_COMMIT,
    &LAG,
    &TOPIC_LAG,
    &LAG_SECONDS,
    &LAG_SECONDS_LOWER_BOUND,
    &CONSUME_RATE,
    &PRODUCE_RATE,
    &DRAIN_ETA,
    &LAG_STATE,
    &MEMBERS,
    &GROUP_STATE,
    &REQUESTS,
    &CLAMPED,
    &GROUP_ERRORS,
];

/// Group states as Kafka names them; `Unknown` when the broker could not say.
const GROUP_STATES: [&str; 6] = [
    "Stable",
    "Empty",
    "PreparingRebalance",
    "CompletingRebalance",
    "Dead",
    "Unknown",
];

/// Allow/deny filter over names; deny wins.
#[derive(Debug, Clone, Default)]
struct NameFilter {
    allow: Option<Regex>,
    deny: Option<Regex>,
}

impl NameFilter {
    fn new(allow: Option<&str>, deny: Option<&str>) -> Result<Self, String> {
        let compile = |r: Option<&str>| r.map(Regex::new).transpose().map_err(|e| e.to_string());
        Ok(NameFilter {
            allow: compile(allow)?,
            deny: compile(deny)?,
        })
    }

    fn admits(&self, name: &str) -> bool {
        self.allow.as_ref().is_none_or(|r| r.is_match(name))
            && !self.deny.as_ref().is_some_and(|r| r.is_match(name))
    }
}

/// What a group is known to be, from the last discovery.
#[derive(Debug, Clone, Default)]
struct GroupInfo {
    state: String,
    members: Option<usize>,
    assignment: BTreeMap<String, Vec<i32>>,
}

/// Everything a cluster remembers between cycles.
#[derive(Default)]
struct ClusterState {
    handle: Option<AdminHandle>,
    describer: Option<AdminHandle>,
    discovered_at: Option<Instant>,
    topics: BTreeMap<String, Vec<i32>>,
    groups: BTreeMap<String, GroupInfo>,
    log_end_history: HashMap<(String, i32), LogEndHistory>,
    produce_history: HashMap<String, VecDeque<(f64, f64)>>,
    group_topic_history: HashMap<(String, String), VecDeque<Point>>,
    clamped: HashMap<(String, String), u64>,
    group_errors: HashMap<(String, &'static str), u64>,
    describe_failing: bool,
}

struct ClusterTarget {
    name: String,
    properties: BTreeMap<String, String>,
    groups: NameFilter,
    topics: NameFilter,
    state: Mutex<ClusterState>,
}

pub struct KafkaSource {
    section: KafkaSection,
    trend: TrendConfig,
    clusters: Vec<Arc<ClusterTarget>>,
}

impl KafkaSource {
    pub fn new(section: &KafkaSection) -> Result<Self, ConfigError> {
        let clusters = section
            .clusters
            .iter()
            .enumerate()
            .map(|(i, c)| cluster_target(i, c).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(KafkaSource {
            trend: TrendConfig {
                window: section.window,
                rate_window: section.rate_window,
                stall_after: section.stall_after,
                ..TrendConfig::default()
            },
            section: section.clone(),
            clusters,
        })
    }
}

fn cluster_target(index: usize, c: &KafkaCluster) -> Result<ClusterTarget, ConfigError> {
    let field = |f: &str| format!("kafka.clusters[{index}].{f}");
    let mut properties = c.properties.clone();
    properties.insert("bootstrap.servers".into(), c.bootstrap_servers.clone());
    if let Some(var) = &c.sasl_password_env {
        let password = std::env::var(var).map_err(|_| {
            ConfigError(format!(
                "{}: environment variable {var} is not set",
                field("sasl_password_env")
            ))
        })?;
        properties.insert("sasl.password".into(), password);
    }
    if let Some(path) = &c.sasl_password_file {
        let password = std::fs::read_to_string(path).map_err(|e| {
            ConfigError(format!(
                "{}: cannot read {}: {e}",
                field("sasl_password_file"),
                path.display()
            ))
        })?;
        properties.insert(
            "sasl.password".into(),
            password.trim_end_matches(['\n', '\r']).to_string(),
        );
    }
    let groups = NameFilter::new(c.group_allow.as_deref(), c.group_deny.as_deref())
        .map_err(|e| ConfigError(format!("{}: {e}", field("group_allow"))))?;
    let topics = NameFilter::new(c.topic_allow.as_deref(), c.topic_deny.as_deref())
        .map_err(|e| ConfigError(format!("{}: {e}", field("topic_allow"))))?;
    Ok(ClusterTarget {
        name: c.name.clone(),
        properties,
        groups,
        topics,
        state: Mutex::new(ClusterState::default()),
    })
}

fn now_seconds() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl ClusterTarget {
    /// One cycle, blocking (librdkafka calls); bounded by `deadline`.
    fn collect(
        &self,
        section: &KafkaSection,
        trend: &TrendConfig,
        deadline: Instant,
    ) -> anyhow::Result<Vec<Sample>> {
        let mut state = lock(&self.state);
        let state = &mut *state;
        if state.handle.is_none() {
            state.handle =
                Some(AdminHandle::new(&self.properties, section.timeout).map_err(|e| anyhow!(e))?);
        }
        let Some(handle) = state.handle.as_ref() else {
            return Err(anyhow!("no Kafka client"));
        };
        handle.poll_main();
        handle.begin_cycle();

        let discover = state
            .discovered_at
            .is_none_or(|at| at.elapsed() >= section.discovery_interval);
        if discover {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let layout = handle.metadata(remaining).map_err(|e| anyhow!(e))?;
            let listed = handle.list_groups(deadline).map_err(|e| anyhow!(e))?;
            state.topics = admitted_topics(&layout, &self.topics);
            let mut groups = BTreeMap::new();
            for g in listed.into_iter().filter(|g| self.groups.admits(&g.group)) {
                let previous = state.groups.remove(&g.group).unwrap_or_default();
                groups.insert(
                    g.group,
                    GroupInfo {
                        state: g.state,
                        ..previous
                    },
                );
            }
            state.groups = groups;
        }

        // Log-end offsets first, then commits: a commit can only be newer than the log end
        // we compare it with, never older, so lag is never overstated (and clamps are counted).
        let partitions: Vec<(String, i32)> = state
            .topics
            .iter()
            .flat_map(|(t, ps)| ps.iter().map(move |p| (t.clone(), *p)))
            .collect();
        let specs = [OffsetSpec::Latest, OffsetSpec::Earliest];
        let offsets = handle
            .list_offsets(&partitions, &specs, deadline)
            .map_err(|e| anyhow!(e))?;
        let mut watermarks: lag::Offsets = HashMap::with_capacity(partitions.len());
        if let [latest, earliest] = offsets.as_slice() {
            for key in &partitions {
                watermarks.insert(
                    key.clone(),
                    Watermarks {
                        end: latest.get(key).and_then(|r| r.as_ref().ok()).copied(),
                        start: earliest.get(key).and_then(|r| r.as_ref().ok()).copied(),
                    },
                );
            }
        }
        let group_names: Vec<String> = state.groups.keys().cloned().collect();
        let committed = handle.committed_offsets(&group_names, deadline);
        let requests_main = handle.requests();

        if discover {
            self.describe(state, &group_names, deadline, section.timeout);
            state.discovered_at = Some(Instant::now());
        }
        let mut requests = requests_main;
        if let Some(describer) = &state.describer {
            describer.poll_main();
            for (api, count) in describer.requests() {
                *requests.entry(api).or_insert(0) += count;
            }
        }

        let now = now_seconds();
        let inputs = CycleInputs {
            cluster: &self.name,
            now,
            watermarks: &watermarks,
            committed: &committed,
            requests: &requests,
        };
        Ok(build_samples(state, &inputs, section, trend))
    }

    /// Describe groups on the second handle; on failure every group's state is unknown and
    /// the error is counted per group.
    fn describe(
        &self,
        state: &mut ClusterState,
        groups: &[String],
        deadline: Instant,
        timeout: Duration,
    ) {
        if groups.is_empty() {
            return;
        }
        if state.describer.is_none() {
            match AdminHandle::new(&self.properties, timeout) {
                Ok(h) => state.describer = Some(h),
                Err(error) => {
                    tracing::warn!(cluster = %self.name, %error, "cannot create describe client");
                    return;
                }
            }
        }
        let Some(describer) = &state.describer else {
            return;
        };
        describer.begin_cycle();
        match describer.describe_groups(groups, deadline) {
            Ok(descriptions) => {
                if state.describe_failing {
                    tracing::info!(cluster = %self.name, "DescribeGroups works again");
                }
                state.describe_failing = false;
                let by_name: HashMap<&str, &GroupDescription> =
                    descriptions.iter().map(|d| (d.group.as_str(), d)).collect();
                for group in groups {
                    let info = state.groups.entry(group.clone()).or_default();
                    match by_name.get(group.as_str()) {
                        Some(d) if d.error.is_none() => {
                            info.state = d.state.clone();
                            info.members = Some(d.members);
                            info.assignment = d.assignment.clone();
                        }
                        _ => {
                            info.state = "Unknown".into();
                            info.members = None;
                            *state
                                .group_errors
                                .entry((group.clone(), "DescribeGroups"))
                                .or_default() += 1;
                        }
                    }
                }
            }
            Err(error) => {
                if !state.describe_failing {
                    tracing::warn!(cluster = %self.name, %error, "DescribeGroups failed; group state and members unknown, lag still exported");
                }
                state.describe_failing = true;
                for group in groups {
                    let info = state.groups.entry(group.clone()).or_default();
                    info.state = "Unknown".into();
                    info.members = None;
                    *state
                        .group_errors
                        .entry((group.clone(), "DescribeGroups"))
                        .or_default() += 1;
                }
            }
        }
    }
}

fn admitted_topics(layout: &[TopicLayout], filter: &NameFilter) -> BTreeMap<String, Vec<i32>> {
    layout
        .iter()
        .filter(|t| filter.admits(&t.topic) && !t.partitions.is_empty())
        .map(|t| {
            let mut partitions = t.partitions.clone();
            partitions.sort_unstable();
            (t.topic.clone(), partitions)
        })
        .collect()
}

/// One cycle's fresh readings.
struct CycleInputs<'a> {
    cluster: &'a str,
    now: f64,
    watermarks: &'a lag::Offsets,
    committed: &'a HashMap<String, Result<Vec<Committed>, String>>,
    requests: &'a BTreeMap<String, i64>,
}

/// Turn a cycle's readings into samples, updating the histories. Pure apart from `state`.
fn build_samples(
    state: &mut ClusterState,
    inputs: &CycleInputs<'_>,
    section: &KafkaSection,
    trend: &TrendConfig,
) -> Vec<Sample> {
    let cluster = inputs.cluster;
    let now = inputs.now;
    let mut out = Vec::new();
    let c = || -> Labels { vec![("cluster", cluster.to_string())] };

    // Partition watermarks and their history (shared by every group reading the topic).
    let mut topic_end: BTreeMap<&str, f64> = BTreeMap::new();
    for (topic, partitions) in &state.topics {
        for &partition in partitions {
            let key = (topic.clone(), partition);
            let marks = inputs.watermarks.get(&key).copied().unwrap_or_default();
            if let Some(end) = marks.end {
                *topic_end.entry(topic.as_str()).or_default() += end as f64;
                state.log_end_history.entry(key).or_default().push(
                    now,
                    end as f64,
                    section.time_lag_horizon,
                );
                if section.partition_metrics {
                    out.push(Sample::new(
                        &LOG_END,
                        partition_labels(cluster, topic, partition),
                        end as f64,
                    ));
                }
            }
            if let (Some(start), true) = (marks.start, section.partition_metrics) {
                out.push(Sample::new(
                    &LOG_START,
                    partition_labels(cluster, topic, partition),
                    start as f64,
                ));
            }
        }
    }
    let live: HashSet<(String, i32)> = inputs.watermarks.keys().cloned().collect();
    state.log_end_history.retain(|k, _| live.contains(k));

    // Produce rate per topic.
    let keep_for = trend
        .window
        .max(trend.rate_window)
        .max(trend.stall_after)
        .as_secs_f64()
        + 1.0;
    for (topic, end) in &topic_end {
        let history = state
            .produce_history
            .entry((*topic).to_string())
            .or_default();
        history.push_back((now, *end));
        while history
            .front()
            .is_some_and(|(t, _)| *t < now - trend.rate_window.as_secs_f64())
            && history.len() > 2
        {
            history.pop_front();
        }
        if let (Some(first), Some(last)) = (history.front(), history.back())
            && last.0 > first.0
        {
            let mut l = c();
            l.push(("topic", (*topic).to_string()));
            out.push(Sample::new(
                &PRODUCE_RATE,
                l,
                ((last.1 - first.1) / (last.0 - first.0)).max(0.0),
            ));
        }
    }
    state
        .produce_history
        .retain(|t, _| topic_end.contains_key(t.as_str()));

    // Groups.
    let mut seen_group_topics = HashSet::new();
    for (group, info) in &state.groups {
        let g = || -> Labels {
            let mut l = c();
            l.push(("group", group.clone()));
            l
        };
        for s in GROUP_STATES {
            let mut l = g();
            l.push(("state", s.to_string()));
            let current = if GROUP_STATES.contains(&info.state.as_str()) {
                info.state.as_str()
            } else {
                "Unknown"
            };
            out.push(Sample::new(
                &GROUP_STATE,
                l,
                f64::from(u8::from(s == current)),
            ));
        }
        if let Some(members) = info.members {
            out.push(Sample::new(&MEMBERS, g(), members as f64));
        }
        let commits = match inputs.committed.get(group) {
            Some(Ok(commits)) => commits,
            Some(Err(error)) => {
                tracing::debug!(cluster, group, %error, "OffsetFetch failed");
                *state
                    .group_errors
                    .entry((group.clone(), "OffsetFetch"))
                    .or_default() += 1;
                continue;
            }
            None => continue,
        };
        // The group's topics: those it committed on, and those assigned to its members.
        let mut topics: BTreeSet<&str> = commits.iter().map(|c| c.topic.as_str()).collect();
        topics.extend(info.assignment.keys().map(String::as_str));
        let topic_partitions: BTreeMap<String, Vec<i32>> = topics
            .into_iter()
            .filter_map(|t| state.topics.get(t).map(|ps| (t.to_string(), ps.clone())))
            .collect();
        let committed: HashMap<(String, i32), Option<i64>> = commits
            .iter()
            .map(|c| ((c.topic.clone(), c.partition), c.offset))
            .collect();
        let lags = partition_lags(
            &committed,
            &topic_partitions,
            inputs.watermarks,
            section.uncommitted,
        );
        if section.partition_metrics {
            for p in &lags {
                let labels = || {
                    let mut l = g();
                    l.push(("topic", p.topic.clone()));
                    l.push(("partition", p.partition.to_string()));
                    l
                };
                out.push(Sample::new(
                    &HAS_COMMIT,
                    labels(),
                    f64::from(u8::from(p.committed.is_some())),
                ));
                if let Some(offset) = p.committed {
                    out.push(Sample::new(&COMMITTED, labels(), offset as f64));
                }
                if let Some(lag) = p.lag {
                    out.push(Sample::new(&LAG, labels(), lag as f64));
                }
            }
        }
        for (topic, sums) in topic_sums(&lags) {
            let key = (group.clone(), topic.clone());
            seen_group_topics.insert(key.clone());
            let gt = || {
                let mut l = g();
                l.push(("topic", topic.clone()));
                l
            };
            out.push(Sample::new(&TOPIC_LAG, gt(), sums.lag as f64));
            let clamped = state.clamped.entry(key.clone()).or_default();
            *clamped += sums.clamped;
            out.push(Sample::new(&CLAMPED, gt(), *clamped as f64));

            // Time lag: the oldest unconsumed message over the topic's partitions.
            let mut worst: Option<(f64, bool)> = None;
            for p in lags
                .iter()
                .filter(|p| p.topic == topic && p.lag.is_some_and(|l| l > 0))
            {
                let from = p.committed.or_else(|| {
                    inputs
                        .watermarks
                        .get(&(p.topic.clone(), p.partition))
                        .and_then(|w| w.start)
                });
                let (Some(from), Some(history)) = (
                    from,
                    state.log_end_history.get(&(p.topic.clone(), p.partition)),
                ) else {
                    continue;
                };
                if let Some(found) = history.time_lag(from as f64, now)
                    && worst.is_none_or(|w| found.0 > w.0)
                {
                    worst = Some(found);
                }
            }
            let (seconds, lower_bound) = worst.unwrap_or((0.0, false));
            out.push(Sample::new(&LAG_SECONDS, gt(), seconds));
            out.push(Sample::new(
                &LAG_SECONDS_LOWER_BOUND,
                gt(),
                f64::from(u8::from(lower_bound)),
            ));

            let history = state.group_topic_history.entry(key).or_default();
            history.push_back(Point {
                t: now,
                lag: sums.lag as f64,
                committed: sums.committed as f64,
                log_end: sums.log_end as f64,
            });
            while history.front().is_some_and(|p| p.t < now - keep_for) {
                history.pop_front();
            }
            let points: Vec<Point> = history.iter().copied().collect();
            let lag_state = trend::classify(&points, trend);
            for s in LagState::ALL {
                let mut l = gt();
                l.push(("state", s.label().to_string()));
                out.push(Sample::new(
                    &LAG_STATE,
                    l,
                    f64::from(u8::from(s == lag_state)),
                ));
            }
            if let Some((Some(consume), produce)) = trend::rates(&points, trend.rate_window) {
                out.push(Sample::new(&CONSUME_RATE, gt(), consume));
                if let Some(eta) = trend::drain_eta(sums.lag as f64, consume, produce) {
                    out.push(Sample::new(&DRAIN_ETA, gt(), eta));
                }
            }
        }
    }
    // Forget groups and topics that are gone; a group whose OffsetFetch failed this cycle
    // keeps its history, so one failed request does not reset its trend.
    let groups: HashSet<&String> = state.groups.keys().collect();
    let alive = |(g, t): &(String, String)| {
        seen_group_topics.contains(&(g.clone(), t.clone()))
            || (groups.contains(g)
                && state.topics.contains_key(t)
                && matches!(inputs.committed.get(g), Some(Err(_))))
    };
    state.group_topic_history.retain(|k, _| alive(k));
    state.clamped.retain(|k, _| alive(k));
    state.group_errors.retain(|(g, _), _| groups.contains(g));
    let mut errors: Vec<_> = state.group_errors.iter().collect();
    errors.sort();
    for ((group, api), count) in errors {
        let mut l = c();
        l.push(("group", group.clone()));
        l.push(("api", (*api).to_string()));
        out.push(Sample::new(&GROUP_ERRORS, l, *count as f64));
    }
    for (api, count) in inputs.requests {
        let mut l = c();
        l.push(("api", api.clone()));
        out.push(Sample::new(&REQUESTS, l, *count as f64));
    }
    out
}

fn partition_labels(cluster: &str, topic: &str, partition: i32) -> Labels {
    vec![
        ("cluster", cluster.to_string()),
        ("topic", topic.to_string()),
        ("partition", partition.to_string()),
    ]
}

#[async_trait]
impl Source for KafkaSource {
    fn name(&self) -> &'static str {
        "kafka"
    }
    fn interval(&self) -> Duration {
        self.section.interval
    }
    fn timeout(&self) -> Duration {
        self.section.timeout
    }
    fn targets(&self) -> Vec<String> {
        self.clusters.iter().map(|c| c.name.clone()).collect()
    }
    fn families(&self) -> &'static [&'static Family] {
        FAMILIES
    }
    async fn collect(&self, target: &str) -> anyhow::Result<Vec<Sample>> {
        let cluster = self
            .clusters
            .iter()
            .find(|c| c.name == target)
            .cloned()
            .ok_or_else(|| anyhow!("unknown target {target}"))?;
        // Finish a little before the scheduler's timeout so a slow broker yields our own
        // error message (and the handle is free for the next cycle).
        let deadline = Instant::now() + self.section.timeout.mul_f64(0.9);
        let section = self.section.clone();
        let trend = self.trend;
        tokio::task::spawn_blocking(move || cluster.collect(&section, &trend, deadline))
            .await
            .map_err(|e| anyhow!("Kafka collection task failed: {e}"))?
    }
}
