//! A whole frame: header, banners, the current view, footer and popup; and a frame as text.

use ratatui::Frame;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout};
use surge_client::store::Store;

use super::ctx::Ctx;
use super::theme::Theme;
use super::{alerts, chrome, contexts, dead_letters, kafka, overview, popup, postgres, service};
use crate::app::{App, View};

pub fn draw(frame: &mut Frame, app: &App, store: &Store, theme: &Theme, now: f64) {
    let ctx = Ctx {
        app,
        store,
        now,
        theme,
    };
    let area = frame.area();
    let banner = chrome::banner_lines(&ctx, area.width);
    let [header, banner_area, body, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(banner.len() as u16),
        Constraint::Min(0),
        Constraint::Length(1),
    ])
    .areas(area);
    chrome::header(frame, header, &ctx);
    chrome::banner(frame, banner_area, banner);
    match &app.view {
        View::Overview => overview::draw(frame, body, &ctx),
        View::Service {
            namespace,
            workload,
        } => service::draw(frame, body, &ctx, namespace, workload),
        View::Kafka => kafka::draw_groups(frame, body, &ctx),
        View::Partitions {
            cluster,
            group,
            topic,
        } => kafka::draw_partitions(frame, body, &ctx, cluster, group, topic),
        View::Postgres => postgres::draw(frame, body, &ctx),
        View::Alerts => alerts::draw(frame, body, &ctx),
        View::Contexts => contexts::draw(frame, body, &ctx),
        View::DeadLetters { topic: None } => dead_letters::draw_topics(frame, body, &ctx),
        View::DeadLetters { topic: Some(topic) } => {
            dead_letters::draw_letters(frame, body, &ctx, topic)
        }
    }
    chrome::footer(frame, footer, &ctx);
    if let Some(p) = &app.popup {
        popup::draw(frame, body, &ctx, p);
    }
}

/// A buffer's text, one line per row, trailing blanks cut.
pub fn buffer_text(buffer: &Buffer) -> String {
    let area = buffer.area;
    let mut out = String::with_capacity(usize::from(area.width + 1) * usize::from(area.height));
    for y in area.top()..area.bottom() {
        let mut line = String::new();
        let mut skip = 0;
        for x in area.left()..area.right() {
            if skip > 0 {
                skip -= 1;
                continue;
            }
            let symbol = buffer[(x, y)].symbol();
            line.push_str(symbol);
            // A wide character covers the next cell(s).
            skip = unicode_width(symbol).saturating_sub(1);
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn unicode_width(symbol: &str) -> usize {
    use ratatui::text::Span as S;
    S::raw(symbol).width()
}

/// One frame as text (headless `--once`, snapshot tests).
pub fn render_text(
    app: &App,
    store: &Store,
    theme: &Theme,
    now: f64,
    width: u16,
    height: u16,
) -> String {
    let backend = TestBackend::new(width, height);
    // TestBackend cannot fail (its error type is Infallible).
    let Ok(mut terminal) = ratatui::Terminal::new(backend);
    let Ok(_) = terminal.draw(|frame| draw(frame, app, store, theme, now));
    buffer_text(terminal.backend().buffer())
}
