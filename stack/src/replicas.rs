//! Replicas of one shop service as local processes — what a Deployment's pods are in the
//! bundled stack. Each replica gets its own port and a pid file (the exporter's process
//! source reads those), is started ready-checked and stopped gracefully (SIGTERM).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::bail;
use surge_servers::{ServerProcess, free_port, wait_until};

/// One shop service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Service {
    /// Service and workload name (`orders`), also the `shop` subcommand.
    pub name: &'static str,
    /// URL path prefixes nginx routes to it (empty: not behind the load balancer).
    pub routes: &'static [&'static str],
}

pub const SERVICES: [Service; 5] = [
    Service {
        name: "auth",
        routes: &["/auth/"],
    },
    Service {
        name: "catalog",
        routes: &["/products"],
    },
    Service {
        name: "orders",
        routes: &["/orders", "/cart"],
    },
    Service {
        name: "payment",
        routes: &[],
    },
    Service {
        name: "shipping",
        routes: &[],
    },
];

pub struct Replica {
    pub name: String,
    pub port: u16,
    process: ServerProcess,
    pid_file: PathBuf,
}

impl Replica {
    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.process.stop();
        let _ = std::fs::remove_file(&self.pid_file);
    }
}

/// The running replicas of one service.
pub struct ReplicaSet {
    pub service: Service,
    binary: PathBuf,
    env: Vec<(String, String)>,
    dir: PathBuf,
    replicas: Vec<Replica>,
    next_index: usize,
}

impl ReplicaSet {
    /// `dir` holds `pids/` and `logs/`; `env` is the shared `SHOP_*` environment.
    pub fn new(
        service: Service,
        binary: &Path,
        env: Vec<(String, String)>,
        dir: &Path,
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir.join("pids"))?;
        std::fs::create_dir_all(dir.join("logs"))?;
        Ok(ReplicaSet {
            service,
            binary: binary.to_path_buf(),
            env,
            dir: dir.to_path_buf(),
            replicas: Vec::new(),
            next_index: 0,
        })
    }

    pub fn len(&self) -> usize {
        self.replicas.len()
    }

    pub fn is_empty(&self) -> bool {
        self.replicas.is_empty()
    }

    pub fn replicas(&self) -> &[Replica] {
        &self.replicas
    }

    /// (pod name, pid) of every replica.
    pub fn pods(&self) -> Vec<(String, Option<i32>)> {
        self.replicas
            .iter()
            .map(|r| (r.name.clone(), r.pid().and_then(|p| i32::try_from(p).ok())))
            .collect()
    }

    /// Start or stop replicas until there are `n`; returns whether anything changed. New
    /// replicas are waited for until ready; the newest are stopped first.
    pub fn scale_to(&mut self, n: usize) -> anyhow::Result<bool> {
        let before = self.replicas.len();
        while self.replicas.len() > n {
            self.replicas.pop();
        }
        while self.replicas.len() < n {
            let replica = self.start_one()?;
            self.replicas.push(replica);
        }
        Ok(before != n)
    }

    fn start_one(&mut self) -> anyhow::Result<Replica> {
        let name = format!("{}-{}", self.service.name, self.next_index);
        self.next_index += 1;
        let port = free_port()?;
        let mut cmd = Command::new(&self.binary);
        cmd.arg(self.service.name)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("SHOP_LISTEN", format!("127.0.0.1:{port}"))
            .env("SHOP_INSTANCE", &name);
        let log = self.dir.join("logs").join(format!("{name}.log"));
        let mut process = ServerProcess::spawn(&name, cmd, &log)?;
        let addr = format!("127.0.0.1:{port}");
        let ready = wait_until(
            &name,
            Duration::from_secs(30),
            Duration::from_millis(50),
            || Ok(surge_servers::http::get(&addr, "/readyz", None).is_ok_and(|(s, _, _)| s == 200)),
        );
        if let Err(e) = ready {
            let running = process.is_running();
            bail!(
                "{e:#} (running: {running}); log:\n{}",
                process.log_tail(3000)
            );
        }
        let pid_file = self.dir.join("pids").join(format!("{name}.pid"));
        std::fs::write(&pid_file, format!("{}\n", process.pid().unwrap_or(0)))?;
        Ok(Replica {
            name,
            port,
            process,
            pid_file,
        })
    }
}

/// The `http { ... }` body for nginx: one upstream per routed service, one listener.
pub fn nginx_config(listen_port: u16, sets: &[&ReplicaSet]) -> String {
    let mut out = String::new();
    let mut locations = String::new();
    for set in sets.iter().filter(|s| !s.service.routes.is_empty()) {
        let name = set.service.name;
        out.push_str(&format!("  upstream {name} {{\n    least_conn;\n"));
        if set.replicas.is_empty() {
            // nginx needs at least one server; this one refuses, giving a clean 502.
            out.push_str("    server 127.0.0.1:9 down;\n");
        }
        for r in &set.replicas {
            out.push_str(&format!(
                "    server 127.0.0.1:{} max_fails=2 fail_timeout=2s;\n",
                r.port
            ));
        }
        out.push_str("    keepalive 64;\n  }\n");
        for route in set.service.routes {
            locations.push_str(&format!(
                "    location {route} {{\n      proxy_pass http://{name};\n      proxy_http_version 1.1;\n      \
                 proxy_set_header Connection \"\";\n      proxy_set_header Host $host;\n      \
                 proxy_next_upstream error timeout http_502 http_503;\n      \
                 add_header X-Upstream $upstream_addr always;\n    }}\n"
            ));
        }
    }
    out.push_str(&format!(
        "  server {{\n    listen 127.0.0.1:{listen_port};\n    location = /healthz {{ return 200 \"ok\\n\"; }}\n{locations}  }}\n"
    ));
    out
}
