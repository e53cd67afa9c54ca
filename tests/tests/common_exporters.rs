//! The panel on a Prometheus that holds only the common exporters' series: kube-state-metrics
//! with cAdvisor, kafka_exporter or kminion, postgres_exporter or CloudNativePG. They cannot
//! run here, so one world (the shop mid flash sale, every scenario at once) is written in
//! their real names and shapes as OpenMetrics, loaded into a real Prometheus with
//! `promtool tsdb create-blocks-from openmetrics`, and read back by the real `surge` binary
//! at the world's last moment (`--at`), one fixture set per context selector.

use std::process::Command;

use anyhow::{Context, bail};
use surge_servers::{Prometheus, Workdir, free_port};
use surge_testkit::fixtures::{self, Fixture, World};

/// The world's last sample: a whole minute a little in the past (Prometheus' blocks must not
/// reach into the future of its clock).
fn end() -> f64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    (now / 60.0).floor() * 60.0 - 120.0
}

/// Every set written and loaded into a fresh Prometheus.
struct Loaded {
    prometheus: Prometheus,
    world: World,
    sets: Vec<Fixture>,
}

fn load() -> anyhow::Result<Loaded> {
    let world = World::flash_sale(end());
    let sets = fixtures::sets(&world);
    let dir = Workdir::temp("surge-fixtures-")?;
    let file = dir.path().join("fixtures.om");
    std::fs::write(
        &file,
        fixtures::openmetrics(&sets.iter().collect::<Vec<_>>()),
    )?;
    let data = dir.path().join("data");
    let out = Command::new("promtool")
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(&file)
        .arg(&data)
        .output()
        .context("promtool")?;
    if !out.status.success() {
        bail!(
            "promtool tsdb create-blocks-from openmetrics: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let prometheus = Prometheus::start_in(dir, free_port()?, "global:\n  scrape_interval: 15s\n")?;
    Ok(Loaded {
        prometheus,
        world,
        sets,
    })
}

/// `surge --once` on one fixture set at the world's end: the frame.
fn frame(loaded: &Loaded, set: &str, view: &str, size: &str) -> anyhow::Result<String> {
    let surge = surge_stack::stack::sibling_binary("surge", "SURGE_BIN")?;
    let out = Command::new(surge)
        .args([
            "--once",
            "--wait",
            "20s",
            "--log",
            "/dev/null",
            "--size",
            size,
        ])
        .args(["--view", view])
        .args(["--prometheus", &loaded.prometheus.url()])
        .args(["--selector", &format!("fixture=\"{set}\"")])
        .args(["--at", &format!("{}", loaded.world.end)])
        .env("NO_COLOR", "1")
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() || !stderr.trim().is_empty() {
        bail!(
            "surge --once ({set}, {view}) exited {:?}: {stderr}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout)
        );
    }
    Ok(String::from_utf8(out.stdout)?)
}

fn set_names(loaded: &Loaded) -> Vec<String> {
    loaded.sets.iter().map(|s| s.name().to_string()).collect()
}

#[test]
fn the_panel_reads_every_scenario_from_the_common_exporters() -> anyhow::Result<()> {
    let loaded = load()?;
    let names = set_names(&loaded);
    assert_eq!(
        names,
        [
            "kafka_exporter+postgres_exporter",
            "kminion+cloudnative-pg",
            "surge"
        ]
    );
    let mut frames = 0;
    for set in &names {
        for (view, size) in [
            ("overview", "160x26"),
            ("kafka", "140x16"),
            ("pg", "140x16"),
        ] {
            let frame = frame(&loaded, set, view, size)?;
            insta::assert_snapshot!(format!("{set}__{view}"), frame);
            frames += 1;
        }
    }
    assert_eq!(frames, 9);
    Ok(())
}

/// The same world through surge-exporter and through each set of common exporters: the same
/// verdict for every service (a derived signal is marked, and here agrees).
#[test]
fn the_common_exporters_give_the_verdicts_surge_exporter_gives() -> anyhow::Result<()> {
    use surge_client::fetch::Update;
    use surge_client::fetch::prometheus::Prometheus as Api;
    use surge_client::fetch::signals::{Selector, Signals};
    use surge_client::store::{Store, Verdict, verdict};

    let loaded = load()?;
    let end = loaded.world.end;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let verdicts = |set: &str| -> anyhow::Result<Vec<(String, Verdict, bool)>> {
        let http = surge_client::fetch::http_client(std::time::Duration::from_secs(20))
            .map_err(anyhow::Error::msg)?;
        let api = Api::new(&loaded.prometheus.url(), http)
            .with_signals(Signals {
                selector: Selector::parse(&format!("fixture=\"{set}\""))
                    .map_err(anyhow::Error::msg)?,
                ..Signals::default()
            })
            .at(Some(end));
        let metrics = runtime.block_on(async {
            let choice = api.detect().await?;
            api.overview(&choice).await
        })?;
        let mut store = Store::new(60.0);
        store.apply(
            Update::Metrics {
                source: "prometheus".into(),
                metrics,
                at: end,
            },
            end,
        );
        Ok(store
            .derived()
            .services
            .iter()
            .map(|s| {
                let derived = s.cpu_derived || s.kafka.as_ref().is_some_and(|g| g.derived);
                (s.workload.clone(), verdict(s), derived)
            })
            .collect())
    };
    let own = verdicts("surge")?;
    assert_eq!(own.len(), loaded.world.services.len(), "{own:?}");
    assert!(own.iter().all(|(_, _, derived)| !derived), "{own:?}");
    let mut compared = 0;
    for set in ["kafka_exporter+postgres_exporter", "kminion+cloudnative-pg"] {
        let theirs = verdicts(set)?;
        assert_eq!(theirs.len(), own.len(), "{set}: {theirs:?}");
        for ((service, want, _), (same, got, derived)) in own.iter().zip(&theirs) {
            assert_eq!(service, same);
            assert!(
                derived,
                "{set}: {service}'s numbers are derived and must say so"
            );
            assert_eq!(
                std::mem::discriminant(want),
                std::mem::discriminant(got),
                "{set}: {service}: surge-exporter says {want:?}, the common exporters {got:?}"
            );
            compared += 1;
        }
    }
    assert_eq!(compared, 2 * own.len());
    // Every scenario is judged as it should be.
    let kinds: Vec<&Verdict> = own.iter().map(|(_, v, _)| v).collect();
    assert!(
        matches!(
            kinds.as_slice(),
            [
                Verdict::OverTargetNotScaling { .. },
                Verdict::ConsumersStalled,
                Verdict::ScalingOut { .. },
                Verdict::SaturatedAtMax { lag_growing: true },
                Verdict::ReplicaBehind { .. },
            ]
        ),
        "{own:?}"
    );
    Ok(())
}

/// The fixtures carry the names and labels real boards query: every query of the Strimzi
/// kafka-exporter board and the CloudNativePG board whose metrics the fixtures write returns
/// data, template variables expanded as Grafana would for this world.
#[test]
fn the_third_party_boards_find_their_series_in_the_fixtures() -> anyhow::Result<()> {
    use std::collections::BTreeSet;

    use regex::Regex;
    use surge_testkit::prom::PromQl;

    let loaded = load()?;
    let written: BTreeSet<String> = loaded.sets.iter().flat_map(Fixture::names).collect();
    let prom = PromQl::new(&loaded.prometheus.url())?;
    let names = Regex::new(r"[a-zA-Z_:][a-zA-Z0-9_:]*")?;
    let dir = surge_tests::alerting::repo().join("tests/fixtures/third-party-boards");
    let boards: [(&str, &[(&str, &str)]); 2] = [
        (
            "strimzi-kafka-exporter.json",
            &[
                ("$kubernetes_namespace", "kafka"),
                ("$strimzi_cluster_name", "shop-kafka"),
                ("$consumergroup", ".*"),
                ("$topic", ".*"),
            ],
        ),
        (
            "cloudnative-pg-cluster.json",
            &[
                ("${instances}", "shop-db-([1-9][0-9]*)"),
                ("$instances", "shop-db-([1-9][0-9]*)"),
                ("$namespace", "shop"),
                ("$cluster", "shop-db"),
                ("$__rate_interval", "1m"),
            ],
        ),
    ];
    let mut checked = BTreeSet::new();
    let mut skipped = 0;
    for (file, variables) in boards {
        let board: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join(file))?)?;
        let mut panels: Vec<&serde_json::Value> =
            board["panels"].as_array().into_iter().flatten().collect();
        while let Some(panel) = panels.pop() {
            panels.extend(panel["panels"].as_array().into_iter().flatten());
            for target in panel["targets"].as_array().into_iter().flatten() {
                let Some(expr) = target["expr"].as_str().filter(|e| !e.is_empty()) else {
                    continue;
                };
                // The operator's own pods are not in this world.
                if expr.contains("$operatorNamespace") {
                    skipped += 1;
                    continue;
                }
                let mut query = expr.to_string();
                for (name, value) in variables {
                    query = query.replace(name, value);
                }
                let metrics: BTreeSet<&str> = names
                    .find_iter(&query)
                    .map(|m| m.as_str())
                    // Exporters' names, and recording rules (`a:b:c`), which no fixture writes.
                    .filter(|n| {
                        n.contains(':')
                            || [
                                "kafka_",
                                "cnpg_",
                                "kube_",
                                "container_",
                                "kubelet_",
                                "node_",
                            ]
                            .iter()
                            .any(|p| n.starts_with(p))
                    })
                    .collect();
                if metrics.is_empty() || !metrics.iter().all(|m| written.contains(*m)) {
                    skipped += 1;
                    continue;
                }
                let series = prom.query_at(&query, loaded.world.end)?;
                assert!(
                    !series.is_empty(),
                    "{file} panel {:?}: no data for {query}",
                    panel["title"]
                );
                checked.insert(format!("{file}: {}", panel["title"].as_str().unwrap_or("")));
            }
        }
    }
    for wanted in [
        "strimzi-kafka-exporter.json: Lag by  Consumer Group",
        "strimzi-kafka-exporter.json: Messages consumed per second",
        "cloudnative-pg-cluster.json: Replication Lag",
        "cloudnative-pg-cluster.json: Session States",
    ] {
        assert!(
            checked.contains(wanted),
            "{wanted} not checked: {checked:#?}"
        );
    }
    assert!(checked.len() >= 25, "only {} panels checked", checked.len());
    eprintln!(
        "{} panels checked, {skipped} queries of other exporters' metrics skipped",
        checked.len()
    );
    Ok(())
}
