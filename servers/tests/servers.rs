//! The Debian-packaged servers start, answer, and stop.

use surge_servers::{Alertmanager, Nginx, Prometheus, Redis, Workdir, free_port};

#[test]
fn redis_nginx_prometheus_alertmanager_start_and_answer() -> anyhow::Result<()> {
    let redis = Redis::start()?;
    assert!(redis.url().starts_with("redis://127.0.0.1:"));

    let port = free_port()?;
    let nginx = Nginx::start_in(
        Workdir::temp("surge-nginx-")?,
        &format!("  server {{ listen 127.0.0.1:{port}; location / {{ return 200 \"one\\n\"; }} }}"),
        port,
    )?;
    let addr = format!("127.0.0.1:{port}");
    assert_eq!(surge_servers::http::get(&addr, "/", None)?.2, "one\n");
    nginx.reload(&format!(
        "  server {{ listen 127.0.0.1:{port}; location / {{ return 200 \"two\\n\"; }} }}"
    ))?;
    surge_servers::wait_until(
        "reload",
        std::time::Duration::from_secs(5),
        std::time::Duration::from_millis(50),
        || Ok(surge_servers::http::get(&addr, "/", None)?.2 == "two\n"),
    )?;

    let prometheus = Prometheus::start_in(
        Workdir::temp("surge-prom-")?,
        free_port()?,
        "global:\n  scrape_interval: 1s\nscrape_configs: []\n",
    )?;
    let addr = prometheus.url().trim_start_matches("http://").to_string();
    let (status, _, body) = surge_servers::http::get(&addr, "/api/v1/query?query=1%2B1", None)?;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"2\""), "{body}");

    let alertmanager = Alertmanager::start_in(
        Workdir::temp("surge-am-")?,
        free_port()?,
        "route:\n  receiver: \"null\"\nreceivers:\n  - name: \"null\"\n",
    )?;
    let addr = alertmanager.url().trim_start_matches("http://").to_string();
    assert_eq!(
        surge_servers::http::get(&addr, "/api/v2/status", None)?.0,
        200
    );
    Ok(())
}

/// A failover the way the drills do it: commits wait for a standby, the primary is killed, the
/// most advanced standby is promoted and the other follows it, and the old primary rejoins
/// with pg_rewind and stays streaming. Every acknowledged row survives.
#[test]
fn postgres_fails_over_and_the_old_primary_rejoins_as_a_standby() -> anyhow::Result<()> {
    use std::time::Duration;
    let mut cluster = surge_servers::PgCluster::start(2)?;
    cluster.synchronous()?;
    cluster.psql("primary", "CREATE TABLE t (n int PRIMARY KEY)")?;
    cluster.psql("primary", "INSERT INTO t SELECT generate_series(1, 500)")?;
    cluster.kill_node("primary")?;
    let promoted = cluster.fail_over()?;
    assert_ne!(promoted, "primary");
    assert_eq!(cluster.primary_name(), promoted);
    assert_eq!(cluster.psql(&promoted, "SELECT pg_is_in_recovery()")?, "f");
    assert_eq!(cluster.psql(&promoted, "SELECT count(*) FROM t")?, "500");
    // Commits need the other standby to follow the new primary.
    cluster.psql(&promoted, "INSERT INTO t VALUES (501)")?;
    cluster.rejoin("primary")?;
    assert_eq!(
        cluster.psql("primary", "SELECT count(*) FROM pg_replication_slots")?,
        "0",
        "the old primary kept its slots"
    );
    cluster.psql(&promoted, "INSERT INTO t VALUES (502)")?;
    for name in cluster.node_names() {
        if name != promoted {
            cluster.wait_caught_up(&name, Duration::from_secs(30))?;
            assert_eq!(cluster.psql(&name, "SELECT pg_is_in_recovery()")?, "t");
            assert_eq!(cluster.psql(&name, "SELECT count(*) FROM t")?, "502");
        }
    }
    // Still streaming a while later through the same WAL receiver: a standby that connects,
    // fails and retries would start a new one within `wal_retrieve_retry_interval`, so the
    // window is that plus a second.
    let receiver = |name: &str| cluster.psql(name, "SELECT pid FROM pg_stat_wal_receiver");
    let standbys: Vec<String> = cluster
        .node_names()
        .into_iter()
        .filter(|n| *n != promoted)
        .collect();
    let before: Vec<String> = standbys
        .iter()
        .map(|n| receiver(n))
        .collect::<anyhow::Result<_>>()?;
    let retry: u64 = cluster
        .psql(
            &promoted,
            "SELECT setting FROM pg_settings WHERE name = 'wal_retrieve_retry_interval'",
        )?
        .parse()?;
    std::thread::sleep(Duration::from_millis(retry) + Duration::from_secs(1));
    let after: Vec<String> = standbys
        .iter()
        .map(|n| receiver(n))
        .collect::<anyhow::Result<_>>()?;
    assert_eq!(before, after, "a standby's WAL receiver restarted");
    assert_eq!(before.len(), 2);
    for name in cluster.node_names() {
        if name != promoted {
            cluster
                .wait_streaming(&name, Duration::from_secs(1))
                .map_err(|e| {
                    let log = cluster
                        .node(&name)
                        .map(|n| surge_servers::process::log_tail(n.log_path(), 3000))
                        .unwrap_or_default();
                    anyhow::anyhow!("{e:#}\n{log}")
                })?;
        }
    }
    Ok(())
}

/// Every supported major starts from its template as a primary with a streaming standby that
/// replays what the primary writes, and reports the version it was asked for.
#[test]
fn every_supported_major_streams_to_its_standby() -> anyhow::Result<()> {
    use std::time::Duration;
    let mut streamed = Vec::new();
    for major in surge_servers::postgres::SUPPORTED_MAJORS {
        let cluster = surge_servers::PgCluster::start_major(major, 1)?;
        assert_eq!(cluster.major(), major);
        assert_eq!(
            cluster.psql("primary", "SHOW server_version_num")?[..2],
            major.to_string()
        );
        cluster.psql(
            "primary",
            "CREATE TABLE t AS SELECT generate_series(1, 100) AS n",
        )?;
        cluster.wait_caught_up("replica1", Duration::from_secs(30))?;
        assert_eq!(cluster.psql("replica1", "SELECT pg_is_in_recovery()")?, "t");
        assert_eq!(cluster.psql("replica1", "SELECT count(*) FROM t")?, "100");
        streamed.push(major);
    }
    assert_eq!(streamed, surge_servers::postgres::SUPPORTED_MAJORS);
    Ok(())
}
