//! Service configuration from the environment (`SHOP_*`). Every missing or malformed variable
//! is reported by name, once, at start.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, anyhow};

#[derive(Debug, Clone)]
pub struct Config {
    /// `SHOP_LISTEN`, e.g. `127.0.0.1:8081`.
    pub listen: SocketAddr,
    /// `SHOP_INSTANCE`: this replica's name (logs, `instance` of metrics is Prometheus's).
    pub instance: String,
    /// `SHOP_DATABASE_URL`: the primary; may list several hosts (`h1:p1,h2:p2`, libpq style):
    /// writes then go to whichever takes writes, followed across a failover.
    pub database_url: String,
    /// `SHOP_DATABASE_REPLICAS`: comma-separated replica URLs (may be empty).
    pub replica_urls: Vec<String>,
    /// `SHOP_DB_POOL_SIZE` (default 8).
    pub pool_size: u32,
    /// `SHOP_REDIS_URL`.
    pub redis_url: Option<String>,
    /// `SHOP_KAFKA_BOOTSTRAP`.
    pub kafka_bootstrap: Option<String>,
    /// `SHOP_JWT_SECRET` or `SHOP_JWT_SECRET_FILE`.
    pub jwt_secret: Option<Vec<u8>>,
    /// `SHOP_JWT_TTL` seconds (default 900).
    pub jwt_ttl: Duration,
    /// `SHOP_CART_TTL` seconds (default 86400): an untouched cart expires after this.
    pub cart_ttl: Duration,
    /// `SHOP_PAYMENT_LATENCY_MS` (default 20): simulated provider latency.
    pub payment_latency: Duration,
    /// `SHOP_PAYMENT_FAILURE_RATE` in [0, 1] (default 0.02): transient provider failures.
    pub payment_failure_rate: f64,
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn parsed<T: std::str::FromStr>(name: &str, default: T) -> anyhow::Result<T>
where
    T::Err: std::fmt::Display,
{
    match var(name) {
        None => Ok(default),
        Some(v) => v.trim().parse().map_err(|e| anyhow!("{name}: {e} ({v:?})")),
    }
}

impl Config {
    pub fn from_env() -> anyhow::Result<Config> {
        let listen = parsed("SHOP_LISTEN", SocketAddr::from(([127, 0, 0, 1], 8080)))?;
        let database_url = var("SHOP_DATABASE_URL").context("SHOP_DATABASE_URL is not set")?;
        let replica_urls = var("SHOP_DATABASE_REPLICAS")
            .map(|v| {
                v.split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        let jwt_secret = match (var("SHOP_JWT_SECRET"), var("SHOP_JWT_SECRET_FILE")) {
            (Some(s), _) => Some(s.into_bytes()),
            (None, Some(path)) => Some(
                std::fs::read_to_string(&path)
                    .with_context(|| format!("SHOP_JWT_SECRET_FILE: cannot read {path}"))?
                    .trim_end()
                    .as_bytes()
                    .to_vec(),
            ),
            (None, None) => None,
        };
        if jwt_secret.as_ref().is_some_and(|s| s.len() < 32) {
            return Err(anyhow!("SHOP_JWT_SECRET: must be at least 32 bytes"));
        }
        let payment_failure_rate: f64 = parsed("SHOP_PAYMENT_FAILURE_RATE", 0.02)?;
        if !(0.0..=1.0).contains(&payment_failure_rate) {
            return Err(anyhow!("SHOP_PAYMENT_FAILURE_RATE: must be within [0, 1]"));
        }
        Ok(Config {
            listen,
            instance: var("SHOP_INSTANCE").unwrap_or_else(|| listen.to_string()),
            database_url,
            replica_urls,
            pool_size: parsed("SHOP_DB_POOL_SIZE", 8)?,
            redis_url: var("SHOP_REDIS_URL"),
            kafka_bootstrap: var("SHOP_KAFKA_BOOTSTRAP"),
            jwt_secret,
            jwt_ttl: Duration::from_secs(parsed("SHOP_JWT_TTL", 900)?),
            cart_ttl: Duration::from_secs(parsed("SHOP_CART_TTL", 86_400)?),
            payment_latency: Duration::from_millis(parsed("SHOP_PAYMENT_LATENCY_MS", 20)?),
            payment_failure_rate,
        })
    }

    pub fn require_redis(&self) -> anyhow::Result<&str> {
        self.redis_url
            .as_deref()
            .context("SHOP_REDIS_URL is not set")
    }

    pub fn require_kafka(&self) -> anyhow::Result<&str> {
        self.kafka_bootstrap
            .as_deref()
            .context("SHOP_KAFKA_BOOTSTRAP is not set")
    }

    pub fn require_jwt_secret(&self) -> anyhow::Result<&[u8]> {
        self.jwt_secret
            .as_deref()
            .context("SHOP_JWT_SECRET (or SHOP_JWT_SECRET_FILE) is not set")
    }
}
