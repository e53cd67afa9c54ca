//! Process source: real child processes, CPU from /proc deltas.

use surge_testkit::exporter as common;

use std::process::Command;
use std::time::Duration;

use common::Exporter;
use surge_servers::ServerProcess;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_replica_reads_about_one_core_and_sleeping_one_zero() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let spawn = |name: &str, script: &str| -> anyhow::Result<ServerProcess> {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", script]);
        let process = ServerProcess::spawn(name, cmd, &dir.path().join(format!("{name}.log")))?;
        let pid = process.pid().ok_or_else(|| anyhow::anyhow!("no pid"))?;
        std::fs::write(dir.path().join(format!("{name}.pid")), format!("{pid}\n"))?;
        Ok(process)
    };
    let busy = spawn("cpu-0", "while :; do :; done")?;
    let mut idle = spawn("cpu-1", "exec sleep 600")?;
    let exporter = Exporter::from_toml(&format!(
        "[processes]\ninterval = \"1s\"\ntimeout = \"1s\"\n\
         [[processes.workloads]]\nnamespace = \"local\"\nworkload = \"cpu\"\ncpu_request = \"1\"\npid_files = \"{}/cpu-*.pid\"\n",
        dir.path().display()
    ))?;

    // First sight: no usage yet (like a new pod before its first metrics window).
    assert!(exporter.cycle().await);
    fn pod(p: &str) -> [(&'static str, &str); 3] {
        [("namespace", "local"), ("workload", "cpu"), ("pod", p)]
    }
    assert_eq!(
        exporter.value("surge_pod_cpu_usage_cores", &pod("cpu-0")),
        None
    );
    assert_eq!(
        exporter.value(
            "surge_workload_pods",
            &[("workload", "cpu"), ("state", "missing_metrics")]
        ),
        Some(2.0)
    );
    assert_eq!(
        exporter.value(
            "surge_workload_cpu_utilization_ratio",
            &[("workload", "cpu")]
        ),
        None
    );

    // A measuring window, not a wait: CPU is the difference between two cycles, and 2 s is
    // 200 clock ticks, fine enough for the 0.5 to 1.1 cores asserted below.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(exporter.cycle().await);
    let busy_cores = exporter
        .value("surge_pod_cpu_usage_cores", &pod("cpu-0"))
        .unwrap_or(-1.0);
    let idle_cores = exporter
        .value("surge_pod_cpu_usage_cores", &pod("cpu-1"))
        .unwrap_or(-1.0);
    // Two cores shared with the rest of the test suite: a busy loop gets most of one core.
    assert!(
        (0.5..=1.1).contains(&busy_cores),
        "busy replica read {busy_cores} cores"
    );
    assert!(
        (0.0..0.05).contains(&idle_cores),
        "sleeping replica read {idle_cores} cores"
    );
    assert_eq!(
        exporter.value("surge_pod_cpu_request_cores", &pod("cpu-0")),
        Some(1.0)
    );
    assert_eq!(exporter.value("surge_pod_ready", &pod("cpu-1")), Some(1.0));
    // Ratio of sums over both replicas, truncated to whole percent like the HPA.
    let ratio = exporter
        .value(
            "surge_workload_cpu_utilization_ratio",
            &[("workload", "cpu")],
        )
        .unwrap_or(-1.0);
    let expected = ((busy_cores + idle_cores) * 1000.0 * 100.0 / 2000.0).floor() / 100.0;
    assert!(
        (ratio - expected).abs() <= 0.011,
        "ratio {ratio}, expected about {expected}"
    );

    // A replica that died but left its pid file behind is a not-ready pod, not a zero.
    idle.stop();
    assert!(exporter.cycle().await);
    assert_eq!(exporter.value("surge_pod_ready", &pod("cpu-1")), Some(0.0));
    assert_eq!(
        exporter.value("surge_pod_cpu_usage_cores", &pod("cpu-1")),
        None
    );
    assert_eq!(
        exporter.value(
            "surge_workload_pods",
            &[("workload", "cpu"), ("state", "unready")]
        ),
        Some(1.0)
    );
    drop(busy);
    Ok(())
}

