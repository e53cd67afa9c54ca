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
    start_with(dir, &["--web.config.file".as_ref(), web.as_os_str()])
}

/// The exporter on a free port with [`exporter_config`] and `args`.
fn start_with(dir: &Path, args: &[&std::ffi::OsStr]) -> anyhow::Result<Served> {
    let port = free_port()?;
    let mut cmd = Command::new(BIN);
    cmd.arg("--config")
        .arg(exporter_config(dir)?)
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .args(args);
    let process = ServerProcess::spawn("surge-exporter", cmd, &dir.join("exporter.log"))?;
    Ok(Served { process, port })
}

/// A client trusting `ca`, optionally presenting `identity`.
fn client(
    ca: &LocalCa,
    identity: Option<&surge_servers::tls::Issued>,
) -> anyhow::Result<reqwest::blocking::Client> {
    // No pooled connections: each request is a new handshake with the config of its moment.
    let mut builder = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .pool_max_idle_per_host(0)
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
    let cost4 = hash(PASSWORD)?;
    let at_cost = |cost: &str| {
        format!(
            "basic_auth_users:\n  prometheus: '{}'\n",
            cost4.replacen("$04$", &format!("${cost}$"), 1)
        )
    };
    let (cost15, cost31) = (at_cost("15"), at_cost("31"));
    let cases = [
        ("missing.yml", None, "reading it"),
        (
            "cost15.yml",
            Some(cost15.as_str()),
            "basic_auth_users.prometheus: bcrypt cost 15 is above 14",
        ),
        (
            "cost31.yml",
            Some(cost31.as_str()),
            "basic_auth_users.prometheus: bcrypt cost 31 is above 14",
        ),
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

/// `match[]` as Prometheus sends it from a scrape config's `params` (as for `/federate`):
/// only the series asked for reach Prometheus; a bad selector is a 400 naming it, one line.
#[test]
fn prometheus_scrapes_only_the_series_match_selects() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let Served {
        process: _exporter,
        port,
    } = start_with(dir.path(), &[])?;
    let url = format!("http://127.0.0.1:{port}");
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    wait_status(&client, &url, None, 200)?;
    let bad = client
        .get(format!("{url}/metrics"))
        .query(&[("match[]", "surge_source_up{source=~\"(\"}")])
        .send()?;
    assert_eq!(bad.status().as_u16(), 400);
    let text = bad.text()?;
    assert!(
        text.starts_with("match[] \"surge_source_up{source=~\\\"(\\\"}\": label source: bad regex")
            && text.trim_end().lines().count() == 1,
        "{text}"
    );

    let prometheus = Prometheus::start_in(
        Workdir::temp("surge-match-prom-")?,
        free_port()?,
        &format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: exporter\n    \
             params:\n      'match[]': ['surge_source_up', 'surge_pod_ready{{workload=\"self\"}}', 'surge_pod_ready{{workload=\"other\"}}']\n    \
             static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
        ),
    )?;
    let prom = PromQl::new(&prometheus.url())?;
    let names = || -> anyhow::Result<Vec<String>> {
        let mut names =
            prom.label_values("__name__", "{job=\"exporter\",__name__=~\"surge_.*\"}")?;
        names.sort();
        Ok(names)
    };
    surge_servers::wait_until(
        "Prometheus holding the exporter's series",
        Duration::from_secs(30),
        Duration::from_millis(200),
        || Ok(names()?.len() >= 2),
    )?;
    assert_eq!(names()?, ["surge_pod_ready", "surge_source_up"]);
    let workloads = prom.label_values("workload", "surge_pod_ready")?;
    assert_eq!(workloads, ["self"]);
    Ok(())
}

/// Until a line of `process`'s log satisfies `logged`.
fn wait_logged(
    process: &ServerProcess,
    what: &str,
    logged: &dyn Fn(&str) -> bool,
) -> anyhow::Result<()> {
    surge_servers::wait_until(
        what,
        Duration::from_secs(10),
        Duration::from_millis(100),
        || Ok(process.log_tail(16_000).lines().any(logged)),
    )
}

