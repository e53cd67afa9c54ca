//! A cycle's readings turned into samples: partition watermarks, per-partition lag, per-topic
//! sums, rates, time lag, trend and stall state, per-group state and errors.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use surge_metrics::catalogue::kafka::{
    CLAMPED, COMMITTED, CONSUME_RATE, DRAIN_ETA, GROUP_ERRORS, GROUP_STATE, HAS_COMMIT, LAG,
    LAG_SECONDS, LAG_SECONDS_LOWER_BOUND, LAG_STATE, LOG_END, LOG_START, MEMBERS,
    PARTITION_STALLED, PRODUCE_RATE, REQUESTS, SCALABLE_LAG, STALLED_PARTITIONS, TOPIC_LAG,
    TOPIC_PARTITIONS,
};
use surge_metrics::state::{GroupState, LagState};
use surge_metrics::{Labels, Sample, SampleSet};

use super::client::Committed;
use super::collect::ClusterState;
use super::config::Settings;
use super::lag::{self, partition_lags, topic_sums};
use super::stall::{StallClock, scalable_lag};
use super::trend::{self, Point};

/// One cycle's fresh readings.
pub(super) struct CycleInputs<'a> {
    pub(super) cluster: &'a str,
    pub(super) now: f64,
    pub(super) watermarks: &'a lag::Offsets,
    pub(super) committed: &'a HashMap<String, Result<Vec<Committed>, String>>,
    pub(super) requests: &'a BTreeMap<String, i64>,
}

