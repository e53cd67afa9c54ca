//! Secured endpoints on the local stack: with `exporter_tls`, surge-exporter serves `/metrics`
//! over TLS with basic auth (a CA and password made at start) and the stack's real Prometheus
//! scrapes it so; plain HTTP gets nothing. The secrets it wrote are the owner's only.

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

    // The stack's secrets (JWT key, monitoring password, scrape password, TLS keys) are the
    // owner's only: the folder 0700, every file in it 0600.
    use std::os::unix::fs::MetadataExt;
    let secrets = dir.path().join("stack/secrets");
    assert_eq!(std::fs::metadata(&secrets)?.mode() & 0o777, 0o700);
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&secrets)? {
        let entry = entry?;
        let mode = entry.metadata()?.mode() & 0o777;
        assert_eq!(mode, 0o600, "{} is {mode:o}", entry.path().display());
        files.push(entry.file_name().to_string_lossy().into_owned());
    }
    files.sort();
    for expected in [
        "jwt",
        "pg-monitor",
        "exporter-scrape-password",
        "surge-exporter-key.pem",
    ] {
        assert!(
            files.iter().any(|f| f == expected),
            "{expected} not in {files:?}"
        );
    }
    Ok(())
}

/// Prometheus and Alertmanager (Debian) behind TLS and basic auth, with certificates made here.
struct SecuredMonitoring {
    dir: tempfile::TempDir,
    ca: surge_servers::tls::LocalCa,
    prometheus: surge_servers::Prometheus,
    alertmanager: surge_servers::Alertmanager,
}

const PASSWORD: &str = "panel-secret";

fn secured_monitoring() -> anyhow::Result<SecuredMonitoring> {
    use surge_servers::{Alertmanager, Prometheus, WebConfig, Workdir, free_port};
    let dir = tempfile::Builder::new()
        .prefix("surge-secured-")
        .tempdir()?;
    let d = dir.path();
    let ca = surge_servers::tls::LocalCa::new(d, "ca")?;
    let server = ca.server("server", &["127.0.0.1", "localhost"])?;
    let hash = bcrypt::hash(PASSWORD, 4)?;
    let web = d.join("web.yml");
    std::fs::write(
        &web,
        format!(
            "tls_server_config:\n  cert_file: {}\n  key_file: {}\nbasic_auth_users:\n  ops: '{hash}'\n",
            server.cert.display(),
            server.key.display()
        ),
    )?;
    std::fs::write(d.join("password"), format!("{PASSWORD}\n"))?;
    let secured = WebConfig {
        file: &web,
        tls: true,
    };
    let ca_file = ca.cert();
    let password_file = d.join("password");
    // What a client of the two needs, at the indent of a list item's fields.
    let client_tls = |indent: &str| {
        format!(
            "{indent}scheme: https\n{indent}tls_config:\n{indent}  ca_file: {}\n\
             {indent}basic_auth:\n{indent}  username: ops\n{indent}  password_file: {}\n",
            ca_file.display(),
            password_file.display()
        )
    };
    let am_port = free_port()?;
    let alertmanager = Alertmanager::start_with_web(
        Workdir::temp("surge-secured-am-")?,
        am_port,
        "route:\n  receiver: \"null\"\n  group_wait: 1s\nreceivers:\n  - name: \"null\"\n",
        Some(secured),
    )?;
    let rules = d.join("rules.yml");
    std::fs::write(
        &rules,
        "groups:\n  - name: always\n    rules:\n      - alert: AlwaysFiring\n        expr: vector(1)\n        labels:\n          severity: warning\n        annotations:\n          summary: always firing\n",
    )?;
    let prom_port = free_port()?;
    let prometheus = Prometheus::start_with_web(
        Workdir::temp("surge-secured-prom-")?,
        prom_port,
        &format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\n\
             alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['127.0.0.1:{am_port}']\n{}\
             scrape_configs:\n  - job_name: prometheus\n    static_configs:\n      - targets: ['127.0.0.1:{prom_port}']\n{}",
            rules.display(),
            client_tls("      "),
            client_tls("    "),
        ),
        Some(secured),
    )?;
    Ok(SecuredMonitoring {
        dir,
        ca,
        prometheus,
        alertmanager,
    })
}

impl SecuredMonitoring {
    /// A panel config reaching both with `ca_file` and the basic auth in `auth`.
    fn config(
        &self,
        name: &str,
        ca_file: &std::path::Path,
        auth: &str,
    ) -> anyhow::Result<std::path::PathBuf> {
        let path = self.dir.path().join(name);
        let source = |url: String| {
            format!(
                "url = \"{url}\"\nca_file = \"{}\"\n{auth}\n",
                ca_file.display()
            )
        };
        std::fs::write(
            &path,
            format!(
                "[sources.prometheus]\n{}[sources.alertmanager]\n{}",
                source(self.prometheus.url()),
                source(self.alertmanager.url())
            ),
        )?;
        Ok(path)
    }

    fn basic_auth(&self, password_file: &str) -> String {
        format!(
            "basic_auth = {{ username = \"ops\", password_file = \"{}\" }}",
            self.dir.path().join(password_file).display()
        )
    }
}

/// `surge --once` with `config`, at 200×40.
fn frame(config: &std::path::Path, view: &str) -> anyhow::Result<String> {
    surge_tests::panel::frame_with_config(config, &["--size", "200x40", "--view", view])
}

