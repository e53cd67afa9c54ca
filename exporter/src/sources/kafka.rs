//! Kafka consumer lag: honest (clamped, counted, no -1), trended (rates, time lag, drain ETA,
//! lag state) and cheap (a steady cycle costs two ListOffsets per partition leader plus one
//! OffsetFetch per group coordinator, whatever the partition and group counts). Targets are
//! the configured clusters.
//!
//! A cycle: log-end and log-start offsets of every partition (read first), then every
//! group's committed offsets, on the exporter's own protocol client (`client`, over `wire`).
//! Every `discovery_interval` the topic layout and group list are refreshed and groups are
//! described — after the offsets, because a broker that cannot describe groups may drop the
//! connection (tansu does), and that must not cost the offsets. A group that cannot be
//! described keeps its lag; its state is `Unknown`, its member count absent, and the error is
//! counted for it.

mod client;
mod lag;
mod sasl;
mod stall;
mod trend;
mod wire;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail};
use async_trait::async_trait;
use regex::Regex;
use serde::Deserialize;
use surge_metrics::catalogue::kafka::{
    CLAMPED, COMMITTED, CONSUME_RATE, DRAIN_ETA, GROUP_ERRORS, GROUP_STATE, HAS_COMMIT, LAG,
    LAG_SECONDS, LAG_SECONDS_LOWER_BOUND, LAG_STATE, LOG_END, LOG_START, MEMBERS,
    PARTITION_STALLED, PRODUCE_RATE, REQUESTS, SCALABLE_LAG, STALLED_PARTITIONS, TOPIC_LAG,
    TOPIC_PARTITIONS,
};
use surge_metrics::state::{GroupState, LagState};
use surge_metrics::{Labels, Sample};

use self::client::{ClusterClient, Committed, GroupDescription, OffsetSpec, TopicLayout};
use self::lag::{Uncommitted, Watermarks, partition_lags, topic_sums};
use self::sasl::Mechanism;
use self::stall::{StallClock, scalable_lag};
use self::trend::{LogEndHistory, Point, TrendConfig};
use self::wire::{SaslLogin, Security};
#[doc(hidden)]
pub use self::wire::{fuzz_answer, fuzz_answer_seeds};
use crate::check::{self, ConfigError, Secret};
use crate::source::Source;

/// `[kafka]` as written.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Section {
    /// Time between collections.
    #[serde(default = "check::default_interval", with = "humantime_serde")]
    #[schemars(with = "String", extend("format" = "duration"))]
    interval: Duration,
    /// Per target; a slower target is marked down (`surge_source_up` 0).
    #[serde(default = "check::default_timeout", with = "humantime_serde")]
    #[schemars(with = "String", extend("format" = "duration"))]
    timeout: Duration,
    /// How often topics, partitions and groups are re-discovered (and groups described).
    #[serde(default = "default_discovery", with = "humantime_serde")]
    #[schemars(with = "String", extend("format" = "duration"))]
    discovery_interval: Duration,
    /// Span the growing/draining decision looks at; it must hold `min_samples` (4) of a
    /// group's commits for its trend to be judged.
    #[serde(default = "default_trend_window", with = "humantime_serde")]
    #[schemars(with = "String", extend("format" = "duration"))]
    window: Duration,
    /// Span consume/produce rates are computed over.
    #[serde(default = "default_rate_window", with = "humantime_serde")]
    #[schemars(with = "String", extend("format" = "duration"))]
    rate_window: Duration,
    /// Committed offset unchanged this long (or twice the group's commit interval, if
    /// longer) with lag > 0 means stalled.
    #[serde(default = "default_stall_after", with = "humantime_serde")]
    #[schemars(with = "String", extend("format" = "duration"))]
    stall_after: Duration,
    /// How far back log-end history goes for time lag; older lag is reported as a lower bound.
    #[serde(default = "default_time_lag_horizon", with = "humantime_serde")]
    #[schemars(with = "String", extend("format" = "duration"))]
    time_lag_horizon: Duration,
    /// Per-partition series (offsets, lag); off keeps only per-topic and per-group series.
    #[serde(default = "default_true")]
    partition_metrics: bool,
    /// Partitions a group never committed: `absent` (no lag series) or `log_start`.
    #[serde(default)]
    uncommitted: Uncommitted,
    /// Most lag one partition adds to `surge_kafka_group_topic_scalable_lag`: one consumer's
    /// share, set to the per-replica lag target your HPAs or ScaledObjects scale on, so a hot
    /// partition asks for at most the one consumer that can read it. Unset: uncapped.
    #[schemars(example = &100)]
    scalable_lag_partition_cap: Option<u64>,
    /// `[[kafka.clusters]]`: every Kafka cluster to read consumer lag from.
    clusters: Vec<ClusterSection>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct ClusterSection {
    /// The `cluster` label and source target; unique.
    #[schemars(example = &"shop")]
    name: String,
    /// Brokers to start from, comma-separated `host:port`.
    #[schemars(example = &"kafka-0:9092,kafka-1:9092")]
    bootstrap_servers: String,
    /// Regexes over group and topic names. Deny wins over allow.
    #[schemars(example = &"^(payment|shipping)$")]
    group_allow: Option<String>,
    /// Regex over group names: not these groups.
    #[schemars(example = &"^console-consumer-")]
    group_deny: Option<String>,
    /// Regex over topic names: only these topics (deny wins over allow).
    #[schemars(example = &"^(order-placed|payment-processed)")]
    topic_allow: Option<String>,
    /// Default: internal topics (`^__`).
    #[serde(default = "default_topic_deny")]
    topic_deny: Option<String>,
    /// Connection properties, named as librdkafka names them; the names understood are
    /// those the example config lists (`PROPERTIES`), any other is refused.
    #[serde(default)]
    #[schemars(example = [("security.protocol", "SASL_SSL"), ("sasl.mechanism", "SCRAM-SHA-512")].into_iter().collect::<std::collections::BTreeMap<_, _>>())]
    properties: BTreeMap<String, String>,
    /// Environment variable or file holding `sasl.password`.
    #[schemars(example = &"SURGE_KAFKA_PASSWORD")]
    sasl_password_env: Option<String>,
    /// File holding `sasl.password`.
    #[schemars(example = &"/run/secrets/kafka-password")]
    sasl_password_file: Option<PathBuf>,
    /// Most partitions (of admitted topics) and consumer groups (admitted) one cycle reads;
    /// past either the target fails with the count, never a silently partial answer.
    #[serde(default = "default_max_partitions")]
    max_partitions: usize,
    /// Most consumer groups (admitted) one cycle reads; past it the target fails with the count.
    #[serde(default = "default_max_groups")]
    max_groups: usize,
}

