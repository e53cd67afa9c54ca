//! Runs sources: every target of a source concurrently, each under the source's timeout,
//! one background loop per source on its own interval. Results go to the [`Store`].
//!
//! A collector that panics fails only that target, for that cycle: the panic is caught,
//! logged with its message, counted as an error and shown as `surge_source_up 0`, and the
//! loop goes on. Without this a panic would end the loop while `/metrics` kept serving the
//! last samples as if they were fresh.

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;

use futures::FutureExt;
use futures::future::join_all;
use surge_metrics::store::Store;
use tokio::time::MissedTickBehavior;

use crate::source::Source;

/// The text a panic was raised with.
fn panic_message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_string())
}

/// Call `start` once; a panic there is logged and collection goes ahead (each cycle then
/// reports whatever is wrong per target).
pub(crate) async fn start(source: &dyn Source) {
    if let Err(panic) = AssertUnwindSafe(source.start()).catch_unwind().await {
        tracing::error!(
            source = source.name(),
            panic = %panic_message(panic.as_ref()),
            "source start panicked"
        );
    }
}

/// Collect every target of `source` once. Returns true if all targets succeeded.
pub(crate) async fn collect_cycle(source: &dyn Source, store: &Store) -> bool {
    let targets = source.targets();
    // Discovered targets come and go: a gone one's series must leave, not freeze.
    store.set_targets(source.name(), &targets, source.interval());
    let timeout = source.timeout();
    let results = join_all(targets.iter().map(|target| async move {
        let started = Instant::now();
        let collect = AssertUnwindSafe(source.collect(target)).catch_unwind();
        let outcome = match tokio::time::timeout(timeout, collect).await {
            Ok(Ok(Ok(samples))) => Ok(samples),
            Ok(Ok(Err(error))) => Err(format!("{error:#}")),
            Ok(Err(panic)) => {
                let message = panic_message(panic.as_ref());
                tracing::error!(source = source.name(), target, panic = %message, "collector panicked");
                Err(format!("collector panicked: {message}"))
            }
            Err(_) => Err(format!(
                "timed out after {}",
                humantime::format_duration(timeout)
            )),
        };
        (target, outcome, started.elapsed())
    }))
    .await;

    let mut all_ok = true;
    for (target, outcome, elapsed) in results {
        let was_up = store.is_up(source.name(), target);
        match &outcome {
            Ok(_) if was_up == Some(false) => {
                tracing::info!(source = source.name(), target, "target recovered");
            }
            Ok(_) => {}
            Err(error) => {
                all_ok = false;
                // Log the transition loudly, repeats quietly: a dead replica must not flood logs.
                if was_up == Some(false) {
                    tracing::debug!(source = source.name(), target, %error, "target still down");
                } else {
                    tracing::warn!(source = source.name(), target, %error, "target down");
                }
            }
        }
        store.record(source.name(), target, outcome, elapsed);
    }
    all_ok
}

/// One source's background loop: announce its targets, start it, then a cycle every
/// interval. Never returns.
pub(crate) async fn run(source: Arc<dyn Source>, store: Arc<Store>) {
    for target in source.targets() {
        store.expect(source.name(), &target, source.interval());
    }
    start(source.as_ref()).await;
    let mut ticker = tokio::time::interval(source.interval());
    // A slow cycle delays the next one instead of firing a burst to catch up.
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        collect_cycle(source.as_ref(), &store).await;
        // Encoded now, off the request path, so the scrape that follows finds it ready.
        let prepared = Arc::clone(&store);
        let encoding = Instant::now();
        match tokio::task::spawn_blocking(move || prepared.prepare()).await {
            Ok(Ok(())) => tracing::debug!(
                source = source.name(),
                elapsed_ms = encoding.elapsed().as_secs_f64() * 1000.0,
                "exposition encoded"
            ),
            Ok(Err(_)) => tracing::error!(source = source.name(), "encoding the exposition failed"),
            Err(e) => {
                tracing::error!(source = source.name(), error = %e, "encoding the exposition panicked")
            }
        }
        crate::memory::give_back();
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    use async_trait::async_trait;
    use surge_metrics::catalogue::kubernetes::POD_METRICS_AVAILABLE;
    use surge_metrics::{Sample, SampleSet};

    /// Target `bad` panics on every collection; target `good` returns one sample.
    #[derive(Default)]
    pub(crate) struct PanickingSource {
        pub(crate) calls: AtomicU32,
    }

    #[async_trait]
    impl Source for PanickingSource {
        fn name(&self) -> &'static str {
            "boom"
        }
        fn interval(&self) -> Duration {
            Duration::from_millis(50)
        }
        fn timeout(&self) -> Duration {
            Duration::from_millis(40)
        }
        fn targets(&self) -> Vec<String> {
            vec!["bad".into(), "good".into()]
        }
        async fn collect(&self, target: &str) -> anyhow::Result<SampleSet> {
            self.calls.fetch_add(1, Ordering::Relaxed);
            let index: usize = if target == "bad" { 3 } else { 0 };
            let values = [1.0];
            // An out-of-bounds index, the kind of bug a collector can have.
            let value = values[std::hint::black_box(index)];
            Ok(SampleSet::from(vec![Sample::new(
                &POD_METRICS_AVAILABLE,
                vec![("target", target.to_string())],
                value,
            )]))
        }
    }

    #[tokio::test]
    async fn a_panicking_collect_marks_its_target_down_and_the_cycle_goes_on() {
        let store = Store::new();
        let source = PanickingSource::default();
        assert!(!collect_cycle(&source, &store).await);
        assert_eq!(store.is_up("boom", "bad"), Some(false));
        assert_eq!(store.is_up("boom", "good"), Some(true));
        let snapshot = store.snapshot();
        let bad = snapshot
            .iter()
            .find(|((_, t), _)| t == "bad")
            .map(|(_, s)| s.clone())
            .expect("bad recorded");
        assert_eq!(bad.errors, 1);
        let error = bad.last_error.unwrap_or_default();
        assert!(
            error.starts_with("collector panicked: index out of bounds"),
            "{error}"
        );
        let text = store.encode_prometheus_text().expect("encode");
        assert!(
            text.contains("surge_source_up{source=\"boom\",target=\"bad\"} 0"),
            "{text}"
        );
        assert!(
            text.contains("surge_source_errors_total{source=\"boom\",target=\"bad\"} 1"),
            "{text}"
        );
    }
}
