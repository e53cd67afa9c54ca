//! Connections: client backends by database and state against the slots ordinary clients may
//! use, and the two ways a connection holds others up (idle in a transaction, waiting on a
//! lock). Read on every role: replicas serve reads and run out of slots too.

use std::collections::BTreeMap;

use anyhow::anyhow;
use sqlx::Row;
use sqlx::postgres::PgConnection;
use surge_metrics::catalogue::postgres::{
    CLIENT_CONNECTIONS, CONNECTIONS, LONGEST_IDLE_IN_TRANSACTION, LONGEST_LOCK_WAIT,
    MAX_CONNECTIONS, RESERVED_CONNECTIONS,
};
use surge_metrics::state::ConnectionState;
use surge_metrics::{Labels, Sample};

/// Every database a client may connect to, joined to its client backends: a database with
/// none still shows (one row, NULL state, 0), so its series read 0 rather than vanish.
const COUNTS_SQL: &str = "SELECT d.datname::text AS database, d.datistemplate AS template, \
      a.state, count(a.pid)::int8 AS connections \
    FROM pg_database d \
    LEFT JOIN pg_stat_activity a ON a.datid = d.oid AND a.backend_type = 'client backend' \
    WHERE d.datallowconn \
    GROUP BY 1, 2, 3";

/// Client connections per `application_name` (a client's own name for itself).
const APPLICATIONS_SQL: &str = "SELECT coalesce(application_name, '') AS application, \
      count(*)::int8 AS connections FROM pg_stat_activity \
    WHERE backend_type = 'client backend' GROUP BY 1";

/// Most applications given a series of their own: clients name themselves, and a client
/// inventing a name per connection must not grow the exporter's series without bound.
pub(crate) const MAX_APPLICATIONS: usize = 50;

/// The application that stands for the rest past [`MAX_APPLICATIONS`].
pub(crate) const OTHER_APPLICATIONS: &str = "(other)";

/// `reserved_connections` appeared in 16; `current_setting(_, true)` is NULL before.
const LIMITS_SQL: &str = "SELECT current_setting('max_connections')::int AS max_connections, \
      current_setting('superuser_reserved_connections')::int \
        + coalesce(current_setting('reserved_connections', true)::int, 0) AS reserved, \
      coalesce((SELECT extract(epoch FROM max(clock_timestamp() - state_change))::float8 \
        FROM pg_stat_activity \
        WHERE backend_type = 'client backend' AND state LIKE 'idle in transaction%'), 0) \
        AS longest_idle_in_transaction";

/// `pg_locks.waitstart` (14+) is when the wait began. It is NULL for a moment after a wait
/// starts, so such a wait counts from 0 until the next cycle.
const LOCK_WAIT_SQL: &str = "SELECT coalesce(extract(epoch FROM \
      max(clock_timestamp() - waitstart))::float8, 0) AS longest FROM pg_locks WHERE NOT granted";

/// 13 has no `waitstart`: the waiting query's start bounds the wait from above.
const LOCK_WAIT_SQL_13: &str = "SELECT coalesce(extract(epoch FROM \
      max(clock_timestamp() - query_start))::float8, 0) AS longest FROM pg_stat_activity \
    WHERE wait_event_type = 'Lock'";

/// One row of `COUNTS_SQL`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CountRow {
    pub database: String,
    pub template: bool,
    /// `pg_stat_activity.state`; NULL with a count above 0 means the role may not see it.
    pub state: Option<String>,
    pub connections: i64,
}

pub(super) async fn read(
    conn: &mut PgConnection,
    target: &str,
    version: i32,
    out: &mut Vec<Sample>,
) -> anyhow::Result<()> {
    let mut rows = Vec::new();
    for row in sqlx::query(COUNTS_SQL).fetch_all(&mut *conn).await? {
        rows.push(CountRow {
            database: row.try_get("database")?,
            template: row.try_get("template")?,
            state: row.try_get("state")?,
            connections: row.try_get("connections")?,
        });
    }
    count_samples(target, &rows, out)?;
    let mut applications = Vec::new();
    for row in sqlx::query(APPLICATIONS_SQL).fetch_all(&mut *conn).await? {
        applications.push((
            row.try_get::<String, _>("application")?,
            row.try_get::<i64, _>("connections")?,
        ));
    }
    application_samples(target, applications, out);
    let t = || -> Labels { vec![("target", target.to_string())] };
    let limits = sqlx::query(LIMITS_SQL).fetch_one(&mut *conn).await?;
    let max: i32 = limits.try_get("max_connections")?;
    let reserved: i32 = limits.try_get("reserved")?;
    let idle: f64 = limits.try_get("longest_idle_in_transaction")?;
    out.push(Sample::new(&MAX_CONNECTIONS, t(), f64::from(max)));
    out.push(Sample::new(&RESERVED_CONNECTIONS, t(), f64::from(reserved)));
    out.push(Sample::new(
        &LONGEST_IDLE_IN_TRANSACTION,
        t(),
        idle.max(0.0),
    ));
    let lock_wait_sql = if version >= 140000 {
        LOCK_WAIT_SQL
    } else {
        LOCK_WAIT_SQL_13
    };
    let waited: f64 = sqlx::query(lock_wait_sql)
        .fetch_one(&mut *conn)
        .await?
        .try_get("longest")?;
    out.push(Sample::new(&LONGEST_LOCK_WAIT, t(), waited.max(0.0)));
    Ok(())
}

