//! Screens from data real servers produced: recordings the fault drills made on the local
//! stack (`SURGE_DRILL_RECORDINGS=DIR`, copied to `fixtures/recordings/`), replayed to the
//! moment a human would look, snapshotted, and checked for the verdict they would give.
//!
//! - `payment-killed`: the payment consumers are stopped, its group stalls, then it recovers;
//! - `replica-paused`: replica1's replay is paused past the 30 s warning line, then resumed;
//! - `flash-sale`: a 15× spike takes the services to their maximum (4 replicas) and back.

use std::path::Path;

mod common;

use surge_client::recording::{self, Recording, Replay};
use surge_client::store::{ServiceRow, Store, Verdict, verdict};
use surge_tui::app::{App, ReplayClock, View};
use surge_tui::config::ThemeName;
use surge_tui::ui::render_text;
use surge_tui::ui::theme::Theme;

fn open(name: &str) -> anyhow::Result<(Recording, Replay)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/recordings")
        .join(format!("{name}.surge"));
    let recording = recording::read(&path).map_err(anyhow::Error::msg)?;
    anyhow::ensure!(recording.truncated.is_none(), "{name} is cut short");
    let replay = Replay::new(&recording, 0, Store::new(recording.header.stale_after));
    Ok((recording, replay))
}

/// The first second of the recording at which `workload`'s row satisfies `want`, and the
/// store then.
fn first_moment(
    replay: &Replay,
    workload: &str,
    want: impl Fn(&ServiceRow) -> bool,
) -> Option<(f64, Store)> {
    let (start, end) = replay.span();
    let mut cursor = replay.cursor();
    let mut at = start;
    while at <= end {
        replay.seek(&mut cursor, at);
        if cursor
            .store
            .derived()
            .services
            .iter()
            .any(|s| s.workload == workload && want(s))
        {
            return Some((at, cursor.store.clone()));
        }
        at += 1.0;
    }
    None
}

/// The frame as `surge replay` draws it at `at`.
fn frame(
    replay: &Replay,
    name: &str,
    view: View,
    store: &Store,
    at: f64,
    size: (u16, u16),
) -> String {
    let (start, end) = replay.span();
    let mut clock = ReplayClock::new(&format!("{name}.surge"), start, end, replay.len());
    clock.at = at;
    clock.playing = false;
    clock.position = replay.position(at);
    let mut app = App::new(true, "oncall");
    app.view = view;
    app.replay = Some(clock);
    render_text(
        &app,
        store,
        &Theme::new(ThemeName::Mono),
        at,
        size.0,
        size.1,
    )
}

#[test]
fn a_stalled_consumer_replayed() -> anyhow::Result<()> {
    let (_, replay) = open("payment-killed")?;
    let (at, store) = first_moment(&replay, "payment", |s| {
        verdict(s) == Verdict::ConsumersStalled
    })
    .ok_or_else(|| anyhow::anyhow!("payment never stalled in the recording"))?;
    let overview = frame(
        &replay,
        "payment-killed",
        View::Overview,
        &store,
        at,
        (160, 48),
    );
    let row = overview
        .lines()
        .find(|l| l.contains("shop/payment"))
        .unwrap_or_default();
    assert!(row.contains("consumers stalled"), "{overview}");
    insta::assert_snapshot!("payment_killed_overview_160x48", overview);
    // The guide's postmortem frame: `n` from the stall, the next change in the alerts.
    let alerted = replay
        .next_alert_change(at)
        .ok_or_else(|| anyhow::anyhow!("the alerts never changed after the stall"))?;
    let postmortem = frame(
        &replay,
        "payment-killed",
        View::Overview,
        &replay.store_at(alerted),
        alerted,
        (160, 20),
    );
    assert!(postmortem.contains("KafkaConsumerStalled"), "{postmortem}");
    insta::assert_snapshot!("payment_killed_overview_160x20", postmortem);
    insta::assert_snapshot!(
        "payment_killed_kafka_80x24",
        frame(&replay, "payment-killed", View::Kafka, &store, at, (80, 24))
    );
    // Before the fault the same service was keeping up.
    let (start, _) = replay.span();
    let early = replay.store_at(start + 5.0);
    let payment = early
        .derived()
        .services
        .iter()
        .find(|s| s.workload == "payment");
    assert_eq!(payment.map(verdict), Some(Verdict::KeepingUp));
    Ok(())
}

#[test]
fn a_paused_replica_replayed() -> anyhow::Result<()> {
    let (_, replay) = open("replica-paused")?;
    let (at, store) = first_moment(&replay, "catalog", |s| {
        matches!(verdict(s), Verdict::ReplicaBehind { .. })
    })
    .ok_or_else(|| anyhow::anyhow!("no replica fell behind in the recording"))?;
    let postgres = frame(
        &replay,
        "replica-paused",
        View::Postgres,
        &store,
        at,
        (160, 48),
    );
    assert!(postgres.contains("replica1"), "{postgres}");
    insta::assert_snapshot!("replica_paused_postgres_160x48", postgres);
    let overview = frame(
        &replay,
        "replica-paused",
        View::Overview,
        &store,
        at,
        (80, 24),
    );
    assert!(overview.contains("behind"), "{overview}");
    insta::assert_snapshot!("replica_paused_overview_80x24", overview);
    Ok(())
}

#[test]
fn a_flash_sale_replayed() -> anyhow::Result<()> {
    let (_, replay) = open("flash-sale")?;
    let (at, store) = first_moment(&replay, "auth", |s| {
        matches!(verdict(s), Verdict::SaturatedAtMax { .. })
    })
    .ok_or_else(|| anyhow::anyhow!("auth never reached its maximum in the recording"))?;
    let overview = frame(&replay, "flash-sale", View::Overview, &store, at, (160, 48));
    let row = overview
        .lines()
        .find(|l| l.contains("shop/auth"))
        .unwrap_or_default();
    assert!(row.contains("saturated at max"), "{overview}");
    insta::assert_snapshot!("flash_sale_overview_160x48", overview);
    insta::assert_snapshot!(
        "flash_sale_overview_120x40",
        frame(&replay, "flash-sale", View::Overview, &store, at, (120, 40))
    );
    Ok(())
}

/// The guide's postmortem frame (docs/src/panel.md) is this snapshot, character for character.
#[test]
fn guide_replay_frame_is_the_snapshot() -> anyhow::Result<()> {
    assert!(
        common::doc_holds_snapshot(
            "docs/src/panel.md",
            "replays__payment_killed_overview_160x20"
        )?,
        "docs/src/panel.md's replay frame differs from replays__payment_killed_overview_160x20.snap: copy it over"
    );
    Ok(())
}
