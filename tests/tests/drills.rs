//! Fault drills on the whole local stack with real servers: the shop (services behind nginx,
//! PostgreSQL primary + 2 streaming replicas, Redis, the tansu broker), surge-exporter,
//! Prometheus with `alerts/rules.yml` (`for` scaled down), Alertmanager with
//! `alerts/alertmanager.yml` pointed at the PagerDuty Events v2 stand-in, and the `surge`
//! binary. Each drill injects one fault while orders flow and asserts the page (or warning),
//! what the panel shows, and that no accepted order is lost.
//!
//! Each prints `DRILL <name> detect=<s> recover=<s> orders=<n> lost=<n>`; with
//! `SURGE_DRILL_REPORT=FILE` the line is also appended there (RELIABILITY.md is written from
//! those lines).

use std::io::Write;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{Value, json};
use surge_client::store::{Urgency, Verdict};
use surge_stack::{MonitoringTiming, Stack, StackOptions};
use surge_testkit::kafka::{BrokerClients, read_until};
use surge_testkit::pagerduty::{PagerDutyStandIn, Received};
use surge_testkit::prom::PromQl;
use surge_testkit::shop::Shop;
use surge_testkit::tmux::Tmux;

/// Rules' `for` divided by this in the fault drills: 5m → 10 s (at least ten 1 s scrapes or
/// five 2 s collections, so one slow scrape of a debug build on a busy machine is not a page).
const FAST: u64 = 30;

struct Drill {
    /// `surge record` of the drill (first: stopped before the stack).
    recorder: RecordingChild,
    name: &'static str,
    stack: Stack,
    pager: PagerDutyStandIn,
    shop: Shop,
    prom: PromQl,
    token: String,
    /// Ids of orders the API accepted (202).
    accepted: Arc<Mutex<Vec<String>>>,
    started: Instant,
    // Last: removed after the stack stopped.
    dir: tempfile::TempDir,
}

/// What a drill's recorder reads.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Recorded {
    /// Prometheus and Alertmanager, as a panel on monitoring reads them.
    Monitoring,
    /// The exporter too, beside them: when it dies Prometheus' series end, while a panel on
    /// the exporter keeps its last numbers, marked stale.
    MonitoringAndExporter,
}

impl Drill {
    /// The stack with monitoring on fast timings, rules scaled by `factor`, paging to the
    /// stand-in; `tweak` adjusts the options further. Recorded from monitoring.
    fn start(
        name: &'static str,
        factor: u64,
        tweak: impl FnOnce(&mut StackOptions),
    ) -> anyhow::Result<Drill> {
        Drill::start_recording(name, factor, Recorded::Monitoring, tweak)
    }

