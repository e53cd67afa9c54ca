//! Fixtures shared by the view snapshots and the render benchmark: the shop mid flash sale,
//! and a large deployment (50 services, 200 groups).
#![allow(dead_code)]

use surge_client::fetch::ALERTS;
use surge_client::fetch::Update;
use surge_client::model::{Alert, AlertState, Labels, Matcher, Metrics, Silence};
use surge_client::store::Store;

pub const NOW: f64 = 1_795_856_400.0;

fn labels_of(pairs: &[(&str, &str)]) -> Labels {
    labels(pairs)
}

pub fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect()
}

pub struct Shop {
    pub m: Metrics,
}

impl Shop {
    pub fn service(
        &mut self,
        name: &str,
        current: f64,
        desired: f64,
        max: f64,
        cpu: f64,
        limited: bool,
    ) {
        let w = labels(&[("namespace", "shop"), ("workload", name)]);
        let hpa = labels(&[("namespace", "shop"), ("workload", name), ("hpa", name)]);
        self.m
            .insert("surge_workload_cpu_utilization_ratio", w.clone(), cpu);
        self.m
            .insert("surge_workload_pods_without_cpu_request", w, 0.0);
        self.m
            .insert("surge_hpa_current_replicas", hpa.clone(), current);
        self.m
            .insert("surge_hpa_desired_replicas", hpa.clone(), desired);
        self.m.insert("surge_hpa_min_replicas", hpa.clone(), 2.0);
        self.m.insert("surge_hpa_max_replicas", hpa.clone(), max);
        self.m
            .insert("surge_hpa_target_cpu_utilization_ratio", hpa.clone(), 0.7);
        self.m.insert(
            "surge_hpa_scaling_limited",
            hpa.clone(),
            f64::from(u8::from(limited)),
        );
        self.m.insert("surge_hpa_able_to_scale", hpa, 1.0);
        for i in 0..current as usize {
            let pod = labels(&[
                ("namespace", "shop"),
                ("workload", name),
                ("pod", &format!("{name}-{i}")),
            ]);
            self.m.insert(
                "surge_pod_ready",
                pod.clone(),
                if i == 3 { 0.0 } else { 1.0 },
            );
            self.m.insert(
                "surge_pod_cpu_usage_cores",
                pod.clone(),
                0.2 * cpu + 0.01 * i as f64,
            );
            self.m.insert("surge_pod_cpu_request_cores", pod, 0.2);
        }
    }

    /// The `surge_hpa_metric_*` series of `name`'s HPA at `current` replicas: CPU against its
    /// 70% target, and for a consumer its group's lag against 300 per replica (made by the
    /// same code the exporter and the local HPA use).
    pub fn scaling(
        &mut self,
        name: &str,
        current: i32,
        cpu: f64,
        lag_per_replica: Option<(&str, f64)>,
    ) {
        use surge_metrics::hpa::{HpaMetric, HpaStatus, metric_label};
        use surge_metrics::state::{MetricType, TargetType};
        let mut metrics = vec![HpaMetric {
            metric_type: MetricType::Resource,
            metric_name: "cpu".into(),
            target_type: TargetType::Utilization,
            target: 0.7,
            current: Some(cpu),
        }];
        if let Some((topic, lag)) = lag_per_replica {
            metrics.push(HpaMetric {
                metric_type: MetricType::External,
                metric_name: metric_label(
                    "surge_kafka_group_topic_lag",
                    &[
                        ("group".to_string(), name.to_string()),
                        ("topic".to_string(), topic.to_string()),
                    ]
                    .into(),
                ),
                target_type: TargetType::AverageValue,
                target: 300.0,
                current: Some(lag),
            });
        }
        let status = HpaStatus {
            namespace: "shop".into(),
            hpa: name.into(),
            workload: name.into(),
            current: Some(current),
            metrics,
            ..HpaStatus::default()
        };
        let mut samples = Vec::new();
        status.samples(&mut samples);
        for sample in samples
            .iter()
            .filter(|s| s.family.name.starts_with("surge_hpa_metric_"))
        {
            let labels: Vec<(&str, &str)> = sample.labels().collect();
            self.m
                .insert(sample.family.exposed, labels_of(&labels), sample.value);
        }
    }

