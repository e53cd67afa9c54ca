//! The frame around the views: header (views, range, sources with their data age), the
//! stale-source banner, and the footer (command line, filter, messages, key hints).

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use surge_client::store::firing;

use super::ctx::Ctx;
use super::format;
use crate::app::{Input, View};

pub fn header(frame: &mut Frame, area: Rect, ctx: &Ctx) {
    let t = ctx.theme;
    let mut spans = vec![Span::styled(" surge ", t.title)];
    let current = match ctx.app.view {
        View::Overview | View::Service { .. } => 1,
        View::Kafka | View::Partitions { .. } | View::DeadLetters { .. } => 2,
        View::Postgres => 3,
        View::Alerts => 4,
        View::Contexts => 0,
    };
    // A narrow replay needs the room for where it is: only the current view's tab.
    let compact = ctx.app.replay.is_some() && area.width < 120;
    for (n, name) in [
        (1, "Overview"),
        (2, "Kafka"),
        (3, "PostgreSQL"),
        (4, "Alerts"),
    ] {
        if compact && n != current {
            continue;
        }
        let style = if n == current { t.selected } else { t.dim };
        spans.push(Span::styled(format!(" {n} {name} "), style));
    }
    if ctx.app.contexts.len() > 1 {
        let style = if ctx.app.view == View::Contexts {
            t.selected
        } else {
            t.accent
        };
        spans.push(Span::styled(
            format!(" ctx {} ", ctx.app.contexts[ctx.app.context]),
            style,
        ));
    }
    let firing = firing(&ctx.store.derived().alerts).count();
    if firing > 0 {
        spans.push(Span::styled(format!(" {firing} FIRING "), t.crit));
    }
    spans.push(Span::styled(
        format!("  range {} ", ctx.app.range.label()),
        t.accent,
    ));
    if ctx.app.recording.is_some() {
        spans.push(Span::styled(" ● REC ", t.crit));
    }
    if let Some(replay) = &ctx.app.replay {
        spans.push(Span::styled(format!(" {} ", replay.status()), t.warn));
    } else if ctx.app.readonly {
        spans.push(Span::styled(" read-only ", t.dim));
    }
    let mut right: Vec<Span> = Vec::new();
    for source in ctx.store.sources(ctx.now) {
        let age = source
            .age
            .map_or("never".to_string(), |a| format::duration(Some(a.round())));
        let (mark, style) = if source.stale {
            ("✖", t.crit)
        } else {
            ("●", t.ok)
        };
        right.push(Span::styled(format!("{mark} "), style));
        right.push(Span::styled(
            format!("{} {age}  ", source.name),
            if source.stale { t.crit } else { t.dim },
        ));
    }
    let left_width: usize = spans.iter().map(Span::width).sum();
    let right_width: usize = right.iter().map(Span::width).sum();
    let room = usize::from(area.width).saturating_sub(left_width);
    if right_width <= room {
        spans.push(Span::raw(" ".repeat(room - right_width)));
        spans.extend(right);
    } else {
        // Narrow: only the count of healthy sources.
        let sources = ctx.store.sources(ctx.now);
        let stale = sources.iter().filter(|s| s.stale).count();
        let text = format!("{}/{} sources ok ", sources.len() - stale, sources.len());
        if text.len() <= room {
            spans.push(Span::raw(" ".repeat(room - text.len())));
            spans.push(Span::styled(text, if stale > 0 { t.crit } else { t.dim }));
        }
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

/// One line per stale source (at most 3), or none.
pub fn banner_lines(ctx: &Ctx, width: u16) -> Vec<Line<'static>> {
    let stale: Vec<_> = ctx
        .store
        .sources(ctx.now)
        .into_iter()
        .filter(|s| s.stale)
        .collect();
    // A banner that does not fit takes a second line (the rest cut): nothing is lost at 80
    // columns that fits in two.
    let wrapped = |text: &str| -> Vec<Line<'static>> {
        format::wrap(text, usize::from(width), 2, "   ")
            .into_iter()
            .map(|l| Line::from(Span::styled(l, ctx.theme.banner)))
            .collect()
    };
    let mut lines: Vec<Line<'static>> = stale
        .iter()
        .take(3)
        .flat_map(|s| {
            let since = match s.age {
                Some(age) => format!(
                    "last data {} ago, shown marked STALE",
                    format::duration(Some(age.round()))
                ),
                None => "no data yet".into(),
            };
            let why = s.health.error.as_deref().unwrap_or("no answer");
            let text = format!(" ⚠ {} is failing: {why} — {since}", s.name);
            wrapped(&text)
        })
        .collect();
    for name in ctx.store.insecure_sources().iter().rev() {
        let text = format!(
            " ⚠ TLS verification is OFF for {name} (insecure_skip_verify): what it shows could come from anyone on the path"
        );
        for (i, line) in wrapped(&text).into_iter().enumerate() {
            lines.insert(i, line);
        }
    }
    for (source, target, last) in ctx.store.exporter_targets_down(ctx.now).into_iter().take(3) {
        let since = last.map_or(String::new(), |s| {
            format!(", last success {} ago", format::duration(Some(s.round())))
        });
        // Who reports it: surge-exporter's source, or the exporter providing that group.
        let reporter = ctx
            .store
            .providers()
            .iter()
            .find(|(group, _)| *group == source)
            .and_then(|(_, p)| p.as_deref())
            .filter(|p| *p != "surge")
            .unwrap_or("surge-exporter");
        let text = format!(
            " ⚠ {reporter}: {source} target {target} is down{since} — its series are missing, not zero"
        );
        lines.extend(wrapped(&text));
    }
    if stale.len() > 3 {
        lines.push(Line::from(Span::styled(
            format!(" ⚠ and {} more sources failing", stale.len() - 3),
            ctx.theme.banner,
        )));
    }
    lines
}

