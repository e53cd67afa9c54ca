//! Kafka source against a real Kafka-protocol broker (tansu with SQLite storage).

use surge_testkit::exporter as common;

use std::time::Duration;

use common::Exporter;
use surge_servers::KafkaBroker;
use surge_testkit::kafka::BrokerClients;

fn config(broker: &KafkaBroker, extra: &str) -> String {
    format!(
        "[kafka]\ninterval = \"2s\"\ntimeout = \"2s\"\ndiscovery_interval = \"2s\"\nwindow = \"20s\"\n\
         rate_window = \"5s\"\nstall_after = \"3s\"\n{extra}\n\
         [[kafka.clusters]]\nname = \"local\"\nbootstrap_servers = \"{}\"\n",
        broker.bootstrap()
    )
}

/// On `broker`: `topic` with `partitions`, `records` produced to `partition`, and `group`
/// committed there at `offset` (the producer closed before the commit).
fn one_commit(
    broker: &KafkaBroker,
    (topic, partitions): (&str, i32),
    (partition, records): (i32, usize),
    (group, offset): (&str, i64),
) -> anyhow::Result<()> {
    broker.create_topic(topic, partitions)?;
    let producer = broker.producer()?;
    producer.send(topic, partition, records)?;
    producer.flush()?;
    drop(producer);
    broker.commit(group, topic, &[(partition, offset)])
}

