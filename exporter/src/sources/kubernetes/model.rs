//! Pure part of the Kubernetes source: objects from the watch caches plus PodMetrics in,
//! samples out. No I/O here, so the HPA rules are tested on fixtures directly.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::autoscaling::v2::{
    HorizontalPodAutoscaler, MetricIdentifier, MetricSpec, MetricStatus, MetricTarget,
    MetricValueStatus,
};
use k8s_openapi::api::core::v1::Pod;

use surge_metrics::Sample;
use surge_metrics::hpa::{HpaMetric, HpaStatus, PodResources, metric_label, workload_samples};
use surge_metrics::quantity::{parse_bytes, parse_cpu_millis, parse_value};
use surge_metrics::state::{MetricType, PodState, TargetType};

use super::pod_metrics::PodUsage;

/// The controller flags that decide which pods count (see `replica_calculator.go`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct HpaTiming {
    pub cpu_initialization_period: Duration,
    pub initial_readiness_delay: Duration,
}

/// How the HPA controller's `groupPods` treats `pod` for a CPU metric at time `now`.
pub(crate) fn hpa_pod_state(
    pod: &Pod,
    usage: Option<&PodUsage>,
    now: jiff::Timestamp,
    timing: HpaTiming,
) -> PodState {
    let status = pod.status.as_ref();
    let phase = status.and_then(|s| s.phase.as_deref()).unwrap_or("");
    if pod.metadata.deletion_timestamp.is_some() || phase == "Failed" {
        return PodState::Excluded;
    }
    if phase == "Pending" {
        return PodState::Unready;
    }
    let Some(usage) = usage else {
        return PodState::MissingMetrics;
    };
    let ready = status
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"));
    let start = status.and_then(|s| s.start_time.as_ref()).map(|t| t.0);
    let (Some(ready), Some(start)) = (ready, start) else {
        return PodState::Unready;
    };
    let transition = ready.last_transition_time.as_ref().map(|t| t.0);
    let is_false = ready.status == "False";
    let unready = if add(start, timing.cpu_initialization_period) > now {
        // Still initialising: skip if unready, or if the metric window started before the
        // last readiness change (it would include start-up CPU).
        is_false || transition.is_none_or(|t| usage.timestamp < add(t, usage.window))
    } else {
        // Past initialisation: skip only pods that are unready and never became ready.
        is_false && transition.is_none_or(|t| add(start, timing.initial_readiness_delay) > t)
    };
    if unready {
        PodState::Unready
    } else {
        PodState::Counted
    }
}

fn add(t: jiff::Timestamp, d: Duration) -> jiff::Timestamp {
    jiff::SignedDuration::try_from(d)
        .ok()
        .and_then(|d| t.checked_add(d).ok())
        .unwrap_or(jiff::Timestamp::MAX)
}

/// Sum of the pod's container CPU requests in milli-cores; `None` if any container lacks one
/// (as `calculatePodRequests`). A malformed quantity is an error.
pub(crate) fn pod_request_millis(pod: &Pod) -> Result<Option<i64>, String> {
    pod_resource(pod, Side::Requests, "cpu", parse_cpu_millis)
}

/// Which part of a container's `resources`.
#[derive(Clone, Copy)]
enum Side {
    Requests,
    Limits,
}

/// Sum over the pod's containers of `resource` in `side`, parsed by `parse`; `None` if any
/// container lacks it (or the pod has none). A malformed quantity is an error naming it.
fn pod_resource(
    pod: &Pod,
    side: Side,
    resource: &str,
    parse: fn(&str) -> Result<i64, String>,
) -> Result<Option<i64>, String> {
    let name = pod.metadata.name.as_deref().unwrap_or("?");
    let Some(spec) = &pod.spec else {
        return Ok(None);
    };
    if spec.containers.is_empty() {
        return Ok(None);
    }
    let mut total = 0i64;
    for c in &spec.containers {
        let quantity = c.resources.as_ref().and_then(|r| match side {
            Side::Requests => r.requests.as_ref(),
            Side::Limits => r.limits.as_ref(),
        });
        let what = match side {
            Side::Requests => "request",
            Side::Limits => "limit",
        };
        match quantity.and_then(|q| q.get(resource)) {
            Some(q) => {
                total = total.saturating_add(parse(&q.0).map_err(|e| {
                    format!("pod {name} container {}: {resource} {what}: {e}", c.name)
                })?);
            }
            None => return Ok(None),
        }
    }
    Ok(Some(total))
}

