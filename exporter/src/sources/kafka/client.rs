//! The lag path over Kafka's protocol, batched the way the protocol allows: ListOffsets once
//! per partition leader and offset spec, FindCoordinator for every group at once (v4+), one
//! OffsetFetch per coordinator for all its groups (v8+, KIP-709), DescribeGroups once per
//! coordinator. A broker that does not speak the batched versions gets the older one-group
//! requests instead, decided per broker from its ApiVersions. Coordinators and partition
//! leaders are remembered between cycles and looked up again only when a broker says they
//! moved, so a steady cycle costs two requests per leader plus one per coordinator.

use std::collections::{BTreeMap, HashMap};
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_groups_request::DescribeGroupsRequest;
use kafka_protocol::messages::find_coordinator_request::FindCoordinatorRequest;
use kafka_protocol::messages::find_coordinator_response::FindCoordinatorResponse;
use kafka_protocol::messages::list_groups_request::ListGroupsRequest;
use kafka_protocol::messages::list_offsets_request::{
    ListOffsetsPartition, ListOffsetsRequest, ListOffsetsTopic,
};
use kafka_protocol::messages::metadata_request::MetadataRequest;
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequest, OffsetFetchRequestGroup, OffsetFetchRequestTopic,
};
use kafka_protocol::messages::offset_fetch_response::OffsetFetchResponse;
use kafka_protocol::messages::{BrokerId, ConsumerProtocolAssignment, GroupId, TopicName};
use kafka_protocol::protocol::{Decodable, Request, StrBytes};
use tokio::time::Instant;

use super::wire::{Connection, RequestCounts, Security, WireError, api_name};

/// Which offset ListOffsets asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSpec {
    Earliest,
    Latest,
}

impl OffsetSpec {
    fn timestamp(self) -> i64 {
        match self {
            OffsetSpec::Latest => -1,
            OffsetSpec::Earliest => -2,
        }
    }
}

/// (topic, partition) → offset, or the broker's error for that partition.
pub type PartitionOffsets = HashMap<(String, i32), Result<i64, String>>;

/// One partition of a group's OffsetFetch answer; `offset` is `None` when nothing is committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    pub topic: String,
    pub partition: i32,
    pub offset: Option<i64>,
}

/// A group as ListGroups reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    pub group: String,
    pub state: String,
}

/// A group as DescribeGroups reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    pub group: String,
    /// Per-group error (e.g. the coordinator refused); state and members are then unknown.
    pub error: Option<String>,
    pub state: String,
    pub members: usize,
    /// Topic → partitions assigned to some member.
    pub assignment: BTreeMap<String, Vec<i32>>,
    /// (topic, partition) → the member assigned it (its member id, as
    /// kafka-consumer-groups.sh shows CONSUMER-ID).
    pub owners: BTreeMap<(String, i32), String>,
}

/// Topic layout from metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicLayout {
    pub topic: String,
    pub partitions: Vec<i32>,
}

/// Versions the batched requests need.
const BATCHED_FIND_COORDINATOR: i16 = 4;
const MULTI_GROUP_OFFSET_FETCH: i16 = 8;

/// Errors that mean "ask who leads again" (unknown partition, no leader, not the leader,
/// fenced or unknown leader epoch).
const NOT_LEADER: [i16; 5] = [3, 5, 6, 74, 75];

fn kafka_error(code: i16) -> String {
    match ResponseError::try_from_code(code) {
        Some(e) => format!("{e} ({code})"),
        None => "no error".into(),
    }
}

fn text(s: &StrBytes) -> String {
    s.as_str().to_string()
}

/// Brokers asked at once in one round of requests.
const BROKERS_AT_ONCE: usize = 8;

/// One broker's connection taken out of the client for a round of requests, so rounds to
/// different brokers run at once; it goes back (with what it counted) when the round ends.
pub(crate) struct Lane {
    address: String,
    connection: Option<Connection>,
    security: Arc<Security>,
    request_timeout: Duration,
    counts: RequestCounts,
}

