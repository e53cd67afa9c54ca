//! The whole local stack, built from surge-servers: PostgreSQL primary + 2 streaming
//! replicas, Redis, the Kafka-protocol broker, the shop's services as replica processes behind
//! nginx, and (optionally) surge-exporter, Prometheus, Alertmanager and the local HPA. All
//! state lives under one directory; dropping the `Stack` stops everything.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use surge_servers::{
    Alertmanager, KafkaBroker, Nginx, PgCluster, Prometheus, Redis, ServerProcess, Workdir,
    free_port,
};

use crate::autoscaler::{Autoscaler, Fleet};
use crate::hpa::{HpaSpec, load_all};
use crate::lock;
use crate::replicas::{ReplicaSet, SERVICES, nginx_config};
use surge_metrics::hpa::Resources;

/// What to start.
#[derive(Debug, Clone)]
pub struct StackOptions {
    /// Everything is kept under here (fresh: must not hold a running stack).
    pub dir: PathBuf,
    /// The repository root (for `stack/k8s`, `alerts/`).
    pub repo: PathBuf,
    pub shop_bin: PathBuf,
    pub exporter_bin: PathBuf,
    /// surge-exporter + Prometheus + Alertmanager.
    pub monitoring: bool,
    /// The local HPA, with this sync period (None: replicas stay at the HPA minimum).
    pub autoscale: Option<Duration>,
    /// Simulated payment provider.
    pub payment_latency_ms: u64,
    pub payment_failure_rate: f64,
    /// Port of the load balancer (None: a free one).
    pub lb_port: Option<u16>,
    /// Logins and registrations per second one client address may start (`surge-stack up`:
    /// [`crate::replicas::AUTH_RATE_PER_CLIENT`]). None in the tests' stacks: their load, from
    /// one loopback address, stands for thousands of shoppers.
    pub auth_rate: Option<u32>,
    /// HPA manifests (default: `hpa::HPA_MANIFESTS`).
    pub hpa_manifests: Vec<PathBuf>,
    /// The Deployments whose requests and limits the local replicas take (`shop.yaml`).
    pub shop_manifest: PathBuf,
    /// The prometheus-adapter ConfigMap whose rules turn an HPA's External metric into a
    /// Prometheus query.
    pub adapter_manifest: PathBuf,
    /// How fast monitoring notices things (drills shorten it).
    pub timing: MonitoringTiming,
    /// Alert rules text (None: `alerts/rules.yml` as it is).
    pub alert_rules: Option<String>,
    /// Alertmanager config text (None: `alerts/alertmanager.local.yml` if present, else a
    /// config that notifies no one).
    pub alertmanager_config: Option<String>,
    /// surge-exporter serves `/metrics` over TLS with basic auth (`--web.config.file`), and
    /// Prometheus scrapes it so; certificates and the password are made at start.
    pub exporter_tls: bool,
}

/// Scrape, evaluation and collection periods of the monitoring part of the stack.
#[derive(Debug, Clone)]
pub struct MonitoringTiming {
    /// Prometheus scrape and rule evaluation interval.
    pub scrape: Duration,
    /// surge-exporter's collection interval (PostgreSQL, Kafka, processes) and timeout.
    pub collect: Duration,
    pub timeout: Duration,
    /// Kafka: trend window, rate window, and how long without commits is a stall.
    pub lag_window: Duration,
    pub rate_window: Duration,
    pub stall_after: Duration,
}

impl Default for MonitoringTiming {
    fn default() -> Self {
        MonitoringTiming {
            scrape: Duration::from_secs(5),
            collect: Duration::from_secs(5),
            timeout: Duration::from_secs(4),
            lag_window: Duration::from_secs(300),
            rate_window: Duration::from_secs(30),
            stall_after: Duration::from_secs(30),
        }
    }
}

/// A duration as surge-exporter and Prometheus read it (`1500ms`).
fn millis(d: Duration) -> String {
    format!("{}ms", d.as_millis())
}

