//! The shop end to end on the local stack: real PostgreSQL (primary + 2 replicas), Redis,
//! the Kafka-protocol broker and nginx, with the services as replica processes.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::{Value, json};
use surge_testkit::kafka::{BrokerClients, read_until, records};
use surge_testkit::shop::Shop;

#[test]
fn orders_flow_auth_replica_reads_load_balancing_and_declines() -> anyhow::Result<()> {
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

    // Each service's connections carry its name: the writers' on the primary, catalog's on
    // the replicas (what tells the panel which servers a service uses).
    let names = |server: &str| -> anyhow::Result<HashSet<String>> {
        Ok(stack
            .postgres
            .psql(
                server,
                "SELECT DISTINCT application_name FROM pg_stat_activity WHERE backend_type = 'client backend'",
            )?
            .lines()
            .map(str::to_string)
            .collect())
    };
    let on_primary = names("primary")?;
    for service in ["auth", "orders", "payment", "shipping"] {
        assert!(
            on_primary.contains(service),
            "{service} not on the primary: {on_primary:?}"
        );
    }
    let on_replicas: HashSet<String> = names("replica1")?
        .union(&names("replica2")?)
        .cloned()
        .collect();
    assert!(
        on_replicas.contains("catalog"),
        "catalog not on a replica: {on_replicas:?}"
    );

    // Validation happens synchronously.
    let (status, body) = shop.order(&token, &[(999_999, 1)])?;
    assert_eq!(status, 400, "{body}");
    let (status, _) = shop.order(&token, &[(1, 0)])?;
    assert_eq!(status, 400);

    // A declined payment is a decision, not a failure: orders marks the order failed with the
    // reason payment gave, and nothing is dead-lettered.
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
    assert_eq!(records(&stack.kafka, "order-placed.dlq")?, 0);

    // Only an admin sets a price: a customer's token is refused; made admin (by SQL, as an
    // operator would) and logged in again, the same account may add a product.
    let product = json!({"sku": "sku-admin-1", "name": "Set by an admin", "price_cents": 1});
    let (code, body) = shop.post("/products", Some(&token), &product)?;
    assert_eq!(
        (code, &body["error"]),
        (403, &json!("admins only")),
        "{body}"
    );
    stack.postgres.psql_in(
        "primary",
        "shop",
        "UPDATE users SET role = 'admin' WHERE email = 'ada@example.com'",
    )?;
    let (code, body) = shop.post(
        "/auth/login",
        None,
        &json!({"email": "ada@example.com", "password": "correct horse battery"}),
    )?;
    assert_eq!(code, 200, "{body}");
    let admin = body["token"].as_str().unwrap_or_default().to_string();
    let (code, body) = shop.post("/products", Some(&admin), &product)?;
    assert_eq!(code, 201, "{body}");

    // Logout revokes the token everywhere, at once.
    let (code, _, _) = shop.get("/auth/me", Some(&token))?;
    assert_eq!(code, 200);
    let (code, _) = shop.post("/auth/logout", Some(&token), &Value::Null)?;
    assert_eq!(code, 204);
    let (code, _, _) = shop.get("/auth/me", Some(&token))?;
    assert_eq!(code, 401);
    let (code, _) = shop.order(&token, &[(1, 1)])?;
    assert_eq!(code, 401, "orders must reject the revoked token too");
    // Another customer sees none of it: not the order (404, as if it did not exist), not the
    // cart.
    let eve = shop.user("eve@example.com")?;
    let (code, _, body) = shop.get(&format!("/orders/{id}"), Some(&eve))?;
    assert_eq!(code, 404, "{body}");
    let (code, _, cart) = shop.get("/cart", Some(&admin))?;
    assert_eq!(code, 200, "{cart}");
    let (code, _) = shop.post(
        "/cart/items",
        Some(&admin),
        &json!({"product_id": 1, "quantity": 3}),
    )?;
    assert!(code == 200 || code == 201, "{code}");
    let (code, _, eves_cart) = shop.get("/cart", Some(&eve))?;
    assert_eq!(code, 200);
    assert!(
        eves_cart["items"].as_array().is_some_and(|i| i.is_empty()),
        "{eves_cart}"
    );
    // A token signed with the right secret but another algorithm is refused: HS256 only.
    let secret = std::fs::read(stack.options.dir.join("secrets/jwt"))?;
    // Fresh claims (issued now, after the revocation list's epoch): only the algorithm is wrong.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as u64;
    let claims = json!({"sub": "1", "jti": "hs384", "iat": now_ms / 1000, "iat_ms": now_ms,
        "exp": now_ms / 1000 + 600, "role": "admin"});
    let hs384 = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS384),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(&secret),
    )?;
    let (code, _, body) = shop.get("/auth/me", Some(&hs384))?;
    assert_eq!(
        (code, &body["error"]),
        (401, &json!("invalid or expired token")),
        "an HS384 token: {body}"
    );
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
    assert_eq!(
        db("SELECT count(*) FROM payments WHERE outcome = 'paid'")?,
        "30"
    );
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
        o.hpa_manifests = vec![hpa.clone()];
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