impl Lane {
    /// Send `build(version)` in the highest version both sides accept within `ours`, by the
    /// earlier of `deadline` and the request's own timeout. A kept connection that fails is
    /// replaced by a fresh one and the request sent once more (brokers close idle
    /// connections); a connection that failed is never kept.
    async fn request<R: Request>(
        &mut self,
        ours: RangeInclusive<i16>,
        build: impl Fn(i16) -> R,
        deadline: Instant,
    ) -> Result<(R::Response, i16), WireError> {
        let address = self.address.as_str();
        let mut retried = false;
        loop {
            let until = deadline.min(Instant::now() + self.request_timeout);
            let (mut connection, reused) = match self.connection.take() {
                Some(c) => (c, true),
                None => (
                    Connection::open(address, &self.security, until, &mut self.counts).await?,
                    false,
                ),
            };
            let Some(version) = connection.version::<R>(ours.clone()) else {
                self.connection = Some(connection);
                return Err(WireError(format!(
                    "{address}: the broker offers no {} version in {}..={}",
                    api_name(R::KEY),
                    ours.start(),
                    ours.end()
                )));
            };
            match connection
                .call(&build(version), version, until, &mut self.counts)
                .await
            {
                Ok(answer) => {
                    self.connection = Some(connection);
                    return Ok((answer, version));
                }
                Err(_) if reused && !retried => retried = true,
                Err(e) => return Err(e),
            }
        }
    }
}

/// One cluster's client: connections by broker address, what it learned of the cluster, and
/// how many requests it sent.
pub struct ClusterClient {
    bootstrap: Vec<String>,
    security: Arc<Security>,
    /// The longest one request (connecting included) may take: one unreachable broker cannot
    /// use up the whole cycle's deadline.
    request_timeout: Duration,
    connections: HashMap<String, Connection>,
    brokers: BTreeMap<i32, String>,
    leaders: HashMap<(String, i32), i32>,
    leaders_stale: bool,
    coordinators: HashMap<String, i32>,
    counts: RequestCounts,
}

impl ClusterClient {
    pub(crate) fn new(
        bootstrap: &str,
        security: Security,
        request_timeout: Duration,
    ) -> ClusterClient {
        ClusterClient {
            bootstrap: bootstrap
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
            security: Arc::new(security),
            request_timeout,
            connections: HashMap::new(),
            brokers: BTreeMap::new(),
            leaders: HashMap::new(),
            leaders_stale: true,
            coordinators: HashMap::new(),
            counts: RequestCounts::new(),
        }
    }

    /// API name → requests sent so far.
    pub fn requests(&self) -> BTreeMap<String, i64> {
        self.counts
            .iter()
            .map(|(k, v)| ((*k).to_string(), i64::try_from(*v).unwrap_or(i64::MAX)))
            .collect()
    }

    /// Send `build(version)` to `address` (see [`Lane::request`]).
    async fn request<R: Request>(
        &mut self,
        address: &str,
        ours: RangeInclusive<i16>,
        build: impl Fn(i16) -> R,
        deadline: Instant,
    ) -> Result<(R::Response, i16), WireError> {
        let mut lane = self.lane(address);
        let answer = lane.request(ours, build, deadline).await;
        self.settle(lane);
        answer
    }

    /// `address`'s kept connection, taken out to be used on its own.
    fn lane(&mut self, address: &str) -> Lane {
        Lane {
            address: address.to_string(),
            connection: self.connections.remove(address),
            security: Arc::clone(&self.security),
            request_timeout: self.request_timeout,
            counts: RequestCounts::new(),
        }
    }

    /// A lane's connection kept (if it is still good) and its requests counted.
    fn settle(&mut self, lane: Lane) {
        if let Some(connection) = lane.connection {
            self.keep(connection);
        }
        for (api, n) in lane.counts {
            *self.counts.entry(api).or_default() += n;
        }
    }

