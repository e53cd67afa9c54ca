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

/// The real `surge --once` at the world's end, `size` wide, with `args`.
fn surge_once(loaded: &Loaded, size: &str, args: &[&str]) -> anyhow::Result<std::process::Output> {
    let surge = surge_stack::stack::sibling_binary("surge", "SURGE_BIN")?;
    Ok(Command::new(surge)
        .args([
            "--once",
            "--wait",
            "20s",
            "--log",
            "/dev/null",
            "--size",
            size,
        ])
        .args(["--at", &format!("{}", loaded.world.end)])
        .args(args)
        .env("NO_COLOR", "1")
        .output()?)
}

/// `surge --once` on one fixture set at the world's end: the frame.
fn frame(loaded: &Loaded, set: &str, view: &str, size: &str) -> anyhow::Result<String> {
    let url = loaded.prometheus.url();
    let selector = format!("fixture=\"{set}\"");
    // The view, and any further flags after it.
    let mut args = vec!["--prometheus", &url, "--selector", &selector, "--view"];
    args.extend(view.split_whitespace());
    let out = surge_once(loaded, size, &args)?;
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
            "surge",
            "stopped"
        ]
    );
    let mut frames = 0;
    for set in &names[..3] {
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
    // kafka_exporter and replica2's postgres_exporter stopped answering: their numbers are
    // not shown as current, and the frame says why.
    let frame = frame(&loaded, "stopped", "overview --range 1h", "160x26")?;
    insta::assert_snapshot!("stopped__overview", frame);
    for says in [
        "kafka_exporter: kafka target 10.0.4.2:9404 is down",
        "postgres_exporter: postgres target pg-replica2:9187 is down",
        "lag unknown, Kafka down",
    ] {
        assert!(frame.contains(says), "{says}: {frame}");
    }
    Ok(())
}

