//! One verdict per service: its joined row (replicas, CPU against target, Kafka lag and its
//! trend, the database) read the way an on-call engineer would. The rules, most urgent first;
//! the first that holds is the verdict:
//!
//! 1. no HPA, CPU or Kafka numbers at all → no data;
//!
//! Drawn from a stale source (failing, or silent too long), the verdict below is the last
//! known one and says so (`STALE: …`): it no longer judges now.
//!
//! 2. database servers are watched and none reports itself the primary → DB primary down
//!    (writes fail until one is promoted);
//! 3. the service consumes from Kafka and the exporter's Kafka source is down → lag unknown;
//! 4. its consumer group's lag is `stalled` (messages arrive, nothing is consumed) →
//!    consumers stalled (more replicas will not help);
//! 5. at max replicas with CPU over target → saturated at max (with "lag growing" when it is);
//! 6. lag `growing` at max replicas → lag growing at max;
//! 7. lag `growing` while the HPA asks for more replicas → lag growing, scaling out;
//! 8. lag `growing`, the HPA not (yet) asking for more → lag growing;
//! 9. the HPA asks for more replicas → scaling out;
//! 10. CPU over the HPA's target by more than its 10% tolerance for at least one HPA sync
//!     period (15 s, every reading of the last 30 s), below max, and the HPA not asking for
//!     more → over target, not scaling (its sync, or the metrics it reads, are behind what
//!     the pods do; one reading between two syncs is not yet news);
//! 11. an alert fires about the service (its workload or service label, its consumer group, or
//!     its topic's dead-letter queue), not muted → that alert, a page before a warning;
//! 12. a database server's target is down (a replica's lag is unknown) → DB server down;
//! 13. lag `draining` → draining (with the ETA when the exporter gives one);
//! 14. the most lagging replica is past the replica-lag warning line → replica behind;
//! 15. the busiest database server past the connections warning line → DB connections high;
//! 16. a pod past the memory line of its limit → memory near limit;
//! 17. the HPA asks for fewer replicas → scaling in;
//! 18. otherwise → keeping up.

use surge_metrics::state::LagState;

use super::rows::ServiceRow;

#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    NoData,
    /// The last known verdict, from a stale source.
    Stale(Box<Verdict>),
    DatabasePrimaryDown,
    KafkaLagUnknown,
    ConsumersStalled,
    SaturatedAtMax {
        lag_growing: bool,
    },
    LagGrowingAtMax,
    LagGrowingScalingOut {
        from: f64,
        to: f64,
    },
    LagGrowing,
    ScalingOut {
        from: f64,
        to: f64,
    },
    /// CPU over the HPA's target past its tolerance, below max, and no scale-out asked.
    OverTargetNotScaling {
        cpu: f64,
        target: f64,
    },
    /// An alert about the service fires (`page`: it pages).
    Alerting {
        alert: String,
        page: bool,
    },
    Draining {
        eta: Option<f64>,
    },
    DatabaseServersDown {
        targets: Vec<String>,
    },
    ReplicaBehind {
        seconds: f64,
    },
    DatabaseConnectionsHigh {
        share: f64,
    },
    MemoryNearLimit {
        share: f64,
    },
    ScalingIn {
        from: f64,
        to: f64,
    },
    KeepingUp,
}

/// How much a verdict asks of the reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Urgency {
    /// Nothing to do.
    Fine,
    /// Watch it.
    Watch,
    /// Act: scaling cannot fix it by itself.
    Act,
    /// Nothing to judge from.
    Unknown,
}

