//! Service metrics with `prometheus-client`: request count and latency histogram by route and
//! status, plus pipeline counters for the Kafka side.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: String,
    pub method: String,
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TopicLabels {
    pub topic: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MessageLabels {
    pub topic: String,
    /// `processed`, `duplicate`, `dead_lettered`.
    pub outcome: String,
}

pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub latency: Family<RequestLabels, Histogram>,
    pub messages: Family<MessageLabels, Counter>,
    pub outbox_published: Counter,
    pub outbox_backlog: Gauge,
    pub provider_attempts: Family<MessageLabels, Counter>,
    pub consumer_paused: Family<TopicLabels, Gauge>,
    pub consumer_assigned: Family<TopicLabels, Gauge>,
}

fn latency_histogram() -> Histogram {
    Histogram::new([
        0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.3, 0.5, 1.0, 2.5, 5.0,
    ])
}

impl Metrics {
    pub fn new(service: &str) -> Arc<Metrics> {
        let mut root = Registry::with_prefix_and_labels(
            "shop",
            [(
                std::borrow::Cow::Borrowed("service"),
                std::borrow::Cow::Owned(service.to_string()),
            )]
            .into_iter(),
        );
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RequestLabels, Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        let messages = Family::<MessageLabels, Counter>::default();
        let outbox_published = Counter::default();
        let outbox_backlog = Gauge::default();
        let provider_attempts = Family::<MessageLabels, Counter>::default();
        let consumer_paused = Family::<TopicLabels, Gauge>::default();
        let consumer_assigned = Family::<TopicLabels, Gauge>::default();
        root.register(
            "http_requests",
            "HTTP requests answered, by route, method and status.",
            requests.clone(),
        );
        root.register_with_unit(
            "http_request_duration",
            "Time to answer HTTP requests, by route, method and status.",
            prometheus_client::registry::Unit::Seconds,
            latency.clone(),
        );
        root.register(
            "messages",
            "Kafka messages handled, by topic and outcome.",
            messages.clone(),
        );
        root.register(
            "outbox_published",
            "Outbox rows published to Kafka.",
            outbox_published.clone(),
        );
        root.register(
            "outbox_backlog",
            "Outbox rows waiting to be published, as last seen by the relay.",
            outbox_backlog.clone(),
        );
        root.register(
            "payment_provider_attempts",
            "Calls to the payment provider, by outcome.",
            provider_attempts.clone(),
        );
        root.register(
            "consumer_paused",
            "1 while consumption of the topic waits out an outage (database or broker unreachable), else 0.",
            consumer_paused.clone(),
        );
        root.register(
            "consumer_assigned_partitions",
            "Partitions of the topic its consumer group has assigned to this replica (0 while it has none, e.g. during a rebalance).",
            consumer_assigned.clone(),
        );
        Arc::new(Metrics {
            registry: root,
            requests,
            latency,
            messages,
            outbox_published,
            outbox_backlog,
            provider_attempts,
            consumer_paused,
            consumer_assigned,
        })
    }

    pub fn message(&self, topic: &str, outcome: &str) {
        self.messages
            .get_or_create(&MessageLabels {
                topic: topic.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
    }

    /// Mark consumption of `topic` paused or not; returns whether it was paused before.
    pub fn paused(&self, topic: &str, paused: bool) -> bool {
        let gauge = self.consumer_paused.get_or_create(&TopicLabels {
            topic: topic.to_string(),
        });
        gauge.set(i64::from(paused)) == 1
    }

    /// How many partitions of `topic` this replica's consumer holds now.
    pub fn assigned(&self, topic: &str, partitions: usize) {
        self.consumer_assigned
            .get_or_create(&TopicLabels {
                topic: topic.to_string(),
            })
            .set(i64::try_from(partitions).unwrap_or(i64::MAX));
    }

    pub fn render(&self) -> Response {
        let mut out = String::new();
        match prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            Ok(()) => (
                [(
                    header::CONTENT_TYPE,
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                )],
                out,
            )
                .into_response(),
            Err(_) => (
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                "encoding failed",
            )
                .into_response(),
        }
    }
}

/// The method as a label: the standard ones by name, anything else `other` (a client may send
/// any token as a method; each would be a new series).
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    const KNOWN: [(Method, &str); 9] = [
        (Method::GET, "GET"),
        (Method::HEAD, "HEAD"),
        (Method::POST, "POST"),
        (Method::PUT, "PUT"),
        (Method::PATCH, "PATCH"),
        (Method::DELETE, "DELETE"),
        (Method::OPTIONS, "OPTIONS"),
        (Method::CONNECT, "CONNECT"),
        (Method::TRACE, "TRACE"),
    ];
    KNOWN
        .iter()
        .find(|(known, _)| known == method)
        .map_or("other", |(_, name)| name)
}

/// Middleware: count and time every request by its route template (not the raw path, so
/// ids do not explode cardinality).
pub async fn track(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let method = method_label(request.method()).to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    let labels = RequestLabels {
        route,
        method,
        status: response.status().as_u16().to_string(),
    };
    metrics
        .latency
        .get_or_create(&labels)
        .observe(started.elapsed().as_secs_f64());
    metrics.requests.get_or_create(&labels).inc();
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use tower::ServiceExt;

    /// Made-up methods all count under `other`: 40 of them add one series, not 40.
    #[tokio::test]
    async fn made_up_methods_do_not_make_series() -> Result<(), String> {
        let metrics = Metrics::new("test");
        let app = axum::Router::new()
            .route("/x", axum::routing::any(|| async { "ok" }))
            .layer(axum::middleware::from_fn_with_state(
                Arc::clone(&metrics),
                track,
            ));
        let mut sent = 0;
        for i in 0..40 {
            for method in [format!("MADEUP{i}"), "GET".to_string()] {
                let request = Request::builder()
                    .method(method.as_str())
                    .uri("/x")
                    .body(Body::empty())
                    .map_err(|e| e.to_string())?;
                let answer = app
                    .clone()
                    .oneshot(request)
                    .await
                    .map_err(|e| e.to_string())?;
                assert_eq!(answer.status(), 200);
                sent += 1;
            }
        }
        assert_eq!(sent, 80);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &metrics.registry)
            .map_err(|e| e.to_string())?;
        let series: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("shop_http_requests_total{"))
            .collect();
        assert_eq!(series.len(), 2, "{series:#?}");
        assert!(
            series
                .iter()
                .any(|l| l.contains("method=\"other\"") && l.ends_with(" 40")),
            "{series:#?}"
        );
        assert!(
            series
                .iter()
                .any(|l| l.contains("method=\"GET\"") && l.ends_with(" 40")),
            "{series:#?}"
        );
        Ok(())
    }
}
