//! A PostgreSQL primary with streaming replicas on loopback ports, of any supported major.
//!
//! Every node starts from one data directory made by `initdb` once per run and major (a
//! template under the system's temporary directory): the primary is a copy of it, and so is
//! each standby, with `standby.signal`, `primary_conninfo` and a physical replication slot of
//! its own — a cold base backup taken before the primary ever ran, so it streams from the
//! primary's first WAL record. That replaces an `initdb` and a `pg_basebackup` per node.
//!
//! PostgreSQL refuses to run as root: when we are root, every server command runs as the
//! `postgres` user on directories it owns.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};

use crate::ports::free_port;
use crate::process::{ServerProcess, run, run_with_input};
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
    binaries: PgBinaries,
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
        Self::start_with(PgBinaries::installed()?, root, replicas)
    }

    /// Like `start`, on PostgreSQL `major` (one of [`SUPPORTED_MAJORS`]).
    pub fn start_major(major: u32, replicas: usize) -> anyhow::Result<PgCluster> {
        Self::start_with(
            PgBinaries::major(major)?,
            Workdir::temp(&format!("surge-pg{major}-"))?,
            replicas,
        )
    }

    /// A cluster of `binaries` in `root` (which must not hold a cluster yet).
    pub fn start_with(
        binaries: PgBinaries,
        root: Workdir,
        replicas: usize,
    ) -> anyhow::Result<PgCluster> {
        let run_as = server_user()?;
        if let Some((uid, gid)) = run_as {
            std::os::unix::fs::chown(root.path(), Some(uid), Some(gid))?;
        }
        let template = template(&binaries, run_as)?;
        let mut cluster = PgCluster {
            binaries,
            run_as,
            nodes: Vec::new(),
            primary: "primary".into(),
            monitor_password: generate_password()?,
            root,
        };
        let standbys: Vec<String> = (1..=replicas).map(|i| format!("replica{i}")).collect();
        // Every copy first: a standby is the template as it was before the primary started.
        for name in std::iter::once("primary").chain(standbys.iter().map(String::as_str)) {
            copy_dir(&template, &cluster.root.path().join(name))?;
        }
        cluster.start_primary(&standbys)?;
        for name in &standbys {
            cluster.start_standby(name)?;
        }
        for name in &standbys {
            cluster.wait_streaming(name, Duration::from_secs(30))?;
        }
        Ok(cluster)
    }

    /// The PostgreSQL major version this cluster runs.
    pub fn major(&self) -> u32 {
        self.binaries.major
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
        // One argument may not exceed 128 KiB (Linux's MAX_ARG_STRLEN): a long statement (an
        // audit listing thousands of ids) goes on stdin.
        if sql.len() > 64 * 1024 {
            cmd.args(["-d", database, "-f", "-"]);
            return Ok(
                run_with_input(&format!("psql on {name}"), cmd, sql.as_bytes())?
                    .trim()
                    .to_string(),
            );
        }
        cmd.args(["-d", database, "-c", sql]);
        Ok(run(&format!("psql on {name}"), cmd)?.trim().to_string())
    }

    /// Run `sql` that carries a secret: on psql's stdin, never its argv.
    fn psql_secret(&self, name: &str, sql: &str) -> anyhow::Result<String> {
        let (cmd, input) = self.psql_secret_command(name, sql)?;
        Ok(
            run_with_input(&format!("psql on {name}"), cmd, input.as_bytes())?
                .trim()
                .to_string(),
        )
    }

    fn psql_secret_command(&self, name: &str, sql: &str) -> anyhow::Result<(Command, String)> {
        let mut cmd = self.psql_command(name)?;
        cmd.args(["-d", "postgres", "-f", "-"]);
        Ok((cmd, sql.to_string()))
    }

    /// psql as superuser on `name`, unaligned and tuples-only, stopping at the first error.
    fn psql_command(&self, name: &str) -> anyhow::Result<Command> {
        let mut cmd = Command::new(self.binaries.client.join("psql"));
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

    fn monitor_role_sql(&self) -> String {
        format!(
            "CREATE ROLE {MONITOR_ROLE} LOGIN PASSWORD '{}'; GRANT pg_monitor TO {MONITOR_ROLE};",
            self.monitor_password
        )
    }

    /// The primary, from its copy of the template: the monitoring role and one physical slot
    /// per standby (reserving WAL from the template's checkpoint, where the standbys start).
    fn start_primary(&mut self, standbys: &[String]) -> anyhow::Result<()> {
        let name = "primary";
        self.launch(name, self.root.path().join(name))?;
        self.psql_secret(name, &self.monitor_role_sql())?;
        let mut sql = String::new();
        for standby in standbys {
            sql.push_str(&format!(
                " SELECT pg_create_physical_replication_slot('{standby}', true);"
            ));
        }
        if !sql.is_empty() {
            self.psql(name, &sql)?;
        }
        Ok(())
    }

    /// A standby from its copy of the template, streaming from the primary through its slot.
    fn start_standby(&mut self, name: &str) -> anyhow::Result<()> {
        let primary_port = self.port("primary")?;
        let data_dir = self.root.path().join(name);
        append(
            &data_dir.join("postgresql.auto.conf"),
            &format!(
                "primary_conninfo = 'host=127.0.0.1 port={primary_port} user=postgres application_name={name}'\n\
                 primary_slot_name = '{name}'\n"
            ),
        )?;
        std::fs::write(data_dir.join("standby.signal"), "")?;
        for file in ["postgresql.auto.conf", "standby.signal"] {
            self.chown_tree(&data_dir.join(file))?;
        }
        self.launch(name, data_dir)
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
        let isready = self.binaries.client.join("pg_isready");
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
        server_command(&self.binaries, self.run_as, program, self.root.path())
    }

    fn chown_tree(&self, path: &Path) -> anyhow::Result<()> {
        chown_tree(self.run_as, path)
    }
}

