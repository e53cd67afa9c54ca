//! Overview: is every service keeping up? One row per service, then what pages and the
//! pipeline at a glance.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::Span;

use super::table::{self, col, num};
use super::{Ctx, cells, format, spark};
use crate::app;
use crate::model::{Alert, AlertState, Labels};
use crate::store::{DEFAULT_CPU_ALERT, GroupRow, ServerRow, ServiceRow};

pub fn draw(frame: &mut Frame, area: Rect, ctx: &Ctx) {
    let services = app::services(ctx.store, &ctx.app.filter);
    // The services table as tall as its rows, leaving at least 8 rows for the panels below.
    let top_height = (services.len().max(1) as u16 + 3)
        .min(area.height.saturating_sub(8))
        .max(area.height.min(4));
    let [top, bottom] =
        Layout::vertical([Constraint::Length(top_height), Constraint::Min(0)]).areas(area);
    services_table(frame, top, ctx, &services, Some(ctx.app.cursor()));
    let alerts: Vec<&Alert> = ctx.store.derived.alerts.iter().collect();
    let groups = ctx.store.derived.groups.len().max(1) as u16 + 3;
    if bottom.width >= 120 {
        // Wide: alerts on the left; pipeline over replicas on the right.
        let [left, right] =
            Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)])
                .areas(bottom);
        alert_list(frame, left, ctx, "Alerts", &alerts, None);
        let pipeline_height = groups.min(right.height / 2).max(right.height.min(4));
        let [pipeline_area, replicas_area] =
            Layout::vertical([Constraint::Length(pipeline_height), Constraint::Min(0)])
                .areas(right);
        pipeline(frame, pipeline_area, ctx);
        replicas(frame, replicas_area, ctx);
    } else {
        // Narrow: alerts full width (their subject needs it), then pipeline beside replicas.
        let alerts_height = (alerts.len().max(1) as u16 + 3).min(bottom.height / 2);
        let [top_area, rest] =
            Layout::vertical([Constraint::Length(alerts_height), Constraint::Min(0)]).areas(bottom);
        alert_list(frame, top_area, ctx, "Alerts", &alerts, None);
        let [pipeline_area, replicas_area] =
            Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)])
                .areas(rest);
        pipeline(frame, pipeline_area, ctx);
        replicas(frame, replicas_area, ctx);
    }
}

pub fn services_table(
    frame: &mut Frame,
    area: Rect,
    ctx: &Ctx,
    rows: &[&ServiceRow],
    cursor: Option<usize>,
) {
    let t = *ctx.theme;
    let alert = ctx.store.cpu_alert.unwrap_or(DEFAULT_CPU_ALERT);
    let (now, range) = (ctx.now, ctx.range());
    let columns = vec![
        col("SERVICE", 16, 0, move |s: &&ServiceRow| {
            Span::styled(format!("{}/{}", s.namespace, s.workload), t.text)
        }),
        num("PODS", 7, 0, move |s: &&ServiceRow| {
            let text = match (s.current, s.desired) {
                (Some(c), Some(d)) if (c - d).abs() > 0.5 => format!("{c:.0}→{d:.0}"),
                (Some(c), _) => format!("{c:.0}"),
                _ => format::NONE.into(),
            };
            Span::styled(text, t.text)
        }),
        num("MIN-MAX", 7, 4, move |s: &&ServiceRow| {
            match (s.min, s.max) {
                (Some(a), Some(b)) => Span::styled(format!("{a:.0}-{b:.0}"), t.dim),
                _ => Span::styled(format::NONE, t.dim),
            }
        }),
        num("CPU/REQ", 7, 0, move |s: &&ServiceRow| {
            cells::cpu(&t, s.cpu, s.target, alert)
        }),
        num("TARGET", 6, 5, move |s: &&ServiceRow| {
            Span::styled(format::percent(s.target), t.dim)
        }),
        col("HEADROOM", 15, 1, move |s: &&ServiceRow| {
            cells::headroom(&t, s)
        }),
        col("TO MAX", 10, 3, move |s: &&ServiceRow| {
            cells::forecast(&t, s.forecast)
        }),
        num("KAFKA LAG", 9, 2, move |s: &&ServiceRow| match &s.kafka {
            Some(g) => cells::lag(&t, g),
            None => Span::styled(format::NONE, t.dim),
        }),
        col("TREND", 11, 2, move |s: &&ServiceRow| match &s.kafka {
            Some(g) => cells::lag_state(&t, &g.state),
            None => Span::styled("", t.dim),
        }),
        num("ETA", 7, 3, move |s: &&ServiceRow| match &s.kafka {
            Some(g) => cells::eta(&t, g),
            None => Span::styled(format::NONE, t.dim),
        }),
        num("DB LAG", 7, 2, move |s: &&ServiceRow| {
            cells::replica_lag(&t, s.db_lag_seconds)
        }),
    ];
    let inner = area.width.saturating_sub(4);
    let columns = table::fit(columns, inner);
    let spark_width = table::spark_width(&columns, inner, 40);
    let mut columns = columns;
    if spark_width >= 8 {
        let spark_col = col("CPU (range)", spark_width, 0, move |s: &&ServiceRow| {
            // The ceiling keeps the alert line's height fixed: a full bar means "at the line".
            let line = spark::line(
                &s.cpu_history,
                now,
                range,
                usize::from(spark_width),
                Some(alert),
            );
            let style = if s.cpu.is_some_and(|c| c >= alert) {
                t.crit
            } else {
                t.accent
            };
            Span::styled(line, style)
        });
        columns.insert(4, spark_col);
    }
    let title = format!("Services ({})", rows.len());
    let block = ctx.panel(
        &title,
        ctx.store
            .age_of("surge_hpa_current_replicas", ctx.now)
            .or(ctx
                .store
                .age_of("surge_workload_cpu_utilization_ratio", ctx.now)),
    );
    table::draw(
        frame,
        area,
        ctx,
        block,
        columns,
        table::Body {
            rows,
            cursor,
            empty: "no services yet: waiting for surge_hpa_* / surge_workload_* series",
        },
    );
}

