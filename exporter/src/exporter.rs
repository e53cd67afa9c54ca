//! The one way to run surge-exporter: from a config to sources, then collect once, or serve
//! `/metrics` while every source collects in the background. The binary, the tests and the
//! benchmarks all go through here.

use std::net::SocketAddr;
use std::sync::Arc;

use futures::future::join_all;
use surge_metrics::store::Store;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};

use crate::config::{Config, ConfigError};
use crate::schedule;
use crate::source::Source;
use crate::sources::{kafka, kubernetes, postgres, processes};
use crate::web::WebConfig;

/// What `/` answers.
const ABOUT: &str = "surge-exporter: pod CPU vs HPA target, Kafka consumer lag, PostgreSQL replication lag.\nMetrics: /metrics\n";

/// Every configured source and the store their samples go to.
pub struct Exporter {
    sources: Vec<Arc<dyn Source>>,
    store: Arc<Store>,
}

impl Exporter {
    /// Build every configured source. Secrets (passwords, DSNs from the environment) are
    /// read now, so a missing one is an error naming its field.
    pub fn new(config: &Config) -> Result<Exporter, ConfigError> {
        let mut sources: Vec<Arc<dyn Source>> = Vec::new();
        if let Some(settings) = &config.postgres {
            sources.push(Arc::new(postgres::PostgresSource::new(settings)?));
        }
        if let Some(settings) = &config.kafka {
            sources.push(Arc::new(kafka::KafkaSource::new(settings)?));
        }
        if let Some(settings) = &config.kubernetes {
            sources.push(Arc::new(kubernetes::KubernetesSource::new(settings)));
        }
        if let Some(settings) = &config.processes {
            sources.push(Arc::new(processes::ProcessSource::new(settings)));
        }
        Ok(Exporter::with_sources(sources))
    }

    pub(crate) fn with_sources(sources: Vec<Arc<dyn Source>>) -> Exporter {
        Exporter {
            sources,
            store: Store::new(),
        }
    }

    /// The latest samples and every target's health.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Start every source (watches and the like); before collecting by hand.
    pub async fn start(&self) {
        join_all(self.sources.iter().map(|s| schedule::start(s.as_ref()))).await;
    }

    /// One cycle of every source at once; true if every target succeeded.
    pub async fn collect(&self) -> bool {
        let results = join_all(
            self.sources
                .iter()
                .map(|s| schedule::collect_cycle(s.as_ref(), &self.store)),
        )
        .await;
        results.into_iter().all(|ok| ok)
    }

    /// Serve `/metrics` on `listener` while every source collects on its own interval, until
    /// `shutdown` resolves. A collector loop cannot end by itself (panics in a collection are
    /// caught per target); if one ever does, this returns an error rather than go on serving
    /// its last samples as if they were fresh.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), String> {
        self.serve_with(listener, None, shutdown).await
    }

    /// [`Exporter::serve`] under a web config (TLS, basic auth, headers), if given.
    pub async fn serve_with(
        self,
        listener: TcpListener,
        web: Option<Arc<WebConfig>>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), String> {
        let mut collectors = JoinSet::new();
        for source in &self.sources {
            collectors.spawn(schedule::run(Arc::clone(source), Arc::clone(&self.store)));
        }
        let store = Arc::clone(&self.store);
        let server = async move {
            // Plain HTTP goes through the same server, for its connection cap and timeouts.
            let web = web.unwrap_or_else(|| Arc::new(WebConfig::plain()));
            let router = surge_metrics::http::router(store, ABOUT);
            crate::web::serve(listener, router, web, shutdown).await
        };
        tokio::select! {
            served = server => served.map_err(|e| format!("server error: {e}")),
            Some(ended) = collectors.join_next() => {
                let why = match ended {
                    Ok(()) => "returned".to_string(),
                    Err(e) => e.to_string(),
                };
                tracing::error!(%why, "a collector loop ended; stopping");
                Err(format!("a collector loop ended ({why})"))
            }
        }
    }

    /// [`Exporter::serve`] on `addr` in the background of the current runtime; dropping the
    /// handle stops serving and collecting.
    pub async fn spawn(self, addr: SocketAddr) -> Result<Running, String> {
        let listener = surge_metrics::http::bind(addr).await?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let store = Arc::clone(&self.store);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(self.serve(listener, async {
            let _ = stopped.await;
        }));
        Ok(Running {
            addr,
            store,
            stop: Some(stop),
            task,
        })
    }
}

/// An exporter serving in the background (see [`Exporter::spawn`]).
pub struct Running {
    pub addr: SocketAddr,
    pub store: Arc<Store>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), String>>,
}

impl Running {
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Stop gracefully and say how serving ended.
    pub async fn stop(mut self) -> Result<(), String> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task)
            .await
            .map_err(|e| format!("exporter task failed: {e}"))?
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        // The collectors live inside the serving task: aborting it stops them at once.
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::tests::PanickingSource;
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    #[tokio::test]
    async fn a_panicking_source_stays_down_cycle_after_cycle_while_others_serve() {
        let source = Arc::new(PanickingSource::default());
        let exporter = Exporter::with_sources(vec![source.clone() as Arc<dyn Source>]);
        let running = exporter
            .spawn(([127, 0, 0, 1], 0).into())
            .await
            .expect("serving");
        // Three cycles of both targets at least: the loop survived every panic.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while source.calls.load(Ordering::Relaxed) < 6 {
            assert!(tokio::time::Instant::now() < deadline, "loop stopped");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let bad = running
            .store
            .snapshot()
            .into_iter()
            .find(|((_, t), _)| t == "bad")
            .map(|(_, s)| s)
            .expect("bad recorded");
        assert!(!bad.up);
        assert!(bad.errors >= 2, "errors {}", bad.errors);
        assert_eq!(running.store.is_up("boom", "good"), Some(true));
        let text = running.store.encode_prometheus_text().expect("encode");
        assert!(
            text.contains("surge_source_interval_seconds{source=\"boom\",target=\"bad\"} 0.05"),
            "{text}"
        );
    }
}
