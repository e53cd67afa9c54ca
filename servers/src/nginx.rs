//! nginx from Debian's package, as the local stack's load balancer.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::launch::{program, wait_ready};
use crate::process::ServerProcess;
use crate::sys::{self, Signal};
use crate::workdir::Workdir;

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
            .with_stop_signal(Signal::Quit);
        wait_ready(&mut process, "nginx", || {
            TcpStream::connect(("127.0.0.1", ready_port)).is_ok()
        })?;
        Ok(Nginx { process, conf, dir })
    }

    fn config(dir: &Path, http_body: &str) -> String {
        let root = sys::is_root();
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
        self.process.signal(Signal::Hup)
    }

    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }
}