fn default_max_partitions() -> usize {
    50_000
}
fn default_max_groups() -> usize {
    10_000
}

fn default_true() -> bool {
    true
}
fn default_topic_deny() -> Option<String> {
    Some("^__".into())
}
fn default_discovery() -> Duration {
    Duration::from_secs(60)
}
fn default_trend_window() -> Duration {
    Duration::from_secs(600)
}
fn default_rate_window() -> Duration {
    Duration::from_secs(60)
}
fn default_stall_after() -> Duration {
    Duration::from_secs(60)
}
fn default_time_lag_horizon() -> Duration {
    Duration::from_secs(3600)
}

/// `[kafka]`, checked.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) interval: Duration,
    timeout: Duration,
    discovery_interval: Duration,
    time_lag_horizon: Duration,
    partition_metrics: bool,
    uncommitted: Uncommitted,
    scalable_lag_partition_cap: Option<u64>,
    trend: TrendConfig,
    clusters: Vec<ClusterSettings>,
}

#[derive(Debug, Clone)]
struct ClusterSettings {
    name: String,
    bootstrap_servers: String,
    connection: ConnectionSettings,
    sasl_password: Option<Secret>,
    groups: NameFilter,
    topics: NameFilter,
    limits: Limits,
}

/// How much of a cluster one cycle may read.
#[derive(Debug, Clone, Copy)]
struct Limits {
    partitions: usize,
    groups: usize,
}

/// Properties the exporter understands (librdkafka's names, so existing configurations keep
/// working); any other is refused by name rather than silently ignored.
const PROPERTIES: [&str; 9] = [
    "security.protocol",
    "sasl.mechanism",
    "sasl.mechanisms",
    "sasl.username",
    "ssl.ca.location",
    "ssl.certificate.location",
    "ssl.key.location",
    "client.id",
    "receive.message.max.bytes",
];

/// How to reach a cluster, checked.
#[derive(Debug, Clone, Default)]
struct ConnectionSettings {
    tls: bool,
    sasl: Option<(Mechanism, String)>,
    ca: Option<PathBuf>,
    certificate: Option<PathBuf>,
    key: Option<PathBuf>,
    client_id: Option<String>,
    /// Largest answer read from a broker.
    max_answer: usize,
}

