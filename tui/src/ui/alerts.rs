//! Alerts: firing and pending (Alertmanager's view wins: muted ones say so), a timeline over
//! the range, the selected alert's detail with its runbook, and the silences.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};

use surge_client::fetch::ALERTS;
use surge_client::model::{Labels, Silence, subject};
use surge_client::store::WATCHDOG;

use super::ctx::Ctx;
use super::table::{self, col};
use super::{format, widgets};
use crate::app::{self, AlertsFocus};

pub fn draw(frame: &mut Frame, area: Rect, ctx: &Ctx) {
    let t = *ctx.theme;
    let alerts = app::alerts(ctx.store, &ctx.app.filter);
    let focus = ctx.app.alerts_focus;
    let timeline = timeline_rows(ctx);
    let list_height = (alerts.len().max(1) as u16 + 3)
        .min(area.height / 3)
        .max(area.height.min(5));
    let timeline_height = (timeline.len().max(1) as u16 + 3).min(10);
    let [list_area, timeline_area, bottom] = Layout::vertical([
        Constraint::Length(list_height),
        Constraint::Length(timeline_height),
        Constraint::Min(0),
    ])
    .areas(area);
    let cursor = (focus == AlertsFocus::Alerts).then(|| ctx.app.cursor());
    widgets::alert_list(frame, list_area, ctx, "Alerts", &alerts, cursor);

    // Timeline: one row per alert seen firing in the range, '█' where it fired.
    let label_width = 28usize;
    let width = usize::from(timeline_area.width.saturating_sub(4)).saturating_sub(label_width + 1);
    let range = ctx.range();
    let lines: Vec<Line> = if timeline.is_empty() {
        vec![Line::from(Span::styled(
            format!("nothing fired in the last {}", ctx.app.range.label()),
            t.dim,
        ))]
    } else {
        let mut lines: Vec<Line> = timeline
            .iter()
            .map(|(name, points)| {
                let cells = timeline_cells(points, ctx.now, range, width);
                Line::from(vec![
                    Span::styled(
                        format!("{:<label_width$} ", format::fit(name, label_width)),
                        t.text,
                    ),
                    Span::styled(cells.into_iter().collect::<String>(), t.crit),
                ])
            })
            .collect();
        lines.truncate(usize::from(timeline_height.saturating_sub(3)));
        let axis = format!(
            "{:<label_width$} -{}{}now",
            "",
            ctx.app.range.label(),
            " ".repeat(width.saturating_sub(ctx.app.range.label().len() + 4))
        );
        lines.push(Line::from(Span::styled(axis, t.dim)));
        lines
    };
    frame.render_widget(
        Paragraph::new(lines).block(ctx.panel(
            &format!("Timeline, last {}", ctx.app.range.label()),
            ctx.store.alerts_age(ctx.now),
        )),
        timeline_area,
    );

    let [detail_area, silences_area] =
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(bottom);
    let selected = if focus == AlertsFocus::Alerts {
        alerts.get(ctx.app.cursor()).copied()
    } else {
        None
    };
    let detail: Vec<Line> = match selected {
        Some(a) => {
            let mut lines = vec![
                Line::from(Span::styled(a.name.clone(), t.title)),
                Line::from(Span::styled(a.summary.clone(), t.text)),
                Line::from(Span::styled(a.description.clone(), t.dim)),
            ];
            if !a.runbook.is_empty() {
                lines.push(Line::from(vec![
                    Span::styled("runbook ", t.dim),
                    Span::styled(a.runbook.clone(), t.accent),
                ]));
            }
            let labels: Vec<String> = a.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            lines.push(Line::from(Span::styled(labels.join(" "), t.dim)));
            lines
        }
        None => vec![Line::from(Span::styled(
            "select an alert (j/k); Enter jumps to its service or group",
            t.dim,
        ))],
    };
    frame.render_widget(
        Paragraph::new(detail)
            .wrap(Wrap { trim: true })
            .block(ctx.plain_panel("Detail")),
        detail_area,
    );

    let silences = app::silences(ctx.store, &ctx.app.filter);
    let columns = vec![
        col("MATCHERS", 24, 0, move |s: &&Silence| {
            Span::styled(matchers(s), t.text)
        }),
        col("STATE", 7, 1, move |s: &&Silence| {
            Span::styled(
                s.state.clone(),
                if s.state == "active" { t.ok } else { t.dim },
            )
        }),
        col("ENDS", 20, 2, move |s: &&Silence| {
            Span::styled(s.ends_at.chars().take(19).collect::<String>(), t.dim)
        }),
        col("BY", 8, 3, move |s: &&Silence| {
            Span::styled(s.created_by.clone(), t.dim)
        }),
        col("COMMENT", 16, 4, move |s: &&Silence| {
            Span::styled(s.comment.clone(), t.dim)
        }),
    ];
    let cursor = (focus == AlertsFocus::Silences).then(|| ctx.app.cursor());
    let title = if focus == AlertsFocus::Silences {
        "Silences (e expire, Tab back)"
    } else {
        "Silences (Tab to select)"
    };
    let age = ctx
        .store
        .health()
        .get("alertmanager")
        .and_then(|h| h.last_ok)
        .map(|t| ((ctx.now - t).max(0.0), false));
    table::draw(
        frame,
        silences_area,
        ctx,
        ctx.panel(title, age),
        columns,
        table::Body {
            rows: &silences,
            cursor,
            empty: "no active silences",
        },
    );
}

