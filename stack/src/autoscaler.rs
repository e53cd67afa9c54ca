//! The local HPA: every sync period it measures each workload's replicas from `/proc` (the
//! same sampler and HPA-exact ratio as surge-exporter) and each External metric from
//! Prometheus, takes the controller's multi-metric recommendation, runs
//! `hpa::HpaState::decide`, starts or stops replica processes, points nginx at the new set,
//! and publishes the same `surge_hpa_*` families the exporter reads from Kubernetes.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use surge_metrics::Sample;
use surge_metrics::hpa::{HpaMetric, HpaStatus, Resources, workload_cpu};
use surge_metrics::proc::ProcSampler;
use surge_metrics::state::{MetricType, TargetType};
use surge_metrics::store::Store;
use surge_servers::Nginx;

use crate::hpa::{ExternalMetric, HpaSpec, HpaState, Measured, proposals};
use crate::lock;
use crate::replicas::{ReplicaSet, nginx_config};

/// What the autoscaler and the stack share: the replica sets and the load balancer.
pub struct Fleet {
    pub sets: Mutex<BTreeMap<&'static str, ReplicaSet>>,
    pub nginx: Nginx,
    pub lb_port: u16,
    /// Logins and registrations per second per client (None: unlimited).
    pub auth_rate: Option<u32>,
    /// Where Prometheus reads the shop's scrape targets (file_sd), if monitoring runs.
    pub prometheus_targets: Option<std::path::PathBuf>,
}

impl Fleet {
    /// A rolling update of `service` with `env` set over its environment (a Deployment's
    /// rollout after its pod template changed; with no change, `kubectl rollout restart`):
    /// one replica at a time, the new one ready and routed before the old one is stopped, so
    /// no request and no message is dropped. Returns how many replicas were replaced.
    pub fn roll(&self, service: &str, env: &[(&str, &str)]) -> anyhow::Result<usize> {
        use anyhow::Context as _;
        let count = {
            let mut sets = lock(&self.sets);
            let set = sets
                .get_mut(service)
                .with_context(|| format!("no service {service}"))?;
            for (key, value) in env {
                set.set_env(key, value);
            }
            set.len()
        };
        for _ in 0..count {
            let old = {
                let mut sets = lock(&self.sets);
                let set = sets
                    .get_mut(service)
                    .with_context(|| format!("no service {service}"))?;
                let old = set.replace_oldest()?;
                self.publish(&sets)?;
                old
            };
            // Stopped outside the lock: it finishes its message and leaves the group in
            // its own time while the autoscaler keeps working.
            drop(old);
        }
        Ok(count)
    }

    /// Rewrite nginx's upstreams (and Prometheus's targets) from the current replica sets.
    pub fn publish(&self, sets: &BTreeMap<&'static str, ReplicaSet>) -> anyhow::Result<()> {
        let ordered: Vec<&ReplicaSet> = sets.values().collect();
        self.nginx
            .reload(&nginx_config(self.lb_port, &ordered, self.auth_rate))?;
        if let Some(path) = &self.prometheus_targets {
            let groups: Vec<serde_json::Value> = sets
                .values()
                .flat_map(|set| {
                    set.replicas().iter().map(move |r| {
                        serde_json::json!({
                            "targets": [format!("127.0.0.1:{}", r.port)],
                            "labels": {"service": set.service.name, "pod": r.name, "namespace": "shop"},
                        })
                    })
                })
                .collect();
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, serde_json::to_string_pretty(&groups)?)?;
            std::fs::rename(tmp, path)?;
        }
        Ok(())
    }
}

/// Where External metric values come from (`None`: unavailable).
pub type ExternalSource = Box<dyn Fn(&ExternalMetric) -> Option<f64> + Send>;

pub struct Autoscaler {
    specs: Vec<HpaSpec>,
    /// Bounds set through the local API, over the manifests'.
    cluster: Option<Arc<crate::api::Cluster>>,
    external: Option<ExternalSource>,
    /// What each workload's replicas request (the Deployments').
    requests: BTreeMap<String, Resources>,
    states: HashMap<String, HpaState>,
    samplers: HashMap<String, ProcSampler>,
    started: Instant,
}

impl Autoscaler {
    pub fn new(specs: Vec<HpaSpec>, requests: BTreeMap<String, Resources>) -> Self {
        Autoscaler {
            specs,
            cluster: None,
            external: None,
            requests,
            states: HashMap::new(),
            samplers: HashMap::new(),
            started: Instant::now(),
        }
    }

    /// Read External metrics from `source` (without one they are unavailable).
    pub fn with_external(mut self, source: ExternalSource) -> Self {
        self.external = Some(source);
        self
    }

