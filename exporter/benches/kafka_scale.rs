//! Kafka lag at scale on the local broker (tansu, SQLite storage): 100 topics × 50
//! partitions; first 200 groups, then 1,000 groups, each committed on one topic's 50
//! partitions (10,000 and 50,000 group-partitions). Runs the release `surge-exporter` binary
//! for each and reports collection cycle time, Kafka requests per cycle, `/metrics` latency and
//! RSS. It scrapes as Prometheus does (gzip) first, then also uncompressed; `/metrics` is
//! timed both on the first scrape after a collection (which pays for encoding it) and cached.
//! With `SURGE_EXPORTER_BASELINE=BIN` another build (e.g. the librdkafka one before this
//! client) runs the same scenarios on the same broker, side by side.
//! `SURGE_KAFKA_BENCH_GROUPS=1000` runs only the scenarios listed (comma-separated), and
//! `SURGE_KAFKA_BENCH_CONFIG` adds lines to the `[kafka]` section (e.g.
//! `partition_metrics = false`).
//!
//! Then, at the largest size, each build against one and three brokers (proxies over the same
//! tansu, spread as a real cluster: `surge_testkit::broker_cluster`), reporting the cycle and
//! the requests per cycle counted on the wire by the proxies; then again with each answer held
//! 50 ms, as brokers on machines of their own across a network would answer.
//! `SURGE_KAFKA_BENCH_BROKERS=0` leaves that out.
//!
//! Run with `exporter/benches/run-kafka-benchmark`, or
//! `cargo bench -p surge-exporter --bench kafka_scale`.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use surge_servers::{KafkaBroker, ServerProcess, free_port};
use surge_testkit::broker_cluster::BrokerCluster;
use surge_testkit::kafka::BrokerClients;
use surge_testkit::procstat::status_kib;

const TOPICS: usize = 100;
const PARTITIONS: i32 = 50;
const SCENARIOS: [usize; 2] = [200, 1000];
const RECORDS_PER_PARTITION: usize = 20;
const SCRAPES: usize = 200;
/// Cycles watched with uncompressed scrapes, after the gzip ones.
const IDENTITY_CYCLES: usize = 3;
/// How long each run is watched: about 13 cycles at 5 s, two discoveries at 30 s.
const WATCH: Duration = Duration::from_secs(62);

fn series(body: &str, prefix: &str) -> Vec<(String, f64)> {
    body.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            Some((name.to_string(), value.parse().ok()?))
        })
        .collect()
}

fn requests(body: &str) -> BTreeMap<String, f64> {
    series(body, "surge_kafka_requests_total{")
        .into_iter()
        .filter_map(|(name, v)| {
            let api = name.split("api=\"").nth(1)?.split('"').next()?.to_string();
            Some((api, v))
        })
        .collect()
}

/// One `GET /metrics`, timed from connecting to the last byte received into `raw`, nothing
/// parsed in between: `(time, body bytes on the wire, body as text)`. With `gzip` it asks as Prometheus does;
/// a build that ignores that answers as it is.
fn timed_scrape(
    addr: &str,
    gzip: bool,
    raw: &mut Vec<u8>,
) -> anyhow::Result<(Duration, usize, String)> {
    let t = Instant::now();
    let mut stream = std::net::TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let accept = if gzip {
        "Accept-Encoding: gzip\r\n"
    } else {
        ""
    };
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\n{accept}Connection: close\r\n\r\n"
    )?;
    // One buffer for every scrape, so the timing is not the client's page faults.
    raw.clear();
    stream.read_to_end(raw)?;
    let elapsed = t.elapsed();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| anyhow::anyhow!("no header end"))?;
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    anyhow::ensure!(head.starts_with("http/1.1 200"), "{head}");
    anyhow::ensure!(
        !head.contains("transfer-encoding: chunked"),
        "chunked: {head}"
    );
    let body = &raw[split + 4..];
    let text = if head.contains("content-encoding: gzip") {
        let mut text = String::new();
        flate2::read::GzDecoder::new(body).read_to_string(&mut text)?;
        text
    } else {
        String::from_utf8(body.to_vec())?
    };
    Ok((elapsed, body.len(), text))
}

/// p50 / p99 / max of `times` in ms.
fn spread_ms(mut times: Vec<Duration>) -> String {
    times.sort();
    let at = |q: f64| {
        let i = ((times.len() as f64 - 1.0) * q).round() as usize;
        times.get(i).map_or(f64::NAN, |t| t.as_secs_f64() * 1000.0)
    };
    format!(
        "{:.2} / {:.2} / {:.2} ms (n={})",
        at(0.5),
        at(0.99),
        at(1.0),
        times.len()
    )
}

