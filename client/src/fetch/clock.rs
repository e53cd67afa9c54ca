//! Time for fetchers: the wall clock updates are stamped with, and the refresh ticker.

use std::time::Duration;

/// Unix seconds now.
pub fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// A ticker for refreshes: a refresh slower than the interval delays the next one; it never
/// queues a burst.
pub(crate) fn ticker(refresh: Duration) -> tokio::time::Interval {
    let mut interval = tokio::time::interval(refresh);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    interval
}