impl Verdict {
    pub fn urgency(&self) -> Urgency {
        match self {
            Verdict::NoData | Verdict::Stale(_) => Urgency::Unknown,
            Verdict::DatabasePrimaryDown
            | Verdict::ConsumersStalled
            | Verdict::SaturatedAtMax { .. }
            | Verdict::LagGrowingAtMax
            | Verdict::Alerting { page: true, .. } => Urgency::Act,
            Verdict::LagGrowingScalingOut { .. }
            | Verdict::LagGrowing
            | Verdict::ScalingOut { .. }
            | Verdict::OverTargetNotScaling { .. }
            | Verdict::Alerting { page: false, .. }
            | Verdict::KafkaLagUnknown
            | Verdict::DatabaseServersDown { .. }
            | Verdict::ReplicaBehind { .. }
            | Verdict::DatabaseConnectionsHigh { .. }
            | Verdict::MemoryNearLimit { .. } => Urgency::Watch,
            Verdict::Draining { .. } | Verdict::ScalingIn { .. } | Verdict::KeepingUp => {
                Urgency::Fine
            }
        }
    }
}

/// The HPA controller's default tolerance: within 10% of the target it does not scale
/// (`--horizontal-pod-autoscaler-tolerance`).
pub const HPA_TOLERANCE: f64 = 0.1;

/// The HPA controller's sync period (`--horizontal-pod-autoscaler-sync-period`).
pub const HPA_SYNC: f64 = 15.0;

/// CPU `now` and every reading of the last two sync periods above `line`, the oldest of them
/// at least a sync period old.
fn over_for_a_sync(now: f64, history: &[(f64, f64)], line: f64) -> bool {
    let Some(&(last, _)) = history.last() else {
        return false;
    };
    let mut recent = history.iter().filter(|(t, _)| *t >= last - 2.0 * HPA_SYNC);
    let oldest = recent.clone().next().map(|(t, _)| *t);
    now > line && recent.all(|(_, v)| *v > line) && oldest.is_some_and(|t| t <= last - HPA_SYNC)
}

/// The verdict on one service row (rules in the module docs).
pub fn verdict(row: &ServiceRow) -> Verdict {
    if row.current.is_none() && row.cpu.is_none() && row.kafka.is_none() {
        return Verdict::NoData;
    }
    let judged = judge(row);
    if row.stale {
        return Verdict::Stale(Box::new(judged));
    }
    judged
}

