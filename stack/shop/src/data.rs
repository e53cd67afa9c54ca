//! The read/write split, in one place for every service: writes and anything that must see
//! its own writes go to the primary; reads that tolerate replication lag go to a replica,
//! round-robin, falling back to the primary when no replica answers.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions};

pub struct Db {
    primary: PgPool,
    replicas: Vec<PgPool>,
    next: AtomicUsize,
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

fn pool(url: &str, size: u32) -> anyhow::Result<PgPool> {
    Ok(PgPoolOptions::new()
        .max_connections(size)
        .min_connections(0)
        .acquire_timeout(Duration::from_secs(3))
        .connect_lazy(url)?)
}

impl Db {
    pub fn connect(
        primary_url: &str,
        replica_urls: &[String],
        pool_size: u32,
    ) -> anyhow::Result<Db> {
        Ok(Db {
            primary: pool(primary_url, pool_size)?,
            replicas: replica_urls
                .iter()
                .map(|u| pool(u, pool_size))
                .collect::<Result<_, _>>()?,
            next: AtomicUsize::new(0),
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

    /// A replica that has replayed at least `lsn` (read-your-writes), else the primary.
    pub async fn reader_at(&self, lsn: &str) -> &PgPool {
        for replica in self.readers() {
            let caught_up: Result<bool, _> = sqlx::query_scalar(
                "SELECT pg_is_in_recovery() AND pg_last_wal_replay_lsn() >= $1::pg_lsn",
            )
            .bind(lsn)
            .fetch_one(replica)
            .await;
            if let Ok(true) = caught_up {
                return replica;
            }
        }
        &self.primary
    }

    /// Ping the primary (readiness).
    pub async fn ready(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.primary).await.is_ok()
    }
}

/// Apply the embedded migrations on the primary (idempotent; sqlx takes an advisory lock).
pub async fn migrate(primary_url: &str) -> anyhow::Result<()> {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect(primary_url)
        .await?;
    sqlx::migrate!("./migrations").run(&pool).await?;
    Ok(())
}
