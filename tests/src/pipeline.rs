//! The monitoring pipeline's first half for scenarios that drive Kafka and PostgreSQL by
//! hand: surge-exporter served in-process over a real broker and a primary + replica pair, on
//! fast timings, and a consumer that can be killed and restarted.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use surge_exporter::config::Config;
use surge_exporter::{Exporter, Running};
use surge_servers::KafkaBroker;
use surge_servers::PgCluster;
use surge_testkit::kafka::BrokerClients;

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

/// A consumer of `group` polling `topic` in a thread until the flag drops.
pub fn consume(
    broker: &KafkaBroker,
    group: &str,
    topic: &str,
) -> anyhow::Result<(Arc<AtomicBool>, std::thread::JoinHandle<()>)> {
    let consumer: BaseConsumer = broker.consumer_config(group).create()?;
    consumer.subscribe(&[topic])?;
    let running = Arc::new(AtomicBool::new(true));
    let flag = Arc::clone(&running);
    let handle = std::thread::spawn(move || {
        while flag.load(Ordering::Relaxed) {
            let _ = consumer.poll(Duration::from_millis(100));
        }
    });
    Ok((running, handle))
}
