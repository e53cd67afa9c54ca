//! Replication and connections from postgres_exporter (prometheus-community) or
//! CloudNativePG's instance exporter, in Surge's `surge_postgres_*` shapes. Names and labels
//! from their source: postgres_exporter's `collector/pg_replication.go`,
//! `pg_stat_replication.go`, `pg_stat_activity.go`, `pg_setting.go` (and, before v0.13, the
//! `pg_replication_lag` of its example queries file); CloudNativePG's
//! `config/manager/default-monitoring.yaml` and its `cnpg_collector_up`.
//!
//! A server (Surge's `target`) is the scrape's `pod` label where there is one (CloudNativePG,
//! an exporter beside its database), else its `instance`.

use surge_metrics::catalogue::{exporter, postgres};
use surge_metrics::state::ConnectionState;

use super::Recipe;
use super::promql::{Selector, copy_label, max_by, scrape_up, set_label, sum_by};

pub const TIMESTAMP_LAG_RULE: &str = "replay-timestamp-lag";

const TARGET: [&str; 1] = ["target"];
const STANDBY: [&str; 2] = ["target", "replica"];

/// `expr` with Surge's `target`: its `pod`, else its `instance`.
fn targeted(expr: &str) -> String {
    copy_label(&copy_label(expr, "target", "instance"), "target", "pod")
}

fn per_server(sel: &Selector, metric: &str, matchers: &str) -> String {
    max_by(&TARGET, &targeted(&sel.series(metric, matchers)))
}

/// `expr` with `pg_stat_activity`'s state words (`idle in transaction`) as Surge's state
/// labels (`idle_in_transaction`).
fn connection_states(expr: &str) -> String {
    let mut out = expr.to_string();
    for activity in [
        "active",
        "idle",
        "idle in transaction",
        "idle in transaction (aborted)",
        "fastpath function call",
        "disabled",
    ] {
        let label = ConnectionState::from_activity(activity).label();
        // Parentheses as classes: the pattern needs no backslashes inside a PromQL string.
        let pattern = activity.replace('(', "[(]").replace(')', "[)]");
        out = format!("label_replace({out}, \"state\", \"{label}\", \"state\", \"{pattern}\")");
    }
    out
}

/// Client connections per (target, database, state), from an exporter's activity counts
/// (`datname`, `pg_stat_activity`'s state words).
fn connections(series: &str) -> String {
    sum_by(
        &["target", "database", "state"],
        &connection_states(&copy_label(&targeted(series), "database", "datname")),
    )
}

/// A replication slot's series per (target, slot), from an exporter's `slot_name`.
fn per_slot(series: &str) -> String {
    max_by(
        &["target", "slot"],
        &copy_label(&targeted(series), "slot", "slot_name"),
    )
}

/// Connections per `application_name` (postgres_exporter since v0.17 and CloudNativePG label
/// their activity counts with it): which services use which server.
fn applications(series: &str) -> String {
    sum_by(
        &["target", "application"],
        &copy_label(&targeted(series), "application", "application_name"),
    )
}

/// `surge_source_up{source="postgres", target}`: the exporter's own reading of its server,
/// else (the exporter itself not answering) Prometheus' `up` for the target that served it.
fn up(sel: &Selector, metric: &str) -> Recipe {
    Recipe::plain(
        &exporter::SOURCE_UP,
        set_label(
            &format!(
                "{} or {}",
                per_server(sel, metric, ""),
                max_by(&TARGET, &targeted(&scrape_up(sel, metric)))
            ),
            "source",
            "postgres",
        ),
    )
}

/// Reserved slots: superuser_reserved_connections plus reserved_connections (PostgreSQL 16+;
/// 0 where the setting does not exist).
fn reserved(superuser: &str, reserved: &str) -> String {
    format!("{superuser} + on (target) ({reserved} or {superuser} * 0)")
}