fn lag_labels<'a>(
    group: &'a str,
    topic: &'a str,
    partition: &'a str,
) -> [(&'static str, &'a str); 3] {
    [("group", group), ("topic", topic), ("partition", partition)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exact_lag_missing_commits_and_degraded_group_state() -> anyhow::Result<()> {
    let broker = KafkaBroker::start()?;
    broker.create_topic("order-placed", 3)?;
    let producer = broker.producer()?;
    for (partition, count) in [(0, 102), (1, 108), (2, 90)] {
        producer.send("order-placed", partition, count)?;
    }
    producer.flush()?;
    // payment committed 100 and 50; never committed partition 2.
    broker.commit("payment", "order-placed", &[(0, 100), (1, 50)])?;
    // shipping committed everything that exists.
    broker.commit("shipping", "order-placed", &[(0, 102), (1, 108), (2, 90)])?;

    let exporter = Exporter::from_toml(&config(&broker, ""))?;
    assert!(
        exporter.cycle().await,
        "{:?}",
        exporter.last_error("kafka", "local")
    );
    let end = |p: &str| {
        exporter.value(
            "surge_kafka_partition_log_end_offset",
            &[("topic", "order-placed"), ("partition", p)],
        )
    };
    assert_eq!(
        (end("0"), end("1"), end("2")),
        (Some(102.0), Some(108.0), Some(90.0))
    );
    assert_eq!(
        exporter.value(
            "surge_kafka_partition_log_start_offset",
            &[("topic", "order-placed"), ("partition", "0")]
        ),
        Some(0.0)
    );

    let lag = |g: &str, p: &str| {
        exporter.value("surge_kafka_group_lag", &lag_labels(g, "order-placed", p))
    };
    let has_commit = |g: &str, p: &str| {
        exporter.value(
            "surge_kafka_group_has_commit",
            &lag_labels(g, "order-placed", p),
        )
    };
    assert_eq!(
        (lag("payment", "0"), lag("payment", "1")),
        (Some(2.0), Some(58.0))
    );
    assert_eq!(lag("payment", "2"), None, "never -1, no series");
    assert_eq!(has_commit("payment", "2"), Some(0.0));
    assert_eq!(has_commit("payment", "0"), Some(1.0));
    assert_eq!(
        exporter.value(
            "surge_kafka_group_topic_lag",
            &[("group", "payment"), ("topic", "order-placed")]
        ),
        Some(60.0)
    );
    assert_eq!(
        exporter.value(
            "surge_kafka_group_topic_lag",
            &[("group", "shipping"), ("topic", "order-placed")]
        ),
        Some(0.0)
    );
    assert_eq!(
        exporter.value(
            "surge_kafka_group_committed_offset",
            &lag_labels("payment", "order-placed", "1")
        ),
        Some(50.0)
    );

    // This broker cannot describe groups: state unknown, no member count, error counted per
    // group; the lag above is still there.
    assert_eq!(
        exporter.value(
            "surge_kafka_group_state",
            &[("group", "payment"), ("state", "Unknown")]
        ),
        Some(1.0)
    );
    assert_eq!(
        exporter.value("surge_kafka_group_members", &[("group", "payment")]),
        None
    );
    let errors = exporter.value(
        "surge_kafka_group_errors",
        &[("group", "payment"), ("api", "DescribeGroups")],
    );
    assert!(errors.is_some_and(|e| e >= 1.0), "{errors:?}");
    assert_eq!(exporter.up("kafka", "local"), Some(true));

    // Cardinality control: per-partition series off, per-topic and per-group ones stay.
    let lean = Exporter::from_toml(&config(&broker, "partition_metrics = false"))?;
    assert!(lean.cycle().await);
    assert_eq!(
        lean.value(
            "surge_kafka_group_lag",
            &lag_labels("payment", "order-placed", "0")
        ),
        None
    );
    assert_eq!(
        lean.value(
            "surge_kafka_partition_log_end_offset",
            &[("topic", "order-placed"), ("partition", "0")]
        ),
        None
    );
    assert_eq!(
        lean.value(
            "surge_kafka_group_topic_lag",
            &[("group", "payment"), ("topic", "order-placed")]
        ),
        Some(60.0)
    );

    // Opt-in: a never-committed partition counts everything retained as lag.
    let from_start = Exporter::from_toml(&config(&broker, "uncommitted = \"log_start\""))?;
    assert!(from_start.cycle().await);
    assert_eq!(
        from_start.value(
            "surge_kafka_group_lag",
            &lag_labels("payment", "order-placed", "2")
        ),
        Some(90.0)
    );
    assert_eq!(
        from_start.value(
            "surge_kafka_group_topic_lag",
            &[("group", "payment"), ("topic", "order-placed")]
        ),
        Some(150.0)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_past_the_log_end_are_clamped_and_counted() -> anyhow::Result<()> {
    let broker = KafkaBroker::start()?;
    // Kafka accepts any committed offset; one past the end must not become negative lag.
    one_commit(&broker, ("t", 1), (0, 10), ("racer", 25))?;
    let exporter = Exporter::from_toml(&config(&broker, ""))?;
    assert!(exporter.cycle().await);
    assert!(exporter.cycle().await);
    assert_eq!(
        exporter.value("surge_kafka_group_lag", &lag_labels("racer", "t", "0")),
        Some(0.0)
    );
    assert_eq!(
        exporter.value(
            "surge_kafka_lag_clamped",
            &[("group", "racer"), ("topic", "t")]
        ),
        Some(2.0)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_per_cycle_do_not_grow_with_partitions() -> anyhow::Result<()> {
    let broker = KafkaBroker::start()?;
    broker.create_topic("small", 2)?;
    broker.create_topic("large", 64)?;
    let producer = broker.producer()?;
    for p in 0..2 {
        producer.send("small", p, 5)?;
    }
    for p in 0..64 {
        producer.send("large", p, 5)?;
    }
    producer.flush()?;
    broker.commit("g-small", "small", &[(0, 1), (1, 1)])?;
    let all: Vec<(i32, i64)> = (0..64).map(|p| (p, 1)).collect();
    broker.commit("g-large", "large", &all)?;

    // Two exporters on the same broker: one sees 2 partitions, the other 64.
    let watch = |topic: &str, group: &str| {
        Exporter::from_toml(&format!(
            "{}topic_allow = \"^{topic}$\"\ngroup_allow = \"^{group}$\"\n",
            config(&broker, "")
        ))
    };
    let small = watch("small", "g-small")?;
    let large = watch("large", "g-large")?;
    let requests = |e: &Exporter, api: &str| {
        e.value("surge_kafka_requests", &[("api", api)])
            .unwrap_or(0.0)
    };
    // Warm up (connections, first discovery, coordinators found), then count over cycles:
    // the exporter's own client counts each request as it sends it.
    for _ in 0..2 {
        for e in [&small, &large] {
            assert!(e.cycle().await, "{:?}", e.last_error("kafka", "local"));
        }
    }
    let before: Vec<(f64, f64)> = [&small, &large]
        .iter()
        .map(|e| (requests(e, "ListOffsets"), requests(e, "OffsetFetch")))
        .collect();
    for _ in 0..4 {
        for e in [&small, &large] {
            assert!(e.cycle().await);
        }
    }
    let delta: Vec<(f64, f64)> = [&small, &large]
        .iter()
        .zip(&before)
        .map(|(e, (lo, of))| {
            (
                requests(e, "ListOffsets") - lo,
                requests(e, "OffsetFetch") - of,
            )
        })
        .collect();
    // 4 cycles, one broker: latest + earliest = 2 ListOffsets per cycle, 1 OffsetFetch per
    // coordinator.
    assert_eq!(delta[0], (8.0, 4.0), "small: {delta:?}");
    assert_eq!(
        delta[1], delta[0],
        "request count grew with partitions: {delta:?}"
    );
    // Each topic's partition count, the ceiling on a group's useful consumers.
    assert_eq!(
        small.value("surge_kafka_topic_partitions", &[("topic", "small")]),
        Some(2.0)
    );
    assert_eq!(
        large.value("surge_kafka_topic_partitions", &[("topic", "large")]),
        Some(64.0)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_consumer_stopping_shows_as_stalled_through_metrics() -> anyhow::Result<()> {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use rdkafka::consumer::{BaseConsumer, Consumer};

    let broker = KafkaBroker::start()?;
    broker.create_topic("payment-processed", 2)?;
    let exporter = Exporter::from_toml(&config(&broker, ""))?;
    let served = common::Served::start(exporter).await?;

    let consuming = Arc::new(AtomicBool::new(true));
    let producer = surge_testkit::kafka::keep_producing(
        &broker,
        "payment-processed",
        2,
        10,
        Duration::from_millis(100),
    )?;
    let consumer: BaseConsumer = broker.consumer_config("shipping").create()?;
    consumer.subscribe(&["payment-processed"])?;
    // A member of a group that never commits (auto-commit off): known, but no lag series.
    let auditor: BaseConsumer = broker
        .consumer_config("audit")
        .set("enable.auto.commit", "false")
        .create()?;
    auditor.subscribe(&["payment-processed"])?;
    let consumer = {
        let consuming = Arc::clone(&consuming);
        std::thread::spawn(move || {
            while consuming.load(Ordering::Relaxed) {
                if let Some(Err(error)) = consumer.poll(Duration::from_millis(100)) {
                    eprintln!("consumer: {error}");
                }
                let _ = auditor.poll(Duration::ZERO);
            }
            // Leaving without a final commit: what a crashed consumer looks like.
        })
    };

    let state = |body: &str, s: &str| {
        surge_testkit::http::series_value(
            body,
            &format!(
                "surge_kafka_group_topic_lag_state{{cluster=\"local\",group=\"shipping\",topic=\"payment-processed\",state=\"{s}\"}}"
            ),
        )
    };
    let consume_rate = "surge_kafka_group_topic_consume_rate{cluster=\"local\",group=\"shipping\",topic=\"payment-processed\"}";
    let body = served.wait_for("consumer keeping up", Duration::from_secs(30), |b| {
        state(b, "ok") == Some(1.0)
            && surge_testkit::http::series_value(b, consume_rate).is_some_and(|r| r > 0.0)
    })?;
    // This broker cannot describe groups: the live group's state is Unknown and its member
    // count absent (the degraded path), while its lag is exported.
    let group_state = |g: &str, s: &str| {
        surge_testkit::http::series_value(
            &body,
            &format!("surge_kafka_group_state{{cluster=\"local\",group=\"{g}\",state=\"{s}\"}}"),
        )
    };
    assert_eq!(group_state("shipping", "Unknown"), Some(1.0), "{body}");
    assert!(!body.contains("surge_kafka_group_members{"), "{body}");
    // A group that joined but never committed: listed, state known as Unknown, no lag
    // series (never -1).
    assert_eq!(group_state("audit", "Unknown"), Some(1.0), "{body}");
    assert!(!body.contains("group=\"audit\",topic="), "{body}");

    consuming.store(false, Ordering::Relaxed);
    consumer
        .join()
        .map_err(|_| anyhow::anyhow!("consumer thread panicked"))?;
    let body = served.wait_for("stall reported", Duration::from_secs(30), |b| {
        state(b, "stalled") == Some(1.0)
    })?;
    let lag = surge_testkit::http::series_value(
        &body,
        "surge_kafka_group_topic_lag{cluster=\"local\",group=\"shipping\",topic=\"payment-processed\"}",
    );
    assert!(lag.is_some_and(|l| l > 0.0), "{lag:?}");
    let seconds = surge_testkit::http::series_value(
        &body,
        "surge_kafka_group_topic_lag_seconds{cluster=\"local\",group=\"shipping\",topic=\"payment-processed\"}",
    );
    assert!(seconds.is_some_and(|s| s >= 1.0), "time lag {seconds:?}");
    producer.stop()?;
    Ok(())
}

/// A real consumer that keeps pace with its producer but commits only every 4 s (sampled
/// every 2 s): its committed lag is a sawtooth with no net growth, and the lag state must say
/// neither growing (judged at commit instants) nor stalled (twice its commit interval).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_rare_committer_keeping_pace_is_neither_growing_nor_stalled() -> anyhow::Result<()> {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};

    let broker = KafkaBroker::start()?;
    broker.create_topic("order-placed", 2)?;
    let (interval, window) = (Duration::from_secs(2), Duration::from_secs(24));
    let exporter = Exporter::from_toml(&format!(
        "[kafka]\ninterval = \"{}s\"\ntimeout = \"2s\"\ndiscovery_interval = \"2s\"\nwindow = \"{}s\"\n\
         rate_window = \"5s\"\nstall_after = \"3s\"\n\
         [[kafka.clusters]]\nname = \"local\"\nbootstrap_servers = \"{}\"\n",
        interval.as_secs(),
        window.as_secs(),
        broker.bootstrap()
    ))?;
    let served = common::Served::start(exporter).await?;
    let producer = surge_testkit::kafka::keep_producing(
        &broker,
        "order-placed",
        2,
        5,
        Duration::from_millis(100),
    )?;
    let consumer: BaseConsumer = broker
        .consumer_config("payment")
        .set("enable.auto.commit", "false")
        .create()?;
    consumer.subscribe(&["order-placed"])?;
    let running = Arc::new(AtomicBool::new(true));
    let commits = Arc::new(AtomicUsize::new(0));
    let worker = {
        let (running, commits) = (Arc::clone(&running), Arc::clone(&commits));
        std::thread::spawn(move || {
            let mut last_commit = std::time::Instant::now();
            while running.load(Ordering::Relaxed) {
                if let Some(Err(error)) = consumer.poll(Duration::from_millis(50)) {
                    eprintln!("consumer: {error}");
                }
                if last_commit.elapsed() >= Duration::from_secs(4) {
                    match consumer.commit_consumer_state(CommitMode::Sync) {
                        Ok(()) => {
                            commits.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(error) => eprintln!("commit: {error}"),
                    }
                    last_commit = std::time::Instant::now();
                }
            }
        })
    };

    let series = |body: &str, name: &str, extra: &str| {
        surge_testkit::http::series_value(
            body,
            &format!("{name}{{cluster=\"local\",group=\"payment\",topic=\"order-placed\"{extra}}}"),
        )
    };
    // Warm up: the group has committed and a whole window of history is there.
    served.wait_for("the group's lag", Duration::from_secs(30), |b| {
        series(b, "surge_kafka_group_topic_lag", "").is_some()
    })?;
    // Not a wait on a condition: the trend judges over its window, so the observation starts
    // once a whole window (and the collection that fills it) has passed since the first lag.
    tokio::time::sleep(window + interval).await;
    let mut lags = Vec::new();
    let mut states = Vec::new();
    let observe_until = std::time::Instant::now() + Duration::from_secs(40);
    while std::time::Instant::now() < observe_until {
        let body = served.scrape()?;
        lags.extend(series(&body, "surge_kafka_group_topic_lag", ""));
        for state in ["ok", "growing", "draining", "stalled", "idle"] {
            if series(
                &body,
                "surge_kafka_group_topic_lag_state",
                &format!(",state=\"{state}\""),
            ) == Some(1.0)
            {
                states.push(state);
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    running.store(false, Ordering::Relaxed);
    worker
        .join()
        .map_err(|_| anyhow::anyhow!("consumer thread panicked"))?;
    producer.stop()?;

    // The case happened: commits every 4 s, a sawtooth whose peaks hold seconds of
    // production (100 msg/s), and states for every observation.
    let commits = commits.load(Ordering::Relaxed);
    assert!(commits >= 12, "{commits} commits");
    let peak = lags.iter().copied().fold(0.0, f64::max);
    let trough = lags.iter().copied().fold(f64::MAX, f64::min);
    assert!(peak >= 150.0 && trough < peak / 2.0, "lag {lags:?}");
    assert!(states.len() >= 30, "{states:?}");
    assert!(
        states.iter().all(|s| *s == "ok"),
        "a consumer keeping pace: {states:?} (lag {lags:?})"
    );
    Ok(())
}

/// More partitions or groups than a cluster's limits: the target fails with the count and the
/// limit's name, rather than exporting part of the cluster; at the limit it collects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clusters_past_their_partition_or_group_limits_fail_with_the_count() -> anyhow::Result<()> {
    let broker = KafkaBroker::start()?;
    broker.create_topic("wide", 12)?;
    for group in ["g1", "g2", "g3"] {
        broker.commit(group, "wide", &[(0, 0)])?;
    }
    let with = |limits: &str| -> anyhow::Result<Exporter> {
        let text = config(&broker, "")
            .replace("bootstrap_servers", &format!("{limits}\nbootstrap_servers"));
        Exporter::from_toml(&text)
    };
    let cases = [
        (
            "max_partitions = 11",
            Some("12 partitions in admitted topics, more than max_partitions = 11"),
        ),
        (
            "max_groups = 2",
            Some("3 consumer groups admitted, more than max_groups = 2"),
        ),
        ("max_partitions = 12\nmax_groups = 3", None),
    ];
    for (limits, expected) in cases {
        let exporter = with(limits)?;
        let ok = exporter.cycle().await;
        let error = exporter.last_error("kafka", "local");
        match expected {
            Some(message) => {
                assert!(!ok, "{limits}: collected");
                assert!(
                    error.as_deref().is_some_and(|e| e.starts_with(message)),
                    "{limits}: {error:?}"
                );
                assert_eq!(
                    exporter.value("surge_kafka_topic_partitions", &[("topic", "wide")]),
                    None
                );
            }
            None => {
                assert!(ok, "{limits}: {error:?}");
                assert_eq!(
                    exporter.value("surge_kafka_topic_partitions", &[("topic", "wide")]),
                    Some(12.0)
                );
            }
        }
    }
    let zero = with("max_groups = 0").err().map(|e| format!("{e:#}"));
    assert!(
        zero.as_deref().is_some_and(
            |e| e.contains("kafka.clusters[0].max_groups") && e.contains("must be above 0")
        ),
        "{zero:?}"
    );
    Ok(())
}

/// The batched path (FindCoordinator v4 for every group at once, one OffsetFetch v8+ for all
/// of a coordinator's groups) and the one-group path a broker before Kafka 3.0 gets
/// (FindCoordinator ≤ v3, OffsetFetch ≤ v7: one of each per group) read the same lag; which
/// one is taken is decided from the broker's ApiVersions. The same real broker plays both,
/// behind a proxy that lowers what it advertises.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batched_and_one_group_requests_read_the_same_lag() -> anyhow::Result<()> {
    use kafka_protocol::messages::ApiKey;
    use surge_testkit::older_broker::OlderBroker;
    let broker_port = surge_servers::free_port()?;
    let proxy = OlderBroker::start(format!("127.0.0.1:{broker_port}").parse()?)?;
    let broker = KafkaBroker::start_advertising(broker_port, proxy.port())?;
    broker.create_topic("order-placed", 3)?;
    let producer = broker.producer()?;
    for p in 0..3 {
        producer.send("order-placed", p, 40)?;
    }
    producer.flush()?;
    let groups = ["payment", "audit", "shipping"];
    for (i, group) in groups.iter().enumerate() {
        let at = i64::try_from(i)? * 10;
        broker.commit(group, "order-placed", &[(0, at), (1, at + 1), (2, at + 2)])?;
    }
    let requests = |e: &Exporter, api: &str| {
        e.value("surge_kafka_requests", &[("api", api)])
            .unwrap_or(0.0)
    };
    let lags = |e: &Exporter| -> Vec<Option<f64>> {
        groups
            .iter()
            .flat_map(|g| ["0", "1", "2"].map(|p| (*g, p)))
            .map(|(g, p)| e.value("surge_kafka_group_lag", &lag_labels(g, "order-placed", p)))
            .collect()
    };
    // (FindCoordinator, OffsetFetch) sent by the first cycle, then over three more.
    let mut seen = Vec::new();
    for caps in [
        vec![],
        vec![(ApiKey::FindCoordinator, 3), (ApiKey::OffsetFetch, 7)],
    ] {
        proxy.cap(&caps);
        let exporter = Exporter::from_toml(&config(&broker, ""))?;
        assert!(
            exporter.cycle().await,
            "{caps:?}: {:?}",
            exporter.last_error("kafka", "local")
        );
        let first = (
            requests(&exporter, "FindCoordinator"),
            requests(&exporter, "OffsetFetch"),
        );
        for _ in 0..3 {
            assert!(exporter.cycle().await);
        }
        let later = (
            requests(&exporter, "FindCoordinator") - first.0,
            requests(&exporter, "OffsetFetch") - first.1,
        );
        seen.push((first, later, lags(&exporter)));
    }
    let [
        (batched_first, batched_later, batched_lag),
        (old_first, old_later, old_lag),
    ] = seen.as_slice()
    else {
        anyhow::bail!("two runs expected: {seen:?}");
    };
    // Batched: one FindCoordinator for the three groups, one OffsetFetch per cycle; the
    // coordinator is remembered.
    assert_eq!(*batched_first, (1.0, 1.0), "batched first cycle");
    assert_eq!(*batched_later, (0.0, 3.0), "batched, three cycles");
    // Older broker: one of each per group.
    assert_eq!(*old_first, (3.0, 3.0), "one-group first cycle");
    assert_eq!(*old_later, (0.0, 9.0), "one-group, three cycles");
    let expected: Vec<Option<f64>> = [0.0, 10.0, 20.0]
        .iter()
        .flat_map(|base| [40.0 - base, 39.0 - base, 38.0 - base])
        .map(Some)
        .collect();
    assert_eq!(*batched_lag, expected);
    assert_eq!(*old_lag, expected);
    Ok(())
}

/// SCRAM against a broker that requires it (tansu offers SCRAM-SHA-256 and -512; PLAIN is
/// tested by its token only, in the unit tests): both log in and read the lag; a wrong
/// password and a client without SASL fail with one line saying why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_logs_in_and_a_wrong_password_says_so() -> anyhow::Result<()> {
    let mut broker = KafkaBroker::start()?;
    one_commit(&broker, ("order-placed", 2), (0, 30), ("payment", 12))?;
    broker.require_scram(&[
        ("surge", "pencil-256", "scram256"),
        ("surge512", "pencil-512", "scram512"),
    ])?;
    let dir = tempfile::tempdir()?;
    let with_login = |mechanism: &str, user: &str, password: &str| -> anyhow::Result<Exporter> {
        let file = dir.path().join(format!("{user}-{password}"));
        std::fs::write(&file, format!("{password}\n"))?;
        // The cluster table ends with bootstrap_servers: its password and properties follow.
        Exporter::from_toml(&format!(
            "{}sasl_password_file = \"{}\"\n[kafka.clusters.properties]\n\
             \"security.protocol\" = \"sasl_plaintext\"\n\"sasl.mechanism\" = \"{mechanism}\"\n\
             \"sasl.username\" = \"{user}\"\n",
            config(&broker, ""),
            file.display()
        ))
    };
    let mut logged_in = 0;
    for (mechanism, user, password) in [
        ("SCRAM-SHA-256", "surge", "pencil-256"),
        ("SCRAM-SHA-512", "surge512", "pencil-512"),
    ] {
        let exporter = with_login(mechanism, user, password)?;
        assert!(
            exporter.cycle().await,
            "{mechanism}: {:?}",
            exporter.last_error("kafka", "local")
        );
        assert_eq!(
            exporter.value(
                "surge_kafka_group_lag",
                &lag_labels("payment", "order-placed", "0")
            ),
            Some(18.0),
            "{mechanism}"
        );
        logged_in += 1;
    }
    assert_eq!(logged_in, 2);
    let wrong = with_login("SCRAM-SHA-256", "surge", "not-the-password")?;
    assert!(!wrong.cycle().await);
    let error = wrong.last_error("kafka", "local").unwrap_or_default();
    assert!(
        error.contains("SASL SCRAM-SHA-256 authentication failed") && !error.contains('\n'),
        "{error}"
    );
    let anonymous = Exporter::from_toml(&config(&broker, ""))?;
    assert!(!anonymous.cycle().await);
    let error = anonymous.last_error("kafka", "local").unwrap_or_default();
    assert!(error.contains("connection closed by the broker"), "{error}");
    Ok(())
}

/// Brokers close connections (a restart, an idle timeout): the next cycle finds its kept
/// connection dead, opens a fresh one and still succeeds — no cycle is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_the_broker_closed_costs_no_cycle() -> anyhow::Result<()> {
    let mut broker = KafkaBroker::start()?;
    one_commit(&broker, ("order-placed", 2), (1, 9), ("payment", 4))?;
    let exporter = Exporter::from_toml(&config(&broker, ""))?;
    let lag = |e: &Exporter| {
        e.value(
            "surge_kafka_group_lag",
            &lag_labels("payment", "order-placed", "1"),
        )
    };
    assert!(
        exporter.cycle().await,
        "{:?}",
        exporter.last_error("kafka", "local")
    );
    assert_eq!(lag(&exporter), Some(5.0));
    let opened = exporter.value("surge_kafka_requests", &[("api", "ApiVersions")]);
    broker.restart()?;
    assert!(
        exporter.cycle().await,
        "the cycle after the restart: {:?}",
        exporter.last_error("kafka", "local")
    );
    assert_eq!(lag(&exporter), Some(5.0));
    // It did reconnect (a new connection asks for versions again).
    let reopened = exporter.value("surge_kafka_requests", &[("api", "ApiVersions")]);
    assert!(reopened > opened, "{opened:?} → {reopened:?}");
    Ok(())
}

/// TLS to the brokers (the test broker serves plain TCP, so a rustls front carries every
/// connection; the broker advertises it): the CA file verifies the broker and the lag is read;
/// a broker signed by another CA is refused in one line; a front that requires client
/// certificates lets in the exporter with its certificate and key, and not without.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_verifies_the_broker_and_presents_a_client_certificate() -> anyhow::Result<()> {
    use surge_servers::tls::LocalCa;
    use surge_testkit::tls_front::TlsFront;
    let dir = tempfile::tempdir()?;
    let ca = LocalCa::new(dir.path(), "ca")?;
    let other = LocalCa::new(dir.path(), "other-ca")?;
    let server = ca.server("broker", &["127.0.0.1"])?;
    let client = ca.client("surge", "surge-exporter")?;
    let broker_port = surge_servers::free_port()?;
    let upstream: std::net::SocketAddr = format!("127.0.0.1:{broker_port}").parse()?;
    let mut broker =
        KafkaBroker::start_in(surge_servers::Workdir::temp("surge-kafka-")?, broker_port)?;
    one_commit(&broker, ("order-placed", 1), (0, 7), ("payment", 3))?;
    // The test's own clients speak plain TCP; from here on the broker points clients at TLS.
    let front = TlsFront::start(upstream, &server.cert, &server.key, None)?;
    broker.advertise(front.port())?;
    let over_tls = |port: u16, properties: &str| {
        Exporter::from_toml(&format!(
            "[kafka]\ninterval = \"2s\"\ntimeout = \"2s\"\n[[kafka.clusters]]\nname = \"local\"\n\
             bootstrap_servers = \"127.0.0.1:{port}\"\n[kafka.clusters.properties]\n\
             \"security.protocol\" = \"ssl\"\n{properties}\n"
        ))
    };
    let ca_file = |ca: &LocalCa| format!("\"ssl.ca.location\" = \"{}\"", ca.cert().display());
    let lag = |e: &Exporter| {
        e.value(
            "surge_kafka_group_lag",
            &lag_labels("payment", "order-placed", "0"),
        )
    };

    let verified = over_tls(front.port(), &ca_file(&ca))?;
    assert!(
        verified.cycle().await,
        "{:?}",
        verified.last_error("kafka", "local")
    );
    assert_eq!(lag(&verified), Some(4.0));

    let wrong_ca = over_tls(front.port(), &ca_file(&other))?;
    assert!(!wrong_ca.cycle().await);
    let error = wrong_ca.last_error("kafka", "local").unwrap_or_default();
    assert!(
        error.contains("TLS") && error.contains("certificate"),
        "{error}"
    );

    // Mutual TLS: a second front on the same broker that requires a client certificate.
    let mutual = TlsFront::start(upstream, &server.cert, &server.key, Some(&ca.cert()))?;
    let with_cert = format!(
        "{}\n\"ssl.certificate.location\" = \"{}\"\n\"ssl.key.location\" = \"{}\"",
        ca_file(&ca),
        client.cert.display(),
        client.key.display()
    );
    // Bootstrapped through the mutual front; metadata then points at the first front, which
    // also accepts the certificate.
    let presented = over_tls(mutual.port(), &with_cert)?;
    assert!(
        presented.cycle().await,
        "{:?}",
        presented.last_error("kafka", "local")
    );
    assert_eq!(lag(&presented), Some(4.0));
    let anonymous = over_tls(mutual.port(), &ca_file(&ca))?;
    assert!(
        !anonymous.cycle().await,
        "no client certificate, yet it collected"
    );
    Ok(())
}

/// A spoofed broker answers ApiVersions (v3: a compact array) with a count of 2^32-2 in an
/// 11-byte frame, or states a 2 GiB answer: its cluster goes down with the reason in one line, the real
/// cluster beside it stays up, and nothing is allocated for what was never sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_broker_takes_only_its_own_cluster_down() -> anyhow::Result<()> {
    use std::io::{Read, Write};
    let broker = KafkaBroker::start()?;
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let spoofed = listener.local_addr()?;
    std::thread::spawn(move || {
        for (n, conn) in listener.incoming().enumerate() {
            let Ok(mut conn) = conn else { return };
            // Read one request: its length, then the header's API key, version and
            // correlation id.
            let mut length = [0u8; 4];
            if conn.read_exact(&mut length).is_err() {
                continue;
            }
            let mut request = vec![0u8; i32::from_be_bytes(length).clamp(0, 1 << 20) as usize];
            if conn.read_exact(&mut request).is_err() || request.len() < 8 {
                continue;
            }
            let correlation = &request[4..8];
            let mut answer = Vec::new();
            if n % 2 == 0 {
                answer.extend(11i32.to_be_bytes());
                answer.extend(correlation);
                answer.extend(0i16.to_be_bytes());
                answer.extend([0xff, 0xff, 0xff, 0xff, 0x0f]);
            } else {
                answer.extend(i32::MAX.to_be_bytes());
                answer.extend(correlation);
            }
            let _ = conn.write_all(&answer);
        }
    });
    let exporter = Exporter::from_toml(&format!(
        "{}[[kafka.clusters]]\nname = \"spoofed\"\nbootstrap_servers = \"{spoofed}\"\n",
        config(&broker, "")
    ))?;
    exporter.start().await;
    let mut errors = Vec::new();
    for _ in 0..4 {
        assert!(
            !exporter.cycle().await,
            "the spoofed cluster was not refused"
        );
        assert_eq!(exporter.up("kafka", "local"), Some(true));
        assert_eq!(exporter.up("kafka", "spoofed"), Some(false));
        errors.push(exporter.last_error("kafka", "spoofed").unwrap_or_default());
    }
    for e in &errors {
        assert_eq!(e.lines().count(), 1, "{e}");
    }
    assert!(
        errors
            .iter()
            .any(|e| e.contains("length 4294967294 is more than the 0 bytes left")),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e
                .contains("answer of 2147483647 bytes refused: over receive.message.max.bytes")),
        "{errors:?}"
    );
    Ok(())
}

/// Issue 28's trace on the real broker: two consumers in one group on a 4-partition topic at
/// 100 msg/s; one stops polling (its heartbeats go on, as a consumer wedged in a handler
/// does) while the other keeps committing. Summed over the topic the commits keep moving, so
/// the summed rule alone never called it stalled (it read `ok`, then `growing`); judged per
/// partition, the wedged member's partitions stall within stall_after and a few cycles, the
/// group-topic counts them, and the scalable lag leaves them out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wedged_member_stalls_its_partitions_while_the_other_commits() -> anyhow::Result<()> {
    use std::collections::BTreeSet;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use rdkafka::consumer::{BaseConsumer, Consumer};

    let broker = KafkaBroker::start()?;
    broker.create_topic("order-placed", 4)?;
    let exporter = Exporter::from_toml(&config(&broker, "scalable_lag_partition_cap = 100"))?;
    let served = common::Served::start(exporter).await?;
    // 10 per partition every 100 ms: 100 msg/s over 4 partitions.
    let producer = surge_testkit::kafka::keep_producing(
        &broker,
        "order-placed",
        4,
        10,
        Duration::from_millis(100),
    )?;

    // Both members poll until the group has split the partitions between them; then b stops
    // polling but stays in the group (librdkafka heartbeats from its own thread).
    let wedged = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let member = |name: &'static str| -> anyhow::Result<_> {
        let consumer: BaseConsumer = broker
            .consumer_config("payment")
            .set("client.id", name)
            .set("max.poll.interval.ms", "600000")
            .create()?;
        consumer.subscribe(&["order-placed"])?;
        let (wedged, stop) = (Arc::clone(&wedged), Arc::clone(&stop));
        let assigned = Arc::new(std::sync::Mutex::new(BTreeSet::new()));
        let seen = Arc::clone(&assigned);
        let thread = std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if name == "b" && wedged.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                }
                if let Some(Err(error)) = consumer.poll(Duration::from_millis(50)) {
                    eprintln!("{name}: {error}");
                }
                if let Ok(list) = consumer.assignment()
                    && let Ok(mut set) = seen.lock()
                {
                    *set = list.elements().iter().map(|e| e.partition()).collect();
                }
            }
        });
        Ok((thread, assigned))
    };
    let (a, a_assigned) = member("a")?;
    let (b, b_assigned) = member("b")?;
    let split = |set: &Arc<std::sync::Mutex<BTreeSet<i32>>>| {
        set.lock().map(|s| s.clone()).unwrap_or_default()
    };
    tokio::task::block_in_place(|| {
        surge_servers::wait_until(
            "the group splits the partitions 2 and 2",
            Duration::from_secs(60),
            Duration::from_millis(100),
            || Ok(split(&a_assigned).len() == 2 && split(&b_assigned).len() == 2),
        )
    })?;
    let labels = "cluster=\"local\",group=\"payment\",topic=\"order-placed\"";
    let value = |body: &str, family: &str| {
        surge_testkit::http::series_value(body, &format!("{family}{{{labels}}}"))
    };
    let stalled_state = format!("surge_kafka_group_topic_lag_state{{{labels},state=\"stalled\"}}");
    let body = served.wait_for("both members committing", Duration::from_secs(30), |b| {
        value(b, "surge_kafka_group_topic_stalled_partitions") == Some(0.0)
            && surge_testkit::http::series_value(b, &stalled_state) == Some(0.0)
            && value(b, "surge_kafka_group_topic_consume_rate").is_some_and(|r| r > 50.0)
    })?;
    assert!(
        !body.contains("surge_kafka_partition_stalled_seconds{"),
        "{body}"
    );

    let frozen = split(&b_assigned);
    // A partition is judged against its own pace (twice its commit interval): let the exporter
    // see each of b's partitions commit three times before b wedges.
    let seen: std::sync::Mutex<std::collections::BTreeMap<i32, BTreeSet<String>>> =
        std::sync::Mutex::default();
    served.wait_for("b's pace known", Duration::from_secs(30), |body| {
        let Ok(mut seen) = seen.lock() else {
            return false;
        };
        for &p in &frozen {
            let series =
                format!("surge_kafka_group_committed_offset{{{labels},partition=\"{p}\"}}");
            if let Some(offset) = surge_testkit::http::series_value(body, &series) {
                seen.entry(p).or_default().insert(offset.to_string());
            }
        }
        frozen
            .iter()
            .all(|p| seen.get(p).is_some_and(|offsets| offsets.len() >= 3))
    })?;
    wedged.store(true, Ordering::Relaxed);
    let wedged_at = std::time::Instant::now();
    let body = served.wait_for("b's partitions stalled", Duration::from_secs(45), |b| {
        value(b, "surge_kafka_group_topic_stalled_partitions") == Some(2.0)
    })?;
    // stall_after is 3 s, cycles 2 s apart: well inside the 196 s the summed rule took to
    // say even `growing`.
    let took = wedged_at.elapsed();
    let named: BTreeSet<i32> = body
        .lines()
        .filter(|l| l.starts_with("surge_kafka_partition_stalled_seconds{"))
        .filter_map(|l| {
            let at = l.find("partition=\"")? + "partition=\"".len();
            l[at..].split('"').next()?.parse().ok()
        })
        .collect();
    assert_eq!(
        named, frozen,
        "the wedged member's partitions, and only those: {body}"
    );
    // The scalable lag is a's two moving partitions, each capped at 100; the topic lag
    // holds b's growing backlog too.
    let scalable = value(&body, "surge_kafka_group_topic_scalable_lag").unwrap_or(f64::NAN);
    let lag = value(&body, "surge_kafka_group_topic_lag").unwrap_or(f64::NAN);
    assert!((0.0..=200.0).contains(&scalable), "scalable {scalable}");
    assert!(lag > scalable + 100.0, "lag {lag}, scalable {scalable}");
    eprintln!(
        "stalled 2 of 4 partitions {took:?} after the member wedged; lag {lag}, scalable {scalable}"
    );

    stop.store(true, Ordering::Relaxed);
    for t in [a, b] {
        t.join()
            .map_err(|_| anyhow::anyhow!("a member thread panicked"))?;
    }
    producer.stop()?;
    Ok(())
}

