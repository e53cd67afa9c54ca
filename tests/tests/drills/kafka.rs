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
