//! The `surge` panel against real servers: a headless frame from Prometheus + Alertmanager +
//! surge-exporter (real broker and PostgreSQL) that shows a stalled group and its firing
//! alert; the same from the exporter directly; the same moment recorded (`--record`) and
//! replayed (`surge replay`, headless and keyed in tmux); silences created and expired on the
//! real Alertmanager; and the real binary driven by keys in a pseudo-terminal (tmux).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use surge_client::fetch::Alertmanager as AmClient;
use surge_client::model::{Matcher, NewSilence};
use surge_servers::{Alertmanager, KafkaBroker, PgCluster, Prometheus, Workdir, free_port};
use surge_testkit::kafka::BrokerClients;
use surge_testkit::pagerduty::PagerDutyStandIn;
use surge_testkit::tmux::Tmux;
use surge_tests::pipeline::{serve_exporter, stall};

/// The `surge` binary next to this test's (scripts/test builds every binary first).
fn surge_bin() -> anyhow::Result<PathBuf> {
    surge_stack::stack::sibling_binary("surge", "SURGE_BIN")
}

/// `surge --once` with `args`: (frame, exit code).
fn once(args: &[&str]) -> anyhow::Result<(String, i32)> {
    let out = Command::new(surge_bin()?)
        .args([
            "--once",
            "--size",
            "160x48",
            "--wait",
            "20s",
            "--log",
            "/dev/null",
        ])
        .args(args)
        .env("NO_COLOR", "1")
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !stderr.trim().is_empty() {
        bail!("surge --once wrote to stderr: {stderr}");
    }
    Ok((
        String::from_utf8(out.stdout)?,
        out.status.code().unwrap_or(-1),
    ))
}

/// The file in `dir` whose name starts with `prefix` (what the panel wrote there).
fn file_named(dir: &Path, prefix: &str) -> anyhow::Result<PathBuf> {
    std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .find(|e| e.file_name().to_string_lossy().starts_with(prefix))
        .map(|e| e.path())
        .with_context(|| format!("no {prefix}* file in {}", dir.display()))
}

fn get_json(url: &str) -> anyhow::Result<serde_json::Value> {
    Ok(reqwest::blocking::get(url)?.error_for_status()?.json()?)
}

