//! The panel at fleet size, beside grafatui, on one real Prometheus (Debian) that scrapes a
//! fleet's Kafka series from the exporter's own store and `/metrics` (`surge_testkit::fleet`):
//! cluster `fleet` with 1,000 consumer groups on 100 topics × 50 partitions, and clusters
//! `c0`–`c9` with 200 groups each (on 20 topics × 10 partitions: the panel reads groups, not
//! partitions, and Prometheus on 2 cores ingests 260,000 series every 15 s, not 2 million).
//!
//! In tmux at 160×48 with a 1 s refresh, for `SURGE_FLEET_BENCH_SECONDS` (60):
//! - surge on `fleet`, in the Kafka view (1,000 rows), scrolled and filtered from the keyboard
//!   every 2 s (20 rows down, a page down, a filter typed and cleared);
//! - surge with 1, 5 and 10 contexts (`c0`… each its own selector on the same Prometheus), on
//!   the all-contexts view, every context's fetchers running;
//! - grafatui 0.1.18 (if installed) with the Kafka view's four queries on `fleet`.
//!
//! Each: CPU seconds (utime + stime from `/proc`), RSS at the end and at its peak, and for
//! surge its frame times (its log's `frame times` lines). Needs `cargo build --release -p
//! surge-tui` (or `SURGE_BIN`), scripts/install-deps (Prometheus, tmux) and, for the
//! comparison, `cargo install grafatui --locked --version 0.1.18`. Run with
//! `tests/benches/run-fleet-panel-benchmark`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use surge_servers::{Prometheus, Workdir, free_port};
use surge_testkit::fleet::{self, Size};
use surge_testkit::procstat::{cpu_ticks, status_kib};
use surge_testkit::prom::PromQl;
use surge_testkit::tmux::Tmux;

const FLEET: Size = Size {
    groups: 1000,
    topics: 100,
    partitions: 50,
};
const CONTEXT: Size = Size {
    groups: 200,
    topics: 20,
    partitions: 10,
};
const CONTEXTS: [usize; 3] = [1, 5, 10];

fn status_mib(pid: u32, field: &str) -> anyhow::Result<f64> {
    Ok(status_kib(pid, field)? / 1024.0)
}

/// `frame times` lines of a surge log: (frames, p50, p99, max) of the last one.
fn frame_times(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let last = text.lines().rev().find(|l| l.contains("frame times"));
    let field = |line: &str, name: &str| -> String {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{name}=")))
            .unwrap_or("?")
            .to_string()
    };
    match last {
        Some(line) => format!(
            "{} frames in 30 s: p50 {} ms, p99 {} ms, max {} ms",
            field(line, "frames"),
            field(line, "p50_ms"),
            field(line, "p99_ms"),
            field(line, "max_ms")
        ),
        None => "no frame times logged".into(),
    }
}

struct Panel {
    name: String,
    session: String,
    pid: u32,
    log: Option<PathBuf>,
    ticks: u64,
}

impl Drop for Panel {
    /// grafatui ignores SIGHUP and SIGTERM and outlives its tmux pane: every measured process
    /// is ended for good, also when the benchmark fails half-way.
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-9", &self.pid.to_string()])
            .status();
    }
}

