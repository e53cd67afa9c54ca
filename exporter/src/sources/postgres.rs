//! PostgreSQL: replication (`replication`) and connections (`connections`), one kept
//! connection per target.
//!
//! Role is read every cycle (`pg_is_in_recovery()`), so a failover changes the series, not
//! the config. Works with a role that has `pg_monitor`; without it the target reports an
//! error naming the missing grant rather than silently showing zeros.

mod cloudnative_pg;
mod connections;
mod replication;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, anyhow};
use async_trait::async_trait;
use serde::Deserialize;
use sqlx::Row;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Connection};
use surge_metrics::catalogue::postgres::IS_REPLICA;
use surge_metrics::{Sample, SampleSet};

use crate::check::{self, ConfigError, Secret};
use crate::source::Source;
use replication::{ReplicationMemory, ServerClock};

/// `[postgres]` as written.
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
    /// How long a standby that vanished from `pg_stat_replication` keeps being reported as
    /// not streaming, so a dead replica is visible rather than silently absent.
    #[serde(default = "default_standby_retention", with = "humantime_serde")]
    #[schemars(with = "String", extend("format" = "duration"))]
    standby_retention: Duration,
    /// `[[postgres.targets]]`: every server, primary and replicas; the role is detected each cycle, so after a failover the same config keeps working.
    #[serde(default)]
    targets: Vec<TargetSection>,
    /// `[[postgres.cloudnative_pg]]`: CloudNativePG clusters whose instances are discovered
    /// through the Kubernetes API, each its own target (named after its pod), following
    /// failovers and replaced pods.
    #[serde(default)]
    cloudnative_pg: Vec<cloudnative_pg::Section>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct TargetSection {
    /// The `target` label; must be unique.
    #[schemars(example = &"primary")]
    name: String,
    /// Connection URL, e.g. `postgres://surge@db:5432/postgres?sslmode=require`.
    #[schemars(example = &"postgres://surge_monitor@db-primary:5432/postgres?sslmode=verify-full")]
    dsn: Option<String>,
    /// Name of an environment variable holding the whole connection URL.
    #[schemars(example = &"SURGE_REPLICA1_DSN")]
    dsn_env: Option<String>,
    /// Name of an environment variable holding the password.
    #[schemars(example = &"SURGE_PG_PASSWORD")]
    password_env: Option<String>,
    /// File holding the password (trailing newline ignored).
    #[schemars(example = &"/run/secrets/surge-monitor-password")]
    password_file: Option<PathBuf>,
}

fn default_standby_retention() -> Duration {
    Duration::from_secs(3600)
}

/// `[postgres]`, checked.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) interval: Duration,
    timeout: Duration,
    standby_retention: Duration,
    targets: Vec<TargetSettings>,
    clusters: Vec<cloudnative_pg::Settings>,
}

#[derive(Debug, Clone)]
struct TargetSettings {
    name: String,
    dsn: Dsn,
    password: Option<Secret>,
}

/// Where a target's connection URL comes from.
#[derive(Debug, Clone)]
enum Dsn {
    Url(Box<PgConnectOptions>),
    Env(Secret),
}

impl Settings {
    /// Settings that leave the connection open to a network attacker, one line each (the
    /// exporter starts anyway: the warning is for whoever reads its log). Loopback hosts are
    /// not on a network.
    pub(crate) fn warnings(&self) -> Vec<String> {
        use sqlx::postgres::PgSslMode;
        let mut warnings = Vec::new();
        for t in &self.targets {
            let Dsn::Url(options) = &t.dsn else { continue };
            let host = options.get_host();
            if options.get_socket().is_some()
                || host == "localhost"
                || host
                    .trim_matches(|c| c == '[' || c == ']')
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
            {
                continue;
            }
            let why = match options.get_ssl_mode() {
                PgSslMode::Disable => {
                    "sslmode=disable: the password and every answer cross the network in the clear"
                }
                PgSslMode::Allow | PgSslMode::Prefer => {
                    "sslmode=prefer (the default) or allow: TLS only if the server offers it, and no certificate checked"
                }
                PgSslMode::Require => {
                    "sslmode=require encrypts but checks no certificate: anyone in the path can pose as the server"
                }
                PgSslMode::VerifyCa => "sslmode=verify-ca checks the CA but not the host name",
                PgSslMode::VerifyFull => continue,
            };
            warnings.push(format!(
                "postgres.targets[{}] ({host}): {why}; use sslmode=verify-full with sslrootcert",
                t.name
            ));
        }
        for (i, c) in self.clusters.iter().enumerate() {
            let why = match c.options.get_ssl_mode() {
                PgSslMode::VerifyCa => continue,
                PgSslMode::VerifyFull => {
                    "sslmode=verify-full checks the host name, and CloudNativePG's certificates name its Services, not the pod IPs instances are reached at: every connection will fail"
                }
                _ => "the connection does not verify the server",
            };
            warnings.push(format!(
                "postgres.cloudnative_pg[{i}] ({}/{}): {why}; use sslmode=verify-ca with sslrootcert (the cluster's CA)",
                c.namespace, c.cluster
            ));
        }
        warnings
    }
}

