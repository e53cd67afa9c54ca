//! The Kafka broker goes away mid-run: only the Kafka source is down, PostgreSQL series stay,
//! and when the broker returns the exporter recovers without a restart.

use std::time::Duration;

use surge_exporter::Exporter;
use surge_exporter::config::Config;
use surge_servers::{KafkaBroker, PgCluster, wait_until};
use surge_testkit::http::{scrape, source_up};
use surge_testkit::kafka::BrokerClients;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_outage_downs_only_kafka_and_recovers() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let cluster = PgCluster::start(1)?;
    let mut broker = KafkaBroker::start()?;
    broker.create_topic("order-placed", 2)?;
    let producer = broker.producer()?;
    producer.send("order-placed", 0, 40)?;
    producer.send("order-placed", 1, 60)?;
    producer.flush()?;
    broker.commit("payment", "order-placed", &[(0, 30), (1, 60)])?;
    let password_file = dir.path().join("password");
    std::fs::write(&password_file, cluster.monitor_password())?;

    let config = Config::parse(&format!(
        "[postgres]\ninterval = \"500ms\"\ntimeout = \"400ms\"\n\
         [[postgres.targets]]\nname = \"primary\"\ndsn = \"{}\"\npassword_file = \"{pw}\"\n\
         [[postgres.targets]]\nname = \"replica1\"\ndsn = \"{}\"\npassword_file = \"{pw}\"\n\
         [kafka]\ninterval = \"1s\"\ntimeout = \"1s\"\ndiscovery_interval = \"1s\"\n\
         [[kafka.clusters]]\nname = \"shop\"\nbootstrap_servers = \"{}\"\n",
        cluster.monitor_dsn("primary")?,
        cluster.monitor_dsn("replica1")?,
        broker.bootstrap(),
        pw = password_file.display(),
    ))?;
    let running = Exporter::new(&config)?
        .spawn(([127, 0, 0, 1], 0).into())
        .await
        .map_err(anyhow::Error::msg)?;
    let addr = running.addr.to_string();

    let lag =
        "surge_kafka_group_topic_lag{cluster=\"shop\",group=\"payment\",topic=\"order-placed\"} 10";
    let wait = |what: &str, check: &dyn Fn(&str) -> bool| {
        tokio::task::block_in_place(|| {
            wait_until(
                what,
                Duration::from_secs(20),
                Duration::from_millis(200),
                || Ok(scrape(&addr).map(|b| check(&b)).unwrap_or(false)),
            )
        })
    };
    wait("everything up", &|b| {
        source_up(b, "kafka", "shop") == Some(true)
            && source_up(b, "postgres", "primary") == Some(true)
            && b.contains(lag)
    })?;

    broker.stop();
    wait("kafka down, postgres up", &|b| {
        source_up(b, "kafka", "shop") == Some(false)
            && source_up(b, "postgres", "primary") == Some(true)
            && source_up(b, "postgres", "replica1") == Some(true)
    })?;
    let body = scrape(&addr)?;
    assert!(
        body.contains(
            "surge_postgres_replica_streaming{target=\"primary\",replica=\"replica1\"} 1"
        ),
        "{body}"
    );
    assert!(
        !body.contains("surge_kafka_group_topic_lag{"),
        "no stale lag from a down broker:\n{body}"
    );

    broker.restart()?;
    wait("kafka recovered", &|b| {
        source_up(b, "kafka", "shop") == Some(true) && b.contains(lag)
    })?;
    Ok(())
}
