//! A loopback stand-in for the Kubernetes API server — the one allowed stand-in, since no
//! cluster can run here. It serves real-shaped JSON for list and watch requests:
//! `GET /api/v1[/namespaces/{ns}]/pods`, `GET /apis/{group}/{version}[/namespaces/{ns}]/{plural}`,
//! with `?watch=true&resourceVersion=N` streaming newline-delimited watch events, and records
//! every request so tests can assert the API load. Lists honour equality label and field
//! selectors. Services it lists can be reached through its service proxy
//! (`/api/v1/namespaces/{ns}/services/[scheme:]name[:port]/proxy/...`), forwarded to a real
//! server on loopback, as the API server forwards to a pod; with a token required, a request
//! without it gets 401, as from an API server checking credentials.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::{Context, anyhow};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::broadcast;

use crate::serve::OnThread;

mod writes;
pub use writes::Verb;

/// (group, version, plural): `("", "v1", "pods")`, `("apps", "v1", "replicasets")`.
pub type Collection = (String, String, String);

/// One request the stand-in served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    pub method: String,
    pub path: String,
    pub watch: bool,
    /// The request's content type (a patch's kind: merge or strategic merge).
    pub content_type: Option<String>,
    /// The request body as text (empty for reads).
    pub body: String,
}

#[derive(Debug, Clone)]
struct Event {
    resource_version: u64,
    collection: Collection,
    namespace: String,
    kind: &'static str,
    object: Value,
}

#[derive(Default)]
struct ApiState {
    resource_version: u64,
    /// collection → (namespace, name) → object (with apiVersion/kind).
    objects: BTreeMap<Collection, BTreeMap<(String, String), Value>>,
    events: Vec<Event>,
    failures: BTreeMap<Collection, u16>,
    requests: Vec<RequestRecord>,
    /// (namespace, service, port name or number) → the loopback base URL it forwards to.
    upstreams: BTreeMap<(String, String, String), String>,
    /// The bearer token every request must carry, when set.
    token: Option<String>,
    /// What the caller may not do, and who it is (SelfSubjectAccessReview/Review answers).
    access: writes::Access,
}

struct Shared {
    state: Mutex<ApiState>,
    events: broadcast::Sender<Event>,
    /// Flipped on drop so open watch streams end and the server can stop at once.
    stopping: tokio::sync::watch::Sender<bool>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, ApiState> {
        match self.state.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

/// The running stand-in. Dropping it stops the server.
pub struct KubeApiStandIn {
    shared: Arc<Shared>,
    // Dropped after `shared` flags stopping (see Drop).
    server: OnThread,
}

impl KubeApiStandIn {
    /// Start on a free loopback port, on its own thread and runtime.
    pub fn start() -> anyhow::Result<Self> {
        let (events, _) = broadcast::channel(1024);
        let shared = Arc::new(Shared {
            state: Mutex::new(ApiState {
                resource_version: 1000,
                ..Default::default()
            }),
            events,
            stopping: tokio::sync::watch::Sender::new(false),
        });
        let app = Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&shared));
        Ok(KubeApiStandIn {
            server: OnThread::start("kube-api-stand-in", app)?,
            shared,
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        self.server.addr()
    }

    /// From now on every request must carry `Authorization: Bearer {token}` (401 otherwise).
    pub fn require_token(&self, token: &str) {
        self.shared.lock().token = Some(token.to_owned());
    }

    /// A Service `namespace/name` with `labels` and one port (`port_name`, `port`), whose
    /// service proxy forwards to `upstream` (a base URL on loopback, e.g. a real Prometheus).
    pub fn expose_service(
        &self,
        namespace: &str,
        name: &str,
        labels: &Value,
        port_name: &str,
        port: u16,
        upstream: &str,
    ) -> anyhow::Result<()> {
        self.apply(&json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "spec": {"clusterIP": "None", "ports": [{"name": port_name, "port": port, "protocol": "TCP"}]},
        }))?;
        let mut state = self.shared.lock();
        for key in [port_name.to_owned(), port.to_string()] {
            state.upstreams.insert(
                (namespace.to_owned(), name.to_owned(), key),
                upstream.trim_end_matches('/').to_owned(),
            );
        }
        Ok(())
    }

