//! Popups: help, the silence form (with its confirmation), expiring a silence.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph, Wrap};

use super::ctx::{Ctx, centered};
use super::format;
use crate::app::{Popup, SilenceField, SilenceForm};

const HELP: [(&str, &str); 29] = [
    ("1 2 3 4", "Overview, Kafka, PostgreSQL, Alerts"),
    (
        "0  :ctx",
        "every context side by side (with [contexts] in the config)",
    ),
    (":ctx NAME", "switch context (Tab completes)"),
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
    (
        ":max :min :bounds",
        "on a service: its HPA's bounds (N, N, MIN MAX); plan, confirm, audit",
    ),
    (
        ":scale N  :restart",
        "on a service: scale (no HPA), rollout restart",
    ),
    (
        ":dlq [TOPIC]",
        "dead letters: topics, then letters (Enter: a message)",
    ),
    (
        "space  :redrive [N]",
        "letters: pick; republish the picked, else the filtered, N a second",
    ),
    ("m", "Alerts: silence the selected alert"),
    ("Tab", "Alerts: switch between alerts and silences"),
    ("e", "Alerts: expire the selected silence"),
    ("s", "write a Markdown incident snapshot to a file"),
    (
        "R",
        "start or stop recording everything the panel receives (replay with surge replay FILE)",
    ),
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
        Popup::Act(form) => act(frame, area, ctx, form),
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

/// An action's plan: what changes, what to know, what is missing, how to undo it, and how to
/// confirm.
fn act(frame: &mut Frame, area: Rect, ctx: &Ctx, form: &crate::app::ActForm) {
    let plan = &form.plan;
    let width = area.width.clamp(40, 76);
    let text = usize::from(width - 4);
    let mut lines = vec![Line::from(Span::styled(
        format::fit(&plan.action.target(), text),
        ctx.theme.title,
    ))];
    for change in &plan.changes {
        let style = if change.changes() {
            ctx.theme.accent
        } else {
            ctx.theme.dim
        };
        lines.push(Line::from(Span::styled(
            format::fit(&format!("  {change}"), text),
            style,
        )));
    }
    for note in &plan.notes {
        for line in format::wrap(note, text, 3, "  ") {
            lines.push(Line::from(Span::styled(line, ctx.theme.warn)));
        }
    }
    for missing in &plan.missing {
        lines.push(Line::from(Span::styled(
            format::fit(&format!("✗ {missing}"), text),
            ctx.theme.crit,
        )));
    }
    for line in format::wrap(&format!("undo: {}", plan.undo), text, 3, "  ") {
        lines.push(Line::from(Span::styled(line, ctx.theme.dim)));
    }
    lines.push(Line::from(""));
    let prompt = if !plan.missing.is_empty() {
        "not allowed: any key closes".to_owned()
    } else if !plan.ready() {
        "nothing to change: any key closes".to_owned()
    } else if let Some(word) = plan.confirm_word() {
        format!(
            "type {word} and Enter to confirm: {}▏  Esc cancels",
            form.typed
        )
    } else {
        "y apply   n / Esc cancel".to_owned()
    };
    lines.push(Line::from(Span::styled(
        format::fit(&prompt, text),
        ctx.theme.accent,
    )));
    if let Some(error) = &form.error {
        lines.push(Line::from(Span::styled(
            format::fit(error, text),
            ctx.theme.crit,
        )));
    }
    let height = u16::try_from(lines.len() + 2).unwrap_or(u16::MAX);
    let rect = centered(area, width, height);
    let title = format!(" {} ", capitalised(plan.action.verb()));
    frame.render_widget(Clear, rect);
    frame.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(title)),
        rect,
    );
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// Help lines for a popup `width` columns wide: keys in a column, descriptions wrapped
/// under their own column (nothing cut at 80 columns).
/// Keys of `surge replay`, listed first in its help.
const REPLAY_HELP: [(&str, &str); 5] = [
    (
        "space",
        "replay: play or pause (at the end: again from the start)",
    ),
    ("+ -", "replay: speed 1x, 2x, 5x, 10x, 30x, 60x"),
    ("← →", "replay: 10 s back or forward"),
    (", .", "replay: one update back or forward (pauses)"),
    ("n", "replay: to the next change in the alerts"),
];

pub fn help_lines(width: u16) -> Vec<(String, String)> {
    help_lines_of(width, false, &[])
}

/// Where each signal comes from, and when another exporter provides it, the rules of what
/// is derived (marked `*`) and what cannot be (shown `—`).
pub fn signal_help(providers: &[(String, Option<String>)]) -> Vec<(String, String)> {
    use surge_client::fetch::signals::{Provider, RULES, missing};
    if providers.is_empty() {
        return Vec::new();
    }
    let from: Vec<String> = providers
        .iter()
        .map(|(group, p)| format!("{group} from {}", p.as_deref().unwrap_or("nothing yet")))
        .collect();
    let mut out = vec![("signals".to_string(), from.join(", "))];
    let foreign: Vec<Provider> = providers
        .iter()
        .filter_map(|(_, p)| p.as_deref().and_then(|p| Provider::parse(p).ok()))
        .filter(|p| *p != Provider::Surge)
        .collect();
    if foreign.is_empty() {
        return out;
    }
    for (_, rule) in RULES {
        out.push((
            format!("{} derived", super::cells::DERIVED),
            rule.to_string(),
        ));
    }
    for p in foreign {
        for what in missing(p) {
            out.push((
                format!("{} unknown", super::format::NONE),
                format!("from {p}: {what}"),
            ));
        }
    }
    out
}

