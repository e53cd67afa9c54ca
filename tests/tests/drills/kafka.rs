//! Kafka faults: a consumer group killed, the broker stopped, a poison message, a slow
//! dependency behind the consumers.

use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::json;
use surge_client::store::{Urgency, Verdict};
use surge_testkit::kafka::{BrokerClients, committed, read_until, records};
use surge_tests::drill::{Drill, FAST, Outcome, group_row};

/// Drill 2: The payment consumer is killed: KafkaConsumerStalled pages, it is restarted, the
/// backlog drains and the page resolves.
#[test]
fn drill_payment_consumer_killed_pages_and_resolves() -> anyhow::Result<()> {
    let mut drill = Drill::start("payment-killed", FAST, |_| {})?;
    let orders = drill.keep_ordering(5);
    // Steady before the fault: payment has consumed and committed, and monitoring knows it.
    drill.wait_orders(5)?;
    drill.wait_consuming("payment", "order-placed")?;
    let fault = Instant::now();
    drill.stack.scale("payment", 0)?;
    let page = drill.wait_page("KafkaConsumerStalled", Duration::from_secs(120))?;
    let detect = fault.elapsed();
    assert_eq!(page.body["payload"]["severity"], "critical");
    let summary = page.body["payload"]["summary"].as_str().unwrap_or_default();
    assert_eq!(
        summary, "Consumer group payment stopped consuming order-placed",
        "{:#}",
        page.body
    );
    drill.wait_frame("the panel shows the stall", &["--view", "kafka"], |f| {
        group_row(f, "payment", "order-placed").is_some_and(|r| r.contains("■ stalled"))
            && f.lines()
                .next()
                .is_some_and(|header| header.contains("1 FIRING"))
    })?;

    let restart = Instant::now();
    drill.stack.scale("payment", 2)?;
    drill.wait_resolve(&page, Duration::from_secs(120))?;
    let recover = restart.elapsed();
    let refused = orders.stop();
    assert_eq!(refused, 0, "orders refused while payment was down");
    let (orders, lost) = drill.audit(Duration::from_secs(120))?;
    assert!(
        drill.other_pages(&["KafkaConsumerStalled"]).is_empty(),
        "{:#?}",
        drill.other_pages(&["KafkaConsumerStalled"])
    );
    // Replayed afterwards, the payment service's verdict follows what happened: its
    // consumers stalled, then it recovered (once the lag trend no longer rises).
    drill.wait_lag_settled("payment")?;
    drill.expect_verdicts(
        "payment",
        &[&|v| matches!(v, Verdict::ConsumersStalled), &|v| {
            v.urgency() == Urgency::Fine
        }],
    )?;
    drill.report(Outcome {
        number: 2,
        title: "payment consumer killed",
        fault: "all payment replicas stopped",
        notified: "`KafkaConsumerStalled` page".into(),
        detect,
        detect_to: "",
        recover,
        recover_to: "to resolve",
        orders: Some((orders, lost)),
        notes: String::new(),
    });
    Ok(())
}

