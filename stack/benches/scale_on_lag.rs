//! Scaling consumers on lag, side by side in one run (BENCHMARKS.md, "Scaling consumers on
//! lag"): the flash-sale load with the payment provider slowed so payment is I/O-bound, once
//! with CPU-only HPAs and once with the shipped CPU + lag HPAs, on the whole local stack.
//!
//!   cargo build --release --workspace --bins
//!   cargo bench -p surge-stack --bench scale_on_lag
//!
//! Environment: SURGE_BENCH_LATENCY_MS (payment provider latency, default 150),
//! SURGE_BENCH_RATE (base req/s, default 10), SURGE_BENCH_SPIKE_SECONDS (default 120).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use serde::Deserialize;
use surge_stack::external::vector_sum;
use surge_stack::{Stack, StackOptions};

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    CpuOnly,
    CpuAndLag,
}

impl Mode {
    fn label(self) -> &'static str {
        match self {
            Mode::CpuOnly => "CPU only",
            Mode::CpuAndLag => "CPU + lag",
        }
    }
}

/// One sample of the run, seconds since the load started.
#[derive(Clone, Copy)]
struct Sample {
    at: f64,
    replicas: usize,
    lag: Option<f64>,
}

struct Outcome {
    mode: Mode,
    peak_lag: f64,
    first_scale_out: Option<f64>,
    max_replicas: usize,
    drain: Option<f64>,
    p99_shipped: f64,
    pages: f64,
    lag_growing_pending: bool,
    per_replica_rate: Option<f64>,
    accepted: usize,
    in_db: usize,
    not_final: usize,
}

fn env_number(name: &str, default: f64) -> f64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The consumers' HPA manifest, with its External metrics removed for the CPU-only run.
fn consumer_hpas(repo: &Path, mode: Mode, dir: &Path) -> anyhow::Result<PathBuf> {
    let path = repo.join("stack/k8s/scale-on-lag/hpa.yaml");
    if mode == Mode::CpuAndLag {
        return Ok(path);
    }
    let text = std::fs::read_to_string(&path)?;
    let mut out = String::new();
    for document in serde_yaml_ng::Deserializer::from_str(&text) {
        let mut value = serde_yaml_ng::Value::deserialize(document)?;
        if let Some(metrics) = value
            .get_mut("spec")
            .and_then(|s| s.get_mut("metrics"))
            .and_then(|m| m.as_sequence_mut())
        {
            metrics.retain(|m| m.get("type").and_then(|t| t.as_str()) != Some("External"));
        }
        out.push_str("---\n");
        out.push_str(&serde_yaml_ng::to_string(&value)?);
    }
    let written = dir.join("consumer-hpas-cpu-only.yaml");
    std::fs::write(&written, out)?;
    Ok(written)
}

fn prometheus_value(addr: &str, query: &str) -> Option<f64> {
    let path = format!(
        "/api/v1/query?{}",
        form_urlencoded::Serializer::new(String::new())
            .append_pair("query", query)
            .finish()
    );
    match surge_servers::http::get(addr, &path, None) {
        Ok((200, _, body)) => vector_sum(&body),
        _ => None,
    }
}

