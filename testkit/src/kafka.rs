//! Kafka clients for tests, over the real broker (`surge_servers::KafkaBroker`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, anyhow};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use surge_servers::KafkaBroker;

/// What tests do to a broker as its clients: create topics, produce in batches like real
/// producers, commit offsets without consuming, configure consumers.
pub trait BrokerClients {
    /// Client config pointing at the broker.
    fn client_config(&self) -> ClientConfig;
    /// Create a topic (replication 1).
    fn create_topic(&self, topic: &str, partitions: i32) -> anyhow::Result<()>;
    /// Create many topics in one request.
    fn create_topics(&self, topics: &[&str], partitions: i32) -> anyhow::Result<()>;
    /// A producer that batches like a real one (linger, many records per request).
    fn producer(&self) -> anyhow::Result<BatchingProducer>;
    /// Commit `offset` for `group` on each partition, without consuming (what a consumer's
    /// commit looks like to the broker).
    fn commit(&self, group: &str, topic: &str, offsets: &[(i32, i64)]) -> anyhow::Result<()>;
    /// Config for a consumer in `group` (tests run their own poll loops).
    fn consumer_config(&self, group: &str) -> ClientConfig;
}

impl BrokerClients for KafkaBroker {
    fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", self.bootstrap());
        config
    }

    fn create_topic(&self, topic: &str, partitions: i32) -> anyhow::Result<()> {
        self.create_topics(&[topic], partitions)
    }

    fn create_topics(&self, topics: &[&str], partitions: i32) -> anyhow::Result<()> {
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

    fn producer(&self) -> anyhow::Result<BatchingProducer> {
        let producer: ThreadedProducer<DeliveryCounter> = self
            .client_config()
            .set("linger.ms", "50")
            .set("batch.num.messages", "1000")
            .set("acks", "all")
            .create_with_context(DeliveryCounter::default())
            .context("creating producer")?;
        Ok(BatchingProducer { producer })
    }

    fn commit(&self, group: &str, topic: &str, offsets: &[(i32, i64)]) -> anyhow::Result<()> {
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

    fn consumer_config(&self, group: &str) -> ClientConfig {
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

/// A thread working the broker (producing, consuming) until stopped.
pub struct Background {
    running: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<anyhow::Result<()>>>,
}

impl Background {
    fn spawn(work: impl FnMut() -> anyhow::Result<()> + Send + 'static) -> Background {
        let running = Arc::new(AtomicBool::new(true));
        let flag = Arc::clone(&running);
        let mut work = work;
        let handle = std::thread::spawn(move || {
            while flag.load(Ordering::Relaxed) {
                work()?;
            }
            Ok(())
        });
        Background {
            running,
            handle: Some(handle),
        }
    }

    /// Stop and say how the work went (an error if a send failed or the thread panicked).
    pub fn stop(mut self) -> anyhow::Result<()> {
        self.running.store(false, Ordering::Relaxed);
        match self.handle.take().map(std::thread::JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(anyhow!("background thread panicked")),
            None => Ok(()),
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.running.store(false, Ordering::Relaxed);
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

/// Produce `per_partition` records to each of `partitions` partitions of `topic`, flushed,
/// every `every`, until stopped: a live producer.
pub fn keep_producing(
    broker: &KafkaBroker,
    topic: &str,
    partitions: i32,
    per_partition: usize,
    every: Duration,
) -> anyhow::Result<Background> {
    let producer = broker.producer()?;
    let topic = topic.to_string();
    Ok(Background::spawn(move || {
        for p in 0..partitions {
            producer.send(&topic, p, per_partition)?;
        }
        producer.flush()?;
        std::thread::sleep(every);
        Ok(())
    }))
}

/// A consumer of `group` polling `topic` (auto-committing) until stopped; stopping leaves
/// without a final commit, as a crashed consumer does.
pub fn keep_consuming(
    broker: &KafkaBroker,
    group: &str,
    topic: &str,
) -> anyhow::Result<Background> {
    let consumer: BaseConsumer = broker.consumer_config(group).create()?;
    consumer.subscribe(&[topic])?;
    Ok(Background::spawn(move || {
        if let Some(Err(error)) = consumer.poll(Duration::from_millis(100)) {
            eprintln!("consumer: {error}");
        }
        Ok(())
    }))
}

/// `group`'s committed offsets on partitions `0..partitions` of `topic` (None where it has
/// none), asked of the group's coordinator without joining the group.
pub fn committed(
    broker: &KafkaBroker,
    group: &str,
    topic: &str,
    partitions: i32,
) -> anyhow::Result<Vec<Option<i64>>> {
    let consumer: BaseConsumer = broker
        .client_config()
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()?;
    let mut list = TopicPartitionList::new();
    for p in 0..partitions {
        list.add_partition(topic, p);
    }
    let committed = consumer.committed_offsets(list, Duration::from_secs(10))?;
    Ok((0..partitions)
        .map(
            |p| match committed.find_partition(topic, p).map(|e| e.offset()) {
                Some(Offset::Offset(o)) => Some(o),
                _ => None,
            },
        )
        .collect())
}

/// Records of `topic` from its beginning, as JSON, read until `done` holds for what was read
/// (an error naming what was read if `timeout` passes first).
pub fn read_until(
    broker: &KafkaBroker,
    topic: &str,
    timeout: Duration,
    done: impl Fn(&[serde_json::Value]) -> bool,
) -> anyhow::Result<Vec<serde_json::Value>> {
    use rdkafka::Message;
    let group = format!("surge-test-reader-{topic}-{}", std::process::id());
    let consumer: BaseConsumer = broker
        .consumer_config(&group)
        .set("enable.auto.commit", "false")
        .create()?;
    consumer.subscribe(&[topic])?;
    let mut read = Vec::new();
    let deadline = std::time::Instant::now() + timeout;
    while !done(&read) {
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "{topic}: not there after {timeout:?}; read {read:#?}"
        );
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(message)) => read.push(
                serde_json::from_slice(message.payload().unwrap_or_default())
                    .with_context(|| format!("{topic}: a record that is not JSON"))?,
            ),
            Some(Err(error)) => return Err(anyhow!("reading {topic}: {error}")),
            None => {}
        }
    }
    Ok(read)
}

/// How many partitions `topic` has, from the broker's metadata.
pub fn partitions(broker: &KafkaBroker, topic: &str) -> anyhow::Result<usize> {
    let consumer: BaseConsumer = broker.client_config().create()?;
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let count = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic)
        .map(|t| t.partitions().len())
        .sum();
    anyhow::ensure!(count > 0, "{topic}: no partitions in the broker's metadata");
    Ok(count)
}

/// How many records `topic` holds (log end minus log start, over its partitions).
pub fn records(broker: &KafkaBroker, topic: &str) -> anyhow::Result<i64> {
    let consumer: BaseConsumer = broker.client_config().create()?;
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let mut total = 0;
    for t in metadata.topics() {
        for p in t.partitions() {
            let (low, high) = consumer.fetch_watermarks(topic, p.id(), Duration::from_secs(10))?;
            total += high - low;
        }
    }
    Ok(total)
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

    /// Send one record with `key` and `payload` to `partition` (a crafted message).
    pub fn send_one(
        &self,
        topic: &str,
        partition: i32,
        key: &str,
        payload: &str,
    ) -> anyhow::Result<()> {
        let record = BaseRecord::to(topic)
            .partition(partition)
            .key(key)
            .payload(payload);
        self.producer
            .send(record)
            .map_err(|(e, _)| anyhow!("producing to {topic}/{partition}: {e}"))
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
