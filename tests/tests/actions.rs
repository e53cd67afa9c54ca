//! The actions' engine against what it acts on: the Kubernetes actions through kube-rs
//! against the API stand-in (the one stand-in: no cluster runs here), checked by the
//! requests it served — their paths, verbs, patch types and bodies — and by the objects it
//! holds afterwards; the dead-letter redrive against the real broker (tansu).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use serde_json::{Value, json};
use surge_client::act::dead_letters::broker::{Broker, KafkaAccess, ledger_topic};
use surge_client::act::dead_letters::{Filter, LetterId, REDRIVE_HEADER, Selection};
use surge_client::act::workload::{RESTARTED_AT, Workloads};
use surge_client::act::{Action, WorkloadKind};
use surge_client::fetch::kube::Cluster;
use surge_servers::KafkaBroker;
use surge_testkit::kafka::BrokerClients;
use surge_testkit::kube_api::{self, KubeApiStandIn, Verb};

const NOW: &str = "2026-12-07T21:40:07Z";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// The shop's namespace: payment scaled by an HPA at its ceiling, cart without one.
fn shop(api: &KubeApiStandIn) -> anyhow::Result<()> {
    let deployment = |name: &str, replicas: i64| {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": "shop", "generation": 1},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
                "template": {"metadata": {"labels": {"app.kubernetes.io/name": name}}, "spec": {"containers": [{"name": name, "image": "shop"}]}},
            },
            "status": {"replicas": replicas},
        })
    };
    api.apply(&deployment("payment", 10))?;
    api.apply(&deployment("cart", 2))?;
    api.apply(&json!({
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "payment", "namespace": "shop"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "payment"},
            "minReplicas": 2, "maxReplicas": 10,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}],
        },
        "status": {"currentReplicas": 10, "desiredReplicas": 10},
    }))
}

async fn workloads(api: &KubeApiStandIn, dir: &std::path::Path) -> Workloads {
    let kubeconfig = dir.join("kubeconfig");
    api.write_kubeconfig(&kubeconfig).expect("kubeconfig");
    let cluster = Cluster::connect_with(&kubeconfig, "stand-in", Duration::from_secs(10))
        .await
        .expect("connect");
    Workloads::new(cluster)
}

/// The writes the stand-in served (everything but reads), as (method, path, content type,
/// body).
fn writes(api: &KubeApiStandIn) -> Vec<(String, String, String, Value)> {
    api.requests()
        .into_iter()
        .filter(|r| r.method != "GET")
        .map(|r| {
            (
                r.method,
                r.path,
                r.content_type.unwrap_or_default(),
                serde_json::from_str(&r.body).unwrap_or(Value::Null),
            )
        })
        .collect()
}

fn is_review_of(body: &Value, verb: &str, resource: &str, subresource: Option<&str>) -> bool {
    let a = &body["spec"]["resourceAttributes"];
    a["verb"] == verb
        && a["resource"] == resource
        && a["namespace"] == "shop"
        && a["subresource"].as_str() == subresource
}

