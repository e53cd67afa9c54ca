//! A loopback stand-in for PagerDuty's Events API v2 (the one allowed stand-in for the pager):
//! `POST /v2/enqueue` validates each event against the API's rules and records it; it also
//! records plain webhooks (`POST /webhook/{name}`) for non-paging receivers.
//!
//! Validation follows the Events API v2: `routing_key` (32 characters), `event_action` in
//! trigger|acknowledge|resolve, `dedup_key` ≤ 255 characters (required unless triggering), and
//! for a trigger a `payload` with `summary` (1–1024 characters), `source` and `severity` in
//! critical|error|warning|info. Invalid events get 400 with the errors, like the real API.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::post;
use serde_json::{Value, json};

use crate::serve::OnThread;

/// An accepted event (or webhook body) as received.
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    /// `pagerduty` or the webhook's name.
    pub receiver: String,
    pub body: Value,
}

#[derive(Default)]
struct Log {
    accepted: Vec<Received>,
    rejected: Vec<(Value, Vec<String>)>,
}

type Shared = Arc<Mutex<Log>>;

fn lock(log: &Shared) -> std::sync::MutexGuard<'_, Log> {
    log.lock().unwrap_or_else(|p| p.into_inner())
}

/// Errors in an Events API v2 event (empty when valid).
pub fn validate(event: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    match event.get("routing_key").and_then(Value::as_str) {
        Some(k) if k.len() == 32 => {}
        Some(_) => errors.push("routing_key must be 32 characters".into()),
        None => errors.push("routing_key is required".into()),
    }
    let action = event.get("event_action").and_then(Value::as_str);
    if !matches!(action, Some("trigger" | "acknowledge" | "resolve")) {
        errors.push("event_action must be trigger, acknowledge or resolve".into());
    }
    match event.get("dedup_key") {
        Some(Value::String(k)) if k.len() <= 255 => {}
        Some(_) => errors.push("dedup_key must be a string of at most 255 characters".into()),
        None if action != Some("trigger") => {
            errors.push("dedup_key is required to acknowledge or resolve".into())
        }
        None => {}
    }
    if action == Some("trigger") {
        let payload = event.get("payload");
        match payload
            .and_then(|p| p.get("summary"))
            .and_then(Value::as_str)
        {
            Some(s) if !s.is_empty() && s.chars().count() <= 1024 => {}
            _ => errors.push("payload.summary is required (1 to 1024 characters)".into()),
        }
        if payload
            .and_then(|p| p.get("source"))
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            errors.push("payload.source is required".into());
        }
        let severity = payload
            .and_then(|p| p.get("severity"))
            .and_then(Value::as_str);
        if !matches!(severity, Some("critical" | "error" | "warning" | "info")) {
            errors.push("payload.severity must be critical, error, warning or info".into());
        }
    }
    errors
}

async fn enqueue(State(log): State<Shared>, Json(event): Json<Value>) -> impl IntoResponse {
    let errors = validate(&event);
    if errors.is_empty() {
        let dedup = event.get("dedup_key").cloned().unwrap_or(Value::Null);
        lock(&log).accepted.push(Received {
            receiver: "pagerduty".into(),
            body: event,
        });
        (
            StatusCode::ACCEPTED,
            Json(json!({"status": "success", "message": "Event processed", "dedup_key": dedup})),
        )
    } else {
        lock(&log).rejected.push((event, errors.clone()));
        (
            StatusCode::BAD_REQUEST,
            Json(
                json!({"status": "invalid event", "message": "Event object is invalid", "errors": errors}),
            ),
        )
    }
}

async fn webhook(
    State(log): State<Shared>,
    Path(name): Path<String>,
    Json(body): Json<Value>,
) -> StatusCode {
    lock(&log).accepted.push(Received {
        receiver: name,
        body,
    });
    StatusCode::OK
}

/// The running receiver; dropping it stops it.
pub struct PagerDutyStandIn {
    log: Shared,
    server: OnThread,
}

impl PagerDutyStandIn {
    pub fn start() -> anyhow::Result<Self> {
        let log: Shared = Arc::default();
        let app = Router::new()
            .route("/v2/enqueue", post(enqueue))
            .route("/webhook/{name}", post(webhook))
            .with_state(Arc::clone(&log));
        Ok(PagerDutyStandIn {
            server: OnThread::start("pagerduty-stand-in", app)?,
            log,
        })
    }

    /// The Events API URL to configure (`pagerduty_url`).
    pub fn events_url(&self) -> String {
        format!("http://{}/v2/enqueue", self.server.addr())
    }

    /// URL of a recording webhook named `name`.
    pub fn webhook_url(&self, name: &str) -> String {
        format!("http://{}/webhook/{name}", self.server.addr())
    }

    /// Everything accepted so far, in order.
    pub fn received(&self) -> Vec<Received> {
        lock(&self.log).accepted.clone()
    }

    /// Events refused as invalid, with why.
    pub fn rejected(&self) -> Vec<(Value, Vec<String>)> {
        lock(&self.log).rejected.clone()
    }

    /// Wait until an accepted item satisfies `check`; returns it.
    pub fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        check: impl Fn(&Received) -> bool,
    ) -> anyhow::Result<Received> {
        let mut found = None;
        surge_servers::wait_until(what, timeout, Duration::from_millis(100), || {
            found = self.received().into_iter().find(|r| check(r));
            Ok(found.is_some())
        })
        .map_err(|e| anyhow::anyhow!("{e:#}; received so far: {:#?}", self.received()))?;
        found.ok_or_else(|| anyhow::anyhow!("{what}: not received"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_like_the_events_api() {
        let ok = json!({
            "routing_key": "0123456789abcdef0123456789abcdef",
            "event_action": "trigger",
            "payload": {"summary": "s", "source": "prometheus", "severity": "critical"}
        });
        assert!(validate(&ok).is_empty());
        let resolve_without_key =
            json!({"routing_key": "0123456789abcdef0123456789abcdef", "event_action": "resolve"});
        assert_eq!(validate(&resolve_without_key).len(), 1);
        let bad = json!({"routing_key": "short", "event_action": "page", "payload": {"severity": "urgent"}});
        assert_eq!(validate(&bad).len(), 3);
        let mut long = ok.clone();
        long["payload"]["summary"] = Value::String("x".repeat(1025));
        assert_eq!(validate(&long).len(), 1);
    }
}
