//! A PostgreSQL primary with streaming replicas on loopback ports, built with `initdb` and
//! `pg_basebackup -R -C -S <slot>` like a real deployment.
//!
//! PostgreSQL refuses to run as root: when we are root, every server command runs as the
//! `postgres` user on directories it owns.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};

use crate::ports::free_port;
use crate::process::{ServerProcess, run};
use crate::sys::{self, Signal};
use crate::wait::wait_until;
use crate::workdir::Workdir;

/// Role the exporter connects as: `pg_monitor` only, password-authenticated with a password
/// generated per cluster ([`PgCluster::monitor_password`]).
pub const MONITOR_ROLE: &str = "surge_monitor";

/// 144 random bits as hex, from the kernel.
fn generate_password() -> anyhow::Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 18];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("reading /dev/urandom for the monitoring password")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// One server of the cluster.
#[derive(Debug)]
pub struct PgNode {
    pub name: String,
    pub port: u16,
    pub data_dir: PathBuf,
    log: PathBuf,
    process: Option<ServerProcess>,
}

impl PgNode {
    pub fn is_running(&mut self) -> bool {
        self.process.as_mut().is_some_and(ServerProcess::is_running)
    }
    pub fn log_path(&self) -> &Path {
        &self.log
    }
}

/// Primary + streaming replicas. Dropping it stops every server and deletes the data.
#[derive(Debug)]
pub struct PgCluster {
    bin: PathBuf,
    run_as: Option<(u32, u32)>,
    nodes: Vec<PgNode>,
    /// The node that takes writes (changes with [`PgCluster::fail_over`]).
    primary: String,
    monitor_password: String,
    // Declared last: removed after the servers above have stopped.
    root: Workdir,
}

impl PgCluster {
    /// Start a primary and `replicas` streaming replicas (`replica1`, `replica2`, ...), each
    /// with a physical replication slot of the same name and `application_name`.
    pub fn start(replicas: usize) -> anyhow::Result<PgCluster> {
        Self::start_in(Workdir::temp("surge-pg-")?, replicas)
    }

    /// Like `start`, in `root` (which must not hold a cluster yet).
    pub fn start_in(root: Workdir, replicas: usize) -> anyhow::Result<PgCluster> {
        let bin = bin_dir()?;
        let run_as = server_user()?;
        if let Some((uid, gid)) = run_as {
            std::os::unix::fs::chown(root.path(), Some(uid), Some(gid))?;
        }
        let mut cluster = PgCluster {
            bin,
            run_as,
            nodes: Vec::new(),
            primary: "primary".into(),
            monitor_password: generate_password()?,
            root,
        };
        cluster.init_primary()?;
        for i in 1..=replicas {
            cluster.add_replica(&format!("replica{i}"))?;
        }
        Ok(cluster)
    }

    pub fn root(&self) -> &Path {
        self.root.path()
    }

    pub fn node(&self, name: &str) -> anyhow::Result<&PgNode> {
        self.nodes
            .iter()
            .find(|n| n.name == name)
            .ok_or_else(|| anyhow!("no node {name}"))
    }

    fn node_mut(&mut self, name: &str) -> anyhow::Result<&mut PgNode> {
        self.nodes
            .iter_mut()
            .find(|n| n.name == name)
            .ok_or_else(|| anyhow!("no node {name}"))
    }