fn median_ms(mut times: Vec<Duration>) -> String {
    times.sort();
    match times.get(times.len() / 2) {
        Some(t) => format!("{:.2} ms (n={})", t.as_secs_f64() * 1000.0, times.len()),
        None => "none seen".into(),
    }
}

/// One build watched on the broker as it is.
fn run(build: &str, bin: &Path, broker: &KafkaBroker, groups: usize) -> anyhow::Result<()> {
    let bootstrap = broker.bootstrap();
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("surge.toml");
    let extra = std::env::var("SURGE_KAFKA_BENCH_CONFIG").unwrap_or_default();
    std::fs::write(
        &config,
        format!(
            "[kafka]\ninterval = \"5s\"\ntimeout = \"5s\"\ndiscovery_interval = \"30s\"\n{extra}\n\
             [[kafka.clusters]]\nname = \"local\"\nbootstrap_servers = \"{bootstrap}\"\n"
        ),
    )?;
    let addr = format!("127.0.0.1:{}", free_port()?);
    let mut cmd = Command::new(bin);
    cmd.arg("--config")
        .arg(&config)
        .arg("--listen")
        .arg(&addr)
        // This build logs how long each encoding after a collection took.
        .env("SURGE_LOG", "info,surge_exporter::schedule=debug");
    let log = dir.path().join("surge.log");
    let exporter = ServerProcess::spawn("surge-exporter", cmd, &log)?;
    let pid = exporter.pid().unwrap_or(0);
    let mut buffer = Vec::new();
    let mut scrape = |gzip: bool| timed_scrape(&addr, gzip, &mut buffer);
    let last_success = |body: &str| {
        series(
            body,
            "surge_source_last_success_timestamp_seconds{source=\"kafka\"",
        )
        .first()
        .map_or(0.0, |(_, v)| *v)
    };

    // Scraped as Prometheus scrapes (gzip) from the start: wait for a full first cycle, then
    // watch several cycles (the first is a discovery cycle).
    let started = Instant::now();
    let mut body = String::new();
    while !body.contains("surge_kafka_group_topic_lag{") {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(120),
            "no first cycle in 120 s\n{}",
            exporter.log_tail(3000)
        );
        std::thread::sleep(Duration::from_millis(200));
        body = scrape(true).map(|r| r.2).unwrap_or_default();
    }
    let mut durations = Vec::new();
    let mut snapshots = Vec::new();
    let mut seen = last_success(&body);
    // The first scrape showing a collection; and every scrape, as Prometheus' land at any
    // moment of the cycle.
    let mut fresh_gzip = Vec::new();
    let mut every_gzip = Vec::new();
    let watch_until = Instant::now() + WATCH;
    while Instant::now() < watch_until {
        let (took, _, body) = scrape(true)?;
        every_gzip.push(took);
        let success = last_success(&body);
        if success != seen {
            seen = success;
            fresh_gzip.push(took);
            if let Some((_, d)) = series(
                &body,
                "surge_source_collect_duration_seconds{source=\"kafka\"",
            )
            .first()
            {
                durations.push(*d);
            }
            snapshots.push(requests(&body));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let rss_gzip = status_kib(pid, "VmRSS:")? / 1024.0;
    let hwm_gzip = status_kib(pid, "VmHWM:")? / 1024.0;

    let (_, gzip_bytes, body) = scrape(true)?;
    let up = body.contains("surge_source_up{source=\"kafka\",target=\"local\"} 1");
    let group_partitions = series(&body, "surge_kafka_group_lag{").len();
    let total_series = body.lines().filter(|l| !l.starts_with('#')).count();
    let mut cached_gzip = Vec::with_capacity(SCRAPES);
    for _ in 0..SCRAPES {
        cached_gzip.push(scrape(true)?.0);
    }

    // Then a scraper that does not take gzip too: the same, uncompressed.
    let mut fresh_identity = Vec::new();
    let mut cached_identity = Vec::with_capacity(SCRAPES);
    let mut identity_bytes = 0;
    let started = Instant::now();
    while fresh_identity.len() < IDENTITY_CYCLES {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(60),
            "no new cycle in 60 s"
        );
        let (took, bytes, body) = scrape(false)?;
        let success = last_success(&body);
        if success != seen {
            seen = success;
            fresh_identity.push(took);
        }
        identity_bytes = bytes;
        std::thread::sleep(Duration::from_millis(250));
    }
    for _ in 0..SCRAPES {
        cached_identity.push(scrape(false)?.0);
    }
    let rss = status_kib(pid, "VmRSS:")? / 1024.0;
    let hwm = status_kib(pid, "VmHWM:")? / 1024.0;

    let extra = std::env::var("SURGE_KAFKA_BENCH_CONFIG").unwrap_or_default();
    println!("\n### {build}, {groups} groups {extra}\n");
    println!("| quantity | value |\n|---|---|");
    println!(
        "| topics × partitions | {TOPICS} × {PARTITIONS} = {} |",
        TOPICS * PARTITIONS as usize
    );
    println!("| groups / group-partition lag series | {groups} / {group_partitions} |");
    println!(
        "| series on /metrics | {total_series} (body {} KiB) |",
        body.len() / 1024
    );
    println!("| source up at the end | {up} |");
    let cycles: Vec<String> = durations.iter().map(|d| format!("{d:.2}")).collect();
    println!(
        "| collection cycle, s (each cycle seen after the first) | {} |",
        cycles.join(", ")
    );
    if snapshots.len() >= 3 {
        // Deltas from the second cycle seen, so connections and the first discovery are out.
        let (first, last) = (&snapshots[1], &snapshots[snapshots.len() - 1]);
        let cycles = (snapshots.len() - 2) as f64;
        let mut per_api = Vec::new();
        let mut total = 0.0;
        for (api, end) in last {
            let delta = end - first.get(api).copied().unwrap_or(0.0);
            if delta > 0.0 {
                per_api.push(format!("{api} {:.1}", delta / cycles));
                total += delta;
            }
        }
        println!(
            "| Kafka requests per cycle (mean over {cycles} cycles, discovery included) | {:.1}: {} |",
            total / cycles,
            per_api.join(", ")
        );
        let each: Vec<String> = snapshots
            .windows(2)
            .skip(1)
            .map(|w| {
                let total: f64 = w[1]
                    .iter()
                    .map(|(api, v)| v - w[0].get(api).copied().unwrap_or(0.0))
                    .sum();
                format!("{total:.0}")
            })
            .collect();
        println!("| Kafka requests in each cycle | {} |", each.join(", "));
    }
    println!(
        "| body on the wire, gzip / as it is | {} KiB / {} KiB |",
        gzip_bytes / 1024,
        identity_bytes / 1024
    );
    println!(
        "| /metrics median, gzip: first scrape showing a collection / cached | {} / {} |",
        median_ms(fresh_gzip),
        median_ms(cached_gzip)
    );
    println!(
        "| /metrics, gzip, every scrape every 250 ms over {} s: p50 / p99 / max | {} |",
        WATCH.as_secs(),
        spread_ms(every_gzip)
    );
    println!(
        "| /metrics median, as it is: first scrape showing a collection / cached | {} / {} |",
        median_ms(fresh_identity),
        median_ms(cached_identity)
    );
    let mut encodings: Vec<f64> = std::fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("exposition encoded"))
        .filter_map(|l| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix("elapsed_ms="))?
                .parse()
                .ok()
        })
        .collect();
    encodings.sort_by(f64::total_cmp);
    println!(
        "| encoding after a collection, off the request path: median / max | {} |",
        match (encodings.get(encodings.len() / 2), encodings.last()) {
            (Some(median), Some(max)) => {
                format!("{median:.1} / {max:.1} ms (n={})", encodings.len())
            }
            _ => "not logged (a build without it)".into(),
        }
    );
    println!("| RSS end / peak, scraped with gzip only | {rss_gzip:.1} MiB / {hwm_gzip:.1} MiB |");
    println!("| RSS end / peak, after scrapes as it is too | {rss:.1} MiB / {hwm:.1} MiB |");
    drop(exporter);
    Ok(())
}