impl StackOptions {
    /// Defaults for this checkout: binaries next to the running executable (the same
    /// `target/` profile), repo two levels above `stack/src`.
    pub fn for_checkout(dir: &Path) -> anyhow::Result<StackOptions> {
        let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .map(Path::to_path_buf)
            .context("locating the repository")?;
        Ok(StackOptions {
            dir: dir.to_path_buf(),
            hpa_manifests: crate::hpa::HPA_MANIFESTS
                .iter()
                .map(|p| repo.join(p))
                .collect(),
            shop_manifest: repo.join("stack/k8s/base/shop.yaml"),
            adapter_manifest: repo.join("stack/k8s/scale-on-lag/adapter-rules.yaml"),
            shop_bin: sibling_binary("shop", "SURGE_SHOP_BIN")?,
            exporter_bin: sibling_binary("surge-exporter", "SURGE_EXPORTER_BIN")?,
            repo,
            monitoring: true,
            autoscale: Some(Duration::from_secs(15)),
            payment_latency_ms: 20,
            payment_failure_rate: 0.01,
            lb_port: None,
            auth_rate: None,
            timing: MonitoringTiming::default(),
            alert_rules: None,
            alertmanager_config: None,
            exporter_tls: false,
        })
    }
}

/// A binary of this workspace: `$ENV`, else next to the current executable (or one level up,
/// from `target/<profile>/deps` test binaries).
pub fn sibling_binary(name: &str, env: &str) -> anyhow::Result<PathBuf> {
    if let Ok(path) = std::env::var(env) {
        return Ok(PathBuf::from(path));
    }
    let exe = std::env::current_exe()?;
    for dir in exe.ancestors().skip(1).take(2) {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    bail!(
        "{name} not built next to {}; run `cargo build --workspace` (or set {env})",
        exe.display()
    )
}

pub struct Stack {
    pub options: StackOptions,
    stop: Arc<AtomicBool>,
    autoscaler: Option<std::thread::JoinHandle<()>>,
    metrics_server: Option<(tokio::runtime::Runtime, tokio::sync::oneshot::Sender<()>)>,
    pub autoscaler_port: Option<u16>,
    pub fleet: Arc<Fleet>,
    pub exporter: Option<ServerProcess>,
    pub exporter_port: Option<u16>,
    /// With `exporter_tls`: how to reach the exporter.
    pub exporter_access: Option<ExporterAccess>,
    pub prometheus: Option<Prometheus>,
    pub alertmanager: Option<Alertmanager>,
    pub kafka: KafkaBroker,
    pub redis: Redis,
    pub postgres: PgCluster,
    pub hpas: Vec<HpaSpec>,
    /// What each service's replicas request, from the Deployments.
    pub requests: BTreeMap<String, Resources>,
    /// Prometheus' `host:port` once it runs (the local HPA's External metrics read it).
    prometheus_addr: Arc<std::sync::OnceLock<String>>,
    /// Alertmanager's `host:port` once it runs (the local API proxies to it).
    alertmanager_addr: Arc<std::sync::OnceLock<String>>,
    /// What the local Kubernetes API changes (HPA bounds, restarts) and the local HPA obeys.
    pub cluster: Arc<crate::api::Cluster>,
    /// The local Kubernetes API's port; `kubeconfig` in the stack's folder points at it.
    pub api_port: u16,
    api_server: Option<(tokio::runtime::Runtime, tokio::sync::oneshot::Sender<()>)>,
    api_worker: Option<std::thread::JoinHandle<()>>,
}

impl Stack {
    pub fn start(mut options: StackOptions) -> anyhow::Result<Stack> {
        std::fs::create_dir_all(&options.dir)?;
        // Absolute: servers get these paths from their own working directories.
        options.dir = std::fs::canonicalize(&options.dir)?;
        let dir = options.dir.clone();
        for bin in [&options.shop_bin, &options.exporter_bin] {
            if !bin.is_file() {
                bail!(
                    "{} is missing; run `cargo build --workspace`",
                    bin.display()
                );
            }
        }
        let hpas = load_all(&options.hpa_manifests)?;
        let requests = crate::k8s::deployment_resources(&options.shop_manifest)?;
        if let Some(missing) = SERVICES.iter().find(|s| !requests.contains_key(s.name)) {
            bail!(
                "{}: no Deployment for {}",
                options.shop_manifest.display(),
                missing.name
            );
        }
        step("postgres: primary + 2 streaming replicas");
        let postgres = PgCluster::start_in(Workdir::kept(&dir.join("postgres"))?, 2)?;
        postgres.psql("primary", "CREATE DATABASE shop")?;
        // Acknowledged commits are on a standby too (as the manifests' CloudNativePG
        // `synchronous` does), so losing the primary loses no accepted order.
        postgres.synchronous()?;
        step("redis");
        let redis = Redis::start_in(Workdir::kept(&dir.join("redis"))?, free_port()?)?;
        step("kafka broker (tansu)");
        let kafka = KafkaBroker::start_in(Workdir::kept(&dir.join("kafka"))?, free_port()?)?;

        let secrets = dir.join("secrets");
        surge_servers::secret::dir(&secrets)?;
        let jwt_secret: String = {
            use rand::Rng;
            let mut rng = rand::rng();
            (0..48)
                .map(|_| char::from(b'a' + rng.random_range(0..26u8)))
                .collect()
        };
        surge_servers::secret::write(&secrets.join("jwt"), &jwt_secret)?;
        // The monitoring role's password is generated with the cluster; the exporter reads it
        // from this file.
        surge_servers::secret::write(&secrets.join("pg-monitor"), postgres.monitor_password())?;
        let db_url = |node: &str| -> anyhow::Result<String> {
            Ok(format!(
                "postgres://postgres@127.0.0.1:{}/shop",
                postgres.port(node)?
            ))
        };
        // Writes go to whichever node takes them (libpq's multi-host form; the shop follows a
        // failover), reads to the replicas.
        let writer_url = format!(
            "postgres://postgres@{}/shop?target_session_attrs=read-write",
            postgres
                .node_names()
                .iter()
                .map(|n| Ok(format!("127.0.0.1:{}", postgres.port(n)?)))
                .collect::<anyhow::Result<Vec<_>>>()?
                .join(",")
        );
        let env: Vec<(String, String)> = vec![
            ("SHOP_DATABASE_URL".into(), writer_url),
            (
                "SHOP_DATABASE_REPLICAS".into(),
                format!("{},{}", db_url("replica1")?, db_url("replica2")?),
            ),
            ("SHOP_REDIS_URL".into(), redis.url()),
            ("SHOP_KAFKA_BOOTSTRAP".into(), kafka.bootstrap()),
            (
                "SHOP_JWT_SECRET_FILE".into(),
                secrets.join("jwt").display().to_string(),
            ),
            (
                "SHOP_PAYMENT_LATENCY_MS".into(),
                options.payment_latency_ms.to_string(),
            ),
            (
                "SHOP_PAYMENT_FAILURE_RATE".into(),
                options.payment_failure_rate.to_string(),
            ),
            ("SHOP_DB_POOL_SIZE".into(), "4".into()),
        ];
        step("schema migrations and topics");
        let setup = Command::new(&options.shop_bin)
            .arg("setup")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .output()?;
        if !setup.status.success() {
            bail!(
                "shop setup failed: {}",
                String::from_utf8_lossy(&setup.stderr)
            );
        }

        step("shop services (HPA minimum replicas each)");
        let services_dir = dir.join("shop");
        let mut sets = BTreeMap::new();
        for service in SERVICES {
            let mut set = ReplicaSet::new(service, &options.shop_bin, env.clone(), &services_dir)?;
            let min = hpas
                .iter()
                .find(|h| h.workload == service.name)
                .map_or(1, |h| h.min);
            set.scale_to(usize::try_from(min).unwrap_or(1))?;
            sets.insert(service.name, set);
        }
        step("nginx load balancer");
        let lb_port = match options.lb_port {
            Some(p) => p,
            None => free_port()?,
        };
        let ordered: Vec<&ReplicaSet> = sets.values().collect();
        let nginx = Nginx::start_in(
            Workdir::kept(&dir.join("nginx"))?,
            &nginx_config(lb_port, &ordered, options.auth_rate),
            lb_port,
        )?;
        let prometheus_targets = options
            .monitoring
            .then(|| dir.join("prometheus-shop-targets.json"));
        let fleet = Arc::new(Fleet {
            sets: Mutex::new(sets),
            nginx,
            lb_port,
            auth_rate: options.auth_rate,
            prometheus_targets,
        });
        fleet.publish(&lock(&fleet.sets))?;

        let mut stack = Stack {
            options: options.clone(),
            stop: Arc::new(AtomicBool::new(false)),
            autoscaler: None,
            metrics_server: None,
            autoscaler_port: None,
            fleet,
            exporter: None,
            exporter_port: None,
            exporter_access: None,
            prometheus: None,
            alertmanager: None,
            kafka,
            redis,
            postgres,
            hpas,
            requests,
            prometheus_addr: Arc::default(),
            alertmanager_addr: Arc::default(),
            cluster: Arc::default(),
            api_port: 0,
            api_server: None,
            api_worker: None,
        };
        stack.start_api()?;
        if let Some(period) = options.autoscale {
            step("local HPA");
            stack.start_autoscaler(period)?;
        }
        if options.monitoring {
            step("surge-exporter, Prometheus, Alertmanager");
            stack.start_monitoring()?;
        }
        step("ready");
        Ok(stack)
    }

    /// The load balancer's base URL.
    pub fn api(&self) -> String {
        format!("127.0.0.1:{}", self.fleet.lb_port)
    }

    /// Serve the local Kubernetes API ([`crate::api`]) on loopback and write `kubeconfig`
    /// (context `surge-local`) beside the stack's other files.
    fn start_api(&mut self) -> anyhow::Result<()> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("local-api")
            .enable_all()
            .build()?;
        let listener = runtime.block_on(tokio::net::TcpListener::bind(("127.0.0.1", 0)))?;
        self.api_port = listener.local_addr()?.port();
        let (jobs, queue) = std::sync::mpsc::channel::<crate::api::Job>();
        // Lives as long as the stack (it ends when the API's sender is dropped at shutdown):
        // the replicas it starts die with the thread that started them.
        self.api_worker = Some(
            std::thread::Builder::new()
                .name("local-api-worker".into())
                .spawn(move || {
                    while let Ok(job) = queue.recv() {
                        job();
                    }
                })?,
        );
        let router = crate::api::router(crate::api::Api {
            jobs,
            cluster: Arc::clone(&self.cluster),
            fleet: Arc::clone(&self.fleet),
            hpas: self.hpas.clone(),
            prometheus: Arc::clone(&self.prometheus_addr),
            alertmanager: Arc::clone(&self.alertmanager_addr),
        });
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        runtime.spawn(async move {
            let served = axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    let _ = stop_rx.await;
                })
                .await;
            if let Err(error) = served {
                tracing::warn!(%error, "the local API stopped");
            }
        });
        std::fs::write(
            self.options.dir.join("kubeconfig"),
            crate::api::kubeconfig(self.api_port),
        )?;
        self.api_server = Some((runtime, stop_tx));
        Ok(())
    }

    fn start_autoscaler(&mut self, period: Duration) -> anyhow::Result<()> {
        let store = surge_metrics::store::Store::new();
        let port = free_port()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        let listener = runtime
            .block_on(surge_metrics::http::bind(([127, 0, 0, 1], port).into()))
            .map_err(anyhow::Error::msg)?;
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        runtime.spawn(surge_metrics::http::serve(
            listener,
            Arc::clone(&store),
            "surge-stack local HPA: the surge_hpa_* series of the local replicas.\nMetrics: /metrics\n",
            async {
                let _ = stop_rx.await;
            },
        ));
        let metrics = crate::external::PrometheusMetrics {
            addr: Arc::clone(&self.prometheus_addr),
            rules: crate::external::AdapterRules::load(&self.options.adapter_manifest)?,
        };
        let autoscaler = Autoscaler::new(self.hpas.clone(), self.requests.clone())
            .with_external(Box::new(move |metric| metrics.value(metric)))
            .obeying(Arc::clone(&self.cluster));
        self.autoscaler = Some(crate::autoscaler::spawn(
            autoscaler,
            Arc::clone(&self.fleet),
            period,
            store,
            Arc::clone(&self.stop),
        )?);
        self.metrics_server = Some((runtime, stop_tx));
        self.autoscaler_port = Some(port);
        Ok(())
    }

    fn start_monitoring(&mut self) -> anyhow::Result<()> {
        let dir = self.options.dir.clone();
        let exporter_port = free_port()?;
        let pids = dir.join("shop/pids");
        let mut postgres = Vec::new();
        for node in self.postgres.node_names() {
            let dsn = self.postgres.monitor_dsn(&node)?;
            postgres.push((node, dsn));
        }
        let config = exporter_config(
            &self.options.timing,
            &self.kafka.bootstrap(),
            &postgres,
            &dir.join("secrets/pg-monitor"),
            &pids,
            &self.requests,
            crate::hpa::scalable_lag_cap(&self.hpas),
        );
        std::fs::write(dir.join("surge-exporter.toml"), config)?;
        self.exporter_port = Some(exporter_port);
        if self.options.exporter_tls {
            self.exporter_access = Some(ExporterAccess::create(&dir.join("secrets"))?);
        }
        self.start_exporter()?;

        let am_port = free_port()?;
        let am_config = match &self.options.alertmanager_config {
            Some(text) => text.clone(),
            None => {
                std::fs::read_to_string(self.options.repo.join("alerts/alertmanager.local.yml"))
                    .unwrap_or_else(|_| {
                        "route:\n  receiver: \"null\"\nreceivers:\n  - name: \"null\"\n".into()
                    })
            }
        };
        self.alertmanager = Some(Alertmanager::start_in(
            Workdir::kept(&dir.join("alertmanager"))?,
            am_port,
            &am_config,
        )?);
        let _ = self.alertmanager_addr.set(format!("127.0.0.1:{am_port}"));

        let template =
            std::fs::read_to_string(self.options.repo.join("dashboards/prometheus.local.yml"))
                .context("reading dashboards/prometheus.local.yml")?;
        let rules = match &self.options.alert_rules {
            Some(text) => {
                let path = dir.join("rules.yml");
                std::fs::write(&path, text)?;
                path
            }
            None => self.options.repo.join("alerts/rules.yml"),
        };
        let prometheus_config = template
            .replace("{{RULES}}", &rules.display().to_string())
            .replace("{{INTERVAL}}", &millis(self.options.timing.scrape))
            .replace("{{ALERTMANAGER}}", &format!("127.0.0.1:{am_port}"))
            .replace("{{EXPORTER}}", &format!("127.0.0.1:{exporter_port}"))
            .replace(
                "    # {{EXPORTER_TLS}}\n",
                &self
                    .exporter_access
                    .as_ref()
                    .map(ExporterAccess::scrape_config)
                    .unwrap_or_default(),
            )
            .replace(
                "{{LOCAL_HPA}}",
                &format!("127.0.0.1:{}", self.autoscaler_port.unwrap_or(9)),
            )
            .replace(
                "{{SHOP_TARGETS}}",
                &dir.join("prometheus-shop-targets.json")
                    .display()
                    .to_string(),
            );
        let prometheus = Prometheus::start_in(
            Workdir::kept(&dir.join("prometheus"))?,
            free_port()?,
            &prometheus_config,
        )?;
        // From now on the local HPA can read External metrics.
        let _ = self
            .prometheus_addr
            .set(format!("127.0.0.1:{}", prometheus.port()));
        self.prometheus = Some(prometheus);
        Ok(())
    }

    /// (Re)start surge-exporter on its port with its config (drills kill it).
    pub fn start_exporter(&mut self) -> anyhow::Result<()> {
        let dir = &self.options.dir;
        let port = self.exporter_port.context("monitoring is off")?;
        self.exporter = None;
        let mut cmd = Command::new(&self.options.exporter_bin);
        cmd.arg("--config")
            .arg(dir.join("surge-exporter.toml"))
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"));
        if let Some(access) = &self.exporter_access {
            cmd.arg("--web.config.file").arg(&access.web_config);
        }
        self.exporter = Some(ServerProcess::spawn(
            "surge-exporter",
            cmd,
            &dir.join("surge-exporter.log"),
        )?);
        Ok(())
    }

    /// Current replicas of each service.
    pub fn replicas(&self) -> BTreeMap<&'static str, usize> {
        lock(&self.fleet.sets)
            .iter()
            .map(|(k, v)| (*k, v.len()))
            .collect()
    }

    /// Set a service's replica count by hand (drills, tests) and update nginx.
    pub fn scale(&self, service: &str, replicas: usize) -> anyhow::Result<()> {
        let mut sets = lock(&self.fleet.sets);
        let set = sets
            .get_mut(service)
            .with_context(|| format!("no service {service}"))?;
        set.scale_to(replicas)?;
        self.fleet.publish(&sets)
    }

    /// A rolling update of `service` with `env` set over its environment (a Deployment's
    /// rollout after its pod template changed; with no change, `kubectl rollout restart`):
    /// one replica at a time, the new one ready and routed before the old one is stopped, so
    /// no request and no message is dropped. Returns how many replicas were replaced.
    pub fn roll(&self, service: &str, env: &[(&str, &str)]) -> anyhow::Result<usize> {
        self.fleet.roll(service, env)
    }

    /// Replace `service`'s replicas that died with new ones and update nginx (a Deployment
    /// replacing crashed pods); returns how many were replaced.
    pub fn replace_exited(&self, service: &str) -> anyhow::Result<usize> {
        let mut sets = lock(&self.fleet.sets);
        let set = sets
            .get_mut(service)
            .with_context(|| format!("no service {service}"))?;
        let replaced = set.replace_exited()?;
        self.fleet.publish(&sets)?;
        Ok(replaced)
    }

    /// Ports of a service's replicas (each answers `/metrics`; nginx's `x-upstream` names one).
    pub fn replica_ports(&self, service: &str) -> Vec<u16> {
        lock(&self.fleet.sets)
            .get(service)
            .map(|set| set.replicas().iter().map(|r| r.port).collect())
            .unwrap_or_default()
    }

    /// Kill the replica of `service` on `port` outright (SIGKILL, as a crash or an OOM kill
    /// would), leaving nginx's upstreams as they are, like a pod dying before its endpoints
    /// are updated.
    pub fn kill_replica(&self, service: &str, port: u16) -> anyhow::Result<()> {
        let sets = lock(&self.fleet.sets);
        let replica = sets
            .get(service)
            .and_then(|set| set.replicas().iter().find(|r| r.port == port))
            .with_context(|| format!("no {service} replica on port {port}"))?;
        let pid = replica.pid().context("replica not running")?;
        Ok(surge_servers::sys::send(pid, surge_servers::Signal::Kill)?)
    }

    /// Stop the autoscaler, then everything else (also done on drop).
    pub fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(handle) = self.autoscaler.take() {
            let _ = handle.join();
        }
        if let Some((runtime, stop)) = self.metrics_server.take() {
            let _ = stop.send(());
            runtime.shutdown_timeout(Duration::from_secs(2));
        }
        if let Some((runtime, stop)) = self.api_server.take() {
            let _ = stop.send(());
            // Dropping the runtime drops the router and its job sender: the worker ends
            // after the job in hand.
            runtime.shutdown_timeout(Duration::from_secs(2));
        }
        if let Some(worker) = self.api_worker.take() {
            let _ = worker.join();
        }
        self.exporter = None;
        self.prometheus = None;
        self.alertmanager = None;
        // Services before the things they depend on; all told first, then waited for.
        let mut sets = lock(&self.fleet.sets);
        for set in sets.values_mut() {
            set.begin_stop_all();
        }
        for set in sets.values_mut() {
            let _ = set.scale_to(0);
        }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// What it takes to reach a surge-exporter that serves TLS with basic auth: a CA made for