    /// `work` on each broker at once (at most [`BROKERS_AT_ONCE`]), each on its own lane:
    /// with several brokers a cycle takes about as long as its slowest broker, not the sum.
    /// Answers come back in `brokers`' order.
    async fn on_each<K, T, F, Fut>(&mut self, brokers: Vec<(K, String)>, work: F) -> Vec<(K, T)>
    where
        K: Clone,
        F: Fn(K, Lane) -> Fut,
        Fut: Future<Output = (Lane, T)>,
    {
        let lanes: Vec<(K, Lane)> = brokers
            .into_iter()
            .map(|(key, address)| (key, self.lane(&address)))
            .collect();
        let work = &work;
        let mut done: Vec<(usize, K, Lane, T)> =
            futures::stream::iter(lanes.into_iter().enumerate())
                .map(|(i, (key, lane))| async move {
                    let (lane, answer) = work(key.clone(), lane).await;
                    (i, key, lane, answer)
                })
                .buffer_unordered(BROKERS_AT_ONCE)
                .collect()
                .await;
        done.sort_by_key(|(i, ..)| *i);
        done.into_iter()
            .map(|(_, key, lane, answer)| {
                self.settle(lane);
                (key, answer)
            })
            .collect()
    }

    fn keep(&mut self, connection: Connection) {
        self.connections
            .insert(connection.address().to_string(), connection);
    }

    fn broker(&self, node: i32) -> Result<String, String> {
        self.brokers
            .get(&node)
            .cloned()
            .ok_or_else(|| format!("broker {node} is not in the cluster's metadata"))
    }

    /// Brokers to ask something any broker answers: connected first, then known, then the
    /// bootstrap list, each once.
    fn candidates(&self) -> Vec<String> {
        let mut seen = std::collections::HashSet::new();
        self.connections
            .keys()
            .chain(self.brokers.values())
            .chain(&self.bootstrap)
            .filter(|a| seen.insert(a.as_str()))
            .cloned()
            .collect()
    }

    /// `build(version)` sent to the first of [`ClusterClient::candidates`] that answers: its
    /// answer, the version and the broker's address; or every broker's error.
    async fn ask_any<R: Request>(
        &mut self,
        ours: RangeInclusive<i16>,
        build: impl Fn(i16) -> R,
        deadline: Instant,
    ) -> Result<(R::Response, i16, String), String> {
        let mut errors = Vec::new();
        for address in self.candidates() {
            match self.request(&address, ours.clone(), &build, deadline).await {
                Ok((answer, version)) => return Ok((answer, version, address)),
                Err(e) => errors.push(e.0),
            }
        }
        Err(if errors.is_empty() {
            "no bootstrap servers".into()
        } else {
            errors.join("; ")
        })
    }

    /// Topics and their partitions (one Metadata request, from the first broker that
    /// answers); also learns brokers and leaders.
    pub async fn metadata(&mut self, deadline: Instant) -> Result<Vec<TopicLayout>, String> {
        let request = MetadataRequest::default()
            .with_topics(None)
            .with_allow_auto_topic_creation(false);
        let (answer, _, _) = self
            .ask_any(1..=12, |_| request.clone(), deadline)
            .await
            .map_err(|e| format!("Metadata: {e}"))?;
        self.brokers = answer
            .brokers
            .iter()
            .map(|b| (b.node_id.0, format!("{}:{}", b.host.as_str(), b.port)))
            .collect();
        let mut layout = Vec::new();
        self.leaders.clear();
        for topic in &answer.topics {
            let Some(name) = topic.name.as_ref() else {
                continue;
            };
            if topic.error_code != 0 {
                continue;
            }
            let name = text(name);
            for p in &topic.partitions {
                if p.leader_id.0 >= 0 {
                    self.leaders
                        .insert((name.clone(), p.partition_index), p.leader_id.0);
                }
            }
            layout.push(TopicLayout {
                partitions: topic.partitions.iter().map(|p| p.partition_index).collect(),
                topic: name,
            });
        }
        self.leaders_stale = false;
        // Connections to brokers no longer in the cluster are dropped.
        let addresses: std::collections::HashSet<&String> = self.brokers.values().collect();
        self.connections
            .retain(|address, _| addresses.contains(address));
        Ok(layout)
    }

