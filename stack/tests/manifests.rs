//! The Kubernetes manifests validate offline against the Kubernetes schemas
//! (`kubernetes-validate --strict`); custom resources whose schemas are not available offline
//! (Strimzi, CloudNativePG, Prometheus Operator) are listed as unchecked rather than ignored.

use std::path::{Path, PathBuf};
use std::process::Command;

fn base() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("k8s/base")
}

/// Kinds from CRDs: no schema offline, so not validated (README says so).
const UNCHECKED: [&str; 5] = [
    "ServiceMonitor",
    "Cluster",
    "KafkaNodePool",
    "Kafka",
    "KafkaTopic",
];

#[test]
fn manifests_pass_strict_schema_validation() -> anyhow::Result<()> {
    let kustomization = std::fs::read_to_string(base().join("kustomization.yaml"))?;
    let files: Vec<String> = kustomization
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- "))
        .map(str::to_string)
        .collect();
    assert!(files.len() >= 7, "{files:?}");
    for file in &files {
        assert!(
            base().join(file).is_file(),
            "kustomization lists missing {file}"
        );
    }
    let out = Command::new("kubernetes-validate")
        .arg("--strict")
        .args(files.iter().map(|f| base().join(f)))
        .output()
        .map_err(|e| {
            anyhow::anyhow!("kubernetes-validate not found ({e}); run scripts/install-deps")
        })?;
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{report}");
    let passed = report
        .lines()
        .filter(|l| l.contains(" passed for resource "))
        .count();
    assert!(passed >= 20, "only {passed} resources validated:\n{report}");
    for line in report
        .lines()
        .filter(|l| l.starts_with("WARN") || l.starts_with("ERROR"))
    {
        let known = UNCHECKED
            .iter()
            .any(|k| line.contains(&format!("schema for kind {k} ")));
        assert!(known, "unexpected finding: {line}");
    }
    Ok(())
}

#[test]
fn hpas_cover_every_service_with_the_documented_bounds() -> anyhow::Result<()> {
    let specs = surge_stack::hpa::load_manifests(&base().join("hpa.yaml"))?;
    let mut workloads: Vec<&str> = specs.iter().map(|s| s.workload.as_str()).collect();
    workloads.sort();
    assert_eq!(
        workloads,
        ["auth", "catalog", "orders", "payment", "shipping"]
    );
    for s in &specs {
        assert_eq!((s.min, s.max, s.target), (2, 10, 0.7), "{}", s.name);
    }
    Ok(())
}

#[test]
fn exporter_rbac_is_the_same_in_both_places() -> anyhow::Result<()> {
    let rules = |path: PathBuf| -> anyhow::Result<Vec<serde_json::Value>> {
        let text = std::fs::read_to_string(&path)?;
        let mut out = Vec::new();
        for doc in text.split("\n---") {
            let value: serde_json::Value =
                serde_yaml_ng::from_str(doc).unwrap_or(serde_json::Value::Null);
            if value["kind"] == "Role" {
                out.push(value["rules"].clone());
            }
        }
        Ok(out)
    };
    let standalone = rules(Path::new(env!("CARGO_MANIFEST_DIR")).join("../exporter/rbac.yaml"))?;
    let in_stack = rules(base().join("surge-exporter.yaml"))?;
    assert_eq!(standalone.len(), 1);
    assert_eq!(standalone, in_stack);
    Ok(())
}

/// The local stack's replicas ask for what the Deployments ask for, so the panel's CPU and
/// memory shares mean the same on a laptop and on a cluster.
#[test]
fn local_replicas_request_what_the_deployments_request() -> anyhow::Result<()> {
    let text = std::fs::read_to_string(base().join("shop.yaml"))?;
    let mut deployments = 0;
    for document in text.split("\n---") {
        let value: serde_json::Value = serde_yaml_ng::from_str(document)?;
        if value["kind"] != "Deployment" {
            continue;
        }
        deployments += 1;
        let name = value["metadata"]["name"].clone();
        let resources = &value["spec"]["template"]["spec"]["containers"][0]["resources"];
        let cpu_request = format!("{}m", surge_stack::stack::CPU_REQUEST_MILLIS);
        assert_eq!(resources["requests"]["cpu"], cpu_request.as_str(), "{name}");
        assert_eq!(
            resources["requests"]["memory"],
            surge_stack::stack::MEMORY_REQUEST,
            "{name}"
        );
        assert_eq!(
            resources["limits"]["memory"],
            surge_stack::stack::MEMORY_LIMIT,
            "{name}"
        );
    }
    assert_eq!(deployments, surge_stack::replicas::SERVICES.len());
    Ok(())
}
