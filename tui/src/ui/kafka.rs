//! Kafka: every group on every topic (lag, lag in time, trend, rates, ETA, history), and the
//! partition drill-in.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use surge_client::store::{GroupRow, PartitionRow};
use surge_metrics::catalogue;
use surge_metrics::state::{GroupState, LagState};

use super::ctx::Ctx;
use super::table::{self, col, num};
use super::{cells, format, spark};
use crate::app;

pub fn draw_groups(frame: &mut Frame, area: Rect, ctx: &Ctx) {
    let t = *ctx.theme;
    let (now, range) = (ctx.now, ctx.range());
    let rows = app::groups(ctx.store, &ctx.app.filter);
    // Room for `■ stalled 2/12` only while some group is partly stalled.
    let trend_width = if rows.iter().any(|g| g.partly_stalled().is_some()) {
        14
    } else {
        11
    };
    let columns = vec![
        col("GROUP", 14, 0, move |g: &&GroupRow| {
            Span::styled(g.group.clone(), t.text)
        }),
        col("TOPIC", 20, 0, move |g: &&GroupRow| {
            Span::styled(g.topic.clone(), t.text)
        }),
        col("CLUSTER", 8, 6, move |g: &&GroupRow| {
            Span::styled(g.cluster.clone(), t.dim)
        }),
        num("LAG", 8, 0, move |g: &&GroupRow| cells::lag(&t, g)),
        num("LAG TIME", 8, 1, move |g: &&GroupRow| {
            cells::lag_time(&t, g)
        }),
        col("TREND", trend_width, 0, move |g: &&GroupRow| {
            cells::derived(cells::group_state(&t, g), g.derived)
        }),
        col("GROUP STATE", 13, 5, move |g: &&GroupRow| {
            let members = g.members.map_or(String::new(), |m| format!(" ({m:.0})"));
            let state = g.group_state.map_or("unknown", GroupState::label);
            Span::styled(
                format!("{state}{members}"),
                if g.group_state == Some(GroupState::Stable) {
                    t.dim
                } else {
                    t.warn
                },
            )
        }),
        num("IN/s", 7, 3, move |g: &&GroupRow| {
            Span::styled(format::count(g.produce_rate), t.text)
        }),
        num("OUT/s", 7, 3, move |g: &&GroupRow| {
            Span::styled(format::count(g.consume_rate), t.text)
        }),
        num("ETA", 7, 2, move |g: &&GroupRow| cells::eta(&t, g)),
    ];
    let inner = area.width.saturating_sub(4);
    let mut columns = table::fit(columns, inner);
    let spark_width = table::spark_width(&columns, inner, 48);
    if spark_width >= 8 {
        columns.push(col("LAG (range)", spark_width, 0, move |g: &&GroupRow| {
            let style = match g.state {
                Some(LagState::Growing | LagState::Stalled) => t.crit,
                _ => t.accent,
            };
            Span::styled(
                spark::line(&g.history, now, range, usize::from(spark_width), None),
                style,
            )
        }));
    }
    let title = format!(
        "Consumer groups ({}), history {}",
        rows.len(),
        ctx.app.range.label()
    );
    let block = ctx.panel(
        &title,
        ctx.store.age_of(&catalogue::kafka::TOPIC_LAG, ctx.now),
    );
    table::draw(
        frame,
        area,
        ctx,
        block,
        columns,
        table::Body {
            rows: &rows,
            cursor: Some(ctx.app.cursor()),
            empty: "no consumer groups seen (is the Kafka source configured?)",
        },
    );
}

pub fn draw_partitions(
    frame: &mut Frame,
    area: Rect,
    ctx: &Ctx,
    cluster: &str,
    group: &str,
    topic: &str,
) {
    let t = *ctx.theme;
    let summary = ctx
        .store
        .derived()
        .groups
        .iter()
        .find(|g| g.cluster == cluster && g.group == group && g.topic == topic);
    let mut lines = match summary {
        Some(g) => vec![
            Line::from(vec![
                Span::styled("lag ", t.dim),
                cells::lag(&t, g),
                Span::styled("   lag time ", t.dim),
                cells::lag_time(&t, g),
                Span::styled("   trend ", t.dim),
                cells::derived(cells::group_state(&t, g), g.derived),
                Span::styled("   eta ", t.dim),
                cells::eta(&t, g),
                Span::styled(
                    format!(
                        "   in {}  out {}",
                        format::rate(g.produce_rate),
                        format::rate(g.consume_rate)
                    ),
                    t.dim,
                ),
            ]),
            match cells::stall_note(g) {
                Some(note) => Line::from(Span::styled(note, t.crit)),
                // surge-exporter's; other exporters have none to show.
                None => Line::from(g.scalable_lag.map_or_else(Vec::new, |lag| {
                    vec![
                        Span::styled("scalable lag ", t.dim),
                        Span::styled(format::count(Some(lag)), t.text),
                    ]
                })),
            },
        ],
        None => vec![Line::from(Span::styled(
            "no lag series for this group and topic",
            t.dim,
        ))],
    };
    lines.retain(|l| l.width() > 0);
    let height = 2 + u16::try_from(lines.len()).unwrap_or(1);
    let [head, body] =
        Layout::vertical([Constraint::Length(height), Constraint::Min(0)]).areas(area);
    frame.render_widget(
        Paragraph::new(lines).block(ctx.panel(&format!("{group} on {topic} ({cluster})"), None)),
        head,
    );
    let rows = app::partitions(ctx.store, group, topic, &ctx.app.filter);
    let stalled = summary.map(|g| g.stalled.as_slice()).unwrap_or_default();
    let columns = vec![
        num("PARTITION", 9, 0, move |p: &PartitionRow| {
            Span::styled(p.partition.clone(), t.text)
        }),
        num("COMMITTED", 12, 0, move |p: &PartitionRow| {
            if p.has_commit {
                Span::styled(format!("{:.0}", p.committed.unwrap_or(f64::NAN)), t.text)
            } else {
                Span::styled("none", t.warn)
            }
        }),
        num("LOG END", 12, 0, move |p: &PartitionRow| {
            Span::styled(
                p.log_end.map_or(format::NONE.into(), |v| format!("{v:.0}")),
                t.text,
            )
        }),
        num("LAG", 10, 0, move |p: &PartitionRow| {
            Span::styled(format::count(p.lag), t.text)
        }),
        col("NOTE", 30, 1, move |p: &PartitionRow| {
            if let Some(s) = stalled.iter().find(|s| s.partition == p.partition) {
                let member = if s.member.is_empty() {
                    "unassigned"
                } else {
                    &s.member
                };
                return Span::styled(
                    format!(
                        "stalled {}, {member}",
                        format::duration(Some(s.seconds.round()))
                    ),
                    t.crit,
                );
            }
            match (p.has_commit, p.lag) {
                (true, _) => Span::raw(""),
                (false, Some(_)) => Span::styled("never committed: lag from log start", t.dim),
                (false, None) => Span::styled("never committed: no lag", t.dim),
            }
        }),
    ];
    let block = ctx.panel(
        &format!("Partitions ({})", rows.len()),
        ctx.store.age_of(&catalogue::kafka::LAG, ctx.now),
    );
    table::draw(
        frame,
        body,
        ctx,
        block,
        columns,
        table::Body {
            rows: &rows,
            cursor: Some(ctx.app.cursor()),
            empty: "loading partitions… (fetched only while this view is open)",
        },
    );
}
