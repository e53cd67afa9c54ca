//! `[kafka]`: the section as written, its checks, and the settings a cycle runs with.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use regex::Regex;
use serde::Deserialize;

use super::lag::Uncommitted;
use super::sasl::Mechanism;
use super::trend::TrendConfig;
use super::wire;
use crate::check::{self, ConfigError, Secret};

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
    pub(super) timeout: Duration,
    pub(super) discovery_interval: Duration,
    pub(super) time_lag_horizon: Duration,
    pub(super) partition_metrics: bool,
    pub(super) uncommitted: Uncommitted,
    pub(super) scalable_lag_partition_cap: Option<u64>,
    pub(super) trend: TrendConfig,
    pub(super) clusters: Vec<ClusterSettings>,
}

#[derive(Debug, Clone)]
pub(super) struct ClusterSettings {
    pub(super) name: String,
    pub(super) bootstrap_servers: String,
    pub(super) connection: ConnectionSettings,
    pub(super) sasl_password: Option<Secret>,
    pub(super) groups: NameFilter,
    pub(super) topics: NameFilter,
    pub(super) limits: Limits,
}

/// How much of a cluster one cycle may read.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    pub(super) partitions: usize,
    pub(super) groups: usize,
}

/// Properties the exporter understands (librdkafka's names, so existing configurations keep
/// working); any other is refused by name rather than silently ignored.
pub(super) const PROPERTIES: [&str; 9] = [
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
pub(super) struct ConnectionSettings {
    pub(super) tls: bool,
    pub(super) sasl: Option<(Mechanism, String)>,
    pub(super) ca: Option<PathBuf>,
    pub(super) certificate: Option<PathBuf>,
    pub(super) key: Option<PathBuf>,
    pub(super) client_id: Option<String>,
    /// Largest answer read from a broker.
    pub(super) max_answer: usize,
}

impl ConnectionSettings {
    pub(super) fn parse(
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
pub(super) struct NameFilter {
    pub(super) allow: Option<Regex>,
    pub(super) deny: Option<Regex>,
}

impl NameFilter {
    pub(super) fn admits(&self, name: &str) -> bool {
        self.allow.as_ref().is_none_or(|r| r.is_match(name))
            && !self.deny.as_ref().is_some_and(|r| r.is_match(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example config lists exactly the properties the exporter understands.
    #[test]
    fn the_example_config_names_every_understood_property() {
        let example = include_str!("../../../surge-exporter.example.toml");
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
}