fn run(mode: Mode, latency_ms: u64, rate: f64, spike_seconds: u64) -> anyhow::Result<Outcome> {
    let dir = tempfile::Builder::new()
        .prefix("surge-lag-bench-")
        .tempdir()?;
    let mut options = StackOptions::for_checkout(&dir.path().join("stack"))?;
    options.payment_latency_ms = latency_ms;
    options.payment_failure_rate = 0.0;
    // The controller's own sync period.
    options.autoscale = Some(Duration::from_secs(15));
    options.hpa_manifests = vec![
        options.repo.join(surge_stack::hpa::HPA_MANIFESTS[0]),
        consumer_hpas(&options.repo, mode, dir.path())?,
    ];
    let stack = Stack::start(options)?;
    let prometheus = format!(
        "127.0.0.1:{}",
        stack.prometheus.as_ref().context("no Prometheus")?.port()
    );
    let load_bin = surge_stack::stack::sibling_binary("surge-load", "SURGE_LOAD_BIN")?;
    let json = dir.path().join("load.json");
    let mut load = Command::new(load_bin)
        .args(["--target", &format!("http://{}", stack.api())])
        .args(["--profile", "flash-sale"])
        .args([
            "--rate",
            &rate.to_string(),
            "--duration",
            "30s",
            "--spike",
            "15",
        ])
        .args([
            "--spike-for",
            &format!("{spike_seconds}s"),
            "--users",
            "100",
        ])
        .arg("--json")
        .arg(&json)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let started = Instant::now();
    // Phase starts, as surge-load announces them.
    let phases: Arc<Mutex<Vec<(String, f64)>>> = Arc::default();
    let stderr = load.stderr.take().context("no stderr")?;
    let seen = Arc::clone(&phases);
    // The phases' start times; the other lines are kept to explain a failed load.
    let reader = std::thread::spawn(move || {
        let mut other = Vec::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.strip_prefix("phase ") {
                let name = rest.split(':').next().unwrap_or_default().to_string();
                if let Ok(mut p) = seen.lock() {
                    p.push((name, started.elapsed().as_secs_f64()));
                }
            } else {
                other.push(line);
            }
        }
        other
    });
    let lag_query = r#"sum(surge_kafka_group_topic_lag{group="payment",topic="order-placed"})"#;
    let payment_replicas = || stack.replicas().get("payment").copied().unwrap_or_default();
    let sample = || Sample {
        at: started.elapsed().as_secs_f64(),
        replicas: payment_replicas(),
        lag: prometheus_value(&prometheus, lag_query),
    };
    let mut samples = Vec::new();
    let status = loop {
        if let Some(status) = load.try_wait()? {
            break status;
        }
        samples.push(sample());
        std::thread::sleep(Duration::from_secs(1));
    };
    let load_output = reader.join().unwrap_or_default();
    if !status.success() {
        anyhow::bail!("surge-load failed ({status}): {}", load_output.join(" | "));
    }
    // After the load: until the backlog is gone and every accepted order is final.
    let open = |sql: &str| -> usize {
        stack
            .postgres
            .psql_in("primary", "shop", sql)
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(usize::MAX)
    };
    let deadline = Instant::now() + Duration::from_secs(900);
    while Instant::now() < deadline {
        let now = sample();
        samples.push(now);
        let done = now.lag == Some(0.0)
            && open("SELECT count(*) FROM orders WHERE status IN ('pending', 'paid')") == 0;
        if done {
            break;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    let phases = phases.lock().map_err(|_| anyhow!("poisoned"))?.clone();
    let at = |name: &str| phases.iter().find(|(n, _)| n == name).map(|(_, t)| *t);
    let spike_start = at("spike").context("no spike phase seen")?;
    let spike_end = at("after").context("no after phase seen")?;
    let initial = samples.first().map(|s| s.replicas).unwrap_or(2);
    let first_scale_out = samples
        .iter()
        .find(|s| s.at >= spike_start && s.replicas > initial)
        .map(|s| s.at - spike_start);
    let drain = samples
        .iter()
        .find(|s| s.at >= spike_end && s.lag == Some(0.0))
        .map(|s| s.at - spike_end);
    let peak_lag = samples.iter().filter_map(|s| s.lag).fold(0.0, f64::max);
    let max_replicas = samples.iter().map(|s| s.replicas).max().unwrap_or(0);
    let window = format!("{}s", started.elapsed().as_secs() + 60);
    let pages = prometheus_value(
        &prometheus,
        &format!(
            r#"count(max_over_time(ALERTS{{severity="page",alertstate="firing"}}[{window}]))"#
        ),
    )
    .unwrap_or(0.0);
    let lag_growing_pending = prometheus_value(
        &prometheus,
        &format!(r#"max_over_time(ALERTS{{alertname="KafkaConsumerLagGrowing"}}[{window}])"#),
    )
    .is_some();
    // What one replica settles while the backlog stands (CPU-only run: 2 replicas busy).
    let per_replica_rate = prometheus_value(
        &prometheus,
        &format!(
            r#"max_over_time(surge_kafka_group_topic_consume_rate{{group="payment",topic="order-placed"}}[{window}])"#
        ),
    )
    .map(|r| r / initial as f64);
    let p99_shipped: f64 = stack
        .postgres
        .psql_in(
            "primary",
            "shop",
            "SELECT percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM updated_at - created_at)) \
             FROM orders WHERE status = 'shipped'",
        )?
        .trim()
        .parse()
        .unwrap_or(f64::NAN);
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json)?)?;
    let accepted = report["orders_accepted"].as_array().map_or(0, Vec::len);
    let in_db = open("SELECT count(*) FROM orders");
    let not_final =
        open("SELECT count(*) FROM orders WHERE status NOT IN ('shipped', 'payment_failed')");
    drop(stack);
    Ok(Outcome {
        mode,
        peak_lag,
        first_scale_out,
        max_replicas,
        drain,
        p99_shipped,
        pages,
        lag_growing_pending,
        per_replica_rate,
        accepted,
        in_db,
        not_final,
    })
}

fn main() -> anyhow::Result<()> {
    // `cargo bench` passes `--bench`; nothing else is taken from the command line.
    let latency_ms = env_number("SURGE_BENCH_LATENCY_MS", 150.0) as u64;
    let rate = env_number("SURGE_BENCH_RATE", 10.0);
    let spike_seconds = env_number("SURGE_BENCH_SPIKE_SECONDS", 120.0) as u64;
    println!(
        "payment provider latency {latency_ms} ms; load {rate} req/s, 15x for {spike_seconds} s; local HPA every 15 s"
    );
    let mut outcomes = Vec::new();
    for mode in [Mode::CpuOnly, Mode::CpuAndLag] {
        eprintln!("run: {}", mode.label());
        outcomes.push(run(mode, latency_ms, rate, spike_seconds)?);
    }
    let seconds = |v: Option<f64>| v.map_or("never".to_string(), |s| format!("{s:.0} s"));
    println!(
        "| HPAs | peak lag | first payment scale-out after the spike starts | max payment replicas | drain after the spike | p99 order to shipped | pages | KafkaConsumerLagGrowing pending | orders accepted / in db / not final |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for o in &outcomes {
        println!(
            "| {} | {:.0} | {} | {} | {} | {:.1} s | {:.0} | {} | {} / {} / {} |",
            o.mode.label(),
            o.peak_lag,
            seconds(o.first_scale_out),
            o.max_replicas,
            seconds(o.drain),
            o.p99_shipped,
            o.pages,
            if o.lag_growing_pending { "yes" } else { "no" },
            o.accepted,
            o.in_db,
            o.not_final
        );
    }
    if let Some(rate) = outcomes[0].per_replica_rate {
        println!(
            "payment settles {rate:.1} messages/s per replica at {latency_ms} ms (CPU-only run, peak consume rate / replicas)"
        );
    }
    if let (Some(cpu), Some(lag)) = (outcomes[0].drain, outcomes[1].drain) {
        println!("drain: CPU + lag {:.1}x faster", cpu / lag.max(1.0));
    }
    Ok(())
}
