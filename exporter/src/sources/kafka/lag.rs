//! Per-partition lag from one cycle's offsets. Pure.
//!
//! Log-end offsets are read before committed offsets, so a consumer racing ahead can commit
//! past the log end we saw: that lag is clamped to 0 and counted, never reported negative
//! (kafka_exporter #76, #437). A partition without a committed offset has no lag series at
//! all — never -1 (#109) — unless configured to measure it from the log start.

use std::collections::{BTreeMap, HashMap};

/// How to report a partition the group has never committed.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    serde::Deserialize,
    serde::Serialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Uncommitted {
    /// No lag series; `has_commit 0` says why.
    #[default]
    Absent,
    /// Lag = log end − log start: everything retained is unconsumed.
    LogStart,
}

/// Log-start and log-end offset of one partition (`None` when the broker returned an error).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Watermarks {
    pub start: Option<i64>,
    pub end: Option<i64>,
}

/// (topic, partition) → watermarks.
pub type Offsets = HashMap<(String, i32), Watermarks>;

/// One group's view of one partition.
#[derive(Debug, Clone, PartialEq)]
pub struct PartitionLag {
    pub topic: String,
    pub partition: i32,
    pub committed: Option<i64>,
    pub log_end: Option<i64>,
    /// `None` when there is no commit (and `Uncommitted::Absent`) or no log end.
    pub lag: Option<i64>,
    /// The committed offset was past the log end we read; lag was clamped to 0.
    pub clamped: bool,
}

/// Sums of one (group, topic) over the partitions that have a lag.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct TopicLag {
    pub lag: i64,
    pub committed: i64,
    pub log_end: i64,
    pub partitions: usize,
    pub clamped: u64,
}

/// Lag of every partition of every topic the group touches. `committed` holds what
/// OffsetFetch returned (partitions never committed are absent or `None`); `topics` lists
/// all partitions of the group's topics (from metadata), so missing commits are seen.
pub fn partition_lags(
    committed: &HashMap<(String, i32), Option<i64>>,
    topic_partitions: &BTreeMap<String, Vec<i32>>,
    offsets: &Offsets,
    uncommitted: Uncommitted,
) -> Vec<PartitionLag> {
    let mut out = Vec::new();
    for (topic, partitions) in topic_partitions {
        for &partition in partitions {
            let key = (topic.clone(), partition);
            let commit = committed.get(&key).copied().flatten().filter(|c| *c >= 0);
            let marks = offsets.get(&key).copied().unwrap_or_default();
            let (lag, clamped) = match (commit, marks.end) {
                (Some(c), Some(end)) => ((end - c).max(0), c > end),
                // Without the log start the retained backlog is unknown, not the whole log.
                (None, Some(end))
                    if uncommitted == Uncommitted::LogStart && marks.start.is_some() =>
                {
                    (end - marks.start.unwrap_or(0).min(end), false)
                }
                _ => {
                    out.push(PartitionLag {
                        topic: topic.clone(),
                        partition,
                        committed: commit,
                        log_end: marks.end,
                        lag: None,
                        clamped: false,
                    });
                    continue;
                }
            };
            out.push(PartitionLag {
                topic: topic.clone(),
                partition,
                committed: commit,
                log_end: marks.end,
                lag: Some(lag),
                clamped,
            });
        }
    }
    out
}

/// Per-topic sums over partitions with a lag (the committed sum only counts committed ones).
pub fn topic_sums(lags: &[PartitionLag]) -> BTreeMap<String, TopicLag> {
    let mut out: BTreeMap<String, TopicLag> = BTreeMap::new();
    for p in lags {
        let (Some(lag), Some(end)) = (p.lag, p.log_end) else {
            continue;
        };
        let t = out.entry(p.topic.clone()).or_default();
        t.lag += lag;
        t.log_end += end;
        t.committed += p.committed.unwrap_or(end - lag);
        t.partitions += 1;
        t.clamped += u64::from(p.clamped);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offsets(entries: &[(&str, i32, i64, i64)]) -> Offsets {
        entries
            .iter()
            .map(|(t, p, s, e)| {
                (
                    (t.to_string(), *p),
                    Watermarks {
                        start: Some(*s),
                        end: Some(*e),
                    },
                )
            })
            .collect()
    }

    #[test]
    fn exact_lag_clamps_and_missing_commits() {
        let ends = offsets(&[
            ("orders", 0, 0, 102),
            ("orders", 1, 0, 108),
            ("orders", 2, 10, 90),
        ]);
        let topics = BTreeMap::from([("orders".to_string(), vec![0, 1, 2])]);
        let committed = HashMap::from([
            (("orders".to_string(), 0), Some(100)),
            // Committed after we read the log end: clamp, count.
            (("orders".to_string(), 1), Some(110)),
            // A negative offset (-1 from OffsetFetch) means no commit.
            (("orders".to_string(), 2), Some(-1001)),
        ]);
        let lags = partition_lags(&committed, &topics, &ends, Uncommitted::Absent);
        assert_eq!(lags[0].lag, Some(2));
        assert_eq!((lags[1].lag, lags[1].clamped), (Some(0), true));
        assert_eq!((lags[2].lag, lags[2].committed), (None, None));
        let sums = topic_sums(&lags);
        let orders = sums.get("orders").copied().unwrap_or_default();
        assert_eq!((orders.lag, orders.partitions, orders.clamped), (2, 2, 1));
        assert_eq!(orders.committed, 100 + 110);

        let from_start = partition_lags(&committed, &topics, &ends, Uncommitted::LogStart);
        assert_eq!(from_start[2].lag, Some(80));
    }

    #[test]
    fn unknown_log_end_gives_no_lag() {
        let topics = BTreeMap::from([("t".to_string(), vec![0])]);
        let committed = HashMap::from([(("t".to_string(), 0), Some(5))]);
        let lags = partition_lags(&committed, &topics, &Offsets::new(), Uncommitted::Absent);
        assert_eq!(lags[0].lag, None);
        assert!(topic_sums(&lags).is_empty());
    }

    #[test]
    fn unknown_log_start_gives_no_lag_from_the_start() {
        let topics = BTreeMap::from([("t".to_string(), vec![0])]);
        let mut offsets = Offsets::new();
        let end_only = Watermarks {
            end: Some(500),
            start: None,
        };
        offsets.insert(("t".to_string(), 0), end_only);
        let lags = partition_lags(&HashMap::new(), &topics, &offsets, Uncommitted::LogStart);
        assert_eq!(lags[0].lag, None, "not the whole log since offset 0");
        offsets.insert(
            ("t".to_string(), 0),
            Watermarks {
                end: Some(500),
                start: Some(480),
            },
        );
        let lags = partition_lags(&HashMap::new(), &topics, &offsets, Uncommitted::LogStart);
        assert_eq!(lags[0].lag, Some(20));
    }
}
