//! Consumer lag from kafka_exporter (danielqsj, as Strimzi deploys it) or kminion
//! (redpanda-data), in Surge's `surge_kafka_*` shapes. Names, labels and semantics from their
//! source (kafka_exporter.go; kminion's prometheus/collect_consumer_group_lags.go):
//!
//! - kafka_exporter: `consumergroup`, `topic`, `partition`; a partition without a commit has
//!   `kafka_consumergroup_current_offset` and `kafka_consumergroup_lag` at -1; lag is not
//!   clamped.
//! - kminion: `group_id`, `topic_name`, `partition_id`; partitions without a commit have no
//!   series; lag is clamped at 0; committed offsets only as a per-topic sum.
//!
//! The Kafka cluster is the Strimzi `strimzi_io_cluster` label, else a `cluster` label, else
//! the scrape job. The lag state is derived (see [`STATE_RULE`]): PromQL cannot read the lag
//! at commit instants as surge-exporter does, so the rule compares the lowest (and highest)
//! lag of two consecutive windows, which a committer's sawtooth does not move.

use surge_metrics::catalogue::kafka;

use super::Recipe;
use super::promql::{Selector, copy_label, max_by, scrape_up, set_label, sum_by};

pub const STATE_RULE: &str = "lag-state-from-windows";
pub const ETA_RULE: &str = "eta-from-rates";

/// Rate window (produce and consume rates).
const RATE_WINDOW: &str = "2m";
/// Each half of the trend comparison.
const HALF: &str = "5m";
/// How long without a commit, lag waiting, is stalled.
const STALL: &str = "5m";
/// A group committing 1 to [`RARE_COMMITS`]-1 times in [`RARE_WINDOW`] is a rare committer:
/// a quiet 5 minutes is its normal.
const RARE_WINDOW: &str = "30m";
const RARE_COMMITS: u32 = 6;
/// The log end still for this long with no lag is idle.
const IDLE: &str = "10m";

/// One exporter's names for the same things.
pub struct Names {
    group: &'static str,
    topic: &'static str,
    partition: &'static str,
    /// Per (group, topic): the lag, summed over partitions with a commit.
    topic_lag: &'static str,
    /// Per partition, when exported.
    partition_lag: &'static str,
    /// Per partition committed offset (-1 for none), when exported.
    committed: Option<&'static str>,
    /// Per (group, topic): what changes when the group commits.
    commits: &'static str,
    /// Per (group, topic) committed offsets summed, or per partition: a counter-like series.
    consumed: &'static str,
    log_end: &'static str,
    log_start: &'static str,
    /// Per topic: what changes when a message is produced.
    produced: &'static str,
    /// One series per exporter target, always there while it answers.
    alive: &'static str,
    partitions: Option<&'static str>,
    members: &'static str,
    group_info: Option<&'static str>,
    /// Partitions without a commit carry -1 rather than no series.
    minus_one_without_commit: bool,
}

pub const KAFKA_EXPORTER: Names = Names {
    group: "consumergroup",
    topic: "topic",
    partition: "partition",
    topic_lag: "kafka_consumergroup_lag_sum",
    partition_lag: "kafka_consumergroup_lag",
    committed: Some("kafka_consumergroup_current_offset"),
    commits: "kafka_consumergroup_current_offset",
    consumed: "kafka_consumergroup_current_offset",
    log_end: "kafka_topic_partition_current_offset",
    log_start: "kafka_topic_partition_oldest_offset",
    produced: "kafka_topic_partition_current_offset",
    alive: "kafka_brokers",
    partitions: Some("kafka_topic_partitions"),
    members: "kafka_consumergroup_members",
    group_info: None,
    minus_one_without_commit: true,
};

pub const KMINION: Names = Names {
    group: "group_id",
    topic: "topic_name",
    partition: "partition_id",
    topic_lag: "kminion_kafka_consumer_group_topic_lag",
    partition_lag: "kminion_kafka_consumer_group_topic_partition_lag",
    committed: None,
    commits: "kminion_kafka_consumer_group_topic_offset_sum",
    consumed: "kminion_kafka_consumer_group_topic_offset_sum",
    log_end: "kminion_kafka_topic_partition_high_water_mark",
    log_start: "kminion_kafka_topic_partition_low_water_mark",
    produced: "kminion_kafka_topic_high_water_mark_sum",
    alive: "kminion_exporter_up",
    partitions: None,
    members: "kminion_kafka_consumer_group_members",
    group_info: Some("kminion_kafka_consumer_group_info"),
    minus_one_without_commit: false,
};

