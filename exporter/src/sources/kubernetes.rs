//! Pod CPU against the HPA target from the Kubernetes API.
//!
//! Pods, ReplicaSets and HPAs come from watches (kube-runtime reflectors): one LIST at
//! start, then a WATCH stream, so API load does not grow with scrapes or cycles. PodMetrics
//! (`metrics.k8s.io`) cannot be watched and is listed once per namespace per cycle.
//! Targets are the configured namespaces (or `all`, when none are configured).

mod model;
mod pod_metrics;

use std::collections::{HashMap, HashSet};
use std::fmt::Debug;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, anyhow};
use async_trait::async_trait;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use surge_metrics::catalogue::kubernetes::POD_METRICS_AVAILABLE;
use surge_metrics::{Sample, SampleSet};
use tokio::task::JoinHandle;

use self::model::{HpaTiming, samples, usage_map};
use self::pod_metrics::PodMetrics;
use crate::check::{self, ConfigError};
use crate::source::Source;
use crate::sync::lock;

/// `[kubernetes]` as written; also its checked settings (every field is usable as parsed).
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Section {
    /// Time between collections.
    #[serde(default = "check::default_interval", with = "humantime_serde")]
    #[schemars(with = "String", extend("format" = "duration"))]
    pub(crate) interval: Duration,
    /// Per target; a slower target is marked down (`surge_source_up` 0).
    #[serde(default = "check::default_timeout", with = "humantime_serde")]
    #[schemars(with = "String", extend("format" = "duration"))]
    timeout: Duration,
    /// Namespaces to watch; empty means all namespaces (needs cluster-wide RBAC).
    #[serde(default)]
    namespaces: Vec<String>,
    /// Kubeconfig file; without it, in-cluster config, then `$KUBECONFIG` / `~/.kube/config`.
    #[schemars(example = &"/etc/surge-exporter/kubeconfig")]
    kubeconfig: Option<PathBuf>,
    /// Kubeconfig context to use (default: the file's current context).
    #[schemars(example = &"prod-eu")]
    context: Option<String>,
    /// The HPA controller's `--horizontal-pod-autoscaler-cpu-initialization-period`.
    #[serde(default = "default_cpu_initialization", with = "humantime_serde")]
    #[schemars(with = "String", extend("format" = "duration"))]
    cpu_initialization_period: Duration,
    /// The HPA controller's `--horizontal-pod-autoscaler-initial-readiness-delay`.
    #[serde(default = "default_readiness_delay", with = "humantime_serde")]
    #[schemars(with = "String", extend("format" = "duration"))]
    initial_readiness_delay: Duration,
}

/// `[kubernetes]`, checked.
pub(crate) type Settings = Section;

fn default_cpu_initialization() -> Duration {
    Duration::from_secs(300)
}
fn default_readiness_delay() -> Duration {
    Duration::from_secs(30)
}

impl Section {
    pub(crate) fn settings(self) -> Result<Settings, ConfigError> {
        check::timing("kubernetes", self.interval, self.timeout)?;
        let mut seen = HashSet::new();
        for (i, ns) in self.namespaces.iter().enumerate() {
            if !is_dns_label(ns) {
                return Err(ConfigError::field(
                    format!("kubernetes.namespaces[{i}]"),
                    format!("{ns:?} is not a valid namespace name"),
                ));
            }
            if !seen.insert(ns) {
                return Err(ConfigError::field(
                    format!("kubernetes.namespaces[{i}]"),
                    format!("duplicate namespace {ns:?}"),
                ));
            }
        }
        Ok(self)
    }
}

/// RFC 1123 label, as Kubernetes requires for namespace names.
pub(crate) fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// The label used as target when every namespace is watched.
const ALL_NAMESPACES: &str = "all";

pub(crate) struct KubernetesSource {
    section: Settings,
    cluster: tokio::sync::Mutex<Option<Arc<Cluster>>>,
}

/// Watch caches for one target (a namespace or all namespaces).
struct Scope {
    namespace: Option<String>,
    pods: Store<Pod>,
    replicasets: Store<ReplicaSet>,
    hpas: Store<HorizontalPodAutoscaler>,
    /// Last error of each watch, cleared by its next good event.
    watch_errors: Arc<Mutex<HashMap<&'static str, String>>>,
}

