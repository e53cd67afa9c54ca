//! The HorizontalPodAutoscaler algorithm for local replicas, driven by the same
//! `autoscaling/v2` manifests a cluster would use (`stack/k8s/base/hpa.yaml`), so targets and
//! bounds have one source of truth.
//!
//! Per sync (like the controller's 15 s loop):
//! 1. utilization = sum(usage) / sum(requests) over ready replicas with a metric (the same
//!    HPA-exact arithmetic as surge-exporter, `surge_metrics::hpa`); each External metric's
//!    value from Prometheus (the prometheus-adapter rule's query);
//! 2. each metric proposes ceil(replicas × current / target), unless |ratio − 1| ≤ tolerance
//!    (0.1); the recommendation is the largest proposal, and with a metric unavailable the
//!    others may scale up but not down (`surge_metrics::hpa::combine`);
//! 3. stabilization: scaling down takes the highest recommendation of the scale-down window,
//!    scaling up the lowest of the scale-up window;
//! 4. rate policies from `behavior` (Pods / Percent per period, `selectPolicy`);
//! 5. clamp to min/max; ScalingLimited when the clamp changed the answer.

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use k8s_openapi::api::autoscaling::v2::{HPAScalingRules, HorizontalPodAutoscaler};
use serde::Deserialize;
pub use surge_metrics::hpa::TOLERANCE;
use surge_metrics::hpa::{combine, metric_label, replicas_for};
use surge_metrics::quantity::parse_value;
use surge_metrics::state::TargetType;

/// An External metric of an HPA: the metric the adapter serves, its selector, and the target.
#[derive(Debug, Clone, PartialEq)]
pub struct ExternalMetric {
    pub name: String,
    pub selector: BTreeMap<String, String>,
    /// `AverageValue` (per replica) or `Value`.
    pub target_type: TargetType,
    pub target: f64,
}

impl ExternalMetric {
    /// Its name as the `surge_hpa_metric_*` labels show it.
    pub fn label(&self) -> String {
        metric_label(&self.name, &self.selector)
    }
}

/// A scaling policy: at most `value` pods or percent per `period`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Policy {
    Pods { value: i32, period: Duration },
    Percent { value: i32, period: Duration },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    pub stabilization: Duration,
    pub policies: Vec<Policy>,
    /// `Max` (default), `Min` or `Disabled`.
    pub select: String,
}

/// What the local autoscaler needs from one HPA manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct HpaSpec {
    pub name: String,
    pub namespace: String,
    pub workload: String,
    pub min: i32,
    pub max: i32,
    /// Target CPU utilization as a ratio of requests (0.70).
    pub target: f64,
    /// External metrics beside CPU, in the manifest's order.
    pub external: Vec<ExternalMetric>,
    pub scale_up: Rules,
    pub scale_down: Rules,
}

fn rules(rules: Option<&HPAScalingRules>, up: bool) -> Result<Rules, String> {
    // Kubernetes defaults: up — no stabilization, max(4 pods, 100%) per 15 s;
    // down — 300 s stabilization, 100% per 15 s.
    let default_policies = if up {
        vec![
            Policy::Pods {
                value: 4,
                period: Duration::from_secs(15),
            },
            Policy::Percent {
                value: 100,
                period: Duration::from_secs(15),
            },
        ]
    } else {
        vec![Policy::Percent {
            value: 100,
            period: Duration::from_secs(15),
        }]
    };
    let Some(r) = rules else {
        return Ok(Rules {
            stabilization: Duration::from_secs(if up { 0 } else { 300 }),
            policies: default_policies,
            select: "Max".into(),
        });
    };
    let mut policies = Vec::new();
    for p in r.policies.iter().flatten() {
        let period = Duration::from_secs(
            u64::try_from(p.period_seconds).map_err(|_| "negative periodSeconds")?,
        );
        policies.push(match p.type_.as_str() {
            "Pods" => Policy::Pods {
                value: p.value,
                period,
            },
            "Percent" => Policy::Percent {
                value: p.value,
                period,
            },
            other => return Err(format!("unknown policy type {other:?}")),
        });
    }
    let stabilization = r
        .stabilization_window_seconds
        .map(|s| u64::try_from(s).map_err(|_| "negative stabilizationWindowSeconds"))
        .transpose()?
        .map_or(
            Duration::from_secs(if up { 0 } else { 300 }),
            Duration::from_secs,
        );
    Ok(Rules {
        stabilization,
        policies: if policies.is_empty() {
            default_policies
        } else {
            policies
        },
        select: r.select_policy.clone().unwrap_or_else(|| "Max".into()),
    })
}

