//! Lag trends from a short in-memory history: rates, drain ETA, time lag, and the lag state
//! (`ok | growing | draining | stalled | idle`). Pure functions over samples, so every rule is
//! unit-tested on traces.
//!
//! The state rule, in priority order (first match wins), over the samples of one
//! (group, topic) in the last `window`:
//! 1. **idle** — lag is 0 now and the log end did not move over the window: nothing to do.
//! 2. **stalled** — lag > 0 and the committed offset has not moved for `stall_after`, or for
//!    twice the group's own commit interval if it commits more rarely (a few cycles, not a
//!    whole window): work is waiting and nobody is doing it. The clock does not run across a
//!    gap in the samples longer than `blind_after` (the exporter could not see, e.g. the
//!    broker was down and nobody could commit): it starts again after it.
//! 3. **growing** / **draining** — judged only at commit instants (the samples whose
//!    committed offset moved): between commits a consumer's committed lag rises by whatever
//!    was produced, whether or not it keeps pace, so a rare committer's lag means something
//!    only right after it commits. Needs at least `min_samples` commit instants spanning half
//!    the window, so a fresh history (exporter restart) or a group committing less often than
//!    `window / min_samples` can never claim a trend. The lag's slope is the Theil–Sen
//!    estimate (median of pairwise slopes), which commit-cadence sawtooth dips do not flip,
//!    and the net change is the median of the last third minus the median of the first
//!    third. Growing needs both positive and the net change above `min_change` of the typical
//!    lag and, for a group that commits less often than it is sampled, above the most
//!    produced between two samples (an instant's lag includes what was produced between the
//!    commit and the sample, up to that much: no smaller change can be told from where the
//!    sample fell); draining is the mirror image. Burrow resets
//!    its WARN on any single dip between consecutive commits (#453); neither estimate can be
//!    moved by one dip.
//! 4. **ok** — anything else (including too little history).

use std::collections::VecDeque;
use std::time::Duration;

use surge_metrics::state::LagState;

/// Knobs of the trend rule.
#[derive(Debug, Clone, Copy)]
pub struct TrendConfig {
    /// Span the growing/draining decision looks at.
    pub window: Duration,
    /// Span rates are computed over.
    pub rate_window: Duration,
    /// How long an unchanged committed offset with lag > 0 takes to count as stalled.
    pub stall_after: Duration,
    /// Fewest samples a trend may be based on.
    pub min_samples: usize,
    /// Smallest net change, as a fraction of the typical lag, that counts as a trend.
    pub min_change: f64,
    /// Samples further apart than this mean the exporter did not see in between.
    pub blind_after: Duration,
}

impl Default for TrendConfig {
    fn default() -> Self {
        TrendConfig {
            window: Duration::from_secs(600),
            rate_window: Duration::from_secs(60),
            stall_after: Duration::from_secs(60),
            min_samples: 4,
            min_change: 0.05,
            // Three of the default 15 s cycles: one failed cycle is not blindness.
            blind_after: Duration::from_secs(45),
        }
    }
}

/// One observation of a (group, topic), summed over the partitions the group has commits on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// Unix seconds.
    pub t: f64,
    pub lag: f64,
    pub committed: f64,
    pub log_end: f64,
}

