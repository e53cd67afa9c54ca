//! Kafka clients for the pipeline: producers that wait for acknowledgement, consumers that
//! commit only what they finished processing (at-least-once), and dead-lettering.

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::StreamConsumer;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde::Serialize;

/// Partitions per topic: the ceiling on consumer replicas doing useful work.
pub const PARTITIONS: i32 = 12;

pub fn producer(bootstrap: &str) -> anyhow::Result<FutureProducer> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("linger.ms", "5")
        // Fail a send in seconds, not minutes, so the outbox relay releases its rows and
        // retries later instead of holding them through a broker outage.
        .set("message.timeout.ms", "5000")
        .create()?)
}

/// A consumer in `group` that only commits offsets stored after processing.
pub fn consumer(bootstrap: &str, group: &str, instance: &str) -> anyhow::Result<StreamConsumer> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("client.id", instance)
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "1000")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "10000")
        .create()?)
}

/// Create the pipeline's topics (and DLQs); existing ones are fine.
pub async fn create_topics(bootstrap: &str) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()?;
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
}

impl DeadLetter {
    pub fn of(message: &crate::consumer::Consumed, error: &str, attempts: u32) -> DeadLetter {
        let original = serde_json::from_slice(&message.payload).unwrap_or_else(|_| {
            serde_json::Value::String(String::from_utf8_lossy(&message.payload).into_owned())
        });
        DeadLetter {
            error: error.to_string(),
            source_topic: message.topic.clone(),
            partition: message.partition,
            offset: message.offset,
            attempts,
            original,
        }
    }
}

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
