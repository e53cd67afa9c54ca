//! Kubernetes source against the loopback API stand-in serving real-shaped JSON
//! (fixtures under tests/fixtures/kube, shaped like `kubectl get -o json`).

use surge_testkit::exporter as common;

use std::path::Path;
use std::time::Duration;

use common::Exporter;
use serde_json::Value;
use surge_testkit::kube_api::{self, KubeApiStandIn};

const FIXTURES: [&str; 4] = [
    "pods.json",
    "replicasets.json",
    "hpas.json",
    "podmetrics.json",
];

fn fixtures() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kube")
}

fn fixture(name: &str) -> anyhow::Result<Value> {
    Ok(serde_json::from_str(&std::fs::read_to_string(
        fixtures().join(name),
    )?)?)
}

fn loaded_stand_in() -> anyhow::Result<KubeApiStandIn> {
    let api = KubeApiStandIn::start()?;
    api.apply_files(&fixtures(), &FIXTURES)?;
    Ok(api)
}

fn exporter_for(api: &KubeApiStandIn, dir: &Path, namespaces: &str) -> anyhow::Result<Exporter> {
    let kubeconfig = dir.join("kubeconfig");
    api.write_kubeconfig(&kubeconfig)?;
    Exporter::from_toml(&format!(
        "[kubernetes]\ninterval = \"5s\"\ntimeout = \"3s\"\nnamespaces = {namespaces}\nkubeconfig = \"{}\"\n",
        kubeconfig.display()
    ))
}

const ORDERS: [(&str, &str); 2] = [("namespace", "shop"), ("workload", "orders")];
const PAYMENT: [(&str, &str); 2] = [("namespace", "shop"), ("workload", "payment")];