struct Cluster {
    client: Client,
    scopes: HashMap<String, Scope>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl KubernetesSource {
    pub(crate) fn new(settings: &Settings) -> Self {
        KubernetesSource {
            section: settings.clone(),
            cluster: tokio::sync::Mutex::new(None),
        }
    }

    fn timing(&self) -> HpaTiming {
        HpaTiming {
            cpu_initialization_period: self.section.cpu_initialization_period,
            initial_readiness_delay: self.section.initial_readiness_delay,
        }
    }

    /// Connect and start the watches on first use; retried every cycle until it works, so a
    /// missing kubeconfig or an unreachable API marks this source down, never the exporter.
    async fn cluster(&self) -> anyhow::Result<Arc<Cluster>> {
        let mut slot = self.cluster.lock().await;
        if let Some(cluster) = slot.as_ref() {
            return Ok(Arc::clone(cluster));
        }
        let client = self.client().await?;
        let mut scopes = HashMap::new();
        let mut tasks = Vec::new();
        let namespaces: Vec<Option<String>> = if self.section.namespaces.is_empty() {
            vec![None]
        } else {
            self.section.namespaces.iter().cloned().map(Some).collect()
        };
        for namespace in namespaces {
            let errors = Arc::new(Mutex::new(HashMap::new()));
            let (pods, t1) = watch::<Pod>(&client, namespace.as_deref(), "pods", &errors);
            let (replicasets, t2) =
                watch::<ReplicaSet>(&client, namespace.as_deref(), "replicasets", &errors);
            let (hpas, t3) = watch::<HorizontalPodAutoscaler>(
                &client,
                namespace.as_deref(),
                "horizontalpodautoscalers",
                &errors,
            );
            tasks.extend([t1, t2, t3]);
            let target = namespace
                .clone()
                .unwrap_or_else(|| ALL_NAMESPACES.to_string());
            scopes.insert(
                target,
                Scope {
                    namespace,
                    pods,
                    replicasets,
                    hpas,
                    watch_errors: errors,
                },
            );
        }
        let cluster = Arc::new(Cluster {
            client,
            scopes,
            tasks,
        });
        *slot = Some(Arc::clone(&cluster));
        Ok(cluster)
    }

    async fn client(&self) -> anyhow::Result<Client> {
        client(
            self.section.kubeconfig.as_deref(),
            self.section.context.as_deref(),
        )
        .await
    }

    async fn collect_scope(&self, cluster: &Cluster, target: &str) -> anyhow::Result<Vec<Sample>> {
        let scope = cluster
            .scopes
            .get(target)
            .ok_or_else(|| anyhow!("unknown target {target}"))?;
        // Wait for the first LIST of every watch, at most most of the cycle's budget.
        let budget = self.section.timeout.mul_f64(0.8);
        let synced = tokio::time::timeout(budget, async {
            let _ = scope.pods.wait_until_ready().await;
            let _ = scope.replicasets.wait_until_ready().await;
            let _ = scope.hpas.wait_until_ready().await;
        })
        .await;
        {
            let errors = lock(&scope.watch_errors);
            if let Some((kind, error)) = errors.iter().next() {
                return Err(anyhow!("{kind} watch failing: {error}"));
            }
        }
        if synced.is_err() {
            return Err(anyhow!(
                "watches not synced within {}",
                humantime::format_duration(budget)
            ));
        }

        let metrics_api: Api<PodMetrics> = match &scope.namespace {
            Some(ns) => Api::namespaced(cluster.client.clone(), ns),
            None => Api::all(cluster.client.clone()),
        };
        // Half the budget at most: a hung metrics-server must not cost the HPA series.
        let list = tokio::time::timeout(
            self.section.timeout / 2,
            metrics_api.list(&ListParams::default()),
        )
        .await;
        let (usage, available) = match list {
            Ok(Ok(list)) => (Some(usage_map(&list.items).map_err(|e| anyhow!(e))?), true),
            // The API server answered but metrics.k8s.io did not (metrics-server missing or
            // unhealthy), or it hung: keep HPA and pod series, drop CPU, and say so.
            Ok(Err(kube::Error::Api(status))) => {
                tracing::warn!(target, code = status.code, message = %status.message, "metrics.k8s.io unavailable");
                (None, false)
            }
            Err(_) => {
                tracing::warn!(target, "metrics.k8s.io did not answer in time");
                (None, false)
            }
            Ok(Err(other)) => return Err(anyhow!("listing PodMetrics: {other}")),
        };
        let pods = scope.pods.state();
        let replicasets = scope.replicasets.state();
        let hpas = scope.hpas.state();
        let inputs = model::Inputs {
            pods: &pods,
            replicasets: &replicasets,
            hpas: &hpas,
            usage: usage.as_ref(),
            now: jiff::Timestamp::now(),
            timing: self.timing(),
        };
        let mut out = samples(&inputs).map_err(|e| anyhow!(e))?;
        out.push(Sample::new(
            &POD_METRICS_AVAILABLE,
            vec![("target", target.to_string())],
            f64::from(u8::from(available)),
        ));
        Ok(out)
    }
}

fn watch<K>(
    client: &Client,
    namespace: Option<&str>,
    kind: &'static str,
    errors: &Arc<Mutex<HashMap<&'static str, String>>>,
) -> (Store<K>, JoinHandle<()>)
where
    K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Debug
        + Send
        + Sync
        + 'static,
{
    let api: Api<K> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let (reader, writer) = reflector::store();
    let stream =
        reflector::reflector(writer, watcher(api, watcher::Config::default())).default_backoff();
    let errors = Arc::clone(errors);
    let task = tokio::spawn(async move {
        stream
            .for_each(|event| {
                let mut errors = lock(&errors);
                match event {
                    Ok(_) => {
                        errors.remove(kind);
                    }
                    Err(error) => {
                        if !errors.contains_key(kind) {
                            tracing::warn!(kind, %error, "watch error; retrying with backoff");
                        }
                        errors.insert(kind, error.to_string());
                    }
                }
                futures::future::ready(())
            })
            .await;
    });
    (reader, task)
}

#[async_trait]
impl Source for KubernetesSource {
    fn name(&self) -> &'static str {
        "kubernetes"
    }
    fn interval(&self) -> Duration {
        self.section.interval
    }
    fn timeout(&self) -> Duration {
        self.section.timeout
    }
    fn targets(&self) -> Vec<String> {
        if self.section.namespaces.is_empty() {
            vec![ALL_NAMESPACES.to_string()]
        } else {
            self.section.namespaces.clone()
        }
    }
    async fn start(&self) {
        if let Err(error) = self.cluster().await {
            tracing::warn!(%error, "kubernetes source not started yet; retrying each cycle");
        }
    }
    async fn collect(&self, target: &str) -> anyhow::Result<SampleSet> {
        let cluster = self.cluster().await?;
        self.collect_scope(&cluster, target)
            .await
            .map(SampleSet::from)
    }
}