impl ConnectionSettings {
    fn parse(
        properties: &BTreeMap<String, String>,
        has_password: bool,
        at: &dyn Fn(&str) -> String,
    ) -> Result<Self, ConfigError> {
        if let Some(key) = properties
            .keys()
            .find(|k| !PROPERTIES.contains(&k.as_str()))
        {
            let hint = match key.as_str() {
                "bootstrap.servers" => "use bootstrap_servers".to_string(),
                "sasl.password" => "use sasl_password_env or sasl_password_file".to_string(),
                _ => format!("not supported (supported: {})", PROPERTIES.join(", ")),
            };
            return Err(ConfigError::field(at(&format!("properties.{key:?}")), hint));
        }
        let get = |k: &str| properties.get(k).map(|v| v.trim().to_string());
        let protocol = get("security.protocol")
            .unwrap_or_else(|| "plaintext".into())
            .to_ascii_lowercase();
        let (tls, sasl) = match protocol.as_str() {
            "plaintext" => (false, false),
            "ssl" => (true, false),
            "sasl_plaintext" => (false, true),
            "sasl_ssl" => (true, true),
            other => {
                return Err(ConfigError::field(
                    at("properties.\"security.protocol\""),
                    format!("{other:?} is not one of plaintext, ssl, sasl_plaintext, sasl_ssl"),
                ));
            }
        };
        let mechanism = get("sasl.mechanism").or_else(|| get("sasl.mechanisms"));
        let username = get("sasl.username");
        let sasl = if sasl {
            let mechanism = Mechanism::parse(mechanism.as_deref().unwrap_or("PLAIN"))
                .map_err(|e| ConfigError::field(at("properties.\"sasl.mechanism\""), e))?;
            let Some(username) = username else {
                return Err(ConfigError::field(
                    at("properties.\"sasl.username\""),
                    format!("is required with security.protocol = {protocol}"),
                ));
            };
            if !has_password {
                return Err(ConfigError::field(
                    at("sasl_password_env"),
                    format!(
                        "a password (sasl_password_env or sasl_password_file) is required with security.protocol = {protocol}"
                    ),
                ));
            }
            Some((mechanism, username))
        } else {
            if mechanism.is_some() || username.is_some() || has_password {
                return Err(ConfigError::field(
                    at("properties.\"security.protocol\""),
                    format!(
                        "SASL settings are given but security.protocol is {protocol}: use sasl_plaintext or sasl_ssl"
                    ),
                ));
            }
            None
        };
        let path = |k: &str| get(k).map(PathBuf::from);
        let (ca, certificate, key) = (
            path("ssl.ca.location"),
            path("ssl.certificate.location"),
            path("ssl.key.location"),
        );
        if !tls && (ca.is_some() || certificate.is_some() || key.is_some()) {
            return Err(ConfigError::field(
                at("properties.\"security.protocol\""),
                format!(
                    "ssl.* settings are given but security.protocol is {protocol}: use ssl or sasl_ssl"
                ),
            ));
        }
        let max_answer = match get("receive.message.max.bytes") {
            None => wire::DEFAULT_MAX_ANSWER,
            Some(text) => text
                .parse::<usize>()
                .ok()
                .filter(|n| wire::MAX_ANSWER_RANGE.contains(n))
                .ok_or_else(|| {
                    ConfigError::field(
                        at("properties.\"receive.message.max.bytes\""),
                        format!(
                            "{text:?} is not a byte count from {} to {}",
                            wire::MAX_ANSWER_RANGE.start(),
                            wire::MAX_ANSWER_RANGE.end()
                        ),
                    )
                })?,
        };
        Ok(ConnectionSettings {
            tls,
            sasl,
            ca,
            certificate,
            key,
            client_id: get("client.id"),
            max_answer,
        })
    }
}

impl Settings {
    /// Settings that leave a cluster's connection open to a network attacker, one line each.
    pub(crate) fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        for c in &self.clusters {
            if let Some((mechanism, _)) = &c.connection.sasl
                && !c.connection.tls
            {
                let why = if *mechanism == Mechanism::Plain {
                    "SASL PLAIN over plaintext: the password crosses the network in the clear"
                } else {
                    "SASL over plaintext: the login is safe, but every answer crosses the network unencrypted and unauthenticated"
                };
                warnings.push(format!(
                    "kafka.clusters[{}]: {why}; use security.protocol = sasl_ssl",
                    c.name
                ));
            }
        }
        warnings
    }
}

