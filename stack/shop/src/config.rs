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
    /// `SHOP_DATABASE_PASSWORD_FILE`: the password for every database URL (a mounted secret,
    /// rather than `PGPASSWORD` in the environment).
    pub database_password: Option<Password>,
    /// `SHOP_DB_POOL_SIZE` (default 8).
    pub pool_size: u32,
    /// `SHOP_REDIS_URL`.
    pub redis_url: Option<String>,
    /// `SHOP_KAFKA_BOOTSTRAP`, with the service's own login when `SHOP_KAFKA_USERNAME` is set.
    pub kafka: Option<KafkaAccess>,
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
    /// `SHOP_ORDER_PLACED_FORMAT` 1 or 2 (default 1): the `order-placed` format orders writes.
    pub order_placed_format: u32,
    /// `SHOP_ACCEPT_ORDER_PLACED_V2` (default false): payment reads the second format too.
    pub accept_order_placed_v2: bool,
}

/// A password read from a file; never shown in a debug print.
#[derive(Clone)]
pub struct Password(pub String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(…)")
    }
}

/// How a service reaches the brokers: as itself (SCRAM-SHA-512, its own user and ACLs) over
/// TLS verified against the cluster's CA when those are set, as in the cluster; plain on the
/// local stack, whose broker is on loopback.
#[derive(Clone)]
pub struct KafkaAccess {
    pub bootstrap: String,
    /// `SHOP_KAFKA_USERNAME` and the password in `SHOP_KAFKA_PASSWORD_FILE`.
    pub login: Option<(String, String)>,
    /// `SHOP_KAFKA_CA_FILE`: TLS to the brokers, verified against this CA.
    pub ca_file: Option<String>,
}

impl std::fmt::Debug for KafkaAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaAccess")
            .field("bootstrap", &self.bootstrap)
            .field("username", &self.login.as_ref().map(|(u, _)| u))
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

impl KafkaAccess {
    fn from_env() -> anyhow::Result<Option<KafkaAccess>> {
        let Some(bootstrap) = var("SHOP_KAFKA_BOOTSTRAP") else {
            return Ok(None);
        };
        let login = match (var("SHOP_KAFKA_USERNAME"), var("SHOP_KAFKA_PASSWORD_FILE")) {
            (None, None) => None,
            (Some(user), Some(path)) => {
                let password = std::fs::read_to_string(&path)
                    .with_context(|| format!("SHOP_KAFKA_PASSWORD_FILE: cannot read {path}"))?;
                Some((user, password.trim_end().to_string()))
            }
            (Some(_), None) => {
                return Err(anyhow!(
                    "SHOP_KAFKA_USERNAME is set without SHOP_KAFKA_PASSWORD_FILE"
                ));
            }
            (None, Some(_)) => {
                return Err(anyhow!(
                    "SHOP_KAFKA_PASSWORD_FILE is set without SHOP_KAFKA_USERNAME"
                ));
            }
        };
        Ok(Some(KafkaAccess {
            bootstrap,
            login,
            ca_file: var("SHOP_KAFKA_CA_FILE"),
        }))
    }

    /// librdkafka's settings for reaching the brokers so.
    pub fn client_config(&self) -> rdkafka::ClientConfig {
        let mut config = rdkafka::ClientConfig::new();
        config.set("bootstrap.servers", &self.bootstrap);
        let protocol = match (&self.login, &self.ca_file) {
            (None, None) => "plaintext",
            (None, Some(_)) => "ssl",
            (Some(_), None) => "sasl_plaintext",
            (Some(_), Some(_)) => "sasl_ssl",
        };
        config.set("security.protocol", protocol);
        if let Some(ca) = &self.ca_file {
            config.set("ssl.ca.location", ca);
            config.set("ssl.endpoint.identification.algorithm", "https");
        }
        if let Some((user, password)) = &self.login {
            config.set("sasl.mechanism", "SCRAM-SHA-512");
            config.set("sasl.username", user);
            config.set("sasl.password", password);
        }
        config
    }
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
        let database_password = var("SHOP_DATABASE_PASSWORD_FILE")
            .map(|path| {
                std::fs::read_to_string(&path)
                    .with_context(|| format!("SHOP_DATABASE_PASSWORD_FILE: cannot read {path}"))
                    .map(|p| Password(p.trim_end().to_string()))
            })
            .transpose()?;
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
        let order_placed_format: u32 = parsed("SHOP_ORDER_PLACED_FORMAT", 1)?;
        if !(1..=2).contains(&order_placed_format) {
            return Err(anyhow!(
                "SHOP_ORDER_PLACED_FORMAT: 1 or 2, not {order_placed_format}"
            ));
        }
        Ok(Config {
            listen,
            instance: var("SHOP_INSTANCE").unwrap_or_else(|| listen.to_string()),
            database_url,
            replica_urls,
            database_password,
            pool_size: parsed("SHOP_DB_POOL_SIZE", 8)?,
            redis_url: var("SHOP_REDIS_URL"),
            kafka: KafkaAccess::from_env()?,
            jwt_secret,
            jwt_ttl: Duration::from_secs(parsed("SHOP_JWT_TTL", 900)?),
            cart_ttl: Duration::from_secs(parsed("SHOP_CART_TTL", 86_400)?),
            payment_latency: Duration::from_millis(parsed("SHOP_PAYMENT_LATENCY_MS", 20)?),
            payment_failure_rate,
            order_placed_format,
            accept_order_placed_v2: parsed("SHOP_ACCEPT_ORDER_PLACED_V2", false)?,
        })
    }

    pub fn require_redis(&self) -> anyhow::Result<&str> {
        self.redis_url
            .as_deref()
            .context("SHOP_REDIS_URL is not set")
    }

    pub fn require_kafka(&self) -> anyhow::Result<&KafkaAccess> {
        self.kafka
            .as_ref()
            .context("SHOP_KAFKA_BOOTSTRAP is not set")
    }

    pub fn require_jwt_secret(&self) -> anyhow::Result<&[u8]> {
        self.jwt_secret
            .as_deref()
            .context("SHOP_JWT_SECRET (or SHOP_JWT_SECRET_FILE) is not set")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// In the cluster a service reaches the brokers as itself over verified TLS; on the local
    /// stack, plain.
    #[test]
    fn kafka_access_sets_what_librdkafka_needs() {
        let cluster = KafkaAccess {
            bootstrap: "shop-kafka-kafka-bootstrap:9093".into(),
            login: Some(("payment".into(), "s3cret".into())),
            ca_file: Some("/var/run/secrets/kafka-ca/ca.crt".into()),
        };
        let config = cluster.client_config();
        for (key, value) in [
            ("bootstrap.servers", "shop-kafka-kafka-bootstrap:9093"),
            ("security.protocol", "sasl_ssl"),
            ("sasl.mechanism", "SCRAM-SHA-512"),
            ("sasl.username", "payment"),
            ("sasl.password", "s3cret"),
            ("ssl.ca.location", "/var/run/secrets/kafka-ca/ca.crt"),
            ("ssl.endpoint.identification.algorithm", "https"),
        ] {
            assert_eq!(config.get(key), Some(value), "{key}");
        }
        // The password never shows in a debug print.
        assert!(!format!("{cluster:?}").contains("s3cret"));
        let local = KafkaAccess {
            bootstrap: "127.0.0.1:9092".into(),
            login: None,
            ca_file: None,
        };
        let config = local.client_config();
        assert_eq!(config.get("security.protocol"), Some("plaintext"));
        assert_eq!(config.get("sasl.username"), None);
    }
}
