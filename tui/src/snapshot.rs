//! The incident snapshot: every panel's current values, firing alerts and the time, as
//! Markdown an on-call engineer pastes into the incident channel. OSC 52 puts it on the
//! clipboard of the terminal the engineer sits at, also over SSH.

use std::fmt::Write as _;

use base64::Engine as _;

use surge_client::model::subject;
use surge_client::store::{DEFAULT_CPU_ALERT, Forecast, Store, firing};

use crate::ui::{cells, format};

/// RFC 3339 UTC, seconds.
pub fn timestamp(now: f64) -> String {
    jiff::Timestamp::from_second(now as i64).map_or_else(|_| format!("{now}"), |t| t.to_string())
}

/// `surge-snapshot-20261128T084512Z.md`.
pub fn file_name(now: f64) -> String {
    let stamp: String = timestamp(now)
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    format!("surge-snapshot-{stamp}.md")
}

fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

fn row(out: &mut String, cells: &[String]) {
    let _ = writeln!(
        out,
        "| {} |",
        cells
            .iter()
            .map(|c| cell(c))
            .collect::<Vec<_>>()
            .join(" | ")
    );
}

fn table(out: &mut String, header: &[&str], rows: Vec<Vec<String>>) {
    row(
        out,
        &header.iter().map(|h| (*h).to_string()).collect::<Vec<_>>(),
    );
    let _ = writeln!(out, "|{}", "---|".repeat(header.len()));
    for r in rows {
        row(out, &r);
    }
    out.push('\n');
}