const GT: [&str; 3] = ["cluster", "group", "topic"];
const GTP: [&str; 4] = ["cluster", "group", "topic", "partition"];
const TOPIC: [&str; 2] = ["cluster", "topic"];
const TP: [&str; 3] = ["cluster", "topic", "partition"];

struct Kafka<'a> {
    names: &'a Names,
    sel: &'a Selector,
}

impl Kafka<'_> {
    /// `expr` with Surge's label names: `cluster` (Strimzi's, else a `cluster` label, else
    /// the job), `group`, `topic`, `partition`.
    fn surge_labels(&self, expr: &str) -> String {
        let mut out = copy_label(expr, "surge_cluster", "job");
        out = copy_label(&out, "surge_cluster", "cluster");
        out = copy_label(&out, "surge_cluster", "strimzi_io_cluster");
        out = copy_label(&out, "cluster", "surge_cluster");
        for (to, from) in [
            ("group", self.names.group),
            ("topic", self.names.topic),
            ("partition", self.names.partition),
        ] {
            if to != from {
                out = copy_label(&out, to, from);
            }
        }
        out
    }

    fn series(&self, metric: &str) -> String {
        self.sel.series(metric, "")
    }

    /// One series per key of `expr` read with Surge's labels.
    fn keyed(&self, key: &[&str], expr: &str) -> String {
        max_by(key, &self.surge_labels(expr))
    }

    /// A per-partition series of partitions with a commit.
    fn committed_only(&self, expr: &str) -> String {
        match (self.names.minus_one_without_commit, self.names.committed) {
            (true, Some(committed)) => format!("{expr} and {} >= 0", self.series(committed)),
            _ => expr.to_string(),
        }
    }

    fn topic_lag(&self) -> String {
        if self.names.minus_one_without_commit {
            // The exporter's own sum is not clamped: sum the clamped partitions instead.
            sum_by(&GT, &self.partition_lag())
        } else {
            self.keyed(&GT, &self.series(self.names.topic_lag))
        }
    }

    fn partition_lag(&self) -> String {
        let lag = format!("clamp_min({}, 0)", self.series(self.names.partition_lag));
        self.keyed(&GTP, &self.committed_only(&lag))
    }

    fn produce_rate(&self) -> String {
        let rate = format!("rate({}[{RATE_WINDOW}])", self.series(self.names.produced));
        if self.names.produced == self.names.log_end {
            sum_by(&TOPIC, &self.keyed(&TP, &rate))
        } else {
            self.keyed(&TOPIC, &rate)
        }
    }

    fn consume_rate(&self) -> String {
        let rate = format!("rate({}[{RATE_WINDOW}])", self.series(self.names.consumed));
        if self.names.committed == Some(self.names.consumed) {
            sum_by(&GT, &self.keyed(&GTP, &self.committed_only(&rate)))
        } else {
            self.keyed(&GT, &rate)
        }
    }

    /// Per (cluster, group, topic): `fun` of `metric` over `window` ending `offset` ago
    /// (now when empty).
    fn over_window(&self, fun: &str, metric: &str, window: &str, offset: &str) -> String {
        let offset = if offset.is_empty() {
            String::new()
        } else {
            format!(" offset {offset}")
        };
        self.keyed(
            &GT,
            &format!("{fun}({}[{window}]{offset})", self.series(metric)),
        )
    }

    /// Per (cluster, group, topic): the most any partition's committed offset changed in
    /// `window` (ending `offset` ago).
    fn commits(&self, window: &str, offset: &str) -> String {
        self.over_window("changes", self.names.commits, window, offset)
    }

    /// Per (cluster, group, topic): `fun` (min/max_over_time) of the topic lag over a half.
    fn lag_over(&self, fun: &str, offset: &str) -> String {
        self.over_window(fun, self.names.topic_lag, HALF, offset)
    }

    /// The lag states, first match wins: each state's series (one per (cluster, group,
    /// topic) in it, = 1), in priority order.
    fn states(&self) -> Vec<(&'static str, String)> {
        let lag = self.topic_lag();
        let log_moves = self.keyed(
            &TOPIC,
            &format!("changes({}[{IDLE}])", self.series(self.names.produced)),
        );
        let idle = format!("({lag} == 0) and on (cluster, topic) ({log_moves} == 0)");
        let quiet = self.commits(STALL, "");
        let rare = self.commits(RARE_WINDOW, "");
        let stalled = format!(
            "({lag} > 0) and ({quiet} == 0) and (({rare} == 0) or ({rare} >= {RARE_COMMITS}))"
        );
        let committed_both = format!(
            "({} > 0) and ({} > 0)",
            self.commits(HALF, ""),
            self.commits(HALF, HALF)
        );
        let trough = |offset| self.lag_over("min_over_time", offset);
        let peak = |offset| self.lag_over("max_over_time", offset);
        let growing = format!(
            "({lag} > 0) and ({} - {} > 0.05 * {} + 1) and {committed_both}",
            trough(""),
            trough(HALF),
            trough(HALF)
        );
        let draining = format!(
            "({lag} > 0) and ({} - {} > 0.05 * {} + 1) and {committed_both}",
            peak(HALF),
            peak(""),
            peak(HALF)
        );
        let mut taken: Vec<String> = Vec::new();
        let mut out = Vec::new();
        for (state, set) in [
            ("idle", idle),
            ("stalled", stalled),
            ("growing", growing),
            ("draining", draining),
            ("ok", format!("{lag} >= 0")),
        ] {
            let mut this = format!("({set})");
            for before in &taken {
                this = format!("{this} unless ({before})");
            }
            out.push((state, format!("({this}) * 0 + 1")));
            taken.push(set);
        }
        out
    }

    /// Seconds to an empty backlog at current rates, for `draining` groups only.
    fn eta(&self, draining: &str) -> String {
        format!(
            "({} / ({} - on (cluster, topic) group_left {} > 0)) and on (cluster, group, topic) ({draining})",
            self.topic_lag(),
            self.consume_rate(),
            self.produce_rate(),
        )
    }
}