/// The help, with the replay keys first when `replay`, and `extra` (the signals) last.
pub fn help_lines_of(
    width: u16,
    replay: bool,
    extra: &[(String, String)],
) -> Vec<(String, String)> {
    let inner = usize::from(width.saturating_sub(2));
    let key_width = (inner / 3).clamp(8, 32);
    // The key column is a space plus `key_width`; a space separates the description.
    let text_width = inner.saturating_sub(key_width + 2).max(10);
    let mut out = Vec::new();
    let replay_keys = if replay { &REPLAY_HELP[..] } else { &[] };
    let extra = extra.iter().map(|(k, t)| (k.as_str(), t.as_str()));
    for (key, text) in replay_keys
        .iter()
        .copied()
        .chain(HELP.iter().copied())
        .chain(extra)
    {
        let mut first = true;
        let mut line = String::new();
        let mut flush = |line: &mut String, first: &mut bool| {
            let k = if *first { key } else { "" };
            out.push((format!(" {k:<key_width$}"), std::mem::take(line)));
            *first = false;
        };
        for word in text.split_whitespace() {
            if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > text_width {
                flush(&mut line, &mut first);
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
        if first || !line.is_empty() {
            flush(&mut line, &mut first);
        }
    }
    out
}

fn help(frame: &mut Frame, area: Rect, ctx: &Ctx) {
    let width = area.width.min(96);
    let signals = signal_help(ctx.store.providers());
    let lines = help_lines_of(width, ctx.app.replay.is_some(), &signals);
    let height = (lines.len() as u16 + 2).min(area.height);
    let rect = centered(area, width, height);
    let visible = usize::from(height.saturating_sub(2));
    // Scrolled by j/k (the app keeps the offset); never past the last page.
    let top = usize::from(ctx.app.help_scroll).min(lines.len().saturating_sub(visible));
    let title = if lines.len() > visible {
        format!(
            " Help {}-{} of {} (j/k scroll, Esc closes) ",
            top + 1,
            (top + visible).min(lines.len()),
            lines.len()
        )
    } else {
        " Help (Esc closes) ".to_string()
    };
    let shown: Vec<Line> = lines
        .into_iter()
        .skip(top)
        .take(visible)
        .map(|(k, v)| {
            Line::from(vec![
                Span::styled(k, ctx.theme.accent),
                Span::styled(format!(" {v}"), ctx.theme.text),
            ])
        })
        .collect();
    frame.render_widget(Clear, rect);
    frame.render_widget(
        Paragraph::new(shown).block(Block::bordered().title(title)),
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

#[cfg(test)]
mod tests {

    #[test]
    fn the_help_says_where_each_signal_comes_from_and_what_is_derived() {
        use surge_client::fetch::signals::{Provider, RULES, missing};
        let only_surge = signal_help(&[("kafka".into(), Some("surge".into()))]);
        assert_eq!(only_surge.len(), 1, "{only_surge:?}");
        assert_eq!(only_surge[0].1, "kafka from surge");
        let foreign = signal_help(&[
            ("kubernetes".into(), Some("kube-state-metrics".into())),
            ("kafka".into(), Some("kafka_exporter".into())),
            ("postgres".into(), None),
        ]);
        assert_eq!(
            foreign[0].1,
            "kubernetes from kube-state-metrics, kafka from kafka_exporter, postgres from nothing yet"
        );
        for (_, rule) in RULES {
            assert!(foreign.iter().any(|(_, t)| t == rule), "{rule} missing");
        }
        let unknown = foreign
            .iter()
            .filter(|(k, _)| k.contains("unknown"))
            .count();
        assert_eq!(
            unknown,
            missing(Provider::KubeStateMetrics).len() + missing(Provider::KafkaExporter).len()
        );
        assert!(signal_help(&[]).is_empty());
    }

    use super::*;

    #[test]
    fn a_replay_lists_its_keys_first() {
        let lines = help_lines_of(80, true, &[]);
        assert!(lines[0].0.trim() == "space" && lines[0].1.contains("play or pause"));
        assert!(
            lines
                .iter()
                .any(|(_, t)| t.contains("next change in the alerts"))
        );
        assert!(
            !help_lines(80).iter().any(|(_, t)| t.starts_with("replay:")),
            "the live panel's help has no replay keys"
        );
    }

    #[test]
    fn help_wraps_and_loses_no_word_at_80_columns() {
        let lines = help_lines(80);
        let text: String = lines
            .iter()
            .map(|(_, v)| v.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        for (_, description) in HELP {
            for word in description.split_whitespace() {
                assert!(text.contains(word), "{word:?} missing");
            }
        }
        for (k, v) in &lines {
            assert!(k.chars().count() + 1 + v.chars().count() <= 78, "{k}{v}");
        }
    }
}