fn main() -> anyhow::Result<()> {
    let seconds: u64 = std::env::var("SURGE_FLEET_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let surge = std::env::var("SURGE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join("target/release/surge"));
    anyhow::ensure!(
        surge.exists(),
        "{} missing: cargo build --release -p surge-tui",
        surge.display()
    );
    let grafatui = std::env::var("HOME")
        .map(|h| PathBuf::from(h).join(".cargo/bin/grafatui"))
        .ok()
        .filter(|p| p.exists());

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let mut clusters = vec![("fleet".to_string(), fleet::kafka_samples("fleet", FLEET))];
    for c in 0..10 {
        let name = format!("c{c}");
        let samples = fleet::kafka_samples(&name, CONTEXT);
        clusters.push((name, samples));
    }
    let series: usize = clusters.iter().map(|(_, s)| s.len()).sum();
    let served = runtime.block_on(fleet::serve(clusters))?;
    let prometheus = Prometheus::start_in(
        Workdir::temp("surge-fleet-prom-")?,
        free_port()?,
        &format!(
            "global:\n  scrape_interval: 15s\n  scrape_timeout: 10s\nscrape_configs:\n  - job_name: surge-exporter\n    \
             static_configs:\n      - targets: ['{}']\n",
            served.addr
        ),
    )?;
    let prom_url = prometheus.url();
    let prom = PromQl::new(&prom_url)?;
    let started = Instant::now();
    loop {
        let groups = prom
            .value("count(surge_kafka_group_topic_lag)")
            .ok()
            .flatten()
            .unwrap_or(0.0);
        if groups >= (FLEET.groups + 10 * CONTEXT.groups) as f64 {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(120),
            "Prometheus holds {groups} groups after 120 s"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    eprintln!(
        "Prometheus holds {series} series ({:.1} s)",
        started.elapsed().as_secs_f64()
    );

    let work = tempfile::tempdir()?;
    let tmux = Tmux::new("surge-fleet-bench");
    let mut panels = Vec::new();
    let config = |contexts: &[&str]| -> String {
        contexts
            .iter()
            .map(|c| {
                format!(
                    "[contexts.{c}]\nprometheus = \"{prom_url}\"\nselector = 'cluster=\"{c}\"'\n"
                )
            })
            .collect()
    };
    let mut start_surge =
        |name: &str, session: &str, contexts: &[&str], first: &str| -> anyhow::Result<()> {
            let file = work.path().join(format!("{session}.toml"));
            std::fs::write(&file, config(contexts))?;
            let log = work.path().join(format!("{session}.log"));
            tmux.start(
                session,
                160,
                48,
                &format!(
                    "exec {} --config {} --context {first} --refresh 1s --log {}",
                    surge.display(),
                    file.display(),
                    log.display()
                ),
            )?;
            let pid: u32 = tmux.pane(session, "pane_pid")?.trim().parse()?;
            panels.push(Panel {
                name: name.into(),
                session: session.into(),
                pid,
                log: Some(log),
                ticks: 0,
            });
            Ok(())
        };
    start_surge(
        "surge, 1,000 groups, Kafka view (scrolled, filtered)",
        "fleet",
        &["fleet"],
        "fleet",
    )?;
    let names: Vec<String> = (0..10).map(|c| format!("c{c}")).collect();
    for n in CONTEXTS {
        let contexts: Vec<&str> = names.iter().take(n).map(String::as_str).collect();
        start_surge(
            &format!("surge, {n} context(s) × 200 groups, all-contexts view"),
            &format!("ctx{n}"),
            &contexts,
            "c0",
        )?;
    }
    if let Some(grafatui) = &grafatui {
        let queries: Vec<String> = [
            "surge_kafka_group_topic_lag",
            "surge_kafka_group_topic_lag_seconds",
            "surge_kafka_group_topic_consume_rate",
            "surge_kafka_group_topic_lag_state",
        ]
        .iter()
        .map(|q| format!("--query '{q}{{cluster=\"fleet\"}}'"))
        .collect();
        tmux.start(
            "grafatui",
            160,
            48,
            &format!(
                "exec {} --prometheus-url {prom_url} --refresh-rate 1000 --range 5m {}",
                grafatui.display(),
                queries.join(" ")
            ),
        )?;
        let pid: u32 = tmux.pane("grafatui", "pane_pid")?.trim().parse()?;
        panels.push(Panel {
            name: "grafatui 0.1.18, the Kafka view's 4 queries on 1,000 groups".into(),
            session: "grafatui".into(),
            pid,
            log: None,
            ticks: 0,
        });
    }
    // Into the views measured, once each panel has data.
    tmux.keys("fleet", &[":kafka", "Enter"])?;
    tmux.wait_for("fleet", "the Kafka view's first rows", "group-0000")?;
    for n in CONTEXTS {
        tmux.wait_for(&format!("ctx{n}"), "the panel's first data", "group-0000")?;
        tmux.keys(&format!("ctx{n}"), &["0"])?;
    }
    std::thread::sleep(Duration::from_secs(5));
    for panel in &mut panels {
        panel.ticks = cpu_ticks(panel.pid)?;
    }
    // `getconf CLK_TCK` on Linux.
    let ticks_per_second = 100.0;
    let measured = Instant::now();
    let mut round = 0;
    while measured.elapsed() < Duration::from_secs(seconds) {
        // Scroll and filter the 1,000-row Kafka view as an engineer looking for a group does.
        let keys: Vec<&str> = match round % 3 {
            0 => vec!["j"; 20],
            1 => vec!["PageDown"],
            _ => vec!["/", "group-04", "Enter", "Escape"],
        };
        tmux.keys("fleet", &keys)?;
        round += 1;
        std::thread::sleep(Duration::from_secs(2));
    }
    let elapsed = measured.elapsed().as_secs_f64();
    println!(
        "\n### The panel at fleet size ({series} series in Prometheus, 160×48, 1 s refresh, {elapsed:.0} s)\n"
    );
    println!(
        "| panel | CPU s | share of a core | RSS MiB (end) | peak RSS MiB | frame times (last 30 s) |"
    );
    println!("|---|---|---|---|---|---|");
    for panel in &panels {
        let cpu = (cpu_ticks(panel.pid)? - panel.ticks) as f64 / ticks_per_second;
        println!(
            "| {} | {cpu:.2} | {:.1}% | {:.1} | {:.1} | {} |",
            panel.name,
            100.0 * cpu / elapsed,
            status_mib(panel.pid, "VmRSS:")?,
            status_mib(panel.pid, "VmHWM:")?,
            panel
                .log
                .as_deref()
                .map(frame_times)
                .unwrap_or_else(|| "—".into())
        );
    }
    let screen = tmux.screen("fleet")?;
    let shown = screen.lines().filter(|l| l.contains("group-0")).count();
    println!(
        "\nThe Kafka view showed {shown} group rows on its last screen (of 1,000); screens: {}",
        work.path().display()
    );
    for panel in &panels {
        std::fs::write(
            work.path().join(format!("{}-screen.txt", panel.session)),
            tmux.screen(&panel.session).unwrap_or_default(),
        )?;
    }
    drop(panels);
    drop(prometheus);
    // Kept for reading the screens.
    let _ = work.keep();
    Ok(())
}
