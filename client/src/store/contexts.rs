//! One line per context for the all-contexts view: is each cluster keeping up, at a glance,
//! side by side (during a regional failover, both regions on one screen). Pure: a store and
//! the time in, numbers out.

use surge_metrics::state::LagState;

use super::Store;
use crate::model::AlertState;

/// One service of a context, as the all-contexts view lists it under its context.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServiceLine {
    pub namespace: String,
    pub workload: String,
    pub replicas: Option<f64>,
    pub max: Option<f64>,
    /// CPU against the HPA target (1.0 = at target).
    pub cpu_of_target: Option<f64>,
    pub lag: Option<f64>,
    pub lag_state: Option<LagState>,
    /// Firing alerts about this service (its workload label).
    pub firing: usize,
}

/// What one context's store says, summed up, and its services.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContextSummary {
    /// Sources answering, and configured (heard from at least once).
    pub sources_ok: usize,
    pub sources: usize,
    pub services: usize,
    /// Services whose HPA is at its maximum.
    pub at_max: usize,
    /// The highest CPU against its HPA target among services (1.0 = at target).
    pub worst_cpu_of_target: Option<f64>,
    /// Consumer lag summed over every group and topic.
    pub lag: Option<f64>,
    /// Groups whose lag is growing or stalled.
    pub lag_trouble: usize,
    /// Firing alerts, not silenced; those of page severity among them.
    pub firing: usize,
    pub paging: usize,
    /// Replicas over every service.
    pub replicas: Option<f64>,
    pub service_lines: Vec<ServiceLine>,
}

impl ContextSummary {
    pub fn of(store: &Store, now: f64) -> ContextSummary {
        let sources = store.sources(now);
        let services = &store.derived.services;
        let lags: Vec<f64> = store.derived.groups.iter().filter_map(|g| g.lag).collect();
        let firing: Vec<_> = store
            .derived
            .alerts
            .iter()
            .filter(|a| a.state == AlertState::Firing && !a.muted && a.name != super::WATCHDOG)
            .collect();
        ContextSummary {
            sources_ok: sources
                .iter()
                .filter(|s| !s.stale && s.health.error.is_none())
                .count(),
            sources: sources.len(),
            services: services.len(),
            at_max: services
                .iter()
                .filter(|s| matches!((s.current, s.max), (Some(c), Some(m)) if c >= m))
                .count(),
            worst_cpu_of_target: services
                .iter()
                .filter_map(|s| Some(s.cpu? / s.target.filter(|t| *t > 0.0)?))
                .reduce(f64::max),
            lag: (!lags.is_empty()).then(|| lags.iter().sum()),
            lag_trouble: store
                .derived
                .groups
                .iter()
                .filter(|g| matches!(g.state, Some(LagState::Growing | LagState::Stalled)))
                .count(),
            firing: firing.len(),
            paging: firing
                .iter()
                .filter(|a| matches!(a.severity.as_str(), "page" | "critical"))
                .count(),
            replicas: services
                .iter()
                .filter_map(|s| s.current)
                .reduce(|a, b| a + b),
            service_lines: services
                .iter()
                .map(|s| ServiceLine {
                    namespace: s.namespace.clone(),
                    workload: s.workload.clone(),
                    replicas: s.current,
                    max: s.max,
                    cpu_of_target: s.cpu.zip(s.target.filter(|t| *t > 0.0)).map(|(c, t)| c / t),
                    lag: s.kafka.as_ref().and_then(|k| k.lag),
                    lag_state: s.kafka.as_ref().and_then(|k| k.state),
                    firing: firing
                        .iter()
                        .filter(|a| a.labels.get("workload") == Some(&s.workload))
                        .count(),
                })
                .collect(),
        }
    }
}