    /// Offsets of `partitions` for each spec: one request per leader and spec. Fails only when
    /// no leader answered; otherwise a partition whose leader failed carries the error.
    pub async fn list_offsets(
        &mut self,
        partitions: &[(String, i32)],
        specs: &[OffsetSpec],
        deadline: Instant,
    ) -> Result<Vec<PartitionOffsets>, String> {
        if self.leaders_stale || partitions.iter().any(|p| !self.leaders.contains_key(p)) {
            self.metadata(deadline).await?;
        }
        let mut by_leader: BTreeMap<i32, BTreeMap<&str, Vec<i32>>> = BTreeMap::new();
        let mut out: Vec<PartitionOffsets> = specs
            .iter()
            .map(|_| PartitionOffsets::with_capacity(partitions.len()))
            .collect();
        for (topic, partition) in partitions {
            match self.leaders.get(&(topic.clone(), *partition)) {
                Some(leader) => by_leader
                    .entry(*leader)
                    .or_default()
                    .entry(topic)
                    .or_default()
                    .push(*partition),
                None => {
                    for o in &mut out {
                        o.insert((topic.clone(), *partition), Err("no leader".into()));
                    }
                }
            }
        }
        let (mut answered, mut failures) = (0usize, Vec::new());
        let failed =
            |out: &mut Vec<PartitionOffsets>, topics: &BTreeMap<&str, Vec<i32>>, error: &str| {
                for o in out.iter_mut() {
                    for (topic, ps) in topics {
                        for p in ps {
                            o.insert(((*topic).to_string(), *p), Err(error.to_string()));
                        }
                    }
                }
            };
        let mut leaders = Vec::new();
        for (leader, topics) in &by_leader {
            match self.broker(*leader) {
                Ok(address) => leaders.push((*leader, address)),
                Err(e) => {
                    failed(&mut out, topics, &e);
                    failures.push(e);
                }
            }
        }
        // Each leader's ListOffsets (one per spec) at once with the other leaders'.
        let by_leader = &by_leader;
        let answers = self
            .on_each(leaders, |leader, mut lane| async move {
                let mut answers = Vec::with_capacity(specs.len());
                for spec in specs {
                    let request = list_offsets_request(&by_leader[&leader], *spec);
                    match lane.request(1..=9, |_| request.clone(), deadline).await {
                        Ok((answer, _)) => answers.push(answer),
                        Err(e) => return (lane, Err(e)),
                    }
                }
                (lane, Ok(answers))
            })
            .await;
        for (leader, answer) in answers {
            match answer {
                Ok(answers) => {
                    answered += 1;
                    for (answer, offsets) in answers.iter().zip(out.iter_mut()) {
                        for t in &answer.topics {
                            let topic = text(&t.name);
                            for p in &t.partitions {
                                let value = if p.error_code == 0 {
                                    Ok(p.offset)
                                } else {
                                    if NOT_LEADER.contains(&p.error_code) {
                                        self.leaders_stale = true;
                                    }
                                    Err(kafka_error(p.error_code))
                                };
                                offsets.insert((topic.clone(), p.partition_index), value);
                            }
                        }
                    }
                }
                Err(e) => {
                    // Its partitions may have moved to a broker that is up.
                    self.leaders_stale = true;
                    failed(&mut out, &by_leader[&leader], &e.0);
                    failures.push(e.0);
                }
            }
        }
        if answered == 0 && !failures.is_empty() {
            return Err(format!("ListOffsets: {}", failures.join("; ")));
        }
        Ok(out)
    }