    pub fn node_names(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.name.clone()).collect()
    }

    pub fn port(&self, name: &str) -> anyhow::Result<u16> {
        Ok(self.node(name)?.port)
    }

    /// Superuser URL (trust auth on loopback).
    pub fn superuser_dsn(&self, name: &str) -> anyhow::Result<String> {
        Ok(format!(
            "postgres://postgres@127.0.0.1:{}/postgres",
            self.port(name)?
        ))
    }

    /// The monitoring role's password (generated for this cluster; give it to the exporter
    /// through a file or the environment, never the URL).
    pub fn monitor_password(&self) -> &str {
        &self.monitor_password
    }

    /// URL for the least-privilege monitoring role, without its password.
    pub fn monitor_dsn(&self, name: &str) -> anyhow::Result<String> {
        Ok(format!(
            "postgres://{MONITOR_ROLE}@127.0.0.1:{}/postgres",
            self.port(name)?
        ))
    }

    /// Run SQL as superuser with psql; returns unaligned, tuples-only output.
    pub fn psql(&self, name: &str, sql: &str) -> anyhow::Result<String> {
        self.psql_in(name, "postgres", sql)
    }

    /// Like `psql`, in database `database`.
    pub fn psql_in(&self, name: &str, database: &str, sql: &str) -> anyhow::Result<String> {
        let mut cmd = self.psql_command(name)?;
        cmd.args(["-d", database, "-c", sql]);
        Ok(run(&format!("psql on {name}"), cmd)?.trim().to_string())
    }

    /// psql as superuser on `name`, unaligned and tuples-only, stopping at the first error.
    fn psql_command(&self, name: &str) -> anyhow::Result<Command> {
        let mut cmd = Command::new(self.bin.join("psql"));
        cmd.args(["-X", "-At", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1"])
            .args(["-U", "postgres", "-p"])
            .arg(self.port(name)?.to_string());
        Ok(cmd)
    }

    /// Stop one server (fast shutdown) and wait for it to exit.
    pub fn stop_node(&mut self, name: &str) -> anyhow::Result<()> {
        let node = self.node_mut(name)?;
        if let Some(mut process) = node.process.take() {
            process.stop();
        }
        Ok(())
    }

    /// Start a stopped server again on the same port and data directory.
    pub fn start_node(&mut self, name: &str) -> anyhow::Result<()> {
        let (port, data_dir, log) = {
            let node = self.node(name)?;
            (node.port, node.data_dir.clone(), node.log.clone())
        };
        let process = self.spawn_server(name, port, &data_dir, &log)?;
        self.node_mut(name)?.process = Some(process);
        self.wait_accepting(name)
    }

    /// Wait until `replica` streams from the primary and has reported a replay position
    /// (as seen in `pg_stat_replication`).
    pub fn wait_streaming(&self, replica: &str, timeout: Duration) -> anyhow::Result<()> {
        let sql = format!(
            "SELECT count(*) FROM pg_stat_replication WHERE application_name = '{replica}' \
             AND state = 'streaming' AND replay_lsn IS NOT NULL"
        );
        wait_until(
            &format!("{replica} streaming"),
            timeout,
            Duration::from_millis(100),
            || Ok(self.psql(&self.primary, &sql)? == "1"),
        )
    }

    /// Wait until `replica` has replayed everything the primary has written so far, and the
    /// primary has heard so (its `pg_stat_replication.replay_lsn` lags the replica's own view
    /// by up to one `wal_receiver_status_interval`).
    pub fn wait_caught_up(&self, replica: &str, timeout: Duration) -> anyhow::Result<()> {
        let target = self.psql(&self.primary, "SELECT pg_current_wal_lsn()")?;
        let on_replica = format!("SELECT pg_last_wal_replay_lsn() >= '{target}'::pg_lsn");
        let on_primary = format!(
            "SELECT count(*) FROM pg_stat_replication \
             WHERE application_name = '{replica}' AND replay_lsn >= '{target}'::pg_lsn"
        );
        wait_until(
            &format!("{replica} caught up"),
            timeout,
            Duration::from_millis(100),
            || {
                Ok(self.psql(replica, &on_replica)? == "t"
                    && self.psql(&self.primary, &on_primary)? == "1")
            },
        )
    }

    /// The node that takes writes: `primary` until a failover.
    pub fn primary_name(&self) -> &str {
        &self.primary
    }

    /// Commit only once one standby (any) has the commit, as `synchronous: {method: any,
    /// number: 1}` makes CloudNativePG do: a failover to the most advanced standby then keeps
    /// every acknowledged write. Writes wait while no standby is connected.
    pub fn synchronous(&self) -> anyhow::Result<()> {
        self.psql(
            &self.primary,
            "ALTER SYSTEM SET synchronous_standby_names = 'ANY 1 (*)'",
        )?;
        self.psql(&self.primary, "SELECT pg_reload_conf()")?;
        Ok(())
    }

    /// Kill a server outright (SIGKILL to the postmaster, as a lost machine would), and wait
    /// until it is gone.
    pub fn kill_node(&mut self, name: &str) -> anyhow::Result<()> {
        let node = self.node_mut(name)?;
        if let Some(mut process) = node.process.take() {
            process.signal(Signal::Kill)?;
            process.stop();
        }
        Ok(())
    }

    /// Promote the most advanced running standby (most WAL received) with `pg_ctl promote`,
    /// give it a replication slot for every other node, and point the other running standbys
    /// at it. Returns the new primary's name. What a failover manager does after losing the
    /// primary.
    pub fn fail_over(&mut self) -> anyhow::Result<String> {
        let mut best: Option<(String, String)> = None;
        for name in self.node_names() {
            if name == self.primary || !self.node_mut(&name)?.is_running() {
                continue;
            }
            // LSNs compare as numbers: let PostgreSQL order them.
            let received = self.psql(&name, "SELECT pg_last_wal_receive_lsn()")?;
            let ahead = match &best {
                None => true,
                Some((_, lsn)) => {
                    self.psql(
                        &name,
                        &format!("SELECT '{received}'::pg_lsn > '{lsn}'::pg_lsn"),
                    )? == "t"
                }
            };
            if ahead {
                best = Some((name, received));
            }
        }
        let (chosen, _) = best.context("no running standby to promote")?;
        let data_dir = self.node(&chosen)?.data_dir.clone();
        let mut promote = self.server_command("pg_ctl");
        promote
            .args(["promote", "-w", "-t", "60", "-D"])
            .arg(&data_dir);
        run(&format!("pg_ctl promote {chosen}"), promote)?;
        let old = std::mem::replace(&mut self.primary, chosen.clone());
        let port = self.port(&chosen)?;
        for name in self.node_names() {
            if name == chosen {
                continue;
            }
            self.psql(
                &chosen,
                &format!("SELECT pg_create_physical_replication_slot('{name}') WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = '{name}')"),
            )?;
            if name == old || !self.node_mut(&name)?.is_running() {
                continue;
            }
            // primary_conninfo reloads without a restart (PostgreSQL 13+); the standby
            // follows the new timeline (recovery_target_timeline = latest).
            self.psql(
                &name,
                &format!(
                    "ALTER SYSTEM SET primary_conninfo = 'host=127.0.0.1 port={port} user=postgres application_name={name}'"
                ),
            )?;
            self.psql(&name, "SELECT pg_reload_conf()")?;
        }
        Ok(chosen)
    }

    /// Bring a stopped former primary back as a standby of the current primary: `pg_rewind`
    /// (undoing whatever it wrote that the new primary never got), recovery settings with its
    /// slot, start, and wait until it streams.
    pub fn rejoin(&mut self, name: &str) -> anyhow::Result<()> {
        if self.node_mut(name)?.is_running() {
            bail!("{name} is running; stop it before rejoining it");
        }
        let data_dir = self.node(name)?.data_dir.clone();
        let source_port = self.port(&self.primary)?;
        // A just-promoted primary records its new timeline in its control file only at its
        // next checkpoint; before that pg_rewind sees no divergence and rewinds nothing.
        self.psql(&self.primary, "CHECKPOINT")?;
        let mut rewind = self.server_command("pg_rewind");
        rewind
            .arg("--target-pgdata")
            .arg(&data_dir)
            .arg(format!(
                "--source-server=host=127.0.0.1 port={source_port} user=postgres dbname=postgres application_name={name}"
            ))
            .args(["--write-recovery-conf", "--no-sync"]);
        run(&format!("pg_rewind {name}"), rewind)?;
        append(
            &data_dir.join("postgresql.auto.conf"),
            &format!("primary_slot_name = '{name}'\n"),
        )?;
        self.start_node(name)?;
        // Its slots from when it was the primary would keep WAL for standbys that now stream
        // from elsewhere.
        self.psql(
            name,
            "SELECT count(pg_drop_replication_slot(slot_name)) FROM pg_replication_slots WHERE NOT active",
        )?;
        self.wait_streaming(name, Duration::from_secs(60))
            .map_err(|e| {
                let tail = crate::process::log_tail(
                    &self
                        .nodes
                        .iter()
                        .find(|n| n.name == name)
                        .map(|n| n.log.clone())
                        .unwrap_or_default(),
                    3000,
                );
                anyhow!("{e:#}; {name}'s log tail:\n{tail}")
            })
    }

    /// Open a superuser session on `name`, run `sql` inside a transaction and keep the
    /// transaction (and its locks) open until the returned value is dropped, which rolls it
    /// back. Returns once `sql` has run.
    pub fn hold_transaction(&self, name: &str, sql: &str) -> anyhow::Result<HeldTransaction> {
        use std::io::{BufRead, Write};
        let mut child = self
            .psql_command(name)?
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .context("starting psql")?;
        let mut stdin = child.stdin.take().context("psql stdin")?;
        writeln!(stdin, "BEGIN;\n{sql};\n\\echo surge-held")?;
        stdin.flush()?;
        let stdout = child.stdout.take().context("psql stdout")?;
        let mut held = false;
        for line in std::io::BufReader::new(stdout).lines() {
            if line? == "surge-held" {
                held = true;
                break;
            }
        }
        if !held {
            let _ = child.wait();
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                use std::io::Read;
                let _ = e.read_to_string(&mut err);
            }
            bail!("psql on {name} did not hold `{sql}`: {}", err.trim());
        }
        Ok(HeldTransaction {
            child,
            stdin: Some(stdin),
        })
    }

    fn init_primary(&mut self) -> anyhow::Result<()> {
        let name = "primary";
        let data_dir = self.root.path().join(name);
        let mut initdb = self.server_command("initdb");
        initdb
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "--encoding=UTF8",
                "--locale=C",
                "-D",
            ])
            .arg(&data_dir);
        run("initdb", initdb)?;
        let conf = "\n# surge-servers\n\
            listen_addresses = '127.0.0.1'\n\
            unix_socket_directories = ''\n\
            wal_level = replica\n\
            max_wal_senders = 10\n\
            max_replication_slots = 10\n\
            hot_standby = on\n\
            fsync = off\n\
            wal_log_hints = on\n\
            shared_buffers = 32MB\n\
            max_connections = 300\n\
            wal_receiver_status_interval = 1s\n\
            logging_collector = off\n";
        append(&data_dir.join("postgresql.conf"), conf)?;
        let hba = "\n# surge-servers: superuser and replication trusted on loopback,\n\
            # everyone else (the monitoring role) must authenticate.\n\
            host replication all 127.0.0.1/32 trust\n\
            host all postgres 127.0.0.1/32 trust\n\
            host all all 127.0.0.1/32 scram-sha-256\n";
        std::fs::write(data_dir.join("pg_hba.conf"), hba)?;
        self.chown_tree(&data_dir)?;
        self.launch(name, data_dir)?;
        self.psql(
            name,
            &format!(
                "CREATE ROLE {MONITOR_ROLE} LOGIN PASSWORD '{}'; GRANT pg_monitor TO {MONITOR_ROLE};",
                self.monitor_password
            ),
        )?;
        Ok(())
    }

    fn add_replica(&mut self, name: &str) -> anyhow::Result<()> {
        let primary_port = self.port("primary")?;
        let data_dir = self.root.path().join(name);
        let mut backup = self.server_command("pg_basebackup");
        backup
            .arg("-d")
            .arg(format!(
                "host=127.0.0.1 port={primary_port} user=postgres application_name={name}"
            ))
            .args([
                "-R",
                "-C",
                "-S",
                name,
                "--checkpoint=fast",
                "--no-sync",
                "-X",
                "stream",
                "-D",
            ])
            .arg(&data_dir);
        run(&format!("pg_basebackup for {name}"), backup)?;
        self.launch(name, data_dir)?;
        self.wait_streaming(name, Duration::from_secs(30))
    }

    /// Start a new node's server on a free port and wait until it accepts connections.
    fn launch(&mut self, name: &str, data_dir: PathBuf) -> anyhow::Result<()> {
        let log = self.root.path().join(format!("{name}.log"));
        let port = free_port()?;
        let process = self.spawn_server(name, port, &data_dir, &log)?;
        self.nodes.push(PgNode {
            name: name.into(),
            port,
            data_dir,
            log,
            process: Some(process),
        });
        self.wait_accepting(name)
    }

    fn spawn_server(
        &self,
        name: &str,
        port: u16,
        data_dir: &Path,
        log: &Path,
    ) -> anyhow::Result<ServerProcess> {
        let mut cmd = self.server_command("postgres");
        cmd.arg("-D").arg(data_dir).arg("-p").arg(port.to_string());
        Ok(ServerProcess::spawn(&format!("postgres {name}"), cmd, log)?
            .with_stop_signal(Signal::Int))
    }

    fn wait_accepting(&mut self, name: &str) -> anyhow::Result<()> {
        let port = self.port(name)?;
        let isready = self.bin.join("pg_isready");
        let result = wait_until(
            &format!("postgres {name} on port {port}"),
            Duration::from_secs(30),
            Duration::from_millis(50),
            || {
                let status = Command::new(&isready)
                    .args(["-q", "-h", "127.0.0.1", "-t", "1", "-p"])
                    .arg(port.to_string())
                    .status()
                    .context("running pg_isready")?;
                Ok(status.success())
            },
        );
        if let Err(e) = result {
            let node = self.node_mut(name)?;
            let running = node.is_running();
            let tail = crate::process::log_tail(&node.log, 2000);
            bail!("{e:#} (server running: {running}); log tail:\n{tail}");
        }
        Ok(())
    }

    /// A command for a PostgreSQL server binary, run as `postgres` when we are root.
    fn server_command(&self, program: &str) -> Command {
        let mut cmd = Command::new(self.bin.join(program));
        if let Some((uid, gid)) = self.run_as {
            cmd.uid(uid).gid(gid);
        }
        // initdb and friends refuse to run if HOME points somewhere unreadable.
        cmd.env("HOME", self.root.path()).env_remove("PGDATA");
        cmd
    }

    fn chown_tree(&self, path: &Path) -> anyhow::Result<()> {
        let Some((uid, gid)) = self.run_as else {
            return Ok(());
        };
        std::os::unix::fs::chown(path, Some(uid), Some(gid))?;
        if path.is_dir() {
            for entry in std::fs::read_dir(path)? {
                self.chown_tree(&entry?.path())?;
            }
        }
        Ok(())
    }
}

