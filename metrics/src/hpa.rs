//! Workload CPU and memory utilization as the Kubernetes HPA controller computes them, and the
//! series an HPA is exported as.
//!
//! The controller (`replica_calculator.go`, `GetResourceUtilizationRatio`) sums per-pod usage
//! and per-pod requests over the pods it counts and divides the sums (a ratio of sums, not a
//! mean of ratios), truncating to an integer percent: `(sum(usage) * 100) / sum(request)`.
//! Which pods count differs: for CPU the readiness rules apply ([`PodState`]); for memory
//! every running pod with a metric counts. Every source and the local autoscaler feed these
//! functions, so the numbers mean the same everywhere.

use crate::catalogue::{hpa, workload};
use crate::family::{Labels, Sample};
use crate::state::{MetricType, PodState, TargetType};

/// One pod's inputs to the utilizations.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PodResources {
    pub pod: String,
    /// How the HPA treats the pod for CPU.
    pub state: PodState,
    /// Ready as the platform reports it (Kubernetes Ready condition; process alive).
    pub ready: bool,
    /// CPU usage in cores (for display), if a metric exists.
    pub usage_cores: Option<f64>,
    /// CPU usage in milli-cores rounded up per container, as the HPA reads it.
    pub usage_millis: Option<i64>,
    /// CPU request of the whole pod in milli-cores; `None` if any container lacks one.
    pub request_millis: Option<i64>,
    /// Memory working set in bytes, if a metric exists.
    pub memory_bytes: Option<i64>,
    /// Memory request and limit of the whole pod in bytes; `None` if any container lacks one.
    pub memory_request_bytes: Option<i64>,
    pub memory_limit_bytes: Option<i64>,
    /// Running (not pending, failed or being deleted): counted for memory when it has a metric.
    pub running: bool,
}

/// What one replica asks for, as its Deployment says (the local stack's processes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Resources {
    pub cpu_request_millis: i64,
    pub memory_request_bytes: Option<i64>,
    pub memory_limit_bytes: Option<i64>,
}

/// `sum(usage)` and `sum(request)` over the pairs given.
fn sums(pairs: impl Iterator<Item = (i64, i64)>) -> (i128, i128) {
    pairs.fold((0i128, 0i128), |(u, r), (usage, request)| {
        (u + i128::from(usage), r + i128::from(request))
    })
}

/// `(sum(usage) * 100) / sum(request)` as a ratio truncated to whole percent, exactly as the
/// controller's integer arithmetic; `None` without a request to divide by.
fn whole_percent((usage, request): (i128, i128)) -> Option<f64> {
    (request > 0).then(|| ((usage * 100) / request) as f64 / 100.0)
}

/// `sum(usage) / sum(request)` unrounded; `None` without a request to divide by.
fn exact_ratio((usage, request): (i128, i128)) -> Option<f64> {
    (request > 0).then(|| usage as f64 / request as f64)
}

/// The HPA's memory utilization over `pods`: running pods with a metric and a request.
pub fn workload_memory(pods: &[PodResources]) -> Option<f64> {
    whole_percent(sums(
        pods.iter()
            .filter(|p| p.running)
            .filter_map(|p| p.memory_bytes.zip(p.memory_request_bytes)),
    ))
}

/// Result for one workload.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct WorkloadCpu {
    /// `sum(usage) / sum(requests)` over the counted pods, unrounded: what is exported and
    /// alerted on ("above 85%" means above 0.85, so 85.4% is above). `None` when no counted
    /// pod has a request (the HPA would have nothing to divide).
    pub utilization_ratio: Option<f64>,
    /// The same truncated to whole percent, as the controller decides on it.
    pub hpa_utilization_ratio: Option<f64>,
    /// Pods per state, in [`PodState::ALL`] order.
    pub pods_by_state: [u32; 4],
    pub pods_without_request: u32,
}

impl WorkloadCpu {
    /// Pods the ratio was computed over.
    pub fn counted(&self) -> u32 {
        self.pods_by_state[0]
    }
}

