//! `stack/k8s`, proven offline on what `kubectl kustomize` renders for each overlay: built-in
//! objects pass `kubernetes-validate --strict` for the Kubernetes version the guide names;
//! custom resources validate against their operators' CRD schemas (vendored in
//! `stack/k8s/crds/`, unknown fields rejected as `kubectl apply`'s strict field validation
//! does); every pod meets the restricted Pod Security Standard; scaling every service to its
//! HPA maximum cannot exhaust PostgreSQL or the poolers; the seed values are exact; and the
//! monitoring objects carry exactly what `alerts/` and `dashboards/` hold.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, anyhow};
use serde_json::{Value, json};
use surge_stack::k8s;

mod support;
use support::*;

/// Kinds Kubernetes itself serves (checked by kubernetes-validate); everything else is a
/// custom resource (checked against its CRD).
fn is_built_in(object: &Value) -> bool {
    let api = object["apiVersion"].as_str().unwrap_or_default();
    api == "v1"
        || ["apps/", "batch/", "policy/", "autoscaling/"]
            .iter()
            .any(|p| api.starts_with(p))
        || api.ends_with(".k8s.io/v1") && !api.starts_with("metrics.")
}

/// Objects as a multi-document file, each document JSON: YAML 1.1 readers (PyYAML, the Go
/// YAML Kubernetes uses) would take an unquoted `no` for a boolean.
fn documents_file(objects: &[&Value]) -> anyhow::Result<String> {
    let mut out = String::new();
    for o in objects {
        out.push_str("---\n");
        out.push_str(&serde_json::to_string(o)?);
        out.push('\n');
    }
    Ok(out)
}

#[test]
fn every_overlay_renders_the_shop_and_surge() -> anyhow::Result<()> {
    for (overlay, objects) in rendered()? {
        for service in SHOP_SERVICES {
            find(&objects, "Deployment", service)?;
            // With KEDA, the consumers' HPAs are KEDA's, made from their ScaledObjects.
            let scaler = match (overlay, service) {
                ("keda", "payment" | "shipping") => "ScaledObject",
                _ => "HorizontalPodAutoscaler",
            };
            find(&objects, scaler, service).with_context(|| overlay.to_string())?;
        }
        // Exactly one server of external metrics: prometheus-adapter, or KEDA's.
        let adapter = objects
            .iter()
            .any(|o| kind(o) == "APIService" && name(o) == "v1beta1.external.metrics.k8s.io");
        assert_eq!(adapter, overlay != "keda", "{overlay}");
        for (k, n) in [
            ("Namespace", "shop"),
            ("Cluster", "shop-db"),
            ("Pooler", "shop-db-pooler-rw"),
            ("Pooler", "shop-db-pooler-ro"),
            ("Kafka", "shop-kafka"),
            ("KafkaNodePool", "dual-role"),
            ("Job", "shop-setup-0-1-0"),
            ("Deployment", "surge-exporter"),
            ("PrometheusRule", "surge"),
            ("AlertmanagerConfig", "surge"),
            ("Ingress", "shop"),
        ] {
            find(&objects, k, n).with_context(|| overlay.to_string())?;
        }
        // Everything is in namespace shop but prometheus-adapter's (monitoring, its API's
        // authentication reader in kube-system, and its cluster-wide RBAC and APIService).
        let namespaced_elsewhere: Vec<String> = objects
            .iter()
            .filter(|o| kind(o) != "Namespace" && o["metadata"]["namespace"] != "shop")
            .filter(|o| {
                o["metadata"]["labels"]["app.kubernetes.io/component"] != "external-metrics-adapter"
            })
            .map(|o| format!("{} {}", kind(o), name(o)))
            .collect();
        assert!(
            namespaced_elsewhere.is_empty(),
            "{overlay}: {namespaced_elsewhere:?}"
        );
    }
    let (_, local) = &rendered()?[0];
    let (_, production) = &rendered()?[1];
    let pool_replicas = |objects: &[Value]| {
        find(objects, "KafkaNodePool", "dual-role").map(|p| p["spec"]["replicas"].clone())
    };
    assert_eq!(pool_replicas(local)?, json!(1));
    assert_eq!(pool_replicas(production)?, json!(3));
    assert_eq!(
        find(local, "Cluster", "shop-db")?["spec"]["instances"],
        json!(2)
    );
    assert_eq!(
        find(production, "Cluster", "shop-db")?["spec"]["instances"],
        json!(3)
    );
    // Commits wait for one standby, so a failover keeps every acknowledged order (drill 11);
    // only the single-node cluster may drop to asynchronous when its one standby is away.
    let synchronous = |objects: &[Value]| {
        find(objects, "Cluster", "shop-db").map(|c| c["spec"]["postgresql"]["synchronous"].clone())
    };
    assert_eq!(
        synchronous(production)?,
        json!({"method": "any", "number": 1, "dataDurability": "required"})
    );
    assert_eq!(
        synchronous(local)?,
        json!({"method": "any", "number": 1, "dataDurability": "preferred"})
    );
    assert_eq!(
        find(production, "Kafka", "shop-kafka")?["spec"]["kafka"]["rack"]["topologyKey"],
        json!("topology.kubernetes.io/zone")
    );
    assert_eq!(of_kind(production, "PodDisruptionBudget").count(), 7);
    assert_eq!(of_kind(local, "PodDisruptionBudget").count(), 0);
    for objects in [local, production] {
        let kafka = &find(objects, "Kafka", "shop-kafka")?["spec"]["kafka"];
        assert_eq!(kafka["version"], json!("4.2.0"));
        assert_eq!(
            find(objects, "KafkaNodePool", "dual-role")?["spec"]["roles"],
            json!(["controller", "broker"]),
            "KRaft: the nodes are their own controllers"
        );
        let image = find(objects, "Cluster", "shop-db")?["spec"]["imageName"].clone();
        assert!(
            image.as_str().is_some_and(|i| i.ends_with(":17")),
            "{image}"
        );
    }
    // Production spreads over zones: Kafka nodes, PostgreSQL instances, shop pods.
    let spread_keys = |pod: &Value| -> BTreeSet<String> {
        pod["topologySpreadConstraints"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["topologyKey"].as_str().map(str::to_string))
            .collect()
    };
    let zone = "topology.kubernetes.io/zone".to_string();
    assert!(
        spread_keys(&find(production, "KafkaNodePool", "dual-role")?["spec"]["template"]["pod"])
            .contains(&zone)
    );
    let affinity = &find(production, "Cluster", "shop-db")?["spec"]["affinity"];
    assert_eq!(
        (&affinity["podAntiAffinityType"], &affinity["topologyKey"]),
        (&json!("required"), &json!(zone))
    );
    for service in SHOP_SERVICES {
        let pod = &find(production, "Deployment", service)?["spec"]["template"]["spec"];
        assert_eq!(
            spread_keys(pod),
            BTreeSet::from([zone.clone(), "kubernetes.io/hostname".to_string()]),
            "{service}"
        );
    }
    Ok(())
}

