//! What only a real cluster would show, proven offline on the rendered overlays: each test
//! reads the objects as the operator or controller that acts on them would (Strimzi's pod
//! security defaults, the HPA controller and kubectl's apply, KEDA's Prometheus scaler,
//! prometheus-operator's Alertmanager config generation), and each failed on the manifests
//! before issue 28.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Context;
use serde_json::{Value, json};
use surge_stack::hpa::{HpaState, Measured, load_all, proposals};
use surge_testkit::promtool::run;

mod support;
use support::*;

/// Strimzi sets `fsGroup: 0` on Kafka pods only when the user sets no pod securityContext
/// (its BaselinePodSecurityProvider returns the user's context as it is). Kafka runs as uid
/// 1001, gid 0, and a fresh block volume is root:root 0755 until the kubelet gives it to the
/// pod's fsGroup: without it, brokers cannot write their log directories.
#[test]
fn kafka_pods_keep_the_fs_group_their_volumes_need() -> anyhow::Result<()> {
    for (overlay, objects) in rendered()? {
        let mut templates = Vec::new();
        for kafka in of_kind(&objects, "Kafka") {
            templates.push((
                format!("Kafka {}", name(kafka)),
                &kafka["spec"]["kafka"]["template"]["pod"],
            ));
        }
        for pool in of_kind(&objects, "KafkaNodePool") {
            templates.push((
                format!("KafkaNodePool {}", name(pool)),
                &pool["spec"]["template"]["pod"],
            ));
        }
        assert!(
            templates.len() >= 2,
            "{overlay}: the Kafka and its node pool"
        );
        for (what, pod) in templates {
            let context = &pod["securityContext"];
            // No context at all would keep Strimzi's default; ours sets one everywhere.
            assert!(
                context.is_object(),
                "{overlay}: {what} has no securityContext"
            );
            assert_eq!(
                context["fsGroup"],
                json!(0),
                "{overlay}: {what}: Kafka (gid 0) cannot write a fresh block volume"
            );
        }
    }
    Ok(())
}

/// A Deployment an HPA or a ScaledObject scales has no `spec.replicas`: with one, a
/// client-side `kubectl apply` during a sale sets 10 running replicas back to it, and a
/// server-side apply conflicts with the autoscaler's field manager.
#[test]
fn scaled_deployments_leave_the_replica_count_to_their_autoscaler() -> anyhow::Result<()> {
    for (overlay, objects) in rendered()? {
        let mut scaled = BTreeSet::new();
        for hpa in of_kind(&objects, "HorizontalPodAutoscaler") {
            assert_eq!(hpa["spec"]["scaleTargetRef"]["kind"], json!("Deployment"));
            scaled.insert(
                hpa["spec"]["scaleTargetRef"]["name"]
                    .as_str()
                    .context("name")?,
            );
        }
        for scaled_object in of_kind(&objects, "ScaledObject") {
            scaled.insert(
                scaled_object["spec"]["scaleTargetRef"]["name"]
                    .as_str()
                    .context("name")?,
            );
        }
        assert_eq!(
            scaled,
            BTreeSet::from(SHOP_SERVICES),
            "{overlay}: every shop service is autoscaled"
        );
        for deployment in scaled {
            let spec = &find(&objects, "Deployment", deployment)?["spec"];
            assert!(
                spec.get("replicas").is_none(),
                "{overlay}: Deployment {deployment} sets replicas {} under its autoscaler",
                spec["replicas"]
            );
        }
    }
    Ok(())
}

/// What KEDA's Prometheus scaler hands the HPA when the query returns nothing: 0 while
/// `ignoreNullValues` is unset or true (its default), else an error, which the HPA treats as
/// the metric being unavailable — as it does when prometheus-adapter has no series.
fn keda_value_without_data(trigger: &Value) -> Option<f64> {
    let ignore = trigger["metadata"]["ignoreNullValues"]
        .as_str()
        .unwrap_or("true");
    ignore.eq_ignore_ascii_case("true").then_some(0.0)
}

/// The exporter down or the lag series gone: under prometheus-adapter the HPA sees no
/// External metric and will not scale in; under KEDA it must be the same, not a lag of 0
/// that scales the consumers in while nobody can see their lag. Checked over CPU from idle
/// to hot, at several replica counts, through the controller's own arithmetic.
#[test]
fn missing_lag_holds_the_consumers_under_keda_as_under_the_adapter() -> anyhow::Result<()> {
    let all = rendered()?;
    let keda = &all
        .iter()
        .find(|(o, _)| *o == "keda")
        .context("keda overlay")?
        .1;
    let specs = load_all(&surge_stack::hpa::HPA_MANIFESTS.map(|p| repo().join(p)))?;
    let mut cases = 0;
    for service in ["payment", "shipping"] {
        let spec = specs
            .iter()
            .find(|s| s.workload == service)
            .context("spec")?;
        let scaled = &find(keda, "ScaledObject", service)?["spec"];
        let trigger = scaled["triggers"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|t| t["type"] == "prometheus")
            .with_context(|| format!("{service}: no prometheus trigger"))?;
        for current in [spec.min, 5, spec.max] {
            for utilization in [0.05, 0.3, spec.target, 1.5] {
                let adapter = Measured {
                    cpu: Some((current, utilization)),
                    ready: current,
                    external: vec![None],
                };
                let keda = Measured {
                    external: vec![keda_value_without_data(trigger)],
                    ..adapter.clone()
                };
                let decide = |measured: &Measured| {
                    let (_, recommendation) = proposals(spec, current, measured);
                    HpaState::default()
                        .decide(spec, 0.0, current, recommendation.unwrap_or(current))
                        .desired
                };
                let (by_adapter, by_keda) = (decide(&adapter), decide(&keda));
                assert!(
                    by_adapter >= current,
                    "{service}: the adapter path scales in without its metric"
                );
                assert_eq!(
                    by_keda, by_adapter,
                    "{service} at {current} replicas, CPU {utilization}: KEDA without lag data"
                );
                cases += 1;
            }
        }
    }
    assert_eq!(cases, 24);
    Ok(())
}

/// The objects other installs of an external or resource metrics server create: kube-prometheus'
/// adapter (serves metrics.k8s.io: `kubectl top`, CPU HPAs), the prometheus-adapter Helm chart
/// and KEDA, by name and pod labels (read from their sources; provenance in the file).
fn other_installs() -> anyhow::Result<Vec<Value>> {
    let text =
        std::fs::read_to_string(stack_dir().join("tests/fixtures/external-metrics-installs.json"))?;
    let fixture: Value = serde_json::from_str(&text)?;
    Ok(fixture["installs"].as_array().cloned().unwrap_or_default())
}

