//! HPAs, pods' CPU and memory from kube-state-metrics and cAdvisor (the kubelet's
//! `/metrics/cadvisor`), in Surge's `surge_hpa_*`, `surge_pod_*` and `surge_workload_*`
//! shapes. Names and labels from kube-state-metrics v2 (`internal/store/
//! horizontalpodautoscaler.go`, `pod.go`, `replicaset.go`) and the kubelet's cAdvisor labels
//! (`namespace`, `pod`, `container`; the pod-level cgroup has `container=""`).
//!
//! A workload is a Deployment (pod → ReplicaSet → Deployment through `kube_pod_owner` and
//! `kube_replicaset_owner`) or a StatefulSet, and only one an HPA scales is a service: a
//! cluster's other workloads are not the panel's business. Pods count while Pending or
//! Running (an evicted pod's series linger).

use surge_metrics::catalogue::{hpa, workload};

use super::Recipe;
use super::promql::{Selector, copy_label, max_by, set_label, sum_by};

pub const CPU_RULE: &str = "cpu-from-cadvisor";

/// The rate window over cAdvisor's CPU counter: four samples at the kubelet's usual 30 s.
const CPU_WINDOW: &str = "2m";

const HPA_KEY: [&str; 3] = ["namespace", "hpa", "workload"];
const POD_KEY: [&str; 3] = ["namespace", "workload", "pod"];
const WORKLOAD_KEY: [&str; 2] = ["namespace", "workload"];

struct Kube<'a> {
    sel: &'a Selector,
}

