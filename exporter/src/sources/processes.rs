//! Pod CPU for the bundled local stack, where "pods" are replica processes.
//!
//! Each configured workload finds its replicas by pid files or a command-line regex; usage
//! is the change in `/proc/<pid>/stat` utime+stime between two cycles over the wall time
//! between them. A replica seen for the first time has no metric yet, exactly like a new
//! pod before metrics-server's first window. Same families as the Kubernetes source.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::anyhow;
use async_trait::async_trait;
use regex::Regex;

use crate::config::{ConfigError, ProcessWorkload, ProcessesSection};
use crate::cpu::{CPU_FAMILIES, PodCpu, PodState, workload_samples};
use crate::quantity::parse_cpu_millis;
use crate::source::{Family, Sample, Source};
use crate::sync::lock;

enum Finder {
    PidFiles(String),
    Cmdline(Regex),
}

struct Workload {
    namespace: String,
    workload: String,
    request_millis: i64,
    finder: Finder,
    sampler: Mutex<CpuSampler>,
}

#[derive(Debug, Clone, Copy)]
struct Reading {
    /// Process start time in clock ticks since boot: tells a reused pid apart.
    start_ticks: u64,
    cpu_ticks: u64,
    at: Instant,
}

pub struct ProcessSource {
    interval: Duration,
    timeout: Duration,
    workloads: Vec<Workload>,
}

impl ProcessSource {
    pub fn new(section: &ProcessesSection) -> Result<Self, ConfigError> {
        let workloads = section
            .workloads
            .iter()
            .enumerate()
            .map(|(i, w)| workload(i, w))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ProcessSource {
            interval: section.interval,
            timeout: section.timeout,
            workloads,
        })
    }
}

fn workload(index: usize, w: &ProcessWorkload) -> Result<Workload, ConfigError> {
    let field = |f: &str| format!("processes.workloads[{index}].{f}");
    let request_millis = parse_cpu_millis(&w.cpu_request)
        .map_err(|e| ConfigError(format!("{}: {e}", field("cpu_request"))))?;
    let finder = match (&w.pid_files, &w.cmdline) {
        (Some(pattern), _) => Finder::PidFiles(pattern.clone()),
        (None, Some(re)) => Finder::Cmdline(
            Regex::new(re)
                .map_err(|e| ConfigError(format!("{}: invalid regex: {e}", field("cmdline"))))?,
        ),
        (None, None) => return Err(ConfigError(format!("{}: missing", field("pid_files")))),
    };
    Ok(Workload {
        namespace: w.namespace.clone(),
        workload: w.workload.clone(),
        request_millis,
        finder,
        sampler: Mutex::new(CpuSampler::default()),
    })
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
                let text = match std::fs::read_to_string(&path) {
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

fn truncate(s: &str) -> String {
    s.chars().take(40).collect()
}

/// Turns cumulative `/proc` CPU time into per-replica usage between two calls. Shared by the
/// process source and the local stack's autoscaler, so both see the same numbers.
#[derive(Debug, Default)]
pub struct CpuSampler {
    last: HashMap<i32, Reading>,
}

impl CpuSampler {
    /// One sample of `replicas` (pod name, pid or `None` for a replica that is down), each
    /// with `request_millis` of CPU requested. A replica seen for the first time has no usage
    /// yet (like a new pod before its first metrics window).
    pub fn sample(
        &mut self,
        replicas: Vec<(String, Option<i32>)>,
        request_millis: i64,
    ) -> Vec<PodCpu> {
        let ticks_per_second = procfs::ticks_per_second() as f64;
        let mut seen = HashMap::with_capacity(replicas.len());
        let mut pods = Vec::with_capacity(replicas.len());
        for (pod, pid) in replicas {
            let stat = pid.and_then(|pid| procfs::process::Process::new(pid).ok()?.stat().ok());
            let Some((pid, stat)) = pid.zip(stat) else {
                // A replica whose process is gone: down, not idle.
                pods.push(PodCpu {
                    pod,
                    state: PodState::Unready,
                    ready: false,
                    usage_cores: None,
                    usage_millis: None,
                    request_millis: Some(request_millis),
                });
                continue;
            };
            let now = Reading {
                start_ticks: stat.starttime,
                cpu_ticks: stat.utime + stat.stime,
                at: Instant::now(),
            };
            let usage = self.last.get(&pid).and_then(|prev| {
                let elapsed = now.at.duration_since(prev.at).as_secs_f64();
                (prev.start_ticks == now.start_ticks
                    && elapsed > 0.0
                    && now.cpu_ticks >= prev.cpu_ticks)
                    .then(|| (now.cpu_ticks - prev.cpu_ticks) as f64 / ticks_per_second / elapsed)
            });
            seen.insert(pid, now);
            // Zombie or stopped processes serve nothing.
            let alive = !matches!(stat.state, 'Z' | 'X' | 'T' | 't');
            let state = match (alive, usage) {
                (false, _) => PodState::Unready,
                (true, None) => PodState::MissingMetrics,
                (true, Some(_)) => PodState::Counted,
            };
            pods.push(PodCpu {
                pod,
                state,
                ready: alive,
                usage_cores: usage,
                // Rounded up to milli-cores like metrics-server quantities read by the HPA.
                usage_millis: usage.map(|u| (u * 1000.0).ceil() as i64),
                request_millis: Some(request_millis),
            });
        }
        self.last = seen;
        pods
    }
}

impl Workload {
    fn collect(&self) -> anyhow::Result<Vec<Sample>> {
        let replicas = find_replicas(&self.finder, &self.workload)?;
        let pods = lock(&self.sampler).sample(replicas, self.request_millis);
        Ok(workload_samples(&self.namespace, &self.workload, &pods))
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
        self.workloads
            .iter()
            .map(|w| format!("{}/{}", w.namespace, w.workload))
            .collect()
    }
    fn families(&self) -> &'static [&'static Family] {
        &CPU_FAMILIES
    }
    async fn collect(&self, target: &str) -> anyhow::Result<Vec<Sample>> {
        let workload = self
            .workloads
            .iter()
            .find(|w| format!("{}/{}", w.namespace, w.workload) == target)
            .ok_or_else(|| anyhow!("unknown target {target}"))?;
        workload.collect()
    }
}