    /// Take the HPAs' bounds from `cluster` (the local API) where set there.
    pub fn obeying(mut self, cluster: Arc<crate::api::Cluster>) -> Self {
        self.cluster = Some(cluster);
        self
    }

    /// One sync of every HPA; returns the `surge_hpa_*` samples.
    pub fn sync(&mut self, fleet: &Fleet) -> anyhow::Result<Vec<Sample>> {
        let now = self.started.elapsed().as_secs_f64();
        let mut samples = Vec::new();
        let mut changed = false;
        let mut sets = lock(&fleet.sets);
        let specs: Vec<HpaSpec> = match &self.cluster {
            Some(cluster) => self.specs.iter().map(|s| cluster.bounded(s)).collect(),
            None => self.specs.clone(),
        };
        for spec in &specs {
            let Some(set) = sets.get_mut(spec.workload.as_str()) else {
                continue;
            };
            let Some(resources) = self.requests.get(&spec.workload) else {
                continue;
            };
            let pods = self
                .samplers
                .entry(spec.workload.clone())
                .or_default()
                .sample(set.pods(), resources);
            let cpu = workload_cpu(&pods);
            let counted = cpu.counted() as i32;
            let current = set.len() as i32;
            // The controller decides on whole percent.
            let utilization = cpu.hpa_utilization_ratio;
            let measured = Measured {
                cpu: utilization.map(|u| (counted, u)),
                ready: pods.iter().filter(|p| p.ready).count() as i32,
                external: spec
                    .external
                    .iter()
                    .map(|m| self.external.as_ref().and_then(|source| source(m)))
                    .collect(),
            };
            let (proposed, recommendation) = proposals(spec, current, &measured);
            let state = self.states.entry(spec.name.clone()).or_default();
            // Without an answer (no measurement yet, or a metric missing while the others
            // would scale down) the controller holds.
            let decision = state.decide(spec, now, current, recommendation.unwrap_or(current));
            if let Some(cluster) = &self.cluster {
                lock(&cluster.desired).insert(spec.name.clone(), decision.desired);
            }
            if decision.desired != current {
                tracing::info!(
                    workload = %spec.workload,
                    from = current,
                    to = decision.desired,
                    utilization = ?utilization,
                    proposals = ?proposed,
                    "scaling"
                );
                set.scale_to(usize::try_from(decision.desired).unwrap_or(0))?;
                changed = true;
            }
            HpaStatus {
                namespace: spec.namespace.clone(),
                hpa: spec.name.clone(),
                workload: spec.workload.clone(),
                min: spec.min,
                max: spec.max,
                current: Some(set.len() as i32),
                desired: Some(decision.desired),
                target_cpu: Some(spec.target),
                observed_cpu: utilization,
                scaling_limited: decision.scaling_limited,
                able_to_scale: true,
                metrics: status_metrics(spec, current, &measured),
            }
            .samples(&mut samples);
        }
        if changed {
            fleet.publish(&sets)?;
        }
        Ok(samples)
    }
}

/// Each metric of `spec` with what this sync measured, in the units the HPA status uses:
/// utilization as a ratio, AverageValue per replica, Value as it is.
fn status_metrics(spec: &HpaSpec, current: i32, measured: &Measured) -> Vec<HpaMetric> {
    let mut out = vec![HpaMetric {
        metric_type: MetricType::Resource,
        metric_name: "cpu".into(),
        target_type: TargetType::Utilization,
        target: spec.target,
        current: measured.cpu.map(|(_, u)| u),
    }];
    for (metric, value) in spec.external.iter().zip(&measured.external) {
        out.push(HpaMetric {
            metric_type: MetricType::External,
            metric_name: metric.label(),
            target_type: metric.target_type,
            target: metric.target,
            current: value.map(|v| match metric.target_type {
                TargetType::AverageValue => v / f64::from(current.max(1)),
                _ => v,
            }),
        });
    }
    out
}

/// Run the autoscaler on its own thread until `stop`; its samples go to `store`. Replicas
/// are started from this thread, which lives as long as the stack (their parent-death
/// signal is tied to it).
pub fn spawn(
    mut autoscaler: Autoscaler,
    fleet: Arc<Fleet>,
    period: Duration,
    store: Arc<Store>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    store.expect("autoscaler", "local", period);
    std::thread::Builder::new()
        .name("local-hpa".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                let outcome = autoscaler.sync(&fleet).map_err(|e| format!("{e:#}"));
                if let Err(error) = &outcome {
                    tracing::warn!(%error, "autoscaler sync failed");
                }
                store.record("autoscaler", "local", outcome, started.elapsed());
                let deadline = Instant::now() + period;
                while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        })
}

/// Unix seconds, for logs and state files.
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}