/// Drill 4: The broker stops during orders: orders are still accepted (outbox), the exporter's
/// Kafka source is down (SurgeSourceDown warning), and when the broker is back every order
/// ships exactly once.
#[test]
fn drill_broker_stopped_orders_wait_in_the_outbox_and_ship_once() -> anyhow::Result<()> {
    // When the broker is back, consumers take a session timeout (10 s) and a rebalance to
    // commit again: unscaled, unlike the rules' `for`. With the drills' 6 s stall window plus
    // the 10 s `for`, a slow rejoin on a loaded machine paged KafkaConsumerStalled (twice in
    // full runs). 20 s leaves room for that rejoin, as the default 60 s does.
    let mut drill = Drill::start("broker-stopped", FAST, |o| {
        o.timing.stall_after = Duration::from_secs(20);
    })?;
    for i in 0..5 {
        assert_eq!(drill.order(1 + i)?, 202);
    }
    // Steady before the fault: monitoring has seen payment consume, and the panel's recording
    // has judged payment with its lag known (the first of the verdicts replayed below).
    drill.wait_lag_settled("payment")?;
    let known = |v: &Verdict| !matches!(v, Verdict::KafkaLagUnknown | Verdict::NoData);
    drill.wait_recorded("payment judged with its lag known", &["payment"], &|seen| {
        seen[0].iter().any(known)
    })?;
    let committed_sum = |drill: &Drill| -> anyhow::Result<i64> {
        Ok(
            committed(&drill.stack.kafka, "payment", "order-placed", 12)?
                .into_iter()
                .flatten()
                .sum(),
        )
    };
    let committed_before = committed_sum(&drill)?;
    let fault = Instant::now();
    drill.stack.kafka.stop();
    let orders = drill.keep_ordering(5);
    drill.wait_webhook(
        "warnings",
        "SurgeSourceDown",
        "firing",
        Duration::from_secs(120),
    )?;
    let detect = fault.elapsed();
    drill.wait_frame("the panel shows the Kafka source down", &[], |f| {
        f.lines()
            .any(|l| l.contains("SurgeSourceDown") && l.contains("kafka"))
    })?;
    let refused = orders.stop();
    assert_eq!(refused, 0, "orders refused while the broker was down");
    let waiting: usize = drill
        .stack
        .postgres
        .psql_in("primary", "shop", "SELECT count(*) FROM outbox")?
        .trim()
        .parse()?;
    assert!(waiting > 0, "nothing waited in the outbox");
    let back = Instant::now();
    drill.stack.kafka.restart()?;
    // How long payment's consumers took to rejoin and commit again: what the 20 s stall
    // window above has to cover.
    surge_servers::wait_until(
        "payment committing again",
        Duration::from_secs(120),
        Duration::from_millis(200),
        || Ok(committed_sum(&drill)? > committed_before),
    )?;
    let rejoined = back.elapsed();
    drill.step("payment committing again");
    let (orders, lost) = drill.audit(Duration::from_secs(180))?;
    let recover = back.elapsed();
    drill.wait_webhook(
        "warnings",
        "SurgeSourceDown",
        "resolved",
        Duration::from_secs(120),
    )?;
    let pages = drill.other_pages(&[]);
    assert!(
        pages.is_empty(),
        "the broker outage paged (payment committed again {rejoined:?} after the broker was back): {pages:#?}"
    );
    // Replayed: payment's lag was known, then unknown while Kafka's numbers were missing
    // (not shown as a stalled or idle group), then known again.
    drill.wait_lag_settled("payment")?;
    drill.expect_verdicts(
        "payment",
        &[&known, &|v| matches!(v, Verdict::KafkaLagUnknown), &known],
    )?;
    drill.report(Outcome {
        number: 4,
        title: "broker stopped",
        fault: "tansu stopped",
        notified: format!(
            "`SurgeSourceDown` warning; {waiting} orders waited in the outbox; payment committing again {:.1} s after the broker was back",
            rejoined.as_secs_f64()
        ),
        detect,
        detect_to: "",
        recover,
        recover_to: "to every order shipped",
        orders: Some((orders, lost)),
        notes: format!("outbox={waiting} rejoined={:.1}", rejoined.as_secs_f64()),
    });
    Ok(())
}