    /// Learn the coordinators of `groups`: all at once from a broker that speaks
    /// FindCoordinator v4, else one request per group. Groups it could not place are returned
    /// with the reason.
    async fn find_coordinators(
        &mut self,
        groups: &[&str],
        deadline: Instant,
    ) -> HashMap<String, String> {
        let mut failed = HashMap::new();
        let Some((first, rest)) = groups.split_first() else {
            return failed;
        };
        let batched = |version: i16| {
            if version >= BATCHED_FIND_COORDINATOR {
                FindCoordinatorRequest::default()
                    .with_key_type(0)
                    .with_coordinator_keys(
                        groups
                            .iter()
                            .map(|g| StrBytes::from_string((*g).to_string()))
                            .collect(),
                    )
            } else {
                one_key(first)
            }
        };
        // The first broker that answers; an older one answers for the first group only.
        let (answer, version, address) = match self.ask_any(0..=6, batched, deadline).await {
            Ok(reached) => reached,
            Err(e) => {
                let error = format!("FindCoordinator: {e}");
                for g in groups {
                    failed.insert((*g).to_string(), error.clone());
                }
                return failed;
            }
        };
        if version >= BATCHED_FIND_COORDINATOR {
            for c in &answer.coordinators {
                if let Err(e) =
                    self.place(&text(&c.key), c.error_code, c.node_id.0, &c.host, c.port)
                {
                    failed.insert(text(&c.key), e);
                }
            }
            for g in groups {
                if !answer.coordinators.iter().any(|c| c.key.as_str() == *g) {
                    failed.insert((*g).to_string(), "FindCoordinator: left out".into());
                }
            }
            return failed;
        }
        let mut place_one = |client: &mut Self, group: &str, a: &FindCoordinatorResponse| {
            if let Err(e) = client.place(group, a.error_code, a.node_id.0, &a.host, a.port) {
                failed.insert(group.to_string(), e);
            }
        };
        place_one(self, first, &answer);
        for (i, g) in rest.iter().enumerate() {
            match self
                .request(&address, 0..=3, |_| one_key(g), deadline)
                .await
            {
                Ok((a, _)) => place_one(self, g, &a),
                Err(e) => {
                    for g in &rest[i..] {
                        failed.insert((*g).to_string(), format!("FindCoordinator: {}", e.0));
                    }
                    break;
                }
            }
        }
        failed
    }

    fn place(
        &mut self,
        group: &str,
        error: i16,
        node: i32,
        host: &StrBytes,
        port: i32,
    ) -> Result<(), String> {
        if error != 0 {
            return Err(format!("FindCoordinator: {}", kafka_error(error)));
        }
        // The coordinator's own address wins: metadata may be older.
        self.brokers
            .insert(node, format!("{}:{port}", host.as_str()));
        self.coordinators.insert(group.to_string(), node);
        Ok(())
    }

    /// Every group's committed offsets: one OffsetFetch per coordinator for all of its
    /// groups where it speaks v8+ (all their topics), else one per group (on `topics`). A
    /// failing group gets its own error.
    pub async fn committed_offsets(
        &mut self,
        groups: &[String],
        topics: &BTreeMap<String, Vec<i32>>,
        deadline: Instant,
    ) -> HashMap<String, Result<Vec<Committed>, String>> {
        let mut out: HashMap<String, Result<Vec<Committed>, String>> = HashMap::new();
        let unplaced: Vec<&str> = groups
            .iter()
            .filter(|g| !self.coordinators.contains_key(*g))
            .map(String::as_str)
            .collect();
        if !unplaced.is_empty() {
            for (group, error) in self.find_coordinators(&unplaced, deadline).await {
                out.insert(group, Err(error));
            }
        }
        let mut by_coordinator: BTreeMap<i32, Vec<&str>> = BTreeMap::new();
        for g in groups {
            if let Some(node) = self.coordinators.get(g) {
                by_coordinator.entry(*node).or_default().push(g);
            }
        }
        let mut coordinators = Vec::new();
        for (node, members) in &by_coordinator {
            match self.broker(*node) {
                Ok(address) => coordinators.push((*node, address)),
                Err(e) => {
                    for g in members {
                        self.coordinators.remove(*g);
                        out.insert((*g).to_string(), Err(format!("OffsetFetch: {e}")));
                    }
                }
            }
        }
        // Each coordinator's OffsetFetch at once with the others'.
        let by_coordinator = &by_coordinator;
        let answers = self
            .on_each(coordinators, |node, mut lane| async move {
                let answers =
                    offset_fetch(&mut lane, &by_coordinator[&node], topics, deadline).await;
                (lane, answers)
            })
            .await;
        for (group, answer) in answers.into_iter().flat_map(|(_, a)| a) {
            if answer.is_err() {
                // Asked again next cycle: it may have moved, or its broker may be down.
                self.coordinators.remove(&group);
            }
            out.insert(group, answer);
        }
        out
    }

