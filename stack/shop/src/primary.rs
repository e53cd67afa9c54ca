//! Finding the primary among several hosts, as libpq does for
//! `postgres://user@host1:5432,host2:5432/db?target_session_attrs=read-write`. sqlx connects to
//! one host, so the writer pool is pointed at whichever listed host accepts writes and
//! repointed when that changes (a failover promoted a standby). On Kubernetes the operator's
//! read-write Service does this job and the URL names one host.

use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, bail};
use sqlx::postgres::{PgConnectOptions, PgPool};
use sqlx::{ConnectOptions, Connection};

/// How often the writer pool's server is checked (a failover is followed within this plus
/// the time to find the new primary).
pub const CHECK_EVERY: Duration = Duration::from_secs(1);
/// Per host, while looking for the primary.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The hosts of a PostgreSQL URL, one connect option each, in the URL's order. Accepts
/// libpq's multi-host form (`h1:p1,h2:p2`); `target_session_attrs` may be absent, `any`,
/// `read-write` or `primary` (the writer always needs a host that takes writes).
pub fn hosts(url: &str) -> anyhow::Result<Vec<PgConnectOptions>> {
    let (scheme, rest) = url
        .split_once("://")
        .filter(|(s, _)| matches!(*s, "postgres" | "postgresql"))
        .context("not a postgres:// URL")?;
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let (userinfo, host_list) = match authority.rsplit_once('@') {
        Some((user, hosts)) => (Some(user), hosts),
        None => (None, authority),
    };
    let tail = without_session_attrs(tail)?;
    host_list
        .split(',')
        .enumerate()
        .map(|(i, host)| {
            if host.is_empty() {
                bail!("host {} of the URL is empty", i + 1);
            }
            let single = match userinfo {
                Some(user) => format!("{scheme}://{user}@{host}{tail}"),
                None => format!("{scheme}://{host}{tail}"),
            };
            // The error names the host, never the URL (it may hold a password).
            PgConnectOptions::from_str(&single).with_context(|| format!("host {host}"))
        })
        .collect()
}

/// The URL's path and query without `target_session_attrs` (sqlx does not know it), after
/// checking it asks for a host the writer can use.
fn without_session_attrs(tail: &str) -> anyhow::Result<String> {
    let Some((path, query)) = tail.split_once('?') else {
        return Ok(tail.to_string());
    };
    let mut kept = Vec::new();
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some(("target_session_attrs", value)) => {
                if !matches!(value, "any" | "read-write" | "primary") {
                    bail!(
                        "target_session_attrs={value}: the shop's writer needs a host that takes writes (read-write)"
                    );
                }
            }
            _ => kept.push(pair),
        }
    }
    Ok(if kept.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{}", kept.join("&"))
    })
}

/// `host:port` of a connect option, for logs.
pub fn describe(options: &PgConnectOptions) -> String {
    format!("{}:{}", options.get_host(), options.get_port())
}

/// Whether a connection's server is a standby (in recovery: read-only).
pub async fn in_recovery(conn: &mut sqlx::PgConnection) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT pg_is_in_recovery()")
        .fetch_one(conn)
        .await
}

/// The first host, in order, that answers and is not a standby.
pub async fn find(hosts: &[PgConnectOptions]) -> Option<usize> {
    for (i, options) in hosts.iter().enumerate() {
        let probe = async {
            let mut conn = options.connect().await?;
            let standby = in_recovery(&mut conn).await?;
            let _ = conn.close().await;
            Ok::<_, sqlx::Error>(standby)
        };
        if let Ok(Ok(false)) = tokio::time::timeout(PROBE_TIMEOUT, probe).await {
            return Some(i);
        }
    }
    None
}

/// Keep `pool` on the primary among `hosts` (it starts on `hosts[current]`): every
/// [`CHECK_EVERY`], a pooled connection must answer as a primary; when none can be had or it
/// answers as a standby, the hosts are searched and the pool repointed. Runs until aborted.
pub async fn follow(pool: PgPool, hosts: Vec<PgConnectOptions>, mut current: usize) {
    let mut searching_since: Option<tokio::time::Instant> = None;
    loop {
        tokio::time::sleep(CHECK_EVERY).await;
        let healthy = match pool.acquire().await {
            Ok(mut conn) => matches!(in_recovery(&mut conn).await, Ok(false)),
            Err(_) => false,
        };
        if healthy {
            searching_since = None;
            continue;
        }
        let started = *searching_since.get_or_insert_with(tokio::time::Instant::now);
        match find(&hosts).await {
            Some(found) if found != current => {
                pool.set_connect_options(hosts[found].clone());
                tracing::warn!(
                    from = %describe(&hosts[current]),
                    to = %describe(&hosts[found]),
                    searched_for = ?started.elapsed(),
                    "the primary moved; writes follow it"
                );
                current = found;
            }
            Some(_) => {}
            None => {
                if started.elapsed() < CHECK_EVERY * 2 {
                    tracing::warn!(
                        hosts = hosts.len(),
                        "no host takes writes; looking every second"
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_host_is_one_option() -> anyhow::Result<()> {
        let hosts = hosts("postgres://shop:secret@db:5433/shop?sslmode=disable")?;
        assert_eq!(hosts.len(), 1);
        assert_eq!(describe(&hosts[0]), "db:5433");
        assert_eq!(hosts[0].get_database(), Some("shop"));
        assert_eq!(hosts[0].get_username(), "shop");
        Ok(())
    }

    #[test]
    fn libpq_multi_host_urls_become_one_option_per_host_in_order() -> anyhow::Result<()> {
        let hosts = hosts(
            "postgresql://shop@127.0.0.1:5432,127.0.0.1:5433,[::1]:5434/shop?target_session_attrs=read-write&application_name=orders",
        )?;
        let described: Vec<String> = hosts.iter().map(describe).collect();
        assert_eq!(
            described,
            ["127.0.0.1:5432", "127.0.0.1:5433", "[::1]:5434"]
        );
        for h in &hosts {
            assert_eq!(h.get_database(), Some("shop"));
            assert_eq!(h.get_username(), "shop");
            assert_eq!(h.get_application_name(), Some("orders"));
        }
        Ok(())
    }

    #[test]
    fn bad_urls_are_named_without_the_password() {
        let err = |url: &str| format!("{:#}", hosts(url).expect_err(url));
        assert!(err("mysql://db/shop").contains("not a postgres:// URL"));
        assert!(err("postgres://u:pw@a:1,,b:2/shop").contains("host 2 of the URL is empty"));
        let read_only = err("postgres://u:pw@a:1,b:2/shop?target_session_attrs=read-only");
        assert!(
            read_only.contains("target_session_attrs=read-only"),
            "{read_only}"
        );
        let bad_port = err("postgres://u:hunter2@a:1,b:notaport/shop");
        assert!(bad_port.contains("host b:notaport"), "{bad_port}");
        assert!(!bad_port.contains("hunter2"), "{bad_port}");
    }
}
