//! The Debian packages, as a user gets them: `scripts/package` builds both (with the dev
//! profile the suite has already built), lintian finds no error in them, and on this machine
//! they install, run and purge cleanly. Installed, `systemd-analyze verify` accepts the unit,
//! both binaries name their commit, the man pages and completions are where man and the
//! shells look, and the exporter, run as the package's user with the packaged config and the
//! connection set in `/etc/default/surge-exporter` as systemd would read it, reads a real
//! PostgreSQL with the password from a file only that user can read. Needs root (dpkg).

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Output};

use anyhow::{Context, ensure};
use surge_servers::postgres::PgCluster;
use surge_tests::alerting::repo;

const UNIT: &str = "/usr/lib/systemd/system/surge-exporter.service";
const DEFAULTS: &str = "/etc/default/surge-exporter";
const PGPASS: &str = "/etc/surge-exporter/pgpass";

/// Files the packages install that must be gone after the purge.
const INSTALLED: [&str; 11] = [
    "/usr/bin/surge",
    "/usr/bin/surge-exporter",
    "/usr/share/man/man1/surge.1.gz",
    "/usr/share/man/man1/surge-replay.1.gz",
    "/usr/share/man/man1/surge-record.1.gz",
    "/usr/share/man/man1/surge-exporter.1.gz",
    "/usr/share/bash-completion/completions/surge",
    "/usr/share/zsh/vendor-completions/_surge-exporter",
    "/usr/share/fish/vendor_completions.d/surge.fish",
    UNIT,
    "/etc/surge-exporter/surge-exporter.toml",
];

fn run(program: &str, args: &[&str]) -> anyhow::Result<Output> {
    Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("running {program}"))
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Purges both packages and what the test wrote beside them, also when an assertion fails.
struct Purge;

impl Purge {
    fn now() -> anyhow::Result<Output> {
        let _ = std::fs::remove_file(PGPASS);
        run("dpkg", &["--purge", "surge", "surge-exporter"])
    }
}

impl Drop for Purge {
    fn drop(&mut self) {
        let _ = Purge::now();
    }
}

/// `KEY=VALUE` lines as systemd's `EnvironmentFile=` reads them (comments and blank lines
/// skipped, one pair of quotes taken off).
fn environment_file(path: &str) -> anyhow::Result<BTreeMap<String, String>> {
    let mut vars = BTreeMap::new();
    for line in std::fs::read_to_string(path)?.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .with_context(|| format!("{path}: {line:?} is not KEY=VALUE"))?;
        vars.insert(key.to_owned(), value.trim_matches('"').to_owned());
    }
    Ok(vars)
}

