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