fn alertmanager_config(dir: &Path, pager: &PagerDutyStandIn) -> anyhow::Result<String> {
    let key_file = dir.join("routing-key");
    std::fs::write(&key_file, "0123456789abcdef0123456789abcdef\n")?;
    surge_tests::alerting::test_alertmanager(&pager.events_url(), &key_file, |name| {
        pager.webhook_url(name)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headless_frames_show_a_stalled_group_its_alert_and_silences() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let pager = PagerDutyStandIn::start()?;
    let broker = KafkaBroker::start()?;
    broker.create_topic("payment-processed", 2)?;
    let cluster = PgCluster::start(1)?;
    let exporter = serve_exporter(dir.path(), &cluster, &broker).await?;
    let exporter_port = exporter.port();

    let alertmanager = Alertmanager::start_in(
        Workdir::temp("surge-am-")?,
        free_port()?,
        &alertmanager_config(dir.path(), &pager)?,
    )?;
    let rules = dir.path().join("rules.yml");
    std::fs::write(&rules, surge_tests::alerting::scaled_rules(30)?)?;
    let prometheus = Prometheus::start_in(
        Workdir::temp("surge-prom-")?,
        free_port()?,
        &format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files: [\"{}\"]\n\
             alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: [\"127.0.0.1:{}\"]\n\
             scrape_configs:\n  - job_name: surge-exporter\n    static_configs:\n      - targets: [\"127.0.0.1:{exporter_port}\"]\n",
            rules.display(),
            alertmanager.port()
        ),
    )?;

    // A live pipeline whose consumer dies while the producer keeps going: a stall.
    let producer = stall(&broker, "shipping", "payment-processed").await?;

    let (prom, am) = (prometheus.url(), alertmanager.url());
    tokio::task::block_in_place(|| {
        surge_servers::wait_until(
            "KafkaConsumerStalled firing in Alertmanager",
            Duration::from_secs(120),
            Duration::from_millis(300),
            || {
                let alerts = get_json(&format!("{am}/api/v2/alerts"))?;
                Ok(alerts.to_string().contains("KafkaConsumerStalled"))
            },
        )
    })?;

    // Through Prometheus and Alertmanager: the group is stalled and its alert fires.
    let (frame, code) =
        tokio::task::block_in_place(|| once(&["--prometheus", &prom, "--alertmanager", &am]))?;
    assert_eq!(code, 0, "every source answered:\n{frame}");
    let stalled_row = frame
        .lines()
        .find(|l| l.contains("shipping → payment-processed"))
        .unwrap_or_default();
    assert!(
        stalled_row.contains("stalled"),
        "pipeline row: {stalled_row:?}\n{frame}"
    );
    let alert_row = frame
        .lines()
        .find(|l| l.contains("KafkaConsumerStalled"))
        .unwrap_or_default();
    assert!(
        alert_row.contains("firing"),
        "alert row: {alert_row:?}\n{frame}"
    );
    assert!(
        frame.contains("replica1") && frame.contains("streaming"),
        "{frame}"
    );

    // Recorded while it happens, replayed afterwards: the replay's last moment shows the
    // stalled row as the live frame did, and says it is a replay; its first moment differs.
    let recording = dir.path().join("stall.surge");
    let record = recording.display().to_string();
    let (live, code) = tokio::task::block_in_place(|| {
        once(&[
            "--prometheus",
            &prom,
            "--alertmanager",
            &am,
            "--record",
            &record,
        ])
    })?;
    assert_eq!(code, 0, "{live}");
    let replay = |at: &str| -> anyhow::Result<String> {
        let (frame, code) = once(&["replay", &record, "--at", at])?;
        anyhow::ensure!(code == 0, "replay exited {code}:\n{frame}");
        Ok(frame)
    };
    let row = |frame: &str, needle: &str| {
        frame
            .lines()
            .find(|l| l.contains(needle))
            .map(str::to_string)
            .unwrap_or_default()
    };
    let replayed = tokio::task::block_in_place(|| replay("end"))?;
    let header = replayed.lines().next().unwrap_or_default();
    assert!(
        header.contains("REPLAY") && header.contains("100%"),
        "{header}"
    );
    let stalled = row(&live, "shipping → payment-processed");
    assert!(stalled.contains("stalled"), "{live}");
    assert_eq!(
        row(&replayed, "shipping → payment-processed"),
        stalled,
        "{replayed}"
    );
    assert!(
        row(&replayed, "KafkaConsumerStalled").contains("firing"),
        "{replayed}"
    );
    let first = tokio::task::block_in_place(|| replay("start"))?;
    assert!(
        first.lines().next().unwrap_or_default().contains(" 0% "),
        "{first}"
    );
    // Only the first update had arrived: not yet the last moment's screen.
    assert_ne!(
        first.lines().skip(1).collect::<Vec<_>>(),
        replayed.lines().skip(1).collect::<Vec<_>>(),
        "the start of the recording looks like its end"
    );

    // The same recording played in a terminal: the keys change speed, pause and step.
    let tmux = Tmux::new("surge-replay-test");
    tmux.start(
        "replay",
        160,
        48,
        &format!(
            "NO_COLOR=1 {} replay {record} --at start --log /dev/null",
            surge_bin()?.display()
        ),
    )?;
    tokio::task::block_in_place(|| -> anyhow::Result<()> {
        tmux.wait_for("replay", "the replay header", "REPLAY")?;
        tmux.keys("replay", &["+", "+"])?;
        tmux.wait_for("replay", "5x speed", "5×")?;
        // A recording of a few seconds plays to its end and pauses there.
        tmux.wait_for("replay", "the end, paused", "100% 5× ⏸")?;
        tmux.keys("replay", &["Left"])?;
        tmux.wait_for("replay", "back at the start", " 0% 5× ⏸")?;
        tmux.keys("replay", &["Right"])?;
        tmux.wait_for("replay", "the stalled group at the end", "stalled")?;
        tmux.keys("replay", &["q"])?;
        Ok(())
    })?;

    // `surge record --for` records with no terminal and stops by itself.
    let timed = dir.path().join("timed.surge");
    let out = tokio::task::block_in_place(|| {
        Command::new(surge_bin()?)
            .arg("record")
            .arg(&timed)
            .args(["--for", "2s", "--prometheus", &prom, "--alertmanager", &am])
            .args(["--log", "/dev/null"])
            .output()
            .map_err(anyhow::Error::from)
    })?;
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && said.starts_with("recorded "),
        "{said}"
    );
    let timed = surge_client::recording::read(&timed).map_err(anyhow::Error::msg)?;
    assert!(!timed.entries.is_empty() && timed.truncated.is_none());

    // The PostgreSQL view's connections, end to end from the real servers: the test cluster
    // runs max_connections 300 with 3 reserved, so each server shows n/297.
    let (frame, code) = tokio::task::block_in_place(|| {
        once(&["--prometheus", &prom, "--alertmanager", &am, "--view", "pg"])
    })?;
    assert_eq!(code, 0, "{frame}");
    for server in ["primary", "replica1"] {
        let row = frame
            .lines()
            .find(|l| l.contains(&format!(" {server} ")))
            .unwrap_or_default();
        assert!(row.contains("/297"), "{server} row: {row:?}\n{frame}");
    }

    // Directly from the exporter, no Prometheus: the same lag state.
    let exporter = format!("127.0.0.1:{exporter_port}");
    let (frame, code) =
        tokio::task::block_in_place(|| once(&["--exporter", &exporter, "--view", "kafka"]))?;
    assert_eq!(code, 0, "{frame}");
    let row = frame
        .lines()
        .find(|l| l.contains("shipping") && l.contains("payment-processed"))
        .unwrap_or_default();
    assert!(row.contains("stalled"), "direct-mode row: {row:?}\n{frame}");

    // A silence created on the real Alertmanager mutes the alert in the panel; expiring it
    // brings it back.
    let client = AmClient::new(
        &am,
        surge_client::fetch::http_client(Duration::from_secs(5)).map_err(anyhow::Error::msg)?,
    );
    let silence = NewSilence {
        matchers: vec![Matcher {
            name: "alertname".into(),
            value: "KafkaConsumerStalled".into(),
            is_regex: false,
            is_equal: true,
        }],
        seconds: 3600,
        comment: "shipping is being redeployed".into(),
        created_by: "panel-test".into(),
    };
    let id = client
        .create_silence(&silence, surge_client::fetch::now())
        .await
        .map_err(|e| anyhow!("{e}"))?;
    let listed = client.silences().await.map_err(|e| anyhow!("{e}"))?;
    assert!(
        listed.iter().any(|s| s.id == id && s.state == "active"),
        "{listed:?}"
    );
    tokio::task::block_in_place(|| {
        surge_servers::wait_until(
            "the alert muted in the panel",
            Duration::from_secs(20),
            Duration::from_millis(300),
            || {
                let (frame, _) = once(&["--alertmanager", &am, "--view", "alerts"])?;
                Ok(frame
                    .lines()
                    .any(|l| l.contains("KafkaConsumerStalled") && l.contains("muted")))
            },
        )
    })?;
    client
        .expire_silence(&id)
        .await
        .map_err(|e| anyhow!("{e}"))?;
    let listed = client.silences().await.map_err(|e| anyhow!("{e}"))?;
    assert!(
        listed.iter().any(|s| s.id == id && s.state == "expired"),
        "{listed:?}"
    );
    let bogus = client
        .expire_silence("00000000-0000-0000-0000-000000000000")
        .await;
    assert!(
        bogus.is_err_and(|e| e.reason.starts_with("HTTP")),
        "expiring an unknown silence is an error"
    );

    producer.stop()?;
    Ok(())
}

#[test]
fn keys_in_screen_out_in_a_pseudo_terminal() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let pager = PagerDutyStandIn::start()?;
    let alertmanager = Alertmanager::start_in(
        Workdir::temp("surge-am-")?,
        free_port()?,
        &alertmanager_config(dir.path(), &pager)?,
    )?;
    let am = alertmanager.url();
    // A firing alert, posted as Prometheus would.
    let now = surge_client::fetch::now();
    let stamp = |t: f64| surge_tui::snapshot::timestamp(t);
    let alert = serde_json::json!([{
        "labels": {"alertname": "KafkaConsumerLagGrowing", "severity": "page", "cluster": "shop", "group": "payment", "topic": "order-placed"},
        "annotations": {"summary": "payment lag on order-placed keeps growing"},
        "startsAt": stamp(now - 60.0),
        "endsAt": stamp(now + 3600.0),
    }]);
    reqwest::blocking::Client::new()
        .post(format!("{am}/api/v2/alerts"))
        .json(&alert)
        .send()?
        .error_for_status()?;

    let tmux = Tmux::new("surge-test");
    let exit_file = dir.path().join("exit");
    let command = format!(
        "NO_COLOR=1 {} --alertmanager {am} --refresh 500ms --log {} --snapshot-dir {}; echo $? > {}",
        surge_bin()?.display(),
        dir.path().join("surge.log").display(),
        dir.path().display(),
        exit_file.display()
    );
    tmux.start("panel", 160, 48, &command)?;

    tmux.wait_for(
        "panel",
        "the alert on the Overview",
        "KafkaConsumerLagGrowing",
    )?;
    // To the Alerts view, silence the selected alert with a comment, confirm.
    tmux.keys("panel", &["4"])?;
    tmux.wait_for("panel", "the Alerts view", "Timeline, last 5m")?;
    tmux.keys("panel", &["m"])?;
    tmux.wait_for(
        "panel",
        "the silence form",
        "Silence KafkaConsumerLagGrowing",
    )?;
    tmux.run(&[
        "send-keys",
        "-t",
        "panel",
        "-l",
        "draining after the payment fix",
    ])?;
    tmux.keys("panel", &["Enter"])?;
    tmux.wait_for("panel", "the confirmation", "y to confirm")?;
    tmux.keys("panel", &["y"])?;
    tmux.wait_for("panel", "the notice", "created for 2h")?;
    let silences = get_json(&format!("{am}/api/v2/silences"))?;
    let ours = silences
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["comment"] == "draining after the payment fix")
        .context("silence not in Alertmanager")?;
    assert_eq!(ours["status"]["state"], "active", "{ours:#}");
    let matchers = ours["matchers"].to_string();
    assert!(
        matchers.contains("\"group\"") && !matchers.contains("\"severity\""),
        "{matchers}"
    );
    tmux.wait_for("panel", "the alert muted", "muted")?;

    // Expire it from the silences list.
    tmux.keys("panel", &["Tab", "e"])?;
    tmux.wait_for("panel", "the expire confirmation", "Expire silence")?;
    tmux.keys("panel", &["y"])?;
    tmux.wait_for("panel", "the expired notice", "expired")?;
    surge_servers::wait_until(
        "the silence expired in Alertmanager",
        Duration::from_secs(10),
        Duration::from_millis(300),
        || {
            let silences = get_json(&format!("{am}/api/v2/silences"))?;
            Ok(silences.as_array().into_iter().flatten().any(|s| {
                s["comment"] == "draining after the payment fix"
                    && s["status"]["state"] == "expired"
            }))
        },
    )?;

    // Command mode, help, snapshot, then quit: the terminal is given back and the exit is clean.
    tmux.keys("panel", &[":", "k", "a", "f", "k", "a", "Enter"])?;
    tmux.wait_for("panel", "the Kafka view", "Consumer groups")?;
    tmux.keys("panel", &["?"])?;
    tmux.wait_for("panel", "the help overlay", "Help (Esc closes)")?;
    tmux.keys("panel", &["Escape", "s"])?;
    tmux.wait_for("panel", "the snapshot notice", "snapshot written to")?;
    let text = std::fs::read_to_string(file_named(dir.path(), "surge-snapshot-")?)?;
    assert!(
        text.contains("## Firing alerts (1)") && text.contains("KafkaConsumerLagGrowing"),
        "{text}"
    );
    // R records what the panel receives until R again; the file replays.
    tmux.keys("panel", &["R"])?;
    tmux.wait_for("panel", "the recording notice", "recording to")?;
    tmux.wait_for("panel", "REC in the header", "● REC")?;
    // Recorded something before it stops: an update flushed to the file.
    surge_servers::wait_until(
        "an update recorded",
        Duration::from_secs(20),
        Duration::from_millis(200),
        || {
            Ok(file_named(dir.path(), "surge-recording-")
                .ok()
                .and_then(|f| surge_client::recording::read(&f).ok())
                .is_some_and(|r| !r.entries.is_empty()))
        },
    )?;
    tmux.keys("panel", &["R"])?;
    tmux.wait_for("panel", "the recording stopped", "recording stopped")?;
    let recording = surge_client::recording::read(&file_named(dir.path(), "surge-recording-")?)
        .map_err(anyhow::Error::msg)?;
    assert!(
        !recording.entries.is_empty() && recording.truncated.is_none(),
        "{} entries, truncated {:?}",
        recording.entries.len(),
        recording.truncated
    );
    tmux.keys("panel", &["q"])?;
    surge_servers::wait_until(
        "surge to exit",
        Duration::from_secs(10),
        Duration::from_millis(300),
        || Ok(exit_file.exists()),
    )?;
    assert_eq!(std::fs::read_to_string(&exit_file)?.trim(), "0");
    Ok(())
}
