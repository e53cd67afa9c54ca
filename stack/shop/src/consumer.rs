//! The consume loop every consuming service shares: one message at a time per partition
//! assignment, its offset stored only once its handling is finished (processed, recognised as
//! a duplicate, or dead-lettered), so a crash redelivers rather than loses.
//!
//! How a failure is handled depends on what it is (see [`Failure`]), so a poison message never
//! blocks its partition and an outage never floods the dead-letter topic:
//! - **poison** (bad payload, unknown order): dead-lettered at once;
//! - **error** (a handler error that is not an outage, e.g. a constraint the data breaks):
//!   retried with backoff, dead-lettered after [`ATTEMPTS`] attempts in a row;
//! - **outage** (database or broker unreachable): consumption pauses on this message, retried
//!   with backoff until the dependency is back, never dead-lettered.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::Message;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::message::Headers;
use rdkafka::producer::FutureProducer;
use sqlx::postgres::PgPool;

use crate::config::Config;
use crate::kafka::{DeadLetter, dead_letter};
use crate::metrics::Metrics;

/// Attempts a failing (non-outage) message gets before it is dead-lettered.
pub const ATTEMPTS: u32 = 4;

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

/// Why handling a message failed, which decides what happens to it.
#[derive(Debug)]
pub enum Failure {
    /// The message can never be handled (malformed, refers to nothing): dead-letter it now.
    Poison(String),
    /// A dependency is unreachable: wait for it, the message is fine.
    Outage(anyhow::Error),
    /// Anything else: retry a few times, then treat it as poison.
    Error(anyhow::Error),
}

impl Failure {
    fn kind(&self) -> &'static str {
        match self {
            Failure::Poison(_) => "poison",
            Failure::Outage(_) => "outage",
            Failure::Error(_) => "error",
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Poison(reason) => write!(f, "{reason}"),
            Failure::Outage(e) | Failure::Error(e) => write!(f, "{e:#}"),
        }
    }
}

/// SQLSTATE classes that mean the database (not the message) is the problem: connection
/// exceptions (08), insufficient resources such as too many connections (53), operator
/// intervention such as a shutdown in progress (57); and a write that reached a standby
/// (25006, read-only transaction: a failover is under way).
fn is_outage_sqlstate(code: &str) -> bool {
    code == "25006"
        || ["08", "53", "57"]
            .iter()
            .any(|class| code.starts_with(class))
}

impl From<sqlx::Error> for Failure {
    fn from(error: sqlx::Error) -> Failure {
        let outage = match &error {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => true,
            sqlx::Error::Database(db) => db.code().as_deref().is_some_and(is_outage_sqlstate),
            _ => false,
        };
        if outage {
            Failure::Outage(error.into())
        } else {
            Failure::Error(error.into())
        }
    }
}

/// One message as a handler sees it.
#[derive(Debug, Clone)]
pub struct Consumed {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: String,
    pub payload: Vec<u8>,
    /// The dead letter this message was redriven from (its `surge-redrive-of` header): a
    /// redrive is handled like any delivery, and dead-lettered again with the mark kept.
    pub redrive_of: Option<String>,
}

impl Consumed {
    /// The dead letter for this message after `attempts` tries that ended in `error`: the
    /// message itself as JSON when it was JSON, else as text.
    pub fn dead_letter(&self, error: &str, attempts: u32) -> DeadLetter {
        let original = serde_json::from_slice(&self.payload).unwrap_or_else(|_| {
            serde_json::Value::String(String::from_utf8_lossy(&self.payload).into_owned())
        });
        DeadLetter {
            error: error.to_string(),
            source_topic: self.topic.clone(),
            partition: self.partition,
            offset: self.offset,
            attempts,
            original,
            redrive_of: self.redrive_of.clone(),
        }
    }
}

/// Where a consumer's messages go when they cannot be handled.
pub struct DeadLetters {
    pub topic: &'static str,
    pub producer: FutureProducer,
}

/// A consumer running in the background.
pub struct Consuming(tokio::task::JoinHandle<anyhow::Result<()>>);

impl Consuming {
    /// Wait for it to finish (after `stop` flipped), logging how it ended.
    pub async fn finish(self) {
        match self.0.await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, "consumer stopped with an error"),
            Err(error) => tracing::warn!(%error, "consumer task failed"),
        }
    }
}

/// Consume `topic` in `group` in the background, dead letters to `dlq`, until `stop` flips;
/// starts once `primary` holds the schema.
#[allow(clippy::too_many_arguments)]
pub fn spawn<H, Fut>(
    config: &Config,
    primary: PgPool,
    group: &str,
    topic: &'static str,
    dlq: &'static str,
    metrics: Arc<Metrics>,
    stop: tokio::sync::watch::Receiver<bool>,
    handle: H,
) -> anyhow::Result<Consuming>
where
    H: Fn(Consumed) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Outcome, Failure>> + Send + 'static,
{
    let bootstrap = config.require_kafka()?;
    let consumer =
        crate::kafka::consumer(bootstrap, group, &config.instance, Arc::clone(&metrics))?;
    let dead_letters = DeadLetters {
        topic: dlq,
        producer: crate::kafka::producer(bootstrap)?,
    };
    Ok(Consuming(tokio::spawn(async move {
        let mut stop = stop;
        if !crate::data::wait_for_schema(&primary, &mut stop).await {
            return Ok(());
        }
        run(consumer, topic, dead_letters, metrics, stop, handle).await
    })))
}