/// An editor or config tool truncates the file before writing it anew; a reload must never
/// open the endpoint. Truncated, emptied, corrupted, and rewritten without each protection,
/// while a client with a certificate and the password scrapes all along.
#[test]
fn a_reload_never_turns_tls_or_authentication_off() -> anyhow::Result<()> {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let dir = tempfile::tempdir()?;
    let ca = LocalCa::new(dir.path(), "ca")?;
    let clients = LocalCa::new(dir.path(), "clients")?;
    let server = ca.server("exporter", &["127.0.0.1"])?;
    let prometheus_cert = clients.client("prometheus", "prometheus")?;
    let password_hash = hash(PASSWORD)?;
    let mtls = |auth: &str| {
        format!(
            "  client_auth_type: {auth}\n  client_ca_file: {}\n",
            clients.cert().display()
        )
    };
    let web = dir.path().join("web.yml");
    let good = web_config(&server, &password_hash, &mtls("RequireAndVerifyClientCert"));
    std::fs::write(&web, &good)?;
    let exporter = start(dir.path(), &web)?;
    let url = format!("https://127.0.0.1:{}", exporter.port);
    let with_cert = client(&ca, Some(&prometheus_cert))?;
    wait_status(&with_cert, &url, Some(PASSWORD), 200)?;

    // The scraper: every answer must be a 200 under the first config.
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let scrapes = std::sync::Arc::new(AtomicUsize::new(0));
    let scraper = {
        let (stop, scrapes, url) = (stop.clone(), scrapes.clone(), url.clone());
        let with_cert = with_cert.clone();
        std::thread::spawn(move || -> Result<(), String> {
            while !stop.load(Ordering::Relaxed) {
                let status = scrape(&with_cert, &url, Some(PASSWORD))?.status();
                if status != 200 {
                    return Err(format!("scrape answered {status}"));
                }
                scrapes.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(50));
            }
            Ok(())
        })
    };
    let plain = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()?;
    let plain_url = format!("http://127.0.0.1:{}", exporter.port);
    let no_cert = client(&ca, None)?;
    let plain_http_config = "http_server_config:\n  headers:\n    X-Frame-Options: deny\n";
    let unverified = web_config(&server, &password_hash, &mtls("RequireAnyClientCert"));
    let optional = web_config(&server, &password_hash, &mtls("VerifyClientCertIfGiven"));
    let without_users = format!(
        "tls_server_config:\n  cert_file: {}\n  key_file: {}\n{}",
        server.cert.display(),
        server.key.display(),
        mtls("RequireAndVerifyClientCert")
    );
    // Cut short mid-write: the file up to the key file's name.
    let half_written = &good[..good.find("key_file").unwrap_or(good.len() / 2)];
    let cases: [(&str, &str, &str); 8] = [
        ("truncated", "", "the file is empty"),
        ("blank", "\n  \n", "the file is empty"),
        (
            "half written",
            half_written,
            "tls_server_config: key_file is missing",
        ),
        (
            "not text",
            "\u{0}\u{7f}\u{1}garbage\n",
            "control characters are not allowed",
        ),
        (
            "plain HTTP",
            plain_http_config,
            "it would turn off TLS, required client certificates, client certificates verified against client_ca_file, basic_auth_users",
        ),
        (
            "certificates not verified",
            &unverified,
            "it would turn off client certificates verified against client_ca_file",
        ),
        (
            "certificates optional",
            &optional,
            "it would turn off required client certificates (",
        ),
        (
            "no basic auth",
            &without_users,
            "it would turn off basic_auth_users",
        ),
    ];
    let refusals = |expected: &str| {
        exporter
            .process
            .log_tail(64_000)
            .lines()
            .filter(|l| {
                l.contains("ERROR") && l.contains("web config not reloaded") && l.contains(expected)
            })
            .count()
    };
    for (case, text, expected) in cases {
        let before = refusals(expected);
        if text.is_empty() {
            // What an editor does first: truncate in place.
            std::fs::File::create(&web)?;
        } else {
            std::fs::write(&web, text)?;
        }
        surge_servers::wait_until(
            &format!("{case}: refused and logged at error"),
            Duration::from_secs(10),
            Duration::from_millis(100),
            || Ok(refusals(expected) > before),
        )?;
        assert!(
            scrape(&plain, &plain_url, None).is_err(),
            "{case}: plain HTTP was answered"
        );
        assert!(
            scrape(&no_cert, &url, Some(PASSWORD)).is_err(),
            "{case}: a client without a certificate was answered"
        );
        let denied = scrape(&with_cert, &url, None).map_err(anyhow::Error::msg)?;
        assert_eq!(denied.status().as_u16(), 401, "{case}: no password");
    }
    // A good file still reloads after all that: a new password applies.
    std::fs::write(
        &web,
        web_config(
            &server,
            &hash("scrape-secret-3")?,
            &mtls("RequireAndVerifyClientCert"),
        ),
    )?;
    wait_logged(&exporter.process, "the good file reloaded", &|l| {
        l.contains("web config reloaded")
    })?;
    stop.store(true, Ordering::Relaxed);
    let scraped = scraper
        .join()
        .map_err(|_| anyhow::anyhow!("scraper panicked"))?;
    // The scraper stopped at the first non-200 or error; the new password is the one expected
    // after the last reload, so a 401 right at the end is the reload, not a failure.
    match scraped {
        Ok(()) => {}
        Err(e) if e.contains("401") => {}
        Err(e) => anyhow::bail!("the scraper saw {e}"),
    }
    assert!(
        scrapes.load(Ordering::Relaxed) >= 10,
        "only {} scrapes through the refused reloads",
        scrapes.load(Ordering::Relaxed)
    );
    Ok(())
}

