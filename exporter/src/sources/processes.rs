//! Pod CPU and memory for the bundled local stack, where "pods" are replica processes.
//!
//! Each configured workload finds its replicas by pid files or a command-line regex; CPU usage
//! is the change in `/proc/<pid>/stat` utime+stime between two cycles over the wall time
//! between them (a replica seen for the first time has no CPU metric yet, exactly like a new
//! pod before metrics-server's first window); memory is the resident set. Requests and limits
//! come from the config, as a Deployment's would. Same families as the Kubernetes source.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::anyhow;
use async_trait::async_trait;
use regex::Regex;
use serde::Deserialize;
use surge_metrics::hpa::{Resources, workload_samples};
use surge_metrics::proc::ProcSampler;
use surge_metrics::quantity::{parse_bytes, parse_cpu_millis};
use surge_metrics::{Sample, SampleSet};

use crate::check::{self, ConfigError};
use crate::source::Source;
use crate::sync::lock;

/// `[processes]` as written.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Section {
    /// Time between collections.
    #[serde(default = "default_interval", with = "humantime_serde")]
    #[schemars(with = "String", extend("format" = "duration"))]
    interval: Duration,
    /// Per target; a slower target is marked down (`surge_source_up` 0).
    #[serde(default = "default_timeout", with = "humantime_serde")]
    #[schemars(with = "String", extend("format" = "duration"))]
    timeout: Duration,
    /// `[[processes.workloads]]`: local processes standing for a workload's pods (the bundled stack's replicas).
    workloads: Vec<WorkloadSection>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct WorkloadSection {
    /// The `namespace` label.
    #[schemars(example = &"shop")]
    namespace: String,
    /// The `workload` label.
    #[schemars(example = &"payment")]
    workload: String,
    /// CPU request of one replica, as a Kubernetes quantity (`250m`, `0.5`, `1`).
    #[schemars(example = &"250m")]
    cpu_request: String,
    /// Memory request of one replica, as a Kubernetes quantity (`256Mi`).
    #[schemars(example = &"256Mi")]
    memory_request: Option<String>,
    /// Memory limit of one replica, as a Kubernetes quantity.
    #[schemars(example = &"512Mi")]
    memory_limit: Option<String>,
    /// Glob of pid files, one per replica; the file stem becomes the `pod` label.
    #[schemars(example = &"/run/shop/payment-*.pid")]
    pid_files: Option<String>,
    /// Regex matched against the full command line (arguments joined by spaces).
    #[schemars(example = &"^/usr/bin/shop serve payment")]
    cmdline: Option<String>,
}

fn default_interval() -> Duration {
    Duration::from_secs(5)
}
fn default_timeout() -> Duration {
    Duration::from_secs(2)
}

/// `[processes]`, checked.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) interval: Duration,
    timeout: Duration,
    workloads: Vec<WorkloadSettings>,
}

#[derive(Debug, Clone)]
struct WorkloadSettings {
    namespace: String,
    workload: String,
    resources: Resources,
    finder: Finder,
}

/// How a workload's replicas are found.
#[derive(Debug, Clone)]
enum Finder {
    PidFiles(String),
    Cmdline(Regex),
}

impl Section {
    pub(crate) fn settings(self) -> Result<Settings, ConfigError> {
        check::timing("processes", self.interval, self.timeout)?;
        if self.workloads.is_empty() {
            return Err(ConfigError::field(
                "processes.workloads",
                "at least one workload is required",
            ));
        }
        let mut seen = HashSet::new();
        let mut workloads = Vec::with_capacity(self.workloads.len());
        for (i, w) in self.workloads.into_iter().enumerate() {
            let at = |f: &str| format!("processes.workloads[{i}].{f}");
            check::label_value(&at("namespace"), &w.namespace)?;
            check::label_value(&at("workload"), &w.workload)?;
            if !seen.insert((w.namespace.clone(), w.workload.clone())) {
                return Err(ConfigError::field(
                    at("workload"),
                    format!("duplicate workload {}/{}", w.namespace, w.workload),
                ));
            }
            let request_millis = match parse_cpu_millis(&w.cpu_request) {
                Ok(m) if m > 0 => m,
                Ok(_) => {
                    return Err(ConfigError::field(
                        at("cpu_request"),
                        "must be greater than 0",
                    ));
                }
                Err(e) => return Err(ConfigError::field(at("cpu_request"), e)),
            };
            let bytes = |field: &str, text: &Option<String>| {
                text.as_deref()
                    .map(|t| match parse_bytes(t) {
                        Ok(b) if b > 0 => Ok(b),
                        Ok(_) => Err(ConfigError::field(at(field), "must be greater than 0")),
                        Err(e) => Err(ConfigError::field(at(field), e)),
                    })
                    .transpose()
            };
            let memory_request_bytes = bytes("memory_request", &w.memory_request)?;
            let memory_limit_bytes = bytes("memory_limit", &w.memory_limit)?;
            if let (Some(request), Some(limit)) = (memory_request_bytes, memory_limit_bytes)
                && limit < request
            {
                return Err(ConfigError::field(
                    at("memory_limit"),
                    "is below memory_request",
                ));
            }
            let finder = match (w.pid_files, w.cmdline) {
                (None, None) => {
                    return Err(ConfigError::field(
                        at("pid_files"),
                        "missing: set pid_files or cmdline",
                    ));
                }
                (Some(_), Some(_)) => {
                    return Err(ConfigError::field(
                        at("cmdline"),
                        "set either pid_files or cmdline, not both",
                    ));
                }
                (Some(pattern), None) => {
                    if let Err(e) = glob::Pattern::new(&pattern) {
                        return Err(ConfigError::field(
                            at("pid_files"),
                            format!("invalid glob: {e}"),
                        ));
                    }
                    Finder::PidFiles(pattern)
                }
                (None, Some(re)) => Finder::Cmdline(check::regex(&at("cmdline"), &re)?),
            };
            workloads.push(WorkloadSettings {
                namespace: w.namespace,
                workload: w.workload,
                resources: Resources {
                    cpu_request_millis: request_millis,
                    memory_request_bytes,
                    memory_limit_bytes,
                },
                finder,
            });
        }
        Ok(Settings {
            interval: self.interval,
            timeout: self.timeout,
            workloads,
        })
    }
}