impl Section {
    pub(crate) fn settings(self) -> Result<Settings, ConfigError> {
        check::timing("kafka", self.interval, self.timeout)?;
        if self.discovery_interval < self.interval {
            return Err(ConfigError::field(
                "kafka.discovery_interval",
                "must not be shorter than kafka.interval",
            ));
        }
        if self.window < self.interval * 4 {
            return Err(ConfigError::field(
                "kafka.window",
                "must cover at least 4 intervals to judge a trend",
            ));
        }
        if self.scalable_lag_partition_cap == Some(0) {
            return Err(ConfigError::field(
                "kafka.scalable_lag_partition_cap",
                "must be above 0 (leave it out for no cap)",
            ));
        }
        let names: Vec<&str> = self.clusters.iter().map(|c| c.name.as_str()).collect();
        check::names("kafka.clusters", "cluster", &names)?;
        let mut clusters = Vec::with_capacity(self.clusters.len());
        for (i, c) in self.clusters.into_iter().enumerate() {
            let at = |f: &str| format!("kafka.clusters[{i}].{f}");
            if c.bootstrap_servers.trim().is_empty() {
                return Err(ConfigError::field(
                    at("bootstrap_servers"),
                    "must not be empty",
                ));
            }
            let compile = |field: &str, re: &Option<String>| {
                re.as_deref()
                    .map(|re| check::regex(&at(field), re))
                    .transpose()
            };
            let groups = NameFilter {
                allow: compile("group_allow", &c.group_allow)?,
                deny: compile("group_deny", &c.group_deny)?,
            };
            let topics = NameFilter {
                allow: compile("topic_allow", &c.topic_allow)?,
                deny: compile("topic_deny", &c.topic_deny)?,
            };
            let sasl_password = Secret::from_pair(
                at,
                "sasl_password",
                c.sasl_password_env,
                c.sasl_password_file,
            )?;
            for (field, value) in [
                ("max_partitions", c.max_partitions),
                ("max_groups", c.max_groups),
            ] {
                if value == 0 {
                    return Err(ConfigError::field(at(field), "must be above 0"));
                }
            }
            let connection =
                ConnectionSettings::parse(&c.properties, sasl_password.is_some(), &at)?;
            clusters.push(ClusterSettings {
                name: c.name,
                bootstrap_servers: c.bootstrap_servers,
                connection,
                sasl_password,
                groups,
                topics,
                limits: Limits {
                    partitions: c.max_partitions,
                    groups: c.max_groups,
                },
            });
        }
        Ok(Settings {
            interval: self.interval,
            timeout: self.timeout,
            discovery_interval: self.discovery_interval,
            time_lag_horizon: self.time_lag_horizon,
            partition_metrics: self.partition_metrics,
            uncommitted: self.uncommitted,
            scalable_lag_partition_cap: self.scalable_lag_partition_cap,
            trend: TrendConfig {
                window: self.window,
                rate_window: self.rate_window,
                stall_after: self.stall_after,
                blind_after: self.interval * 3,
                ..TrendConfig::default()
            },
            clusters,
        })
    }
}

/// Allow/deny filter over names; deny wins.
#[derive(Debug, Clone, Default)]
struct NameFilter {
    allow: Option<Regex>,
    deny: Option<Regex>,
}

impl NameFilter {
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
    /// (topic, partition) → the member it is assigned to.
    owners: BTreeMap<(String, i32), String>,
}

/// Everything a cluster remembers between cycles.
#[derive(Default)]
struct ClusterState {
    client: Option<ClusterClient>,
    discovered_at: Option<Instant>,
    topics: BTreeMap<String, Vec<i32>>,
    groups: BTreeMap<String, GroupInfo>,
    log_end_history: HashMap<(String, i32), LogEndHistory>,
    produce_history: HashMap<String, VecDeque<(f64, f64)>>,
    group_topic_history: HashMap<(String, String), VecDeque<Point>>,
    /// (group, topic) → partition → since when its committed offset stands where it is.
    stall_clocks: HashMap<(String, String), BTreeMap<i32, StallClock>>,
    /// (group, topic)s already warned of committing too rarely for the trend window.
    rare_committers: HashSet<(String, String)>,
    clamped: HashMap<(String, String), u64>,
    group_errors: HashMap<(String, &'static str), u64>,
    describe_failing: bool,
}

struct ClusterTarget {
    name: String,
    bootstrap_servers: String,
    security: Security,
    groups: NameFilter,
    topics: NameFilter,
    limits: Limits,
    /// Held for a whole cycle: one cycle of a cluster at a time.
    state: tokio::sync::Mutex<ClusterState>,
}

pub(crate) struct KafkaSource {
    settings: Arc<Settings>,
    clusters: Vec<Arc<ClusterTarget>>,
}

impl KafkaSource {
    /// Build the source; reads SASL passwords now, so a missing secret is a startup error.
    pub(crate) fn new(settings: &Settings) -> Result<Self, ConfigError> {
        let clusters = settings
            .clusters
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let at = |f: &str| format!("kafka.clusters[{i}].{f}");
                let s = &c.connection;
                let tls = if s.tls {
                    let connector = wire::tls_connector(
                        s.ca.as_deref(),
                        s.certificate.as_deref(),
                        s.key.as_deref(),
                    )
                    .map_err(|e| ConfigError::field(at("properties"), e))?;
                    Some(connector)
                } else {
                    None
                };
                let sasl = match (&s.sasl, &c.sasl_password) {
                    (Some((mechanism, username)), Some(secret)) => Some(SaslLogin {
                        mechanism: *mechanism,
                        username: username.clone(),
                        password: secret.read()?,
                    }),
                    _ => None,
                };
                Ok(Arc::new(ClusterTarget {
                    name: c.name.clone(),
                    bootstrap_servers: c.bootstrap_servers.clone(),
                    security: Security {
                        tls,
                        sasl,
                        client_id: s
                            .client_id
                            .clone()
                            .unwrap_or_else(|| "surge-exporter".into()),
                        max_answer: s.max_answer,
                    },
                    groups: c.groups.clone(),
                    topics: c.topics.clone(),
                    limits: c.limits,
                    state: tokio::sync::Mutex::new(ClusterState::default()),
                }))
            })
            .collect::<Result<Vec<_>, ConfigError>>()?;
        Ok(KafkaSource {
            settings: Arc::new(settings.clone()),
            clusters,
        })
    }
}

