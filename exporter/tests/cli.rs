//! The `surge-exporter` binary: `--once`, exposition lint, exit codes, config errors, serving.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use surge_servers::PgCluster;

const BIN: &str = env!("CARGO_BIN_EXE_surge-exporter");

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// A config for `cluster`'s nodes (and `extra`), collecting every `period` under as long a
/// timeout.
fn pg_config(
    dir: &Path,
    cluster: &PgCluster,
    period: &str,
    extra: &str,
) -> anyhow::Result<PathBuf> {
    let password_file = dir.join("password");
    std::fs::write(&password_file, cluster.monitor_password())?;
    let mut text = format!("[postgres]\ninterval = \"{period}\"\ntimeout = \"{period}\"\n");
    for name in cluster.node_names() {
        text.push_str(&format!(
            "[[postgres.targets]]\nname = \"{name}\"\ndsn = \"{}\"\npassword_file = \"{}\"\n",
            cluster.monitor_dsn(&name)?,
            password_file.display()
        ));
    }
    text.push_str(extra);
    let path = dir.join("surge-exporter.toml");
    std::fs::write(&path, text)?;
    Ok(path)
}

/// `--version` names the commit the binary was built from: this checkout's HEAD when the
/// suite built it from one (`unknown` without git).
#[test]
fn version_names_the_commit_it_was_built_from() {
    let head = surge_build_info::checkout_commit(std::path::Path::new(env!("CARGO_MANIFEST_DIR")));
    let out = Command::new(BIN).arg("--version").output().expect("run");
    assert!(out.status.success());
    let version = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        version.trim(),
        format!(
            "surge-exporter {} (commit {head})",
            env!("CARGO_PKG_VERSION")
        )
    );
}

#[test]
fn once_prints_lint_clean_exposition_and_exit_code_tracks_failures() -> anyhow::Result<()> {
    let cluster = PgCluster::start(1)?;
    let dir = tempfile::tempdir()?;
    // A first connection to each node with queries, beside whatever else the machine runs: no
    // timing is tested here (CI once saw 1 s pass beside a drill).
    let config = pg_config(dir.path(), &cluster, "5s", "")?;
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .arg("--once")
        .output()?;
    let stdout = String::from_utf8(out.stdout)?;
    assert!(
        out.status.success(),
        "exit {:?}; stderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    for needle in [
        "surge_source_up{source=\"postgres\",target=\"primary\"} 1",
        "surge_postgres_replica_streaming{target=\"primary\",replica=\"replica1\"} 1",
        "surge_postgres_replay_lag_seconds{target=\"replica1\"} 0",
        "# TYPE surge_source_errors_total counter",
        "surge_exporter_build_info{version=",
    ] {
        assert!(stdout.contains(needle), "missing {needle:?} in:\n{stdout}");
    }
    let report = surge_testkit::promtool::check_metrics(&stdout)?;
    assert!(report.trim().is_empty(), "promtool findings:\n{report}");

    // One unreachable target: exit 1, the rest still printed.
    let port = surge_servers::free_port()?;
    let config = pg_config(
        dir.path(),
        &cluster,
        "5s",
        &format!(
            "[[postgres.targets]]\nname = \"gone\"\ndsn = \"postgres://surge@127.0.0.1:{port}/postgres\"\n"
        ),
    )?;
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .arg("--once")
        .output()?;
    let stdout = String::from_utf8(out.stdout)?;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout.contains("surge_source_up{source=\"postgres\",target=\"gone\"} 0"),
        "{stdout}"
    );
    assert!(
        stdout.contains("surge_source_up{source=\"postgres\",target=\"primary\"} 1"),
        "{stdout}"
    );
    assert!(
        stdout.contains("surge_postgres_is_replica{target=\"replica1\"} 1"),
        "{stdout}"
    );
    surge_testkit::promtool::check_metrics(&stdout)?;
    Ok(())
}

