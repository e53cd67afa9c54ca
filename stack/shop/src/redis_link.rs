//! The one way the shop connects to Redis (revocation list, carts).

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// A reconnecting connection that fails fast while Redis is away: a request waits at most
/// about a second for it, then answers 503, instead of hanging on retries with backoff.
pub async fn connect(redis_url: &str) -> anyhow::Result<ConnectionManager> {
    let client = redis::Client::open(redis_url)?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_millis(500)))
        .set_response_timeout(Some(Duration::from_millis(500)))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_millis(200));
    Ok(ConnectionManager::new_with_config(client, config).await?)
}