    /// As [`Drill::start`], with the recorder reading `recorded`.
    fn start_recording(
        name: &'static str,
        factor: u64,
        recorded: Recorded,
        tweak: impl FnOnce(&mut StackOptions),
    ) -> anyhow::Result<Drill> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("surge-drill-{name}-"))
            .tempdir()?;
        let pager = PagerDutyStandIn::start()?;
        let key_file = dir.path().join("routing-key");
        std::fs::write(&key_file, "0123456789abcdef0123456789abcdef\n")?;
        let mut options = StackOptions::for_checkout(&dir.path().join("stack"))?;
        options.payment_failure_rate = 0.0;
        // No local HPA unless a drill asks: it would restart a killed service at once.
        options.autoscale = None;
        options.timing = MonitoringTiming {
            scrape: Duration::from_secs(1),
            collect: Duration::from_secs(2),
            timeout: Duration::from_millis(1900),
            lag_window: Duration::from_secs(30),
            rate_window: Duration::from_secs(6),
            stall_after: Duration::from_secs(6),
        };
        options.alert_rules = Some(surge_tests::alerting::scaled_rules(factor)?);
        options.alertmanager_config = Some(surge_tests::alerting::test_alertmanager(
            &pager.events_url(),
            &key_file,
            |receiver| pager.webhook_url(receiver),
        )?);
        tweak(&mut options);
        let stack = Stack::start(options)?;
        let prom = PromQl::new(&prom_url(&stack))?;
        let shop = Shop::new(&stack.api())?;
        // Steady before any fault: Prometheus has scraped the exporter.
        surge_servers::wait_until(
            "Prometheus scraping surge-exporter",
            Duration::from_secs(60),
            Duration::from_millis(500),
            || Ok(!prom.query("up{job=\"surge-exporter\"} == 1")?.is_empty()),
        )?;
        let token = shop.user(&format!("{name}@drills.example"))?;
        let exporter = (recorded == Recorded::MonitoringAndExporter).then(|| exporter_url(&stack));
        let recorder = RecordingChild::start(
            &dir.path().join(format!("{name}.surge")),
            &prom_url(&stack),
            &am_url(&stack),
            exporter.as_deref(),
        )?;
        Ok(Drill {
            recorder,
            name,
            stack,
            pager,
            shop,
            prom,
            token,
            accepted: Arc::default(),
            started: Instant::now(),
            dir,
        })
    }

    fn prometheus(&self) -> String {
        prom_url(&self.stack)
    }

    fn alertmanager(&self) -> String {
        am_url(&self.stack)
    }

    fn exporter(&self) -> String {
        exporter_url(&self.stack)
    }

    /// Wait until `group`'s lag trend no longer rises (ok, draining or idle).
    fn wait_lag_settled(&self, group: &str) -> anyhow::Result<()> {
        self.wait_value(
            &format!("{group}'s lag trend no longer rising"),
            &format!(
                "max(surge_kafka_group_topic_lag_state{{group=\"{group}\",state=~\"ok|draining|idle\"}})"
            ),
            1.0,
        )
    }

    /// Stop the drill's recording once the panel has seen the last state (3 s: a refresh
    /// and a scrape) and replay it: each of `workloads`' verdicts, each change once.
    fn replayed_verdicts(&mut self, workloads: &[&str]) -> anyhow::Result<Vec<Vec<Verdict>>> {
        std::thread::sleep(Duration::from_secs(3));
        let recording = self.recorder.finish()?;
        Ok(workloads.iter().map(|w| verdicts(&recording, w)).collect())
    }

    /// `workload`'s verdicts over the replayed recording hold `expected`, in that order.
    fn expect_verdicts(
        &mut self,
        workload: &str,
        expected: &[&dyn Fn(&Verdict) -> bool],
    ) -> anyhow::Result<()> {
        let seen = self.replayed_verdicts(&[workload])?.remove(0);
        anyhow::ensure!(
            in_order(&seen, expected),
            "{workload}'s verdicts over the recording: {seen:?}"
        );
        Ok(())
    }

    /// Wait until the PromQL `query` has the single value `expected`; a timeout explains what
    /// monitoring saw.
    fn wait_value(&self, what: &str, query: &str, expected: f64) -> anyhow::Result<()> {
        surge_servers::wait_until(
            what,
            Duration::from_secs(120),
            Duration::from_millis(500),
            || Ok(self.prom.value(query)? == Some(expected)),
        )
        .map_err(|e| anyhow::anyhow!("{e:#}\n{}", self.diagnose()))
    }

    /// How many orders the API has accepted so far.
    fn accepted_count(&self) -> usize {
        self.accepted.lock().map(|a| a.len()).unwrap_or(0)
    }

    /// Place one order; an accepted one is remembered for the audit.
    fn order(&self, product: i64) -> anyhow::Result<u16> {
        place_order(&self.shop, &self.token, product, &self.accepted)
    }

    /// Orders at about `per_second` in a thread until the returned stream is stopped.
    fn keep_ordering(&self, per_second: u32) -> OrderStream {
        let running = Arc::new(AtomicBool::new(true));
        let flag = Arc::clone(&running);
        let (shop, token, accepted) = (
            self.shop.clone(),
            self.token.clone(),
            Arc::clone(&self.accepted),
        );
        let pause = Duration::from_millis(1000 / u64::from(per_second.max(1)));
        let handle = std::thread::spawn(move || {
            let mut refused = 0u32;
            let mut i = 0i64;
            while flag.load(Ordering::Relaxed) {
                if !matches!(place_order(&shop, &token, 1 + i % 50, &accepted), Ok(202)) {
                    refused += 1;
                }
                i += 1;
                std::thread::sleep(pause);
            }
            refused
        });
        OrderStream { running, handle }
    }

    /// `surge-load`'s flash-sale profile against the shop with `args` (10 users), its report
    /// in `load.json`, its output in `load.txt` and `load.err`.
    fn start_load(&self, args: &[&str]) -> anyhow::Result<std::process::Child> {
        let load_bin = surge_stack::stack::sibling_binary("surge-load", "SURGE_LOAD_BIN")?;
        Ok(Command::new(load_bin)
            .args(["--target", &format!("http://{}", self.stack.api())])
            .args(["--profile", "flash-sale", "--users", "10"])
            .args(args)
            .arg("--json")
            .arg(self.dir.path().join("load.json"))
            .stdout(std::fs::File::create(self.dir.path().join("load.txt"))?)
            .stderr(std::fs::File::create(self.dir.path().join("load.err"))?)
            .spawn()?)
    }

    /// Until the load ends, `sample` gets the replica counts every 250 ms; then the load is
    /// finished (`finish_load`). Returns when it ended.
    fn watch_load(
        &self,
        mut load: std::process::Child,
        mut sample: impl FnMut(&std::collections::BTreeMap<&'static str, usize>),
    ) -> anyhow::Result<Instant> {
        let status = loop {
            if let Some(status) = load.try_wait()? {
                break status;
            }
            sample(&self.stack.replicas());
            std::thread::sleep(Duration::from_millis(250));
        };
        let ended = Instant::now();
        self.finish_load(status)?;
        Ok(ended)
    }

    /// After the load ended: it must have succeeded, and the orders it got accepted join the
    /// audit.
    fn finish_load(&self, status: std::process::ExitStatus) -> anyhow::Result<()> {
        anyhow::ensure!(
            status.success(),
            "surge-load: {}",
            std::fs::read_to_string(self.dir.path().join("load.err")).unwrap_or_default()
        );
        let results: Value =
            serde_json::from_slice(&std::fs::read(self.dir.path().join("load.json"))?)?;
        let mut accepted = self
            .accepted
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?;
        for id in results["orders_accepted"].as_array().into_iter().flatten() {
            accepted.extend(id.as_str().map(str::to_string));
        }
        Ok(())
    }

    /// Every accepted order reaches its final state exactly once: shipped, one payment, one
    /// shipment, and nothing left in the outbox. Returns (accepted, lost).
    fn audit(&self, timeout: Duration) -> anyhow::Result<(usize, usize)> {
        let ids = self
            .accepted
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?
            .clone();
        anyhow::ensure!(!ids.is_empty(), "{}: no order was accepted", self.name);
        let list = ids
            .iter()
            .map(|id| format!("'{id}'"))
            .collect::<Vec<_>>()
            .join(",");
        let primary = self.stack.postgres.primary_name();
        let db = |sql: &str| self.stack.postgres.psql_in(primary, "shop", sql);
        let unfinished = format!(
            "SELECT count(*) FROM unnest(ARRAY[{list}]::uuid[]) AS a(id) \
             LEFT JOIN orders o ON o.id = a.id AND o.status = 'shipped' WHERE o.id IS NULL"
        );
        let mut lost = usize::MAX;
        let _ = surge_servers::wait_until(
            "every accepted order shipped",
            timeout,
            Duration::from_millis(500),
            || {
                lost = db(&unfinished)?.trim().parse()?;
                Ok(lost == 0)
            },
        );
        let count = |sql: &str| -> anyhow::Result<usize> { Ok(db(sql)?.trim().parse()?) };
        // Primary keys make a second payment or shipment impossible; these counts check that
        // nothing was shipped that the API never accepted either.
        let shipped = count("SELECT count(*) FROM orders WHERE status = 'shipped'")?;
        let payments = count("SELECT count(*) FROM payments WHERE outcome = 'paid'")?;
        let shipments = count("SELECT count(*) FROM shipments")?;
        let outbox = count("SELECT count(*) FROM outbox")?;
        assert_eq!(lost, 0, "{}: {lost} accepted orders not shipped", self.name);
        assert!(
            shipped >= ids.len() && payments == shipped && shipments == shipped && outbox == 0,
            "{}: accepted {}, shipped {shipped}, payments {payments}, shipments {shipments}, outbox {outbox}",
            self.name,
            ids.len()
        );
        Ok((ids.len(), lost))
    }

    /// What the monitoring saw, for a failed wait: notifications so far, the signals, the
    /// exporter's log tail.
    fn diagnose(&self) -> String {
        let mut out = String::from("notifications:");
        for r in self.pager.received() {
            let b = &r.body;
            out.push_str(&format!(
                "\n  {} {} {}",
                r.receiver,
                b["event_action"]
                    .as_str()
                    .or(b["status"].as_str())
                    .unwrap_or("?"),
                b["payload"]["class"]
                    .as_str()
                    .or(b["commonLabels"]["alertname"].as_str())
                    .unwrap_or("?")
            ));
        }
        for q in [
            "surge_source_up",
            "surge_kafka_group_topic_lag",
            "surge_kafka_group_topic_lag_state == 1",
            "surge_postgres_replay_lag_seconds",
            "ALERTS",
        ] {
            out.push_str(&format!("\n{q}:"));
            for s in self.prom.query(q).unwrap_or_default() {
                out.push_str(&format!("\n  {s}"));
            }
        }
        let log = self.stack.options.dir.join("surge-exporter.log");
        out.push_str(&format!(
            "\nexporter log:\n{}",
            surge_servers::process::log_tail(&log, 2000)
        ));
        out
    }

    /// Wait for a notification; a timeout explains what monitoring saw.
    fn wait_notification(
        &self,
        what: &str,
        timeout: Duration,
        check: impl Fn(&Received) -> bool,
    ) -> anyhow::Result<Received> {
        self.pager
            .wait_for(what, timeout, check)
            .map_err(|e| anyhow::anyhow!("{e:#}\n{}", self.diagnose()))
    }

    /// A page (PagerDuty trigger) for `alert`.
    fn wait_page(&self, alert: &str, timeout: Duration) -> anyhow::Result<Received> {
        self.wait_notification(&format!("{alert} page"), timeout, |r| {
            r.receiver == "pagerduty"
                && r.body["event_action"] == "trigger"
                && r.body["payload"]["class"] == alert
        })
    }

    /// The resolve event for a page.
    fn wait_resolve(&self, page: &Received, timeout: Duration) -> anyhow::Result<Received> {
        let key = page.body["dedup_key"].clone();
        self.wait_notification("resolve event", timeout, |r| {
            r.receiver == "pagerduty"
                && r.body["event_action"] == "resolve"
                && r.body["dedup_key"] == key
        })
    }

    /// A webhook notification to `receiver` about `alert` with `status`.
    fn wait_webhook(
        &self,
        receiver: &str,
        alert: &str,
        status: &str,
        timeout: Duration,
    ) -> anyhow::Result<Received> {
        self.wait_notification(&format!("{alert} {status} at {receiver}"), timeout, |r| {
            r.receiver == receiver
                && r.body["status"] == status
                && r.body["alerts"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|a| a["labels"]["alertname"] == alert && a["status"] == status)
        })
    }

    /// Pages of anything but `allowed`.
    fn other_pages(&self, allowed: &[&str]) -> Vec<Value> {
        self.pager
            .received()
            .into_iter()
            .filter(|r| r.receiver == "pagerduty" && r.body["event_action"] == "trigger")
            .filter(|r| !allowed.iter().any(|a| r.body["payload"]["class"] == *a))
            .map(|r| r.body)
            .collect()
    }

    /// `surge --once` on this stack's Prometheus and Alertmanager.
    fn frame(&self, extra: &[&str]) -> anyhow::Result<String> {
        let out = Command::new(surge_bin()?)
            .args(["--once", "--size", "160x48", "--wait", "20s", "--log"])
            .arg(self.dir.path().join("surge-once.log"))
            .args(["--prometheus", &self.prometheus()])
            .args(["--alertmanager", &self.alertmanager()])
            .args(extra)
            .env("NO_COLOR", "1")
            .output()?;
        Ok(String::from_utf8(out.stdout)?)
    }

    /// Wait for a frame that passes `check`.
    fn wait_frame(
        &self,
        what: &str,
        extra: &[&str],
        check: impl Fn(&str) -> bool,
    ) -> anyhow::Result<String> {
        let mut frame = String::new();
        surge_servers::wait_until(
            what,
            Duration::from_secs(60),
            Duration::from_secs(1),
            || {
                frame = self.frame(extra)?;
                Ok(check(&frame))
            },
        )
        .map_err(|e| anyhow::anyhow!("{e:#}\nlast frame:\n{frame}"))?;
        Ok(frame)
    }

    fn report(&self, detect: Duration, recover: Duration, orders: usize, lost: usize, notes: &str) {
        let notifications = self.pager.received();
        let count = |receiver: &str| {
            notifications
                .iter()
                .filter(|r| r.receiver == receiver)
                .filter(|r| r.body["event_action"] == "trigger" || r.body["status"] == "firing")
                .count()
        };
        let line = format!(
            "DRILL {} detect={:.1} recover={:.1} orders={orders} lost={lost} total={:.0} pages={} warnings={} {notes}",
            self.name,
            detect.as_secs_f64(),
            recover.as_secs_f64(),
            self.started.elapsed().as_secs_f64(),
            count("pagerduty"),
            count("warnings"),
        );
        eprintln!("{line}");
        // Every event Alertmanager sent was one the Events API accepts.
        let rejected = self.pager.rejected();
        assert!(
            rejected.is_empty(),
            "the pager rejected events: {rejected:#?}"
        );
        if let Ok(path) = std::env::var("SURGE_DRILL_REPORT")
            && let Ok(mut file) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
        {
            let _ = writeln!(file, "{line}");
        }
    }
}

