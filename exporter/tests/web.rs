//! `--web.config.file` on the real binary: real Prometheus (Debian) scrapes it over TLS with
//! basic auth; plain HTTP, no or wrong credentials, and missing or foreign client certificates
//! are refused; the file reloads when it changes and on SIGHUP, keeping the last good config
//! when the new one is broken; a bad file at start is one line and exit 2. Certificates are
//! made in the test.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use surge_servers::tls::LocalCa;
use surge_servers::{Prometheus, ServerProcess, Signal, Workdir, free_port};
use surge_testkit::prom::PromQl;

const BIN: &str = env!("CARGO_BIN_EXE_surge-exporter");
const PASSWORD: &str = "scrape-secret-1";

/// An exporter config with one process workload (this test process), so there is data.
fn exporter_config(dir: &Path) -> anyhow::Result<PathBuf> {
    std::fs::write(dir.join("self-1.pid"), std::process::id().to_string())?;
    let path = dir.join("surge-exporter.toml");
    std::fs::write(
        &path,
        format!(
            "[processes]\ninterval = \"1s\"\ntimeout = \"900ms\"\n\
             [[processes.workloads]]\nnamespace = \"test\"\nworkload = \"self\"\ncpu_request = \"100m\"\npid_files = \"{}/self-*.pid\"\n",
            dir.display()
        ),
    )?;
    Ok(path)
}

fn hash(password: &str) -> anyhow::Result<String> {
    Ok(bcrypt::hash(password, 4)?)
}

/// A web config with TLS from `server` and one user, plus `extra` lines under
/// tls_server_config.
fn web_config(server: &surge_servers::tls::Issued, password_hash: &str, extra_tls: &str) -> String {
    format!(
        "tls_server_config:\n  cert_file: {}\n  key_file: {}\n{extra_tls}\
         http_server_config:\n  headers:\n    X-Frame-Options: deny\n\
         basic_auth_users:\n  prometheus: '{password_hash}'\n",
        server.cert.display(),
        server.key.display()
    )
}

struct Served {
    process: ServerProcess,
    port: u16,
}

fn start(dir: &Path, web: &Path) -> anyhow::Result<Served> {
    let port = free_port()?;
    let mut cmd = Command::new(BIN);
    cmd.arg("--config")
        .arg(exporter_config(dir)?)
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--web.config.file")
        .arg(web);
    let process = ServerProcess::spawn("surge-exporter", cmd, &dir.join("exporter.log"))?;
    Ok(Served { process, port })
}

/// A client trusting `ca`, optionally presenting `identity`.
fn client(
    ca: &LocalCa,
    identity: Option<&surge_servers::tls::Issued>,
) -> anyhow::Result<reqwest::blocking::Client> {
    let mut builder = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .tls_certs_only([reqwest::Certificate::from_pem(ca.pem().as_bytes())?]);
    if let Some(id) = identity {
        let mut pem = std::fs::read(&id.cert)?;
        pem.extend(std::fs::read(&id.key)?);
        builder = builder.identity(reqwest::Identity::from_pem(&pem)?);
    }
    Ok(builder.build()?)
}

/// Status of `GET /metrics` with `password` (none: no credentials), or the error's text.
fn scrape(
    client: &reqwest::blocking::Client,
    url: &str,
    password: Option<&str>,
) -> Result<reqwest::blocking::Response, String> {
    let mut request = client.get(format!("{url}/metrics"));
    if let Some(p) = password {
        request = request.basic_auth("prometheus", Some(p));
    }
    request.send().map_err(|e| format!("{e:?}"))
}

fn wait_status(
    client: &reqwest::blocking::Client,
    url: &str,
    password: Option<&str>,
    status: u16,
) -> anyhow::Result<()> {
    surge_servers::wait_until(
        &format!("{url} answering {status}"),
        Duration::from_secs(20),
        Duration::from_millis(100),
        || Ok(scrape(client, url, password).is_ok_and(|r| r.status().as_u16() == status)),
    )
}