pub fn postgres_exporter(sel: &Selector) -> Vec<Recipe> {
    let server = |metric: &str| per_server(sel, metric, "");
    // Each standby as its primary sees it (postgres_exporter's pg_stat_replication).
    let standby = |metric: &str, matchers: &str| {
        copy_label(
            &targeted(&sel.series(metric, matchers)),
            "replica",
            "application_name",
        )
    };
    let position = "pg_stat_replication_pg_current_wal_lsn_bytes";
    vec![
        up(sel, "pg_up"),
        Recipe::plain(
            &postgres::IS_REPLICA,
            // pg_replication_is_replica since v0.13; before it, the read-only in_hot_standby
            // setting (PostgreSQL 14+) says the same.
            format!(
                "{} or {}",
                server("pg_replication_is_replica"),
                server("pg_settings_in_hot_standby")
            ),
        ),
        Recipe::plain(
            &postgres::REPLAY_LAG_SECONDS,
            format!(
                "({}) and on (target) ({} == 1 or {} == 1)",
                server("pg_replication_lag_seconds"),
                server("pg_replication_is_replica"),
                server("pg_settings_in_hot_standby"),
            ),
        ),
        Recipe::derived(
            &postgres::REPLAY_LAG_SECONDS,
            TIMESTAMP_LAG_RULE,
            format!(
                "({}) and on (target) ({} == 1) unless on (target) {}",
                server("pg_replication_lag"),
                server("pg_settings_in_hot_standby"),
                server("pg_replication_lag_seconds"),
            ),
        ),
        Recipe::plain(
            &postgres::CONNECTIONS,
            connections(&sel.series("pg_stat_activity_count", "")),
        ),
        Recipe::plain(
            &postgres::CLIENT_CONNECTIONS,
            applications(&sel.series("pg_stat_activity_count", "")),
        ),
        Recipe::plain(
            &postgres::MAX_CONNECTIONS,
            server("pg_settings_max_connections"),
        ),
        Recipe::plain(
            &postgres::RESERVED_CONNECTIONS,
            reserved(
                &server("pg_settings_superuser_reserved_connections"),
                &server("pg_settings_reserved_connections"),
            ),
        ),
        Recipe::plain(
            &postgres::REPLICA_LAG_BYTES,
            max_by(
                &STANDBY,
                &standby("pg_stat_replication_pg_wal_lsn_diff", ""),
            ),
        ),
        Recipe::plain(
            &postgres::REPLICA_STREAMING,
            max_by(
                &STANDBY,
                &format!(
                    "{} * 0 + 1 or {} * 0",
                    standby(position, r#"state="streaming""#),
                    standby(position, r#"state!="streaming""#)
                ),
            ),
        ),
        Recipe::plain(
            &postgres::SLOT_ACTIVE,
            per_slot(&sel.series("pg_replication_slots_active", "")),
        ),
        Recipe::plain(
            &postgres::SLOT_RETAINED_BYTES,
            per_slot(&sel.series("pg_replication_slots_pg_wal_lsn_diff", "")),
        ),
    ]
}

pub fn cloudnative_pg(sel: &Selector) -> Vec<Recipe> {
    let server = |metric: &str| per_server(sel, metric, "");
    let setting =
        |name: &str| per_server(sel, "cnpg_pg_settings_setting", &format!("name=\"{name}\""));
    let standby = |metric: &str| {
        max_by(
            &STANDBY,
            &copy_label(
                &targeted(&sel.series(metric, "")),
                "replica",
                "application_name",
            ),
        )
    };
    let replica = format!("{} == 1", server("cnpg_pg_replication_in_recovery"));
    let mut out = vec![
        up(sel, "cnpg_collector_up"),
        Recipe::plain(
            &postgres::IS_REPLICA,
            server("cnpg_pg_replication_in_recovery"),
        ),
        Recipe::plain(
            &postgres::REPLAY_LAG_SECONDS,
            format!(
                "{} and on (target) ({replica})",
                server("cnpg_pg_replication_lag")
            ),
        ),
        Recipe::plain(
            &postgres::WAL_RECEIVER_STREAMING,
            format!(
                "{} and on (target) ({replica})",
                server("cnpg_pg_replication_is_wal_receiver_up")
            ),
        ),
        Recipe::plain(
            &postgres::CONNECTIONS,
            connections(&sel.series("cnpg_backends_total", "")),
        ),
        Recipe::plain(
            &postgres::CLIENT_CONNECTIONS,
            applications(&sel.series("cnpg_backends_total", "")),
        ),
        Recipe::plain(&postgres::MAX_CONNECTIONS, setting("max_connections")),
        Recipe::plain(
            &postgres::RESERVED_CONNECTIONS,
            reserved(
                &setting("superuser_reserved_connections"),
                &setting("reserved_connections"),
            ),
        ),
        Recipe::plain(
            &postgres::REPLICA_LAG_BYTES,
            standby("cnpg_pg_stat_replication_replay_diff_bytes"),
        ),
        // CloudNativePG lists only connected standbys (pg_stat_replication has a row).
        Recipe::plain(
            &postgres::REPLICA_STREAMING,
            format!(
                "{} * 0 + 1",
                standby("cnpg_pg_stat_replication_replay_diff_bytes")
            ),
        ),
        Recipe::plain(
            &postgres::SLOT_ACTIVE,
            per_slot(&sel.series("cnpg_pg_replication_slots_active", "")),
        ),
        Recipe::plain(
            &postgres::SLOT_RETAINED_BYTES,
            per_slot(&sel.series("cnpg_pg_replication_slots_pg_wal_lsn_diff", "")),
        ),
    ];
    for stage in ["write", "flush", "replay"] {
        out.push(Recipe::plain(
            &postgres::REPLICA_LAG_SECONDS,
            set_label(
                &standby(&format!("cnpg_pg_stat_replication_{stage}_lag_seconds")),
                "stage",
                stage,
            ),
        ));
    }
    out
}
