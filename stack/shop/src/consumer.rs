//! The consume loop shared by payment and shipping: one message at a time per partition
//! assignment, offset stored only once its handling is finished (processed, recognised as a
//! duplicate, or dead-lettered), so a crash redelivers rather than loses. Infrastructure
//! errors (database or broker down) retry the same message until they clear.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::BorrowedMessage;

use crate::metrics::Metrics;

/// How a message ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Processed,
    Duplicate,
    DeadLettered,
}

impl Outcome {
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Processed => "processed",
            Outcome::Duplicate => "duplicate",
            Outcome::DeadLettered => "dead_lettered",
        }
    }
}

/// Consume `topic` until `stop` flips, handling each message with `handle`.
pub async fn run<H, Fut>(
    consumer: StreamConsumer,
    topic: &'static str,
    metrics: Arc<Metrics>,
    mut stop: tokio::sync::watch::Receiver<bool>,
    handle: H,
) -> anyhow::Result<()>
where
    H: Fn(Vec<u8>, String) -> Fut,
    Fut: Future<Output = anyhow::Result<Outcome>>,
{
    consumer.subscribe(&[topic])?;
    'messages: loop {
        let message: BorrowedMessage<'_> = tokio::select! {
            _ = stop.changed() => break,
            next = consumer.recv() => match next {
                Ok(m) => m,
                Err(error) => {
                    tracing::warn!(%error, topic, "consume error");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            },
        };
        let payload = rdkafka::Message::payload(&message)
            .unwrap_or_default()
            .to_vec();
        let key = rdkafka::Message::key(&message)
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .unwrap_or_default();
        let mut backoff = Duration::from_millis(200);
        loop {
            match handle(payload.clone(), key.clone()).await {
                Ok(outcome) => {
                    metrics.message(topic, outcome.label());
                    if let Err(error) = consumer.store_offset_from_message(&message) {
                        tracing::warn!(%error, "storing offset");
                    }
                    break;
                }
                Err(error) => {
                    tracing::warn!(%error, topic, key, "handling failed; retrying the same message");
                    tokio::select! {
                        _ = stop.changed() => break 'messages,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }
    // Commit what was finished before leaving the group.
    if let Err(error) = consumer.commit_consumer_state(CommitMode::Sync) {
        tracing::debug!(%error, "final commit");
    }
    Ok(())
}
