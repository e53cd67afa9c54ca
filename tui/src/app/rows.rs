//! The rows each view lists, filtered: the one definition of "row N" for drawing and keys.

use surge_client::act::dead_letters::{DeadLetterTopic, Filter, Letter, Look};
use surge_client::model::{Alert, Silence};
use surge_client::store::{GroupRow, PartitionRow, PodRow, ServerRow, ServiceRow, Store, firing};

fn matches(filter: &str, fields: &[&str]) -> bool {
    if filter.is_empty() {
        return true;
    }
    let needle = filter.to_lowercase();
    fields.iter().any(|f| f.to_lowercase().contains(&needle))
}

/// The rows each view lists, filtered: the one definition of "row N" for drawing and keys.
pub fn services<'a>(store: &'a Store, filter: &str) -> Vec<&'a ServiceRow> {
    store
        .derived()
        .services
        .iter()
        .filter(|s| matches(filter, &[&s.namespace, &s.workload]))
        .collect()
}

pub fn groups<'a>(store: &'a Store, filter: &str) -> Vec<&'a GroupRow> {
    store
        .derived()
        .groups
        .iter()
        .filter(|g| matches(filter, &[&g.group, &g.topic, &g.cluster, g.state_label()]))
        .collect()
}

pub fn servers<'a>(store: &'a Store, filter: &str) -> Vec<&'a ServerRow> {
    store
        .derived()
        .servers
        .iter()
        .filter(|s| matches(filter, &[&s.target, s.role.label()]))
        .collect()
}

pub fn alerts<'a>(store: &'a Store, filter: &str) -> Vec<&'a Alert> {
    store
        .derived()
        .alerts
        .iter()
        .filter(|a| {
            let labels: Vec<&str> = a.labels.values().map(String::as_str).collect();
            matches(
                filter,
                &[&[a.name.as_str(), &a.severity, &a.summary][..], &labels].concat(),
            )
        })
        .collect()
}

pub fn silences<'a>(store: &'a Store, filter: &str) -> Vec<&'a Silence> {
    store
        .silences()
        .iter()
        .filter(|s| s.state != "expired")
        .filter(|s| {
            let values: Vec<&str> = s.matchers.iter().map(|m| m.value.as_str()).collect();
            matches(
                filter,
                &[&[s.comment.as_str(), &s.created_by][..], &values].concat(),
            )
        })
        .collect()
}

pub fn pods(store: &Store, namespace: &str, workload: &str, filter: &str) -> Vec<PodRow> {
    store
        .pods(namespace, workload)
        .into_iter()
        .filter(|p| matches(filter, &[&p.pod]))
        .collect()
}

pub fn partitions(store: &Store, group: &str, topic: &str, filter: &str) -> Vec<PartitionRow> {
    store
        .partitions(group, topic)
        .into_iter()
        .filter(|p| matches(filter, &[&p.partition]))
        .collect()
}

/// Firing, unmuted alerts about a service (for its detail view and the Overview).
pub fn alerts_for_service<'a>(store: &'a Store, workload: &str) -> Vec<&'a Alert> {
    firing(&store.derived().alerts)
        .filter(|a| a.labels.get("workload").map(String::as_str) == Some(workload))
        .collect()
}

/// The dead-letter topics the broker last listed, by name.
pub fn dead_letter_topics<'a>(store: &'a Store, filter: &str) -> Vec<&'a DeadLetterTopic> {
    match store.dead_letters() {
        Some((_, Ok(Look::Topics(topics)))) => topics
            .iter()
            .filter(|t| matches(filter, &[&t.name]))
            .collect(),
        _ => Vec::new(),
    }
}

/// The letters of the topic shown, newest first; the filter takes letters by their error,
/// as `:redrive` does.
pub fn letters<'a>(store: &'a Store, topic: &str, filter: &str) -> Vec<&'a Letter> {
    let taken = letter_filter(filter);
    match store.dead_letters() {
        Some((
            _,
            Ok(Look::Letters {
                topic: shown,
                letters,
                ..
            }),
        )) if shown == topic => letters.iter().filter(|l| taken.takes(l)).collect(),
        _ => Vec::new(),
    }
}

/// The filter text as the letters' filter (their error contains it).
pub fn letter_filter(filter: &str) -> Filter {
    Filter {
        error_contains: (!filter.is_empty()).then(|| filter.to_owned()),
        source_topic: None,
    }
}
