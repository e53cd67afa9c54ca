//! Soak (RELIABILITY.md, "Soak"): the whole local stack under a steady load for a long time,
//! with one fault every `SURGE_SOAK_FAULT_MINUTES`, sampling the resident memory and open file
//! descriptors of surge-exporter, a live `surge` panel and every shop replica. Reports each
//! process's slope after warm-up, restarts, and the order audit.
//!
//!   cargo build --release --workspace --bins
//!   SURGE_SOAK_MINUTES=60 cargo bench -p surge-stack --bench soak
//!
//! Environment: SURGE_SOAK_MINUTES (default 60), SURGE_SOAK_FAULT_MINUTES (default 10),
//! SURGE_SOAK_RATE (req/s, default 20).

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use surge_stack::{Stack, StackOptions};

fn env_number(name: &str, default: f64) -> f64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// (resident KiB, open fds) of a process, if it is alive.
fn sample(pid: u32) -> Option<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as f64;
    Some((rss, fds))
}

/// Least-squares slope of (t, v), per hour.
fn slope_per_hour(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if n < 2.0 {
        return 0.0;
    }
    let (mt, mv) = points
        .iter()
        .fold((0.0, 0.0), |(a, b), (t, v)| (a + t / n, b + v / n));
    let (num, den) = points.iter().fold((0.0, 0.0), |(num, den), (t, v)| {
        (num + (t - mt) * (v - mv), den + (t - mt) * (t - mt))
    });
    if den == 0.0 { 0.0 } else { num / den * 3600.0 }
}

/// The panel, live, in a pseudo-terminal (`script`), its screen thrown away.
fn start_panel(prometheus: &str, alertmanager: &str) -> anyhow::Result<Child> {
    let surge = surge_stack::stack::sibling_binary("surge", "SURGE_BIN")?;
    let command = format!(
        "{} --prometheus {prometheus} --alertmanager {alertmanager}",
        surge.display()
    );
    Ok(Command::new("script")
        .args(["-qfc", &command, "/dev/null"])
        .env("TERM", "xterm-256color")
        .env("COLUMNS", "160")
        .env("LINES", "48")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?)
}

/// The panel's own pid: the child of `script` running surge.
fn panel_pid(script: u32) -> Option<u32> {
    let children =
        std::fs::read_to_string(format!("/proc/{script}/task/{script}/children")).ok()?;
    children.split_whitespace().next()?.parse().ok()
}

