//! Replication: primary-side per-standby lag (bytes and write/flush/replay seconds),
//! replica-side replay lag that cannot be masked by a dead WAL receiver, and slots.

use std::collections::HashMap;
use std::sync::Mutex;

use anyhow::anyhow;
use sqlx::Row;
use sqlx::postgres::PgConnection;
use surge_metrics::catalogue::postgres::{
    LAST_REPLAYED_TX, RECEIVE_LAG_BYTES, REPLAY_LAG_BYTES, REPLAY_LAG_SECONDS, REPLAY_PAUSED,
    REPLICA_LAG_BYTES, REPLICA_LAG_SECONDS, REPLICA_STREAMING, SLOT_ACTIVE, SLOT_RETAINED_BYTES,
    WAL_RECEIVER_STREAMING,
};
use surge_metrics::{Labels, Sample};

use crate::sync::lock;

// One statement so every standby is measured against the same WAL position.
const STANDBYS_SQL: &str = "WITH cur AS (SELECT pg_current_wal_lsn() AS lsn) \
    SELECT application_name, host(client_addr) AS client_addr, pid, state, \
      pg_wal_lsn_diff(cur.lsn, write_lsn)::float8 AS write_bytes, \
      pg_wal_lsn_diff(cur.lsn, flush_lsn)::float8 AS flush_bytes, \
      pg_wal_lsn_diff(cur.lsn, replay_lsn)::float8 AS replay_bytes, \
      extract(epoch FROM write_lag)::float8 AS write_lag, \
      extract(epoch FROM flush_lag)::float8 AS flush_lag, \
      extract(epoch FROM replay_lag)::float8 AS replay_lag \
    FROM pg_stat_replication, cur \
    WHERE state IS DISTINCT FROM 'backup' \
    ORDER BY application_name, pid";

const SLOTS_SQL: &str = "SELECT slot_name::text AS slot_name, active, \
      pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn() \
                           ELSE pg_current_wal_lsn() END, restart_lsn)::float8 AS retained \
    FROM pg_replication_slots ORDER BY slot_name";

const REPLICA_SQL: &str = "SELECT pg_is_wal_replay_paused() AS paused, \
      pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::float8 AS replay_bytes, \
      extract(epoch FROM pg_last_xact_replay_timestamp())::float8 AS last_replay, \
      r.pid AS receiver_pid, r.status AS receiver_status, \
      pg_wal_lsn_diff(r.latest_end_lsn, r.flushed_lsn)::float8 AS receive_gap \
    FROM (SELECT 1) AS one LEFT JOIN pg_stat_wal_receiver r ON true";

/// What one replica read tells about its freshness.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct ReplicaReading {
    /// The replica's clock, Unix seconds.
    pub now: f64,
    pub receiver_streaming: bool,
    /// WAL received but not replayed; `None` when nothing was ever streamed.
    pub replay_bytes: Option<f64>,
    /// Upstream end last reported by the sender minus WAL flushed here.
    pub receive_gap_bytes: Option<f64>,
    /// Commit time of the last replayed transaction.
    pub last_replay: Option<f64>,
    /// Server start time, the fallback anchor when nothing else is known.
    pub started: f64,
}

