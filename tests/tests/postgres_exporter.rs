//! The panel's PostgreSQL rows from postgres_exporter (Debian's package, as it ships: v0.11
//! with its example queries file, which is where that version's replication lag comes from)
//! on the real primary and replicas, beside surge-exporter on the same servers, both scraped
//! by a real Prometheus: the same servers, roles and lag (within a scrape and collection
//! interval), and a paused replica judged the same way. Clients are counted by the name they
//! give (`application_name`).

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use surge_client::fetch::Prometheus as Api;
use surge_client::fetch::Update;
use surge_client::fetch::signals::{Choice, Provider, Signals};
use surge_client::store::{Database, Role, ServerRow, ServiceRow, Store, Verdict, verdict};
use surge_exporter::Exporter;
use surge_exporter::config::Config;
use surge_servers::{PgCluster, Prometheus, ServerProcess, Workdir, free_port, wait_until};

/// Debian's postgres_exporter and the example queries it ships.
const EXPORTER: &str = "prometheus-postgres-exporter";
const QUERIES: &str = "/usr/share/doc/prometheus-postgres-exporter/examples/queries.yaml";

/// The servers' rows as the panel reads them at `at`, with `postgres` providing them.
fn servers(url: &str, postgres: Provider, at: f64) -> anyhow::Result<Vec<ServerRow>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let http =
        surge_client::fetch::http_client(Duration::from_secs(10)).map_err(anyhow::Error::msg)?;
    let api = Api::new(url, http)
        .with_signals(Signals {
            fixed: Choice {
                postgres: Some(postgres),
                ..Choice::default()
            },
            ..Signals::default()
        })
        .at(Some(at));
    let metrics = runtime.block_on(async {
        let choice = api.detect().await?;
        api.overview(&choice).await
    })?;
    let mut store = Store::new(60.0);
    store.apply(
        Update::Metrics {
            source: "prometheus".into(),
            metrics,
            at,
        },
        at,
    );
    Ok(store.derived().servers.clone())
}

/// A scaled service on these servers: its verdict is the database's.
fn judged(servers: &[ServerRow]) -> Verdict {
    verdict(&ServiceRow {
        namespace: "shop".into(),
        workload: "orders".into(),
        current: Some(2.0),
        desired: Some(2.0),
        max: Some(10.0),
        headroom: Some(8.0),
        db: Database::worst(servers),
        ..ServiceRow::default()
    })
}

fn now() -> f64 {
    surge_client::fetch::now()
}

