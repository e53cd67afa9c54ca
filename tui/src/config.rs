//! `~/.config/surge/config.toml` (or `$XDG_CONFIG_HOME/surge/config.toml`, or `--config`):
//! one serde struct per section, unknown fields refused, errors in one line naming the field.
//! Flags override the file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use surge_client::fetch::signals::{Choice, Group, Overrides, Provider, Selector, Signals};
use surge_client::fetch::with_scheme;
use surge_client::fetch::{Access, BasicAuth, Endpoint};
use surge_client::model::Range;
use surge_client::store::SetLines;

/// The colour themes (`[ui] theme`, `--theme`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThemeName {
    Default,
    HighContrast,
    Mono,
}

impl ThemeName {
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "default" => Ok(ThemeName::Default),
            "high-contrast" => Ok(ThemeName::HighContrast),
            "mono" => Ok(ThemeName::Mono),
            other => Err(format!(
                "unknown theme {other:?} (default, high-contrast, mono)"
            )),
        }
    }
}

/// The config file's schema: every section and key with its type, default, description and
/// example (the configuration reference in the guide is written from it).
pub fn schema() -> schemars::Schema {
    schemars::schema_for!(Config)
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[sources]`: the `default` context: where the panel reads from, and how often.
    #[serde(default)]
    pub sources: Sources,
    /// `[ui]`: how the panel starts.
    #[serde(default)]
    pub ui: Ui,
    /// `[snapshot]`: where `s` writes snapshots.
    #[serde(default)]
    pub snapshot: Snapshot,
    /// Per service (workload name): which consumer groups are its own.
    #[serde(default)]
    pub services: BTreeMap<String, Service>,
    /// The lines verdicts and colours judge by, over the loaded alert rules' own.
    #[serde(default)]
    pub lines: LinesTable,
    /// `[kafka]`: how the team's topics are named.
    #[serde(default)]
    pub kafka: KafkaTable,
    /// `[contexts.NAME]`: another cluster's sources, as k9s has contexts: `--context NAME`,
    /// `:ctx NAME` to switch, `:ctx` for all of them side by side.
    #[serde(default)]
    pub contexts: BTreeMap<String, ContextTable>,
}

/// One context's sources (the same forms as in `[sources]`).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContextTable {
    /// Prometheus: its URL, or a table with the URL and how to reach it (`url`, TLS, credentials, headers, proxy).
    #[schemars(example = &"http://prometheus.monitoring:9090")]
    pub prometheus: Option<SourceSetting>,
    /// Alertmanager (alerts with silences, silence create/expire): a URL or a table like `prometheus`'s.
    #[schemars(example = &"http://alertmanager.monitoring:9093")]
    pub alertmanager: Option<SourceSetting>,
    /// surge-exporters scraped directly, no Prometheus needed: URLs or tables like `prometheus`'s.
    #[serde(default)]
    #[schemars(example = ["10.0.0.7:9917"])]
    pub exporters: Vec<SourceSetting>,
    /// The Kafka broker, for the dead-letter view (`:dlq`) and redrives.
    pub kafka: Option<KafkaSource>,
    /// Grafana, where each action taken from the panel is posted as an annotation: a URL or a
    /// table like `prometheus`'s (a service account token in `bearer_token_file`).
    #[schemars(example = &"https://grafana.example.com")]
    pub grafana: Option<SourceSetting>,
    /// Label matchers added to every series asked of Prometheus (`cluster="eu-1"`).
    #[schemars(example = &"cluster=\"eu-1\"")]
    pub selector: Option<String>,
    /// `[contexts.NAME.signals]`: which exporter provides each signal group, where detection should not choose.
    #[serde(default)]
    pub signals: SignalsTable,
    /// `[contexts.NAME.queries]`: PromQL per Surge family.
    #[serde(default)]
    pub queries: BTreeMap<String, String>,
}

/// `[sources.signals]`: which exporter provides each signal group, where detection should
/// not choose (`surge`, `kube-state-metrics`, `kafka_exporter`, `kminion`,
/// `postgres_exporter`, `cloudnative-pg`).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SignalsTable {
    /// The provider of pod CPU, memory and HPA state (`surge`, `kube-state-metrics`, `kafka_exporter`, `kminion`, `postgres_exporter` or `cloudnative-pg`; default: detected).
    #[schemars(example = &"kube-state-metrics")]
    pub kubernetes: Option<String>,
    /// The provider of consumer lag (`surge`, `kube-state-metrics`, `kafka_exporter`, `kminion`, `postgres_exporter` or `cloudnative-pg`; default: detected).
    #[schemars(example = &"kafka_exporter")]
    pub kafka: Option<String>,
    /// The provider of replication lag and connections (`surge`, `kube-state-metrics`, `kafka_exporter`, `kminion`, `postgres_exporter` or `cloudnative-pg`; default: detected).
    #[schemars(example = &"postgres_exporter")]
    pub postgres: Option<String>,
}

impl SignalsTable {
    /// The signals setting with `selector` and the context's own `queries`; the error names
    /// the field.
    pub fn signals(
        &self,
        selector: Option<&str>,
        queries: &BTreeMap<String, String>,
    ) -> Result<Signals, String> {
        let mut fixed = Choice::default();
        for (group, name) in [
            (Group::Kubernetes, &self.kubernetes),
            (Group::Kafka, &self.kafka),
            (Group::Postgres, &self.postgres),
        ] {
            let Some(name) = name else { continue };
            let field = format!("signals.{}", group.label());
            let provider = Provider::parse(name).map_err(|e| format!("{field}: {e}"))?;
            if !provider.groups().contains(&group) {
                return Err(format!(
                    "{field}: {provider} does not provide {} signals",
                    group.label()
                ));
            }
            fixed.set(group, Some(provider));
        }
        let selector =
            Selector::parse(selector.unwrap_or_default()).map_err(|e| format!("selector: {e}"))?;
        let pairs: Vec<(String, String)> = queries
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let overrides = Overrides::new(&pairs).map_err(|e| format!("queries.{e}"))?;
        Ok(Signals {
            fixed,
            selector,
            overrides,
        })
    }
}

/// A source in the config file: a URL, or a table with the URL and how to reach it.
#[derive(Debug, Clone, PartialEq, schemars::JsonSchema)]
#[schemars(untagged)]
pub enum SourceSetting {
    Url(String),
    Full(SourceTable),
}

/// `[sources.prometheus]` (and the others) as a table: TLS, credentials from files, headers,
/// proxy. Relative file names are relative to the config file.
#[derive(Debug, Clone, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SourceTable {
    /// The source's URL (`http://` is assumed without a scheme).
    #[schemars(example = &"https://prometheus.example.com")]
    pub url: String,
    /// File holding a bearer token, read again for every request (a rotated token is picked up).
    #[schemars(example = &"/var/run/secrets/prometheus-token")]
    pub bearer_token_file: Option<PathBuf>,
    /// Basic auth: `username` and the `password_file` holding the password.
    pub basic_auth: Option<BasicAuthTable>,
    /// CA certificate (PEM) the server's certificate must chain to.
    #[schemars(example = &"ca.pem")]
    pub ca_file: Option<PathBuf>,
    /// Client certificate (PEM), with `key_file`.
    #[schemars(example = &"client.pem")]
    pub cert_file: Option<PathBuf>,
    /// The client certificate's key (PEM).
    #[schemars(example = &"client-key.pem")]
    pub key_file: Option<PathBuf>,
    /// Skip verifying the server's certificate (said in the header while on).
    #[serde(default)]
    pub insecure_skip_verify: bool,
    /// Extra request headers, e.g. a tenant header for Mimir, Cortex or Thanos (not `Authorization`).
    #[serde(default)]
    #[schemars(example = [("X-Scope-OrgID", "team-a")].into_iter().collect::<std::collections::BTreeMap<_, _>>())]
    pub headers: BTreeMap<String, String>,
    /// HTTP proxy to reach the source through.
    #[schemars(example = &"http://proxy.internal:3128")]
    pub proxy_url: Option<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BasicAuthTable {
    /// The user name.
    #[schemars(example = &"surge")]
    pub username: String,
    /// File holding the password.
    #[schemars(example = &"prometheus-password")]
    pub password_file: PathBuf,
}

impl<'de> Deserialize<'de> for SourceSetting {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Either;
        impl<'de> serde::de::Visitor<'de> for Either {
            type Value = SourceSetting;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a URL, or a table with `url` and how to reach it")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<SourceSetting, E> {
                Ok(SourceSetting::Url(v.to_string()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<SourceSetting, A::Error> {
                SourceTable::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(SourceSetting::Full)
            }
        }
        d.deserialize_any(Either)
    }
}

impl SourceSetting {
    pub fn url(&self) -> &str {
        match self {
            SourceSetting::Url(url) => url,
            SourceSetting::Full(table) => &table.url,
        }
    }

    /// Where and how, file names resolved against `dir` (the config file's folder).
    pub fn endpoint(&self, dir: &Path) -> Endpoint {
        let resolve = |p: &Option<PathBuf>| p.as_ref().map(|p| dir.join(p));
        match self {
            SourceSetting::Url(url) => Endpoint::plain(&with_scheme(url)),
            SourceSetting::Full(t) => Endpoint {
                url: with_scheme(&t.url),
                access: Access {
                    bearer_token_file: resolve(&t.bearer_token_file),
                    basic_auth: t.basic_auth.as_ref().map(|b| BasicAuth {
                        username: b.username.clone(),
                        password_file: dir.join(&b.password_file),
                    }),
                    ca_file: resolve(&t.ca_file),
                    cert_file: resolve(&t.cert_file),
                    key_file: resolve(&t.key_file),
                    insecure_skip_verify: t.insecure_skip_verify,
                    headers: t.headers.clone(),
                    proxy_url: t.proxy_url.clone(),
                    cluster: None,
                },
            },
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Sources {
    /// Prometheus: its URL, or a table with the URL and how to reach it (`url`, TLS, credentials, headers, proxy).
    #[schemars(example = &"http://prometheus.monitoring:9090")]
    pub prometheus: Option<SourceSetting>,
    /// Alertmanager (alerts with silences, silence create/expire): a URL or a table like `prometheus`'s.
    #[schemars(example = &"http://alertmanager.monitoring:9093")]
    pub alertmanager: Option<SourceSetting>,
    /// surge-exporters scraped directly, no Prometheus needed: URLs or tables like `prometheus`'s.
    #[serde(default)]
    #[schemars(example = ["10.0.0.7:9917"])]
    pub exporters: Vec<SourceSetting>,
    /// `[sources.kafka]`: the Kafka broker, for the dead-letter view (`:dlq`) and redrives.
    pub kafka: Option<KafkaSource>,
    /// Grafana, where each action taken from the panel is posted as an annotation: a URL or a
    /// table like `prometheus`'s (a service account token in `bearer_token_file`).
    #[schemars(example = &"https://grafana.example.com")]
    pub grafana: Option<SourceSetting>,
    /// Time between refreshes.
    #[serde(default = "default_refresh", with = "humantime_serde")]
    #[schemars(with = "String", extend("format" = "duration"))]
    pub refresh: Duration,
    /// Per-request timeout.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    #[schemars(with = "String", extend("format" = "duration"))]
    pub timeout: Duration,
    /// A source is shown stale after this long without a good answer (default: 3 refreshes,
    /// at least 10 s).
    #[serde(default, with = "humantime_serde")]
    #[schemars(with = "String", extend("format" = "duration"))]
    #[schemars(example = &"30s")]
    pub stale_after: Option<Duration>,
    /// Label matchers added to every series asked of Prometheus (`cluster="eu-1"`).
    #[schemars(example = &"cluster=\"eu-1\"")]
    pub selector: Option<String>,
    /// `[sources.signals]`: which exporter provides each signal group, where detection should not choose.
    #[serde(default)]
    pub signals: SignalsTable,
    /// `[sources.queries]`: PromQL per Surge family, replacing every provider's reading of it
    /// (it must answer with the family's labels).
    #[serde(default)]
    pub queries: BTreeMap<String, String>,
}

impl Default for Sources {
    fn default() -> Self {
        Sources {
            prometheus: None,
            alertmanager: None,
            exporters: Vec::new(),
            kafka: None,
            grafana: None,
            refresh: default_refresh(),
            timeout: default_timeout(),
            stale_after: None,
            selector: None,
            signals: SignalsTable::default(),
            queries: BTreeMap::new(),
        }
    }
}

fn default_refresh() -> Duration {
    Duration::from_secs(2)
}

fn default_timeout() -> Duration {
    Duration::from_secs(5)
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Ui {
    /// `default`, `high-contrast` or `mono`.
    #[schemars(example = &"high-contrast")]
    pub theme: Option<String>,
    /// No silences: look, don't touch.
    #[serde(default)]
    pub readonly: bool,
    /// `5m`, `1h` or `6h`.
    #[schemars(example = &"1h")]
    pub range: Option<String>,
    /// The context to start in (`default` is `[sources]`).
    #[schemars(example = &"eu-west")]
    pub context: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    /// Where `s` writes snapshots (default: the current directory).
    #[schemars(example = &"/var/tmp/surge")]
    pub dir: Option<PathBuf>,
}

/// `[sources.kafka]` (or a context's `kafka`): the broker the dead-letter view reads and
/// redrives through.
#[derive(Debug, Clone, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KafkaSource {
    /// Bootstrap servers, `host:port[,host:port…]`.
    #[schemars(example = &"kafka-0.kafka:9092")]
    pub bootstrap: String,
    /// librdkafka client properties, passed as given (`security.protocol`, `sasl.mechanism`,
    /// `sasl.username`, `ssl.ca.location`, …).
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
    /// A file holding the SASL password (`sasl.password`), so the config holds no secret.
    #[schemars(example = &"/etc/surge/kafka-password")]
    pub sasl_password_file: Option<PathBuf>,
}

impl KafkaSource {
    /// The access the engine takes; file names are relative to `dir`.
    pub fn access(
        &self,
        dir: &std::path::Path,
    ) -> Result<surge_client::act::dead_letters::broker::KafkaAccess, String> {
        let mut properties: Vec<(String, String)> = self
            .properties
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if let Some(file) = &self.sasl_password_file {
            let path = dir.join(file);
            let password = std::fs::read_to_string(&path)
                .map_err(|e| format!("kafka.sasl_password_file {}: {e}", path.display()))?;
            properties.push(("sasl.password".into(), password.trim_end().to_owned()));
        }
        Ok(surge_client::act::dead_letters::broker::KafkaAccess {
            bootstrap: self.bootstrap.clone(),
            properties,
        })
    }
}

/// `[kafka]`: how the team's topics are named.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KafkaTable {
    /// Dead-letter topic names, `{topic}` standing for the topic (default `["{topic}.dlq"]`;
    /// Spring Kafka's is `{topic}.DLT`).
    #[schemars(example = ["{topic}.DLT"])]
    pub dead_letters: Option<Vec<String>>,
}

/// `[lines]`: where the verdicts draw their lines when the loaded rules are not the team's
/// (or there are none): CPU and connections as shares, lags as durations.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LinesTable {
    /// CPU of request at which ServiceCPUHigh would fire (e.g. 0.85).
    #[schemars(example = 0.85)]
    pub cpu: Option<f64>,
    /// Replica lag past which a replica is behind (a warning).
    #[serde(default, with = "humantime_serde")]
    #[schemars(with = "String", extend("format" = "duration"))]
    #[schemars(example = &"30s")]
    pub replica_lag: Option<Duration>,
    /// Replica lag past which a replica pages.
    #[serde(default, with = "humantime_serde")]
    #[schemars(with = "String", extend("format" = "duration"))]
    #[schemars(example = &"2m")]
    pub replica_lag_page: Option<Duration>,
    /// Share of a server's connection slots in use past which it warns.
    #[schemars(example = 0.8)]
    pub connections: Option<f64>,
    /// Share of a server's connection slots in use past which it pages.
    #[schemars(example = 0.95)]
    pub connections_page: Option<f64>,
    /// A pod's memory working set of its limit.
    #[schemars(example = 0.9)]
    pub memory_of_limit: Option<f64>,
    /// A transaction idle this long is flagged.
    #[serde(default, with = "humantime_serde")]
    #[schemars(with = "String", extend("format" = "duration"))]
    #[schemars(example = &"5m")]
    pub idle_in_transaction: Option<Duration>,
}

impl LinesTable {
    /// The lines set, checked: shares above 0 (connection and memory shares at most 1).
    pub fn lines(&self) -> Result<(SetLines, Option<f64>), String> {
        let share = |name: &str, v: Option<f64>, most: f64| -> Result<Option<f64>, String> {
            match v {
                Some(x) if !(x > 0.0 && x <= most) => {
                    Err(format!("lines.{name}: {x} is not a share in (0, {most}]"))
                }
                other => Ok(other),
            }
        };
        let seconds = |d: Option<Duration>| d.map(|d| d.as_secs_f64());
        Ok((
            SetLines {
                replica_lag_warning: seconds(self.replica_lag),
                replica_lag_page: seconds(self.replica_lag_page),
                connections_warning: share("connections", self.connections, 1.0)?,
                connections_page: share("connections_page", self.connections_page, 1.0)?,
                memory_of_limit: share("memory_of_limit", self.memory_of_limit, 1.0)?,
                idle_in_transaction: seconds(self.idle_in_transaction),
            },
            share("cpu", self.cpu, 100.0)?,
        ))
    }
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// The consumer groups that are this service's own.
    #[serde(default)]
    #[schemars(example = ["payment", "payment-dlq-audit"])]
    pub groups: Vec<String>,
    /// The PostgreSQL servers (exporter targets) it uses; default: those its connections'
    /// `application_name` (the service's name) is seen on, else all.
    #[schemars(example = ["primary", "replica1"])]
    pub databases: Option<Vec<String>>,
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl Config {
    pub fn parse(text: &str) -> Result<Config, String> {
        let deserializer = toml::Deserializer::parse(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
            match line {
                Some(line) => format!("line {line}: {}", one_line(e.message())),
                None => one_line(e.message()),
            }
        })?;
        let config: Config = serde_path_to_error::deserialize(deserializer).map_err(|e| {
            let path = e.path().to_string();
            let message = one_line(e.inner().message());
            if path == "." {
                message
            } else {
                format!("{path}: {message}")
            }
        })?;
        config.validate()?;
        Ok(config)
    }

    pub fn load(path: &Path) -> Result<Config, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read it: {e}"))?;
        let config = Config::parse(&text)?;
        // Credentials and certificates must be readable now, not at the first refresh.
        let dir = path.parent().unwrap_or(Path::new("."));
        for (field, source) in config.named_sources() {
            source
                .endpoint(dir)
                .access
                .check()
                .map_err(|e| format!("{field}: {e}"))?;
        }
        Ok(config)
    }

    /// Every configured source with the field that names it.
    pub fn named_sources(&self) -> Vec<(String, &SourceSetting)> {
        let s = &self.sources;
        let mut out = Vec::new();
        if let Some(p) = &s.prometheus {
            out.push(("sources.prometheus".to_string(), p));
        }
        if let Some(a) = &s.alertmanager {
            out.push(("sources.alertmanager".to_string(), a));
        }
        for (i, e) in s.exporters.iter().enumerate() {
            out.push((format!("sources.exporters[{i}]"), e));
        }
        for (name, c) in &self.contexts {
            if let Some(p) = &c.prometheus {
                out.push((format!("contexts.{name}.prometheus"), p));
            }
            if let Some(a) = &c.alertmanager {
                out.push((format!("contexts.{name}.alertmanager"), a));
            }
            for (i, e) in c.exporters.iter().enumerate() {
                out.push((format!("contexts.{name}.exporters[{i}]"), e));
            }
        }
        out
    }

    fn validate(&self) -> Result<(), String> {
        let s = &self.sources;
        for (field, source) in self.named_sources() {
            check_url(source.url()).map_err(|e| format!("{field}: {e}"))?;
        }
        if s.refresh < Duration::from_millis(100) {
            return Err("sources.refresh: at least 100ms".into());
        }
        if s.timeout.is_zero() {
            return Err("sources.timeout: must be more than 0".into());
        }
        s.signals
            .signals(s.selector.as_deref(), &s.queries)
            .map_err(|e| format!("sources.{e}"))?;
        self.lines.lines()?;
        for (i, p) in self.kafka.dead_letters.iter().flatten().enumerate() {
            if !p.contains("{topic}") || p == "{topic}" {
                return Err(format!(
                    "kafka.dead_letters[{i}]: {p:?} must name the topic with {{topic}} and add to it"
                ));
            }
        }
        if let Some(theme) = &self.ui.theme {
            ThemeName::parse(theme).map_err(|e| format!("ui.theme: {e}"))?;
        }
        if let Some(range) = &self.ui.range {
            Range::parse(range).map_err(|e| format!("ui.range: {e}"))?;
        }
        for (name, c) in &self.contexts {
            if name.is_empty() || name.contains(char::is_whitespace) || name == "all" {
                return Err(format!(
                    "contexts.{name:?}: a context name is one word, and not \"all\""
                ));
            }
            c.signals
                .signals(c.selector.as_deref(), &c.queries)
                .map_err(|e| format!("contexts.{name}.{e}"))?;
            if c.prometheus.is_none() && c.alertmanager.is_none() && c.exporters.is_empty() {
                return Err(format!(
                    "contexts.{name}: no source (prometheus, alertmanager or exporters)"
                ));
            }
        }
        Ok(())
    }
}

/// `http(s)://host:port[/path]` or `host:port`.
pub fn check_url(url: &str) -> Result<(), String> {
    let rest = match url.split_once("://") {
        Some(("http" | "https", rest)) => rest,
        Some((scheme, _)) => {
            return Err(format!("{url:?}: scheme {scheme:?} is not http or https"));
        }
        None => url,
    };
    let authority = rest.split('/').next().unwrap_or("");
    if authority.is_empty() || authority.contains(char::is_whitespace) {
        return Err(format!("{url:?} is not a URL (expected http://host:port)"));
    }
    if authority.contains('@') {
        // Never the URL: it ends up in argv, logs and snapshots.
        return Err(
            "credentials in the URL are refused; use basic_auth.password_file or bearer_token_file in the config file"
                .into(),
        );
    }
    Ok(())
}

/// `$XDG_CONFIG_HOME/surge/config.toml`, else `~/.config/surge/config.toml`.
pub fn default_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("surge").join("config.toml"))
}