#[tokio::test]
async fn garbage_pid_file_marks_only_that_workload_down() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("bad-0.pid"), "not a pid\n")?;
    let exporter = Exporter::from_toml(&format!(
        "[processes]\n\
         [[processes.workloads]]\nnamespace = \"local\"\nworkload = \"bad\"\ncpu_request = \"100m\"\npid_files = \"{0}/bad-*.pid\"\n\
         [[processes.workloads]]\nnamespace = \"local\"\nworkload = \"self\"\ncpu_request = \"100m\"\ncmdline = \"^/nonexistent-binary-surge\"\n",
        dir.path().display()
    ))?;
    assert!(!exporter.cycle().await);
    assert_eq!(exporter.up("processes", "local/bad"), Some(false));
    let error = exporter
        .last_error("processes", "local/bad")
        .unwrap_or_default();
    assert!(error.contains("not a pid"), "{error}");
    assert_eq!(exporter.up("processes", "local/self"), Some(true));
    assert_eq!(
        exporter.value(
            "surge_workload_pods",
            &[("workload", "self"), ("state", "counted")]
        ),
        Some(0.0)
    );
    Ok(())
}

/// Pid files that would hang or flood a collector: a FIFO nobody writes (opening it blocks for
/// good), a link to /dev/zero (endless), a megabyte of digits. Each marks its workload down with
/// a one-line error at once, every cycle, and the others stay up.
#[tokio::test]
async fn pid_files_that_would_hang_or_flood_are_refused() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let fifo = dir.path().join("fifo-0.pid");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status()?;
    anyhow::ensure!(made.success(), "mkfifo failed");
    std::os::unix::fs::symlink("/dev/zero", dir.path().join("zero-0.pid"))?;
    std::fs::write(dir.path().join("huge-0.pid"), "7".repeat(1 << 20))?;
    let mut config = String::from("[processes]\ninterval = \"1s\"\ntimeout = \"900ms\"\n");
    for workload in ["fifo", "zero", "huge"] {
        config.push_str(&format!(
            "[[processes.workloads]]\nnamespace = \"local\"\nworkload = \"{workload}\"\ncpu_request = \"100m\"\npid_files = \"{}/{workload}-*.pid\"\n",
            dir.path().display()
        ));
    }
    config.push_str(
        "[[processes.workloads]]\nnamespace = \"local\"\nworkload = \"self\"\ncpu_request = \"100m\"\ncmdline = \"^/nonexistent-binary-surge\"\n",
    );
    let exporter = Exporter::from_toml(&config)?;
    for cycle in 0..3 {
        let started = std::time::Instant::now();
        assert!(!exporter.cycle().await);
        // Well inside the timeout: nothing waited on the FIFO or read the endless file.
        assert!(
            started.elapsed() < std::time::Duration::from_millis(800),
            "cycle {cycle} took {:?}",
            started.elapsed()
        );
        for (workload, said) in [
            ("fifo", "not a regular file"),
            ("zero", "not a regular file"),
            ("huge", "not a pid"),
        ] {
            let target = format!("local/{workload}");
            assert_eq!(exporter.up("processes", &target), Some(false), "{workload}");
            let error = exporter
                .last_error("processes", &target)
                .unwrap_or_default();
            assert!(error.contains(said), "{workload}: {error}");
            assert!(!error.contains('\n'), "{workload}: {error}");
        }
        assert_eq!(exporter.up("processes", "local/self"), Some(true));
    }
    Ok(())
}

