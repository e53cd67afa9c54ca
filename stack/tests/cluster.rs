//! What only a real cluster would show, proven offline on the rendered overlays: each test
//! reads the objects as the operator or controller that acts on them would (Strimzi's pod
//! security defaults, the HPA controller and kubectl's apply, KEDA's Prometheus scaler,
//! prometheus-operator's Alertmanager config generation), and each failed on the manifests
//! before issue 28.

use std::collections::BTreeSet;

use anyhow::Context;
use serde_json::{Value, json};
use surge_stack::hpa::{HpaState, Measured, load_all, proposals};

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
