//! The local stack as a small cluster: the part of the Kubernetes API the panel uses, served
//! on loopback and backed by the stack itself, so `surge --kube-context surge-local` reads and
//! acts on the local stack exactly as on a cluster.
//!
//! - HorizontalPodAutoscalers (`autoscaling/v2`): listed, read, and merge-patched; the local
//!   HPA obeys a changed `minReplicas`/`maxReplicas` from its next sync.
//! - Deployments (`apps/v1`) and their `scale` subresource: read, scaled, and restarted by the
//!   pod template's `kubectl.kubernetes.io/restartedAt` (a rolling update, one replica at a
//!   time, the new one ready before the old one stops).
//! - `SelfSubjectAccessReview` (everything is allowed: the stack is the user's own) and
//!   `SelfSubjectReview` (the OS user).
//! - The service proxy to Prometheus and Alertmanager under prometheus-operator's names
//!   (`monitoring/prometheus-operated:web`, `monitoring/alertmanager-operated:web`).
//!
//! Anything else is a 404 with the API server's `Status` shape.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::autoscaler::Fleet;
use crate::hpa::HpaSpec;
use crate::lock;

/// The namespace the shop's objects are in, as in the manifests.
pub const NAMESPACE: &str = "shop";

/// The kubeconfig context name the stack writes.
pub const CONTEXT: &str = "surge-local";

/// The annotation a rollout restart sets.
const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";

/// What the API changes and the local HPA obeys.
#[derive(Default)]
pub struct Cluster {
    /// HPA name → (minReplicas, maxReplicas) set through the API, over the manifests'.
    pub bounds: Mutex<BTreeMap<String, (i32, i32)>>,
    /// Workload → its pod template's annotations.
    annotations: Mutex<BTreeMap<String, BTreeMap<String, String>>>,
    /// HPA name → desired replicas at the last sync.
    pub desired: Mutex<BTreeMap<String, i32>>,
}

impl Cluster {
    /// `spec` with the bounds set through the API.
    pub fn bounded(&self, spec: &HpaSpec) -> HpaSpec {
        let mut spec = spec.clone();
        if let Some((min, max)) = lock(&self.bounds).get(&spec.name) {
            (spec.min, spec.max) = (*min, *max);
        }
        spec
    }
}

/// Work that starts replica processes: run on the stack's long-lived worker thread, because a
/// replica's parent-death signal is tied to the thread that started it (a short-lived thread
/// would take its replicas with it when it ends).
pub type Job = Box<dyn FnOnce() + Send>;

/// What the handlers reach.
#[derive(Clone)]
pub struct Api {
    pub cluster: Arc<Cluster>,
    /// The worker that scales and rolls replica sets.
    pub jobs: std::sync::mpsc::Sender<Job>,
    pub fleet: Arc<Fleet>,
    pub hpas: Vec<HpaSpec>,
    /// `host:port` of Prometheus and Alertmanager, once they run.
    pub prometheus: Arc<std::sync::OnceLock<String>>,
    pub alertmanager: Arc<std::sync::OnceLock<String>>,
}

pub fn router(api: Api) -> Router {
    Router::new().fallback(handle).with_state(api)
}

fn status(code: u16, reason: &str, message: &str) -> Response {
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message, "reason": reason, "code": code,
    });
    let code = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// A refusal, boxed: results carry it cheaply.
fn refuse(code: u16, reason: &str, message: &str) -> Box<Response> {
    Box::new(status(code, reason, message))
}