#[test]
fn debian_packages_pass_lintian_install_run_and_purge() -> anyhow::Result<()> {
    ensure!(
        run("id", &["-u"])?.stdout == b"0\n",
        "the package test installs with dpkg: run it as root (CI does)"
    );
    let repo = repo();
    let built = Command::new(repo.join("scripts/package"))
        .args(["--profile", "dev", "--fast"])
        .output()?;
    ensure!(built.status.success(), "scripts/package: {}", text(&built));
    let arch = String::from_utf8(run("dpkg", &["--print-architecture"])?.stdout)?;
    let version = env!("CARGO_PKG_VERSION");
    let debs: Vec<String> = ["surge", "surge-exporter"]
        .iter()
        .map(|name| {
            repo.join(format!(
                "target/debian/{name}_{version}-1_{}.deb",
                arch.trim()
            ))
            .display()
            .to_string()
        })
        .collect();

    // lintian: no error (warnings are listed for the reader, not failed on).
    let mut args = vec!["--tag-display-limit", "0"];
    args.extend(debs.iter().map(String::as_str));
    let lint = run("lintian", &args)?;
    let errors: Vec<&str> = std::str::from_utf8(&lint.stdout)?
        .lines()
        .filter(|l| l.starts_with("E: "))
        .collect();
    ensure!(
        errors.is_empty() && lint.status.success(),
        "lintian: {}",
        text(&lint)
    );

    let _purge = Purge;
    let mut args = vec!["-i"];
    args.extend(debs.iter().map(String::as_str));
    let installed = run("dpkg", &args)?;
    ensure!(installed.status.success(), "dpkg -i: {}", text(&installed));
    for path in INSTALLED {
        ensure!(Path::new(path).exists(), "{path} is not installed");
    }

    // Hardened as the guide says: its own user, the system read-only, no privilege to gain.
    let unit = std::fs::read_to_string(UNIT)?;
    for directive in [
        "User=surge-exporter",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "CapabilityBoundingSet=\n",
        "EnvironmentFile=-/etc/default/surge-exporter",
    ] {
        assert!(unit.contains(directive), "{UNIT} lacks {directive:?}");
    }
    let verify = run("systemd-analyze", &["verify", UNIT])?;
    ensure!(
        verify.status.success() && verify.stderr.is_empty(),
        "systemd-analyze verify {UNIT}: {}",
        text(&verify)
    );

    let commit = surge_build_info::checkout_commit(&repo);
    for binary in ["surge", "surge-exporter"] {
        let out = run(&format!("/usr/bin/{binary}"), &["--version"])?;
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            format!("{binary} {version} (commit {commit})")
        );
    }
    for page in ["surge", "surge-replay", "surge-exporter"] {
        let out = run("man", &["-w", page])?;
        assert!(out.status.success(), "man -w {page}: {}", text(&out));
    }
    let completion = run(
        "bash",
        &[
            "-c",
            "source /usr/share/bash-completion/completions/surge && complete -p surge",
        ],
    )?;
    assert!(
        text(&completion).contains("-F _surge surge"),
        "{}",
        text(&completion)
    );

    // The service's user and what it may read: the config directory is root's, shared with
    // the service's group only.
    let user = run("getent", &["passwd", "surge-exporter"])?;
    assert!(
        String::from_utf8_lossy(&user.stdout).contains(":/nonexistent:/usr/sbin/nologin"),
        "{}",
        text(&user)
    );
    let dir = std::fs::metadata("/etc/surge-exporter")?;
    assert_eq!(dir.mode() & 0o777, 0o750);
    assert_eq!(dir.uid(), 0);
    let group = run("getent", &["group", "surge-exporter"])?;
    let gid: u32 = String::from_utf8_lossy(&group.stdout)
        .split(':')
        .nth(2)
        .context("surge-exporter's gid")?
        .parse()?;
    assert_eq!(dir.gid(), gid);

    // A real PostgreSQL, its role for the service, the password in a libpq password file
    // (which, as libpq's, is read only when its owner alone can read it).
    let cluster = PgCluster::start(0)?;
    let port = cluster.port("primary")?.to_string();
    let password = "packaged-exporter-password";
    let mut psql = Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-v",
        ])
        .arg("ON_ERROR_STOP=1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    {
        use std::io::Write;
        let mut stdin = psql.stdin.take().context("psql stdin")?;
        writeln!(
            stdin,
            "CREATE ROLE \"surge-exporter\" LOGIN PASSWORD '{password}';\nGRANT pg_monitor TO \"surge-exporter\";"
        )?;
    }
    let created = psql.wait_with_output()?;
    ensure!(created.status.success(), "psql: {}", text(&created));
    std::fs::write(
        PGPASS,
        format!("127.0.0.1:{port}:*:surge-exporter:{password}\n"),
    )?;
    let chown = run("chown", &["surge-exporter:surge-exporter", PGPASS])?;
    ensure!(chown.status.success(), "chown: {}", text(&chown));
    std::fs::set_permissions(PGPASS, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    let mut defaults = std::fs::read_to_string(DEFAULTS)?;
    defaults.push_str(&format!(
        "PGHOST=127.0.0.1\nPGPORT={port}\nPGPASSFILE={PGPASS}\n"
    ));
    std::fs::write(DEFAULTS, defaults)?;

    let mut exporter = Command::new("/usr/sbin/runuser");
    exporter.args([
        "-u",
        "surge-exporter",
        "--",
        "/usr/bin/surge-exporter",
        "--config",
        "/etc/surge-exporter/surge-exporter.toml",
        "--once",
    ]);
    exporter
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
    for (key, value) in environment_file(DEFAULTS)? {
        if key != "ARGS" {
            exporter.env(key, value);
        }
    }
    let scraped = exporter.output()?;
    let exposition = String::from_utf8_lossy(&scraped.stdout);
    assert!(scraped.status.success(), "{}", text(&scraped));
    assert!(
        exposition.contains("surge_source_up{source=\"postgres\",target=\"local\"} 1"),
        "{exposition}"
    );
    assert!(
        exposition.contains("surge_postgres_is_replica{target=\"local\"} 0"),
        "{exposition}"
    );
    // Others cannot read the password.
    let other = Command::new("runuser")
        .args(["-u", "nobody", "--", "cat", PGPASS])
        .output()?;
    assert!(!other.status.success(), "nobody read {PGPASS}");

    let purged = Purge::now()?;
    ensure!(purged.status.success(), "dpkg --purge: {}", text(&purged));
    for path in INSTALLED.iter().chain(&["/etc/surge-exporter", DEFAULTS]) {
        ensure!(!Path::new(path).exists(), "{path} is left after the purge");
    }
    for name in ["surge", "surge-exporter"] {
        let status = run("dpkg-query", &["-W", "-f", "${Status}", name])?;
        assert!(
            !String::from_utf8_lossy(&status.stdout).contains("installed")
                || String::from_utf8_lossy(&status.stdout).contains("not-installed"),
            "{name}: {}",
            text(&status)
        );
    }
    Ok(())
}
