//! Every context side by side (`:ctx`, `0`): during a regional failover, both regions on one
//! screen. Per context a summary row — sources answering, replicas, services at their maximum,
//! the hottest CPU against its HPA target, total lag, groups growing or stalled, firing and
//! paging alerts — then its services with the same columns. `Enter` switches to the context,
//! or to that service in it.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::Span;
use surge_client::store::{ContextSummary, ServiceLine};

use super::ctx::Ctx;
use super::table::{self, col, num};
use super::{cells, format};

/// A row: a context's summary (its name, whether it is shown) or one of its services.
enum Row<'a> {
    Context {
        name: &'a str,
        current: bool,
        summary: &'a ContextSummary,
    },
    Service(&'a ServiceLine),
}

pub fn draw(frame: &mut Frame, area: Rect, ctx: &Ctx) {
    let t = *ctx.theme;
    let missing = ContextSummary::default();
    let summary = |i: usize| ctx.app.context_rows.get(i).unwrap_or(&missing);
    let rows: Vec<Row> = ctx
        .app
        .contexts_table()
        .into_iter()
        .filter_map(|(i, service)| match service {
            None => Some(Row::Context {
                name: ctx.app.contexts.get(i)?.as_str(),
                current: i == ctx.app.context,
                summary: summary(i),
            }),
            Some(j) => summary(i).service_lines.get(j).map(Row::Service),
        })
        .collect();
    let ratio_style = move |x: Option<f64>| match x {
        Some(x) if x > 1.0 => t.warn,
        _ => t.text,
    };
    let columns = vec![
        col("CONTEXT / SERVICE", 28, 0, move |r: &Row| match r {
            Row::Context { name, current, .. } => {
                let mark = if *current { "▸ " } else { "  " };
                Span::styled(format!("{mark}{name}"), t.title)
            }
            Row::Service(s) => Span::styled(format!("    {}/{}", s.namespace, s.workload), t.text),
        }),
        num("SOURCES", 7, 0, move |r: &Row| match r {
            Row::Context { summary: s, .. } => {
                let ok = s.sources > 0 && s.sources_ok == s.sources;
                Span::styled(
                    format!("{}/{}", s.sources_ok, s.sources),
                    if ok { t.ok } else { t.crit },
                )
            }
            Row::Service(_) => Span::raw(""),
        }),
        num("REPLICAS", 8, 0, move |r: &Row| match r {
            Row::Context { summary: s, .. } => Span::styled(format::count(s.replicas), t.text),
            Row::Service(s) => {
                let at_max = matches!((s.replicas, s.max), (Some(c), Some(m)) if c >= m);
                let text = format!("{}/{}", format::count(s.replicas), format::count(s.max));
                Span::styled(text, if at_max { t.warn } else { t.text })
            }
        }),
        num("AT MAX", 6, 1, move |r: &Row| match r {
            Row::Context { summary: s, .. } => Span::styled(
                s.at_max.to_string(),
                if s.at_max > 0 { t.warn } else { t.text },
            ),
            Row::Service(_) => Span::raw(""),
        }),
        num("CPU/TARGET", 10, 0, move |r: &Row| {
            let x = match r {
                Row::Context { summary: s, .. } => s.worst_cpu_of_target,
                Row::Service(s) => s.cpu_of_target,
            };
            Span::styled(format::percent(x), ratio_style(x))
        }),
        num("LAG", 9, 0, move |r: &Row| {
            let lag = match r {
                Row::Context { summary: s, .. } => s.lag,
                Row::Service(s) => s.lag,
            };
            Span::styled(format::count(lag), t.text)
        }),
        col("TREND", 18, 1, move |r: &Row| match r {
            Row::Context { summary: s, .. } => {
                let text = format!("{} growing/stalled", s.lag_trouble);
                Span::styled(text, if s.lag_trouble > 0 { t.crit } else { t.dim })
            }
            Row::Service(s) => match s.lag_state {
                Some(state) => cells::lag_state(&t, Some(state)),
                None => Span::styled(format::NONE, t.dim),
            },
        }),
        num("FIRING", 6, 0, move |r: &Row| {
            let n = match r {
                Row::Context { summary: s, .. } => s.firing,
                Row::Service(s) => s.firing,
            };
            Span::styled(n.to_string(), if n > 0 { t.warn } else { t.text })
        }),
        num("PAGING", 6, 1, move |r: &Row| match r {
            Row::Context { summary: s, .. } => Span::styled(
                s.paging.to_string(),
                if s.paging > 0 { t.crit } else { t.text },
            ),
            Row::Service(_) => Span::raw(""),
        }),
    ];
    let columns = table::fit(columns, area.width.saturating_sub(4));
    // Each context has its own sources and ages: the title carries no single age.
    let title = if ctx.app.kube_contexts.is_empty() {
        format!("Contexts ({})", ctx.app.contexts.len())
    } else {
        format!(
            "Contexts ({}) · kubeconfig also has: {} (surge --kube-context NAME)",
            ctx.app.contexts.len(),
            ctx.app.kube_contexts.join(", ")
        )
    };
    let block = ctx.plain_panel(&title);
    table::draw(
        frame,
        area,
        ctx,
        block,
        columns,
        table::Body {
            rows: &rows,
            cursor: Some(ctx.app.cursor()),
            empty: "no contexts",
        },
    );
}