impl Kube<'_> {
    /// (namespace, hpa, workload) = 1 for every HPA scaling a Deployment or StatefulSet.
    fn hpas(&self) -> String {
        let info = self.sel.series(
            "kube_horizontalpodautoscaler_info",
            r#"scaletargetref_kind=~"Deployment|StatefulSet""#,
        );
        max_by(
            &HPA_KEY,
            &copy_label(
                &copy_label(&info, "workload", "scaletargetref_name"),
                "hpa",
                "horizontalpodautoscaler",
            ),
        )
    }

    /// An HPA series of kube-state-metrics with its workload.
    fn hpa(&self, metric: &str, matchers: &str) -> String {
        let series = copy_label(
            &self.sel.series(metric, matchers),
            "hpa",
            "horizontalpodautoscaler",
        );
        max_by(
            &HPA_KEY,
            &format!(
                "{series} * on (namespace, hpa) group_left (workload) {}",
                self.hpas()
            ),
        )
    }

    /// (namespace, pod, workload) = 1 for every live pod of a workload an HPA scales.
    fn pods(&self) -> String {
        let via_replicaset = format!(
            "{} * on (namespace, replicaset) group_left (workload) {}",
            copy_label(
                &self
                    .sel
                    .series("kube_pod_owner", r#"owner_kind="ReplicaSet""#),
                "replicaset",
                "owner_name"
            ),
            max_by(
                &["namespace", "replicaset", "workload"],
                &copy_label(
                    &self
                        .sel
                        .series("kube_replicaset_owner", r#"owner_kind="Deployment""#),
                    "workload",
                    "owner_name"
                )
            )
        );
        let stateful = copy_label(
            &self
                .sel
                .series("kube_pod_owner", r#"owner_kind="StatefulSet""#),
            "workload",
            "owner_name",
        );
        let live = self
            .sel
            .series("kube_pod_status_phase", r#"phase=~"Pending|Running""#);
        format!(
            "({}) and on (namespace, pod) ({live} == 1) and on (namespace, workload) {}",
            max_by(
                &["namespace", "pod", "workload"],
                &format!("{via_replicaset} or {stateful}")
            ),
            self.hpas()
        )
    }

    /// Per pod: the sum over its containers of a cAdvisor series (pod cgroups and pause
    /// containers left out: adding them would count everything twice).
    fn cadvisor(&self, expr_of: impl Fn(&str) -> String, metric: &str) -> String {
        let containers = self.sel.series(metric, r#"container!="",container!="POD""#);
        sum_by(&["namespace", "pod"], &expr_of(&containers))
    }

    fn cpu_usage(&self) -> String {
        self.cadvisor(
            |s| format!("rate({s}[{CPU_WINDOW}])"),
            "container_cpu_usage_seconds_total",
        )
    }

    fn memory(&self) -> String {
        self.cadvisor(|s| s.to_string(), "container_memory_working_set_bytes")
    }

    /// Per pod: the sum of its containers' requests (or limits) of `resource`.
    fn resources(&self, metric: &str, resource: &str) -> String {
        sum_by(
            &["namespace", "pod"],
            &self.sel.series(metric, &format!("resource=\"{resource}\"")),
        )
    }

    fn ready(&self) -> String {
        max_by(
            &["namespace", "pod"],
            &self
                .sel
                .series("kube_pod_status_ready", r#"condition="true""#),
        )
    }

    /// A per-pod value with the pod's workload, for its pods only.
    fn per_pod(&self, value: &str, pods: &str) -> String {
        max_by(
            &POD_KEY,
            &format!("{value} * on (namespace, pod) group_left (workload) ({pods})"),
        )
    }

    /// Pods counted in a ratio: live, with both the numerator and denominator series.
    fn counted(&self, with: &[&str]) -> String {
        let mut out = format!("({})", self.pods());
        for series in with {
            out = format!("{out} and on (namespace, pod) ({series})");
        }
        out
    }

    /// sum(usage) / sum(request) over the same pods, per workload.
    fn ratio(&self, usage: &str, request: &str, pods: &str) -> String {
        let sum = |v: &str| {
            sum_by(
                &WORKLOAD_KEY,
                &format!("{v} * on (namespace, pod) group_left (workload) ({pods})"),
            )
        };
        format!("{} / {}", sum(usage), sum(request))
    }
}

pub fn recipes(sel: &Selector) -> Vec<Recipe> {
    let k = Kube { sel };
    let hpa_metric = |name: &str| format!("kube_horizontalpodautoscaler_{name}");
    let cpu_target = r#"metric_name="cpu",metric_target_type="utilization",container="""#;
    let (usage, memory) = (k.cpu_usage(), k.memory());
    let requests = "kube_pod_container_resource_requests";
    let limits = "kube_pod_container_resource_limits";
    let (cpu_request, memory_request) = (
        k.resources(requests, "cpu"),
        k.resources(requests, "memory"),
    );
    let ready = k.ready();
    let pods = k.pods();
    let cpu_counted = k.counted(&[&usage, &cpu_request, &format!("{ready} == 1")]);
    let memory_counted = k.counted(&[&memory, &memory_request]);
    let count_pods = |state: &str, pods: &str| {
        set_label(
            &format!("count by (namespace, workload) ({pods})"),
            "state",
            state,
        )
    };
    vec![
        Recipe::plain(
            &hpa::CURRENT,
            k.hpa(&hpa_metric("status_current_replicas"), ""),
        ),
        Recipe::plain(
            &hpa::DESIRED,
            k.hpa(&hpa_metric("status_desired_replicas"), ""),
        ),
        Recipe::plain(&hpa::MIN, k.hpa(&hpa_metric("spec_min_replicas"), "")),
        Recipe::plain(&hpa::MAX, k.hpa(&hpa_metric("spec_max_replicas"), "")),
        Recipe::plain(
            &hpa::TARGET_CPU,
            format!(
                "{} / 100",
                k.hpa(&hpa_metric("spec_target_metric"), cpu_target)
            ),
        ),
        Recipe::plain(
            &hpa::OBSERVED_CPU,
            format!(
                "{} / 100",
                k.hpa(&hpa_metric("status_target_metric"), cpu_target)
            ),
        ),
        Recipe::plain(
            &hpa::SCALING_LIMITED,
            k.hpa(
                &hpa_metric("status_condition"),
                r#"condition="ScalingLimited",status="true""#,
            ),
        ),
        Recipe::plain(
            &hpa::ABLE_TO_SCALE,
            k.hpa(
                &hpa_metric("status_condition"),
                r#"condition="AbleToScale",status="true""#,
            ),
        ),
        Recipe::plain(&workload::POD_CPU_USAGE, k.per_pod(&usage, &pods)),
        Recipe::plain(&workload::POD_CPU_REQUEST, k.per_pod(&cpu_request, &pods)),
        Recipe::plain(&workload::POD_READY, k.per_pod(&ready, &pods)),
        Recipe::plain(&workload::POD_MEMORY_WORKING_SET, k.per_pod(&memory, &pods)),
        Recipe::plain(
            &workload::POD_MEMORY_REQUEST,
            k.per_pod(&memory_request, &pods),
        ),
        Recipe::plain(
            &workload::POD_MEMORY_LIMIT,
            k.per_pod(&k.resources(limits, "memory"), &pods),
        ),
        Recipe::derived(
            &workload::CPU_UTILIZATION,
            CPU_RULE,
            k.ratio(&usage, &cpu_request, &cpu_counted),
        ),
        Recipe::plain(
            &workload::MEMORY_UTILIZATION,
            format!(
                "floor(100 * ({})) / 100",
                k.ratio(&memory, &memory_request, &memory_counted)
            ),
        ),
        Recipe::plain(
            &workload::PODS,
            format!(
                "{} or {} or {}",
                count_pods("counted", &cpu_counted),
                count_pods(
                    "unready",
                    &format!("({pods}) and on (namespace, pod) ({ready} == 0)")
                ),
                count_pods(
                    "missing_metrics",
                    &format!(
                        "({pods}) and on (namespace, pod) ({ready} == 1) unless on (namespace, pod) ({usage})"
                    )
                ),
            ),
        ),
    ]
}