/// A pending order written straight into the database (as orders would, minus the outbox),
/// so a test can send its `order-placed` message itself, to a partition of its choosing.
fn pending_order(
    stack: &surge_stack::Stack,
    email: &str,
    product: i64,
    total_cents: i64,
) -> anyhow::Result<String> {
    let id = stack
        .postgres
        .psql_in("primary", "shop", "SELECT gen_random_uuid()")?;
    stack.postgres.psql_in(
        "primary",
        "shop",
        &format!(
            "INSERT INTO orders (id, user_id, status, total_cents) \
             SELECT '{id}', id, 'pending', {total} FROM users WHERE email = '{email}'; \
             INSERT INTO order_items (order_id, product_id, quantity, price_cents) \
             SELECT '{id}', id, 1, price_cents FROM products WHERE id = {product}",
            total = total_cents.max(0),
        ),
    )?;
    Ok(id)
}

/// The `order-placed` message orders would send for a one-item order.
fn order_placed(order_id: &str, total_cents: i64) -> String {
    json!({
        "order_id": order_id,
        "user_id": 1,
        "total_cents": total_cents,
        "items": [{"product_id": 1, "sku": "sku-001", "quantity": 1, "price_cents": total_cents.max(0)}]
    })
    .to_string()
}

#[test]
fn poison_messages_are_dead_lettered_and_their_partition_keeps_flowing() -> anyhow::Result<()> {
    let fixture = surge_tests::stack::stack(|_| {})?;
    let stack = &fixture.stack;
    let shop = Shop::new(&stack.api())?;
    let token = shop.user("poison@example.com")?;
    let producer = stack.kafka.producer()?;

    // Poison, one per consumed topic: dead-lettered at the first attempt.
    producer.send_one("order-placed", 2, "bad-json", "{not json")?;
    let ghost = "00000000-0000-4000-8000-000000000001";
    producer.send_one(
        "payment-processed",
        1,
        ghost,
        &json!({"order_id": ghost, "outcome": "paid", "amount_cents": 100, "provider_ref": "x", "reason": null}).to_string(),
    )?;
    producer.send_one(
        "shipping-request",
        0,
        ghost,
        &json!({"order_id": ghost, "user_id": 1, "items": []}).to_string(),
    )?;
    // A handler error that repeats (a trigger refuses this order's payment row): retried,
    // then dead-lettered with its attempts.
    let negative = pending_order(stack, "poison@example.com", 1, 0)?;
    stack.postgres.psql_in(
        "primary",
        "shop",
        &format!(
            "CREATE FUNCTION refuse_payment() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
             IF NEW.order_id = '{negative}' THEN RAISE EXCEPTION 'payment refused by the test'; END IF; \
             RETURN NEW; END $$; \
             CREATE TRIGGER refuse_payment BEFORE INSERT ON payments FOR EACH ROW EXECUTE FUNCTION refuse_payment()"
        ),
    )?;
    producer.send_one("order-placed", 2, &negative, &order_placed(&negative, 0))?;
    // Forged messages (anyone who can write to a topic could send them): an order-placed
    // stating 1 cent for an order of 777 is charged 777; a payment-processed saying `paid`
    // for an order nobody charged is dead-lettered and the order stays pending.
    let underpriced = pending_order(stack, "poison@example.com", 1, 777)?;
    producer.send_one(
        "order-placed",
        1,
        &underpriced,
        &order_placed(&underpriced, 1),
    )?;
    let uncharged = pending_order(stack, "poison@example.com", 1, 555)?;
    producer.send_one(
        "payment-processed",
        1,
        &uncharged,
        &json!({"order_id": uncharged, "outcome": "paid", "amount_cents": 555, "provider_ref": "forged", "reason": null}).to_string(),
    )?;
    // Behind the poison, on the same partition, a good order: it must not wait.
    let good = pending_order(stack, "poison@example.com", 1, 599)?;
    producer.send_one("order-placed", 2, &good, &order_placed(&good, 599))?;
    producer.flush()?;

    shop.wait_status(&token, &good, "shipped", Duration::from_secs(60))?;
    let letter_for = |dlq: &str, check: &dyn Fn(&Value) -> bool| -> anyhow::Result<Value> {
        let read = read_until(&stack.kafka, dlq, Duration::from_secs(60), |r| {
            r.iter().any(check)
        })?;
        Ok(read.into_iter().find(check).unwrap_or_default())
    };
    let malformed = letter_for("order-placed.dlq", &|l| l["original"] == "{not json")?;
    assert_eq!(
        (
            &malformed["source_topic"],
            &malformed["partition"],
            &malformed["attempts"]
        ),
        (&json!("order-placed"), &json!(2), &json!(1)),
        "{malformed}"
    );
    assert!(malformed["offset"].as_i64().is_some(), "{malformed}");
    assert!(
        malformed["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("malformed order-placed message")),
        "{malformed}"
    );
    let repeated = letter_for("order-placed.dlq", &|l| {
        l["original"]["order_id"] == negative.as_str()
    })?;
    assert_eq!(
        repeated["attempts"],
        json!(surge_shop::consumer::ATTEMPTS),
        "{repeated}"
    );
    assert!(
        repeated["error"]
            .as_str()
            .is_some_and(|e| e.contains("payment refused by the test")),
        "{repeated}"
    );
    assert_eq!(
        repeated["offset"].as_i64(),
        malformed["offset"].as_i64().map(|o| o + 1),
        "{repeated}"
    );
    for (dlq, source) in [
        ("payment-processed.dlq", "payment-processed"),
        ("shipping-request.dlq", "shipping-request"),
    ] {
        let unknown = letter_for(dlq, &|l| l["original"]["order_id"] == ghost)?;
        assert_eq!(
            (
                &unknown["source_topic"],
                &unknown["error"],
                &unknown["attempts"]
            ),
            (&json!(source), &json!("unknown order"), &json!(1)),
            "{unknown}"
        );
    }
    // The order behind the refused payment is still pending: given up on, not half-done.
    let db = |sql: &str| stack.postgres.psql_in("primary", "shop", sql);
    assert_eq!(
        db(&format!(
            "SELECT status FROM orders WHERE id = '{negative}'"
        ))?,
        "pending"
    );
    shop.wait_status(&token, &underpriced, "shipped", Duration::from_secs(60))?;
    assert_eq!(
        db(&format!(
            "SELECT amount_cents FROM payments WHERE order_id = '{underpriced}'"
        ))?,
        "777",
        "the forged amount was charged"
    );
    let forged = letter_for("payment-processed.dlq", &|l| {
        l["original"]["order_id"] == uncharged.as_str()
    })?;
    assert_eq!(
        forged["error"],
        json!("no payment recorded for this order"),
        "{forged}"
    );
    assert_eq!(
        db(&format!(
            "SELECT status FROM orders WHERE id = '{uncharged}'"
        ))?,
        "pending"
    );
    Ok(())
}

#[test]
fn a_database_outage_pauses_consumers_without_dead_letters_and_loses_nothing() -> anyhow::Result<()>
{
    let mut fixture = surge_tests::stack::stack(|o| o.payment_latency_ms = 300)?;
    let shop = Shop::new(&fixture.stack.api())?;
    let token = shop.user("outage@example.com")?;
    let mut ids = Vec::new();
    for i in 0..40 {
        let (status, placed) = shop.order(&token, &[(1 + (i % 50), 1)])?;
        assert_eq!(status, 202, "{placed}");
        ids.push(placed["order_id"].as_str().unwrap_or_default().to_string());
    }
    // Payment works through the backlog at about 7 orders a second: most are still waiting
    // when the primary goes away.
    fixture.stack.postgres.stop_node("primary")?;
    // Payment says it waits: its consumer is paused on the message it holds.
    let payment = fixture.stack.replica_ports("payment");
    surge_servers::wait_until(
        "payment paused",
        Duration::from_secs(30),
        Duration::from_millis(250),
        || {
            Ok(payment.iter().any(|port| {
                surge_servers::http::get(&format!("127.0.0.1:{port}"), "/metrics", None).is_ok_and(
                    |(_, _, body)| {
                        body.contains(
                            "shop_consumer_paused{service=\"payment\",topic=\"order-placed\"} 1",
                        )
                    },
                )
            }))
        },
    )?;
    let no_dead_letters = |when: &str| -> anyhow::Result<()> {
        for dlq in [
            "order-placed.dlq",
            "payment-processed.dlq",
            "shipping-request.dlq",
        ] {
            assert_eq!(records(&fixture.stack.kafka, dlq)?, 0, "{dlq} {when}");
        }
        Ok(())
    };
    // A negative window: an outage wrongly taken for a failing message would be retried with
    // backoff (0.2 + 0.4 + 0.8 s) and dead-lettered at its ATTEMPTS-th try, each try refused
    // at once by the stopped server: within about 2 s. 10 s is five times that.
    assert_eq!(surge_shop::consumer::ATTEMPTS, 4);
    std::thread::sleep(Duration::from_secs(10));
    no_dead_letters("during the outage")?;
    fixture.stack.postgres.start_node("primary")?;
    for id in &ids {
        shop.wait_status(&token, id, "shipped", Duration::from_secs(120))?;
    }
    no_dead_letters("after the outage")?;
    let db = |sql: &str| fixture.stack.postgres.psql_in("primary", "shop", sql);
    assert_eq!(
        db("SELECT count(*) FROM shipments")?,
        ids.len().to_string(),
        "each order shipped once"
    );
    Ok(())
}

/// Wait until the `topic` partitions of `service`'s consumer group are all assigned, to exactly
/// `members` of its running replicas (each replica says how many it holds on `/metrics`).
fn wait_assigned(
    stack: &surge_stack::Stack,
    service: &str,
    topic: &str,
    members: usize,
) -> anyhow::Result<()> {
    let partitions = surge_testkit::kafka::partitions(&stack.kafka, topic)?;
    let series =
        format!("shop_consumer_assigned_partitions{{service=\"{service}\",topic=\"{topic}\"}}");
    let mut held = Vec::new();
    surge_servers::wait_until(
        &format!("{service}'s group holding {topic} in {members} replicas"),
        Duration::from_secs(60),
        Duration::from_millis(200),
        || {
            held = stack
                .replica_ports(service)
                .iter()
                .filter_map(|port| {
                    surge_servers::http::get(&format!("127.0.0.1:{port}"), "/metrics", None)
                        .ok()
                        .and_then(|(_, _, body)| surge_testkit::http::series_value(&body, &series))
                })
                .filter(|n| *n > 0.0)
                .collect();
            Ok(held.len() == members && held.iter().sum::<f64>() == partitions as f64)
        },
    )
    .map_err(|e| anyhow::anyhow!("{e:#}; held: {held:?}"))
}

#[test]
fn the_cart_lives_in_redis_and_survives_the_replica_that_served_it() -> anyhow::Result<()> {
    use reqwest::Method;
    let fixture = surge_tests::stack::stack(|_| {})?;
    let stack = &fixture.stack;
    let shop = Shop::new(&stack.api())?;
    let token = shop.user("cart@example.com")?;
    let add = |product: i64, quantity: i32| {
        shop.cart_call(
            Method::POST,
            "/cart/items",
            &token,
            Some(&json!({"product_id": product, "quantity": quantity})),
        )
    };
    let (status, _, body) = add(3, 2)?;
    assert_eq!(status, 200, "{body}");
    let (status, _, body) = add(3, 1)?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["items"],
        json!([{"product_id": 3, "quantity": 3}]),
        "{body}"
    );
    let (status, served_by, body) = add(7, 1)?;
    assert_eq!(status, 200, "{body}");
    let expires = body["expires_in_seconds"].as_i64().unwrap_or_default();
    assert!(
        (86_390..=86_400).contains(&expires),
        "TTL renewed on change: {body}"
    );
    // Bad input is refused, the cart unchanged.
    let (status, _, _) = add(999_999, 1)?;
    assert_eq!(status, 400);
    let (status, _, _) = add(3, 0)?;
    assert_eq!(status, 400);

    // The replica that served the last request dies mid-session; the next one has the cart.
    let served_by = served_by.ok_or_else(|| anyhow::anyhow!("no x-upstream header"))?;
    let port: u16 = served_by
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("x-upstream {served_by:?}"))?;
    // Killed only once the orders group has settled (both replicas hold partitions of
    // payment-processed), so what follows does not depend on a rebalance in flight.
    wait_assigned(stack, "orders", "payment-processed", 2)?;
    stack.kill_replica("orders", port)?;
    let killed = std::time::Instant::now();
    let (status, now_by, cart) = shop.cart_call(Method::GET, "/cart", &token, None)?;
    assert_eq!(status, 200, "{cart}");
    assert_ne!(
        now_by.as_deref(),
        Some(served_by.as_str()),
        "served by the dead replica?"
    );
    assert_eq!(
        cart["items"],
        json!([{"product_id": 3, "quantity": 3}, {"product_id": 7, "quantity": 1}]),
        "{cart}"
    );

    // The session goes on: remove a line, check out what is left, the cart is empty after.
    let (status, _, body) = shop.cart_call(Method::DELETE, "/cart/items/7", &token, None)?;
    assert_eq!(
        (status, &body["items"]),
        (200, &json!([{"product_id": 3, "quantity": 3}]))
    );
    // The dead replica is replaced, as its Deployment would, and the group settles again with
    // the new member, so the order's payment-processed is consumed on whichever partition it
    // lands. tansu, unlike Kafka, does not drop a member that died without leaving when its
    // session times out; it drops it when a member joins after that, so the replacement comes
    // once the session timeout has passed since the kill (a window, not a wait on anything).
    std::thread::sleep(
        surge_shop::kafka::SESSION_TIMEOUT.saturating_sub(killed.elapsed())
            + Duration::from_secs(1),
    );
    assert_eq!(stack.replace_exited("orders")?, 1);
    wait_assigned(stack, "orders", "payment-processed", 2)?;
    let (status, _, placed) = shop.cart_call(Method::POST, "/cart/checkout", &token, None)?;
    assert_eq!(status, 202, "{placed}");
    let id = placed["order_id"].as_str().unwrap_or_default().to_string();
    shop.wait_status(&token, &id, "shipped", Duration::from_secs(30))?;
    let (_, _, cart) = shop.cart_call(Method::GET, "/cart", &token, None)?;
    assert_eq!(cart["items"], json!([]), "{cart}");
    let (status, _, _) = shop.cart_call(Method::POST, "/cart/checkout", &token, None)?;
    assert_eq!(status, 400, "an empty cart is not an order");
    let quantity = stack.postgres.psql_in(
        "primary",
        "shop",
        &format!("SELECT quantity FROM order_items WHERE order_id = '{id}' AND product_id = 3"),
    )?;
    assert_eq!(quantity, "3");
    Ok(())
}

