//! The monitoring pipeline's first half for scenarios that drive Kafka and PostgreSQL by
//! hand: surge-exporter served in-process over a real broker and a primary + replica pair, on
//! fast timings.

use std::path::Path;

use std::time::Duration;
use surge_exporter::config::Config;
use surge_exporter::{Exporter, Running};

use surge_servers::{KafkaBroker, PgCluster};
use surge_testkit::kafka::{Background, committed, keep_consuming, keep_producing};

/// surge-exporter on `primary` + `replica1` of `cluster` and cluster "shop" of `broker`,
/// collecting every second (stall after 3 s), served like the binary does. The monitor
/// password goes to a file in `dir`.
pub async fn serve_exporter(
    dir: &Path,
    cluster: &PgCluster,
    broker: &KafkaBroker,
) -> anyhow::Result<Running> {
    let password = dir.join("pg-password");
    std::fs::write(&password, cluster.monitor_password())?;
    let config = Config::parse(&format!(
        "[postgres]\ninterval = \"1s\"\ntimeout = \"1s\"\n\
         [[postgres.targets]]\nname = \"primary\"\ndsn = \"{}\"\npassword_file = \"{pw}\"\n\
         [[postgres.targets]]\nname = \"replica1\"\ndsn = \"{}\"\npassword_file = \"{pw}\"\n\
         [kafka]\ninterval = \"1s\"\ntimeout = \"1s\"\ndiscovery_interval = \"2s\"\nwindow = \"20s\"\n\
         rate_window = \"5s\"\nstall_after = \"3s\"\n\
         [[kafka.clusters]]\nname = \"shop\"\nbootstrap_servers = \"{}\"\n",
        cluster.monitor_dsn("primary")?,
        cluster.monitor_dsn("replica1")?,
        broker.bootstrap(),
        pw = password.display(),
    ))?;
    Exporter::new(&config)?
        .spawn(([127, 0, 0, 1], 0).into())
        .await
        .map_err(anyhow::Error::msg)
}

/// A live pipeline on `topic` (two partitions, five records each every 200 ms) whose consumer
/// group `group` keeps up (its commits pass the first 20 records of each partition) and then
/// dies, while the producer goes on: a stall. Returns the producer.
pub async fn stall(broker: &KafkaBroker, group: &str, topic: &str) -> anyhow::Result<Background> {
    let producer = keep_producing(broker, topic, 2, 5, Duration::from_millis(200))?;
    let consumer = keep_consuming(broker, group, topic)?;
    tokio::task::block_in_place(|| {
        surge_servers::wait_until(
            &format!("{group} committing on both partitions of {topic}"),
            Duration::from_secs(30),
            Duration::from_millis(200),
            || {
                Ok(committed(broker, group, topic, 2)?
                    .iter()
                    .all(|c| c.is_some_and(|o| o >= 20)))
            },
        )
    })?;
    consumer.stop()?;
    Ok(producer)
}
