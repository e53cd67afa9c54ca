//! The dead-letter view's fetcher: while the view is shown, the broker is asked for the
//! dead-letter topics or one topic's newest letters, at once when the view changes and then
//! every refresh (at least [`MIN_REFRESH`] apart: each look reads whole partitions' tails).

use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::plan::{DeadLetterWant, Want};
use super::update::Update;
use crate::act::dead_letters::broker::Broker;

/// Letters read per look.
pub const NEWEST: usize = 200;

/// The least time between two looks.
pub const MIN_REFRESH: Duration = Duration::from_secs(5);

pub async fn run(
    broker: Broker,
    patterns: Vec<String>,
    refresh: Duration,
    updates: mpsc::Sender<Update>,
    mut want: watch::Receiver<Want>,
) {
    loop {
        let wanted = want.borrow_and_update().dead_letters.clone();
        let topic = match &wanted {
            DeadLetterWant::Nothing => None,
            DeadLetterWant::Topics => Some(None),
            DeadLetterWant::Letters(topic) => Some(Some(topic.clone())),
        };
        if let Some(topic) = topic {
            let look = broker.look(&patterns, topic.as_deref(), NEWEST).await;
            if updates.send(Update::DeadLetters(look)).await.is_err() {
                return;
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(refresh.max(MIN_REFRESH)) => {}
            changed = want.changed() => if changed.is_err() { return },
        }
    }
}
