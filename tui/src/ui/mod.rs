//! Render functions: `(app, store, theme, now) → frame`. No I/O, no locks, no clocks: `now`
//! comes in, so a frame is a pure function of its inputs (and snapshot-testable). One file
//! per view; `widgets` and `cells` hold what several views draw the same way.

pub mod alerts;
pub mod cells;
pub mod chrome;
pub mod format;
pub mod kafka;
pub mod overview;
pub mod popup;
pub mod postgres;
pub mod service;
pub mod spark;
pub mod table;
pub mod theme;
pub mod widgets;

use ratatui::Frame;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::Block;

use surge_client::store::Store;

use self::theme::Theme;
use crate::app::{App, View};

/// Everything a render function needs.
pub struct Ctx<'a> {
    pub app: &'a App,
    pub store: &'a Store,
    pub now: f64,
    pub theme: &'a Theme,
}

impl Ctx<'_> {
    /// Seconds of history shown.
    pub fn range(&self) -> f64 {
        self.app.range.seconds()
    }

    /// A bordered panel with a title only.
    pub fn plain_panel(&self, title: &str) -> Block<'static> {
        Block::bordered()
            .title(Span::styled(format!(" {title} "), self.theme.title))
            .border_style(self.theme.dim)
    }

    /// A bordered panel titled with its data's age, red when stale.
    pub fn panel(&self, title: &str, age: Option<(f64, bool)>) -> Block<'static> {
        let mut spans = vec![Span::styled(format!(" {title} "), self.theme.title)];
        match age {
            Some((age, stale)) => {
                let text = if stale {
                    format!("STALE {} ago ", format::duration(Some(age.round())))
                } else {
                    format!("{} ago ", format::duration(Some(age.round())))
                };
                spans.push(Span::styled(
                    text,
                    if stale {
                        self.theme.crit
                    } else {
                        self.theme.dim
                    },
                ));
            }
            None => spans.push(Span::styled("no data ", self.theme.dim)),
        }
        Block::bordered()
            .title(Line::from(spans))
            .border_style(self.theme.dim)
    }
}

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

/// A centred rectangle of at most `width` × `height` inside `area`.
pub fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let w = width.min(area.width);
    let h = height.min(area.height);
    Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    }
}