/// Drill 6: One poison message in the middle of a flash sale: it goes to the dead-letter topic
/// with its reason, its partition keeps flowing, KafkaDeadLetterReceiving warns (never a page),
/// and every accepted order still ships exactly once.
#[test]
fn drill_poison_message_mid_sale_is_dead_lettered_and_the_partition_flows() -> anyhow::Result<()> {
    let mut drill = Drill::start("poison-message", 10, |_| {})?;
    let mut load = drill.start_load(&[
        "--rate",
        "10",
        "--spike",
        "5",
        "--duration",
        "10s",
        "--spike-for",
        "30s",
    ])?;
    // Mid-spike: one message no handler can read, on a partition the sale keeps using.
    drill.wait_load_phase("spike")?;
    let producer = drill.stack.kafka.producer()?;
    producer.send_one(
        "order-placed",
        3,
        "poison",
        "{\"order_id\": \"not-a-uuid\"}",
    )?;
    producer.flush()?;
    let fault = Instant::now();
    let warning = drill.wait_webhook(
        "warnings",
        "KafkaDeadLetterReceiving",
        "firing",
        Duration::from_secs(120),
    )?;
    let detect = fault.elapsed();
    assert!(
        warning.body["commonLabels"]["topic"] == "order-placed.dlq",
        "{:#}",
        warning.body
    );
    let status = load.wait()?;
    drill.finish_load(status)?;
    // The partition flowed on: payment committed past the poison on it.
    let first = read_until(
        &drill.stack.kafka,
        "order-placed.dlq",
        Duration::from_secs(60),
        |l| !l.is_empty(),
    )?;
    let offset = first[0]["offset"]
        .as_i64()
        .context("dead letter without offset")?;
    surge_servers::wait_until(
        "payment past the poison on its partition",
        Duration::from_secs(60),
        Duration::from_millis(500),
        || {
            Ok(drill.prom.value(&format!(
                "surge_kafka_group_committed_offset{{group=\"payment\",topic=\"order-placed\",partition=\"3\"}} > {}",
                offset + 1
            ))?.is_some())
        },
    )?;
    let (orders, lost) = drill.audit(Duration::from_secs(120))?;
    // Recovery: from the poison until every accepted order shipped.
    let recover = fault.elapsed();
    // Every order shipped, so nothing more can be dead-lettered: the topic holds exactly
    // what was, and it is the poison alone.
    let total = records(&drill.stack.kafka, "order-placed.dlq")?;
    let letters = read_until(
        &drill.stack.kafka,
        "order-placed.dlq",
        Duration::from_secs(60),
        |l| i64::try_from(l.len()).is_ok_and(|n| n >= total),
    )?;
    assert_eq!(
        (total, letters.len()),
        (1, 1),
        "only the poison is dead-lettered: {letters:#?}"
    );
    let letter = &letters[0];
    assert_eq!(
        (
            &letter["source_topic"],
            &letter["partition"],
            &letter["offset"],
            &letter["attempts"],
            &letter["original"],
        ),
        (
            &json!("order-placed"),
            &json!(3),
            &json!(offset),
            &json!(1),
            &json!({"order_id": "not-a-uuid"}),
        ),
        "{letter:#}"
    );
    let pages = drill.other_pages(&[]);
    assert!(pages.is_empty(), "a poison message paged: {pages:#?}");
    // Replayed: payment's verdict named the dead letters (the warning on its topic's DLQ).
    let dead_letters = |v: &Verdict| {
        matches!(
            v,
            Verdict::Alerting { alert, page: false } if alert == "KafkaDeadLetterReceiving"
        )
    };
    let seen = drill
        .replayed_verdicts(&["payment"], &|seen| seen[0].iter().any(dead_letters))?
        .remove(0);
    assert!(
        seen.iter().any(dead_letters),
        "payment's verdicts over the recording: {seen:?}"
    );
    drill.report(Outcome {
        number: 6,
        title: "poison message mid sale",
        fault: "one unreadable `order-placed` record on partition 3 mid sale",
        notified: "`KafkaDeadLetterReceiving` warning; exactly one dead letter".into(),
        detect,
        detect_to: "",
        recover,
        recover_to: "from the poison to every order shipped",
        orders: Some((orders, lost)),
        notes: format!("dead_letters={total}"),
    });
    Ok(())
}