fn main() -> anyhow::Result<()> {
    let minutes = env_number("SURGE_SOAK_MINUTES", 60.0);
    let fault_every = env_number("SURGE_SOAK_FAULT_MINUTES", 10.0) * 60.0;
    let rate = env_number("SURGE_SOAK_RATE", 20.0);
    let dir = tempfile::Builder::new().prefix("surge-soak-").tempdir()?;
    let mut options = StackOptions::for_checkout(&dir.path().join("stack"))?;
    options.payment_failure_rate = 0.0;
    // Faults are the bench's; the autoscaler would undo a killed replica by itself.
    options.autoscale = None;
    let mut stack = Stack::start(options)?;
    let prometheus = stack.prometheus.as_ref().context("no Prometheus")?.url();
    let alertmanager = stack
        .alertmanager
        .as_ref()
        .context("no Alertmanager")?
        .url();
    let mut panel = start_panel(&prometheus, &alertmanager)?;
    let load_bin = surge_stack::stack::sibling_binary("surge-load", "SURGE_LOAD_BIN")?;
    let json = dir.path().join("load.json");
    let seconds = (minutes * 60.0) as u64;
    let mut load = Command::new(load_bin)
        .args(["--target", &format!("http://{}", stack.api())])
        .args(["--profile", "baseline", "--rate", &rate.to_string()])
        .args(["--duration", &format!("{seconds}s"), "--users", "50"])
        .arg("--json")
        .arg(&json)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;

    let started = Instant::now();
    let warm_up = (minutes * 60.0 / 6.0).min(600.0);
    let mut series: BTreeMap<String, Vec<(f64, f64, f64)>> = BTreeMap::new();
    let mut pids_seen: BTreeMap<String, u32> = BTreeMap::new();
    let mut restarts: BTreeMap<String, u32> = BTreeMap::new();
    let mut faults = Vec::new();
    let mut next_fault = fault_every;
    let mut fault_index = 0;
    while load.try_wait()?.is_none() {
        let t = started.elapsed().as_secs_f64();
        if t >= next_fault {
            next_fault += fault_every;
            let name = match fault_index % 4 {
                0 => {
                    // The newest payment replica killed, replaced a minute later (as a controller would).
                    if let Some(port) = stack.replica_ports("payment").last().copied() {
                        stack.kill_replica("payment", port)?;
                    }
                    std::thread::sleep(Duration::from_secs(60));
                    stack.scale("payment", 1)?;
                    stack.scale("payment", 2)?;
                    "payment replica killed"
                }
                1 => {
                    stack.kafka.stop();
                    std::thread::sleep(Duration::from_secs(30));
                    stack.kafka.restart()?;
                    "broker stopped 30 s"
                }
                2 => {
                    stack
                        .postgres
                        .psql("replica1", "SELECT pg_wal_replay_pause()")?;
                    std::thread::sleep(Duration::from_secs(60));
                    stack
                        .postgres
                        .psql("replica1", "SELECT pg_wal_replay_resume()")?;
                    "replica replay paused 60 s"
                }
                _ => {
                    stack.redis.stop();
                    std::thread::sleep(Duration::from_secs(20));
                    stack.redis.restart()?;
                    "Redis stopped 20 s"
                }
            };
            eprintln!("{:.0} s: {name}", t);
            faults.push(name);
            fault_index += 1;
        }
        let mut processes: Vec<(String, u32)> = Vec::new();
        if let Some(pid) = stack.exporter.as_ref().and_then(|e| e.pid()) {
            processes.push(("surge-exporter".into(), pid));
        }
        if let Some(pid) = panel_pid(panel.id()) {
            processes.push(("surge (panel)".into(), pid));
        }
        if let Ok(sets) = stack.fleet.sets.lock() {
            for (service, set) in sets.iter() {
                for (pod, pid) in set.pods() {
                    if let Some(pid) = pid.and_then(|p| u32::try_from(p).ok()) {
                        processes.push((format!("{service} {pod}"), pid));
                    }
                }
            }
        }
        for (name, pid) in processes {
            if let Some(previous) = pids_seen.insert(name.clone(), pid)
                && previous != pid
            {
                *restarts.entry(name.clone()).or_default() += 1;
            }
            if let Some((rss, fds)) = sample(pid) {
                series.entry(name).or_default().push((t, rss, fds));
            }
        }
        std::thread::sleep(Duration::from_secs(30));
    }
    let panel_alive = panel.try_wait()?.is_none();
    let _ = panel.kill();
    let _ = panel.wait();

    // Audit: every accepted order final, once.
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json)?)?;
    let accepted = report["orders_accepted"].as_array().map_or(0, Vec::len);
    let deadline = Instant::now() + Duration::from_secs(300);
    let open = |sql: &str| -> i64 {
        stack
            .postgres
            .psql_in("primary", "shop", sql)
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(-1)
    };
    while open("SELECT count(*) FROM orders WHERE status IN ('pending', 'paid')") != 0
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_secs(2));
    }
    let not_final =
        open("SELECT count(*) FROM orders WHERE status NOT IN ('shipped', 'payment_failed')");
    let in_db = open("SELECT count(*) FROM orders");

    println!(
        "soak: {minutes:.0} min at {rate} req/s, a fault every {:.0} min ({}), warm-up {:.0} min",
        fault_every / 60.0,
        faults.join(", "),
        warm_up / 60.0
    );
    println!(
        "| process | RSS after warm-up (MiB) | RSS at the end (MiB) | RSS slope (MiB/h) | fds after warm-up | fds at the end | fd slope (/h) | restarts |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (name, points) in &series {
        let after: Vec<&(f64, f64, f64)> = points.iter().filter(|p| p.0 >= warm_up).collect();
        let (Some(first), Some(last)) = (after.first(), after.last()) else {
            continue;
        };
        let rss: Vec<(f64, f64)> = after.iter().map(|p| (p.0, p.1 / 1024.0)).collect();
        let fds: Vec<(f64, f64)> = after.iter().map(|p| (p.0, p.2)).collect();
        println!(
            "| {name} | {:.1} | {:.1} | {:+.2} | {:.0} | {:.0} | {:+.1} | {} |",
            first.1 / 1024.0,
            last.1 / 1024.0,
            slope_per_hour(&rss),
            first.2,
            last.2,
            slope_per_hour(&fds),
            restarts.get(name).copied().unwrap_or(0)
        );
    }
    println!(
        "orders accepted {accepted}, in the database {in_db}, not final {not_final}; panel still running at the end: {panel_alive}"
    );
    drop(stack);
    Ok(())
}