/// Decide the state of one (group, topic) from its samples (oldest first).
pub fn classify(points: &[Point], config: &TrendConfig) -> LagState {
    let Some(latest) = points.last() else {
        return LagState::Ok;
    };
    let window_start = latest.t - config.window.as_secs_f64();
    let recent: Vec<&Point> = points.iter().filter(|p| p.t >= window_start).collect();

    if latest.lag <= 0.0 {
        let no_production = recent.len() >= 2 && recent.iter().all(|p| p.log_end == latest.log_end);
        return if no_production {
            LagState::Idle
        } else {
            LagState::Ok
        };
    }

    // Stalled: committed unchanged since `since`, for at least stall_after (or twice the
    // group's usual commit interval, so a rare committer is not stalled between commits).
    let blind_after = config.blind_after.as_secs_f64();
    let mut since = latest.t;
    for p in points.iter().rev().skip(1) {
        if p.committed != latest.committed || since - p.t > blind_after {
            break;
        }
        since = p.t;
    }
    let stall_after = config
        .stall_after
        .as_secs_f64()
        .max(2.0 * commit_interval(points).unwrap_or(0.0));
    if latest.t - since >= stall_after {
        return LagState::Stalled;
    }

    let instants = commit_instants(&recent);
    let span = instants.last().map_or(0.0, |l| l.t) - instants.first().map_or(0.0, |f| f.t);
    if instants.len() < config.min_samples || span < config.window.as_secs_f64() / 2.0 {
        return LagState::Ok;
    }
    let slope = theil_sen_slope(&instants);
    let third = (instants.len() / 3).max(1);
    let first = median(instants[..third].iter().map(|p| p.lag).collect());
    let last = median(
        instants[instants.len() - third..]
            .iter()
            .map(|p| p.lag)
            .collect(),
    );
    let net = last - first;
    let typical = median(instants.iter().map(|p| p.lag).collect()).max(1.0);
    // A group that commits less often than it is sampled: an instant's lag holds up to one
    // sample interval of production after the commit. (Committing at every sample, the
    // medians over many instants absorb that.)
    let sampling = if instants.len() + 1 < recent.len() {
        recent
            .windows(2)
            .map(|w| (w[1].log_end - w[0].log_end).max(0.0))
            .fold(0.0, f64::max)
    } else {
        0.0
    };
    let threshold = (config.min_change * typical).max(sampling);
    if slope > 0.0 && net > threshold && slope * span > threshold {
        LagState::Growing
    } else if slope < 0.0 && net < -threshold && -slope * span > threshold {
        LagState::Draining
    } else {
        LagState::Ok
    }
}

/// The samples whose committed offset moved since the previous sample (the first sample
/// has no previous one and is not an instant).
fn commit_instants<'a>(points: &[&'a Point]) -> Vec<&'a Point> {
    points
        .windows(2)
        .filter(|w| w[1].committed != w[0].committed)
        .map(|w| w[1])
        .collect()
}

/// The group's usual time between commits (the median gap between commit instants), once
/// at least two gaps were seen.
pub fn commit_interval(points: &[Point]) -> Option<f64> {
    let all: Vec<&Point> = points.iter().collect();
    let instants = commit_instants(&all);
    let gaps: Vec<f64> = instants.windows(2).map(|w| w[1].t - w[0].t).collect();
    (gaps.len() >= 2).then(|| median(gaps))
}

/// For a group that commits so rarely that `config.window` holds fewer than
/// `min_samples` of its commits (so its lag is never called growing or draining), what to
/// tell the operator: the interval seen and the window it needs. `None` while the trend can be
/// judged or the interval is not known yet.
pub fn window_too_short(points: &[Point], config: &TrendConfig) -> Option<String> {
    let interval = commit_interval(points)?;
    let need = interval * config.min_samples as f64;
    (need > config.window.as_secs_f64()).then(|| {
        format!(
            "commits every {interval:.0} s: the {window} s trend window holds fewer than {min} of its commits, so its lag is never called growing or draining; set [kafka] window to at least {need:.0}s",
            window = config.window.as_secs(),
            min = config.min_samples,
        )
    })
}

fn theil_sen_slope(points: &[&Point]) -> f64 {
    let mut slopes = Vec::with_capacity(points.len() * points.len() / 2);
    for (i, a) in points.iter().enumerate() {
        for b in &points[i + 1..] {
            let dt = b.t - a.t;
            if dt > 0.0 {
                slopes.push((b.lag - a.lag) / dt);
            }
        }
    }
    median(slopes)
}

fn median(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len().is_multiple_of(2) {
        (values[mid - 1] + values[mid]) / 2.0
    } else {
        values[mid]
    }
}

/// Consume and produce rates (messages/s) of a (group, topic) over `rate_window`; `None`
/// until two samples span some time. A committed offset moving backwards (a reset) gives
/// no consume rate rather than a negative one.
pub fn rates(points: &[Point], rate_window: Duration) -> Option<(Option<f64>, f64)> {
    let latest = points.last()?;
    let first = points
        .iter()
        .find(|p| p.t >= latest.t - rate_window.as_secs_f64())?;
    let dt = latest.t - first.t;
    if dt <= 0.0 {
        return None;
    }
    let consumed = latest.committed - first.committed;
    let produced = (latest.log_end - first.log_end).max(0.0);
    let consume = (consumed >= 0.0).then_some(consumed / dt);
    Some((consume, produced / dt))
}

/// Seconds until the lag reaches 0 at the current rates, only while draining.
pub fn drain_eta(lag: f64, consume_rate: f64, produce_rate: f64) -> Option<f64> {
    let net = consume_rate - produce_rate;
    (lag > 0.0 && net > 0.0).then(|| lag / net)
}