/// Every secret the manifests read is either made by an operator (`shop-db-app`, by
/// CloudNativePG; a Certificate's, by cert-manager) or one the guide (docs/src/deploy.md) tells the user to create.
#[test]
fn every_secret_read_is_made_by_an_operator_or_in_the_readme() -> anyhow::Result<()> {
    fn secret_refs(value: &Value, out: &mut BTreeSet<String>) {
        match value {
            Value::Object(map) => {
                for (key, inner) in map {
                    let name = inner["name"].as_str().or_else(|| inner.as_str());
                    match key.as_str() {
                        "secretKeyRef" | "passwordSecret" | "routingKey" | "urlSecret" => {
                            out.extend(name.map(str::to_string));
                        }
                        "secretName" => out.extend(inner.as_str().map(str::to_string)),
                        _ => {}
                    }
                    secret_refs(inner, out);
                }
            }
            Value::Array(items) => items.iter().for_each(|i| secret_refs(i, out)),
            _ => {}
        }
    }
    let readme = std::fs::read_to_string(repo().join("docs/src/deploy.md"))?;
    for (overlay, objects) in rendered()? {
        let mut read = BTreeSet::new();
        for object in &objects {
            secret_refs(object, &mut read);
        }
        // cert-manager makes each Certificate's secret.
        let issued: BTreeSet<String> = of_kind(&objects, "Certificate")
            .filter_map(|c| c["spec"]["secretName"].as_str().map(str::to_string))
            .collect();
        assert!(issued.contains("shop-tls"), "{overlay}: the Ingress's");
        read.retain(|s| !issued.contains(s));
        assert_eq!(
            read,
            BTreeSet::from(
                [
                    "orders",
                    "payment",
                    "shipping",
                    "surge-exporter",
                    "shop-kafka-cluster-ca-cert",
                    "shop-db-app",
                    "shop-db-ca",
                    "shop-secrets",
                    "surge-alert-webhooks",
                    "surge-monitor-pg",
                    "surge-pagerduty"
                ]
                .map(str::to_string)
            ),
            "{overlay}"
        );
        // CloudNativePG makes the cluster's app credentials and its CA; Strimzi the Kafka
        // cluster's CA and each KafkaUser's password.
        let by_operators = [
            "shop-db-app",
            "shop-db-ca",
            "shop-kafka-cluster-ca-cert",
            "orders",
            "payment",
            "shipping",
            "surge-exporter",
        ];
        for secret in read.iter().filter(|s| !by_operators.contains(&s.as_str())) {
            assert!(
                readme.contains(&format!("create secret generic {secret} ")),
                "docs/src/deploy.md does not say how to create {secret}"
            );
        }
    }
    Ok(())
}

#[test]
fn built_in_objects_pass_strict_schema_validation() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    for (overlay, objects) in rendered()? {
        let built_in: Vec<&Value> = objects.iter().filter(|o| is_built_in(o)).collect();
        assert!(
            built_in.len() >= 30,
            "{overlay}: {} built-in objects",
            built_in.len()
        );
        let file = dir.path().join(format!("{overlay}.yaml"));
        std::fs::write(&file, documents_file(&built_in)?)?;
        let out = Command::new("kubernetes-validate")
            .args(["--strict", "-k", KUBERNETES])
            .arg(&file)
            .output()
            .map_err(|e| {
                anyhow!("kubernetes-validate not found ({e}); run scripts/install-deps")
            })?;
        let report = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{overlay}:\n{report}");
        let passed = report
            .lines()
            .filter(|l| l.contains(" passed for resource "))
            .count();
        assert_eq!(passed, built_in.len(), "{overlay}:\n{report}");
        assert!(
            !report
                .lines()
                .any(|l| l.starts_with("WARN") || l.starts_with("ERROR")),
            "{overlay}:\n{report}"
        );
    }
    Ok(())
}

/// An operator's OpenAPI v3 schema as a JSON Schema that rejects what the API server's strict
/// field validation rejects: objects with declared properties are closed unless marked
/// `x-kubernetes-preserve-unknown-fields`; int-or-string and nullable become types. (CEL rules,
/// `x-kubernetes-validations`, are not evaluated offline.)
fn strict(schema: &Value) -> Value {
    let Some(map) = schema.as_object() else {
        return schema.clone();
    };
    let mut out = serde_json::Map::new();
    for (key, value) in map {
        let converted = match key.as_str() {
            "properties" | "patternProperties" | "definitions" => Value::Object(
                value
                    .as_object()
                    .map(|props| props.iter().map(|(k, v)| (k.clone(), strict(v))).collect())
                    .unwrap_or_default(),
            ),
            "items" | "additionalProperties" | "not" if value.is_object() => strict(value),
            "anyOf" | "allOf" | "oneOf" => {
                Value::Array(value.as_array().into_iter().flatten().map(strict).collect())
            }
            // Formats (int32, int-or-string, date-time) are the API server's business.
            "format" | "nullable" => continue,
            // Go's inline flags (`(?i)`) are no ECMA-262 regex: such patterns go unchecked.
            "pattern" if value.as_str().is_some_and(|p| p.contains("(?i)")) => continue,
            k if k.starts_with("x-kubernetes-") => continue,
            _ => value.clone(),
        };
        out.insert(key.clone(), converted);
    }
    if map.get("x-kubernetes-int-or-string") == Some(&json!(true)) && !map.contains_key("type") {
        out.entry("anyOf")
            .or_insert_with(|| json!([{"type": "integer"}, {"type": "string"}]));
    }
    if map.get("nullable") == Some(&json!(true))
        && let Some(t) = map.get("type").and_then(Value::as_str)
    {
        out.insert("type".into(), json!([t, "null"]));
    }
    let open = map.get("x-kubernetes-preserve-unknown-fields") == Some(&json!(true));
    if map.contains_key("properties") && !map.contains_key("additionalProperties") && !open {
        out.insert("additionalProperties".into(), json!(false));
    }
    Value::Object(out)
}

/// (apiVersion, kind) → a validator for every served version of every vendored CRD.
fn crd_validators() -> anyhow::Result<BTreeMap<(String, String), jsonschema::Validator>> {
    let mut out = BTreeMap::new();
    let mut files = 0;
    for entry in std::fs::read_dir(stack_dir().join("k8s/crds"))? {
        let path = entry?.path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        files += 1;
        let text = std::fs::read_to_string(&path)?;
        // Every file must load (one of them holds a bare `=` YAML 1.1 readers mistake for a tag).
        let crd: Value = serde_yaml_ng::from_str(&text)
            .with_context(|| format!("loading {}", path.display()))?;
        let group = crd["spec"]["group"].as_str().context("no group")?;
        let kind_ = crd["spec"]["names"]["kind"].as_str().context("no kind")?;
        for version in crd["spec"]["versions"].as_array().into_iter().flatten() {
            if version["served"] != json!(true) {
                continue;
            }
            let schema = strict(&version["schema"]["openAPIV3Schema"]);
            let validator = jsonschema::options()
                .with_draft(jsonschema::Draft::Draft7)
                .should_validate_formats(false)
                .build(&schema)
                .map_err(|e| anyhow!("{}: {e}", path.display()))?;
            let api = format!("{group}/{}", version["name"].as_str().unwrap_or_default());
            out.insert((api, kind_.to_string()), validator);
        }
    }
    assert_eq!(files, 13, "vendored CRD files");
    Ok(out)
}

