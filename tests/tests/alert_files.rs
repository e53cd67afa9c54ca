//! `alerts/` passes Prometheus' and Alertmanager's own checks: `promtool check rules`,
//! `promtool test rules`, `amtool check-config`, and routing tests per severity. Every alert has
//! a severity, a summary, a description and a runbook that exists and has real sections.

use surge_tests::alerting::repo;

fn run(program: &str, args: &[&str]) -> anyhow::Result<String> {
    surge_testkit::promtool::run(program, args, &repo().join("alerts"))
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
            "pagerduty",
            vec!["severity=page", "alertname=PostgresConnectionsHigh"],
        ),
        (
            "warnings",
            vec!["severity=warning", "alertname=PodMemoryNearLimit"],
        ),
        (
            "warnings",
            vec!["severity=warning", "alertname=PostgresIdleInTransaction"],
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
        "PodMemoryNearLimit",
        "ServiceErrorsHigh",
        "PostgresConnectionsHigh",
        "PostgresIdleInTransaction",
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

/// The inhibitions in `alertmanager.yml`, applied by a real Alertmanager to alerts posted to
/// its API: a page silences its own warning for the same thing and nothing else.
#[test]
fn inhibitions_hold_in_a_real_alertmanager() -> anyhow::Result<()> {
    use std::time::{Duration, Instant};
    use surge_servers::{Alertmanager, Workdir, free_port};

    let dir = tempfile::tempdir()?;
    let key_file = dir.path().join("routing-key");
    std::fs::write(&key_file, "0123456789abcdef0123456789abcdef\n")?;
    // Nothing listens there: delivery is not what this test looks at.
    let nowhere = "http://127.0.0.1:9/";
    let config = surge_tests::alerting::test_alertmanager(nowhere, &key_file, |_| nowhere.into())?;
    let alertmanager = Alertmanager::start_in(Workdir::temp("surge-am-")?, free_port()?, &config)?;

    /// (what, labels, expected to be inhibited)
    type Case = (&'static str, &'static [(&'static str, &'static str)], bool);
    let cases: [Case; 9] = [
        (
            "connections page",
            &[
                ("alertname", "PostgresConnectionsHigh"),
                ("severity", "page"),
                ("target", "replica1"),
            ],
            false,
        ),
        (
            "connections warning under its page",
            &[
                ("alertname", "PostgresConnectionsHigh"),
                ("severity", "warning"),
                ("target", "replica1"),
            ],
            true,
        ),
        (
            "connections warning elsewhere",
            &[
                ("alertname", "PostgresConnectionsHigh"),
                ("severity", "warning"),
                ("target", "primary"),
            ],
            false,
        ),
        (
            "lag page",
            &[
                ("alertname", "PostgresReplicaLagHigh"),
                ("severity", "page"),
                ("target", "replica2"),
                ("measure", "seconds"),
            ],
            false,
        ),
        (
            "lag warning under its page",
            &[
                ("alertname", "PostgresReplicaLagHigh"),
                ("severity", "warning"),
                ("target", "replica2"),
                ("measure", "seconds"),
            ],
            true,
        ),
        (
            "connections page beside a lag warning",
            &[
                ("alertname", "PostgresConnectionsHigh"),
                ("severity", "page"),
                ("target", "replica3"),
            ],
            false,
        ),
        (
            "lag warning beside another alert's page",
            &[
                ("alertname", "PostgresReplicaLagHigh"),
                ("severity", "warning"),
                ("target", "replica3"),
                ("measure", "seconds"),
            ],
            false,
        ),
        (
            "cpu at max",
            &[
                ("alertname", "ServiceCPUHighAtMaxReplicas"),
                ("severity", "page"),
                ("namespace", "shop"),
                ("workload", "orders"),
            ],
            false,
        ),
        (
            "cpu high under cpu at max",
            &[
                ("alertname", "ServiceCPUHigh"),
                ("severity", "warning"),
                ("namespace", "shop"),
                ("workload", "orders"),
            ],
            true,
        ),
    ];
    let mut alerts = Vec::new();
    for (_, labels, _) in &cases {
        let mut map = serde_json::Map::new();
        map.insert("job".into(), "surge-exporter".into());
        for (k, v) in labels.iter() {
            map.insert((*k).into(), (*v).into());
        }
        alerts.push(serde_json::json!({ "labels": map }));
    }
    let client = reqwest::blocking::Client::new();
    let url = format!("{}/api/v2/alerts", alertmanager.url());
    client.post(&url).json(&alerts).send()?.error_for_status()?;

    let matches = |alert: &serde_json::Value, labels: &[(&str, &str)]| {
        let got = &alert["labels"];
        labels.iter().all(|(k, v)| got[*k] == *v)
            && got.as_object().map(|o| o.len()) == Some(labels.len() + 1)
    };
    // Inhibition is computed as alerts arrive; give it a few polls.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let listed: Vec<serde_json::Value> = client.get(&url).send()?.json()?;
        let mut wrong = Vec::new();
        for (name, labels, inhibited) in &cases {
            let alert = listed.iter().find(|a| matches(a, labels));
            let is_inhibited = alert.is_some_and(|a| {
                a["status"]["inhibitedBy"]
                    .as_array()
                    .is_some_and(|by| !by.is_empty())
            });
            if alert.is_none() || is_inhibited != *inhibited {
                wrong.push(format!(
                    "{name}: listed {}, inhibited {is_inhibited}",
                    alert.is_some()
                ));
            }
        }
        if wrong.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "{wrong:#?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(())
}

/// Two pages grouped together whose summaries differ have no common summary; the PagerDuty
/// receiver then says what fires instead of sending the empty summary the Events API rejects.
#[test]
fn a_grouped_page_without_a_common_summary_still_reaches_the_pager() -> anyhow::Result<()> {
    use std::time::Duration;
    use surge_servers::{Alertmanager, Workdir, free_port};
    use surge_testkit::pagerduty::PagerDutyStandIn;

    let dir = tempfile::tempdir()?;
    let pager = PagerDutyStandIn::start()?;
    let key_file = dir.path().join("routing-key");
    std::fs::write(&key_file, "0123456789abcdef0123456789abcdef\n")?;
    let config =
        surge_tests::alerting::test_alertmanager(&pager.events_url(), &key_file, |name| {
            pager.webhook_url(name)
        })?;
    let alertmanager = Alertmanager::start_in(Workdir::temp("surge-am-")?, free_port()?, &config)?;
    // Same group labels, different pods (not grouped on) and so different summaries.
    let alerts: Vec<serde_json::Value> = ["orders-a", "orders-b"]
        .iter()
        .map(|pod| {
            serde_json::json!({
                "labels": {"alertname": "ServiceErrorsHigh", "severity": "page", "namespace": "shop", "service": "orders", "pod": pod},
                "annotations": {"summary": format!("{pod} fails")},
            })
        })
        .collect();
    reqwest::blocking::Client::new()
        .post(format!("{}/api/v2/alerts", alertmanager.url()))
        .json(&alerts)
        .send()?
        .error_for_status()?;
    let page = pager.wait_for("the grouped page", Duration::from_secs(30), |r| {
        r.receiver == "pagerduty" && r.body["event_action"] == "trigger"
    })?;
    assert_eq!(
        page.body["payload"]["summary"], "ServiceErrorsHigh: 2 firing",
        "{:#}",
        page.body
    );
    assert!(pager.rejected().is_empty(), "{:#?}", pager.rejected());
    Ok(())
}

/// Where an inhibition's source and target alerts sit in one rule group, every target rule is
/// evaluated before every source rule. Both usually resolve at the same evaluation (one
/// scrape ends both conditions); Prometheus sends each rule's alerts as it evaluates it, so
/// the reverse order gives Alertmanager a moment with the source resolved and the target still
/// firing, and a flush in that moment notifies the alert the inhibition was there to hide
/// (seen in the collectors-hung drill).
#[test]
fn inhibited_alerts_are_evaluated_before_their_inhibitors() -> anyhow::Result<()> {
    let rules: serde_json::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(repo().join("alerts/rules.yml"))?)?;
    let config: serde_json::Value = serde_yaml_ng::from_str(&std::fs::read_to_string(
        repo().join("alerts/alertmanager.yml"),
    )?)?;
    // An Alertmanager matcher (`name = "v"`, `!=`, `=~`, `!~`; regexes anchored) on a rule.
    let matches = |matcher: &str, rule: &serde_json::Value| -> anyhow::Result<bool> {
        let re = regex::Regex::new(r#"^\s*(\w+)\s*(=~|!~|!=|=)\s*"(.*)"\s*$"#)?;
        let caps = re
            .captures(matcher)
            .ok_or_else(|| anyhow::anyhow!("matcher {matcher:?} not understood"))?;
        let label = if &caps[1] == "alertname" {
            rule["alert"].as_str()
        } else {
            rule["labels"][&caps[1]].as_str()
        }
        .unwrap_or_default();
        let value = &caps[3];
        Ok(match &caps[2] {
            "=" => label == value,
            "!=" => label != value,
            op => regex::Regex::new(&format!("^(?:{value})$"))?.is_match(label) == (op == "=~"),
        })
    };
    let all = |key: &str, inhibit: &serde_json::Value, rule: &serde_json::Value| {
        inhibit[key]
            .as_array()
            .into_iter()
            .flatten()
            .try_fold(true, |ok, m| {
                Ok::<_, anyhow::Error>(ok && matches(m.as_str().unwrap_or_default(), rule)?)
            })
    };
    let mut pairs_in_one_group = 0;
    for inhibit in config["inhibit_rules"].as_array().into_iter().flatten() {
        for group in rules["groups"].as_array().into_iter().flatten() {
            let alerts: Vec<&serde_json::Value> = group["rules"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|r| r["alert"].is_string())
                .collect();
            for (source_at, source) in alerts.iter().enumerate() {
                if !all("source_matchers", inhibit, source)? {
                    continue;
                }
                for (target_at, target) in alerts.iter().enumerate() {
                    // `equal` labels both rules set themselves must agree (a seconds page
                    // does not inhibit a bytes warning).
                    let same = |label: &serde_json::Value| {
                        let label = label.as_str().unwrap_or_default();
                        let of = |rule: &serde_json::Value| match label {
                            "alertname" => rule["alert"].as_str().map(str::to_string),
                            _ => rule["labels"][label].as_str().map(str::to_string),
                        };
                        match (of(source), of(target)) {
                            (Some(a), Some(b)) => a == b,
                            _ => true,
                        }
                    };
                    if target_at == source_at
                        || !all("target_matchers", inhibit, target)?
                        || !inhibit["equal"].as_array().into_iter().flatten().all(same)
                    {
                        continue;
                    }
                    pairs_in_one_group += 1;
                    assert!(
                        target_at < source_at,
                        "group {}: {} ({}) inhibits {} ({}) but is evaluated first",
                        group["name"],
                        source["alert"],
                        source["labels"]["severity"],
                        target["alert"],
                        target["labels"]["severity"],
                    );
                }
            }
        }
    }
    // Levels of one alert, CPU at max over CPU, stalled over growing, down over stale.
    assert!(
        pairs_in_one_group >= 6,
        "only {pairs_in_one_group} inhibition pairs share a group"
    );
    Ok(())
}
