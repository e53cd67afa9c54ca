//! The shop end to end on the local stack: real PostgreSQL (primary + 2 replicas), Redis,
//! the Kafka-protocol broker and nginx, with the services as replica processes.

use std::collections::HashSet;
use std::time::Duration;

use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use serde_json::Value;
use surge_testkit::kafka::BrokerClients;
use surge_testkit::shop::Shop;

#[test]
fn orders_flow_auth_replica_reads_load_balancing_and_dead_letters() -> anyhow::Result<()> {
    let fixture = surge_tests::stack::stack(|_| {})?;
    let stack = &fixture.stack;
    let shop = Shop::new(&stack.api())?;
    let token = shop.user("ada@example.com")?;

    // Catalog reads are served by a replica (the database says so), spread over replicas.
    let mut upstreams = HashSet::new();
    for _ in 0..20 {
        let (status, headers, body) = shop.get("/products?limit=5", None)?;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            headers.get("x-served-by").and_then(|v| v.to_str().ok()),
            Some("replica")
        );
        if let Some(u) = headers.get("x-upstream").and_then(|v| v.to_str().ok()) {
            upstreams.insert(u.to_string());
        }
    }
    assert!(upstreams.len() >= 2, "nginx used {upstreams:?}");

    // Order placed -> paid -> shipped through the broker; read-your-writes via the token.
    let (status, placed) = shop.order(&token, &[(1, 2), (3, 1)])?;
    assert_eq!(status, 202, "{placed}");
    let id = placed["order_id"].as_str().unwrap_or_default().to_string();
    let token_lsn = placed["consistency_token"].as_str().unwrap_or_default();
    let (code, _, fresh) = shop.get(&format!("/orders/{id}?after={token_lsn}"), Some(&token))?;
    assert_eq!(code, 200, "{fresh}");
    shop.wait_status(&token, &id, "shipped", Duration::from_secs(30))?;

    // Validation happens synchronously.
    let (status, body) = shop.order(&token, &[(999_999, 1)])?;
    assert_eq!(status, 400, "{body}");
    let (status, _) = shop.order(&token, &[(1, 0)])?;
    assert_eq!(status, 400);

    // A declined payment: the order fails with the reason, and the message is dead-lettered.
    let decline_id = shop.product_id("test-decline-card")?;
    let (status, placed) = shop.order(&token, &[(decline_id, 1)])?;
    assert_eq!(status, 202);
    let failed_id = placed["order_id"].as_str().unwrap_or_default().to_string();
    let failed = shop.wait_status(
        &token,
        &failed_id,
        "payment_failed",
        Duration::from_secs(30),
    )?;
    assert!(
        failed["reason"]
            .as_str()
            .is_some_and(|r| r.contains("card declined")),
        "{failed}"
    );
    let consumer: BaseConsumer = stack.kafka.consumer_config("test-dlq-reader").create()?;
    consumer.subscribe(&["order-placed.dlq"])?;
    let mut letter: Option<Value> = None;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while letter.is_none() && std::time::Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            let value: Value = serde_json::from_slice(m.payload().unwrap_or_default())?;
            if value["original"]["order_id"] == failed_id.as_str() {
                letter = Some(value);
            }
        }
    }
    let letter = letter.ok_or_else(|| anyhow::anyhow!("no dead letter for {failed_id}"))?;
    assert_eq!(letter["source_topic"], "order-placed");
    assert!(
        letter["error"]
            .as_str()
            .is_some_and(|e| e.contains("card declined")),
        "{letter}"
    );

    // Logout revokes the token everywhere, at once.
    let (code, _, _) = shop.get("/auth/me", Some(&token))?;
    assert_eq!(code, 200);
    let (code, _) = shop.post("/auth/logout", Some(&token), &Value::Null)?;
    assert_eq!(code, 204);
    let (code, _, _) = shop.get("/auth/me", Some(&token))?;
    assert_eq!(code, 401);
    let (code, _) = shop.order(&token, &[(1, 1)])?;
    assert_eq!(code, 401, "orders must reject the revoked token too");
    // A forged token with alg "none" is rejected.
    let forged = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiIxIiwianRpIjoieCIsImlhdCI6MCwiZXhwIjo5OTk5OTk5OTk5fQ.";
    let (code, _, _) = shop.get("/auth/me", Some(forged))?;
    assert_eq!(code, 401);
    Ok(())
}