/// A client from `kubeconfig` (and its `context`), else in-cluster config, then
/// `$KUBECONFIG` / `~/.kube/config`; no in-request retries.
pub(crate) async fn client(
    kubeconfig: Option<&std::path::Path>,
    context: Option<&str>,
) -> anyhow::Result<Client> {
    let config = match kubeconfig {
        Some(path) => {
            let file = Kubeconfig::read_from(path)
                .with_context(|| format!("reading kubeconfig {}", path.display()))?;
            let options = KubeConfigOptions {
                context: context.map(str::to_string),
                ..Default::default()
            };
            kube::Config::from_custom_kubeconfig(file, &options)
                .await
                .with_context(|| format!("loading kubeconfig {}", path.display()))?
        }
        None if context.is_some() => {
            let options = KubeConfigOptions {
                context: context.map(str::to_string),
                ..Default::default()
            };
            kube::Config::from_kubeconfig(&options)
                .await
                .context("loading kubeconfig")?
        }
        None => kube::Config::infer()
            .await
            .context("no in-cluster service account and no usable kubeconfig")?,
    };
    let mut config = config;
    if config.accept_invalid_certs {
        tracing::warn!(
            server = %config.cluster_url,
            "kubeconfig sets insecure-skip-tls-verify: the API server's certificate is not checked, so anyone in the path can pose as it"
        );
    }
    // No in-request retries: a cycle that fails is retried by the next cycle, and
    // retrying inside one would only push the whole target past its timeout.
    config.default_retry = false;
    Client::try_from(config).context("building Kubernetes client")
}