/// Name of the workload owning `pod`: the Deployment behind its ReplicaSet, or its direct
/// controller (StatefulSet, DaemonSet, Job, a bare ReplicaSet), or the pod itself.
fn workload_of(pod: &Pod, replicaset_owner: &HashMap<(String, String), String>) -> String {
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let controller = pod
        .metadata
        .owner_references
        .as_ref()
        .and_then(|refs| refs.iter().find(|r| r.controller == Some(true)));
    match controller {
        Some(owner) if owner.kind == "ReplicaSet" => replicaset_owner
            .get(&(namespace, owner.name.clone()))
            .cloned()
            .unwrap_or_else(|| owner.name.clone()),
        Some(owner) => owner.name.clone(),
        None => pod.metadata.name.clone().unwrap_or_default(),
    }
}

/// (namespace, ReplicaSet) → name of its controlling Deployment.
fn replicaset_owners(replicasets: &[impl AsRef<ReplicaSet>]) -> HashMap<(String, String), String> {
    let mut out = HashMap::new();
    for rs in replicasets {
        let rs = rs.as_ref();
        let controller = rs
            .metadata
            .owner_references
            .as_ref()
            .and_then(|refs| refs.iter().find(|r| r.controller == Some(true)));
        if let (Some(owner), Some(name)) = (controller, &rs.metadata.name) {
            out.insert(
                (
                    rs.metadata.namespace.clone().unwrap_or_default(),
                    name.clone(),
                ),
                owner.name.clone(),
            );
        }
    }
    out
}

/// Everything one cycle needs.
pub(crate) struct Inputs<'a, P, R, H> {
    pub pods: &'a [P],
    pub replicasets: &'a [R],
    pub hpas: &'a [H],
    /// (namespace, pod) → usage. `None` when the metrics API could not be read.
    pub usage: Option<&'a HashMap<(String, String), MetricsOf>>,
    pub now: jiff::Timestamp,
    pub timing: HpaTiming,
}

/// Pod, workload and HPA series for one cycle.
pub(crate) fn samples<P: AsRef<Pod>, R: AsRef<ReplicaSet>, H: AsRef<HorizontalPodAutoscaler>>(
    inputs: &Inputs<'_, P, R, H>,
) -> Result<Vec<Sample>, String> {
    let owners = replicaset_owners(inputs.replicasets);
    let mut workloads: BTreeMap<(String, String), Vec<PodResources>> = BTreeMap::new();
    for pod in inputs.pods {
        let pod = pod.as_ref();
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let metrics = inputs
            .usage
            .and_then(|u| u.get(&(namespace.clone(), name.clone())));
        let usage = metrics.and_then(|m| m.cpu.as_ref());
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        let ready = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
            .is_some_and(|c| c.status == "True");
        let resources = PodResources {
            pod: name,
            state: hpa_pod_state(pod, usage, inputs.now, inputs.timing),
            ready,
            usage_cores: usage.map(|u| u.cores),
            usage_millis: usage.map(|u| u.millis),
            request_millis: pod_request_millis(pod)?,
            memory_bytes: metrics.and_then(|m| m.memory_bytes),
            memory_request_bytes: pod_resource(pod, Side::Requests, "memory", parse_bytes)?,
            memory_limit_bytes: pod_resource(pod, Side::Limits, "memory", parse_bytes)?,
            // The HPA counts every pod for memory but pending, failed and deleting ones.
            running: pod.metadata.deletion_timestamp.is_none()
                && !matches!(phase, Some("Pending" | "Failed")),
        };
        workloads
            .entry((namespace, workload_of(pod, &owners)))
            .or_default()
            .push(resources);
    }
    let mut out = Vec::new();
    for ((namespace, workload), pods) in &workloads {
        out.extend(workload_samples(namespace, workload, pods));
    }
    for hpa in inputs.hpas {
        hpa_samples(hpa.as_ref(), &mut out)?;
    }
    Ok(out)
}

