//! Workload CPU utilization as the Kubernetes HPA controller computes it, and the series an
//! HPA is exported as.
//!
//! The controller (`replica_calculator.go`, `GetResourceUtilizationRatio`) sums per-pod usage
//! and per-pod requests in milli-cores over the pods it counts and divides the sums (a ratio
//! of sums, not a mean of ratios), truncating to an integer percent:
//! `utilization = (sum(usage_m) * 100) / sum(request_m)`. Every CPU source and the local
//! autoscaler feed this one function so the number means the same everywhere.

use crate::catalogue::{hpa, workload};
use crate::family::{Labels, Sample};
use crate::state::PodState;

/// One pod's inputs to the utilization.
#[derive(Debug, Clone, PartialEq)]
pub struct PodCpu {
    pub pod: String,
    pub state: PodState,
    /// Ready as the platform reports it (Kubernetes Ready condition; process alive).
    pub ready: bool,
    /// Usage in cores (for display), if a metric exists.
    pub usage_cores: Option<f64>,
    /// Usage in milli-cores rounded up per container, as the HPA reads it.
    pub usage_millis: Option<i64>,
    /// CPU request of the whole pod in milli-cores; `None` if any container lacks one.
    pub request_millis: Option<i64>,
}

/// Result for one workload.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct WorkloadCpu {
    /// `None` when no counted pod has a request (the HPA would have nothing to divide).
    pub utilization_ratio: Option<f64>,
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

/// The HPA's ratio over `pods`.
pub fn workload_cpu(pods: &[PodCpu]) -> WorkloadCpu {
    let mut out = WorkloadCpu::default();
    let (mut usage_total, mut request_total) = (0i128, 0i128);
    for pod in pods {
        let index = PodState::ALL
            .iter()
            .position(|s| *s == pod.state)
            .unwrap_or(0);
        out.pods_by_state[index] += 1;
        if pod.state != PodState::Excluded && pod.request_millis.is_none() {
            out.pods_without_request += 1;
        }
        if pod.state == PodState::Counted
            && let (Some(usage), Some(request)) = (pod.usage_millis, pod.request_millis)
        {
            usage_total += i128::from(usage);
            request_total += i128::from(request);
        }
    }
    if request_total > 0 {
        // Integer percent, truncated, exactly as the controller's int32 arithmetic.
        let percent = (usage_total * 100) / request_total;
        out.utilization_ratio = Some(percent as f64 / 100.0);
    }
    out
}

/// The pod and workload series of one workload.
pub fn workload_samples(namespace: &str, workload: &str, pods: &[PodCpu]) -> Vec<Sample> {
    let mut out = Vec::with_capacity(pods.len() * 3 + 6);
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
    }
    let summary = workload_cpu(pods);
    if let Some(ratio) = summary.utilization_ratio {
        out.push(Sample::new(&workload::CPU_UTILIZATION, base(), ratio));
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

/// What one HPA says about itself: spec bounds, status, CPU target and conditions.
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
}

impl HpaStatus {
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(state: PodState, usage: Option<i64>, request: Option<i64>) -> PodCpu {
        PodCpu {
            pod: "p".into(),
            state,
            ready: state == PodState::Counted,
            usage_cores: usage.map(|u| u as f64 / 1000.0),
            usage_millis: usage,
            request_millis: request,
        }
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
        // (450 + 50) * 100 / 600 = 83.33 -> 83 %.
        assert_eq!(workload_cpu(&pods).utilization_ratio, Some(0.83));
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