/// The same world through surge-exporter and through each set of common exporters: the same
/// verdict for every service (a derived signal is marked, and here agrees).
#[test]
fn the_common_exporters_give_the_verdicts_surge_exporter_gives() -> anyhow::Result<()> {
    use surge_client::fetch::Prometheus as Api;
    use surge_client::fetch::Update;
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
        // The instant values, and the CPU history the over-target rule looks back on.
        let cpu = surge_metrics::catalogue::workload::CPU_UTILIZATION.exposed;
        let (metrics, series) = runtime.block_on(async {
            let choice = api.detect().await?;
            let history = api.history_query(&choice, cpu);
            Ok::<_, surge_client::fetch::FetchError>((
                api.overview(&choice).await?,
                api.range(&history, end - 300.0, end, 15.0).await?,
            ))
        })?;
        let mut store = Store::new(60.0);
        store.apply_all(
            vec![
                Update::History {
                    metric: cpu.to_string(),
                    series,
                },
                Update::Metrics {
                    source: "prometheus".into(),
                    metrics,
                    at: end,
                },
            ],
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

/// Exporters' metric names in a query, and recording rules (`a:b:c`), which no fixture
/// writes.
fn metric_names(query: &str) -> std::collections::BTreeSet<&str> {
    query
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|n| {
            n.contains(':')
                || [
                    "kafka_",
                    "cnpg_",
                    "kube_",
                    "container_",
                    "kubelet_",
                    "node_",
                    "controller_",
                ]
                .iter()
                .any(|p| n.starts_with(p))
        })
        .collect()
}

/// A board's template variables as Grafana resolves them against this world: each query
/// variable's values (`label_values`, `query_result`, or a series query, through its regex),
/// "All" for multi-value ones (their `allValue`, else every value). A variable over series
/// the fixtures do not write is left out (its panels are skipped).
fn variables(
    prom: &surge_testkit::prom::PromQl,
    board: &serde_json::Value,
    written: &std::collections::BTreeSet<String>,
    at: f64,
) -> anyhow::Result<Vec<(String, String)>> {
    use regex::Regex;
    let mut out: Vec<(String, String)> = Vec::new();
    let expand = |text: &str, vars: &[(String, String)]| {
        let mut text = text.to_string();
        for (name, value) in vars {
            text = text
                .replace(&format!("${{{name}}}"), value)
                .replace(&format!("${name}"), value);
        }
        text
    };
    for var in board["templating"]["list"].as_array().into_iter().flatten() {
        if var["type"] != "query" {
            continue;
        }
        let name = var["name"].as_str().unwrap_or_default().to_string();
        let raw = var["query"]
            .as_str()
            .or_else(|| var["query"]["query"].as_str())
            .unwrap_or_default();
        let query = expand(raw, &out);
        if !metric_names(&query).iter().all(|m| written.contains(*m)) {
            continue;
        }
        let texts: Vec<String> = if let Some(args) = query
            .strip_prefix("label_values(")
            .and_then(|a| a.strip_suffix(')'))
        {
            let (selector, label) = args
                .rsplit_once(',')
                .context("label_values(selector, label)")?;
            prom.label_values(label.trim(), selector.trim())?
        } else {
            let expr = query
                .strip_prefix("query_result(")
                .and_then(|a| a.strip_suffix(')'))
                .unwrap_or(&query);
            prom.query_at(expr, at)?
                .into_iter()
                .map(|s| {
                    let labels: Vec<String> = s
                        .labels
                        .iter()
                        .map(|(k, v)| format!("{k}=\"{v}\""))
                        .collect();
                    format!("{}{{{}}}", s.name, labels.join(","))
                })
                .collect()
        };
        let pattern = var["regex"].as_str().unwrap_or_default();
        let pattern = pattern
            .strip_prefix('/')
            .and_then(|p| p.rsplit_once('/').map(|(p, _)| p))
            .unwrap_or(pattern);
        let mut values = std::collections::BTreeSet::new();
        for text in texts {
            if pattern.is_empty() {
                values.insert(text);
                continue;
            }
            for caps in Regex::new(pattern)?.captures_iter(&text) {
                if let Some(m) = caps.name("text").or_else(|| caps.get(1)) {
                    values.insert(m.as_str().to_string());
                }
            }
        }
        anyhow::ensure!(
            !values.is_empty(),
            "variable {name} ({query}) has no values"
        );
        let value = if var["multi"] == true || var["includeAll"] == true {
            match var["allValue"].as_str() {
                Some(all) => expand(all, &out),
                None => values.into_iter().collect::<Vec<_>>().join("|"),
            }
        } else {
            values.into_iter().next().unwrap_or_default()
        };
        out.push((name, value));
    }
    // Longer names first, so `$cluster` does not eat the start of `$clusters`.
    out.sort_by_key(|(n, _)| std::cmp::Reverse(n.len()));
    Ok(out)
}

/// The fixtures carry the names and labels real boards query: every query of the Strimzi
/// kafka-exporter board and the CloudNativePG board whose metrics the fixtures write returns
/// data, template variables resolved as Grafana would against the fixtures themselves.
#[test]
fn the_third_party_boards_find_their_series_in_the_fixtures() -> anyhow::Result<()> {
    use std::collections::BTreeSet;

    use surge_testkit::prom::PromQl;

    let loaded = load()?;
    let at = loaded.world.end;
    let written: BTreeSet<String> = loaded.sets.iter().flat_map(Fixture::names).collect();
    let prom = PromQl::new(&loaded.prometheus.url())?;
    let dir = surge_tests::alerting::repo().join("tests/fixtures/third-party-boards");
    let mut checked = BTreeSet::new();
    let mut skipped = 0;
    for file in ["strimzi-kafka-exporter.json", "cloudnative-pg-cluster.json"] {
        let board: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join(file))?)?;
        let mut vars = variables(&prom, &board, &written, at)?;
        vars.push(("__rate_interval".into(), "1m".into()));
        vars.sort_by_key(|(n, _)| std::cmp::Reverse(n.len()));
        let mut panels: Vec<&serde_json::Value> =
            board["panels"].as_array().into_iter().flatten().collect();
        while let Some(panel) = panels.pop() {
            panels.extend(panel["panels"].as_array().into_iter().flatten());
            for target in panel["targets"].as_array().into_iter().flatten() {
                let Some(expr) = target["expr"].as_str().filter(|e| !e.is_empty()) else {
                    continue;
                };
                let mut query = expr.to_string();
                for (name, value) in &vars {
                    query = query
                        .replace(&format!("${{{name}}}"), value)
                        .replace(&format!("${name}"), value);
                }
                let metrics = metric_names(&query);
                // Unresolved: a variable over series of another exporter.
                if query.contains('$')
                    || metrics.is_empty()
                    || !metrics.iter().all(|m| written.contains(*m))
                {
                    skipped += 1;
                    continue;
                }
                let series = prom.query_at(&query, at)?;
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

/// `surge --once` with a config file on one fixture set: (frame, exit code).
fn frame_with(
    loaded: &Loaded,
    set: &str,
    queries: &str,
    view: &str,
) -> anyhow::Result<(String, i32)> {
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[sources]\nprometheus = \"{}\"\nselector = 'fixture=\"{set}\"'\n[sources.queries]\n{queries}",
            loaded.prometheus.url()
        ),
    )?;
    let config = config.to_string_lossy();
    let out = surge_once(loaded, "240x16", &["--view", view, "--config", &config])?;
    Ok((
        String::from_utf8(out.stdout)?,
        out.status.code().unwrap_or(-1),
    ))
}

/// A context's own PromQL replaces a family; one that answers without the family's labels,
/// or that Prometheus refuses, fails in one line naming the family.
#[test]
fn a_contexts_own_queries_replace_a_family_and_bad_ones_are_named() -> anyhow::Result<()> {
    let loaded = load()?;
    let set = "kafka_exporter+postgres_exporter";
    // Twice the slots: 200 - 3 reserved.
    let (frame, code) = frame_with(
        &loaded,
        set,
        &format!(
            "surge_postgres_max_connections = 'max by (target) (label_replace(pg_settings_max_connections{{fixture=\"{set}\"}}, \"target\", \"$1\", \"instance\", \"(.+)\")) * 2'\n"
        ),
        "pg",
    )?;
    assert_eq!(code, 0, "{frame}");
    assert!(frame.contains("58/197"), "{frame}");
    for (query, says) in [
        (
            "surge_kafka_group_topic_lag = 'sum by (topic) (kafka_consumergroup_lag_sum)'\n",
            "query for surge_kafka_group_topic_lag: a series without label cluster",
        ),
        // A family the panel asks no history of: only the Overview's query can fail (a
        // history family's range query fails too, in Prometheus' other wording, and the
        // banner shows whichever failed last).
        (
            "surge_kafka_topic_partitions = 'max(kafka_topic_partitions'\n",
            "query for surge_kafka_topic_partitions: HTTP 400 invalid parameter \"query\": 1:",
        ),
    ] {
        let (frame, code) = frame_with(&loaded, set, query, "overview")?;
        assert_eq!(code, 1, "{frame}");
        let banner: Vec<&str> = frame.lines().filter(|l| l.contains("is failing")).collect();
        assert_eq!(banner.len(), 1, "{frame}");
        assert!(banner[0].contains(says), "{query}: {frame}");
    }
    Ok(())
}

/// The guide's frame of the common exporters (docs/src/prometheus.md) is this snapshot.
#[test]
fn guide_shows_the_common_exporters_frame() -> anyhow::Result<()> {
    let root = surge_tests::alerting::repo();
    let snapshot = std::fs::read_to_string(root.join(
        "tests/tests/snapshots/common_exporters__kafka_exporter+postgres_exporter__overview.snap",
    ))?;
    let frame = snapshot
        .splitn(3, "---\n")
        .nth(2)
        .context("a snapshot without a header")?
        .trim_end_matches('\n');
    let page = std::fs::read_to_string(root.join("docs/src/prometheus.md"))?;
    assert!(
        page.contains(&format!("```text\n{frame}\n```")),
        "docs/src/prometheus.md's common-exporters frame differs from the snapshot: copy it over"
    );
    Ok(())
}
