//! What the panel asks Prometheus, and how often: the queries (built from the metric
//! catalogue, so a renamed family cannot silently vanish from the panel) and the per-refresh
//! plan that keeps every refresh within a fixed request budget.

use std::sync::LazyLock;
use std::time::Duration;

use surge_metrics::Family;
use surge_metrics::catalogue::{exporter, hpa, kafka, postgres, workload};

use super::signals::{Group, Selector};
use crate::model::Range;

/// Families whose history the views draw (sparklines, rates, the timeline).
pub static HISTORY: [&Family; 6] = [
    &workload::CPU_UTILIZATION,
    &exporter::SOURCE_ERRORS,
    &hpa::CURRENT,
    &kafka::TOPIC_LAG,
    &postgres::REPLAY_LAG_SECONDS,
    &postgres::REPLICA_LAG_BYTES,
];

/// History key of the alert timeline (Prometheus' own `ALERTS` series).
pub const ALERTS: &str = "ALERTS";

/// The per-(group, topic) Kafka families the Overview and Kafka views read.
static KAFKA_SUMMARY: [&Family; 13] = [
    &kafka::TOPIC_PARTITIONS,
    &kafka::TOPIC_LAG,
    &kafka::LAG_SECONDS,
    &kafka::LAG_SECONDS_LOWER_BOUND,
    &kafka::CONSUME_RATE,
    &kafka::PRODUCE_RATE,
    &kafka::DRAIN_ETA,
    &kafka::LAG_STATE,
    &kafka::MEMBERS,
    &kafka::GROUP_STATE,
    &kafka::STALLED_PARTITIONS,
    // Present only for stalled partitions: a few series, not one per partition.
    &kafka::PARTITION_STALLED,
    &kafka::SCALABLE_LAG,
];

/// The families the Overview, Kafka, PostgreSQL and health views read by name. Per-partition
/// series are left out: they are fetched only for the partition drill-in.
fn overview_names() -> impl Iterator<Item = &'static str> {
    let own = exporter::ALL
        .iter()
        .filter(|f| f.name != exporter::BUILD_INFO.name);
    own.chain(hpa::ALL)
        .chain(workload::ALL)
        .chain(postgres::ALL)
        .chain(KAFKA_SUMMARY.iter())
        .map(|f| f.exposed)
}

/// The Overview, Kafka, PostgreSQL and health views in one instant query.
pub static OVERVIEW_QUERY: LazyLock<String> = LazyLock::new(|| {
    let names: Vec<&str> = overview_names().collect();
    format!("{{__name__=~\"{}\"}}", names.join("|"))
});

/// [`OVERVIEW_QUERY`] for a context: its label selector, and only the families `keep` says
/// (the others come from the context's own queries).
pub fn overview_query(selector: &Selector, keep: impl Fn(&str) -> bool) -> String {
    let names: Vec<&str> = overview_names().filter(|n| keep(n)).collect();
    with_selector(&format!("{{__name__=~\"{}\"}}", names.join("|")), selector)
}

/// `{matchers}` with the selector's matchers added.
fn with_selector(query: &str, selector: &Selector) -> String {
    match (query.strip_suffix('}'), selector.as_str()) {
        (Some(open), extra) if !extra.is_empty() => format!("{open},{extra}}}"),
        _ => query.to_string(),
    }
}

/// The per-partition series of one group on one topic.
pub fn partitions_query(selector: &Selector, cluster: &str, group: &str, topic: &str) -> String {
    partitions_selectors(selector, cluster, group, topic).join(" or ")
}

/// [`partitions_query`] as series selectors: the group's per-partition series, then the
/// topic's log ends (what direct mode asks the exporter for with `match[]`).
pub fn partitions_selectors(
    selector: &Selector,
    cluster: &str,
    group: &str,
    topic: &str,
) -> [String; 2] {
    let (c, g, t) = (quote(cluster), quote(group), quote(topic));
    let group_series = [&kafka::LAG, &kafka::COMMITTED, &kafka::HAS_COMMIT]
        .map(|f| f.exposed)
        .join("|");
    [
        with_selector(
            &format!("{{__name__=~\"{group_series}\",cluster={c},group={g},topic={t}}}"),
            selector,
        ),
        selector.series(kafka::LOG_END.exposed, &format!("cluster={c},topic={t}")),
    ]
}

/// The query of a history request: a family's name, or the firing alerts for the timeline.
pub fn range_query(selector: &Selector, metric: &str) -> String {
    if metric == ALERTS {
        "ALERTS{alertstate=\"firing\"}".to_string()
    } else {
        selector.series(metric, "")
    }
}

/// Every query the panel may send to Prometheus (the partition query with placeholders), for
/// the contract test that checks each metric name it uses is exported.
pub fn queries() -> Vec<String> {
    let none = Selector::default();
    let mut out = vec![
        OVERVIEW_QUERY.clone(),
        partitions_query(&none, "cluster", "group", "topic"),
    ];
    out.extend(HISTORY.iter().map(|f| range_query(&none, f.exposed)));
    out.push(range_query(&none, ALERTS));
    out
}

/// A PromQL string literal.
pub fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// What the views currently need beyond the default (asked for by the app).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Want {
    /// The partition drill-in: (cluster, group, topic).
    pub partitions: Option<(String, String, String)>,
    /// History to show.
    pub range: Range,
    /// What the dead-letter view shows, asked of the broker.
    pub dead_letters: DeadLetterWant,
}