/// `surge_postgres_client_connections`: the [`MAX_APPLICATIONS`] largest, the rest summed.
pub(crate) fn application_samples(
    target: &str,
    mut applications: Vec<(String, i64)>,
    out: &mut Vec<Sample>,
) {
    applications.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let rest: i64 = applications
        .iter()
        .skip(MAX_APPLICATIONS)
        .map(|(_, n)| *n)
        .sum();
    let others = applications.len() > MAX_APPLICATIONS;
    applications.truncate(MAX_APPLICATIONS);
    if others {
        applications.push((OTHER_APPLICATIONS.to_string(), rest));
    }
    for (application, n) in applications {
        out.push(Sample::new(
            &CLIENT_CONNECTIONS,
            vec![("target", target.to_string()), ("application", application)],
            n as f64,
        ));
    }
}

/// `surge_postgres_connections`: every state of every ordinary database, 0 where none, so a
/// state that empties reads 0 instead of going stale; template databases only while someone
/// is connected to them.
pub(crate) fn count_samples(
    target: &str,
    rows: &[CountRow],
    out: &mut Vec<Sample>,
) -> anyhow::Result<()> {
    let mut counts: BTreeMap<&str, [i64; ConnectionState::ALL.len()]> = BTreeMap::new();
    for row in rows {
        let Some(state) = &row.state else {
            if row.connections > 0 {
                return Err(anyhow!(
                    "insufficient privilege to read pg_stat_activity: grant pg_monitor to the exporter's role"
                ));
            }
            if !row.template {
                counts.entry(&row.database).or_default();
            }
            continue;
        };
        let state = ConnectionState::from_activity(state);
        let index = ConnectionState::ALL
            .iter()
            .position(|s| *s == state)
            .unwrap_or(ConnectionState::ALL.len() - 1);
        counts.entry(&row.database).or_default()[index] += row.connections;
    }
    for (database, by_state) in counts {
        for (state, n) in ConnectionState::ALL.iter().zip(by_state) {
            out.push(Sample::new(
                &CONNECTIONS,
                vec![
                    ("target", target.to_string()),
                    ("database", database.to_string()),
                    ("state", state.label().to_string()),
                ],
                n as f64,
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applications_past_the_cap_are_summed_as_other() {
        let mut out = Vec::new();
        let many: Vec<(String, i64)> = (0..MAX_APPLICATIONS + 3)
            .map(|i| (format!("app-{i:03}"), 100 - i as i64))
            .collect();
        application_samples("primary", many, &mut out);
        assert_eq!(out.len(), MAX_APPLICATIONS + 1);
        let other = out.last().expect("other");
        assert_eq!(other.label("application"), Some(OTHER_APPLICATIONS));
        // The three smallest: 100 - 50, 100 - 51, 100 - 52.
        assert_eq!(other.value, 50.0 + 49.0 + 48.0);
        let mut few = Vec::new();
        application_samples(
            "primary",
            vec![("orders".into(), 3), ("".into(), 1)],
            &mut few,
        );
        let names: Vec<_> = few.iter().map(|s| s.label("application")).collect();
        assert_eq!(names, [Some("orders"), Some("")]);
    }

    fn row(database: &str, template: bool, state: Option<&str>, connections: i64) -> CountRow {
        CountRow {
            database: database.into(),
            template,
            state: state.map(str::to_string),
            connections,
        }
    }

    fn count(out: &[Sample], database: &str, state: &str) -> Option<f64> {
        out.iter()
            .find(|s| s.label("database") == Some(database) && s.label("state") == Some(state))
            .map(|s| s.value)
    }

    #[test]
    fn every_state_of_every_database_is_a_number_and_unknown_states_add_up() -> anyhow::Result<()> {
        let rows = [
            row("shop", false, Some("active"), 3),
            row("shop", false, Some("idle in transaction"), 2),
            row("shop", false, Some("starting"), 1),
            row("shop", false, Some("something newer"), 1),
            row("empty", false, None, 0),
            row("template1", true, None, 0),
        ];
        let mut out = Vec::new();
        count_samples("p", &rows, &mut out)?;
        assert_eq!(out.len(), 2 * ConnectionState::ALL.len(), "{out:?}");
        assert_eq!(count(&out, "shop", "active"), Some(3.0));
        assert_eq!(count(&out, "shop", "idle_in_transaction"), Some(2.0));
        assert_eq!(count(&out, "shop", "unknown"), Some(2.0));
        assert_eq!(count(&out, "shop", "idle"), Some(0.0));
        assert_eq!(count(&out, "empty", "active"), Some(0.0));
        assert_eq!(count(&out, "template1", "active"), None);
        Ok(())
    }

    #[test]
    fn a_connected_template_shows() -> anyhow::Result<()> {
        let rows = [row("template1", true, Some("idle"), 1)];
        let mut out = Vec::new();
        count_samples("p", &rows, &mut out)?;
        assert_eq!(count(&out, "template1", "idle"), Some(1.0));
        Ok(())
    }

    #[test]
    fn hidden_states_are_an_error_naming_the_grant() {
        let rows = [row("shop", false, None, 4)];
        let error = count_samples("p", &rows, &mut Vec::new())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(error.contains("pg_monitor"), "{error:?}");
    }
}
