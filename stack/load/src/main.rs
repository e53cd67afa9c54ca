//! `surge-load`: drive the shop at a fixed arrival rate (an open model: requests start on
//! schedule whether or not earlier ones finished, and latency is measured from the scheduled
//! start, so an overloaded shop cannot hide its queueing — no coordinated omission).
//!
//! Scenario mix per request: browse the catalog, view a product, log in, add to the cart
//! (kept in Redis, so any replica serves it), check out (add one more item, then turn the
//! cart into an order), check an order. Profiles: `baseline` (the base rate) and `flash-sale` (base rate, then
//! `--spike`× for `--spike-for`, then base again). Prints throughput, p50/p95/p99 latency
//! and error rate per phase and per operation; `--json FILE` writes the same.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;
use rand::Rng;
use serde::Serialize;
use serde_json::{Value, json};

#[derive(Copy, Clone, Debug, ValueEnum, PartialEq)]
enum Profile {
    Baseline,
    FlashSale,
}

#[derive(Parser, Debug)]
#[command(
    name = "surge-load",
    version,
    about = "Open-model load for the bundled shop."
)]
struct Cli {
    /// Shop API base URL (the load balancer).
    #[arg(long)]
    target: String,
    #[arg(long, value_enum, default_value = "baseline")]
    profile: Profile,
    /// Base arrival rate, requests per second.
    #[arg(long, default_value_t = 10.0)]
    rate: f64,
    /// Length of the baseline phase(s).
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Flash-sale multiplier.
    #[arg(long, default_value_t = 15.0)]
    spike: f64,
    /// Length of the spike.
    #[arg(long, default_value = "120s", value_parser = humantime::parse_duration)]
    spike_for: Duration,
    /// Shoppers (registered before the run, not timed).
    #[arg(long, default_value_t = 50)]
    users: usize,
    /// Most requests in flight; arrivals beyond it count as errors (the shop is saturated).
    #[arg(long, default_value_t = 4000)]
    max_in_flight: usize,
    /// Write results as JSON to this file.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
enum Op {
    Browse,
    Product,
    Login,
    AddToCart,
    Checkout,
    CheckOrder,
}

/// The mix, in percent.
const MIX: [(Op, u32); 6] = [
    (Op::Browse, 50),
    (Op::Product, 10),
    (Op::Login, 5),
    (Op::AddToCart, 10),
    (Op::Checkout, 15),
    (Op::CheckOrder, 10),
];

struct User {
    email: String,
    token: String,
    /// Held while the shopper works on their cart: one person does not add and check out at
    /// the same moment (which would check out a cart another request just emptied).
    cart: tokio::sync::Mutex<()>,
}

/// A shopper free to use their cart, starting the search at `first`; waits for `first` when
/// every shopper is busy.
async fn free_shopper(users: &[User], first: usize) -> (usize, tokio::sync::MutexGuard<'_, ()>) {
    for i in (0..users.len()).map(|k| (first + k) % users.len()) {
        if let Ok(guard) = users[i].cart.try_lock() {
            return (i, guard);
        }
    }
    (first, users[first].cart.lock().await)
}

#[derive(Default)]
struct Recorder {
    latency: BTreeMap<(String, Op), Histogram<u64>>,
    errors: BTreeMap<(String, Op), u64>,
    /// (phase, why) → count: what each error was, so a run's errors can be explained.
    reasons: BTreeMap<(String, String), u64>,
    ok: BTreeMap<(String, Op), u64>,
    /// (shopper, order id) of every accepted order.
    orders_accepted: Vec<(usize, String)>,
}

impl Recorder {
    fn error(&mut self, phase: &str, op: Op, why: String) {
        *self.errors.entry((phase.to_string(), op)).or_default() += 1;
        // One line, bounded: reqwest errors carry URLs and causes.
        let why: String = why.split_whitespace().collect::<Vec<_>>().join(" ");
        let why: String = why.chars().take(160).collect();
        *self.reasons.entry((phase.to_string(), why)).or_default() += 1;
    }
}

#[derive(Serialize)]
struct Stats {
    requests: u64,
    errors: u64,
    error_rate: f64,
    throughput_rps: f64,
    mean_ms: f64,
    p50_ms: f64,
    p95_ms: f64,
    p99_ms: f64,
}

fn stats(hist: &Histogram<u64>, errors: u64, seconds: f64) -> Stats {
    let requests = hist.len() + errors;
    let ms = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    Stats {
        requests,
        errors,
        error_rate: if requests == 0 {
            0.0
        } else {
            errors as f64 / requests as f64
        },
        throughput_rps: if seconds > 0.0 {
            hist.len() as f64 / seconds
        } else {
            0.0
        },
        mean_ms: hist.mean() / 1000.0,
        p50_ms: ms(0.5),
        p95_ms: ms(0.95),
        p99_ms: ms(0.99),
    }
}

fn histogram() -> anyhow::Result<Histogram<u64>> {
    // Microseconds, 1 µs .. 60 s, 3 significant digits.
    Ok(Histogram::new_with_bounds(1, 60_000_000, 3)?)
}

async fn call(
    client: &reqwest::Client,
    base: &str,
    op: Op,
    user: &User,
    orders: &[String],
) -> anyhow::Result<Option<String>> {
    // Draw everything up front: the thread-local RNG must not live across an await.
    let (product, offset, quantity, pick) = {
        let mut rng = rand::rng();
        (
            rng.random_range(1..=60i64),
            rng.random_range(0..40),
            rng.random_range(1..=3),
            rng.random_range(0..usize::MAX),
        )
    };
    let response = match op {
        Op::Browse => {
            client
                .get(format!("{base}/products?limit=20&offset={offset}"))
                .send()
                .await?
        }
        Op::Product => {
            client
                .get(format!("{base}/products/{product}"))
                .send()
                .await?
        }
        Op::Login => {
            client
                .post(format!("{base}/auth/login"))
                .json(&json!({ "email": user.email, "password": "flash-sale-shopper" }))
                .send()
                .await?
        }
        Op::AddToCart => add_to_cart(client, base, user, product, quantity).await?,
        Op::Checkout => {
            // A checkout always has something to buy: one more item, then the whole cart.
            let added = add_to_cart(client, base, user, product, quantity).await?;
            if !added.status().is_success() {
                bail!("{op:?}: adding to the cart: HTTP {}", added.status());
            }
            client
                .post(format!("{base}/cart/checkout"))
                .bearer_auth(&user.token)
                .send()
                .await?
        }
        Op::CheckOrder => {
            let Some(id) = (!orders.is_empty()).then(|| &orders[pick % orders.len()]) else {
                return call_browse(client, base).await;
            };
            client
                .get(format!("{base}/orders/{id}"))
                .bearer_auth(&user.token)
                .send()
                .await?
        }
    };
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        bail!("{op:?}: HTTP {status}");
    }
    Ok(match op {
        Op::Checkout => body["order_id"].as_str().map(str::to_string),
        _ => None,
    })
}