fn now_seconds() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl ClusterTarget {
    /// One cycle, bounded by `deadline`.
    async fn collect(
        &self,
        settings: &Settings,
        deadline: tokio::time::Instant,
    ) -> anyhow::Result<Vec<Sample>> {
        let mut state = self.state.lock().await;
        let state = &mut *state;
        let client = state.client.get_or_insert_with(|| {
            // A third of the cycle per request: one unreachable broker leaves time for the
            // others.
            ClusterClient::new(
                &self.bootstrap_servers,
                self.security.clone(),
                settings.timeout / 3,
            )
        });

        let discover = state
            .discovered_at
            .is_none_or(|at| at.elapsed() >= settings.discovery_interval);
        if discover {
            let layout = client.metadata(deadline).await.map_err(|e| anyhow!(e))?;
            let (listed, complete) = client.list_groups(deadline).await.map_err(|e| anyhow!(e))?;
            let topics = admitted_topics(&layout, &self.topics);
            let partitions: usize = topics.values().map(Vec::len).sum();
            if partitions > self.limits.partitions {
                bail!(
                    "{partitions} partitions in admitted topics, more than max_partitions = {}: narrow topic_allow/topic_deny or raise it",
                    self.limits.partitions
                );
            }
            let admitted_groups = listed
                .iter()
                .filter(|g| self.groups.admits(&g.group))
                .count();
            if admitted_groups > self.limits.groups {
                bail!(
                    "{admitted_groups} consumer groups admitted, more than max_groups = {}: narrow group_allow/group_deny or raise it",
                    self.limits.groups
                );
            }
            state.topics = topics;
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
            if !complete {
                // A broker that did not answer still coordinates its groups: keep them (and
                // their histories) rather than drop them until it answers.
                for (name, info) in std::mem::take(&mut state.groups) {
                    groups.entry(name).or_insert(info);
                }
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
        let offsets = client
            .list_offsets(&partitions, &specs, deadline)
            .await
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
        let committed = client
            .committed_offsets(&group_names, &state.topics, deadline)
            .await;

        if discover {
            self.describe(state, &group_names, deadline).await;
            state.discovered_at = Some(Instant::now());
        }
        let requests = state
            .client
            .as_ref()
            .map(ClusterClient::requests)
            .unwrap_or_default();

        let now = now_seconds();
        let inputs = CycleInputs {
            cluster: &self.name,
            now,
            watermarks: &watermarks,
            committed: &committed,
            requests: &requests,
        };
        Ok(build_samples(state, &inputs, settings))
    }

    /// Describe groups, after the offsets (a broker that cannot describe may drop the
    /// connection); on failure every group's state is unknown and the error is counted per
    /// group.
    async fn describe(
        &self,
        state: &mut ClusterState,
        groups: &[String],
        deadline: tokio::time::Instant,
    ) {
        let Some(client) = state.client.as_mut() else {
            return;
        };
        if groups.is_empty() {
            return;
        }
        match client.describe_groups(groups, deadline).await {
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
                            info.owners = d.owners.clone();
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
    settings: &Settings,
) -> Vec<Sample> {
    let trend = &settings.trend;
    let cluster = inputs.cluster;
    let now = inputs.now;
    let mut out = Vec::new();
    let c = || -> Labels { vec![("cluster", cluster.to_string())] };

    // Partition watermarks and their history (shared by every group reading the topic).
    let mut topic_end: BTreeMap<&str, f64> = BTreeMap::new();
    // Topics with a partition whose log end is unknown this cycle (its leader failed): their
    // sums would drop and come back, read as a burst of production or consumption, so they
    // get no sum, rate or trend point this cycle — missing, not wrong.
    let mut incomplete: HashSet<&str> = HashSet::new();
    for (topic, partitions) in &state.topics {
        let mut l = c();
        l.push(("topic", topic.clone()));
        out.push(Sample::new(&TOPIC_PARTITIONS, l, partitions.len() as f64));
        for &partition in partitions {
            let key = (topic.clone(), partition);
            let marks = inputs.watermarks.get(&key).copied().unwrap_or_default();
            if marks.end.is_none() {
                incomplete.insert(topic.as_str());
            }
            if let Some(end) = marks.end {
                *topic_end.entry(topic.as_str()).or_default() += end as f64;
                state.log_end_history.entry(key).or_default().push(
                    now,
                    end as f64,
                    settings.time_lag_horizon,
                );
                if settings.partition_metrics {
                    out.push(Sample::new(
                        &LOG_END,
                        partition_labels(cluster, topic, partition),
                        end as f64,
                    ));
                }
            }
            if let (Some(start), true) = (marks.start, settings.partition_metrics) {
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
    topic_end.retain(|t, _| !incomplete.contains(t));

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
        .retain(|t, _| state.topics.contains_key(t));

    // Groups.
    let mut seen_group_topics = HashSet::new();
    for (group, info) in &state.groups {
        let g = || -> Labels {
            let mut l = c();
            l.push(("group", group.clone()));
            l
        };
        let current = GroupState::from_broker(&info.state);
        for s in GroupState::ALL {
            let mut l = g();
            l.push(("state", s.label().to_string()));
            out.push(Sample::new(
                &GROUP_STATE,
                l,
                f64::from(u8::from(*s == current)),
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
            settings.uncommitted,
        );
        if settings.partition_metrics {
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
            if incomplete.contains(topic.as_str()) {
                continue;
            }
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

            let history = state.group_topic_history.entry(key.clone()).or_default();
            history.push_back(Point {
                t: now,
                lag: sums.lag as f64,
                committed: sums.committed as f64,
                log_end: sums.log_end as f64,
            });
            // Two windows, so a commit interval up to a window long can be measured.
            while history
                .front()
                .is_some_and(|p| p.t < now - keep_for.max(2.0 * trend.window.as_secs_f64()))
            {
                history.pop_front();
            }
            let points: Vec<Point> = history.iter().copied().collect();
            // Each partition judged alone: the threshold is the topic's (the stall time, or
            // twice the group's commit interval if it commits rarer).
            let threshold = trend
                .stall_after
                .as_secs_f64()
                .max(2.0 * trend::commit_interval(&points).unwrap_or(0.0));
            let blind_after = trend.blind_after.as_secs_f64();
            let mut judged = Vec::new();
            let mut stalled = 0;
            let clocks = state.stall_clocks.entry(key).or_default();
            for p in lags.iter().filter(|p| p.topic == topic) {
                let (Some(committed), Some(lag)) = (p.committed, p.lag) else {
                    continue;
                };
                let clock = clocks
                    .entry(p.partition)
                    .and_modify(|c| c.observe(committed, now, blind_after))
                    .or_insert_with(|| StallClock::start(committed, now));
                let is_stalled = clock.stalled(lag, now, threshold);
                if is_stalled {
                    stalled += 1;
                    let member = info
                        .owners
                        .get(&(topic.clone(), p.partition))
                        .cloned()
                        .unwrap_or_default();
                    let mut l = gt();
                    l.push(("partition", p.partition.to_string()));
                    l.push(("member", member));
                    out.push(Sample::new(&PARTITION_STALLED, l, clock.still_for(now)));
                }
                judged.push((lag, is_stalled));
            }
            out.push(Sample::new(&STALLED_PARTITIONS, gt(), f64::from(stalled)));
            out.push(Sample::new(
                &SCALABLE_LAG,
                gt(),
                scalable_lag(judged, settings.scalable_lag_partition_cap) as f64,
            ));
            // The lag state stays the topic's summed rule: a sequential consumer working
            // through one partition's backlog leaves its others still for as long, which no
            // per-partition threshold tells from a wedged member without knowing who owns
            // what. Stalled partitions are counted, named and left out of the scalable lag.
            let lag_state = trend::classify(&points, trend);
            if let Some(message) = trend::window_too_short(&points, trend)
                && state.rare_committers.insert((group.clone(), topic.clone()))
            {
                tracing::warn!(cluster, group = %group, topic = %topic, "{message}");
            }
            for s in LagState::ALL {
                let mut l = gt();
                l.push(("state", s.label().to_string()));
                out.push(Sample::new(
                    &LAG_STATE,
                    l,
                    f64::from(u8::from(*s == lag_state)),
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
    let partitions = &state.topics;
    state.stall_clocks.retain(|k, clocks| {
        let Some(live) = partitions.get(&k.1).filter(|_| alive(k)) else {
            return false;
        };
        clocks.retain(|p, _| live.contains(p));
        true
    });
    state.clamped.retain(|k, _| alive(k));
    state.rare_committers.retain(|k| alive(k));
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
        self.settings.interval
    }
    fn timeout(&self) -> Duration {
        self.settings.timeout
    }
    fn targets(&self) -> Vec<String> {
        self.clusters.iter().map(|c| c.name.clone()).collect()
    }
    async fn collect(&self, target: &str) -> anyhow::Result<Vec<Sample>> {
        let cluster = self
            .clusters
            .iter()
            .find(|c| c.name == target)
            .cloned()
            .ok_or_else(|| anyhow!("unknown target {target}"))?;
        // Finish a little before the scheduler's timeout so a slow broker yields our own
        // error message.
        let deadline = tokio::time::Instant::now() + self.settings.timeout.mul_f64(0.9);
        cluster.collect(&self.settings, deadline).await
    }
}

#[cfg(test)]
mod tests {

    /// The example config lists exactly the properties the exporter understands.
    #[test]
    fn the_example_config_names_every_understood_property() {
        let example = include_str!("../../surge-exporter.example.toml");
        let listed = example
            .split("any other name is\n# refused:")
            .nth(1)
            .and_then(|rest| rest.split("\n[kafka.clusters.properties]").next())
            .expect("the example lists the properties");
        let listed: Vec<&str> = listed
            .split(|c: char| matches!(c, ',' | '#' | '(' | ')') || c.is_whitespace())
            .filter(|w| w.contains('.'))
            .map(|w| w.trim_end_matches('.'))
            .collect();
        let mut want = PROPERTIES.to_vec();
        let mut got = listed.clone();
        want.sort_unstable();
        got.sort_unstable();
        assert_eq!(got, want, "{listed:?}");
    }

    use super::*;
    use surge_metrics::Family;

    fn settings() -> Result<Settings, String> {
        let section: Section = toml::from_str(
            "interval = \"5s\"\ntimeout = \"5s\"\nwindow = \"60s\"\nrate_window = \"60s\"\n\
             [[clusters]]\nname = \"c\"\nbootstrap_servers = \"127.0.0.1:9\"\n",
        )
        .map_err(|e| e.to_string())?;
        section.settings().map_err(|e| e.0)
    }

    /// `partitions` of `topic`, each from offset 0 to `end`.
    fn log_ends(topic: &str, partitions: impl Iterator<Item = i32>, end: i64) -> lag::Offsets {
        partitions
            .map(|p| {
                let marks = Watermarks {
                    end: Some(end),
                    start: Some(0),
                };
                ((topic.to_string(), p), marks)
            })
            .collect()
    }

    fn value(samples: &[Sample], family: &Family, want: &[(&str, &str)]) -> Option<f64> {
        samples
            .iter()
            .find(|s| {
                std::ptr::eq(s.family, family) && want.iter().all(|(k, v)| s.label(k) == Some(v))
            })
            .map(|s| s.value)
    }

    /// A partition whose log end is unknown for a cycle (its leader did not answer) leaves
    /// the topic without sums, rates or a trend point for that cycle, instead of a dip and a
    /// jump that read as a burst of production.
    #[test]
    fn a_topic_missing_a_log_end_has_no_sums_that_cycle() -> Result<(), String> {
        let settings = settings()?;
        let mut state = ClusterState::default();
        state.topics.insert("t".into(), vec![0, 1]);
        state.groups.insert("g".into(), GroupInfo::default());
        let committed: HashMap<String, Result<Vec<Committed>, String>> = HashMap::from([(
            "g".to_string(),
            Ok([0, 1]
                .map(|p| Committed {
                    topic: "t".into(),
                    partition: p,
                    offset: Some(100),
                })
                .to_vec()),
        )]);
        let requests = BTreeMap::new();
        let gt = [("group", "g"), ("topic", "t")];
        let mut seen = Vec::new();
        // Each partition gains 10 messages every 5 s; partition 1's leader misses cycle 2.
        for (cycle, known) in [
            (0, [true, true]),
            (1, [true, true]),
            (2, [true, false]),
            (3, [true, true]),
        ] {
            let end = 110 + 10 * cycle;
            let watermarks = log_ends("t", [0, 1].into_iter().filter(|p| known[*p as usize]), end);
            let inputs = CycleInputs {
                cluster: "c",
                now: 1000.0 + 5.0 * cycle as f64,
                watermarks: &watermarks,
                committed: &committed,
                requests: &requests,
            };
            let samples = build_samples(&mut state, &inputs, &settings);
            seen.push((
                value(&samples, &TOPIC_LAG, &gt),
                value(&samples, &PRODUCE_RATE, &[("topic", "t")]),
            ));
        }
        assert_eq!(seen[1], (Some(40.0), Some(4.0)), "{seen:?}");
        assert_eq!(seen[2], (None, None), "{seen:?}");
        // Back: the same 4 msg/s (2 partitions × 10 per 5 s), no burst.
        assert_eq!(seen[3], (Some(80.0), Some(4.0)), "{seen:?}");
        Ok(())
    }

    /// Issue 28's trace through the whole cycle: a group of two members on four partitions,
    /// member b wedged (partitions 2 and 3 frozen) while a commits 0 and 1 every cycle. The
    /// topic's committed sum keeps moving, so the summed rule alone never says stalled; per
    /// partition, 2 and 3 stall once still for stall_after (60 s here), the group-topic counts 2
    /// stalled partitions, each named with its member, and the scalable lag is that of 0 and
    /// 1, each capped.
    #[test]
    fn a_wedged_member_stalls_its_partitions_while_the_others_commit() -> Result<(), String> {
        let section: Section = toml::from_str(
            "interval = \"15s\"\ntimeout = \"5s\"\nwindow = \"10m\"\nstall_after = \"60s\"\n\
             scalable_lag_partition_cap = 100\n\
             [[clusters]]\nname = \"c\"\nbootstrap_servers = \"127.0.0.1:9\"\n",
        )
        .map_err(|e| e.to_string())?;
        let settings = section.settings().map_err(|e| e.0)?;
        let mut state = ClusterState::default();
        state.topics.insert("t".into(), vec![0, 1, 2, 3]);
        let owners = (0..4)
            .map(|p| {
                (
                    ("t".to_string(), p),
                    if p < 2 { "a" } else { "b" }.to_string(),
                )
            })
            .collect();
        state.groups.insert(
            "g".into(),
            GroupInfo {
                state: "Stable".into(),
                members: Some(2),
                assignment: BTreeMap::from([("t".to_string(), vec![0, 1, 2, 3])]),
                owners,
            },
        );
        let requests = BTreeMap::new();
        let gt = [("group", "g"), ("topic", "t")];
        let mut first_stalled = None;
        let mut last = Vec::new();
        for cycle in 0..12 {
            let t = 15.0 * f64::from(cycle);
            // 25 msg/s per partition; a is 50 behind; b keeps pace until cycle 3 (t = 45),
            // then freezes.
            let end = 1000 + 375 * i64::from(cycle);
            let commit = |p: i32| {
                if p < 2 || cycle <= 3 {
                    end - 50
                } else {
                    1000 + 375 * 3 - 50
                }
            };
            let committed: HashMap<String, Result<Vec<Committed>, String>> = HashMap::from([(
                "g".to_string(),
                Ok((0..4)
                    .map(|p| Committed {
                        topic: "t".into(),
                        partition: p,
                        offset: Some(commit(p)),
                    })
                    .collect()),
            )]);
            let watermarks = log_ends("t", 0..4, end);
            let inputs = CycleInputs {
                cluster: "c",
                now: 1_000_000.0 + t,
                watermarks: &watermarks,
                committed: &committed,
                requests: &requests,
            };
            let samples = build_samples(&mut state, &inputs, &settings);
            let stalled = value(&samples, &STALLED_PARTITIONS, &gt);
            if stalled.is_some_and(|n| n > 0.0) && first_stalled.is_none() {
                first_stalled = Some(t);
            }
            last = samples;
        }
        // Its pace known (a commit every 15 s), frozen since the reading at t = 45: still for
        // the 60 s stall time at t = 105.
        assert_eq!(first_stalled, Some(105.0));
        assert_eq!(value(&last, &STALLED_PARTITIONS, &gt), Some(2.0));
        // The summed rule alone never calls it: a's commits keep the sums moving.
        let stalled_state = [("group", "g"), ("topic", "t"), ("state", "stalled")];
        assert_eq!(value(&last, &LAG_STATE, &stalled_state), Some(0.0));
        for (partition, member) in [("2", "b"), ("3", "b")] {
            let still = value(
                &last,
                &PARTITION_STALLED,
                &[("partition", partition), ("member", member)],
            );
            assert_eq!(still, Some(120.0), "partition {partition}");
        }
        assert_eq!(
            value(&last, &PARTITION_STALLED, &[("partition", "0")]),
            None
        );
        // 0 and 1 each 50 behind (under the cap of 100); 2 and 3 left out.
        assert_eq!(value(&last, &SCALABLE_LAG, &gt), Some(100.0));
        assert_eq!(
            value(&last, &TOPIC_LAG, &gt),
            Some(100.0 + 2.0 * (5125.0 - 2075.0))
        );
        Ok(())
    }
}
