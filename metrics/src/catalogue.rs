//! Every family Surge exports, declared once. Each section is a module with one static per
//! family and `ALL`, its families in order; [`families`] walks every section. Writers take the
//! statics, readers (the panel, rules, boards) the `exposed` names, and the tests prove every
//! name any of them uses is declared here.

use crate::family::Family;

/// Declares sections of families: a module per section with a static per family and `ALL`,
/// plus [`SECTIONS`]. Syntax per family:
/// `ID = gauge|counter "name" [unit "u"] [label, ...] "Help sentence.";`
macro_rules! catalogue {
    ($(
        $(#[doc = $section_doc:literal])*
        pub mod $section:ident {
            $( $id:ident = $kind:ident $name:literal $(unit $unit:literal)? [$($label:ident),*] $help:literal; )*
        }
    )*) => {
        $(
            $(#[doc = $section_doc])*
            pub mod $section {
                use crate::family::{Family, Kind};
                /// This section's description (its doc comment).
                pub const DOC: &str = concat!($($section_doc),*);
                $(
                    #[doc = $help]
                    pub static $id: Family = Family {
                        name: $name,
                        exposed: catalogue!(@exposed $kind $name),
                        kind: catalogue!(@kind $kind),
                        unit: catalogue!(@unit $($unit)?),
                        labels: &[$(stringify!($label)),*],
                        help: $help,
                    };
                )*
                /// Every family of this section, in declaration order.
                pub static ALL: &[&Family] = &[$(&$id),*];
            }
        )*
        /// Every section's families.
        pub static SECTIONS: &[&[&Family]] = &[$($section::ALL),*];
        /// Every section's name and description, in [`SECTIONS`] order.
        pub static SECTION_DOCS: &[(&str, &str)] = &[$((stringify!($section), $section::DOC)),*];
    };
    (@exposed gauge $name:literal) => { $name };
    (@exposed counter $name:literal) => { concat!($name, "_total") };
    (@kind gauge) => { Kind::Gauge };
    (@kind counter) => { Kind::Counter };
    (@unit) => { None };
    (@unit $unit:literal) => { Some($unit) };
}

catalogue! {
    /// The exporter's own health: one series per (source, target), always present.
    pub mod exporter {
        SOURCE_UP = gauge "surge_source_up" [source, target]
            "1 if the last collection of this source target succeeded, 0 if it failed.";
        SOURCE_LAST_SUCCESS = gauge "surge_source_last_success_timestamp_seconds" unit "seconds" [source, target]
            "Unix time of the last successful collection of this source target.";
        SOURCE_INTERVAL = gauge "surge_source_interval_seconds" unit "seconds" [source, target]
            "Configured time between two collections of this source target (a last success older than a few of these means collection stopped).";
        SOURCE_DURATION = gauge "surge_source_collect_duration_seconds" unit "seconds" [source, target]
            "Wall time the last collection of this source target took.";
        SOURCE_ERRORS = counter "surge_source_errors" [source, target]
            "Failed collections of this source target since the exporter started.";
        SOURCE_SERIES = gauge "surge_source_series" [source, target]
            "Series this source target produced in its last successful collection.";
        BUILD_INFO = gauge "surge_exporter_build_info" [version]
            "Always 1; labels carry the surge-exporter version.";
    }

    /// PostgreSQL replication, from the primary's and each replica's own view.
    pub mod postgres {
        IS_REPLICA = gauge "surge_postgres_is_replica" [target]
            "1 if the server is in recovery (a replica), 0 if it is a primary.";
        REPLICA_LAG_BYTES = gauge "surge_postgres_replica_lag_bytes" unit "bytes" [target, replica]
            "On a primary, per standby: current WAL position minus the standby's replay position.";
        REPLICA_LAG_SECONDS = gauge "surge_postgres_replica_lag_seconds" unit "seconds" [target, replica, stage]
            "On a primary, per standby: pg_stat_replication write/flush/replay lag (0 when caught up and idle).";
        REPLICA_STREAMING = gauge "surge_postgres_replica_streaming" [target, replica]
            "On a primary, per standby: 1 if its WAL sender is streaming; 0 if it is in another state or vanished (kept for the standby retention).";
        SLOT_RETAINED_BYTES = gauge "surge_postgres_replication_slot_retained_bytes" unit "bytes" [target, slot]
            "WAL the replication slot holds back: current WAL position minus the slot's restart_lsn.";
        SLOT_ACTIVE = gauge "surge_postgres_replication_slot_active" [target, slot]
            "1 if a consumer is connected to the replication slot, else 0.";
        REPLAY_LAG_SECONDS = gauge "surge_postgres_replay_lag_seconds" unit "seconds" [target]
            "On a replica: how stale its data may be. 0 while streaming and caught up; grows while replay is behind or the WAL receiver is not streaming.";
        WAL_RECEIVER_STREAMING = gauge "surge_postgres_wal_receiver_streaming" [target]
            "On a replica: 1 if the WAL receiver is streaming from its upstream, else 0.";
        RECEIVE_LAG_BYTES = gauge "surge_postgres_receive_lag_bytes" unit "bytes" [target]
            "On a replica: upstream WAL end last reported by the sender minus WAL flushed locally.";
        REPLAY_LAG_BYTES = gauge "surge_postgres_replay_lag_bytes" unit "bytes" [target]
            "On a replica: WAL received but not yet replayed.";
        REPLAY_PAUSED = gauge "surge_postgres_replay_paused" [target]
            "On a replica: 1 if WAL replay is paused (pg_wal_replay_pause()), else 0.";
        LAST_REPLAYED_TX = gauge "surge_postgres_last_replayed_transaction_timestamp_seconds" unit "seconds" [target]
            "On a replica: commit time (primary clock) of the last transaction replayed.";
        CONNECTIONS = gauge "surge_postgres_connections" [target, database, state]
            "Client connections to the server by database and state (active, idle, idle_in_transaction, ...), from pg_stat_activity.";
        CLIENT_CONNECTIONS = gauge "surge_postgres_client_connections" [target, application]
            "Client connections to the server by application_name (pg_stat_activity), all databases and states: which services use which server. The 50 largest by count; the rest summed as application=\"(other)\".";
        MAX_CONNECTIONS = gauge "surge_postgres_max_connections" [target]
            "The server's max_connections.";
        RESERVED_CONNECTIONS = gauge "surge_postgres_reserved_connections" [target]
            "Connection slots kept for superusers and pg_use_reserved_connections (superuser_reserved_connections plus reserved_connections): ordinary clients get max_connections minus these.";
        LONGEST_IDLE_IN_TRANSACTION = gauge "surge_postgres_longest_idle_in_transaction_seconds" unit "seconds" [target]
            "How long the longest-idle open transaction has sat idle (state idle in transaction), 0 when there is none.";
        LONGEST_LOCK_WAIT = gauge "surge_postgres_longest_lock_wait_seconds" unit "seconds" [target]
            "How long the longest-waiting client has waited on a lock in its current query, 0 when none waits.";
    }

    /// Kafka consumer lag: offsets, sums, trends and the exporter's own requests.
    pub mod kafka {
        LOG_END = gauge "surge_kafka_partition_log_end_offset" [cluster, topic, partition]
            "Log-end offset (high watermark) of the partition.";
        LOG_START = gauge "surge_kafka_partition_log_start_offset" [cluster, topic, partition]
            "Log-start offset (earliest retained) of the partition.";
        COMMITTED = gauge "surge_kafka_group_committed_offset" [cluster, group, topic, partition]
            "Offset the group committed on the partition.";
        HAS_COMMIT = gauge "surge_kafka_group_has_commit" [cluster, group, topic, partition]
            "1 if the group has a committed offset on the partition, 0 if never (no lag series then).";
        LAG = gauge "surge_kafka_group_lag" [cluster, group, topic, partition]
            "Messages the group has not consumed on the partition: log end minus committed, clamped at 0.";
        TOPIC_LAG = gauge "surge_kafka_group_topic_lag" [cluster, group, topic]
            "Messages the group has not consumed on the topic (sum over partitions with a commit).";
        LAG_SECONDS = gauge "surge_kafka_group_topic_lag_seconds" unit "seconds" [cluster, group, topic]
            "How long ago the oldest unconsumed message of the group on the topic was appended, from log-end history.";
        LAG_SECONDS_LOWER_BOUND = gauge "surge_kafka_group_topic_lag_seconds_lower_bound" [cluster, group, topic]
            "1 if the lag in seconds is only a lower bound (history does not reach back far enough).";
        CONSUME_RATE = gauge "surge_kafka_group_topic_consume_rate" [cluster, group, topic]
            "Messages per second the group consumes on the topic (committed offsets over the rate window).";
        TOPIC_PARTITIONS = gauge "surge_kafka_topic_partitions" [cluster, topic]
            "Partitions of the topic: the most consumers of one group that can do work on it.";
        PRODUCE_RATE = gauge "surge_kafka_topic_produce_rate" [cluster, topic]
            "Messages per second appended to the topic (log-end offsets over the rate window).";
        DRAIN_ETA = gauge "surge_kafka_group_topic_drain_eta_seconds" unit "seconds" [cluster, group, topic]
            "Seconds until the lag reaches 0 at current rates; present only while draining.";
        LAG_STATE = gauge "surge_kafka_group_topic_lag_state" [cluster, group, topic, state]
            "1 for the lag state of the group on the topic (ok, growing, draining, stalled, idle), 0 for the others.";
        STALLED_PARTITIONS = gauge "surge_kafka_group_topic_stalled_partitions" [cluster, group, topic]
            "Partitions of the topic whose committed offset has not moved while they have lag, for the stall time or twice the partition's own commit interval (each partition judged alone, so a wedged member shows while the others commit); the lag state stays the topic's summed rule.";
        PARTITION_STALLED = gauge "surge_kafka_partition_stalled_seconds" unit "seconds" [cluster, group, topic, partition, member]
            "How long a stalled partition's committed offset has stood still with lag, present only while it is stalled; member is the group member it is assigned to (empty when none is).";
        SCALABLE_LAG = gauge "surge_kafka_group_topic_scalable_lag" [cluster, group, topic]
            "The lag more consumers could work off: summed over the partitions that are not stalled, each capped at [kafka] scalable_lag_partition_cap (one consumer's share), what HPAs and KEDA scale on.";
        MEMBERS = gauge "surge_kafka_group_members" [cluster, group]
            "Members of the consumer group (absent when the group could not be described).";
        GROUP_STATE = gauge "surge_kafka_group_state" [cluster, group, state]
            "1 for the consumer group's state (Stable, Empty, PreparingRebalance, CompletingRebalance, Dead, Unknown), 0 for the others.";
        REQUESTS = counter "surge_kafka_requests" [cluster, api]
            "Kafka protocol requests sent by the exporter, by API, counted as each is sent.";
        CLAMPED = counter "surge_kafka_lag_clamped" [cluster, group, topic]
            "Partition lags clamped to 0 because the committed offset was past the log end read before it.";
        GROUP_ERRORS = counter "surge_kafka_group_errors" [cluster, group, api]
            "Failed per-group requests (OffsetFetch, DescribeGroups); the rest of the cluster is unaffected.";
    }

    /// Pod CPU against requests, per pod and per workload as the HPA computes it.
    pub mod workload {
        POD_CPU_USAGE = gauge "surge_pod_cpu_usage_cores" unit "cores" [namespace, workload, pod]
            "CPU usage of the pod (sum over its containers), in cores.";
        POD_CPU_REQUEST = gauge "surge_pod_cpu_request_cores" unit "cores" [namespace, workload, pod]
            "CPU request of the pod (sum over its containers), in cores. Absent if any container has no request.";
        POD_READY = gauge "surge_pod_ready" [namespace, workload, pod]
            "1 if the pod is ready (Kubernetes Ready condition, or the process is running), else 0.";
        CPU_UTILIZATION = gauge "surge_workload_cpu_utilization_ratio" unit "ratio" [namespace, workload]
            "CPU usage over CPU request of the workload as the HPA computes it: sum(usage)/sum(requests) over counted pods, unrounded (the HPA truncates to whole percent: surge_hpa_observed_cpu_utilization_ratio).";
        PODS = gauge "surge_workload_pods" [namespace, workload, state]
            "Pods of the workload by how the HPA treats them (counted, unready, missing_metrics, excluded).";
        PODS_WITHOUT_CPU_REQUEST = gauge "surge_workload_pods_without_cpu_request" [namespace, workload]
            "Pods of the workload with a container lacking a CPU request; a real HPA cannot compute utilization while this is above 0.";
        POD_MEMORY_WORKING_SET = gauge "surge_pod_memory_working_set_bytes" unit "bytes" [namespace, workload, pod]
            "Memory working set of the pod (sum over its containers; resident memory for a local process): what OOM kills and evictions are decided on.";
        POD_MEMORY_REQUEST = gauge "surge_pod_memory_request_bytes" unit "bytes" [namespace, workload, pod]
            "Memory request of the pod (sum over its containers). Absent if any container has no request.";
        POD_MEMORY_LIMIT = gauge "surge_pod_memory_limit_bytes" unit "bytes" [namespace, workload, pod]
            "Memory limit of the pod (sum over its containers). Absent if any container has no limit.";
        MEMORY_UTILIZATION = gauge "surge_workload_memory_utilization_ratio" unit "ratio" [namespace, workload]
            "Memory working set over memory request of the workload as the HPA computes it: sum(usage)/sum(requests) over running pods with a metric, truncated to whole percent.";
    }

    /// HorizontalPodAutoscalers: bounds, replicas, target and conditions.
    pub mod hpa {
        CURRENT = gauge "surge_hpa_current_replicas" [namespace, hpa, workload]
            "Current replicas of the HPA's scale target (status.currentReplicas).";
        DESIRED = gauge "surge_hpa_desired_replicas" [namespace, hpa, workload]
            "Replicas the HPA last computed (status.desiredReplicas).";
        MIN = gauge "surge_hpa_min_replicas" [namespace, hpa, workload]
            "Lower replica bound of the HPA (spec.minReplicas, default 1).";
        MAX = gauge "surge_hpa_max_replicas" [namespace, hpa, workload]
            "Upper replica bound of the HPA (spec.maxReplicas).";
        TARGET_CPU = gauge "surge_hpa_target_cpu_utilization_ratio" unit "ratio" [namespace, hpa, workload]
            "The HPA's CPU target as a ratio of requests (Resource cpu, type Utilization).";
        OBSERVED_CPU = gauge "surge_hpa_observed_cpu_utilization_ratio" unit "ratio" [namespace, hpa, workload]
            "CPU utilization the HPA itself last reported (status.currentMetrics), for comparison.";
        METRIC_TARGET = gauge "surge_hpa_metric_target" [namespace, hpa, workload, metric_type, metric_name, target_type]
            "Each metric's target (spec.metrics): a ratio for Utilization, the metric's unit per replica for AverageValue, its unit for Value.";
        METRIC_CURRENT = gauge "surge_hpa_metric_current" [namespace, hpa, workload, metric_type, metric_name, target_type]
            "What the HPA last measured for each metric (status.currentMetrics), in its target's unit.";
        METRIC_PROPOSED = gauge "surge_hpa_metric_proposed_replicas" [namespace, hpa, workload, metric_type, metric_name]
            "Replicas this metric alone asks for at the current count: ceil(current replicas x current / target), unchanged within the 10% tolerance.";
        METRIC_DECIDING = gauge "surge_hpa_metric_deciding" [namespace, hpa, workload, metric_type, metric_name]
            "1 for the metric whose proposal the HPA follows (the largest; the first of equals), else 0.";
        SCALING_LIMITED = gauge "surge_hpa_scaling_limited" [namespace, hpa, workload]
            "1 if the HPA's ScalingLimited condition is True (desired replicas clamped by min/max), else 0.";
        ABLE_TO_SCALE = gauge "surge_hpa_able_to_scale" [namespace, hpa, workload]
            "1 if the HPA's AbleToScale condition is True, 0 if False or absent.";
    }

    /// The Kubernetes source's own view of the cluster APIs it reads.
    pub mod kubernetes {
        POD_METRICS_AVAILABLE = gauge "surge_kubernetes_pod_metrics_available" [target]
            "1 if metrics.k8s.io answered this cycle; 0 if not (pod CPU and utilization are then absent, HPA series remain).";
    }
}

/// Every family, section by section.
pub fn families() -> impl Iterator<Item = &'static Family> {
    SECTIONS.iter().flat_map(|section| section.iter().copied())
}

/// The guide's metric reference (docs/src/metrics.md): every family of every section with its
/// type, labels and help, written from this catalogue (a test keeps the committed page equal).
pub fn reference_markdown() -> String {
    let mut out = String::from(
        "# Metrics\n\n\
         Every `surge_*` family, section by section, generated from the metric catalogue \
         (`metrics/src/catalogue.rs`) that the exporter, the panel, the rules and the boards \
         all read; a test keeps this page equal to it. Counters are shown by their exposed \
         name (with `_total`).\n",
    );
    for ((section, doc), families) in SECTION_DOCS.iter().zip(SECTIONS) {
        out.push_str(&format!("\n## `{section}`\n\n{}\n\n", doc.trim()));
        out.push_str("| metric | type | labels | meaning |\n|---|---|---|---|\n");
        for family in *families {
            let labels = family
                .labels
                .iter()
                .map(|l| format!("`{l}`"))
                .collect::<Vec<_>>()
                .join(", ");
            let kind = match family.kind {
                crate::Kind::Gauge => "gauge",
                crate::Kind::Counter => "counter",
            };
            out.push_str(&format!(
                "| `{}` | {kind} | {} | {} |\n",
                family.exposed,
                if labels.is_empty() {
                    "—".into()
                } else {
                    labels
                },
                family.help.replace('|', "\\|")
            ));
        }
    }
    out
}

/// The family whose exposed sample name (as in PromQL) is `exposed`.
pub fn find(exposed: &str) -> Option<&'static Family> {
    families().find(|f| f.exposed == exposed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Kind;
    use std::collections::HashSet;

    /// docs/src/metrics.md is the generated reference; `SURGE_WRITE_DOCS=1` rewrites it.
    #[test]
    fn the_guide_lists_every_family_as_the_catalogue_declares_it() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/src/metrics.md");
        let generated = reference_markdown();
        if std::env::var_os("SURGE_WRITE_DOCS").is_some() {
            std::fs::write(&path, &generated).expect("writing docs/src/metrics.md");
        }
        let committed = std::fs::read_to_string(&path).expect("docs/src/metrics.md");
        assert!(
            committed == generated,
            "docs/src/metrics.md is not the catalogue's reference (SURGE_WRITE_DOCS=1 cargo test -p surge-metrics rewrites it)"
        );
        // Every family is in it, each on its own row.
        for family in families() {
            assert!(
                committed.contains(&format!("| `{}` |", family.exposed)),
                "{}",
                family.exposed
            );
        }
        assert!(families().count() > 50);
    }

    #[test]
    fn names_follow_prometheus_conventions() {
        let mut names = HashSet::new();
        let mut count = 0;
        for f in families() {
            count += 1;
            assert!(names.insert(f.exposed), "{} declared twice", f.exposed);
            assert!(f.name.starts_with("surge_"), "{}", f.name);
            assert!(
                f.name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{}",
                f.name
            );
            assert!(
                f.help.ends_with('.') || f.help.ends_with(')'),
                "{}: help should be a sentence",
                f.name
            );
            if let Some(unit) = f.unit {
                assert!(
                    f.name.ends_with(&format!("_{unit}")),
                    "{} must end in its unit {unit}",
                    f.name
                );
            }
            match f.kind {
                Kind::Counter => {
                    assert!(
                        !f.name.ends_with("_total"),
                        "{}: _total is appended",
                        f.name
                    );
                    assert_eq!(f.exposed, format!("{}_total", f.name));
                }
                Kind::Gauge => assert_eq!(f.exposed, f.name),
            }
            for banned in [
                "_milliseconds",
                "_millicores",
                "_percent",
                "_kilobytes",
                "_megabytes",
            ] {
                assert!(!f.name.contains(banned), "{}: use base units", f.name);
            }
            assert!(!f.labels.is_empty(), "{}: no labels", f.name);
        }
        assert_eq!(
            count, 69,
            "a family was added or removed: update this count knowingly"
        );
        assert_eq!(
            find("surge_source_errors_total"),
            Some(&exporter::SOURCE_ERRORS)
        );
        assert_eq!(find("surge_source_errors"), None);
    }
}