/// Consume `topic` until `stop` flips, handling each message with `handle`.
pub async fn run<H, Fut>(
    consumer: crate::kafka::ShopConsumer,
    topic: &'static str,
    dead_letters: DeadLetters,
    metrics: Arc<Metrics>,
    mut stop: tokio::sync::watch::Receiver<bool>,
    handle: H,
) -> anyhow::Result<()>
where
    H: Fn(Consumed) -> Fut,
    Fut: Future<Output = Result<Outcome, Failure>>,
{
    consumer.subscribe(&[topic])?;
    loop {
        let message = tokio::select! {
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
        let consumed = Consumed {
            topic: message.topic().to_string(),
            partition: message.partition(),
            offset: message.offset(),
            key: message
                .key()
                .map(|k| String::from_utf8_lossy(k).into_owned())
                .unwrap_or_default(),
            payload: message.payload().unwrap_or_default().to_vec(),
            redrive_of: message.headers().and_then(|headers| {
                headers
                    .iter()
                    .find(|h| h.key == crate::kafka::REDRIVE_HEADER)
                    .and_then(|h| h.value)
                    .map(|v| String::from_utf8_lossy(v).into_owned())
            }),
        };
        if let Some(of) = &consumed.redrive_of {
            tracing::info!(topic, partition = consumed.partition, offset = consumed.offset, redrive_of = %of, "a redriven message");
        }
        let Some(outcome) = settle(&consumed, &dead_letters, &metrics, &mut stop, &handle).await
        else {
            break;
        };
        metrics.message(topic, outcome.label());
        if let Err(error) = consumer.store_offset_from_message(&message) {
            tracing::warn!(%error, "storing offset");
        }
    }
    // Commit what was finished before leaving the group.
    if let Err(error) = consumer.commit_consumer_state(CommitMode::Sync) {
        tracing::debug!(%error, "final commit");
    }
    Ok(())
}

/// Handle one message until it is settled: processed, a duplicate, or dead-lettered. `None`
/// when asked to stop first (the message stays unsettled and is redelivered).
async fn settle<H, Fut>(
    consumed: &Consumed,
    dead_letters: &DeadLetters,
    metrics: &Metrics,
    stop: &mut tokio::sync::watch::Receiver<bool>,
    handle: &H,
) -> Option<Outcome>
where
    H: Fn(Consumed) -> Fut,
    Fut: Future<Output = Result<Outcome, Failure>>,
{
    let topic = consumed.topic.as_str();
    let mut attempts = 0;
    let mut retry = Backoff::new(Duration::from_millis(200));
    let mut outage = Backoff::new(Duration::from_millis(500));
    let mut letter: Option<DeadLetter> = None;
    loop {
        // A decided dead letter is only published (retrying while the broker is down); the
        // message is never handled again once it is poison.
        let result = match &letter {
            Some(l) => dead_letter(&dead_letters.producer, dead_letters.topic, &consumed.key, l)
                .await
                .map(|()| Outcome::DeadLettered)
                .map_err(Failure::Outage),
            None => {
                attempts += 1;
                handle(consumed.clone()).await
            }
        };
        let wait = match result {
            Ok(outcome) => {
                metrics.paused(topic, false);
                return Some(outcome);
            }
            Err(Failure::Outage(error)) => {
                if !metrics.paused(topic, true) {
                    tracing::warn!(%error, topic, partition = consumed.partition, offset = consumed.offset, "outage: consumption paused on this message until it clears");
                }
                // An outage is nobody's fault in the message: it does not use up attempts.
                if letter.is_none() {
                    attempts -= 1;
                }
                outage.next()
            }
            Err(failure) => {
                metrics.paused(topic, false);
                let poison = matches!(failure, Failure::Poison(_));
                if poison || attempts >= ATTEMPTS {
                    tracing::warn!(error = %failure, kind = failure.kind(), topic, partition = consumed.partition, offset = consumed.offset, attempts, "dead-lettering");
                    letter = Some(consumed.dead_letter(&failure.to_string(), attempts));
                    continue;
                }
                tracing::debug!(error = %failure, topic, attempts, "handling failed; retrying");
                retry.next()
            }
        };
        tokio::select! {
            _ = stop.changed() => return None,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// Doubling waits, capped at 5 s.
struct Backoff {
    next: Duration,
}

impl Backoff {
    fn new(first: Duration) -> Backoff {
        Backoff { next: first }
    }

    fn next(&mut self) -> Duration {
        let wait = self.next;
        self.next = (self.next * 2).min(Duration::from_secs(5));
        wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_errors_are_outages_only_when_the_database_is_the_problem() {
        assert!(is_outage_sqlstate("08006"), "connection failure");
        assert!(is_outage_sqlstate("57P01"), "admin shutdown");
        assert!(is_outage_sqlstate("53300"), "too many connections");
        assert!(
            !is_outage_sqlstate("23514"),
            "check violation is the data's fault"
        );
        assert!(
            !is_outage_sqlstate("22P02"),
            "invalid text is the data's fault"
        );
        let io = sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(matches!(Failure::from(io), Failure::Outage(_)));
        assert!(matches!(
            Failure::from(sqlx::Error::PoolTimedOut),
            Failure::Outage(_)
        ));
        assert!(matches!(
            Failure::from(sqlx::Error::RowNotFound),
            Failure::Error(_)
        ));
    }

    #[test]
    fn backoff_doubles_to_a_cap() {
        let mut b = Backoff::new(Duration::from_millis(200));
        let waits: Vec<u128> = (0..7).map(|_| b.next().as_millis()).collect();
        assert_eq!(waits, [200, 400, 800, 1600, 3200, 5000, 5000]);
    }
}