/// The HPA's CPU ratio over `pods`.
pub fn workload_cpu(pods: &[PodResources]) -> WorkloadCpu {
    let mut out = WorkloadCpu::default();
    for pod in pods {
        let index = PodState::ALL
            .iter()
            .position(|s| *s == pod.state)
            .unwrap_or(0);
        out.pods_by_state[index] += 1;
        if pod.state != PodState::Excluded && pod.request_millis.is_none() {
            out.pods_without_request += 1;
        }
    }
    let totals = sums(
        pods.iter()
            .filter(|p| p.state == PodState::Counted)
            .filter_map(|p| p.usage_millis.zip(p.request_millis)),
    );
    out.utilization_ratio = exact_ratio(totals);
    out.hpa_utilization_ratio = whole_percent(totals);
    out
}

/// The pod and workload series of one workload.
pub fn workload_samples(namespace: &str, workload: &str, pods: &[PodResources]) -> Vec<Sample> {
    let mut out = Vec::with_capacity(pods.len() * 6 + 7);
    let base = || -> Labels {
        vec![
            ("namespace", namespace.to_string()),
            ("workload", workload.to_string()),
        ]
    };
    for pod in pods {
        let labels = || {
            let mut l = base();
            l.push(("pod", pod.pod.clone()));
            l
        };
        out.push(Sample::new(
            &workload::POD_READY,
            labels(),
            f64::from(u8::from(pod.ready)),
        ));
        if let Some(usage) = pod.usage_cores {
            out.push(Sample::new(&workload::POD_CPU_USAGE, labels(), usage));
        }
        if let Some(request) = pod.request_millis {
            out.push(Sample::new(
                &workload::POD_CPU_REQUEST,
                labels(),
                request as f64 / 1000.0,
            ));
        }
        for (family, bytes) in [
            (&workload::POD_MEMORY_WORKING_SET, pod.memory_bytes),
            (&workload::POD_MEMORY_REQUEST, pod.memory_request_bytes),
            (&workload::POD_MEMORY_LIMIT, pod.memory_limit_bytes),
        ] {
            if let Some(bytes) = bytes {
                out.push(Sample::new(family, labels(), bytes as f64));
            }
        }
    }
    let summary = workload_cpu(pods);
    if let Some(ratio) = summary.utilization_ratio {
        out.push(Sample::new(&workload::CPU_UTILIZATION, base(), ratio));
    }
    if let Some(ratio) = workload_memory(pods) {
        out.push(Sample::new(&workload::MEMORY_UTILIZATION, base(), ratio));
    }
    for (state, count) in PodState::ALL.iter().zip(summary.pods_by_state) {
        let mut l = base();
        l.push(("state", state.label().to_string()));
        out.push(Sample::new(&workload::PODS, l, f64::from(count)));
    }
    out.push(Sample::new(
        &workload::PODS_WITHOUT_CPU_REQUEST,
        base(),
        f64::from(summary.pods_without_request),
    ));
    out
}

/// The controller's tolerance: no change while a metric is within 10% of its target.
pub const TOLERANCE: f64 = 0.1;

/// The replicas one metric asks for at `replicas`: `ceil(replicas × current / target)`, or
/// `replicas` while the ratio is within the tolerance. For an AverageValue target `current` is
/// the per-replica average, so this is `ceil(total / target)` as the controller computes it.
pub fn replicas_for(replicas: i32, current: f64, target: f64) -> i32 {
    if replicas <= 0 || target <= 0.0 {
        return replicas;
    }
    let ratio = current / target;
    if (ratio - 1.0).abs() <= TOLERANCE {
        replicas
    } else {
        (ratio * f64::from(replicas)).ceil() as i32
    }
}

/// The controller's answer over several metrics: the largest proposal. With some metric
/// unavailable (`None`) it still scales up on the others but never down, since the missing
/// one might disagree; with none available there is no answer. `None` means "hold".
pub fn combine(current: i32, proposals: &[Option<i32>]) -> Option<i32> {
    let largest = proposals.iter().flatten().copied().max()?;
    let some_missing = proposals.iter().any(Option::is_none);
    if some_missing && largest < current {
        return None;
    }
    Some(largest)
}

/// One metric of an HPA: what it measures, its target, and what was last seen.
#[derive(Debug, Clone, PartialEq)]
pub struct HpaMetric {
    pub metric_type: MetricType,
    /// `cpu`, or an external metric's name with its selector, e.g.
    /// `surge_kafka_group_topic_lag{group="payment",topic="order-placed"}`.
    pub metric_name: String,
    pub target_type: TargetType,
    /// A ratio for Utilization, the metric's unit otherwise.
    pub target: f64,
    pub current: Option<f64>,
}

