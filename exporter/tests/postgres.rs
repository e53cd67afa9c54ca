//! PostgreSQL source against a real primary and streaming replicas, on every supported major
//! (13 to 18): the same ground truth each time.

use surge_testkit::exporter as common;

use std::time::{Duration, Instant};

use common::Exporter;
use surge_servers::PgCluster;
use surge_servers::postgres::SUPPORTED_MAJORS;

/// One module of tests per major; the list must be [`SUPPORTED_MAJORS`] (checked below).
macro_rules! on_every_major {
    ($($module:ident: $major:literal),* $(,)?) => {
        const TESTED_MAJORS: &[u32] = &[$($major),*];
        $(mod $module {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn replication_lag_is_honest_across_pause_outage_and_recovery(
            ) -> anyhow::Result<()> {
                super::replication_lag_is_honest(surge_servers::PgCluster::start_major($major, 2)?)
                    .await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn connections_match_the_ones_opened_by_state_and_database(
            ) -> anyhow::Result<()> {
                super::connections_match(surge_servers::PgCluster::start_major($major, 1)?).await
            }
        })*
    };
}

on_every_major!(pg13: 13, pg14: 14, pg15: 15, pg16: 16, pg17: 17, pg18: 18);

#[test]
fn every_supported_major_is_tested() {
    assert_eq!(TESTED_MAJORS, SUPPORTED_MAJORS);
}

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

/// What a replica has replayed against what its primary has written, read by the test itself.
fn caught_up(cluster: &PgCluster, replica: &str) -> anyhow::Result<(String, bool)> {
    let written = cluster.psql("primary", "SELECT pg_current_wal_lsn()")?;
    let replayed = cluster.psql(
        replica,
        &format!("SELECT pg_last_wal_replay_lsn() >= '{written}'::pg_lsn"),
    )?;
    Ok((written, replayed == "t"))
}

/// Cycle until `done` holds (a condition on the exporter's samples), at most `timeout`.
async fn cycle_until(
    exporter: &Exporter,
    what: &str,
    timeout: Duration,
    done: impl Fn(&Exporter) -> bool,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        exporter.cycle().await;
        if done(exporter) {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "{what}: not after {timeout:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn replication_lag_is_honest(mut cluster: PgCluster) -> anyhow::Result<()> {
    let secrets = tempfile::tempdir()?;
    let password_file = secrets.path().join("pg-password");
    std::fs::write(&password_file, format!("{}\n", cluster.monitor_password()))?;
    let exporter = Exporter::from_toml(&config(&cluster, &password_file)?)?;
    // The first reads of the catalogs set hint bits, which wal_log_hints (on, as pg_rewind and
    // CloudNativePG need) writes to WAL: let that reach the replicas before calling it idle.
    let first_cycle = Instant::now();
    exporter.cycle().await;
    cluster.wait_caught_up("replica1", Duration::from_secs(10))?;
    cluster.wait_caught_up("replica2", Duration::from_secs(10))?;

    // Idle: everything up but the bad password, and each replica's lag against what the test
    // reads itself around the cycle: 0 when it had replayed everything the primary wrote and
    // nothing was written meanwhile; otherwise (background WAL: checkpoints, hint bits) no
    // more than the time since the cycle before, when it was seen fresh. Over 3 cycles and
    // at least 1.4 s, so a lag that counted wall-clock time since the last replayed commit
    // (what an idle replica's naive lag does) would show.
    let idle_since = Instant::now();
    let mut previous = first_cycle;
    let mut zero_checked = 0;
    for _ in 0..3 {
        let around: Vec<(String, bool)> = ["replica1", "replica2"]
            .iter()
            .map(|r| caught_up(&cluster, r))
            .collect::<anyhow::Result<_>>()?;
        let started = Instant::now();
        assert!(!exporter.cycle().await, "bad-password target must fail");
        let after: Vec<(String, bool)> = ["replica1", "replica2"]
            .iter()
            .map(|r| caught_up(&cluster, r))
            .collect::<anyhow::Result<_>>()?;
        for (i, t) in ["replica1", "replica2"].iter().enumerate() {
            let lag = exporter
                .value("surge_postgres_replay_lag_seconds", &[("target", t)])
                .unwrap_or(-1.0);
            let quiet = around[i].1 && after[i].1 && around[i].0 == after[i].0;
            if quiet {
                assert_eq!(lag, 0.0, "idle {t}: replayed everything at {}", after[i].0);
                // Nothing written meanwhile: everything the sender reported was received.
                assert_eq!(
                    exporter.value("surge_postgres_receive_lag_bytes", &[("target", t)]),
                    Some(0.0),
                    "idle {t}: receive lag"
                );
                zero_checked += 1;
            } else {
                let bound = (started - previous).as_secs_f64() + started.elapsed().as_secs_f64();
                assert!(
                    (0.0..=bound).contains(&lag),
                    "idle {t}: lag {lag} s, more than the {bound:.2} s since it was seen fresh ({:?} → {:?})",
                    around[i],
                    after[i]
                );
            }
        }
        previous = started;
        for t in ["primary", "replica1", "replica2"] {
            assert_eq!(
                exporter.up("postgres", t),
                Some(true),
                "{t}: {:?}",
                exporter.last_error("postgres", t)
            );
            if t != "primary" {
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
    assert!(idle_since.elapsed() >= Duration::from_millis(1400));
    // Background WAL on an idle replica is rare: most readings were quiet ones.
    assert!(
        zero_checked >= 3,
        "only {zero_checked} of 6 idle readings were quiet"
    );
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
    // More writes while paused, until the paused replica's lag has grown past a second.
    write_rows(&cluster, 2000)?;
    cluster.wait_caught_up("replica2", Duration::from_secs(10))?;
    let replica1 = [("target", "replica1")];
    cycle_until(
        &exporter,
        "replica1's lag past 1 s",
        Duration::from_secs(10),
        |e| {
            e.value("surge_postgres_replay_lag_seconds", &replica1)
                .is_some_and(|s| s >= 1.0)
        },
    )
    .await?;
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

    // Its slot keeps the WAL written since: the exporter's figure is positive and no more than
    // what the primary says the slot holds, read after the cycle.
    write_rows(&cluster, 2000)?;
    exporter.cycle().await;
    let retained = exporter
        .value(
            "surge_postgres_replication_slot_retained_bytes",
            &[("target", "primary"), ("slot", "replica2")],
        )
        .unwrap_or(-1.0);
    let held: f64 = cluster
        .psql(
            "primary",
            "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn) FROM pg_replication_slots WHERE slot_name = 'replica2'",
        )?
        .parse()?;
    assert!(
        retained > 0.0 && retained <= held,
        "replica2's slot retains {retained} bytes by the exporter, {held} by the primary"
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
    let receiving = [("target", "replica1")];
    cycle_until(
        &exporter,
        "replica1's receiver stopped",
        Duration::from_secs(30),
        |e| e.value("surge_postgres_wal_receiver_streaming", &receiving) == Some(0.0),
    )
    .await?;
    let first = exporter
        .value("surge_postgres_replay_lag_seconds", &receiving)
        .unwrap_or(-1.0);
    cycle_until(
        &exporter,
        "replica1's lag growing past 1 s",
        Duration::from_secs(10),
        |e| {
            e.value("surge_postgres_replay_lag_seconds", &receiving)
                .is_some_and(|s| s > first && s >= 1.0)
        },
    )
    .await?;
    let second = exporter
        .value("surge_postgres_replay_lag_seconds", &receiving)
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

/// Connections counted against the ones this test opens (the ground truth), on the primary
/// and on a replica, with the longest idle transaction and lock wait bracketed by the wall
/// clock around the cycle that read them (on 13, which has no `pg_locks.waitstart`, the wait
/// is bounded by the waiting query's start).
async fn connections_match(cluster: PgCluster) -> anyhow::Result<()> {
    use sqlx::{Connection, Executor, PgConnection};

    let secrets = tempfile::tempdir()?;
    let password_file = secrets.path().join("pg-password");
    std::fs::write(&password_file, format!("{}\n", cluster.monitor_password()))?;
    let mut toml = String::from("[postgres]\ninterval = \"2s\"\ntimeout = \"2s\"\n");
    for name in ["primary", "replica1"] {
        toml.push_str(&format!(
            "[[postgres.targets]]\nname = \"{name}\"\ndsn = \"{}\"\npassword_file = \"{}\"\n",
            cluster.monitor_dsn(name)?,
            password_file.display()
        ));
    }
    let exporter = Exporter::from_toml(&toml)?;
    cluster.psql("primary", "CREATE DATABASE probe")?;
    cluster.psql_in("primary", "probe", "CREATE TABLE held (id int)")?;
    cluster.wait_caught_up("replica1", Duration::from_secs(10))?;
    let probe = |node: &str| -> anyhow::Result<String> {
        Ok(format!(
            "postgres://postgres@127.0.0.1:{}/probe",
            cluster.port(node)?
        ))
    };

    // Before: the probe database is known and every state reads 0.
    assert!(exporter.cycle().await);
    let count = |target: &str, state: &str| {
        exporter.value(
            "surge_postgres_connections",
            &[("target", target), ("database", "probe"), ("state", state)],
        )
    };
    assert_eq!(count("primary", "idle"), Some(0.0));
    assert_eq!(count("replica1", "active"), Some(0.0));

    let mut open = Vec::new();
    for _ in 0..5 {
        open.push(PgConnection::connect(&probe("primary")?).await?);
    }
    let mut in_transaction = Vec::new();
    for _ in 0..2 {
        let mut conn = PgConnection::connect(&probe("primary")?).await?;
        conn.execute("BEGIN; SELECT 1").await?;
        in_transaction.push(conn);
    }
    let idle_since = Instant::now();
    let mut holder = PgConnection::connect(&probe("primary")?).await?;
    holder.execute("BEGIN; LOCK TABLE held").await?;
    let mut waiter = PgConnection::connect(&probe("primary")?).await?;
    let waiting_since = Instant::now();
    let waiting = tokio::spawn(async move {
        waiter
            .execute("SELECT count(*) FROM held")
            .await
            .map(|_| waiter)
    });
    let mut on_replica = Vec::new();
    for _ in 0..3 {
        on_replica.push(PgConnection::connect(&probe("replica1")?).await?);
    }
    // The waiter's query has reached the server and waits on the lock.
    surge_servers::wait_until(
        "the waiter blocked on the lock",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || {
            Ok(cluster.psql_in(
                "primary",
                "probe",
                "SELECT count(*) FROM pg_stat_activity WHERE datname = 'probe' AND wait_event_type = 'Lock'",
            )? == "1")
        },
    )?;
    // Ages measured must be well past the bracket's ±0.5 s slack, so a wrong clock shows.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let before = (idle_since.elapsed(), waiting_since.elapsed());
    assert!(exporter.cycle().await);
    let after = (idle_since.elapsed(), waiting_since.elapsed());
    assert_eq!(count("primary", "idle"), Some(5.0));
    assert_eq!(count("primary", "idle_in_transaction"), Some(3.0));
    assert_eq!(count("primary", "active"), Some(1.0), "the lock waiter");
    assert_eq!(count("replica1", "idle"), Some(3.0));
    assert_eq!(count("replica1", "idle_in_transaction"), Some(0.0));
    let idle = exporter
        .value(
            "surge_postgres_longest_idle_in_transaction_seconds",
            &[("target", "primary")],
        )
        .unwrap_or(-1.0);
    assert!(
        idle >= before.0.as_secs_f64() - 0.5 && idle <= after.0.as_secs_f64() + 0.5,
        "idle in transaction {idle} s, wall {before:?}..{after:?}"
    );
    let waited = exporter
        .value(
            "surge_postgres_longest_lock_wait_seconds",
            &[("target", "primary")],
        )
        .unwrap_or(-1.0);
    assert!(
        waited >= before.1.as_secs_f64() - 0.5 && waited <= after.1.as_secs_f64() + 0.1,
        "lock wait {waited} s, wall {before:?}..{after:?}"
    );
    let setting = |name: &str| -> anyhow::Result<f64> {
        Ok(cluster.psql("primary", &format!("SHOW {name}"))?.parse()?)
    };
    assert_eq!(
        exporter.value("surge_postgres_max_connections", &[("target", "primary")]),
        Some(setting("max_connections")?)
    );
    // `reserved_connections` (for pg_use_reserved_connections roles) came with 16.
    let reserved = setting("superuser_reserved_connections")?
        + if cluster.major() >= 16 {
            setting("reserved_connections")?
        } else {
            0.0
        };
    assert_eq!(
        exporter.value(
            "surge_postgres_reserved_connections",
            &[("target", "primary")]
        ),
        Some(reserved)
    );

    // Release: the lock is granted, transactions end, the probe's states drain to 0.
    holder.execute("COMMIT").await?;
    let waiter = waiting.await??;
    for mut conn in in_transaction {
        conn.execute("COMMIT").await?;
        conn.close().await?;
    }
    for conn in open.into_iter().chain(on_replica).chain([holder, waiter]) {
        conn.close().await?;
    }
    // Backends exit just after the client closes: give the server a moment.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        assert!(exporter.cycle().await);
        let idle = count("primary", "idle");
        if idle == Some(0.0) || Instant::now() > deadline {
            assert_eq!(idle, Some(0.0));
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(count("primary", "idle_in_transaction"), Some(0.0));
    assert_eq!(count("primary", "active"), Some(0.0));
    for family in [
        "surge_postgres_longest_idle_in_transaction_seconds",
        "surge_postgres_longest_lock_wait_seconds",
    ] {
        assert_eq!(
            exporter.value(family, &[("target", "primary")]),
            Some(0.0),
            "{family}"
        );
    }
    Ok(())
}

/// A server older than 13 is refused by name: its target is down with the reason, and nothing
/// else of it is exported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgresql_12_is_refused_by_name() -> anyhow::Result<()> {
    let cluster = PgCluster::start_major(12, 0)?;
    let secrets = tempfile::tempdir()?;
    let password_file = secrets.path().join("pg-password");
    std::fs::write(&password_file, cluster.monitor_password())?;
    let exporter = Exporter::from_toml(&format!(
        "[postgres]\ninterval = \"1s\"\ntimeout = \"1s\"\n\
         [[postgres.targets]]\nname = \"old\"\ndsn = \"{}\"\npassword_file = \"{}\"\n",
        cluster.monitor_dsn("primary")?,
        password_file.display()
    ))?;
    assert!(!exporter.cycle().await);
    assert_eq!(exporter.up("postgres", "old"), Some(false));
    let error = exporter.last_error("postgres", "old").unwrap_or_default();
    assert!(
        error.contains("PostgreSQL 12 is not supported; surge-exporter needs 13 or newer"),
        "{error}"
    );
    assert_eq!(
        exporter.value("surge_postgres_is_replica", &[("target", "old")]),
        None
    );
    Ok(())
}

/// A role without `pg_monitor` sees other sessions' rows with their details hidden: each
/// target is down with the grant it lacks, on the primary and on a replica, never zeros.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_without_pg_monitor_is_told_the_grant_it_lacks() -> anyhow::Result<()> {
    let cluster = PgCluster::start(1)?;
    cluster.psql(
        "primary",
        "CREATE ROLE plain LOGIN PASSWORD 'plain-password'",
    )?;
    cluster.wait_caught_up("replica1", Duration::from_secs(10))?;
    let secrets = tempfile::tempdir()?;
    let password_file = secrets.path().join("pg-password");
    std::fs::write(&password_file, "plain-password")?;
    let mut toml = String::from("[postgres]\ninterval = \"1s\"\ntimeout = \"1s\"\n");
    for name in ["primary", "replica1"] {
        toml.push_str(&format!(
            "[[postgres.targets]]\nname = \"{name}\"\ndsn = \"{}\"\npassword_file = \"{}\"\n",
            cluster
                .monitor_dsn(name)?
                .replace("surge_monitor@", "plain@"),
            password_file.display()
        ));
    }
    let exporter = Exporter::from_toml(&toml)?;
    // Someone else's session on each server, whose details a plain role may not read.
    let _held = [
        cluster.hold_transaction("primary", "SELECT 1")?,
        cluster.hold_transaction("replica1", "SELECT 1")?,
    ];
    assert!(!exporter.cycle().await);
    for target in ["primary", "replica1"] {
        assert_eq!(exporter.up("postgres", target), Some(false), "{target}");
        let error = exporter.last_error("postgres", target).unwrap_or_default();
        assert!(
            error.contains("insufficient privilege") && error.contains("grant pg_monitor"),
            "{target}: {error}"
        );
        assert_eq!(
            exporter.value("surge_postgres_connections", &[("target", target)]),
            None,
            "{target}"
        );
    }
    Ok(())
}

/// A CloudNativePG instance pod of cluster `shop-db` as the API shows it: its PostgreSQL at
/// `port` on loopback (the stand-in's pod IP), declared as the container's `postgresql` port.
fn instance_pod(name: &str, port: u16, pod_role: &str) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "shop",
            "labels": {"cnpg.io/cluster": "shop-db", "cnpg.io/podRole": pod_role, "cnpg.io/instanceName": name},
        },
        "spec": {"containers": [{"name": "postgres", "image": "postgres", "ports": [
            {"name": "postgresql", "containerPort": port},
            {"name": "metrics", "containerPort": 9187},
        ]}]},
        "status": {"phase": "Running", "podIP": "127.0.0.1"},
    })
}

/// Issue 28, fault 6: the standbys of a CloudNativePG cluster are discovered through the API
/// (pods `cnpg.io/cluster=shop-db,cnpg.io/podRole=instance`) and each is its own target,
/// instead of one target through the `-ro` Service that reads a different standby each time.
/// A pooler pod with the cluster's label is not an instance. A replaced pod (failover, a node
/// lost) leaves with its series, the new one appears; an API that cannot be asked marks the
/// discovery down while the instances already known are still collected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloudnative_pg_instances_are_discovered_and_each_watched() -> anyhow::Result<()> {
    use surge_testkit::kube_api::{self, KubeApiStandIn};

    let cluster = PgCluster::start(2)?;
    let api = KubeApiStandIn::start()?;
    for (pod, node) in [
        ("shop-db-1", "primary"),
        ("shop-db-2", "replica1"),
        ("shop-db-3", "replica2"),
    ] {
        api.apply(&instance_pod(pod, cluster.port(node)?, "instance"))?;
    }
    // A pooler carries the cluster's label (and a port of its own): never a target.
    api.apply(&instance_pod(
        "shop-db-pooler-ro-7d9f",
        cluster.port("replica1")?,
        "pooler",
    ))?;
    let dir = tempfile::tempdir()?;
    let kubeconfig = dir.path().join("kubeconfig");
    api.write_kubeconfig(&kubeconfig)?;
    let password_file = dir.path().join("pg-password");
    std::fs::write(&password_file, cluster.monitor_password())?;
    let exporter = Exporter::from_toml(&format!(
        "[postgres]\ninterval = \"2s\"\ntimeout = \"2s\"\n\
         [[postgres.cloudnative_pg]]\ncluster = \"shop-db\"\nnamespace = \"shop\"\n\
         dsn = \"postgres://surge_monitor@instance/postgres?sslmode=disable\"\n\
         password_file = \"{}\"\nkubeconfig = \"{}\"\n",
        password_file.display(),
        kubeconfig.display()
    ))?;
    let discovery = "cloudnative-pg:shop/shop-db";
    // The first cycle finds the instances; from the next on each is collected.
    exporter.cycle().await;
    assert_eq!(exporter.up("postgres", discovery), Some(true));
    assert!(exporter.cycle().await, "{}", exporter.text());
    let role = |target: &str| exporter.value("surge_postgres_is_replica", &[("target", target)]);
    assert_eq!(
        [role("shop-db-1"), role("shop-db-2"), role("shop-db-3")],
        [Some(0.0), Some(1.0), Some(1.0)],
        "{}",
        exporter.text()
    );
    assert_eq!(exporter.up("postgres", "shop-db-pooler-ro-7d9f"), None);
    // Each standby its own replay position, on its own series.
    for standby in ["shop-db-2", "shop-db-3"] {
        assert!(
            exporter
                .value(
                    "surge_postgres_wal_receiver_streaming",
                    &[("target", standby)]
                )
                .is_some(),
            "{standby}: {}",
            exporter.text()
        );
    }

    // shop-db-3's pod is replaced by shop-db-4 (same server here, a new pod name).
    api.delete(&kube_api::pods(), "shop", "shop-db-3")?;
    api.apply(&instance_pod(
        "shop-db-4",
        cluster.port("replica2")?,
        "instance",
    ))?;
    exporter.cycle().await;
    assert!(exporter.cycle().await, "{}", exporter.text());
    let text = exporter.text();
    assert!(
        !text.contains("target=\"shop-db-3\""),
        "a gone pod's series stay: {text}"
    );
    assert_eq!(role("shop-db-4"), Some(1.0), "{text}");

    // The API unreachable: the discovery says so; the instances known are still watched.
    api.set_failure(&kube_api::pods(), Some(503));
    assert!(!exporter.cycle().await);
    assert_eq!(exporter.up("postgres", discovery), Some(false));
    let error = exporter
        .last_error("postgres", discovery)
        .unwrap_or_default();
    assert!(
        error.contains("listing the pods of CloudNativePG cluster shop/shop-db"),
        "{error}"
    );
    assert_eq!(exporter.up("postgres", "shop-db-1"), Some(true));
    assert_eq!(role("shop-db-1"), Some(0.0));
    Ok(())
}
