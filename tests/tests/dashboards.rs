//! The Grafana boards, proven without Grafana: the JSON model is checked, thresholds (the
//! boards' and the panel's) come from the alert rules and HPA manifests, and every panel query — template variables expanded
//! as Grafana would — runs against a real Prometheus scraping the local stack and returns
//! data. (That every `surge_*` name they use is exported: `contract.rs`.)

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::Context;
use regex::Regex;
use serde_json::{Value, json};
use surge_testkit::kafka::BrokerClients;
use surge_testkit::prom::PromQl;
use surge_testkit::shop::Shop;
use surge_tests::alerting::repo;

fn boards() -> anyhow::Result<Vec<(String, Value)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(repo().join("dashboards"))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "json") {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            out.push((
                name,
                serde_json::from_str(&std::fs::read_to_string(&path)?)?,
            ));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    anyhow::ensure!(out.len() == 4, "expected 4 boards, found {}", out.len());
    Ok(out)
}

fn panels(board: &Value) -> Vec<&Value> {
    board["panels"].as_array().into_iter().flatten().collect()
}

/// The provisioning files, as Grafana reads them when `dashboards/` is mounted at
/// /etc/surge-dashboards (docs/src/dashboards.md): a Prometheus datasource whose URL is an environment
/// reference in a form Grafana expands (`$NAME`, `${NAME}`: no shell-style default), and a
/// file provider whose path is that folder, holding every board. (Grafana does not run here.)
#[test]
fn provisioning_files_point_grafana_at_the_boards_and_prometheus() -> anyhow::Result<()> {
    let read = |path: &str| -> anyhow::Result<serde_yaml_ng::Value> {
        Ok(serde_yaml_ng::from_str(&std::fs::read_to_string(
            repo().join("dashboards/provisioning").join(path),
        )?)?)
    };
    let datasources = read("datasources/prometheus.yml")?;
    assert_eq!(datasources["apiVersion"], 1);
    let sources = datasources["datasources"]
        .as_sequence()
        .context("no datasources")?;
    assert_eq!(sources.len(), 1);
    let prometheus = &sources[0];
    assert_eq!(prometheus["type"], "prometheus");
    let url = prometheus["url"].as_str().unwrap_or_default();
    assert_eq!(url, "${SURGE_PROMETHEUS_URL}");
    let expandable = Regex::new(r"^\$(\w+|\{\w+\})$")?;
    assert!(expandable.is_match(url), "Grafana would not expand {url}");

    let providers = read("dashboards/surge.yml")?;
    let provider = &providers["providers"][0];
    assert_eq!(provider["type"], "file");
    let mounted = provider["options"]["path"].as_str().unwrap_or_default();
    assert_eq!(mounted, "/etc/surge-dashboards");
    // What Grafana finds there is this folder's boards, each with the datasource variable
    // that picks a Prometheus datasource.
    let boards = boards()?;
    assert_eq!(
        boards.len(),
        4,
        "{:?}",
        boards.iter().map(|(n, _)| n).collect::<Vec<_>>()
    );
    for (name, board) in &boards {
        let variable = board["templating"]["list"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|v| v["name"] == "datasource")
            .with_context(|| format!("{name}: no datasource variable"))?;
        assert_eq!(
            (&variable["type"], &variable["query"]),
            (&json!("datasource"), &json!("prometheus")),
            "{name}"
        );
    }
    Ok(())
}

