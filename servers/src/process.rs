//! A server child process that is stopped when its guard drops.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::sys::{self, Signal};

/// A running server. Dropping it stops it: `stop_signal`, then SIGKILL after the grace time.
#[derive(Debug)]
pub struct ServerProcess {
    name: String,
    child: Option<Child>,
    log: PathBuf,
    stop_signal: Signal,
    grace: Duration,
    /// When the stop signal was sent (a stop then waits from there, without sending it again).
    stopping: Option<Instant>,
}

impl ServerProcess {
    /// Start `command` with stdout and stderr appended to `log`. The child gets
    /// `PR_SET_PDEATHSIG`, so it is killed if this process dies without running destructors.
    /// Spawn from a thread that lives as long as the server (the signal fires when the
    /// spawning *thread* exits): the test thread or a runtime worker, not a blocking-pool thread.
    pub fn spawn(name: &str, mut command: Command, log: &Path) -> anyhow::Result<Self> {
        let out = File::options().create(true).append(true).open(log)?;
        let err = out.try_clone()?;
        command.stdin(Stdio::null()).stdout(out).stderr(err);
        sys::die_with_parent(&mut command);
        let child = command
            .spawn()
            .map_err(|e| anyhow::anyhow!("starting {name} ({:?}): {e}", command.get_program()))?;
        Ok(ServerProcess {
            name: name.to_string(),
            child: Some(child),
            log: log.to_path_buf(),
            stop_signal: Signal::Term,
            grace: Duration::from_secs(10),
            stopping: None,
        })
    }

    /// Signal used for a graceful stop (PostgreSQL: SIGINT = fast shutdown).
    pub fn with_stop_signal(mut self, signal: Signal) -> Self {
        self.stop_signal = signal;
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// True while the process has not exited.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// The last `max_bytes` of the log, for error messages.
    pub fn log_tail(&self, max_bytes: u64) -> String {
        log_tail(&self.log, max_bytes)
    }

    /// Send a signal without waiting (e.g. SIGSTOP to freeze a server).
    pub fn signal(&self, signal: Signal) -> anyhow::Result<()> {
        let pid = self
            .pid()
            .ok_or_else(|| anyhow::anyhow!("{} is not running", self.name))?;
        Ok(sys::send(pid, signal)?)
    }

    /// Stop gracefully, then forcibly after the grace time. Idempotent.
    /// Send the graceful stop signal without waiting, so several servers stop at once; a
    /// later [`ServerProcess::stop`] (or drop) waits for the exit.
    pub fn begin_stop(&mut self) {
        if self.stopping.is_some() {
            return;
        }
        if let Some(child) = self.child.as_mut()
            && matches!(child.try_wait(), Ok(None))
        {
            let _ = sys::send(child.id(), self.stop_signal);
            self.stopping = Some(Instant::now());
        }
    }

    pub fn stop(&mut self) {
        self.begin_stop();
        let Some(mut child) = self.child.take() else {
            return;
        };
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        let deadline = self.stopping.unwrap_or_else(Instant::now) + self.grace;
        while Instant::now() < deadline {
            if matches!(child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        tracing::warn!(server = %self.name, "did not stop in time; killing");
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn log_tail(path: &Path, max_bytes: u64) -> String {
    let Ok(mut file) = File::open(path) else {
        return String::new();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(max_bytes)));
    let mut text = String::new();
    let _ = file.read_to_string(&mut text);
    text
}

/// Run a command to completion, with its output in the error if it fails.
pub fn run(what: &str, command: Command) -> anyhow::Result<String> {
    run_with_input(what, command, &[])
}

/// [`run`] with `input` on the command's stdin (for what must not be on its argv, which any
/// local user can read in /proc).
pub fn run_with_input(what: &str, mut command: Command, input: &[u8]) -> anyhow::Result<String> {
    use std::io::Write;
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| anyhow::anyhow!("{what}: cannot run {:?}: {e}", command.get_program()))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A command that exits without reading its input is judged by its status below.
        let _ = stdin.write_all(input);
    }
    let output = child
        .wait_with_output()
        .map_err(|e| anyhow::anyhow!("{what}: {e}"))?;
    if !output.status.success() {
        anyhow::bail!(
            "{what} failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}
