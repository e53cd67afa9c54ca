//! One cycle of one cluster: discovery when due, log-end and log-start offsets, committed
//! offsets, then group descriptions; what a cluster remembers between cycles.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail};
use surge_metrics::SampleSet;

use super::client::{ClusterClient, GroupDescription, OffsetSpec, TopicLayout};
use super::config::{Limits, NameFilter, Settings};
use super::lag::{self, Watermarks};
use super::samples::{CycleInputs, build_samples};
use super::stall::StallClock;
use super::trend::{LogEndHistory, Point};
use super::wire::Security;

/// What a group is known to be, from the last discovery.
#[derive(Debug, Clone, Default)]
pub(super) struct GroupInfo {
    pub(super) state: String,
    pub(super) members: Option<usize>,
    pub(super) assignment: BTreeMap<String, Vec<i32>>,
    /// (topic, partition) → the member it is assigned to.
    pub(super) owners: BTreeMap<(String, i32), String>,
}

/// Everything a cluster remembers between cycles.
#[derive(Default)]
pub(super) struct ClusterState {
    pub(super) client: Option<ClusterClient>,
    pub(super) discovered_at: Option<Instant>,
    pub(super) topics: BTreeMap<String, Vec<i32>>,
    pub(super) groups: BTreeMap<String, GroupInfo>,
    pub(super) log_end_history: HashMap<(String, i32), LogEndHistory>,
    pub(super) produce_history: HashMap<String, VecDeque<(f64, f64)>>,
    pub(super) group_topic_history: HashMap<(String, String), VecDeque<Point>>,
    /// (group, topic) → partition → since when its committed offset stands where it is.
    pub(super) stall_clocks: HashMap<(String, String), BTreeMap<i32, StallClock>>,
    /// (group, topic)s already warned of committing too rarely for the trend window.
    pub(super) rare_committers: HashSet<(String, String)>,
    pub(super) clamped: HashMap<(String, String), u64>,
    pub(super) group_errors: HashMap<(String, &'static str), u64>,
    pub(super) describe_failing: bool,
}

pub(super) struct ClusterTarget {
    pub(super) name: String,
    pub(super) bootstrap_servers: String,
    pub(super) security: Security,
    pub(super) groups: NameFilter,
    pub(super) topics: NameFilter,
    pub(super) limits: Limits,
    /// Held for a whole cycle: one cycle of a cluster at a time.
    pub(super) state: tokio::sync::Mutex<ClusterState>,
}

impl ClusterTarget {
    /// One cycle, bounded by `deadline`.
    pub(super) async fn collect(
        &self,
        settings: &Settings,
        deadline: tokio::time::Instant,
    ) -> anyhow::Result<SampleSet> {
        let mut state = self.state.lock().await;
        let state = &mut *state;
        let client = state.client.get_or_insert_with(|| {
            // A third of the cycle per request: one unreachable broker leaves time for the
            // others.
            ClusterClient::new(
                &self.bootstrap_servers,
                self.security.clone(),
                settings.timeout / 3,
            )
        });

        let discover = state
            .discovered_at
            .is_none_or(|at| at.elapsed() >= settings.discovery_interval);
        if discover {
            let layout = client.metadata(deadline).await.map_err(|e| anyhow!(e))?;
            let (listed, complete) = client.list_groups(deadline).await.map_err(|e| anyhow!(e))?;
            let topics = admitted_topics(&layout, &self.topics);
            let partitions: usize = topics.values().map(Vec::len).sum();
            if partitions > self.limits.partitions {
                bail!(
                    "{partitions} partitions in admitted topics, more than max_partitions = {}: narrow topic_allow/topic_deny or raise it",
                    self.limits.partitions
                );
            }
            let admitted_groups = listed
                .iter()
                .filter(|g| self.groups.admits(&g.group))
                .count();
            if admitted_groups > self.limits.groups {
                bail!(
                    "{admitted_groups} consumer groups admitted, more than max_groups = {}: narrow group_allow/group_deny or raise it",
                    self.limits.groups
                );
            }
            state.topics = topics;
            let mut groups = BTreeMap::new();
            for g in listed.into_iter().filter(|g| self.groups.admits(&g.group)) {
                let previous = state.groups.remove(&g.group).unwrap_or_default();
                groups.insert(
                    g.group,
                    GroupInfo {
                        state: g.state,
                        ..previous
                    },
                );
            }
            if !complete {
                // A broker that did not answer still coordinates its groups: keep them (and
                // their histories) rather than drop them until it answers.
                for (name, info) in std::mem::take(&mut state.groups) {
                    groups.entry(name).or_insert(info);
                }
            }
            state.groups = groups;
        }

        // Log-end offsets first, then commits: a commit can only be newer than the log end
        // we compare it with, never older, so lag is never overstated (and clamps are counted).
        let partitions: Vec<(String, i32)> = state
            .topics
            .iter()
            .flat_map(|(t, ps)| ps.iter().map(move |p| (t.clone(), *p)))
            .collect();
        let specs = [OffsetSpec::Latest, OffsetSpec::Earliest];
        let offsets = client
            .list_offsets(&partitions, &specs, deadline)
            .await
            .map_err(|e| anyhow!(e))?;
        let mut watermarks: lag::Offsets = HashMap::with_capacity(partitions.len());
        if let [latest, earliest] = offsets.as_slice() {
            for key in &partitions {
                watermarks.insert(
                    key.clone(),
                    Watermarks {
                        end: latest.get(key).and_then(|r| r.as_ref().ok()).copied(),
                        start: earliest.get(key).and_then(|r| r.as_ref().ok()).copied(),
                    },
                );
            }
        }
        let group_names: Vec<String> = state.groups.keys().cloned().collect();
        let committed = client
            .committed_offsets(&group_names, &state.topics, deadline)
            .await;

        if discover {
            self.describe(state, &group_names, deadline).await;
            state.discovered_at = Some(Instant::now());
        }
        let requests = state
            .client
            .as_ref()
            .map(ClusterClient::requests)
            .unwrap_or_default();

        let now = now_seconds();
        let inputs = CycleInputs {
            cluster: &self.name,
            now,
            watermarks: &watermarks,
            committed: &committed,
            requests: &requests,
        };
        Ok(build_samples(state, &inputs, settings))
    }