/// A renewed certificate is served without SIGHUP or an edit to the web config: the server
/// certificate is replaced (certificate file first, then key, as a renewal tool writes them)
/// by one from a new CA while real Prometheus, trusting both CAs, scrapes every second.
#[test]
fn a_renewed_certificate_is_served_without_a_signal() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let old_ca = LocalCa::new(dir.path(), "old-ca")?;
    let new_ca = LocalCa::new(dir.path(), "new-ca")?;
    let server = old_ca.server("exporter", &["127.0.0.1"])?;
    let renewed = new_ca.server("exporter-renewed", &["127.0.0.1"])?;
    let web = dir.path().join("web.yml");
    std::fs::write(&web, web_config(&server, &hash(PASSWORD)?, ""))?;
    let exporter = start(dir.path(), &web)?;
    let url = format!("https://127.0.0.1:{}", exporter.port);
    let trusts_old = client(&old_ca, None)?;
    let trusts_new = client(&new_ca, None)?;
    wait_status(&trusts_old, &url, Some(PASSWORD), 200)?;
    assert!(scrape(&trusts_new, &url, Some(PASSWORD)).is_err());

    let both = dir.path().join("both-cas.pem");
    std::fs::write(&both, old_ca.pem() + &new_ca.pem())?;
    std::fs::write(dir.path().join("password"), PASSWORD)?;
    let prometheus = Prometheus::start_in(
        Workdir::temp("surge-rotate-prom-")?,
        free_port()?,
        &format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: exporter\n    \
             scheme: https\n    tls_config:\n      ca_file: {}\n    basic_auth:\n      \
             username: prometheus\n      password_file: {}\n    static_configs:\n      \
             - targets: ['127.0.0.1:{}']\n",
            both.display(),
            dir.path().join("password").display(),
            exporter.port
        ),
    )?;
    let prom = PromQl::new(&prometheus.url())?;
    let scraped = || -> anyhow::Result<f64> {
        Ok(prom
            .value("count_over_time(up{job=\"exporter\"}[10m])")?
            .unwrap_or(0.0))
    };
    surge_servers::wait_until(
        "Prometheus scraping the old certificate",
        Duration::from_secs(30),
        Duration::from_millis(250),
        || Ok(scraped()? >= 2.0),
    )?;
    std::fs::copy(&renewed.cert, &server.cert)?;
    std::fs::copy(&renewed.key, &server.key)?;
    wait_status(&trusts_new, &url, Some(PASSWORD), 200)?;
    assert!(scrape(&trusts_old, &url, Some(PASSWORD)).is_err());
    let at_rotation = scraped()?;
    surge_servers::wait_until(
        "Prometheus scraping the renewed certificate",
        Duration::from_secs(30),
        Duration::from_millis(250),
        || Ok(scraped()? >= at_rotation + 2.0),
    )?;
    // Not one failed scrape across the rotation.
    assert_eq!(
        prom.value("min_over_time(up{job=\"exporter\"}[10m])")?,
        Some(1.0),
        "a scrape failed while the certificate was renewed"
    );
    Ok(())
}