impl Section {
    pub(crate) fn settings(self) -> Result<Settings, ConfigError> {
        check::timing("postgres", self.interval, self.timeout)?;
        if self.targets.is_empty() && self.cloudnative_pg.is_empty() {
            return Err(ConfigError::field(
                "postgres",
                "no server: add [[postgres.targets]] or [[postgres.cloudnative_pg]]",
            ));
        }
        let names: Vec<&str> = self.targets.iter().map(|t| t.name.as_str()).collect();
        if !names.is_empty() {
            check::names("postgres.targets", "target", &names)?;
        }
        let clusters = self
            .cloudnative_pg
            .into_iter()
            .enumerate()
            .map(|(i, c)| c.settings(i))
            .collect::<Result<Vec<_>, _>>()?;
        let discovered: Vec<String> = clusters.iter().map(|c| c.discovery_target()).collect();
        let discovered: Vec<&str> = discovered.iter().map(String::as_str).collect();
        if !discovered.is_empty() {
            check::names("postgres.cloudnative_pg", "cluster", &discovered)?;
        }
        let mut targets = Vec::with_capacity(self.targets.len());
        for (i, t) in self.targets.into_iter().enumerate() {
            let at = |f: &str| format!("postgres.targets[{i}].{f}");
            let dsn = match (t.dsn, t.dsn_env) {
                (Some(_), Some(_)) => {
                    return Err(ConfigError::field(
                        at("dsn"),
                        "set either dsn or dsn_env, not both",
                    ));
                }
                (None, None) => {
                    return Err(ConfigError::field(at("dsn"), "missing: set dsn or dsn_env"));
                }
                (Some(url), None) => {
                    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                        return Err(ConfigError::field(
                            at("dsn"),
                            "must be a URL starting with postgres:// or postgresql://",
                        ));
                    }
                    Dsn::Url(Box::new(parse_dsn(&at("dsn"), &url)?))
                }
                (None, Some(var)) => Dsn::Env(Secret::Env {
                    field: at("dsn_env"),
                    var,
                }),
            };
            let password = Secret::from_pair(at, "password", t.password_env, t.password_file)?;
            targets.push(TargetSettings {
                name: t.name,
                dsn,
                password,
            });
        }
        Ok(Settings {
            interval: self.interval,
            timeout: self.timeout,
            standby_retention: self.standby_retention,
            targets,
            clusters,
        })
    }
}

fn parse_dsn(field: &str, url: &str) -> Result<PgConnectOptions, ConfigError> {
    // The sqlx message may quote the URL; never echo a password into logs.
    PgConnectOptions::from_str(url)
        .map_err(|_| ConfigError::field(field, "not a valid PostgreSQL connection URL"))
}

const ROLE_SQL: &str = "SELECT pg_is_in_recovery() AS in_recovery, \
    current_setting('server_version_num')::int AS version, \
    extract(epoch FROM clock_timestamp())::float8 AS now, \
    extract(epoch FROM pg_postmaster_start_time())::float8 AS started";

struct Target {
    name: String,
    options: PgConnectOptions,
    /// One connection kept between cycles (reconnecting costs more than the queries). Not a
    /// pool: a pool retries refused connections until its timeout, hiding the real error.
    connection: tokio::sync::Mutex<Option<PgConnection>>,
    replication: Mutex<ReplicationMemory>,
}

impl Target {
    fn new(name: String, options: PgConnectOptions) -> Self {
        Target {
            name,
            options,
            connection: tokio::sync::Mutex::new(None),
            replication: Mutex::new(ReplicationMemory::default()),
        }
    }
}

