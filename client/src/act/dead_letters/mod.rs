//! Dead letters: what a letter says about itself, which letters a redrive takes, and the
//! broker side ([`broker`]) that browses a dead-letter topic and redrives letters to their
//! source topics.
//!
//! A letter's provenance is read from its headers in the three conventions in use: the shop's
//! (`source-topic`, `source-partition`, `source-offset`, `attempts`, `error`), Spring Kafka's
//! (`kafka_dlt-original-topic`, … with big-endian binary numbers) and Kafka Connect's
//! (`__connect.errors.topic`, …). The message to republish is the letter's `original` when
//! its body is the shop's JSON envelope, else the body itself (Spring and Connect keep the
//! original value as the letter's value).

pub mod broker;

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

/// Header a redriven message carries: `DLQ/PARTITION/OFFSET` of the letter it came from, so
/// a consumer (and the next redrive) can tell a redrive from a first delivery.
pub const REDRIVE_HEADER: &str = "surge-redrive-of";

/// A letter's place in its dead-letter topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct LetterId {
    pub partition: i32,
    pub offset: i64,
}

impl std::fmt::Display for LetterId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.partition, self.offset)
    }
}

impl std::str::FromStr for LetterId {
    type Err = String;
    fn from_str(text: &str) -> Result<LetterId, String> {
        let bad = || format!("{text:?} is not PARTITION/OFFSET (e.g. 0/17)");
        let (partition, offset) = text.split_once('/').ok_or_else(bad)?;
        Ok(LetterId {
            partition: partition.parse().map_err(|_| bad())?,
            offset: offset.parse().map_err(|_| bad())?,
        })
    }
}

/// One dead letter, as read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Letter {
    pub id: LetterId,
    /// When the letter was written, milliseconds since the epoch.
    pub timestamp_ms: Option<i64>,
    pub key: Option<Vec<u8>>,
    pub source_topic: Option<String>,
    pub source_partition: Option<i32>,
    pub source_offset: Option<i64>,
    pub attempts: Option<u32>,
    pub error: Option<String>,
    /// The message to republish.
    pub original: Vec<u8>,
    /// The letter this one came from, when the letter is a redrive that failed again.
    pub redrive_of: Option<String>,
}

/// Header names of one convention.
struct Convention {
    topic: &'static str,
    partition: &'static str,
    offset: &'static str,
    error: &'static str,
    attempts: Option<&'static str>,
}

const CONVENTIONS: [Convention; 3] = [
    Convention {
        topic: "source-topic",
        partition: "source-partition",
        offset: "source-offset",
        error: "error",
        attempts: Some("attempts"),
    },
    Convention {
        topic: "kafka_dlt-original-topic",
        partition: "kafka_dlt-original-partition",
        offset: "kafka_dlt-original-offset",
        error: "kafka_dlt-exception-message",
        attempts: None,
    },
    Convention {
        topic: "__connect.errors.topic",
        partition: "__connect.errors.partition",
        offset: "__connect.errors.offset",
        error: "__connect.errors.exception.message",
        attempts: None,
    },
];

/// A number from a header: text, or big-endian binary of 4 or 8 bytes (Spring's).
fn number(value: &[u8]) -> Option<i64> {
    if let Ok(text) = std::str::from_utf8(value)
        && let Ok(n) = text.trim().parse::<i64>()
    {
        return Some(n);
    }
    match value.len() {
        4 => Some(i64::from(i32::from_be_bytes(value.try_into().ok()?))),
        8 => Some(i64::from_be_bytes(value.try_into().ok()?)),
        _ => None,
    }
}

