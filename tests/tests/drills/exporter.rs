//! Surge's own exporter killed: the page that says monitoring is blind, and a panel that keeps
//! what it last knew, marked stale.

use std::time::{Duration, Instant};

use anyhow::Context;
use surge_client::store::Verdict;
use surge_testkit::tmux::Tmux;
use surge_tests::drill::{Drill, FAST, Outcome, Recorded, surge_bin};

/// Drill 5: The exporter is killed: SurgeExporterAbsent pages; a panel scraping it directly shows
/// the source failing with its last data marked stale; restarted, the page resolves.
#[test]
fn drill_exporter_killed_pages_and_the_panel_keeps_stale_data() -> anyhow::Result<()> {
    let mut drill = Drill::start_recording(
        "exporter-killed",
        FAST,
        Recorded::MonitoringAndExporter,
        |_| {},
    )?;
    let orders = drill.keep_ordering(3);
    let tmux = Tmux::new("surge-drill");
    let command = format!(
        "NO_COLOR=1 {} --exporter {} --refresh 1s --log {}",
        surge_bin()?.display(),
        drill.exporter(),
        drill.dir.path().join("surge-tmux.log").display()
    );
    tmux.start("panel", 160, 48, &command)?;
    tmux.wait_for_screen(
        "panel",
        "data from the exporter",
        Duration::from_secs(60),
        |s| s.contains("shop/payment") && s.contains("payment → order-placed"),
    )?;

    // Steady before the fault: scraped fine for 10 s and nothing pending about it, so the
    // time to detect counts from the kill.
    surge_servers::wait_until(
        "steady scrapes of the exporter",
        Duration::from_secs(60),
        Duration::from_millis(500),
        || {
            Ok(drill
                .prom
                .value("min_over_time(up{job=\"surge-exporter\"}[10s])")?
                == Some(1.0)
                && drill
                    .prom
                    .query("ALERTS{alertname=\"SurgeExporterAbsent\"}")?
                    .is_empty())
        },
    )?;
    // The recording has judged payment from fresh data (the first verdict replayed below).
    let fresh = |v: &Verdict| !matches!(v, Verdict::Stale(_) | Verdict::NoData);
    drill.wait_recorded("payment judged from fresh data", &["payment"], &|seen| {
        seen[0].iter().any(fresh)
    })?;
    let fault = Instant::now();
    drill
        .stack
        .exporter
        .as_ref()
        .context("no exporter")?
        .signal(surge_servers::Signal::Kill)?;
    let page = drill.wait_page("SurgeExporterAbsent", Duration::from_secs(120))?;
    let detect = fault.elapsed();
    let screen =
        tmux.wait_for_screen("panel", "the stale banner", Duration::from_secs(30), |s| {
            s.contains("STALE") && s.contains("shop/payment")
        })?;
    assert!(screen.contains("is failing"), "{screen}");
    drill.wait_frame("the page on the panel", &["--view", "alerts"], |f| {
        f.contains("SurgeExporterAbsent")
    })?;

    let restart = Instant::now();
    drill.stack.start_exporter()?;
    drill.wait_resolve(&page, Duration::from_secs(120))?;
    let recover = restart.elapsed();
    tmux.wait_for_screen("panel", "the banner gone", Duration::from_secs(30), |s| {
        !s.contains("STALE") && s.contains("shop/payment")
    })?;
    assert_eq!(orders.stop(), 0, "orders refused");
    let (orders, lost) = drill.audit(Duration::from_secs(120))?;
    // Replayed: payment's verdict was judged, then its last one marked stale while the
    // exporter was dead, then judged again.
    drill.expect_verdicts(
        "payment",
        &[&fresh, &|v| matches!(v, Verdict::Stale(_)), &fresh],
    )?;
    drill.report(Outcome {
        number: 5,
        title: "exporter killed",
        fault: "SIGKILL",
        notified:
            "`SurgeExporterAbsent` page; a panel on the exporter kept its last data, marked STALE"
                .into(),
        detect,
        detect_to: "",
        recover,
        recover_to: "to resolve",
        orders: Some((orders, lost)),
        notes: String::new(),
    });
    Ok(())
}