/// Replica-side replay lag, in seconds: how old the replica's view of the data may be.
///
/// The rule, and why:
/// - Streaming, everything received is replayed, and the sender's last reported WAL end has
///   been received: the replica is as fresh as its primary, so 0 — also on an idle link,
///   where the classic `now() - pg_last_xact_replay_timestamp()` would climb for hours. The
///   moment is remembered in `last_fresh_at`.
/// - Otherwise (replay behind, or the receiver not streaming) the data can be no fresher than
///   the later of (a) the last moment we saw it fully fresh and (b) the commit time of the
///   last replayed transaction, so we report `now - that`. It keeps growing while the link is
///   down: postgres_exporter's `receive == replay → 0` shortcut reports 0 exactly when
///   replication is broken, because nothing new arrives to be replayed.
/// - With neither anchor known (fresh exporter, no transaction replayed since start), the
///   server start time is the anchor: a lower bound that still grows.
///
/// It is an upper bound: right after a first write following a long idle period, one sample
/// may read up to one collection interval before replay catches up.
pub(crate) fn replay_lag_seconds(reading: &ReplicaReading, last_fresh_at: &mut Option<f64>) -> f64 {
    let replayed_all = reading.replay_bytes.is_some_and(|b| b <= 0.0);
    let received_all = reading.receive_gap_bytes.is_none_or(|b| b <= 0.0);
    if reading.receiver_streaming && replayed_all && received_all {
        *last_fresh_at = Some(reading.now);
        return 0.0;
    }
    let anchor = match (reading.last_replay, *last_fresh_at) {
        (Some(a), Some(b)) => a.max(b),
        (Some(a), None) | (None, Some(a)) => a,
        (None, None) => reading.started,
    };
    (reading.now - anchor).max(0.0)
}

/// What a target remembers about replication between cycles.
#[derive(Default)]
pub(super) struct ReplicationMemory {
    /// Last moment this replica was seen fully caught up (replica clock).
    last_fresh_at: Option<f64>,
    /// Standby label → last time (primary clock) it was seen in `pg_stat_replication`.
    standbys_seen: HashMap<String, f64>,
}

/// The clocks one cycle reads once, before anything else.
#[derive(Debug, Clone, Copy)]
pub(super) struct ServerClock {
    /// The server's clock, Unix seconds.
    pub now: f64,
    /// Server start time, Unix seconds.
    pub started: f64,
}

/// A replica's own view: replay lag, WAL receiver, pause, last replayed commit.
pub(super) async fn replica(
    conn: &mut PgConnection,
    target: &str,
    clock: ServerClock,
    memory: &Mutex<ReplicationMemory>,
    out: &mut Vec<Sample>,
) -> anyhow::Result<()> {
    let t = || -> Labels { vec![("target", target.to_string())] };
    let row = sqlx::query(REPLICA_SQL).fetch_one(&mut *conn).await?;
    let receiver_pid: Option<i32> = row.try_get("receiver_pid")?;
    let status: Option<String> = row.try_get("receiver_status")?;
    if receiver_pid.is_some() && status.is_none() {
        return Err(anyhow!(
            "insufficient privilege to read pg_stat_wal_receiver: grant pg_monitor to the exporter's role"
        ));
    }
    let reading = ReplicaReading {
        now: clock.now,
        receiver_streaming: status.as_deref() == Some("streaming"),
        replay_bytes: row.try_get("replay_bytes")?,
        receive_gap_bytes: row.try_get("receive_gap")?,
        last_replay: row.try_get("last_replay")?,
        started: clock.started,
    };
    let paused: bool = row.try_get("paused")?;
    let lag = {
        let mut memory = lock(memory);
        memory.standbys_seen.clear();
        replay_lag_seconds(&reading, &mut memory.last_fresh_at)
    };
    out.push(Sample::new(&REPLAY_LAG_SECONDS, t(), lag));
    out.push(Sample::new(
        &WAL_RECEIVER_STREAMING,
        t(),
        f64::from(u8::from(reading.receiver_streaming)),
    ));
    out.push(Sample::new(
        &REPLAY_PAUSED,
        t(),
        f64::from(u8::from(paused)),
    ));
    if let Some(bytes) = reading.replay_bytes {
        out.push(Sample::new(&REPLAY_LAG_BYTES, t(), bytes.max(0.0)));
    }
    if let (true, Some(gap)) = (reading.receiver_streaming, reading.receive_gap_bytes) {
        out.push(Sample::new(&RECEIVE_LAG_BYTES, t(), gap.max(0.0)));
    }
    if let Some(ts) = reading.last_replay {
        out.push(Sample::new(&LAST_REPLAYED_TX, t(), ts));
    }
    Ok(())
}