/// Drill 10: A slow dependency: the payment provider at 20× its latency (400 ms) while orders
/// keep coming faster than two payment replicas can settle them, with no autoscaler. Payment's
/// lag grows while its CPU stays low; KafkaConsumerLagGrowing pages within its (scaled) window
/// and nothing else does; the on-call remedy (scaling payment out to one consumer per
/// partition) drains it and the page resolves; every order ships once.
#[test]
fn drill_slow_provider_lag_grows_pages_and_resolves_when_scaled() -> anyhow::Result<()> {
    let mut drill = Drill::start("slow-dependency", FAST, |o| {
        o.payment_latency_ms = 400;
    })?;
    let start = Instant::now();
    // Two clients push the lag past the rule's 1,000 floor; then one keeps it growing through
    // the rule's (scaled) 15 minutes, so the backlog left to drain after the page stays small.
    let orders = drill.keep_ordering(20);
    let burst = drill.keep_ordering(20);
    let past_floor = drill.wait_value(
        "payment's lag past 1,000",
        "max(surge_kafka_group_topic_lag{group=\"payment\",topic=\"order-placed\"}) > bool 1000",
        1.0,
    );
    let refused_in_burst = burst.stop();
    let page = past_floor
        .and_then(|()| drill.wait_page("KafkaConsumerLagGrowing", Duration::from_secs(300)));
    let refused = orders.stop() + refused_in_burst;
    let page = page?;
    let detect = start.elapsed();
    assert_eq!(refused, 0, "orders refused while payment was slow");
    assert_eq!(page.body["payload"]["severity"], "critical");
    // Payment was waiting on its provider, not busy: its CPU, sampled all along, stayed low.
    let window = format!("{}s", start.elapsed().as_secs() + 1);
    let samples = drill
        .prom
        .value(&format!(
            "count_over_time(surge_workload_cpu_utilization_ratio{{workload=\"payment\"}}[{window}])"
        ))?
        .context("no CPU series for payment")?;
    assert!(
        samples >= detect.as_secs_f64() / 2.0,
        "payment's CPU sampled {samples} times in {window}"
    );
    let peak_cpu = drill
        .prom
        .value(&format!(
            "max_over_time(surge_workload_cpu_utilization_ratio{{workload=\"payment\"}}[{window}])"
        ))?
        .context("no CPU series for payment")?;
    assert!(
        peak_cpu < 0.85,
        "payment was CPU-bound ({peak_cpu}), not waiting on its provider"
    );
    drill.wait_frame(
        "the Kafka view shows payment growing",
        &["--view", "kafka"],
        |f| group_row(f, "payment", "order-placed").is_some_and(|r| r.contains("↑ growing")),
    )?;
    // The remedy: as many consumers as the topic has partitions.
    let partitions = surge_testkit::kafka::partitions(&drill.stack.kafka, "order-placed")?;
    let back = Instant::now();
    drill.stack.scale("payment", partitions)?;
    drill.wait_resolve(&page, Duration::from_secs(300))?;
    let recover = back.elapsed();
    let (orders, lost) = drill.audit(Duration::from_secs(300))?;
    let others = drill.other_pages(&["KafkaConsumerLagGrowing"]);
    assert!(
        others.is_empty(),
        "a slow provider paged something else: {others:#?}"
    );
    // Replayed: payment's lag grew with nothing scaling it (no autoscaler here), then, scaled
    // by hand, it drained and was fine.
    drill.wait_lag_settled("payment")?;
    drill.expect_verdicts(
        "payment",
        &[&|v| matches!(v, Verdict::LagGrowing), &|v| {
            v.urgency() == Urgency::Fine
        }],
    )?;
    let peak_lag = drill
        .prom
        .value("max(max_over_time(surge_kafka_group_topic_lag{group=\"payment\"}[15m]))")?
        .unwrap_or(0.0);
    drill.report(Outcome {
        number: 10,
        title: "slow dependency",
        fault: "provider at 400 ms (20×), orders from two clients until the lag passes 1,000, then one; no autoscaler",
        notified: format!(
            "`KafkaConsumerLagGrowing` page; lag peaked at {peak_lag:.0}, payment CPU at most {:.0}% of request",
            peak_cpu * 100.0
        ),
        detect,
        detect_to: "from the first order",
        recover,
        recover_to: "from scaling payment out to one consumer per partition to resolve",
        orders: Some((orders, lost)),
        notes: format!("peak_lag={peak_lag} peak_cpu={peak_cpu:.2}"),
    });
    Ok(())
}