#[test]
fn every_invalid_config_fixture_fails_with_its_one_line_error() -> anyhow::Result<()> {
    let mut checked = 0;
    for entry in std::fs::read_dir(fixtures().join("invalid"))? {
        let path = entry?.path();
        let text = std::fs::read_to_string(&path)?;
        let expected = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect: "))
            .ok_or_else(|| anyhow::anyhow!("{} lacks an '# expect:' line", path.display()))?;
        let out = Command::new(BIN)
            .arg("--config")
            .arg(&path)
            .arg("--once")
            .output()?;
        let stderr = String::from_utf8(out.stderr)?;
        assert_eq!(out.status.code(), Some(2), "{}: {stderr}", path.display());
        assert_eq!(
            stderr.lines().count(),
            1,
            "{}: not one line: {stderr}",
            path.display()
        );
        assert!(
            stderr.contains(expected),
            "{}: wanted {expected:?}, got {stderr}",
            path.display()
        );
        assert!(out.stdout.is_empty(), "{}: printed metrics", path.display());
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} fixtures");
    Ok(())
}

#[test]
fn bad_flags_are_one_line_exit_2() -> anyhow::Result<()> {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("surge-exporter.example.toml");
    for (args, expected) in [
        (vec!["--once"], "--config"),
        (
            vec!["--config", "x.toml", "--listen", "nowhere"],
            "--listen",
        ),
        (vec!["--config", "x.toml", "--frobnicate"], "--frobnicate"),
        (
            vec!["--config", "/nonexistent/surge.toml"],
            "cannot read /nonexistent/surge.toml",
        ),
    ] {
        let out = Command::new(BIN).args(&args).output()?;
        let stderr = String::from_utf8(out.stderr)?;
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    // The documented example parses (its secrets are missing here, which is the error).
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&example)
        .arg("--once")
        .output()?;
    let stderr = String::from_utf8(out.stderr)?;
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("postgres.targets[0].password_file: cannot read"),
        "{stderr}"
    );
    Ok(())
}

#[test]
fn serves_both_formats_while_a_target_hangs_and_stops_on_sigterm() -> anyhow::Result<()> {
    let cluster = PgCluster::start(0)?;
    let dir = tempfile::tempdir()?;
    // A target that accepts TCP but never answers: each cycle times out after 1 s.
    let silent = std::net::TcpListener::bind("127.0.0.1:0")?;
    let silent_port = silent.local_addr()?.port();
    let config = pg_config(
        dir.path(),
        &cluster,
        "1s",
        &format!(
            "[[postgres.targets]]\nname = \"hung\"\ndsn = \"postgres://surge@127.0.0.1:{silent_port}/postgres\"\n"
        ),
    )?;
    let port = surge_servers::free_port()?;
    let addr = format!("127.0.0.1:{port}");
    let log = dir.path().join("exporter.log");
    let mut cmd = Command::new(BIN);
    cmd.arg("--config").arg(&config).arg("--listen").arg(&addr);
    let mut server = surge_servers::ServerProcess::spawn("surge-exporter", cmd, &log)?;
    surge_servers::wait_until(
        "exporter up",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || {
            Ok(surge_servers::http::get(&addr, "/metrics", None)
                .map(|(_, _, body)| {
                    body.contains("target=\"primary\"} 1") && body.contains("target=\"hung\"} 0")
                })
                .unwrap_or(false))
        },
    )?;

    // Scrapes answer from the snapshot, fast, even while "hung" is mid-timeout; concurrently.
    let scrapes: Vec<_> = (0..8)
        .map(|i| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                let started = std::time::Instant::now();
                let accept = (i % 2 == 0).then_some(
                    "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
                );
                let result = surge_servers::http::get(&addr, "/metrics", accept);
                (accept.is_some(), result, started.elapsed())
            })
        })
        .collect();
    for handle in scrapes {
        let (openmetrics, result, elapsed) = handle
            .join()
            .map_err(|_| anyhow::anyhow!("scrape panicked"))?;
        let (status, content_type, body) = result?;
        assert_eq!(status, 200);
        assert!(
            elapsed < Duration::from_millis(900),
            "scrape waited on the hung target: {elapsed:?}"
        );
        if openmetrics {
            assert!(
                content_type.starts_with("application/openmetrics-text"),
                "{content_type}"
            );
            assert!(body.ends_with("# EOF\n"), "{body}");
        } else {
            assert!(
                content_type.starts_with("text/plain; version=0.0.4"),
                "{content_type}"
            );
            assert!(!body.contains("# EOF"));
            surge_testkit::promtool::check_metrics(&body)?;
        }
    }
    let (status, _, body) = surge_servers::http::get(&addr, "/healthz", None)?;
    assert_eq!((status, body.as_str()), (200, "ok\n"));

    // Asked for gzip, as Prometheus asks: compressed, and the same exposition inside.
    let gzipped = reqwest::blocking::Client::builder()
        .no_gzip()
        .build()?
        .get(format!("http://{addr}/metrics"))
        .header("Accept-Encoding", "gzip")
        .send()?;
    assert_eq!(gzipped.headers()["content-encoding"], "gzip");
    assert_eq!(gzipped.headers()["vary"], "accept-encoding");
    let compressed = gzipped.bytes()?;
    let mut body = String::new();
    std::io::Read::read_to_string(
        &mut flate2::read::GzDecoder::new(&compressed[..]),
        &mut body,
    )?;
    assert!(body.contains("target=\"primary\"} 1"), "{body}");
    surge_testkit::promtool::check_metrics(&body)?;

    server.signal(surge_servers::Signal::Term)?;
    surge_servers::wait_until(
        "exporter exit",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || Ok(!server.is_running()),
    )?;
    drop(silent);
    Ok(())
}

