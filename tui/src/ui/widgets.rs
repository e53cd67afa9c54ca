//! Widgets more than one view draws: the services table (Overview, service detail) and the
//! alert list (Overview, Alerts).

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::Span;
use surge_client::model::{Alert, AlertState, subject};
use surge_client::store::{DEFAULT_CPU_ALERT, ServiceRow};

use super::ctx::Ctx;
use super::table::{self, col, num};
use super::{cells, format, spark};

/// The narrowest CPU sparkline worth drawing.
const SPARK_MIN: u16 = 8;

pub fn services_table(
    frame: &mut Frame,
    area: Rect,
    ctx: &Ctx,
    rows: &[&ServiceRow],
    cursor: Option<usize>,
) {
    let t = *ctx.theme;
    let lines = ctx.store.lines();
    let alert = ctx.store.cpu_alert().unwrap_or(DEFAULT_CPU_ALERT);
    let (now, range) = (ctx.now, ctx.range());
    let age = ctx.store.services_age(ctx.now);
    let columns = vec![
        col("SERVICE", 16, 0, move |s: &&ServiceRow| {
            Span::styled(format!("{}/{}", s.namespace, s.workload), t.text)
        }),
        col("VERDICT", 24, 1, move |s: &&ServiceRow| {
            cells::verdict(&t, s)
        }),
        num("PODS", 7, 0, move |s: &&ServiceRow| {
            let text = match (s.current, s.desired) {
                (Some(c), Some(d)) if (c - d).abs() > 0.5 => format!("{c:.0}→{d:.0}"),
                (Some(c), _) => format!("{c:.0}"),
                // No HPA: the pods the workload runs.
                (None, _) => s.pods.map_or(format::NONE.into(), |p| format!("{p:.0}")),
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
            cells::derived(cells::cpu(&t, s.cpu, s.target, alert), s.cpu_derived)
        }),
        // The CPU target, or a marker when the HPA follows another metric.
        num("TARGET", 6, 5, move |s: &&ServiceRow| cells::target(&t, s)),
        num("MEM/REQ", 7, 1, move |s: &&ServiceRow| {
            cells::memory(&t, &lines, s.memory, s.memory_of_limit)
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
            Some(g) => cells::derived(cells::lag_state(&t, g.state), g.derived),
            None => Span::styled("", t.dim),
        }),
        num("ETA", 7, 3, move |s: &&ServiceRow| match &s.kafka {
            Some(g) => cells::eta(&t, g),
            None => Span::styled(format::NONE, t.dim),
        }),
        num("DB LAG", 7, 2, move |s: &&ServiceRow| {
            cells::derived(
                cells::replica_lag(&t, &lines, s.db.replica_lag_seconds),
                s.db.lag_derived,
            )
        }),
        num("DB CONN", 7, 2, move |s: &&ServiceRow| {
            cells::connection_use(&t, &lines, s.db.connection_use)
        }),
    ];
    let inner = area.width.saturating_sub(4);
    // Wide screens keep room for the CPU sparkline (and a name) before the least important
    // columns; narrow ones have no sparkline.
    let reserve = if inner >= 140 { SPARK_MIN + 9 } else { 0 };
    let columns = table::fit(columns, inner.saturating_sub(reserve));
    let spark_width = table::spark_width(&columns, inner, 40);
    let mut columns = columns;
    if spark_width >= SPARK_MIN {
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
    let block = ctx.panel(&title, age);
    table::draw(
        frame,
        area,
        ctx,
        block,
        columns,
        table::Body {
            rows,
            cursor,
            empty: "no services yet: no surge_hpa_* or kube_horizontalpodautoscaler_* series",
        },
    );
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
    let watchdog = if ctx.store.derived().watchdog {
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