async fn add_to_cart(
    client: &reqwest::Client,
    base: &str,
    user: &User,
    product: i64,
    quantity: i32,
) -> anyhow::Result<reqwest::Response> {
    Ok(client
        .post(format!("{base}/cart/items"))
        .bearer_auth(&user.token)
        .json(&json!({ "product_id": product, "quantity": quantity }))
        .send()
        .await?)
}

async fn call_browse(client: &reqwest::Client, base: &str) -> anyhow::Result<Option<String>> {
    let response = client
        .get(format!("{base}/products?limit=20"))
        .send()
        .await?;
    if !response.status().is_success() {
        bail!("browse: HTTP {}", response.status());
    }
    Ok(None)
}

fn pick_op() -> Op {
    let roll = rand::rng().random_range(0..100);
    let mut acc = 0;
    for (op, weight) in MIX {
        acc += weight;
        if roll < acc {
            return op;
        }
    }
    Op::Browse
}

async fn register_users(
    client: &reqwest::Client,
    base: &str,
    n: usize,
) -> anyhow::Result<Vec<User>> {
    let run = rand::rng().random_range(0..u32::MAX);
    let mut users = Vec::with_capacity(n);
    for i in 0..n {
        let email = format!("shopper-{run}-{i}@load.test");
        let body = json!({ "email": email, "password": "flash-sale-shopper" });
        let r = client
            .post(format!("{base}/auth/register"))
            .json(&body)
            .send()
            .await?;
        if !r.status().is_success() {
            bail!("registering {email}: HTTP {}", r.status());
        }
        let r: Value = client
            .post(format!("{base}/auth/login"))
            .json(&body)
            .send()
            .await?
            .json()
            .await?;
        let token = r["token"]
            .as_str()
            .context("login returned no token")?
            .to_string();
        users.push(User {
            email,
            token,
            cart: tokio::sync::Mutex::new(()),
        });
    }
    Ok(users)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if !(cli.rate > 0.0 && cli.rate.is_finite() && cli.spike >= 1.0 && cli.spike.is_finite()) {
        bail!("--rate must be > 0 and --spike >= 1");
    }
    let base = cli.target.trim_end_matches('/').to_string();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(256)
        .build()?;
    eprintln!("registering {} shoppers ...", cli.users);
    let users = Arc::new(register_users(&client, &base, cli.users).await?);
    let phases: Vec<(String, f64, Duration)> = match cli.profile {
        Profile::Baseline => vec![("baseline".into(), cli.rate, cli.duration)],
        Profile::FlashSale => vec![
            ("before".into(), cli.rate, cli.duration),
            ("spike".into(), cli.rate * cli.spike, cli.spike_for),
            ("after".into(), cli.rate, cli.duration),
        ],
    };
    let recorder = Arc::new(Mutex::new(Recorder::default()));
    let in_flight = Arc::new(tokio::sync::Semaphore::new(cli.max_in_flight));
    let mut phase_seconds = BTreeMap::new();
    let mut tasks = tokio::task::JoinSet::new();
    for (name, rate, length) in &phases {
        eprintln!(
            "phase {name}: {rate:.1} req/s for {}",
            humantime::format_duration(*length)
        );
        let started = Instant::now();
        let interval = Duration::from_secs_f64(1.0 / rate);
        let mut n: u32 = 0;
        loop {
            // Scheduled start of this arrival; latency counts from here.
            let due = started + interval * n;
            if due >= started + *length {
                break;
            }
            tokio::time::sleep_until(due.into()).await;
            n += 1;
            let op = pick_op();
            let user_index = rand::rng().random_range(0..users.len());
            let phase = name.clone();
            let Ok(permit) = Arc::clone(&in_flight).try_acquire_owned() else {
                let mut r = recorder.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
                r.error(
                    &phase,
                    op,
                    "not sent: the in-flight limit was reached".into(),
                );
                continue;
            };
            let (client, base, users, recorder) = (
                client.clone(),
                base.clone(),
                Arc::clone(&users),
                Arc::clone(&recorder),
            );
            tasks.spawn(async move {
                let (user_index, _cart) = if matches!(op, Op::AddToCart | Op::Checkout) {
                    let (i, guard) = free_shopper(&users, user_index).await;
                    (i, Some(guard))
                } else {
                    (user_index, None)
                };
                // A shopper checks one of their own orders (others' answer 404 by design).
                let orders: Vec<String> = recorder
                    .lock()
                    .map(|r| {
                        r.orders_accepted
                            .iter()
                            .rev()
                            .filter(|(u, _)| *u == user_index)
                            .take(20)
                            .map(|(_, id)| id.clone())
                            .collect()
                    })
                    .unwrap_or_default();
                let result = call(&client, &base, op, &users[user_index], &orders).await;
                let micros = due.elapsed().as_micros().max(1) as u64;
                drop(permit);
                if let Ok(mut r) = recorder.lock() {
                    match result {
                        Ok(order) => {
                            if let Some(id) = order {
                                r.orders_accepted.push((user_index, id));
                            }
                            *r.ok.entry((phase.clone(), op)).or_default() += 1;
                            if let Ok(h) = histogram() {
                                let hist = r.latency.entry((phase, op)).or_insert(h);
                                let _ = hist.record(micros.min(60_000_000));
                            }
                        }
                        Err(e) => r.error(&phase, op, format!("{op:?}: {e:#}")),
                    }
                }
            });
            while tasks.try_join_next().is_some() {}
        }
        phase_seconds.insert(name.clone(), started.elapsed().as_secs_f64());
    }
    while tasks.join_next().await.is_some() {}

    let r = recorder.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
    let mut report = serde_json::Map::new();
    println!(
        "{:<8} {:<12} {:>9} {:>8} {:>9} {:>8} {:>8} {:>8} {:>8}",
        "phase",
        "operation",
        "requests",
        "errors",
        "req/s",
        "mean ms",
        "p50 ms",
        "p95 ms",
        "p99 ms"
    );
    for (phase, _, _) in &phases {
        let seconds = phase_seconds.get(phase).copied().unwrap_or(0.0);
        let mut all = histogram()?;
        let mut all_errors = 0;
        let mut per_op = serde_json::Map::new();
        for (op, _) in MIX {
            let key = (phase.clone(), op);
            let hist = r.latency.get(&key).cloned().unwrap_or(histogram()?);
            let errors = r.errors.get(&key).copied().unwrap_or(0);
            all.add(&hist)?;
            all_errors += errors;
            let s = stats(&hist, errors, seconds);
            println!(
                "{phase:<8} {:<12} {:>9} {:>8} {:>9.1} {:>8.1} {:>8.1} {:>8.1} {:>8.1}",
                format!("{op:?}"),
                s.requests,
                s.errors,
                s.throughput_rps,
                s.mean_ms,
                s.p50_ms,
                s.p95_ms,
                s.p99_ms
            );
            per_op.insert(format!("{op:?}"), serde_json::to_value(s)?);
        }
        let s = stats(&all, all_errors, seconds);
        println!(
            "{phase:<8} {:<12} {:>9} {:>8} {:>9.1} {:>8.1} {:>8.1} {:>8.1} {:>8.1}",
            "ALL", s.requests, s.errors, s.throughput_rps, s.mean_ms, s.p50_ms, s.p95_ms, s.p99_ms
        );
        let reasons: BTreeMap<&str, u64> = r
            .reasons
            .iter()
            .filter(|((p, _), _)| p == phase)
            .map(|((_, why), n)| (why.as_str(), *n))
            .collect();
        report.insert(
            phase.clone(),
            json!({ "all": s, "operations": per_op, "seconds": seconds, "errors_by_reason": reasons }),
        );
    }
    if !r.reasons.is_empty() {
        println!("errors by reason:");
        for ((phase, why), n) in &r.reasons {
            println!("{phase:<8} {n:>6}  {why}");
        }
    }
    let accepted: Vec<&String> = r.orders_accepted.iter().map(|(_, id)| id).collect();
    report.insert("orders_accepted".into(), json!(accepted));
    if let Some(path) = &cli.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