struct Workload {
    settings: WorkloadSettings,
    target: String,
    sampler: Mutex<ProcSampler>,
}

pub(crate) struct ProcessSource {
    interval: Duration,
    timeout: Duration,
    workloads: Vec<Arc<Workload>>,
}

impl ProcessSource {
    pub(crate) fn new(settings: &Settings) -> Self {
        let workloads = settings
            .workloads
            .iter()
            .map(|w| {
                Arc::new(Workload {
                    target: format!("{}/{}", w.namespace, w.workload),
                    settings: w.clone(),
                    sampler: Mutex::new(ProcSampler::default()),
                })
            })
            .collect();
        ProcessSource {
            interval: settings.interval,
            timeout: settings.timeout,
            workloads,
        }
    }
}

/// A replica: its pod name and pid, or `None` when its pid file is stale.
type Replica = (String, Option<i32>);

fn find_replicas(finder: &Finder, workload: &str) -> anyhow::Result<Vec<Replica>> {
    let mut out = Vec::new();
    match finder {
        Finder::PidFiles(pattern) => {
            let paths = glob::glob(pattern).map_err(|e| anyhow!("pid_files: {e}"))?;
            for path in paths {
                let path = path.map_err(|e| anyhow!("pid_files: {e}"))?;
                let pod = path
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_else(|| workload.to_string());
                let text = match read_pid_file(&path) {
                    Ok(text) => text,
                    // Removed between glob and read: the replica just stopped.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(anyhow!("reading {}: {e}", path.display())),
                };
                let pid: i32 = text.trim().parse().map_err(|_| {
                    anyhow!("{}: not a pid: {:?}", path.display(), truncate(text.trim()))
                })?;
                let alive = procfs::process::Process::new(pid).is_ok();
                out.push((pod, alive.then_some(pid)));
            }
        }
        Finder::Cmdline(regex) => {
            let own = std::process::id() as i32;
            let processes =
                procfs::process::all_processes().map_err(|e| anyhow!("listing /proc: {e}"))?;
            for process in processes.flatten() {
                if process.pid == own {
                    continue;
                }
                let Ok(cmdline) = process.cmdline() else {
                    continue;
                };
                if !cmdline.is_empty() && regex.is_match(&cmdline.join(" ")) {
                    out.push((format!("{workload}-{}", process.pid), Some(process.pid)));
                }
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Most bytes read from a pid file: a pid and a newline need a dozen.
const PID_FILE_BYTES: u64 = 64;

/// A pid file's text: regular files only (opening a FIFO would block the collector for good,
/// a device could stream forever), at most [`PID_FILE_BYTES`].
fn read_pid_file(path: &std::path::Path) -> std::io::Result<String> {
    use std::io::Read;
    if !std::fs::metadata(path)?.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    let mut text = String::new();
    std::fs::File::open(path)?
        .take(PID_FILE_BYTES)
        .read_to_string(&mut text)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    Ok(text)
}

fn truncate(s: &str) -> String {
    s.chars().take(40).collect()
}

impl Workload {
    /// Reads `/proc` and globs pid files: blocking, so run off the async workers.
    fn collect(&self) -> anyhow::Result<Vec<Sample>> {
        let w = &self.settings;
        let replicas = find_replicas(&w.finder, &w.workload)?;
        let pods = lock(&self.sampler).sample(replicas, &w.resources);
        Ok(workload_samples(&w.namespace, &w.workload, &pods))
    }
}

#[async_trait]
impl Source for ProcessSource {
    fn name(&self) -> &'static str {
        "processes"
    }
    fn interval(&self) -> Duration {
        self.interval
    }
    fn timeout(&self) -> Duration {
        self.timeout
    }
    fn targets(&self) -> Vec<String> {
        self.workloads.iter().map(|w| w.target.clone()).collect()
    }
    async fn collect(&self, target: &str) -> anyhow::Result<SampleSet> {
        let workload = self
            .workloads
            .iter()
            .find(|w| w.target == target)
            .cloned()
            .ok_or_else(|| anyhow!("unknown target {target}"))?;
        tokio::task::spawn_blocking(move || workload.collect())
            .await
            .map_err(|e| anyhow!("process collection task failed: {e}"))?
            .map(SampleSet::from)
    }
}
