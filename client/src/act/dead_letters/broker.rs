//! A dead-letter topic on the broker: browsing it and redriving its letters.
//!
//! A redrive republishes each letter's original to its source topic under the letter's key,
//! with [`REDRIVE_HEADER`](super::REDRIVE_HEADER) naming the letter, at the rate asked; the
//! letters stay where they are. What was redriven is kept on the broker, in the ledger topic
//! `DLQ.redriven` (one record per letter, keyed `PARTITION/OFFSET`, written once the
//! republished message is acknowledged), so any later redrive — from this panel or another —
//! skips it, and a stopped redrive resumes where it stopped. A crash between the two writes
//! can republish that one letter again, which the marker lets a consumer recognise.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

use super::{DeadLetterTopic, Letter, LetterId, Look, REDRIVE_HEADER, Selection};
use crate::act::{Action, Change, Plan};

/// The ledger topic of a dead-letter topic.
pub fn ledger_topic(topic: &str) -> String {
    format!("{topic}.redriven")
}

/// Where the broker is and how to talk to it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KafkaAccess {
    /// `host:port[,host:port…]`.
    pub bootstrap: String,
    /// librdkafka properties (`security.protocol`, `sasl.*`, `ssl.*`), passed as given.
    pub properties: Vec<(String, String)>,
}

/// How to reach the broker.
#[derive(Debug, Clone)]
pub struct Broker {
    bootstrap: String,
    properties: Vec<(String, String)>,
    timeout: Duration,
}

/// What a look at a dead-letter topic found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Browse {
    /// Letters held (high watermark minus low, summed over partitions).
    pub total: u64,
    /// The newest letters, newest first.
    pub letters: Vec<Letter>,
    /// Letters already redriven (from the ledger).
    pub redriven: BTreeSet<LetterId>,
}

/// How far a redrive has got.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    /// Letters the selection takes.
    pub selected: usize,
    /// Republished by this redrive.
    pub moved: usize,
    /// Skipped: an earlier redrive moved them.
    pub already: usize,
    /// Skipped: no source topic in their headers or body.
    pub unroutable: usize,
    /// The last letter republished.
    pub last: Option<LetterId>,
    /// Source topic → letters republished to it.
    pub to: BTreeMap<String, usize>,
}

impl Progress {
    /// Letters this redrive still has to move.
    pub fn left(&self) -> usize {
        self.selected - self.moved - self.already - self.unroutable
    }
}

/// One record as read.
struct Record {
    id: LetterId,
    timestamp_ms: Option<i64>,
    key: Option<Vec<u8>>,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

impl Broker {
    pub fn new(access: &KafkaAccess, timeout: Duration) -> Broker {
        Broker {
            bootstrap: access.bootstrap.clone(),
            properties: access.properties.clone(),
            timeout,
        }
    }

    /// What the dead-letter view asked for: the topics (`None`) or one topic's newest
    /// `newest` letters.
    pub async fn look(
        &self,
        patterns: &[String],
        topic: Option<&str>,
        newest: usize,
    ) -> Result<Look, String> {
        match topic {
            Some(topic) => {
                let found = self.browse(topic, newest).await?;
                Ok(Look::Letters {
                    topic: topic.to_owned(),
                    total: found.total,
                    letters: found.letters,
                    redriven: found.redriven,
                })
            }
            None => self.topics(patterns).await.map(Look::Topics),
        }
    }

    /// The dead-letter topics on the broker, by `patterns`, with their counts.
    pub async fn topics(&self, patterns: &[String]) -> Result<Vec<DeadLetterTopic>, String> {
        let (broker, patterns) = (self.clone(), patterns.to_vec());
        let counted = blocking(move || {
            let consumer: BaseConsumer = broker.config().create().map_err(ReadError::other)?;
            let metadata = consumer
                .fetch_metadata(None, broker.timeout)
                .map_err(ReadError::other)?;
            let mut out = Vec::new();
            for topic in metadata.topics() {
                if !super::is_dead_letter_topic(&patterns, topic.name()) {
                    continue;
                }
                let mut total = 0u64;
                for partition in topic.partitions() {
                    let (low, high) = consumer
                        .fetch_watermarks(topic.name(), partition.id(), broker.timeout)
                        .map_err(ReadError::other)?;
                    total += u64::try_from(high - low).unwrap_or_default();
                }
                out.push((topic.name().to_owned(), total));
            }
            out.sort();
            Ok(out)
        })
        .await?;
        let mut topics = Vec::new();
        for (name, total) in counted {
            let redriven = self.ledger(&name).await?.len();
            topics.push(DeadLetterTopic {
                name,
                total,
                redriven,
            });
        }
        Ok(topics)
    }

