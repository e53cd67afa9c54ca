//! The live panel and the terminal it runs in, through a real pseudo-terminal (tmux): the
//! terminal is given back however the panel ends, `NO_COLOR` is honoured, and the panel only
//! draws when a key or new data asks it to.

use std::time::Duration;

use surge_testkit::tmux::Tmux;
use surge_tests::drill::surge_bin;

/// A panel on a Prometheus nobody answers (port 9, discard): it draws its chrome and a banner,
/// and with a refresh of an hour asks again only then.
fn panel_command(log: &std::path::Path, extra: &str) -> anyhow::Result<String> {
    Ok(format!(
        "{} --prometheus http://127.0.0.1:9 --refresh 1h --log {} {extra}",
        surge_bin()?.display(),
        log.display()
    ))
}

/// The pid of `session`'s process named `name` (a child of the pane's shell).
fn child_pid(tmux: &Tmux, session: &str, name: &str) -> anyhow::Result<u32> {
    let shell: u32 = tmux.pane(session, "pane_pid")?.parse()?;
    for entry in std::fs::read_dir("/proc")? {
        let Some(pid) = entry?
            .file_name()
            .to_str()
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // `pid (comm) state ppid ...`; comm may hold spaces, so split after the last ')'.
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let ppid = rest
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(shell) && head.ends_with(&format!("({name}")) {
            return Ok(pid);
        }
    }
    anyhow::bail!("no {name} under the pane's shell {shell}")
}

#[test]
fn the_terminal_is_given_back_on_q_sigint_sigterm_and_sighup() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let tmux = Tmux::new("surge-terminal");
    let mut ended = Vec::new();
    for how in ["q", "INT", "TERM", "HUP"] {
        let session = format!("end-{how}");
        // After the panel: its exit status and the terminal's line settings, as the shell
        // that started it finds them.
        let command = format!(
            "sh -c '{}; echo \"exited $?\"; stty -a; sleep 60'",
            panel_command(&dir.path().join(format!("{how}.log")), "")?
        );
        tmux.start(&session, 120, 40, &command)?;
        tmux.wait_for(&session, "the panel", "1 Overview")?;
        assert_eq!(
            tmux.pane(&session, "alternate_on")?,
            "1",
            "{how}: not on the alternate screen"
        );
        if how == "q" {
            tmux.keys(&session, &["q"])?;
        } else {
            let pid = child_pid(&tmux, &session, "surge")?;
            surge_servers::sys::send(
                pid,
                match how {
                    "INT" => surge_servers::Signal::Int,
                    "TERM" => surge_servers::Signal::Term,
                    _ => surge_servers::Signal::Hup,
                },
            )?;
        }
        // The shell's report: the exit status, then the line settings (`stty -a`, whose local
        // flags, printed last, include iexten).
        let screen =
            tmux.wait_for_screen(&session, "the panel gone", Duration::from_secs(20), |s| {
                s.contains("exited") && s.contains("iexten")
            })?;
        assert!(screen.contains("exited 0"), "{how}:\n{screen}");
        assert_eq!(
            tmux.pane(&session, "alternate_on")?,
            "0",
            "{how}: left on the alternate screen"
        );
        assert_eq!(
            tmux.pane(&session, "cursor_flag")?,
            "1",
            "{how}: cursor left hidden"
        );
        // Line discipline back: canonical input and echo on (raw mode turns both off).
        let settings: Vec<&str> = screen.split_whitespace().collect();
        assert!(
            settings.contains(&"icanon") && settings.contains(&"echo"),
            "{how}: raw mode left on:\n{screen}"
        );
        ended.push(how);
    }
    assert_eq!(ended, ["q", "INT", "TERM", "HUP"]);
    Ok(())
}

/// Whether a captured screen sets a foreground or background colour: SGR 30-38 and 40-48
/// (38 and 48 start extended colours), 90-97 and 100-107; not 39 and 49, which reset to the
/// terminal's own.
fn has_colour(screen: &str) -> bool {
    screen.split("\u{1b}[").skip(1).any(|sequence| {
        let Some((params, _)) = sequence.split_once('m') else {
            return false;
        };
        params.split(';').any(|p| {
            p.parse::<u32>().is_ok_and(|n| {
                (30..=38).contains(&n)
                    || (40..=48).contains(&n)
                    || (90..=97).contains(&n)
                    || (100..=107).contains(&n)
            })
        })
    })
}

#[test]
fn no_color_selects_mono_unless_a_theme_is_given() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let tmux = Tmux::new("surge-no-color");
    let mut seen = Vec::new();
    for (env, flags, coloured) in [
        ("", "", true),
        ("NO_COLOR=1", "", false),
        ("NO_COLOR=1", "--theme default", true),
        ("", "--theme mono", false),
    ] {
        let session = format!("colour-{}", seen.len());
        let command = format!(
            "env {env} {}",
            panel_command(&dir.path().join(format!("{session}.log")), flags)?
        );
        tmux.start(&session, 120, 40, &command)?;
        tmux.wait_for(&session, "the panel", "1 Overview")?;
        let screen = tmux.screen_with_escapes(&session)?;
        assert_eq!(has_colour(&screen), coloured, "{env} {flags}:\n{screen:?}");
        seen.push(coloured);
    }
    assert_eq!(seen, [true, false, true, false]);
    Ok(())
}

#[test]
fn the_panel_draws_on_input_and_new_data_only() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let tmux = Tmux::new("surge-redraws");
    let output = dir.path().join("terminal-output");
    tmux.start(
        "panel",
        120,
        40,
        &panel_command(&dir.path().join("panel.log"), "")?,
    )?;
    tmux.record_output("panel", &output)?;
    // The first fetch has failed (the banner says so); no more data comes for an hour.
    tmux.wait_for_screen("panel", "the failed fetch", Duration::from_secs(20), |s| {
        s.contains("prometheus") && s.contains("1 Overview")
    })?;
    let size = || std::fs::metadata(&output).map(|m| m.len()).unwrap_or(0);
    // Settled: nothing written for a whole second.
    let mut last = size();
    surge_servers::wait_until(
        "the panel settled",
        Duration::from_secs(20),
        Duration::from_secs(1),
        || {
            let now = size();
            let settled = now == last;
            last = now;
            Ok(settled)
        },
    )?;
    // Idle: 3 s (three times the settling second) without a byte to the terminal.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(size(), last, "the panel drew with no input and no new data");
    // A key: it draws (the Kafka view).
    tmux.keys("panel", &["2"])?;
    tmux.wait_for("panel", "the Kafka view", "Consumer groups")?;
    assert!(
        size() > last,
        "a key changed the view but nothing was written"
    );
    Ok(())
}
