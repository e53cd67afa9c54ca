//! The exporter configs Surge ships are read by the exporter's own parser: the one the local
//! stack writes, the one inside the Kubernetes manifests, and the commented example.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use surge_exporter::Exporter;
use surge_exporter::config::Config;
use surge_stack::MonitoringTiming;
use surge_tests::alerting::repo;

#[test]
fn the_local_stacks_config_parses_and_builds() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let password = dir.path().join("pg-monitor");
    std::fs::write(&password, "generated\n")?;
    let postgres: Vec<(String, String)> = ["primary", "replica1", "replica2"]
        .iter()
        .enumerate()
        .map(|(i, node)| {
            (
                (*node).to_string(),
                format!("postgres://surge_monitor@127.0.0.1:{}/postgres", 5432 + i),
            )
        })
        .collect();
    for timing in [
        MonitoringTiming::default(),
        // The drills' fast timings.
        MonitoringTiming {
            scrape: Duration::from_secs(1),
            collect: Duration::from_secs(1),
            timeout: Duration::from_millis(800),
            lag_window: Duration::from_secs(20),
            rate_window: Duration::from_secs(5),
            stall_after: Duration::from_secs(3),
        },
    ] {
        let text = surge_stack::stack::exporter_config(
            &timing,
            "127.0.0.1:9092",
            &postgres,
            &password,
            &dir.path().join("pids"),
        );
        let config = Config::parse(&text).map_err(|e| anyhow::anyhow!("{e}\n{text}"))?;
        // Building reads the password file: the secret the stack writes is where it says.
        let exporter = {
            let runtime = tokio::runtime::Runtime::new()?;
            let _context = runtime.enter();
            Exporter::new(&config)?
        };
        drop(exporter);
    }
    Ok(())
}

/// The documents of a multi-document YAML file.
fn documents(path: &Path) -> anyhow::Result<Vec<serde_yaml_ng::Value>> {
    let text = std::fs::read_to_string(path)?;
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|d| Ok(serde_yaml_ng::Value::deserialize(d)?))
        .collect()
}

#[test]
fn the_kubernetes_manifests_config_parses() -> anyhow::Result<()> {
    let path = repo().join("stack/k8s/base/surge-exporter.yaml");
    let mut found = 0;
    for doc in documents(&path)? {
        if doc["kind"] != "ConfigMap" {
            continue;
        }
        let Some(text) = doc["data"]["surge-exporter.toml"].as_str() else {
            continue;
        };
        let config = Config::parse(text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        assert_eq!(config.listen().port(), 9917);
        found += 1;
    }
    assert_eq!(found, 1, "one exporter ConfigMap in {}", path.display());
    Ok(())
}

#[test]
fn the_example_config_parses() -> anyhow::Result<()> {
    let path = repo().join("exporter/surge-exporter.example.toml");
    Config::load(&path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(())
}
