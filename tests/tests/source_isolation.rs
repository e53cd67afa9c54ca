//! One exporter, all three sources, served over HTTP: a failing source never takes the others
//! down, scrapes keep answering, and a recovered target comes back by itself.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use surge_exporter::Exporter;
use surge_exporter::config::Config;
use surge_servers::{PgCluster, ServerProcess, wait_until};
use surge_testkit::http::{scrape, source_up};
use surge_testkit::kube_api::KubeApiStandIn;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_sources_stay_contained_and_recover() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut cluster = PgCluster::start(1)?;
    let api = KubeApiStandIn::start()?;
    api.apply_files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../exporter/tests/fixtures/kube"),
        &[
            "pods.json",
            "replicasets.json",
            "hpas.json",
            "podmetrics.json",
        ],
    )?;
    let kubeconfig = dir.path().join("kubeconfig");
    api.write_kubeconfig(&kubeconfig)?;
    let mut sleeper_cmd = Command::new("sleep");
    sleeper_cmd.arg("600");
    let sleeper = ServerProcess::spawn("sleeper", sleeper_cmd, &dir.path().join("sleeper.log"))?;
    std::fs::write(
        dir.path().join("worker-0.pid"),
        format!("{}", sleeper.pid().unwrap_or(0)),
    )?;
    let password_file = dir.path().join("password");
    std::fs::write(&password_file, cluster.monitor_password())?;

    let config = Config::parse(&format!(
        "[postgres]\ninterval = \"500ms\"\ntimeout = \"400ms\"\n\
         [[postgres.targets]]\nname = \"primary\"\ndsn = \"{}\"\npassword_file = \"{pw}\"\n\
         [[postgres.targets]]\nname = \"replica1\"\ndsn = \"{}\"\npassword_file = \"{pw}\"\n\
         [kubernetes]\ninterval = \"500ms\"\ntimeout = \"400ms\"\nnamespaces = [\"shop\"]\nkubeconfig = \"{}\"\n\
         [processes]\ninterval = \"500ms\"\ntimeout = \"400ms\"\n\
         [[processes.workloads]]\nnamespace = \"local\"\nworkload = \"worker\"\ncpu_request = \"100m\"\npid_files = \"{}/worker-*.pid\"\n",
        cluster.monitor_dsn("primary")?,
        cluster.monitor_dsn("replica1")?,
        kubeconfig.display(),
        dir.path().display(),
        pw = password_file.display(),
    ))?;
    let running = Exporter::new(&config)?
        .spawn(([127, 0, 0, 1], 0).into())
        .await
        .map_err(anyhow::Error::msg)?;
    let addr = running.addr.to_string();

    let all_up = |body: &str| {
        [
            ("postgres", "primary"),
            ("postgres", "replica1"),
            ("kubernetes", "shop"),
            ("processes", "local/worker"),
        ]
        .iter()
        .all(|(s, t)| source_up(body, s, t) == Some(true))
    };
    let wait_scrape = |what: &str, check: &dyn Fn(&str) -> bool| -> anyhow::Result<()> {
        wait_until(
            what,
            Duration::from_secs(15),
            Duration::from_millis(100),
            || Ok(scrape(&addr).map(|b| check(&b)).unwrap_or(false)),
        )
    };
    tokio::task::block_in_place(|| wait_scrape("all sources up", &all_up))?;
    let body = scrape(&addr)?;
    assert!(
        body.contains(
            "surge_workload_cpu_utilization_ratio{namespace=\"shop\",workload=\"orders\"} 0.75"
        ),
        "{body}"
    );
    assert!(
        body.contains(
            "surge_pod_ready{namespace=\"local\",workload=\"worker\",pod=\"worker-0\"} 1"
        ),
        "{body}"
    );

    // The Kubernetes API and the PostgreSQL primary go away together.
    drop(api);
    cluster.stop_node("primary")?;
    tokio::task::block_in_place(|| {
        wait_scrape("kubernetes and primary down, others up", &|b| {
            source_up(b, "kubernetes", "shop") == Some(false)
                && source_up(b, "postgres", "primary") == Some(false)
                && source_up(b, "postgres", "replica1") == Some(true)
                && source_up(b, "processes", "local/worker") == Some(true)
        })
    })?;
    // The replica's WAL receiver notices its primary is gone on its own clock (a collection
    // or two after the primary's own target fails): waited for, not raced.
    tokio::task::block_in_place(|| {
        wait_scrape("replica1's receiver not streaming", &|b| {
            b.contains("surge_postgres_wal_receiver_streaming{target=\"replica1\"} 0")
        })
    })?;
    let body = scrape(&addr)?;
    assert!(
        !body.contains("surge_hpa_current_replicas"),
        "no stale HPA series from a down API:\n{body}"
    );
    assert!(body.contains("pod=\"worker-0\"} 1"), "{body}");

    // The primary returns: recovered without a restart of the exporter.
    cluster.start_node("primary")?;
    tokio::task::block_in_place(|| {
        wait_scrape("primary recovered", &|b| {
            source_up(b, "postgres", "primary") == Some(true)
                && b.contains("surge_postgres_wal_receiver_streaming{target=\"replica1\"} 1")
        })
    })?;

    running.stop().await.map_err(anyhow::Error::msg)?;
    drop(sleeper);
    Ok(())
}
