//! The values of `state` labels, written by the exporter and read by the panel and rules.

/// A closed set of label values: the enum, `ALL` in export order, and both directions of the
/// label text.
macro_rules! label_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $label:literal,)* }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vdoc])* $variant,)*
        }

        impl $name {
            /// Every value, in the order series are exported.
            pub const ALL: &[$name] = &[$($name::$variant),*];

            /// The label value.
            pub fn label(self) -> &'static str {
                match self {
                    $($name::$variant => $label,)*
                }
            }

            /// The value a label names, if it is one of ours.
            pub fn from_label(text: &str) -> Option<$name> {
                match text {
                    $($label => Some($name::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

label_enum! {
    /// Where a (group, topic)'s lag is heading (`surge_kafka_group_topic_lag_state`).
    LagState {
        Ok = "ok",
        Growing = "growing",
        Draining = "draining",
        Stalled = "stalled",
        Idle = "idle",
    }
}

label_enum! {
    /// How the HPA treats a pod in a cycle for CPU (`surge_workload_pods`).
    PodState {
        /// Ready with a metric: its usage and request enter the ratio.
        Counted = "counted",
        /// Pending, or unready by the controller's readiness rules: left out.
        Unready = "unready",
        /// No usage metric yet: left out.
        MissingMetrics = "missing_metrics",
        /// Being deleted or failed: the controller skips it entirely.
        Excluded = "excluded",
    }
}

label_enum! {
    /// A consumer group's state as Kafka names it (`surge_kafka_group_state`); `Unknown` when
    /// the broker could not say.
    GroupState {
        Stable = "Stable",
        Empty = "Empty",
        PreparingRebalance = "PreparingRebalance",
        CompletingRebalance = "CompletingRebalance",
        Dead = "Dead",
        Unknown = "Unknown",
    }
}

label_enum! {
    /// What a client connection is doing (`surge_postgres_connections`), from
    /// `pg_stat_activity.state`.
    ConnectionState {
        Active = "active",
        Idle = "idle",
        /// Holding a transaction open while doing nothing: locks and snapshots stay held.
        IdleInTransaction = "idle_in_transaction",
        IdleInTransactionAborted = "idle_in_transaction_aborted",
        Fastpath = "fastpath",
        Disabled = "disabled",
        /// A state this version of Surge does not know (a newer server's).
        Unknown = "unknown",
    }
}

impl ConnectionState {
    /// The state `pg_stat_activity` shows.
    pub fn from_activity(text: &str) -> ConnectionState {
        match text {
            "active" => ConnectionState::Active,
            "idle" => ConnectionState::Idle,
            "idle in transaction" => ConnectionState::IdleInTransaction,
            "idle in transaction (aborted)" => ConnectionState::IdleInTransactionAborted,
            "fastpath function call" => ConnectionState::Fastpath,
            "disabled" => ConnectionState::Disabled,
            _ => ConnectionState::Unknown,
        }
    }
}

label_enum! {
    /// The kind of an HPA metric (`autoscaling/v2` `MetricSpec.type`), as a label value.
    MetricType {
        Resource = "resource",
        ContainerResource = "container_resource",
        Pods = "pods",
        Object = "object",
        External = "external",
    }
}

impl MetricType {
    /// The type as the API spells it (`External`).
    pub fn from_api(text: &str) -> Option<MetricType> {
        match text {
            "Resource" => Some(MetricType::Resource),
            "ContainerResource" => Some(MetricType::ContainerResource),
            "Pods" => Some(MetricType::Pods),
            "Object" => Some(MetricType::Object),
            "External" => Some(MetricType::External),
            _ => None,
        }
    }
}

label_enum! {
    /// How an HPA metric's target is expressed (`MetricTarget.type`).
    TargetType {
        /// A share of the pods' requests (Resource metrics); exported as a ratio.
        Utilization = "utilization",
        /// Per replica: the metric's total over the replica count.
        AverageValue = "average_value",
        /// The metric's value as it is.
        Value = "value",
    }
}

impl TargetType {
    pub fn from_api(text: &str) -> Option<TargetType> {
        match text {
            "Utilization" => Some(TargetType::Utilization),
            "AverageValue" => Some(TargetType::AverageValue),
            "Value" => Some(TargetType::Value),
            _ => None,
        }
    }
}

/// A pod nothing is known about yet has no metric.
impl Default for PodState {
    fn default() -> Self {
        PodState::MissingMetrics
    }
}

impl GroupState {
    /// The state a broker reported; anything we do not know is `Unknown`.
    pub fn from_broker(text: &str) -> GroupState {
        GroupState::from_label(text).unwrap_or(GroupState::Unknown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_round_trip() {
        for s in LagState::ALL {
            assert_eq!(LagState::from_label(s.label()), Some(*s));
        }
        for s in PodState::ALL {
            assert_eq!(PodState::from_label(s.label()), Some(*s));
        }
        for s in GroupState::ALL {
            assert_eq!(GroupState::from_broker(s.label()), *s);
        }
        assert_eq!(GroupState::from_broker("Rebalancing"), GroupState::Unknown);
        for s in ConnectionState::ALL {
            assert_eq!(ConnectionState::from_label(s.label()), Some(*s));
        }
        assert_eq!(
            ConnectionState::from_activity("idle in transaction (aborted)"),
            ConnectionState::IdleInTransactionAborted
        );
        assert_eq!(
            ConnectionState::from_activity("starting"),
            ConnectionState::Unknown
        );
        assert_eq!(LagState::from_label("unknown"), None);
    }
}