/// A service started before `shop setup` (as on a cluster where the migration Job has not run
/// yet) stays up and unready, and turns ready once the schema lands; a consumer waits for it
/// before joining its group; `shop setup --migrations-only` needs no broker.
#[test]
fn a_service_started_before_the_schema_waits_for_it() -> anyhow::Result<()> {
    use std::process::Command;

    let fixture = surge_tests::stack::stack(|_| {})?;
    let stack = &fixture.stack;
    stack.postgres.psql("primary", "CREATE DATABASE fresh")?;
    let url = format!(
        "postgres://postgres@127.0.0.1:{}/fresh",
        stack.postgres.port("primary")?
    );
    let port = surge_servers::free_port()?;
    let nowhere = format!("127.0.0.1:{}", surge_servers::free_port()?);
    let env = [
        ("SHOP_LISTEN", format!("127.0.0.1:{port}")),
        ("SHOP_DATABASE_URL", url.clone()),
        ("SHOP_DATABASE_REPLICAS", String::new()),
        ("SHOP_REDIS_URL", stack.redis.url()),
        ("SHOP_KAFKA_BOOTSTRAP", nowhere),
        (
            "SHOP_JWT_SECRET",
            "fresh-schema-test-secret-of-32-bytes!".into(),
        ),
    ];
    let dir = tempfile::tempdir()?;
    let log = dir.path().join("catalog.log");
    let mut command = Command::new(&stack.options.shop_bin);
    command
        .arg("catalog")
        .envs(env.iter().map(|(k, v)| (*k, v)));
    let mut catalog = surge_servers::ServerProcess::spawn("catalog-fresh", command, &log)?;

    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()?;
    let status = |path: &str| {
        http.get(format!("http://127.0.0.1:{port}{path}"))
            .send()
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
    };
    surge_servers::wait_until(
        "the service answers",
        Duration::from_secs(20),
        Duration::from_millis(200),
        || Ok(status("/healthz") == 200),
    )?;
    // A negative window: three of the service's checks for the schema (one per
    // `CHECK_EVERY`), none of which may end it or make it ready.
    std::thread::sleep(surge_shop::primary::CHECK_EVERY * 3);
    assert!(catalog.is_running(), "the service exited without a schema");
    assert_eq!(status("/readyz"), 503, "ready without a schema");

    // A consumer waits before it joins its group, and says why. (Stopped before the schema
    // lands: its group is the live stack's.)
    let payment_port = surge_servers::free_port()?;
    let payment_log = dir.path().join("payment.log");
    let mut command = Command::new(&stack.options.shop_bin);
    command
        .arg("payment")
        .envs(env.iter().map(|(k, v)| (*k, v)))
        .env("SHOP_LISTEN", format!("127.0.0.1:{payment_port}"))
        .env("SHOP_KAFKA_BOOTSTRAP", stack.kafka.bootstrap());
    let mut payment = surge_servers::ServerProcess::spawn("payment-fresh", command, &payment_log)?;
    surge_servers::wait_until(
        "the consumer says it waits for the schema",
        Duration::from_secs(20),
        Duration::from_millis(200),
        || {
            Ok(std::fs::read_to_string(&payment_log)
                .unwrap_or_default()
                .contains("waiting for the database schema"))
        },
    )?;
    assert!(payment.is_running(), "the consumer exited without a schema");
    payment.stop();

    let setup = Command::new(&stack.options.shop_bin)
        .args(["setup", "--migrations-only"])
        .envs(env.iter().map(|(k, v)| (*k, v)))
        .output()?;
    assert!(
        setup.status.success(),
        "{}",
        String::from_utf8_lossy(&setup.stderr)
    );
    surge_servers::wait_until(
        "ready once the schema is applied",
        Duration::from_secs(20),
        Duration::from_millis(200),
        || Ok(status("/readyz") == 200),
    )?;
    let (code, body) = {
        let r = http
            .get(format!("http://127.0.0.1:{port}/products?limit=1"))
            .send()?;
        (r.status().as_u16(), r.text()?)
    };
    assert_eq!(code, 200, "{body}");
    Ok(())
}

