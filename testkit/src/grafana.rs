//! A loopback stand-in for Grafana's annotations API (Grafana cannot run here):
//! `POST /api/annotations` with a JSON body, as Grafana takes it — `text` required, `time` in
//! epoch milliseconds, `tags` a list of strings — answered `{"id": N, "message": "Annotation
//! added"}`, and recorded. With a token required, a request without `Authorization: Bearer
//! TOKEN` gets 401, as from Grafana refusing a service account token.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::post;
use serde_json::{Value, json};

use crate::serve::OnThread;

#[derive(Default)]
struct Shared {
    token: Option<String>,
    annotations: Vec<Value>,
}

type Log = Arc<Mutex<Shared>>;

fn lock(log: &Log) -> std::sync::MutexGuard<'_, Shared> {
    log.lock().unwrap_or_else(|p| p.into_inner())
}

/// The running stand-in; dropping it stops the server.
pub struct GrafanaStandIn {
    log: Log,
    server: OnThread,
}

impl GrafanaStandIn {
    /// Start on a free loopback port; `token`: the bearer token every request must carry.
    pub fn start(token: Option<&str>) -> anyhow::Result<GrafanaStandIn> {
        let log: Log = Arc::new(Mutex::new(Shared {
            token: token.map(str::to_owned),
            annotations: Vec::new(),
        }));
        let app = Router::new()
            .route("/api/annotations", post(annotate))
            .with_state(Arc::clone(&log));
        Ok(GrafanaStandIn {
            server: OnThread::start("grafana-stand-in", app)?,
            log,
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    /// Annotations accepted so far, as posted.
    pub fn annotations(&self) -> Vec<Value> {
        lock(&self.log).annotations.clone()
    }
}

async fn annotate(State(log): State<Log>, headers: HeaderMap, body: Bytes) -> impl IntoResponse {
    let mut shared = lock(&log);
    if let Some(token) = &shared.token {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if presented != Some(format!("Bearer {token}").as_str()) {
            return (
                StatusCode::UNAUTHORIZED,
                json!({"message": "Unauthorized"}).to_string(),
            );
        }
    }
    let annotation: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(_) => {
            return (
                StatusCode::BAD_REQUEST,
                json!({"message": "bad request data"}).to_string(),
            );
        }
    };
    let valid = annotation["text"].as_str().is_some_and(|t| !t.is_empty())
        && annotation.get("time").is_none_or(Value::is_i64)
        && annotation
            .get("tags")
            .is_none_or(|t| t.as_array().is_some_and(|a| a.iter().all(Value::is_string)));
    if !valid {
        return (
            StatusCode::BAD_REQUEST,
            json!({"message": "bad request data"}).to_string(),
        );
    }
    shared.annotations.push(annotation);
    let id = shared.annotations.len();
    (
        StatusCode::OK,
        json!({"id": id, "message": "Annotation added"}).to_string(),
    )
}
