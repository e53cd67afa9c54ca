//! A real Kafka-protocol broker (tansu, SQLite storage) on a loopback port, plus the client
//! moves tests need: create topics, produce in batches like real producers, commit offsets.
//!
//! tansu's in-memory engine reports wrong log-end offsets for batched producers, so the
//! SQLite engine is used; producers here batch (linger, many records per batch) so a wrong
//! log-end offset would show up as a failing test.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, anyhow};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::ports::free_port;
use crate::process::ServerProcess;
use crate::wait::wait_until;
use crate::workdir::Workdir;

/// The tansu binary: `$SURGE_TANSU`, else `tansu` on PATH, else `~/.cargo/bin/tansu`.
pub fn tansu_binary() -> anyhow::Result<PathBuf> {
    if let Ok(path) = std::env::var("SURGE_TANSU") {
        return Ok(PathBuf::from(path));
    }
    if let Some(path) = std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("tansu"))
        .find(|p| p.is_file())
    {
        return Ok(path);
    }
    let cargo_bin = std::env::var_os("HOME")
        .map(|h| PathBuf::from(h).join(".cargo/bin/tansu"))
        .filter(|p| p.is_file());
    cargo_bin.ok_or_else(|| anyhow!("tansu not found; run scripts/install-deps"))
}

/// A running broker. Dropping it stops it and deletes its data.
pub struct KafkaBroker {
    port: u16,
    process: Option<ServerProcess>,
    // Declared last: removed after the broker stopped.
    dir: Workdir,
}

impl KafkaBroker {
    pub fn start() -> anyhow::Result<Self> {
        Self::start_in(Workdir::temp("surge-kafka-")?, free_port()?)
    }

    /// Start on `port` with its data in `dir`.
    pub fn start_in(dir: Workdir, port: u16) -> anyhow::Result<Self> {
        let mut broker = KafkaBroker {
            port,
            process: None,
            dir,
        };
        broker.restart()?;
        Ok(broker)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Pid of the broker process, while running.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().and_then(ServerProcess::pid)
    }

    /// `127.0.0.1:PORT`, for `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Stop the broker (its data stays for a restart).
    pub fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.stop();
        }
    }

    /// Start (again) on the same port and data.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.stop();
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let mut cmd = Command::new(tansu_binary()?);
        cmd.arg("broker")
            .args(["--listener-url", &url, "--advertised-listener-url", &url])
            // tansu resolves the database path relative to its working directory.
            .args(["--storage-engine", "sqlite://tansu.db"])
            .current_dir(self.dir.path())
            .env("RUST_LOG", "warn");
        let log = self.dir.path().join("tansu.log");
        let mut process = ServerProcess::spawn("tansu", cmd, &log)?;
        let port = self.port;
        let ready = wait_until(
            "tansu broker",
            Duration::from_secs(20),
            Duration::from_millis(50),
            || Ok(TcpStream::connect(("127.0.0.1", port)).is_ok()),
        );
        if let Err(e) = ready {
            let running = process.is_running();
            anyhow::bail!(
                "{e:#} (running: {running}); log:\n{}",
                process.log_tail(2000)
            );
        }
        self.process = Some(process);
        Ok(())
    }

    fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", self.bootstrap());
        config
    }

    /// Create a topic (replication 1).
    pub fn create_topic(&self, topic: &str, partitions: i32) -> anyhow::Result<()> {
        self.create_topics(&[topic], partitions)
    }

    /// Create many topics in one request.
    pub fn create_topics(&self, topics: &[&str], partitions: i32) -> anyhow::Result<()> {
        let admin: AdminClient<DefaultClientContext> = self.client_config().create()?;
        let new: Vec<NewTopic> = topics
            .iter()
            .map(|t| NewTopic::new(t, partitions, TopicReplication::Fixed(1)))
            .collect();
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
        let results = block_on(admin.create_topics(&new, &options))?
            .map_err(|e| anyhow!("creating topics: {e}"))?;
        for result in results {
            result.map_err(|(topic, e)| anyhow!("creating topic {topic}: {e}"))?;
        }
        Ok(())
    }

    /// A producer that batches like a real one (linger, many records per request).
    pub fn producer(&self) -> anyhow::Result<BatchingProducer> {
        let producer: ThreadedProducer<DeliveryCounter> = self
            .client_config()
            .set("linger.ms", "50")
            .set("batch.num.messages", "1000")
            .set("acks", "all")
            .create_with_context(DeliveryCounter::default())
            .context("creating producer")?;
        Ok(BatchingProducer { producer })
    }

    /// Commit `offset` for `group` on each partition, without consuming (what a consumer's
    /// commit looks like to the broker).
    pub fn commit(&self, group: &str, topic: &str, offsets: &[(i32, i64)]) -> anyhow::Result<()> {
        let consumer: BaseConsumer = self
            .client_config()
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .create()
            .context("creating committer")?;
        let mut list = TopicPartitionList::new();
        for (partition, offset) in offsets {
            list.add_partition_offset(topic, *partition, Offset::Offset(*offset))?;
        }
        consumer
            .commit(&list, CommitMode::Sync)
            .with_context(|| format!("committing for {group}"))?;
        Ok(())
    }

    /// Config for a consumer in `group` (tests run their own poll loops).
    pub fn consumer_config(&self, group: &str) -> ClientConfig {
        let mut config = self.client_config();
        config
            .set("group.id", group)
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "true")
            .set("auto.commit.interval.ms", "200")
            .set("session.timeout.ms", "6000");
        config
    }
}

impl Drop for KafkaBroker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Producer that batches; `flush` waits for every record to be acknowledged.
pub struct BatchingProducer {
    producer: ThreadedProducer<DeliveryCounter>,
}

impl BatchingProducer {
    /// Send `count` records to `partition` (keys and payloads are small and distinct).
    pub fn send(&self, topic: &str, partition: i32, count: usize) -> anyhow::Result<()> {
        for i in 0..count {
            let payload = format!("order-{i}");
            let mut record = BaseRecord::<str, str>::to(topic)
                .partition(partition)
                .payload(&payload);
            loop {
                match self.producer.send(record) {
                    Ok(()) => break,
                    // Local queue full: let the background thread drain it.
                    Err((
                        rdkafka::error::KafkaError::MessageProduction(
                            rdkafka::types::RDKafkaErrorCode::QueueFull,
                        ),
                        r,
                    )) => {
                        record = r;
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err((e, _)) => return Err(anyhow!("producing to {topic}/{partition}: {e}")),
                }
            }
        }
        Ok(())
    }

    /// Wait until every record is acknowledged; an error if any delivery failed.
    pub fn flush(&self) -> anyhow::Result<()> {
        self.producer
            .flush(Duration::from_secs(30))
            .context("flushing producer")?;
        let failed = self.producer.context().failed.swap(0, Ordering::Relaxed);
        anyhow::ensure!(failed == 0, "{failed} records were not delivered");
        Ok(())
    }
}

/// Wait for an rdkafka admin future; it is driven by rdkafka's own thread, so no runtime is
/// needed (and this works inside one).
fn block_on<F: std::future::Future>(future: F) -> anyhow::Result<F::Output> {
    Ok(futures::executor::block_on(future))
}

/// Counts failed deliveries, so a test never mistakes a lost record for a produced one.
#[derive(Default)]
pub struct DeliveryCounter {
    failed: AtomicUsize,
}

impl ClientContext for DeliveryCounter {}

impl ProducerContext for DeliveryCounter {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if result.is_err() {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
    }
}