pub(crate) struct PostgresSource {
    interval: Duration,
    timeout: Duration,
    standby_retention: Duration,
    targets: Vec<Arc<Target>>,
    clusters: Vec<Discovery>,
}

/// One CloudNativePG cluster: how to ask the API for its instances, and those last found.
struct Discovery {
    settings: cloudnative_pg::Settings,
    /// The target that reports the discovery itself.
    target: String,
    client: tokio::sync::Mutex<Option<kube::Client>>,
    /// Pod name → its target; kept across cycles (with its connection) while the pod stays
    /// at the same address.
    instances: Mutex<BTreeMap<String, (cloudnative_pg::Instance, Arc<Target>)>>,
}

impl PostgresSource {
    /// Build the source; reads DSNs and passwords from env/files now, so a missing secret is
    /// a startup error naming the field.
    pub(crate) fn new(settings: &Settings) -> Result<Self, ConfigError> {
        let targets = settings
            .targets
            .iter()
            .map(|t| {
                Ok(Arc::new(Target::new(
                    t.name.clone(),
                    connect_options(t, settings.timeout)?,
                )))
            })
            .collect::<Result<Vec<_>, ConfigError>>()?;
        for c in &settings.clusters {
            // A missing secret is a startup error, as for a listed target.
            if let Some(password) = &c.password {
                password.read()?;
            }
        }
        let clusters = settings
            .clusters
            .iter()
            .map(|c| Discovery {
                settings: c.clone(),
                target: c.discovery_target(),
                client: tokio::sync::Mutex::new(None),
                instances: Mutex::new(BTreeMap::new()),
            })
            .collect();
        Ok(PostgresSource {
            interval: settings.interval,
            timeout: settings.timeout,
            standby_retention: settings.standby_retention,
            targets,
            clusters,
        })
    }

    /// List the cluster's instances now and make them its targets; an instance at the same
    /// address keeps its target (and kept connection), a new one gets a fresh one.
    async fn discover(&self, discovery: &Discovery) -> anyhow::Result<Vec<Sample>> {
        use k8s_openapi::api::core::v1::Pod;
        use kube::api::{Api, ListParams};

        let settings = &discovery.settings;
        let client = {
            let mut slot = discovery.client.lock().await;
            match slot.as_ref() {
                Some(client) => client.clone(),
                None => {
                    let client = crate::sources::kubernetes::client(
                        settings.kubeconfig.as_deref(),
                        settings.context.as_deref(),
                    )
                    .await?;
                    *slot = Some(client.clone());
                    client
                }
            }
        };
        let pods: Api<Pod> = Api::namespaced(client, &settings.namespace);
        let listed = pods
            .list(&ListParams::default().labels(&settings.selector()))
            .await
            .with_context(|| {
                format!(
                    "listing the pods of CloudNativePG cluster {}/{}",
                    settings.namespace, settings.cluster
                )
            })?;
        let found = cloudnative_pg::instances(&listed.items);
        let statics: Vec<&str> = self.targets.iter().map(|t| t.name.as_str()).collect();
        let mut instances = discovery
            .instances
            .lock()
            .map_err(|_| anyhow!("instances lock poisoned"))?;
        // The secret is read only when an instance is new (or moved), not every cycle, and
        // before the list changes, so a failed read leaves the known instances in place.
        let new_instance = found
            .iter()
            .any(|i| instances.get(&i.name).is_none_or(|(was, _)| was != i));
        let password = match (&settings.password, new_instance) {
            (Some(secret), true) => Some(secret.read()?),
            _ => None,
        };
        let mut next = BTreeMap::new();
        for instance in found {
            if statics.contains(&instance.name.as_str()) {
                tracing::warn!(target = %instance.name, "a discovered instance has a listed target's name; skipped");
                continue;
            }
            let kept = instances
                .remove(&instance.name)
                .filter(|(was, _)| *was == instance)
                .map(|(_, target)| target);
            let target = match kept {
                Some(target) => target,
                None => {
                    let mut options = settings.options.clone().host(&instance.host);
                    if let Some(port) = instance.port {
                        options = options.port(port);
                    }
                    if let Some(password) = &password {
                        options = options.password(password);
                    }
                    Arc::new(Target::new(
                        instance.name.clone(),
                        with_session(options, self.timeout),
                    ))
                }
            };
            next.insert(instance.name.clone(), (instance, target));
        }
        *instances = next;
        Ok(Vec::new())
    }

