//! Colours by meaning, never by decoration. Every meaning is also carried by text (a state
//! word, a sign), so `mono` (and `NO_COLOR`) lose nothing but colour.

use ratatui::style::{Color, Modifier, Style};

use crate::config::ThemeName;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Theme {
    pub name: ThemeName,
    pub text: Style,
    pub dim: Style,
    pub title: Style,
    pub header: Style,
    pub ok: Style,
    pub warn: Style,
    pub crit: Style,
    pub selected: Style,
    pub accent: Style,
    pub banner: Style,
}

impl Theme {
    pub fn new(name: ThemeName) -> Self {
        let plain = Style::new();
        let bold = Style::new().add_modifier(Modifier::BOLD);
        match name {
            ThemeName::Default => Theme {
                name,
                text: plain,
                dim: Style::new().fg(Color::DarkGray),
                title: Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD),
                header: Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD),
                ok: Style::new().fg(Color::Green),
                warn: Style::new().fg(Color::Yellow),
                crit: Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
                selected: Style::new()
                    .bg(Color::Rgb(40, 50, 70))
                    .add_modifier(Modifier::BOLD),
                accent: Style::new().fg(Color::Cyan),
                banner: Style::new()
                    .fg(Color::Black)
                    .bg(Color::Yellow)
                    .add_modifier(Modifier::BOLD),
            },
            // Only the 8 base colours, bright and bold, on the terminal's own background.
            ThemeName::HighContrast => Theme {
                name,
                text: Style::new().fg(Color::White),
                dim: Style::new().fg(Color::White),
                title: Style::new()
                    .fg(Color::White)
                    .add_modifier(Modifier::BOLD | Modifier::UNDERLINED),
                header: Style::new()
                    .fg(Color::White)
                    .add_modifier(Modifier::BOLD | Modifier::UNDERLINED),
                ok: Style::new()
                    .fg(Color::LightGreen)
                    .add_modifier(Modifier::BOLD),
                warn: Style::new()
                    .fg(Color::LightYellow)
                    .add_modifier(Modifier::BOLD),
                crit: Style::new()
                    .fg(Color::White)
                    .bg(Color::Red)
                    .add_modifier(Modifier::BOLD),
                selected: Style::new().add_modifier(Modifier::REVERSED | Modifier::BOLD),
                accent: Style::new()
                    .fg(Color::LightCyan)
                    .add_modifier(Modifier::BOLD),
                banner: Style::new().add_modifier(Modifier::REVERSED | Modifier::BOLD),
            },
            ThemeName::Mono => Theme {
                name,
                text: plain,
                dim: plain,
                title: bold,
                header: bold.add_modifier(Modifier::UNDERLINED),
                ok: plain,
                warn: bold,
                crit: bold.add_modifier(Modifier::REVERSED),
                selected: Style::new().add_modifier(Modifier::REVERSED),
                accent: plain,
                banner: Style::new().add_modifier(Modifier::REVERSED),
            },
        }
    }

    /// The theme asked for, or `mono` when `NO_COLOR` is set (https://no-color.org).
    pub fn resolve(asked: Option<ThemeName>, no_color: bool) -> Self {
        match (asked, no_color) {
            (Some(name), _) => Theme::new(name),
            (None, true) => Theme::new(ThemeName::Mono),
            (None, false) => Theme::new(ThemeName::Default),
        }
    }
}
