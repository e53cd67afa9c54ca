//! Dead letters (`:dlq`): the dead-letter topics with what they hold and what was redriven;
//! in one topic, its newest letters — where each came from, how often it was tried, why it
//! failed — the ones picked for a redrive, and the message of the one opened.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph};
use surge_client::act::dead_letters::{DeadLetterTopic, Letter, Look};

use super::ctx::Ctx;
use super::format;
use super::table::{self, col, num};
use crate::app;

/// An answer older than this is shown stale (the view asks every refresh, at least 5 s apart).
const STALE_AFTER: f64 = 30.0;

/// The title's age, stale once old or when the last look failed, and the broker's error.
fn age(ctx: &Ctx) -> (Option<(f64, bool)>, Option<String>) {
    match ctx.store.dead_letters() {
        None => (None, None),
        Some((at, look)) => {
            let age = (ctx.now - at).max(0.0);
            let error = look
                .as_ref()
                .err()
                .map(String::as_str)
                .or(ctx.store.dead_letters_failing())
                .map(|e| format!("kafka: {e}"));
            (Some((age, age > STALE_AFTER || error.is_some())), error)
        }
    }
}

pub fn draw_topics(frame: &mut Frame, area: Rect, ctx: &Ctx) {
    let t = *ctx.theme;
    let topics = app::dead_letter_topics(ctx.store, &ctx.app.filter);
    let (age, error) = age(ctx);
    let columns = vec![
        col("TOPIC", 30, 0, move |d: &&DeadLetterTopic| {
            Span::styled(d.name.clone(), t.text)
        })
        .grows(),
        num("LETTERS", 8, 0, move |d: &&DeadLetterTopic| {
            let style = if d.total > 0 { t.warn } else { t.dim };
            Span::styled(d.total.to_string(), style)
        }),
        num("REDRIVEN", 9, 0, move |d: &&DeadLetterTopic| {
            Span::styled(d.redriven.to_string(), t.text)
        }),
    ];
    let block = ctx.panel(&format!("Dead-letter topics ({})", topics.len()), age);
    let empty = error.unwrap_or_else(|| match ctx.store.dead_letters() {
        None => "no answer from a broker yet (one is set with --kafka or [sources.kafka])".into(),
        Some(_) => "no dead-letter topics on the broker".into(),
    });
    table::draw(
        frame,
        area,
        ctx,
        block,
        columns,
        table::Body {
            rows: &topics,
            cursor: Some(ctx.app.cursor()),
            empty: &empty,
        },
    );
}

pub fn draw_letters(frame: &mut Frame, area: Rect, ctx: &Ctx, topic: &str) {
    let t = *ctx.theme;
    let letters = app::letters(ctx.store, topic, &ctx.app.filter);
    let (total, redriven) = match ctx.store.dead_letters() {
        Some((
            _,
            Ok(Look::Letters {
                topic: shown,
                total,
                redriven,
                ..
            }),
        )) if shown == topic => (Some(*total), Some(redriven)),
        _ => (None, None),
    };
    let (age, error) = age(ctx);
    let open = ctx.app.letter_open && !letters.is_empty();
    let [list, message] = Layout::vertical([
        Constraint::Min(5),
        Constraint::Length(if open { 9 } else { 0 }),
    ])
    .areas(area);
    let picked = &ctx.app.picked;
    let done = redriven.cloned().unwrap_or_default();
    let now = ctx.now;
    let columns = vec![
        col("", 1, 0, move |l: &&Letter| {
            if picked.contains(&l.id) {
                Span::styled("●", t.accent)
            } else if done.contains(&l.id) {
                Span::styled("✓", t.ok)
            } else {
                Span::raw(" ")
            }
        }),
        col("LETTER", 9, 0, move |l: &&Letter| {
            Span::styled(l.id.to_string(), t.text)
        }),
        num("AGE", 7, 1, move |l: &&Letter| {
            let age = l
                .timestamp_ms
                .map(|ms| (now - ms as f64 / 1000.0).max(0.0).round());
            Span::styled(format::duration(age), t.dim)
        }),
        col("FROM", 24, 1, move |l: &&Letter| {
            let from = match (&l.source_topic, l.source_partition, l.source_offset) {
                (Some(topic), Some(p), Some(o)) => format!("{topic}/{p}/{o}"),
                (Some(topic), _, _) => topic.clone(),
                (None, ..) => "(no source)".into(),
            };
            Span::styled(from, t.text)
        }),
        num("TRIES", 5, 2, move |l: &&Letter| {
            Span::styled(
                l.attempts.map_or(format::NONE.into(), |a| a.to_string()),
                t.text,
            )
        }),
        col("ERROR", 30, 0, move |l: &&Letter| {
            Span::styled(l.error.clone().unwrap_or_default(), t.warn)
        })
        .grows(),
    ];
    let title = match (total, redriven) {
        (Some(total), Some(redriven)) => format!(
            "Dead letters in {topic}: {total} held, {} redriven, newest {} shown, {} picked",
            redriven.len(),
            letters.len(),
            picked.len()
        ),
        _ => format!("Dead letters in {topic}"),
    };
    let block = ctx.panel(&title, age);
    let empty = error.unwrap_or_else(|| {
        if total.is_some() {
            "no letters (or none whose error matches the filter)".into()
        } else {
            "asking the broker…".into()
        }
    });
    table::draw(
        frame,
        list,
        ctx,
        block,
        columns,
        table::Body {
            rows: &letters,
            cursor: Some(ctx.app.cursor()),
            empty: &empty,
        },
    );
    if let Some(letter) = open.then(|| letters.get(ctx.app.cursor())).flatten() {
        let width = usize::from(message.width.saturating_sub(2));
        let key = letter
            .key
            .as_deref()
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .unwrap_or_else(|| "(none)".into());
        let mut lines = vec![Line::from(Span::styled(
            format::fit(&format!("key {key}"), width),
            t.dim,
        ))];
        if let Some(of) = &letter.redrive_of {
            lines.push(Line::from(Span::styled(
                format::fit(&format!("a redrive of {of} that failed again"), width),
                t.warn,
            )));
        }
        for line in format::wrap(&letter.original_text(), width, 6, "") {
            lines.push(Line::from(Span::styled(line, t.text)));
        }
        let block = Block::bordered().title(Span::styled(
            format!(" Message of {} (Enter closes) ", letter.id),
            t.title,
        ));
        frame.render_widget(Paragraph::new(lines).block(block), message);
    }
}