/// `build` against `brokers` brokers over `broker`: the cycle, and the requests per steady
/// cycle as the brokers' side counts them.
fn run_brokers(
    build: &str,
    bin: &Path,
    broker: &KafkaBroker,
    brokers: usize,
    delay: Duration,
) -> anyhow::Result<()> {
    let cluster = BrokerCluster::start(format!("127.0.0.1:{}", broker.port()).parse()?, brokers)?;
    cluster.set_delay(delay);
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("surge.toml");
    std::fs::write(
        &config,
        format!(
            "[kafka]\ninterval = \"5s\"\ntimeout = \"5s\"\ndiscovery_interval = \"60s\"\n\
             [[kafka.clusters]]\nname = \"local\"\nbootstrap_servers = \"{}\"\n",
            cluster.bootstrap()
        ),
    )?;
    let addr = format!("127.0.0.1:{}", free_port()?);
    let mut cmd = Command::new(bin);
    cmd.arg("--config").arg(&config).arg("--listen").arg(&addr);
    let exporter = ServerProcess::spawn("surge-exporter", cmd, &dir.path().join("surge.log"))?;
    let mut buffer = Vec::new();
    let started = Instant::now();
    let mut seen = 0.0;
    let (mut durations, mut wire) = (Vec::new(), Vec::new());
    // Cycles after the first two (connections, discovery, coordinators found).
    while durations.len() < 7 {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(120),
            "no cycles in 120 s\n{}",
            exporter.log_tail(3000)
        );
        let body = timed_scrape(&addr, true, &mut buffer)
            .map(|r| r.2)
            .unwrap_or_default();
        let success = series(
            &body,
            "surge_source_last_success_timestamp_seconds{source=\"kafka\"",
        )
        .first()
        .map_or(0.0, |(_, v)| *v);
        if success != seen && success > 0.0 {
            seen = success;
            if let Some((_, d)) = series(
                &body,
                "surge_source_collect_duration_seconds{source=\"kafka\"",
            )
            .first()
            {
                durations.push(*d);
            }
            wire.push(cluster.requests().values().sum::<u64>());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let cycles: Vec<String> = durations
        .iter()
        .skip(2)
        .map(|d| format!("{d:.2}"))
        .collect();
    let per_cycle: Vec<String> = wire
        .windows(2)
        .skip(2)
        .map(|w| (w[1] - w[0]).to_string())
        .collect();
    println!(
        "| {build}, {brokers} broker(s), answers held {} ms | {} | {} |",
        delay.as_millis(),
        cycles.join(", "),
        per_cycle.join(", ")
    );
    drop(exporter);
    Ok(())
}

fn commit_groups(
    broker: &KafkaBroker,
    topics: &[String],
    range: std::ops::Range<usize>,
) -> anyhow::Result<()> {
    for g in range {
        let topic = &topics[g % TOPICS];
        let offsets: Vec<(i32, i64)> = (0..PARTITIONS)
            .map(|p| (p, (g % RECORDS_PER_PARTITION) as i64))
            .collect();
        broker.commit(&format!("group-{g:04}"), topic, &offsets)?;
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let setup = Instant::now();
    let broker = KafkaBroker::start()?;
    let topics: Vec<String> = (0..TOPICS).map(|i| format!("orders-{i:03}")).collect();
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    for chunk in names.chunks(20) {
        broker.create_topics(chunk, PARTITIONS)?;
    }
    let producer = broker.producer()?;
    for topic in &topics {
        for p in 0..PARTITIONS {
            producer.send(topic, p, RECORDS_PER_PARTITION)?;
        }
    }
    producer.flush()?;
    eprintln!("topics: {:.1} s", setup.elapsed().as_secs_f64());

    let mut builds: Vec<(String, PathBuf)> = vec![(
        "surge-exporter (this build)".into(),
        PathBuf::from(env!("CARGO_BIN_EXE_surge-exporter")),
    )];
    if let Ok(baseline) = std::env::var("SURGE_EXPORTER_BASELINE") {
        builds.push((format!("baseline {baseline}"), PathBuf::from(baseline)));
    }
    let scenarios: Vec<usize> = match std::env::var("SURGE_KAFKA_BENCH_GROUPS") {
        Ok(list) => list
            .split(',')
            .map(|g| g.trim().parse())
            .collect::<Result<_, _>>()?,
        Err(_) => SCENARIOS.to_vec(),
    };
    let mut committed = 0;
    for groups in scenarios {
        let t = Instant::now();
        commit_groups(&broker, &topics, committed..groups)?;
        committed = groups;
        eprintln!(
            "{groups} groups committed: {:.1} s",
            t.elapsed().as_secs_f64()
        );
        for (build, bin) in &builds {
            if let Err(e) = run(build, bin, &broker, groups) {
                println!("\n### {build}, {groups} groups\n\nfailed: {e:#}");
            }
        }
    }
    if std::env::var("SURGE_KAFKA_BENCH_BROKERS").as_deref() != Ok("0") {
        println!(
            "\n### One and three brokers, {committed} groups\n\n\
             | build, brokers | collection cycle, s (steady cycles) | Kafka requests in each cycle, on the wire |\n|---|---|---|"
        );
        // On loopback every broker is the same tansu on the same cores; holding each answer
        // 50 ms stands for brokers that are machines of their own across a network.
        for delay in [Duration::ZERO, Duration::from_millis(50)] {
            for (build, bin) in &builds {
                for brokers in [1, 3] {
                    if let Err(e) = run_brokers(build, bin, &broker, brokers, delay) {
                        println!("| {build}, {brokers} broker(s) | failed: {e:#} | |");
                    }
                }
            }
        }
    }
    Ok(())
}