    /// Write a kubeconfig pointing at this server (no auth: loopback only).
    pub fn write_kubeconfig(&self, path: &Path) -> anyhow::Result<()> {
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: stand-in\n  cluster:\n    server: {}\n\
             users:\n- name: tester\n  user: {{}}\ncontexts:\n- name: stand-in\n  context:\n    cluster: stand-in\n    user: tester\n\
             current-context: stand-in\n",
            self.url()
        );
        std::fs::write(path, text).context("writing kubeconfig")
    }

    /// Add or replace objects: a single object or a `*List` with `items`, each carrying
    /// `apiVersion` and `kind` as `kubectl get -o json` prints them. Watchers get events.
    pub fn apply(&self, document: &Value) -> anyhow::Result<()> {
        let items: Vec<Value> = match document.get("items").and_then(Value::as_array) {
            Some(items) => items.clone(),
            None => vec![document.clone()],
        };
        let mut state = self.shared.lock();
        for item in items {
            let collection = collection_of(&item)?;
            let (namespace, name) = name_of(&item)?;
            state.resource_version += 1;
            let rv = state.resource_version;
            let mut item = item;
            if let Some(meta) = item.get_mut("metadata").and_then(Value::as_object_mut) {
                meta.insert("resourceVersion".into(), Value::String(rv.to_string()));
            }
            let existed = state
                .objects
                .entry(collection.clone())
                .or_default()
                .insert((namespace.clone(), name), item.clone())
                .is_some();
            let event = Event {
                resource_version: rv,
                collection,
                namespace,
                kind: if existed { "MODIFIED" } else { "ADDED" },
                object: item,
            };
            state.events.push(event.clone());
            let _ = self.shared.events.send(event);
        }
        Ok(())
    }

    /// Apply every JSON document in `files` (e.g. `pods.json`, `hpas.json`) under `dir`.
    pub fn apply_files(&self, dir: &Path, files: &[&str]) -> anyhow::Result<()> {
        for file in files {
            let path = dir.join(file);
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            let document: Value = serde_json::from_str(&text)
                .with_context(|| format!("parsing {}", path.display()))?;
            self.apply(&document)?;
        }
        Ok(())
    }

    /// Remove an object; watchers get a DELETED event.
    pub fn delete(
        &self,
        collection: &Collection,
        namespace: &str,
        name: &str,
    ) -> anyhow::Result<()> {
        let mut state = self.shared.lock();
        let removed = state
            .objects
            .get_mut(collection)
            .and_then(|objects| objects.remove(&(namespace.to_string(), name.to_string())))
            .ok_or_else(|| anyhow!("no {collection:?} {namespace}/{name}"))?;
        state.resource_version += 1;
        let event = Event {
            resource_version: state.resource_version,
            collection: collection.clone(),
            namespace: namespace.to_string(),
            kind: "DELETED",
            object: removed,
        };
        state.events.push(event.clone());
        let _ = self.shared.events.send(event);
        Ok(())
    }

    /// Make every request for `collection` fail with `status` (e.g. 503 for a metrics-server
    /// outage), or clear the failure with `None`.
    pub fn set_failure(&self, collection: &Collection, status: Option<u16>) {
        let mut state = self.shared.lock();
        match status {
            Some(code) => state.failures.insert(collection.clone(), code),
            None => state.failures.remove(collection),
        };
    }

    /// From now on access reviews answer `allowed: false` for `verb` on `group`'s `resource`
    /// (and `subresource`, empty for the object itself), in every namespace. The write itself
    /// is not refused: the reviews are what a careful client asks first.
    pub fn deny(&self, verb: Verb, group: &str, resource: &str, subresource: &str) {
        self.shared.lock().access.denied.insert((
            verb,
            group.to_owned(),
            resource.to_owned(),
            subresource.to_owned(),
        ));
    }

    /// The user name a SelfSubjectReview answers with ("tester" unless set).
    pub fn set_username(&self, username: &str) {
        self.shared.lock().access.username = username.to_owned();
    }

    /// One stored object, as it is now.
    pub fn object(&self, collection: &Collection, namespace: &str, name: &str) -> Option<Value> {
        self.shared
            .lock()
            .objects
            .get(collection)
            .and_then(|objects| objects.get(&(namespace.to_owned(), name.to_owned())))
            .cloned()
    }

    /// Every request served so far.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared.lock().requests.clone()
    }
}

impl Drop for KubeApiStandIn {
    fn drop(&mut self) {
        // Open watch streams end at once; the server itself stops when `server` drops.
        self.shared.stopping.send_replace(true);
    }
}

