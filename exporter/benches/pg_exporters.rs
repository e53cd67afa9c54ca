//! Side by side, in one run: surge-exporter vs prometheus-postgres-exporter (Debian package,
//! default metrics, which include replication) against the same real primary and two
//! streaming replicas. Measures scrape latency over many scrapes, RSS, and CPU time.
//!
//! Run with `exporter/benches/run-pg-benchmark` (prints the table BENCHMARKS.md shows), or
//! `cargo bench -p surge-exporter --bench pg_exporters` to print it.

use std::process::Command;
use std::time::{Duration, Instant};

use surge_servers::postgres::MONITOR_ROLE;
use surge_servers::{PgCluster, ServerProcess, free_port, wait_until};

const SCRAPES: usize = 300;
const WARMUP: usize = 20;

struct Subject {
    name: &'static str,
    addr: String,
    process: ServerProcess,
    latencies: Vec<Duration>,
    cpu_ticks_before: u64,
}

fn proc_status_kib(pid: u32, field: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no {field} for {pid}"))
}

fn cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0);
    let stime: u64 = fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    Ok(utime + stime)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

fn main() -> anyhow::Result<()> {
    // `cargo bench` passes --bench; a plain run of the binary works too.
    let cluster = PgCluster::start(2)?;
    let dir = tempfile::tempdir()?;
    let password_file = dir.path().join("password");
    std::fs::write(&password_file, cluster.monitor_password())?;

    // surge-exporter: the three servers, collected in the background every 15 s.
    let mut config = String::from("[postgres]\ninterval = \"15s\"\ntimeout = \"5s\"\n");
    for name in cluster.node_names() {
        config.push_str(&format!(
            "[[postgres.targets]]\nname = \"{name}\"\ndsn = \"{}\"\npassword_file = \"{}\"\n",
            cluster.monitor_dsn(&name)?,
            password_file.display()
        ));
    }
    let config_path = dir.path().join("surge.toml");
    std::fs::write(&config_path, config)?;
    let surge_addr = format!("127.0.0.1:{}", free_port()?);
    // SURGE_EXPORTER_BIN measures another build (e.g. --no-default-features) the same way.
    let surge_bin = std::env::var("SURGE_EXPORTER_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_surge-exporter").into());
    let mut surge_cmd = Command::new(surge_bin);
    surge_cmd
        .arg("--config")
        .arg(&config_path)
        .arg("--listen")
        .arg(&surge_addr);
    let surge = ServerProcess::spawn("surge-exporter", surge_cmd, &dir.path().join("surge.log"))?;

    // postgres_exporter: the same three servers (comma-separated DATA_SOURCE_NAME), same role.
    let dsns: Vec<String> = cluster
        .node_names()
        .iter()
        .map(|n| {
            Ok(format!(
                "postgresql://{MONITOR_ROLE}:{}@127.0.0.1:{}/postgres?sslmode=disable",
                cluster.monitor_password(),
                cluster.port(n)?
            ))
        })
        .collect::<anyhow::Result<_>>()?;
    let pge_addr = format!("127.0.0.1:{}", free_port()?);
    let mut pge_cmd = Command::new("prometheus-postgres-exporter");
    // 0.11.1 fails every multi-server scrape with duplicate pg_scrape_collector_* series from
    // its bgwriter and database collectors, so those two are off; the replication queries are
    // part of its default metrics and stay on.
    pge_cmd
        .arg(format!("--web.listen-address={pge_addr}"))
        .args(["--no-collector.bgwriter", "--no-collector.database"])
        .env("DATA_SOURCE_NAME", dsns.join(","));
    let pge = ServerProcess::spawn("postgres_exporter", pge_cmd, &dir.path().join("pge.log"))?;

    let mut subjects = [
        Subject {
            name: "surge-exporter",
            addr: surge_addr,
            process: surge,
            latencies: vec![],
            cpu_ticks_before: 0,
        },
        Subject {
            name: "postgres_exporter 0.11.1",
            addr: pge_addr,
            process: pge,
            latencies: vec![],
            cpu_ticks_before: 0,
        },
    ];
    for s in &subjects {
        wait_until(
            s.name,
            Duration::from_secs(20),
            Duration::from_millis(50),
            || {
                Ok(surge_servers::http::get(&s.addr, "/metrics", None)
                    .map(|(status, _, body)| status == 200 && body.contains("replica"))
                    .unwrap_or(false))
            },
        )
        .map_err(|e| {
            let body = surge_servers::http::get(&s.addr, "/metrics", None)
                .map(|r| r.2)
                .unwrap_or_else(|e| e.to_string());
            anyhow::anyhow!(
                "{e:#}; body:\n{}",
                body.lines()
                    .filter(|l| !l.starts_with('#') && !l.starts_with("go_"))
                    .take(40)
                    .collect::<Vec<_>>()
                    .join("\n")
            )
        })?;
    }
    // Both must see replication; otherwise the comparison is meaningless.
    let (_, _, surge_body) = surge_servers::http::get(&subjects[0].addr, "/metrics", None)?;
    anyhow::ensure!(
        surge_body
            .contains("surge_postgres_replica_lag_bytes{target=\"primary\",replica=\"replica2\"}"),
        "surge-exporter shows no replica lag:\n{surge_body}"
    );
    let (_, _, pge_body) = surge_servers::http::get(&subjects[1].addr, "/metrics", None)?;
    anyhow::ensure!(
        pge_body.contains("pg_stat_replication"),
        "postgres_exporter shows no replication:\n{}",
        pge_body
            .lines()
            .filter(|l| !l.starts_with('#'))
            .take(60)
            .collect::<Vec<_>>()
            .join("\n")
    );

    for s in &subjects {
        for _ in 0..WARMUP {
            surge_servers::http::get(&s.addr, "/metrics", None)?;
        }
    }
    for s in subjects.iter_mut() {
        s.cpu_ticks_before = cpu_ticks(s.process.pid().unwrap_or(0))?;
    }
    let started = Instant::now();
    // Interleaved so both see the same machine noise.
    for _ in 0..SCRAPES {
        for s in subjects.iter_mut() {
            let t = Instant::now();
            let (status, _, _) = surge_servers::http::get(&s.addr, "/metrics", None)?;
            s.latencies.push(t.elapsed());
            anyhow::ensure!(status == 200, "{} answered {status}", s.name);
        }
    }
    let wall = started.elapsed();

    let ticks_per_second = 100.0; // USER_HZ on Linux
    println!(
        "| exporter | scrape p50 ms | p90 ms | p99 ms | RSS MiB (end) | peak RSS MiB | private (anon) RSS MiB | CPU s for {SCRAPES} scrapes | body bytes |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for s in subjects.iter_mut() {
        let pid = s.process.pid().unwrap_or(0);
        s.latencies.sort();
        let rss = proc_status_kib(pid, "VmRSS:")? as f64 / 1024.0;
        let hwm = proc_status_kib(pid, "VmHWM:")? as f64 / 1024.0;
        let anon = proc_status_kib(pid, "RssAnon:")? as f64 / 1024.0;
        let cpu = (cpu_ticks(pid)? - s.cpu_ticks_before) as f64 / ticks_per_second;
        let body = surge_servers::http::get(&s.addr, "/metrics", None)?.2.len();
        println!(
            "| {} | {} | {} | {} | {rss:.1} | {hwm:.1} | {anon:.1} | {cpu:.2} | {body} |",
            s.name,
            ms(percentile(&s.latencies, 0.5)),
            ms(percentile(&s.latencies, 0.9)),
            ms(percentile(&s.latencies, 0.99)),
        );
    }
    let collect: Vec<&str> = surge_body
        .lines()
        .filter(|l| l.starts_with("surge_source_collect_duration_seconds"))
        .collect();
    println!("\nsurge-exporter background collection (per target, last cycle):");
    for line in collect {
        println!("    {line}");
    }
    println!(
        "\n{} interleaved scrape pairs in {:.1} s.",
        SCRAPES,
        wall.as_secs_f64()
    );
    Ok(())
}
