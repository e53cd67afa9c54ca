//! HTTP plumbing shared by the services: errors, health endpoints, metrics, graceful stop.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::metrics::Metrics;

/// An error answered as JSON `{"error": "..."}` with a fitting status.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Internal(String),
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) => {
                ApiError::Unavailable(format!("database: {e}"))
            }
            other => ApiError::Internal(format!("database: {other}")),
        }
    }
}

impl IntoResponse for ApiError {
    /// A client error says what was wrong. A server error's detail (a database or Redis error
    /// text, which may name tables, hosts or users) goes to the log only, under a request id the
    /// answer carries, so the two can be matched.
    fn into_response(self) -> Response {
        let status = match &self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if !status.is_server_error() {
            return (status, axum::Json(json!({ "error": self.to_string() }))).into_response();
        }
        let request_id = uuid::Uuid::new_v4().simple().to_string();
        tracing::warn!(error = %self, %request_id, "request failed");
        let public = if status == StatusCode::SERVICE_UNAVAILABLE {
            "temporarily unavailable"
        } else {
            "internal error"
        };
        let mut response = (
            status,
            axum::Json(json!({ "error": public, "request_id": request_id })),
        )
            .into_response();
        if let Ok(value) = axum::http::HeaderValue::from_str(&request_id) {
            response.headers_mut().insert("x-request-id", value);
        }
        response
    }
}

/// Wrap a service router with `/healthz`, `/readyz` (via `ready`), `/metrics` and request
/// metrics, then serve it until SIGTERM or SIGINT (in-flight requests finish).
pub async fn serve<F, Fut>(
    service: &'static str,
    listen: SocketAddr,
    routes: Router,
    metrics: Arc<Metrics>,
    ready: F,
) -> anyhow::Result<()>
where
    F: Fn() -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send,
{
    let metrics_for_route = Arc::clone(&metrics);
    let app = routes
        .route("/healthz", axum::routing::get(|| async { "ok\n" }))
        .route(
            "/readyz",
            axum::routing::get(move || {
                let ready = ready.clone();
                async move {
                    if ready().await {
                        (StatusCode::OK, "ready\n")
                    } else {
                        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
                    }
                }
            }),
        )
        .route(
            "/metrics",
            axum::routing::get(move || {
                let metrics = Arc::clone(&metrics_for_route);
                async move { metrics.render() }
            }),
        )
        .layer(axum::middleware::from_fn_with_state(
            metrics,
            crate::metrics::track,
        ));
    let listener = tokio::net::TcpListener::bind(listen).await?;
    tracing::info!(service, %listen, "serving");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    tracing::info!(service, "stopped");
    Ok(())
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body(response: Response) -> Result<serde_json::Value, String> {
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .map_err(|e| e.to_string())?;
        serde_json::from_slice(&bytes).map_err(|e| e.to_string())
    }

    /// A database error's text never reaches the client; the answer carries a request id
    /// (also in `x-request-id`) for the log line that has the detail.
    #[tokio::test]
    async fn server_errors_answer_generically_with_a_request_id() -> Result<(), String> {
        let detail = "relation \"secret_table\" does not exist";
        let cases = [
            (
                ApiError::from(sqlx::Error::Protocol(detail.into())),
                500,
                "internal error",
            ),
            (
                ApiError::from(sqlx::Error::PoolTimedOut),
                503,
                "temporarily unavailable",
            ),
            (
                ApiError::Unavailable(format!("cart store: {detail}")),
                503,
                "temporarily unavailable",
            ),
        ];
        let mut checked = 0;
        for (error, status, public) in cases {
            let response = error.into_response();
            assert_eq!(response.status().as_u16(), status);
            let header = response
                .headers()
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            let json = body(response).await?;
            let text = json.to_string();
            assert!(
                !text.contains("secret_table")
                    && !text.contains("database")
                    && !text.contains("pool"),
                "{text}"
            );
            assert_eq!(json["error"], public);
            assert_eq!(
                json["request_id"].as_str().map(str::len),
                Some(32),
                "{text}"
            );
            assert_eq!(json["request_id"], header.as_str());
            checked += 1;
        }
        assert_eq!(checked, 3);
        // Client errors still say what was wrong.
        let json =
            body(ApiError::BadRequest("quantity must be positive".into()).into_response()).await?;
        assert_eq!(json["error"], "quantity must be positive");
        Ok(())
    }
}