/// Turn a cycle's readings into samples, updating the histories. Pure apart from `state`.
pub(super) fn build_samples(
    state: &mut ClusterState,
    inputs: &CycleInputs<'_>,
    settings: &Settings,
) -> SampleSet {
    let trend = &settings.trend;
    let cluster = inputs.cluster;
    let now = inputs.now;
    // Built straight into the set the store keeps: at 1,000 groups the cycle's 179,000
    // samples never exist one by one.
    let mut out = SampleSet::builder();
    let c = || -> Labels { vec![("cluster", cluster.to_string())] };

    // Partition watermarks and their history (shared by every group reading the topic).
    let mut topic_end: BTreeMap<&str, f64> = BTreeMap::new();
    // Topics with a partition whose log end is unknown this cycle (its leader failed): their
    // sums would drop and come back, read as a burst of production or consumption, so they
    // get no sum, rate or trend point this cycle — missing, not wrong.
    let mut incomplete: HashSet<&str> = HashSet::new();
    for (topic, partitions) in &state.topics {
        let mut l = c();
        l.push(("topic", topic.clone()));
        out.push(Sample::new(&TOPIC_PARTITIONS, l, partitions.len() as f64));
        for &partition in partitions {
            let key = (topic.clone(), partition);
            let marks = inputs.watermarks.get(&key).copied().unwrap_or_default();
            if marks.end.is_none() {
                incomplete.insert(topic.as_str());
            }
            if let Some(end) = marks.end {
                *topic_end.entry(topic.as_str()).or_default() += end as f64;
                state.log_end_history.entry(key).or_default().push(
                    now,
                    end as f64,
                    settings.time_lag_horizon,
                );
                if settings.partition_metrics {
                    out.push(Sample::new(
                        &LOG_END,
                        partition_labels(cluster, topic, partition),
                        end as f64,
                    ));
                }
            }
            if let (Some(start), true) = (marks.start, settings.partition_metrics) {
                out.push(Sample::new(
                    &LOG_START,
                    partition_labels(cluster, topic, partition),
                    start as f64,
                ));
            }
        }
    }
    let live: HashSet<(String, i32)> = inputs.watermarks.keys().cloned().collect();
    state.log_end_history.retain(|k, _| live.contains(k));
    topic_end.retain(|t, _| !incomplete.contains(t));

    // Produce rate per topic.
    let keep_for = trend
        .window
        .max(trend.rate_window)
        .max(trend.stall_after)
        .as_secs_f64()
        + 1.0;
    for (topic, end) in &topic_end {
        let history = state
            .produce_history
            .entry((*topic).to_string())
            .or_default();
        history.push_back((now, *end));
        while history
            .front()
            .is_some_and(|(t, _)| *t < now - trend.rate_window.as_secs_f64())
            && history.len() > 2
        {
            history.pop_front();
        }
        if let (Some(first), Some(last)) = (history.front(), history.back())
            && last.0 > first.0
        {
            let mut l = c();
            l.push(("topic", (*topic).to_string()));
            out.push(Sample::new(
                &PRODUCE_RATE,
                l,
                ((last.1 - first.1) / (last.0 - first.0)).max(0.0),
            ));
        }
    }
    state
        .produce_history
        .retain(|t, _| state.topics.contains_key(t));

    // Groups.
    let mut seen_group_topics = HashSet::new();
    for (group, info) in &state.groups {
        let g = || -> Labels {
            let mut l = c();
            l.push(("group", group.clone()));
            l
        };
        let current = GroupState::from_broker(&info.state);
        for s in GroupState::ALL {
            let mut l = g();
            l.push(("state", s.label().to_string()));
            out.push(Sample::new(
                &GROUP_STATE,
                l,
                f64::from(u8::from(*s == current)),
            ));
        }
        if let Some(members) = info.members {
            out.push(Sample::new(&MEMBERS, g(), members as f64));
        }
        let commits = match inputs.committed.get(group) {
            Some(Ok(commits)) => commits,
            Some(Err(error)) => {
                tracing::debug!(cluster, group, %error, "OffsetFetch failed");
                *state
                    .group_errors
                    .entry((group.clone(), "OffsetFetch"))
                    .or_default() += 1;
                continue;
            }
            None => continue,
        };
        // The group's topics: those it committed on, and those assigned to its members.
        let mut topics: BTreeSet<&str> = commits.iter().map(|c| c.topic.as_str()).collect();
        topics.extend(info.assignment.keys().map(String::as_str));
        let topic_partitions: BTreeMap<String, Vec<i32>> = topics
            .into_iter()
            .filter_map(|t| state.topics.get(t).map(|ps| (t.to_string(), ps.clone())))
            .collect();
        let committed: HashMap<(String, i32), Option<i64>> = commits
            .iter()
            .map(|c| ((c.topic.clone(), c.partition), c.offset))
            .collect();
        let lags = partition_lags(
            &committed,
            &topic_partitions,
            inputs.watermarks,
            settings.uncommitted,
        );
        if settings.partition_metrics {
            for p in &lags {
                let labels = || {
                    let mut l = g();
                    l.push(("topic", p.topic.clone()));
                    l.push(("partition", p.partition.to_string()));
                    l
                };
                out.push(Sample::new(
                    &HAS_COMMIT,
                    labels(),
                    f64::from(u8::from(p.committed.is_some())),
                ));
                if let Some(offset) = p.committed {
                    out.push(Sample::new(&COMMITTED, labels(), offset as f64));
                }
                if let Some(lag) = p.lag {
                    out.push(Sample::new(&LAG, labels(), lag as f64));
                }
            }
        }
        for (topic, sums) in topic_sums(&lags) {
            let key = (group.clone(), topic.clone());
            seen_group_topics.insert(key.clone());
            if incomplete.contains(topic.as_str()) {
                continue;
            }
            let gt = || {
                let mut l = g();
                l.push(("topic", topic.clone()));
                l
            };
            out.push(Sample::new(&TOPIC_LAG, gt(), sums.lag as f64));
            let clamped = state.clamped.entry(key.clone()).or_default();
            *clamped += sums.clamped;
            out.push(Sample::new(&CLAMPED, gt(), *clamped as f64));

            // Time lag: the oldest unconsumed message over the topic's partitions.
            let mut worst: Option<(f64, bool)> = None;
            for p in lags
                .iter()
                .filter(|p| p.topic == topic && p.lag.is_some_and(|l| l > 0))
            {
                let from = p.committed.or_else(|| {
                    inputs
                        .watermarks
                        .get(&(p.topic.clone(), p.partition))
                        .and_then(|w| w.start)
                });
                let (Some(from), Some(history)) = (
                    from,
                    state.log_end_history.get(&(p.topic.clone(), p.partition)),
                ) else {
                    continue;
                };
                if let Some(found) = history.time_lag(from as f64, now)
                    && worst.is_none_or(|w| found.0 > w.0)
                {
                    worst = Some(found);
                }
            }
            let (seconds, lower_bound) = worst.unwrap_or((0.0, false));
            out.push(Sample::new(&LAG_SECONDS, gt(), seconds));
            out.push(Sample::new(
                &LAG_SECONDS_LOWER_BOUND,
                gt(),
                f64::from(u8::from(lower_bound)),
            ));

            let history = state.group_topic_history.entry(key.clone()).or_default();
            history.push_back(Point {
                t: now,
                lag: sums.lag as f64,
                committed: sums.committed as f64,
                log_end: sums.log_end as f64,
            });
            // Two windows, so a commit interval up to a window long can be measured.
            while history
                .front()
                .is_some_and(|p| p.t < now - keep_for.max(2.0 * trend.window.as_secs_f64()))
            {
                history.pop_front();
            }
            let points: Vec<Point> = history.iter().copied().collect();
            // Each partition judged alone: the threshold is the topic's (the stall time, or
            // twice the group's commit interval if it commits rarer).
            let threshold = trend
                .stall_after
                .as_secs_f64()
                .max(2.0 * trend::commit_interval(&points).unwrap_or(0.0));
            let blind_after = trend.blind_after.as_secs_f64();
            let mut judged = Vec::new();
            let mut stalled = 0;
            let clocks = state.stall_clocks.entry(key).or_default();
            for p in lags.iter().filter(|p| p.topic == topic) {
                let (Some(committed), Some(lag)) = (p.committed, p.lag) else {
                    continue;
                };
                let clock = clocks
                    .entry(p.partition)
                    .and_modify(|c| c.observe(committed, now, blind_after))
                    .or_insert_with(|| StallClock::start(committed, now));
                let is_stalled = clock.stalled(lag, now, threshold);
                if is_stalled {
                    stalled += 1;
                    let member = info
                        .owners
                        .get(&(topic.clone(), p.partition))
                        .cloned()
                        .unwrap_or_default();
                    let mut l = gt();
                    l.push(("partition", p.partition.to_string()));
                    l.push(("member", member));
                    out.push(Sample::new(&PARTITION_STALLED, l, clock.still_for(now)));
                }
                judged.push((lag, is_stalled));
            }
            out.push(Sample::new(&STALLED_PARTITIONS, gt(), f64::from(stalled)));
            out.push(Sample::new(
                &SCALABLE_LAG,
                gt(),
                scalable_lag(judged, settings.scalable_lag_partition_cap) as f64,
            ));
            // The lag state stays the topic's summed rule: a sequential consumer working
            // through one partition's backlog leaves its others still for as long, which no
            // per-partition threshold tells from a wedged member without knowing who owns
            // what. Stalled partitions are counted, named and left out of the scalable lag.
            let lag_state = trend::classify(&points, trend);
            if let Some(message) = trend::window_too_short(&points, trend)
                && state.rare_committers.insert((group.clone(), topic.clone()))
            {
                tracing::warn!(cluster, group = %group, topic = %topic, "{message}");
            }
            for s in LagState::ALL {
                let mut l = gt();
                l.push(("state", s.label().to_string()));
                out.push(Sample::new(
                    &LAG_STATE,
                    l,
                    f64::from(u8::from(*s == lag_state)),
                ));
            }
            if let Some((Some(consume), produce)) = trend::rates(&points, trend.rate_window) {
                out.push(Sample::new(&CONSUME_RATE, gt(), consume));
                if let Some(eta) = trend::drain_eta(sums.lag as f64, consume, produce) {
                    out.push(Sample::new(&DRAIN_ETA, gt(), eta));
                }
            }
        }
    }
    // Forget groups and topics that are gone; a group whose OffsetFetch failed this cycle
    // keeps its history, so one failed request does not reset its trend.
    let groups: HashSet<&String> = state.groups.keys().collect();
    let alive = |(g, t): &(String, String)| {
        seen_group_topics.contains(&(g.clone(), t.clone()))
            || (groups.contains(g)
                && state.topics.contains_key(t)
                && matches!(inputs.committed.get(g), Some(Err(_))))
    };
    state.group_topic_history.retain(|k, _| alive(k));
    let partitions = &state.topics;
    state.stall_clocks.retain(|k, clocks| {
        let Some(live) = partitions.get(&k.1).filter(|_| alive(k)) else {
            return false;
        };
        clocks.retain(|p, _| live.contains(p));
        true
    });
    state.clamped.retain(|k, _| alive(k));
    state.rare_committers.retain(|k| alive(k));
    state.group_errors.retain(|(g, _), _| groups.contains(g));
    let mut errors: Vec<_> = state.group_errors.iter().collect();
    errors.sort();
    for ((group, api), count) in errors {
        let mut l = c();
        l.push(("group", group.clone()));
        l.push(("api", (*api).to_string()));
        out.push(Sample::new(&GROUP_ERRORS, l, *count as f64));
    }
    for (api, count) in inputs.requests {
        let mut l = c();
        l.push(("api", api.clone()));
        out.push(Sample::new(&REQUESTS, l, *count as f64));
    }
    out.finish()
}