#[test]
fn hpa_bounds_scale_and_restart_send_the_request_shapes_kubectl_sends() -> anyhow::Result<()> {
    let api = KubeApiStandIn::start()?;
    shop(&api)?;
    api.set_username("alice@example.com");
    let dir = tempfile::tempdir()?;
    runtime().block_on(async {
        let act = workloads(&api, dir.path()).await;
        assert_eq!(act.who().await.as_deref(), Some("alice@example.com"));

        // Raise the ceiling: read, reviewed, patched, read back.
        let raise = Action::HpaBounds {
            namespace: "shop".into(),
            name: "payment".into(),
            min: None,
            max: Some(16),
        };
        let plan = act.plan(&raise, NOW).await.expect("plan");
        let shown: Vec<String> = plan.changes.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["minReplicas: 2 → 2", "maxReplicas: 10 → 16"]);
        assert!(plan.ready() && !plan.destructive && plan.missing.is_empty());
        assert_eq!(plan.undo, "set the bounds back to 2–10");
        let before = writes(&api).len();
        let applied = act.apply(&plan, NOW).await.expect("apply");
        assert_eq!(applied.changes[1].to_string(), "maxReplicas: 10 → 16");
        let hpa = api
            .object(&kube_api::hpas(), "shop", "payment")
            .expect("hpa");
        assert_eq!((hpa["spec"]["minReplicas"].clone(), hpa["spec"]["maxReplicas"].clone()), (json!(2), json!(16)));
        let sent = writes(&api);
        let (method, path, kind, body) = sent.last().expect("a write").clone();
        assert_eq!(
            (method.as_str(), path.as_str(), kind.as_str()),
            (
                "PATCH",
                "/apis/autoscaling/v2/namespaces/shop/horizontalpodautoscalers/payment",
                "application/merge-patch+json"
            )
        );
        assert_eq!(body, json!({"spec": {"minReplicas": 2, "maxReplicas": 16}}));
        // The permission was asked before the write, for exactly this verb and resource.
        assert!(
            sent[before..]
                .iter()
                .any(|(m, p, _, b)| m == "POST"
                    && p.ends_with("/selfsubjectaccessreviews")
                    && is_review_of(b, "patch", "horizontalpodautoscalers", None)
                    && b["spec"]["resourceAttributes"]["group"] == "autoscaling"),
            "{sent:#?}"
        );

        // Lowering the ceiling below the replicas running takes pods away: destructive.
        let lower = Action::HpaBounds {
            namespace: "shop".into(),
            name: "payment".into(),
            min: None,
            max: Some(4),
        };
        let plan = act.plan(&lower, NOW).await.expect("plan");
        assert!(plan.destructive);
        assert_eq!(plan.confirm_word(), Some("payment"));
        assert_eq!(plan.notes, ["10 replicas run now: the HPA will remove 6 of them"]);
        let e = act
            .plan(
                &Action::HpaBounds {
                    namespace: "shop".into(),
                    name: "payment".into(),
                    min: Some(8),
                    max: Some(4),
                },
                NOW,
            )
            .await
            .expect_err("max below min");
        assert!(e.contains("maxReplicas (4) must not be below minReplicas (8)"), "{e}");

        // A Deployment an HPA scales is not scaled by hand: the HPA would undo it.
        let e = act
            .plan(
                &Action::Scale {
                    namespace: "shop".into(),
                    kind: WorkloadKind::Deployment,
                    name: "payment".into(),
                    replicas: 3,
                },
                NOW,
            )
            .await
            .expect_err("scaled by an HPA");
        assert_eq!(
            e,
            "deployment shop/payment is scaled by horizontalpodautoscaler shop/payment: set its bounds instead"
        );

        // cart has no HPA: the scale subresource.
        let scale = Action::Scale {
            namespace: "shop".into(),
            kind: WorkloadKind::Deployment,
            name: "cart".into(),
            replicas: 3,
        };
        let plan = act.plan(&scale, NOW).await.expect("plan");
        assert_eq!(plan.changes[0].to_string(), "replicas: 2 → 3");
        assert!(!plan.destructive);
        let applied = act.apply(&plan, NOW).await.expect("scale");
        assert_eq!(applied.changes[0].after, "3");
        let (method, path, kind, body) = writes(&api).last().expect("a write").clone();
        assert_eq!(
            (method.as_str(), path.as_str(), kind.as_str()),
            (
                "PATCH",
                "/apis/apps/v1/namespaces/shop/deployments/cart/scale",
                "application/merge-patch+json"
            )
        );
        assert_eq!(body, json!({"spec": {"replicas": 3}}));
        let cart = api
            .object(&kube_api::deployments(), "shop", "cart")
            .expect("cart");
        assert_eq!(cart["spec"]["replicas"], 3);

        // A rollout restart: kubectl's annotation, by strategic merge patch; always typed.
        let restart = Action::Restart {
            namespace: "shop".into(),
            kind: WorkloadKind::Deployment,
            name: "cart".into(),
        };
        let plan = act.plan(&restart, NOW).await.expect("plan");
        assert!(plan.destructive);
        assert_eq!(plan.confirm_word(), Some("cart"));
        assert_eq!(plan.changes[0].before, "(never restarted)");
        act.apply(&plan, NOW).await.expect("restart");
        let (method, path, kind, body) = writes(&api).last().expect("a write").clone();
        assert_eq!(
            (method.as_str(), path.as_str(), kind.as_str()),
            (
                "PATCH",
                "/apis/apps/v1/namespaces/shop/deployments/cart",
                "application/strategic-merge-patch+json"
            )
        );
        assert_eq!(
            body,
            json!({"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: NOW}}}}})
        );
        let cart = api
            .object(&kube_api::deployments(), "shop", "cart")
            .expect("cart");
        assert_eq!(cart["spec"]["template"]["metadata"]["annotations"][RESTARTED_AT], NOW);
        assert_eq!(cart["metadata"]["generation"], 3, "scale and restart each change the spec");
    });
    Ok(())
}

#[test]
fn a_missing_permission_or_a_moved_target_stops_the_action_before_any_write() -> anyhow::Result<()>
{
    let api = KubeApiStandIn::start()?;
    shop(&api)?;
    let dir = tempfile::tempdir()?;
    runtime().block_on(async {
        let act = workloads(&api, dir.path()).await;
        // Who acts, when the server knows no name: the kubeconfig user.
        api.set_username("");
        assert_eq!(act.who().await.as_deref(), Some("tester"));
        api.set_username("bob");

        api.deny(Verb::Patch, "autoscaling", "horizontalpodautoscalers", "");
        api.deny(Verb::Patch, "apps", "deployments", "scale");
        let raise = Action::HpaBounds {
            namespace: "shop".into(),
            name: "payment".into(),
            min: None,
            max: Some(16),
        };
        let plan = act.plan(&raise, NOW).await.expect("plan");
        assert!(!plan.ready());
        let said: Vec<String> = plan.missing.iter().map(ToString::to_string).collect();
        assert_eq!(
            said,
            ["may not patch horizontalpodautoscalers.autoscaling in namespace shop (user \"bob\" has no role granting it)"]
        );
        let e = act.apply(&plan, NOW).await.expect_err("refused");
        assert!(e.starts_with("may not patch horizontalpodautoscalers.autoscaling"), "{e}");
        let plan = act
            .plan(
                &Action::Scale {
                    namespace: "shop".into(),
                    kind: WorkloadKind::Deployment,
                    name: "cart".into(),
                    replicas: 1,
                },
                NOW,
            )
            .await
            .expect("plan");
        assert_eq!(plan.missing[0].resource, "deployments.apps/scale");
        assert!(plan.destructive, "2 → 1 takes a pod away");
        // The restart needs patch on the deployment itself, which is allowed.
        let plan = act
            .plan(
                &Action::Restart {
                    namespace: "shop".into(),
                    kind: WorkloadKind::Deployment,
                    name: "cart".into(),
                },
                NOW,
            )
            .await
            .expect("plan");
        assert!(plan.missing.is_empty());
        assert!(
            !writes(&api).iter().any(|(m, ..)| m == "PATCH"),
            "nothing was written: {:#?}",
            writes(&api)
        );

        // Planned at 10, someone else set 12 before the confirm: nothing is done.
        let other = Action::HpaBounds {
            namespace: "shop".into(),
            name: "cart-missing".into(),
            min: None,
            max: Some(3),
        };
        let e = act.plan(&other, NOW).await.expect_err("no such HPA");
        assert!(
            e.starts_with("reading horizontalpodautoscaler shop/cart-missing: 404 NotFound"),
            "{e}"
        );
    });
    // A second stand-in, everything allowed, to see a stale plan refused.
    let api = KubeApiStandIn::start()?;
    shop(&api)?;
    runtime().block_on(async {
        let act = workloads(&api, dir.path()).await;
        let raise = Action::HpaBounds {
            namespace: "shop".into(),
            name: "payment".into(),
            min: None,
            max: Some(16),
        };
        let plan = act.plan(&raise, NOW).await.expect("plan");
        let mut hpa = api.object(&kube_api::hpas(), "shop", "payment").expect("hpa");
        hpa["spec"]["maxReplicas"] = json!(12);
        api.apply(&hpa).expect("someone else");
        let e = act.apply(&plan, NOW).await.expect_err("stale");
        assert_eq!(
            e,
            "horizontalpodautoscaler shop/payment changed since the plan (maxReplicas is 12 now, not 10): nothing done, look again"
        );
        assert!(!writes(&api).iter().any(|(m, ..)| m == "PATCH"));
    });
    Ok(())
}

/// A dead letter as the shop writes it.
fn shop_letter(order: usize, error: &str) -> (String, String, Vec<(&'static str, String)>) {
    let original = json!({"order_id": format!("order-{order}"), "total_cents": 100});
    let letter = json!({
        "error": error, "source_topic": "orders-in", "partition": 0, "offset": order,
        "attempts": 1, "original": original,
    });
    (
        format!("order-{order}"),
        letter.to_string(),
        vec![
            ("error", error.to_owned()),
            ("source-topic", "orders-in".to_owned()),
            ("source-partition", "0".to_owned()),
            ("source-offset", order.to_string()),
            ("attempts", "1".to_owned()),
        ],
    )
}

/// `orders-in` (2 partitions) and its dead-letter topic holding 12 letters as the shop writes
/// them: 8 malformed (the bug to be fixed: orders 0, 1, 3, 4, 6, 7, 9, 10), 4 for unknown
/// orders (to stay).
fn dead_letters(broker: &KafkaBroker) -> anyhow::Result<()> {
    use rdkafka::message::{Header, OwnedHeaders};
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    broker.create_topic("orders-in", 2)?;
    broker.create_topic("orders-in.dlq", 2)?;
    let producer: BaseProducer = broker.client_config().create()?;
    for order in 0..12 {
        let error = if order % 3 == 2 {
            "unknown order"
        } else {
            "malformed order-placed message: missing field `currency`"
        };
        let (key, body, headers) = shop_letter(order, error);
        let mut owned = OwnedHeaders::new();
        for (k, v) in &headers {
            owned = owned.insert(Header {
                key: k,
                value: Some(v.as_str()),
            });
        }
        producer
            .send(
                BaseRecord::to("orders-in.dlq")
                    .partition(i32::try_from(order % 2)?)
                    .key(&key)
                    .payload(&body)
                    .headers(owned),
            )
            .map_err(|(e, _)| anyhow::anyhow!("{e}"))?;
    }
    producer.flush(Duration::from_secs(30))?;
    Ok(())
}

#[test]
fn a_redrive_republishes_each_letter_once_keeps_the_letters_and_resumes() -> anyhow::Result<()> {
    use rdkafka::Message;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Headers;

    let broker = KafkaBroker::start()?;
    dead_letters(&broker)?;
    let dlq = Broker::new(
        &KafkaAccess {
            bootstrap: broker.bootstrap(),
            properties: Vec::new(),
        },
        Duration::from_secs(10),
    );
    let rt = runtime();
    let look = rt
        .block_on(dlq.browse("orders-in.dlq", 5))
        .map_err(anyhow::Error::msg)?;
    assert_eq!(look.total, 12);
    assert_eq!(look.letters.len(), 5, "the newest five");
    assert!(look.redriven.is_empty());
    let first = &look.letters[0];
    assert_eq!(first.source_topic.as_deref(), Some("orders-in"));
    assert_eq!(first.attempts, Some(1));
    assert!(
        first.original_text().starts_with(r#"{"order_id":"order-"#),
        "{first:?}"
    );
    let e = rt
        .block_on(dlq.browse("no-such.dlq", 5))
        .expect_err("missing topic");
    assert_eq!(e, "topic no-such.dlq does not exist on the broker");

    let malformed = Selection::Matching(Filter {
        error_contains: Some("malformed".into()),
        source_topic: None,
    });
    // Stopped after three: the ledger holds three, the next run resumes with five.
    let stop = Arc::new(AtomicBool::new(false));
    let stopper = Arc::clone(&stop);
    let first_run = rt
        .block_on(
            dlq.redrive("orders-in.dlq", &malformed, 50, "alice", stop, move |p| {
                if p.moved == 3 {
                    stopper.store(true, std::sync::atomic::Ordering::Relaxed);
                }
            }),
        )
        .map_err(anyhow::Error::msg)?;
    assert_eq!(
        (first_run.selected, first_run.moved, first_run.left()),
        (8, 3, 5)
    );
    let started = std::time::Instant::now();
    let second = rt
        .block_on(dlq.redrive(
            "orders-in.dlq",
            &malformed,
            10,
            "alice",
            Arc::default(),
            |_| {},
        ))
        .map_err(anyhow::Error::msg)?;
    let took = started.elapsed();
    assert_eq!((second.moved, second.already, second.left()), (5, 3, 0));
    // Five at 10 a second: the first at once, then four gaps of 100 ms.
    assert!(
        took >= Duration::from_millis(400),
        "the rate was not kept: {took:?}"
    );
    let third = rt
        .block_on(dlq.redrive(
            "orders-in.dlq",
            &malformed,
            10,
            "alice",
            Arc::default(),
            |_| {},
        ))
        .map_err(anyhow::Error::msg)?;
    assert_eq!(
        (third.moved, third.already),
        (0, 8),
        "a second redrive moves nothing"
    );

    // The source topic got each malformed letter's original once, marked; the letters stay.
    let consumer: BaseConsumer = broker
        .consumer_config("actions-test-reader")
        .set("enable.auto.commit", "false")
        .create()?;
    consumer.subscribe(&["orders-in"])?;
    let mut got = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while got.len() < 8 && std::time::Instant::now() < deadline {
        if let Some(message) = consumer.poll(Duration::from_millis(200)) {
            let message = message?;
            let marker = message
                .headers()
                .and_then(|h| h.iter().find(|h| h.key == REDRIVE_HEADER))
                .and_then(|h| h.value)
                .map(|v| String::from_utf8_lossy(v).into_owned());
            let body: Value = serde_json::from_slice(message.payload().unwrap_or_default())?;
            let key = String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned();
            got.push((key, body, marker));
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    while let Some(extra) = consumer.poll(Duration::from_millis(200)) {
        let extra = extra?;
        got.push((
            String::new(),
            Value::Null,
            Some(format!("unexpected at {}", extra.offset())),
        ));
    }
    assert_eq!(got.len(), 8, "{got:#?}");
    let orders: BTreeSet<String> = got.iter().map(|(k, _, _)| k.clone()).collect();
    let expected: BTreeSet<String> = (0..12)
        .filter(|o| o % 3 != 2)
        .map(|o| format!("order-{o}"))
        .collect();
    assert_eq!(
        orders, expected,
        "each malformed letter once, under its key"
    );
    for (key, body, marker) in &got {
        assert_eq!(
            body["order_id"],
            key.as_str(),
            "the original, not the envelope"
        );
        assert!(
            marker
                .as_deref()
                .is_some_and(|m| m.starts_with("orders-in.dlq/")),
            "{marker:?}"
        );
    }
    let kept = rt
        .block_on(dlq.browse("orders-in.dlq", 100))
        .map_err(anyhow::Error::msg)?;
    assert_eq!(kept.total, 12, "the dead letters are kept");
    assert_eq!(kept.redriven.len(), 8);
    assert_eq!(
        surge_testkit::kafka::records(&broker, &ledger_topic("orders-in.dlq"))?,
        8
    );

    // Picked letters: one of the unknown-order ones, and one already moved (skipped).
    let unknown = kept
        .letters
        .iter()
        .find(|l| l.error.as_deref() == Some("unknown order"))
        .map(|l| l.id)
        .expect("an unknown-order letter");
    let moved_one: LetterId = *kept.redriven.iter().next().expect("one moved");
    let picked = rt
        .block_on(dlq.redrive(
            "orders-in.dlq",
            &Selection::Picked([unknown, moved_one].into()),
            10,
            "alice",
            Arc::default(),
            |_| {},
        ))
        .map_err(anyhow::Error::msg)?;
    assert_eq!((picked.selected, picked.moved, picked.already), (2, 1, 1));
    let e = rt
        .block_on(dlq.redrive(
            "orders-in.dlq",
            &malformed,
            0,
            "alice",
            Arc::default(),
            |_| {},
        ))
        .expect_err("rate 0");
    assert!(e.contains("rate of at least 1"), "{e}");
    Ok(())
}

/// From the keyboard, in a real terminal: `surge --kube-context` on a cluster (the API
/// stand-in) whose Prometheus (real) holds payment's HPA series; `:svc payment`, `:max 16`,
/// the plan popup, `y`; then the HPA in the cluster, the audit line on disk and the notice on
/// screen all say 10 → 16. A destructive plan (`:max 4`) waits for the typed name.
#[test]
fn raising_a_ceiling_from_the_keyboard_patches_the_hpa_and_audits_it() -> anyhow::Result<()> {
    use surge_servers::{Prometheus, Workdir, free_port};
    use surge_testkit::tmux::Tmux;

    let dir = tempfile::tempdir()?;
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home)?;
    let rules = dir.path().join("rules.yml");
    let series = |name: &str, value: u32| {
        format!(
            "      - record: {name}\n        expr: vector({value})\n        labels:\n          namespace: shop\n          workload: payment\n          hpa: payment\n"
        )
    };
    std::fs::write(
        &rules,
        format!(
            "groups:\n  - name: hpa\n    rules:\n{}{}{}{}",
            series("surge_hpa_current_replicas", 10),
            series("surge_hpa_desired_replicas", 10),
            series("surge_hpa_min_replicas", 2),
            series("surge_hpa_max_replicas", 10),
        ),
    )?;
    let prometheus = Prometheus::start_in(
        Workdir::temp("surge-act-prom-")?,
        free_port()?,
        &format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files: [\"{}\"]\n",
            rules.display()
        ),
    )?;
    let api = KubeApiStandIn::start()?;
    shop(&api)?;
    api.expose_service(
        "monitoring",
        "prometheus-operated",
        &json!({"operated-prometheus": "true"}),
        "web",
        9090,
        &prometheus.url(),
    )?;
    let kubeconfig = dir.path().join("kubeconfig");
    api.write_kubeconfig(&kubeconfig)?;
    let audit = dir.path().join("audit.jsonl");
    // Grafana (the stand-in) takes each action as an annotation, with the service account
    // token from a file the config names.
    let grafana = surge_testkit::grafana::GrafanaStandIn::start(Some("glsa_act"))?;
    let token = dir.path().join("grafana-token");
    std::fs::write(&token, "glsa_act\n")?;
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[sources.grafana]\nurl = \"{}\"\nbearer_token_file = \"{}\"\n",
            grafana.url(),
            token.display()
        ),
    )?;
    let surge = surge_stack::stack::sibling_binary("surge", "SURGE_BIN")?;
    let command = format!(
        "env KUBECONFIG={} HOME={} XDG_CONFIG_HOME={} USER=oncall {} --config {} --kube-context stand-in --refresh 1s --audit-log {} --log {}",
        kubeconfig.display(),
        home.display(),
        home.join(".config").display(),
        surge.display(),
        config.display(),
        audit.display(),
        dir.path().join("panel.log").display(),
    );
    let tmux = Tmux::new("surge-actions");
    tmux.start("act", 140, 40, &command)?;
    tmux.wait_for("act", "the panel", "1 Overview")?;
    // The service appears once Prometheus has evaluated its rules.
    tmux.wait_for_screen(
        "act",
        "payment in the overview",
        Duration::from_secs(30),
        |s| s.contains("payment"),
    )?;
    tmux.keys("act", &[":svc payment", "Enter"])?;
    tmux.wait_for("act", "the service view", "HPA shop/payment")?;

    // Destructive: y does nothing, the name does.
    tmux.keys("act", &[":max 4", "Enter"])?;
    let screen = tmux.wait_for("act", "the plan", "maxReplicas: 10 → 4")?;
    assert!(
        screen.contains("type payment and Enter to confirm"),
        "{screen}"
    );
    assert!(screen.contains("the HPA will remove 6 of them"), "{screen}");
    tmux.keys("act", &["y", "Enter"])?;
    tmux.wait_for("act", "the refusal", "type payment to confirm")?;
    tmux.keys("act", &["Escape"])?;
    tmux.wait_for("act", "cancelled", "cancelled: nothing changed")?;
    assert_eq!(
        api.object(&kube_api::hpas(), "shop", "payment")
            .expect("hpa")["spec"]["maxReplicas"],
        10
    );

    tmux.keys("act", &[":max 16", "Enter"])?;
    let screen = tmux.wait_for("act", "the plan", "maxReplicas: 10 → 16")?;
    assert!(screen.contains("y apply"), "{screen}");
    assert!(
        screen.contains("undo: set the bounds back to 2–10"),
        "{screen}"
    );
    tmux.keys("act", &["y"])?;
    tmux.wait_for(
        "act",
        "the audit notice",
        "tester (os: oncall) set bounds horizontalpodautoscaler shop/payment: maxReplicas: 10 → 16",
    )?;
    assert_eq!(
        api.object(&kube_api::hpas(), "shop", "payment")
            .expect("hpa")["spec"]["maxReplicas"],
        16
    );
    let log = surge_client::act::audit::AuditLog::at(&audit)
        .read()
        .map_err(anyhow::Error::msg)?;
    assert_eq!(log.len(), 1, "{log:#?}");
    assert_eq!(log[0].who.user.as_deref(), Some("tester"));
    assert_eq!(log[0].who.os_user.as_deref(), Some("oncall"));
    assert_eq!(log[0].context, "stand-in");
    assert_eq!(log[0].changes[1].to_string(), "maxReplicas: 10 → 16");
    assert_eq!(log[0].outcome, surge_client::act::audit::Outcome::Done);
    let annotations = grafana.annotations();
    assert_eq!(annotations.len(), 1, "{annotations:#?}");
    assert_eq!(
        annotations[0]["text"],
        format!("surge: {}", log[0].summary())
    );
    assert_eq!(
        annotations[0]["tags"],
        json!(["surge", "set-bounds", "context:stand-in"])
    );
    tmux.keys("act", &["q"])?;
    Ok(())
}

/// The dead-letter view and a redrive from the keyboard, on the real broker: `:dlq` lists the
/// topic with its 12 letters, `Enter` opens it, `/malformed` narrows to the 8 of the bug,
/// `:redrive 50` plans exactly those, `y` republishes them and audits it; a second `:redrive`
/// finds nothing to move; a letter picked with space is redriven alone.
#[test]
fn dead_letters_are_browsed_and_redriven_from_the_keyboard() -> anyhow::Result<()> {
    use surge_testkit::tmux::Tmux;

    let broker = KafkaBroker::start()?;
    dead_letters(&broker)?;
    let dir = tempfile::tempdir()?;
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home)?;
    let audit = dir.path().join("audit.jsonl");
    let surge = surge_stack::stack::sibling_binary("surge", "SURGE_BIN")?;
    let command = format!(
        "env HOME={} XDG_CONFIG_HOME={} USER=oncall {} --kafka {} --refresh 1s --audit-log {} --log {}",
        home.display(),
        home.join(".config").display(),
        surge.display(),
        broker.bootstrap(),
        audit.display(),
        dir.path().join("panel.log").display(),
    );
    let tmux = Tmux::new("surge-dlq");
    tmux.start("dlq", 150, 40, &command)?;
    tmux.wait_for("dlq", "the panel", "1 Overview")?;
    tmux.keys("dlq", &[":dlq", "Enter"])?;
    let screen = tmux.wait_for("dlq", "the topics", "Dead-letter topics (1)")?;
    let row = screen
        .lines()
        .find(|l| l.contains("orders-in.dlq"))
        .unwrap_or_default();
    assert_eq!(
        row.trim_matches(['│', ' ', '▶'])
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["orders-in.dlq", "12", "0"],
        "{screen}"
    );
    tmux.keys("dlq", &["Enter"])?;
    tmux.wait_for("dlq", "the letters", "12 held, 0 redriven, newest 12 shown")?;
    tmux.keys("dlq", &["Enter"])?;
    tmux.wait_for("dlq", "the message", r#"{"order_id":"order-"#)?;
    tmux.keys("dlq", &["Enter", "/malformed", "Enter"])?;
    tmux.wait_for("dlq", "the filter", "newest 8 shown")?;
    tmux.keys("dlq", &[":redrive 50", "Enter"])?;
    let screen = tmux.wait_for("dlq", "the plan", "republished to orders-in: 0 → 8")?;
    assert!(
        screen.contains("8 of the 12 letters selected; the letters stay in orders-in.dlq"),
        "{screen}"
    );
    assert!(screen.contains("y apply"), "{screen}");
    tmux.keys("dlq", &["y"])?;
    tmux.wait_for(
        "dlq",
        "the audit notice",
        "oncall redrive topic orders-in.dlq: republished to orders-in: 0 → 8",
    )?;
    assert_eq!(surge_testkit::kafka::records(&broker, "orders-in")?, 8);
    assert_eq!(
        surge_testkit::kafka::records(&broker, "orders-in.dlq")?,
        12,
        "the letters stay"
    );
    tmux.wait_for("dlq", "the ledger read back", "12 held, 8 redriven")?;

    // Again: nothing left to move.
    tmux.keys("dlq", &[":redrive", "Enter"])?;
    let screen = tmux.wait_for("dlq", "the empty plan", "8 already redriven: skipped")?;
    assert!(
        screen.contains("nothing to change: any key closes"),
        "{screen}"
    );
    tmux.keys("dlq", &["Escape"])?;

    // One unknown-order letter, picked: redriven alone.
    tmux.keys("dlq", &["Escape"])?;
    tmux.wait_for("dlq", "the filter cleared", "newest 12 shown")?;
    let screen = tmux.screen("dlq")?;
    let first_unknown = screen
        .lines()
        .filter(|l| l.contains("orders-in/"))
        .position(|l| l.contains("unknown order"))
        .ok_or_else(|| anyhow::anyhow!("no unknown-order letter:\n{screen}"))?;
    let mut keys = vec!["g"];
    keys.extend(std::iter::repeat_n("j", first_unknown));
    keys.push("Space");
    tmux.keys("dlq", &keys)?;
    tmux.wait_for("dlq", "the pick", "1 picked")?;
    tmux.keys("dlq", &[":redrive", "Enter"])?;
    tmux.wait_for("dlq", "the plan", "republished to orders-in: 0 → 1")?;
    tmux.keys("dlq", &["y"])?;
    tmux.wait_for(
        "dlq",
        "the second audit",
        "oncall redrive topic orders-in.dlq: republished to orders-in: 0 → 1",
    )?;
    assert_eq!(surge_testkit::kafka::records(&broker, "orders-in")?, 9);

    let log = surge_client::act::audit::AuditLog::at(&audit)
        .read()
        .map_err(anyhow::Error::msg)?;
    assert_eq!(log.len(), 2, "{log:#?}");
    assert_eq!(log[0].who.os_user.as_deref(), Some("oncall"));
    assert_eq!(log[0].target, "topic orders-in.dlq");
    assert!(matches!(
        &log[0].action,
        Action::Redrive { rate: 50, selection: Selection::Matching(f), .. } if f.error_contains.as_deref() == Some("malformed")
    ));
    assert_eq!(
        log[0].changes[0].to_string(),
        "republished to orders-in: 0 → 8"
    );
    tmux.keys("dlq", &["q"])?;
    Ok(())
}