/// Login and registration, hardened: the load balancer turns a client's flood of logins away
/// with 429 past its per-client rate; an unknown email and a wrong password get the same
/// answer, as do a new and a taken email at registration; and 40 registrations at once keep
/// the auth replica's memory to the Argon2 hashes it lets run at a time, not 40 of them.
#[test]
fn login_and_registration_give_nothing_away_and_cannot_be_flooded() -> anyhow::Result<()> {
    let fixture = surge_tests::stack::stack(|o| {
        o.auth_rate = Some(5);
        o.autoscale = None;
    })?;
    let stack = &fixture.stack;
    let shop = Shop::new(&stack.api())?;
    let _token = shop.user("grace@example.com")?;

    // Same answers for what exists and what does not.
    let wrong = shop.post(
        "/auth/login",
        None,
        &json!({"email": "grace@example.com", "password": "not her password"}),
    )?;
    let unknown = shop.post(
        "/auth/login",
        None,
        &json!({"email": "nobody@example.com", "password": "not her password"}),
    )?;
    assert_eq!(wrong, unknown);
    assert_eq!(wrong.0, 401);
    let taken = shop.post(
        "/auth/register",
        None,
        &json!({"email": "grace@example.com", "password": "another password"}),
    )?;
    let new = shop.post(
        "/auth/register",
        None,
        &json!({"email": "new@example.com", "password": "another password"}),
    )?;
    assert_eq!(taken, new);
    assert_eq!(taken.0, 201);
    // The taken email's password did not change.
    let (code, _) = shop.post(
        "/auth/login",
        None,
        &json!({"email": "grace@example.com", "password": "correct horse battery"}),
    )?;
    assert!(code == 200 || code == 429, "{code}");

    // A flood from one client: at most the burst (twice the rate) plus the rate for each second
    // it lasted is served, the rest 429.
    // Eight at a time, as a flood comes: one after another, a slow machine (each login runs
    // Argon2) could itself stay under the rate and never be limited.
    let rate = 5.0;
    let started = std::time::Instant::now();
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..8)
            .map(|w| {
                let shop = &shop;
                scope.spawn(move || -> anyhow::Result<Vec<u16>> {
                    let mut codes = Vec::new();
                    for i in 0..5 {
                        let (code, _) = shop.post(
                            "/auth/login",
                            None,
                            &json!({"email": format!("guess{w}-{i}@example.com"), "password": "guessing-1234"}),
                        )?;
                        codes.push(code);
                    }
                    Ok(codes)
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().map_err(|_| anyhow::anyhow!("a login thread panicked"))?)
            .collect::<anyhow::Result<Vec<Vec<u16>>>>()
    })?
    .into_iter()
    .flatten()
    .collect();
    let lasted = started.elapsed().as_secs_f64();
    let limited = statuses.iter().filter(|c| **c == 429).count();
    let checked = statuses.iter().filter(|c| **c == 401).count();
    assert_eq!(limited + checked, 40, "{statuses:?}");
    let most = (2.0 * rate + rate * lasted).ceil() as usize + 1;
    assert!(
        checked <= most && limited > 0,
        "{checked} of 40 checked in {lasted:.1} s (at most {most}): {statuses:?}"
    );
    assert!(checked >= 5, "{statuses:?}");

    // Registrations at once, past the limit's reach (each from the service's own address):
    // the auth replica's peak memory grows by the hashes it runs at a time.
    let auth_port = *stack
        .replica_ports("auth")
        .first()
        .ok_or_else(|| anyhow::anyhow!("no auth replica"))?;
    let pid = stack
        .fleet
        .sets
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .get("auth")
        .and_then(|s| s.pods().into_iter().find_map(|(_, pid)| pid))
        .ok_or_else(|| anyhow::anyhow!("no auth pid"))?;
    let peak_kib = || -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .ok_or_else(|| anyhow::anyhow!("no VmHWM"))
    };
    let before = peak_kib()?;
    let direct = Shop::new(&format!("127.0.0.1:{auth_port}"))?;
    let threads: Vec<_> = (0..40)
        .map(|i| {
            let direct = direct.clone();
            std::thread::spawn(move || {
                direct
                    .post(
                        "/auth/register",
                        None,
                        &json!({"email": format!("crowd{i}@example.com"), "password": "crowd-password"}),
                    )
                    .map(|(code, _)| code)
                    .unwrap_or(0)
            })
        })
        .collect();
    let codes: Vec<u16> = threads.into_iter().map(|t| t.join().unwrap_or(0)).collect();
    assert!(codes.iter().all(|c| *c == 201), "{codes:?}");
    let grown_mib = (peak_kib()?.saturating_sub(before)) / 1024;
    // Argon2's default takes 19 MiB a hash: 40 at once would be ~760 MiB.
    let bound = 19 * surge_shop::services::auth::ARGON2_AT_ONCE as u64 + 40;
    assert!(
        grown_mib <= bound,
        "auth's peak memory grew {grown_mib} MiB for 40 registrations at once (bound {bound} MiB)"
    );
    eprintln!("auth peak memory grew {grown_mib} MiB over 40 registrations at once");
    Ok(())
}