fn partition_labels(cluster: &str, topic: &str, partition: i32) -> Labels {
    vec![
        ("cluster", cluster.to_string()),
        ("topic", topic.to_string()),
        ("partition", partition.to_string()),
    ]
}

#[cfg(test)]
mod tests {
    use super::super::collect::GroupInfo;
    use super::super::config::Section;
    use super::super::lag::Watermarks;
    use super::*;
    use surge_metrics::Family;

    fn settings() -> Result<Settings, String> {
        let section: Section = toml::from_str(
            "interval = \"5s\"\ntimeout = \"5s\"\nwindow = \"60s\"\nrate_window = \"60s\"\n\
             [[clusters]]\nname = \"c\"\nbootstrap_servers = \"127.0.0.1:9\"\n",
        )
        .map_err(|e| e.to_string())?;
        section.settings().map_err(|e| e.0)
    }

    /// `partitions` of `topic`, each from offset 0 to `end`.
    fn log_ends(topic: &str, partitions: impl Iterator<Item = i32>, end: i64) -> lag::Offsets {
        partitions
            .map(|p| {
                let marks = Watermarks {
                    end: Some(end),
                    start: Some(0),
                };
                ((topic.to_string(), p), marks)
            })
            .collect()
    }

    fn value(samples: &[Sample], family: &Family, want: &[(&str, &str)]) -> Option<f64> {
        samples
            .iter()
            .find(|s| {
                std::ptr::eq(s.family, family) && want.iter().all(|(k, v)| s.label(k) == Some(v))
            })
            .map(|s| s.value)
    }

