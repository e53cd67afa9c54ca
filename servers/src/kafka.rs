//! A real Kafka-protocol broker (tansu, SQLite storage) on a loopback port.
//!
//! tansu's in-memory engine reports wrong log-end offsets for batched producers, so the
//! SQLite engine is used (the test kit's producers batch, so a wrong log-end offset would
//! show up as a failing test).

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;

use anyhow::anyhow;

use crate::launch::wait_ready;
use crate::ports::free_port;
use crate::process::ServerProcess;
use crate::workdir::Workdir;

/// The tansu binary: `$SURGE_TANSU`, else `tansu` on PATH, else `~/.cargo/bin/tansu`.
pub fn tansu_binary() -> anyhow::Result<PathBuf> {
    if let Ok(path) = std::env::var("SURGE_TANSU") {
        return Ok(PathBuf::from(path));
    }
    if let Some(path) = std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("tansu"))
        .find(|p| p.is_file())
    {
        return Ok(path);
    }
    let cargo_bin = std::env::var_os("HOME")
        .map(|h| PathBuf::from(h).join(".cargo/bin/tansu"))
        .filter(|p| p.is_file());
    cargo_bin.ok_or_else(|| anyhow!("tansu not found; run scripts/install-deps"))
}

/// A running broker. Dropping it stops it and deletes its data.
pub struct KafkaBroker {
    port: u16,
    /// The port clients are told to use (metadata), when it is not `port` (a proxy in front).
    advertised: Option<u16>,
    /// SASL/SCRAM required of every client (`--authentication`).
    authentication: bool,
    process: Option<ServerProcess>,
    // Declared last: removed after the broker stopped.
    dir: Workdir,
}

impl KafkaBroker {
    pub fn start() -> anyhow::Result<Self> {
        Self::start_in(Workdir::temp("surge-kafka-")?, free_port()?)
    }

    /// Start on `port` with its data in `dir`.
    pub fn start_in(dir: Workdir, port: u16) -> anyhow::Result<Self> {
        let mut broker = KafkaBroker {
            port,
            advertised: None,
            authentication: false,
            process: None,
            dir,
        };
        broker.restart()?;
        Ok(broker)
    }

    /// Start on `port`, telling clients (in metadata) to reach it on `advertised`: a proxy
    /// there then carries all of their traffic.
    pub fn start_advertising(port: u16, advertised: u16) -> anyhow::Result<Self> {
        let mut broker = KafkaBroker {
            port,
            advertised: Some(advertised),
            authentication: false,
            process: None,
            dir: Workdir::temp("surge-kafka-")?,
        };
        broker.restart()?;
        Ok(broker)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Pid of the broker process, while running.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().and_then(ServerProcess::pid)
    }

    /// `127.0.0.1:PORT`, for `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Stop the broker (its data stays for a restart).
    pub fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.stop();
        }
    }

    /// Restart (data kept) telling clients to reach it on `port` from now on: a proxy there
    /// that clients set up before could not pass through (e.g. TLS) carries the rest.
    pub fn advertise(&mut self, port: u16) -> anyhow::Result<()> {
        self.advertised = Some(port);
        self.restart()
    }

    /// Create SCRAM users — `(name, password, mechanism)`, the mechanism `scram256` or
    /// `scram512` — then restart requiring every client to log in. tansu stores the
    /// credentials in its database; it offers SCRAM-SHA-256 and -512, not PLAIN.
    pub fn require_scram(&mut self, users: &[(&str, &str, &str)]) -> anyhow::Result<()> {
        for (name, password, mechanism) in users {
            let out = Command::new(tansu_binary()?)
                .args(["user", "create", name, password, "--mechanism", mechanism])
                .args(["--broker", &format!("tcp://127.0.0.1:{}", self.port)])
                .current_dir(self.dir.path())
                .output()?;
            anyhow::ensure!(
                out.status.success(),
                "tansu user create {name}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        self.authentication = true;
        self.restart()
    }

    /// Start (again) on the same port and data.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.stop();
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let advertised = format!("tcp://127.0.0.1:{}", self.advertised.unwrap_or(self.port));
        let mut cmd = Command::new(tansu_binary()?);
        cmd.arg("broker")
            .args([
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &advertised,
            ])
            // tansu resolves the database path relative to its working directory.
            .args(["--storage-engine", "sqlite://tansu.db"])
            .args(self.authentication.then_some("--authentication"))
            .current_dir(self.dir.path())
            .env("RUST_LOG", "warn");
        let log = self.dir.path().join("tansu.log");
        let mut process = ServerProcess::spawn("tansu", cmd, &log)?;
        let port = self.port;
        wait_ready(&mut process, "tansu broker", || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        })?;
        self.process = Some(process);
        Ok(())
    }
}

impl Drop for KafkaBroker {
    fn drop(&mut self) {
        self.stop();
    }
}