/// How a kubeconfig user proves who it is.
#[derive(Debug, Clone, Copy)]
pub enum KubeUser<'a> {
    Anonymous,
    Token(&'a str),
    /// A client certificate and its key (PEM files).
    ClientCert {
        cert: &'a Path,
        key: &'a Path,
    },
}

/// One context of a kubeconfig: its name, the API server's URL, the CA that signed the
/// server's certificate (for https), and the user.
#[derive(Debug, Clone, Copy)]
pub struct KubeContext<'a> {
    pub name: &'a str,
    pub server: &'a str,
    pub ca: Option<&'a Path>,
    pub user: KubeUser<'a>,
}

/// A kubeconfig with `contexts` (each its own cluster and user), `current` the current one;
/// written as JSON, which kubeconfig readers take as the YAML it is a subset of.
pub fn write_kubeconfig_with(
    path: &Path,
    contexts: &[KubeContext<'_>],
    current: Option<&str>,
) -> anyhow::Result<()> {
    let mut clusters = Vec::new();
    let mut users = Vec::new();
    let mut named = Vec::new();
    for c in contexts {
        let mut cluster = json!({"server": c.server});
        if let Some(ca) = c.ca {
            cluster["certificate-authority"] = json!(ca);
        }
        clusters.push(json!({"name": c.name, "cluster": cluster}));
        let user = match c.user {
            KubeUser::Anonymous => json!({}),
            KubeUser::Token(token) => json!({"token": token}),
            KubeUser::ClientCert { cert, key } => {
                json!({"client-certificate": cert, "client-key": key})
            }
        };
        users.push(json!({"name": c.name, "user": user}));
        named.push(json!({"name": c.name, "context": {"cluster": c.name, "user": c.name}}));
    }
    let mut config = json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": clusters, "users": users, "contexts": named,
    });
    if let Some(current) = current {
        config["current-context"] = json!(current);
    }
    std::fs::write(path, serde_json::to_string_pretty(&config)?).context("writing kubeconfig")
}

pub fn pods() -> Collection {
    (String::new(), "v1".into(), "pods".into())
}
pub fn replicasets() -> Collection {
    ("apps".into(), "v1".into(), "replicasets".into())
}
pub fn hpas() -> Collection {
    (
        "autoscaling".into(),
        "v2".into(),
        "horizontalpodautoscalers".into(),
    )
}
pub fn deployments() -> Collection {
    ("apps".into(), "v1".into(), "deployments".into())
}
pub fn statefulsets() -> Collection {
    ("apps".into(), "v1".into(), "statefulsets".into())
}
pub fn pod_metrics() -> Collection {
    ("metrics.k8s.io".into(), "v1beta1".into(), "pods".into())
}

fn collection_of(item: &Value) -> anyhow::Result<Collection> {
    let api_version = item
        .get("apiVersion")
        .and_then(Value::as_str)
        .ok_or_else(|| anyhow!("object without apiVersion"))?;
    let kind = item
        .get("kind")
        .and_then(Value::as_str)
        .ok_or_else(|| anyhow!("object without kind"))?;
    let plural = match kind {
        "Pod" | "PodMetrics" => "pods",
        "ReplicaSet" => "replicasets",
        "Deployment" => "deployments",
        "StatefulSet" => "statefulsets",
        "HorizontalPodAutoscaler" => "horizontalpodautoscalers",
        "Service" => "services",
        other => return Err(anyhow!("stand-in does not serve kind {other}")),
    };
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    Ok((group.into(), version.into(), plural.into()))
}

fn name_of(item: &Value) -> anyhow::Result<(String, String)> {
    let meta = item
        .get("metadata")
        .ok_or_else(|| anyhow!("object without metadata"))?;
    let namespace = meta
        .get("namespace")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let name = meta
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| anyhow!("object without metadata.name"))?
        .to_string();
    Ok((namespace, name))
}

/// Parse `/api/v1[/namespaces/ns]/plural` or `/apis/g/v[/namespaces/ns]/plural`.
fn route(path: &str) -> Option<(Collection, Option<String>)> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match parts.as_slice() {
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return None,
    };
    let (namespace, plural) = match rest {
        [plural] => (None, *plural),
        ["namespaces", ns, plural] => (Some((*ns).to_string()), *plural),
        _ => return None,
    };
    Some(((group.into(), version.into(), plural.into()), namespace))
}