/// A primary's view of each standby.
pub(super) async fn primary(
    conn: &mut PgConnection,
    target: &str,
    clock: ServerClock,
    retention_secs: f64,
    memory: &Mutex<ReplicationMemory>,
    out: &mut Vec<Sample>,
) -> anyhow::Result<()> {
    let rows = sqlx::query(STANDBYS_SQL).fetch_all(&mut *conn).await?;
    let mut standbys = Vec::with_capacity(rows.len());
    for row in &rows {
        standbys.push(StandbyRow {
            application_name: row
                .try_get::<Option<String>, _>("application_name")?
                .unwrap_or_default(),
            client_addr: row
                .try_get::<Option<String>, _>("client_addr")?
                .unwrap_or_default(),
            pid: row.try_get::<Option<i32>, _>("pid")?.unwrap_or_default(),
            state: row.try_get("state")?,
            bytes: [
                row.try_get("write_bytes")?,
                row.try_get("flush_bytes")?,
                row.try_get("replay_bytes")?,
            ],
            lag: [
                row.try_get("write_lag")?,
                row.try_get("flush_lag")?,
                row.try_get("replay_lag")?,
            ],
        });
    }
    if standbys.iter().any(|s| s.state.is_none()) {
        return Err(anyhow!(
            "insufficient privilege to read pg_stat_replication: grant pg_monitor to the exporter's role"
        ));
    }
    let mut memory = lock(memory);
    memory.last_fresh_at = None;
    standby_samples(
        target,
        &standbys,
        clock.now,
        retention_secs,
        &mut memory.standbys_seen,
        out,
    );
    Ok(())
}

/// Replication slots, on either role.
pub(super) async fn slots(
    conn: &mut PgConnection,
    target: &str,
    out: &mut Vec<Sample>,
) -> anyhow::Result<()> {
    for row in sqlx::query(SLOTS_SQL).fetch_all(&mut *conn).await? {
        let slot: String = row.try_get("slot_name")?;
        let labels = || -> Labels { vec![("target", target.to_string()), ("slot", slot.clone())] };
        let active: bool = row.try_get("active")?;
        out.push(Sample::new(
            &SLOT_ACTIVE,
            labels(),
            f64::from(u8::from(active)),
        ));
        if let Some(retained) = row.try_get::<Option<f64>, _>("retained")? {
            out.push(Sample::new(
                &SLOT_RETAINED_BYTES,
                labels(),
                retained.max(0.0),
            ));
        }
    }
    Ok(())
}

/// One row of `pg_stat_replication`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StandbyRow {
    pub application_name: String,
    pub client_addr: String,
    pub pid: i32,
    pub state: Option<String>,
    /// Current WAL position minus the standby's write, flush and replay positions.
    pub bytes: [Option<f64>; 3],
    /// `write_lag`, `flush_lag`, `replay_lag` in seconds.
    pub lag: [Option<f64>; 3],
}

const STAGES: [&str; 3] = ["write", "flush", "replay"];

