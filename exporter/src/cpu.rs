//! Workload CPU utilization as the Kubernetes HPA controller computes it.
//!
//! The controller (`replica_calculator.go`, `GetResourceUtilizationRatio`) sums per-pod usage
//! and per-pod requests in milli-cores over the pods it counts and divides the sums (a ratio
//! of sums, not a mean of ratios), truncating to an integer percent:
//! `utilization = (sum(usage_m) * 100) / sum(request_m)`. Both sources (Kubernetes and local
//! processes) feed this one function so the number means the same everywhere.

use crate::source::{Family, Labels, Sample};

/// How the HPA treats a pod in a cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PodState {
    /// Ready with a metric: its usage and request enter the ratio.
    Counted,
    /// Pending, or unready by the controller's readiness rules: left out.
    Unready,
    /// No usage metric yet: left out.
    MissingMetrics,
    /// Being deleted or failed: the controller skips it entirely.
    Excluded,
}

impl PodState {
    pub fn label(self) -> &'static str {
        match self {
            PodState::Counted => "counted",
            PodState::Unready => "unready",
            PodState::MissingMetrics => "missing_metrics",
            PodState::Excluded => "excluded",
        }
    }

    pub const ALL: [PodState; 4] = [
        PodState::Counted,
        PodState::Unready,
        PodState::MissingMetrics,
        PodState::Excluded,
    ];
}

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
    pub pods_by_state: [u32; 4],
    pub pods_without_request: u32,
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

pub static POD_CPU_USAGE: Family = Family::gauge(
    "surge_pod_cpu_usage_cores",
    Some("cores"),
    "CPU usage of the pod (sum over its containers), in cores.",
);
pub static POD_CPU_REQUEST: Family = Family::gauge(
    "surge_pod_cpu_request_cores",
    Some("cores"),
    "CPU request of the pod (sum over its containers), in cores. Absent if any container has no request.",
);
pub static POD_READY: Family = Family::gauge(
    "surge_pod_ready",
    None,
    "1 if the pod is ready (Kubernetes Ready condition, or the process is running), else 0.",
);
pub static WORKLOAD_UTILIZATION: Family = Family::gauge(
    "surge_workload_cpu_utilization_ratio",
    Some("ratio"),
    "CPU usage over CPU request of the workload as the HPA computes it: sum(usage)/sum(requests) over counted pods, truncated to whole percent.",
);
pub static WORKLOAD_PODS: Family = Family::gauge(
    "surge_workload_pods",
    None,
    "Pods of the workload by how the HPA treats them (counted, unready, missing_metrics, excluded).",
);
pub static WORKLOAD_PODS_WITHOUT_REQUEST: Family = Family::gauge(
    "surge_workload_pods_without_cpu_request",
    None,
    "Pods of the workload with a container lacking a CPU request; a real HPA cannot compute utilization while this is above 0.",
);

pub static CPU_FAMILIES: [&Family; 6] = [
    &POD_CPU_USAGE,
    &POD_CPU_REQUEST,
    &POD_READY,
    &WORKLOAD_UTILIZATION,
    &WORKLOAD_PODS,
    &WORKLOAD_PODS_WITHOUT_REQUEST,
];

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
            &POD_READY,
            labels(),
            f64::from(u8::from(pod.ready)),
        ));
        if let Some(usage) = pod.usage_cores {
            out.push(Sample::new(&POD_CPU_USAGE, labels(), usage));
        }
        if let Some(request) = pod.request_millis {
            out.push(Sample::new(
                &POD_CPU_REQUEST,
                labels(),
                request as f64 / 1000.0,
            ));
        }
    }
    let summary = workload_cpu(pods);
    if let Some(ratio) = summary.utilization_ratio {
        out.push(Sample::new(&WORKLOAD_UTILIZATION, base(), ratio));
    }
    for (state, count) in PodState::ALL.iter().zip(summary.pods_by_state) {
        let mut l = base();
        l.push(("state", state.label().to_string()));
        out.push(Sample::new(&WORKLOAD_PODS, l, f64::from(count)));
    }
    out.push(Sample::new(
        &WORKLOAD_PODS_WITHOUT_REQUEST,
        base(),
        f64::from(summary.pods_without_request),
    ));
    out
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
                .all(|s| s.family.name != WORKLOAD_UTILIZATION.name)
        );
    }
}