/// Memory against what the replicas allocate (the ground truth): one holds 64 MiB more than
/// its twin, and the working sets differ by that much.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn working_set_tracks_the_memory_a_replica_holds() -> anyhow::Result<()> {
    const HELD_MIB: f64 = 64.0;
    let dir = tempfile::tempdir()?;
    let spawn = |name: &str, mib: f64| -> anyhow::Result<ServerProcess> {
        // Filled bytes, so every page is resident; the marker says the allocation is done.
        let script = format!(
            "exec python3 -c 'import time; held = b\"x\" * ({mib} * 2**20).__int__(); \
             open(\"{0}/{name}.ready\", \"w\").close(); time.sleep(600)'",
            dir.path().display()
        );
        let mut cmd = Command::new("sh");
        cmd.args(["-c", &script]);
        let process = ServerProcess::spawn(name, cmd, &dir.path().join(format!("{name}.log")))?;
        let pid = process.pid().ok_or_else(|| anyhow::anyhow!("no pid"))?;
        std::fs::write(dir.path().join(format!("{name}.pid")), format!("{pid}\n"))?;
        Ok(process)
    };
    let _heavy = spawn("mem-0", HELD_MIB)?;
    let _light = spawn("mem-1", 0.0)?;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    for name in ["mem-0", "mem-1"] {
        while !dir.path().join(format!("{name}.ready")).exists() {
            assert!(
                std::time::Instant::now() < deadline,
                "{name} never got ready"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let exporter = Exporter::from_toml(&format!(
        "[processes]\ninterval = \"1s\"\ntimeout = \"1s\"\n\
         [[processes.workloads]]\nnamespace = \"local\"\nworkload = \"mem\"\ncpu_request = \"100m\"\n\
         memory_request = \"128Mi\"\nmemory_limit = \"256Mi\"\npid_files = \"{}/mem-*.pid\"\n",
        dir.path().display()
    ))?;
    // Memory is known on first sight, unlike CPU, which needs two readings.
    assert!(exporter.cycle().await);
    fn pod(p: &str) -> [(&'static str, &str); 3] {
        [("namespace", "local"), ("workload", "mem"), ("pod", p)]
    }
    let working_set = |p: &str| {
        exporter
            .value("surge_pod_memory_working_set_bytes", &pod(p))
            .unwrap_or(-1.0)
    };
    let (heavy, light) = (working_set("mem-0"), working_set("mem-1"));
    let held_mib = (heavy - light) / 1_048_576.0;
    assert!(
        (HELD_MIB - 2.0..=HELD_MIB + 4.0).contains(&held_mib),
        "working sets {heavy} and {light} differ by {held_mib} MiB, not about {HELD_MIB}"
    );
    assert!(
        light > 1_048_576.0,
        "an idle interpreter reads {light} bytes"
    );
    for p in ["mem-0", "mem-1"] {
        assert_eq!(
            exporter.value("surge_pod_memory_request_bytes", &pod(p)),
            Some(128.0 * 1_048_576.0)
        );
        assert_eq!(
            exporter.value("surge_pod_memory_limit_bytes", &pod(p)),
            Some(256.0 * 1_048_576.0)
        );
    }
    // Sum of working sets over sum of requests, truncated to whole percent like the HPA.
    let expected = ((heavy + light) * 100.0 / (256.0 * 1_048_576.0)).floor() / 100.0;
    assert_eq!(
        exporter.value(
            "surge_workload_memory_utilization_ratio",
            &[("workload", "mem")]
        ),
        Some(expected)
    );
    Ok(())
}

#[test]
fn a_memory_limit_below_the_request_is_a_config_error() {
    let error = Exporter::from_toml(
        "[[processes.workloads]]\nnamespace = \"local\"\nworkload = \"w\"\ncpu_request = \"100m\"\n\
         memory_request = \"1Gi\"\nmemory_limit = \"512Mi\"\ncmdline = \"^x\"\n",
    )
    .err()
    .map(|e| e.to_string())
    .unwrap_or_default();
    assert_eq!(
        error,
        "processes.workloads[0].memory_limit: is below memory_request"
    );
}