    /// Memory of `pods` replicas of `name`: each pod's working set in MiB from `mib`, against
    /// a 256Mi request and 512Mi limit (the Deployments'), and the HPA's ratio over them.
    pub fn memory(&mut self, name: &str, pods: usize, mib: impl Fn(usize) -> f64) {
        const MIB: f64 = 1_048_576.0;
        let mut used = 0.0;
        for i in 0..pods {
            let pod = labels(&[
                ("namespace", "shop"),
                ("workload", name),
                ("pod", &format!("{name}-{i}")),
            ]);
            let bytes = (mib(i) * MIB).round();
            used += bytes;
            self.m
                .insert("surge_pod_memory_working_set_bytes", pod.clone(), bytes);
            self.m
                .insert("surge_pod_memory_request_bytes", pod.clone(), 256.0 * MIB);
            self.m
                .insert("surge_pod_memory_limit_bytes", pod, 512.0 * MIB);
        }
        let ratio = (used * 100.0 / (256.0 * MIB * pods as f64)).floor() / 100.0;
        self.m.insert(
            "surge_workload_memory_utilization_ratio",
            labels(&[("namespace", "shop"), ("workload", name)]),
            ratio,
        );
    }

    /// `group` on `topic` stalled on `stalled` partitions (partition, member, seconds) of
    /// the topic's `of`, as surge-exporter says it, with its scalable lag.
    pub fn stall(
        &mut self,
        group: &str,
        topic: &str,
        stalled: &[(u32, &str, f64)],
        of: u32,
        scalable: f64,
    ) {
        let gt = labels(&[("cluster", "shop"), ("group", group), ("topic", topic)]);
        for s in ["ok", "growing", "draining", "stalled", "idle"] {
            let mut l = gt.clone();
            l.insert("state".into(), s.into());
            self.m.insert(
                "surge_kafka_group_topic_lag_state",
                l,
                f64::from(u8::from(s == "stalled")),
            );
        }
        self.m.insert(
            "surge_kafka_group_topic_stalled_partitions",
            gt.clone(),
            stalled.len() as f64,
        );
        self.m
            .insert("surge_kafka_group_topic_scalable_lag", gt.clone(), scalable);
        self.m.insert(
            "surge_kafka_topic_partitions",
            labels(&[("cluster", "shop"), ("topic", topic)]),
            f64::from(of),
        );
        for (partition, member, seconds) in stalled {
            let mut l = gt.clone();
            l.insert("partition".into(), partition.to_string());
            l.insert("member".into(), (*member).to_string());
            self.m
                .insert("surge_kafka_partition_stalled_seconds", l, *seconds);
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub fn group(
        &mut self,
        group: &str,
        topic: &str,
        lag: f64,
        seconds: f64,
        state: &str,
        produce: f64,
        consume: f64,
        eta: Option<f64>,
    ) {
        let gt = labels(&[("cluster", "shop"), ("group", group), ("topic", topic)]);
        self.m
            .insert("surge_kafka_group_topic_lag", gt.clone(), lag);
        self.m
            .insert("surge_kafka_group_topic_lag_seconds", gt.clone(), seconds);
        self.m
            .insert("surge_kafka_group_topic_consume_rate", gt.clone(), consume);
        if let Some(eta) = eta {
            self.m
                .insert("surge_kafka_group_topic_drain_eta_seconds", gt.clone(), eta);
        }
        for s in ["ok", "growing", "draining", "stalled", "idle"] {
            let mut l = gt.clone();
            l.insert("state".into(), s.into());
            self.m.insert(
                "surge_kafka_group_topic_lag_state",
                l,
                f64::from(u8::from(s == state)),
            );
        }
        self.m.insert(
            "surge_kafka_topic_produce_rate",
            labels(&[("cluster", "shop"), ("topic", topic)]),
            produce,
        );
        self.m.insert(
            "surge_kafka_group_members",
            labels(&[("cluster", "shop"), ("group", group)]),
            2.0,
        );
        let mut st = labels(&[("cluster", "shop"), ("group", group)]);
        st.insert("state".into(), "Stable".into());
        self.m.insert("surge_kafka_group_state", st, 1.0);
        for p in 0..4 {
            let gp = labels(&[
                ("cluster", "shop"),
                ("group", group),
                ("topic", topic),
                ("partition", &p.to_string()),
            ]);
            let committed = 10_000.0 * f64::from(p + 1);
            self.m.insert(
                "surge_kafka_group_has_commit",
                gp.clone(),
                f64::from(u8::from(p != 3)),
            );
            if p != 3 {
                self.m
                    .insert("surge_kafka_group_committed_offset", gp.clone(), committed);
                self.m
                    .insert("surge_kafka_group_lag", gp, (lag / 3.0).round());
            }
            self.m.insert(
                "surge_kafka_partition_log_end_offset",
                labels(&[
                    ("cluster", "shop"),
                    ("topic", topic),
                    ("partition", &p.to_string()),
                ]),
                committed + (lag / 3.0).round(),
            );
        }
    }

    pub fn postgres(&mut self) {
        let up = |m: &mut Metrics, target: &str, v: f64| {
            m.insert(
                "surge_source_up",
                labels(&[("source", "postgres"), ("target", target)]),
                v,
            );
        };
        up(&mut self.m, "primary", 1.0);
        up(&mut self.m, "replica1", 1.0);
        up(&mut self.m, "replica2", 1.0);
        self.m.insert(
            "surge_postgres_is_replica",
            labels(&[("target", "primary")]),
            0.0,
        );
        // Connections: replica1 takes most reads (82% of its slots), the primary has a
        // transaction idle for 6m52s and a short lock wait.
        for (target, idle, active, idle_in_transaction, oldest, lock_wait) in [
            ("primary", 160.0, 18.0, 2.0, 412.0, 3.2),
            ("replica1", 212.0, 31.0, 0.0, 0.0, 0.0),
            ("replica2", 40.0, 2.0, 0.0, 0.0, 0.0),
        ] {
            for (state, n) in [
                ("idle", idle),
                ("active", active),
                ("idle_in_transaction", idle_in_transaction),
            ] {
                self.m.insert(
                    "surge_postgres_connections",
                    labels(&[("target", target), ("database", "shop"), ("state", state)]),
                    n,
                );
            }
            let t = labels(&[("target", target)]);
            self.m
                .insert("surge_postgres_max_connections", t.clone(), 300.0);
            self.m
                .insert("surge_postgres_reserved_connections", t.clone(), 3.0);
            self.m.insert(
                "surge_postgres_longest_idle_in_transaction_seconds",
                t.clone(),
                oldest,
            );
            self.m
                .insert("surge_postgres_longest_lock_wait_seconds", t, lock_wait);
        }
        for (r, seconds, bytes, streaming) in [
            ("replica1", 0.4, 8192.0, 1.0),
            ("replica2", 95.0, 48.0 * 1024.0 * 1024.0, 0.0),
        ] {
            let t = labels(&[("target", r)]);
            self.m.insert("surge_postgres_is_replica", t.clone(), 1.0);
            self.m
                .insert("surge_postgres_replay_lag_seconds", t.clone(), seconds);
            self.m
                .insert("surge_postgres_replay_lag_bytes", t.clone(), bytes);
            self.m
                .insert("surge_postgres_receive_lag_bytes", t.clone(), 0.0);
            self.m
                .insert("surge_postgres_wal_receiver_streaming", t, streaming);
            let tr = labels(&[("target", "primary"), ("replica", r)]);
            self.m
                .insert("surge_postgres_replica_streaming", tr.clone(), streaming);
            self.m
                .insert("surge_postgres_replica_lag_bytes", tr.clone(), bytes);
            let mut st = tr.clone();
            st.insert("stage".into(), "replay".into());
            self.m
                .insert("surge_postgres_replica_lag_seconds", st, seconds);
            let slot = labels(&[("target", "primary"), ("slot", r)]);
            self.m.insert(
                "surge_postgres_replication_slot_active",
                slot.clone(),
                streaming,
            );
            self.m.insert(
                "surge_postgres_replication_slot_retained_bytes",
                slot,
                bytes,
            );
        }
    }
}

pub fn alert(
    name: &str,
    severity: &str,
    state: AlertState,
    extra: &[(&str, &str)],
    muted: bool,
) -> Alert {
    let mut l = labels(&[("alertname", name), ("severity", severity)]);
    l.extend(labels(extra));
    Alert {
        name: name.into(),
        state,
        severity: severity.into(),
        labels: l,
        summary: format!("{name} summary"),
        description: format!(
            "{name} description, long enough to wrap in the detail panel of the alerts view."
        ),
        runbook: format!("https://github.com/surge-sre/surge/blob/main/alerts/runbooks/{name}.md"),
        active_at: Some(NOW - 420.0),
        muted,
    }
}

/// The shop mid flash sale: payment saturated, its lag growing, one of its pods near its
/// memory limit; replica2 broken, replica1 using most of its connection slots.
pub fn flash_sale() -> Store {
    flash_sale_with(|_| {})
}

/// [`flash_sale`] with `change` applied to the shop's series after they are set.
pub fn flash_sale_with(change: impl Fn(&mut Shop)) -> Store {
    let mut shop = Shop {
        m: Metrics::default(),
    };
    shop.service("auth", 4.0, 4.0, 10.0, 0.62, false);
    shop.service("catalog", 2.0, 2.0, 10.0, 0.21, true);
    shop.service("orders", 6.0, 8.0, 10.0, 0.78, false);
    shop.service("payment", 10.0, 10.0, 10.0, 0.93, true);
    shop.service("shipping", 3.0, 3.0, 10.0, 0.55, false);
    // Scaling: payment's lag (4.2k per replica against 300) decides, capped at its max;
    // the others scale on CPU.
    shop.scaling("auth", 4, 0.62, None);
    shop.scaling("catalog", 2, 0.21, None);
    shop.scaling("orders", 6, 0.78, None);
    shop.scaling("payment", 10, 0.93, Some(("order-placed", 4200.0)));
    shop.scaling("shipping", 3, 0.55, Some(("shipping-request", 12.0)));
    for topic in ["order-placed", "payment-processed", "shipping-request"] {
        shop.m.insert(
            "surge_kafka_topic_partitions",
            labels(&[("cluster", "shop"), ("topic", topic)]),
            12.0,
        );
    }
    // Memory: payment's first pod near its limit (OOM-kill risk), the rest well inside.
    for (name, pods, base) in [
        ("auth", 4, 150.0),
        ("catalog", 2, 190.0),
        ("orders", 6, 170.0),
        ("payment", 10, 210.0),
        ("shipping", 3, 120.0),
    ] {
        let hot = name == "payment";
        shop.memory(name, pods, |i| {
            if hot && i == 0 {
                478.0
            } else {
                base + 6.0 * i as f64
            }
        });
    }
    shop.group(
        "payment",
        "order-placed",
        15_400.0,
        48.0,
        "growing",
        420.0,
        310.0,
        None,
    );
    shop.group(
        "orders",
        "payment-processed",
        220.0,
        1.5,
        "draining",
        300.0,
        330.0,
        Some(7.0),
    );
    shop.group(
        "shipping",
        "shipping-request",
        35.0,
        0.4,
        "ok",
        290.0,
        290.0,
        None,
    );
    shop.group(
        "payment-dlq-audit",
        "order-placed.dlq",
        0.0,
        0.0,
        "idle",
        0.0,
        0.0,
        None,
    );
    shop.postgres();
    change(&mut shop);
    let mut store = Store::new(30.0);
    // Ten minutes of history: payment's CPU climbing, lag growing.
    for i in 0..=60 {
        let t = NOW - 600.0 + f64::from(i) * 10.0;
        let mut m = shop.m.clone();
        let x = f64::from(i) / 60.0;
        let pay = labels(&[("namespace", "shop"), ("workload", "payment")]);
        let mut hist = Metrics::default();
        hist.insert(
            "surge_workload_cpu_utilization_ratio",
            pay.clone(),
            0.4 + 0.53 * x,
        );
        hist.insert(
            "surge_hpa_current_replicas",
            labels(&[
                ("namespace", "shop"),
                ("workload", "payment"),
                ("hpa", "payment"),
            ]),
            (2.0 + 8.0 * x).round(),
        );
        hist.insert(
            "surge_kafka_group_topic_lag",
            labels(&[
                ("cluster", "shop"),
                ("group", "payment"),
                ("topic", "order-placed"),
            ]),
            15_400.0 * x * x,
        );
        hist.insert(
            "surge_postgres_replay_lag_seconds",
            labels(&[("target", "replica2")]),
            95.0 * x,
        );
        if i < 60 {
            m = hist;
        }
        store.apply(
            Update::Metrics {
                source: "prometheus".into(),
                metrics: m,
                at: t,
            },
            t,
        );
    }
    let alerts = vec![
        alert(
            "ServiceCPUHighAtMaxReplicas",
            "page",
            AlertState::Firing,
            &[("namespace", "shop"), ("workload", "payment")],
            false,
        ),
        alert(
            "KafkaConsumerLagGrowing",
            "page",
            AlertState::Firing,
            &[
                ("cluster", "shop"),
                ("group", "payment"),
                ("topic", "order-placed"),
            ],
            false,
        ),
        alert(
            "PostgresReplicaNotStreaming",
            "page",
            AlertState::Firing,
            &[("target", "replica2")],
            true,
        ),
        alert(
            "ServiceCPUHigh",
            "warning",
            AlertState::Pending,
            &[("namespace", "shop"), ("workload", "orders")],
            false,
        ),
    ];
    store.apply(
        Update::Alerts {
            source: "prometheus".into(),
            alerts: alerts.clone(),
        },
        NOW,
    );
    store.apply(
        Update::Alerts {
            source: "alertmanager".into(),
            alerts: alerts
                .into_iter()
                .filter(|a| a.state == AlertState::Firing)
                .collect(),
        },
        // Alertmanager answered a second before the moment shown.
        NOW - 1.0,
    );
    store.apply(
        Update::History {
            metric: ALERTS.into(),
            series: vec![
                (
                    labels(&[
                        ("alertname", "KafkaConsumerLagGrowing"),
                        ("group", "payment"),
                        ("topic", "order-placed"),
                    ]),
                    (0..20)
                        .map(|i| (NOW - 400.0 + f64::from(i) * 20.0, 1.0))
                        .collect(),
                ),
                (
                    labels(&[
                        ("alertname", "PostgresReplicaNotStreaming"),
                        ("target", "replica2"),
                    ]),
                    (0..10)
                        .map(|i| (NOW - 280.0 + f64::from(i) * 15.0, 1.0))
                        .collect(),
                ),
            ],
        },
        NOW,
    );
    store.apply(
        Update::Silences(vec![Silence {
            id: "6b1c5f4e-0d2a-4a57-9c3e-2f7d1e8a9b10".into(),
            matchers: vec![Matcher {
                name: "target".into(),
                value: "replica2".into(),
                is_regex: false,
                is_equal: true,
            }],
            comment: "rebuilding replica2 from a fresh base backup".into(),
            created_by: "dana".into(),
            ends_at: "2026-11-28T11:00:00.000Z".into(),
            state: "active".into(),
        }]),
        NOW,
    );
    store.rebuild(NOW);
    store
}

/// 50 services and 200 consumer groups with long names.
pub fn large() -> Store {
    let mut shop = Shop {
        m: Metrics::default(),
    };
    for i in 0..50 {
        shop.service(
            &format!("service-with-a-rather-long-name-{i:02}"),
            3.0,
            4.0,
            20.0,
            0.1 + f64::from(i) / 50.0,
            false,
        );
    }
    for i in 0..200 {
        shop.group(
            &format!("group-{i:03}-consumers"),
            &format!("topic.with.many.dots.{i:03}"),
            f64::from(i) * 1234.0,
            f64::from(i),
            "ok",
            10.0,
            10.0,
            None,
        );
    }
    let mut store = Store::new(30.0);
    store.apply(
        Update::Metrics {
            source: "prometheus".into(),
            metrics: shop.m,
            at: NOW,
        },
        NOW,
    );
    store
}

/// Whether `doc` (a path from the repository's root: README.md, docs/src/panel.md) holds the
/// frame of snapshot `name` (`tests/snapshots/NAME.snap`) as a text block, character for
/// character.
pub fn doc_holds_snapshot(doc: &str, name: &str) -> anyhow::Result<bool> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let snapshot = std::fs::read_to_string(root.join(format!("tests/snapshots/{name}.snap")))?;
    let frame = snapshot
        .splitn(3, "---\n")
        .nth(2)
        .ok_or_else(|| anyhow::anyhow!("snapshot {name} without a header"))?
        .trim_end_matches('\n');
    let text = std::fs::read_to_string(root.join("..").join(doc))?;
    Ok(text.contains(&format!("```text\n{frame}\n```")))
}
