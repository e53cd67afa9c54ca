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
use surge_testkit::kafka::BrokerClients;
use surge_testkit::proxy::{Fault, FaultProxy};

/// Scrapes `/metrics` every 100 ms throughout, keeping the slowest answer seen. Its own loop,
/// not `wait_until`: a scrape that fails is an error at once, never a retry.
struct Scraper {
    addr: String,
    limit: Duration,
    slowest: Duration,
    scrapes: usize,
}

/// How often the scraper asks.
const EVERY: Duration = Duration::from_millis(100);

/// No `/metrics` answer may take this long: half the PostgreSQL collector's 400 ms timeout, so
/// a scrape that waited on a hung collector (up to its timeout) would show. Answers come from
/// memory in about a millisecond.
const SLOWEST_ALLOWED: Duration = Duration::from_millis(200);

impl Scraper {
    fn new(addr: String, limit: Duration) -> Scraper {
        Scraper {
            addr,
            limit,
            slowest: Duration::ZERO,
            scrapes: 0,
        }
    }

    fn scrape(&mut self) -> anyhow::Result<String> {
        let t = Instant::now();
        let body = scrape(&self.addr)?;
        self.slowest = self.slowest.max(t.elapsed());
        self.scrapes += 1;
        Ok(body)
    }

    fn wait(&mut self, what: &str, check: &dyn Fn(&str) -> bool) -> anyhow::Result<Duration> {
        let started = Instant::now();
        loop {
            let body = self.scrape()?;
            if check(&body) {
                return Ok(started.elapsed());
            }
            anyhow::ensure!(
                started.elapsed() < self.limit,
                "{what}: not after {:?}:\n{body}",
                self.limit
            );
            std::thread::sleep(EVERY);
        }
    }

    /// Keep scraping for `hold`, every answer passing `check`; returns how many there were.
    fn hold(
        &mut self,
        what: &str,
        hold: Duration,
        check: &dyn Fn(&str) -> bool,
    ) -> anyhow::Result<usize> {
        let (started, before) = (Instant::now(), self.scrapes);
        while started.elapsed() < hold {
            let body = self.scrape()?;
            anyhow::ensure!(
                check(&body),
                "{what}, {:?} into the hold:\n{body}",
                started.elapsed()
            );
            std::thread::sleep(EVERY);
        }
        Ok(self.scrapes - before)
    }

    /// Each fault in turn on `proxy`: wait for `down`, hold the fault `hold` while every scrape
    /// still shows `down`, lift it, wait for `back`; one NETFAULT line and one record in the
    /// run's `netfaults.jsonl` per fault. Then no scrape may have taken [`SLOWEST_ALLOWED`]:
    /// the store answers from memory whatever the collectors wait on.
    #[allow(clippy::too_many_arguments)]
    fn run_faults(
        &mut self,
        link: &str,
        proxy: &FaultProxy,
        faults: [(&str, Fault); 3],
        hold: Duration,
        down: &dyn Fn(&str) -> bool,
        back: &dyn Fn(&str) -> bool,
        others: &str,
    ) -> anyhow::Result<()> {
        let mut phases = Vec::new();
        for (name, fault) in faults {
            proxy.set(fault);
            let detect = self.wait(&format!("{link} {name}: down"), down)?;
            let held = self.hold(&format!("{link} {name}: held"), hold, down)?;
            // At most one 100 ms period lost per scrape's own time.
            assert!(
                held as f64 >= hold.as_secs_f64() / EVERY.as_secs_f64() / 2.0,
                "{link} {name}: only {held} scrapes in the {hold:?} hold"
            );
            proxy.set(Fault::None);
            let recover = self.wait(&format!("{link} {name}: back"), back)?;
            phases.push((name, detect, recover));
        }
        assert_eq!(phases.len(), 3);
        for (name, detect, recover) in &phases {
            eprintln!(
                "NETFAULT {link} {name}: down after {:.1} s, back {:.1} s after the link",
                detect.as_secs_f64(),
                recover.as_secs_f64()
            );
            surge_tests::run::record(
                "netfaults",
                &serde_json::json!({
                    "link": link,
                    "fault": name,
                    "down_s": (detect.as_secs_f64() * 10.0).round() / 10.0,
                    "back_s": (recover.as_secs_f64() * 10.0).round() / 10.0,
                    "others": others,
                    "scrapes": self.scrapes,
                    "slowest_ms": (self.slowest.as_secs_f64() * 10_000.0).round() / 10.0,
                }),
            )?;
        }
        eprintln!(
            "NETFAULT slowest /metrics answer {:.1} ms over {} scrapes",
            self.slowest.as_secs_f64() * 1000.0,
            self.scrapes
        );
        assert!(
            self.slowest < SLOWEST_ALLOWED,
            "a scrape took {:?} during a network fault",
            self.slowest
        );
        Ok(())
    }
}

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
    let mut scraper = Scraper::new(running.addr.to_string(), Duration::from_secs(20));
    let up = |b: &str, target: &str| source_up(b, "postgres", target);
    tokio::task::block_in_place(|| {
        scraper.wait("both up", &|b| {
            up(b, "primary") == Some(true) && up(b, "replica1") == Some(true)
        })?;
        // While a fault lasts the replica keeps being collected: every scrape of a 2 s hold
        // (four collections) shows the primary down and the replica up.
        scraper.run_faults(
            "exporter ↔ PostgreSQL primary",
            &proxy,
            [
                ("delay 2s", Fault::Delay(Duration::from_secs(2))),
                ("hang", Fault::Stall),
                ("cut", Fault::Cut),
            ],
            Duration::from_secs(2),
            &|b| up(b, "primary") == Some(false) && up(b, "replica1") == Some(true),
            &|b| up(b, "primary") == Some(true) && up(b, "replica1") == Some(true),
            "replica up throughout",
        )
    })?;
    running.stop().await.map_err(anyhow::Error::msg)?;
    Ok(())
}