/// Who and what an alert is about, from its labels.
pub fn subject(labels: &Labels) -> String {
    let l = |k: &str| labels.get(k).map(String::as_str);
    if let Some(w) = l("workload") {
        return l("namespace").map_or(w.to_string(), |ns| format!("{ns}/{w}"));
    }
    match (l("group"), l("topic")) {
        (Some(g), Some(t)) => return format!("{g} on {t}"),
        (Some(g), None) => return g.to_string(),
        (None, Some(t)) => return t.to_string(),
        (None, None) => {}
    }
    if let Some(r) = l("replica") {
        return r.to_string();
    }
    // An exporter source's own alert (SurgeSourceDown): which source, which target.
    match (l("source"), l("target")) {
        (Some(s), Some(t)) => format!("{s} {t}"),
        (Some(s), None) => s.to_string(),
        (None, Some(t)) => t.to_string(),
        (None, None) => l("job").unwrap_or("").to_string(),
    }
}

pub fn alert_list(
    frame: &mut Frame,
    area: Rect,
    ctx: &Ctx,
    title: &str,
    alerts: &[&Alert],
    cursor: Option<usize>,
) {
    let t = *ctx.theme;
    let now = ctx.now;
    let columns = vec![
        col("ALERT", 28, 0, move |a: &&Alert| {
            let style = match (a.state, a.muted) {
                (_, true) => t.dim,
                (AlertState::Pending, _) => t.warn,
                (AlertState::Firing, _) if matches!(a.severity.as_str(), "page" | "critical") => {
                    t.crit
                }
                _ => t.warn,
            };
            Span::styled(a.name.clone(), style)
        }),
        col("STATE", 8, 0, move |a: &&Alert| {
            let text = match (a.state, a.muted) {
                (_, true) => "muted",
                (AlertState::Firing, _) => "firing",
                (AlertState::Pending, _) => "pending",
            };
            Span::styled(text, t.text)
        }),
        col("SEV", 7, 2, move |a: &&Alert| {
            Span::styled(a.severity.clone(), t.text)
        }),
        col("SUBJECT", 22, 1, move |a: &&Alert| {
            Span::styled(subject(&a.labels), t.text)
        }),
        num("FOR", 6, 1, move |a: &&Alert| {
            Span::styled(
                format::duration(a.active_at.map(|at| (now - at).max(0.0).round())),
                t.dim,
            )
        }),
        col("SUMMARY", 30, 3, move |a: &&Alert| {
            Span::styled(a.summary.clone(), t.dim)
        })
        .grows(),
    ];
    let firing = alerts
        .iter()
        .filter(|a| a.state == AlertState::Firing && !a.muted)
        .count();
    let watchdog = if ctx.store.derived.watchdog {
        ", watchdog ♥"
    } else {
        ""
    };
    let block = ctx.panel(
        &format!(
            "{title} ({firing} firing, {} shown{watchdog})",
            alerts.len()
        ),
        ctx.store.alerts_age(ctx.now),
    );
    table::draw(
        frame,
        area,
        ctx,
        block,
        columns,
        table::Body {
            rows: alerts,
            cursor,
            empty: "nothing firing or pending",
        },
    );
}

