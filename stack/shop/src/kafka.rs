//! Kafka clients for the pipeline: producers that wait for acknowledgement, consumers that
//! commit only what they finished processing (at-least-once), and dead-lettering.

use std::time::Duration;

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::config::KafkaAccess;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde::Serialize;

/// Partitions per topic: the ceiling on consumer replicas doing useful work.
pub const PARTITIONS: i32 = 12;

/// How long a consumer may go silent before its group drops it (Kafka's session timeout).
pub const SESSION_TIMEOUT: Duration = Duration::from_secs(10);

pub fn producer(access: &KafkaAccess) -> anyhow::Result<FutureProducer> {
    Ok(access
        .client_config()
        .set("acks", "all")
        .set("linger.ms", "5")
        // Fail a send in seconds, not minutes, so the outbox relay releases its rows and
        // retries later instead of holding them through a broker outage.
        .set("message.timeout.ms", "5000")
        .create()?)
}

/// What a consumer's group does to it: every assignment and revocation is logged and counted in
/// `shop_consumer_assigned_partitions`, so a group that never settled (a member lost in the
/// middle of a rebalance waits out its rebalance timeout) is visible.
pub struct Rebalances {
    metrics: Arc<crate::metrics::Metrics>,
}

impl ClientContext for Rebalances {}

impl ConsumerContext for Rebalances {
    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(assigned) => {
                let mut topics: BTreeMap<String, usize> = BTreeMap::new();
                for element in assigned.elements() {
                    *topics.entry(element.topic().to_string()).or_default() += 1;
                }
                for (topic, partitions) in &topics {
                    tracing::info!(topic, partitions, "partitions assigned");
                    self.metrics.assigned(topic, *partitions);
                }
            }
            Rebalance::Revoke(revoked) => {
                for element in revoked.elements() {
                    self.metrics.assigned(element.topic(), 0);
                }
                tracing::info!(partitions = revoked.count(), "partitions revoked");
            }
            Rebalance::Error(error) => tracing::warn!(%error, "rebalance failed"),
        }
    }
}

/// A shop consumer: its rebalances observed by [`Rebalances`].
pub type ShopConsumer = StreamConsumer<Rebalances>;

/// A consumer in `group` that only commits offsets stored after processing.
pub fn consumer(
    access: &KafkaAccess,
    group: &str,
    instance: &str,
    metrics: Arc<crate::metrics::Metrics>,
) -> anyhow::Result<ShopConsumer> {
    Ok(access
        .client_config()
        .set("group.id", group)
        .set("client.id", instance)
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "1000")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set(
            "session.timeout.ms",
            SESSION_TIMEOUT.as_millis().to_string(),
        )
        .create_with_context(Rebalances { metrics })?)
}

/// Create the pipeline's topics (and DLQs); existing ones are fine.
pub async fn create_topics(access: &KafkaAccess) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = access.client_config().create()?;
    let topics: Vec<NewTopic> = crate::topics::ALL
        .iter()
        .map(|t| NewTopic::new(t, PARTITIONS, TopicReplication::Fixed(1)))
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(20)));
    for result in admin.create_topics(&topics, &options).await? {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, e)) => anyhow::bail!("creating {topic}: {e}"),
        }
    }
    Ok(())
}

/// Send and wait for the broker's acknowledgement.
pub async fn send(
    producer: &FutureProducer,
    topic: &str,
    key: &str,
    payload: &str,
    headers: Option<OwnedHeaders>,
) -> anyhow::Result<()> {
    let mut record = FutureRecord::to(topic).key(key).payload(payload);
    if let Some(headers) = headers {
        record = record.headers(headers);
    }
    producer
        .send(record, Duration::from_secs(5))
        .await
        .map_err(|(e, _)| anyhow::anyhow!("producing to {topic}: {e}"))?;
    Ok(())
}

/// What a dead letter carries: why, where the message came from, how often it was tried, and
/// the message itself (as JSON when it was JSON, else as text).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct DeadLetter {
    pub error: String,
    pub source_topic: String,
    pub partition: i32,
    pub offset: i64,
    pub attempts: u32,
    pub original: serde_json::Value,
    /// The earlier dead letter this message was redriven from, when it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redrive_of: Option<String>,
}

/// The header a redrive (the panel's `:redrive`) marks a republished message with.
pub const REDRIVE_HEADER: &str = "surge-redrive-of";

/// Publish `letter` to `dlq` under `key`, its provenance also in headers (for tools that read
/// headers without parsing bodies).
pub async fn dead_letter(
    producer: &FutureProducer,
    dlq: &str,
    key: &str,
    letter: &DeadLetter,
) -> anyhow::Result<()> {
    let (partition, offset, attempts) = (
        letter.partition.to_string(),
        letter.offset.to_string(),
        letter.attempts.to_string(),
    );
    let mut headers = OwnedHeaders::new();
    if let Some(of) = &letter.redrive_of {
        headers = headers.insert(Header {
            key: REDRIVE_HEADER,
            value: Some(of.as_str()),
        });
    }
    for (name, value) in [
        ("error", letter.error.as_str()),
        ("source-topic", letter.source_topic.as_str()),
        ("source-partition", partition.as_str()),
        ("source-offset", offset.as_str()),
        ("attempts", attempts.as_str()),
    ] {
        headers = headers.insert(Header {
            key: name,
            value: Some(value),
        });
    }
    send(
        producer,
        dlq,
        key,
        &serde_json::to_string(letter)?,
        Some(headers),
    )
    .await
}