fn hpa_samples(hpa: &HorizontalPodAutoscaler, out: &mut Vec<Sample>) -> Result<(), String> {
    let name = hpa.metadata.name.clone().unwrap_or_default();
    let name_for_metrics = name.clone();
    let Some(spec) = &hpa.spec else {
        return Err(format!("HPA {name}: no spec"));
    };
    let status = hpa.status.as_ref();
    let target_cpu = spec.metrics.iter().flatten().find_map(|m| {
        m.resource
            .as_ref()
            .filter(|r| m.type_ == "Resource" && r.name == "cpu" && r.target.type_ == "Utilization")
            .and_then(|r| r.target.average_utilization)
    });
    let observed_cpu = status
        .and_then(|s| s.current_metrics.as_ref())
        .into_iter()
        .flatten()
        .find_map(|m| {
            m.resource
                .as_ref()
                .filter(|r| m.type_ == "Resource" && r.name == "cpu")
                .and_then(|r| r.current.average_utilization)
        });
    let condition = |kind: &str| {
        status
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == kind))
            .is_some_and(|c| c.status == "True")
    };
    HpaStatus {
        namespace: hpa.metadata.namespace.clone().unwrap_or_default(),
        hpa: name,
        workload: spec.scale_target_ref.name.clone(),
        min: spec.min_replicas.unwrap_or(1),
        max: spec.max_replicas,
        current: status.map(|s| s.current_replicas.unwrap_or(0)),
        desired: status.map(|s| s.desired_replicas),
        target_cpu: target_cpu.map(|t| f64::from(t) / 100.0),
        observed_cpu: observed_cpu.map(|o| f64::from(o) / 100.0),
        scaling_limited: condition("ScalingLimited"),
        able_to_scale: condition("AbleToScale"),
        metrics: hpa_metrics(
            &name_for_metrics,
            spec.metrics.as_deref().unwrap_or_default(),
            status
                .and_then(|s| s.current_metrics.as_deref())
                .unwrap_or_default(),
        )?,
    }
    .samples(out);
    Ok(())
}

/// A metric's identity as labels show it: its type and its name (with selector, container or
/// object where the type has one), the same for the spec and the status.
fn metric_identity(
    type_: &str,
    resource: Option<&str>,
    container: Option<&str>,
    identifier: Option<&MetricIdentifier>,
    object: Option<&str>,
) -> Option<(MetricType, String)> {
    let metric_type = MetricType::from_api(type_)?;
    let name = match metric_type {
        MetricType::Resource => resource?.to_string(),
        MetricType::ContainerResource => format!("{}/{}", container?, resource?),
        MetricType::Pods | MetricType::External | MetricType::Object => {
            let id = identifier?;
            let selector = id
                .selector
                .as_ref()
                .and_then(|s| s.match_labels.clone())
                .unwrap_or_default();
            let label = metric_label(&id.name, &selector);
            match object {
                Some(object) => format!("{object}:{label}"),
                None => label,
            }
        }
    };
    Some((metric_type, name))
}

fn spec_identity(m: &MetricSpec) -> Option<((MetricType, String), &MetricTarget)> {
    let id = |resource: Option<&str>, container: Option<&str>, ident, object: Option<String>| {
        metric_identity(&m.type_, resource, container, ident, object.as_deref())
    };
    match m.type_.as_str() {
        "Resource" => {
            let r = m.resource.as_ref()?;
            Some((id(Some(&r.name), None, None, None)?, &r.target))
        }
        "ContainerResource" => {
            let r = m.container_resource.as_ref()?;
            Some((
                id(Some(&r.name), Some(&r.container), None, None)?,
                &r.target,
            ))
        }
        "Pods" => {
            let p = m.pods.as_ref()?;
            Some((id(None, None, Some(&p.metric), None)?, &p.target))
        }
        "Object" => {
            let o = m.object.as_ref()?;
            let object = format!("{}/{}", o.described_object.kind, o.described_object.name);
            Some((id(None, None, Some(&o.metric), Some(object))?, &o.target))
        }
        "External" => {
            let e = m.external.as_ref()?;
            Some((id(None, None, Some(&e.metric), None)?, &e.target))
        }
        _ => None,
    }
}

fn status_identity(m: &MetricStatus) -> Option<((MetricType, String), &MetricValueStatus)> {
    let id = |resource: Option<&str>, container: Option<&str>, ident, object: Option<String>| {
        metric_identity(&m.type_, resource, container, ident, object.as_deref())
    };
    match m.type_.as_str() {
        "Resource" => {
            let r = m.resource.as_ref()?;
            Some((id(Some(&r.name), None, None, None)?, &r.current))
        }
        "ContainerResource" => {
            let r = m.container_resource.as_ref()?;
            Some((
                id(Some(&r.name), Some(&r.container), None, None)?,
                &r.current,
            ))
        }
        "Pods" => {
            let p = m.pods.as_ref()?;
            Some((id(None, None, Some(&p.metric), None)?, &p.current))
        }
        "Object" => {
            let o = m.object.as_ref()?;
            let object = format!("{}/{}", o.described_object.kind, o.described_object.name);
            Some((id(None, None, Some(&o.metric), Some(object))?, &o.current))
        }
        "External" => {
            let e = m.external.as_ref()?;
            Some((id(None, None, Some(&e.metric), None)?, &e.current))
        }
        _ => None,
    }
}