#[test]
fn prometheus_scrapes_over_tls_with_basic_auth_and_the_rest_is_refused() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let ca = LocalCa::new(dir.path(), "ca")?;
    let server = ca.server("exporter", &["127.0.0.1", "localhost"])?;
    let web = dir.path().join("web.yml");
    std::fs::write(&web, web_config(&server, &hash(PASSWORD)?, ""))?;
    // The same file passes Prometheus' own checker: the format is the toolkit's.
    let check = Command::new("promtool")
        .arg("check")
        .arg("web-config")
        .arg(&web)
        .output()?;
    assert!(
        check.status.success(),
        "promtool check web-config: {}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    let exporter = start(dir.path(), &web)?;
    let url = format!("https://127.0.0.1:{}", exporter.port);
    let trusted = client(&ca, None)?;
    wait_status(&trusted, &url, Some(PASSWORD), 200)?;

    let ok = scrape(&trusted, &url, Some(PASSWORD)).map_err(anyhow::Error::msg)?;
    assert_eq!(ok.headers()["x-frame-options"], "deny");
    assert!(ok.text()?.contains("surge_source_up{source=\"processes\""));
    for (password, why) in [(None, "no credentials"), (Some("wrong"), "wrong password")] {
        let denied = scrape(&trusted, &url, password).map_err(anyhow::Error::msg)?;
        assert_eq!(denied.status().as_u16(), 401, "{why}");
        assert_eq!(denied.headers()["www-authenticate"], "Basic", "{why}");
    }
    // Plain HTTP to the TLS port gets no answer; a client without the CA does not trust it.
    let plain = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    assert!(
        scrape(
            &plain,
            &format!("http://127.0.0.1:{}", exporter.port),
            Some(PASSWORD)
        )
        .is_err()
    );
    let other_ca = LocalCa::new(dir.path(), "other-ca")?;
    let untrusting = client(&other_ca, None)?;
    let e = scrape(&untrusting, &url, Some(PASSWORD))
        .err()
        .unwrap_or_default();
    assert!(e.to_lowercase().contains("certificate"), "{e}");

    // Real Prometheus: the right password scrapes (up 1), a wrong one is refused (up 0).
    std::fs::write(dir.path().join("password"), PASSWORD)?;
    std::fs::write(dir.path().join("wrong-password"), "nope")?;
    let job = |name: &str, password_file: &str| {
        format!(
            "  - job_name: {name}\n    scheme: https\n    tls_config:\n      ca_file: {}\n    \
             basic_auth:\n      username: prometheus\n      password_file: {}\n    \
             static_configs:\n      - targets: ['127.0.0.1:{}']\n",
            ca.cert().display(),
            dir.path().join(password_file).display(),
            exporter.port
        )
    };
    let prometheus_config = format!(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n{}{}",
        job("surge-exporter", "password"),
        job("wrong-password", "wrong-password")
    );
    let prometheus = Prometheus::start_in(
        Workdir::temp("surge-web-prom-")?,
        free_port()?,
        &prometheus_config,
    )?;
    let prom = PromQl::new(&prometheus.url())?;
    surge_servers::wait_until(
        "Prometheus scraping over TLS with basic auth",
        Duration::from_secs(30),
        Duration::from_millis(250),
        || {
            Ok(prom.value("up{job=\"surge-exporter\"}")? == Some(1.0)
                && prom.value("up{job=\"wrong-password\"}")? == Some(0.0)
                && prom
                    .value("surge_source_up{job=\"surge-exporter\",source=\"processes\"}")?
                    .is_some())
        },
    )?;

    // A new password in the file applies without a restart; the old one stops working.
    let new_password = "scrape-secret-2";
    std::fs::write(&web, web_config(&server, &hash(new_password)?, ""))?;
    wait_status(&trusted, &url, Some(new_password), 200)?;
    wait_status(&trusted, &url, Some(PASSWORD), 401)?;
    // Until a line of the exporter's log satisfies `logged`.
    let wait_logged = |what: &str, logged: &dyn Fn(&str) -> bool| {
        surge_servers::wait_until(
            what,
            Duration::from_secs(10),
            Duration::from_millis(100),
            || Ok(exporter.process.log_tail(4000).lines().any(logged)),
        )
    };
    // SIGHUP reloads an unchanged file too (the log says why).
    exporter.process.signal(Signal::Hup)?;
    wait_logged("a reload on SIGHUP logged", &|l| {
        l.contains("web config reloaded") && l.contains("SIGHUP")
    })?;
    // A broken file (here on SIGHUP) keeps the last good config serving, and is logged.
    std::fs::write(&web, "basic_auth_users:\n  prometheus: not-a-hash\n")?;
    exporter.process.signal(Signal::Hup)?;
    wait_logged("the broken reload logged", &|l| {
        l.contains("web config not reloaded")
    })?;
    wait_status(&trusted, &url, Some(new_password), 200)?;
    assert!(
        exporter
            .process
            .log_tail(4000)
            .contains("not a bcrypt hash")
    );
    Ok(())
}

