//! Real charts where the screen has room: CPU against the HPA target and the alert line per
//! service, lag per consumer group, replay lag per replica — each over the history range, with
//! a time axis and units. Drawn from the same rows as the tables; small screens skip them.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::symbols::Marker;
use ratatui::text::Span;
use ratatui::widgets::{Axis, Chart, Dataset, GraphType, LegendPosition};
use surge_client::store::DEFAULT_CPU_ALERT;

use super::ctx::Ctx;
use super::format;
use super::theme::Theme;
use crate::config::ThemeName;

/// Rows the chart strip needs to be worth drawing (axes, legend and a few lines of plot).
pub const MIN_HEIGHT: u16 = 10;

/// One line of a chart: its name and points (seconds before now, value).
struct Line {
    name: String,
    points: Vec<(f64, f64)>,
    style: Style,
    marker: Marker,
}

/// Styles the lines of a chart cycle through.
fn palette(t: &Theme) -> [Style; 5] {
    [t.accent, t.ok, t.warn, t.title, t.text]
}

/// Without colour, lines differ by how they are drawn, and the legend shows each one's mark
/// before its name.
const MONO_MARKERS: [(Marker, &str); 5] = [
    (Marker::Braille, "⠒"),
    (Marker::Dot, "•"),
    (Marker::Bar, "▄"),
    (Marker::Block, "█"),
    (Marker::HalfBlock, "▀"),
];

/// Points as (seconds relative to now, value), within the range.
fn relative(points: &[(f64, f64)], now: f64, range: f64, scale: f64) -> Vec<(f64, f64)> {
    points
        .iter()
        .filter(|(t, v)| *t >= now - range && *t <= now && v.is_finite())
        .map(|(t, v)| (t - now, v * scale))
        .collect()
}

/// One line per named history, over the range, each in the next style of the palette.
fn lines<'a>(
    histories: impl Iterator<Item = (String, &'a [(f64, f64)])>,
    ctx: &Ctx,
    scale: f64,
) -> Vec<Line> {
    let styles = palette(ctx.theme);
    let mono = ctx.theme.name == ThemeName::Mono;
    histories
        .enumerate()
        .map(|(i, (name, history))| {
            let (marker, name) = if mono {
                let (marker, mark) = MONO_MARKERS[i % MONO_MARKERS.len()];
                (marker, format!("{mark} {name}"))
            } else {
                (Marker::Braille, name)
            };
            Line {
                name,
                points: relative(history, ctx.now, ctx.range(), scale),
                style: styles[i % styles.len()],
                marker,
            }
        })
        .collect()
}

/// A flat, unnamed mark at `value` across the range (a target, an alert line).
fn flat(value: f64, range: f64, style: Style) -> Line {
    Line {
        name: String::new(),
        points: vec![(-range, value), (0.0, value)],
        style,
        marker: Marker::Braille,
    }
}

/// `-5m`, `-2m30s`, `now` under the time axis.
fn time_labels(range: f64) -> Vec<Span<'static>> {
    vec![
        Span::raw(format!("-{}", format::duration(Some(range)))),
        Span::raw(format!("-{}", format::duration(Some(range / 2.0)))),
        Span::raw("now"),
    ]
}

