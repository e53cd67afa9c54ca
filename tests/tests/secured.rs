//! Secured endpoints on the local stack: with `exporter_tls`, surge-exporter serves `/metrics`
//! over TLS with basic auth (a CA and password made at start) and the stack's real Prometheus
//! scrapes it so; plain HTTP gets nothing.

use std::time::Duration;

use surge_stack::{Stack, StackOptions};
use surge_testkit::prom::PromQl;

#[test]
fn the_stack_with_exporter_tls_is_scraped_over_tls_with_basic_auth() -> anyhow::Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("surge-secured-")
        .tempdir()?;
    let mut options = StackOptions::for_checkout(&dir.path().join("stack"))?;
    options.autoscale = None;
    options.exporter_tls = true;
    options.timing.scrape = Duration::from_secs(1);
    let stack = Stack::start(options)?;
    let access = stack
        .exporter_access
        .clone()
        .ok_or_else(|| anyhow::anyhow!("no access"))?;
    let port = stack.exporter_port.unwrap_or(9);
    let prom = PromQl::new(
        &stack
            .prometheus
            .as_ref()
            .map(|p| p.url())
            .unwrap_or_default(),
    )?;
    surge_servers::wait_until(
        "Prometheus scraping the exporter over TLS",
        Duration::from_secs(60),
        Duration::from_millis(500),
        || {
            Ok(prom.value("up{job=\"surge-exporter\"}")? == Some(1.0)
                && prom
                    .value("surge_source_up{job=\"surge-exporter\",source=\"postgres\",target=\"primary\"}")?
                    == Some(1.0))
        },
    )?;
    // Plain HTTP to it gets no answer.
    assert!(surge_servers::http::get(&format!("127.0.0.1:{port}"), "/metrics", None).is_err());
    // With the CA and the password file the stack wrote, it answers; without them, 401.
    let client = reqwest::blocking::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&std::fs::read(&access.ca)?)?])
        .timeout(Duration::from_secs(5))
        .build()?;
    let url = format!("https://127.0.0.1:{port}/metrics");
    let password = std::fs::read_to_string(&access.password_file)?;
    let ok = client
        .get(&url)
        .basic_auth(&access.username, Some(password.trim()))
        .send()?;
    assert_eq!(ok.status().as_u16(), 200);
    assert_eq!(client.get(&url).send()?.status().as_u16(), 401);
    Ok(())
}