    /// Every consumer group of the cluster: ListGroups on every broker (each lists the groups
    /// it coordinates). Fails when no broker answered; `complete` is false when some did not
    /// (their groups are then missing from the list, not gone).
    pub async fn list_groups(
        &mut self,
        deadline: Instant,
    ) -> Result<(Vec<GroupListing>, bool), String> {
        if self.brokers.is_empty() {
            self.metadata(deadline).await?;
        }
        let brokers: Vec<(String, String)> = self
            .brokers
            .values()
            .map(|a| (a.clone(), a.clone()))
            .collect();
        let (mut listed, mut failures, mut answered) = (BTreeMap::new(), Vec::new(), 0);
        // Every broker at once.
        let answers = self
            .on_each(brokers, |_, mut lane| async move {
                let answer = lane
                    .request(0..=5, |_| ListGroupsRequest::default(), deadline)
                    .await;
                (lane, answer)
            })
            .await;
        for (address, answer) in answers {
            match answer {
                Ok((answer, version)) if answer.error_code == 0 => {
                    answered += 1;
                    for g in &answer.groups {
                        // Connect workers and other non-consumer protocols have no lag.
                        let protocol = g.protocol_type.as_str();
                        if !protocol.is_empty() && protocol != "consumer" {
                            continue;
                        }
                        let state = if version >= 4 {
                            text(&g.group_state)
                        } else {
                            "Unknown".into()
                        };
                        listed.insert(text(&g.group_id), state);
                    }
                }
                Ok((answer, _)) => failures.push(format!(
                    "{address}: ListGroups: {}",
                    kafka_error(answer.error_code)
                )),
                Err(e) => failures.push(e.0),
            }
        }
        if answered == 0 {
            return Err(format!("ListGroups: {}", failures.join("; ")));
        }
        let complete = failures.is_empty();
        Ok((
            listed
                .into_iter()
                .map(|(group, state)| GroupListing { group, state })
                .collect(),
            complete,
        ))
    }

    /// State, members and assignments of `groups`: one DescribeGroups per coordinator. Fails
    /// when no coordinator answered (callers treat that as "state unknown" per group).
    pub async fn describe_groups(
        &mut self,
        groups: &[String],
        deadline: Instant,
    ) -> Result<Vec<GroupDescription>, String> {
        let mut by_coordinator: BTreeMap<i32, Vec<&String>> = BTreeMap::new();
        let mut out = Vec::new();
        for g in groups {
            match self.coordinators.get(g) {
                Some(node) => by_coordinator.entry(*node).or_default().push(g),
                None => out.push(GroupDescription {
                    group: g.clone(),
                    error: Some("coordinator unknown".into()),
                    state: "Unknown".into(),
                    members: 0,
                    assignment: BTreeMap::new(),
                    owners: BTreeMap::new(),
                }),
            }
        }
        let (mut answered, mut failures) = (0usize, Vec::new());
        let mut coordinators = Vec::new();
        for node in by_coordinator.keys() {
            match self.broker(*node) {
                Ok(address) => coordinators.push((*node, address)),
                Err(e) => failures.push(e),
            }
        }
        // Every coordinator at once.
        let by_coordinator = &by_coordinator;
        let answers = self
            .on_each(coordinators, |node, mut lane| async move {
                let request = DescribeGroupsRequest::default().with_groups(
                    by_coordinator[&node]
                        .iter()
                        .map(|g| GroupId(StrBytes::from_string((*g).clone())))
                        .collect(),
                );
                let answer = lane.request(0..=5, |_| request.clone(), deadline).await;
                (lane, answer)
            })
            .await;
        for (_, answer) in answers {
            match answer {
                Ok((answer, _)) => {
                    answered += 1;
                    for d in &answer.groups {
                        let consumer = d.protocol_type.as_str() == "consumer";
                        let mut assignment: BTreeMap<String, Vec<i32>> = BTreeMap::new();
                        let mut owners = BTreeMap::new();
                        for m in d.members.iter().filter(|_| consumer) {
                            for (topic, ps) in assigned(&m.member_assignment) {
                                for &p in &ps {
                                    owners.insert((topic.clone(), p), text(&m.member_id));
                                }
                                assignment.entry(topic).or_default().extend(ps);
                            }
                        }
                        for ps in assignment.values_mut() {
                            ps.sort_unstable();
                            ps.dedup();
                        }
                        out.push(GroupDescription {
                            group: text(&d.group_id),
                            error: (d.error_code != 0).then(|| kafka_error(d.error_code)),
                            state: text(&d.group_state),
                            members: d.members.len(),
                            assignment,
                            owners,
                        });
                    }
                }
                // A broker that cannot describe may drop the connection (tansu does); it is
                // not kept, so the next request starts on a fresh one.
                Err(e) => failures.push(e.0),
            }
        }
        if answered == 0 && !failures.is_empty() {
            return Err(format!("DescribeGroups: {}", failures.join("; ")));
        }
        Ok(out)
    }
}

