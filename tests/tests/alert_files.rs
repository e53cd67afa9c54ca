//! `alerts/` passes Prometheus' and Alertmanager's own checks: `promtool check rules`,
//! `promtool test rules`, `amtool check-config`, and routing tests per severity. Every alert has
//! a severity, a summary, a description and a runbook that exists and has real sections.

use std::process::Command;

use surge_tests::alerting::repo;

fn run(program: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(program)
        .args(args)
        .current_dir(repo().join("alerts"))
        .output()
        .map_err(|e| anyhow::anyhow!("{program} not found ({e}); run scripts/install-deps"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    anyhow::ensure!(out.status.success(), "{program} {args:?} failed:\n{text}");
    Ok(text)
}

#[test]
fn promtool_checks_and_unit_tests_pass() -> anyhow::Result<()> {
    let check = run("promtool", &["check", "rules", "rules.yml"])?;
    assert!(check.contains("SUCCESS"), "{check}");
    let tests = run("promtool", &["test", "rules", "rules.test.yml"])?;
    assert!(tests.contains("SUCCESS"), "{tests}");
    Ok(())
}

#[test]
fn alertmanager_config_checks_and_routes() -> anyhow::Result<()> {
    let check = run("amtool", &["check-config", "alertmanager.yml"])?;
    assert!(check.contains("SUCCESS"), "{check}");
    for (receiver, labels) in [
        (
            "pagerduty",
            vec![
                "severity=page",
                "alertname=KafkaConsumerStalled",
                "cluster=shop",
            ],
        ),
        (
            "pagerduty",
            vec!["severity=page", "alertname=ServiceCPUHighAtMaxReplicas"],
        ),
        (
            "warnings",
            vec!["severity=warning", "alertname=ServiceCPUHigh"],
        ),
        (
            "warnings",
            vec!["severity=warning", "alertname=PostgresReplicaLagHigh"],
        ),
        (
            "warnings",
            vec!["severity=warning", "alertname=SurgeSourceStale"],
        ),
        (
            "deadmans-switch",
            vec!["alertname=Watchdog", "severity=info"],
        ),
        (
            "blackhole",
            vec!["severity=info", "alertname=SomethingInformational"],
        ),
        ("warnings", vec!["alertname=NoSeverity"]),
    ] {
        let verify = format!("--verify.receivers={receiver}");
        let mut args = vec![
            "config",
            "routes",
            "test",
            "--config.file=alertmanager.yml",
            verify.as_str(),
        ];
        args.extend(labels.iter().copied());
        run("amtool", &args)?;
    }
    Ok(())
}

#[test]
fn every_alert_is_labelled_annotated_and_has_a_runbook() -> anyhow::Result<()> {
    let rules: serde_json::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(repo().join("alerts/rules.yml"))?)?;
    let mut alerts = std::collections::BTreeSet::new();
    for group in rules["groups"].as_array().into_iter().flatten() {
        for rule in group["rules"].as_array().into_iter().flatten() {
            let Some(name) = rule["alert"].as_str() else {
                continue;
            };
            alerts.insert(name.to_string());
            let severity = rule["labels"]["severity"].as_str().unwrap_or_default();
            assert!(
                matches!(severity, "page" | "warning" | "info"),
                "{name}: severity {severity:?}"
            );
            for key in ["summary", "description", "runbook_url"] {
                assert!(
                    rule["annotations"][key]
                        .as_str()
                        .is_some_and(|s| !s.is_empty()),
                    "{name}: no {key}"
                );
            }
            let url = rule["annotations"]["runbook_url"]
                .as_str()
                .unwrap_or_default();
            assert!(
                url.ends_with(&format!("alerts/runbooks/{name}.md")),
                "{name}: runbook_url {url}"
            );
        }
    }
    for required in [
        "ServiceCPUHigh",
        "ServiceCPUHighAtMaxReplicas",
        "KafkaConsumerLagGrowing",
        "KafkaConsumerStalled",
        "KafkaDeadLetterReceiving",
        "PostgresReplicaLagHigh",
        "PostgresReplicaNotStreaming",
        "HPAMaxedOut",
        "SurgeSourceDown",
        "SurgeSourceStale",
        "SurgeExporterAbsent",
        "Watchdog",
    ] {
        assert!(alerts.contains(required), "missing alert {required}");
    }
    for name in &alerts {
        let path = repo().join("alerts/runbooks").join(format!("{name}.md"));
        let text = std::fs::read_to_string(&path)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        for section in [
            "## What it means",
            "## Confirm",
            "## What to do",
            "## Escalate",
        ] {
            assert!(text.contains(section), "{}: no {section:?}", path.display());
        }
        assert!(text.lines().count() >= 25, "{}: too thin", path.display());
    }
    Ok(())
}