/// The read replicas at a glance: role, streaming, replay lag.
fn replicas(frame: &mut Frame, area: Rect, ctx: &Ctx) {
    let t = *ctx.theme;
    let servers: Vec<&ServerRow> = ctx.store.derived.servers.iter().collect();
    let columns = vec![
        col("SERVER", 12, 0, move |s: &&ServerRow| {
            Span::styled(s.target.clone(), t.text)
        }),
        col("ROLE", 7, 1, move |s: &&ServerRow| {
            Span::styled(
                s.role.clone(),
                if s.role == "down" { t.crit } else { t.text },
            )
        }),
        col("RECEIVER", 13, 0, move |s: &&ServerRow| {
            match (s.role.as_str(), s.receiver_streaming, s.paused) {
                ("replica", _, true) => Span::styled("replay paused", t.warn),
                ("replica", Some(true), _) => Span::styled("streaming", t.ok),
                ("replica", Some(false), _) => Span::styled("NOT STREAMING", t.crit),
                _ => Span::styled(format::NONE, t.dim),
            }
        }),
        num("LAG", 7, 0, move |s: &&ServerRow| {
            if s.role == "replica" {
                cells::replica_lag(&t, s.replay_lag_seconds)
            } else {
                Span::styled(format::NONE, t.dim)
            }
        }),
        num("BYTES", 9, 2, move |s: &&ServerRow| {
            Span::styled(format::bytes(s.replay_lag_bytes), t.dim)
        }),
    ];
    let block = ctx.panel(
        &format!("Replicas ({})", servers.len()),
        ctx.store.age_of("surge_source_up", ctx.now),
    );
    table::draw(
        frame,
        area,
        ctx,
        block,
        columns,
        table::Body {
            rows: &servers,
            cursor: None,
            empty: "no PostgreSQL targets",
        },
    );
}

/// The pipeline at a glance: every group-topic, worst first.
fn pipeline(frame: &mut Frame, area: Rect, ctx: &Ctx) {
    let t = *ctx.theme;
    let mut groups: Vec<&GroupRow> = ctx.store.derived.groups.iter().collect();
    groups.sort_by(|a, b| {
        let rank = |g: &GroupRow| match g.state.as_str() {
            "stalled" => 0,
            "growing" => 1,
            "draining" => 2,
            _ => 3,
        };
        rank(a)
            .cmp(&rank(b))
            .then(b.lag.unwrap_or(0.0).total_cmp(&a.lag.unwrap_or(0.0)))
    });
    let columns = vec![
        col("GROUP → TOPIC", 12, 0, move |g: &&GroupRow| {
            Span::styled(format!("{} → {}", g.group, g.topic), t.text)
        }),
        num("LAG", 6, 0, move |g: &&GroupRow| cells::lag(&t, g)),
        num("TIME", 7, 1, move |g: &&GroupRow| cells::lag_time(&t, g)),
        col("STATE", 10, 0, move |g: &&GroupRow| {
            cells::lag_state(&t, &g.state)
        }),
        num("ETA", 6, 2, move |g: &&GroupRow| cells::eta(&t, g)),
    ];
    let block = ctx.panel(
        &format!("Pipeline ({})", groups.len()),
        ctx.store.age_of("surge_kafka_group_topic_lag", ctx.now),
    );
    table::draw(
        frame,
        area,
        ctx,
        block,
        columns,
        table::Body {
            rows: &groups,
            cursor: None,
            empty: "no consumer groups seen",
        },
    );
}