/// The same faults on the exporter's link to the broker (which advertises the proxy, so every
/// request goes through it): the Kafka target reports itself down, `/metrics` keeps answering,
/// and the target recovers alone, with the group's lag exported again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exporter_to_broker_delayed_hung_and_cut_recovers_alone() -> anyhow::Result<()> {
    let broker_port = surge_servers::free_port()?;
    let proxy = FaultProxy::start(format!("127.0.0.1:{broker_port}").parse()?)?;
    let broker = surge_servers::KafkaBroker::start_advertising(broker_port, proxy.port())?;
    broker.create_topic("order-placed", 2)?;
    {
        // A group with a commit, so there is lag to export.
        use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
        let producer = broker.producer()?;
        producer.send("order-placed", 0, 5)?;
        producer.flush()?;
        let consumer: BaseConsumer = broker
            .consumer_config("payment")
            .set("enable.auto.commit", "false")
            .set("bootstrap.servers", format!("127.0.0.1:{}", proxy.port()))
            .create()?;
        consumer.subscribe(&["order-placed"])?;
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut read = 0;
        while read < 3 && Instant::now() < deadline {
            if let Some(Ok(_)) = consumer.poll(Duration::from_millis(200)) {
                read += 1;
            }
        }
        anyhow::ensure!(read >= 3, "read {read} of 5 records");
        consumer.commit_consumer_state(CommitMode::Sync)?;
    }
    let config = Config::parse(&format!(
        "[kafka]\ninterval = \"2s\"\ntimeout = \"2s\"\ndiscovery_interval = \"2s\"\n\
         [[kafka.clusters]]\nname = \"local\"\nbootstrap_servers = \"127.0.0.1:{}\"\n",
        proxy.port()
    ))?;
    let running = Exporter::new(&config)?
        .spawn(([127, 0, 0, 1], 0).into())
        .await
        .map_err(anyhow::Error::msg)?;
    let lag =
        "surge_kafka_group_topic_lag{cluster=\"local\",group=\"payment\",topic=\"order-placed\"}";

    let mut scraper = Scraper::new(running.addr.to_string(), Duration::from_secs(40));
    let kafka_up = |b: &str| source_up(b, "kafka", "local");
    let with_lag =
        |b: &str| kafka_up(b) == Some(true) && surge_testkit::http::series_value(b, lag).is_some();
    tokio::task::block_in_place(|| {
        scraper.wait("kafka up with the group's lag", &with_lag)?;
        scraper.run_faults(
            "exporter ↔ broker",
            &proxy,
            [
                ("delay 5s", Fault::Delay(Duration::from_secs(5))),
                ("hang", Fault::Stall),
                ("cut", Fault::Cut),
            ],
            // One collection (2 s) more, still down.
            Duration::from_secs(2),
            &|b| kafka_up(b) == Some(false),
            &with_lag,
            "",
        )
    })?;
    running.stop().await.map_err(anyhow::Error::msg)?;
    Ok(())
}
