//! `surge-stack up | down | status`: the bundled shop on this machine; `surge-stack manifests`
//! writes the Kubernetes objects generated from `alerts/`.
//!
//! `up` starts a supervisor in the background (it owns every server; if it dies they die
//! with it) and returns once the stack is ready; `down` stops it and waits until nothing is
//! left running; `status` shows what runs where. State lives under `--dir`.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use serde::{Deserialize, Serialize};
use surge_servers::sys::{self, Signal};
use surge_stack::{Stack, StackOptions};

#[derive(Parser)]
#[command(
    name = "surge-stack",
    version,
    about = "The bundled scaled shop, on this machine."
)]
struct Cli {
    /// Directory holding all of the stack's state.
    #[arg(long, global = true, default_value = ".surge/stack")]
    dir: PathBuf,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Start everything and return when ready (a supervisor keeps running in the background).
    Up {
        /// Stay in the foreground (Ctrl-C stops the stack).
        #[arg(long)]
        foreground: bool,
        /// Keep replicas at the HPA minimum (no local autoscaler).
        #[arg(long)]
        no_autoscale: bool,
        /// Local HPA sync period.
        #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
        sync_period: Duration,
        /// Load balancer port (default: a free one).
        #[arg(long)]
        port: Option<u16>,
        /// surge-exporter serves TLS with basic auth; Prometheus scrapes it so (the CA and the
        /// password are under DIR/secrets).
        #[arg(long)]
        exporter_tls: bool,
    },
    /// Stop the stack; nothing is left running.
    Down,
    /// What runs, where, and whether it answers (exit 3 when the stack is not running).
    Status,
    /// Write the Kubernetes objects generated from alerts/ (PrometheusRule,
    /// AlertmanagerConfig); with --check, only say whether the committed ones are current.
    Manifests {
        /// The repository root.
        #[arg(long, default_value = ".")]
        repo: PathBuf,
        #[arg(long)]
        check: bool,
    },
    /// The supervisor (used by `up`).
    #[command(hide = true)]
    Run {
        #[arg(long)]
        no_autoscale: bool,
        #[arg(long, value_parser = humantime::parse_duration)]
        sync_period: Duration,
        #[arg(long)]
        port: Option<u16>,
        #[arg(long)]
        exporter_tls: bool,
    },
}

/// Written by the supervisor once the stack is ready.
#[derive(Serialize, Deserialize)]
struct State {
    pid: u32,
    /// The supervisor's start time (`sys::start_time`): the pid alone may be reused.
    started: u64,
    api: String,
    prometheus: Option<String>,
    alertmanager: Option<String>,
    exporter: Option<String>,
    local_hpa: Option<String>,
    postgres: Vec<(String, u16)>,
    kafka: String,
    redis: String,
}

fn state_path(dir: &Path) -> PathBuf {
    dir.join("state.json")
}

fn read_state(dir: &Path) -> Option<State> {
    serde_json::from_str(&std::fs::read_to_string(state_path(dir)).ok()?).ok()
}

/// What the state file's supervisor is now.
#[derive(Debug, PartialEq, Eq)]
enum Supervisor {
    Running,
    Gone,
    /// The pid is another process's now (or the file was written by hand).
    Other,
}

