//! Redis from Debian's package, without persistence, on loopback.

use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use crate::launch::{program, wait_ready};
use crate::ports::free_port;
use crate::process::ServerProcess;
use crate::workdir::Workdir;

/// A Redis server without persistence.
pub struct Redis {
    port: u16,
    process: Option<ServerProcess>,
    dir: Workdir,
}

impl Redis {
    pub fn start() -> anyhow::Result<Self> {
        Self::start_in(Workdir::temp("surge-redis-")?, free_port()?)
    }

    pub fn start_in(dir: Workdir, port: u16) -> anyhow::Result<Self> {
        let process = Self::spawn(&dir, port)?;
        Ok(Redis {
            port,
            process: Some(process),
            dir,
        })
    }

    /// Stop the server. Nothing is persisted: its data is gone.
    pub fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.stop();
        }
    }

    /// Start (again) on the same port, empty.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.stop();
        self.process = Some(Self::spawn(&self.dir, self.port)?);
        Ok(())
    }

    fn spawn(dir: &Workdir, port: u16) -> anyhow::Result<ServerProcess> {
        let mut cmd = Command::new(program("redis-server")?);
        cmd.args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args([
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "no",
                "--daemonize",
                "no",
            ])
            .arg("--dir")
            .arg(dir.path());
        let mut process = ServerProcess::spawn("redis", cmd, &dir.path().join("redis.log"))?;
        wait_ready(&mut process, "redis", || redis_ping(port))?;
        Ok(process)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().and_then(ServerProcess::pid)
    }
}

fn redis_ping(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let mut reply = [0u8; 7];
    stream.write_all(b"PING\r\n").is_ok()
        && stream.read_exact(&mut reply).is_ok()
        && &reply == b"+PONG\r\n"
}