/// The cluster manifests hand the shop its database password as a mounted file
/// (`SHOP_DATABASE_PASSWORD_FILE`), not `PGPASSWORD` in the environment: against a real
/// PostgreSQL that requires a password (SCRAM) for the role, the schema setup logs in with the
/// file's password, fails on a wrong one and names the file it cannot read.
#[test]
fn the_database_password_comes_from_a_file() -> anyhow::Result<()> {
    use std::process::Command;

    let cluster = surge_servers::PgCluster::start(0)?;
    cluster.psql("primary", "CREATE ROLE app LOGIN PASSWORD 'file-secret'")?;
    cluster.psql("primary", "CREATE DATABASE app OWNER app")?;
    let dir = tempfile::tempdir()?;
    let shop = surge_stack::stack::sibling_binary("shop", "SURGE_SHOP_BIN")?;
    let url = format!("postgres://app@127.0.0.1:{}/app", cluster.port("primary")?);
    let setup = |password_file: &std::path::Path| -> anyhow::Result<std::process::Output> {
        Ok(Command::new(&shop)
            .args(["setup", "--migrations-only"])
            .env_clear()
            .env("SHOP_DATABASE_URL", &url)
            .env("SHOP_DATABASE_PASSWORD_FILE", password_file)
            .output()?)
    };
    let wrong = dir.path().join("wrong");
    std::fs::write(&wrong, "not-it\n")?;
    let out = setup(&wrong)?;
    assert!(!out.status.success(), "a wrong password logged in");
    let right = dir.path().join("password");
    std::fs::write(&right, "file-secret\n")?;
    let out = setup(&right)?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tables = cluster.psql_in("primary", "app", "SELECT count(*) FROM orders")?;
    assert_eq!(tables.trim(), "0");
    let out = setup(&dir.path().join("missing"))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("SHOP_DATABASE_PASSWORD_FILE: cannot read"),
        "{stderr}"
    );
    Ok(())
}
