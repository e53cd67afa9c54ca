//! Service detail: the HPA's view (replicas, what it scales on and what limits it, conditions,
//! time to max), memory against request and limit, CPU over the range, its pods, its consumer
//! groups and its alerts.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use surge_client::store::{DEFAULT_CPU_ALERT, GroupRow, PodRow, ServiceRow};
use surge_metrics::catalogue;

use super::ctx::Ctx;
use super::table::{self, col, num};
use super::{cells, format, spark, widgets};
use crate::app;

pub fn draw(frame: &mut Frame, area: Rect, ctx: &Ctx, namespace: &str, workload: &str) {
    let t = *ctx.theme;
    let lines = ctx.store.lines();
    let Some(s) = ctx
        .store
        .derived()
        .services
        .iter()
        .find(|s| s.namespace == namespace && s.workload == workload)
    else {
        let text = Paragraph::new(format!(
            "{namespace}/{workload}: no data (yet) — Esc to go back"
        ))
        .block(ctx.plain_panel(&format!("Service {namespace}/{workload}")));
        frame.render_widget(text, area);
        return;
    };
    let alert = ctx.store.cpu_alert().unwrap_or(DEFAULT_CPU_ALERT);
    let [summary_area, chart_area, rest] = Layout::vertical([
        Constraint::Length(7),
        Constraint::Length(4),
        Constraint::Min(0),
    ])
    .areas(area);

    let replicas = |v: Option<f64>| v.map_or(format::NONE.to_string(), |v| format!("{v:.0}"));
    let condition = |name: &str, value: Option<bool>, bad_when: bool| match value {
        Some(v) => Span::styled(
            format!("{name}={}  ", if v { "True" } else { "False" }),
            if v == bad_when { t.warn } else { t.ok },
        ),
        None => Span::styled(format!("{name}=?  "), t.dim),
    };
    let summary = vec![
        Line::from(vec![
            Span::styled("replicas ", t.dim),
            Span::styled(
                format!(
                    "{} current, {} desired",
                    replicas(s.current),
                    replicas(s.desired)
                ),
                t.text,
            ),
            Span::styled(
                format!("   min {} max {}", replicas(s.min), replicas(s.max)),
                t.dim,
            ),
            Span::styled("   headroom ", t.dim),
            cells::headroom(&t, s),
        ]),
        Line::from(vec![
            Span::styled("cpu/request ", t.dim),
            cells::derived(cells::cpu(&t, s.cpu, s.target, alert), s.cpu_derived),
            Span::styled(
                format!(
                    "   target {}   alert line {}",
                    format::percent(s.target),
                    format::percent(Some(alert))
                ),
                t.dim,
            ),
            Span::styled("   time to max replicas ", t.dim),
            cells::forecast(&t, s.forecast),
        ]),
        Line::from(vec![
            Span::styled("memory/request ", t.dim),
            cells::memory(&t, &lines, s.memory, s.memory_of_limit),
            Span::styled("   worst pod ", t.dim),
            cells::memory_of_limit(&t, &lines, s.memory_of_limit),
            Span::styled(
                format!(
                    " of its limit   alert line {}",
                    format::percent(Some(lines.memory_of_limit))
                ),
                t.dim,
            ),
        ]),
        scaling_line(&t, s),
        Line::from(vec![
            Span::styled("conditions ", t.dim),
            condition("AbleToScale", s.able_to_scale, false),
            // Kubernetes also sets ScalingLimited at min replicas (TooFewReplicas): no trouble.
            if s.scaling_limited && s.current.zip(s.min).is_some_and(|(c, m)| c <= m) {
                Span::styled("ScalingLimited=True (at min)  ", t.dim)
            } else {
                condition("ScalingLimited", Some(s.scaling_limited), true)
            },
            if s.pods_without_request > 0.0 {
                Span::styled(
                    format!(
                        "{:.0} pod(s) without a CPU request: not counted by the HPA",
                        s.pods_without_request
                    ),
                    t.warn,
                )
            } else {
                Span::raw("")
            },
        ]),
    ];
    frame.render_widget(
        Paragraph::new(summary).block(ctx.panel(
            &format!("HPA {namespace}/{workload}"),
            ctx.store.age_of(&catalogue::hpa::CURRENT, ctx.now),
        )),
        summary_area,
    );

    // CPU over the range, scaled so a full bar is the alert line.
    let width = usize::from(chart_area.width.saturating_sub(2));
    let line = spark::line(&s.cpu_history, ctx.now, ctx.range(), width, Some(alert));
    let peak = s
        .cpu_history
        .iter()
        .map(|(_, v)| *v)
        .fold(f64::NAN, f64::max);
    let chart = vec![
        Line::from(Span::styled(
            line,
            if s.cpu.is_some_and(|c| c >= alert) {
                t.crit
            } else {
                t.accent
            },
        )),
        Line::from(Span::styled(
            format!(
                "peak {}  now {}  (full bar = alert line {} or the peak if higher)",
                format::percent(peak.is_finite().then_some(peak)),
                format::percent(s.cpu),
                format::percent(Some(alert))
            ),
            t.dim,
        )),
    ];
    frame.render_widget(
        Paragraph::new(chart).block(
            ctx.panel(
                &format!("CPU / request, last {}", ctx.app.range.label()),
                ctx.store
                    .age_of(&catalogue::workload::CPU_UTILIZATION, ctx.now),
            ),
        ),
        chart_area,
    );

    let [pods_area, side] =
        Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)]).areas(rest);
    let pods = app::pods(ctx.store, namespace, workload, &ctx.app.filter);
    let columns = vec![
        col("POD", 20, 0, move |p: &PodRow| {
            Span::styled(p.pod.clone(), t.text)
        }),
        col("READY", 5, 0, move |p: &PodRow| {
            if p.ready {
                Span::styled("yes", t.ok)
            } else {
                Span::styled("NO", t.crit)
            }
        }),
        num("CPU", 7, 0, move |p: &PodRow| {
            Span::styled(
                p.cpu_cores
                    .map_or(format::NONE.into(), |c| format!("{:.0}m", c * 1000.0)),
                t.text,
            )
        }),
        num("REQUEST", 7, 1, move |p: &PodRow| {
            Span::styled(
                p.request_cores
                    .map_or("none".into(), |c| format!("{:.0}m", c * 1000.0)),
                t.dim,
            )
        }),
        num("CPU/REQ", 7, 0, move |p: &PodRow| {
            let u = p
                .cpu_cores
                .zip(p.request_cores)
                .filter(|(_, r)| *r > 0.0)
                .map(|(c, r)| c / r);
            cells::cpu(&t, u, s.target, alert)
        }),
        num("MEM", 9, 2, move |p: &PodRow| {
            cells::bytes(t.text, p.memory_bytes)
        }),
        num("MEM/LIM", 7, 1, move |p: &PodRow| {
            cells::memory_of_limit(&t, &lines, p.memory_of_limit())
        }),
    ];
    let block = ctx.panel(
        &format!("Pods ({})", pods.len()),
        ctx.store.age_of(&catalogue::workload::POD_READY, ctx.now),
    );
    table::draw(
        frame,
        pods_area,
        ctx,
        block,
        columns,
        table::Body {
            rows: &pods,
            cursor: Some(ctx.app.cursor()),
            empty: "no pod series for this workload",
        },
    );

    let [groups_area, alerts_area] =
        Layout::vertical([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(side);
    let groups: Vec<&GroupRow> = match &s.kafka {
        Some(k) => ctx
            .store
            .derived()
            .groups
            .iter()
            .filter(|g| g.group == k.group)
            .collect(),
        None => Vec::new(),
    };
    let columns = vec![
        col("GROUP → TOPIC", 18, 0, move |g: &&GroupRow| {
            Span::styled(format!("{} → {}", g.group, g.topic), t.text)
        }),
        num("LAG", 7, 0, move |g: &&GroupRow| cells::lag(&t, g)),
        col("STATE", 10, 0, move |g: &&GroupRow| {
            cells::derived(cells::lag_state(&t, g.state), g.derived)
        }),
        num("ETA", 6, 1, move |g: &&GroupRow| cells::eta(&t, g)),
    ];
    let block = ctx.panel(
        "Consumer groups",
        ctx.store.age_of(&catalogue::kafka::TOPIC_LAG, ctx.now),
    );
    table::draw(
        frame,
        groups_area,
        ctx,
        block,
        columns,
        table::Body {
            rows: &groups,
            cursor: None,
            empty: "no consumer group named after this service",
        },
    );
    let alerts: Vec<_> = ctx
        .store
        .derived()
        .alerts
        .iter()
        .filter(|a| a.labels.get("workload").map(String::as_str) == Some(workload))
        .collect();
    widgets::alert_list(frame, alerts_area, ctx, "Alerts", &alerts, None);
}

/// "scaling on lag 4200/replica > 300/replica → 14   cpu 35% < 70% → 1   limit: max 10, 12
/// partitions": every metric with the replicas it proposes, the one the HPA follows first.
fn scaling_line(t: &super::theme::Theme, s: &ServiceRow) -> Line<'static> {
    let mut spans = vec![Span::styled("scaling on ", t.dim)];
    match s.scaling.split_first() {
        None => spans.push(Span::styled(format::NONE, t.dim)),
        Some((first, rest)) => {
            let style = if first.deciding { t.accent } else { t.text };
            spans.push(Span::styled(cells::scaling_metric(first), style));
            for m in rest {
                spans.push(Span::styled(
                    format!("   {}", cells::scaling_metric(m)),
                    t.dim,
                ));
            }
        }
    }
    let mut limit = s.max.map_or(String::new(), |m| format!("max {m:.0}"));
    if let Some(p) = s.partitions {
        limit.push_str(&format!(", {p:.0} partitions"));
    }
    if !limit.is_empty() {
        spans.push(Span::styled(format!("   limit: {limit}"), t.dim));
    }
    // The HPA wants more than it may run: say which bound holds it.
    let wants = s.deciding().and_then(|m| m.proposed);
    if let (Some(w), Some(max)) = (wants, s.max)
        && w > max
    {
        spans.push(Span::styled(format!(" (wants {w:.0})"), t.warn));
    }
    Line::from(spans)
}