impl Letter {
    /// A letter from what the broker holds: its place, time, key, headers and body.
    pub fn read(
        id: LetterId,
        timestamp_ms: Option<i64>,
        key: Option<&[u8]>,
        headers: &[(String, Vec<u8>)],
        body: &[u8],
    ) -> Letter {
        let header = |name: &str| {
            headers
                .iter()
                .rev()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_slice())
        };
        let text = |name: &str| header(name).map(|v| String::from_utf8_lossy(v).into_owned());
        let convention = CONVENTIONS
            .iter()
            .find(|c| header(c.topic).is_some())
            .unwrap_or(&CONVENTIONS[0]);
        let mut letter = Letter {
            id,
            timestamp_ms,
            key: key.map(<[u8]>::to_vec),
            source_topic: text(convention.topic),
            source_partition: header(convention.partition)
                .and_then(number)
                .and_then(|n| i32::try_from(n).ok()),
            source_offset: header(convention.offset).and_then(number),
            attempts: convention
                .attempts
                .and_then(header)
                .and_then(number)
                .and_then(|n| u32::try_from(n).ok()),
            error: text(convention.error),
            original: body.to_vec(),
            redrive_of: text(REDRIVE_HEADER),
        };
        // The shop's envelope: the original is inside, and so is the provenance when a
        // producer left the headers out.
        if let Ok(envelope) = serde_json::from_slice::<Envelope>(body) {
            letter.original = match envelope.original {
                serde_json::Value::String(text) => text.into_bytes(),
                other => other.to_string().into_bytes(),
            };
            letter.source_topic = letter.source_topic.or(Some(envelope.source_topic));
            letter.source_partition = letter.source_partition.or(envelope.partition);
            letter.source_offset = letter.source_offset.or(envelope.offset);
            letter.attempts = letter.attempts.or(envelope.attempts);
            letter.error = letter.error.or(envelope.error);
        }
        letter
    }

    /// The original as text (lossy), for the panel.
    pub fn original_text(&self) -> String {
        String::from_utf8_lossy(&self.original).into_owned()
    }
}

/// Whether `name` is a dead-letter topic by one of `patterns` (`{topic}.dlq`: `{topic}`
/// stands for the source topic, which must not be empty).
pub fn is_dead_letter_topic(patterns: &[String], name: &str) -> bool {
    patterns.iter().any(|pattern| {
        let (prefix, suffix) = pattern.split_once("{topic}").unwrap_or((pattern, ""));
        name.len() > prefix.len() + suffix.len()
            && name.starts_with(prefix)
            && name.ends_with(suffix)
    })
}

/// A dead-letter topic on the broker: letters held and how many were redriven.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetterTopic {
    pub name: String,
    pub total: u64,
    pub redriven: usize,
}

/// What the dead-letter view shows, as the broker answered at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Look {
    /// The dead-letter topics.
    Topics(Vec<DeadLetterTopic>),
    /// One topic's newest letters.
    Letters {
        topic: String,
        total: u64,
        letters: Vec<Letter>,
        redriven: BTreeSet<LetterId>,
    },
}

/// The shop's dead-letter body.
#[derive(Deserialize)]
struct Envelope {
    source_topic: String,
    original: serde_json::Value,
    partition: Option<i32>,
    offset: Option<i64>,
    attempts: Option<u32>,
    error: Option<String>,
}

/// Letters a filter takes: every condition given must hold.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Filter {
    /// The error contains this text (case-insensitive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_contains: Option<String>,
    /// From this source topic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_topic: Option<String>,
}

impl Filter {
    pub fn takes(&self, letter: &Letter) -> bool {
        let error = self.error_contains.as_ref().is_none_or(|want| {
            letter
                .error
                .as_ref()
                .is_some_and(|e| e.to_lowercase().contains(&want.to_lowercase()))
        });
        let source = self
            .source_topic
            .as_ref()
            .is_none_or(|want| letter.source_topic.as_ref() == Some(want));
        error && source
    }
}

/// Which letters a redrive takes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Selection {
    /// Every letter the filter takes.
    Matching(Filter),
    /// These letters.
    Picked(BTreeSet<LetterId>),
}

impl Selection {
    pub fn takes(&self, letter: &Letter) -> bool {
        match self {
            Selection::Matching(filter) => filter.takes(letter),
            Selection::Picked(ids) => ids.contains(&letter.id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(partition: i32, offset: i64) -> LetterId {
        LetterId { partition, offset }
    }

    fn headers(pairs: &[(&str, &[u8])]) -> Vec<(String, Vec<u8>)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.to_vec()))
            .collect()
    }