/// Insecure settings are accepted, and said at start, one log line each: SASL PLAIN over
/// plaintext, `sslmode=require` to a remote host, a kubeconfig with `insecure-skip-tls-verify`.
#[test]
fn insecure_settings_are_warned_about_at_start() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:1\n    insecure-skip-tls-verify: true\n\
         users:\n- name: u\n  user: {}\ncontexts:\n- name: x\n  context:\n    cluster: c\n    user: u\ncurrent-context: x\n",
    )?;
    let config = dir.path().join("insecure.toml");
    std::fs::write(
        &config,
        format!(
            "[postgres]\ninterval = \"1s\"\ntimeout = \"900ms\"\n\
             [[postgres.targets]]\nname = \"remote\"\ndsn = \"postgres://surge@db.invalid:5432/app?sslmode=require\"\n\
             [kafka]\ninterval = \"1s\"\ntimeout = \"900ms\"\ndiscovery_interval = \"1s\"\nwindow = \"10s\"\n\
             [[kafka.clusters]]\nname = \"plain\"\nbootstrap_servers = \"127.0.0.1:1\"\nsasl_password_env = \"SURGE_TEST_KAFKA_PASSWORD\"\n\
             [kafka.clusters.properties]\n\"security.protocol\" = \"SASL_PLAINTEXT\"\n\"sasl.mechanism\" = \"PLAIN\"\n\"sasl.username\" = \"surge\"\n\
             [kubernetes]\ninterval = \"1s\"\ntimeout = \"900ms\"\nnamespaces = [\"shop\"]\nkubeconfig = \"{}\"\n",
            kubeconfig.display()
        ),
    )?;
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .arg("--once")
        .env("SURGE_TEST_KAFKA_PASSWORD", "x")
        .output()?;
    assert_eq!(out.status.code(), Some(1), "every target is unreachable");
    let stderr = String::from_utf8(out.stderr)?;
    let warned = |needle: &str| {
        stderr
            .lines()
            .filter(|l| l.contains("WARN") && l.contains(needle))
            .count()
    };
    for needle in [
        "kafka.clusters[plain]: SASL PLAIN over plaintext",
        "postgres.targets[remote] (db.invalid): sslmode=require encrypts but checks no certificate",
        "kubeconfig sets insecure-skip-tls-verify",
    ] {
        assert_eq!(warned(needle), 1, "{needle:?} in:\n{stderr}");
    }
    Ok(())
}