impl HpaMetric {
    /// What this metric alone asks for at `replicas` (`None` without a current value).
    pub fn proposal(&self, replicas: i32) -> Option<i32> {
        self.current.map(|c| replicas_for(replicas, c, self.target))
    }
}

/// A metric's name as the labels show it: the name, with its selector's labels in order.
pub fn metric_label(name: &str, selector: &std::collections::BTreeMap<String, String>) -> String {
    if selector.is_empty() {
        return name.to_string();
    }
    let matchers: Vec<String> = selector
        .iter()
        .map(|(k, v)| format!("{k}=\"{v}\""))
        .collect();
    format!("{name}{{{}}}", matchers.join(","))
}

/// What one HPA says about itself: spec bounds, status, targets and conditions.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HpaStatus {
    pub namespace: String,
    pub hpa: String,
    /// The scale target's name.
    pub workload: String,
    pub min: i32,
    pub max: i32,
    /// `None` before the controller wrote a status.
    pub current: Option<i32>,
    pub desired: Option<i32>,
    /// CPU target as a ratio of requests, when the HPA has a CPU Utilization metric.
    pub target_cpu: Option<f64>,
    /// Utilization the controller last observed.
    pub observed_cpu: Option<f64>,
    pub scaling_limited: bool,
    pub able_to_scale: bool,
    /// Every metric of the spec, with what the status says of it.
    pub metrics: Vec<HpaMetric>,
}

impl HpaStatus {
    /// The index of the metric the HPA follows: the largest proposal, the first of equals.
    pub fn deciding_metric(&self) -> Option<usize> {
        let replicas = self.current?;
        let mut best: Option<(usize, i32)> = None;
        for (i, m) in self.metrics.iter().enumerate() {
            if let Some(p) = m.proposal(replicas)
                && best.is_none_or(|(_, b)| p > b)
            {
                best = Some((i, p));
            }
        }
        best.map(|(i, _)| i)
    }