fn list_kind(collection: &Collection) -> &'static str {
    match (collection.0.as_str(), collection.2.as_str()) {
        ("", "pods") => "PodList",
        ("metrics.k8s.io", "pods") => "PodMetricsList",
        (_, "replicasets") => "ReplicaSetList",
        (_, "deployments") => "DeploymentList",
        (_, "statefulsets") => "StatefulSetList",
        (_, "horizontalpodautoscalers") => "HorizontalPodAutoscalerList",
        ("", "services") => "ServiceList",
        _ => "List",
    }
}

fn status(code: u16, reason: &str, message: &str) -> Response {
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message, "reason": reason, "code": code
    });
    let code = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// `/api/v1/namespaces/{ns}/services/[scheme:]name[:port]/proxy[/rest]` as
/// (namespace, name, port, rest).
fn proxy_route(path: &str) -> Option<(String, String, String, String)> {
    let rest = path.strip_prefix("/api/v1/namespaces/")?;
    let (namespace, rest) = rest.split_once("/services/")?;
    let (service, rest) = rest.split_once("/proxy")?;
    let parts: Vec<&str> = service.split(':').collect();
    let (name, port) = match parts.as_slice() {
        [name] => (*name, ""),
        ["http" | "https", name] => (*name, ""),
        ["http" | "https", name, port] | [name, port] => (*name, *port),
        _ => return None,
    };
    Some((namespace.into(), name.into(), port.into(), rest.into()))
}

/// The `key=value` (or `key==value`) terms of a label or field selector.
fn equality_terms(selector: Option<&String>) -> impl Iterator<Item = (&str, &str)> {
    selector.into_iter().flat_map(|s| s.split(',')).map(|term| {
        let (key, value) = term.split_once('=').unwrap_or((term, ""));
        (key, value.trim_start_matches('='))
    })
}

/// Whether `object`'s labels hold every `key=value` of `selector` (equality terms only).
fn labels_match(object: &Value, selector: Option<&String>) -> bool {
    equality_terms(selector)
        .all(|(key, value)| object["metadata"]["labels"][key].as_str() == Some(value))
}

/// Whether `object` matches every `metadata.name=…` / `metadata.namespace=…` term.
fn fields_match(object: &Value, selector: Option<&String>) -> bool {
    equality_terms(selector).all(|(field, value)| match field.strip_prefix("metadata.") {
        Some(key) => object["metadata"][key].as_str() == Some(value),
        None => false,
    })
}