#[test]
fn client_certificates_are_required_and_verified_when_configured() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let ca = LocalCa::new(dir.path(), "ca")?;
    let clients = LocalCa::new(dir.path(), "clients")?;
    let stranger_ca = LocalCa::new(dir.path(), "strangers")?;
    let server = ca.server("exporter", &["127.0.0.1"])?;
    let prometheus_cert = clients.client("prometheus", "prometheus")?;
    let stranger = stranger_ca.client("stranger", "stranger")?;
    let web = dir.path().join("web.yml");
    std::fs::write(
        &web,
        web_config(
            &server,
            &hash(PASSWORD)?,
            &format!(
                "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {}\n  min_version: TLS13\n",
                clients.cert().display()
            ),
        ),
    )?;
    let exporter = start(dir.path(), &web)?;
    let url = format!("https://127.0.0.1:{}", exporter.port);
    let with_cert = client(&ca, Some(&prometheus_cert))?;
    wait_status(&with_cert, &url, Some(PASSWORD), 200)?;
    for (who, c) in [
        ("no client certificate", client(&ca, None)?),
        (
            "a certificate from another CA",
            client(&ca, Some(&stranger))?,
        ),
    ] {
        let result = scrape(&c, &url, Some(PASSWORD));
        assert!(
            result.as_ref().is_err(),
            "{who}: {:?}",
            result.map(|r| r.status())
        );
    }
    Ok(())
}

#[test]
fn a_bad_web_config_at_start_is_one_line_and_exit_2() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let config = exporter_config(dir.path())?;
    let cases = [
        ("missing.yml", None, "reading it"),
        (
            "header.yml",
            Some("http_server_config:\n  headers:\n    Server: surge\n"),
            "HTTP header \"Server\" can not be configured",
        ),
        (
            "tls.yml",
            Some("tls_server_config:\n  cert_file: nowhere.pem\n  key_file: nowhere-key.pem\n"),
            "tls_server_config.cert_file: reading",
        ),
    ];
    for (file, text, expected) in cases {
        let path = dir.path().join(file);
        if let Some(text) = text {
            std::fs::write(&path, text)?;
        }
        let out = Command::new(BIN)
            .arg("--config")
            .arg(&config)
            .arg("--web.config.file")
            .arg(&path)
            .output()?;
        let stderr = String::from_utf8(out.stderr)?;
        assert_eq!(out.status.code(), Some(2), "{file}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{file}: {stderr}");
        assert!(
            stderr.starts_with(&format!("surge-exporter: web config {}: ", path.display()))
                && stderr.contains(expected),
            "{file}: {stderr}"
        );
    }
    Ok(())
}

/// Real Prometheus asks for gzip when it scrapes (the exporter answers it compressed:
/// `exporter/tests/cli.rs`), so the compressed exposition is what it receives.
#[test]
fn prometheus_scrapes_asking_for_gzip() -> anyhow::Result<()> {
    use std::io::{Read, Write};
    let target = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = target.local_addr()?.port();
    let prometheus = Prometheus::start_in(
        Workdir::temp("surge-gzip-prom-")?,
        free_port()?,
        &format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: target\n    \
             static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
        ),
    )?;
    // Prometheus is up; its first scrape comes within a scrape interval.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let request = target.accept().map_err(|e| e.to_string()).and_then(|(mut conn, _)| {
            conn.set_read_timeout(Some(Duration::from_secs(5)))
                .map_err(|e| e.to_string())?;
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                conn.read_exact(&mut byte).map_err(|e| e.to_string())?;
                head.push(byte[0]);
            }
            let body = "up_test 1\n";
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            Ok(String::from_utf8_lossy(&head).to_ascii_lowercase())
        });
        let _ = tx.send(request);
    });
    let head = rx
        .recv_timeout(Duration::from_secs(30))
        .map_err(|_| anyhow::anyhow!("Prometheus did not scrape in 30 s"))?
        .map_err(anyhow::Error::msg)?;
    drop(prometheus);
    assert!(head.starts_with("get /metrics "), "{head}");
    assert!(
        head.lines()
            .any(|l| l.starts_with("accept-encoding:") && l.contains("gzip")),
        "{head}"
    );
    Ok(())
}