/// The stack's Alertmanager URL ("" without one).
fn am_url(stack: &Stack) -> String {
    stack
        .alertmanager
        .as_ref()
        .map(|a| a.url())
        .unwrap_or_default()
}

/// The stack's surge-exporter URL (port 9, discard, without one).
fn exporter_url(stack: &Stack) -> String {
    format!("http://127.0.0.1:{}", stack.exporter_port.unwrap_or(9))
}

/// The stack's Prometheus URL ("" without one).
fn prom_url(stack: &Stack) -> String {
    stack
        .prometheus
        .as_ref()
        .map(|p| p.url())
        .unwrap_or_default()
}

/// `surge record` of a drill, as the on-call engineer would leave it running: stopped with
/// SIGTERM (the file closed properly), also when the drill fails.
struct RecordingChild {
    child: Option<std::process::Child>,
    path: PathBuf,
}

impl RecordingChild {
    /// Record Prometheus and Alertmanager, and with `exporter` that too (beside them).
    fn start(
        path: &std::path::Path,
        prometheus: &str,
        alertmanager: &str,
        exporter: Option<&str>,
    ) -> anyhow::Result<Self> {
        let child = Command::new(surge_bin()?)
            .arg("record")
            .arg(path)
            .args(["--prometheus", prometheus, "--alertmanager", alertmanager])
            .args(exporter.into_iter().flat_map(|e| ["--exporter", e]))
            .args(["--refresh", "1s", "--log", "/dev/null"])
            .stdout(std::process::Stdio::null())
            .spawn()?;
        Ok(RecordingChild {
            child: Some(child),
            path: path.to_path_buf(),
        })
    }

    /// Stop recording and read the file; with `SURGE_DRILL_RECORDINGS=DIR` a copy is kept
    /// there (the panel's replay fixtures come from such copies).
    fn finish(&mut self) -> anyhow::Result<surge_client::recording::Recording> {
        self.stop()?;
        if let Ok(dir) = std::env::var("SURGE_DRILL_RECORDINGS") {
            let name = self.path.file_name().context("recording name")?;
            std::fs::create_dir_all(&dir)?;
            std::fs::copy(&self.path, std::path::Path::new(&dir).join(name))?;
        }
        surge_client::recording::read(&self.path).map_err(anyhow::Error::msg)
    }

    fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status()?;
            let status = child.wait()?;
            anyhow::ensure!(status.success(), "surge record exited with {status}");
        }
        Ok(())
    }
}