#[test]
fn the_panel_reads_prometheus_and_alertmanager_behind_tls_and_basic_auth() -> anyhow::Result<()> {
    let m = secured_monitoring()?;
    let good = m.config("good.toml", &m.ca.cert(), &m.basic_auth("password"))?;
    let mut shown = String::new();
    surge_servers::wait_until(
        "the panel showing the firing alert from both",
        Duration::from_secs(60),
        Duration::from_secs(1),
        || {
            shown = frame(&good, "alerts")?;
            Ok(shown.contains("AlwaysFiring") && !shown.contains("is failing"))
        },
    )
    .map_err(|e| anyhow::anyhow!("{e:#}\n{shown}"))?;
    // The password is not in what the panel prints.
    assert!(!shown.contains(PASSWORD), "{shown}");

    // Each failure gets its own banner, naming what to fix.
    std::fs::write(m.dir.path().join("wrong"), "not-the-password")?;
    let other = surge_servers::tls::LocalCa::new(m.dir.path(), "other-ca")?;
    let expired_dir = m.dir.path();
    let cases = [
        (
            m.config("wrong.toml", &m.ca.cert(), &m.basic_auth("wrong"))?,
            format!(
                "unauthorized (HTTP 401): check user ops and the password in {}",
                expired_dir.join("wrong").display()
            ),
        ),
        (
            m.config("unknown-ca.toml", &other.cert(), &m.basic_auth("password"))?,
            "not signed by a CA this source trusts".to_string(),
        ),
        (
            m.config("no-auth.toml", &m.ca.cert(), "")?,
            "unauthorized (HTTP 401): no credentials are configured for this source".to_string(),
        ),
    ];
    for (config, expected) in cases {
        let shown = frame(&config, "overview")?;
        let banner = shown
            .lines()
            .find(|l| l.contains("prometheus is failing"))
            .unwrap_or_default();
        assert!(banner.contains(&expected), "{expected}:\n{shown}");
    }
    Ok(())
}

#[test]
fn an_expired_server_certificate_gets_its_own_banner() -> anyhow::Result<()> {
    use surge_servers::{Prometheus, WebConfig, Workdir, free_port};
    let dir = tempfile::tempdir()?;
    let ca = surge_servers::tls::LocalCa::new(dir.path(), "ca")?;
    let expired = ca.expired_server("expired", &["127.0.0.1"])?;
    let web = dir.path().join("web.yml");
    std::fs::write(
        &web,
        format!(
            "tls_server_config:\n  cert_file: {}\n  key_file: {}\n",
            expired.cert.display(),
            expired.key.display()
        ),
    )?;
    let prometheus = Prometheus::start_with_web(
        Workdir::temp("surge-expired-prom-")?,
        free_port()?,
        "global:\n  scrape_interval: 15s\n",
        Some(WebConfig {
            file: &web,
            tls: true,
        }),
    )?;
    let config = dir.path().join("panel.toml");
    std::fs::write(
        &config,
        format!(
            "[sources.prometheus]\nurl = \"{}\"\nca_file = \"{}\"\n",
            prometheus.url(),
            ca.cert().display()
        ),
    )?;
    let shown = frame(&config, "overview")?;
    assert!(
        shown.contains("prometheus is failing: ") && shown.contains("has expired"),
        "{shown}"
    );
    // Told to skip verification, it connects — and says so on every frame.
    std::fs::write(
        &config,
        format!(
            "[sources.prometheus]\nurl = \"{}\"\ninsecure_skip_verify = true\n",
            prometheus.url()
        ),
    )?;
    let shown = frame(&config, "overview")?;
    assert!(
        shown.contains("TLS verification is OFF for prometheus") && !shown.contains("is failing"),
        "{shown}"
    );
    Ok(())
}

#[test]
fn silences_work_through_an_authenticated_alertmanager() -> anyhow::Result<()> {
    use surge_client::fetch::Alertmanager;
    use surge_client::fetch::{Access, BasicAuth, SourceClient};
    use surge_client::model::{Matcher, NewSilence};
    let m = secured_monitoring()?;
    let access = Access {
        ca_file: Some(m.ca.cert()),
        basic_auth: Some(BasicAuth {
            username: "ops".into(),
            password_file: m.dir.path().join("password"),
        }),
        ..Access::default()
    };
    let am = Alertmanager::new(
        &m.alertmanager.url(),
        SourceClient::new(&access, Duration::from_secs(5)).map_err(anyhow::Error::msg)?,
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let silence = NewSilence {
            matchers: vec![Matcher {
                name: "alertname".into(),
                value: "AlwaysFiring".into(),
                is_regex: false,
                is_equal: true,
            }],
            seconds: 600,
            created_by: "secured-test".into(),
            comment: "through TLS and basic auth".into(),
        };
        let id = am
            .create_silence(&silence, surge_client::fetch::now())
            .await?;
        let listed = am.silences().await?;
        assert!(listed.iter().any(|s| s.id == id), "{listed:?}");
        am.expire_silence(&id).await?;
        // Without credentials the same request is refused with the reason.
        let anonymous = Alertmanager::new(
            &m.alertmanager.url(),
            SourceClient::new(
                &Access {
                    ca_file: Some(m.ca.cert()),
                    ..Access::default()
                },
                Duration::from_secs(5),
            )
            .map_err(anyhow::Error::msg)?,
        );
        let refused = anonymous
            .create_silence(&silence, surge_client::fetch::now())
            .await
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(refused.contains("401"), "{refused}");
        anyhow::Ok(())
    })
}