impl HpaSpec {
    pub fn from_manifest(hpa: &HorizontalPodAutoscaler) -> Result<HpaSpec, String> {
        let name = hpa
            .metadata
            .name
            .clone()
            .ok_or("HPA without metadata.name")?;
        let spec = hpa
            .spec
            .as_ref()
            .ok_or_else(|| format!("HPA {name}: no spec"))?;
        let mut target = None;
        let mut external = Vec::new();
        for m in spec.metrics.iter().flatten() {
            match (m.type_.as_str(), &m.resource, &m.external) {
                ("Resource", Some(r), _) if r.name == "cpu" && r.target.type_ == "Utilization" => {
                    target = r.target.average_utilization;
                }
                ("External", _, Some(e)) => {
                    let target_type = TargetType::from_api(&e.target.type_)
                        .filter(|t| *t != TargetType::Utilization)
                        .ok_or_else(|| {
                            format!(
                                "HPA {name}: External {}: target type {:?}",
                                e.metric.name, e.target.type_
                            )
                        })?;
                    let quantity = match target_type {
                        TargetType::AverageValue => e.target.average_value.as_ref(),
                        _ => e.target.value.as_ref(),
                    }
                    .ok_or_else(|| {
                        format!("HPA {name}: External {}: no target value", e.metric.name)
                    })?;
                    external.push(ExternalMetric {
                        name: e.metric.name.clone(),
                        selector: e
                            .metric
                            .selector
                            .as_ref()
                            .and_then(|s| s.match_labels.clone())
                            .unwrap_or_default(),
                        target_type,
                        target: parse_value(&quantity.0).map_err(|err| {
                            format!("HPA {name}: External {}: {err}", e.metric.name)
                        })?,
                    });
                }
                (other, ..) => {
                    return Err(format!(
                        "HPA {name}: a {other} metric; the local autoscaler knows Resource cpu (Utilization) and External"
                    ));
                }
            }
        }
        let target =
            target.ok_or_else(|| format!("HPA {name}: no Resource cpu Utilization target"))?;
        let min = spec.min_replicas.unwrap_or(1);
        if min < 1 || spec.max_replicas < min {
            return Err(format!("HPA {name}: need 1 <= minReplicas <= maxReplicas"));
        }
        let behavior = spec.behavior.as_ref();
        Ok(HpaSpec {
            namespace: hpa
                .metadata
                .namespace
                .clone()
                .unwrap_or_else(|| "default".into()),
            workload: spec.scale_target_ref.name.clone(),
            min,
            max: spec.max_replicas,
            target: f64::from(target) / 100.0,
            external,
            scale_up: rules(behavior.and_then(|b| b.scale_up.as_ref()), true)
                .map_err(|e| format!("HPA {name}: scaleUp: {e}"))?,
            scale_down: rules(behavior.and_then(|b| b.scale_down.as_ref()), false)
                .map_err(|e| format!("HPA {name}: scaleDown: {e}"))?,
            name,
        })
    }
}

/// The shop's HPA manifests, relative to the repository: the HTTP services', then the
/// consumers' (which also scale on lag).
pub const HPA_MANIFESTS: [&str; 2] = ["stack/k8s/base/hpa.yaml", "stack/k8s/scale-on-lag/hpa.yaml"];

/// Every HorizontalPodAutoscaler in each of the files.
pub fn load_all(paths: &[std::path::PathBuf]) -> anyhow::Result<Vec<HpaSpec>> {
    let mut out = Vec::new();
    for path in paths {
        out.extend(load_manifests(path)?);
    }
    Ok(out)
}

/// Every HorizontalPodAutoscaler in a multi-document YAML file.
pub fn load_manifests(path: &Path) -> anyhow::Result<Vec<HpaSpec>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = Vec::new();
    for document in serde_yaml_ng::Deserializer::from_str(&text) {
        let value = serde_yaml_ng::Value::deserialize(document)
            .with_context(|| format!("parsing {}", path.display()))?;
        if value.get("kind").and_then(|k| k.as_str()) != Some("HorizontalPodAutoscaler") {
            continue;
        }
        let hpa: HorizontalPodAutoscaler = serde_yaml_ng::from_value(value)
            .with_context(|| format!("{}: not a valid HPA", path.display()))?;
        out.push(HpaSpec::from_manifest(&hpa).map_err(|e| anyhow!("{}: {e}", path.display()))?);
    }
    if out.is_empty() {
        bail!("{}: no HorizontalPodAutoscaler found", path.display());
    }
    Ok(out)
}

