//! Prometheus and Alertmanager inside a Kubernetes cluster, reached as `kubectl` reaches the
//! cluster: the kubeconfig's context, its credentials (token, client certificate, exec
//! plugin), and the API server's service proxy
//! (`/api/v1/namespaces/NS/services/NAME:PORT/proxy/…`). No port-forward, no URL to know.
//!
//! Found by, in order: the service named as configured (`NAMESPACE/NAME:PORT`), then
//! prometheus-operator's governing services (`prometheus-operated`, `alertmanager-operated`),
//! then the `app.kubernetes.io/name` label the common charts set.

use std::time::Duration;

use http_body_util::BodyExt;
use kube::config::{ExecInteractiveMode, KubeConfigOptions, Kubeconfig};
use serde_json::Value;

/// A kubeconfig's context names, in its order, and its current context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeconfigContexts {
    pub names: Vec<String>,
    pub current: Option<String>,
}

/// The kubeconfig's contexts and its current one; `None` when there is no kubeconfig.
pub fn kubeconfig_contexts() -> Result<Option<KubeconfigContexts>, String> {
    let config = match read_kubeconfig()? {
        Some(config) => config,
        None => return Ok(None),
    };
    Ok(Some(KubeconfigContexts {
        names: config.contexts.iter().map(|c| c.name.clone()).collect(),
        current: config.current_context,
    }))
}

/// The kubeconfig `KUBECONFIG` names (its files merged as kubectl merges them), else
/// `~/.kube/config`; `None` when neither exists.
fn read_kubeconfig() -> Result<Option<Kubeconfig>, String> {
    let named = std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty());
    let default = std::env::var_os("HOME")
        .map(|home| std::path::PathBuf::from(home).join(".kube/config"))
        .filter(|p| p.exists());
    if named.is_none() && default.is_none() {
        return Ok(None);
    }
    Kubeconfig::read()
        .map(Some)
        .map_err(|e| format!("kubeconfig: {}", one_line(&e.to_string())))
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// One context's API server, with the context's credentials.
#[derive(Clone)]
pub struct Cluster {
    context: String,
    /// The kubeconfig user the context names (who acts, when the server cannot say).
    user: Option<String>,
    /// The server URL as the kubeconfig gives it, without a trailing slash.
    server: String,
    client: kube::Client,
    timeout: Duration,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("context", &self.context)
            .field("server", &self.server)
            .finish()
    }
}

/// Same cluster and context: the client itself has no identity to compare.
impl PartialEq for Cluster {
    fn eq(&self, other: &Cluster) -> bool {
        self.context == other.context && self.server == other.server
    }
}

impl Cluster {
    /// Connect to `context` of the kubeconfig. An exec plugin runs here, never asking on the
    /// terminal (the panel owns it).
    pub async fn connect(context: &str, timeout: Duration) -> Result<Cluster, String> {
        let kubeconfig = read_kubeconfig()?.ok_or_else(|| {
            "no kubeconfig (KUBECONFIG is unset and ~/.kube/config does not exist)".to_string()
        })?;
        Cluster::from_kubeconfig(kubeconfig, context, timeout).await
    }

    /// Connect to `context` of the kubeconfig file at `path` (whatever `KUBECONFIG` says).
    pub async fn connect_with(
        path: &std::path::Path,
        context: &str,
        timeout: Duration,
    ) -> Result<Cluster, String> {
        let kubeconfig = Kubeconfig::read_from(path).map_err(|e| {
            format!(
                "kubeconfig {}: {}",
                path.display(),
                one_line(&e.to_string())
            )
        })?;
        Cluster::from_kubeconfig(kubeconfig, context, timeout).await
    }

    async fn from_kubeconfig(
        kubeconfig: Kubeconfig,
        context: &str,
        timeout: Duration,
    ) -> Result<Cluster, String> {
        let known: Vec<String> = kubeconfig.contexts.iter().map(|c| c.name.clone()).collect();
        if !known.iter().any(|c| c == context) {
            return Err(format!(
                "kube context {context:?} is not in the kubeconfig (its contexts: {})",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            ));
        }
        let user = kubeconfig
            .contexts
            .iter()
            .find(|c| c.name == context)
            .and_then(|c| c.context.as_ref())
            .and_then(|c| c.user.clone());
        let options = KubeConfigOptions {
            context: Some(context.to_string()),
            ..KubeConfigOptions::default()
        };
        let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
            .await
            .map_err(|e| format!("kube context {context}: {}", one_line(&e.to_string())))?;
        // The API server answers 503 while Prometheus is down: that is an answer to show, not
        // one to retry for minutes.
        config.default_retry = false;
        config.connect_timeout = Some(timeout.min(Duration::from_secs(3)));
        config.read_timeout = Some(timeout);
        if let Some(exec) = config.auth_info.exec.as_mut() {
            exec.interactive_mode = Some(ExecInteractiveMode::Never);
        }
        let server = config
            .cluster_url
            .to_string()
            .trim_end_matches('/')
            .to_string();
        // Building the client may run an exec plugin, which blocks.
        let client = tokio::task::spawn_blocking(move || kube::Client::try_from(config))
            .await
            .map_err(|e| format!("kube context {context}: {e}"))?
            .map_err(|e| format!("kube context {context}: {}", one_line(&e.to_string())))?;
        Ok(Cluster {
            context: context.to_string(),
            user,
            server,
            client,
            timeout,
        })
    }

