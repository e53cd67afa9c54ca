//! One module per service; each `run` builds what it needs from the config and serves until
//! SIGTERM.

pub mod auth;
pub mod catalog;
pub mod orders;
pub mod payment;
pub mod shipping;

use std::sync::Arc;

use crate::config::Config;
use crate::data::Db;
use crate::tokens::Tokens;

/// The service's database pools, its connections named after it (`application_name`): the
/// panel then judges it on the servers it uses, not on every server.
pub(crate) fn db(config: &Config, service: &str) -> anyhow::Result<Arc<Db>> {
    Ok(Arc::new(Db::connect(
        &config.database_url,
        &config.replica_urls,
        config.pool_size,
        service,
        config.database_password.as_ref().map(|p| p.0.as_str()),
    )?))
}

pub(crate) async fn tokens(config: &Config) -> anyhow::Result<Arc<Tokens>> {
    Ok(Arc::new(
        Tokens::new(
            config.require_jwt_secret()?,
            config.jwt_ttl,
            config.require_redis()?,
        )
        .await?,
    ))
}

/// Readiness: the primary answers.
pub(crate) fn ready(
    db: &Arc<Db>,
) -> impl Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send>>
+ Clone
+ Send
+ Sync
+ 'static {
    let db = Arc::clone(db);
    move || {
        let db = Arc::clone(&db);
        Box::pin(async move { db.ready().await })
    }
}
