//! PostgreSQL faults: a replica's replay paused, the primary lost and failed over, the
//! collectors hung mid-collection.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use surge_client::store::{Urgency, Verdict};
use surge_testkit::http::{scrape, series_value, source_up};
use surge_tests::drill::{
    Drill, FAST, Outcome, box_rows, drill_timing, panel_seconds, panel_shows_primary,
    servers_with_role, surge_bin,
};

/// Drill 3: A replica's replay is paused: the replica lag warning fires (never a page), the
/// catalog keeps serving from the replicas, and it resolves when replay resumes.
#[test]
fn drill_replica_paused_warns_catalog_serves_and_resolves() -> anyhow::Result<()> {
    let mut drill = Drill::start("replica-paused", FAST, |_| {})?;
    let orders = drill.keep_ordering(5);
    // Steady before the fault: orders flow and both replicas' lag is in Prometheus.
    drill.wait_orders(5)?;
    drill.wait_value(
        "both replicas' lag in Prometheus",
        "count(surge_postgres_replay_lag_seconds)",
        2.0,
    )?;
    let fault = Instant::now();
    drill
        .stack
        .postgres
        .psql("replica1", "SELECT pg_wal_replay_pause()")?;
    let browsing = Arc::new(AtomicBool::new(true));
    let catalog = {
        let (base, http, flag) = (
            drill.shop.base.clone(),
            drill.shop.http.clone(),
            Arc::clone(&browsing),
        );
        std::thread::spawn(move || {
            let (mut ok, mut failed) = (0u32, 0u32);
            let mut i = 0;
            while flag.load(Ordering::Relaxed) {
                match http.get(format!("{base}/products/{}", 1 + i % 50)).send() {
                    Ok(r) if r.status().is_success() => ok += 1,
                    _ => failed += 1,
                }
                i += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
            (ok, failed)
        })
    };
    drill.wait_webhook(
        "warnings",
        "PostgresReplicaLagHigh",
        "firing",
        Duration::from_secs(150),
    )?;
    let detect = fault.elapsed();
    // The PostgreSQL view: replica1 paused and over the warning's 30 s, replica2 streaming,
    // the warning counted in the header.
    drill.wait_frame(
        "the panel shows replica1 paused over 30 s behind",
        &["--view", "postgres"],
        |f| {
            let rows = box_rows(f, "Servers");
            let row = |name: &str| {
                rows.iter()
                    .find(|r| r.split_whitespace().next() == Some(name))
            };
            let paused_lag = row("replica1")
                .and_then(|r| r.split_once("replay paused"))
                .and_then(|(_, rest)| rest.split_whitespace().next())
                .and_then(panel_seconds);
            paused_lag.is_some_and(|lag| lag > 30.0)
                && row("replica2").is_some_and(|r| r.split_whitespace().nth(2) == Some("streaming"))
                && f.lines()
                    .next()
                    .is_some_and(|header| header.contains("1 FIRING"))
        },
    )?;
    let resume = Instant::now();
    drill
        .stack
        .postgres
        .psql("replica1", "SELECT pg_wal_replay_resume()")?;
    drill.wait_webhook(
        "warnings",
        "PostgresReplicaLagHigh",
        "resolved",
        Duration::from_secs(120),
    )?;
    let recover = resume.elapsed();
    browsing.store(false, Ordering::Relaxed);
    let (served, failed) = catalog
        .join()
        .map_err(|_| anyhow::anyhow!("catalog thread"))?;
    assert!(
        served > 50 && failed == 0,
        "catalog served {served}, failed {failed}"
    );
    assert_eq!(orders.stop(), 0, "orders refused");
    let (orders, lost) = drill.audit(Duration::from_secs(120))?;
    assert!(
        drill.other_pages(&[]).is_empty(),
        "a warning paged: {:#?}",
        drill.other_pages(&[])
    );
    // Replayed: the catalog (it reads the replicas) was told a replica fell behind, then
    // that all was well again (once the lag is back under the warning line).
    drill.wait_value(
        "every replica under 30 s of replay lag",
        "max(surge_postgres_replay_lag_seconds) < bool 30",
        1.0,
    )?;
    drill.expect_verdicts(
        "catalog",
        &[&|v| matches!(v, Verdict::ReplicaBehind { .. }), &|v| {
            v.urgency() == Urgency::Fine
        }],
    )?;
    drill.report(Outcome {
        number: 3,
        title: "replica replay paused",
        fault: "`pg_wal_replay_pause()` on replica1",
        notified: format!("`PostgresReplicaLagHigh` warning; the catalog answered {served} reads from the replicas, none failed"),
        detect,
        detect_to: "",
        recover,
        recover_to: "to resolve",
        orders: Some((orders, lost)),
        notes: format!("catalog_reads={served}"),
    });
    Ok(())
}

/// Drill 11: The primary is lost (SIGKILL) while orders flow. After 2 s (a failover manager's
/// decision) the most advanced standby is promoted with `pg_ctl promote` and the other follows
/// it. The shop's writes follow the new primary (multi-host URL), the exporter and the panel show
/// the new roles, PostgresPrimaryDown pages and nothing else does; the old primary rejoins as a
/// standby with pg_rewind and the page resolves. Commits wait for one standby, so every order
/// the API accepted ships exactly once.
#[test]
fn drill_primary_lost_fails_over_and_keeps_every_accepted_order() -> anyhow::Result<()> {
    let mut drill = Drill::start("primary-failover", FAST, |_| {})?;
    let orders = drill.keep_ordering(5);
    // Orders flow, and Prometheus has seen who the primary is.
    drill.wait_value(
        "the exporter reports the primary",
        "surge_postgres_is_replica{target=\"primary\"}",
        0.0,
    )?;
    surge_servers::wait_until(
        "orders accepted",
        Duration::from_secs(60),
        Duration::from_millis(200),
        || Ok(drill.accepted_count() >= 10),
    )?;
    // Each commit waits for one of the two standbys (quorum): what keeps accepted orders.
    assert_eq!(
        drill.stack.postgres.psql(
            "primary",
            "SELECT string_agg(application_name || ':' || sync_state, ',' ORDER BY application_name) FROM pg_stat_replication"
        )?,
        "replica1:quorum,replica2:quorum"
    );
    let before = drill.accepted_count();
    let fault = Instant::now();
    drill.stack.postgres.kill_node("primary")?;
    // Not a wait on anything: the failover manager's decision time, part of the scenario.
    std::thread::sleep(Duration::from_secs(2));
    let promoted = drill.stack.postgres.fail_over()?;
    let promoted_after = fault.elapsed();
    // Writes are back once an order placed after the promotion is accepted.
    surge_servers::wait_until(
        "an order accepted by the new primary",
        Duration::from_secs(60),
        Duration::from_millis(100),
        || Ok(drill.accepted_count() > before + 2),
    )?;
    let writes_back = fault.elapsed();
    let page = drill.wait_page("PostgresPrimaryDown", Duration::from_secs(120))?;
    let detect = fault.elapsed();
    assert_eq!(
        page.body["payload"]["summary"], "PostgreSQL primary primary is unreachable",
        "{:#}",
        page.body
    );
    // The exporter sees the promoted node as the primary, and the panel says so.
    drill.wait_value(
        "the exporter reports the new primary",
        &format!("surge_postgres_is_replica{{target=\"{promoted}\"}}"),
        0.0,
    )?;
    panel_shows_primary(&drill, &promoted, "")?;

    let rejoin = Instant::now();
    drill.stack.postgres.rejoin("primary")?;
    drill.wait_resolve(&page, Duration::from_secs(120))?;
    let recover = rejoin.elapsed();
    drill.wait_value(
        "the exporter reports the old primary as a standby",
        "surge_postgres_is_replica{target=\"primary\"}",
        1.0,
    )?;
    panel_shows_primary(&drill, &promoted, "primary")?;
    // Orders still flow once the old primary is back as a standby (commits wait for one).
    drill.wait_orders(5)?;
    let refused = orders.stop();
    let (orders, lost) = drill.audit(Duration::from_secs(180))?;
    let pages = drill.other_pages(&["PostgresPrimaryDown"]);
    assert!(
        pages.is_empty(),
        "the failover paged something else: {pages:#?}"
    );
    // Replayed: the old primary's loss shows on every service (no primary, or once one was
    // promoted, the old one down), and clears when it rejoins.
    let old_primary_down = |v: &Verdict| match v {
        Verdict::DatabasePrimaryDown => true,
        Verdict::DatabaseServersDown { targets } => targets == &["primary"],
        _ => false,
    };
    drill.expect_verdicts(
        "payment",
        &[&old_primary_down, &|v| {
            !matches!(
                v,
                Verdict::DatabasePrimaryDown | Verdict::DatabaseServersDown { .. }
            )
        }],
    )?;
    drill.report(Outcome {
        number: 11,
        title: "primary failover",
        fault: "the primary's postmaster SIGKILLed; the most advanced standby promoted 2 s later",
        notified: format!(
            "`PostgresPrimaryDown` page; {promoted} promoted {:.1} s after the kill, orders accepted again after {:.1} s ({refused} refused)",
            promoted_after.as_secs_f64(),
            writes_back.as_secs_f64()
        ),
        detect,
        detect_to: "",
        recover,
        recover_to: "from starting the rewound old primary to resolve",
        orders: Some((orders, lost)),
        notes: format!(
            "promoted={promoted} promoted_after={:.1} writes_back={:.1} orders_refused={refused}",
            promoted_after.as_secs_f64(),
            writes_back.as_secs_f64()
        ),
    });
    Ok(())
}

/// Drill 12: Collectors hang mid-collection: a session on the primary holds
/// `pg_stat_wal_receiver` exclusively. The lock replays to the standbys, so the exporter's
/// standby-only query there blocks after its other queries ran. Both replicas' targets go
/// down within the timeout (statement_timeout ends the query on the server too), their
/// series disappear instead of freezing, SurgeSourceStale fires in Prometheus and
/// SurgeSourceDown warns (the stale warning inhibited: said once), the primary and the other
/// sources keep collecting, nothing pages; released, they recover by themselves.
#[test]
fn drill_collectors_hang_mid_collection_go_down_and_stale_never_frozen() -> anyhow::Result<()> {
    let mut drill = Drill::start("collector-hang", FAST, |_| {})?;
    let orders = drill.keep_ordering(3);
    let fresh = "count(surge_postgres_replay_lag_seconds)";
    drill.wait_value("both replicas' numbers in Prometheus", fresh, 2.0)?;
    let fault = Instant::now();
    let hold = drill.stack.postgres.hold_transaction(
        "primary",
        "LOCK TABLE pg_catalog.pg_stat_wal_receiver IN ACCESS EXCLUSIVE MODE",
    )?;
    // On the exporter itself: each replica's collection hangs and ends at its timeout, so the
    // target is down within one interval (the next collection's start) plus one timeout of
    // the lock, and the failed cycle took the timeout, no more.
    let timing = drill_timing();
    let exporter = drill.exporter().trim_start_matches("http://").to_string();
    let mut body = String::new();
    surge_servers::wait_until(
        "both replicas down on the exporter",
        Duration::from_secs(60),
        Duration::from_millis(100),
        || {
            body = scrape(&exporter)?;
            Ok(["replica1", "replica2"]
                .iter()
                .all(|t| source_up(&body, "postgres", t) == Some(false)))
        },
    )?;
    let down_after = fault.elapsed();
    let bound = timing.collect + timing.timeout + Duration::from_secs(2);
    assert!(
        down_after <= bound,
        "the hung replicas went down after {down_after:?} (collection every {:?}, timeout {:?})",
        timing.collect,
        timing.timeout
    );
    for target in ["replica1", "replica2"] {
        let took = series_value(
            &body,
            &format!(
                "surge_source_collect_duration_seconds{{source=\"postgres\",target=\"{target}\"}}"
            ),
        )
        .context("no collection duration")?;
        let timeout = timing.timeout.as_secs_f64();
        assert!(
            took >= timeout - 0.05 && took <= timeout + 0.5,
            "{target}'s hung collection took {took} s against a {timeout} s timeout"
        );
    }
    drill.wait_webhook(
        "warnings",
        "SurgeSourceDown",
        "firing",
        Duration::from_secs(120),
    )?;
    let detect = fault.elapsed();
    // The stale rule fires too (its notification is inhibited by SurgeSourceDown).
    let stale = "count(ALERTS{alertname=\"SurgeSourceStale\",alertstate=\"firing\",source=\"postgres\",target=~\"replica.\"})";
    drill.wait_value("SurgeSourceStale firing for both replicas", stale, 2.0)?;
    // Not frozen: the replicas' series are gone, not repeating their last values; the primary
    // (same source) and the other sources are up.
    assert_eq!(
        drill.prom.value(fresh)?,
        None,
        "hung replicas still have fresh numbers"
    );
    let value = |q: &str| drill.prom.value(q);
    for (query, expected) in [
        (
            "max(surge_source_up{source=\"postgres\",target=~\"replica.\"})",
            0.0,
        ),
        (
            "surge_source_up{source=\"postgres\",target=\"primary\"}",
            1.0,
        ),
        ("min(surge_source_up{source!=\"postgres\"})", 1.0),
    ] {
        assert_eq!(value(query)?, Some(expected), "{query}");
    }
    // A panel reading the exporter directly marks them down, their numbers missing (not 0).
    let mut frame = String::new();
    surge_servers::wait_until(
        "the panel shows the replicas down",
        Duration::from_secs(60),
        Duration::from_secs(1),
        || {
            let out = Command::new(surge_bin()?)
                .args(["--once", "--size", "160x48", "--wait", "20s"])
                .args(["--exporter", &drill.exporter(), "--view", "postgres"])
                .env("NO_COLOR", "1")
                .output()?;
            frame = String::from_utf8(out.stdout)?;
            Ok(
                servers_with_role(&frame, "down") == ["replica1", "replica2"]
                    && servers_with_role(&frame, "primary") == ["primary"]
                    && frame.contains("postgres target replica1 is down")
                    && frame.contains("its series are missing, not zero"),
            )
        },
    )
    .map_err(|e| anyhow::anyhow!("{e:#}\nlast frame:\n{frame}"))?;
    let release = Instant::now();
    drop(hold);
    drill.wait_webhook(
        "warnings",
        "SurgeSourceDown",
        "resolved",
        Duration::from_secs(120),
    )?;
    let recover = release.elapsed();
    drill.wait_value("the replicas' numbers back", fresh, 2.0)?;
    let stale_notified: Vec<String> = drill
        .pager
        .received()
        .iter()
        .flat_map(|r| r.body["alerts"].as_array().cloned().unwrap_or_default())
        .filter(|a| a["labels"]["alertname"] == "SurgeSourceStale")
        .map(|a| {
            format!(
                "{} {} from {}",
                a["status"], a["labels"]["target"], a["startsAt"]
            )
        })
        .collect();
    assert!(
        stale_notified.is_empty(),
        "SurgeSourceStale was notified beside SurgeSourceDown: {stale_notified:?}"
    );
    assert_eq!(orders.stop(), 0, "orders refused");
    let (orders, lost) = drill.audit(Duration::from_secs(120))?;
    let pages = drill.other_pages(&[]);
    assert!(pages.is_empty(), "a hung collector paged: {pages:#?}");
    // Replayed: while the replicas' collectors hung, services said the DB servers were down
    // (replica lag unknown, not zero); released, no longer.
    let replicas_down = |v: &Verdict| matches!(v, Verdict::DatabaseServersDown { targets } if targets == &["replica1", "replica2"]);
    drill.expect_verdicts(
        "payment",
        &[&replicas_down, &|v| {
            !matches!(v, Verdict::DatabaseServersDown { .. })
        }],
    )?;
    drill.report(Outcome {
        number: 12,
        title: "collectors hung mid-collection",
        fault: "`pg_stat_wal_receiver` locked on the primary, the lock replayed on both standbys",
        notified: format!(
            "`SurgeSourceDown` warning; `SurgeSourceStale` firing, inhibited; both replicas down {:.1} s after the lock",
            down_after.as_secs_f64()
        ),
        detect,
        detect_to: "",
        recover,
        recover_to: "to resolve",
        orders: Some((orders, lost)),
        notes: format!("down_after={:.1}", down_after.as_secs_f64()),
    });
    Ok(())
}