    /// The target named `name`: listed, or an instance discovered last cycle.
    fn target(&self, name: &str) -> Option<Arc<Target>> {
        if let Some(t) = self.targets.iter().find(|t| t.name == name) {
            return Some(Arc::clone(t));
        }
        self.clusters.iter().find_map(|d| {
            d.instances
                .lock()
                .ok()?
                .get(name)
                .map(|(_, t)| Arc::clone(t))
        })
    }

    async fn collect_target(&self, target: &Target) -> anyhow::Result<Vec<Sample>> {
        let mut slot = target.connection.lock().await;
        if let Some(conn) = slot.as_mut() {
            match self.read(target, conn).await {
                Ok(samples) => return Ok(samples),
                // A kept connection may have died with a server restart: retry once on a
                // fresh one before calling the target down.
                Err(error) => {
                    tracing::debug!(target = %target.name, %error, "kept connection failed; reconnecting");
                    *slot = None;
                }
            }
        }
        let mut conn = target
            .options
            .connect()
            .await
            .with_context(|| format!("connecting to {}", target.name))?;
        let result = self.read(target, &mut conn).await;
        if result.is_ok() {
            *slot = Some(conn);
        } else {
            let _ = conn.close().await;
        }
        result
    }

    async fn read(&self, target: &Target, conn: &mut PgConnection) -> anyhow::Result<Vec<Sample>> {
        let role = sqlx::query(ROLE_SQL).fetch_one(&mut *conn).await?;
        let version: i32 = role.try_get("version")?;
        if version < 130000 {
            // pg_stat_wal_receiver.flushed_lsn and friends appeared in 13.
            return Err(anyhow!(
                "PostgreSQL {} is not supported; surge-exporter needs 13 or newer",
                version / 10000
            ));
        }
        let in_recovery: bool = role.try_get("in_recovery")?;
        let clock = ServerClock {
            now: role.try_get("now")?,
            started: role.try_get("started")?,
        };
        let name = target.name.as_str();
        let mut out = vec![Sample::new(
            &IS_REPLICA,
            vec![("target", name.to_string())],
            f64::from(u8::from(in_recovery)),
        )];
        if in_recovery {
            replication::replica(conn, name, clock, &target.replication, &mut out).await?;
        } else {
            let retention = self.standby_retention.as_secs_f64();
            replication::primary(conn, name, clock, retention, &target.replication, &mut out)
                .await?;
        }
        replication::slots(conn, name, &mut out).await?;
        connections::read(conn, name, version, &mut out).await?;
        Ok(out)
    }
}

fn connect_options(
    target: &TargetSettings,
    timeout: Duration,
) -> Result<PgConnectOptions, ConfigError> {
    let mut options = match &target.dsn {
        Dsn::Url(options) => (**options).clone(),
        Dsn::Env(secret) => parse_dsn(secret.field(), &secret.read()?)?,
    };
    if let Some(password) = &target.password {
        options = options.password(&password.read()?);
    }
    Ok(with_session(options, timeout))
}

/// The exporter's name, and the target's timeout as the server's statement_timeout.
fn with_session(options: PgConnectOptions, timeout: Duration) -> PgConnectOptions {
    let statement_timeout = format!("{}ms", timeout.as_millis());
    options
        .application_name("surge-exporter")
        .options([("statement_timeout", statement_timeout.as_str())])
}

#[async_trait]
impl Source for PostgresSource {
    fn name(&self) -> &'static str {
        "postgres"
    }
    fn interval(&self) -> Duration {
        self.interval
    }
    fn timeout(&self) -> Duration {
        self.timeout
    }
    fn targets(&self) -> Vec<String> {
        let mut out: Vec<String> = self.targets.iter().map(|t| t.name.clone()).collect();
        for d in &self.clusters {
            out.push(d.target.clone());
            if let Ok(instances) = d.instances.lock() {
                out.extend(instances.keys().cloned());
            }
        }
        out
    }
    async fn collect(&self, target: &str) -> anyhow::Result<SampleSet> {
        if let Some(d) = self.clusters.iter().find(|d| d.target == target) {
            return self.discover(d).await.map(SampleSet::from);
        }
        let t = self
            .target(target)
            .ok_or_else(|| anyhow!("{target} is gone (no longer an instance of its cluster)"))?;
        self.collect_target(&t).await.map(SampleSet::from)
    }
}
