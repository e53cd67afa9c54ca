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
        // Stopping: all are signalled before any is waited for (each finishes its work and
        // leaves its consumer group on its own time).
        if self.replicas.len() > n {
            let mut leaving: Vec<Replica> = self.replicas.drain(n..).rev().collect();
            for replica in &mut leaving {
                replica.process.begin_stop();
            }
        }
        // Starting: all are started before any is waited for.
        let mut starting = Vec::new();
        while self.replicas.len() + starting.len() < n {
            starting.push(self.spawn_one()?);
        }
        for replica in starting {
            self.replicas.push(replica.ready()?);
        }
        Ok(before != n)
    }

    /// Replace the replicas whose process has exited (killed, crashed) with new ones, as a
    /// Deployment replaces a pod that died; returns how many were replaced.
    pub fn replace_exited(&mut self) -> anyhow::Result<usize> {
        let wanted = self.replicas.len();
        self.replicas.retain_mut(|r| r.process.is_running());
        let gone = wanted - self.replicas.len();
        self.scale_to(wanted)?;
        Ok(gone)
    }

    /// Set `key` in the environment new replicas start with (a changed pod template).
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_owned(), value.to_owned()));
    }

    /// Start one replica from the current environment and take the oldest out of the set,
    /// returned still running: the caller stops it once nothing routes to it (one step of a
    /// rolling update: the new one is ready before the old one goes).
    pub fn replace_oldest(&mut self) -> anyhow::Result<Option<Replica>> {
        if self.replicas.is_empty() {
            return Ok(None);
        }
        let fresh = self.spawn_one()?.ready()?;
        let oldest = self.replicas.remove(0);
        self.replicas.push(fresh);
        Ok(Some(oldest))
    }

    /// Signal every replica to stop, without waiting (a later `scale_to(0)` waits).
    pub fn begin_stop_all(&mut self) {
        for replica in &mut self.replicas {
            replica.process.begin_stop();
        }
    }

    fn spawn_one(&mut self) -> anyhow::Result<Starting> {
        let name = format!("{}-{}", self.service.name, self.next_index);
        self.next_index += 1;
        let port = free_port()?;
        let mut cmd = Command::new(&self.binary);
        cmd.arg(self.service.name)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("SHOP_LISTEN", format!("127.0.0.1:{port}"))
            .env("SHOP_INSTANCE", &name);
        let log = self.dir.join("logs").join(format!("{name}.log"));
        let process = ServerProcess::spawn(&name, cmd, &log)?;
        let pid_file = self.dir.join("pids").join(format!("{name}.pid"));
        Ok(Starting(Replica {
            name,
            port,
            process,
            pid_file,
        }))
    }
}

/// A replica started and not yet ready.
struct Starting(Replica);

impl Starting {
    /// Wait until it answers `/readyz`, then publish its pid file (the exporter's process
    /// source reads those).
    fn ready(self) -> anyhow::Result<Replica> {
        let Starting(mut replica) = self;
        let addr = format!("127.0.0.1:{}", replica.port);
        let ready = wait_until(
            &replica.name,
            Duration::from_secs(30),
            Duration::from_millis(50),
            || Ok(surge_servers::http::get(&addr, "/readyz", None).is_ok_and(|(s, _, _)| s == 200)),
        );
        if let Err(e) = ready {
            let running = replica.process.is_running();
            bail!(
                "{e:#} (running: {running}); log:\n{}",
                replica.process.log_tail(3000)
            );
        }
        std::fs::write(
            &replica.pid_file,
            format!("{}\n", replica.process.pid().unwrap_or(0)),
        )?;
        Ok(replica)
    }
}

/// Logins and registrations one client may start per second (each runs Argon2: a guesser
/// or a flood gets 429 instead of the auth service's memory), with a burst of twice that.
pub const AUTH_RATE_PER_CLIENT: u32 = 10;

/// Where the per-client limit applies: the two endpoints that run Argon2.
const RATE_LIMITED: [&str; 2] = ["/auth/login", "/auth/register"];

/// The `http { ... }` body for nginx: one upstream per routed service, one listener;
/// `auth_rate`: logins and registrations per second per client address (None: unlimited).
pub fn nginx_config(listen_port: u16, sets: &[&ReplicaSet], auth_rate: Option<u32>) -> String {
    let mut out = String::new();
    let mut locations = String::new();
    if let Some(rate) = auth_rate {
        out.push_str(&format!(
            "  limit_req_zone $binary_remote_addr zone=auth:10m rate={rate}r/s;
  limit_req_status 429;
"
        ));
    }
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
        // A replica that cannot be reached (or answers 502) is skipped for the next one; a
        // 503 is the service's own answer, with its reason, and goes to the client as it is
        // (retried and counted as a failure, every replica's 503 would turn into nginx's
        // "no live upstreams" 502 while, say, Redis is gone).
        let proxy = format!(
            "proxy_pass http://{name};\n      proxy_http_version 1.1;\n      \
             proxy_set_header Connection \"\";\n      proxy_set_header Host $host;\n      \
             proxy_next_upstream error timeout http_502;\n      \
             add_header X-Upstream $upstream_addr always;"
        );
        if let Some(rate) = auth_rate.filter(|_| set.service.routes.contains(&"/auth/")) {
            for path in RATE_LIMITED {
                locations.push_str(&format!(
                    "    location = {path} {{\n      limit_req zone=auth burst={} nodelay;\n      {proxy}\n    }}\n",
                    rate * 2
                ));
            }
        }
        for route in set.service.routes {
            locations.push_str(&format!("    location {route} {{\n      {proxy}\n    }}\n"));
        }
    }
    out.push_str(&format!(
        "  server {{\n    listen 127.0.0.1:{listen_port};\n    location = /healthz {{ return 200 \"ok\\n\"; }}\n{locations}  }}\n"
    ));
    out
}