/// Three brokers (proxies over one tansu, spread as a real cluster: partition leaders by
/// partition, coordinators by group): the exporter reads the same exact lag, asks each leader
/// for ListOffsets and each coordinator for OffsetFetch once per spec and cycle — counted on
/// the wire, agreeing with its own counter — and asks them at once, not one after another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_brokers_are_asked_at_once_and_read_the_same_lag() -> anyhow::Result<()> {
    use surge_testkit::broker_cluster::{BrokerCluster, coordinator_of};
    let broker = KafkaBroker::start()?;
    broker.create_topic("orders", 6)?;
    let producer = broker.producer()?;
    for p in 0..6 {
        producer.send("orders", p, 30)?;
    }
    producer.flush()?;
    let groups: Vec<String> = (0..6).map(|g| format!("group-{g}")).collect();
    for (g, group) in groups.iter().enumerate() {
        let offsets: Vec<(i32, i64)> = (0..6).map(|p| (p, i64::from(p) + g as i64)).collect();
        broker.commit(group, "orders", &offsets)?;
    }
    let cluster = BrokerCluster::start(format!("127.0.0.1:{}", broker.port()).parse()?, 3)?;
    // A broker's round trip: long enough that requests sent at once overlap for certain.
    cluster.set_delay(Duration::from_millis(150));
    let exporter = Exporter::from_toml(&format!(
        "[kafka]\ninterval = \"5s\"\ntimeout = \"5s\"\ndiscovery_interval = \"60s\"\nwindow = \"20s\"\n\
         [[kafka.clusters]]\nname = \"local\"\nbootstrap_servers = \"{}\"\n",
        cluster.bootstrap()
    ))?;
    // Warm up: connections, discovery, coordinators found.
    for _ in 0..2 {
        assert!(
            exporter.cycle().await,
            "{:?}",
            exporter.last_error("kafka", "local")
        );
    }
    for (g, group) in groups.iter().enumerate() {
        for p in 0..6 {
            let partition = p.to_string();
            let lag = exporter.value(
                "surge_kafka_group_lag",
                &lag_labels(group, "orders", &partition),
            );
            assert_eq!(lag, Some((30 - p - g) as f64), "{group}/{p}");
        }
    }
    let own = |api: &str| {
        exporter
            .value("surge_kafka_requests", &[("api", api)])
            .unwrap_or(0.0)
    };
    let (wire_before, own_before) = (cluster.requests(), (own("ListOffsets"), own("OffsetFetch")));
    cluster.reset_most_in_flight();
    for _ in 0..3 {
        assert!(
            exporter.cycle().await,
            "{:?}",
            exporter.last_error("kafka", "local")
        );
    }
    let wire = cluster.requests();
    let delta = |node: i32, api: &'static str| {
        wire.get(&(node, api)).copied().unwrap_or(0)
            - wire_before.get(&(node, api)).copied().unwrap_or(0)
    };
    let coordinators: std::collections::BTreeSet<i32> =
        groups.iter().map(|g| coordinator_of(g, 3)).collect();
    assert!(
        coordinators.len() >= 2,
        "groups all on one node: {coordinators:?}"
    );
    for node in 0..3 {
        // Latest and earliest from each leader, each cycle.
        assert_eq!(delta(node, "ListOffsets"), 6, "node {node}: {wire:?}");
        let fetches = if coordinators.contains(&node) { 3 } else { 0 };
        assert_eq!(delta(node, "OffsetFetch"), fetches, "node {node}: {wire:?}");
    }
    assert_eq!(
        (
            own("ListOffsets") - own_before.0,
            own("OffsetFetch") - own_before.1
        ),
        (18.0, 3.0 * coordinators.len() as f64),
        "the exporter's own counter disagrees with the wire"
    );
    assert!(
        cluster.most_in_flight() >= 2,
        "never more than one request in flight: brokers asked one after another"
    );
    Ok(())
}
