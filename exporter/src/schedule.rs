//! Runs sources: every target of a source concurrently, each under the source's timeout,
//! one background task per source on its own interval. Results go to the [`Store`].

use std::sync::Arc;
use std::time::Instant;

use futures::future::join_all;
use tokio::task::JoinSet;
use tokio::time::MissedTickBehavior;

use crate::source::Source;
use crate::store::Store;

/// Collect every target of `source` once. Returns true if all targets succeeded.
pub async fn collect_cycle(source: &dyn Source, store: &Store) -> bool {
    let targets = source.targets();
    let timeout = source.timeout();
    let results = join_all(targets.iter().map(|target| async move {
        let started = Instant::now();
        let outcome = match tokio::time::timeout(timeout, source.collect(target)).await {
            Ok(Ok(samples)) => Ok(samples),
            Ok(Err(error)) => Err(format!("{error:#}")),
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

/// Start every source's background loop. Dropping the returned set stops them.
pub fn spawn_all(sources: Vec<Arc<dyn Source>>, store: Arc<Store>) -> JoinSet<()> {
    let mut set = JoinSet::new();
    for source in sources {
        let store = Arc::clone(&store);
        set.spawn(async move {
            source.start().await;
            let mut ticker = tokio::time::interval(source.interval());
            // A slow cycle delays the next one instead of firing a burst to catch up.
            ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                collect_cycle(source.as_ref(), &store).await;
            }
        });
    }
    set
}
