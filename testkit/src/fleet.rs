//! A fleet's Kafka series as surge-exporter exports them: `groups` consumer groups, each on all
//! partitions of one of `topics` topics, every family of the catalogue's Kafka section with
//! its labels, served by the exporter's own store and `/metrics` (`match[]` included). For
//! tests and benchmarks of readers at a size no local broker reaches quickly.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use surge_metrics::catalogue::kafka;
use surge_metrics::state::{GroupState, LagState};
use surge_metrics::store::Store;
use surge_metrics::{Family, Sample};

/// The size of a fleet.
#[derive(Debug, Clone, Copy)]
pub struct Size {
    pub groups: usize,
    pub topics: usize,
    pub partitions: usize,
}

pub fn group(i: usize) -> String {
    format!("group-{i:04}")
}

pub fn topic(i: usize) -> String {
    format!("orders-{i:03}")
}

/// One sample of `family` with each label given by name (`state` as given).
fn sample(family: &'static Family, value_of: &dyn Fn(&str) -> String, value: f64) -> Sample {
    let labels = family.labels.iter().map(|l| (*l, value_of(l))).collect();
    Sample::new(family, labels, value)
}

/// Every Kafka series of the fleet on `cluster`: lag 7 on each partition of each group.
pub fn kafka_samples(cluster: &str, size: Size) -> Vec<Sample> {
    let mut out = Vec::new();
    for t in 0..size.topics {
        let topic = topic(t);
        for p in 0..size.partitions {
            let at = |l: &str| match l {
                "cluster" => cluster.to_string(),
                "topic" => topic.clone(),
                _ => p.to_string(),
            };
            out.push(sample(&kafka::LOG_END, &at, 20.0));
            out.push(sample(&kafka::LOG_START, &at, 0.0));
        }
        let at = |l: &str| {
            if l == "cluster" {
                cluster.to_string()
            } else {
                topic.clone()
            }
        };
        out.push(sample(
            &kafka::TOPIC_PARTITIONS,
            &at,
            size.partitions as f64,
        ));
        out.push(sample(&kafka::PRODUCE_RATE, &at, 1.0));
    }
    for g in 0..size.groups {
        let (group, topic) = (group(g), topic(g % size.topics.max(1)));
        for p in 0..size.partitions {
            let at = |l: &str| match l {
                "cluster" => cluster.to_string(),
                "group" => group.clone(),
                "topic" => topic.clone(),
                _ => p.to_string(),
            };
            out.push(sample(&kafka::COMMITTED, &at, 13.0));
            out.push(sample(&kafka::HAS_COMMIT, &at, 1.0));
            out.push(sample(&kafka::LAG, &at, 7.0));
        }
        let at = |l: &str| match l {
            "cluster" => cluster.to_string(),
            "group" => group.clone(),
            "topic" => topic.clone(),
            "state" => LagState::Ok.label().to_string(),
            other => other.to_string(),
        };
        let lag = 7.0 * size.partitions as f64;
        for (family, value) in [
            (&kafka::TOPIC_LAG, lag),
            (&kafka::SCALABLE_LAG, lag),
            (&kafka::LAG_SECONDS, 3.0),
            (&kafka::CONSUME_RATE, 1.0),
            (&kafka::STALLED_PARTITIONS, 0.0),
            (&kafka::LAG_STATE, 1.0),
            (&kafka::MEMBERS, 2.0),
        ] {
            out.push(sample(family, &at, value));
        }
        let stable = |l: &str| {
            if l == "state" {
                GroupState::Stable.label().to_string()
            } else {
                at(l)
            }
        };
        out.push(sample(&kafka::GROUP_STATE, &stable, 1.0));
    }
    out
}

/// `/metrics` of a store holding each `(cluster, samples)` as the `kafka` source's target
/// `cluster`, on loopback, until the handle is dropped.
pub struct Served {
    pub addr: SocketAddr,
    pub store: Arc<Store>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

pub async fn serve(clusters: Vec<(String, Vec<Sample>)>) -> anyhow::Result<Served> {
    let store = Store::new();
    for (cluster, samples) in clusters {
        store.record("kafka", &cluster, Ok(samples), Duration::ZERO);
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(surge_metrics::http::serve(
        listener,
        Arc::clone(&store),
        "fleet",
        async {
            let _ = stopped.await;
        },
    ));
    Ok(Served {
        addr,
        store,
        _stop: stop,
    })
}
