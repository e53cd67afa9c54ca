//! The fault drills' harness: the whole local stack with real servers (the shop's services
//! behind nginx, PostgreSQL primary + 2 streaming replicas, Redis, the tansu broker),
//! surge-exporter, Prometheus with `alerts/rules.yml` (`for` scaled down), Alertmanager with
//! `alerts/alertmanager.yml` pointed at the PagerDuty Events v2 stand-in, and the `surge`
//! binary recording all of it. A drill (`tests/tests/drills/`) injects one fault while orders
//! flow and asserts the page (or warning), what the panel shows, and that no accepted order is
//! lost; [`Drill::report`] records what it measured in the run's `drills.jsonl`
//! ([`crate::run`]), from which RELIABILITY.md's table is generated.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{Value, json};
use surge_client::store::Verdict;
use surge_stack::{MonitoringTiming, Stack, StackOptions};
use surge_testkit::pagerduty::{PagerDutyStandIn, Received};
use surge_testkit::prom::PromQl;
use surge_testkit::shop::Shop;

/// Rules' `for` divided by this in the fault drills: 5m → 10 s (at least ten 1 s scrapes or
/// five 2 s collections, so one slow scrape of a debug build on a busy machine is not a page).
pub const FAST: u64 = 30;

/// How often the drills' Prometheus scrapes and evaluates, and surge-exporter collects (with
/// its timeout): the production periods (15 s) compressed, like the rules' `for`.
pub fn drill_timing() -> MonitoringTiming {
    MonitoringTiming {
        scrape: Duration::from_secs(1),
        collect: Duration::from_secs(2),
        timeout: Duration::from_millis(1900),
        lag_window: Duration::from_secs(30),
        rate_window: Duration::from_secs(6),
        stall_after: Duration::from_secs(6),
    }
}

pub struct Drill {
    /// `surge record` of the drill (first: stopped before the stack).
    recorder: RecordingChild,
    pub name: &'static str,
    pub stack: Stack,
    pub pager: PagerDutyStandIn,
    pub shop: Shop,
    pub prom: PromQl,
    pub token: String,
    /// Ids of orders the API accepted (202).
    pub accepted: Arc<Mutex<Vec<String>>>,
    started: Instant,
    /// How long the stack took to be ready (the setup, before the drill's own steps).
    setup: Duration,
    /// When each step of the drill ended, in seconds from its start (for the record: where a
    /// drill's time goes).
    steps: Mutex<Vec<(String, f64)>>,
    // Last: removed after the stack stopped.
    pub dir: tempfile::TempDir,
}

/// What a drill's recorder reads.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// Prometheus and Alertmanager, as a panel on monitoring reads them.
    Monitoring,
    /// The exporter too, beside them: when it dies Prometheus' series end, while a panel on
    /// the exporter keeps its last numbers, marked stale.
    MonitoringAndExporter,
}

/// What a drill measured, for its `DRILL` line and the run's record (RELIABILITY.md's table).
pub struct Outcome {
    /// The drill's number and title in the table (`2`, `payment consumer killed`).
    pub number: u32,
    pub title: &'static str,
    /// The fault, as the table's second column says it.
    pub fault: &'static str,
    /// What reached the pager or the warnings receiver, with what the drill measured of it.
    pub notified: String,
    /// Seconds from the fault to the notification (or the drill's detect event), and what
    /// the time runs to.
    pub detect: Duration,
    pub detect_to: &'static str,
    pub recover: Duration,
    pub recover_to: &'static str,
    /// Orders accepted and lost (None where the drill places no orders).
    pub orders: Option<(usize, usize)>,
    /// Further measurements, `key=value` separated by spaces.
    pub notes: String,
}

impl Drill {
    /// The stack with monitoring on fast timings, rules scaled by `factor`, paging to the
    /// stand-in; `tweak` adjusts the options further. Recorded from monitoring.
    pub fn start(
        name: &'static str,
        factor: u64,
        tweak: impl FnOnce(&mut StackOptions),
    ) -> anyhow::Result<Drill> {
        Drill::start_recording(name, factor, Recorded::Monitoring, tweak)
    }