    /// A partition whose log end is unknown for a cycle (its leader did not answer) leaves
    /// the topic without sums, rates or a trend point for that cycle, instead of a dip and a
    /// jump that read as a burst of production.
    #[test]
    fn a_topic_missing_a_log_end_has_no_sums_that_cycle() -> Result<(), String> {
        let settings = settings()?;
        let mut state = ClusterState::default();
        state.topics.insert("t".into(), vec![0, 1]);
        state.groups.insert("g".into(), GroupInfo::default());
        let committed: HashMap<String, Result<Vec<Committed>, String>> = HashMap::from([(
            "g".to_string(),
            Ok([0, 1]
                .map(|p| Committed {
                    topic: "t".into(),
                    partition: p,
                    offset: Some(100),
                })
                .to_vec()),
        )]);
        let requests = BTreeMap::new();
        let gt = [("group", "g"), ("topic", "t")];
        let mut seen = Vec::new();
        // Each partition gains 10 messages every 5 s; partition 1's leader misses cycle 2.
        for (cycle, known) in [
            (0, [true, true]),
            (1, [true, true]),
            (2, [true, false]),
            (3, [true, true]),
        ] {
            let end = 110 + 10 * cycle;
            let watermarks = log_ends("t", [0, 1].into_iter().filter(|p| known[*p as usize]), end);
            let inputs = CycleInputs {
                cluster: "c",
                now: 1000.0 + 5.0 * cycle as f64,
                watermarks: &watermarks,
                committed: &committed,
                requests: &requests,
            };
            let samples = build_samples(&mut state, &inputs, &settings).to_vec();
            seen.push((
                value(&samples, &TOPIC_LAG, &gt),
                value(&samples, &PRODUCE_RATE, &[("topic", "t")]),
            ));
        }
        assert_eq!(seen[1], (Some(40.0), Some(4.0)), "{seen:?}");
        assert_eq!(seen[2], (None, None), "{seen:?}");
        // Back: the same 4 msg/s (2 partitions × 10 per 5 s), no burst.
        assert_eq!(seen[3], (Some(80.0), Some(4.0)), "{seen:?}");
        Ok(())
    }