/// One coordinator's OffsetFetch for all of `groups` (v8+), else one per group.
async fn offset_fetch(
    lane: &mut Lane,
    groups: &[&str],
    topics: &BTreeMap<String, Vec<i32>>,
    deadline: Instant,
) -> Vec<(String, Result<Vec<Committed>, String>)> {
    let all_failed = |groups: &[&str], e: &str| {
        groups
            .iter()
            .map(|g| ((*g).to_string(), Err(format!("OffsetFetch: {e}"))))
            .collect::<Vec<_>>()
    };
    let Some((first, rest)) = groups.split_first() else {
        return Vec::new();
    };
    // Topics named for one group: "null for all topics" is not understood by every
    // broker (tansu answers nothing), and naming them works everywhere.
    let named: Vec<OffsetFetchRequestTopic> = topics
        .iter()
        .map(|(topic, partitions)| {
            OffsetFetchRequestTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic.clone())))
                .with_partition_indexes(partitions.clone())
        })
        .collect();
    let one_group = |group: &str| {
        OffsetFetchRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
            .with_topics(Some(named.clone()))
    };
    let build = |version: i16| {
        if version >= MULTI_GROUP_OFFSET_FETCH {
            OffsetFetchRequest::default().with_groups(
                groups
                    .iter()
                    .map(|g| {
                        OffsetFetchRequestGroup::default()
                            .with_group_id(GroupId(StrBytes::from_string((*g).to_string())))
                            .with_topics(None)
                    })
                    .collect(),
            )
        } else {
            one_group(first)
        }
    };
    let (answer, version) = match lane.request(2..=9, build, deadline).await {
        Ok(a) => a,
        Err(e) => return all_failed(groups, &e.0),
    };
    let mut out = Vec::with_capacity(groups.len());
    if version >= MULTI_GROUP_OFFSET_FETCH {
        for g in &answer.groups {
            let value = commits(
                g.error_code,
                g.topics.iter().flat_map(|t| {
                    t.partitions
                        .iter()
                        .map(|p| (&t.name, p.partition_index, p.committed_offset, p.error_code))
                }),
            );
            out.push((text(&g.group_id), value));
        }
        for g in groups {
            if !answer.groups.iter().any(|a| a.group_id.as_str() == *g) {
                out.push(((*g).to_string(), Err("OffsetFetch: left out".into())));
            }
        }
        return out;
    }
    let one = |answer: &OffsetFetchResponse| {
        commits(
            answer.error_code,
            answer.topics.iter().flat_map(|t| {
                t.partitions
                    .iter()
                    .map(|p| (&t.name, p.partition_index, p.committed_offset, p.error_code))
            }),
        )
    };
    out.push(((*first).to_string(), one(&answer)));
    for (i, g) in rest.iter().enumerate() {
        match lane.request(2..=7, |_| one_group(g), deadline).await {
            Ok((answer, _)) => out.push(((*g).to_string(), one(&answer))),
            Err(e) => {
                out.extend(all_failed(&rest[i..], &e.0));
                break;
            }
        }
    }
    out
}