/// A password checked once is remembered, right or wrong: a repeated wrong guess runs no
/// bcrypt. A flood of fresh guesses is bounded (429 past the waiting limit) and does not
/// delay a scraper whose password is already verified.
#[test]
fn password_guesses_cost_the_guesser_not_the_scraper() -> anyhow::Result<()> {
    use std::time::Instant;
    let dir = tempfile::tempdir()?;
    let web = dir.path().join("web.yml");
    // Cost 10 (Go's default): a check takes tens of milliseconds, an HTTP answer far less.
    std::fs::write(
        &web,
        format!(
            "basic_auth_users:\n  prometheus: '{}'\n",
            bcrypt::hash(PASSWORD, 10)?
        ),
    )?;
    let exporter = start(dir.path(), &web)?;
    let url = format!("http://127.0.0.1:{}", exporter.port);
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    wait_status(&http, &url, Some(PASSWORD), 200)?;

    let timed = |password: &str| -> anyhow::Result<Duration> {
        let started = Instant::now();
        let answer = scrape(&http, &url, Some(password)).map_err(anyhow::Error::msg)?;
        assert_eq!(answer.status().as_u16(), 401);
        Ok(started.elapsed())
    };
    let first = timed("guess-1")?;
    let repeats = 20;
    let mut repeated = Duration::ZERO;
    for _ in 0..repeats {
        repeated += timed("guess-1")?;
    }
    // Checked each time, 20 repeats would take 20 checks; remembered, far less than 5.
    assert!(
        repeated < first * 5,
        "{repeats} repeats of a wrong guess took {repeated:?}; the first took {first:?}"
    );

    // 32 guessers, each with fresh guesses, at once.
    let guessers: Vec<_> = (0..32)
        .map(|g| {
            let (http, url) = (http.clone(), url.clone());
            std::thread::spawn(move || {
                let mut statuses = Vec::new();
                for i in 0..6 {
                    if let Ok(r) = scrape(&http, &url, Some(&format!("guess-{g}-{i}"))) {
                        statuses.push(r.status().as_u16());
                    }
                }
                statuses
            })
        })
        .collect();
    // Meanwhile the scraper, verified once already, is answered every time.
    let mut slowest = Duration::ZERO;
    for _ in 0..20 {
        let started = Instant::now();
        let answer = scrape(&http, &url, Some(PASSWORD)).map_err(anyhow::Error::msg)?;
        assert_eq!(answer.status().as_u16(), 200);
        slowest = slowest.max(started.elapsed());
    }
    let statuses: Vec<u16> = guessers
        .into_iter()
        .flat_map(|g| g.join().unwrap_or_default())
        .collect();
    let busy = statuses.iter().filter(|s| **s == 429).count();
    let denied = statuses.iter().filter(|s| **s == 401).count();
    assert_eq!(busy + denied, statuses.len(), "{statuses:?}");
    assert_eq!(statuses.len(), 32 * 6, "guesses not answered");
    assert!(
        busy > 0,
        "no guess was turned away: {denied} waited for bcrypt"
    );
    assert!(denied > 0, "no guess was checked");
    assert!(
        slowest < first * 10,
        "a verified scrape took {slowest:?} during the flood (a check takes {first:?})"
    );
    Ok(())
}

/// `--web.max-connections`: connections past the cap wait to be accepted until one ends.
#[test]
fn connections_past_the_cap_wait_for_one_to_end() -> anyhow::Result<()> {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    let dir = tempfile::tempdir()?;
    let Served {
        process: _exporter,
        port,
    } = start_with(
        dir.path(),
        &["--web.max-connections".as_ref(), "2".as_ref()],
    )?;
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    wait_status(&http, &format!("http://127.0.0.1:{port}"), None, 200)?;
    // Its pooled connection would hold a slot.
    drop(http);
    // Two idle connections hold both slots (each is served: a request on it is answered).
    let mut idle: Vec<TcpStream> = Vec::new();
    for _ in 0..2 {
        let mut c = TcpStream::connect(("127.0.0.1", port))?;
        c.set_read_timeout(Some(Duration::from_secs(5)))?;
        c.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")?;
        let mut first = [0u8; 12];
        c.read_exact(&mut first)?;
        assert_eq!(&first, b"HTTP/1.1 200");
        idle.push(c);
    }
    let mut third = TcpStream::connect(("127.0.0.1", port))?;
    third.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")?;
    third.set_read_timeout(Some(Duration::from_secs(1)))?;
    let mut first = [0u8; 12];
    let early = third.read(&mut first);
    assert!(
        matches!(&early, Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)),
        "a third connection was served while two held the cap: {early:?}"
    );
    drop(idle.pop());
    third.set_read_timeout(Some(Duration::from_secs(5)))?;
    third.read_exact(&mut first)?;
    assert_eq!(&first, b"HTTP/1.1 200");
    Ok(())
}