/// the stack, the exporter's certificate for 127.0.0.1, and a generated password (bcrypt
/// in the exporter's web config, plain in a file for Prometheus and the panel).
#[derive(Debug, Clone)]
pub struct ExporterAccess {
    pub ca: PathBuf,
    pub username: String,
    pub password_file: PathBuf,
    pub web_config: PathBuf,
}

impl ExporterAccess {
    /// Make the CA, the certificate, the password and the web config under `secrets`.
    fn create(secrets: &Path) -> anyhow::Result<ExporterAccess> {
        use rand::Rng;
        surge_servers::secret::dir(secrets)?;
        let ca = surge_servers::tls::LocalCa::new(secrets, "stack-ca")?;
        let cert = ca.server("surge-exporter", &["127.0.0.1", "localhost"])?;
        let password: String = {
            let mut rng = rand::rng();
            (0..32)
                .map(|_| char::from(b'a' + rng.random_range(0..26u8)))
                .collect()
        };
        let password_file = secrets.join("exporter-scrape-password");
        surge_servers::secret::write(&password_file, &password)?;
        let hash = bcrypt::hash(&password, 10)?;
        let web_config = secrets.join("surge-exporter-web.yml");
        surge_servers::secret::write(
            &web_config,
            format!(
                "tls_server_config:\n  cert_file: {}\n  key_file: {}\n\
                 basic_auth_users:\n  prometheus: '{hash}'\n",
                cert.cert.display(),
                cert.key.display()
            ),
        )?;
        Ok(ExporterAccess {
            ca: ca.cert(),
            username: "prometheus".into(),
            password_file,
            web_config,
        })
    }

