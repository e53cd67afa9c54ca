//! What every render function gets: the app's view state, the store, the theme and `now`,
//! plus the panel frames (a title with its data's age) and layout helpers they share.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Block;
use surge_client::store::Store;

use super::format;
use super::theme::Theme;
use crate::app::App;

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
