//! Direct mode: scrape surge-exporter's `/metrics` without Prometheus. The store's history
//! is the ring buffer; sparklines and rates come from it.

use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::access::SourceClient;
use super::clock::{now, ticker};
use super::exposition;
use super::http::{FetchError, read_text, status_reason};
use super::plan::{OVERVIEW_QUERY, Want, partitions_selectors};
use super::signals::Selector;
use super::update::Update;

#[derive(Debug, Clone)]
pub struct Exporter {
    url: String,
    /// The source name shown in the panel: `exporter HOST:PORT`.
    pub name: String,
    http: SourceClient,
}

impl Exporter {
    /// `url` may be `host:port`, `http://host:port` or a full URL with a path.
    pub fn new(url: &str, http: impl Into<SourceClient>) -> Self {
        Exporter {
            url: metrics_url(url),
            name: source_name(url),
            http: http.into(),
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// One scrape of everything, parsed. Unreadable lines are skipped and reported, never
    /// guessed.
    pub async fn scrape(&self) -> Result<exposition::Parsed, FetchError> {
        self.scrape_matching(&[]).await
    }

    /// One scrape of what the panel shows for `want`: the series the Overview, Kafka,
    /// PostgreSQL and health views read, and a group's partitions only while they are drilled
    /// into, asked of the exporter with `match[]` (at 1,000 consumer groups × 50 partitions, about
    /// 17,000 series of 179,000). An exporter that does not know `match[]` answers everything, which reads the
    /// same.
    pub async fn scrape_for(&self, want: &Want) -> Result<exposition::Parsed, FetchError> {
        let mut selectors = vec![OVERVIEW_QUERY.clone()];
        if let Some((cluster, group, topic)) = &want.partitions {
            selectors.extend(partitions_selectors(
                &Selector::default(),
                cluster,
                group,
                topic,
            ));
        }
        self.scrape_matching(&selectors).await
    }

    async fn scrape_matching(
        &self,
        selectors: &[String],
    ) -> Result<exposition::Parsed, FetchError> {
        let params: Vec<(&str, &str)> = selectors.iter().map(|s| ("match[]", s.as_str())).collect();
        let request = self
            .http
            .request(reqwest::Method::GET, &self.url)
            .map_err(|e| FetchError::new(&self.url, e))?
            .query(&params)
            .header("accept", "text/plain;version=0.0.4");
        let response = self
            .http
            .send(request)
            .await
            .map_err(|e| FetchError::new(&self.url, e))?;
        let status = response.status();
        if !status.is_success() {
            return Err(FetchError::new(
                &self.url,
                status_reason(status, &self.http),
            ));
        }
        let text = read_text(&self.url, response).await?;
        exposition::parse(&text).map_err(|e| FetchError::new(&self.url, e))
    }
}

/// The URL with a scheme (`host:port` → `http://host:port`).
pub fn with_scheme(url: &str) -> String {
    if url.contains("://") {
        url.to_string()
    } else {
        format!("http://{url}")
    }
}

/// The scrape URL: a scheme added when missing, `/metrics` when no path is given.
pub fn metrics_url(url: &str) -> String {
    let with_scheme = with_scheme(url);
    let path_given = with_scheme
        .split("://")
        .nth(1)
        .is_some_and(|rest| rest.contains('/'));
    if path_given {
        with_scheme
    } else {
        format!("{with_scheme}/metrics")
    }
}

/// How the panel names an exporter: `exporter HOST:PORT`.
pub fn source_name(url: &str) -> String {
    let with_scheme = with_scheme(url);
    let authority = with_scheme
        .split("://")
        .nth(1)
        .unwrap_or("")
        .split('/')
        .next()
        .unwrap_or("");
    format!("exporter {authority}")
}

/// The direct-mode fetcher of one exporter: a scrape every refresh.
pub async fn run(
    exporter: Exporter,
    refresh: Duration,
    updates: mpsc::Sender<Update>,
    mut want: watch::Receiver<Want>,
) {
    let mut interval = ticker(refresh);
    let mut warned = false;
    loop {
        // A drill-in changes what is asked for: scrape at once rather than at the next tick.
        tokio::select! {
            _ = interval.tick() => {}
            Ok(()) = want.changed() => {}
        }
        let wanted = want.borrow_and_update().clone();
        let update = match exporter.scrape_for(&wanted).await {
            Ok(parsed) => {
                if parsed.skipped > 0 && !warned {
                    warned = true;
                    let notice = format!(
                        "{}: {} unreadable line(s) skipped, first: {}",
                        exporter.name,
                        parsed.skipped,
                        parsed.first_bad_line.unwrap_or_default()
                    );
                    tracing::warn!("{notice}");
                    if updates.send(Update::Notice(notice)).await.is_err() {
                        return;
                    }
                }
                Update::Metrics {
                    source: exporter.name.clone(),
                    metrics: parsed.metrics,
                    at: now(),
                }
            }
            Err(e) => Update::Failed {
                source: exporter.name.clone(),
                error: e.to_string(),
            },
        };
        if updates.send(update).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_get_a_scheme_and_a_metrics_path() {
        assert_eq!(
            metrics_url("127.0.0.1:9187"),
            "http://127.0.0.1:9187/metrics"
        );
        assert_eq!(source_name("127.0.0.1:9187"), "exporter 127.0.0.1:9187");
        assert_eq!(
            metrics_url("https://x.example:443/custom"),
            "https://x.example:443/custom"
        );
        assert_eq!(
            source_name("https://x.example:443/custom"),
            "exporter x.example:443"
        );
    }
}