/// Every metric of an HPA's spec with its target and what the status reports for it; a
/// metric the status does not mention yet has no current value. A quantity that does not
/// parse is an error naming it.
pub(crate) fn hpa_metrics(
    hpa: &str,
    spec: &[MetricSpec],
    status: &[MetricStatus],
) -> Result<Vec<HpaMetric>, String> {
    let current: HashMap<(MetricType, String), &MetricValueStatus> =
        status.iter().filter_map(status_identity).collect();
    let quantity = |what: &str, q: &k8s_openapi::apimachinery::pkg::api::resource::Quantity| {
        parse_value(&q.0).map_err(|e| format!("HPA {hpa}: {what}: {e}"))
    };
    let mut out = Vec::with_capacity(spec.len());
    for m in spec {
        let Some(((metric_type, metric_name), target)) = spec_identity(m) else {
            return Err(format!(
                "HPA {hpa}: metric of type {:?} without its source",
                m.type_
            ));
        };
        let target_type = TargetType::from_api(&target.type_)
            .ok_or_else(|| format!("HPA {hpa}: {metric_name}: target type {:?}", target.type_))?;
        let missing = || {
            format!(
                "HPA {hpa}: {metric_name}: {} target without a value",
                target.type_
            )
        };
        let target_value = match target_type {
            TargetType::Utilization => {
                f64::from(target.average_utilization.ok_or_else(missing)?) / 100.0
            }
            TargetType::AverageValue => quantity(
                &metric_name,
                target.average_value.as_ref().ok_or_else(missing)?,
            )?,
            TargetType::Value => {
                quantity(&metric_name, target.value.as_ref().ok_or_else(missing)?)?
            }
        };
        let seen = current.get(&(metric_type, metric_name.clone()));
        let current_value = match (target_type, seen) {
            (_, None) => None,
            (TargetType::Utilization, Some(c)) => {
                c.average_utilization.map(|u| f64::from(u) / 100.0)
            }
            (TargetType::AverageValue, Some(c)) => c
                .average_value
                .as_ref()
                .map(|q| quantity(&metric_name, q))
                .transpose()?,
            (TargetType::Value, Some(c)) => c
                .value
                .as_ref()
                .map(|q| quantity(&metric_name, q))
                .transpose()?,
        };
        out.push(HpaMetric {
            metric_type,
            metric_name,
            target_type,
            target: target_value,
            current: current_value,
        });
    }
    Ok(out)
}

/// What metrics.k8s.io says about one pod.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MetricsOf {
    /// CPU, when every container reports it.
    pub cpu: Option<PodUsage>,
    /// Memory working set, when every container reports it.
    pub memory_bytes: Option<i64>,
}