    /// Describe groups, after the offsets (a broker that cannot describe may drop the
    /// connection); on failure every group's state is unknown and the error is counted per
    /// group.
    async fn describe(
        &self,
        state: &mut ClusterState,
        groups: &[String],
        deadline: tokio::time::Instant,
    ) {
        let Some(client) = state.client.as_mut() else {
            return;
        };
        if groups.is_empty() {
            return;
        }
        match client.describe_groups(groups, deadline).await {
            Ok(descriptions) => {
                if state.describe_failing {
                    tracing::info!(cluster = %self.name, "DescribeGroups works again");
                }
                state.describe_failing = false;
                let by_name: HashMap<&str, &GroupDescription> =
                    descriptions.iter().map(|d| (d.group.as_str(), d)).collect();
                for group in groups {
                    let info = state.groups.entry(group.clone()).or_default();
                    match by_name.get(group.as_str()) {
                        Some(d) if d.error.is_none() => {
                            info.state = d.state.clone();
                            info.members = Some(d.members);
                            info.assignment = d.assignment.clone();
                            info.owners = d.owners.clone();
                        }
                        _ => {
                            info.state = "Unknown".into();
                            info.members = None;
                            *state
                                .group_errors
                                .entry((group.clone(), "DescribeGroups"))
                                .or_default() += 1;
                        }
                    }
                }
            }
            Err(error) => {
                if !state.describe_failing {
                    tracing::warn!(cluster = %self.name, %error, "DescribeGroups failed; group state and members unknown, lag still exported");
                }
                state.describe_failing = true;
                for group in groups {
                    let info = state.groups.entry(group.clone()).or_default();
                    info.state = "Unknown".into();
                    info.members = None;
                    *state
                        .group_errors
                        .entry((group.clone(), "DescribeGroups"))
                        .or_default() += 1;
                }
            }
        }
    }
}

fn admitted_topics(layout: &[TopicLayout], filter: &NameFilter) -> BTreeMap<String, Vec<i32>> {
    layout
        .iter()
        .filter(|t| filter.admits(&t.topic) && !t.partitions.is_empty())
        .map(|t| {
            let mut partitions = t.partitions.clone();
            partitions.sort_unstable();
            (t.topic.clone(), partitions)
        })
        .collect()
}

fn now_seconds() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}
