//! Redis, nginx, Prometheus and Alertmanager from Debian's packages, each on loopback with
//! its files under one directory. Debian installs them without starting anything here (no
//! init system), so these are our own instances.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::ports::free_port;
use crate::process::ServerProcess;
use crate::wait::wait_until;
use crate::workdir::Workdir;

/// Find a program on PATH or in the sbin directories Debian uses for daemons.
pub fn program(name: &str) -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin"].iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .with_context(|| format!("{name} not found; run scripts/install-deps"))
}

fn wait_ready(
    process: &mut ServerProcess,
    what: &str,
    mut ready: impl FnMut() -> bool,
) -> anyhow::Result<()> {
    let result = wait_until(
        what,
        Duration::from_secs(30),
        Duration::from_millis(50),
        || Ok(ready()),
    );
    if let Err(e) = result {
        let running = process.is_running();
        bail!(
            "{e:#} (running: {running}); log:\n{}",
            process.log_tail(2000)
        );
    }
    Ok(())
}

fn http_ready(port: u16, path: &str) -> bool {
    crate::http::get(&format!("127.0.0.1:{port}"), path, None)
        .is_ok_and(|(status, _, _)| status == 200)
}

/// A Redis server without persistence.
pub struct Redis {
    port: u16,
    process: ServerProcess,
    _dir: Workdir,
}

impl Redis {
    pub fn start() -> anyhow::Result<Self> {
        Self::start_in(Workdir::temp("surge-redis-")?, free_port()?)
    }

    pub fn start_in(dir: Workdir, port: u16) -> anyhow::Result<Self> {
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
        Ok(Redis {
            port,
            process,
            _dir: dir,
        })
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
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

/// nginx with a caller-provided `http { ... }` body; `reload` swaps it without dropping
/// connections (SIGHUP), as a load balancer in front of changing replicas needs.
pub struct Nginx {
    process: ServerProcess,
    conf: PathBuf,
    dir: Workdir,
}

impl Nginx {
    /// Start with `http_body` (upstreams and servers); `ready_port` is a port it listens on.
    pub fn start_in(dir: Workdir, http_body: &str, ready_port: u16) -> anyhow::Result<Self> {
        let conf = dir.path().join("nginx.conf");
        std::fs::create_dir_all(dir.path().join("temp"))?;
        std::fs::write(&conf, Self::config(dir.path(), http_body))?;
        let mut cmd = Command::new(program("nginx")?);
        cmd.arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf)
            .args(["-g", "daemon off;"]);
        let mut process = ServerProcess::spawn("nginx", cmd, &dir.path().join("nginx.log"))?
            .with_stop_signal(libc::SIGQUIT);
        wait_ready(&mut process, "nginx", || {
            TcpStream::connect(("127.0.0.1", ready_port)).is_ok()
        })?;
        Ok(Nginx { process, conf, dir })
    }

    fn config(dir: &Path, http_body: &str) -> String {
        // SAFETY: geteuid has no preconditions.
        #[allow(unsafe_code)]
        let root = unsafe { libc::geteuid() } == 0;
        let temp = dir.join("temp");
        let temp = temp.display();
        format!(
            "{user}worker_processes 1;\npid {pid};\nerror_log {dir}/error.log warn;\n\
             events {{ worker_connections 4096; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {temp}/body;\n  proxy_temp_path {temp}/proxy;\n\
             fastcgi_temp_path {temp}/fastcgi;\n  uwsgi_temp_path {temp}/uwsgi;\n  scgi_temp_path {temp}/scgi;\n{http_body}\n}}\n",
            user = if root { "user root;\n" } else { "" },
            pid = dir.join("nginx.pid").display(),
            dir = dir.display(),
        )
    }

    /// Replace the `http` body and reload (graceful: old workers finish their requests).
    pub fn reload(&self, http_body: &str) -> anyhow::Result<()> {
        std::fs::write(&self.conf, Self::config(self.dir.path(), http_body))?;
        self.process.signal(libc::SIGHUP)
    }

    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }
}

/// Prometheus with a given config (rule files referenced from it by absolute path).
pub struct Prometheus {
    port: u16,
    process: ServerProcess,
    _dir: Workdir,
}

impl Prometheus {
    pub fn start_in(dir: Workdir, port: u16, config_yaml: &str) -> anyhow::Result<Self> {
        let config = dir.path().join("prometheus.yml");
        std::fs::write(&config, config_yaml)?;
        let mut cmd = Command::new(program("prometheus")?);
        cmd.arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--web.enable-lifecycle")
            // Alerts found before Alertmanager discovery completes (its first 5 s) are
            // dropped and only re-sent after this delay; the 1 m default would make every
            // local alert a minute late.
            .arg("--rules.alert.resend-delay=2s")
            .arg("--log.level=warn");
        let mut process =
            ServerProcess::spawn("prometheus", cmd, &dir.path().join("prometheus.log"))?;
        wait_ready(&mut process, "prometheus", || http_ready(port, "/-/ready"))?;
        Ok(Prometheus {
            port,
            process,
            _dir: dir,
        })
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }
}

/// Alertmanager, single instance (clustering off).
pub struct Alertmanager {
    port: u16,
    process: ServerProcess,
    _dir: Workdir,
}

impl Alertmanager {
    pub fn start_in(dir: Workdir, port: u16, config_yaml: &str) -> anyhow::Result<Self> {
        let config = dir.path().join("alertmanager.yml");
        std::fs::write(&config, config_yaml)?;
        let mut cmd = Command::new(program("prometheus-alertmanager")?);
        cmd.arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .arg("--log.level=warn");
        let mut process =
            ServerProcess::spawn("alertmanager", cmd, &dir.path().join("alertmanager.log"))?;
        wait_ready(&mut process, "alertmanager", || {
            http_ready(port, "/-/ready")
        })?;
        Ok(Alertmanager {
            port,
            process,
            _dir: dir,
        })
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }
}