    /// What a redrive of `selection` from `topic` would do, read from the broker now.
    pub async fn plan_redrive(
        &self,
        topic: &str,
        selection: &super::Selection,
        rate: u32,
    ) -> Result<Plan, String> {
        if rate == 0 {
            return Err("a redrive needs a rate of at least 1 letter a second".into());
        }
        let (broker, name) = (self.clone(), topic.to_owned());
        let (total, records) = blocking(move || broker.read(&name, |low, _| low)).await?;
        let done = self.ledger(topic).await?;
        let mut to: BTreeMap<String, usize> = BTreeMap::new();
        let (mut selected, mut already, mut unroutable) = (0, 0, 0);
        for letter in records.into_iter().map(Record::into_letter) {
            if !selection.takes(&letter) {
                continue;
            }
            selected += 1;
            if done.contains(&letter.id) {
                already += 1;
            } else if let Some(source) = letter.source_topic {
                *to.entry(source).or_default() += 1;
            } else {
                unroutable += 1;
            }
        }
        let moving: usize = to.values().sum();
        let mut changes: Vec<Change> = to
            .iter()
            .map(|(source, n)| Change::new(&format!("republished to {source}"), 0, n))
            .collect();
        if changes.is_empty() {
            changes.push(Change::new("republished", 0, 0));
        }
        let mut notes = vec![format!(
            "{selected} of the {total} letters selected; the letters stay in {topic}"
        )];
        if already > 0 {
            notes.push(format!("{already} already redriven: skipped"));
        }
        if unroutable > 0 {
            notes.push(format!("{unroutable} name no source topic: skipped"));
        }
        if moving > 0 {
            let seconds = moving.div_ceil(usize::try_from(rate).unwrap_or(1));
            notes.push(format!("at {rate}/s: about {seconds} s"));
        }
        Ok(Plan {
            action: Action::Redrive {
                topic: topic.to_owned(),
                selection: selection.clone(),
                rate,
            },
            changes,
            destructive: false,
            missing: Vec::new(),
            notes,
            undo: "none: consumers get the messages again (marked surge-redrive-of); the letters and the ledger stay".into(),
        })
    }