    /// Issue 28's trace through the whole cycle: a group of two members on four partitions,
    /// member b wedged (partitions 2 and 3 frozen) while a commits 0 and 1 every cycle. The
    /// topic's committed sum keeps moving, so the summed rule alone never says stalled; per
    /// partition, 2 and 3 stall once still for stall_after (60 s here), the group-topic counts 2
    /// stalled partitions, each named with its member, and the scalable lag is that of 0 and
    /// 1, each capped.
    #[test]
    fn a_wedged_member_stalls_its_partitions_while_the_others_commit() -> Result<(), String> {
        let section: Section = toml::from_str(
            "interval = \"15s\"\ntimeout = \"5s\"\nwindow = \"10m\"\nstall_after = \"60s\"\n\
             scalable_lag_partition_cap = 100\n\
             [[clusters]]\nname = \"c\"\nbootstrap_servers = \"127.0.0.1:9\"\n",
        )
        .map_err(|e| e.to_string())?;
        let settings = section.settings().map_err(|e| e.0)?;
        let mut state = ClusterState::default();
        state.topics.insert("t".into(), vec![0, 1, 2, 3]);
        let owners = (0..4)
            .map(|p| {
                (
                    ("t".to_string(), p),
                    if p < 2 { "a" } else { "b" }.to_string(),
                )
            })
            .collect();
        state.groups.insert(
            "g".into(),
            GroupInfo {
                state: "Stable".into(),
                members: Some(2),
                assignment: BTreeMap::from([("t".to_string(), vec![0, 1, 2, 3])]),
                owners,
            },
        );
        let requests = BTreeMap::new();
        let gt = [("group", "g"), ("topic", "t")];
        let mut first_stalled = None;
        let mut last = Vec::new();
        for cycle in 0..12 {
            let t = 15.0 * f64::from(cycle);
            // 25 msg/s per partition; a is 50 behind; b keeps pace until cycle 3 (t = 45),
            // then freezes.
            let end = 1000 + 375 * i64::from(cycle);
            let commit = |p: i32| {
                if p < 2 || cycle <= 3 {
                    end - 50
                } else {
                    1000 + 375 * 3 - 50
                }
            };
            let committed: HashMap<String, Result<Vec<Committed>, String>> = HashMap::from([(
                "g".to_string(),
                Ok((0..4)
                    .map(|p| Committed {
                        topic: "t".into(),
                        partition: p,
                        offset: Some(commit(p)),
                    })
                    .collect()),
            )]);
            let watermarks = log_ends("t", 0..4, end);
            let inputs = CycleInputs {
                cluster: "c",
                now: 1_000_000.0 + t,
                watermarks: &watermarks,
                committed: &committed,
                requests: &requests,
            };
            let samples = build_samples(&mut state, &inputs, &settings).to_vec();
            let stalled = value(&samples, &STALLED_PARTITIONS, &gt);
            if stalled.is_some_and(|n| n > 0.0) && first_stalled.is_none() {
                first_stalled = Some(t);
            }
            last = samples;
        }
        // Its pace known (a commit every 15 s), frozen since the reading at t = 45: still for
        // the 60 s stall time at t = 105.
        assert_eq!(first_stalled, Some(105.0));
        assert_eq!(value(&last, &STALLED_PARTITIONS, &gt), Some(2.0));
        // The summed rule alone never calls it: a's commits keep the sums moving.
        let stalled_state = [("group", "g"), ("topic", "t"), ("state", "stalled")];
        assert_eq!(value(&last, &LAG_STATE, &stalled_state), Some(0.0));
        for (partition, member) in [("2", "b"), ("3", "b")] {
            let still = value(
                &last,
                &PARTITION_STALLED,
                &[("partition", partition), ("member", member)],
            );
            assert_eq!(still, Some(120.0), "partition {partition}");
        }
        assert_eq!(
            value(&last, &PARTITION_STALLED, &[("partition", "0")]),
            None
        );
        // 0 and 1 each 50 behind (under the cap of 100); 2 and 3 left out.
        assert_eq!(value(&last, &SCALABLE_LAG, &gt), Some(100.0));
        assert_eq!(
            value(&last, &TOPIC_LAG, &gt),
            Some(100.0 + 2.0 * (5125.0 - 2075.0))
        );
        Ok(())
    }
}
