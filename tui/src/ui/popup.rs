//! Popups: help, the silence form (with its confirmation), expiring a silence.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph, Wrap};

use super::ctx::{Ctx, centered};
use super::format;
use crate::app::{Popup, SilenceField, SilenceForm};

const HELP: [(&str, &str); 22] = [
    ("1 2 3 4", "Overview, Kafka, PostgreSQL, Alerts"),
    (
        ":overview :kafka :pg :alerts",
        "switch view (Tab completes)",
    ),
    (
        ":svc NAME",
        "service detail (pods, HPA conditions, time to max)",
    ),
    (":kafka GROUP", "Kafka view filtered to a group"),
    (
        ":range 5m|1h|6h",
        "history shown by sparklines and the timeline",
    ),
    ("t", "next history range"),
    ("j k ↓ ↑  g G  PgUp PgDn", "move"),
    (
        "Enter",
        "drill in: service → pods, group → partitions, alert → its subject",
    ),
    ("Esc", "clear the filter, else go back"),
    ("/", "filter the list (live; Enter keeps it)"),
    ("m", "Alerts: silence the selected alert"),
    ("Tab", "Alerts: switch between alerts and silences"),
    ("e", "Alerts: expire the selected silence"),
    ("s", "write a Markdown incident snapshot to a file"),
    (
        "y",
        "snapshot to a file and the clipboard (OSC 52, works over SSH)",
    ),
    ("?", "this help"),
    ("q  Ctrl-C  :q", "quit"),
    ("", ""),
    (
        "CPU/REQ",
        "HPA-exact: sum of usage / sum of requests, ready pods",
    ),
    ("SATURATED", "at max replicas and above the HPA target"),
    (
        "↑ growing ↓ draining ■ stalled",
        "the exporter's lag trend (robust to sawtooth)",
    ),
    ("≥ lag time", "the exporter only knows a lower bound"),
];

pub fn draw(frame: &mut Frame, area: Rect, ctx: &Ctx, popup: &Popup) {
    match popup {
        Popup::Help => help(frame, area, ctx),
        Popup::Silence(form) => silence(frame, area, ctx, form),
        Popup::ConfirmExpire(s) => {
            let rect = centered(area, 60, 7);
            let lines = vec![
                Line::from(Span::styled(
                    format!("Expire silence {}?", s.id),
                    ctx.theme.title,
                )),
                Line::from(Span::styled(format::fit(&s.comment, 56), ctx.theme.dim)),
                Line::from(""),
                Line::from(Span::styled("y expire   n / Esc keep", ctx.theme.accent)),
            ];
            frame.render_widget(Clear, rect);
            frame.render_widget(
                Paragraph::new(lines).block(Block::bordered().title(" Expire silence ")),
                rect,
            );
        }
    }
}

fn help(frame: &mut Frame, area: Rect, ctx: &Ctx) {
    let rect = centered(area, 96, HELP.len() as u16 + 2);
    let key_width = 32;
    let lines: Vec<Line> = HELP
        .iter()
        .map(|(k, v)| {
            Line::from(vec![
                Span::styled(format!(" {k:<key_width$}"), ctx.theme.accent),
                Span::styled(v.to_string(), ctx.theme.text),
            ])
        })
        .collect();
    frame.render_widget(Clear, rect);
    frame.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(" Help (Esc closes) ")),
        rect,
    );
}

fn silence(frame: &mut Frame, area: Rect, ctx: &Ctx, form: &SilenceForm) {
    let t = ctx.theme;
    let rect = centered(area, 80, form.matchers.len() as u16 + 12);
    let focus = |field: SilenceField| {
        if form.field == field {
            t.selected
        } else {
            t.text
        }
    };
    let mut lines = vec![Line::from(Span::styled(
        "Matchers (space toggles; only checked ones apply)",
        focus(SilenceField::Matchers),
    ))];
    for (i, (m, on)) in form.matchers.iter().enumerate() {
        let mark = if *on { "[x]" } else { "[ ]" };
        let cursor = if form.field == SilenceField::Matchers && i == form.cursor {
            "▶"
        } else {
            " "
        };
        lines.push(Line::from(Span::styled(
            format!(
                "{cursor} {mark} {}=\"{}\"",
                m.name,
                format::fit(&m.value, 56)
            ),
            if *on { t.text } else { t.dim },
        )));
    }
    let field = |name: &str, value: &str, which: SilenceField| {
        let active = form.field == which;
        Line::from(vec![
            Span::styled(format!("{name:<12}"), focus(which)),
            Span::styled(format!("{value}{}", if active { "█" } else { "" }), t.text),
        ])
    };
    lines.push(Line::from(""));
    lines.push(field("Duration", &form.duration, SilenceField::Duration));
    lines.push(field("Comment", &form.comment, SilenceField::Comment));
    lines.push(field("Created by", &form.author, SilenceField::Author));
    lines.push(Line::from(""));
    if let Some(error) = &form.error {
        lines.push(Line::from(Span::styled(error.clone(), t.crit)));
    }
    match &form.confirming {
        Some(s) => lines.push(Line::from(Span::styled(
            format!(
                "Create a silence of {} matching {} label(s)? y to confirm, any other key edits",
                humantime::format_duration(std::time::Duration::from_secs(s.seconds)),
                s.matchers.len()
            ),
            t.warn,
        ))),
        None => lines.push(Line::from(Span::styled(
            "Tab next field   Enter create   Esc cancel",
            t.dim,
        ))),
    }
    frame.render_widget(Clear, rect);
    let block = Block::bordered().title(format!(" Silence {} ", form.alert));
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(block),
        rect,
    );
}