    /// The kubeconfig context this cluster was reached through.
    pub fn context(&self) -> &str {
        &self.context
    }

    /// The kubeconfig user of the context, if it names one.
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// The typed client, for the actions (`crate::act`).
    pub(crate) fn client(&self) -> &kube::Client {
        &self.client
    }

    /// Send `request` (an absolute URL under this cluster's server) with the context's
    /// credentials; the answer is read whole, refused past `limit` bytes.
    pub async fn send(
        &self,
        request: reqwest::Request,
        limit: usize,
    ) -> Result<reqwest::Response, String> {
        let url = request.url().as_str();
        let path = url
            .strip_prefix(&self.server)
            .filter(|p| p.starts_with('/'))
            .ok_or_else(|| format!("{url} is not on the cluster's server {}", self.server))?;
        let mut builder = http::Request::builder()
            .method(request.method().clone())
            .uri(path);
        for (name, value) in request.headers() {
            builder = builder.header(name, value);
        }
        let body = request
            .body()
            .and_then(reqwest::Body::as_bytes)
            .map(<[u8]>::to_vec)
            .unwrap_or_default();
        let request = builder
            .body(kube::client::Body::from(body))
            .map_err(|e| e.to_string())?;
        let exchange = async {
            let response = self
                .client
                .send(request)
                .await
                .map_err(|e| describe(&self.context, &e))?;
            let (parts, body) = response.into_parts();
            let bytes = http_body_util::Limited::new(body, limit)
                .collect()
                .await
                .map_err(|e| {
                    if e.is::<http_body_util::LengthLimitError>() {
                        format!("answer larger than {} MiB, refused", limit / (1024 * 1024))
                    } else {
                        one_line(&e.to_string())
                    }
                })?
                .to_bytes();
            Ok::<_, String>(http::Response::from_parts(parts, bytes))
        };
        let response = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| format!("timed out after {:?}", self.timeout))??;
        Ok(reqwest::Response::from(response))
    }

    /// Base URL of `service` through the API server's service proxy.
    fn proxy_url(&self, service: &Service) -> String {
        format!(
            "{}/api/v1/namespaces/{}/services/{}:{}:{}/proxy",
            self.server, service.namespace, service.scheme, service.name, service.port
        )
    }

    /// Services matching a field or label selector, in every namespace the credentials may
    /// list.
    async fn services(&self, selector: &str) -> Result<Vec<Service>, String> {
        let url = format!("{}/api/v1/services?{selector}", self.server);
        // A bare request: `send` hands it to the cluster's client, no HTTP client of its own.
        let url = url.parse().map_err(|e| format!("{url}: {e}"))?;
        let request = reqwest::Request::new(reqwest::Method::GET, url);
        let response = self.send(request, super::MAX_ANSWER_BYTES).await?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| e.to_string())?;
        let list: Value = serde_json::from_slice(&body)
            .map_err(|_| format!("listing services: the API server answered {status}, not JSON"))?;
        if !status.is_success() {
            let said = list["message"].as_str().unwrap_or_default();
            return Err(format!(
                "kube context {}: listing services: {}",
                self.context,
                match status.as_u16() {
                    401 => format!(
                        "the API server refused the kubeconfig's credentials ({status}: {said})"
                    ),
                    403 => format!(
                        "the kubeconfig's user may not list services ({status}: {said}); name the services with --kube-prometheus and --kube-alertmanager"
                    ),
                    _ => format!("{status}: {said}"),
                }
            ));
        }
        Ok(list["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Service::from_object)
            .collect())
    }

    /// Find a server of `kind` and its proxied base URL: `configured` if given, else by
    /// prometheus-operator's service name, else by label. `Ok(Err(what was tried))` when
    /// the cluster has none; `Err` when the cluster could not be asked.
    pub async fn find(
        &self,
        kind: Kind,
        configured: Option<&str>,
    ) -> Result<Result<String, String>, String> {
        if let Some(text) = configured {
            let service = Service::parse(text)?;
            return Ok(Ok(self.proxy_url(&service)));
        }
        let (operated, app) = match kind {
            Kind::Prometheus => ("prometheus-operated", "prometheus"),
            Kind::Alertmanager => ("alertmanager-operated", "alertmanager"),
        };
        let tried = [
            format!("fieldSelector=metadata.name%3D{operated}"),
            format!("labelSelector=app.kubernetes.io%2Fname%3D{app}"),
        ];
        for selector in &tried {
            let mut found = self.services(selector).await?;
            found.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
            if let Some(service) = found.into_iter().next() {
                return Ok(Ok(self.proxy_url(&service)));
            }
        }
        Ok(Err(format!(
            "no service named {operated} and none labelled app.kubernetes.io/name={app} in any namespace"
        )))
    }
}

