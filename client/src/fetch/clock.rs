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

#[cfg(test)]
mod tests {
    use super::ticker;
    use std::time::Duration;
    use tokio::time::Instant;

    #[tokio::test(start_paused = true)]
    async fn a_slow_refresh_delays_the_next_and_queues_no_burst() {
        let period = Duration::from_secs(1);
        let mut ticker = ticker(period);
        ticker.tick().await;
        // A refresh that took three and a half periods: the next starts at once, and the one
        // after a whole period later, not three missed ones in a row.
        tokio::time::sleep(period * 3 + period / 2).await;
        let late = Instant::now();
        ticker.tick().await;
        assert_eq!(late.elapsed(), Duration::ZERO);
        ticker.tick().await;
        assert_eq!(late.elapsed(), period);
    }
}