fn pod(name: &str) -> [(&'static str, &str); 2] {
    [("namespace", "shop"), ("pod", name)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn utilization_matches_a_hand_computed_hpa_ratio() -> anyhow::Result<()> {
    let api = loaded_stand_in()?;
    let dir = tempfile::tempdir()?;
    let exporter = exporter_for(&api, dir.path(), "[\"shop\", \"empty\"]")?;
    exporter.start().await;
    assert!(
        exporter.cycle().await,
        "{:?}",
        exporter.last_error("kubernetes", "shop")
    );

    // orders, by the HPA's groupPods rules:
    //   2xkqp ready, 455123456n -> 456m (rounded up) of 500m            counted
    //   7hvfm ready, 380m + 1250u -> 380m + 2m of 400m + 100m            counted
    //   x7r2d Ready=False but was ready for 2 h after start: the HPA still counts it, 300m of 500m
    //   9wzrt never became ready (unready 5 s after start)               unready
    //   pnd2w Pending                                                     unready
    //   btq8n ready, no PodMetrics yet                                    missing_metrics
    //   zz9lk being deleted                                               excluded
    // (456 + 382 + 300) / (500 + 500 + 500) = 0.7587, unrounded (the controller truncates
    // to 75 %: its status, surge_hpa_observed_cpu_utilization_ratio, is checked below).
    assert_eq!(
        exporter.value("surge_workload_cpu_utilization_ratio", &ORDERS),
        Some(1138.0 / 1500.0)
    );
    for (state, count) in [
        ("counted", 3.0),
        ("unready", 2.0),
        ("missing_metrics", 1.0),
        ("excluded", 1.0),
    ] {
        let mut labels = ORDERS.to_vec();
        labels.push(("state", state));
        assert_eq!(
            exporter.value("surge_workload_pods", &labels),
            Some(count),
            "{state}"
        );
    }
    assert_eq!(
        exporter.value("surge_workload_pods_without_cpu_request", &ORDERS),
        Some(0.0)
    );
    // Per-pod series: readiness as Kubernetes reports it; no usage series for a pod without metrics.
    assert_eq!(
        exporter.value("surge_pod_ready", &pod("orders-6d4cf56db6-x7r2d")),
        Some(0.0)
    );
    assert_eq!(
        exporter.value("surge_pod_ready", &pod("orders-6d4cf56db6-btq8n")),
        Some(1.0)
    );
    assert_eq!(
        exporter.value("surge_pod_cpu_usage_cores", &pod("orders-6d4cf56db6-btq8n")),
        None
    );
    let usage = exporter
        .value("surge_pod_cpu_usage_cores", &pod("orders-6d4cf56db6-7hvfm"))
        .unwrap_or(0.0);
    assert!((usage - 0.38125).abs() < 1e-9, "{usage}");
    assert_eq!(
        exporter.value(
            "surge_pod_cpu_request_cores",
            &pod("orders-6d4cf56db6-7hvfm")
        ),
        Some(0.5)
    );

    // Memory, by the HPA's rules for resources other than CPU: every running pod with a
    // metric counts, ready or not; the deleting zz9lk and the pending pnd2w do not.
    //   2xkqp 307200Ki = 300Mi of 256Mi, 7hvfm 200Mi + 40Mi of 2 x 256Mi, 9wzrt 100Mi of 256Mi,
    //   x7r2d 480Mi of 256Mi: 1120 * 100 / 1280 = 87.5 -> 87 %.
    assert_eq!(
        exporter.value("surge_workload_memory_utilization_ratio", &ORDERS),
        Some(0.87)
    );
    let mib = |n: f64| Some(n * 1_048_576.0);
    for (name, working_set, request, limit) in [
        (
            "orders-6d4cf56db6-2xkqp",
            mib(300.0),
            mib(256.0),
            mib(512.0),
        ),
        (
            "orders-6d4cf56db6-7hvfm",
            mib(240.0),
            mib(512.0),
            mib(1024.0),
        ),
        ("orders-6d4cf56db6-btq8n", None, mib(256.0), mib(512.0)),
    ] {
        let labels = pod(name);
        let read = |family: &str| exporter.value(family, &labels);
        assert_eq!(
            read("surge_pod_memory_working_set_bytes"),
            working_set,
            "{name}"
        );
        assert_eq!(read("surge_pod_memory_request_bytes"), request, "{name}");
        assert_eq!(read("surge_pod_memory_limit_bytes"), limit, "{name}");
    }
    // payment: fghij asks for nothing, so only abcde's 128Mi of 256Mi enters the ratio.
    assert_eq!(
        exporter.value("surge_workload_memory_utilization_ratio", &PAYMENT),
        Some(0.5)
    );
    assert_eq!(
        exporter.value(
            "surge_pod_memory_limit_bytes",
            &pod("payment-7c9d8f7b5-fghij")
        ),
        None
    );

    // payment: one pod has no CPU request. It is reported, and left out of the ratio:
    // 200 / 250 = 0.8.
    assert_eq!(
        exporter.value("surge_workload_cpu_utilization_ratio", &PAYMENT),
        Some(0.8)
    );
    assert_eq!(
        exporter.value("surge_workload_pods_without_cpu_request", &PAYMENT),
        Some(1.0)
    );
    assert_eq!(
        exporter.value(
            "surge_pod_cpu_request_cores",
            &pod("payment-7c9d8f7b5-fghij")
        ),
        None
    );

    // HPA state, including the one at max with ScalingLimited.
    let hpa = |name: &'static str| [("namespace", "shop"), ("hpa", name)];
    assert_eq!(
        exporter.value("surge_hpa_current_replicas", &hpa("orders")),
        Some(6.0)
    );
    assert_eq!(
        exporter.value("surge_hpa_max_replicas", &hpa("orders")),
        Some(6.0)
    );
    assert_eq!(
        exporter.value("surge_hpa_min_replicas", &hpa("orders")),
        Some(2.0)
    );
    assert_eq!(
        exporter.value("surge_hpa_scaling_limited", &hpa("orders")),
        Some(1.0)
    );
    assert_eq!(
        exporter.value("surge_hpa_target_cpu_utilization_ratio", &hpa("orders")),
        Some(0.7)
    );
    assert_eq!(
        exporter.value("surge_hpa_observed_cpu_utilization_ratio", &hpa("orders")),
        Some(0.75)
    );
    assert_eq!(
        exporter.value("surge_hpa_desired_replicas", &hpa("payment")),
        Some(9.0)
    );
    // Every metric of the HPA, not only CPU: payment's lag (External, AverageValue 1k per
    // replica) at 4,200 per replica asks for ceil(2 × 4.2) = 9; its CPU, 80% of a 70% target,
    // for ceil(2 × 1.14) = 3. The HPA follows the larger: the lag decides.
    let lag = r#"surge_kafka_group_topic_lag{group="payment",topic="order-placed"}"#;
    let metric = |name: &'static str| {
        [
            ("namespace", "shop"),
            ("hpa", "payment"),
            ("metric_name", name),
        ]
    };
    assert_eq!(
        exporter.value("surge_hpa_metric_target", &metric(lag)),
        Some(1000.0)
    );
    assert_eq!(
        exporter.value("surge_hpa_metric_current", &metric(lag)),
        Some(4200.0)
    );
    assert_eq!(
        exporter.value("surge_hpa_metric_proposed_replicas", &metric(lag)),
        Some(9.0)
    );
    assert_eq!(
        exporter.value("surge_hpa_metric_proposed_replicas", &metric("cpu")),
        Some(3.0)
    );
    assert_eq!(
        exporter.value("surge_hpa_metric_deciding", &metric(lag)),
        Some(1.0)
    );
    assert_eq!(
        exporter.value("surge_hpa_metric_deciding", &metric("cpu")),
        Some(0.0)
    );
    assert_eq!(
        exporter.value(
            "surge_hpa_metric_target",
            &[
                ("hpa", "payment"),
                ("metric_type", "external"),
                ("target_type", "average_value")
            ]
        ),
        Some(1000.0)
    );
    // An HPA whose status does not mention a metric yet has its target, no current value.
    assert_eq!(
        exporter.value(
            "surge_hpa_metric_current",
            &[("hpa", "shipping"), ("metric_name", "cpu")]
        ),
        None
    );
    assert_eq!(
        exporter.value(
            "surge_hpa_metric_target",
            &[("hpa", "shipping"), ("metric_name", "cpu")]
        ),
        Some(0.8)
    );
    assert_eq!(
        exporter.value("surge_hpa_scaling_limited", &hpa("payment")),
        Some(0.0)
    );
    assert_eq!(
        exporter.value("surge_hpa_min_replicas", &hpa("shipping")),
        Some(1.0),
        "minReplicas defaults to 1"
    );
    assert_eq!(
        exporter.value(
            "surge_hpa_current_replicas",
            &[("hpa", "orders"), ("workload", "orders")]
        ),
        Some(6.0)
    );
    assert_eq!(exporter.up("kubernetes", "empty"), Some(true));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_keep_api_load_flat_and_see_changes() -> anyhow::Result<()> {
    let api = loaded_stand_in()?;
    let dir = tempfile::tempdir()?;
    let exporter = exporter_for(&api, dir.path(), "[\"shop\"]")?;
    exporter.start().await;
    for _ in 0..4 {
        assert!(
            exporter.cycle().await,
            "{:?}",
            exporter.last_error("kubernetes", "shop")
        );
    }
    let requests = api.requests();
    let count = |suffix: &str, watch: bool| {
        requests
            .iter()
            .filter(|r| r.path.ends_with(suffix) && r.watch == watch)
            .count()
    };
    // One LIST and one WATCH per watched kind, whatever the number of cycles; PodMetrics
    // (which cannot be watched) once per cycle.
    assert_eq!(
        count("/api/v1/namespaces/shop/pods", false),
        1,
        "{requests:#?}"
    );
    assert_eq!(
        count("/api/v1/namespaces/shop/pods", true),
        1,
        "{requests:#?}"
    );
    assert_eq!(count("/apis/apps/v1/namespaces/shop/replicasets", false), 1);
    assert_eq!(
        count(
            "/apis/autoscaling/v2/namespaces/shop/horizontalpodautoscalers",
            false
        ),
        1
    );
    assert_eq!(
        count("/apis/metrics.k8s.io/v1beta1/namespaces/shop/pods", false),
        4
    );

    // The never-ready pod turns ready and gets counted: seen through the watch, no new LIST.
    let mut pods = fixture("pods.json")?;
    let items = pods["items"]
        .as_array_mut()
        .ok_or_else(|| anyhow::anyhow!("items"))?;
    let pod = items
        .iter_mut()
        .find(|p| p["metadata"]["name"] == "orders-6d4cf56db6-9wzrt")
        .ok_or_else(|| anyhow::anyhow!("fixture pod"))?;
    for condition in pod["status"]["conditions"]
        .as_array_mut()
        .into_iter()
        .flatten()
    {
        if condition["type"] == "Ready" || condition["type"] == "ContainersReady" {
            condition["status"] = "True".into();
            condition["lastTransitionTime"] = "2026-11-27T21:41:00Z".into();
        }
    }
    api.apply(pod)?;
    // (456 + 382 + 300 + 20) / 2000 = 0.579.
    surge_servers::wait_until(
        "watch event applied",
        Duration::from_secs(5),
        Duration::from_millis(50),
        || {
            let rt = tokio::runtime::Handle::current();
            let ok = tokio::task::block_in_place(|| rt.block_on(exporter.cycle()));
            Ok(ok
                && exporter.value("surge_workload_cpu_utilization_ratio", &ORDERS)
                    == Some(1158.0 / 2000.0))
        },
    )?;
    assert_eq!(
        api.requests()
            .iter()
            .filter(|r| r.path.ends_with("/api/v1/namespaces/shop/pods") && !r.watch)
            .count(),
        1
    );

    // metrics-server outage: HPA and pod series stay, CPU goes away, and it says so.
    api.set_failure(&kube_api::pod_metrics(), Some(503));
    assert!(
        exporter.cycle().await,
        "{:?}",
        exporter.last_error("kubernetes", "shop")
    );
    assert_eq!(
        exporter.value(
            "surge_kubernetes_pod_metrics_available",
            &[("target", "shop")]
        ),
        Some(0.0)
    );
    assert_eq!(
        exporter.value("surge_workload_cpu_utilization_ratio", &ORDERS),
        None
    );
    assert_eq!(
        exporter.value("surge_hpa_current_replicas", &[("hpa", "orders")]),
        Some(6.0)
    );
    api.set_failure(&kube_api::pod_metrics(), None);
    assert!(exporter.cycle().await);
    assert_eq!(
        exporter.value(
            "surge_kubernetes_pod_metrics_available",
            &[("target", "shop")]
        ),
        Some(1.0)
    );

    // The API server itself gone: this target is down; nothing panics.
    drop(api);
    assert!(!exporter.cycle().await);
    assert_eq!(exporter.up("kubernetes", "shop"), Some(false));
    Ok(())
}

#[tokio::test]
async fn malformed_quantity_from_the_api_is_an_error_not_a_number() -> anyhow::Result<()> {
    let api = loaded_stand_in()?;
    let mut bad = fixture("podmetrics.json")?;
    bad["items"][0]["containers"][0]["usage"]["cpu"] = "lots".into();
    api.apply(&bad)?;
    let dir = tempfile::tempdir()?;
    let exporter = exporter_for(&api, dir.path(), "[\"shop\"]")?;
    exporter.start().await;
    assert!(!exporter.cycle().await);
    let error = exporter
        .last_error("kubernetes", "shop")
        .unwrap_or_default();
    assert!(error.contains("invalid quantity \"lots\""), "{error}");
    assert_eq!(
        exporter.value("surge_workload_cpu_utilization_ratio", &ORDERS),
        None
    );
    Ok(())
}

#[tokio::test]
async fn missing_kubeconfig_marks_the_source_down_only() -> anyhow::Result<()> {
    let exporter = Exporter::from_toml(
        "[kubernetes]\nnamespaces = [\"shop\"]\nkubeconfig = \"/nonexistent/kubeconfig\"\n",
    )?;
    exporter.start().await;
    assert!(!exporter.cycle().await);
    let error = exporter
        .last_error("kubernetes", "shop")
        .unwrap_or_default();
    assert!(error.contains("/nonexistent/kubeconfig"), "{error}");
    Ok(())
}