    /// The lines of Prometheus' scrape job for the exporter.
    fn scrape_config(&self) -> String {
        format!(
            "    scheme: https\n    tls_config:\n      ca_file: {}\n    basic_auth:\n      \
             username: {}\n      password_file: {}\n",
            self.ca.display(),
            self.username,
            self.password_file.display()
        )
    }
}

/// surge-exporter's config for the local stack: every PostgreSQL node (name, DSN without
/// password; the password in `password_file`), the broker, and each service's replicas by
/// their pid files under `pids` with what they request, collected on `timing`.
pub fn exporter_config(
    timing: &MonitoringTiming,
    bootstrap: &str,
    postgres: &[(String, String)],
    password_file: &Path,
    pids: &Path,
    requests: &BTreeMap<String, Resources>,
    scalable_lag_cap: Option<u64>,
) -> String {
    let t = timing;
    let mut config = format!(
        "[postgres]\ninterval = \"{collect}\"\ntimeout = \"{timeout}\"\n\
         [kafka]\ninterval = \"{collect}\"\ntimeout = \"{timeout}\"\ndiscovery_interval = \"{discovery}\"\n\
         window = \"{window}\"\nrate_window = \"{rate}\"\nstall_after = \"{stall}\"\n{cap}\
         [[kafka.clusters]]\nname = \"local\"\nbootstrap_servers = \"{bootstrap}\"\n\
         [processes]\ninterval = \"{collect}\"\ntimeout = \"{process_timeout}\"\n",
        collect = millis(t.collect),
        timeout = millis(t.timeout),
        discovery = millis((t.collect * 6).min(Duration::from_secs(30))),
        window = millis(t.lag_window),
        rate = millis(t.rate_window),
        stall = millis(t.stall_after),
        cap = scalable_lag_cap
            .map(|c| format!("scalable_lag_partition_cap = {c}\n"))
            .unwrap_or_default(),
        process_timeout = millis(t.timeout.min(Duration::from_secs(2))),
    );
    for (node, dsn) in postgres {
        config.push_str(&format!(
            "[[postgres.targets]]\nname = \"{node}\"\ndsn = \"{dsn}\"\npassword_file = \"{}\"\n",
            password_file.display()
        ));
    }
    for (workload, r) in requests {
        config.push_str(&format!(
            "[[processes.workloads]]\nnamespace = \"shop\"\nworkload = \"{workload}\"\n\
             cpu_request = \"{}m\"\npid_files = \"{}/{workload}-*.pid\"\n",
            r.cpu_request_millis,
            pids.display()
        ));
        if let Some(bytes) = r.memory_request_bytes {
            config.push_str(&format!("memory_request = \"{bytes}\"\n"));
        }
        if let Some(bytes) = r.memory_limit_bytes {
            config.push_str(&format!("memory_limit = \"{bytes}\"\n"));
        }
    }
    config
}

fn step(what: &str) {
    tracing::info!("step: {what}");
}
