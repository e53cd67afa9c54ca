//! Alerting end to end with real servers: surge-exporter against a real broker and PostgreSQL
//! pair, Prometheus (Debian) evaluating `alerts/rules.yml` (with `for` scaled down by 30 from
//! the same file), Alertmanager (Debian) with `alerts/alertmanager.yml` pointed at a loopback
//! PagerDuty Events API v2 stand-in. Real conditions page, then resolve.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use surge_servers::{Alertmanager, KafkaBroker, PgCluster, Prometheus, Workdir, free_port};
use surge_testkit::kafka::BrokerClients;
use surge_testkit::kafka::keep_consuming;
use surge_testkit::pagerduty::PagerDutyStandIn;
use surge_tests::pipeline::{serve_exporter, stall};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_consumer_pages_and_resolves_paused_replica_warns_and_resolves()
-> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let pager = PagerDutyStandIn::start()?;
    let broker = KafkaBroker::start()?;
    broker.create_topic("payment-processed", 2)?;
    let cluster = PgCluster::start(1)?;
    let exporter = serve_exporter(dir.path(), &cluster, &broker).await?;
    let exporter_port = exporter.port();

    // Alertmanager with the real routing, pointed at the stand-in.
    let key_file = dir.path().join("routing-key");
    std::fs::write(&key_file, "0123456789abcdef0123456789abcdef\n")?;
    let am_config =
        surge_tests::alerting::test_alertmanager(&pager.events_url(), &key_file, |name| {
            pager.webhook_url(name)
        })?;
    let alertmanager =
        Alertmanager::start_in(Workdir::temp("surge-am-")?, free_port()?, &am_config)?;
    // Prometheus with the real rules, `for` divided by 30 (as the drills: by 60, a loaded
    // machine missing five 1 s scrapes could fire SurgeExporterAbsent for nothing).
    let rules = dir.path().join("rules.yml");
    std::fs::write(&rules, surge_tests::alerting::scaled_rules(30)?)?;
    let prometheus_config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files: [\"{}\"]\n\
         alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: [\"127.0.0.1:{}\"]\n\
         scrape_configs:\n  - job_name: surge-exporter\n    static_configs:\n      - targets: [\"127.0.0.1:{exporter_port}\"]\n",
        rules.display(),
        alertmanager.port()
    );
    let prometheus = Prometheus::start_in(
        Workdir::temp("surge-prom-")?,
        free_port()?,
        &prometheus_config,
    )?;
    let diagnose = || {
        let get = |url: &str, path: &str| {
            surge_servers::http::get(url.trim_start_matches("http://"), path, None)
                .map(|r| r.2)
                .unwrap_or_else(|e| e.to_string())
        };
        format!(
            "prometheus alerts: {}\nalertmanager alerts: {}",
            get(&prometheus.url(), "/api/v1/alerts"),
            get(&alertmanager.url(), "/api/v2/alerts")
        )
    };

    // The dead man's switch hears the Watchdog: the pipeline itself works.
    tokio::task::block_in_place(|| {
        pager.wait_for("watchdog heartbeat", Duration::from_secs(60), |r| {
            r.receiver == "deadmans-switch"
        })
    })
    .map_err(|e| anyhow::anyhow!("{e:#}\n{}", diagnose()))?;

    // Replica: pause replay and keep writing; its lag passes 30 s and warns (not pages).
    cluster.psql("replica1", "SELECT pg_wal_replay_pause()")?;
    let writing = Arc::new(AtomicBool::new(true));
    let writer = {
        let writing = Arc::clone(&writing);
        let port = cluster.port("primary")?;
        let psql = surge_servers::postgres::bin_dir()?.join("psql");
        std::thread::spawn(move || {
            let dsn = format!("host=127.0.0.1 port={port} user=postgres dbname=postgres");
            while writing.load(Ordering::Relaxed) {
                let _ = std::process::Command::new(&psql)
                    .args([&dsn, "-X", "-q", "-c", "CREATE TABLE IF NOT EXISTS beat (t timestamptz); INSERT INTO beat VALUES (now())"])
                    .output();
                std::thread::sleep(Duration::from_millis(500));
            }
        })
    };

    // Kafka: a live pipeline, then the consumer dies while the producer keeps going.
    let producer = stall(&broker, "shipping", "payment-processed").await?;

    let page = tokio::task::block_in_place(|| {
        pager.wait_for("stall page", Duration::from_secs(90), |r| {
            r.receiver == "pagerduty"
                && r.body["event_action"] == "trigger"
                && r.body["payload"]["summary"]
                    == "Consumer group shipping stopped consuming payment-processed"
        })
    })?;
    assert_eq!(
        page.body["payload"]["severity"], "critical",
        "{:#}",
        page.body
    );
    assert_eq!(page.body["payload"]["class"], "KafkaConsumerStalled");
    let links = page.body["links"].to_string();
    assert!(
        links.contains("runbooks/KafkaConsumerStalled.md"),
        "{links}"
    );
    let dedup = page.body["dedup_key"].clone();

    // The consumer comes back and catches up: the page resolves with the same dedup key.
    let consumer = keep_consuming(&broker, "shipping", "payment-processed")?;
    tokio::task::block_in_place(|| {
        pager.wait_for("stall resolved", Duration::from_secs(90), |r| {
            r.receiver == "pagerduty"
                && r.body["event_action"] == "resolve"
                && r.body["dedup_key"] == dedup
        })
    })?;
    consumer.stop()?;
    producer.stop()?;

    // The replica warning arrived at the warnings receiver (never at the pager)...
    let warning = tokio::task::block_in_place(|| {
        pager.wait_for("replica lag warning", Duration::from_secs(90), |r| {
            r.receiver == "warnings"
                && r.body["status"] == "firing"
                && r.body["commonLabels"]["alertname"] == "PostgresReplicaLagHigh"
        })
    })?;
    assert_eq!(warning.body["commonLabels"]["severity"], "warning");
    assert_eq!(warning.body["commonLabels"]["target"], "replica1");
    // ... and resolves once replay resumes.
    cluster.psql("replica1", "SELECT pg_wal_replay_resume()")?;
    tokio::task::block_in_place(|| {
        pager.wait_for("replica lag resolved", Duration::from_secs(90), |r| {
            r.receiver == "warnings"
                && r.body["status"] == "resolved"
                && r.body["commonLabels"]["alertname"] == "PostgresReplicaLagHigh"
        })
    })?;
    writing.store(false, Ordering::Relaxed);
    let _ = writer.join();

    assert!(
        pager.rejected().is_empty(),
        "invalid events sent to PagerDuty: {:#?}",
        pager.rejected()
    );
    let pages: Vec<_> = pager
        .received()
        .into_iter()
        .filter(|r| r.receiver == "pagerduty")
        .collect();
    assert!(
        pages
            .iter()
            .all(|p| p.body["payload"]["class"] != "PostgresReplicaLagHigh"),
        "a warning paged: {pages:#?}"
    );
    Ok(())
}