/// A transaction kept open by a psql session ([`PgCluster::hold_transaction`]); dropping it
/// rolls back and ends the session.
#[derive(Debug)]
pub struct HeldTransaction {
    child: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
}

impl Drop for HeldTransaction {
    fn drop(&mut self) {
        use std::io::Write;
        if let Some(mut stdin) = self.stdin.take() {
            let _ = writeln!(stdin, "ROLLBACK;\n\\q");
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        // Replicas first, so the primary does not wait on their walsenders.
        for node in self.nodes.iter_mut().rev() {
            if let Some(mut process) = node.process.take() {
                process.stop();
            }
        }
    }
}

fn append(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new().append(true).open(path)?;
    file.write_all(text.as_bytes())?;
    Ok(())
}

/// Directory of the PostgreSQL server binaries: `$SURGE_PG_BINDIR`, else the newest
/// `/usr/lib/postgresql/<version>/bin` (Debian's layout; not on PATH).
pub fn bin_dir() -> anyhow::Result<PathBuf> {
    if let Ok(dir) = std::env::var("SURGE_PG_BINDIR") {
        return Ok(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .context("PostgreSQL is not installed (no /usr/lib/postgresql); run scripts/install-deps")?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("postgres").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).ok_or_else(|| {
        anyhow!("no PostgreSQL server under /usr/lib/postgresql; run scripts/install-deps")
    })
}

/// `Some((uid, gid))` of the `postgres` user when running as root, else `None`.
fn server_user() -> anyhow::Result<Option<(u32, u32)>> {
    if !sys::is_root() {
        return Ok(None);
    }
    let passwd = std::fs::read_to_string("/etc/passwd")?;
    for line in passwd.lines() {
        let fields: Vec<&str> = line.split(':').collect();
        if fields.len() > 3 && fields[0] == "postgres" {
            return Ok(Some((fields[2].parse()?, fields[3].parse()?)));
        }
    }
    bail!(
        "running as root but there is no postgres user to run PostgreSQL as; install the postgresql package"
    )
}