/// ListOffsets of `topics`' partitions at `spec`.
fn list_offsets_request(topics: &BTreeMap<&str, Vec<i32>>, spec: OffsetSpec) -> ListOffsetsRequest {
    ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_isolation_level(0)
        .with_topics(
            topics
                .iter()
                .map(|(topic, ps)| {
                    ListOffsetsTopic::default()
                        .with_name(TopicName(StrBytes::from_string((*topic).to_string())))
                        .with_partitions(
                            ps.iter()
                                .map(|p| {
                                    ListOffsetsPartition::default()
                                        .with_partition_index(*p)
                                        .with_current_leader_epoch(-1)
                                        .with_timestamp(spec.timestamp())
                                })
                                .collect(),
                        )
                })
                .collect(),
        )
}

/// FindCoordinator for one group (v0–3).
fn one_key(group: &str) -> FindCoordinatorRequest {
    FindCoordinatorRequest::default()
        .with_key(StrBytes::from_string(group.to_string()))
        .with_key_type(0)
}

/// A group's commits from an OffsetFetch answer: the group's error code, then (topic,
/// partition, offset, error) per partition. A partition never committed (a negative offset)
/// is left out, as when the broker lists only what was committed; an error of the group or of
/// one of its partitions fails the group (its lag unknown, not "never committed").
fn commits<'a>(
    group_error: i16,
    partitions: impl Iterator<Item = (&'a TopicName, i32, i64, i16)>,
) -> Result<Vec<Committed>, String> {
    if group_error != 0 {
        return Err(format!("OffsetFetch: {}", kafka_error(group_error)));
    }
    let mut out = Vec::new();
    for (topic, partition, offset, error) in partitions {
        if error != 0 {
            return Err(format!(
                "OffsetFetch: {} on {}/{partition}",
                kafka_error(error),
                topic.as_str()
            ));
        }
        if offset >= 0 {
            out.push(Committed {
                topic: text(topic),
                partition,
                offset: Some(offset),
            });
        }
    }
    Ok(out)
}

/// Topic → partitions of a consumer member's assignment (the consumer protocol's bytes: a
/// version, then the assignment); unreadable bytes assign nothing.
fn assigned(bytes: &bytes::Bytes) -> Vec<(String, Vec<i32>)> {
    let mut buf = bytes.clone();
    if buf.len() < 2 {
        return Vec::new();
    }
    let version = i16::from_be_bytes([buf[0], buf[1]]);
    let _ = bytes::Buf::get_i16(&mut buf);
    match ConsumerProtocolAssignment::decode(&mut buf, version.clamp(0, 3)) {
        Ok(a) => a
            .assigned_partitions
            .iter()
            .map(|t| (text(&t.topic), t.partitions.clone()))
            .collect(),
        Err(_) => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partition_error_fails_the_group_and_no_commit_is_left_out() {
        let topic = TopicName(StrBytes::from_static_str("orders"));
        let read = commits(0, [(&topic, 0, 42, 0), (&topic, 1, -1, 0)].into_iter());
        assert_eq!(
            read,
            Ok(vec![Committed {
                topic: "orders".into(),
                partition: 0,
                offset: Some(42),
            }])
        );
        // TOPIC_AUTHORIZATION_FAILED on one partition: the group's lag is unknown, not "never
        // committed" there.
        let denied = commits(0, [(&topic, 0, 42, 0), (&topic, 1, -1, 29)].into_iter());
        assert!(
            denied
                .as_ref()
                .is_err_and(|e| e.contains("(29)") && e.contains("orders/1")),
            "{denied:?}"
        );
        // The group's own error (NOT_COORDINATOR) fails it too.
        let moved = commits(16, std::iter::empty());
        assert!(
            moved.as_ref().is_err_and(|e| e.contains("(16)")),
            "{moved:?}"
        );
    }
}