/// A PodMetrics list's usage per (namespace, pod), keeping pods with any usage.
pub(crate) fn usage_map(
    items: &[super::pod_metrics::PodMetrics],
) -> Result<HashMap<(String, String), MetricsOf>, String> {
    let mut out = HashMap::with_capacity(items.len());
    for m in items {
        let of = MetricsOf {
            cpu: m.cpu_usage()?,
            memory_bytes: m.memory_bytes()?,
        };
        if of.cpu.is_some() || of.memory_bytes.is_some() {
            out.insert(
                (
                    m.metadata.namespace.clone().unwrap_or_default(),
                    m.metadata.name.clone().unwrap_or_default(),
                ),
                of,
            );
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const TIMING: HpaTiming = HpaTiming {
        cpu_initialization_period: Duration::from_secs(300),
        initial_readiness_delay: Duration::from_secs(30),
    };

    fn at(s: &str) -> jiff::Timestamp {
        s.parse().expect("timestamp")
    }

    fn pod(phase: &str, start: Option<&str>, ready: Option<(&str, &str)>) -> Pod {
        let mut conditions = vec![];
        if let Some((status, since)) = ready {
            conditions
                .push(json!({"type": "Ready", "status": status, "lastTransitionTime": since}));
        }
        let mut status = json!({"phase": phase, "conditions": conditions});
        if let Some(start) = start {
            status["startTime"] = json!(start);
        }
        serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "ns"},
            "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": "100m"}}}]},
            "status": status
        }))
        .expect("pod")
    }

    fn usage(timestamp: &str) -> PodUsage {
        PodUsage {
            millis: 50,
            cores: 0.05,
            timestamp: at(timestamp),
            window: Duration::from_secs(15),
        }
    }

    #[test]
    fn groups_pods_like_the_hpa_controller() {
        let now = at("2026-11-28T12:00:00Z");
        let fresh = usage("2026-11-28T11:59:58Z");
        let state = |p: &Pod, u: Option<&PodUsage>| hpa_pod_state(p, u, now, TIMING);
        // Initialising (started 1 min ago): a metric window that began before the pod turned
        // ready would include start-up CPU, so the pod is left out until a full window passes.
        let young_ready_10s = pod(
            "Running",
            Some("2026-11-28T11:59:00Z"),
            Some(("True", "2026-11-28T11:59:50Z")),
        );
        assert_eq!(state(&young_ready_10s, Some(&fresh)), PodState::Unready);
        let young_ready_30s = pod(
            "Running",
            Some("2026-11-28T11:59:00Z"),
            Some(("True", "2026-11-28T11:59:30Z")),
        );
        assert_eq!(state(&young_ready_30s, Some(&fresh)), PodState::Counted);
        let young_unready = pod(
            "Running",
            Some("2026-11-28T11:59:00Z"),
            Some(("False", "2026-11-28T11:59:00Z")),
        );
        assert_eq!(state(&young_unready, Some(&fresh)), PodState::Unready);
        // Past initialisation: unready and never ready is left out; unready after having
        // been ready is still counted (that is the controller's rule).
        let never_ready = pod(
            "Running",
            Some("2026-11-28T10:00:00Z"),
            Some(("False", "2026-11-28T10:00:10Z")),
        );
        assert_eq!(state(&never_ready, Some(&fresh)), PodState::Unready);
        let went_unready = pod(
            "Running",
            Some("2026-11-28T10:00:00Z"),
            Some(("False", "2026-11-28T11:00:00Z")),
        );
        assert_eq!(state(&went_unready, Some(&fresh)), PodState::Counted);
        // No Ready condition or no start time, Pending, Failed, deleting, no metric.
        assert_eq!(
            state(
                &pod("Running", Some("2026-11-28T10:00:00Z"), None),
                Some(&fresh)
            ),
            PodState::Unready
        );
        assert_eq!(
            state(
                &pod("Running", None, Some(("True", "2026-11-28T10:00:00Z"))),
                Some(&fresh)
            ),
            PodState::Unready
        );
        assert_eq!(state(&pod("Pending", None, None), None), PodState::Unready);
        assert_eq!(
            state(
                &pod("Failed", Some("2026-11-28T10:00:00Z"), None),
                Some(&fresh)
            ),
            PodState::Excluded
        );
        let mut deleting = pod(
            "Running",
            Some("2026-11-28T10:00:00Z"),
            Some(("True", "2026-11-28T10:00:10Z")),
        );
        deleting.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now));
        assert_eq!(state(&deleting, Some(&fresh)), PodState::Excluded);
        let ready_old = pod(
            "Running",
            Some("2026-11-28T10:00:00Z"),
            Some(("True", "2026-11-28T10:00:10Z")),
        );
        assert_eq!(state(&ready_old, None), PodState::MissingMetrics);
        assert_eq!(state(&ready_old, Some(&fresh)), PodState::Counted);
    }

    #[test]
    fn requests_sum_containers_and_any_missing_request_means_none() {
        let two: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [
                {"name": "a", "resources": {"requests": {"cpu": "250m"}}},
                {"name": "b", "resources": {"requests": {"cpu": "0.25"}}}
            ]}
        }))
        .expect("pod");
        assert_eq!(pod_request_millis(&two), Ok(Some(500)));
        let missing: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [
                {"name": "a", "resources": {"requests": {"cpu": "250m"}}},
                {"name": "b", "resources": {"requests": {"memory": "1Gi"}}}
            ]}
        }))
        .expect("pod");
        assert_eq!(pod_request_millis(&missing), Ok(None));
        let bad: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "a", "resources": {"requests": {"cpu": "2 cores"}}}]}
        }))
        .expect("pod");
        assert!(pod_request_millis(&bad).is_err());
    }
}