/// A command for a server binary of `binaries`, run as `postgres` (`run_as`) when we are root,
/// with `home` as its HOME.
fn server_command(
    binaries: &PgBinaries,
    run_as: Option<(u32, u32)>,
    program: &str,
    home: &Path,
) -> Command {
    let mut cmd = Command::new(binaries.server.join(program));
    if let Some((uid, gid)) = run_as {
        cmd.uid(uid).gid(gid);
    }
    // initdb and friends refuse to run if HOME points somewhere unreadable.
    cmd.env("HOME", home).env_remove("PGDATA");
    cmd
}

fn chown_tree(run_as: Option<(u32, u32)>, path: &Path) -> anyhow::Result<()> {
    let Some((uid, gid)) = run_as else {
        return Ok(());
    };
    std::os::unix::fs::chown(path, Some(uid), Some(gid))?;
    if path.is_dir() {
        for entry in std::fs::read_dir(path)? {
            chown_tree(run_as, &entry?.path())?;
        }
    }
    Ok(())
}

/// Settings of every node (the port is given on the command line). SCRAM passwords on every
/// major (13 and older default to md5, which the HBA rules below refuse).
const SERVER_CONF: &str = "\n# surge-servers\n\
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
    logging_collector = off\n\
    password_encryption = 'scram-sha-256'\n";

/// Superuser and replication trusted on loopback, everyone else (the monitoring role) must
/// authenticate.
const SERVER_HBA: &str = "\n# surge-servers: superuser and replication trusted on loopback,\n\
    # everyone else (the monitoring role) must authenticate.\n\
    host replication all 127.0.0.1/32 trust\n\
    host all postgres 127.0.0.1/32 trust\n\
    host all all 127.0.0.1/32 scram-sha-256\n";

/// The data directory every node of `binaries` starts from: `initdb` and the settings above,
/// never started. Made once per run (one per server build and settings, under the system's
/// temporary directory) and shared by every test process: built aside and renamed into place,
/// so a concurrent builder's copy is simply dropped.
fn template(binaries: &PgBinaries, run_as: Option<(u32, u32)>) -> anyhow::Result<PathBuf> {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (&binaries.server, &binaries.version, SERVER_CONF, SERVER_HBA).hash(&mut hasher);
    let parent = std::env::temp_dir().join("surge-pg-templates");
    let ready = parent.join(format!("{}-{:016x}", binaries.major, hasher.finish()));
    if ready.join("PG_VERSION").is_file() {
        return Ok(ready);
    }
    std::fs::create_dir_all(&parent)?;
    let building = tempfile::Builder::new()
        .prefix(".building-")
        .tempdir_in(&parent)?;
    chown_tree(run_as, building.path())?;
    let data_dir = building.path().join("data");
    let mut initdb = server_command(binaries, run_as, "initdb", building.path());
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
    run(&format!("initdb ({})", binaries.version), initdb)?;
    append(&data_dir.join("postgresql.conf"), SERVER_CONF)?;
    std::fs::write(data_dir.join("pg_hba.conf"), SERVER_HBA)?;
    chown_tree(run_as, &data_dir)?;
    match std::fs::rename(&data_dir, &ready) {
        Ok(()) => Ok(ready),
        // Another process got there first: its template is the same.
        Err(_) if ready.join("PG_VERSION").is_file() => Ok(ready),
        Err(e) => Err(anyhow!("keeping the template {}: {e}", ready.display())),
    }
}