pub fn banner(frame: &mut Frame, area: Rect, lines: Vec<Line<'static>>) {
    if !lines.is_empty() {
        frame.render_widget(Paragraph::new(lines), area);
    }
}

pub fn footer(frame: &mut Frame, area: Rect, ctx: &Ctx) {
    let t = ctx.theme;
    let line = match &ctx.app.input {
        Input::Command(text) => Line::from(vec![
            Span::styled(":", t.accent),
            Span::raw(format!("{text}█")),
        ]),
        Input::Filter(text) => Line::from(vec![
            Span::styled("/", t.accent),
            Span::raw(format!("{text}█")),
        ]),
        Input::Normal => {
            let mut spans = Vec::new();
            if !ctx.app.filter.is_empty() {
                spans.push(Span::styled(
                    format!(" filter: {} (Esc clears) ", ctx.app.filter),
                    t.accent,
                ));
            }
            if let Some(message) = ctx.app.message.as_deref().or(ctx.store.notice()) {
                spans.push(Span::styled(format!(" {message}"), t.warn));
            } else {
                let hints = match &ctx.app.view {
                    View::Alerts if ctx.app.readonly => "Enter jump  Tab silences  t range",
                    View::Alerts => "Enter jump  m silence  Tab silences  e expire  t range",
                    View::Service {
                        namespace,
                        workload,
                    } if !ctx.app.readonly
                        && ctx.store.derived().services.iter().any(|s| {
                            &s.namespace == namespace && &s.workload == workload && s.saturated
                        }) =>
                    {
                        "saturated at max: :max N raises the ceiling  Esc back"
                    }
                    View::Overview | View::Kafka => "Enter drill in  t range",
                    View::DeadLetters { topic: None } => "Enter letters  Esc back",
                    View::DeadLetters { topic: Some(_) } if ctx.app.readonly => {
                        "Enter message  Esc back"
                    }
                    View::DeadLetters { topic: Some(_) } => {
                        "Enter message  space pick  :redrive [RATE]  Esc back"
                    }
                    _ => "Esc back  t range",
                };
                spans.push(Span::styled(
                    format!(" {hints}  / filter  : command  s snapshot  ? help  q quit"),
                    t.dim,
                ));
            }
            Line::from(spans)
        }
    };
    frame.render_widget(Paragraph::new(line), area);
}
