//! The Debian-packaged servers start, answer, and stop.

use surge_servers::{Alertmanager, Nginx, Prometheus, Redis, Workdir, free_port};

#[test]
fn redis_nginx_prometheus_alertmanager_start_and_answer() -> anyhow::Result<()> {
    let redis = Redis::start()?;
    assert!(redis.url().starts_with("redis://127.0.0.1:"));

    let port = free_port()?;
    let nginx = Nginx::start_in(
        Workdir::temp("surge-nginx-")?,
        &format!("  server {{ listen 127.0.0.1:{port}; location / {{ return 200 \"one\\n\"; }} }}"),
        port,
    )?;
    let addr = format!("127.0.0.1:{port}");
    assert_eq!(surge_servers::http::get(&addr, "/", None)?.2, "one\n");
    nginx.reload(&format!(
        "  server {{ listen 127.0.0.1:{port}; location / {{ return 200 \"two\\n\"; }} }}"
    ))?;
    surge_servers::wait_until(
        "reload",
        std::time::Duration::from_secs(5),
        std::time::Duration::from_millis(50),
        || Ok(surge_servers::http::get(&addr, "/", None)?.2 == "two\n"),
    )?;

    let prometheus = Prometheus::start_in(
        Workdir::temp("surge-prom-")?,
        free_port()?,
        "global:\n  scrape_interval: 1s\nscrape_configs: []\n",
    )?;
    let addr = prometheus.url().trim_start_matches("http://").to_string();
    let (status, _, body) = surge_servers::http::get(&addr, "/api/v1/query?query=1%2B1", None)?;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"2\""), "{body}");

    let alertmanager = Alertmanager::start_in(
        Workdir::temp("surge-am-")?,
        free_port()?,
        "route:\n  receiver: \"null\"\nreceivers:\n  - name: \"null\"\n",
    )?;
    let addr = alertmanager.url().trim_start_matches("http://").to_string();
    assert_eq!(
        surge_servers::http::get(&addr, "/api/v2/status", None)?.0,
        200
    );
    Ok(())
}
