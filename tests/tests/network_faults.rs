//! Network faults between real processes: surge-exporter's link to the PostgreSQL primary runs
//! through a proxy the test controls (delayed past the timeout, held so the server seems to
//! hang, cut), while the replica is reached directly. Per-target timeouts hold: the primary
//! reports itself down, the replica stays up, `/metrics` keeps answering at once, and the
//! primary comes back by itself when the link does.

use std::time::{Duration, Instant};

use surge_exporter::Exporter;
use surge_exporter::config::Config;
use surge_servers::PgCluster;
use surge_testkit::http::{scrape, source_up};
use surge_testkit::proxy::{Fault, FaultProxy};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exporter_to_postgres_delayed_hung_and_cut_recovers_alone() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let cluster = PgCluster::start(1)?;
    let primary: std::net::SocketAddr =
        format!("127.0.0.1:{}", cluster.port("primary")?).parse()?;
    let proxy = FaultProxy::start(primary)?;
    let password_file = dir.path().join("password");
    std::fs::write(&password_file, cluster.monitor_password())?;
    let through_proxy = regex::Regex::new(r":\d+/")?
        .replace(
            &cluster.monitor_dsn("primary")?,
            format!(":{}/", proxy.port()).as_str(),
        )
        .into_owned();
    let config = Config::parse(&format!(
        "[postgres]\ninterval = \"500ms\"\ntimeout = \"400ms\"\n\
         [[postgres.targets]]\nname = \"primary\"\ndsn = \"{through_proxy}\"\npassword_file = \"{pw}\"\n\
         [[postgres.targets]]\nname = \"replica1\"\ndsn = \"{}\"\npassword_file = \"{pw}\"\n",
        cluster.monitor_dsn("replica1")?,
        pw = password_file.display(),
    ))?;
    let running = Exporter::new(&config)?
        .spawn(([127, 0, 0, 1], 0).into())
        .await
        .map_err(anyhow::Error::msg)?;
    let addr = running.addr.to_string();

    // Scrape every 100 ms until `check` holds; the slowest scrape seen is kept.
    let mut slowest = Duration::ZERO;
    let mut wait = |what: &str, check: &dyn Fn(&str) -> bool| -> anyhow::Result<Duration> {
        let started = Instant::now();
        loop {
            let t = Instant::now();
            let body = scrape(&addr)?;
            slowest = slowest.max(t.elapsed());
            if check(&body) {
                return Ok(started.elapsed());
            }
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(20),
                "{what}: not after 20 s:\n{body}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let up = |b: &str, target: &str| source_up(b, "postgres", target);
    tokio::task::block_in_place(|| -> anyhow::Result<()> {
        wait("both up", &|b| {
            up(b, "primary") == Some(true) && up(b, "replica1") == Some(true)
        })?;
        let mut phases = Vec::new();
        for (name, fault) in [
            ("delay 2s", Fault::Delay(Duration::from_secs(2))),
            ("hang", Fault::Stall),
            ("cut", Fault::Cut),
        ] {
            proxy.set(fault);
            let detect = wait(&format!("{name}: primary down, replica up"), &|b| {
                up(b, "primary") == Some(false) && up(b, "replica1") == Some(true)
            })?;
            // While the fault lasts the replica keeps being collected: its last success stays
            // within a few intervals of now.
            std::thread::sleep(Duration::from_secs(2));
            let body = scrape(&addr)?;
            assert_eq!(up(&body, "replica1"), Some(true), "{name}: {body}");
            assert_eq!(up(&body, "primary"), Some(false), "{name}: {body}");
            proxy.set(Fault::None);
            let recover = wait(&format!("{name}: primary back"), &|b| {
                up(b, "primary") == Some(true) && up(b, "replica1") == Some(true)
            })?;
            phases.push((name, detect, recover));
        }
        assert_eq!(phases.len(), 3);
        for (name, detect, recover) in &phases {
            eprintln!(
                "NETFAULT exporter-postgres {name}: down after {:.1} s, back {:.1} s after the link",
                detect.as_secs_f64(),
                recover.as_secs_f64()
            );
        }
        Ok(())
    })?;
    eprintln!(
        "NETFAULT slowest /metrics answer {:.1} ms",
        slowest.as_secs_f64() * 1000.0
    );
    // The store answers from memory whatever the collectors wait on.
    assert!(
        slowest < Duration::from_millis(500),
        "a scrape took {slowest:?} during a network fault"
    );
    running.stop().await.map_err(anyhow::Error::msg)?;
    Ok(())
}