/// Drill 13: A poison message the consumer pauses on, mid flash sale. The database refuses one
/// order's payment with a resource error (SQLSTATE 53400) that payment's consumer takes for
/// an outage, so the member holding the order's partition waits on it and retries forever,
/// still in the group, while the other member consumes its own partitions. The exporter
/// judges each partition: that member's partitions stall (its consume loop is sequential, so
/// all of them), the panel shows how many, and the scalable lag leaves them out: the backlog
/// behind the poison grows past what would ask the HPA for more than its maximum in raw lag,
/// and the local HPA does not scale payment on it. The bug fixed (the refusal lifted), the
/// paused message goes through and every accepted order ships exactly once.
#[test]
fn drill_paused_poison_mid_sale_shows_the_stall_and_does_not_scale_on_it() -> anyhow::Result<()> {
    let mut drill = Drill::start("paused-poison", FAST, |o| {
        o.autoscale = Some(Duration::from_secs(3));
    })?;
    let refuse = "CREATE FUNCTION drill_refuse_payment() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN \
           IF EXISTS (SELECT 1 FROM orders o JOIN users u ON u.id = o.user_id \
                      WHERE o.id = NEW.order_id AND u.email = 'poison@drills.example') THEN \
             RAISE EXCEPTION 'payments refused for this order' USING ERRCODE = '53400'; \
           END IF; \
           RETURN NEW; \
         END $$; \
         CREATE TRIGGER drill_refuse_payment BEFORE INSERT ON payments \
           FOR EACH ROW EXECUTE FUNCTION drill_refuse_payment();";
    drill.stack.postgres.psql_in("primary", "shop", refuse)?;
    let poisoner = drill.shop.user("poison@drills.example")?;
    let hpa = drill
        .stack
        .hpas
        .iter()
        .find(|h| h.workload == "payment")
        .context("no payment HPA")?;
    let max = usize::try_from(hpa.max)?;
    // Per replica: what the raw lag would ask replicas for (AverageValue).
    let target = hpa
        .external
        .first()
        .context("payment scales on no lag")?
        .target;
    // Raw lag past this asks for more than the maximum.
    let beyond_max = target * (hpa.max as f64 + 1.0);
    let initial = drill.stack.replicas().get("payment").copied().unwrap_or(0);
    let load = drill.start_load(&[
        "--rate",
        "10",
        "--spike",
        "20",
        "--duration",
        "10s",
        "--spike-for",
        "150s",
    ])?;
    drill.wait_load_phase("spike")?;
    let (status, body) = drill.shop.order(&poisoner, &[(1, 1)])?;
    anyhow::ensure!(status == 202, "the poison order: {status} {body}");
    let poison = body["order_id"]
        .as_str()
        .context("no order_id")?
        .to_string();
    drill
        .accepted
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .push(poison);
    let fault = Instant::now();
    let mut most = initial;
    struct Stall {
        detect: Duration,
        frame: String,
        fixed: Instant,
    }
    // Beside the sale: the stalled partitions seen, the panel, the backlog growing past the
    // maximum's worth of raw lag, then the fix; the load runs on throughout.
    let (load_end, stall) = std::thread::scope(|scope| -> anyhow::Result<(Instant, Stall)> {
        let watcher = scope.spawn(|| -> anyhow::Result<Stall> {
            drill.wait_value(
                "payment's stalled partitions counted",
                "max(surge_kafka_group_topic_stalled_partitions{group=\"payment\",topic=\"order-placed\"}) > bool 0",
                1.0,
            )?;
            let detect = fault.elapsed();
            let frame = drill.wait_frame(
                "the panel shows the partial stall",
                &["--view", "kafka"],
                |f| {
                    group_row(f, "payment", "order-placed")
                        .is_some_and(|r| r.contains("■ stalled") && r.contains("/12"))
                },
            )?;
            surge_servers::wait_until(
                "the backlog behind the poison past the maximum's worth of raw lag",
                Duration::from_secs(150),
                Duration::from_secs(1),
                || {
                    Ok(drill
                        .prom
                        .value(&format!(
                            "surge_kafka_group_topic_lag{{group=\"payment\",topic=\"order-placed\"}} > {beyond_max}"
                        ))?
                        .is_some())
                },
            )?;
            drill.step("the backlog asks, in raw lag, for more than payment's maximum");
            // The bug fixed: the refusal lifted; the paused message goes through on its
            // next retry.
            let fixed = Instant::now();
            drill.stack.postgres.psql_in(
                "primary",
                "shop",
                "DROP TRIGGER drill_refuse_payment ON payments; DROP FUNCTION drill_refuse_payment();",
            )?;
            Ok(Stall {
                detect,
                frame,
                fixed,
            })
        });
        let ended = drill.watch_load(load, |replicas| {
            most = most.max(replicas.get("payment").copied().unwrap_or(0));
        });
        let stall = watcher
            .join()
            .map_err(|_| anyhow::anyhow!("the stall watcher panicked"))??;
        Ok((ended?, stall))
    })?;
    let Stall {
        detect,
        frame,
        fixed,
    } = stall;
    let row = group_row(&frame, "payment", "order-placed")
        .unwrap_or_default()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let peak = |family: &str| -> anyhow::Result<f64> {
        drill
            .prom
            .value(&format!(
                "max_over_time({family}{{group=\"payment\",topic=\"order-placed\"}}[10m])"
            ))?
            .with_context(|| format!("no {family}"))
    };
    let (peak_lag, peak_scalable) = (
        peak("surge_kafka_group_topic_lag")?,
        peak("surge_kafka_group_topic_scalable_lag")?,
    );
    // In raw lag the HPA would have run payment past its maximum; on the scalable lag it
    // did not reach it.
    assert!(peak_lag > beyond_max, "peak lag {peak_lag}");
    assert!(
        most < max,
        "payment ran to its maximum ({most} of {max}) on a stall: peak lag {peak_lag}, scalable {peak_scalable}"
    );
    assert!(
        peak_scalable < target * max as f64,
        "scalable lag {peak_scalable} asked for the maximum"
    );
    let (orders, lost) = drill.audit(Duration::from_secs(180))?;
    let recover = fixed.elapsed();
    // The poison was paused on, never dead-lettered.
    assert_eq!(records(&drill.stack.kafka, "order-placed.dlq")?, 0);
    // What pages is the backlog (KafkaConsumerLagGrowing), nothing else.
    let pages = drill.other_pages(&["KafkaConsumerLagGrowing", "KafkaConsumerStalled"]);
    assert!(pages.is_empty(), "{pages:#?}");
    drill.wait_lag_settled("payment")?;
    // Replayed: payment needed attention while its backlog grew, then it was fine again.
    drill.expect_verdicts(
        "payment",
        &[&|v| v.urgency() != Urgency::Fine, &|v| {
            v.urgency() == Urgency::Fine
        }],
    )?;
    drill.report(Outcome {
        number: 13,
        title: "paused poison mid sale",
        fault: "one order's payment refused (SQLSTATE 53400, taken for an outage) mid sale",
        notified: format!(
            "the stalled partitions counted and shown; payment {initial} → at most {most} of {max} replicas"
        ),
        detect,
        detect_to: "from the poison order to its member's partitions counted stalled",
        recover,
        recover_to: "from the fix to every order shipped",
        orders: Some((orders, lost)),
        notes: format!(
            "payment_replicas={initial}->{most} peak_lag={peak_lag:.0} peak_scalable_lag={peak_scalable:.0} load_ended_after_fix={:.0}s panel_row={row:?}",
            load_end.saturating_duration_since(fixed).as_secs_f64()
        ),
    });
    Ok(())
}