/// `$XDG_STATE_HOME/surge/surge.log`, else `~/.local/state/surge/surge.log`.
pub fn default_log_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_STATE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))?;
    Some(base.join("surge").join("surge.log"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_broker_table_gives_properties_and_the_password_from_its_file() -> Result<(), String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        std::fs::write(dir.path().join("kafka-password"), "s3cret\n").map_err(|e| e.to_string())?;
        let c = Config::parse(
            "[sources.kafka]\nbootstrap = \"kafka-0:9092\"\nsasl_password_file = \"kafka-password\"\n\
             [sources.kafka.properties]\n\"security.protocol\" = \"SASL_SSL\"\n\"sasl.username\" = \"oncall\"\n",
        )?;
        let kafka = c.sources.kafka.ok_or("no [sources.kafka]")?;
        let access = kafka.access(dir.path())?;
        assert_eq!(access.bootstrap, "kafka-0:9092");
        assert_eq!(
            access.properties,
            [
                ("sasl.username".to_owned(), "oncall".to_owned()),
                ("security.protocol".to_owned(), "SASL_SSL".to_owned()),
                ("sasl.password".to_owned(), "s3cret".to_owned()),
            ]
        );
        let missing = kafka
            .access(&dir.path().join("elsewhere"))
            .expect_err("no file");
        assert!(
            missing.starts_with("kafka.sasl_password_file "),
            "{missing}"
        );
        Ok(())
    }

    #[test]
    fn full_config_parses() -> Result<(), String> {
        let c = Config::parse(
            "[sources]\nprometheus = \"http://127.0.0.1:9090\"\nexporters = [\"127.0.0.1:9187\"]\nrefresh = \"1s\"\n\
             [ui]\ntheme = \"high-contrast\"\nrange = \"1h\"\n[services.payment]\ngroups = [\"payment\", \"payment-retry\"]\n",
        )?;
        assert_eq!(c.sources.refresh, Duration::from_secs(1));
        assert_eq!(c.services["payment"].groups.len(), 2);
        assert_eq!(Config::parse("")?, Config::default());
        let c = Config::parse(
            "[sources]\nprometheus = \"http://thanos:9090\"\nselector = 'cluster=\"eu-1\"'\n\
             [sources.signals]\nkafka = \"kminion\"\n\
             [sources.queries]\nsurge_postgres_max_connections = 'max by (target) (my_max_conn)'\n",
        )?;
        let signals = c
            .sources
            .signals
            .signals(c.sources.selector.as_deref(), &c.sources.queries)?;
        assert_eq!(signals.fixed.kafka, Some(Provider::Kminion));
        assert_eq!(signals.selector.as_str(), "cluster=\"eu-1\"");
        assert!(signals.overrides.covers("surge_postgres_max_connections"));
        Ok(())
    }

    #[test]
    fn sources_take_a_table_with_tls_credentials_headers_and_proxy() -> Result<(), String> {
        let c = Config::parse(
            "[sources.prometheus]\nurl = \"https://prom.example:9090\"\nca_file = \"ca.pem\"\n\
             basic_auth = { username = \"ops\", password_file = \"/run/secrets/prom\" }\n\
             headers = { \"X-Scope-OrgID\" = \"team-a\" }\nproxy_url = \"http://proxy:3128\"\n\
             [sources]\nalertmanager = \"http://am:9093\"\n\
             exporters = [\"127.0.0.1:9917\", { url = \"https://10.0.0.7:9917\", bearer_token_file = \"token\", insecure_skip_verify = true }]\n",
        )?;
        let dir = Path::new("/etc/surge");
        let prometheus = c.sources.prometheus.as_ref().map(|p| p.endpoint(dir));
        let p = prometheus.ok_or("no prometheus")?;
        assert_eq!(p.url, "https://prom.example:9090");
        assert_eq!(p.access.ca_file, Some(PathBuf::from("/etc/surge/ca.pem")));
        assert_eq!(
            p.access.basic_auth.map(|b| (b.username, b.password_file)),
            Some(("ops".to_string(), PathBuf::from("/run/secrets/prom")))
        );
        assert_eq!(p.access.headers["X-Scope-OrgID"], "team-a");
        let exporters: Vec<Endpoint> = c
            .sources
            .exporters
            .iter()
            .map(|e| e.endpoint(dir))
            .collect();
        assert_eq!(exporters[0], Endpoint::plain("http://127.0.0.1:9917"));
        assert!(exporters[1].access.insecure());
        assert_eq!(
            exporters[1].access.bearer_token_file,
            Some(PathBuf::from("/etc/surge/token"))
        );
        Ok(())
    }

    #[test]
    fn unreadable_credentials_fail_at_load_naming_the_source_and_file() -> Result<(), String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let path = dir.path().join("config.toml");
        std::fs::write(
            &path,
            "[sources.prometheus]\nurl = \"https://prom:9090\"\nbearer_token_file = \"missing-token\"\n",
        )
        .map_err(|e| e.to_string())?;
        let e = Config::load(&path).err().unwrap_or_default();
        assert!(
            e.starts_with("sources.prometheus: bearer_token_file ") && e.contains("missing-token"),
            "{e}"
        );
        Ok(())
    }

    #[test]
    fn errors_are_one_line_and_name_the_field() {
        let cases = [
            ("[sources]\nrefresh = \"soon\"", "sources.refresh"),
            (
                "[sources]\nprometheus = \"ftp://x\"",
                "sources.prometheus: \"ftp://x\": scheme \"ftp\"",
            ),
            ("[ui]\ntheme = \"neon\"", "ui.theme: unknown theme \"neon\""),
            ("[ui]\nrange = \"2h\"", "ui.range"),
            ("[ui]\ncolour = true", "unknown field `colour`"),
            ("[sources\n", "line 1"),
            ("[sources]\nexporters = [\"a b\"]", "sources.exporters[0]"),
            (
                "[sources]\nprometheus = \"https://ops:hunter2@prom:9090\"",
                "sources.prometheus: credentials in the URL are refused",
            ),
            (
                "[sources.prometheus]\nurl = \"http://p:9090\"\ntoken = \"x\"",
                "unknown field `token`",
            ),
            (
                "[sources.prometheus]\nca_file = \"x\"",
                "missing field `url`",
            ),
            (
                "[sources]\nprometheus = 9090",
                "a URL, or a table with `url`",
            ),
            ("[contexts.eu]\n", "contexts.eu: no source"),
            (
                "[contexts.all]\nprometheus = \"http://p:9090\"",
                "a context name is one word, and not \"all\"",
            ),
            (
                "[contexts.eu.prometheus]\nurl = \"https://u:p@x:1\"",
                "contexts.eu.prometheus: credentials in the URL are refused",
            ),
            (
                "[lines]\nconnections = 80",
                "lines.connections: 80 is not a share in (0, 1]",
            ),
            (
                "[kafka]\ndead_letters = [\"dlq\"]",
                "kafka.dead_letters[0]: \"dlq\" must name the topic with {topic}",
            ),
            ("[lines]\nreplica_lag = \"soon\"", "lines.replica_lag"),
            (
                "[sources]\nselector = \"cluster=eu\"",
                "sources.selector: selector \"cluster=eu\": the value of cluster must be quoted",
            ),
            (
                "[sources.signals]\nkafka = \"burrow\"",
                "sources.signals.kafka: unknown source \"burrow\"",
            ),
            (
                "[sources.signals]\nkafka = \"kube-state-metrics\"",
                "sources.signals.kafka: kube-state-metrics does not provide kafka signals",
            ),
            (
                "[sources.queries]\nconsumer_lag = \"sum(x)\"",
                "sources.queries.consumer_lag: not a Surge family",
            ),
            (
                "[contexts.eu]\nprometheus = \"http://p:9090\"\n[contexts.eu.queries]\nsurge_kafka_group_topic_lag = \" \"",
                "contexts.eu.queries.surge_kafka_group_topic_lag: empty query",
            ),
        ];
        for (text, want) in cases {
            match Config::parse(text) {
                Ok(c) => panic!("{text:?} parsed: {c:?}"),
                Err(e) => {
                    assert!(e.contains(want), "{text:?}: {e}");
                    assert!(!e.contains('\n'), "{e}");
                }
            }
        }
    }
}
