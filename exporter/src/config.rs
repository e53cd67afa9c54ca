//! The exporter's TOML configuration: one serde struct per section, then semantic checks.
//!
//! Every error is one line that names the offending field, e.g.
//! `postgres.targets[1].interval: invalid duration "15x"`.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use regex::Regex;
use serde::Deserialize;

use crate::quantity::parse_cpu_millis;

/// A configuration problem, rendered as a single line naming the field.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl ConfigError {
    fn field(path: impl std::fmt::Display, message: impl std::fmt::Display) -> Self {
        ConfigError(format!("{path}: {message}"))
    }
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub exporter: ExporterSection,
    pub postgres: Option<PostgresSection>,
    pub kubernetes: Option<KubernetesSection>,
    pub processes: Option<ProcessesSection>,
    pub kafka: Option<KafkaSection>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExporterSection {
    /// Address `/metrics` is served on; `--listen` overrides it.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
}

impl Default for ExporterSection {
    fn default() -> Self {
        ExporterSection {
            listen: default_listen(),
        }
    }
}

pub fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9917))
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresSection {
    #[serde(default = "default_interval", with = "humantime_serde")]
    pub interval: Duration,
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// How long a standby that vanished from `pg_stat_replication` keeps being reported as
    /// not streaming, so a dead replica is visible rather than silently absent.
    #[serde(default = "default_standby_retention", with = "humantime_serde")]
    pub standby_retention: Duration,
    pub targets: Vec<PostgresTarget>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresTarget {
    /// The `target` label; must be unique.
    pub name: String,
    /// Connection URL, e.g. `postgres://surge@db:5432/postgres?sslmode=require`.
    pub dsn: Option<String>,
    /// Name of an environment variable holding the whole connection URL.
    pub dsn_env: Option<String>,
    /// Name of an environment variable holding the password.
    pub password_env: Option<String>,
    /// File holding the password (trailing newline ignored).
    pub password_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesSection {
    #[serde(default = "default_interval", with = "humantime_serde")]
    pub interval: Duration,
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Namespaces to watch; empty means all namespaces (needs cluster-wide RBAC).
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// Kubeconfig file; without it, in-cluster config, then `$KUBECONFIG` / `~/.kube/config`.
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context to use (default: the file's current context).
    pub context: Option<String>,
    /// The HPA controller's `--horizontal-pod-autoscaler-cpu-initialization-period`.
    #[serde(default = "default_cpu_initialization", with = "humantime_serde")]
    pub cpu_initialization_period: Duration,
    /// The HPA controller's `--horizontal-pod-autoscaler-initial-readiness-delay`.
    #[serde(default = "default_readiness_delay", with = "humantime_serde")]
    pub initial_readiness_delay: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessesSection {
    #[serde(default = "default_process_interval", with = "humantime_serde")]
    pub interval: Duration,
    #[serde(default = "default_process_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    pub workloads: Vec<ProcessWorkload>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessWorkload {
    pub namespace: String,
    pub workload: String,
    /// CPU request of one replica, as a Kubernetes quantity (`250m`, `0.5`, `1`).
    pub cpu_request: String,
    /// Glob of pid files, one per replica; the file stem becomes the `pod` label.
    pub pid_files: Option<String>,
    /// Regex matched against the full command line (arguments joined by spaces).
    pub cmdline: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSection {
    #[serde(default = "default_interval", with = "humantime_serde")]
    pub interval: Duration,
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// How often topics, partitions and groups are re-discovered (and groups described).
    #[serde(default = "default_discovery", with = "humantime_serde")]
    pub discovery_interval: Duration,
    /// Span the growing/draining decision looks at.
    #[serde(default = "default_trend_window", with = "humantime_serde")]
    pub window: Duration,
    /// Span consume/produce rates are computed over.
    #[serde(default = "default_rate_window", with = "humantime_serde")]
    pub rate_window: Duration,
    /// Committed offset unchanged this long with lag > 0 means stalled.
    #[serde(default = "default_stall_after", with = "humantime_serde")]
    pub stall_after: Duration,
    /// How far back log-end history goes for time lag; older lag is reported as a lower bound.
    #[serde(default = "default_time_lag_horizon", with = "humantime_serde")]
    pub time_lag_horizon: Duration,
    /// Per-partition series (offsets, lag); off keeps only per-topic and per-group series.
    #[serde(default = "default_true")]
    pub partition_metrics: bool,
    /// Partitions a group never committed: `absent` (no lag series) or `log_start`.
    #[serde(default)]
    pub uncommitted: crate::sources::kafka::Uncommitted,
    pub clusters: Vec<KafkaCluster>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaCluster {
    /// The `cluster` label and source target; unique.
    pub name: String,
    pub bootstrap_servers: String,
    /// Regexes over group and topic names. Deny wins over allow.
    pub group_allow: Option<String>,
    pub group_deny: Option<String>,
    pub topic_allow: Option<String>,
    /// Default: internal topics (`^__`).
    #[serde(default = "default_topic_deny")]
    pub topic_deny: Option<String>,
    /// Extra librdkafka properties (security.protocol, sasl.mechanism, ssl.ca.location, ...).
    #[serde(default)]
    pub properties: std::collections::BTreeMap<String, String>,
    /// Environment variable or file holding `sasl.password`.
    pub sasl_password_env: Option<String>,
    pub sasl_password_file: Option<PathBuf>,
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

fn default_interval() -> Duration {
    Duration::from_secs(15)
}
fn default_process_interval() -> Duration {
    Duration::from_secs(5)
}
fn default_process_timeout() -> Duration {
    Duration::from_secs(2)
}
fn default_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_standby_retention() -> Duration {
    Duration::from_secs(3600)
}
fn default_cpu_initialization() -> Duration {
    Duration::from_secs(300)
}
fn default_readiness_delay() -> Duration {
    Duration::from_secs(30)
}

impl Config {
    /// Read and validate a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("cannot read {}: {e}", path.display())))?;
        Config::parse(&text)
    }

    /// Parse and validate config text.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let deserializer =
            toml::Deserializer::parse(text).map_err(|e| ConfigError(syntax_message(text, &e)))?;
        let config: Config = serde_path_to_error::deserialize(deserializer).map_err(|e| {
            let path = e.path().to_string();
            let message = one_line(e.inner().message());
            if path == "." {
                ConfigError(message)
            } else {
                ConfigError::field(path, message)
            }
        })?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.postgres.is_none()
            && self.kubernetes.is_none()
            && self.processes.is_none()
            && self.kafka.is_none()
        {
            return Err(ConfigError(
                "no source configured: add a [postgres], [kafka], [kubernetes] or [processes] section"
                    .into(),
            ));
        }
        if let Some(k) = &self.kafka {
            validate_kafka(k)?;
        }
        if let Some(pg) = &self.postgres {
            check_timing("postgres", pg.interval, pg.timeout)?;
            if pg.targets.is_empty() {
                return Err(ConfigError::field(
                    "postgres.targets",
                    "at least one target is required",
                ));
            }
            let mut names = HashSet::new();
            for (i, t) in pg.targets.iter().enumerate() {
                let at = |f: &str| format!("postgres.targets[{i}].{f}");
                check_label_value(&at("name"), &t.name)?;
                if !names.insert(t.name.as_str()) {
                    return Err(ConfigError::field(
                        at("name"),
                        format!("duplicate target name {:?}", t.name),
                    ));
                }
                match (&t.dsn, &t.dsn_env) {
                    (Some(_), Some(_)) => {
                        return Err(ConfigError::field(
                            at("dsn"),
                            "set either dsn or dsn_env, not both",
                        ));
                    }
                    (None, None) => {
                        return Err(ConfigError::field(at("dsn"), "missing: set dsn or dsn_env"));
                    }
                    (Some(dsn), None) => {
                        if !(dsn.starts_with("postgres://") || dsn.starts_with("postgresql://")) {
                            return Err(ConfigError::field(
                                at("dsn"),
                                "must be a URL starting with postgres:// or postgresql://",
                            ));
                        }
                    }
                    (None, Some(_)) => {}
                }
                if t.password_env.is_some() && t.password_file.is_some() {
                    return Err(ConfigError::field(
                        at("password_file"),
                        "set either password_env or password_file, not both",
                    ));
                }
            }
        }
        if let Some(k) = &self.kubernetes {
            check_timing("kubernetes", k.interval, k.timeout)?;
            let mut seen = HashSet::new();
            for (i, ns) in k.namespaces.iter().enumerate() {
                if !is_dns_label(ns) {
                    return Err(ConfigError::field(
                        format!("kubernetes.namespaces[{i}]"),
                        format!("{ns:?} is not a valid namespace name"),
                    ));
                }
                if !seen.insert(ns) {
                    return Err(ConfigError::field(
                        format!("kubernetes.namespaces[{i}]"),
                        format!("duplicate namespace {ns:?}"),
                    ));
                }
            }
        }
        if let Some(p) = &self.processes {
            check_timing("processes", p.interval, p.timeout)?;
            if p.workloads.is_empty() {
                return Err(ConfigError::field(
                    "processes.workloads",
                    "at least one workload is required",
                ));
            }
            let mut seen = HashSet::new();
            for (i, w) in p.workloads.iter().enumerate() {
                let at = |f: &str| format!("processes.workloads[{i}].{f}");
                check_label_value(&at("namespace"), &w.namespace)?;
                check_label_value(&at("workload"), &w.workload)?;
                if !seen.insert((w.namespace.as_str(), w.workload.as_str())) {
                    return Err(ConfigError::field(
                        at("workload"),
                        format!("duplicate workload {}/{}", w.namespace, w.workload),
                    ));
                }
                match parse_cpu_millis(&w.cpu_request) {
                    Ok(m) if m > 0 => {}
                    Ok(_) => {
                        return Err(ConfigError::field(
                            at("cpu_request"),
                            "must be greater than 0",
                        ));
                    }
                    Err(e) => return Err(ConfigError::field(at("cpu_request"), e)),
                }
                match (&w.pid_files, &w.cmdline) {
                    (None, None) => {
                        return Err(ConfigError::field(
                            at("pid_files"),
                            "missing: set pid_files or cmdline",
                        ));
                    }
                    (Some(_), Some(_)) => {
                        return Err(ConfigError::field(
                            at("cmdline"),
                            "set either pid_files or cmdline, not both",
                        ));
                    }
                    (Some(pattern), None) => {
                        if let Err(e) = glob::Pattern::new(pattern) {
                            return Err(ConfigError::field(
                                at("pid_files"),
                                format!("invalid glob: {e}"),
                            ));
                        }
                    }
                    (None, Some(re)) => {
                        if let Err(e) = Regex::new(re) {
                            return Err(ConfigError::field(
                                at("cmdline"),
                                format!("invalid regex: {}", one_line(&e.to_string())),
                            ));
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

fn validate_kafka(k: &KafkaSection) -> Result<(), ConfigError> {
    check_timing("kafka", k.interval, k.timeout)?;
    if k.discovery_interval < k.interval {
        return Err(ConfigError::field(
            "kafka.discovery_interval",
            "must not be shorter than kafka.interval",
        ));
    }
    if k.window < k.interval * 4 {
        return Err(ConfigError::field(
            "kafka.window",
            "must cover at least 4 intervals to judge a trend",
        ));
    }
    if k.clusters.is_empty() {
        return Err(ConfigError::field(
            "kafka.clusters",
            "at least one cluster is required",
        ));
    }
    let mut names = HashSet::new();
    for (i, c) in k.clusters.iter().enumerate() {
        let at = |f: &str| format!("kafka.clusters[{i}].{f}");
        check_label_value(&at("name"), &c.name)?;
        if !names.insert(c.name.as_str()) {
            return Err(ConfigError::field(
                at("name"),
                format!("duplicate cluster name {:?}", c.name),
            ));
        }
        if c.bootstrap_servers.trim().is_empty() {
            return Err(ConfigError::field(
                at("bootstrap_servers"),
                "must not be empty",
            ));
        }
        for (field, re) in [
            ("group_allow", &c.group_allow),
            ("group_deny", &c.group_deny),
            ("topic_allow", &c.topic_allow),
            ("topic_deny", &c.topic_deny),
        ] {
            if let Some(re) = re
                && let Err(e) = Regex::new(re)
            {
                return Err(ConfigError::field(
                    at(field),
                    format!("invalid regex: {}", one_line(&e.to_string())),
                ));
            }
        }
        for key in c.properties.keys() {
            if matches!(
                key.as_str(),
                "bootstrap.servers" | "group.id" | "statistics.interval.ms" | "sasl.password"
            ) {
                return Err(ConfigError::field(
                    format!("kafka.clusters[{i}].properties.{key:?}"),
                    "is set by surge-exporter (use bootstrap_servers / sasl_password_env / sasl_password_file)",
                ));
            }
        }
        if c.sasl_password_env.is_some() && c.sasl_password_file.is_some() {
            return Err(ConfigError::field(
                at("sasl_password_file"),
                "set either sasl_password_env or sasl_password_file, not both",
            ));
        }
    }
    Ok(())
}

fn check_timing(section: &str, interval: Duration, timeout: Duration) -> Result<(), ConfigError> {
    if interval.is_zero() {
        return Err(ConfigError::field(
            format!("{section}.interval"),
            "must be greater than 0",
        ));
    }
    if timeout.is_zero() {
        return Err(ConfigError::field(
            format!("{section}.timeout"),
            "must be greater than 0",
        ));
    }
    if timeout > interval {
        return Err(ConfigError::field(
            format!("{section}.timeout"),
            format!(
                "{} is longer than the interval {}",
                humantime::format_duration(timeout),
                humantime::format_duration(interval)
            ),
        ));
    }
    Ok(())
}

fn check_label_value(field: &str, value: &str) -> Result<(), ConfigError> {
    if value.trim().is_empty() {
        return Err(ConfigError::field(field, "must not be empty"));
    }
    Ok(())
}

/// RFC 1123 label, as Kubernetes requires for namespace names.
fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn syntax_message(text: &str, error: &toml::de::Error) -> String {
    let line = error
        .span()
        .map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1);
    match line {
        Some(line) => format!("line {line}: {}", one_line(error.message())),
        None => one_line(error.message()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_postgres_config_gets_defaults() {
        let c = Config::parse(
            r#"
            [[postgres.targets]]
            name = "primary"
            dsn = "postgres://surge@127.0.0.1:5432/postgres"
            "#,
        )
        .expect("valid");
        let pg = c.postgres.expect("postgres");
        assert_eq!(pg.interval, Duration::from_secs(15));
        assert_eq!(c.exporter.listen, default_listen());
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (
                "[postgres]\ninterval = \"15x\"\ntargets = []",
                "postgres.interval",
            ),
            (
                "[[postgres.targets]]\nname = \"a\"\ndsn = \"postgres://x\"\n[[postgres.targets]]\nname = \"a\"\ndsn = \"postgres://y\"",
                "postgres.targets[1].name: duplicate",
            ),
            (
                "[[postgres.targets]]\nname = \"a\"\nhost = \"x\"",
                "unknown field `host`",
            ),
            ("[exporter]\nlisten = \"nope\"", "exporter.listen"),
            (
                "[[postgres.targets]]\nname = \"a\"",
                "postgres.targets[0].dsn: missing",
            ),
            (
                "[kubernetes]\nnamespaces = [\"Shop\"]",
                "kubernetes.namespaces[0]",
            ),
            ("", "no source configured"),
            ("[postgres\n", "line 1:"),
        ];
        for (text, expected) in cases {
            let err = Config::parse(text).expect_err(text).to_string();
            assert!(
                err.contains(expected),
                "{text:?} gave {err:?}, wanted {expected:?}"
            );
            assert!(!err.contains('\n'), "multi-line error: {err:?}");
        }
    }
}
