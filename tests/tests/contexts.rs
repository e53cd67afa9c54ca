//! Many clusters: two real Prometheus servers (Debian) as two contexts of one config file.
//! One frame shows both side by side; `--context` picks which one the other views show.

use std::time::Duration;

use surge_servers::{Prometheus, Workdir, free_port};

/// Prometheus with one always-firing alert called `alert`.
fn prometheus_firing(alert: &str) -> anyhow::Result<(Prometheus, tempfile::TempDir)> {
    let dir = tempfile::tempdir()?;
    let rules = dir.path().join("rules.yml");
    std::fs::write(
        &rules,
        format!(
            "groups:\n  - name: g\n    rules:\n      - alert: {alert}\n        expr: vector(1)\n        labels:\n          severity: page\n"
        ),
    )?;
    let prometheus = Prometheus::start_in(
        Workdir::temp("surge-ctx-prom-")?,
        free_port()?,
        &format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\n",
            rules.display()
        ),
    )?;
    Ok((prometheus, dir))
}

fn frame(config: &std::path::Path, extra: &[&str]) -> anyhow::Result<String> {
    let mut args = vec!["--size", "160x20"];
    args.extend_from_slice(extra);
    surge_tests::panel::frame_with_config(config, &args)
}

#[test]
fn two_clusters_side_by_side_in_one_frame() -> anyhow::Result<()> {
    let (eu, _eu_dir) = prometheus_firing("EuCheckoutDown")?;
    let (us, _us_dir) = prometheus_firing("UsLagGrowing")?;
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[contexts.eu-west]\nprometheus = \"{}\"\n[contexts.us-east]\nprometheus = \"{}\"\n\
             [contexts.ap-south]\nprometheus = \"http://127.0.0.1:{}\"\n",
            eu.url(),
            us.url(),
            free_port()?
        ),
    )?;
    // Both rows: each context's one source answering and its one firing page.
    let mut shown = String::new();
    surge_servers::wait_until(
        "both contexts firing",
        Duration::from_secs(60),
        Duration::from_secs(1),
        || {
            shown = frame(&config, &["--view", "contexts"])?;
            let row = |name: &str| {
                shown
                    .lines()
                    .find(|l| l.starts_with('│') && l.contains(name))
                    .map(|l| l.trim_matches('│').split_whitespace().collect::<Vec<_>>())
                    .unwrap_or_default()
            };
            // … NAME SOURCES REPLICAS AT-MAX CPU LAG "0 growing/stalled" FIRING PAGING
            let ok = |r: Vec<&str>| {
                let name = r
                    .iter()
                    .position(|w| w.ends_with("-west") || w.ends_with("-east"));
                name.is_some_and(|i| r.get(i + 1) == Some(&"1/1"))
                    && r.len() >= 2
                    && r[r.len() - 2] == "1"
                    && r[r.len() - 1] == "1"
            };
            // A cluster whose Prometheus is down says so on its own row only.
            let down = row("ap-south");
            Ok(ok(row("eu-west"))
                && ok(row("us-east"))
                && down.get(down.len().saturating_sub(9)) == Some(&"0/1"))
        },
    )
    .map_err(|e| anyhow::anyhow!("{e:#}\n{shown}"))?;
    // Without --context or [ui] context, the first context (by name) is current.
    assert!(shown.contains("ctx ap-south"), "{shown}");
    // --context picks the other cluster for every other view.
    let alerts = frame(&config, &["--context", "us-east", "--view", "alerts"])?;
    assert!(
        alerts.contains("UsLagGrowing")
            && !alerts.contains("EuCheckoutDown")
            && alerts.contains("ctx us-east"),
        "{alerts}"
    );
    Ok(())
}
