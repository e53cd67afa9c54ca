//! `/metrics` for a [`Store`]: its latest snapshot, Prometheus text by default, OpenMetrics
//! when the scraper asks for it; `/healthz` for liveness.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::selector::Selectors;
use crate::store::{Encoding, Format, Store};

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The routes, for callers that serve them their own way (TLS, authentication).
pub fn router(store: Arc<Store>, about: &'static str) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/", get(move || async move { about }))
        .with_state(store)
}

/// True if the `Accept` header asks for OpenMetrics (as Prometheus does by default).
fn wants_openmetrics(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|part| {
            let mut params = part.split(';').map(str::trim);
            let media = params.next().unwrap_or("");
            let refused = params.any(|p| p.replace(' ', "") == "q=0");
            media.eq_ignore_ascii_case("application/openmetrics-text") && !refused
        })
}

/// True if the `Accept-Encoding` header takes gzip (Prometheus sends `gzip`): named with a
/// weight above 0, or not named and `*` is.
fn accepts_gzip(headers: &HeaderMap) -> bool {
    let (mut gzip, mut any): (Option<f32>, Option<f32>) = (None, None);
    for part in headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
    {
        let mut params = part.split(';').map(str::trim);
        let coding = params.next().unwrap_or("");
        let weight = params
            .filter_map(|p| p.strip_prefix("q="))
            .map(|q| q.trim().parse::<f32>().unwrap_or(0.0))
            .next()
            .unwrap_or(1.0);
        if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
            gzip = Some(gzip.map_or(weight, |w| w.max(weight)));
        } else if coding == "*" {
            any = Some(weight);
        }
    }
    gzip.or(any).is_some_and(|w| w > 0.0)
}

/// The `match[]` selectors of a query string (none: everything).
fn selectors(query: Option<&str>) -> Result<Selectors, String> {
    let query = query.unwrap_or_default();
    let values: Vec<String> = form_urlencoded::parse(query.as_bytes())
        .filter(|(k, _)| k == "match[]")
        .map(|(_, v)| v.into_owned())
        .collect();
    Selectors::parse(values.iter().map(String::as_str))
}

async fn metrics(
    State(store): State<Arc<Store>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let selectors = match selectors(query.as_deref()) {
        Ok(s) => s,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
    };
    let (format, content_type) = if wants_openmetrics(&headers) {
        (Format::OpenMetrics, OPENMETRICS)
    } else {
        (Format::PrometheusText, PROMETHEUS_TEXT)
    };
    let encoding = if accepts_gzip(&headers) {
        Encoding::Gzip
    } else {
        Encoding::Identity
    };
    // Encoding a large exposition takes milliseconds of CPU: off the threads serving
    // connections.
    let body = tokio::task::spawn_blocking(move || {
        if selectors.is_empty() {
            store.exposition(format, encoding)
        } else {
            store.exposition_matching(format, encoding, &selectors)
        }
    })
    .await;
    match body {
        Ok(Ok(body)) => {
            let mut response = ([(header::CONTENT_TYPE, content_type)], body).into_response();
            let headers = response.headers_mut();
            headers.insert(
                header::VARY,
                header::HeaderValue::from_static("accept-encoding"),
            );
            if encoding == Encoding::Gzip {
                headers.insert(
                    header::CONTENT_ENCODING,
                    header::HeaderValue::from_static("gzip"),
                );
            }
            response
        }
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "encoding failed\n").into_response(),
    }
}

/// Serve until `shutdown` resolves; `/` answers `about` (what this is, where the metrics are).
pub async fn serve(
    listener: tokio::net::TcpListener,
    store: Arc<Store>,
    about: &'static str,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(store, about))
        .with_graceful_shutdown(shutdown)
        .await
}

/// Bind the listen address with a message that names it on failure.
pub async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, String> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn negotiates_openmetrics_like_prometheus_asks() {
        let mut h = HeaderMap::new();
        assert!(!wants_openmetrics(&h));
        h.insert(header::ACCEPT, HeaderValue::from_static(
            "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
        ));
        assert!(wants_openmetrics(&h));
        h.insert(header::ACCEPT, HeaderValue::from_static("text/plain"));
        assert!(!wants_openmetrics(&h));
        h.insert(
            header::ACCEPT,
            HeaderValue::from_static("application/openmetrics-text; q=0"),
        );
        assert!(!wants_openmetrics(&h));
    }

    #[test]
    fn gzip_only_when_the_scraper_takes_it() {
        let mut h = HeaderMap::new();
        assert!(!accepts_gzip(&h));
        for (value, gzip) in [
            ("gzip", true),
            ("deflate, gzip;q=0.5", true),
            ("GZIP", true),
            ("*", true),
            ("identity", false),
            ("gzip;q=0", false),
            ("gzip; q=0.0, identity", false),
            ("gzip;q=0, *", false),
            ("identity, *;q=0.1", true),
            ("br", false),
        ] {
            h.insert(header::ACCEPT_ENCODING, HeaderValue::from_static(value));
            assert_eq!(accepts_gzip(&h), gzip, "{value}");
        }
    }
}