/// The exporter's `scalable_lag_partition_cap` for these HPAs: the per-replica target of
/// their AverageValue External metrics on the scalable lag (the smallest, should they
/// differ), so one partition's lag asks for at most one replica. `None` when none scales on it.
pub fn scalable_lag_cap(specs: &[HpaSpec]) -> Option<u64> {
    specs
        .iter()
        .flat_map(|s| &s.external)
        .filter(|m| {
            m.name == surge_metrics::catalogue::kafka::SCALABLE_LAG.name
                && m.target_type == TargetType::AverageValue
        })
        .map(|m| m.target.round().max(1.0) as u64)
        .min()
}

/// The CPU proposal from utilization over `ready` counted replicas (step 2).
pub fn recommend(ready: i32, utilization: f64, target: f64) -> i32 {
    replicas_for(ready, utilization, target)
}

/// What one sync measured for an HPA.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Measured {
    /// Replicas counted for CPU (ready, with a metric) and their utilization, once known.
    pub cpu: Option<(i32, f64)>,
    /// Ready replicas (what a Value target's ratio multiplies).
    pub ready: i32,
    /// Each External metric's value (the query's total), `None` when unavailable.
    pub external: Vec<Option<f64>>,
}

/// Each metric's proposal (CPU first, then the External metrics in order) and the raw
/// recommendation, as the controller computes them for `current` replicas. An AverageValue
/// target compares the total to target × replicas; a Value target the value to the target,
/// times the ready replicas. `None` for the recommendation means hold.
pub fn proposals(
    spec: &HpaSpec,
    current: i32,
    measured: &Measured,
) -> (Vec<Option<i32>>, Option<i32>) {
    let mut out = vec![
        measured
            .cpu
            .filter(|(counted, _)| *counted > 0)
            .map(|(counted, u)| recommend(counted, u, spec.target)),
    ];
    for (i, metric) in spec.external.iter().enumerate() {
        let value = measured.external.get(i).copied().flatten();
        out.push(value.map(|v| match metric.target_type {
            TargetType::AverageValue if current > 0 => {
                replicas_for(current, v / f64::from(current), metric.target)
            }
            // No replicas to average over: as many as the total needs.
            TargetType::AverageValue => (v / metric.target).ceil() as i32,
            _ => replicas_for(measured.ready.max(1), v, metric.target),
        }));
    }
    let recommendation = combine(current, &out);
    (out, recommendation)
}

/// One HPA's memory between syncs: recommendations and scale events, timestamped in seconds.
#[derive(Debug, Default, Clone)]
pub struct HpaState {
    recommendations: VecDeque<(f64, i32)>,
    /// (time, replicas added (+) or removed (−)).
    events: VecDeque<(f64, i32)>,
}

/// The outcome of one sync.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decision {
    pub desired: i32,
    /// The min/max clamp changed the answer.
    pub scaling_limited: bool,
}

impl HpaState {
    /// Steps 3–5 at time `now` (seconds) for `current` replicas and `recommendation`.
    pub fn decide(
        &mut self,
        spec: &HpaSpec,
        now: f64,
        current: i32,
        recommendation: i32,
    ) -> Decision {
        let keep = spec
            .scale_down
            .stabilization
            .max(spec.scale_up.stabilization)
            .as_secs_f64();
        self.recommendations.push_back((now, recommendation));
        while self
            .recommendations
            .front()
            .is_some_and(|(t, _)| now - t > keep)
        {
            self.recommendations.pop_front();
        }
        let within = |window: Duration| {
            self.recommendations
                .iter()
                .filter(move |(t, _)| now - t <= window.as_secs_f64())
                .map(|(_, r)| *r)
        };
        // Scale down only to the highest recommendation of the window; up only to the lowest.
        let down_floor = within(spec.scale_down.stabilization)
            .max()
            .unwrap_or(recommendation);
        let up_ceiling = within(spec.scale_up.stabilization)
            .min()
            .unwrap_or(recommendation);
        let mut desired = if recommendation < current {
            down_floor.min(current)
        } else if recommendation > current {
            up_ceiling.max(current)
        } else {
            current
        };
        // Rate policies.
        if desired > current {
            desired = desired.min(self.limit(&spec.scale_up, now, current, true));
        } else if desired < current {
            desired = desired.max(self.limit(&spec.scale_down, now, current, false));
        }
        let clamped = desired.clamp(spec.min, spec.max);
        let decision = Decision {
            desired: clamped,
            scaling_limited: clamped != desired,
        };
        if clamped != current {
            self.events.push_back((now, clamped - current));
        }
        let longest = spec
            .scale_up
            .policies
            .iter()
            .chain(&spec.scale_down.policies)
            .map(|p| match p {
                Policy::Pods { period, .. } | Policy::Percent { period, .. } => {
                    period.as_secs_f64()
                }
            })
            .fold(0.0, f64::max);
        while self.events.front().is_some_and(|(t, _)| now - t > longest) {
            self.events.pop_front();
        }
        decision
    }

