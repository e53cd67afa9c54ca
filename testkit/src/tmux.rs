//! A terminal program under test in a real pseudo-terminal: a tmux server on its own socket,
//! one session per program, keys in and screen out; the server is killed on drop (also when
//! the test fails).

use std::process::Command;
use std::time::Duration;

use anyhow::{anyhow, bail};

pub struct Tmux {
    socket: String,
}

impl Tmux {
    /// A server on a socket named after `name` and this process.
    pub fn new(name: &str) -> Tmux {
        Tmux {
            socket: format!("{name}-{}", std::process::id()),
        }
    }

    pub fn run(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()?;
        if !out.status.success() {
            bail!("tmux {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Start `command` (a shell command line) in session `session` of `width`×`height`.
    pub fn start(
        &self,
        session: &str,
        width: u16,
        height: u16,
        command: &str,
    ) -> anyhow::Result<()> {
        self.run(&[
            "new-session",
            "-d",
            "-s",
            session,
            "-x",
            &width.to_string(),
            "-y",
            &height.to_string(),
            command,
        ])
        .map(drop)
    }

    pub fn screen(&self, session: &str) -> anyhow::Result<String> {
        self.run(&["capture-pane", "-p", "-t", session])
    }

    /// The screen with its colours and attributes as escape sequences.
    pub fn screen_with_escapes(&self, session: &str) -> anyhow::Result<String> {
        self.run(&["capture-pane", "-p", "-e", "-t", session])
    }

    /// A pane variable of `session` (`alternate_on`, `cursor_flag`, `pane_pid`, `pane_tty`).
    pub fn pane(&self, session: &str, variable: &str) -> anyhow::Result<String> {
        Ok(self
            .run(&[
                "display-message",
                "-p",
                "-t",
                session,
                &format!("#{{{variable}}}"),
            ])?
            .trim()
            .to_string())
    }

    /// Append everything the program writes to its terminal to `file`, from now on.
    pub fn record_output(&self, session: &str, file: &std::path::Path) -> anyhow::Result<()> {
        self.run(&[
            "pipe-pane",
            "-O",
            "-t",
            session,
            &format!("cat >> '{}'", file.display()),
        ])
        .map(drop)
    }

    /// Send keys in order. A terminal program reads Escape and the key right behind it in
    /// one read as Alt+key, so after an Escape the next key waits 150 ms: what a person's
    /// typing leaves between them.
    pub fn keys(&self, session: &str, keys: &[&str]) -> anyhow::Result<()> {
        for k in keys {
            self.run(&["send-keys", "-t", session, k])?;
            if *k == "Escape" {
                std::thread::sleep(Duration::from_millis(150));
            }
        }
        Ok(())
    }

    /// Wait until the screen passes `check`; the error shows the last screen.
    pub fn wait_for_screen(
        &self,
        session: &str,
        what: &str,
        timeout: Duration,
        check: impl Fn(&str) -> bool,
    ) -> anyhow::Result<String> {
        let mut screen = String::new();
        let found = surge_servers::wait_until(what, timeout, Duration::from_millis(300), || {
            screen = self.screen(session)?;
            Ok(check(&screen))
        });
        found.map_err(|e| anyhow!("{e}\nscreen:\n{screen}"))?;
        Ok(screen)
    }

    /// Wait until the screen shows `needle`.
    pub fn wait_for(&self, session: &str, what: &str, needle: &str) -> anyhow::Result<String> {
        self.wait_for_screen(session, what, Duration::from_secs(20), |s| {
            s.contains(needle)
        })
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .output();
    }
}