/// `cp -a`: owners and modes as they are (PostgreSQL insists on its own, 0700).
fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    let mut cp = Command::new("cp");
    cp.arg("-a").arg(from).arg(to);
    run(&format!("copying {}", from.display()), cp)?;
    Ok(())
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

/// The majors Surge supports; the exporter's ground-truth tests run on each.
pub const SUPPORTED_MAJORS: [u32; 6] = [13, 14, 15, 16, 17, 18];

/// One PostgreSQL build: its server binaries (`postgres`, `initdb`, `pg_ctl`, ...) and the
/// client tools that drive it (`psql`, `pg_isready`: Debian's, which speak to every
/// supported major).
#[derive(Debug, Clone)]
pub struct PgBinaries {
    pub major: u32,
    /// As `postgres --version` says it, e.g. `postgres (PostgreSQL) 17.10`.
    pub version: String,
    server: PathBuf,
    client: PathBuf,
}

impl PgBinaries {
    /// `$SURGE_PG_BINDIR`, else the newest Debian server (`/usr/lib/postgresql/<major>/bin`).
    pub fn installed() -> anyhow::Result<PgBinaries> {
        PgBinaries::at(bin_dir()?)
    }

    /// PostgreSQL `major`: Debian's if it has that one, else the build `scripts/install-deps`
    /// unpacked under `$SURGE_PG_ROOT` (see [`builds_root`]).
    pub fn major(major: u32) -> anyhow::Result<PgBinaries> {
        let debian = PathBuf::from(format!("/usr/lib/postgresql/{major}/bin"));
        let server = if debian.join("postgres").is_file() {
            debian
        } else {
            builds_root().join(major.to_string()).join("bin")
        };
        if !server.join("postgres").is_file() {
            bail!(
                "PostgreSQL {major} is not installed (no {}); run scripts/install-deps",
                server.join("postgres").display()
            );
        }
        let binaries = PgBinaries::at(server)?;
        if binaries.major != major {
            bail!(
                "{} is {}, not {major}",
                binaries.server.display(),
                binaries.version
            );
        }
        Ok(binaries)
    }

    fn at(server: PathBuf) -> anyhow::Result<PgBinaries> {
        let mut cmd = Command::new(server.join("postgres"));
        cmd.arg("--version");
        let version = run(&format!("{}/postgres --version", server.display()), cmd)?
            .trim()
            .to_string();
        let major = version
            .rsplit(' ')
            .next()
            .and_then(|v| v.split('.').next())
            .and_then(|m| m.parse().ok())
            .with_context(|| format!("{}: unreadable version {version:?}", server.display()))?;
        let client = if server.join("psql").is_file() && server.join("pg_isready").is_file() {
            server.clone()
        } else {
            bin_dir()?
        };
        Ok(PgBinaries {
            major,
            version,
            server,
            client,
        })
    }
}

/// Where `scripts/install-deps` unpacks the PostgreSQL builds Debian lacks, one directory per
/// major: `$SURGE_PG_ROOT`, else `/opt/surge/postgresql` as root (the `postgres` user must
/// reach it), else `~/.local/share/surge/postgresql`.
pub fn builds_root() -> PathBuf {
    if let Ok(dir) = std::env::var("SURGE_PG_ROOT") {
        return PathBuf::from(dir);
    }
    if sys::is_root() {
        return PathBuf::from("/opt/surge/postgresql");
    }
    let home = std::env::var("HOME").unwrap_or_else(|_| "/".into());
    PathBuf::from(home).join(".local/share/surge/postgresql")
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The monitoring role's password goes on psql's stdin (argv is readable by any local user
    /// in /proc), and it is the password the role logs in with.
    #[test]
    fn the_monitor_password_never_is_on_an_argv() -> anyhow::Result<()> {
        let cluster = PgCluster::start(0)?;
        let password = cluster.monitor_password().to_string();
        let (cmd, input) = cluster.psql_secret_command("primary", &cluster.monitor_role_sql())?;
        let argv: Vec<String> = std::iter::once(cmd.get_program())
            .chain(cmd.get_args())
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert!(!argv.iter().any(|a| a.contains(&password)), "{argv:?}");
        assert!(input.contains(&password));
        let mut login = Command::new(cluster.binaries.client.join("psql"));
        login
            .args([
                "-X",
                "-At",
                "-h",
                "127.0.0.1",
                "-U",
                MONITOR_ROLE,
                "-d",
                "postgres",
            ])
            .arg("-p")
            .arg(cluster.port("primary")?.to_string())
            .args(["-c", "SELECT pg_has_role('pg_monitor', 'MEMBER')"])
            .env("PGPASSWORD", &password);
        assert_eq!(run("psql as the monitoring role", login)?.trim(), "t");
        Ok(())
    }
}