/// A chart of `lines` (and flat `marks`, e.g. the target), its y axis from 0 to just above the
/// highest point or mark, labelled by `unit`.
fn chart(
    frame: &mut Frame,
    area: Rect,
    ctx: &Ctx,
    title: &str,
    lines: Vec<Line>,
    marks: Vec<Line>,
    unit: fn(f64) -> String,
) {
    let t = ctx.theme;
    let range = ctx.range();
    let top = lines
        .iter()
        .chain(&marks)
        .flat_map(|l| l.points.iter().map(|(_, v)| *v))
        .fold(0.0_f64, f64::max);
    let top = if top > 0.0 { top * 1.1 } else { 1.0 };
    let block = ctx.plain_panel(title);
    if lines.iter().all(|l| l.points.is_empty()) {
        let empty =
            ratatui::widgets::Paragraph::new(Span::styled("no history yet", t.dim)).block(block);
        frame.render_widget(empty, area);
        return;
    }
    let datasets: Vec<Dataset> = marks
        .iter()
        .chain(&lines)
        .map(|l| {
            let dataset = Dataset::default();
            // Flat marks are named in the title, leaving the legend to the lines.
            let dataset = if l.name.is_empty() {
                dataset
            } else {
                dataset.name(l.name.clone())
            };
            dataset
                .marker(l.marker)
                .graph_type(GraphType::Line)
                .style(l.style)
                .data(&l.points)
        })
        .collect();
    let chart = Chart::new(datasets)
        .block(block)
        .x_axis(
            Axis::default()
                .bounds([-range, 0.0])
                .labels(time_labels(range))
                .style(t.dim),
        )
        .y_axis(
            Axis::default()
                .bounds([0.0, top])
                .labels(vec![Span::raw(unit(0.0)), Span::raw(unit(top))])
                .style(t.dim),
        )
        .legend_position(Some(LegendPosition::TopLeft))
        // The legend names the lines: shown unless it would cover most of the plot.
        .hidden_legend_constraints((Constraint::Percentage(45), Constraint::Percentage(100)));
    frame.render_widget(chart, area);
}

fn percent(v: f64) -> String {
    format!("{v:.0}%")
}

fn messages(v: f64) -> String {
    format::count(Some(v))
}

fn seconds(v: f64) -> String {
    format::duration(Some(v.round()))
}

/// Three charts side by side: CPU of request, Kafka lag, replica replay lag.
pub fn draw(frame: &mut Frame, area: Rect, ctx: &Ctx) {
    let t = ctx.theme;
    let range = ctx.range();
    let derived = &ctx.store.derived();
    let [cpu_area, lag_area, replica_area] = Layout::horizontal([
        Constraint::Ratio(1, 3),
        Constraint::Ratio(1, 3),
        Constraint::Ratio(1, 3),
    ])
    .areas(area);

    let cpu = lines(
        derived
            .services
            .iter()
            .map(|s| (s.workload.clone(), s.cpu_history.as_slice())),
        ctx,
        100.0,
    );
    // The HPA target (when the services share one) and the alert line, flat across the range.
    let alert = ctx.store.cpu_alert().unwrap_or(DEFAULT_CPU_ALERT);
    let mut marks = vec![flat(alert * 100.0, range, t.crit)];
    let mut title = format!(
        "CPU of request, alert line {}",
        format::percent(Some(alert))
    );
    let targets: Vec<f64> = derived.services.iter().filter_map(|s| s.target).collect();
    if let Some(first) = targets.first()
        && targets.iter().all(|v| (v - first).abs() < 1e-9)
    {
        marks.push(flat(*first * 100.0, range, t.dim));
        title.push_str(&format!(", target {}", format::percent(Some(*first))));
    }
    chart(frame, cpu_area, ctx, &title, cpu, marks, percent);

    let lag = lines(
        derived
            .groups
            .iter()
            .map(|g| (g.group.clone(), g.history.as_slice())),
        ctx,
        1.0,
    );
    chart(
        frame,
        lag_area,
        ctx,
        "Kafka lag (messages)",
        lag,
        Vec::new(),
        messages,
    );

    let replicas = lines(
        derived
            .servers
            .iter()
            .filter(|s| s.role == surge_client::store::Role::Replica)
            .map(|s| (s.target.clone(), s.history.as_slice())),
        ctx,
        1.0,
    );
    let warning = flat(ctx.store.lines().replica_lag_warning, range, t.warn);
    // The warning line only once a replica comes near it: otherwise it flattens the lines.
    let near = replicas
        .iter()
        .flat_map(|l| l.points.iter())
        .any(|(_, v)| *v >= ctx.store.lines().replica_lag_warning / 2.0);
    chart(
        frame,
        replica_area,
        ctx,
        &if near {
            format!(
                "Replica lag, warning line {}",
                seconds(ctx.store.lines().replica_lag_warning)
            )
        } else {
            "Replica lag".to_string()
        },
        replicas,
        if near { vec![warning] } else { Vec::new() },
        seconds,
    );
}