#[test]
fn board_models_are_valid() -> anyhow::Result<()> {
    let mut uids = BTreeSet::new();
    let range_selector = Regex::new(r"\[(\$\w+|\d+[smhdwy])\]")?;
    for (name, board) in boards()? {
        for key in [
            "uid",
            "title",
            "schemaVersion",
            "panels",
            "templating",
            "time",
            "refresh",
        ] {
            assert!(!board[key].is_null(), "{name}: no {key}");
        }
        assert!(
            uids.insert(board["uid"].as_str().unwrap_or_default().to_string()),
            "{name}: duplicate uid"
        );
        assert!(
            board["schemaVersion"].as_i64().is_some_and(|v| v >= 39),
            "{name}: old schemaVersion"
        );
        let vars = board["templating"]["list"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(
            vars.iter()
                .any(|v| v["type"] == "datasource" && v["name"] == "datasource"),
            "{name}: no datasource variable"
        );
        let mut ids = BTreeSet::new();
        let mut rects: Vec<(i64, i64, i64, i64, String)> = Vec::new();
        for p in panels(&board) {
            let title = p["title"].as_str().unwrap_or_default().to_string();
            assert!(
                ids.insert(p["id"].as_i64().unwrap_or(-1)),
                "{name}: duplicate panel id at {title}"
            );
            let g = &p["gridPos"];
            let (x, y, w, h) = (
                g["x"].as_i64().unwrap_or(-1),
                g["y"].as_i64().unwrap_or(-1),
                g["w"].as_i64().unwrap_or(0),
                g["h"].as_i64().unwrap_or(0),
            );
            assert!(
                x >= 0 && y >= 0 && w > 0 && h > 0 && x + w <= 24,
                "{name}: {title} outside the 24-column grid"
            );
            for (ox, oy, ow, oh, other) in &rects {
                let overlap = x < ox + ow && *ox < x + w && y < oy + oh && *oy < y + h;
                assert!(!overlap, "{name}: {title} overlaps {other}");
            }
            rects.push((x, y, w, h, title.clone()));
            if p["type"] == "row" {
                continue;
            }
            assert_eq!(
                p["datasource"]["uid"], "${datasource}",
                "{name}: {title} datasource"
            );
            let targets = p["targets"].as_array().cloned().unwrap_or_default();
            assert!(!targets.is_empty(), "{name}: {title} has no targets");
            for t in targets {
                assert_eq!(
                    t["datasource"]["uid"], "${datasource}",
                    "{name}: {title} target datasource"
                );
                let expr = t["expr"].as_str().unwrap_or_default();
                assert!(!expr.is_empty(), "{name}: {title} empty expr");
                // Every range selector (the windows of rate/increase) is Grafana's rate interval.
                for window in range_selector.captures_iter(expr) {
                    assert_eq!(&window[1], "$__rate_interval", "{name}: {title}: {expr}");
                }
            }
        }
    }
    Ok(())
}

/// The numbers in `<metric> > N` (or `...<metric>) > N`) in alerts/rules.yml.
fn rule_threshold(metric: &str) -> anyhow::Result<Vec<f64>> {
    let rules = std::fs::read_to_string(repo().join("alerts/rules.yml"))?;
    let re = Regex::new(&format!(r"{metric}\)?\s+> ([0-9.* ]+)"))?;
    let mut out = Vec::new();
    for c in re.captures_iter(&rules) {
        let product: f64 = c[1]
            .split('*')
            .map(|f| f.trim().parse::<f64>().unwrap_or(f64::NAN))
            .product();
        out.push(product);
    }
    out.sort_by(f64::total_cmp);
    out.dedup();
    Ok(out)
}

fn panel_thresholds(board: &Value, title: &str) -> Vec<f64> {
    panels(board)
        .into_iter()
        .find(|p| p["title"] == title)
        .and_then(|p| {
            p["fieldConfig"]["defaults"]["thresholds"]["steps"]
                .as_array()
                .cloned()
        })
        .unwrap_or_default()
        .iter()
        .filter_map(|s| s["value"].as_f64())
        .collect()
}

#[test]
fn thresholds_come_from_the_rules_and_hpa_manifests() -> anyhow::Result<()> {
    let all = boards()?;
    let board = |file: &str| {
        all.iter()
            .find(|(n, _)| n == file)
            .map(|(_, b)| b.clone())
            .unwrap_or(Value::Null)
    };
    let hpa = surge_stack::hpa::load_all(&surge_stack::hpa::HPA_MANIFESTS.map(|p| repo().join(p)))?;
    let targets: BTreeSet<u64> = hpa
        .iter()
        .map(|h| (h.target * 100.0).round() as u64)
        .collect();
    anyhow::ensure!(
        targets.len() == 1,
        "HPAs disagree on the target: {targets:?}"
    );
    let hpa_target = hpa[0].target;
    let cpu_alert = rule_threshold("surge_workload_cpu_utilization_ratio")?;
    assert_eq!(cpu_alert, vec![0.85]);
    assert_eq!(
        panel_thresholds(
            &board("scaling-overview.json"),
            "CPU utilization of request (HPA arithmetic)"
        ),
        vec![hpa_target, cpu_alert[0]]
    );
    assert_eq!(
        panel_thresholds(
            &board("postgres-replication.json"),
            "Replica data age (replay lag)"
        ),
        rule_threshold("surge_postgres_replay_lag_seconds")?
    );
    assert_eq!(
        panel_thresholds(
            &board("postgres-replication.json"),
            "WAL behind, per standby (primary view)"
        ),
        rule_threshold("surge_postgres_replica_lag_bytes")?
    );
    let memory_alert = rule_threshold("surge_pod_memory_limit_bytes")?;
    assert_eq!(memory_alert, vec![0.9]);
    assert_eq!(
        panel_thresholds(&board("scaling-overview.json"), "Pod memory of its limit"),
        memory_alert
    );
    let connection_alerts = rule_threshold("surge_postgres_reserved_connections")?;
    assert_eq!(connection_alerts, vec![0.8, 0.95]);
    assert_eq!(
        panel_thresholds(
            &board("postgres-replication.json"),
            "Connection slots in use"
        ),
        connection_alerts
    );
    assert_eq!(
        panel_thresholds(
            &board("postgres-replication.json"),
            "Longest idle transaction and lock wait"
        ),
        rule_threshold("surge_postgres_longest_idle_in_transaction_seconds")?
    );

    // The panel colours by the same lines.
    use surge_client::store::{DEFAULT_CPU_ALERT, lines};
    assert_eq!(vec![DEFAULT_CPU_ALERT], cpu_alert);
    assert_eq!(
        vec![lines::REPLICA_LAG_WARNING, lines::REPLICA_LAG_PAGE],
        rule_threshold("surge_postgres_replay_lag_seconds")?
    );
    assert_eq!(vec![lines::MEMORY_OF_LIMIT], memory_alert);
    assert_eq!(
        vec![lines::CONNECTIONS_WARNING, lines::CONNECTIONS_PAGE],
        connection_alerts
    );
    assert_eq!(
        vec![lines::IDLE_IN_TRANSACTION],
        rule_threshold("surge_postgres_longest_idle_in_transaction_seconds")?
    );
    Ok(())
}

/// Substitute Grafana's variables the way "All" does.
fn expand(expr: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = expr
        .replace("$__rate_interval", "20s")
        .replace("$__interval", "5s");
    for (k, v) in vars {
        out = out.replace(&format!("${k}"), v);
    }
    out
}

#[test]
fn every_panel_query_returns_data_from_a_real_prometheus() -> anyhow::Result<()> {
    let dir = tempfile::Builder::new().prefix("surge-boards-").tempdir()?;
    let mut options = surge_stack::StackOptions::for_checkout(dir.path())?;
    options.autoscale = Some(Duration::from_secs(5));
    options.payment_failure_rate = 0.0;
    // A drain ETA exists only while more is consumed than produced over the exporter's 30 s
    // rate window, so the backlog must outlast the burst that made it by more than that
    // window: 300 orders at 0.4 s each on 2 payment replicas take about a minute. (The local
    // HPA brings a scaled-down payment back within its 5 s period, so the outage alone is
    // not what makes the backlog.)
    options.payment_latency_ms = 400;
    let stack = surge_stack::Stack::start(options)?;
    let prom = PromQl::new(
        &stack
            .prometheus
            .as_ref()
            .map(|p| p.url())
            .ok_or_else(|| anyhow::anyhow!("no prometheus"))?,
    )?;
    let shop = Shop::new(&stack.api())?;

    // Traffic: shoppers, orders, a declined payment, a poison message (a dead letter), and a
    // payment outage that leaves a backlog to drain (drain ETA).
    let token = shop.user("boards@example.com")?;
    let decline = shop.product_id("test-decline-card")?;
    let order = |product: i64| -> anyhow::Result<()> {
        let (status, body) = shop.order(&token, &[(product, 1)])?;
        anyhow::ensure!(status == 202, "order: {status} {body}");
        Ok(())
    };
    order(decline)?;
    let poison = stack.kafka.producer()?;
    poison.send_one("order-placed", 0, "poison", "{not json")?;
    poison.flush()?;
    stack.scale("payment", 0)?;
    for i in 0..300 {
        order(1 + i % 50)?;
    }
    stack.scale("payment", 2)?;
    // Browse while the backlog drains, until Prometheus has seen a drain ETA (or give up
    // after two minutes and let the panel check below name what is missing).
    let seen_drain = || {
        prom.query("max_over_time(surge_kafka_group_topic_drain_eta_seconds[5m])")
            .is_ok_and(|series| !series.is_empty())
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let mut i = 0;
    while std::time::Instant::now() < deadline && (i < 40 || !seen_drain()) {
        let _ = shop.get(&format!("/products/{}", 1 + i % 50), None);
        std::thread::sleep(Duration::from_millis(500));
        i += 1;
    }

    // Every variable and panel has data once rates and ranges have filled in (one minute at
    // most); what is still missing then is named.
    let label_values = Regex::new(r"^label_values\((.+), *(\w+)\)$")?;
    let boards = boards()?;
    let mut failures = Vec::new();
    let all_have_data = surge_servers::wait_until(
        "every variable and panel with data",
        Duration::from_secs(60),
        Duration::from_secs(2),
        || {
            failures = missing_data(&prom, &boards, &label_values)?;
            Ok(failures.is_empty())
        },
    );
    assert!(all_have_data.is_ok(), "{}", failures.join("\n"));
    Ok(())
}

/// What of the boards' variables and panels has no data in Prometheus over the last 5 minutes.
fn missing_data(
    prom: &PromQl,
    boards: &[(String, Value)],
    label_values: &Regex,
) -> anyhow::Result<Vec<String>> {
    let end = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs_f64();
    let mut failures = Vec::new();
    for (name, board) in boards {
        // Variables: each query variable must have values; panels then use them all.
        let mut vars = BTreeMap::new();
        for v in board["templating"]["list"].as_array().into_iter().flatten() {
            if v["type"] != "query" {
                continue;
            }
            let var = v["name"].as_str().unwrap_or_default().to_string();
            let definition = expand(v["definition"].as_str().unwrap_or_default(), &vars);
            let caps = label_values.captures(&definition).ok_or_else(|| {
                anyhow::anyhow!("{name}: unsupported variable query {definition}")
            })?;
            let values = prom.label_values(&caps[2], &caps[1])?;
            if values.is_empty() {
                failures.push(format!(
                    "{name}: variable {var} ({definition}) has no values"
                ));
            }
            vars.insert(var, values.join("|"));
        }
        for p in panels(board) {
            for t in p["targets"].as_array().into_iter().flatten() {
                let expr = expand(t["expr"].as_str().unwrap_or_default(), &vars);
                let series = prom.range(&expr, end - 300.0, end, 5.0)?;
                if series.is_empty() {
                    failures.push(format!(
                        "{name}: \"{}\" returned no series: {expr}",
                        p["title"].as_str().unwrap_or_default()
                    ));
                }
            }
        }
    }
    Ok(failures)
}