/// '█' where the alert fired. Holes up to 1.5 sampling steps (the median spacing of the
/// points) or 1/20 of the range are bridged; longer ones are real pauses.
fn timeline_cells(points: &[(f64, f64)], now: f64, range: f64, width: usize) -> Vec<char> {
    let mut cells = vec![' '; width];
    if width == 0 {
        return cells;
    }
    let mut gaps: Vec<f64> = points.windows(2).map(|w| w[1].0 - w[0].0).collect();
    gaps.sort_by(f64::total_cmp);
    let step = gaps.get(gaps.len() / 2).copied().unwrap_or(0.0);
    let bridge = (1.5 * step).max(range / 20.0);
    let cell =
        |t: f64| ((((t - (now - range)) / range) * width as f64).floor() as usize).min(width - 1);
    let mut previous: Option<f64> = None;
    for &(at, _) in points {
        if at < now - range {
            continue;
        }
        match previous {
            Some(p) if at - p <= bridge => cells[cell(p)..=cell(at)].fill('█'),
            _ => cells[cell(at)] = '█',
        }
        previous = Some(at);
    }
    cells
}

fn matchers(s: &Silence) -> String {
    s.matchers
        .iter()
        .map(|m| {
            let op = match (m.is_equal, m.is_regex) {
                (true, false) => "=",
                (false, false) => "!=",
                (true, true) => "=~",
                (false, true) => "!~",
            };
            format!("{}{op}{}", m.name, m.value)
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Alerts with firing points in the range: (label, points), most recent first.
fn timeline_rows(ctx: &Ctx) -> Vec<(String, Vec<(f64, f64)>)> {
    let since = ctx.now - ctx.range();
    let mut rows: Vec<(String, Vec<(f64, f64)>)> = ctx
        .store
        .history()
        .named(ALERTS)
        .filter_map(|(labels, points): (&Labels, _)| {
            let points: Vec<(f64, f64)> = points
                .iter()
                .filter(|(t, _)| *t >= since)
                .copied()
                .collect();
            if points.is_empty() {
                return None;
            }
            let name = labels.get("alertname").cloned().unwrap_or_default();
            if name == WATCHDOG {
                return None;
            }
            let subject = subject(labels);
            let label = if subject.is_empty() {
                name
            } else {
                format!("{name} {subject}")
            };
            Some((label, points))
        })
        .collect();
    rows.sort_by(|a, b| {
        let last = |r: &(String, Vec<(f64, f64)>)| r.1.last().map_or(0.0, |p| p.0);
        last(b).total_cmp(&last(a)).then(a.0.cmp(&b.0))
    });
    rows
}

#[cfg(test)]
mod tests {
    use super::timeline_cells;

    #[test]
    fn timeline_bridges_sampling_steps_not_pauses() {
        // Every 20 s for 100 s, a 100 s pause, then again: two bars.
        let mut points: Vec<(f64, f64)> = (0..=5).map(|i| (f64::from(i) * 20.0, 1.0)).collect();
        points.extend((0..=2).map(|i| (200.0 + f64::from(i) * 20.0, 1.0)));
        let cells: String = timeline_cells(&points, 300.0, 300.0, 30)
            .into_iter()
            .collect();
        assert_eq!(cells, "███████████         █████     ");
    }
}
