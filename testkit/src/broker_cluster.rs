//! Several brokers in front of one real broker: `n` loopback proxies, each a broker with its
//! own node id and port, forwarding to tansu (which holds all the data). Answers are rewritten
//! so the cluster looks spread as a real one is: Metadata lists the `n` brokers and makes
//! partition `p` of every topic led by node `p % n`; FindCoordinator places each group on one
//! node by a hash of its name; ListGroups on a node lists only the groups it coordinates.
//! Offsets and commits stay tansu's own (a request reaches tansu whichever node it was sent
//! to), so lag read through the cluster is the real lag. Every request is counted on the wire
//! per node and API, answers can be held back by a delay (a broker's round trip), and the
//! most requests in flight at once across the cluster is recorded.
//!
//! tansu 0.6.0 runs one broker per storage here: its PostgreSQL engine, which several brokers
//! share, needs a schema the package does not ship (`../shared/kafka-broker-notes.md`).

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::{
    ApiKey, BrokerId, FindCoordinatorRequest, FindCoordinatorResponse, ListGroupsResponse,
    MetadataResponse, RequestHeader,
};
use kafka_protocol::protocol::{Decodable, HeaderVersion, StrBytes};

use crate::proxy::{Connections, Listener, edited, relay_kafka};

/// What every node of the cluster shares.
#[derive(Default)]
struct Shared {
    /// Node id → port, filled as the proxies start.
    ports: Mutex<Vec<u16>>,
    /// (node, API name) → requests received.
    counts: Mutex<BTreeMap<(i32, &'static str), u64>>,
    in_flight: AtomicUsize,
    most_in_flight: AtomicUsize,
    /// Each answer is held this long before it is sent on.
    delay: Mutex<Duration>,
}

pub struct BrokerCluster {
    shared: Arc<Shared>,
    listeners: Vec<Listener>,
}

/// The node that coordinates `group` in a cluster of `n`.
pub fn coordinator_of(group: &str, n: usize) -> i32 {
    // FNV-1a: stable across runs and platforms.
    let hash = group.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    i32::try_from(hash % n.max(1) as u64).unwrap_or(0)
}

impl BrokerCluster {
    /// `n` brokers in front of `upstream`.
    pub fn start(upstream: SocketAddr, n: usize) -> anyhow::Result<BrokerCluster> {
        let shared = Arc::new(Shared::default());
        let mut listeners = Vec::with_capacity(n);
        for node in 0..n {
            let held = Arc::clone(&shared);
            let node = i32::try_from(node)?;
            let listener = Listener::start(move |client, open| {
                if let Ok(server) = TcpStream::connect(upstream) {
                    relay(node, Arc::clone(&held), open, client, server);
                }
            })?;
            shared
                .ports
                .lock()
                .map_err(|_| anyhow::anyhow!("poisoned"))?
                .push(listener.port());
            listeners.push(listener);
        }
        Ok(BrokerCluster { shared, listeners })
    }

