//! PostgreSQL: replication (`replication`) and connections (`connections`), one kept
//! connection per target.
//!
//! Role is read every cycle (`pg_is_in_recovery()`), so a failover changes the series, not
//! the config. Works with a role that has `pg_monitor`; without it the target reports an
//! error naming the missing grant rather than silently showing zeros.

mod connections;
mod replication;

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, anyhow};
use async_trait::async_trait;
use serde::Deserialize;
use sqlx::Row;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Connection};
use surge_metrics::Sample;
use surge_metrics::catalogue::postgres::IS_REPLICA;

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
    targets: Vec<TargetSection>,
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
        warnings
    }
}

impl Section {
    pub(crate) fn settings(self) -> Result<Settings, ConfigError> {
        check::timing("postgres", self.interval, self.timeout)?;
        let names: Vec<&str> = self.targets.iter().map(|t| t.name.as_str()).collect();
        check::names("postgres.targets", "target", &names)?;
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

pub(crate) struct PostgresSource {
    interval: Duration,
    timeout: Duration,
    standby_retention: Duration,
    targets: Vec<Target>,
}

impl PostgresSource {
    /// Build the source; reads DSNs and passwords from env/files now, so a missing secret is
    /// a startup error naming the field.
    pub(crate) fn new(settings: &Settings) -> Result<Self, ConfigError> {
        let targets = settings
            .targets
            .iter()
            .map(|t| {
                Ok(Target {
                    name: t.name.clone(),
                    options: connect_options(t, settings.timeout)?,
                    connection: tokio::sync::Mutex::new(None),
                    replication: Mutex::new(ReplicationMemory::default()),
                })
            })
            .collect::<Result<Vec<_>, ConfigError>>()?;
        Ok(PostgresSource {
            interval: settings.interval,
            timeout: settings.timeout,
            standby_retention: settings.standby_retention,
            targets,
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
    let statement_timeout = format!("{}ms", timeout.as_millis());
    Ok(options
        .application_name("surge-exporter")
        .options([("statement_timeout", statement_timeout.as_str())]))
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
        self.targets.iter().map(|t| t.name.clone()).collect()
    }
    async fn collect(&self, target: &str) -> anyhow::Result<Vec<Sample>> {
        let t = self
            .targets
            .iter()
            .find(|t| t.name == target)
            .ok_or_else(|| anyhow!("unknown target {target}"))?;
        self.collect_target(t).await
    }
}