fn object(body: Value) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn handle(
    State(api): State<Api>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().trim_end_matches('/').to_owned();
    if let Some(rest) = path.strip_prefix("/api/v1/namespaces/monitoring/services/") {
        return proxy(&api, rest, method, uri.query(), &headers, body).await;
    }
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let kind = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned();
    let api = &api;
    let answer = match (method.as_str(), parts.as_slice()) {
        ("GET", ["api", "v1", "services"]) => Ok(services(api, uri.query().unwrap_or_default())),
        (
            "POST",
            [
                "apis",
                "authorization.k8s.io",
                "v1",
                "selfsubjectaccessreviews",
            ],
        ) => access_review(&body),
        ("POST", ["apis", "authentication.k8s.io", "v1", "selfsubjectreviews"]) => Ok(json!({
            "apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview",
            "metadata": {},
            "status": {"userInfo": {"username": who(), "groups": ["system:authenticated"]}},
        })),
        (
            "GET",
            [
                "apis",
                "autoscaling",
                "v2",
                "namespaces",
                NAMESPACE,
                "horizontalpodautoscalers",
            ],
        ) => Ok(json!({
            "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscalerList",
            "metadata": {},
            "items": api.hpas.iter().map(|h| hpa(api, h)).collect::<Vec<_>>(),
        })),
        (
            method @ ("GET" | "PATCH"),
            [
                "apis",
                "autoscaling",
                "v2",
                "namespaces",
                NAMESPACE,
                "horizontalpodautoscalers",
                name,
            ],
        ) => match api.hpas.iter().find(|h| h.name == *name) {
            None => Err(not_found("horizontalpodautoscalers.autoscaling", name)),
            Some(spec) if method == "GET" => Ok(hpa(api, spec)),
            Some(spec) => patch_hpa(api, spec, &kind, &body),
        },
        (
            method @ ("GET" | "PATCH"),
            [
                "apis",
                "apps",
                "v1",
                "namespaces",
                NAMESPACE,
                "deployments",
                name,
                rest @ ..,
            ],
        ) => {
            let known = lock(&api.fleet.sets).contains_key(*name);
            match (known, method, rest) {
                (false, ..) => Err(not_found("deployments.apps", name)),
                (true, "GET", []) => Ok(deployment(api, name)),
                (true, "GET", ["scale"]) => Ok(scale(api, name)),
                (true, "PATCH", []) => patch_deployment(api, name, &kind, &body),
                (true, "PATCH", ["scale"]) => patch_scale(api, name, &kind, &body),
                _ => Err(refuse(
                    404,
                    "NotFound",
                    "the server could not find the requested resource",
                )),
            }
        }
        _ => Err(refuse(
            404,
            "NotFound",
            &format!("the local stack does not serve {method} {path}"),
        )),
    };
    match answer {
        Ok(body) => object(body),
        Err(refusal) => *refusal,
    }
}

fn not_found(resource: &str, name: &str) -> Box<Response> {
    refuse(404, "NotFound", &format!("{resource} \"{name}\" not found"))
}

/// The OS user the stack runs as: who the local cluster says the caller is.
fn who() -> String {
    ["USER", "LOGNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|u| !u.is_empty()))
        .unwrap_or_else(|| "surge-local".into())
}

fn access_review(body: &[u8]) -> Result<Value, Box<Response>> {
    let mut review: Value = serde_json::from_slice(body)
        .map_err(|e| refuse(400, "BadRequest", &format!("the body is not JSON: {e}")))?;
    review["status"] = json!({"allowed": true, "reason": "the local stack is its user's own"});
    Ok(review)
}

fn current_replicas(api: &Api, workload: &str) -> i32 {
    lock(&api.fleet.sets)
        .get(workload)
        .map_or(0, |s| i32::try_from(s.len()).unwrap_or(i32::MAX))
}

fn hpa(api: &Api, spec: &HpaSpec) -> Value {
    let spec = api.cluster.bounded(spec);
    let current = current_replicas(api, &spec.workload);
    let desired = lock(&api.cluster.desired)
        .get(&spec.name)
        .copied()
        .unwrap_or(current);
    json!({
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": spec.name, "namespace": spec.namespace},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": spec.workload},
            "minReplicas": spec.min,
            "maxReplicas": spec.max,
        },
        "status": {"currentReplicas": current, "desiredReplicas": desired},
    })
}

/// The patch type's name, or the 415 the API server answers.
fn merge_patch(kind: &str, body: &[u8]) -> Result<Value, Box<Response>> {
    if !matches!(
        kind,
        "application/merge-patch+json" | "application/strategic-merge-patch+json"
    ) {
        return Err(refuse(
            415,
            "UnsupportedMediaType",
            &format!("the local stack takes merge and strategic merge patches, not {kind:?}"),
        ));
    }
    serde_json::from_slice(body)
        .map_err(|e| refuse(400, "BadRequest", &format!("the patch is not JSON: {e}")))
}