    /// The furthest the replica count may move now under `rules`.
    fn limit(&self, rules: &Rules, now: f64, current: i32, up: bool) -> i32 {
        if rules.select == "Disabled" {
            return current;
        }
        let limits = rules.policies.iter().map(|p| {
            let period = match p {
                Policy::Pods { period, .. } | Policy::Percent { period, .. } => {
                    period.as_secs_f64()
                }
            };
            // Replicas changed in this direction within the period, and the count before that.
            let moved: i32 = self
                .events
                .iter()
                .filter(|(t, d)| now - t <= period && (*d > 0) == up)
                .map(|(_, d)| d.abs())
                .sum();
            let base = if up { current - moved } else { current + moved };
            let allowed = match p {
                Policy::Pods { value, .. } => *value,
                Policy::Percent { value, .. } => {
                    (f64::from(base) * f64::from(*value) / 100.0).ceil() as i32
                }
            };
            if up { base + allowed } else { base - allowed }
        });
        let pick_max = (rules.select == "Max") == up;
        let limit = if pick_max { limits.max() } else { limits.min() };
        limit.unwrap_or(current)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> HpaSpec {
        HpaSpec {
            name: "orders".into(),
            namespace: "shop".into(),
            workload: "orders".into(),
            min: 2,
            max: 10,
            target: 0.7,
            external: Vec::new(),
            scale_up: Rules {
                stabilization: Duration::ZERO,
                policies: vec![
                    Policy::Pods {
                        value: 4,
                        period: Duration::from_secs(15),
                    },
                    Policy::Percent {
                        value: 100,
                        period: Duration::from_secs(15),
                    },
                ],
                select: "Max".into(),
            },
            scale_down: Rules {
                stabilization: Duration::from_secs(60),
                policies: vec![Policy::Percent {
                    value: 50,
                    period: Duration::from_secs(15),
                }],
                select: "Max".into(),
            },
        }
    }

    /// payment's HPA: CPU at 70% and its lag at 300 messages per replica.
    fn payment() -> HpaSpec {
        HpaSpec {
            name: "payment".into(),
            workload: "payment".into(),
            external: vec![ExternalMetric {
                name: "surge_kafka_group_topic_lag".into(),
                selector: BTreeMap::from([("group".into(), "payment".into())]),
                target_type: TargetType::AverageValue,
                target: 300.0,
            }],
            ..spec()
        }
    }

    fn measured(cpu: Option<(i32, f64)>, lag: Option<f64>) -> Measured {
        Measured {
            cpu,
            ready: 2,
            external: vec![lag],
        }
    }

    #[test]
    fn several_metrics_decide_as_the_controller_does() {
        let s = payment();
        // I/O-bound: CPU 20% of request on 2 replicas proposes 1; 4,200 lagging messages
        // against 300 per replica propose ceil(4200 / 300) = 14. The larger wins (then max 10
        // clamps it in `decide`).
        assert_eq!(
            proposals(&s, 2, &measured(Some((2, 0.2)), Some(4200.0))),
            (vec![Some(1), Some(14)], Some(14))
        );
        // Both above target: CPU 1.4/0.7 on 2 → 4; lag 1,500 → 5. Lag decides.
        assert_eq!(
            proposals(&s, 2, &measured(Some((2, 1.4)), Some(1500.0))),
            (vec![Some(4), Some(5)], Some(5))
        );
        // Scale-down blocked by the other metric: 6 replicas, CPU 10% proposes 1, but lag
        // 1,800 (300 per replica, at target) holds 6.
        assert_eq!(
            proposals(&s, 6, &measured(Some((6, 0.1)), Some(1800.0))),
            (vec![Some(1), Some(6)], Some(6))
        );
        // The lag unavailable (Prometheus down): CPU may still scale up ...
        assert_eq!(
            proposals(&s, 2, &measured(Some((2, 1.4)), None)),
            (vec![Some(4), None], Some(4))
        );
        // ... but not down: hold.
        assert_eq!(
            proposals(&s, 6, &measured(Some((6, 0.1)), None)),
            (vec![Some(1), None], None)
        );
        // No CPU measurement yet (new replicas): the lag alone may scale up.
        assert_eq!(
            proposals(&s, 2, &measured(None, Some(900.0))),
            (vec![None, Some(3)], Some(3))
        );
        // Within tolerance of every target: no change.
        assert_eq!(
            proposals(&s, 2, &measured(Some((2, 0.72)), Some(630.0))),
            (vec![Some(2), Some(2)], Some(2))
        );
        // A Value target: the value over the target, times the ready replicas.
        let mut value = payment();
        value.external[0].target_type = TargetType::Value;
        value.external[0].target = 1000.0;
        assert_eq!(
            proposals(&value, 2, &measured(Some((2, 0.7)), Some(2500.0))),
            (vec![Some(2), Some(5)], Some(5))
        );
    }

    #[test]
    fn the_shops_consumer_hpas_read_their_lag_target() -> anyhow::Result<()> {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let specs = load_all(&HPA_MANIFESTS.map(|p| repo.join(p)))?;
        let payment = specs
            .iter()
            .find(|s| s.workload == "payment")
            .context("payment")?;
        assert_eq!(
            payment.external,
            vec![ExternalMetric {
                name: surge_metrics::catalogue::kafka::SCALABLE_LAG.name.into(),
                selector: BTreeMap::from([
                    ("group".into(), "payment".into()),
                    ("topic".into(), "order-placed".into())
                ]),
                target_type: TargetType::AverageValue,
                target: 100.0,
            }]
        );
        // The exporter's cap: one replica's share, the target.
        assert_eq!(scalable_lag_cap(&specs), Some(100));
        let auth = specs
            .iter()
            .find(|s| s.workload == "auth")
            .context("auth")?;
        assert!(auth.external.is_empty());
        Ok(())
    }

    #[test]
    fn recommendation_follows_the_controller_formula() {
        assert_eq!(recommend(2, 0.75, 0.7), 2, "within tolerance");
        assert_eq!(recommend(2, 1.4, 0.7), 4);
        assert_eq!(recommend(3, 0.95, 0.7), 5, "ceil(3 × 1.357)");
        assert_eq!(recommend(4, 0.2, 0.7), 2);
    }

    #[test]
    fn scale_up_is_rate_limited_and_clamped_at_max() {
        let s = spec();
        let mut state = HpaState::default();
        // 2 → wants 20: Max(4 pods, 100%) per 15 s allows 6; then max 10 clamps and says so.
        assert_eq!(
            state.decide(&s, 0.0, 2, 20),
            Decision {
                desired: 6,
                scaling_limited: false
            }
        );
        assert_eq!(
            state.decide(&s, 5.0, 6, 20),
            Decision {
                desired: 6,
                scaling_limited: false
            },
            "same period"
        );
        assert_eq!(
            state.decide(&s, 16.0, 6, 20),
            Decision {
                desired: 10,
                scaling_limited: true
            }
        );
    }

    #[test]
    fn scale_down_waits_for_the_stabilization_window() {
        let s = spec();
        let mut state = HpaState::default();
        assert_eq!(state.decide(&s, 0.0, 8, 8).desired, 8);
        // Load gone: recommendations drop, but the window still holds the 8.
        assert_eq!(state.decide(&s, 15.0, 8, 2).desired, 8);
        assert_eq!(state.decide(&s, 45.0, 8, 2).desired, 8);
        // Window (60 s) passed: down, at most 50% per 15 s, never below min.
        assert_eq!(state.decide(&s, 61.0, 8, 2).desired, 4);
        assert_eq!(state.decide(&s, 77.0, 4, 2).desired, 2);
        // Past the window, wanting 1: the min bound holds it at 2, and says so.
        assert_eq!(
            state.decide(&s, 200.0, 2, 1),
            Decision {
                desired: 2,
                scaling_limited: true
            }
        );
    }

    #[test]
    fn manifests_parse_with_kubernetes_defaults() -> anyhow::Result<()> {
        let dir = std::env::temp_dir().join(format!("surge-hpa-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let path = dir.join("hpa.yaml");
        std::fs::write(
            &path,
            "apiVersion: v1\nkind: Service\nmetadata: {name: x}\n---\n\
             apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {name: orders, namespace: shop}\n\
             spec:\n  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: orders}\n  maxReplicas: 10\n\
             \x20 metrics:\n  - type: Resource\n    resource: {name: cpu, target: {type: Utilization, averageUtilization: 70}}\n",
        )?;
        let specs = load_manifests(&path)?;
        assert_eq!(specs.len(), 1);
        assert_eq!((specs[0].min, specs[0].max, specs[0].target), (1, 10, 0.7));
        assert_eq!(specs[0].scale_down.stabilization, Duration::from_secs(300));
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }
}