/// What the adapter objects are labelled with (so `kubectl apply -l` can leave them out).
const ADAPTER_COMPONENT: &str = "external-metrics-adapter";

fn is_adapter(object: &Value) -> bool {
    object["metadata"]["labels"]["app.kubernetes.io/component"] == ADAPTER_COMPONENT
}

/// surge-exporter's config, as the overlay's ConfigMap carries it.
fn exporter_config(objects: &[Value]) -> anyhow::Result<toml::Value> {
    let text = find(objects, "ConfigMap", "surge-exporter")?["data"]["surge-exporter.toml"]
        .as_str()
        .context("no surge-exporter.toml in the exporter's ConfigMap")?;
    Ok(toml::from_str(text)?)
}

/// Whether a Service's (or a monitor's `matchLabels`) selector picks a pod with `labels`: an
/// empty one picks none.
fn selects(selector: &Value, labels: &Value) -> bool {
    selector.as_object().is_some_and(|s| !s.is_empty())
        && label_selector_matches(&json!({ "matchLabels": selector }), labels)
}

/// Our prometheus-adapter shares no object with kube-prometheus', the Helm chart's or KEDA's:
/// applying it over theirs neither fails on an immutable selector nor replaces the adapter
/// that serves `metrics.k8s.io`, and no Service of one selects the other's pods. The one name
/// it cannot choose is the APIService of its API group: `kubectl apply -l` with the selector
/// the guide gives leaves out exactly the adapter, APIService included, for clusters where
/// KEDA or another adapter already serves external metrics.
#[test]
fn the_lag_adapter_has_names_of_its_own() -> anyhow::Result<()> {
    let installs = other_installs()?;
    assert_eq!(installs.len(), 3);
    let key = |o: &Value| {
        (
            o["kind"].as_str().unwrap_or_default().to_string(),
            o["metadata"]["namespace"]
                .as_str()
                .or_else(|| o["namespace"].as_str())
                .unwrap_or_default()
                .to_string(),
            o["metadata"]["name"]
                .as_str()
                .or_else(|| o["name"].as_str())
                .unwrap_or_default()
                .to_string(),
        )
    };
    let guide = std::fs::read_to_string(repo().join("docs/src/deploy.md"))?;
    let exclude = format!("-l 'app.kubernetes.io/component!={ADAPTER_COMPONENT}'");
    assert!(
        guide.contains(&exclude),
        "docs/src/deploy.md names {exclude}"
    );
    for (overlay, objects) in rendered()? {
        let ours: Vec<&Value> = objects.iter().filter(|o| is_adapter(o)).collect();
        if overlay == "keda" {
            assert!(ours.is_empty(), "keda: KEDA serves external metrics");
            continue;
        }
        assert!(
            ours.len() >= 14,
            "{overlay}: {} adapter objects",
            ours.len()
        );
        let pod_labels = &find(&objects, "Deployment", "surge-metrics-adapter")?["spec"]["template"]
            ["metadata"]["labels"];
        let our_selector = &find(&objects, "Service", "surge-metrics-adapter")?["spec"]["selector"];
        for install in &installs {
            let theirs: BTreeSet<_> = install["objects"]
                .as_array()
                .into_iter()
                .flatten()
                .map(key)
                .collect();
            assert!(theirs.len() >= 14, "{}", install["name"]);
            for object in &ours {
                let k = key(object);
                if k.0 == "APIService" {
                    continue;
                }
                assert!(
                    !theirs.contains(&k),
                    "{overlay}: {k:?} is also {}'s",
                    install["name"]
                );
            }
            assert!(
                !selects(our_selector, &install["pod_labels"]),
                "{overlay}: our Service selects {}'s pods",
                install["name"]
            );
            assert!(
                !selects(&install["service_selector"], pod_labels),
                "{overlay}: {}'s Service selects our pods",
                install["name"]
            );
        }
        // `kubectl apply -l 'component!=…'` keeps objects without the label, and those with
        // another value.
        let applied: Vec<&Value> = objects.iter().filter(|o| !is_adapter(o)).collect();
        assert!(
            applied.iter().all(|o| kind(o) != "APIService"),
            "{overlay}: an APIService is still applied"
        );
        for hpa in ["payment", "shipping"] {
            assert!(
                applied
                    .iter()
                    .any(|o| kind(o) == "HorizontalPodAutoscaler" && name(o) == hpa)
            );
        }
    }
    Ok(())
}