/// Rules 2 onwards, on numbers taken as current.
fn judge(row: &ServiceRow) -> Verdict {
    let lag_state = row.kafka.as_ref().and_then(|g| g.state);
    if row.db.primary == Some(false) {
        return Verdict::DatabasePrimaryDown;
    }
    if row.kafka_unknown {
        return Verdict::KafkaLagUnknown;
    }
    if lag_state == Some(LagState::Stalled) {
        return Verdict::ConsumersStalled;
    }
    let growing = lag_state == Some(LagState::Growing);
    if row.saturated {
        return Verdict::SaturatedAtMax {
            lag_growing: growing,
        };
    }
    let at_max = row.headroom == Some(0.0);
    let change = row
        .current
        .zip(row.desired)
        .filter(|(c, d)| (c - d).abs() >= 0.5);
    let out = change.filter(|(c, d)| d > c);
    if growing {
        return match (at_max, out) {
            (true, _) => Verdict::LagGrowingAtMax,
            (false, Some((from, to))) => Verdict::LagGrowingScalingOut { from, to },
            (false, None) => Verdict::LagGrowing,
        };
    }
    if let Some((from, to)) = out {
        return Verdict::ScalingOut { from, to };
    }
    if let (Some(cpu), Some(target), Some(headroom)) = (row.cpu, row.target, row.headroom)
        && headroom > 0.0
        && over_for_a_sync(cpu, &row.cpu_history, target * (1.0 + HPA_TOLERANCE))
    {
        return Verdict::OverTargetNotScaling { cpu, target };
    }
    let alert = row
        .alerts
        .iter()
        .find(|a| a.page)
        .or_else(|| row.alerts.first());
    if let Some(a) = alert {
        return Verdict::Alerting {
            alert: a.name.clone(),
            page: a.page,
        };
    }
    if !row.db.down.is_empty() {
        return Verdict::DatabaseServersDown {
            targets: row.db.down.clone(),
        };
    }
    if lag_state == Some(LagState::Draining) {
        return Verdict::Draining {
            eta: row.kafka.as_ref().and_then(|g| g.eta),
        };
    }
    if let Some(seconds) = row
        .db
        .replica_lag_seconds
        .filter(|s| *s >= row.lines.replica_lag_warning)
    {
        return Verdict::ReplicaBehind { seconds };
    }
    if let Some(share) = row
        .db
        .connection_use
        .filter(|s| *s >= row.lines.connections_warning)
    {
        return Verdict::DatabaseConnectionsHigh { share };
    }
    if let Some(share) = row
        .memory_of_limit
        .filter(|s| *s >= row.lines.memory_of_limit)
    {
        return Verdict::MemoryNearLimit { share };
    }
    if let Some((from, to)) = change {
        return Verdict::ScalingIn { from, to };
    }
    Verdict::KeepingUp
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Database, GroupRow};

    fn service(current: f64, desired: f64, max: f64, cpu: f64) -> ServiceRow {
        ServiceRow {
            namespace: "shop".into(),
            workload: "payment".into(),
            current: Some(current),
            desired: Some(desired),
            min: Some(2.0),
            max: Some(max),
            cpu: Some(cpu),
            target: Some(0.7),
            headroom: Some((max - current).max(0.0)),
            saturated: current >= max && cpu > 0.7,
            ..ServiceRow::default()
        }
    }

    fn sustained(mut row: ServiceRow, history: &[(f64, f64)]) -> ServiceRow {
        row.cpu_history = history.to_vec();
        row
    }

    fn with_lag(mut row: ServiceRow, state: LagState, eta: Option<f64>) -> ServiceRow {
        row.kafka = Some(GroupRow {
            group: "payment".into(),
            topic: "order-placed".into(),
            lag: Some(1500.0),
            state: Some(state),
            eta,
            ..GroupRow::default()
        });
        row
    }

    #[test]
    fn each_rule_in_order() {
        use LagState::*;
        let cases = [
            (ServiceRow::default(), Verdict::NoData),
            (service(2.0, 2.0, 10.0, 0.3), Verdict::KeepingUp),
            (
                with_lag(service(10.0, 10.0, 10.0, 0.95), Stalled, None),
                Verdict::ConsumersStalled,
            ),
            (
                service(10.0, 10.0, 10.0, 0.95),
                Verdict::SaturatedAtMax { lag_growing: false },
            ),
            (
                with_lag(service(10.0, 10.0, 10.0, 0.95), Growing, None),
                Verdict::SaturatedAtMax { lag_growing: true },
            ),
            (
                with_lag(service(10.0, 10.0, 10.0, 0.4), Growing, None),
                Verdict::LagGrowingAtMax,
            ),
            (
                with_lag(service(2.0, 4.0, 10.0, 0.4), Growing, None),
                Verdict::LagGrowingScalingOut { from: 2.0, to: 4.0 },
            ),
            (
                with_lag(service(2.0, 2.0, 10.0, 0.4), Growing, None),
                Verdict::LagGrowing,
            ),
            (
                service(3.0, 6.0, 10.0, 0.9),
                Verdict::ScalingOut { from: 3.0, to: 6.0 },
            ),
            // Over target past the tolerance, below max, nothing asked: its own verdict;
            // within the tolerance (77% of a 70% target) the HPA rightly does nothing.
            (
                sustained(
                    service(2.0, 2.0, 10.0, 1.8),
                    &[(70.0, 1.8), (85.0, 1.8), (100.0, 1.8)],
                ),
                Verdict::OverTargetNotScaling {
                    cpu: 1.8,
                    target: 0.7,
                },
            ),
            // Not yet for a whole sync, or dipping under the line: the HPA may answer yet.
            (
                sustained(service(2.0, 2.0, 10.0, 1.8), &[(95.0, 1.8), (100.0, 1.8)]),
                Verdict::KeepingUp,
            ),
            (
                sustained(
                    service(2.0, 2.0, 10.0, 1.8),
                    &[(90.0, 0.5), (95.0, 1.8), (100.0, 1.8)],
                ),
                Verdict::KeepingUp,
            ),
            (
                sustained(
                    service(2.0, 2.0, 10.0, 1.8),
                    &[(80.0, 1.8), (90.0, 0.7), (100.0, 1.8)],
                ),
                Verdict::KeepingUp,
            ),
            (
                sustained(
                    service(2.0, 2.0, 10.0, 0.77),
                    &[(70.0, 0.77), (100.0, 0.77)],
                ),
                Verdict::KeepingUp,
            ),
            (
                with_lag(service(4.0, 4.0, 10.0, 0.5), Draining, Some(120.0)),
                Verdict::Draining { eta: Some(120.0) },
            ),
            (
                with_lag(service(4.0, 4.0, 10.0, 0.5), Ok, Some(500.0)),
                Verdict::KeepingUp,
            ),
            (
                service(6.0, 3.0, 10.0, 0.2),
                Verdict::ScalingIn { from: 6.0, to: 3.0 },
            ),
        ];
        let mut paging = service(2.0, 2.0, 10.0, 0.3);
        paging.alerts = vec![
            crate::store::ServiceAlert {
                name: "KafkaDeadLetterReceiving".into(),
                page: false,
            },
            crate::store::ServiceAlert {
                name: "ServiceErrorsHigh".into(),
                page: true,
            },
        ];
        let paging_want = Verdict::Alerting {
            alert: "ServiceErrorsHigh".into(),
            page: true,
        };
        let cases = cases.into_iter().chain([(paging, paging_want)]);
        for (row, want) in cases {
            assert_eq!(verdict(&row), want, "{row:?}");
        }
    }

    #[test]
    fn the_database_and_memory_lines_come_after_scaling_and_lag() {
        let mut row = service(2.0, 2.0, 10.0, 0.3);
        row.db = Database {
            replica_lag_seconds: Some(45.0),
            connection_use: Some(0.85),
            primary: Some(true),
            down: Vec::new(),
            lag_derived: false,
        };
        row.memory_of_limit = Some(0.95);
        assert_eq!(verdict(&row), Verdict::ReplicaBehind { seconds: 45.0 });
        row.db.replica_lag_seconds = Some(29.0);
        assert_eq!(
            verdict(&row),
            Verdict::DatabaseConnectionsHigh { share: 0.85 }
        );
        row.db.connection_use = Some(0.5);
        assert_eq!(verdict(&row), Verdict::MemoryNearLimit { share: 0.95 });
        // Lag growing outranks all three.
        let row = with_lag(row, LagState::Growing, None);
        assert_eq!(verdict(&row), Verdict::LagGrowing);
    }

    #[test]
    fn missing_sources_say_what_is_unknown_and_stale_numbers_say_so() {
        let mut row = with_lag(service(2.0, 2.0, 10.0, 0.3), LagState::Growing, None);
        row.db.primary = Some(false);
        row.db.down = vec!["primary".into()];
        assert_eq!(verdict(&row), Verdict::DatabasePrimaryDown);
        // Promoted: a primary again, the old one down. Lag growing outranks a server down.
        row.db.primary = Some(true);
        assert_eq!(verdict(&row), Verdict::LagGrowing);
        row.kafka = None;
        assert_eq!(
            verdict(&row),
            Verdict::DatabaseServersDown {
                targets: vec!["primary".into()]
            }
        );
        row.kafka_unknown = true;
        assert_eq!(verdict(&row), Verdict::KafkaLagUnknown);
        row.kafka_unknown = false;
        row.db = Database::default();
        row.stale = true;
        assert_eq!(verdict(&row), Verdict::Stale(Box::new(Verdict::KeepingUp)));
        assert_eq!(verdict(&row).urgency(), Urgency::Unknown);
        // No servers watched: no primary to miss.
        assert_eq!(Database::worst(&[]).primary, None);
    }

    #[test]
    fn urgency_puts_what_scaling_cannot_fix_first() {
        assert_eq!(Verdict::ConsumersStalled.urgency(), Urgency::Act);
        assert_eq!(Verdict::LagGrowing.urgency(), Urgency::Watch);
        assert_eq!(Verdict::Draining { eta: None }.urgency(), Urgency::Fine);
        assert!(Urgency::Act > Urgency::Watch && Urgency::Watch > Urgency::Fine);
    }
}