    /// As [`Drill::start`], with the recorder reading `recorded`.
    pub fn start_recording(
        name: &'static str,
        factor: u64,
        recorded: Recorded,
        tweak: impl FnOnce(&mut StackOptions),
    ) -> anyhow::Result<Drill> {
        let started = Instant::now();
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
        options.timing = drill_timing();
        options.alert_rules = Some(crate::alerting::scaled_rules(factor)?);
        options.alertmanager_config = Some(crate::alerting::test_alertmanager(
            &pager.events_url(),
            &key_file,
            |receiver| pager.webhook_url(receiver),
        )?);
        tweak(&mut options);
        let stack = Stack::start(options)?;
        let prom = PromQl::new(&prom_url(&stack))?;
        let shop = Shop::new(&stack.api())?;
        // Not waiting here for Prometheus' first scrape (its target discovery sends targets
        // on a 5 s tick): each drill reaches its own steady state before its fault, which
        // needs monitoring ([`Drill::wait_monitoring`] where nothing else does).
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
            setup: started.elapsed(),
            steps: Mutex::new(vec![("setup".into(), round1(started.elapsed()))]),
            started,
            dir,
        })
    }

    /// Note that the step `what` ended now (shown on stderr as it happens, kept for the
    /// record).
    pub fn step(&self, what: &str) {
        let at = round1(self.started.elapsed());
        eprintln!("drill {} {at:>6.1} s {what}", self.name);
        if let Ok(mut steps) = self.steps.lock() {
            steps.push((what.to_string(), at));
        }
    }

    /// Wait until Prometheus has scraped surge-exporter (its first scrape comes up to 5 s
    /// after it starts): monitoring is watching.
    pub fn wait_monitoring(&self) -> anyhow::Result<()> {
        self.wait_value(
            "Prometheus scraping surge-exporter",
            "max(up{job=\"surge-exporter\"})",
            1.0,
        )
    }

    pub fn prometheus(&self) -> String {
        prom_url(&self.stack)
    }

    pub fn alertmanager(&self) -> String {
        am_url(&self.stack)
    }

    pub fn exporter(&self) -> String {
        exporter_url(&self.stack)
    }

    /// Wait until `group`'s lag trend no longer rises (ok, draining or idle).
    pub fn wait_lag_settled(&self, group: &str) -> anyhow::Result<()> {
        self.wait_value(
            &format!("{group}'s lag trend no longer rising"),
            &format!(
                "max(surge_kafka_group_topic_lag_state{{group=\"{group}\",state=~\"ok|draining|idle\"}})"
            ),
            1.0,
        )
    }

    /// Wait until monitoring knows `group` consumes `topic` and is keeping up (its lag state
    /// `ok` or `idle` there): a steady state before a fault.
    pub fn wait_consuming(&self, group: &str, topic: &str) -> anyhow::Result<()> {
        self.wait_value(
            &format!("{group} consuming {topic}"),
            &format!(
                "max(surge_kafka_group_topic_lag_state{{group=\"{group}\",topic=\"{topic}\",state=~\"ok|idle\"}})"
            ),
            1.0,
        )
    }

    /// `workloads`' verdicts over the drill's recording so far (each change once), as the
    /// recorder has flushed it (at least once a second).
    pub fn recorded_verdicts(&self, workloads: &[&str]) -> anyhow::Result<Vec<Vec<Verdict>>> {
        let recording =
            surge_client::recording::read(&self.recorder.path).map_err(anyhow::Error::msg)?;
        Ok(workloads.iter().map(|w| verdicts(&recording, w)).collect())
    }

    /// Wait until `workloads`' recorded verdicts pass `check` (30 s at most); returns them.
    pub fn wait_recorded(
        &self,
        what: &str,
        workloads: &[&str],
        check: &dyn Fn(&[Vec<Verdict>]) -> bool,
    ) -> anyhow::Result<Vec<Vec<Verdict>>> {
        let mut seen = Vec::new();
        surge_servers::wait_until(
            what,
            Duration::from_secs(30),
            Duration::from_millis(500),
            || {
                seen = self.recorded_verdicts(workloads)?;
                Ok(check(&seen))
            },
        )
        .map_err(|e| anyhow::anyhow!("{e:#}; recorded: {seen:?}"))?;
        self.step(what);
        Ok(seen)
    }

    /// `workloads`' verdicts over the drill's recording, once they pass `expected` (or the
    /// recording reaches 30 s past this call); then the recording is stopped.
    pub fn replayed_verdicts(
        &mut self,
        workloads: &[&str],
        expected: &dyn Fn(&[Vec<Verdict>]) -> bool,
    ) -> anyhow::Result<Vec<Vec<Verdict>>> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let seen = loop {
            let seen = self.recorded_verdicts(workloads)?;
            if expected(&seen) || Instant::now() >= deadline {
                break seen;
            }
            std::thread::sleep(Duration::from_millis(500));
        };
        self.recorder.finish()?;
        self.step("replayed the recording");
        Ok(seen)
    }

    /// `workload`'s verdicts over the replayed recording hold `expected`, in that order.
    pub fn expect_verdicts(
        &mut self,
        workload: &str,
        expected: &[&dyn Fn(&Verdict) -> bool],
    ) -> anyhow::Result<()> {
        let seen = self
            .replayed_verdicts(&[workload], &|seen| in_order(&seen[0], expected))?
            .remove(0);
        anyhow::ensure!(
            in_order(&seen, expected),
            "{workload}'s verdicts over the recording: {seen:?}"
        );
        Ok(())
    }

    /// Wait until the PromQL `query` has the single value `expected`; a timeout explains what
    /// monitoring saw.
    pub fn wait_value(&self, what: &str, query: &str, expected: f64) -> anyhow::Result<()> {
        surge_servers::wait_until(
            what,
            Duration::from_secs(120),
            Duration::from_millis(250),
            || Ok(self.prom.value(query)? == Some(expected)),
        )
        .map_err(|e| anyhow::anyhow!("{e:#}\n{}", self.diagnose()))?;
        self.step(what);
        Ok(())
    }

    /// How many orders the API has accepted so far.
    pub fn accepted_count(&self) -> usize {
        self.accepted.lock().map(|a| a.len()).unwrap_or(0)
    }

    /// Wait until `more` orders beyond those accepted so far are accepted.
    pub fn wait_orders(&self, more: usize) -> anyhow::Result<()> {
        let target = self.accepted_count() + more;
        surge_servers::wait_until(
            &format!("{more} more orders accepted"),
            Duration::from_secs(60),
            Duration::from_millis(100),
            || Ok(self.accepted_count() >= target),
        )?;
        self.step(&format!("{more} more orders accepted"));
        Ok(())
    }

    /// Place one order; an accepted one is remembered for the audit.
    pub fn order(&self, product: i64) -> anyhow::Result<u16> {
        place_order(&self.shop, &self.token, product, &self.accepted)
    }

    /// Orders at about `per_second` in a thread until the returned stream is stopped.
    pub fn keep_ordering(&self, per_second: u32) -> OrderStream {
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
    pub fn start_load(&self, args: &[&str]) -> anyhow::Result<std::process::Child> {
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

    /// Wait until the running load has said it entered `phase` (`phase spike:` on stderr).
    pub fn wait_load_phase(&self, phase: &str) -> anyhow::Result<()> {
        let needle = format!("phase {phase}:");
        surge_servers::wait_until(
            &format!("surge-load in its {phase} phase"),
            Duration::from_secs(120),
            Duration::from_millis(100),
            || {
                Ok(std::fs::read_to_string(self.dir.path().join("load.err"))
                    .unwrap_or_default()
                    .contains(&needle))
            },
        )?;
        self.step(&format!("surge-load in its {phase} phase"));
        Ok(())
    }

    /// Until the load ends, `sample` gets the replica counts every 250 ms; then the load is
    /// finished (`finish_load`). Returns when it ended.
    pub fn watch_load(
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
    pub fn finish_load(&self, status: std::process::ExitStatus) -> anyhow::Result<()> {
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

    /// Every accepted order reaches its final state exactly once — shipped, one payment, one
    /// shipment, nothing left in the outbox — and no order the API did not accept exists at
    /// all. Returns (accepted, lost).
    pub fn audit(&self, timeout: Duration) -> anyhow::Result<(usize, usize)> {
        let ids: BTreeSet<String> = self
            .accepted
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?
            .iter()
            .cloned()
            .collect();
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
        let waited = surge_servers::wait_until(
            "every accepted order shipped",
            timeout,
            Duration::from_millis(500),
            || {
                lost = db(&unfinished)?.trim().parse()?;
                Ok(lost == 0)
            },
        );
        // A query that never answered is the harness's failure, not lost orders.
        if lost == usize::MAX {
            waited.with_context(|| format!("{}: the audit's query", self.name))?;
        }
        self.step("audited the orders");
        let count = |sql: &str| -> anyhow::Result<usize> { Ok(db(sql)?.trim().parse()?) };
        // Primary keys make a second payment or shipment impossible; the payments and
        // shipments must be the orders', and every order in the database one the API accepted.
        let orders: BTreeSet<String> = db("SELECT id FROM orders")?
            .lines()
            .map(str::to_string)
            .collect();
        let unaccepted: Vec<&String> = orders.difference(&ids).collect();
        let shipped = count("SELECT count(*) FROM orders WHERE status = 'shipped'")?;
        let payments = count("SELECT count(*) FROM payments WHERE outcome = 'paid'")?;
        let shipments = count("SELECT count(*) FROM shipments")?;
        let outbox = count("SELECT count(*) FROM outbox")?;
        if lost != 0 {
            // Where the unshipped ones stand: their status and whether payment saw them.
            let stuck = db(&format!(
                "SELECT coalesce(o.status, 'missing') || ' payment=' || coalesce(p.outcome, 'none') || ' ' || a.id \
                 FROM unnest(ARRAY[{list}]::uuid[]) AS a(id) LEFT JOIN orders o ON o.id = a.id \
                 LEFT JOIN payments p ON p.order_id = a.id WHERE o.status IS DISTINCT FROM 'shipped'"
            ))
            .unwrap_or_default();
            panic!(
                "{}: {lost} accepted orders not shipped:\n{stuck}",
                self.name
            );
        }
        assert!(
            unaccepted.is_empty(),
            "{}: orders the API never accepted are in the database: {unaccepted:?}",
            self.name
        );
        assert!(
            shipped == ids.len() && payments == shipped && shipments == shipped && outbox == 0,
            "{}: accepted {}, shipped {shipped}, payments {payments}, shipments {shipments}, outbox {outbox}",
            self.name,
            ids.len()
        );
        Ok((ids.len(), lost))
    }

    /// The shell command that opens the interactive panel on this drill's stack as an on-call
    /// engineer would: `--kube-context surge-local` through the stack's kubeconfig, as OS user
    /// `oncall`, its audit in `audit.jsonl` and its log in `panel.log` in the drill's folder;
    /// `extra` flags after.
    pub fn panel_command(&self, extra: &str) -> anyhow::Result<String> {
        let dir = self.dir.path();
        Ok(format!(
            "env HOME={dir} XDG_CONFIG_HOME={dir} USER=oncall KUBECONFIG={kubeconfig} {surge} --kube-context surge-local --refresh 1s --audit-log {audit} --log {log} {extra}",
            dir = dir.display(),
            kubeconfig = self.stack.options.dir.join("kubeconfig").display(),
            surge = surge_bin()?.display(),
            audit = dir.join("audit.jsonl").display(),
            log = dir.join("panel.log").display(),
        ))
    }

    /// What the monitoring saw, for a failed wait: notifications so far, the signals, the
    /// exporter's log tail.
    pub fn diagnose(&self) -> String {
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
    pub fn wait_notification(
        &self,
        what: &str,
        timeout: Duration,
        check: impl Fn(&Received) -> bool,
    ) -> anyhow::Result<Received> {
        let received = self
            .pager
            .wait_for(what, timeout, check)
            .map_err(|e| anyhow::anyhow!("{e:#}\n{}", self.diagnose()))?;
        self.step(what);
        Ok(received)
    }

    /// A page (PagerDuty trigger) for `alert`.
    pub fn wait_page(&self, alert: &str, timeout: Duration) -> anyhow::Result<Received> {
        self.wait_notification(&format!("{alert} page"), timeout, |r| {
            r.receiver == "pagerduty"
                && r.body["event_action"] == "trigger"
                && r.body["payload"]["class"] == alert
        })
    }

    /// The resolve event for a page.
    pub fn wait_resolve(&self, page: &Received, timeout: Duration) -> anyhow::Result<Received> {
        let key = page.body["dedup_key"].clone();
        self.wait_notification("resolve event", timeout, |r| {
            r.receiver == "pagerduty"
                && r.body["event_action"] == "resolve"
                && r.body["dedup_key"] == key
        })
    }

    /// A webhook notification to `receiver` about `alert` with `status`.
    pub fn wait_webhook(
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
    pub fn other_pages(&self, allowed: &[&str]) -> Vec<Value> {
        self.pager
            .received()
            .into_iter()
            .filter(|r| r.receiver == "pagerduty" && r.body["event_action"] == "trigger")
            .filter(|r| !allowed.iter().any(|a| r.body["payload"]["class"] == *a))
            .map(|r| r.body)
            .collect()
    }

    /// `surge --once` on this stack's Prometheus and Alertmanager.
    pub fn frame(&self, extra: &[&str]) -> anyhow::Result<String> {
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
    pub fn wait_frame(
        &self,
        what: &str,
        extra: &[&str],
        check: impl Fn(&str) -> bool,
    ) -> anyhow::Result<String> {
        let mut frame = String::new();
        surge_servers::wait_until(
            what,
            Duration::from_secs(60),
            Duration::from_millis(500),
            || {
                frame = self.frame(extra)?;
                Ok(check(&frame))
            },
        )
        .map_err(|e| anyhow::anyhow!("{e:#}\nlast frame:\n{frame}"))?;
        self.step(what);
        Ok(frame)
    }

    /// The drill's `DRILL` line on stderr and its record in the run's `drills.jsonl`; also
    /// asserts the pager rejected no event (one the real Events API would refuse is a page
    /// nobody gets).
    pub fn report(&self, outcome: Outcome) {
        let notifications = self.pager.received();
        let count = |receiver: &str| {
            notifications
                .iter()
                .filter(|r| r.receiver == receiver)
                .filter(|r| r.body["event_action"] == "trigger" || r.body["status"] == "firing")
                .count()
        };
        let total = self.started.elapsed();
        let (orders, lost) = match outcome.orders {
            Some((orders, lost)) => (json!(orders), json!(lost)),
            None => (Value::Null, Value::Null),
        };
        let record = json!({
            "drill": self.name,
            "test": std::thread::current().name().unwrap_or_default(),
            "number": outcome.number,
            "title": outcome.title,
            "fault": outcome.fault,
            "notified": outcome.notified,
            "detect_s": round1(outcome.detect),
            "detect_to": outcome.detect_to,
            "recover_s": round1(outcome.recover),
            "recover_to": outcome.recover_to,
            "orders": orders,
            "lost": lost,
            "pages": count("pagerduty"),
            "warnings": count("warnings"),
            "setup_s": round1(self.setup),
            "total_s": round1(total),
            "steps": self.steps.lock().map(|s| s.clone()).unwrap_or_default(),
            "notes": outcome.notes,
        });
        eprintln!(
            "DRILL {} detect={:.1} recover={:.1} orders={orders} lost={lost} setup={:.1} total={:.1} pages={} warnings={} {}",
            self.name,
            outcome.detect.as_secs_f64(),
            outcome.recover.as_secs_f64(),
            self.setup.as_secs_f64(),
            total.as_secs_f64(),
            count("pagerduty"),
            count("warnings"),
            outcome.notes,
        );
        let rejected = self.pager.rejected();
        assert!(
            rejected.is_empty(),
            "the pager rejected events: {rejected:#?}"
        );
        if let Err(e) = crate::run::record("drills", &record) {
            eprintln!("could not record the drill in the run: {e:#}");
        }
    }
}

/// Seconds with one decimal, as the tables show them.
fn round1(d: Duration) -> f64 {
    (d.as_secs_f64() * 10.0).round() / 10.0
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

    /// Stop recording; with `SURGE_DRILL_RECORDINGS=DIR` a copy is kept there (the panel's
    /// replay fixtures come from such copies).
    fn finish(&mut self) -> anyhow::Result<()> {
        self.stop()?;
        if let Ok(dir) = std::env::var("SURGE_DRILL_RECORDINGS") {
            let name = self.path.file_name().context("recording name")?;
            std::fs::create_dir_all(&dir)?;
            std::fs::copy(&self.path, std::path::Path::new(&dir).join(name))?;
        }
        Ok(())
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
pub fn verdicts(recording: &surge_client::recording::Recording, workload: &str) -> Vec<Verdict> {
    use surge_client::recording::Replay;
    use surge_client::store::{Store, verdict};
    let replay = Replay::new(recording, 0, Store::new(recording.header.stale_after));
    let (start, end) = replay.span();
    let mut cursor = replay.cursor();
    let mut out: Vec<Verdict> = Vec::new();
    let mut at = start;
    while at <= end {
        replay.seek(&mut cursor, at);
        if let Some(row) = cursor
            .store
            .derived()
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
pub fn in_order(seen: &[Verdict], expected: &[&dyn Fn(&Verdict) -> bool]) -> bool {
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
pub struct OrderStream {
    running: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<u32>,
}

impl OrderStream {
    /// Stop; returns how many orders were refused or failed.
    pub fn stop(self) -> u32 {
        self.running.store(false, Ordering::Relaxed);
        self.handle.join().unwrap_or(u32::MAX)
    }
}

pub fn surge_bin() -> anyhow::Result<PathBuf> {
    surge_stack::stack::sibling_binary("surge", "SURGE_BIN")
}

/// The rows of the frame's full-width box titled `title` (`┌ Servers (3) …`), without their
/// borders.
pub fn box_rows<'a>(frame: &'a str, title: &str) -> Vec<&'a str> {
    let top = format!("┌ {title}");
    frame
        .lines()
        .skip_while(|line| !line.starts_with(&top))
        .skip(1)
        .take_while(|line| !line.starts_with('└'))
        .map(|line| line.trim_matches(|c: char| c == '│' || c == '▶' || c.is_whitespace()))
        .collect()
}

/// The Kafka view's row for `group` consuming `topic`.
pub fn group_row<'a>(frame: &'a str, group: &str, topic: &str) -> Option<&'a str> {
    box_rows(frame, "Consumer groups").into_iter().find(|row| {
        let mut words = row.split_whitespace();
        words.next() == Some(group) && words.next() == Some(topic)
    })
}

/// The servers the PostgreSQL view's Servers table lists with `role`.
pub fn servers_with_role<'a>(frame: &'a str, role: &str) -> Vec<&'a str> {
    box_rows(frame, "Servers")
        .into_iter()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let server = words.next()?;
            (words.next()? == role).then_some(server)
        })
        .collect()
}

/// Wait for the PostgreSQL view to list `primary` as the only primary with a standby named
/// `standby` (or any, if empty) streaming from it.
pub fn panel_shows_primary(drill: &Drill, primary: &str, standby: &str) -> anyhow::Result<String> {
    let link = format!("{primary} → {standby}");
    drill.wait_frame(
        &format!("the panel shows {primary} as the primary, {link} streaming"),
        &["--view", "postgres"],
        |f| servers_with_role(f, "primary") == [primary] && f.contains(&link),
    )
}

/// A duration as the panel prints it (`0.4s`, `45s`, `3m05s`, `2h10m`, `3d4h`) in seconds.
pub fn panel_seconds(text: &str) -> Option<f64> {
    let mut total = 0.0;
    let mut number = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() || c == '.' {
            number.push(c);
            continue;
        }
        let unit = match c {
            's' => 1.0,
            'm' => 60.0,
            'h' => 3600.0,
            'd' => 86_400.0,
            _ => return None,
        };
        total += number.parse::<f64>().ok()? * unit;
        number.clear();
    }
    number.is_empty().then_some(total)
}

#[cfg(test)]
mod tests {
    use super::panel_seconds;

    #[test]
    fn panel_durations_read_back_as_seconds() {
        assert_eq!(panel_seconds("0.4s"), Some(0.4));
        assert_eq!(panel_seconds("45s"), Some(45.0));
        assert_eq!(panel_seconds("3m05s"), Some(185.0));
        assert_eq!(panel_seconds("2h10m"), Some(7800.0));
        assert_eq!(panel_seconds("3d4h"), Some(273_600.0));
        assert_eq!(panel_seconds("—"), None);
        assert_eq!(panel_seconds("12"), None);
    }
}