fn patch_hpa(api: &Api, spec: &HpaSpec, kind: &str, body: &[u8]) -> Result<Value, Box<Response>> {
    let patch = merge_patch(kind, body)?;
    let current = api.cluster.bounded(spec);
    let read = |field: &str, now: i32| -> Result<i32, Box<Response>> {
        match &patch["spec"][field] {
            Value::Null if patch["spec"].get(field).is_some() && field == "minReplicas" => Ok(1),
            Value::Null => Ok(now),
            value => value
                .as_i64()
                .and_then(|v| i32::try_from(v).ok())
                .ok_or_else(|| {
                    refuse(
                        422,
                        "Invalid",
                        &format!("spec.{field}: Invalid value: {value}"),
                    )
                }),
        }
    };
    let (min, max) = (
        read("minReplicas", current.min)?,
        read("maxReplicas", current.max)?,
    );
    if min < 1 {
        return Err(refuse(
            422,
            "Invalid",
            &format!("spec.minReplicas: Invalid value: {min}: must be greater than or equal to 1"),
        ));
    }
    if max < min {
        return Err(refuse(
            422,
            "Invalid",
            &format!(
                "spec.maxReplicas: Invalid value: {max}: must be greater than or equal to `minReplicas`"
            ),
        ));
    }
    lock(&api.cluster.bounds).insert(spec.name.clone(), (min, max));
    tracing::info!(hpa = %spec.name, min, max, "HPA bounds set through the local API");
    Ok(hpa(api, spec))
}

fn deployment(api: &Api, name: &str) -> Value {
    let replicas = current_replicas(api, name);
    let annotations = lock(&api.cluster.annotations)
        .get(name)
        .cloned()
        .unwrap_or_default();
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
            "template": {
                "metadata": {"labels": {"app.kubernetes.io/name": name}, "annotations": annotations},
                "spec": {"containers": [{"name": name, "image": "shop"}]},
            },
        },
        "status": {"replicas": replicas},
    })
}

fn scale(api: &Api, name: &str) -> Value {
    let replicas = current_replicas(api, name);
    json!({
        "apiVersion": "autoscaling/v1", "kind": "Scale",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"replicas": replicas},
        "status": {"replicas": replicas, "selector": format!("app.kubernetes.io/name={name}")},
    })
}

fn set_replicas(api: &Api, name: &str, replicas: &Value) -> Result<(), Box<Response>> {
    let n = replicas
        .as_u64()
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| {
            refuse(
                422,
                "Invalid",
                &format!(
                    "spec.replicas: Invalid value: {replicas}: must be greater than or equal to 0"
                ),
            )
        })?;
    let fleet = Arc::clone(&api.fleet);
    let name = name.to_owned();
    // Replicas start in the background (each waits to be ready), as a Deployment's do.
    submit(api, move || {
        let mut sets = lock(&fleet.sets);
        let scaled = sets
            .get_mut(name.as_str())
            .map(|set| set.scale_to(n))
            .transpose()
            .and_then(|_| fleet.publish(&sets));
        if let Err(error) = scaled {
            tracing::warn!(%error, service = %name, "scaling through the local API failed");
        }
    })
}

/// Hand `job` to the worker; an error when the stack is stopping.
fn submit(api: &Api, job: impl FnOnce() + Send + 'static) -> Result<(), Box<Response>> {
    api.jobs
        .send(Box::new(job))
        .map_err(|_| refuse(503, "ServiceUnavailable", "the local stack is stopping"))
}

fn patch_scale(api: &Api, name: &str, kind: &str, body: &[u8]) -> Result<Value, Box<Response>> {
    let patch = merge_patch(kind, body)?;
    set_replicas(api, name, &patch["spec"]["replicas"])?;
    let mut answer = scale(api, name);
    answer["spec"]["replicas"] = patch["spec"]["replicas"].clone();
    Ok(answer)
}

fn patch_deployment(
    api: &Api,
    name: &str,
    kind: &str,
    body: &[u8],
) -> Result<Value, Box<Response>> {
    let patch = merge_patch(kind, body)?;
    if let Some(replicas) = patch["spec"].get("replicas") {
        set_replicas(api, name, replicas)?;
    }
    if let Some(changed) = patch["spec"]["template"]["metadata"]["annotations"].as_object() {
        let restart = {
            let mut all = lock(&api.cluster.annotations);
            let annotations = all.entry(name.to_owned()).or_default();
            let before = annotations.get(RESTARTED_AT).cloned();
            for (key, value) in changed {
                match value.as_str() {
                    Some(v) => annotations.insert(key.clone(), v.to_owned()),
                    None => annotations.remove(key),
                };
            }
            annotations.get(RESTARTED_AT).cloned() != before
        };
        if restart {
            let (fleet, service) = (Arc::clone(&api.fleet), name.to_owned());
            submit(api, move || match fleet.roll(&service, &[]) {
                Ok(n) => tracing::info!(service, replicas = n, "rolled out (restart)"),
                Err(error) => tracing::warn!(%error, service, "the restart's rollout failed"),
            })?;
        }
    }
    Ok(deployment(api, name))
}