impl Drop for RecordingChild {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// The verdicts a service got over a recording, one per second of it, each change once.
fn verdicts(
    recording: &surge_client::recording::Recording,
    workload: &str,
) -> Vec<surge_client::store::Verdict> {
    use surge_client::recording::Replay;
    use surge_client::store::{Store, verdict};
    let replay = Replay::new(recording, 0, Store::new(recording.header.stale_after));
    let (start, end) = replay.span();
    let mut cursor = replay.cursor();
    let mut out: Vec<surge_client::store::Verdict> = Vec::new();
    let mut at = start;
    while at <= end {
        replay.seek(&mut cursor, at);
        if let Some(row) = cursor
            .store
            .derived
            .services
            .iter()
            .find(|s| s.workload == workload)
        {
            let v = verdict(row);
            if out
                .last()
                .is_none_or(|last| std::mem::discriminant(last) != std::mem::discriminant(&v))
            {
                out.push(v);
            }
        }
        at += 1.0;
    }
    out
}

/// Whether `seen` holds verdicts matching each of `expected`, in that order.
fn in_order(
    seen: &[surge_client::store::Verdict],
    expected: &[&dyn Fn(&surge_client::store::Verdict) -> bool],
) -> bool {
    let mut rest = seen.iter();
    expected.iter().all(|want| rest.any(want))
}

/// Place one order of `product`; remember an accepted one's id for the audit.
fn place_order(
    shop: &Shop,
    token: &str,
    product: i64,
    accepted: &Mutex<Vec<String>>,
) -> anyhow::Result<u16> {
    let (status, body) = shop.order(token, &[(product, 1)])?;
    if status == 202 {
        let id = body["order_id"].as_str().context("no order_id")?;
        accepted
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?
            .push(id.to_string());
    }
    Ok(status)
}

/// A background order stream.
struct OrderStream {
    running: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<u32>,
}

impl OrderStream {
    /// Stop; returns how many orders were refused or failed.
    fn stop(self) -> u32 {
        self.running.store(false, Ordering::Relaxed);
        self.handle.join().unwrap_or(u32::MAX)
    }
}

fn surge_bin() -> anyhow::Result<PathBuf> {
    surge_stack::stack::sibling_binary("surge", "SURGE_BIN")
}

/// Drill 1: Flash sale: a 15× spike drives CPU up, the local HPA scales out, lag rises and drains.
/// With `for` scaled by 10 (CPU warning after 30 s above 85%), the CPU warning may fire only
/// after 30 s above 85%, and nothing pages unless an HPA is at its maximum.
#[test]
fn drill_flash_sale_scales_out_drains_and_pages_only_when_maxed() -> anyhow::Result<()> {
    // The real HPAs with a 10% CPU target and at most 4 replicas: on this machine's 2 cores
    // the whole stack drives about 150 req/s, where a replica uses a quarter of its request
    // (a cluster's spike is far bigger than one machine can make).
    let manifests = tempfile::tempdir()?;
    let hpa = manifests.path().join("hpa.yaml");
    let mut real = String::new();
    for file in surge_stack::hpa::HPA_MANIFESTS {
        real.push_str(&std::fs::read_to_string(
            surge_tests::alerting::repo().join(file),
        )?);
        real.push('\n');
    }
    let scaled =
        regex::Regex::new(r"averageUtilization: \d+")?.replace_all(&real, "averageUtilization: 10");
    std::fs::write(
        &hpa,
        regex::Regex::new(r"maxReplicas: \d+")?
            .replace_all(&scaled, "maxReplicas: 4")
            .as_ref(),
    )?;
    let mut drill = Drill::start("flash-sale", 10, |o| {
        o.autoscale = Some(Duration::from_secs(3));
        o.hpa_manifests = vec![hpa.clone()];
    })?;
    let before = drill.stack.replicas();
    let base = Duration::from_secs(10);
    let start = Instant::now();
    let load = drill.start_load(&[
        "--rate",
        "10",
        "--spike",
        "15",
        "--duration",
        "10s",
        "--spike-for",
        "45s",
    ])?;
    // Time from the spike's start to the first scale-out beyond the replicas it found.
    let mut at_spike = None;
    let mut scaled_out = None;
    let load_end = drill.watch_load(load, |now| {
        if at_spike.is_none() && start.elapsed() >= base {
            at_spike = Some(now.clone());
        }
        if let Some(then) = &at_spike
            && scaled_out.is_none()
            && now.iter().any(|(s, n)| then.get(s).is_some_and(|b| n > b))
        {
            scaled_out = Some(start.elapsed().saturating_sub(base));
        }
    })?;
    let scaled_out = scaled_out.with_context(|| {
        let cpu: Vec<String> = drill
            .prom
            .query("max_over_time(surge_workload_cpu_utilization_ratio[2m])")
            .unwrap_or_default()
            .iter()
            .map(|s| format!("{} {}", s.labels.get("workload").map_or("?", String::as_str), s.value))
            .collect();
        format!(
            "no service scaled out during the spike: at the start {before:?}, after {:?}; peak CPU/request {cpu:?}; load:\n{}",
            drill.stack.replicas(),
            std::fs::read_to_string(drill.dir.path().join("load.txt")).unwrap_or_default()
        )
    })?;

    // Lag rose during the spike, then drained to zero with every order shipped.
    let peak_lag = drill
        .prom
        .value("max(max_over_time(surge_kafka_group_topic_lag{topic=\"order-placed\"}[5m]))")?
        .unwrap_or(0.0);
    assert!(peak_lag > 0.0, "lag never rose during the spike");
    let (orders, lost) = drill.audit(Duration::from_secs(120))?;
    surge_servers::wait_until(
        "lag drained to zero",
        Duration::from_secs(60),
        Duration::from_secs(1),
        || Ok(drill.prom.value("max(surge_kafka_group_topic_lag)")? == Some(0.0)),
    )?;
    let drained = load_end.elapsed();

    // CPU warnings only after the (scaled) 30 s above 85%; pages only at max replicas.
    for warning in drill.pager.received().iter().filter(|r| {
        r.receiver == "warnings" && r.body["commonLabels"]["alertname"] == "ServiceCPUHigh"
    }) {
        for alert in warning.body["alerts"].as_array().into_iter().flatten() {
            let workload = alert["labels"]["workload"].as_str().unwrap_or_default();
            let at = alert["startsAt"]
                .as_str()
                .and_then(surge_client::fetch::prometheus::unix_seconds)
                .context("alert without startsAt")?;
            let lowest = drill
                .prom
                .value(&format!(
                    "min_over_time(surge_workload_cpu_utilization_ratio{{workload=\"{workload}\"}}[29s] @ {at:.3})"
                ))?
                .unwrap_or(0.0);
            assert!(
                lowest > 0.85,
                "{workload} warned without 30 s above 85% (lowest {lowest})"
            );
        }
    }
    for page in drill.other_pages(&[]) {
        assert_eq!(
            page["payload"]["class"], "ServiceCPUHighAtMaxReplicas",
            "unexpected page during a flash sale: {page:#}"
        );
        // The workload that paged was at its maximum, not just any HPA.
        let workload = page["payload"]["component"].as_str().unwrap_or_default();
        let maxed = drill.prom.value(&format!(
            "max(max_over_time((surge_hpa_current_replicas{{workload=\"{workload}\"}} >= surge_hpa_max_replicas{{workload=\"{workload}\"}})[5m:1s]))"
        ))?;
        assert!(
            maxed.is_some(),
            "paged for CPU without an HPA at max: {workload}"
        );
    }
    let frame = drill.frame(&[])?;
    assert!(
        frame.contains("shop/auth") && frame.contains("payment → order-placed"),
        "{frame}"
    );
    // Replayed: before the sale a service was keeping up, during it saturated at its
    // maximum (4 replicas, CPU over the 10% target), and after it fine again. (The local HPA
    // reaches a new replica count within one 3 s sync, so "scaling out" is rarely on screen
    // for a whole second here; orders and payment may stay over the 10% target at max after
    // the sale, which the rules call saturated.)
    let services = ["auth", "catalog", "orders", "payment", "shipping"];
    let seen: Vec<(&str, Vec<Verdict>)> = services
        .into_iter()
        .zip(drill.replayed_verdicts(&services)?)
        .collect();
    assert!(
        seen.iter().any(|(_, v)| in_order(
            v,
            &[
                &|v| matches!(v, Verdict::KeepingUp),
                &|v| matches!(v, Verdict::SaturatedAtMax { .. }),
                &|v| v.urgency() == Urgency::Fine,
            ]
        )),
        "no service went keeping up → saturated at max → fine: {seen:?}"
    );
    drill.report(
        scaled_out,
        drained,
        orders,
        lost,
        &format!("peak_lag={peak_lag} replicas={:?}", drill.stack.replicas()),
    );
    Ok(())
}

/// Drill 2: The payment consumer is killed: KafkaConsumerStalled pages, it is restarted, the
/// backlog drains and the page resolves.
#[test]
fn drill_payment_consumer_killed_pages_and_resolves() -> anyhow::Result<()> {
    let mut drill = Drill::start("payment-killed", FAST, |_| {})?;
    let orders = drill.keep_ordering(5);
    std::thread::sleep(Duration::from_secs(8));
    let fault = Instant::now();
    drill.stack.scale("payment", 0)?;
    let page = drill.wait_page("KafkaConsumerStalled", Duration::from_secs(120))?;
    let detect = fault.elapsed();
    assert_eq!(page.body["payload"]["severity"], "critical");
    let summary = page.body["payload"]["summary"].as_str().unwrap_or_default();
    assert!(
        summary.contains("payment") && summary.contains("order-placed"),
        "{summary}"
    );
    drill.wait_frame("the panel shows the stall", &["--view", "kafka"], |f| {
        f.contains("■ stalled") && f.contains("1 FIRING")
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
    drill.report(detect, recover, orders, lost, "");
    Ok(())
}

/// Drill 3: A replica's replay is paused: the replica lag warning fires (never a page), the
/// catalog keeps serving from the replicas, and it resolves when replay resumes.
#[test]
fn drill_replica_paused_warns_catalog_serves_and_resolves() -> anyhow::Result<()> {
    let mut drill = Drill::start("replica-paused", FAST, |_| {})?;
    let orders = drill.keep_ordering(5);
    std::thread::sleep(Duration::from_secs(3));
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
    drill.wait_frame(
        "the panel shows the lagging replica",
        &["--view", "postgres"],
        |f| f.contains("replay paused") && f.contains("FIRING"),
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
    drill.report(detect, recover, orders, lost, "");
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
    // Steady before the fault: monitoring has seen payment consume.
    drill.wait_lag_settled("payment")?;
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
        f.contains("SurgeSourceDown") && f.contains("kafka")
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
    let (orders, lost) = drill.audit(Duration::from_secs(180))?;
    let recover = back.elapsed();
    drill.wait_webhook(
        "warnings",
        "SurgeSourceDown",
        "resolved",
        Duration::from_secs(120),
    )?;
    let pages = drill.other_pages(&[]);
    assert!(pages.is_empty(), "the broker outage paged: {pages:#?}");
    // Replayed: payment's lag was known, then unknown while Kafka's numbers were missing
    // (not shown as a stalled or idle group), then known again.
    drill.wait_lag_settled("payment")?;
    let known = |v: &Verdict| !matches!(v, Verdict::KafkaLagUnknown | Verdict::NoData);
    drill.expect_verdicts(
        "payment",
        &[&known, &|v| matches!(v, Verdict::KafkaLagUnknown), &known],
    )?;
    drill.report(detect, recover, orders, lost, "");
    Ok(())
}

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
    let fresh = |v: &Verdict| !matches!(v, Verdict::Stale(_) | Verdict::NoData);
    drill.expect_verdicts(
        "payment",
        &[&fresh, &|v| matches!(v, Verdict::Stale(_)), &fresh],
    )?;
    drill.report(detect, recover, orders, lost, "");
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
    std::thread::sleep(Duration::from_secs(20));
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
    let letters = read_until(
        &drill.stack.kafka,
        "order-placed.dlq",
        Duration::from_secs(60),
        |l| !l.is_empty(),
    )?;
    assert_eq!(
        letters.len(),
        1,
        "only the poison is dead-lettered: {letters:#?}"
    );
    let letter = &letters[0];
    assert_eq!(
        (
            &letter["source_topic"],
            &letter["partition"],
            &letter["attempts"]
        ),
        (&json!("order-placed"), &json!(3), &json!(1)),
        "{letter:#}"
    );
    let offset = letter["offset"]
        .as_i64()
        .context("dead letter without offset")?;
    let status = load.wait()?;
    drill.finish_load(status)?;
    // The partition flowed on: payment committed past the poison on it.
    surge_servers::wait_until(
        "payment past the poison on its partition",
        Duration::from_secs(60),
        Duration::from_secs(1),
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
    let pages = drill.other_pages(&[]);
    assert!(pages.is_empty(), "a poison message paged: {pages:#?}");
    // Replayed: payment's verdict named the dead letters (the warning on its topic's DLQ).
    let seen = drill.replayed_verdicts(&["payment"])?.remove(0);
    assert!(
        seen.iter().any(|v| matches!(
            v,
            Verdict::Alerting { alert, page: false } if alert == "KafkaDeadLetterReceiving"
        )),
        "payment's verdicts over the recording: {seen:?}"
    );
    drill.report(detect, recover, orders, lost, "");
    Ok(())
}

/// Drill 7: The payment provider slows down (150 ms per call) in a flash sale: payment is
/// I/O-bound, its CPU stays under the HPA's 70% target, its lag grows, and the local HPA scales
/// it out on the lag (the External metric, read from Prometheus as the adapter would); the
/// panel says so; the backlog drains and every accepted order ships exactly once.
#[test]
fn drill_slow_provider_scales_payment_on_its_lag_and_loses_nothing() -> anyhow::Result<()> {
    let mut drill = Drill::start("lag-scaling", FAST, |o| {
        o.payment_latency_ms = 150;
        o.autoscale = Some(Duration::from_secs(3));
    })?;
    let initial = drill.stack.replicas().get("payment").copied().unwrap_or(0);
    let base = Duration::from_secs(10);
    let start = Instant::now();
    let load = drill.start_load(&[
        "--rate",
        "10",
        "--spike",
        "15",
        "--duration",
        "10s",
        "--spike-for",
        "40s",
    ])?;
    let mut scaled_out = None;
    let mut most = initial;
    let load_end = drill.watch_load(load, |replicas| {
        let now = replicas.get("payment").copied().unwrap_or(0);
        most = most.max(now);
        if scaled_out.is_none() && now > initial {
            scaled_out = Some(start.elapsed().saturating_sub(base));
        }
    })?;
    let scaled_out = scaled_out.with_context(|| {
        format!(
            "payment never scaled out (still {initial}); peak lag {:?}",
            drill
                .prom
                .value("max(max_over_time(surge_kafka_group_topic_lag{group=\"payment\"}[5m]))")
        )
    })?;
    // The lag decided, not the CPU: the External metric was the deciding one, and payment's
    // CPU never reached its target.
    let lag_decided = drill.prom.value(
        "max(max_over_time(surge_hpa_metric_deciding{hpa=\"payment\",metric_type=\"external\"}[5m]))",
    )?;
    assert_eq!(
        lag_decided,
        Some(1.0),
        "the lag never decided payment's scale"
    );
    let peak_cpu = drill
        .prom
        .value(
            "max(max_over_time(surge_workload_cpu_utilization_ratio{workload=\"payment\"}[5m]))",
        )?
        .unwrap_or(0.0);
    assert!(
        peak_cpu < 0.7,
        "payment's CPU reached its target ({peak_cpu}): CPU, not lag, may have scaled it"
    );
    // The panel's service view says what payment scales on.
    let frame = drill.wait_frame("payment scaling on lag", &["--view", "svc:payment"], |f| {
        f.contains("scaling on lag")
    })?;
    assert!(frame.contains("partitions"), "{frame}");
    let (orders, lost) = drill.audit(Duration::from_secs(180))?;
    surge_servers::wait_until(
        "payment's lag drained to zero",
        Duration::from_secs(120),
        Duration::from_secs(1),
        || {
            Ok(drill
                .prom
                .value("sum(surge_kafka_group_topic_lag{group=\"payment\"})")?
                == Some(0.0))
        },
    )?;
    let drained = load_end.elapsed();
    let pages = drill.other_pages(&[]);
    assert!(pages.is_empty(), "a slow provider paged: {pages:#?}");
    // Replayed: payment's lag rose (growing, or scaling out on it), then it was fine again.
    drill.expect_verdicts(
        "payment",
        &[
            &|v| {
                matches!(
                    v,
                    Verdict::LagGrowing
                        | Verdict::LagGrowingScalingOut { .. }
                        | Verdict::LagGrowingAtMax
                        | Verdict::ScalingOut { .. }
                )
            },
            &|v| v.urgency() == Urgency::Fine,
        ],
    )?;
    drill.report(
        scaled_out,
        drained,
        orders,
        lost,
        &format!("payment_replicas={initial}->{most} peak_cpu={peak_cpu:.2}"),
    );
    Ok(())
}

/// Drill 8: Redis is lost while orders flow: stopped, then back empty (it persists nothing).
/// Revocation fails closed: a revoked token is never accepted — before, during (503) or after
/// (401: the revocation list's epoch ended every older session). Authenticated requests answer
/// 503 and ServiceErrorsHigh pages; browsing keeps working; back, a new login works, the cart
/// is gone (as no persistence promises), and every order accepted before ships once.
#[test]
fn drill_redis_lost_fails_closed_pages_and_recovers() -> anyhow::Result<()> {
    let mut drill = Drill::start("redis-lost", FAST, |_| {})?;
    let shop = Shop::new(&drill.stack.api())?;
    let revoked = shop.user("revoked@drills.example")?;
    let (code, _) = shop.post("/auth/logout", Some(&revoked), &Value::Null)?;
    assert_eq!(code, 204);
    let (code, _, _) = shop.get("/auth/me", Some(&revoked))?;
    assert_eq!(code, 401, "revoked before the loss");
    let (code, _, cart) = shop.cart_call(
        reqwest::Method::POST,
        "/cart/items",
        &drill.token,
        Some(&serde_json::json!({"product_id": 3, "quantity": 2})),
    )?;
    assert_eq!(code, 200, "{cart}");

    // The revoked token keeps trying, all through the drill: it must never pass.
    let running = Arc::new(AtomicBool::new(true));
    let attempts = {
        let (shop, token, flag) = (shop.clone(), revoked.clone(), Arc::clone(&running));
        std::thread::spawn(move || {
            let mut statuses = Vec::new();
            while flag.load(Ordering::Relaxed) {
                if let Ok((code, _, _)) = shop.get("/auth/me", Some(&token)) {
                    statuses.push(code);
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            statuses
        })
    };
    let orders = drill.keep_ordering(5);
    std::thread::sleep(Duration::from_secs(5));
    let fault = Instant::now();
    drill.stack.redis.stop();

    // Gone: authenticated requests refuse with 503 (never a pass), browsing still answers.
    let (code, _, body) = shop.get("/auth/me", Some(&drill.token))?;
    assert_eq!(
        code, 503,
        "a live session without the revocation list: {body}"
    );
    let (code, _, body) = shop.get("/products?limit=5", None)?;
    assert_eq!(code, 200, "browsing without Redis: {body}");
    let page = drill.wait_page("ServiceErrorsHigh", Duration::from_secs(120))?;
    let detect = fault.elapsed();
    drill.wait_frame("the panel shows the page", &["--view", "alerts"], |f| {
        f.contains("ServiceErrorsHigh")
    })?;
    let refused_orders = orders.stop();
    assert!(refused_orders > 0, "no order was refused without Redis");

    let back = Instant::now();
    drill.stack.redis.restart()?;
    // Back, empty: a new session works end to end (log in, then its cart: each dependency's
    // connection may need one failed call to notice the restart); *recover* is until then.
    let credentials = serde_json::json!({
        "email": "redis-lost@drills.example",
        "password": "correct horse battery"
    });
    let mut failures = Vec::new();
    let (fresh, code, cart) = loop {
        let (code, body) = shop.post("/auth/login", None, &credentials)?;
        if code == 200 {
            let fresh = body["token"].as_str().unwrap_or_default().to_string();
            let (code, _, cart) = shop.cart_call(reqwest::Method::GET, "/cart", &fresh, None)?;
            if code == 200 {
                break (fresh, code, cart);
            }
            failures.push(format!("cart {code} {cart}"));
        } else {
            failures.push(format!("login {code} {body}"));
        }
        anyhow::ensure!(
            back.elapsed() < Duration::from_secs(60),
            "no working session 60 s after Redis came back: {failures:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let recover = back.elapsed();
    assert_eq!(code, 200, "{cart}");
    assert_eq!(
        cart["items"],
        serde_json::json!([]),
        "the cart outlived Redis: {cart}"
    );
    let (code, _, body) = shop.get("/auth/me", Some(&drill.token))?;
    assert_eq!(code, 401, "a session from before the loss: {body}");
    assert!(body.to_string().contains("session ended"), "{body}");
    let (code, body) = shop.order(&fresh, &[(1, 1)])?;
    assert_eq!(code, 202, "ordering after Redis came back: {body}");
    drill
        .accepted
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .extend(body["order_id"].as_str().map(str::to_string));
    std::thread::sleep(Duration::from_secs(2));
    running.store(false, Ordering::Relaxed);
    let statuses = attempts
        .join()
        .map_err(|_| anyhow::anyhow!("revoked-token thread panicked"))?;
    let count = |c: u16| statuses.iter().filter(|s| **s == c).count();
    assert!(
        count(401) > 0 && count(503) > 0,
        "the revoked token was tried before, during and after: {statuses:?}"
    );
    assert_eq!(count(200), 0, "a revoked token was accepted: {statuses:?}");

    let (orders, lost) = drill.audit(Duration::from_secs(120))?;
    let pages = drill.other_pages(&["ServiceErrorsHigh"]);
    assert!(
        pages.is_empty(),
        "losing Redis paged something else: {pages:#?}"
    );
    assert_eq!(
        page.body["payload"]["severity"], "critical",
        "{:#}",
        page.body
    );
    // Replayed: the paged service was keeping up, then its verdict was the page. (The error
    // rate's 5-minute window outlasts the drill, so it is not seen resolving here.)
    let paged = page.body["payload"]["component"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    drill.expect_verdicts(
        &paged,
        &[
            &|v| matches!(v, Verdict::KeepingUp),
            &|v| matches!(v, Verdict::Alerting { alert, page: true } if alert == "ServiceErrorsHigh"),
        ],
    )?;
    drill.report(
        detect,
        recover,
        orders,
        lost,
        &format!(
            "orders_refused={refused_orders} failed_after_return={} revoked_tries={} (401: {}, 503: {})",
            failures.len(),
            statuses.len(),
            count(401),
            count(503)
        ),
    );
    Ok(())
}

/// CPU seconds (user + system) a process has used so far, from `/proc/PID/stat`.
fn proc_cpu_seconds(pid: i32, ticks_per_second: f64) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) may hold spaces; the fields after its ')' are fixed.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("unreadable stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the ')'.
    let utime: f64 = fields.get(11).context("no utime")?.parse()?;
    let stime: f64 = fields.get(12).context("no stime")?.parse()?;
    Ok((utime + stime) / ticks_per_second)
}

/// Drill 9: CPU hot at max replicas. Logins (argon2, the shop's CPU-heavy request) in a loop
/// drive auth past 85% of its CPU request; the local HPA (auth limited to 3 replicas) reaches
/// its maximum; with `for` scaled by 10 (30 s), ServiceCPUHigh fires only after 30 s above
/// 85%, and ServiceCPUHighAtMaxReplicas pages for auth alone, only after 30 s hot at max.
/// The exporter's CPU is cross-checked against `/proc` read here. Logins stop: it resolves.
#[test]
fn drill_cpu_hot_at_max_replicas_warns_after_the_window_and_pages_for_that_workload()
-> anyhow::Result<()> {
    // The shipped HPAs, auth limited to 3 replicas so this machine can hold it at its maximum.
    let manifests = tempfile::tempdir()?;
    let hpa = manifests.path().join("hpa.yaml");
    let real = std::fs::read_to_string(
        surge_tests::alerting::repo().join(surge_stack::hpa::HPA_MANIFESTS[0]),
    )?;
    let mut documents: Vec<String> = real.split("\n---").map(str::to_string).collect();
    let auth = documents
        .iter_mut()
        .find(|d| d.contains("name: auth\n"))
        .context("no auth HPA in the manifests")?;
    *auth = regex::Regex::new(r"maxReplicas: \d+")?
        .replace(auth, "maxReplicas: 3")
        .into_owned();
    std::fs::write(&hpa, documents.join("\n---"))?;
    let mut drill = Drill::start("cpu-hot", 10, |o| {
        o.autoscale = Some(Duration::from_secs(3));
        o.hpa_manifests = vec![hpa.clone()];
    })?;
    let shop = Shop::new(&drill.stack.api())?;
    let credentials =
        json!({ "email": "cpu-hot@drills.example", "password": "correct horse battery" });
    let running = Arc::new(AtomicBool::new(true));
    let logins = {
        let (shop, flag, credentials) = (shop.clone(), Arc::clone(&running), credentials.clone());
        std::thread::spawn(move || {
            let mut ok = 0u32;
            while flag.load(Ordering::Relaxed) {
                if matches!(shop.post("/auth/login", None, &credentials), Ok((200, _))) {
                    ok += 1;
                }
            }
            ok
        })
    };
    let start = Instant::now();
    let page = drill.wait_page("ServiceCPUHighAtMaxReplicas", Duration::from_secs(240));
    let result = (|| -> anyhow::Result<(Received, Duration, f64, f64)> {
        let page = page?;
        let detect = start.elapsed();
        assert_eq!(page.body["payload"]["component"], "auth", "{:#}", page.body);
        assert_eq!(page.body["payload"]["severity"], "critical");
        let at = drill
            .prom
            .value("max(ALERTS_FOR_STATE{alertname=\"ServiceCPUHighAtMaxReplicas\",workload=\"auth\"})")?
            .context("no active ServiceCPUHighAtMaxReplicas in Prometheus")?;
        // Hot and at max for the whole (scaled) window before the alert became active + 30 s.
        let fired = at + 30.0;
        let hot = drill
            .prom
            .value(&format!(
                "min_over_time(surge_workload_cpu_utilization_ratio{{workload=\"auth\"}}[29s] @ {fired:.3})"
            ))?
            .unwrap_or(0.0);
        assert!(hot > 0.85, "paged without 30 s above 85% (lowest {hot})");
        let maxed = drill
            .prom
            .value(&format!(
                "min_over_time((surge_hpa_current_replicas{{hpa=\"auth\"}} >= bool surge_hpa_max_replicas{{hpa=\"auth\"}})[29s:1s] @ {fired:.3})"
            ))?
            .unwrap_or(0.0);
        assert_eq!(maxed, 1.0, "paged for auth while it was below its maximum");
        // The warning fired for auth too, after its own window (it may be inhibited at the
        // receiver by the page, so Prometheus is asked).
        let warned = drill
            .prom
            .value("max(ALERTS_FOR_STATE{alertname=\"ServiceCPUHigh\",workload=\"auth\"})")?
            .context("ServiceCPUHigh never active for auth")?;
        let warm = drill
            .prom
            .value(&format!(
                "min_over_time(surge_workload_cpu_utilization_ratio{{workload=\"auth\"}}[29s] @ {:.3})",
                warned + 30.0
            ))?
            .unwrap_or(0.0);
        assert!(
            warm > 0.85,
            "ServiceCPUHigh without 30 s above 85% ({warm})"
        );

        // The exporter's number against /proc, read here over the same 10 s.
        let ticks: f64 =
            String::from_utf8(Command::new("getconf").arg("CLK_TCK").output()?.stdout)?
                .trim()
                .parse()?;
        let pids: Vec<i32> = drill
            .stack
            .fleet
            .sets
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?
            .get("auth")
            .map(|s| s.pods().into_iter().filter_map(|(_, pid)| pid).collect())
            .unwrap_or_default();
        assert_eq!(pids.len(), 3, "auth at its maximum");
        let used = |pids: &[i32]| -> anyhow::Result<f64> {
            pids.iter().map(|p| proc_cpu_seconds(*p, ticks)).sum()
        };
        let (t0, c0) = (Instant::now(), used(&pids)?);
        std::thread::sleep(Duration::from_secs(10));
        let (dt, c1) = (t0.elapsed().as_secs_f64(), used(&pids)?);
        let from_proc = (c1 - c0) / dt / (pids.len() as f64 * 0.2);
        let exported = drill
            .prom
            .value("avg_over_time(surge_workload_cpu_utilization_ratio{workload=\"auth\"}[10s])")?
            .context("no CPU series for auth")?;
        assert!(
            (exported - from_proc).abs() <= 0.25 * from_proc,
            "exporter {exported:.3} against /proc {from_proc:.3}"
        );
        let frame = drill.frame(&["--view", "alerts"])?;
        assert!(frame.contains("ServiceCPUHighAtMaxReplicas"), "{frame}");
        Ok((page, detect, from_proc, exported))
    })();
    running.store(false, Ordering::Relaxed);
    let logins = logins
        .join()
        .map_err(|_| anyhow::anyhow!("login thread panicked"))?;
    let (page, detect, from_proc, exported) = result?;
    let others = drill.other_pages(&["ServiceCPUHighAtMaxReplicas"]);
    assert!(
        others.is_empty(),
        "CPU at max paged something else: {others:#?}"
    );
    let back = Instant::now();
    drill.wait_resolve(&page, Duration::from_secs(120))?;
    let recover = back.elapsed();
    // Replayed: auth was keeping up, then saturated at its maximum, then fine once the logins
    // stopped (its CPU back under target).
    drill.wait_value(
        "auth's CPU back under its target",
        "max(surge_workload_cpu_utilization_ratio{workload=\"auth\"} < bool 0.7)",
        1.0,
    )?;
    drill.expect_verdicts(
        "auth",
        &[
            &|v| matches!(v, Verdict::KeepingUp),
            &|v| matches!(v, Verdict::SaturatedAtMax { .. }),
            &|v| v.urgency() == Urgency::Fine,
        ],
    )?;
    drill.report(
        detect,
        recover,
        0,
        0,
        &format!("logins={logins} cpu_proc={from_proc:.2} cpu_exported={exported:.2}"),
    );
    Ok(())
}

/// Drill 10: A slow dependency: the payment provider at 20× its latency (400 ms) while orders
/// keep coming faster than two payment replicas can settle them, with no autoscaler. Payment's
/// lag grows while its CPU stays low; KafkaConsumerLagGrowing pages within its (scaled) window
/// and nothing else does; the on-call remedy (scaling payment out) drains it and the page
/// resolves; every order ships once.
#[test]
fn drill_slow_provider_lag_grows_pages_and_resolves_when_scaled() -> anyhow::Result<()> {
    let mut drill = Drill::start("slow-dependency", FAST, |o| {
        o.payment_latency_ms = 400;
    })?;
    let start = Instant::now();
    let orders = drill.keep_ordering(20);
    let page = drill.wait_page("KafkaConsumerLagGrowing", Duration::from_secs(360));
    let refused = orders.stop();
    let page = page?;
    let detect = start.elapsed();
    assert_eq!(refused, 0, "orders refused while payment was slow");
    assert_eq!(page.body["payload"]["severity"], "critical");
    let peak_cpu = drill
        .prom
        .value(
            "max(max_over_time(surge_workload_cpu_utilization_ratio{workload=\"payment\"}[10m]))",
        )?
        .context("no CPU for payment")?;
    assert!(
        peak_cpu < 0.85,
        "payment was CPU-bound ({peak_cpu}), not waiting on its provider"
    );
    drill.wait_frame(
        "the Kafka view shows payment growing",
        &["--view", "kafka"],
        |f| {
            f.lines().any(|l| {
                l.contains("payment") && l.contains("order-placed") && l.contains("growing")
            })
        },
    )?;
    // The remedy: more consumers (the topic has 12 partitions).
    let back = Instant::now();
    drill.stack.scale("payment", 10)?;
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
    drill.report(
        detect,
        recover,
        orders,
        lost,
        &format!("peak_lag={peak_lag} peak_cpu={peak_cpu:.2}"),
    );
    Ok(())
}

/// The servers the PostgreSQL view's Servers table lists with `role`.
fn servers_with_role<'a>(frame: &'a str, role: &str) -> Vec<&'a str> {
    frame
        .lines()
        .skip_while(|line| !line.starts_with("┌ Servers"))
        .skip(1)
        .take_while(|line| !line.starts_with('└'))
        .filter_map(|line| {
            let mut words = line
                .trim_matches(|c: char| c == '│' || c == '▶' || c.is_whitespace())
                .split_whitespace();
            let server = words.next()?;
            (words.next()? == role).then_some(server)
        })
        .collect()
}

/// Wait for the PostgreSQL view to list `primary` as the only primary with a standby named
/// `standby` (or any, if empty) streaming from it.
fn panel_shows_primary(drill: &Drill, primary: &str, standby: &str) -> anyhow::Result<String> {
    let link = format!("{primary} → {standby}");
    drill.wait_frame(
        &format!("the panel shows {primary} as the primary, {link} streaming"),
        &["--view", "postgres"],
        |f| servers_with_role(f, "primary") == [primary] && f.contains(&link),
    )
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
    std::thread::sleep(Duration::from_secs(2));
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
    drill.report(
        detect,
        recover,
        orders,
        lost,
        &format!(
            "promoted={promoted} promoted_after={:.1} writes_back={:.1} orders_refused={refused}",
            promoted_after.as_secs_f64(),
            writes_back.as_secs_f64()
        ),
    );
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
    drill.report(detect, recover, orders, lost, "");
    Ok(())
}