/// Per-standby series on a primary. Labels are unique even when standbys share an
/// `application_name` (the default is `walreceiver`): duplicates get `@client_addr`, then
/// `#pid`, because one duplicate series fails the whole scrape.
pub(crate) fn standby_samples(
    target: &str,
    standbys: &[StandbyRow],
    now: f64,
    retention_secs: f64,
    seen: &mut HashMap<String, f64>,
    out: &mut Vec<Sample>,
) {
    let mut name_count: HashMap<&str, usize> = HashMap::new();
    for s in standbys {
        *name_count.entry(s.application_name.as_str()).or_default() += 1;
    }
    let mut labels_used: HashMap<String, usize> = HashMap::new();
    let mut present = Vec::with_capacity(standbys.len());
    for s in standbys {
        let mut replica = if s.application_name.is_empty() {
            s.client_addr.clone()
        } else if name_count
            .get(s.application_name.as_str())
            .copied()
            .unwrap_or(0)
            > 1
        {
            format!("{}@{}", s.application_name, s.client_addr)
        } else {
            s.application_name.clone()
        };
        let uses = labels_used.entry(replica.clone()).or_default();
        *uses += 1;
        if *uses > 1 {
            replica = format!("{replica}#{}", s.pid);
        }
        let labels =
            || -> Labels { vec![("target", target.to_string()), ("replica", replica.clone())] };
        let streaming = s.state.as_deref() == Some("streaming");
        out.push(Sample::new(
            &REPLICA_STREAMING,
            labels(),
            f64::from(u8::from(streaming)),
        ));
        if let Some(replay_bytes) = s.bytes[2] {
            out.push(Sample::new(
                &REPLICA_LAG_BYTES,
                labels(),
                replay_bytes.max(0.0),
            ));
        }
        for ((stage, bytes), lag) in STAGES.iter().zip(s.bytes).zip(s.lag) {
            // PostgreSQL shows NULL lag once a standby has caught up and the primary is idle:
            // that is 0. NULL while bytes are outstanding is unknown, so no sample.
            let seconds = match (lag, bytes) {
                (Some(l), _) => Some(l.max(0.0)),
                (None, Some(b)) if b <= 0.0 => Some(0.0),
                _ => None,
            };
            if let Some(seconds) = seconds {
                let mut l = labels();
                l.push(("stage", (*stage).to_string()));
                out.push(Sample::new(&REPLICA_LAG_SECONDS, l, seconds));
            }
        }
        seen.insert(replica.clone(), now);
        present.push(replica);
    }
    // Standbys seen before but gone now: report them as not streaming until the retention
    // passes, so a dead replica is a 0 on the primary rather than a silently missing series.
    seen.retain(|_, last| now - *last <= retention_secs);
    let mut gone: Vec<&String> = seen.keys().filter(|r| !present.contains(r)).collect();
    gone.sort();
    for replica in gone {
        out.push(Sample::new(
            &REPLICA_STREAMING,
            vec![("target", target.to_string()), ("replica", replica.clone())],
            0.0,
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(
        streaming: bool,
        replay_bytes: f64,
        last_replay: Option<f64>,
        now: f64,
    ) -> ReplicaReading {
        ReplicaReading {
            now,
            receiver_streaming: streaming,
            replay_bytes: Some(replay_bytes),
            receive_gap_bytes: Some(0.0),
            last_replay,
            started: 0.0,
        }
    }

    #[test]
    fn idle_healthy_link_stays_zero_even_with_an_old_last_commit() {
        let mut fresh = None;
        for now in [1000.0, 1015.0, 1030.0, 5000.0] {
            assert_eq!(
                replay_lag_seconds(&reading(true, 0.0, Some(10.0), now), &mut fresh),
                0.0
            );
        }
    }

    #[test]
    fn broken_receiver_grows_even_though_receive_equals_replay() {
        // postgres_exporter would say 0 here: nothing new arrives, so receive == replay.
        let mut fresh = None;
        assert_eq!(
            replay_lag_seconds(&reading(true, 0.0, Some(10.0), 1000.0), &mut fresh),
            0.0
        );
        let a = replay_lag_seconds(&reading(false, 0.0, Some(10.0), 1015.0), &mut fresh);
        let b = replay_lag_seconds(&reading(false, 0.0, Some(10.0), 1030.0), &mut fresh);
        assert_eq!(a, 15.0);
        assert_eq!(b, 30.0);
    }

    #[test]
    fn paused_replay_grows_from_the_last_fresh_moment_or_last_commit() {
        let mut fresh = None;
        assert_eq!(
            replay_lag_seconds(&reading(true, 0.0, Some(990.0), 1000.0), &mut fresh),
            0.0
        );
        // Replay paused; the primary keeps committing, nothing new is replayed.
        assert_eq!(
            replay_lag_seconds(&reading(true, 4096.0, Some(995.0), 1010.0), &mut fresh),
            10.0
        );
        assert_eq!(
            replay_lag_seconds(&reading(true, 8192.0, Some(995.0), 1040.0), &mut fresh),
            40.0
        );
        // Busy but keeping up: bounded by the last replayed commit.
        let mut fresh = None;
        assert_eq!(
            replay_lag_seconds(&reading(true, 100.0, Some(1999.5), 2000.0), &mut fresh),
            0.5
        );
    }

    #[test]
    fn nothing_known_falls_back_to_server_start() {
        let mut fresh = None;
        let r = ReplicaReading {
            now: 100.0,
            receiver_streaming: false,
            replay_bytes: None,
            receive_gap_bytes: None,
            last_replay: None,
            started: 40.0,
        };
        assert_eq!(replay_lag_seconds(&r, &mut fresh), 60.0);
    }

    fn standby(
        name: &str,
        addr: &str,
        pid: i32,
        state: &str,
        bytes: f64,
        lag: Option<f64>,
    ) -> StandbyRow {
        StandbyRow {
            application_name: name.into(),
            client_addr: addr.into(),
            pid,
            state: Some(state.into()),
            bytes: [Some(bytes); 3],
            lag: [lag; 3],
        }
    }

    #[test]
    fn duplicate_application_names_get_unique_labels() {
        let rows = [
            standby("walreceiver", "10.0.0.1", 11, "streaming", 0.0, None),
            standby("walreceiver", "10.0.0.2", 12, "streaming", 0.0, None),
            standby("walreceiver", "10.0.0.2", 13, "streaming", 0.0, None),
        ];
        let mut out = Vec::new();
        standby_samples("p", &rows, 0.0, 60.0, &mut HashMap::new(), &mut out);
        let mut replicas: Vec<_> = out
            .iter()
            .filter(|s| s.family == &REPLICA_STREAMING)
            .filter_map(|s| s.label("replica"))
            .collect();
        replicas.sort();
        assert_eq!(
            replicas,
            [
                "walreceiver@10.0.0.1",
                "walreceiver@10.0.0.2",
                "walreceiver@10.0.0.2#13"
            ]
        );
    }

    #[test]
    fn null_lag_is_zero_only_when_caught_up() {
        let rows = [
            standby("a", "", 1, "streaming", 0.0, None),
            standby("b", "", 2, "streaming", 512.0, None),
            standby("c", "", 3, "catchup", 512.0, Some(2.5)),
        ];
        let mut out = Vec::new();
        standby_samples("p", &rows, 0.0, 60.0, &mut HashMap::new(), &mut out);
        let lag = |r: &str| {
            out.iter()
                .filter(|s| s.family == &REPLICA_LAG_SECONDS && s.label("replica") == Some(r))
                .map(|s| s.value)
                .collect::<Vec<_>>()
        };
        assert_eq!(lag("a"), [0.0; 3]);
        assert!(lag("b").is_empty());
        assert_eq!(lag("c"), [2.5; 3]);
        let streaming = |r: &str| {
            out.iter()
                .find(|s| s.family == &REPLICA_STREAMING && s.label("replica") == Some(r))
                .map(|s| s.value)
        };
        assert_eq!(streaming("c"), Some(0.0));
    }

    #[test]
    fn vanished_standby_reports_not_streaming_until_retention() {
        let mut seen = HashMap::new();
        let mut out = Vec::new();
        standby_samples(
            "p",
            &[standby("r1", "", 1, "streaming", 0.0, None)],
            100.0,
            60.0,
            &mut seen,
            &mut out,
        );
        out.clear();
        standby_samples("p", &[], 130.0, 60.0, &mut seen, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].label("replica"), out[0].value), (Some("r1"), 0.0));
        out.clear();
        standby_samples("p", &[], 170.0, 60.0, &mut seen, &mut out);
        assert!(out.is_empty(), "{out:?}");
    }
}
