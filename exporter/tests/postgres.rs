//! PostgreSQL source against a real primary and two streaming replicas.

use surge_testkit::exporter as common;

use std::time::Duration;

use common::Exporter;
use surge_servers::PgCluster;

fn config(cluster: &PgCluster, password_file: &std::path::Path) -> anyhow::Result<String> {
    let mut text = String::from(
        "[postgres]\ninterval = \"1s\"\ntimeout = \"1s\"\nstandby_retention = \"1h\"\n",
    );
    for name in ["primary", "replica1", "replica2"] {
        text.push_str(&format!(
            "[[postgres.targets]]\nname = \"{name}\"\ndsn = \"{}\"\npassword_file = \"{}\"\n",
            cluster.monitor_dsn(name)?,
            password_file.display()
        ));
    }
    // Same server, wrong password: must be down on its own.
    text.push_str(&format!(
        "[[postgres.targets]]\nname = \"bad-password\"\ndsn = \"{}\"\n",
        cluster
            .monitor_dsn("primary")?
            .replace("surge_monitor@", "surge_monitor:wrong@")
    ));
    Ok(text)
}

fn write_rows(cluster: &PgCluster, rows: u32) -> anyhow::Result<()> {
    cluster.psql(
        "primary",
        &format!("CREATE TABLE IF NOT EXISTS t (id serial, v text); INSERT INTO t (v) SELECT md5(g::text) FROM generate_series(1, {rows}) g;"),
    )?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replication_lag_is_honest_across_pause_outage_and_recovery() -> anyhow::Result<()> {
    let mut cluster = PgCluster::start(2)?;
    let secrets = tempfile::tempdir()?;
    let password_file = secrets.path().join("pg-password");
    std::fs::write(&password_file, format!("{}\n", cluster.monitor_password()))?;
    let exporter = Exporter::from_toml(&config(&cluster, &password_file)?)?;
    cluster.wait_caught_up("replica1", Duration::from_secs(10))?;
    cluster.wait_caught_up("replica2", Duration::from_secs(10))?;

    // Idle: everything up but the bad password, zero lag, and replica lag not growing.
    for _ in 0..3 {
        assert!(!exporter.cycle().await, "bad-password target must fail");
        for t in ["primary", "replica1", "replica2"] {
            assert_eq!(
                exporter.up("postgres", t),
                Some(true),
                "{t}: {:?}",
                exporter.last_error("postgres", t)
            );
            let lag = exporter.value("surge_postgres_replay_lag_seconds", &[("target", t)]);
            if t != "primary" {
                assert_eq!(lag, Some(0.0), "idle {t} lag");
                assert_eq!(
                    exporter.value("surge_postgres_wal_receiver_streaming", &[("target", t)]),
                    Some(1.0)
                );
            }
        }
        for r in ["replica1", "replica2"] {
            let labels = [("target", "primary"), ("replica", r)];
            assert_eq!(
                exporter.value("surge_postgres_replica_streaming", &labels),
                Some(1.0)
            );
            assert_eq!(
                exporter.value("surge_postgres_replica_lag_bytes", &labels),
                Some(0.0)
            );
            let slot = [("target", "primary"), ("slot", r)];
            assert_eq!(
                exporter.value("surge_postgres_replication_slot_active", &slot),
                Some(1.0)
            );
        }
        assert_eq!(
            exporter.value("surge_postgres_is_replica", &[("target", "primary")]),
            Some(0.0)
        );
        assert_eq!(
            exporter.value("surge_postgres_is_replica", &[("target", "replica1")]),
            Some(1.0)
        );
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    assert_eq!(exporter.up("postgres", "bad-password"), Some(false));
    let error = exporter
        .last_error("postgres", "bad-password")
        .unwrap_or_default();
    assert!(error.contains("password authentication failed"), "{error}");

    // Pause replay on replica1 and write: its byte and second lag grow, replica2 stays ~0.
    cluster.psql("replica1", "SELECT pg_wal_replay_pause()")?;
    write_rows(&cluster, 2000)?;
    cluster.wait_caught_up("replica2", Duration::from_secs(10))?;
    exporter.cycle().await;
    let paused = [("target", "primary"), ("replica", "replica1")];
    let healthy = [("target", "primary"), ("replica", "replica2")];
    let bytes_1 = exporter
        .value("surge_postgres_replica_lag_bytes", &paused)
        .unwrap_or(0.0);
    let secs_1 = exporter
        .value(
            "surge_postgres_replay_lag_seconds",
            &[("target", "replica1")],
        )
        .unwrap_or(0.0);
    assert!(bytes_1 > 0.0, "paused replica byte lag {bytes_1}");
    assert_eq!(
        exporter.value("surge_postgres_replay_paused", &[("target", "replica1")]),
        Some(1.0)
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    write_rows(&cluster, 2000)?;
    cluster.wait_caught_up("replica2", Duration::from_secs(10))?;
    exporter.cycle().await;
    let bytes_2 = exporter
        .value("surge_postgres_replica_lag_bytes", &paused)
        .unwrap_or(0.0);
    let secs_2 = exporter
        .value(
            "surge_postgres_replay_lag_seconds",
            &[("target", "replica1")],
        )
        .unwrap_or(0.0);
    assert!(
        bytes_2 > bytes_1,
        "byte lag must grow: {bytes_1} -> {bytes_2}"
    );
    assert!(
        secs_2 > secs_1 && secs_2 >= 1.0,
        "second lag must grow: {secs_1} -> {secs_2}"
    );
    assert_eq!(
        exporter.value("surge_postgres_replica_lag_bytes", &healthy),
        Some(0.0)
    );
    assert_eq!(
        exporter.value(
            "surge_postgres_replay_lag_seconds",
            &[("target", "replica2")]
        ),
        Some(0.0)
    );
    let replay_bytes = exporter
        .value("surge_postgres_replay_lag_bytes", &[("target", "replica1")])
        .unwrap_or(0.0);
    assert!(
        replay_bytes > 0.0,
        "replica-side replay bytes {replay_bytes}"
    );

    // Resume: back to zero.
    cluster.psql("replica1", "SELECT pg_wal_replay_resume()")?;
    cluster.wait_caught_up("replica1", Duration::from_secs(10))?;
    exporter.cycle().await;
    assert_eq!(
        exporter.value("surge_postgres_replica_lag_bytes", &paused),
        Some(0.0)
    );
    assert_eq!(
        exporter.value(
            "surge_postgres_replay_lag_seconds",
            &[("target", "replica1")]
        ),
        Some(0.0)
    );

    // Stop replica2: its target is down, the primary shows it not streaming, others report.
    cluster.stop_node("replica2")?;
    exporter.cycle().await;
    assert_eq!(exporter.up("postgres", "replica2"), Some(false));
    assert_eq!(exporter.up("postgres", "primary"), Some(true));
    assert_eq!(exporter.up("postgres", "replica1"), Some(true));
    assert_eq!(
        exporter.value("surge_postgres_replica_streaming", &healthy),
        Some(0.0)
    );
    assert_eq!(
        exporter.value("surge_postgres_replica_lag_bytes", &healthy),
        None
    );
    assert_eq!(
        exporter.value(
            "surge_postgres_replication_slot_active",
            &[("target", "primary"), ("slot", "replica2")]
        ),
        Some(0.0)
    );
    assert!(
        exporter
            .value(
                "surge_postgres_replay_lag_seconds",
                &[("target", "replica1")]
            )
            .is_some()
    );

    // Restart: recovers by itself.
    cluster.start_node("replica2")?;
    cluster.wait_streaming("replica2", Duration::from_secs(30))?;
    cluster.wait_caught_up("replica2", Duration::from_secs(10))?;
    exporter.cycle().await;
    assert_eq!(
        exporter.up("postgres", "replica2"),
        Some(true),
        "{:?}",
        exporter.last_error("postgres", "replica2")
    );
    assert_eq!(
        exporter.value("surge_postgres_replica_streaming", &healthy),
        Some(1.0)
    );

    // Primary gone: replicas' receivers stop, receive == replay, and yet lag must grow
    // (postgres_exporter reports 0 here).
    cluster.stop_node("primary")?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    exporter.cycle().await;
    let first = exporter
        .value(
            "surge_postgres_replay_lag_seconds",
            &[("target", "replica1")],
        )
        .unwrap_or(-1.0);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    exporter.cycle().await;
    let second = exporter
        .value(
            "surge_postgres_replay_lag_seconds",
            &[("target", "replica1")],
        )
        .unwrap_or(-1.0);
    assert_eq!(exporter.up("postgres", "primary"), Some(false));
    assert_eq!(
        exporter.value(
            "surge_postgres_wal_receiver_streaming",
            &[("target", "replica1")]
        ),
        Some(0.0)
    );
    assert!(
        second > first && second >= 1.0,
        "lag with a dead primary must grow: {first} -> {second}"
    );
    Ok(())
}