pub fn markdown(store: &Store, now: f64) -> String {
    let mut out = String::new();
    let d = &store.derived();
    let _ = writeln!(out, "# Surge snapshot {}\n", timestamp(now));

    let _ = writeln!(out, "## Sources\n");
    table(
        &mut out,
        &["source", "status", "data age", "error"],
        store
            .sources(now)
            .into_iter()
            .map(|s| {
                vec![
                    s.name,
                    if s.stale { "STALE".into() } else { "ok".into() },
                    format::duration(s.age.map(f64::round)),
                    s.health.error.unwrap_or_default(),
                ]
            })
            .collect(),
    );

    let alerts: Vec<_> = firing(&d.alerts).collect();
    let _ = writeln!(out, "## Firing alerts ({})\n", alerts.len());
    if alerts.is_empty() {
        out.push_str("None.\n\n");
    } else {
        table(
            &mut out,
            &["severity", "alert", "subject", "for", "summary", "runbook"],
            alerts
                .iter()
                .map(|a| {
                    vec![
                        a.severity.clone(),
                        a.name.clone(),
                        subject(&a.labels),
                        format::duration(a.active_at.map(|t| (now - t).max(0.0).round())),
                        a.summary.clone(),
                        a.runbook.clone(),
                    ]
                })
                .collect(),
        );
    }
    let muted = d.alerts.iter().filter(|a| a.muted).count();
    if muted > 0 {
        let _ = writeln!(out, "{muted} more alert(s) silenced or inhibited.\n");
    }

    let alert_line = store.cpu_alert().unwrap_or(DEFAULT_CPU_ALERT);
    let _ = writeln!(
        out,
        "## Services (CPU alert line {})\n",
        format::percent(Some(alert_line))
    );
    table(
        &mut out,
        &[
            "service",
            "replicas",
            "min-max",
            "cpu/request",
            "target",
            "memory/request",
            "scales on",
            "headroom",
            "time to max",
            "kafka lag",
            "trend",
            "eta",
            "db lag",
            "db connections",
        ],
        d.services
            .iter()
            .map(|s| {
                let n = |v: Option<f64>| v.map_or(format::NONE.to_string(), |v| format!("{v:.0}"));
                let headroom = match s.headroom {
                    _ if s.saturated => "SATURATED".to_string(),
                    Some(h) => format!("{h:.0} left"),
                    None => format::NONE.into(),
                };
                let to_max = match s.forecast {
                    Forecast::Unknown => format::NONE.to_string(),
                    Forecast::NotRising => "not rising".into(),
                    Forecast::NoTrend => "no trend".into(),
                    Forecast::Now => "now".into(),
                    Forecast::In(sec) => format!("in {}", format::duration(Some(sec))),
                };
                vec![
                    format!("{}/{}", s.namespace, s.workload),
                    format!("{} (desired {})", n(s.current), n(s.desired)),
                    format!("{}-{}", n(s.min), n(s.max)),
                    format::percent(s.cpu),
                    format::percent(s.target),
                    match s.memory_of_limit {
                        Some(l) if l >= s.lines.memory_of_limit => format!(
                            "{} (a pod at {} of its limit)",
                            format::percent(s.memory),
                            format::percent(Some(l))
                        ),
                        _ => format::percent(s.memory),
                    },
                    s.scaling
                        .iter()
                        .map(cells::scaling_metric)
                        .collect::<Vec<_>>()
                        .join("; "),
                    headroom,
                    to_max,
                    s.kafka
                        .as_ref()
                        .map_or(format::NONE.into(), |k| format::count(k.lag)),
                    s.kafka
                        .as_ref()
                        .map_or(String::new(), |k| k.state_label().to_string()),
                    s.kafka.as_ref().map_or(format::NONE.into(), |k| {
                        format::duration(k.eta.map(f64::round))
                    }),
                    format::duration(s.db.replica_lag_seconds),
                    format::percent(s.db.connection_use),
                ]
            })
            .collect(),
    );

    let _ = writeln!(out, "## Kafka consumer groups\n");
    table(
        &mut out,
        &[
            "group", "topic", "lag", "lag time", "trend", "in/s", "out/s", "eta",
        ],
        d.groups
            .iter()
            .map(|g| {
                let lag_time = format::duration(g.lag_seconds.map(f64::round));
                vec![
                    g.group.clone(),
                    g.topic.clone(),
                    format::count(g.lag),
                    if g.lower_bound {
                        format!("≥{lag_time}")
                    } else {
                        lag_time
                    },
                    g.state_label().to_string(),
                    format::count(g.produce_rate),
                    format::count(g.consume_rate),
                    format::duration(g.eta.map(f64::round)),
                ]
            })
            .collect(),
    );

    let _ = writeln!(out, "## PostgreSQL\n");
    table(
        &mut out,
        &[
            "server",
            "role",
            "receiver",
            "replay lag",
            "replay lag bytes",
            "connections",
            "idle in transaction",
            "longest lock wait",
        ],
        d.servers
            .iter()
            .map(|s| {
                vec![
                    s.target.clone(),
                    if s.paused {
                        format!("{} (replay paused)", s.role.label())
                    } else {
                        s.role.label().to_string()
                    },
                    match s.receiver_streaming {
                        Some(true) => "streaming".into(),
                        Some(false) => "NOT STREAMING".into(),
                        None => format::NONE.into(),
                    },
                    format::duration(s.replay_lag_seconds),
                    format::bytes(s.replay_lag_bytes),
                    match (s.connections, s.connection_slots) {
                        (Some(c), Some(slots)) => format!(
                            "{c:.0} of {slots:.0} ({})",
                            format::percent(s.connection_use())
                        ),
                        _ => format::NONE.into(),
                    },
                    match s.idle_in_transaction {
                        Some(n) if n > 0.0 => format!(
                            "{n:.0}, oldest {}",
                            format::duration(s.longest_idle_in_transaction.map(f64::round))
                        ),
                        Some(_) => "0".into(),
                        None => format::NONE.into(),
                    },
                    format::duration(s.longest_lock_wait.map(f64::round)),
                ]
            })
            .collect(),
    );
    if !d.standbys.is_empty() {
        table(
            &mut out,
            &["primary → standby", "state", "lag bytes", "replay lag"],
            d.standbys
                .iter()
                .map(|s| {
                    vec![
                        format!("{} → {}", s.primary, s.replica),
                        if s.streaming {
                            "streaming".into()
                        } else {
                            "NOT STREAMING".into()
                        },
                        format::bytes(s.lag_bytes),
                        format::duration(s.replay_seconds),
                    ]
                })
                .collect(),
        );
    }
    let active: Vec<_> = store
        .silences()
        .iter()
        .filter(|s| s.state == "active")
        .collect();
    if !active.is_empty() {
        let _ = writeln!(out, "## Active silences\n");
        table(
            &mut out,
            &["id", "matchers", "ends", "by", "comment"],
            active
                .iter()
                .map(|s| {
                    let matchers: Vec<String> = s
                        .matchers
                        .iter()
                        .map(|m| format!("{}={}", m.name, m.value))
                        .collect();
                    vec![
                        s.id.clone(),
                        matchers.join(","),
                        s.ends_at.clone(),
                        s.created_by.clone(),
                        s.comment.clone(),
                    ]
                })
                .collect(),
        );
    }
    out
}

/// The OSC 52 sequence that sets the clipboard to `text`.
pub fn osc52(text: &str) -> String {
    format!(
        "\x1b]52;c;{}\x07",
        base64::engine::general_purpose::STANDARD.encode(text)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_cells_and_clipboard() {
        assert_eq!(
            file_name(1_800_000_000.0),
            "surge-snapshot-20270115T080000Z.md"
        );
        assert_eq!(cell("a|b\nc"), "a\\|b c");
        assert_eq!(osc52("hi"), "\x1b]52;c;aGk=\x07");
        let md = markdown(&Store::new(30.0), 1_800_000_000.0);
        assert!(
            md.starts_with("# Surge snapshot 2027-01-15T08:00:00Z"),
            "{md}"
        );
        assert!(md.contains("## Firing alerts (0)"));
    }
}