/// prometheus-operator's governing Services, for the ones that run, as a list narrowed by
/// the query's equality `fieldSelector` (`metadata.name=…`) and `labelSelector`.
fn services(api: &Api, query: &str) -> Value {
    let selectors: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .filter(|(k, _)| k == "fieldSelector" || k == "labelSelector")
        .flat_map(|(_, v)| {
            v.split(',')
                .filter_map(|term| {
                    let (key, value) = term.split_once('=')?;
                    Some((key.to_owned(), value.trim_start_matches('=').to_owned()))
                })
                .collect::<Vec<_>>()
        })
        .collect();
    let mut items = Vec::new();
    for (name, app, port, running) in [
        (
            "prometheus-operated",
            "prometheus",
            9090,
            api.prometheus.get(),
        ),
        (
            "alertmanager-operated",
            "alertmanager",
            9093,
            api.alertmanager.get(),
        ),
    ] {
        let item = json!({
            "metadata": {
                "name": name, "namespace": "monitoring",
                "labels": {"app.kubernetes.io/name": app},
            },
            "spec": {"ports": [{"name": "web", "port": port}]},
        });
        let selected = selectors.iter().all(|(key, value)| match key.as_str() {
            "metadata.name" => name == value,
            "metadata.namespace" => value == "monitoring",
            label => item["metadata"]["labels"][label].as_str() == Some(value.as_str()),
        });
        if running.is_some() && selected {
            items.push(item);
        }
    }
    json!({"apiVersion": "v1", "kind": "ServiceList", "metadata": {}, "items": items})
}

/// `[scheme:]name[:port]/proxy/rest` to Prometheus or Alertmanager.
async fn proxy(
    api: &Api,
    rest: &str,
    method: Method,
    query: Option<&str>,
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
    let Some((service, rest)) = rest.split_once("/proxy") else {
        return status(404, "NotFound", "not a service proxy path");
    };
    let name = service
        .split(':')
        .find(|p| p.ends_with("-operated"))
        .unwrap_or_default();
    let upstream = match name {
        "prometheus-operated" => api.prometheus.get(),
        "alertmanager-operated" => api.alertmanager.get(),
        _ => None,
    };
    let Some(upstream) = upstream else {
        return status(
            503,
            "ServiceUnavailable",
            &format!("no endpoints available for service \"{name}\""),
        );
    };
    let url = match query {
        Some(q) => format!("http://{upstream}{rest}?{q}"),
        None => format!("http://{upstream}{rest}"),
    };
    let mut request = reqwest::Client::new().request(method, &url).body(body);
    for name in [header::CONTENT_TYPE, header::ACCEPT] {
        if let Some(value) = headers.get(&name) {
            request = request.header(name, value);
        }
    }
    match request.send().await {
        Ok(answer) => {
            let code = answer.status();
            let kind = answer.headers().get(header::CONTENT_TYPE).cloned();
            let bytes = answer.bytes().await.unwrap_or_default();
            let mut response = (code, bytes).into_response();
            if let Some(kind) = kind {
                response.headers_mut().insert(header::CONTENT_TYPE, kind);
            }
            response
        }
        Err(e) => status(
            503,
            "ServiceUnavailable",
            &format!("error trying to reach service: {e}"),
        ),
    }
}

/// A kubeconfig for the local API: one context, [`CONTEXT`], no credentials (loopback).
pub fn kubeconfig(port: u16) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: {CONTEXT}\n  cluster:\n    server: http://127.0.0.1:{port}\n\
         users:\n- name: {CONTEXT}\n  user: {{}}\ncontexts:\n- name: {CONTEXT}\n  context:\n    cluster: {CONTEXT}\n    user: {CONTEXT}\n    namespace: {NAMESPACE}\n\
         current-context: {CONTEXT}\n"
    )
}
