//! Pod CPU and memory from `/proc` for replicas that are local processes (the bundled stack):
//! CPU is the change in `/proc/<pid>/stat` utime+stime between two samples over the wall time
//! between them; memory is the resident set (`/proc/<pid>/statm`), the process's working set.
//! Shared by the exporter's process source and the local autoscaler, so both see the same
//! numbers. Reads `/proc`: call from a thread that may block.

use std::collections::HashMap;
use std::time::Instant;

use crate::hpa::{PodResources, Resources};
use crate::state::PodState;

#[derive(Debug, Clone, Copy)]
struct Reading {
    /// Process start time in clock ticks since boot: tells a reused pid apart.
    start_ticks: u64,
    cpu_ticks: u64,
    at: Instant,
}

/// Turns cumulative `/proc` CPU time into per-replica usage between two calls, and reads each
/// replica's resident memory.
#[derive(Debug, Default)]
pub struct ProcSampler {
    last: HashMap<i32, Reading>,
}

impl ProcSampler {
    /// One sample of `replicas` (pod name, pid or `None` for a replica that is down), each
    /// asking for `resources`. A replica seen for the first time has no CPU usage yet (like a
    /// new pod before its first metrics window); its memory is known at once.
    pub fn sample(
        &mut self,
        replicas: Vec<(String, Option<i32>)>,
        resources: &Resources,
    ) -> Vec<PodResources> {
        let ticks_per_second = procfs::ticks_per_second() as f64;
        let page_size = procfs::page_size();
        let requested = |pod: String| PodResources {
            pod,
            request_millis: Some(resources.cpu_request_millis),
            memory_request_bytes: resources.memory_request_bytes,
            memory_limit_bytes: resources.memory_limit_bytes,
            ..PodResources::default()
        };
        let mut seen = HashMap::with_capacity(replicas.len());
        let mut pods = Vec::with_capacity(replicas.len());
        for (pod, pid) in replicas {
            let process = pid.and_then(|pid| procfs::process::Process::new(pid).ok());
            let stat = process.as_ref().and_then(|p| p.stat().ok());
            let Some((pid, stat)) = pid.zip(stat) else {
                // A replica whose process is gone: down, not idle.
                pods.push(PodResources {
                    state: PodState::Unready,
                    ..requested(pod)
                });
                continue;
            };
            let resident = process
                .as_ref()
                .and_then(|p| p.statm().ok())
                .map(|m| (m.resident * page_size) as i64);
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
            pods.push(PodResources {
                state,
                ready: alive,
                running: alive,
                usage_cores: usage,
                // Rounded up to milli-cores like metrics-server quantities read by the HPA.
                usage_millis: usage.map(|u| (u * 1000.0).ceil() as i64),
                memory_bytes: resident.filter(|_| alive),
                ..requested(pod)
            });
        }
        self.last = seen;
        pods
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_sample_has_no_usage_then_the_second_does() {
        let me = std::process::id() as i32;
        let mut sampler = ProcSampler::default();
        let resources = Resources {
            cpu_request_millis: 100,
            memory_request_bytes: Some(1 << 30),
            memory_limit_bytes: None,
        };
        let first = sampler.sample(
            vec![("me".into(), Some(me)), ("gone".into(), None)],
            &resources,
        );
        assert_eq!(first[0].state, PodState::MissingMetrics);
        assert!(first[0].memory_bytes.is_some_and(|b| b > 0), "{first:?}");
        assert_eq!(first[0].memory_request_bytes, Some(1 << 30));
        assert_eq!(first[1].state, PodState::Unready);
        assert_eq!(first[1].memory_bytes, None);
        let spin = Instant::now();
        while spin.elapsed().as_millis() < 30 {
            std::hint::black_box(spin.elapsed());
        }
        let second = sampler.sample(vec![("me".into(), Some(me))], &resources);
        assert_eq!(second[0].state, PodState::Counted);
        assert!(second[0].usage_cores.is_some_and(|u| u > 0.0), "{second:?}");
    }
}
