//! Stalls judged per partition, as Burrow does: a partition whose committed offset has not
//! moved while it has lag, for the stall time, is stalled. Summed over a topic, the commits
//! of a group's healthy members hide a wedged one (its partitions' lag grows while the
//! topic's committed sum keeps moving); per partition they cannot. And the lag more
//! consumers could work off: that of the partitions that move, each capped at one consumer's
//! share, since one partition is read by one consumer at a time. Pure; time is passed in.

use std::collections::VecDeque;

/// One partition's committed offset, since when it has stood there, and when it last moved.
#[derive(Debug, Clone, PartialEq)]
pub struct StallClock {
    committed: i64,
    since: f64,
    seen: f64,
    /// The last few instants its committed offset moved.
    moves: VecDeque<f64>,
}

/// Move instants kept per partition: enough for a median gap that one odd gap cannot move.
const MOVES_KEPT: usize = 6;

impl StallClock {
    /// A clock first seeing `committed` at `now` (Unix seconds).
    pub fn start(committed: i64, now: f64) -> Self {
        StallClock {
            committed,
            since: now,
            seen: now,
            moves: VecDeque::new(),
        }
    }

    /// This cycle's committed offset. A gap between readings longer than `blind_after`
    /// (the exporter could not see; nobody could commit while the broker was down) starts
    /// the clock again, as the topic's rule does.
    pub fn observe(&mut self, committed: i64, now: f64, blind_after: f64) {
        if committed != self.committed {
            self.moves.push_back(now);
            while self.moves.len() > MOVES_KEPT {
                self.moves.pop_front();
            }
        }
        if committed != self.committed || now - self.seen > blind_after {
            self.committed = committed;
            self.since = now;
        }
        self.seen = now;
    }

    /// This partition's usual time between commits (the median gap between its last moves),
    /// once two gaps were seen. A slow consumer with many partitions comes back to each only
    /// every so often: that is its pace, not a stall.
    pub fn commit_interval(&self) -> Option<f64> {
        let mut gaps: Vec<f64> = self
            .moves
            .iter()
            .zip(self.moves.iter().skip(1))
            .map(|(a, b)| b - a)
            .collect();
        if gaps.len() < 2 {
            return None;
        }
        gaps.sort_by(f64::total_cmp);
        Some(gaps[gaps.len() / 2])
    }

    /// Seconds the committed offset has stood still.
    pub fn still_for(&self, now: f64) -> f64 {
        (now - self.since).max(0.0)
    }

    /// Stalled: work waiting (`lag` > 0) and the offset still for at least `threshold`
    /// seconds (the stall time, or twice the group's commit interval if it commits rarer),
    /// or twice this partition's own commit interval if that is longer. Not before its pace
    /// is known: until then only the topic's summed rule can call a stall, so a slow
    /// consumer's first rounds over its partitions are not taken for one.
    pub fn stalled(&self, lag: i64, now: f64, threshold: f64) -> bool {
        let Some(pace) = self.commit_interval() else {
            return false;
        };
        lag > 0 && self.still_for(now) >= threshold.max(2.0 * pace)
    }
}