/// Pids 0 and 1 are refused outright: `kill(0, …)` signals our own process group, and 1 is
/// init; neither is ever the supervisor.
fn supervisor(state: &State) -> anyhow::Result<Supervisor> {
    if state.pid <= 1 {
        bail!(
            "the state file names pid {}, which is never the stack's supervisor; nothing signalled",
            state.pid
        );
    }
    Ok(match sys::start_time(state.pid) {
        None => Supervisor::Gone,
        Some(t) if t == state.started => Supervisor::Running,
        Some(_) => Supervisor::Other,
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SURGE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
    let result = match cli.command {
        Cmd::Up {
            foreground,
            no_autoscale,
            sync_period,
            port,
            exporter_tls,
        } => up(
            &cli.dir,
            foreground,
            no_autoscale,
            sync_period,
            port,
            exporter_tls,
        ),
        Cmd::Down => down(&cli.dir),
        Cmd::Status => match status(&cli.dir) {
            // As LSB init scripts say "not running", so scripts can tell it from an error.
            Ok(false) => return ExitCode::from(3),
            other => other.map(drop),
        },
        Cmd::Run {
            no_autoscale,
            sync_period,
            port,
            exporter_tls,
        } => run(&cli.dir, no_autoscale, sync_period, port, exporter_tls),
        Cmd::Manifests { repo, check } => manifests(&repo, check),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("surge-stack: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn manifests(repo: &Path, check: bool) -> anyhow::Result<()> {
    let mut stale = Vec::new();
    for (path, content) in surge_stack::k8s::generated(repo)? {
        let current = std::fs::read_to_string(&path).unwrap_or_default();
        if current == content {
            continue;
        }
        if check {
            stale.push(path.display().to_string());
        } else {
            std::fs::write(&path, content)
                .with_context(|| format!("writing {}", path.display()))?;
            println!("wrote {}", path.display());
        }
    }
    if !stale.is_empty() {
        bail!("stale: {} (run surge-stack manifests)", stale.join(", "));
    }
    Ok(())
}

fn up(
    dir: &Path,
    foreground: bool,
    no_autoscale: bool,
    sync_period: Duration,
    port: Option<u16>,
    exporter_tls: bool,
) -> anyhow::Result<()> {
    if let Some(state) = read_state(dir)
        && supervisor(&state)? == Supervisor::Running
    {
        bail!(
            "a stack is already running from {} (pid {}); run `surge-stack down` first",
            dir.display(),
            state.pid
        );
    }
    // A fresh start every time: old data would only confuse the demo.
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("clearing {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir)?;
    if foreground {
        return run(dir, no_autoscale, sync_period, port, exporter_tls);
    }
    let log = dir.join("stack.log");
    let out = std::fs::File::create(&log)?;
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.arg("--dir")
        .arg(dir)
        .arg("run")
        .arg("--sync-period")
        .arg(humantime::format_duration(sync_period).to_string())
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out);
    if no_autoscale {
        cmd.arg("--no-autoscale");
    }
    if exporter_tls {
        cmd.arg("--exporter-tls");
    }
    if let Some(p) = port {
        cmd.arg("--port").arg(p.to_string());
    }
    sys::detach(&mut cmd);
    let mut child = cmd.spawn().context("starting the supervisor")?;
    let started = Instant::now();
    let mut shown = 0;
    loop {
        // Progress: echo the supervisor's step lines as they come.
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        for line in text.lines().skip(shown) {
            if let Some((_, step)) = line.split_once("step: ") {
                eprintln!("  [{:>5.1}s] {step}", started.elapsed().as_secs_f64());
            }
        }
        shown = text.lines().count();
        if let Some(state) = read_state(dir) {
            print_state(&state);
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            let tail: Vec<&str> = text.lines().rev().take(30).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            bail!(
                "the stack failed to start ({status}); log {}:\n{}",
                log.display(),
                tail.join("\n")
            );
        }
        if started.elapsed() > Duration::from_secs(300) {
            bail!(
                "the stack did not get ready in 5 minutes; see {}",
                log.display()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn run(
    dir: &Path,
    no_autoscale: bool,
    sync_period: Duration,
    port: Option<u16>,
    exporter_tls: bool,
) -> anyhow::Result<()> {
    let mut options = StackOptions::for_checkout(dir)?;
    options.autoscale = (!no_autoscale).then_some(sync_period);
    options.lb_port = port;
    options.exporter_tls = exporter_tls;
    options.auth_rate = Some(surge_stack::replicas::AUTH_RATE_PER_CLIENT);
    let stack = Stack::start(options)?;
    let url = |port: Option<u16>| port.map(|p| format!("http://127.0.0.1:{p}"));
    let state = State {
        pid: std::process::id(),
        started: sys::start_time(std::process::id())
            .context("reading this process's start time from /proc")?,
        api: format!("http://{}", stack.api()),
        prometheus: stack.prometheus.as_ref().map(|p| p.url()),
        alertmanager: stack.alertmanager.as_ref().map(|a| a.url()),
        exporter: match (&stack.exporter_access, stack.exporter_port) {
            (Some(_), Some(p)) => Some(format!("https://127.0.0.1:{p}")),
            _ => url(stack.exporter_port),
        },
        local_hpa: url(stack.autoscaler_port),
        postgres: stack
            .postgres
            .node_names()
            .into_iter()
            .filter_map(|n| stack.postgres.port(&n).ok().map(|p| (n, p)))
            .collect(),
        kafka: stack.kafka.bootstrap(),
        redis: stack.redis.url(),
    };
    let tmp = dir.join("state.json.tmp");
    std::fs::write(&tmp, serde_json::to_string_pretty(&state)?)?;
    std::fs::rename(&tmp, state_path(dir))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            _ = term.recv() => {},
        }
        anyhow::Ok(())
    })?;
    tracing::info!("step: stopping");
    let _ = std::fs::remove_file(state_path(dir));
    drop(stack);
    tracing::info!("step: stopped");
    Ok(())
}

fn down(dir: &Path) -> anyhow::Result<()> {
    let Some(state) = read_state(dir) else {
        println!("no stack running from {}", dir.display());
        return Ok(());
    };
    match supervisor(&state)? {
        Supervisor::Running => {}
        Supervisor::Gone => {
            let _ = std::fs::remove_file(state_path(dir));
            println!("no stack running (stale state removed)");
            return Ok(());
        }
        Supervisor::Other => {
            let _ = std::fs::remove_file(state_path(dir));
            println!(
                "no stack running (pid {} is another process now; nothing signalled, stale state removed)",
                state.pid
            );
            return Ok(());
        }
    }
    sys::send(state.pid, Signal::Term)
        .with_context(|| format!("stopping supervisor {}", state.pid))?;
    let started = Instant::now();
    while supervisor(&state)? == Supervisor::Running {
        if started.elapsed() > Duration::from_secs(120) {
            bail!("supervisor {} did not stop in 2 minutes", state.pid);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    println!("stopped (in {:.1} s)", started.elapsed().as_secs_f64());
    Ok(())
}

/// Print what runs; `false` when the stack is not running.
fn status(dir: &Path) -> anyhow::Result<bool> {
    let Some(state) = read_state(dir) else {
        println!("not running ({})", dir.display());
        return Ok(false);
    };
    if supervisor(&state)? != Supervisor::Running {
        println!(
            "not running (supervisor {} is gone; run `surge-stack up`)",
            state.pid
        );
        return Ok(false);
    }
    print_state(&state);
    let check = |name: &str, url: &Option<String>, path: &str| {
        if let Some(url) = url {
            let ok = match url.strip_prefix("https://") {
                // TLS with basic auth: as the Prometheus that scrapes it sees it.
                Some(_) => state.prometheus.as_deref().is_some_and(|p| {
                    surge_servers::http::get(
                        p.trim_start_matches("http://"),
                        "/api/v1/query?query=up%7Bjob%3D%22surge-exporter%22%7D%3D%3D1",
                        None,
                    )
                    .is_ok_and(|(s, _, body)| s == 200 && body.contains("\"value\""))
                }),
                None => {
                    let addr = url.trim_start_matches("http://");
                    surge_servers::http::get(addr, path, None).is_ok_and(|(s, _, _)| s == 200)
                }
            };
            println!(
                "  {name:<14} {}",
                if ok { "answers" } else { "NOT ANSWERING" }
            );
        }
    };
    println!("health:");
    check("load balancer", &Some(state.api.clone()), "/healthz");
    check("surge-exporter", &state.exporter, "/healthz");
    check("prometheus", &state.prometheus, "/-/ready");
    check("alertmanager", &state.alertmanager, "/-/ready");
    println!("replicas:");
    let mut counts = std::collections::BTreeMap::new();
    for entry in std::fs::read_dir(dir.join("shop/pids"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some((service, _)) = name.rsplit_once('-') {
            *counts.entry(service.to_string()).or_insert(0) += 1;
        }
    }
    for (service, n) in counts {
        println!("  {service:<14} {n}");
    }
    Ok(true)
}

fn print_state(state: &State) {
    println!("surge stack running (supervisor pid {})", state.pid);
    println!("  shop API (nginx) {}", state.api);
    for (name, url) in [
        ("prometheus", &state.prometheus),
        ("alertmanager", &state.alertmanager),
        ("surge-exporter", &state.exporter),
        ("local HPA", &state.local_hpa),
    ] {
        if let Some(url) = url {
            println!("  {name:<16} {url}");
        }
    }
    for (node, port) in &state.postgres {
        println!("  postgres {node:<8} 127.0.0.1:{port}");
    }
    println!("  kafka            {}", state.kafka);
    println!("  redis            {}", state.redis);
}