#[test]
fn postgres_exporter_on_real_servers_reads_as_surge_exporter_does() -> anyhow::Result<()> {
    // surge-exporter serves from this runtime's threads; the panel's reads make their own.
    let runtime = tokio::runtime::Runtime::new()?;
    let dir = Workdir::temp("surge-pe-")?;
    let cluster = PgCluster::start(2)?;
    let names = cluster.node_names();
    assert_eq!(names, ["primary", "replica1", "replica2"]);
    cluster.psql(
        "primary",
        "CREATE TABLE IF NOT EXISTS ticks (at timestamptz DEFAULT now())",
    )?;
    // Writes all along: a replica's replay-timestamp lag then measures replay, not idleness.
    let writing = Arc::new(AtomicBool::new(true));
    let writer = {
        let writing = Arc::clone(&writing);
        let dsn = cluster.superuser_dsn("primary")?;
        std::thread::spawn(move || {
            while writing.load(Ordering::Relaxed) {
                let _ = Command::new("psql")
                    .args([&dsn, "-qAtc", "INSERT INTO ticks DEFAULT VALUES"])
                    .output();
                std::thread::sleep(Duration::from_millis(200));
            }
        })
    };

    // surge-exporter on the three servers.
    let password = dir.path().join("pg-password");
    std::fs::write(&password, cluster.monitor_password())?;
    let mut config = String::from("[postgres]\ninterval = \"1s\"\ntimeout = \"1s\"\n");
    for name in &names {
        config.push_str(&format!(
            "[[postgres.targets]]\nname = \"{name}\"\ndsn = \"{}\"\npassword_file = \"{}\"\n",
            cluster.monitor_dsn(name)?,
            password.display()
        ));
    }
    let exporter = runtime
        .block_on(Exporter::new(&Config::parse(&config)?)?.spawn(([127, 0, 0, 1], 0).into()))
        .map_err(anyhow::Error::msg)?;

    // postgres_exporter, one per server, as Debian ships it.
    let mut exporters = Vec::new();
    let mut targets = String::new();
    for name in &names {
        let port = free_port()?;
        let mut command = Command::new(EXPORTER);
        command
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg(format!("--extend.query-path={QUERIES}"))
            .env(
                "DATA_SOURCE_NAME",
                format!(
                    "postgresql://surge_monitor:{}@127.0.0.1:{}/postgres?sslmode=disable",
                    cluster.monitor_password(),
                    cluster.port(name)?
                ),
            );
        exporters.push(ServerProcess::spawn(
            EXPORTER,
            command,
            &dir.path().join(format!("pe-{name}.log")),
        )?);
        targets.push_str(&format!(
            "      - targets: [\"127.0.0.1:{port}\"]\n        labels: {{instance: {name}}}\n"
        ));
    }
    let prometheus = Prometheus::start_in(
        Workdir::temp("surge-pe-prom-")?,
        free_port()?,
        &format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n\
             \x20 - job_name: surge-exporter\n    static_configs:\n      - targets: [\"{}\"]\n\
             \x20 - job_name: postgres-exporter\n    static_configs:\n{targets}",
            exporter.addr
        ),
    )?;
    let url = prometheus.url();

    // Both paths see three servers with their roles.
    let rows_agree = |at: f64| -> anyhow::Result<(Vec<ServerRow>, Vec<ServerRow>)> {
        Ok((
            servers(&url, Provider::Surge, at)?,
            servers(&url, Provider::PostgresExporter, at)?,
        ))
    };
    {
        wait_until(
            "both paths see every server's role",
            Duration::from_secs(60),
            Duration::from_millis(500),
            || {
                let (own, theirs) = rows_agree(now())?;
                let roles = |rows: &[ServerRow]| -> Vec<(String, Role)> {
                    rows.iter().map(|s| (s.target.clone(), s.role)).collect()
                };
                Ok(roles(&own).len() == 3 && roles(&own) == roles(&theirs))
            },
        )
    }?;
    let (own, theirs) = rows_agree(now())?;
    let roles: Vec<(&str, Role)> = theirs.iter().map(|s| (s.target.as_str(), s.role)).collect();
    assert_eq!(
        roles,
        [
            ("primary", Role::Primary),
            ("replica1", Role::Replica),
            ("replica2", Role::Replica)
        ]
    );
    // Connections and slots read the same servers' pg_stat_activity and settings.
    for (a, b) in own.iter().zip(&theirs) {
        assert_eq!(a.connection_slots, b.connection_slots, "{a:?} {b:?}");
        assert!(b.connections.is_some_and(|c| c >= 1.0), "{b:?}");
    }

    // A client naming itself (as each shop service does) is counted by name on its server:
    // what tells the panel which servers a service uses.
    let mut session = Command::new("psql");
    session
        .args([
            &cluster.superuser_dsn("replica1")?,
            "-qAtc",
            "SELECT pg_sleep(300)",
        ])
        .env("PGAPPNAME", "orders");
    let _session = ServerProcess::spawn("psql", session, &dir.path().join("session.log"))?;
    let prom = surge_testkit::prom::PromQl::new(&url)?;
    wait_until(
        "the session counted as orders' on replica1",
        Duration::from_secs(30),
        Duration::from_millis(300),
        || {
            Ok(prom.value(
                "surge_postgres_client_connections{target=\"replica1\",application=\"orders\"}",
            )? == Some(1.0))
        },
    )?;

    // Replay paused on replica2: its lag grows on both paths, and past the warning line both
    // judge the service the same way.
    cluster.psql("replica2", "SELECT pg_wal_replay_pause()")?;
    {
        wait_until(
            "replica2 past the replica-lag warning line on both paths",
            Duration::from_secs(90),
            Duration::from_millis(500),
            || {
                let (own, theirs) = rows_agree(now())?;
                let lag = |rows: &[ServerRow]| {
                    rows.iter()
                        .find(|s| s.target == "replica2")
                        .and_then(|s| s.replay_lag_seconds)
                        .unwrap_or(0.0)
                };
                Ok(lag(&own) > 32.0 && lag(&theirs) > 32.0)
            },
        )
    }?;
    let at = now();
    let (own, theirs) = rows_agree(at)?;
    let mut compared = 0;
    for (a, b) in own.iter().zip(&theirs) {
        assert_eq!(a.target, b.target);
        if a.role != Role::Replica {
            continue;
        }
        let (x, y) = (
            a.replay_lag_seconds.unwrap_or(f64::NAN),
            b.replay_lag_seconds.unwrap_or(f64::NAN),
        );
        // One scrape (1 s) and one collection (1 s) apart at most, and a little for writes.
        assert!(
            (x - y).abs() <= 2.5,
            "{}: surge-exporter {x:.2} s, postgres_exporter {y:.2} s",
            a.target
        );
        // Debian's v0.11 reads lag from the example query: marked derived.
        assert!(b.lag_derived && !a.lag_derived, "{a:?} {b:?}");
        compared += 1;
    }
    assert_eq!(compared, 2);
    let (want, got) = (judged(&own), judged(&theirs));
    assert!(
        matches!(want, Verdict::ReplicaBehind { .. })
            && matches!(got, Verdict::ReplicaBehind { .. }),
        "surge-exporter: {want:?}, postgres_exporter: {got:?}"
    );
    assert!(Database::worst(&theirs).lag_derived);

    writing.store(false, Ordering::Relaxed);
    let _ = writer.join();
    drop(exporters);
    drop(exporter);
    Ok(())
}
