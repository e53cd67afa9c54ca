//! The binary's front door: bad flags and bad config files get one line naming the problem
//! and exit 2, never a panic or a half-drawn terminal.

use std::path::Path;
use std::process::Command;

fn surge(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_surge"))
        .args(args)
        .env("XDG_CONFIG_HOME", "/nonexistent")
        // No kubeconfig of the developer's: the first-run message names none.
        .env("HOME", "/nonexistent")
        .env_remove("KUBECONFIG")
        .output()
        .expect("run surge");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn invalid_config_fixtures_fail_in_one_line_naming_the_field() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/invalid");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("fixtures") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("read");
        let expect = text
            .lines()
            .find_map(|l| l.strip_prefix("# expect: "))
            .unwrap_or_else(|| panic!("{} has no # expect: line", path.display()));
        let (code, stdout, stderr) = surge(&[
            "--config",
            path.to_str().expect("utf-8 path"),
            "--once",
            "--log",
            "/dev/null",
        ]);
        assert_eq!(code, 2, "{}: {stderr}", path.display());
        assert!(stdout.is_empty(), "{}: {stdout}", path.display());
        assert_eq!(stderr.lines().count(), 1, "{}: {stderr}", path.display());
        assert!(
            stderr.starts_with("surge: "),
            "{}: {stderr}",
            path.display()
        );
        assert!(
            stderr.contains(expect),
            "{}: want {expect:?} in {stderr}",
            path.display()
        );
        seen += 1;
    }
    assert!(seen >= 7, "only {seen} fixtures");
}

/// `--version` names the commit the binary was built from: this checkout's HEAD when the
/// suite built it from one (`unknown` without git).
#[test]
fn version_names_the_commit_it_was_built_from() {
    let head = surge_build_info::checkout_commit(std::path::Path::new(env!("CARGO_MANIFEST_DIR")));
    let out = Command::new(env!("CARGO_BIN_EXE_surge"))
        .arg("--version")
        .output()
        .expect("run");
    assert!(out.status.success());
    let version = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        version.trim(),
        format!("surge {} (commit {head})", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn bad_flags_fail_in_one_line() {
    for (args, want) in [
        (
            &["--exporter", "127.0.0.1:9187", "--size", "huge"][..],
            "--size",
        ),
        (
            &[
                "--exporter",
                "127.0.0.1:9187",
                "--view",
                "graphs",
                "--once",
                "--wait",
                "1s",
            ],
            "--view \"graphs\"",
        ),
        (&["--prometheus", "gopher://x"], "--prometheus"),
        (
            &["--prometheus", "http://127.0.0.1:9", "--selector", "job"],
            "--selector: selector \"job\": expected =, !=, =~ or !~ after job",
        ),
        (
            &[
                "--prometheus",
                "http://127.0.0.1:9",
                "--at",
                "yesterday",
                "--once",
            ],
            "--at: \"yesterday\" is neither an RFC 3339 time nor Unix seconds",
        ),
        (
            &["--prometheus", "http://127.0.0.1:9", "--at", "1700000000"],
            "--at: only with --once",
        ),
        (
            &[],
            "no source: no --prometheus URL, --alertmanager URL, --exporter URL or --kube-context NAME given, and no config file at /nonexistent/surge/config.toml (write [sources] prometheus = \"URL\" there, or give --config FILE); no kubeconfig",
        ),
        (&["--config", "/nonexistent/surge.toml"], "cannot read it"),
    ] {
        let (code, _, stderr) = surge(args);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.contains(want), "{args:?}: want {want:?} in {stderr}");
    }
    // A config file read, but with no source in it: it is named.
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "[ui]\ntheme = \"mono\"\n").expect("write");
    let (code, _, stderr) = surge(&["--config", config.to_str().unwrap_or_default()]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains(&format!("and {} has no [sources]", config.display())),
        "{stderr}"
    );
    let (code, stdout, _) = surge(&["--help"]);
    assert_eq!(code, 0);
    assert!(stdout.contains("--readonly") && stdout.contains("--once"));
}

#[test]
fn an_unreachable_source_still_renders_a_frame_and_exits_1() {
    // Port 9 (discard) on loopback: nothing listens there in tests.
    let (code, stdout, stderr) = surge(&[
        "--exporter",
        "127.0.0.1:9",
        "--once",
        "--wait",
        "5s",
        "--size",
        "100x20",
        "--log",
        "/dev/null",
    ]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
    assert!(
        stdout.contains("exporter 127.0.0.1:9 is failing"),
        "{stdout}"
    );
    assert!(stdout.contains("cannot connect"), "{stdout}");
}

/// A recording cut short (a crash, a full disk) replays to its last whole update and says so
/// in the header; a file that is not a recording is refused in one line.
#[test]
fn a_recording_cut_short_says_where_it_ends() -> Result<(), Box<dyn std::error::Error>> {
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/recordings/payment-killed.surge");
    let dir = tempfile::tempdir()?;
    let cut = dir.path().join("cut.surge");
    let bytes = std::fs::read(&fixture)?;
    std::fs::write(&cut, &bytes[..bytes.len() / 2])?;
    let recording = surge_client::recording::read(&cut)?;
    let last = recording
        .entries
        .last()
        .ok_or("nothing replayable in half the file")?
        .at;
    let time = jiff::Timestamp::from_second(last as i64)?
        .strftime("%H:%M:%S")
        .to_string();
    let replay = |file: &std::path::Path| {
        let file = file.display().to_string();
        surge(&[
            "--once",
            "--size",
            "200x40",
            "--log",
            "/dev/null",
            "replay",
            &file,
        ])
    };
    let (code, out, err) = replay(&cut);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!("recording ends early: cut after {time}")),
        "{out}"
    );
    let (code, out, err) = replay(&fixture);
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains("ends early"), "{out}");
    Ok(())
}