/// The lag more consumers could work off: each moving partition's lag capped at `cap` (one
/// consumer's share, the HPA's per-replica target), stalled partitions left out. A stalled
/// partition's lag would grow without bound and ask for replicas that cannot help (only its
/// one assigned consumer can read it, and it is stuck); one hot partition would ask for
/// replicas it cannot use.
pub fn scalable_lag(partitions: impl IntoIterator<Item = (i64, bool)>, cap: Option<u64>) -> i64 {
    let cap = cap.map_or(i64::MAX, |c| i64::try_from(c).unwrap_or(i64::MAX));
    partitions
        .into_iter()
        .filter(|(_, stalled)| !stalled)
        .map(|(lag, _)| lag.clamp(0, cap))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    const BLIND: f64 = 45.0;
    const STALL: f64 = 60.0;

    /// The trace of issue 28 on one group: two members, four partitions, 100 msg/s. Member
    /// B (partitions 2, 3) stops polling at t = 30; A keeps committing 0 and 1. Per
    /// partition, 2 and 3 are stalled once their offsets stood still for the stall time;
    /// 0 and 1 never are.
    #[test]
    fn a_wedged_members_partitions_stall_while_the_others_commit() {
        let mut clocks: Vec<StallClock> = (0..4).map(|_| StallClock::start(0, 0.0)).collect();
        let mut first_stalled = [None; 4];
        for step in 1..=20 {
            let t = f64::from(step) * 15.0;
            for (p, clock) in clocks.iter_mut().enumerate() {
                let produced = (t * 25.0) as i64;
                let committed = if p >= 2 && t > 30.0 {
                    750
                } else {
                    produced - 10
                };
                clock.observe(committed, t, BLIND);
                if clock.stalled(produced - committed, t, STALL) && first_stalled[p].is_none() {
                    first_stalled[p] = Some(t);
                }
            }
        }
        // Last moved at 45 (the first reading of 750): still for 60 s at 105.
        assert_eq!(first_stalled, [None, None, Some(105.0), Some(105.0)]);
    }

    /// A slow consumer with many partitions comes back to each every ~20 s (a batch of one,
    /// then of another): with a 6 s stall time it is never stalled once its pace is known,
    /// and a partition it then stops coming back to is, after twice that pace.
    #[test]
    fn a_slow_consumers_pace_is_not_a_stall() {
        let mut clock = StallClock::start(0, 0.0);
        let mut stalled_at = None;
        for step in 1..=60 {
            let t = f64::from(step) * 2.0;
            // Moves every 20 s until t = 80, then never again.
            let committed = (t.min(80.0) / 20.0).floor() as i64;
            clock.observe(committed, t, BLIND);
            let stalled = clock.stalled(100, t, 6.0);
            if (60.0..=80.0).contains(&t) {
                assert!(!stalled, "at {t}: a slow pace, not a stall");
            }
            if stalled && stalled_at.is_none() && t > 80.0 {
                stalled_at = Some(t);
            }
        }
        assert_eq!(clock.commit_interval(), Some(20.0));
        // Still since 80: twice its 20 s pace later.
        assert_eq!(stalled_at, Some(120.0));
    }

    /// A clock that saw its partition commit every 5 s from 0 to `until`.
    fn paced(until: f64) -> StallClock {
        let mut clock = StallClock::start(0, 0.0);
        let mut t = 5.0;
        while t <= until {
            clock.observe((t / 5.0) as i64, t, BLIND);
            t += 5.0;
        }
        clock
    }

    #[test]
    fn no_lag_is_not_a_stall_and_a_move_restarts_the_clock() {
        let mut clock = paced(20.0);
        for t in [35.0, 50.0, 65.0, 80.0] {
            clock.observe(4, t, BLIND);
        }
        assert!(
            !clock.stalled(0, 80.0, STALL),
            "caught up: idle, not stalled"
        );
        assert!(clock.stalled(1, 80.0, STALL));
        assert!(
            !clock.stalled(1, 79.0, STALL),
            "just short of the stall time"
        );
        clock.observe(5, 95.0, BLIND);
        assert!(!clock.stalled(5, 95.0, STALL));
        assert_eq!(clock.still_for(110.0), 15.0);
    }

    #[test]
    fn a_partition_whose_pace_is_unknown_is_left_to_the_topics_rule() {
        let mut clock = StallClock::start(10, 0.0);
        for t in [15.0, 30.0, 45.0, 60.0, 75.0] {
            clock.observe(10, t, BLIND);
        }
        assert_eq!(clock.commit_interval(), None);
        assert!(!clock.stalled(100, 75.0, STALL));
    }

    #[test]
    fn a_blind_gap_restarts_the_clock() {
        let mut clock = paced(15.0);
        // The broker was down from 15 to 115: nobody could commit.
        clock.observe(3, 115.0, BLIND);
        clock.observe(3, 130.0, BLIND);
        assert!(!clock.stalled(100, 130.0, STALL));
        for t in [145.0, 160.0, 175.0] {
            clock.observe(3, t, BLIND);
        }
        assert!(clock.stalled(100, 175.0, STALL), "still since 115");
    }

    #[test]
    fn scalable_lag_leaves_out_stalls_and_caps_hot_partitions() {
        let parts = [(50, false), (5000, false), (9000, true), (0, false)];
        assert_eq!(scalable_lag(parts, Some(100)), 150);
        assert_eq!(scalable_lag(parts, None), 5050);
        assert_eq!(scalable_lag([(-3, false)], Some(100)), 0);
        assert_eq!(scalable_lag([(7, true)], None), 0);
    }
}