fn crd_errors(
    validators: &BTreeMap<(String, String), jsonschema::Validator>,
    object: &Value,
) -> Vec<String> {
    let key = (
        object["apiVersion"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        kind(object).to_string(),
    );
    match validators.get(&key) {
        None => vec![format!("no CRD serves {} {}", key.0, key.1)],
        Some(v) => v
            .iter_errors(object)
            .map(|e| format!("{}: {e}", e.instance_path()))
            .collect(),
    }
}

#[test]
fn custom_resources_match_their_operators_crd_schemas() -> anyhow::Result<()> {
    let validators = crd_validators()?;
    let mut kinds = BTreeSet::new();
    let mut failures = Vec::new();
    for (overlay, objects) in rendered()? {
        for object in objects.iter().filter(|o| !is_built_in(o)) {
            kinds.insert(kind(object).to_string());
            for error in crd_errors(&validators, object) {
                failures.push(format!(
                    "{overlay}: {} {}: {error}",
                    kind(object),
                    name(object)
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(
        kinds.into_iter().collect::<Vec<_>>(),
        [
            "AlertmanagerConfig",
            "Certificate",
            "Cluster",
            "Issuer",
            "Kafka",
            "KafkaNodePool",
            "KafkaTopic",
            "KafkaUser",
            "PodMonitor",
            "Pooler",
            "PrometheusRule",
            "ScaledObject",
            "ServiceMonitor"
        ]
    );
    Ok(())
}

/// The check above rejects what the operators would: an old API version, a field the schema
/// does not have, a value outside an enum or range.
#[test]
fn the_crd_check_rejects_what_an_operator_would() -> anyhow::Result<()> {
    let validators = crd_validators()?;
    let (_, objects) = &rendered()?[0];
    let mutated =
        |kind_: &str, name_: &str, change: &dyn Fn(&mut Value)| -> anyhow::Result<Vec<String>> {
            let mut object = find(objects, kind_, name_)?.clone();
            change(&mut object);
            Ok(crd_errors(&validators, &object))
        };
    for (what, errors, expected) in [
        (
            "v1beta2 Kafka",
            mutated("Kafka", "shop-kafka", &|o| {
                o["apiVersion"] = json!("kafka.strimzi.io/v1beta2")
            })?,
            "no CRD serves",
        ),
        (
            "replicas on the Kafka resource (node pools own them in v1)",
            mutated("Kafka", "shop-kafka", &|o| {
                o["spec"]["kafka"]["replicas"] = json!(3)
            })?,
            "replicas",
        ),
        (
            "a pooler mode PgBouncer has but CloudNativePG does not",
            mutated("Pooler", "shop-db-pooler-rw", &|o| {
                o["spec"]["pgbouncer"]["poolMode"] = json!("statement")
            })?,
            "statement",
        ),
        (
            "zero partitions",
            mutated("KafkaTopic", "order-placed", &|o| {
                o["spec"]["partitions"] = json!(0)
            })?,
            "minimum",
        ),
        (
            "a misspelt managed-role field",
            mutated("Cluster", "shop-db", &|o| {
                o["spec"]["managed"]["roles"][0]["passwordSecrets"] = json!({"name": "x"})
            })?,
            "passwordSecrets",
        ),
        (
            "an unknown matcher operator",
            mutated("AlertmanagerConfig", "surge", &|o| {
                o["spec"]["inhibitRules"][0]["sourceMatch"][0]["matchType"] = json!("==")
            })?,
            "==",
        ),
    ] {
        assert!(
            errors.iter().any(|e| e.contains(expected)),
            "{what}: {errors:#?}"
        );
    }
    Ok(())
}

/// Violations of the restricted Pod Security Standard (plus a read-only root filesystem, which
/// every process here allows) in a pod spec; containers may leave out what the pod sets.
fn restricted_violations(pod: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let sc = &pod["securityContext"];
    for host in ["hostNetwork", "hostPID", "hostIPC"] {
        if pod[host] == json!(true) {
            out.push(format!("{host}: true"));
        }
    }
    const VOLUMES: [&str; 8] = [
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "persistentVolumeClaim",
        "projected",
        "secret",
    ];
    for volume in pod["volumes"].as_array().into_iter().flatten() {
        let types: Vec<&String> = volume
            .as_object()
            .into_iter()
            .flat_map(|m| m.keys())
            .filter(|k| *k != "name")
            .collect();
        if types.iter().any(|t| !VOLUMES.contains(&t.as_str())) {
            out.push(format!("volume {}: {types:?}", volume["name"]));
        }
    }
    let seccomp_ok = |sc: &Value| {
        matches!(
            sc["seccompProfile"]["type"].as_str(),
            Some("RuntimeDefault" | "Localhost")
        )
    };
    let containers = ["containers", "initContainers", "ephemeralContainers"]
        .iter()
        .flat_map(|k| pod[*k].as_array().into_iter().flatten());
    for c in containers {
        let at = c["name"].as_str().unwrap_or("container");
        let csc = &c["securityContext"];
        if csc["privileged"] == json!(true) {
            out.push(format!("{at}: privileged"));
        }
        if csc["allowPrivilegeEscalation"] != json!(false) {
            out.push(format!("{at}: allowPrivilegeEscalation is not false"));
        }
        let drops = csc["capabilities"]["drop"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if !drops.contains(&json!("ALL")) {
            out.push(format!("{at}: capabilities do not drop ALL"));
        }
        for add in csc["capabilities"]["add"].as_array().into_iter().flatten() {
            if add != "NET_BIND_SERVICE" {
                out.push(format!("{at}: adds capability {add}"));
            }
        }
        if csc["runAsNonRoot"] != json!(true) && sc["runAsNonRoot"] != json!(true) {
            out.push(format!("{at}: runAsNonRoot not set"));
        }
        if csc["runAsUser"] == json!(0) || sc["runAsUser"] == json!(0) {
            out.push(format!("{at}: runs as root"));
        }
        if !seccomp_ok(csc) && !seccomp_ok(sc) {
            out.push(format!("{at}: no RuntimeDefault/Localhost seccomp profile"));
        }
        if csc["readOnlyRootFilesystem"] != json!(true) {
            out.push(format!("{at}: root filesystem writable"));
        }
        for port in c["ports"].as_array().into_iter().flatten() {
            if port["hostPort"].as_i64().unwrap_or(0) != 0 {
                out.push(format!("{at}: hostPort"));
            }
        }
    }
    out
}

/// Every pod spec an object declares, as (where, pod): workload templates, the pooler's pod
/// template, and the pods Strimzi makes from the Kafka and node-pool templates.
fn declared_pods(object: &Value) -> Vec<(String, Value)> {
    let at = |what: &str| format!("{} {}{what}", kind(object), name(object));
    let strimzi = |pod: &Value, containers: &[(&str, &Value)]| {
        json!({
            "securityContext": pod["securityContext"],
            "containers": containers
                .iter()
                .map(|(n, c)| json!({"name": n, "securityContext": c["securityContext"]}))
                .collect::<Vec<_>>(),
        })
    };
    let spec = &object["spec"];
    match kind(object) {
        "Deployment" | "StatefulSet" | "DaemonSet" | "Job" => {
            vec![(at(""), spec["template"]["spec"].clone())]
        }
        "CronJob" => vec![(
            at(""),
            spec["jobTemplate"]["spec"]["template"]["spec"].clone(),
        )],
        "Pooler" => vec![(at(""), spec["template"]["spec"].clone())],
        "Kafka" => {
            let t = &spec["kafka"]["template"];
            let eo = &spec["entityOperator"]["template"];
            vec![
                (
                    at(" brokers"),
                    strimzi(
                        &t["pod"],
                        &[
                            ("kafka", &t["kafkaContainer"]),
                            ("kafka-init", &t["initContainer"]),
                        ],
                    ),
                ),
                (
                    at(" entity operator"),
                    strimzi(
                        &eo["pod"],
                        &[("topic-operator", &eo["topicOperatorContainer"])],
                    ),
                ),
            ]
        }
        // A node pool's own pod template, where it has one, replaces the Kafka resource's.
        "KafkaNodePool" if spec["template"]["pod"].is_object() => {
            let t = &spec["template"];
            let mut pod = strimzi(&t["pod"], &[]);
            pod["containers"] = json!([]);
            vec![(at(""), pod)]
        }
        _ => Vec::new(),
    }
}

#[test]
fn every_pod_meets_the_restricted_pod_security_standard() -> anyhow::Result<()> {
    // The check itself catches what it is for.
    let bad = json!({
        "hostNetwork": true,
        "volumes": [{"name": "h", "hostPath": {"path": "/"}}],
        "containers": [{
            "name": "c",
            "securityContext": {"privileged": true, "runAsUser": 0, "capabilities": {"add": ["SYS_ADMIN"]}},
            "ports": [{"containerPort": 80, "hostPort": 80}],
        }],
    });
    // Host network, hostPath, privileged, escalation, no drop ALL, SYS_ADMIN, non-root unset,
    // root user, no seccomp, writable root, host port.
    assert_eq!(
        restricted_violations(&bad).len(),
        11,
        "{:#?}",
        restricted_violations(&bad)
    );

    for (overlay, objects) in rendered()? {
        let mut checked = 0;
        let mut failures = Vec::new();
        for object in &objects {
            for (at, pod) in declared_pods(object) {
                checked += 1;
                for v in restricted_violations(&pod) {
                    failures.push(format!("{overlay}: {at}: {v}"));
                }
            }
        }
        // 5 services, Redis, the exporter, the setup Job, 2 poolers, Kafka brokers and
        // entity operator (+ the production node pool's template).
        assert!(checked >= 12, "{overlay}: {checked} pod specs");
        assert!(failures.is_empty(), "{}", failures.join("\n"));
        // CloudNativePG runs PostgreSQL as a non-root user with every capability dropped; the
        // seccomp profile is the one part it leaves to the resource.
        assert_eq!(
            find(&objects, "Cluster", "shop-db")?["spec"]["seccompProfile"]["type"],
            json!("RuntimeDefault")
        );
        assert_eq!(
            find(&objects, "Namespace", "shop")?["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
            json!("restricted")
        );
    }
    Ok(())
}

fn env_of<'a>(container: &'a Value, var: &str) -> Option<&'a str> {
    container["env"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == var)?
        .get("value")?
        .as_str()
}

/// The host a `postgres://user@host:port/db` URL connects to.
fn url_host(url: &str) -> &str {
    let rest = url.split("://").nth(1).unwrap_or_default();
    let rest = rest.rsplit('@').next().unwrap_or_default();
    rest.split([':', '/', '?']).next().unwrap_or_default()
}

#[test]
fn scaling_every_service_to_its_maximum_cannot_exhaust_postgresql() -> anyhow::Result<()> {
    for (overlay, objects) in rendered()? {
        let config = &find(&objects, "ConfigMap", "shop-config")?["data"];
        // The most replicas a workload's autoscaler may run (its HPA, or KEDA's ScaledObject).
        let hpa_max = |workload: &str| -> anyhow::Result<i64> {
            of_kind(&objects, "HorizontalPodAutoscaler")
                .find(|h| h["spec"]["scaleTargetRef"]["name"] == workload)
                .and_then(|h| h["spec"]["maxReplicas"].as_i64())
                .or_else(|| {
                    of_kind(&objects, "ScaledObject")
                        .find(|o| o["spec"]["scaleTargetRef"]["name"] == workload)
                        .and_then(|o| o["spec"]["maxReplicaCount"].as_i64())
                })
                .with_context(|| format!("no autoscaler for {workload}"))
        };
        // Client side: every pod of every service opens up to its pool size to each URL.
        let mut clients: BTreeMap<String, i64> = BTreeMap::new();
        for service in SHOP_SERVICES {
            let container = &find(&objects, "Deployment", service)?["spec"]["template"]["spec"]["containers"]
                [0];
            let setting = |var: &str| {
                env_of(container, var)
                    .map(str::to_string)
                    .or_else(|| config[var].as_str().map(str::to_string))
            };
            let pool: i64 = setting("SHOP_DB_POOL_SIZE")
                .context("SHOP_DB_POOL_SIZE unset")?
                .parse()?;
            let mut urls = vec![setting("SHOP_DATABASE_URL").context("no database URL")?];
            urls.extend(
                setting("SHOP_DATABASE_REPLICAS")
                    .unwrap_or_default()
                    .split(',')
                    .filter(|u| !u.trim().is_empty())
                    .map(|u| u.trim().to_string()),
            );
            for url in urls {
                *clients.entry(url_host(&url).to_string()).or_default() += hpa_max(service)? * pool;
            }
        }
        // Pooler side: each must take every client (they may all land on one instance), and
        // its server connections must fit the server it serves.
        let cluster = &find(&objects, "Cluster", "shop-db")?["spec"]["postgresql"]["parameters"];
        let number = |v: &Value| -> anyhow::Result<i64> {
            v.as_str()
                .context("not a string")?
                .parse()
                .map_err(anyhow::Error::from)
        };
        let ordinary_slots = number(&cluster["max_connections"])?
            - number(&cluster["superuser_reserved_connections"])?;
        let exporter_toml =
            find(&objects, "ConfigMap", "surge-exporter")?["data"]["surge-exporter.toml"]
                .as_str()
                .context("no exporter config")?;
        let mut exporter_on = BTreeMap::<&str, i64>::new();
        for line in exporter_toml
            .lines()
            .filter(|l| l.trim_start().starts_with("dsn"))
        {
            *exporter_on
                .entry(url_host(line.split('"').nth(1).unwrap_or_default()))
                .or_default() += 1;
        }
        let job = &find(&objects, "Job", "shop-setup-0-1-0")?["spec"]["template"]["spec"]["containers"]
            [0];
        let job_host = url_host(env_of(job, "SHOP_DATABASE_URL").context("no setup URL")?);
        assert_eq!(
            job_host, "shop-db-rw",
            "the migrator needs a session, not the pooler"
        );
        assert_eq!(
            clients.len(),
            2,
            "{overlay}: the shop reaches PostgreSQL only through the two poolers: {clients:?}"
        );
        for (host, client_count) in &clients {
            let pooler = find(&objects, "Pooler", host)
                .with_context(|| format!("{overlay}: shop URL host {host} is not a pooler"))?;
            let spec = &pooler["spec"];
            assert_eq!(
                spec["pgbouncer"]["poolMode"],
                json!("transaction"),
                "{host}"
            );
            let params = &spec["pgbouncer"]["parameters"];
            // sqlx prepares named statements: transaction mode needs PgBouncer to track them.
            assert!(number(&params["max_prepared_statements"])? > 0, "{host}");
            let max_client = number(&params["max_client_conn"])?;
            let per_instance =
                number(&params["default_pool_size"])? + number(&params["reserve_pool_size"])?;
            let instances = spec["instances"].as_i64().context("instances")?;
            let (server, direct) = match spec["type"].as_str() {
                Some("rw") => (
                    "primary",
                    exporter_on.get("shop-db-rw").copied().unwrap_or(0) + 1,
                ),
                _ => (
                    "one replica (all of it, worst case)",
                    exporter_on.get("shop-db-ro").copied().unwrap_or(0),
                ),
            };
            let server_connections = instances * per_instance + direct;
            println!(
                "{overlay}: {host}: {client_count} client connections (limit {max_client} per instance); \
                 {instances} x {per_instance} + {direct} direct = {server_connections} on the {server} of {ordinary_slots} ordinary slots"
            );
            assert!(
                *client_count <= max_client,
                "{overlay}: {host}: {client_count} clients > max_client_conn {max_client}"
            );
            assert!(
                server_connections <= ordinary_slots,
                "{overlay}: {host}: {server_connections} server connections > {ordinary_slots}"
            );
        }
    }
    Ok(())
}

#[test]
fn seed_values_are_exact_in_every_overlay_and_in_the_local_stack() -> anyhow::Result<()> {
    let local_stack = k8s::deployment_resources(&stack_dir().join("k8s/base/shop.yaml"))?;
    let dir = tempfile::tempdir()?;
    for (overlay, objects) in rendered()? {
        let mut deployments = Vec::new();
        for service in SHOP_SERVICES {
            let deployment = find(&objects, "Deployment", service)?;
            deployments.push(deployment);
            let resources = &deployment["spec"]["template"]["spec"]["containers"][0]["resources"];
            assert_eq!(
                resources,
                &json!({"requests": {"cpu": "200m", "memory": "256Mi"}, "limits": {"cpu": "500m", "memory": "512Mi"}}),
                "{overlay} {service}"
            );
            if overlay == "keda" && matches!(service, "payment" | "shipping") {
                // Checked against the HPA it replaces in keda_scales_as_the_hpas_would.
                continue;
            }
            let hpa = find(&objects, "HorizontalPodAutoscaler", service)?;
            assert_eq!(hpa["spec"]["scaleTargetRef"]["name"], json!(service));
            assert_eq!(
                (&hpa["spec"]["minReplicas"], &hpa["spec"]["maxReplicas"]),
                (&json!(2), &json!(10)),
                "{overlay} {service}"
            );
            assert_eq!(
                hpa["spec"]["metrics"][0],
                json!({"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}),
                "{overlay} {service}"
            );
        }
        // The local stack's replicas ask for what the rendered Deployments ask for.
        let file = dir.path().join(format!("{overlay}.yaml"));
        std::fs::write(&file, documents_file(&deployments)?)?;
        assert_eq!(k8s::deployment_resources(&file)?, local_stack, "{overlay}");
    }
    let orders = &local_stack["orders"];
    assert_eq!(
        (
            orders.cpu_request_millis,
            orders.memory_request_bytes,
            orders.memory_limit_bytes
        ),
        (200, Some(256 << 20), Some(512 << 20))
    );
    Ok(())
}

#[test]
fn monitoring_objects_carry_exactly_the_rules_routing_and_boards() -> anyhow::Result<()> {
    for (path, content) in k8s::generated(&repo())? {
        let committed = std::fs::read_to_string(&path)?;
        assert!(
            committed == content,
            "{} is stale: run `surge-stack manifests`",
            path.display()
        );
    }
    let rules: Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(repo().join("alerts/rules.yml"))?)?;
    let generated_amc: Value = serde_yaml_ng::from_str(&std::fs::read_to_string(
        repo().join(k8s::ALERTMANAGER_CONFIG),
    )?)?;
    let mut boards = BTreeMap::new();
    for entry in std::fs::read_dir(repo().join("dashboards"))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "json") {
            let file = path
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default();
            boards.insert(file, std::fs::read_to_string(&path)?);
        }
    }
    assert_eq!(boards.len(), 4);
    for (overlay, objects) in rendered()? {
        let rule = find(&objects, "PrometheusRule", "surge")?;
        let mut groups = rules["groups"].clone();
        let mut alerts = 0;
        for rule in groups
            .as_array_mut()
            .into_iter()
            .flatten()
            .flat_map(|g| g["rules"].as_array_mut().into_iter().flatten())
            .filter(|r| r.get("alert").is_some())
        {
            rule["labels"]["namespace"] = json!(k8s::alert_namespace_label());
            alerts += 1;
        }
        assert!(alerts > 20);
        assert_eq!(
            rule["spec"]["groups"], groups,
            "{overlay}: rules.yml, each alert namespaced"
        );
        let amc = find(&objects, "AlertmanagerConfig", "surge")?;
        assert_eq!(amc["spec"], generated_amc["spec"], "{overlay}");
        let mut shipped = BTreeMap::new();
        for cm in of_kind(&objects, "ConfigMap")
            .filter(|c| c["metadata"]["labels"]["grafana_dashboard"] == "1")
        {
            for (file, text) in cm["data"].as_object().into_iter().flatten() {
                shipped.insert(file.clone(), text.as_str().unwrap_or_default().to_string());
            }
        }
        assert_eq!(shipped, boards, "{overlay}: the boards, byte for byte");
        for monitor in of_kind(&objects, "ServiceMonitor").chain(of_kind(&objects, "PodMonitor")) {
            assert_eq!(
                monitor["metadata"]["labels"]["surge.dev/monitoring"],
                "true"
            );
        }
        for (k, n) in [("PrometheusRule", "surge"), ("AlertmanagerConfig", "surge")] {
            assert_eq!(
                find(&objects, k, n)?["metadata"]["labels"]["surge.dev/monitoring"],
                "true"
            );
        }
        for board in of_kind(&objects, "ConfigMap")
            .filter(|c| c["metadata"]["labels"]["grafana_dashboard"] == "1")
        {
            assert_eq!(board["metadata"]["annotations"]["grafana_folder"], "Surge");
        }
        let exporter = find(&objects, "ServiceMonitor", "surge-exporter")?;
        assert_eq!(exporter["spec"]["endpoints"][0]["honorLabels"], json!(true));
    }
    Ok(())
}

#[test]
fn the_setup_job_runs_once_per_release_straight_to_the_primary() -> anyhow::Result<()> {
    for (overlay, objects) in rendered()? {
        let jobs: Vec<&Value> = of_kind(&objects, "Job").collect();
        assert_eq!(jobs.len(), 1, "{overlay}");
        let container = &jobs[0]["spec"]["template"]["spec"]["containers"][0];
        let image = container["image"].as_str().unwrap_or_default();
        let tag = image.rsplit(':').next().unwrap_or_default();
        assert_eq!(
            name(jobs[0]),
            format!("shop-setup-{}", tag.replace('.', "-")),
            "{overlay}: a new release is a new Job"
        );
        assert_eq!(container["args"], json!(["setup", "--migrations-only"]));
        for service in SHOP_SERVICES {
            let d = find(&objects, "Deployment", service)?;
            assert_eq!(
                d["spec"]["template"]["spec"]["containers"][0]["image"],
                json!(image),
                "{overlay} {service}: same release"
            );
        }
    }
    Ok(())
}

/// The Ingress limits logins and registrations per client as the local load balancer does.
#[test]
fn the_ingress_rate_limits_login_and_registration_as_the_local_stack_does() -> anyhow::Result<()> {
    let mut checked = 0;
    for (overlay, objects) in rendered()? {
        let ingress = find(&objects, "Ingress", "shop-auth")?;
        let annotations = &ingress["metadata"]["annotations"];
        assert_eq!(
            annotations["nginx.ingress.kubernetes.io/limit-rps"],
            surge_stack::replicas::AUTH_RATE_PER_CLIENT.to_string(),
            "{overlay}"
        );
        assert_eq!(
            annotations["nginx.ingress.kubernetes.io/limit-burst-multiplier"], "2",
            "{overlay}"
        );
        let paths: BTreeSet<(String, String, String)> =
            ingress["spec"]["rules"][0]["http"]["paths"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| {
                    (
                        p["path"].as_str().unwrap_or_default().to_string(),
                        p["pathType"].as_str().unwrap_or_default().to_string(),
                        p["backend"]["service"]["name"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string(),
                    )
                })
                .collect();
        let expected: BTreeSet<(String, String, String)> = ["/auth/login", "/auth/register"]
            .iter()
            .map(|p| (p.to_string(), "Exact".to_string(), "auth".to_string()))
            .collect();
        assert_eq!(paths, expected, "{overlay}");
        checked += 1;
    }
    assert!(checked >= 2);
    Ok(())
}

#[test]
fn the_ingress_routes_what_the_local_load_balancer_routes() -> anyhow::Result<()> {
    let local: BTreeSet<(String, String)> = surge_stack::replicas::SERVICES
        .iter()
        .flat_map(|s| s.routes.iter().map(|r| (r.to_string(), s.name.to_string())))
        .collect();
    assert_eq!(local.len(), 4);
    for (overlay, objects) in rendered()? {
        let ingress = find(&objects, "Ingress", "shop")?;
        let routes: BTreeSet<(String, String)> = ingress["spec"]["rules"][0]["http"]["paths"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| {
                (
                    p["path"].as_str().unwrap_or_default().to_string(),
                    p["backend"]["service"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                )
            })
            .collect();
        assert_eq!(routes, local, "{overlay}");
    }
    Ok(())
}

#[test]
fn exporter_rbac_is_the_same_in_every_place() -> anyhow::Result<()> {
    let rules = |path: PathBuf, kind_: &str| -> anyhow::Result<Vec<Value>> {
        let text = std::fs::read_to_string(&path)?;
        let mut out = Vec::new();
        for doc in serde_yaml_ng::Deserializer::from_str(&text) {
            use serde::Deserialize;
            let value = Value::deserialize(doc)?;
            if value["kind"] == kind_ {
                out.push(value["rules"].clone());
            }
        }
        Ok(out)
    };
    let standalone = rules(repo().join("exporter/rbac.yaml"), "Role")?;
    // The documented all-namespaces variant grants the same, cluster-wide.
    let cluster_wide = rules(repo().join("exporter/rbac.yaml"), "ClusterRole")?;
    let in_stack = rules(stack_dir().join("k8s/base/surge-exporter.yaml"), "Role")?;
    assert_eq!(standalone.len(), 1);
    assert_eq!(standalone, in_stack);
    assert_eq!(standalone, cluster_wide);
    Ok(())
}

#[test]
fn hpas_cover_every_service_with_the_documented_bounds() -> anyhow::Result<()> {
    let specs =
        surge_stack::hpa::load_all(&surge_stack::hpa::HPA_MANIFESTS.map(|p| repo().join(p)))?;
    let mut workloads: Vec<&str> = specs.iter().map(|s| s.workload.as_str()).collect();
    workloads.sort();
    assert_eq!(workloads, SHOP_SERVICES);
    for s in &specs {
        assert_eq!((s.min, s.max, s.target), (2, 10, 0.7), "{}", s.name);
    }
    Ok(())
}

/// The kustomizations use only what the kustomize inside Debian's kubectl (1.20, kustomize
/// 2.0.3) understands, so the overlays build with it as with a current kubectl.
#[test]
fn kustomizations_use_only_what_kustomize_2_understands() -> anyhow::Result<()> {
    const KNOWN: [&str; 9] = [
        "apiVersion",
        "kind",
        "namespace",
        "bases",
        "resources",
        "patchesStrategicMerge",
        "configMapGenerator",
        "generatorOptions",
        "images",
    ];
    let mut files = vec![
        stack_dir().join("k8s/base/kustomization.yaml"),
        stack_dir().join("k8s/scale-on-lag/kustomization.yaml"),
        repo().join("alerts/kustomization.yaml"),
        repo().join("dashboards/kustomization.yaml"),
    ];
    files.extend(OVERLAYS.map(|o| {
        stack_dir()
            .join("k8s/overlays")
            .join(o)
            .join("kustomization.yaml")
    }));
    for file in &files {
        let k: Value = serde_yaml_ng::from_str(&std::fs::read_to_string(file)?)?;
        for key in k.as_object().into_iter().flat_map(|m| m.keys()) {
            assert!(KNOWN.contains(&key.as_str()), "{}: {key}", file.display());
        }
        // kustomize 2 takes directories only under `bases`.
        for resource in k["resources"].as_array().into_iter().flatten() {
            let path = file
                .parent()
                .map(|d| d.join(resource.as_str().unwrap_or_default()));
            assert!(
                path.is_some_and(|p| p.is_file()),
                "{}: {resource} is not a file",
                file.display()
            );
        }
    }
    Ok(())
}

/// The consumers' HPAs scale on CPU and on their group's lag, and never past their topic's
/// partition count (a consumer beyond it idles): maxReplicas ≤ the KafkaTopic's partitions and
/// the partitions `shop setup` creates locally.
#[test]
fn consumers_scale_on_lag_within_their_partitions() -> anyhow::Result<()> {
    for (overlay, objects) in rendered()?.into_iter().filter(|(o, _)| *o != "keda") {
        for (service, topic) in [
            ("payment", "order-placed"),
            ("shipping", "shipping-request"),
        ] {
            let hpa = &find(&objects, "HorizontalPodAutoscaler", service)?["spec"];
            let lag = hpa["metrics"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|m| m["type"] == "External")
                .with_context(|| format!("{overlay}: {service} has no External metric"))?;
            assert_eq!(
                lag["external"]["metric"],
                json!({"name": "surge_kafka_group_topic_scalable_lag", "selector": {"matchLabels": {"group": service, "topic": topic}}}),
                "{overlay} {service}"
            );
            assert_eq!(lag["external"]["target"]["type"], json!("AverageValue"));
            let partitions = of_kind(&objects, "KafkaTopic")
                .find(|t| t["spec"]["topicName"] == topic)
                .and_then(|t| t["spec"]["partitions"].as_i64())
                .with_context(|| format!("no KafkaTopic {topic}"))?;
            let max = hpa["maxReplicas"].as_i64().unwrap_or(i64::MAX);
            assert!(
                max <= partitions,
                "{overlay} {service}: max {max} > {partitions} partitions"
            );
            assert!(
                max <= i64::from(surge_shop_partitions()),
                "{overlay} {service}: local topics"
            );
        }
    }
    Ok(())
}

/// The partitions the shop creates for its topics on the local stack.
fn surge_shop_partitions() -> i32 {
    let source = std::fs::read_to_string(stack_dir().join("shop/src/kafka.rs")).unwrap_or_default();
    source
        .lines()
        .find_map(|l| l.trim().strip_prefix("pub const PARTITIONS: i32 = "))
        .and_then(|v| v.trim_end_matches(';').parse().ok())
        .unwrap_or(0)
}

/// overlays/keda's ScaledObjects scale as the HPAs they replace would: same bounds, CPU
/// target, lag target, behavior, and the prometheus-adapter rule's query for the lag.
#[test]
fn keda_scales_as_the_hpas_would() -> anyhow::Result<()> {
    let all = rendered()?;
    let objects_of = |overlay: &str| {
        all.iter()
            .find(|(o, _)| *o == overlay)
            .map(|(_, objects)| objects.clone())
            .unwrap_or_default()
    };
    let (keda, production) = (objects_of("keda"), objects_of("production"));
    let rules = surge_stack::external::AdapterRules::load(
        &stack_dir().join("k8s/scale-on-lag/adapter-rules.yaml"),
    )?;
    let specs =
        surge_stack::hpa::load_all(&surge_stack::hpa::HPA_MANIFESTS.map(|p| repo().join(p)))?;
    for service in ["payment", "shipping"] {
        let hpa = &find(&production, "HorizontalPodAutoscaler", service)?["spec"];
        let scaled = &find(&keda, "ScaledObject", service)?["spec"];
        assert_eq!(scaled["scaleTargetRef"]["name"], json!(service));
        assert_eq!(scaled["minReplicaCount"], hpa["minReplicas"], "{service}");
        assert_eq!(scaled["maxReplicaCount"], hpa["maxReplicas"], "{service}");
        assert_eq!(
            scaled["advanced"]["horizontalPodAutoscalerConfig"]["behavior"], hpa["behavior"],
            "{service}"
        );
        let triggers = scaled["triggers"].as_array().cloned().unwrap_or_default();
        assert_eq!(triggers.len(), 2, "{service}");
        let cpu = &hpa["metrics"][0]["resource"]["target"]["averageUtilization"];
        assert_eq!(triggers[0]["type"], json!("cpu"));
        assert_eq!(triggers[0]["metadata"]["value"], json!(cpu.to_string()));
        let spec = specs
            .iter()
            .find(|s| s.workload == service)
            .context("spec")?;
        let lag = &spec.external[0];
        assert_eq!(triggers[1]["type"], json!("prometheus"));
        assert_eq!(triggers[1]["metricType"], json!("AverageValue"));
        assert_eq!(
            triggers[1]["metadata"]["query"],
            json!(rules.query(lag)?),
            "{service}: the adapter's query"
        );
        let threshold: f64 = triggers[1]["metadata"]["threshold"]
            .as_str()
            .unwrap_or_default()
            .parse()?;
        assert_eq!(threshold, lag.target, "{service}");
    }
    Ok(())
}

/// Each client of Kafka has its own KafkaUser whose ACLs grant exactly what it does: the
/// topics it publishes (its outbox's, and the dead letters of what it consumes), the topic it
/// consumes with its group; the exporter only describes. The listener requires a login over
/// TLS, and only those clients' pods may reach it.
#[test]
fn each_kafka_client_has_its_own_user_with_exactly_its_acls() -> anyhow::Result<()> {
    use surge_shop::topics::*;
    type Acl = (String, String, String);
    let acl = |kind: &str, name: &str, ops: &str| -> Acl {
        (kind.to_string(), name.to_string(), ops.to_string())
    };
    let pipeline = |group: &str, consumes: &str, dead_letters: &str, publishes: &[&str]| {
        let mut acls: BTreeSet<Acl> = publishes
            .iter()
            .chain([dead_letters].iter())
            .map(|t| acl("topic", t, "Write,Describe"))
            .collect();
        acls.insert(acl("topic", consumes, "Read,Describe"));
        acls.insert(acl("group", group, "Read"));
        acls
    };
    let expected: BTreeMap<&str, BTreeSet<Acl>> = BTreeMap::from([
        (
            "orders",
            pipeline(
                "orders",
                PAYMENT_PROCESSED,
                PAYMENT_PROCESSED_DLQ,
                &[ORDER_PLACED, SHIPPING_REQUEST],
            ),
        ),
        (
            "payment",
            pipeline(
                "payment",
                ORDER_PLACED,
                ORDER_PLACED_DLQ,
                &[PAYMENT_PROCESSED],
            ),
        ),
        (
            "shipping",
            pipeline("shipping", SHIPPING_REQUEST, SHIPPING_REQUEST_DLQ, &[]),
        ),
        (
            "surge-exporter",
            BTreeSet::from([
                acl("topic", "*", "Describe"),
                acl("group", "*", "Describe"),
                acl("cluster", "", "Describe"),
            ]),
        ),
    ]);
    let mut checked = 0;
    for (overlay, objects) in rendered()? {
        let mut users = BTreeMap::new();
        for user in of_kind(&objects, "KafkaUser") {
            assert_eq!(
                user["spec"]["authentication"]["type"], "scram-sha-512",
                "{overlay}"
            );
            let acls: BTreeSet<Acl> = user["spec"]["authorization"]["acls"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|a| {
                    let ops: Vec<&str> = a["operations"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .collect();
                    acl(
                        a["resource"]["type"].as_str().unwrap_or_default(),
                        a["resource"]["name"].as_str().unwrap_or_default(),
                        &ops.join(","),
                    )
                })
                .collect();
            users.insert(name(user).to_string(), acls);
        }
        let expected: BTreeMap<String, BTreeSet<Acl>> = expected
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        assert_eq!(users, expected, "{overlay}");
        let kafka = find(&objects, "Kafka", "shop-kafka")?;
        assert_eq!(kafka["spec"]["kafka"]["authorization"]["type"], "simple");
        let listeners = kafka["spec"]["kafka"]["listeners"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert_eq!(listeners.len(), 1, "{overlay}: one listener");
        let listener = &listeners[0];
        assert_eq!(listener["tls"], true, "{overlay}");
        assert_eq!(
            listener["authentication"]["type"], "scram-sha-512",
            "{overlay}"
        );
        let peers =
            listener["networkPolicyPeers"][0]["podSelector"]["matchExpressions"][0]["values"]
                .as_array()
                .cloned()
                .unwrap_or_default();
        assert_eq!(
            peers,
            ["orders", "payment", "shipping", "surge-exporter"]
                .map(Value::from)
                .to_vec(),
            "{overlay}"
        );
        // Each Kafka client logs in as itself.
        for service in ["orders", "payment", "shipping"] {
            let deployment = find(&objects, "Deployment", service)?;
            let container = &deployment["spec"]["template"]["spec"]["containers"][0];
            assert_eq!(
                env_of(container, "SHOP_KAFKA_USERNAME"),
                Some(service),
                "{overlay}"
            );
            let volumes = deployment["spec"]["template"]["spec"]["volumes"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            assert!(
                volumes.iter().any(|v| v["secret"]["secretName"] == service),
                "{overlay}: {service} does not mount its KafkaUser's Secret"
            );
        }
        checked += 1;
    }
    assert!(checked >= 2);
    Ok(())
}

/// Every container image of a workload in `objects`, with where it runs.
fn container_images(objects: &[Value]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for object in objects {
        for (at, pod) in declared_pods(object) {
            for list in ["initContainers", "containers"] {
                for container in pod[list].as_array().into_iter().flatten() {
                    if let Some(image) = container["image"].as_str() {
                        out.push((at.clone(), image.to_owned()));
                    }
                }
            }
        }
    }
    out
}

/// The images are ours by name, each with its Containerfile, and a user points them at their
/// own registry with kustomize `images:` in an overlay of theirs: every Surge image of every
/// overlay is named in the base's `images:`, and an overlay over production that renames them
/// leaves none of the originals.
#[test]
fn images_take_the_registry_from_kustomize_images() -> anyhow::Result<()> {
    let base: Value = serde_yaml_ng::from_str(&std::fs::read_to_string(
        stack_dir().join("k8s/base/kustomization.yaml"),
    )?)?;
    let named: BTreeSet<&str> = base["images"]
        .as_array()
        .context("the base lists its images")?
        .iter()
        .filter_map(|i| i["name"].as_str())
        .collect();
    // Each image has its own Containerfile, which builds only its binary.
    let containerfiles = [
        (
            "ghcr.io/surge-sre/shop",
            "stack/Containerfile",
            "-p surge-shop --bin shop",
        ),
        (
            "ghcr.io/surge-sre/surge-exporter",
            "exporter/Containerfile",
            "-p surge-exporter --bin surge-exporter",
        ),
    ];
    assert_eq!(
        named,
        containerfiles.iter().map(|(image, _, _)| *image).collect(),
        "the base's images: are not the images with a Containerfile"
    );
    for (image, file, build) in containerfiles {
        let text = std::fs::read_to_string(repo().join(file))?;
        let builds: Vec<&str> = text.lines().filter(|l| l.contains("cargo build")).collect();
        assert!(
            builds.len() == 1 && builds[0].trim_end().ends_with(build),
            "{file} ({image}) must build only {build}: {builds:?}"
        );
    }

    let mut ours = 0;
    for (overlay, objects) in rendered()? {
        for (at, image) in container_images(&objects) {
            if image.starts_with("ghcr.io/surge-sre/") {
                ours += 1;
                let name = image.split(':').next().unwrap_or_default();
                assert!(
                    named.contains(name),
                    "{overlay}: {at} runs {image}, not in the base's images:"
                );
            }
        }
    }
    assert!(
        ours >= 3 * 7,
        "only {ours} Surge containers in the overlays"
    );

    // A user's overlay: their registry and tag for both. Beside ours, since kustomize takes
    // only relative paths to a base.
    let dir = tempfile::tempdir_in(stack_dir().join("k8s/overlays"))?;
    std::fs::write(
        dir.path().join("kustomization.yaml"),
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nbases:\n  - ../production\nimages:\n  - name: ghcr.io/surge-sre/shop\n    newName: registry.example.com/team/shop\n    newTag: \"2026.12\"\n  - name: ghcr.io/surge-sre/surge-exporter\n    newName: registry.example.com/team/surge-exporter\n    newTag: \"2026.12\"\n",
    )?;
    let images = container_images(&k8s::render(dir.path())?);
    let mut moved = BTreeSet::new();
    for (at, image) in &images {
        assert!(
            !image.starts_with("ghcr.io/surge-sre/"),
            "{at} still runs {image}"
        );
        if image.starts_with("registry.example.com/team/") {
            moved.insert(image.as_str());
        }
    }
    assert_eq!(
        moved,
        BTreeSet::from([
            "registry.example.com/team/shop:2026.12",
            "registry.example.com/team/surge-exporter:2026.12"
        ])
    );
    Ok(())
}