/// Forward one service-proxy request to the registered upstream, as the API server does.
async fn forward(
    upstream: Option<String>,
    name: &str,
    method: Method,
    rest: &str,
    query: Option<&str>,
    headers: &axum::http::HeaderMap,
    body: Bytes,
) -> Response {
    let Some(base) = upstream else {
        return status(
            503,
            "ServiceUnavailable",
            &format!("no endpoints available for service \"{name}\""),
        );
    };
    let url = match query {
        Some(q) => format!("{base}{rest}?{q}"),
        None => format!("{base}{rest}"),
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

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    Query(query): Query<BTreeMap<String, String>>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Response {
    let watch = matches!(query.get("watch").map(String::as_str), Some("true" | "1"));
    let path = uri.path().to_string();
    // The service proxy first, its lock released before forwarding.
    let proxied = {
        let mut state = shared.lock();
        state.requests.push(RequestRecord {
            method: method.to_string(),
            path: path.clone(),
            watch,
            content_type: headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            body: String::from_utf8_lossy(&body).into_owned(),
        });
        if let Some(token) = &state.token {
            let presented = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok());
            if presented != Some(format!("Bearer {token}").as_str()) {
                return status(401, "Unauthorized", "Unauthorized");
            }
        }
        match proxy_route(&path) {
            None => None,
            Some((namespace, name, port, rest)) => {
                let services = (String::new(), "v1".to_owned(), "services".to_owned());
                let known = state
                    .objects
                    .get(&services)
                    .is_some_and(|s| s.contains_key(&(namespace.clone(), name.clone())));
                if !known {
                    return status(404, "NotFound", &format!("services \"{name}\" not found"));
                }
                let upstream = state
                    .upstreams
                    .get(&(namespace, name.clone(), port))
                    .cloned();
                Some((upstream, name, rest))
            }
        }
    };
    if let Some((upstream, name, rest)) = proxied {
        return forward(upstream, &name, method, &rest, uri.query(), &headers, body).await;
    }
    let mut state = shared.lock();
    if method != Method::GET {
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        return match writes::write(&mut state, &method, &path, content_type, &body) {
            Ok((answer, event)) => {
                if let Some(event) = event {
                    state.events.push(event.clone());
                    let _ = shared.events.send(event);
                }
                json_response(answer)
            }
            Err(refusal) => refusal.into_response(),
        };
    }
    if let Some(target) = writes::ObjectPath::parse(&path) {
        if let Some(code) = state.failures.get(&target.collection) {
            return status(
                *code,
                "ServiceUnavailable",
                "the server is currently unable to handle the request",
            );
        }
        return match writes::read(&state, &target) {
            Ok(object) => json_response(object),
            Err(refusal) => refusal.into_response(),
        };
    }
    let Some((collection, namespace)) = route(&path) else {
        return status(
            404,
            "NotFound",
            &format!("the server could not find the requested resource ({path})"),
        );
    };
    if let Some(code) = state.failures.get(&collection) {
        return status(
            *code,
            "ServiceUnavailable",
            "the server is currently unable to handle the request",
        );
    }
    let in_scope = |ns: &str| namespace.as_deref().is_none_or(|want| want == ns);
    if !watch {
        let items: Vec<Value> = state
            .objects
            .get(&collection)
            .into_iter()
            .flatten()
            .filter(|((ns, _), _)| in_scope(ns))
            .filter(|(_, object)| {
                labels_match(object, query.get("labelSelector"))
                    && fields_match(object, query.get("fieldSelector"))
            })
            .map(|(_, object)| {
                // Real list responses omit apiVersion/kind on items.
                let mut object = object.clone();
                if let Some(map) = object.as_object_mut() {
                    map.remove("apiVersion");
                    map.remove("kind");
                }
                object
            })
            .collect();
        let api_version = if collection.0.is_empty() {
            collection.1.clone()
        } else {
            format!("{}/{}", collection.0, collection.1)
        };
        let body = json!({
            "kind": list_kind(&collection),
            "apiVersion": api_version,
            "metadata": {"resourceVersion": state.resource_version.to_string()},
            "items": items,
        });
        return (
            [(header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response();
    }
    if collection.0 == "metrics.k8s.io" {
        return status(
            405,
            "MethodNotAllowed",
            "watch is not supported on metrics.k8s.io",
        );
    }
    let since: u64 = query
        .get("resourceVersion")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let timeout = query
        .get("timeoutSeconds")
        .and_then(|v| v.parse().ok())
        .unwrap_or(290u64);
    let receiver = shared.events.subscribe();
    let stopping = shared.stopping.subscribe();
    let backlog: Vec<Event> = state
        .events
        .iter()
        .filter(|e| {
            e.resource_version > since && e.collection == collection && in_scope(&e.namespace)
        })
        .cloned()
        .collect();
    drop(state);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout);
    let filter =
        move |e: &Event| e.collection == collection && in_scope_owned(&namespace, &e.namespace);
    let last_sent = backlog.last().map_or(since, |e| e.resource_version);
    let stream = futures::stream::unfold(
        (backlog.into_iter(), receiver, stopping, last_sent, filter),
        move |(mut backlog, mut receiver, mut stopping, mut last_sent, filter)| async move {
            if let Some(event) = backlog.next() {
                let item = Ok::<Bytes, Infallible>(encode(&event));
                return Some((item, (backlog, receiver, stopping, last_sent, filter)));
            }
            loop {
                let next = tokio::select! {
                    next = receiver.recv() => next,
                    // Timeout or stand-in stopping: end the watch like the API server does.
                    _ = tokio::time::sleep_until(deadline) => return None,
                    _ = stopping.wait_for(|stop| *stop) => return None,
                };
                match next {
                    Ok(event) if event.resource_version > last_sent && filter(&event) => {
                        last_sent = event.resource_version;
                        return Some((
                            Ok(encode(&event)),
                            (backlog, receiver, stopping, last_sent, filter),
                        ));
                    }
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        },
    );
    Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| status(500, "InternalError", "building watch response"))
}

fn json_response(body: Value) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn in_scope_owned(want: &Option<String>, ns: &str) -> bool {
    want.as_deref().is_none_or(|w| w == ns)
}

fn encode(event: &Event) -> Bytes {
    let mut line = json!({"type": event.kind, "object": event.object}).to_string();
    line.push('\n');
    Bytes::from(line)
}
