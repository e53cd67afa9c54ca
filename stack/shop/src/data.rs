//! The read/write split, in one place for every service: writes and anything that must see
//! its own writes go to the primary; reads that tolerate replication lag go to a replica,
//! round-robin, falling back to the primary when no replica answers.

use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::Context;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Postgres, Transaction};

/// The schema every service expects, embedded at build time.
static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

pub struct Db {
    primary: PgPool,
    replicas: Vec<PgPool>,
    next: AtomicUsize,
    /// Repoints `primary` after a failover when the URL lists several hosts.
    follower: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Db {
    fn drop(&mut self) {
        if let Some(follower) = self.follower.take() {
            follower.abort();
        }
    }
}

/// Which server answered a read (proved by `pg_is_in_recovery()` in the same query).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    Primary,
    Replica,
}

impl Served {
    pub fn from_recovery(in_recovery: bool) -> Self {
        if in_recovery {
            Served::Replica
        } else {
            Served::Primary
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Served::Primary => "primary",
            Served::Replica => "replica",
        }
    }
}

/// Every pool's sizing: up to `size` connections, none kept idle, 3 s to get one.
fn pool_options(size: u32) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(size)
        .min_connections(0)
        .acquire_timeout(Duration::from_secs(3))
}

fn pool(url: &str, size: u32, application: &str, password: Option<&str>) -> anyhow::Result<PgPool> {
    let options =
        with_password(PgConnectOptions::from_str(url)?, password).application_name(application);
    Ok(pool_options(size).connect_lazy_with(options))
}

/// `options` with `password`, when one is given (from `SHOP_DATABASE_PASSWORD_FILE`).
fn with_password(options: PgConnectOptions, password: Option<&str>) -> PgConnectOptions {
    match password {
        Some(p) => options.password(p),
        None => options,
    }
}

/// The writer's pool: its connections must be to a server that takes writes (a standby is
/// refused, and the pool keeps trying until the acquire timeout), starting on `hosts[0]`.
fn writer_pool(hosts: &[PgConnectOptions], size: u32) -> anyhow::Result<PgPool> {
    let first = hosts.first().context("no host")?.clone();
    Ok(pool_options(size)
        .after_connect(|conn, _| {
            Box::pin(async move {
                if crate::primary::in_recovery(conn).await? {
                    return Err(sqlx::Error::Protocol(
                        "connected to a standby; writes need the primary".into(),
                    ));
                }
                Ok(())
            })
        })
        .connect_lazy_with(first))
}

impl Db {
    /// `primary_url` may list several hosts (libpq's `h1:p1,h2:p2`): writes then go to
    /// whichever takes writes, followed across failovers. Must run inside a Tokio runtime.
    pub fn connect(
        primary_url: &str,
        replica_urls: &[String],
        pool_size: u32,
        application: &str,
        password: Option<&str>,
    ) -> anyhow::Result<Db> {
        let hosts: Vec<PgConnectOptions> = crate::primary::hosts(primary_url)
            .context("SHOP_DATABASE_URL")?
            .into_iter()
            .map(|h| with_password(h, password).application_name(application))
            .collect();
        let primary = writer_pool(&hosts, pool_size)?;
        let follower = (hosts.len() > 1)
            .then(|| tokio::spawn(crate::primary::follow(primary.clone(), hosts, 0)));
        Ok(Db {
            primary,
            replicas: replica_urls
                .iter()
                .map(|u| pool(u, pool_size, application, password))
                .collect::<Result<_, _>>()?,
            next: AtomicUsize::new(0),
            follower,
        })
    }

    /// Writes, and reads that must see this service's own writes.
    pub fn writer(&self) -> &PgPool {
        &self.primary
    }

    /// Replicas in round-robin order starting with the next one, then the primary: callers
    /// try them in turn, so a dead replica costs one failed attempt, not an error.
    pub fn readers(&self) -> Vec<&PgPool> {
        let n = self.replicas.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let mut out: Vec<&PgPool> = (0..n).map(|i| &self.replicas[(start + i) % n]).collect();
        out.push(&self.primary);
        out
    }

    /// A read-only transaction on a replica that has replayed at least `lsn`
    /// (read-your-writes), or `None` when no replica has. The check and the reads that follow
    /// share one transaction, so they run on the same server even behind a balanced service
    /// or a transaction-mode pooler.
    pub async fn replica_at(&self, lsn: &str) -> Option<Transaction<'static, Postgres>> {
        let replicas = self.readers();
        for replica in &replicas[..replicas.len() - 1] {
            let Ok(mut tx) = replica.begin().await else {
                continue;
            };
            let caught_up: Result<bool, _> = sqlx::query_scalar(
                "SELECT pg_is_in_recovery() AND pg_last_wal_replay_lsn() >= $1::pg_lsn",
            )
            .bind(lsn)
            .fetch_one(&mut *tx)
            .await;
            if let Ok(true) = caught_up {
                return Some(tx);
            }
        }
        None
    }

    /// Readiness: the primary answers and holds the schema this build expects.
    pub async fn ready(&self) -> bool {
        schema_applied(&self.primary).await
    }
}

/// Whether every migration this build embeds has been applied (by `shop setup`).
pub async fn schema_applied(primary: &PgPool) -> bool {
    let Some(latest) = MIGRATOR.iter().map(|m| m.version).max() else {
        return true;
    };
    let applied: Result<Option<i64>, _> =
        sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations WHERE success")
            .fetch_one(primary)
            .await;
    matches!(applied, Ok(Some(v)) if v >= latest)
}

/// Wait until the schema is applied, or `stop` flips (then `false`). Consumers and relays
/// start only after it, so a service started before `shop setup` waits instead of failing
/// (or dead-lettering) every message.
pub async fn wait_for_schema(
    primary: &PgPool,
    stop: &mut tokio::sync::watch::Receiver<bool>,
) -> bool {
    let mut waited = 0u32;
    loop {
        if *stop.borrow() {
            return false;
        }
        if schema_applied(primary).await {
            if waited > 0 {
                tracing::info!("schema applied; starting");
            }
            return true;
        }
        if waited.is_multiple_of(15) {
            tracing::warn!("waiting for the database schema (run `shop setup`)");
        }
        waited += 1;
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            _ = stop.changed() => return false,
        }
    }
}

/// Apply the embedded migrations on the primary (the first listed host that takes writes;
/// idempotent; sqlx takes an advisory lock).
pub async fn migrate(primary_url: &str, password: Option<&str>) -> anyhow::Result<()> {
    let hosts: Vec<PgConnectOptions> = crate::primary::hosts(primary_url)
        .context("SHOP_DATABASE_URL")?
        .into_iter()
        .map(|h| with_password(h, password))
        .collect();
    let found = crate::primary::find(&hosts)
        .await
        .context("no host in SHOP_DATABASE_URL answers as a primary")?;
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(hosts[found].clone())
        .await?;
    MIGRATOR.run(&pool).await?;
    Ok(())
}