pub fn recipes(names: &Names, sel: &Selector) -> Vec<Recipe> {
    let k = Kafka { names, sel };
    let states = k.states();
    let draining = states
        .iter()
        .find(|(state, _)| *state == "draining")
        .map(|(_, expr)| expr.clone())
        .unwrap_or_default();
    let states = states
        .into_iter()
        .map(|(state, expr)| set_label(&expr, "state", state))
        .collect::<Vec<_>>()
        .join(" or ");
    let mut out = vec![
        Recipe::plain(&kafka::TOPIC_LAG, k.topic_lag()),
        Recipe::plain(&kafka::LAG, k.partition_lag()),
        Recipe::plain(
            &kafka::LOG_END,
            k.keyed(&TP, &sel.series(names.log_end, "")),
        ),
        Recipe::plain(
            &kafka::LOG_START,
            k.keyed(&TP, &sel.series(names.log_start, "")),
        ),
        Recipe::plain(&kafka::PRODUCE_RATE, k.produce_rate()),
        Recipe::plain(&kafka::CONSUME_RATE, k.consume_rate()),
        Recipe::plain(
            &kafka::MEMBERS,
            k.keyed(&["cluster", "group"], &sel.series(names.members, "")),
        ),
        Recipe::derived(&kafka::LAG_STATE, STATE_RULE, states.clone()),
        Recipe::derived(&kafka::DRAIN_ETA, ETA_RULE, k.eta(&draining)),
        Recipe::plain(
            &kafka::TOPIC_PARTITIONS,
            match names.partitions {
                Some(metric) => k.keyed(&TOPIC, &sel.series(metric, "")),
                None => format!(
                    "count by (cluster, topic) ({})",
                    k.keyed(&TP, &sel.series(names.log_end, ""))
                ),
            },
        ),
    ];
    match names.committed {
        Some(committed) => {
            let series = sel.series(committed, "");
            out.push(Recipe::plain(
                &kafka::COMMITTED,
                k.keyed(&GTP, &format!("{series} >= 0")),
            ));
            out.push(Recipe::plain(
                &kafka::HAS_COMMIT,
                k.keyed(&GTP, &format!("{series} >= bool 0")),
            ));
        }
        None => out.push(Recipe::plain(
            &kafka::HAS_COMMIT,
            k.keyed(
                &GTP,
                &format!("{} * 0 + 1", sel.series(names.partition_lag, "")),
            ),
        )),
    }
    // The exporter's scrape health as surge-exporter reports its Kafka source's: a stopped
    // exporter makes its groups' lag unknown, not gone.
    out.push(Recipe::plain(
        &surge_metrics::catalogue::exporter::SOURCE_UP,
        set_label(
            &copy_label(&scrape_up(sel, names.alive), "target", "instance"),
            "source",
            "kafka",
        ),
    ));
    if let Some(info) = names.group_info {
        out.push(Recipe::plain(
            &kafka::GROUP_STATE,
            k.keyed(
                &["cluster", "group", "state"],
                &format!("{} * 0 + 1", sel.series(info, "")),
            ),
        ));
    }
    out
}