    /// The `surge_hpa_*` series of this HPA.
    pub fn samples(&self, out: &mut Vec<Sample>) {
        let labels = || -> Labels {
            vec![
                ("namespace", self.namespace.clone()),
                ("hpa", self.hpa.clone()),
                ("workload", self.workload.clone()),
            ]
        };
        let flag = |b: bool| f64::from(u8::from(b));
        out.push(Sample::new(&hpa::MIN, labels(), f64::from(self.min)));
        out.push(Sample::new(&hpa::MAX, labels(), f64::from(self.max)));
        if let Some(current) = self.current {
            out.push(Sample::new(&hpa::CURRENT, labels(), f64::from(current)));
        }
        if let Some(desired) = self.desired {
            out.push(Sample::new(&hpa::DESIRED, labels(), f64::from(desired)));
        }
        if let Some(target) = self.target_cpu {
            out.push(Sample::new(&hpa::TARGET_CPU, labels(), target));
        }
        if let Some(observed) = self.observed_cpu {
            out.push(Sample::new(&hpa::OBSERVED_CPU, labels(), observed));
        }
        out.push(Sample::new(
            &hpa::SCALING_LIMITED,
            labels(),
            flag(self.scaling_limited),
        ));
        out.push(Sample::new(
            &hpa::ABLE_TO_SCALE,
            labels(),
            flag(self.able_to_scale),
        ));
        let deciding = self.deciding_metric();
        for (i, m) in self.metrics.iter().enumerate() {
            let metric = || {
                let mut l = labels();
                l.push(("metric_type", m.metric_type.label().to_string()));
                l.push(("metric_name", m.metric_name.clone()));
                l
            };
            let typed = || {
                let mut l = metric();
                l.push(("target_type", m.target_type.label().to_string()));
                l
            };
            out.push(Sample::new(&hpa::METRIC_TARGET, typed(), m.target));
            if let Some(current) = m.current {
                out.push(Sample::new(&hpa::METRIC_CURRENT, typed(), current));
            }
            if let Some(proposal) = self.current.and_then(|r| m.proposal(r)) {
                out.push(Sample::new(
                    &hpa::METRIC_PROPOSED,
                    metric(),
                    f64::from(proposal),
                ));
            }
            out.push(Sample::new(
                &hpa::METRIC_DECIDING,
                metric(),
                flag(deciding == Some(i)),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(state: PodState, usage: Option<i64>, request: Option<i64>) -> PodResources {
        PodResources {
            pod: "p".into(),
            state,
            ready: state == PodState::Counted,
            usage_cores: usage.map(|u| u as f64 / 1000.0),
            usage_millis: usage,
            request_millis: request,
            running: state != PodState::Excluded,
            ..PodResources::default()
        }
    }

    #[test]
    fn proposals_follow_the_controller() {
        // Within 10%: no change; beyond: ceil(replicas × ratio).
        assert_eq!(replicas_for(4, 0.75, 0.7), 4);
        assert_eq!(replicas_for(4, 0.9, 0.7), 6);
        assert_eq!(replicas_for(4, 0.3, 0.7), 2);
        // AverageValue: 2 replicas averaging 4,200 lagging messages against 1,000 each.
        assert_eq!(replicas_for(2, 4200.0, 1000.0), 9);
        // Both above target: the larger wins; one unavailable: up yes, down no; none: hold.
        assert_eq!(combine(4, &[Some(6), Some(9)]), Some(9));
        assert_eq!(combine(4, &[None, Some(9)]), Some(9));
        assert_eq!(combine(4, &[None, Some(2)]), None);
        assert_eq!(combine(4, &[None, Some(4)]), Some(4));
        assert_eq!(combine(4, &[None, None]), None);
        // Scale-down blocked by the other metric: CPU says 2, lag says 5.
        assert_eq!(combine(4, &[Some(2), Some(5)]), Some(5));
    }

    #[test]
    fn every_metric_gets_its_series_and_the_largest_proposal_decides() {
        let status = HpaStatus {
            namespace: "shop".into(),
            hpa: "payment".into(),
            workload: "payment".into(),
            min: 2,
            max: 10,
            current: Some(2),
            desired: Some(9),
            metrics: vec![
                HpaMetric {
                    metric_type: MetricType::Resource,
                    metric_name: "cpu".into(),
                    target_type: TargetType::Utilization,
                    target: 0.7,
                    current: Some(0.35),
                },
                HpaMetric {
                    metric_type: MetricType::External,
                    metric_name: metric_label(
                        "surge_kafka_group_topic_lag",
                        &[("group".to_string(), "payment".to_string())].into(),
                    ),
                    target_type: TargetType::AverageValue,
                    target: 1000.0,
                    current: Some(4200.0),
                },
            ],
            ..HpaStatus::default()
        };
        let mut out = Vec::new();
        status.samples(&mut out);
        let value = |family: &str, name: &str| {
            out.iter()
                .find(|s| s.family.name == family && s.label("metric_name") == Some(name))
                .map(|s| s.value)
        };
        let lag = r#"surge_kafka_group_topic_lag{group="payment"}"#;
        assert_eq!(
            value("surge_hpa_metric_proposed_replicas", "cpu"),
            Some(1.0)
        );
        assert_eq!(value("surge_hpa_metric_proposed_replicas", lag), Some(9.0));
        assert_eq!(value("surge_hpa_metric_deciding", lag), Some(1.0));
        assert_eq!(value("surge_hpa_metric_deciding", "cpu"), Some(0.0));
        assert_eq!(value("surge_hpa_metric_current", lag), Some(4200.0));
        assert_eq!(value("surge_hpa_metric_target", "cpu"), Some(0.7));
    }

    #[test]
    fn memory_counts_every_running_pod_with_a_metric_and_a_request() {
        const MI: i64 = 1 << 20;
        let mem = |running: bool, state: PodState, usage: Option<i64>, request: Option<i64>| {
            PodResources {
                running,
                state,
                memory_bytes: usage,
                memory_request_bytes: request,
                ..PodResources::default()
            }
        };
        let pods = [
            // Unready for CPU, but running with a metric: memory counts it.
            mem(true, PodState::Unready, Some(200 * MI), Some(256 * MI)),
            mem(true, PodState::Counted, Some(100 * MI), Some(256 * MI)),
            mem(false, PodState::Unready, Some(250 * MI), Some(256 * MI)),
            mem(true, PodState::MissingMetrics, None, Some(256 * MI)),
            mem(true, PodState::Counted, Some(500 * MI), None),
        ];
        // (200 + 100) / (256 + 256) = 58.59% -> 58%.
        assert_eq!(workload_memory(&pods), Some(0.58));
        assert_eq!(workload_memory(&pods[2..4]), None);
        let samples = workload_samples("ns", "w", &pods[..1]);
        let value = |name: &str| {
            samples
                .iter()
                .find(|s| s.family.name == name)
                .map(|s| s.value)
        };
        assert_eq!(
            value("surge_pod_memory_working_set_bytes"),
            Some((200 * MI) as f64)
        );
        assert_eq!(
            value("surge_pod_memory_limit_bytes"),
            None,
            "no limit, no series"
        );
        assert_eq!(value("surge_workload_memory_utilization_ratio"), Some(0.78));
    }

    #[test]
    fn ratio_of_sums_not_mean_of_ratios() {
        // Mean of ratios would be (0.9 + 0.1) / 2 = 0.5; the HPA's ratio of sums is 1000/2000.
        let pods = [
            pod(PodState::Counted, Some(900), Some(1000)),
            pod(PodState::Counted, Some(100), Some(1000)),
            pod(PodState::Counted, Some(0), Some(0)),
        ];
        assert_eq!(workload_cpu(&pods).utilization_ratio, Some(0.5));
        let pods = [
            pod(PodState::Counted, Some(450), Some(500)),
            pod(PodState::Counted, Some(50), Some(100)),
        ];
        // (450 + 50) / 600 = 0.8333; the controller's integer percent: 83.
        let w = workload_cpu(&pods);
        assert_eq!(w.utilization_ratio, Some(500.0 / 600.0));
        assert_eq!(w.hpa_utilization_ratio, Some(0.83));
    }

    #[test]
    fn above_85_percent_is_above_0_85_unrounded() {
        // 854m and 856m of 1,000m: both above the 85% line as exported, though the
        // controller's whole percent is 85 for both; 850m is not above it.
        for (usage, exported, hpa) in [(854, 0.854, 0.85), (856, 0.856, 0.85), (850, 0.85, 0.85)] {
            let pods = [pod(PodState::Counted, Some(usage), Some(1000))];
            let w = workload_cpu(&pods);
            assert_eq!(w.utilization_ratio, Some(exported), "{usage}m");
            assert_eq!(w.hpa_utilization_ratio, Some(hpa), "{usage}m");
            let samples = workload_samples("ns", "w", &pods);
            let value = samples
                .iter()
                .find(|s| s.family.name == workload::CPU_UTILIZATION.name)
                .map(|s| s.value);
            assert_eq!(value, Some(exported), "{usage}m");
        }
    }

    #[test]
    fn uncounted_pods_do_not_enter_the_ratio_but_are_reported() {
        let pods = [
            pod(PodState::Counted, Some(400), Some(500)),
            pod(PodState::Unready, Some(10), Some(500)),
            pod(PodState::MissingMetrics, None, Some(500)),
            pod(PodState::Counted, Some(300), None),
            pod(PodState::Excluded, Some(500), None),
        ];
        let w = workload_cpu(&pods);
        assert_eq!(w.utilization_ratio, Some(0.8));
        assert_eq!(w.pods_by_state, [2, 1, 1, 1]);
        assert_eq!(w.counted(), 2);
        assert_eq!(w.pods_without_request, 1);
    }

    #[test]
    fn no_requests_means_no_ratio_rather_than_zero() {
        let pods = [pod(PodState::Counted, Some(400), None)];
        assert_eq!(workload_cpu(&pods).utilization_ratio, None);
        let samples = workload_samples("ns", "w", &pods);
        assert!(
            samples
                .iter()
                .all(|s| s.family.name != workload::CPU_UTILIZATION.name)
        );
    }

    #[test]
    fn an_hpa_without_status_has_bounds_and_conditions_only() {
        let mut out = Vec::new();
        HpaStatus {
            namespace: "shop".into(),
            hpa: "payment".into(),
            workload: "payment".into(),
            min: 2,
            max: 10,
            target_cpu: Some(0.7),
            ..HpaStatus::default()
        }
        .samples(&mut out);
        let names: Vec<&str> = out.iter().map(|s| s.family.name).collect();
        assert_eq!(
            names,
            [
                "surge_hpa_min_replicas",
                "surge_hpa_max_replicas",
                "surge_hpa_target_cpu_utilization_ratio",
                "surge_hpa_scaling_limited",
                "surge_hpa_able_to_scale"
            ]
        );
    }
}