    fn config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.bootstrap)
            .set("client.id", "surge")
            .set(
                "socket.timeout.ms",
                self.timeout.as_millis().max(10).to_string(),
            );
        for (key, value) in &self.properties {
            config.set(key, value);
        }
        config
    }

    /// The newest `newest` letters of `topic`, the count held and what the ledger says.
    pub async fn browse(&self, topic: &str, newest: usize) -> Result<Browse, String> {
        let (broker, name) = (self.clone(), topic.to_owned());
        let (total, records) =
            blocking(move || broker.read(&name, |low, high| low.max(high - newest as i64))).await?;
        let redriven = self.ledger(topic).await?;
        let mut letters: Vec<Letter> = records.into_iter().map(Record::into_letter).collect();
        letters.sort_by_key(|l| std::cmp::Reverse((l.timestamp_ms, l.id)));
        letters.truncate(newest);
        Ok(Browse {
            total,
            letters,
            redriven,
        })
    }

    /// Letters already redriven from `topic`.
    async fn ledger(&self, topic: &str) -> Result<BTreeSet<LetterId>, String> {
        let (broker, ledger) = (self.clone(), ledger_topic(topic));
        let records = blocking(move || match broker.read(&ledger, |low, _| low) {
            Ok((_, records)) => Ok(records),
            Err(ReadError::NoTopic(_)) => Ok(Vec::new()),
            Err(other) => Err(other),
        })
        .await?;
        Ok(records
            .iter()
            .filter_map(|r| r.key.as_deref())
            .filter_map(|k| std::str::from_utf8(k).ok()?.parse().ok())
            .collect())
    }

    /// Republish the letters of `topic` that `selection` takes and no redrive moved yet, at
    /// most `rate` a second, in their order in the topic; `progress` hears of each, and
    /// `stop` ends it after the letter in hand (the next redrive resumes from there).
    pub async fn redrive(
        &self,
        topic: &str,
        selection: &Selection,
        rate: u32,
        by: &str,
        stop: Arc<AtomicBool>,
        mut progress: impl FnMut(&Progress),
    ) -> Result<Progress, String> {
        if rate == 0 {
            return Err("a redrive needs a rate of at least 1 letter a second".into());
        }
        let (broker, name) = (self.clone(), topic.to_owned());
        let (_, records) = blocking(move || broker.read(&name, |low, _| low)).await?;
        let done = self.ledger(topic).await?;
        let letters: Vec<Letter> = records
            .into_iter()
            .map(Record::into_letter)
            .filter(|l| selection.takes(l))
            .collect();
        let mut state = Progress {
            selected: letters.len(),
            ..Progress::default()
        };
        progress(&state);
        if letters.is_empty() {
            return Ok(state);
        }
        let ledger = ledger_topic(topic);
        self.ensure_ledger(topic, &ledger).await?;
        let producer: FutureProducer = self
            .config()
            .set("enable.idempotence", "true")
            .set("message.timeout.ms", self.timeout.as_millis().to_string())
            .create()
            .map_err(|e| format!("kafka producer: {e}"))?;
        let gap = Duration::from_secs_f64(1.0 / f64::from(rate));
        let mut next = tokio::time::Instant::now();
        for letter in letters {
            if done.contains(&letter.id) {
                state.already += 1;
                progress(&state);
                continue;
            }
            let Some(source) = letter.source_topic.clone() else {
                state.unroutable += 1;
                progress(&state);
                continue;
            };
            if stop.load(Ordering::Relaxed) {
                break;
            }
            tokio::time::sleep_until(next).await;
            next += gap;
            let marker = format!("{topic}/{}", letter.id);
            let headers = OwnedHeaders::new()
                .insert(Header {
                    key: REDRIVE_HEADER,
                    value: Some(marker.as_str()),
                })
                .insert(Header {
                    key: "surge-redrive-by",
                    value: Some(by),
                });
            let mut record = FutureRecord::to(&source)
                .payload(&letter.original)
                .headers(headers);
            if let Some(key) = &letter.key {
                record = record.key(key);
            }
            let delivered = producer
                .send(record, self.timeout)
                .await
                .map_err(|(e, _)| format!("republishing letter {} to {source}: {e}", letter.id))?;
            let entry = serde_json::json!({
                "by": by,
                "to": format!("{source}/{}/{}", delivered.partition, delivered.offset),
            })
            .to_string();
            let key = letter.id.to_string();
            producer
                .send(
                    FutureRecord::to(&ledger).key(&key).payload(&entry),
                    self.timeout,
                )
                .await
                .map_err(|(e, _)| {
                    format!(
                        "letter {} republished, but noting it in {ledger} failed: {e}",
                        letter.id
                    )
                })?;
            state.moved += 1;
            state.last = Some(letter.id);
            *state.to.entry(source).or_default() += 1;
            progress(&state);
        }
        Ok(state)
    }

    /// Make the ledger topic, one partition, as replicated as the dead-letter topic.
    async fn ensure_ledger(&self, topic: &str, ledger: &str) -> Result<(), String> {
        let (broker, name) = (self.clone(), topic.to_owned());
        let replicas = blocking(move || {
            let consumer: BaseConsumer = broker.config().create().map_err(ReadError::other)?;
            let metadata = consumer
                .fetch_metadata(Some(&name), broker.timeout)
                .map_err(ReadError::other)?;
            Ok(metadata
                .topics()
                .first()
                .and_then(|t| t.partitions().first())
                .map_or(1, |p| p.replicas().len().max(1)))
        })
        .await?;
        let admin: AdminClient<DefaultClientContext> = self
            .config()
            .create()
            .map_err(|e| format!("kafka admin: {e}"))?;
        let replication = i32::try_from(replicas).unwrap_or(1);
        let new = NewTopic::new(ledger, 1, TopicReplication::Fixed(replication));
        let options = AdminOptions::new().operation_timeout(Some(self.timeout));
        let results = admin
            .create_topics([&new], &options)
            .await
            .map_err(|e| format!("creating {ledger}: {e}"))?;
        for result in results {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((_, code)) => return Err(format!("creating {ledger}: {code}")),
            }
        }
        Ok(())
    }

    /// Every record of `topic` from the offset `from(low, high)` picks in each partition to
    /// the end, and the count held. Blocking.
    fn read(
        &self,
        topic: &str,
        from: impl Fn(i64, i64) -> i64,
    ) -> Result<(u64, Vec<Record>), ReadError> {
        let consumer: BaseConsumer = self
            .config()
            .set("group.id", "surge-dead-letters")
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "true")
            .create()
            .map_err(ReadError::other)?;
        let metadata = consumer
            .fetch_metadata(Some(topic), self.timeout)
            .map_err(ReadError::other)?;
        let partitions: Vec<i32> = metadata
            .topics()
            .iter()
            .filter(|t| t.name() == topic && t.error().is_none())
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        if partitions.is_empty() {
            return Err(ReadError::NoTopic(topic.to_owned()));
        }
        let mut assignment = TopicPartitionList::new();
        let mut ends = BTreeMap::new();
        let mut total = 0u64;
        for partition in partitions {
            let (low, high) = consumer
                .fetch_watermarks(topic, partition, self.timeout)
                .map_err(ReadError::other)?;
            total += u64::try_from(high - low).unwrap_or_default();
            let start = from(low, high).clamp(low, high);
            if start < high {
                assignment
                    .add_partition_offset(topic, partition, Offset::Offset(start))
                    .map_err(ReadError::other)?;
                ends.insert(partition, high);
            }
        }
        let mut records = Vec::new();
        if ends.is_empty() {
            return Ok((total, records));
        }
        consumer.assign(&assignment).map_err(ReadError::other)?;
        let deadline = std::time::Instant::now() + self.timeout * 4;
        while !ends.is_empty() {
            if std::time::Instant::now() > deadline {
                return Err(ReadError::Other(format!(
                    "reading {topic}: partitions {:?} not read to their end in {:?}",
                    ends.keys().collect::<Vec<_>>(),
                    self.timeout * 4
                )));
            }
            match consumer.poll(Duration::from_millis(200)) {
                None => {}
                Some(Err(KafkaError::PartitionEOF(partition))) => {
                    ends.remove(&partition);
                }
                Some(Err(e)) => return Err(ReadError::Other(format!("reading {topic}: {e}"))),
                Some(Ok(message)) => {
                    let partition = message.partition();
                    if ends
                        .get(&partition)
                        .is_some_and(|&high| message.offset() >= high - 1)
                    {
                        ends.remove(&partition);
                    }
                    records.push(Record {
                        id: LetterId {
                            partition,
                            offset: message.offset(),
                        },
                        timestamp_ms: message.timestamp().to_millis(),
                        key: message.key().map(<[u8]>::to_vec),
                        headers: message
                            .headers()
                            .map(|h| {
                                h.iter()
                                    .map(|h| {
                                        (h.key.to_owned(), h.value.unwrap_or_default().to_vec())
                                    })
                                    .collect()
                            })
                            .unwrap_or_default(),
                        body: message.payload().unwrap_or_default().to_vec(),
                    });
                }
            }
        }
        Ok((total, records))
    }
}

impl Record {
    fn into_letter(self) -> Letter {
        Letter::read(
            self.id,
            self.timestamp_ms,
            self.key.as_deref(),
            &self.headers,
            &self.body,
        )
    }
}

/// Why a read failed: the topic is not there (an empty ledger), or anything else.
enum ReadError {
    NoTopic(String),
    Other(String),
}

impl ReadError {
    fn other(e: impl std::fmt::Display) -> ReadError {
        ReadError::Other(e.to_string())
    }
}

/// Run blocking librdkafka calls off the async threads; a missing topic is an error naming it.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ReadError> + Send + 'static,
) -> Result<T, String> {
    match tokio::task::spawn_blocking(work).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(ReadError::NoTopic(topic))) => {
            Err(format!("topic {topic} does not exist on the broker"))
        }
        Ok(Err(ReadError::Other(e))) => Err(e),
        Err(e) => Err(format!("kafka reader failed: {e}")),
    }
}
