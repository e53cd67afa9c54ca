//! The exporter configs Surge ships are read by the exporter's own parser: the one the local
//! stack writes, the one each Kubernetes overlay renders, and the commented example.

use std::time::Duration;

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
    let requests =
        surge_stack::k8s::deployment_resources(&repo().join("stack/k8s/base/shop.yaml"))?;
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
            &requests,
            Some(100),
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

/// The exporter's config inside the ConfigMap each overlay renders (what a cluster gets).
#[test]
fn the_kubernetes_overlays_config_parses() -> anyhow::Result<()> {
    for overlay in ["local", "production"] {
        let objects = surge_stack::k8s::render(&repo().join("stack/k8s/overlays").join(overlay))?;
        let texts: Vec<&str> = objects
            .iter()
            .filter(|o| {
                o["kind"] == "ConfigMap"
                    && o["metadata"]["name"]
                        .as_str()
                        .is_some_and(|n| n.starts_with("surge-exporter-"))
            })
            .filter_map(|o| o["data"]["surge-exporter.toml"].as_str())
            .collect();
        assert_eq!(texts.len(), 1, "{overlay}: one exporter config");
        let config = Config::parse(texts[0]).map_err(|e| anyhow::anyhow!("{overlay}: {e}"))?;
        assert_eq!(config.listen().port(), 9917);
        // What a cluster gets verifies what it connects to.
        assert_eq!(config.warnings(), Vec::<String>::new(), "{overlay}");
    }
    Ok(())
}

#[test]
fn the_example_config_parses() -> anyhow::Result<()> {
    let path = repo().join("exporter/surge-exporter.example.toml");
    let config = Config::load(&path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    // What users copy verifies what it connects to.
    assert_eq!(config.warnings(), Vec::<String>::new());
    Ok(())
}