/// What is looked for in the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Prometheus,
    Alertmanager,
}

/// A service port to proxy to.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Service {
    namespace: String,
    name: String,
    scheme: &'static str,
    port: String,
}

impl Service {
    /// `NAMESPACE/NAME:PORT` (PORT a name or number; `https:` before NAME for a TLS port).
    fn parse(text: &str) -> Result<Service, String> {
        let bad =
            || format!("{text:?} is not NAMESPACE/NAME:PORT (e.g. monitoring/prometheus-k8s:web)");
        let (namespace, rest) = text.split_once('/').ok_or_else(bad)?;
        let (scheme, rest) = match rest.strip_prefix("https:") {
            Some(rest) => ("https", rest),
            None => ("http", rest),
        };
        let (name, port) = rest.split_once(':').ok_or_else(bad)?;
        if [namespace, name, port]
            .iter()
            .any(|p| p.is_empty() || p.contains(['/', ':']))
        {
            return Err(bad());
        }
        Ok(Service {
            namespace: namespace.into(),
            name: name.into(),
            scheme,
            port: port.into(),
        })
    }

    /// A listed Service, by its web port: the port named `web` (prometheus-operator's),
    /// `http`, or its only port.
    fn from_object(object: &Value) -> Option<Service> {
        let ports = object["spec"]["ports"].as_array()?;
        let named = |want: &str| ports.iter().find(|p| p["name"].as_str() == Some(want));
        let port = named("web")
            .or_else(|| named("http"))
            .or_else(|| named("https"))
            .or(if ports.len() == 1 {
                ports.first()
            } else {
                None
            })?;
        let scheme = if port["name"].as_str() == Some("https") {
            "https"
        } else {
            "http"
        };
        Some(Service {
            namespace: object["metadata"]["namespace"].as_str()?.into(),
            name: object["metadata"]["name"].as_str()?.into(),
            scheme,
            port: port["name"]
                .as_str()
                .filter(|n| !n.is_empty())
                .map(str::to_owned)
                .or_else(|| port["port"].as_u64().map(|p| p.to_string()))?,
        })
    }
}

/// A failed exchange with the API server, in one line naming the context and the deepest
/// cause (a TLS alert, a refused connection), which is what tells the user what to fix.
fn describe(context: &str, error: &kube::Error) -> String {
    let mut causes = vec![error.to_string()];
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !causes.iter().any(|c| c.contains(&text)) {
            causes.push(text);
        }
        source = cause.source();
    }
    let what = match error {
        kube::Error::Auth(_) => format!("credentials: {}", causes.join(": ")),
        _ => format!("cannot talk to the API server: {}", causes.join(": ")),
    };
    format!("kube context {context}: {}", one_line(&what))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn configured_services_are_namespace_name_and_port() {
        let s = Service::parse("monitoring/prometheus-k8s:web").expect("parses");
        assert_eq!(
            (
                s.namespace.as_str(),
                s.name.as_str(),
                s.scheme,
                s.port.as_str()
            ),
            ("monitoring", "prometheus-k8s", "http", "web")
        );
        let s = Service::parse("obs/https:thanos-query:10902").expect("parses");
        assert_eq!((s.scheme, s.port.as_str()), ("https", "10902"));
        for bad in [
            "prometheus:9090",
            "monitoring/prometheus",
            "/p:9090",
            "a/b:",
            "a/b:c:d",
        ] {
            let e = Service::parse(bad).expect_err(bad);
            assert!(e.contains("is not NAMESPACE/NAME:PORT"), "{bad}: {e}");
        }
    }

    #[test]
    fn a_listed_service_is_reached_on_its_web_port() {
        let service = |ports: Value| {
            Service::from_object(&json!({
                "metadata": {"name": "p", "namespace": "m"},
                "spec": {"ports": ports},
            }))
        };
        let web = service(json!([{"name": "grpc", "port": 10901}, {"name": "web", "port": 9090}]));
        assert_eq!(web.map(|s| s.port), Some("web".into()));
        let only = service(json!([{"port": 9090}]));
        assert_eq!(only.map(|s| s.port), Some("9090".into()));
        let https = service(json!([{"name": "https", "port": 443}]));
        assert_eq!(https.map(|s| s.scheme), Some("https"));
        // Two ports, neither the web one: not guessed.
        assert_eq!(
            service(json!([{"name": "a", "port": 1}, {"name": "b", "port": 2}])),
            None
        );
    }
}