    #[test]
    fn the_shop_envelope_gives_the_original_and_its_provenance() {
        let body = br#"{"error":"unknown order","source_topic":"order-placed","partition":2,"offset":40,"attempts":1,"original":{"order_id":"o-1"}}"#;
        let h = headers(&[
            ("error", b"unknown order"),
            ("source-topic", b"order-placed"),
            ("source-partition", b"2"),
            ("source-offset", b"40"),
            ("attempts", b"1"),
        ]);
        let letter = Letter::read(id(0, 7), Some(1), Some(b"o-1"), &h, body);
        assert_eq!(letter.source_topic.as_deref(), Some("order-placed"));
        assert_eq!(
            (letter.source_partition, letter.source_offset),
            (Some(2), Some(40))
        );
        assert_eq!(letter.attempts, Some(1));
        assert_eq!(letter.error.as_deref(), Some("unknown order"));
        assert_eq!(letter.original_text(), r#"{"order_id":"o-1"}"#);
        // Without headers the envelope still says where it came from; a text original is
        // republished as the text itself, not a JSON string.
        let body = br#"{"error":"bad","source_topic":"t","partition":0,"offset":1,"attempts":4,"original":"not json"}"#;
        let letter = Letter::read(id(0, 8), None, None, &[], body);
        assert_eq!(letter.source_topic.as_deref(), Some("t"));
        assert_eq!(letter.original_text(), "not json");
    }

    #[test]
    fn spring_and_connect_headers_are_read_binary_or_text() {
        let h = headers(&[
            ("kafka_dlt-original-topic", b"orders"),
            ("kafka_dlt-original-partition", &3i32.to_be_bytes()),
            (
                "kafka_dlt-original-offset",
                &123_456_789_012i64.to_be_bytes(),
            ),
            ("kafka_dlt-exception-message", b"boom"),
        ]);
        let letter = Letter::read(id(1, 2), None, None, &h, b"raw value");
        assert_eq!(letter.source_topic.as_deref(), Some("orders"));
        assert_eq!(letter.source_partition, Some(3));
        assert_eq!(letter.source_offset, Some(123_456_789_012));
        assert_eq!(letter.error.as_deref(), Some("boom"));
        assert_eq!(letter.original, b"raw value");
        let h = headers(&[
            ("__connect.errors.topic", b"sink-in"),
            ("__connect.errors.partition", b"5"),
            ("__connect.errors.offset", b"77"),
            (
                "__connect.errors.exception.message",
                b"Converting byte[] failed",
            ),
        ]);
        let letter = Letter::read(id(0, 0), None, None, &h, b"\x00\x01");
        assert_eq!(
            (
                letter.source_topic.as_deref(),
                letter.source_partition,
                letter.source_offset
            ),
            (Some("sink-in"), Some(5), Some(77))
        );
        // No provenance at all: nothing to send it back to.
        let letter = Letter::read(id(0, 1), None, None, &[], b"?");
        assert_eq!(letter.source_topic, None);
    }

    #[test]
    fn dead_letter_topics_follow_the_patterns() {
        let patterns = vec!["{topic}.dlq".to_owned(), "dlq-{topic}".to_owned()];
        assert!(is_dead_letter_topic(&patterns, "order-placed.dlq"));
        assert!(is_dead_letter_topic(&patterns, "dlq-orders"));
        assert!(!is_dead_letter_topic(&patterns, ".dlq"), "no source topic");
        assert!(
            !is_dead_letter_topic(&patterns, "order-placed.dlq.redriven"),
            "a ledger"
        );
        assert!(!is_dead_letter_topic(&patterns, "order-placed"));
    }

    #[test]
    fn selections_take_what_they_name() {
        let letter = |partition, error: &str, source: &str| Letter {
            error: Some(error.into()),
            source_topic: Some(source.into()),
            ..Letter::read(id(partition, 0), None, None, &[], b"")
        };
        let poison = letter(
            0,
            "malformed order-placed message: missing field",
            "order-placed",
        );
        let other = letter(1, "unknown order", "order-placed");
        let matching = Selection::Matching(Filter {
            error_contains: Some("MALFORMED".into()),
            source_topic: Some("order-placed".into()),
        });
        assert!(matching.takes(&poison));
        assert!(!matching.takes(&other));
        let everything = Selection::Matching(Filter::default());
        assert!(everything.takes(&poison) && everything.takes(&other));
        let picked = Selection::Picked([id(1, 0)].into());
        assert!(!picked.takes(&poison) && picked.takes(&other));
        assert_eq!("3/17".parse::<LetterId>(), Ok(id(3, 17)));
        let e = "3:17".parse::<LetterId>().expect_err("bad");
        assert!(e.contains("PARTITION/OFFSET"), "{e}");
    }
}