    /// `host:port` of every node, for `bootstrap_servers`.
    pub fn bootstrap(&self) -> String {
        self.listeners
            .iter()
            .map(|l| format!("127.0.0.1:{}", l.port()))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Hold each answer `delay` before sending it on (from the next answer).
    pub fn set_delay(&self, delay: Duration) {
        if let Ok(mut d) = self.shared.delay.lock() {
            *d = delay;
        }
    }

    /// (node, API) → requests received so far, counted on the wire.
    pub fn requests(&self) -> BTreeMap<(i32, &'static str), u64> {
        self.shared
            .counts
            .lock()
            .map(|c| c.clone())
            .unwrap_or_default()
    }

    /// The most requests that were in flight at once, across all nodes.
    pub fn most_in_flight(&self) -> usize {
        self.shared.most_in_flight.load(Ordering::Relaxed)
    }

    /// Forget the highest in-flight count seen.
    pub fn reset_most_in_flight(&self) {
        self.shared.most_in_flight.store(0, Ordering::Relaxed);
    }
}

fn api_name(key: i16) -> &'static str {
    ApiKey::try_from(key).map_or("Unknown", |k| match k {
        ApiKey::ApiVersions => "ApiVersions",
        ApiKey::Metadata => "Metadata",
        ApiKey::ListOffsets => "ListOffsets",
        ApiKey::OffsetFetch => "OffsetFetch",
        ApiKey::FindCoordinator => "FindCoordinator",
        ApiKey::ListGroups => "ListGroups",
        ApiKey::DescribeGroups => "DescribeGroups",
        ApiKey::SaslHandshake => "SaslHandshake",
        ApiKey::SaslAuthenticate => "SaslAuthenticate",
        _ => "Other",
    })
}

fn relay(node: i32, shared: Arc<Shared>, open: &Connections, client: TcpStream, server: TcpStream) {
    let (counting, answering, closing) = (Arc::clone(&shared), Arc::clone(&shared), shared);
    relay_kafka(
        open,
        client,
        server,
        // (API key, version, FindCoordinator's key if any) of each request, counted.
        move |frame| {
            let key = i16::from_be_bytes([frame[0], frame[1]]);
            let version = i16::from_be_bytes([frame[2], frame[3]]);
            if let Ok(mut c) = counting.counts.lock() {
                *c.entry((node, api_name(key))).or_default() += 1;
            }
            let now = counting.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
            counting.most_in_flight.fetch_max(now, Ordering::Relaxed);
            let find_key = (key == ApiKey::FindCoordinator as i16)
                .then(|| coordinator_key(frame, version))
                .flatten();
            (key, version, find_key)
        },
        move |(key, version, find_key), frame| {
            let ports = answering
                .ports
                .lock()
                .map(|p| p.clone())
                .unwrap_or_default();
            let frame =
                rewritten(node, &ports, key, version, find_key.as_deref(), &frame).unwrap_or(frame);
            let delay = answering.delay.lock().map(|d| *d).unwrap_or_default();
            if !delay.is_zero() {
                std::thread::sleep(delay);
            }
            answering.in_flight.fetch_sub(1, Ordering::Relaxed);
            frame
        },
        // Requests the broker never answered (it closed the connection) are no longer in
        // flight.
        move |left| {
            closing.in_flight.fetch_sub(left.len(), Ordering::Relaxed);
        },
    );
}

/// The group a FindCoordinator request (v0–3) asks about.
fn coordinator_key(frame: &[u8], version: i16) -> Option<String> {
    let mut body = Bytes::copy_from_slice(frame);
    RequestHeader::decode(&mut body, FindCoordinatorRequest::header_version(version)).ok()?;
    let request = FindCoordinatorRequest::decode(&mut body, version).ok()?;
    Some(request.key.as_str().to_string())
}

/// An answer as the spread cluster gives it (`None`: unchanged).
fn rewritten(
    node: i32,
    ports: &[u16],
    key: i16,
    version: i16,
    find_key: Option<&str>,
    frame: &[u8],
) -> Option<Vec<u8>> {
    let n = ports.len();
    let host = StrBytes::from_static_str("127.0.0.1");
    let port_of = |node: i32| i32::from(ports[usize::try_from(node).unwrap_or(0) % n.max(1)]);
    match ApiKey::try_from(key).ok()? {
        ApiKey::Metadata => edited(
            frame,
            MetadataResponse::header_version(version),
            version,
            |answer: &mut MetadataResponse| {
                let template = answer.brokers.first().cloned().unwrap_or_default();
                answer.brokers = (0..n)
                    .map(|i| {
                        let id = i32::try_from(i).unwrap_or(0);
                        template
                            .clone()
                            .with_node_id(BrokerId(id))
                            .with_host(host.clone())
                            .with_port(port_of(id))
                    })
                    .collect();
                answer.controller_id = BrokerId(0);
                for topic in &mut answer.topics {
                    for p in &mut topic.partitions {
                        let leader = BrokerId(p.partition_index % i32::try_from(n).unwrap_or(1));
                        p.leader_id = leader;
                        p.replica_nodes = vec![leader];
                        p.isr_nodes = vec![leader];
                    }
                }
                Some(())
            },
        ),
        ApiKey::FindCoordinator => edited(
            frame,
            FindCoordinatorResponse::header_version(version),
            version,
            |answer: &mut FindCoordinatorResponse| {
                if version >= 4 {
                    for c in &mut answer.coordinators {
                        let at = coordinator_of(c.key.as_str(), n);
                        c.node_id = BrokerId(at);
                        c.host = host.clone();
                        c.port = port_of(at);
                    }
                } else {
                    let at = coordinator_of(find_key?, n);
                    answer.node_id = BrokerId(at);
                    answer.host = host.clone();
                    answer.port = port_of(at);
                }
                Some(())
            },
        ),
        ApiKey::ListGroups => edited(
            frame,
            ListGroupsResponse::header_version(version),
            version,
            |answer: &mut ListGroupsResponse| {
                answer
                    .groups
                    .retain(|g| coordinator_of(g.group_id.as_str(), n) == node);
                Some(())
            },
        ),
        _ => None,
    }
}