/// The dead-letter view's data, while it is shown.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum DeadLetterWant {
    #[default]
    Nothing,
    /// The dead-letter topics and their counts.
    Topics,
    /// One topic's newest letters.
    Letters(String),
}

/// One request of a Prometheus refresh.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    Overview,
    Partitions(String, String, String),
    Alerts,
    Rules,
    /// History of one metric over the wanted range.
    Range(String),
}

/// Requests of one Overview: Surge's series, one per group another exporter provides, and one
/// for the context's own queries (asked one by one only when they fail, to name the culprit).
pub const OVERVIEW_REQUESTS: usize = 1 + Group::ALL.len() + 1;

/// The most requests one Prometheus refresh may issue: the Overview's, alerts, a partition
/// drill-in, rules with the detection of providers, and history.
pub const PROMETHEUS_BUDGET: usize = OVERVIEW_REQUESTS + 4 + HISTORY.len() + 1;

/// What `requests` cost in HTTP requests.
#[cfg(test)]
fn cost(requests: &[Request]) -> usize {
    requests
        .iter()
        .map(|r| match r {
            Request::Overview => OVERVIEW_REQUESTS,
            // The rules, and which exporters serve which signals.
            Request::Rules => 2,
            _ => 1,
        })
        .sum()
}

/// Refreshes between history reloads and rule reloads: history every ~15 s, rules every ~60 s.
pub fn every(period: Duration, refresh: Duration) -> u64 {
    (period.as_secs_f64() / refresh.as_secs_f64().max(0.05))
        .ceil()
        .max(1.0) as u64
}

/// The requests of refresh number `n` (0 = the first, which loads everything).
pub fn plan(
    n: u64,
    want: &Want,
    history_every: u64,
    rules_every: u64,
    range_changed: bool,
) -> Vec<Request> {
    let mut requests = vec![Request::Overview, Request::Alerts];
    if let Some((c, g, t)) = &want.partitions {
        requests.push(Request::Partitions(c.clone(), g.clone(), t.clone()));
    }
    if n.is_multiple_of(rules_every) {
        requests.push(Request::Rules);
    }
    if n.is_multiple_of(history_every) || range_changed {
        requests.extend(
            HISTORY
                .iter()
                .map(|f| Request::Range(f.exposed.to_string())),
        );
        requests.push(Request::Range(ALERTS.to_string()));
    }
    requests
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_refresh_stays_inside_the_budget() {
        let history_every = every(Duration::from_secs(15), Duration::from_secs(1));
        let rules_every = every(Duration::from_secs(60), Duration::from_secs(1));
        assert_eq!((history_every, rules_every), (15, 60));
        let drilled = Want {
            partitions: Some(("shop".into(), "payment".into(), "order-placed".into())),
            range: Range::OneHour,
            ..Want::default()
        };
        let mut total = 0;
        let mut most = 0;
        for n in 0..120 {
            for want in [&Want::default(), &drilled] {
                for changed in [false, true] {
                    let requests = plan(n, want, history_every, rules_every, changed);
                    most = most.max(cost(&requests));
                    assert!(
                        cost(&requests) <= PROMETHEUS_BUDGET,
                        "refresh {n}: {requests:?}"
                    );
                }
            }
            total += plan(n, &Want::default(), history_every, rules_every, false).len();
        }
        // The budget is what the busiest refresh costs: no more, no less.
        assert_eq!(most, PROMETHEUS_BUDGET);
        // Two requests a refresh, history (7) every 15 and rules every 60.
        assert_eq!(total, 120 * 2 + 8 * 7 + 2);
        assert_eq!(plan(0, &Want::default(), 15, 60, false).len(), 3 + 7);
    }

    #[test]
    fn the_guide_states_the_budget() {
        let page = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/src/panel.md"),
        )
        .expect("docs/src/panel.md");
        assert!(
            page.contains(&format!(
                "budget of {PROMETHEUS_BUDGET} requests per Prometheus refresh"
            )),
            "docs/src/panel.md must state PROMETHEUS_BUDGET = {PROMETHEUS_BUDGET}"
        );
    }

    #[test]
    fn promql_strings_are_escaped() {
        assert_eq!(quote(r#"a"b\c"#), r#""a\"b\\c""#);
        let q = partitions_query(&Selector::default(), "shop", "pay\"ment", "order-placed");
        assert!(q.contains(r#"group="pay\"ment""#), "{q}");
        assert!(
            q.starts_with(
                "{__name__=~\"surge_kafka_group_lag|surge_kafka_group_committed_offset|surge_kafka_group_has_commit\""
            ),
            "{q}"
        );
    }

    #[test]
    fn the_overview_asks_for_summaries_not_partitions() {
        let q = OVERVIEW_QUERY.as_str();
        for wanted in [
            "surge_source_up",
            "surge_source_errors_total",
            "surge_hpa_current_replicas",
            "surge_workload_pods",
            "surge_pod_ready",
            "surge_postgres_replay_lag_seconds",
            "surge_kafka_group_topic_lag_state",
            "surge_kafka_topic_produce_rate",
            "surge_kafka_group_state",
        ] {
            assert!(
                q.split(['"', '|']).any(|n| n == wanted),
                "{wanted} missing: {q}"
            );
        }
        for unwanted in [
            "surge_kafka_group_lag",
            "surge_kafka_partition_log_end_offset",
            "surge_exporter_build_info",
        ] {
            assert!(
                !q.split(['"', '|']).any(|n| n == unwanted),
                "{unwanted} in {q}"
            );
        }
    }
}