#[test]
fn broker_outage_loses_no_order_and_ships_each_once() -> anyhow::Result<()> {
    let mut fixture = surge_tests::stack::stack(|_| {})?;
    let shop = Shop::new(&fixture.stack.api())?;
    let token = shop.user("grace@example.com")?;
    fixture.stack.kafka.stop();
    let mut ids = Vec::new();
    for i in 0..30 {
        let (status, placed) = shop.order(&token, &[(1 + (i % 50), 1)])?;
        assert_eq!(status, 202, "accepted while the broker is down: {placed}");
        ids.push(placed["order_id"].as_str().unwrap_or_default().to_string());
    }
    let db = |sql: &str| fixture.stack.postgres.psql_in("primary", "shop", sql);
    assert_eq!(
        db("SELECT count(*) FROM outbox")?,
        "30",
        "all 30 wait in the outbox"
    );
    fixture.stack.kafka.restart()?;
    for id in &ids {
        shop.wait_status(&token, id, "shipped", Duration::from_secs(90))?;
    }
    assert_eq!(
        db("SELECT count(*) FROM orders WHERE status = 'shipped'")?,
        "30"
    );
    assert_eq!(db("SELECT count(*) FROM payments")?, "30");
    assert_eq!(db("SELECT count(*) FROM shipments")?, "30");
    assert_eq!(db("SELECT count(*) FROM outbox")?, "0");
    Ok(())
}

#[test]
fn local_autoscaler_scales_out_under_load_and_back_in() -> anyhow::Result<()> {
    let manifests = tempfile::tempdir()?;
    let hpa = manifests.path().join("hpa.yaml");
    std::fs::write(
        &hpa,
        "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {name: catalog, namespace: shop}\n\
         spec:\n  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: catalog}\n  minReplicas: 1\n  maxReplicas: 3\n\
         \x20 metrics:\n  - type: Resource\n    resource: {name: cpu, target: {type: Utilization, averageUtilization: 70}}\n\
         \x20 behavior:\n    scaleUp: {stabilizationWindowSeconds: 0, policies: [{type: Pods, value: 2, periodSeconds: 5}]}\n\
         \x20   scaleDown: {stabilizationWindowSeconds: 8, policies: [{type: Percent, value: 100, periodSeconds: 5}]}\n",
    )?;
    let fixture = surge_tests::stack::stack(|o| {
        o.hpa_manifest = hpa.clone();
        o.autoscale = Some(Duration::from_secs(2));
    })?;
    let stack = &fixture.stack;
    assert_eq!(stack.replicas().get("catalog"), Some(&1));
    let shop = Shop::new(&stack.api())?;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load: Vec<_> = (0..4)
        .map(|_| {
            let stop = std::sync::Arc::clone(&stop);
            let (base, http) = (shop.base.clone(), shop.http.clone());
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let _ = http.get(format!("{base}/products?limit=50")).send();
                }
            })
        })
        .collect();
    let scaled_out = surge_servers::wait_until(
        "scale out",
        Duration::from_secs(60),
        Duration::from_millis(250),
        || Ok(stack.replicas().get("catalog").is_some_and(|n| *n > 1)),
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in load {
        let _ = t.join();
    }
    scaled_out?;
    surge_servers::wait_until(
        "scale back in",
        Duration::from_secs(60),
        Duration::from_millis(250),
        || Ok(stack.replicas().get("catalog") == Some(&1)),
    )?;
    // Still serving after scaling in (nginx follows the replica set).
    let (status, _, _) = shop.get("/products?limit=1", None)?;
    assert_eq!(status, 200);
    Ok(())
}