/// A producer deployed ahead of its consumer mid sale: orders starts writing `order-placed` in
/// its second format, which payment cannot read, so every order placed meanwhile is
/// dead-lettered as malformed. Payment is then fixed (rolled out reading both formats) and
/// the on-call engineer redrives the letters from the panel in tmux: `:dlq`, the filter, a
/// plan naming how many go back, `y`. Every accepted order ships exactly once, the dead
/// letters are still there, a second redrive has nothing to move, and the panel's recording
/// holds the redrive.
#[test]
fn drill_poison_deploy_fixed_and_redriven_from_the_panel() -> anyhow::Result<()> {
    use surge_testkit::tmux::Tmux;
    let mut drill = Drill::start("redrive", FAST, |_| {})?;
    let ordering = drill.keep_ordering(10);
    drill.wait_orders(20)?;
    drill.wait_consuming("payment", "order-placed")?;
    let fault = Instant::now();
    // The bad deploy: a rolling update of orders writing the second format.
    drill
        .stack
        .roll("orders", &[("SHOP_ORDER_PLACED_FORMAT", "2")])?;
    drill.step("orders rolled out writing order-placed v2");
    surge_servers::wait_until(
        "payment dead-letters the new format",
        Duration::from_secs(60),
        Duration::from_millis(250),
        || Ok(records(&drill.stack.kafka, "order-placed.dlq")? >= 30),
    )?;
    let detect = fault.elapsed();
    // The fix: payment rolled out reading both formats. Once its old replicas are gone no
    // new letter is written.
    drill
        .stack
        .roll("payment", &[("SHOP_ACCEPT_ORDER_PLACED_V2", "true")])?;
    drill.step("payment rolled out reading v2");
    let letters = records(&drill.stack.kafka, "order-placed.dlq")?;
    let fixed = Instant::now();

    let dir = drill.dir.path();
    let audit = dir.join("audit.jsonl");
    let snapshots = dir.join("panel-snapshots");
    // The panel reaches the stack as it would a cluster: its kubeconfig's context, Prometheus
    // and Alertmanager through the API's service proxy.
    let command = drill.panel_command(&format!(
        "--kafka {} --snapshot-dir {}",
        drill.stack.kafka.bootstrap(),
        snapshots.display()
    ))?;
    let tmux = Tmux::new("surge-drill-redrive");
    tmux.start("panel", 160, 40, &command)?;
    tmux.wait_for("panel", "the panel", "1 Overview")?;
    tmux.keys("panel", &["R"])?;
    tmux.wait_for("panel", "recording", "recording to")?;
    tmux.keys("panel", &[":dlq order-placed.dlq", "Enter"])?;
    tmux.wait_for(
        "panel",
        "the letters",
        &format!("{letters} held, 0 redriven"),
    )?;
    tmux.keys("panel", &["/malformed", "Enter", ":redrive 50", "Enter"])?;
    let plan = tmux.wait_for(
        "panel",
        "the plan",
        &format!("republished to order-placed: 0 → {letters}"),
    )?;
    anyhow::ensure!(plan.contains("y apply"), "{plan}");
    tmux.keys("panel", &["y"])?;
    tmux.wait_for(
        "panel",
        "the redrive done",
        &format!(
            "oncall redrive topic order-placed.dlq: republished to order-placed: 0 → {letters}"
        ),
    )?;
    drill.step("redriven from the panel");
    tmux.wait_for(
        "panel",
        "the ledger read back",
        &format!("{letters} held, {letters} redriven"),
    )?;
    tmux.keys("panel", &[":redrive", "Enter"])?;
    let again = tmux.wait_for(
        "panel",
        "the second plan",
        &format!("{letters} already redriven: skipped"),
    )?;
    anyhow::ensure!(again.contains("nothing to change"), "{again}");
    tmux.keys("panel", &["Escape"])?;
    // Payment restarted from the panel while orders flow: a rolling update, nothing lost.
    let before = drill.stack.replica_ports("payment");
    tmux.keys("panel", &[":svc payment", "Enter", ":restart", "Enter"])?;
    tmux.wait_for(
        "panel",
        "the restart's plan",
        "type payment and Enter to confirm",
    )?;
    tmux.keys("panel", &["payment", "Enter"])?;
    tmux.wait_for(
        "panel",
        "the restart done",
        "restart deployment shop/payment: template annotation kubectl.kubernetes.io/restartedAt: (never restarted) →",
    )?;
    surge_servers::wait_until(
        "every payment replica replaced",
        Duration::from_secs(60),
        Duration::from_millis(250),
        || {
            let now = drill.stack.replica_ports("payment");
            Ok(now.len() == before.len() && now.iter().all(|p| !before.contains(p)))
        },
    )?;
    drill.step("payment restarted from the panel");
    tmux.keys("panel", &["R"])?;
    tmux.wait_for("panel", "the recording stopped", "recording stopped")?;
    tmux.keys("panel", &["q"])?;

    let refused = ordering.stop();
    anyhow::ensure!(refused == 0, "{refused} orders refused during the drill");
    let (orders, lost) = drill.audit(Duration::from_secs(180))?;
    let recover = fixed.elapsed();
    // The dead letters warned (never paged); replayed, payment's verdict named them.
    let warning = drill.wait_webhook(
        "warnings",
        "KafkaDeadLetterReceiving",
        "firing",
        Duration::from_secs(120),
    )?;
    assert_eq!(warning.body["commonLabels"]["topic"], "order-placed.dlq");
    let pages = drill.other_pages(&[]);
    assert!(pages.is_empty(), "the poison deploy paged: {pages:#?}");
    let dead_letters = |v: &Verdict| {
        matches!(
            v,
            Verdict::Alerting { alert, page: false } if alert == "KafkaDeadLetterReceiving"
        )
    };
    let seen = drill
        .replayed_verdicts(&["payment"], &|seen| seen[0].iter().any(dead_letters))?
        .remove(0);
    assert!(
        seen.iter().any(dead_letters),
        "payment's verdicts over the recording: {seen:?}"
    );
    assert_eq!(
        records(&drill.stack.kafka, "order-placed.dlq")?,
        letters,
        "the dead letters are kept"
    );
    assert_eq!(
        records(&drill.stack.kafka, "order-placed.dlq.redriven")?,
        letters,
        "each redriven once"
    );
    assert_eq!(records(&drill.stack.kafka, "payment-processed.dlq")?, 0);
    // The audit line on disk and in the panel's recording.
    let log = surge_client::act::audit::AuditLog::at(&audit)
        .read()
        .map_err(anyhow::Error::msg)?;
    assert_eq!(log.len(), 2, "{log:#?}");
    assert_eq!(
        log[0].changes[0].to_string(),
        format!("republished to order-placed: 0 → {letters}")
    );
    assert_eq!(log[1].target, "deployment shop/payment");
    assert!(
        log[1].who.user.is_some(),
        "the local API names its user: {:?}",
        log[1].who
    );
    assert_eq!(log[1].who.os_user.as_deref(), Some("oncall"));
    let recording = std::fs::read_dir(&snapshots)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "surge"))
        .context("no recording in the snapshot directory")?;
    let recorded = surge_client::recording::read(&recording).map_err(anyhow::Error::msg)?;
    let replay =
        surge_client::recording::Replay::new(&recorded, 0, surge_client::store::Store::new(30.0));
    let (_, end) = replay.span();
    let replayed: Vec<String> = replay
        .store_at(end)
        .actions()
        .map(surge_client::act::audit::Entry::summary)
        .collect();
    assert_eq!(
        replayed,
        [log[0].summary(), log[1].summary()],
        "the recording carries the redrive and the restart"
    );
    drill.report(Outcome {
        number: 14,
        title: "poison deploy, redriven from the panel",
        fault: "orders rolled out writing a message format payment cannot read, mid sale",
        notified: format!(
            "`KafkaDeadLetterReceiving` warning; {letters} letters on order-placed.dlq, redriven from the panel in tmux after payment's fix; a second redrive moved none"
        ),
        detect,
        detect_to: "from the bad rollout to 30 dead letters",
        recover,
        recover_to: "from payment's fix to every order shipped (the redrive included)",
        orders: Some((orders, lost)),
        notes: format!("dead_letters={letters} redriven={letters}"),
    });
    Ok(())
}