/// Log-end offsets of one partition over time, thinned so memory stays bounded while old
/// history keeps coarse resolution.
#[derive(Debug, Clone, Default)]
pub struct LogEndHistory {
    points: VecDeque<(f64, f64)>,
}

/// Most samples kept per partition.
const HISTORY_CAP: usize = 64;

impl LogEndHistory {
    /// Record the log end at `t`, dropping what is older than `horizon`.
    pub fn push(&mut self, t: f64, log_end: f64, horizon: Duration) {
        self.points.push_back((t, log_end));
        let oldest = t - horizon.as_secs_f64();
        while self.points.front().is_some_and(|(pt, _)| *pt < oldest) && self.points.len() > 1 {
            self.points.pop_front();
        }
        if self.points.len() > HISTORY_CAP {
            // Drop every other sample of the older half: recent history stays exact.
            let half = self.points.len() / 2;
            let mut kept = VecDeque::with_capacity(HISTORY_CAP);
            for (i, p) in self.points.iter().enumerate() {
                if i >= half || i % 2 == 0 {
                    kept.push_back(*p);
                }
            }
            self.points = kept;
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.points.len()
    }

    /// How long ago (from `now`) the message at offset `committed` was appended, estimated by
    /// interpolating when the log end passed it. `(seconds, lower_bound)`: `lower_bound` is
    /// true when the history does not reach back that far, so the true lag is larger.
    pub fn time_lag(&self, committed: f64, now: f64) -> Option<(f64, bool)> {
        let (_, latest_end) = *self.points.back()?;
        if committed >= latest_end {
            return Some((0.0, false));
        }
        // The message at `committed` exists once the log end exceeds it.
        let mut after: Option<(f64, f64)> = None;
        for &(t, end) in self.points.iter().rev() {
            if end <= committed {
                let Some((t_after, end_after)) = after else {
                    return Some((0.0, false));
                };
                let fraction = ((committed + 1.0 - end) / (end_after - end)).clamp(0.0, 1.0);
                let appended = t + fraction * (t_after - t);
                return Some(((now - appended).max(0.0), false));
            }
            after = Some((t, end));
        }
        let (oldest, _) = *self.points.front()?;
        Some(((now - oldest).max(0.0), true))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STEP: f64 = 15.0;

    fn trace(
        lags: &[f64],
        committed: impl Fn(usize) -> f64,
        log_end: impl Fn(usize) -> f64,
    ) -> Vec<Point> {
        lags.iter()
            .enumerate()
            .map(|(i, lag)| Point {
                t: 1_000.0 + i as f64 * STEP,
                lag: *lag,
                committed: committed(i),
                log_end: log_end(i),
            })
            .collect()
    }

    /// A live pipeline: the log end grows by `produce` per step, the consumer commits a
    /// varying amount each step; lag is what is left.
    fn pipeline(
        steps: usize,
        backlog: f64,
        produce: f64,
        consume: impl Fn(usize) -> f64,
    ) -> Vec<Point> {
        let (mut end, mut committed) = (10_000.0 + backlog, 10_000.0);
        let mut points = Vec::new();
        for i in 0..steps {
            end += produce;
            committed = (committed + consume(i)).min(end);
            points.push(Point {
                t: 1_000.0 + i as f64 * STEP,
                lag: end - committed,
                committed,
                log_end: end,
            });
        }
        points
    }

    fn states(points: &[Point]) -> Vec<LagState> {
        (1..=points.len())
            .map(|n| classify(&points[..n], &TrendConfig::default()))
            .collect()
    }

    #[test]
    fn steady_growth_is_growing_within_one_window() {
        // Produce 100/step, consume 60/step: lag +40 per 15 s. Window 10 min = 40 steps.
        let points = pipeline(41, 0.0, 100.0, |_| 60.0);
        let states = states(&points);
        let first_growing = states.iter().position(|s| *s == LagState::Growing);
        assert!(matches!(first_growing, Some(i) if i <= 40), "{states:?}");
        assert!(
            states[first_growing.unwrap_or(0)..]
                .iter()
                .all(|s| *s == LagState::Growing)
        );
    }

    #[test]
    fn draining_sawtooth_is_draining_never_growing() {
        // A backlog of 5,000; commits arrive in bursts every 4th step (cadence jitter): lag
        // rises for 3 steps, then drops by more than it rose.
        let points = pipeline(60, 5_000.0, 100.0, |i| if i % 4 == 3 { 520.0 } else { 0.0 });
        let states = states(&points);
        assert!(!states.contains(&LagState::Growing), "{states:?}");
        assert_eq!(states.last(), Some(&LagState::Draining), "{states:?}");
    }

    #[test]
    fn growing_sawtooth_with_dips_is_growing() {
        // Burrow #453's shape: 204,894 -> 228,876 over the window with regular dips.
        // Each dip is deeper than a single rise, which is what resets Burrow's rule.
        let mut lag = 204_894.0;
        let mut lags = Vec::new();
        for i in 0..41 {
            lag += if i % 3 == 2 { -2_300.0 } else { 2_000.0 };
            lags.push(lag);
        }
        assert!(*lags.last().unwrap_or(&0.0) > 228_000.0);
        let points = trace(
            &lags,
            |i| i as f64 * 1_000.0,
            |i| i as f64 * 1_000.0 + lags[i],
        );
        assert_eq!(
            classify(&points, &TrendConfig::default()),
            LagState::Growing
        );
    }

    #[test]
    fn stationary_sawtooth_is_ok() {
        let points = pipeline(60, 0.0, 100.0, |i| if i % 4 == 3 { 400.0 } else { 0.0 });
        let states = states(&points);
        assert!(!states[5..].contains(&LagState::Growing), "{states:?}");
        assert!(!states[5..].contains(&LagState::Draining), "{states:?}");
    }

    #[test]
    fn stopped_consumer_is_stalled_within_a_few_cycles() {
        // Healthy for 10 steps, then the consumer stops while the producer keeps going.
        let points = pipeline(20, 0.0, 100.0, |i| if i < 10 { 100.0 } else { 0.0 });
        let states = states(&points);
        // Caught up while the producer produces: ok, not idle.
        assert_eq!(states[9], LagState::Ok, "{states:?}");
        // Committed last moved at step 9; 60 s = 4 steps later it is stalled.
        assert_eq!(states[13], LagState::Stalled, "{states:?}");
        assert!(states[13..].iter().all(|s| *s == LagState::Stalled));
    }

    #[test]
    fn the_stall_clock_starts_again_after_the_exporter_was_blind() {
        // The consumer commits until step 9; then the broker is down for 10 steps (no
        // samples, nobody can commit); it comes back with messages waiting.
        let all = pipeline(30, 0.0, 100.0, |i| if i < 10 { 100.0 } else { 0.0 });
        let seen: Vec<Point> = all
            .iter()
            .enumerate()
            .filter(|(i, _)| *i < 10 || *i >= 20)
            .map(|(_, p)| *p)
            .collect();
        let states = states(&seen);
        // First sample after the gap: not stalled yet (the 150 s without samples do not
        // count), and stalled once 60 s of its own have passed with no commit.
        assert_eq!(states[10], LagState::Ok, "{states:?}");
        assert_eq!(states[13], LagState::Ok, "{states:?}");
        assert_eq!(states[14], LagState::Stalled, "{states:?}");
    }

    #[test]
    fn idle_group_is_idle_and_stopped_at_zero_is_not_stalled() {
        let points = trace(&[0.0; 30], |_| 5_000.0, |_| 5_000.0);
        assert!(states(&points)[1..].iter().all(|s| *s == LagState::Idle));
        // One sample: not enough to call it idle, but never stalled or growing.
        assert_eq!(
            classify(&points[..1], &TrendConfig::default()),
            LagState::Ok
        );
    }

    #[test]
    fn restart_never_claims_growth_from_short_history() {
        // A long steady growth, but the exporter only saw the last few samples.
        let points = pipeline(200, 0.0, 100.0, |_| 60.0);
        let after_restart = &points[190..];
        for n in 1..=after_restart.len() {
            assert_ne!(
                classify(&after_restart[..n], &TrendConfig::default()),
                LagState::Growing
            );
        }
    }

    /// A consumer that commits rarely, sampled every 15 s: production `produce` msg/s from
    /// t = 0, the consumer reads at `consume` msg/s (never past the log end) and commits its
    /// position every ~`every` s (jittered ±3 s, out of phase with the samples) until
    /// `stop_at`.
    fn rare_committer(
        seconds: f64,
        produce: f64,
        consume: f64,
        every: f64,
        stop_at: f64,
    ) -> Vec<Point> {
        let position = |t: f64| (consume * t).min(produce * t);
        let mut commits = Vec::new();
        let mut c = 7.0;
        let mut j = 0;
        while c < seconds.min(stop_at) {
            commits.push(c);
            j += 1;
            c += every + [0.0, 3.0, -2.0, 1.0, -3.0][j % 5];
        }
        let mut points = Vec::new();
        let mut t = 0.0;
        while t <= seconds {
            let committed = commits
                .iter()
                .rev()
                .find(|c| **c <= t)
                .map_or(0.0, |c| position(*c).floor());
            let log_end = (produce * t).floor();
            points.push(Point {
                t: 1_000.0 + t,
                lag: log_end - committed,
                committed,
                log_end,
            });
            t += STEP;
        }
        points
    }

    /// Index of the sample that saw the third commit (two gaps: the interval is known).
    fn third_commit(points: &[Point]) -> usize {
        (1..points.len())
            .filter(|i| points[*i].committed != points[i - 1].committed)
            .nth(2)
            .unwrap_or(points.len())
    }

    fn states_with(points: &[Point], config: &TrendConfig) -> Vec<LagState> {
        (1..=points.len())
            .map(|n| classify(&points[..n], config))
            .collect()
    }

    fn window(seconds: u64) -> TrendConfig {
        TrendConfig {
            window: Duration::from_secs(seconds),
            ..TrendConfig::default()
        }
    }

    #[test]
    fn rare_committer_keeping_pace_is_never_growing_or_stalled() {
        // 100 msg/s in and out, a commit every ~90 s: a clean sawtooth 0 -> ~9,000 with no
        // net growth, for two hours.
        let points = rare_committer(7_200.0, 100.0, 100.0, 90.0, f64::MAX);
        let peak = points.iter().map(|p| p.lag).fold(0.0, f64::max);
        assert!(peak > 8_000.0, "the sawtooth reaches {peak}");
        assert!(
            points
                .windows(2)
                .filter(|w| w[1].committed != w[0].committed)
                .count()
                > 70,
            "commits seen"
        );
        // Until two of its commit gaps were seen, its interval is unknown and `stall_after`
        // alone applies (the exporter cannot tell a rare committer from a stalled one yet).
        let warm = third_commit(&points);
        assert!(warm < 20, "{warm}");
        for seconds in [300, 600, 900] {
            let config = window(seconds);
            let states = states_with(&points, &config);
            let trend = states
                .iter()
                .filter(|s| matches!(s, LagState::Growing | LagState::Draining))
                .count();
            assert_eq!(trend, 0, "window {seconds} s: {states:?}");
            let not_ok = states[warm..]
                .iter()
                .filter(|s| **s != LagState::Ok)
                .count();
            assert_eq!(not_ok, 0, "window {seconds} s: {states:?}");
        }
        // The trend was judged, not skipped for too few commits: 10 minutes hold at least 6
        // commit instants (min_samples is 4) at every point of the run.
        for end in 40..points.len() {
            let recent: Vec<&Point> = points[..=end]
                .iter()
                .filter(|p| p.t >= points[end].t - 600.0)
                .collect();
            assert!(commit_instants(&recent).len() >= 6, "at {end}");
        }
        assert!(commit_interval(&points).is_some_and(|i| (i - 90.0).abs() <= 15.0));
    }

    #[test]
    fn a_window_too_short_for_the_commit_interval_is_reported_with_the_window_needed() {
        // ~90 s between commits: 4 of them need 360 s.
        let points = rare_committer(1_800.0, 100.0, 100.0, 90.0, f64::MAX);
        let warm = third_commit(&points);
        assert_eq!(
            window_too_short(&points[..warm], &window(300)),
            None,
            "interval unknown yet"
        );
        let message = window_too_short(&points, &window(300)).unwrap_or_default();
        assert!(
            message.starts_with("commits every 9")
                && message.contains("the 300 s trend window holds fewer than 4 of its commits")
                && message.ends_with("set [kafka] window to at least 360s"),
            "{message}"
        );
        assert_eq!(window_too_short(&points, &window(600)), None);
        // One committing about every sample (16 s) with a 2-minute window is judged.
        let frequent = rare_committer(600.0, 100.0, 100.0, 16.0, f64::MAX);
        assert!(commit_interval(&frequent).is_some());
        assert_eq!(window_too_short(&frequent, &window(120)), None);
    }

    #[test]
    fn rare_committer_falling_behind_is_growing() {
        // Same cadence, consuming 90 of every 100 msg/s: the lag after each commit grows by
        // ~900; a 10-minute window (6-7 commit instants) calls it growing within two windows
        // and keeps calling it so.
        let points = rare_committer(3_600.0, 100.0, 90.0, 90.0, f64::MAX);
        let states = states_with(&points, &window(600));
        let first = states.iter().position(|s| *s == LagState::Growing);
        assert!(matches!(first, Some(i) if i <= 80), "{states:?}");
        assert!(
            states[first.unwrap_or(0)..]
                .iter()
                .all(|s| *s == LagState::Growing),
            "{states:?}"
        );
        // With 5 minutes (3-4 commit instants) there is too little to judge every time, but
        // whatever is judged is growing, never draining.
        let short = states_with(&points, &window(300));
        assert!(short.contains(&LagState::Growing), "{short:?}");
        assert!(!short.contains(&LagState::Draining), "{short:?}");
    }

    #[test]
    fn rare_committer_stopping_is_stalled_after_twice_its_interval() {
        // Commits every ~90 s until t = 1,800 s (last commit at about 1,720 s), then none.
        let points = rare_committer(2_400.0, 100.0, 100.0, 90.0, 1_800.0);
        let last_commit = points
            .windows(2)
            .filter(|w| w[1].committed != w[0].committed)
            .map(|w| w[1].t)
            .fold(0.0, f64::max);
        let states = states(&points);
        let at = |t: f64| {
            let i = points
                .iter()
                .position(|p| p.t >= t)
                .unwrap_or(points.len() - 1);
            states[i]
        };
        // Between its commits it is never stalled once its interval is known ...
        let warm = third_commit(&points);
        assert!(
            points
                .iter()
                .zip(&states)
                .skip(warm)
                .filter(|(p, _)| p.t <= last_commit)
                .all(|(_, s)| *s != LagState::Stalled),
            "{states:?}"
        );
        // ... still not 150 s after its last commit (stall_after is 60 s, its interval 90 s) ...
        assert_ne!(at(last_commit + 150.0), LagState::Stalled);
        // ... and stalled from twice its interval on.
        assert_eq!(at(last_commit + 195.0), LagState::Stalled, "{states:?}");
        assert_eq!(states.last(), Some(&LagState::Stalled));
    }

    #[test]
    fn rates_and_eta() {
        let points = pipeline(10, 0.0, 100.0, |_| 150.0);
        let (consume, produce) = rates(&points, Duration::from_secs(60)).unwrap_or((None, 0.0));
        assert!((produce - 100.0 / STEP).abs() < 1e-9);
        assert!(consume.is_some_and(|c| c > 0.0));
        assert_eq!(drain_eta(1_000.0, 20.0, 10.0), Some(100.0));
        assert_eq!(drain_eta(1_000.0, 10.0, 20.0), None);
        assert_eq!(drain_eta(0.0, 20.0, 10.0), None);
        assert_eq!(rates(&points[..1], Duration::from_secs(60)), None);
    }

    #[test]
    fn time_lag_interpolates_when_the_log_end_passed_the_commit() {
        let mut h = LogEndHistory::default();
        let horizon = Duration::from_secs(3600);
        for (t, end) in [(0.0, 100.0), (10.0, 200.0), (20.0, 300.0), (30.0, 400.0)] {
            h.push(t, end, horizon);
        }
        // Offset 249 was appended when the log end went from 249 to 250: 15 s.
        assert_eq!(h.time_lag(249.0, 30.0), Some((15.0, false)));
        assert_eq!(h.time_lag(400.0, 30.0), Some((0.0, false)));
        // Offset 50 predates the history: at least 30 s, flagged as a lower bound.
        assert_eq!(h.time_lag(50.0, 30.0), Some((30.0, true)));
    }

    #[test]
    fn log_end_history_is_bounded() {
        let mut h = LogEndHistory::default();
        for i in 0..10_000 {
            h.push(i as f64, i as f64 * 10.0, Duration::from_secs(100_000));
        }
        assert!(h.len() <= HISTORY_CAP, "{}", h.len());
        // Old history is coarse but still there: offset 10 lies near the start.
        let (seconds, lower) = h.time_lag(10.0, 9_999.0).unwrap_or((0.0, true));
        assert!(!lower && seconds > 9_000.0, "{seconds} {lower}");
    }
}
