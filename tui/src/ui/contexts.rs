//! Every context side by side (`:ctx`, `0`): per cluster, are its sources answering, are its
//! services keeping up (at max, the hottest CPU against its HPA target), is its pipeline
//! draining (total lag, groups growing or stalled), and what fires. `Enter` switches to one.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Block;
use surge_client::store::ContextSummary;

use super::ctx::Ctx;
use super::format;
use super::table::{self, col, num};

/// One row: a context's name, whether it is the one shown, and its summary.
type Row<'a> = (&'a str, bool, &'a ContextSummary);

pub fn draw(frame: &mut Frame, area: Rect, ctx: &Ctx) {
    let t = *ctx.theme;
    let missing = ContextSummary::default();
    let rows: Vec<Row> = ctx
        .app
        .contexts
        .iter()
        .enumerate()
        .map(|(i, name)| {
            (
                name.as_str(),
                i == ctx.app.context,
                ctx.app.context_rows.get(i).unwrap_or(&missing),
            )
        })
        .collect();
    let columns = vec![
        col("CONTEXT", 16, 0, move |r: &Row| {
            let mark = if r.1 { "▸ " } else { "  " };
            Span::styled(format!("{mark}{}", r.0), t.text)
        }),
        num("SOURCES", 8, 0, move |r: &Row| {
            let s = r.2;
            let style = if s.sources > 0 && s.sources_ok == s.sources {
                t.ok
            } else {
                t.crit
            };
            Span::styled(format!("{}/{}", s.sources_ok, s.sources), style)
        }),
        num("SERVICES", 8, 1, move |r: &Row| {
            Span::styled(r.2.services.to_string(), t.text)
        }),
        num("AT MAX", 6, 0, move |r: &Row| {
            let n = r.2.at_max;
            Span::styled(n.to_string(), if n > 0 { t.warn } else { t.text })
        }),
        num("CPU/TARGET", 10, 0, move |r: &Row| {
            let style = match r.2.worst_cpu_of_target {
                Some(x) if x > 1.0 => t.warn,
                _ => t.text,
            };
            Span::styled(format::percent(r.2.worst_cpu_of_target), style)
        }),
        num("LAG", 10, 0, move |r: &Row| {
            Span::styled(format::count(r.2.lag), t.text)
        }),
        num("GROWING/STALLED", 15, 1, move |r: &Row| {
            let n = r.2.lag_trouble;
            Span::styled(n.to_string(), if n > 0 { t.crit } else { t.text })
        }),
        num("FIRING", 6, 0, move |r: &Row| {
            let n = r.2.firing;
            Span::styled(n.to_string(), if n > 0 { t.warn } else { t.text })
        }),
        num("PAGING", 6, 0, move |r: &Row| {
            let n = r.2.paging;
            Span::styled(n.to_string(), if n > 0 { t.crit } else { t.text })
        }),
    ];
    let columns = table::fit(columns, area.width.saturating_sub(4));
    // Each row has its own sources and ages: the title carries no single age.
    let block = Block::bordered()
        .title(Line::from(Span::styled(
            format!(" Contexts ({}) ", rows.len()),
            t.title,
        )))
        .border_style(t.dim);
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
