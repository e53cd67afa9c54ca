//! The metric contract: every family is declared once in `surge_metrics::catalogue`, encodes
//! lint-clean, and every `surge_*` name an alert rule, a Grafana board or a panel query uses is
//! one of them.

use std::collections::BTreeSet;
use std::time::Duration;

use regex::Regex;
use serde_json::Value;
use surge_metrics::catalogue;
use surge_metrics::store::Store;
use surge_metrics::{Family, Sample};
use surge_tests::alerting::repo;

#[test]
fn every_family_encodes_and_passes_promtool() -> anyhow::Result<()> {
    let store = Store::new();
    // The store writes the exporter's own families itself; give every other family one
    // sample with its declared labels.
    let own: BTreeSet<&str> = catalogue::exporter::ALL.iter().map(|f| f.name).collect();
    let families: Vec<&'static Family> = catalogue::families().collect();
    let samples: Vec<Sample> = families
        .iter()
        .filter(|f| !own.contains(f.name))
        .map(|f| {
            let labels = f.labels.iter().map(|l| (*l, format!("{l}-1"))).collect();
            Sample::new(f, labels, 1.0)
        })
        .collect();
    store.expect("all", "t", Duration::from_secs(15));
    store.record("all", "t", Ok(samples), Duration::ZERO);
    let text = store.encode_prometheus_text()?;
    for f in &families {
        assert!(
            text.contains(&format!("# TYPE {} ", f.exposed)),
            "{} not encoded",
            f.name
        );
    }
    let report = surge_testkit::promtool::check_metrics(&text)?;
    assert!(report.trim().is_empty(), "promtool:\n{report}\n{text}");
    Ok(())
}

/// Every board's query expressions and variable definitions.
fn board_texts() -> anyhow::Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(repo().join("dashboards"))? {
        let path = entry?.path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let name = path.display().to_string();
        let board: Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
        for panel in board["panels"].as_array().into_iter().flatten() {
            for target in panel["targets"].as_array().into_iter().flatten() {
                out.extend(
                    target["expr"]
                        .as_str()
                        .map(|e| (name.clone(), e.to_string())),
                );
            }
        }
        for var in board["templating"]["list"].as_array().into_iter().flatten() {
            out.extend(
                var["definition"]
                    .as_str()
                    .map(|d| (name.clone(), d.to_string())),
            );
        }
    }
    Ok(out)
}

#[test]
fn every_metric_named_by_rules_boards_scalers_and_panel_is_in_the_catalogue() -> anyhow::Result<()>
{
    let mut texts = board_texts()?;
    // The rules, and what the autoscalers scale on (HPA External metrics, the adapter's rules,
    // KEDA's queries).
    const SCALERS: [&str; 3] = [
        "stack/k8s/scale-on-lag/hpa.yaml",
        "stack/k8s/scale-on-lag/adapter-rules.yaml",
        "stack/k8s/overlays/keda/scaledobjects.yaml",
    ];
    for file in ["alerts/rules.yml", "alerts/rules.test.yml"]
        .into_iter()
        .chain(SCALERS)
    {
        texts.push((file.into(), std::fs::read_to_string(repo().join(file))?));
    }
    for query in surge_client::queries() {
        texts.push(("the panel's queries".into(), query));
    }
    let name = Regex::new(r"surge_[a-z0-9_]+")?;
    let mut checked = BTreeSet::new();
    for (whence, text) in &texts {
        for m in name.find_iter(text) {
            assert!(
                catalogue::find(m.as_str()).is_some(),
                "{whence}: {} is not in the catalogue",
                m.as_str()
            );
            checked.insert(whence.clone());
        }
    }
    // Every kind of reader was actually read (a renamed directory must not make this pass).
    for whence in ["alerts/rules.yml", "the panel's queries"]
        .into_iter()
        .chain(SCALERS)
    {
        assert!(
            checked.contains(whence),
            "no metric names found in {whence}"
        );
    }
    assert_eq!(
        checked.iter().filter(|w| w.ends_with(".json")).count(),
        4,
        "boards read: {checked:?}"
    );
    Ok(())
}
