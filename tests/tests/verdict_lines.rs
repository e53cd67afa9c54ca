//! The lines verdicts judge by come from the alert rules a real Prometheus has loaded (the
//! team may have moved them), and the config over those.

use std::time::Duration;

use surge_client::fetch::Update;
use surge_client::fetch::{Prometheus as Api, RuleSummary};
use surge_client::model::{Labels, Metrics};
use surge_client::store::{Lines, SetLines, Store, Verdict, verdict};
use surge_servers::{Prometheus, Workdir, free_port};
use surge_tests::alerting::repo;

/// What a real Prometheus with `rules` loaded says about its alert rules.
fn loaded(rules: &str) -> anyhow::Result<RuleSummary> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("rules.yml");
    std::fs::write(&file, rules)?;
    let prometheus = Prometheus::start_in(
        Workdir::temp("surge-lines-prom-")?,
        free_port()?,
        &format!(
            "global:\n  evaluation_interval: 1s\nrule_files: [\"{}\"]\n",
            file.display()
        ),
    )?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let http =
        surge_client::fetch::http_client(Duration::from_secs(10)).map_err(anyhow::Error::msg)?;
    Ok(runtime.block_on(Api::new(&prometheus.url(), http).rules())?)
}

/// A service on one replica `lag` seconds behind, judged with `rules` and `config` lines.
fn judged(rules: &RuleSummary, config: SetLines, lag: f64) -> Verdict {
    let labels = |pairs: &[(&str, &str)]| -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let mut m = Metrics::default();
    let hpa = labels(&[
        ("namespace", "shop"),
        ("workload", "orders"),
        ("hpa", "orders"),
    ]);
    m.insert("surge_hpa_current_replicas", hpa.clone(), 2.0);
    m.insert("surge_hpa_desired_replicas", hpa.clone(), 2.0);
    m.insert("surge_hpa_max_replicas", hpa, 10.0);
    m.insert(
        "surge_postgres_is_replica",
        labels(&[("target", "primary")]),
        0.0,
    );
    m.insert(
        "surge_postgres_is_replica",
        labels(&[("target", "replica1")]),
        1.0,
    );
    m.insert(
        "surge_postgres_replay_lag_seconds",
        labels(&[("target", "replica1")]),
        lag,
    );
    let mut store = Store::new(60.0);
    store.set_configured_lines(config, None);
    store.apply_all(
        vec![
            Update::Thresholds {
                cpu_alert: rules.cpu_alert,
                rules: rules.rules,
                unhealthy: rules.unhealthy,
                lines: rules.lines,
            },
            Update::Metrics {
                source: "prometheus".into(),
                metrics: m,
                at: 100.0,
            },
        ],
        100.0,
    );
    verdict(&store.derived().services[0])
}

#[test]
fn verdict_lines_come_from_the_loaded_rules_and_the_config_over_them() -> anyhow::Result<()> {
    let shipped = std::fs::read_to_string(repo().join("alerts/rules.yml"))?;
    // Surge's own rules: every line read, each the default the views fall back on.
    let ours = loaded(&shipped)?;
    let d = Lines::default();
    assert_eq!(ours.cpu_alert, Some(0.85));
    assert_eq!(
        ours.lines,
        SetLines {
            replica_lag_warning: Some(d.replica_lag_warning),
            replica_lag_page: Some(d.replica_lag_page),
            connections_warning: Some(d.connections_warning),
            connections_page: Some(d.connections_page),
            memory_of_limit: Some(d.memory_of_limit),
            idle_in_transaction: Some(d.idle_in_transaction),
        }
    );
    assert!(matches!(
        judged(&ours, SetLines::default(), 40.0),
        Verdict::ReplicaBehind { .. }
    ));
    // A team that moved the replica-lag warning to a minute: 40 s is no longer behind.
    let moved = shipped.replace(
        "surge_postgres_replay_lag_seconds > 30",
        "surge_postgres_replay_lag_seconds > 60",
    );
    anyhow::ensure!(
        moved != shipped,
        "the rule's expression changed: update this test"
    );
    let theirs = loaded(&moved)?;
    assert_eq!(theirs.lines.replica_lag_warning, Some(60.0));
    assert_eq!(
        judged(&theirs, SetLines::default(), 40.0),
        Verdict::KeepingUp
    );
    // The config's line over the rules'.
    let config = SetLines {
        replica_lag_warning: Some(20.0),
        ..SetLines::default()
    };
    assert!(matches!(
        judged(&theirs, config, 25.0),
        Verdict::ReplicaBehind { .. }
    ));
    Ok(())
}