/// The API server verifies the adapter: no `insecureSkipTLSVerify`, the CA bundle injected by
/// cert-manager from the Certificate the adapter serves with, for the Service's DNS name.
#[test]
fn the_api_server_verifies_the_lag_adapter() -> anyhow::Result<()> {
    let mut checked = 0;
    for (overlay, objects) in rendered()? {
        for api in of_kind(&objects, "APIService") {
            assert!(
                api["spec"].get("insecureSkipTLSVerify").is_none(),
                "{overlay}: {} skips TLS verification",
                name(api)
            );
            let from = api["metadata"]["annotations"]["cert-manager.io/inject-ca-from"]
                .as_str()
                .with_context(|| format!("{overlay}: {} has no CA injected", name(api)))?;
            let (namespace, certificate) = from.split_once('/').context("namespace/name")?;
            let cert = find(&objects, "Certificate", certificate)?;
            assert_eq!(cert["metadata"]["namespace"], json!(namespace));
            let service = &api["spec"]["service"];
            let dns = format!(
                "{}.{}.svc",
                service["name"].as_str().unwrap_or_default(),
                service["namespace"].as_str().unwrap_or_default()
            );
            assert!(
                cert["spec"]["dnsNames"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|d| *d == json!(dns)),
                "{overlay}: {certificate} does not name {dns}"
            );
            // The adapter serves with that certificate's secret.
            let adapter = find(
                &objects,
                "Deployment",
                service["name"].as_str().unwrap_or_default(),
            )?;
            let pod = &adapter["spec"]["template"]["spec"];
            let volume = pod["volumes"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|v| v["secret"]["secretName"] == cert["spec"]["secretName"])
                .with_context(|| format!("{overlay}: the adapter does not mount {certificate}"))?;
            let container = &pod["containers"][0];
            let mount = container["volumeMounts"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|m| m["name"] == volume["name"])
                .context("mounted")?;
            let dir = mount["mountPath"].as_str().unwrap_or_default();
            let args: Vec<&str> = container["args"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            assert!(
                args.contains(&format!("--tls-cert-file={dir}/tls.crt").as_str()),
                "{overlay}: {args:?}"
            );
            assert!(args.contains(&format!("--tls-private-key-file={dir}/tls.key").as_str()));
            checked += 1;
        }
    }
    assert_eq!(checked, 2, "local and production serve external metrics");
    Ok(())
}

/// One CRD matcher (`{name, matchType, value}`) as Alertmanager's string form.
fn matcher_string(m: &Value) -> String {
    let op = m["matchType"]
        .as_str()
        .unwrap_or(if m["regex"] == json!(true) { "=~" } else { "=" });
    let value = m["value"]
        .as_str()
        .unwrap_or_default()
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n");
    format!("{}{op}\"{value}\"", m["name"].as_str().unwrap_or_default())
}

/// An AlertmanagerConfig route as prometheus-operator writes it into alertmanager.yaml:
/// receivers renamed `<namespace>/<config>/<receiver>`; the nested routes keep their own
/// matchers and `continue`.
fn operator_route(route: &Value, prefix: &str) -> Value {
    let mut out = serde_json::Map::new();
    if let Some(receiver) = route["receiver"].as_str() {
        out.insert("receiver".into(), json!(format!("{prefix}{receiver}")));
    }
    for (from, to) in [
        ("groupBy", "group_by"),
        ("groupWait", "group_wait"),
        ("groupInterval", "group_interval"),
        ("repeatInterval", "repeat_interval"),
        ("continue", "continue"),
    ] {
        if let Some(v) = route.get(from) {
            out.insert(to.into(), v.clone());
        }
    }
    let matchers: Vec<String> = route["matchers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(matcher_string)
        .collect();
    if !matchers.is_empty() {
        out.insert("matchers".into(), json!(matchers));
    }
    let routes: Vec<Value> = route["routes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| operator_route(r, prefix))
        .collect();
    if !routes.is_empty() {
        out.insert("routes".into(), json!(routes));
    }
    Value::Object(out)
}

/// The alertmanager.yaml prometheus-operator generates for `amc` under its default
/// `alertmanagerConfigMatcherStrategy: OnNamespace` (pkg/alertmanager/amcfg.go): the
/// config's route becomes a child of the root with `namespace="<its namespace>"` appended to
/// its matchers and `continue: true`; every inhibition gets that matcher on both sides;
/// the root keeps the operator's default `null` receiver (a cluster's own default receiver
/// stands in the same place).
fn operator_generated(amc: &Value) -> Value {
    let namespace = amc["metadata"]["namespace"].as_str().unwrap_or_default();
    let prefix = format!("{namespace}/{}/", name(amc));
    let enforced = format!("namespace=\"{namespace}\"");
    let mut top = operator_route(&amc["spec"]["route"], &prefix);
    let mut matchers = top["matchers"].as_array().cloned().unwrap_or_default();
    matchers.push(json!(enforced));
    top["matchers"] = json!(matchers);
    top["continue"] = json!(true);
    let inhibit: Vec<Value> = amc["spec"]["inhibitRules"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|rule| {
            let side = |key: &str| {
                let mut m: Vec<String> = rule[key]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(matcher_string)
                    .collect();
                m.push(enforced.clone());
                m
            };
            json!({
                "source_matchers": side("sourceMatch"),
                "target_matchers": side("targetMatch"),
                "equal": rule["equal"],
            })
        })
        .collect();
    let mut receivers = vec![json!({"name": "null"})];
    for receiver in amc["spec"]["receivers"].as_array().into_iter().flatten() {
        // The integrations do not change where an alert goes.
        receivers.push(
            json!({"name": format!("{prefix}{}", receiver["name"].as_str().unwrap_or_default())}),
        );
    }
    json!({
        "route": {"receiver": "null", "routes": [top]},
        "inhibit_rules": inhibit,
        "receivers": receivers,
    })
}

/// Every alert the rules' unit tests fire, with the labels Prometheus gives it from the
/// PrometheusRule (proven by `promtool test rules` on the PrometheusRule's own groups with the
/// expected labels completed), routed through the config prometheus-operator generates from
/// the AlertmanagerConfig, reaches the receiver the repository's alertmanager.yml routes it
/// to, and carries the namespace every inhibition of that config requires on both sides.
/// Before issue 28, Watchdog, SurgeExporterAbsent, PostgresConnectionsHigh and
/// KafkaDeadLetterReceiving fell to the cluster's default receiver.
#[test]
fn every_alert_reaches_its_receiver_through_the_operators_config() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let alerts_dir = repo().join("alerts");
    let (_, objects) = rendered()?.into_iter().next().context("an overlay")?;
    let amc = find(&objects, "AlertmanagerConfig", "surge")?;
    let rule = find(&objects, "PrometheusRule", "surge")?;
    let namespace = amc["metadata"]["namespace"].as_str().context("namespace")?;
    assert_eq!(rule["metadata"]["namespace"], json!(namespace));
    assert_eq!(
        namespace,
        surge_stack::k8s::NAMESPACE,
        "the alerts' namespace label"
    );

    // The PrometheusRule's groups, and the unit tests with each alert's namespace completed:
    // its series' where it has one, else the rule's.
    std::fs::write(
        dir.path().join("rules.yml"),
        serde_json::to_string(&json!({"groups": rule["spec"]["groups"]}))?,
    )?;
    let mut tests: Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(alerts_dir.join("rules.test.yml"))?)?;
    let mut alerts: Vec<Value> = Vec::new();
    for test in tests["tests"].as_array_mut().into_iter().flatten() {
        for case in test["alert_rule_test"].as_array_mut().into_iter().flatten() {
            let alertname = case["alertname"].clone();
            for alert in case["exp_alerts"].as_array_mut().into_iter().flatten() {
                let labels = &mut alert["exp_labels"];
                if labels.get("namespace").is_none() {
                    labels["namespace"] = json!(namespace);
                }
                let mut routed = labels.clone();
                routed["alertname"] = alertname.clone();
                alerts.push(routed);
            }
        }
    }
    std::fs::write(
        dir.path().join("rules.test.yml"),
        serde_json::to_string(&tests)?,
    )?;
    let report = run("promtool", &["test", "rules", "rules.test.yml"], dir.path())?;
    assert!(report.contains("SUCCESS"), "{report}");

    let config = operator_generated(amc);
    std::fs::write(
        dir.path().join("alertmanager.yml"),
        serde_json::to_string(&config)?,
    )?;
    let check = run("amtool", &["check-config", "alertmanager.yml"], dir.path())?;
    assert!(check.contains("SUCCESS"), "{check}");

    let receivers = |config_dir: &std::path::Path, labels: &[String]| -> anyhow::Result<String> {
        let mut args = vec!["config", "routes", "test", "--config.file=alertmanager.yml"];
        args.extend(labels.iter().map(String::as_str));
        // The receivers, comma-separated, on the first line (a warning may follow).
        let out = run("amtool", &args, config_dir)?;
        Ok(out.lines().next().unwrap_or_default().trim().to_string())
    };
    let mut names = BTreeSet::new();
    let prefix = format!("{namespace}/{}/", name(amc));
    for alert in &alerts {
        let labels: Vec<String> = alert
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
            .collect();
        let alertname = alert["alertname"].as_str().unwrap_or_default().to_string();
        assert_eq!(
            alert["namespace"],
            json!(namespace),
            "{alertname}: every inhibition of the config needs namespace={namespace}"
        );
        let intended = receivers(&alerts_dir, &labels)?;
        let want = intended
            .split(',')
            .map(|r| format!("{prefix}{r}"))
            .collect::<Vec<_>>()
            .join(",");
        let got = receivers(dir.path(), &labels)?;
        assert_eq!(got, want, "{alertname} {labels:?}");
        names.insert(alertname);
    }
    // Every alert of rules.yml fires in some unit test, so every one was routed here.
    let all: BTreeSet<String> = rule["spec"]["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["rules"].as_array().into_iter().flatten())
        .filter_map(|r| r["alert"].as_str().map(str::to_string))
        .collect();
    assert_eq!(names, all);
    Ok(())
}

/// Consumers scale on the scalable lag (stalled partitions left out, each partition capped at
/// one replica's share), with the cap the exporter applies equal to the per-replica target
/// everywhere: the HPAs and the adapter's rule, the ScaledObjects, the exporter's config in
/// each overlay, and the local stack (which derives it from the same HPAs).
#[test]
fn consumers_scale_on_the_scalable_lag_capped_at_their_target() -> anyhow::Result<()> {
    let scalable = surge_metrics::catalogue::kafka::SCALABLE_LAG.name;
    let specs = load_all(&surge_stack::hpa::HPA_MANIFESTS.map(|p| repo().join(p)))?;
    let local_cap = surge_stack::hpa::scalable_lag_cap(&specs).context("the local stack's cap")?;
    let mut checked = 0;
    for (overlay, objects) in rendered()? {
        let config = exporter_config(&objects)?;
        let cap = config["kafka"]["scalable_lag_partition_cap"]
            .as_integer()
            .with_context(|| {
                format!("{overlay}: the exporter has no scalable_lag_partition_cap")
            })?;
        assert_eq!(cap as u64, local_cap, "{overlay}: the local stack's cap");
        for service in ["payment", "shipping"] {
            if overlay == "keda" {
                let scaled = &find(&objects, "ScaledObject", service)?["spec"];
                let trigger = scaled["triggers"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|t| t["type"] == "prometheus")
                    .context("prometheus trigger")?;
                let query = trigger["metadata"]["query"].as_str().unwrap_or_default();
                assert!(
                    query.contains(&format!("{scalable}{{")),
                    "{service}: {query}"
                );
                assert_eq!(trigger["metadata"]["threshold"], json!(cap.to_string()));
            } else {
                let hpa = &find(&objects, "HorizontalPodAutoscaler", service)?["spec"];
                let external = hpa["metrics"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|m| m["type"] == "External")
                    .context("External metric")?;
                assert_eq!(external["external"]["metric"]["name"], json!(scalable));
                assert_eq!(
                    external["external"]["target"],
                    json!({"type": "AverageValue", "averageValue": cap.to_string()}),
                    "{overlay} {service}"
                );
                let rules =
                    find(&objects, "ConfigMap", "surge-metrics-adapter")?["data"]["config.yaml"]
                        .as_str()
                        .unwrap_or_default();
                assert!(rules.contains(&format!("seriesQuery: '{scalable}{{")));
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 6);
    Ok(())
}

/// The labels CloudNativePG (1.30, `pkg/specs/pods.go` and `pkg/specs/pgbouncer/deployments.go`)
/// puts on an instance's pod and on a pooler's pod of cluster `shop-db`.
fn cnpg_pod_labels(kind: &str) -> Value {
    match kind {
        "instance" => json!({
            "cnpg.io/cluster": "shop-db",
            "cnpg.io/instanceName": "shop-db-1",
            "cnpg.io/podRole": "instance",
            "cnpg.io/instanceRole": "replica",
            "app.kubernetes.io/name": "postgresql",
        }),
        _ => json!({
            "cnpg.io/cluster": "shop-db",
            "cnpg.io/poolerName": "shop-db-pooler-ro",
            "cnpg.io/podRole": "pooler",
            "app.kubernetes.io/component": "pooler",
        }),
    }
}

/// The PodMonitor for CloudNativePG's exporter scrapes the PostgreSQL instances only: the
/// poolers' pods carry the cluster's label and a `metrics` port as well, and would otherwise
/// land in the same job as PgBouncer series under the database's name.
#[test]
fn the_database_pod_monitor_scrapes_instances_not_poolers() -> anyhow::Result<()> {
    for (overlay, objects) in rendered()? {
        let monitor = find(&objects, "PodMonitor", "shop-db")?;
        let selector = &monitor["spec"]["selector"]["matchLabels"];
        assert!(
            selects(selector, &cnpg_pod_labels("instance")),
            "{overlay}: instances"
        );
        assert!(
            !selects(selector, &cnpg_pod_labels("pooler")),
            "{overlay}: the PodMonitor also scrapes the poolers"
        );
    }
    Ok(())
}

/// surge-exporter watches every PostgreSQL instance of the CloudNativePG cluster on its own
/// (discovered through the API by the instances' labels), never the standbys through the
/// `-ro` Service, where successive readings come from different standbys and a lagging one
/// hides behind a healthy one; it may list pods (its Role), reaches the instances by pod IP
/// and so verifies their CA (the certificates name the Services, not pod IPs).
#[test]
fn the_exporter_watches_each_database_instance_not_a_service() -> anyhow::Result<()> {
    for (overlay, objects) in rendered()? {
        let config = exporter_config(&objects)?;
        let postgres = &config["postgres"];
        for target in postgres
            .get("targets")
            .and_then(toml::Value::as_array)
            .into_iter()
            .flatten()
        {
            let dsn = target["dsn"].as_str().unwrap_or_default();
            assert!(
                !dsn.contains("-ro:") && !dsn.contains("-ro."),
                "{overlay}: a target reads the standbys through a load-balancing Service: {dsn}"
            );
        }
        let discovered = postgres
            .get("cloudnative_pg")
            .and_then(toml::Value::as_array)
            .with_context(|| format!("{overlay}: no [[postgres.cloudnative_pg]]"))?;
        let clusters: Vec<&Value> = of_kind(&objects, "Cluster").collect();
        assert_eq!(discovered.len(), clusters.len(), "{overlay}");
        for cluster in clusters {
            let entry = discovered
                .iter()
                .find(|d| d["cluster"].as_str() == Some(name(cluster)))
                .with_context(|| format!("{overlay}: {} is not discovered", name(cluster)))?;
            assert_eq!(
                entry["namespace"].as_str(),
                cluster["metadata"]["namespace"].as_str()
            );
            let dsn = entry["dsn"].as_str().unwrap_or_default();
            assert!(dsn.contains("sslmode=verify-ca"), "{overlay}: {dsn}");
        }
        let role = find(&objects, "Role", "surge-exporter")?;
        assert!(
            role["rules"].as_array().into_iter().flatten().any(|r| {
                r["resources"] == json!(["pods"])
                    && r["verbs"]
                        .as_array()
                        .is_some_and(|v| v.contains(&json!("list")))
            }),
            "{overlay}: the exporter may not list pods"
        );
    }
    Ok(())
}

/// Secrets the shop reads (the JWT key, the database password) reach it as mounted files,
/// never as environment variables (which end up in `kubectl describe`, crash reports and
/// every child process): no container of any pod declared takes a secret through `env` or
/// `envFrom`, and each `*_FILE` variable names a file inside a read-only mount of a secret
/// volume that carries exactly that key.
#[test]
fn shop_secrets_are_mounted_files_not_environment() -> anyhow::Result<()> {
    let mut files = 0;
    for (overlay, objects) in rendered()? {
        for object in &objects {
            let pod = match kind(object) {
                "Deployment" | "Job" => &object["spec"]["template"]["spec"],
                _ => continue,
            };
            let volumes = pod["volumes"].as_array().cloned().unwrap_or_default();
            for container in pod["containers"].as_array().into_iter().flatten() {
                let what = format!("{overlay}: {} {}", kind(object), name(object));
                for var in container["env"].as_array().into_iter().flatten() {
                    assert!(
                        var["valueFrom"].get("secretKeyRef").is_none(),
                        "{what}: {} from a secret in the environment",
                        var["name"]
                    );
                    let var_name = var["name"].as_str().unwrap_or_default();
                    if !var_name.starts_with("SHOP_") || !var_name.ends_with("_FILE") {
                        continue;
                    }
                    let path = var["value"].as_str().unwrap_or_default();
                    let mount = container["volumeMounts"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .find(|m| {
                            m["mountPath"]
                                .as_str()
                                .is_some_and(|dir| path.starts_with(&format!("{dir}/")))
                        })
                        .with_context(|| format!("{what}: {var_name}={path} is in no mount"))?;
                    assert_eq!(mount["readOnly"], json!(true), "{what}: {var_name}");
                    let volume = volumes
                        .iter()
                        .find(|v| v["name"] == mount["name"])
                        .context("the mount's volume")?;
                    let file = path.rsplit('/').next().unwrap_or_default();
                    let keys: Vec<&str> = volume["secret"]["items"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|i| i["path"].as_str())
                        .collect();
                    assert!(
                        volume["secret"]["secretName"].is_string() && keys.contains(&file),
                        "{what}: {var_name} names {file}, not a key of a mounted secret"
                    );
                    files += 1;
                }
                for from in container["envFrom"].as_array().into_iter().flatten() {
                    assert!(
                        from.get("secretRef").is_none(),
                        "{what}: a whole secret in the environment"
                    );
                }
            }
        }
    }
    // Per overlay: 5 services × (JWT key, database password), the 3 Kafka clients × (their
    // password, the cluster's CA), the setup Job's password.
    assert_eq!(files, 3 * 17);
    Ok(())
}

/// One end of a connection, as NetworkPolicies see it: a pod (namespace and labels), or
/// something outside the cluster's pods (the API server, the internet).
#[derive(Clone)]
struct Endpoint {
    what: String,
    namespace: Option<String>,
    labels: Value,
}

impl Endpoint {
    fn pod(what: &str, namespace: &str, labels: Value) -> Endpoint {
        Endpoint {
            what: what.into(),
            namespace: Some(namespace.into()),
            labels,
        }
    }

    fn outside(what: &str) -> Endpoint {
        Endpoint {
            what: what.into(),
            namespace: None,
            labels: json!({}),
        }
    }
}

/// A label selector (`matchLabels` and `matchExpressions` with In, NotIn, Exists,
/// DoesNotExist); the empty selector selects everything.
fn label_selector_matches(selector: &Value, labels: &Value) -> bool {
    let by_labels = selector["matchLabels"]
        .as_object()
        .is_none_or(|m| m.iter().all(|(k, v)| &labels[k] == v));
    let by_expressions = selector["matchExpressions"]
        .as_array()
        .into_iter()
        .flatten()
        .all(|e| {
            let key = e["key"].as_str().unwrap_or_default();
            let values: Vec<&Value> = e["values"].as_array().into_iter().flatten().collect();
            let value = labels.get(key);
            match e["operator"].as_str().unwrap_or_default() {
                "In" => value.is_some_and(|v| values.contains(&v)),
                "NotIn" => value.is_none_or(|v| !values.contains(&v)),
                "Exists" => value.is_some(),
                "DoesNotExist" => value.is_none(),
                _ => false,
            }
        });
    by_labels && by_expressions
}

/// Whether a `from`/`to` peer of a policy in `policy_namespace` is `end`.
fn peer_matches(peer: &Value, policy_namespace: &str, end: &Endpoint) -> bool {
    let Some(namespace) = &end.namespace else {
        // Only an ipBlock could name something outside the pods; none is used.
        return false;
    };
    let namespace_ok = match peer.get("namespaceSelector") {
        Some(selector) => {
            label_selector_matches(selector, &json!({"kubernetes.io/metadata.name": namespace}))
        }
        None => namespace == policy_namespace,
    };
    let pod_ok = peer
        .get("podSelector")
        .is_none_or(|selector| label_selector_matches(selector, &end.labels));
    namespace_ok && pod_ok
}

/// Whether a rule's `ports` admit TCP `port` (its number, or the name the pod gives it).
fn ports_match(ports: Option<&Value>, port: (u16, Option<&str>)) -> bool {
    let Some(list) = ports.and_then(Value::as_array).filter(|l| !l.is_empty()) else {
        return true;
    };
    list.iter().any(|p| {
        let protocol_ok = p["protocol"].as_str().unwrap_or("TCP") == "TCP";
        let port_ok = match &p["port"] {
            Value::Number(n) => n.as_u64() == Some(u64::from(port.0)),
            Value::String(name) => Some(name.as_str()) == port.1,
            Value::Null => true,
            _ => false,
        };
        protocol_ok && port_ok
    })
}

/// Whether the policies let `from` open a TCP connection to `to` on `port`: the sender's
/// egress and the receiver's ingress must both allow it (a side no policy selects for that
/// direction is open).
fn allowed(policies: &[Value], from: &Endpoint, to: &Endpoint, port: (u16, Option<&str>)) -> bool {
    let side =
        |end: &Endpoint, direction: &str, rules_key: &str, peers_key: &str, other: &Endpoint| {
            let Some(namespace) = &end.namespace else {
                return true;
            };
            let selecting: Vec<&Value> = policies
                .iter()
                .filter(|p| p["metadata"]["namespace"].as_str() == Some(namespace))
                .filter(|p| label_selector_matches(&p["spec"]["podSelector"], &end.labels))
                .filter(|p| {
                    p["spec"]["policyTypes"]
                        .as_array()
                        .is_some_and(|t| t.contains(&json!(direction)))
                })
                .collect();
            selecting.is_empty()
                || selecting.iter().any(|p| {
                    p["spec"][rules_key]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|rule| {
                            let peers_ok = match rule[peers_key].as_array() {
                                None => true,
                                Some(peers) if peers.is_empty() => true,
                                Some(peers) => peers
                                    .iter()
                                    .any(|peer| peer_matches(peer, namespace, other)),
                            };
                            peers_ok && ports_match(rule.get("ports"), port)
                        })
                })
        };
    side(from, "Egress", "egress", "to", to) && side(to, "Ingress", "ingress", "from", from)
}

/// The policy Strimzi writes for a Kafka cluster's brokers (its KafkaCluster model, from the
/// resource): the controller and replication ports from the cluster's own pods, and each
/// listener's port from its `networkPolicyPeers`.
fn strimzi_broker_policy(kafka: &Value) -> Value {
    let cluster = name(kafka);
    let mut ingress = vec![json!({
        "from": [{"podSelector": {"matchLabels": {"strimzi.io/cluster": cluster}}}],
        "ports": [{"port": 9090, "protocol": "TCP"}, {"port": 9091, "protocol": "TCP"}],
    })];
    for listener in kafka["spec"]["kafka"]["listeners"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let mut rule = json!({"ports": [{"port": listener["port"], "protocol": "TCP"}]});
        if let Some(peers) = listener.get("networkPolicyPeers") {
            rule["from"] = peers.clone();
        }
        ingress.push(rule);
    }
    json!({
        "metadata": {"name": format!("{cluster}-network-policy-kafka"), "namespace": kafka["metadata"]["namespace"]},
        "spec": {
            "podSelector": {"matchLabels": {"strimzi.io/cluster": cluster, "strimzi.io/kind": "Kafka"}},
            "policyTypes": ["Ingress"],
            "ingress": ingress,
        },
    })
}

/// A connection: from, to, and the port (its number, and the name the pod gives it).
type Flow<'a> = (&'a Endpoint, &'a Endpoint, (u16, Option<&'static str>));

/// Default deny in the shop's namespace, then a policy per component: every flow the shop,
/// the operators' pods, surge-exporter and the lag adapter need is allowed, and the ones they
/// do not are denied — evaluated on the rendered policies (and the one Strimzi writes from
/// the Kafka resource) as a CNI enforces them.
#[test]
fn network_policies_allow_exactly_the_flows_each_component_needs() -> anyhow::Result<()> {
    let mut checked = 0;
    for (overlay, objects) in rendered()? {
        let mut policies: Vec<Value> = of_kind(&objects, "NetworkPolicy").cloned().collect();
        let kafka = find(&objects, "Kafka", "shop-kafka")?;
        policies.push(strimzi_broker_policy(kafka));
        let template = |kind_: &str, name_: &str| -> anyhow::Result<Endpoint> {
            let object = find(&objects, kind_, name_)?;
            Ok(Endpoint::pod(
                name_,
                object["metadata"]["namespace"].as_str().unwrap_or_default(),
                object["spec"]["template"]["metadata"]["labels"].clone(),
            ))
        };
        let service = |s: &str| template("Deployment", s);
        let (auth, catalog, orders, payment, shipping) = (
            service("auth")?,
            service("catalog")?,
            service("orders")?,
            service("payment")?,
            service("shipping")?,
        );
        let redis = service("redis")?;
        let exporter = service("surge-exporter")?;
        let setup = template("Job", "shop-setup-0-1-0")?;
        let instance = Endpoint::pod("a PostgreSQL instance", "shop", cnpg_pod_labels("instance"));
        let pooler = Endpoint::pod("a pooler", "shop", cnpg_pod_labels("pooler"));
        let broker = Endpoint::pod(
            "a Kafka broker",
            "shop",
            json!({"strimzi.io/cluster": "shop-kafka", "strimzi.io/kind": "Kafka", "strimzi.io/pool-name": "dual-role", "strimzi.io/broker-role": "true", "strimzi.io/controller-role": "true"}),
        );
        let entity_operator = Endpoint::pod(
            "Strimzi's entity operator",
            "shop",
            json!({"strimzi.io/cluster": "shop-kafka", "strimzi.io/kind": "Kafka", "strimzi.io/name": "shop-kafka-entity-operator"}),
        );
        let cnpg_operator = Endpoint::pod(
            "the CloudNativePG operator",
            "cnpg-system",
            json!({"app.kubernetes.io/name": "cloudnative-pg"}),
        );
        let prometheus = Endpoint::pod(
            "Prometheus",
            "monitoring",
            json!({"app.kubernetes.io/name": "prometheus"}),
        );
        let ingress_controller = Endpoint::pod(
            "the ingress controller",
            "ingress-nginx",
            json!({"app.kubernetes.io/name": "ingress-nginx"}),
        );
        let dns = Endpoint::pod(
            "the cluster's resolver",
            "kube-system",
            json!({"k8s-app": "coredns"}),
        );
        let stranger = Endpoint::pod("a pod of another namespace", "default", json!({"app": "x"}));
        let solver = Endpoint::pod(
            "cert-manager's HTTP-01 solver",
            "shop",
            json!({"acme.cert-manager.io/http01-solver": "true"}),
        );
        let api_server = Endpoint::outside("the API server");
        let internet = Endpoint::outside("the internet");
        let http = (8080, Some("http"));
        let mut allow: Vec<Flow> = vec![
            (&ingress_controller, &auth, http),
            (&ingress_controller, &catalog, http),
            (&ingress_controller, &orders, http),
            (&ingress_controller, &solver, (8089, None)),
            (&auth, &redis, (6379, Some("redis"))),
            (&catalog, &redis, (6379, Some("redis"))),
            (&orders, &redis, (6379, Some("redis"))),
            (&orders, &broker, (9093, None)),
            (&payment, &broker, (9093, None)),
            (&shipping, &broker, (9093, None)),
            (&exporter, &broker, (9093, None)),
            (&exporter, &instance, (5432, None)),
            (&exporter, &api_server, (443, None)),
            (&setup, &instance, (5432, None)),
            (&pooler, &instance, (5432, None)),
            (&pooler, &api_server, (443, None)),
            (&instance, &instance, (5432, None)),
            (&instance, &instance, (8000, None)),
            (&instance, &api_server, (6443, None)),
            (&cnpg_operator, &instance, (8000, None)),
            (&cnpg_operator, &instance, (5432, None)),
            (&prometheus, &exporter, (9917, Some("metrics"))),
            (&prometheus, &instance, (9187, Some("metrics"))),
            (&prometheus, &pooler, (9127, Some("metrics"))),
            (&broker, &broker, (9090, None)),
            (&broker, &broker, (9091, None)),
            (&entity_operator, &broker, (9091, None)),
            (&broker, &api_server, (443, None)),
            (&entity_operator, &api_server, (443, None)),
        ];
        for s in [&auth, &catalog, &orders, &payment, &shipping] {
            allow.push((s, &pooler, (5432, None)));
            allow.push((&prometheus, s, http));
            allow.push((s, &dns, (53, None)));
        }
        for p in [&exporter, &setup, &instance, &pooler, &broker, &redis] {
            allow.push((p, &dns, (53, None)));
        }
        let deny: Vec<Flow> = vec![
            (&auth, &broker, (9093, None)),
            (&catalog, &broker, (9093, None)),
            (&payment, &redis, (6379, Some("redis"))),
            (&shipping, &redis, (6379, Some("redis"))),
            (&auth, &instance, (5432, None)),
            (&orders, &instance, (5432, None)),
            (&shipping, &orders, http),
            (&payment, &internet, (443, None)),
            (&orders, &internet, (443, None)),
            (&redis, &pooler, (5432, None)),
            (&redis, &internet, (443, None)),
            (&catalog, &exporter, (9917, Some("metrics"))),
            (&exporter, &redis, (6379, Some("redis"))),
            (&setup, &broker, (9093, None)),
            (&setup, &internet, (443, None)),
            (&stranger, &redis, (6379, Some("redis"))),
            (&stranger, &pooler, (5432, None)),
            (&stranger, &instance, (5432, None)),
            (&stranger, &broker, (9093, None)),
            (&stranger, &auth, http),
            (&stranger, &payment, http),
            (&stranger, &exporter, (9917, Some("metrics"))),
            (&pooler, &redis, (6379, Some("redis"))),
            (&instance, &internet, (80, None)),
        ];
        for (from, to, port) in &allow {
            assert!(
                allowed(&policies, from, to, *port),
                "{overlay}: {} cannot reach {} on {}",
                from.what,
                to.what,
                port.0
            );
            checked += 1;
        }
        for (from, to, port) in &deny {
            assert!(
                !allowed(&policies, from, to, *port),
                "{overlay}: {} may reach {} on {}",
                from.what,
                to.what,
                port.0
            );
            checked += 1;
        }
        // Default deny: a pod no component policy names receives and sends nothing.
        let unnamed = Endpoint::pod("an unlabelled pod", "shop", json!({}));
        assert!(
            !allowed(&policies, &stranger, &unnamed, (8080, None)),
            "{overlay}"
        );
        assert!(
            !allowed(&policies, &unnamed, &internet, (443, None)),
            "{overlay}"
        );

        // The lag adapter (where it runs): the API server in, Prometheus and the API out.
        if overlay != "keda" {
            let adapter = template("Deployment", "surge-metrics-adapter")?;
            for (from, to, port, want) in [
                (&api_server, &adapter, 6443, true),
                (&adapter, &prometheus, 9090, true),
                (&adapter, &api_server, 443, true),
                (&adapter, &dns, 53, true),
                (&adapter, &internet, 80, false),
                (&adapter, &redis, 6379, false),
            ] {
                assert_eq!(
                    allowed(&policies, from, to, (port, None)),
                    want,
                    "{overlay}: {} → {} on {port}",
                    from.what,
                    to.what
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 150, "{checked} flows");
    Ok(())
}

/// The public API is HTTPS only: every Ingress terminates TLS for each host it routes, with a
/// certificate cert-manager issues (a Certificate in the manifests names that secret and
/// those hosts), and redirects plain HTTP, so logins and JWTs never cross in the clear.
#[test]
fn the_ingress_serves_only_https_with_a_cert_manager_certificate() -> anyhow::Result<()> {
    let mut checked = 0;
    for (overlay, objects) in rendered()? {
        for ingress in of_kind(&objects, "Ingress") {
            let what = format!("{overlay}: Ingress {}", name(ingress));
            assert_eq!(
                ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/force-ssl-redirect"],
                json!("true"),
                "{what}: plain HTTP is not redirected"
            );
            let hosts: BTreeSet<&str> = ingress["spec"]["rules"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|r| r["host"].as_str().unwrap_or_default())
                .collect();
            let tls = ingress["spec"]["tls"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            for host in &hosts {
                assert!(
                    !host.is_empty(),
                    "{what}: a rule for every host (no catch-all)"
                );
                let entry = tls
                    .iter()
                    .find(|t| {
                        t["hosts"]
                            .as_array()
                            .is_some_and(|h| h.contains(&json!(host)))
                    })
                    .with_context(|| format!("{what}: {host} has no TLS"))?;
                let secret = entry["secretName"].as_str().unwrap_or_default();
                let certificate = of_kind(&objects, "Certificate")
                    .find(|c| {
                        c["spec"]["secretName"] == json!(secret)
                            && c["metadata"]["namespace"] == ingress["metadata"]["namespace"]
                    })
                    .with_context(|| format!("{what}: no Certificate makes {secret}"))?;
                assert!(
                    certificate["spec"]["dnsNames"]
                        .as_array()
                        .is_some_and(|d| d.contains(&json!(host))),
                    "{what}: the certificate does not name {host}"
                );
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 6, "2 Ingresses × 3 overlays");
    Ok(())
}

/// Every ConfigMap a workload reads is generated by kustomize, its name carrying a hash of
/// its content that kustomize writes into the pod templates using it: editing the shop's
/// settings, the exporter's config or the adapter's rules rolls those pods, instead of
/// leaving them on the old values until they happen to restart.
#[test]
fn config_maps_are_hashed_so_an_edit_rolls_their_pods() -> anyhow::Result<()> {
    let mut references = 0;
    for (overlay, objects) in rendered()? {
        for workload in objects
            .iter()
            .filter(|o| matches!(kind(o), "Deployment" | "Job"))
        {
            let pod = &workload["spec"]["template"]["spec"];
            let mut used: Vec<String> = pod["volumes"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v["configMap"]["name"].as_str().map(str::to_string))
                .collect();
            for container in pod["containers"].as_array().into_iter().flatten() {
                used.extend(
                    container["envFrom"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|e| e["configMapRef"]["name"].as_str().map(str::to_string)),
                );
            }
            for config_map in used {
                let found = objects
                    .iter()
                    .find(|o| kind(o) == "ConfigMap" && name(o) == config_map)
                    .with_context(|| {
                        format!("{overlay}: {} uses a missing {config_map}", name(workload))
                    })?;
                let base = config_map
                    .rsplit_once('-')
                    .map(|(b, _)| b)
                    .unwrap_or_default();
                assert!(
                    generated_from(found, base),
                    "{overlay}: {} reads ConfigMap {config_map}, whose edits would not roll it",
                    name(workload)
                );
                references += 1;
            }
        }
    }
    // Five services' settings and the exporter's config per overlay; the adapter's rules
    // where it runs.
    assert_eq!(references, 3 * 6 + 2);
    Ok(())
}

/// The guide's prerequisite checks name everything the rendered manifests depend on from
/// outside themselves: the namespaces their NetworkPolicies and objects name, the CRD of
/// every custom kind (by its plural and group, from the vendored schemas), the ClusterIssuer
/// their Certificates use and the secrets nothing in the manifests makes.
#[test]
fn prerequisites_cover_what_the_manifests_depend_on() -> anyhow::Result<()> {
    let guide = std::fs::read_to_string(repo().join("docs/src/deploy.md"))?;
    let command = |start: &str| -> String {
        let at = guide.find(start).unwrap_or(guide.len());
        guide[at..]
            .lines()
            .scan(true, |more, line| {
                let take = *more;
                *more = line.trim_end().ends_with('\\');
                take.then_some(line)
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    let namespaces_checked = command("kubectl get namespace ");
    let crds_checked = command("kubectl get crd ");
    let issuers_checked = command("kubectl get clusterissuer ");
    let secrets_checked = command("kubectl -n shop get secret ");
    let mut plural = BTreeMap::new();
    for entry in std::fs::read_dir(stack_dir().join("k8s/crds"))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let crd: Value = serde_yaml_ng::from_str(&std::fs::read_to_string(&path)?)?;
            plural.insert(
                crd["spec"]["names"]["kind"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                format!(
                    "{}.{}",
                    crd["spec"]["names"]["plural"].as_str().unwrap_or_default(),
                    crd["spec"]["group"].as_str().unwrap_or_default()
                ),
            );
        }
    }
    let mut named = 0;
    for (overlay, objects) in rendered()? {
        let mut namespaces = BTreeSet::new();
        for policy in of_kind(&objects, "NetworkPolicy") {
            let text = policy.to_string();
            for part in text.split("\"kubernetes.io/metadata.name\":\"").skip(1) {
                namespaces.extend(part.split('"').next().map(str::to_string));
            }
        }
        namespaces.extend(
            objects
                .iter()
                .filter_map(|o| o["metadata"]["namespace"].as_str().map(str::to_string)),
        );
        namespaces.remove("shop");
        for namespace in &namespaces {
            assert!(
                namespaces_checked.contains(&format!(" {namespace}")),
                "{overlay}: the guide does not check namespace {namespace}"
            );
            named += 1;
        }
        for object in objects.iter().filter(|o| {
            let api = o["apiVersion"].as_str().unwrap_or_default();
            api.contains(".io/") && !api.contains("k8s.io/") || api.starts_with("keda.sh/")
        }) {
            let crd = plural
                .get(kind(object))
                .with_context(|| format!("no vendored CRD for {}", kind(object)))?;
            let keda_only =
                crd.ends_with(".keda.sh") && guide.contains(&format!("also needs `{crd}`"));
            assert!(
                crds_checked.contains(crd.as_str()) || keda_only,
                "{overlay}: the guide does not check CRD {crd}"
            );
            named += 1;
        }
        for certificate in of_kind(&objects, "Certificate") {
            let issuer = &certificate["spec"]["issuerRef"];
            if issuer["kind"] == "ClusterIssuer" {
                let name_ = issuer["name"].as_str().unwrap_or_default();
                assert!(
                    issuers_checked.contains(name_),
                    "{overlay}: the guide does not check ClusterIssuer {name_}"
                );
                named += 1;
            }
        }
        for secret in [
            "shop-secrets",
            "surge-monitor-pg",
            "surge-pagerduty",
            "surge-alert-webhooks",
        ] {
            assert!(secrets_checked.contains(secret), "{secret}");
        }
    }
    assert!(named > 30, "{named}");
    Ok(())
}

/// Going from an overlay with the lag adapter to `overlays/keda` means deleting exactly the
/// objects `stack/k8s/scale-on-lag` renders (the guide's `kubectl delete -k`); going back,
/// exactly the ScaledObjects.
#[test]
fn switching_overlays_deletes_exactly_what_the_other_lacks() -> anyhow::Result<()> {
    let key = |o: &Value| {
        (
            kind(o).to_string(),
            o["metadata"]["namespace"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            name(o).to_string(),
        )
    };
    let all = rendered()?;
    let set = |overlay: &str| -> BTreeSet<(String, String, String)> {
        all.iter()
            .filter(|(o, _)| *o == overlay)
            .flat_map(|(_, objects)| objects.iter().map(key))
            .collect()
    };
    let scale_on_lag: BTreeSet<_> =
        surge_stack::k8s::render(&stack_dir().join("k8s/scale-on-lag"))?
            .iter()
            .map(key)
            .collect();
    let keda = set("keda");
    for overlay in ["local", "production"] {
        let with_adapter = set(overlay);
        let only_there: BTreeSet<_> = with_adapter.difference(&keda).cloned().collect();
        // production's PodDisruptionBudgets are its own: applying keda over it leaves them.
        let only_there: BTreeSet<_> = only_there
            .into_iter()
            .filter(|k| !(overlay == "production" && k.0 == "PodDisruptionBudget"))
            .collect();
        assert_eq!(only_there, scale_on_lag, "{overlay} → keda");
        let only_keda: BTreeSet<_> = keda.difference(&with_adapter).cloned().collect();
        let scaled_objects: BTreeSet<_> = ["payment", "shipping"]
            .map(|s| {
                (
                    "ScaledObject".to_string(),
                    "shop".to_string(),
                    s.to_string(),
                )
            })
            .into_iter()
            .collect();
        // The production overlay's PDBs and spread are its own, not KEDA's.
        let only_keda: BTreeSet<_> = only_keda
            .into_iter()
            .filter(|k| k.0 == "ScaledObject")
            .collect();
        assert_eq!(only_keda, scaled_objects, "keda → {overlay}");
    }
    Ok(())
}
