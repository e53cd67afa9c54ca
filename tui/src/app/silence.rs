//! The silence form (matchers from the alert, duration, comment, author; validated, then
//! confirmed with `y`), the expire confirmation and the help popup's keys.

use crossterm::event::{KeyCode, KeyEvent};
use surge_client::fetch::Command;
use surge_client::model::{Matcher, NewSilence};
use surge_client::store::Store;

use super::rows::{alerts, silences};
use super::state::{Action, AlertsFocus, App, Popup, SilenceField, SilenceForm};

/// Labels a silence should not pin by default: they change with the scrape target, not
/// with the problem.
const LOOSE_LABELS: [&str; 3] = ["instance", "job", "severity"];

/// Beyond the help's line count at any width (the renderer stops at the last page).
const HELP_SCROLL_MAX: u16 = 128;

impl App {
    pub(super) fn open_silence(&mut self, store: &Store) -> Vec<Action> {
        if self.readonly {
            self.message =
                Some("read-only: silences are disabled (started with --readonly)".into());
            return Vec::new();
        }
        if self.alerts_focus != AlertsFocus::Alerts {
            return Vec::new();
        }
        let Some(alert) = alerts(store, &self.filter)
            .get(self.cursor())
            .map(|a| (*a).clone())
        else {
            return Vec::new();
        };
        let matchers = alert
            .labels
            .iter()
            .map(|(k, v)| {
                let matcher = Matcher {
                    name: k.clone(),
                    value: v.clone(),
                    is_regex: false,
                    is_equal: true,
                };
                (matcher, !LOOSE_LABELS.contains(&k.as_str()))
            })
            .collect();
        self.popup = Some(Popup::Silence(Box::new(SilenceForm {
            alert: alert.name.clone(),
            matchers,
            cursor: 0,
            duration: "2h".into(),
            comment: String::new(),
            author: self.user.clone(),
            field: SilenceField::Comment,
            confirming: None,
            error: None,
        })));
        Vec::new()
    }

    pub(super) fn ask_expire(&mut self, store: &Store) -> Vec<Action> {
        if self.readonly {
            self.message =
                Some("read-only: silences are disabled (started with --readonly)".into());
            return Vec::new();
        }
        if self.alerts_focus != AlertsFocus::Silences {
            self.message = Some("Tab to the silences list, then e to expire one".into());
            return Vec::new();
        }
        if let Some(silence) = silences(store, &self.filter).get(self.cursor()) {
            self.popup = Some(Popup::ConfirmExpire((*silence).clone()));
        }
        Vec::new()
    }

    pub(super) fn popup_key(&mut self, popup: Popup, key: KeyEvent) -> Vec<Action> {
        match popup {
            Popup::Help => {
                match key.code {
                    KeyCode::Esc | KeyCode::Char('?' | 'q') | KeyCode::Enter => {
                        self.help_scroll = 0;
                        return Vec::new();
                    }
                    KeyCode::Char('j') | KeyCode::Down => {
                        self.help_scroll = (self.help_scroll + 1).min(HELP_SCROLL_MAX);
                    }
                    KeyCode::Char('k') | KeyCode::Up => {
                        self.help_scroll = self.help_scroll.saturating_sub(1);
                    }
                    KeyCode::PageDown | KeyCode::Char(' ') => {
                        self.help_scroll = (self.help_scroll + 10).min(HELP_SCROLL_MAX);
                    }
                    KeyCode::PageUp => self.help_scroll = self.help_scroll.saturating_sub(10),
                    _ => {}
                }
                self.popup = Some(Popup::Help);
                Vec::new()
            }
            Popup::Act(form) => self.act_key(form, key),
            Popup::ConfirmExpire(silence) => match key.code {
                KeyCode::Char('y' | 'Y') => vec![Action::Fetch(Command::ExpireSilence(silence.id))],
                KeyCode::Char('n' | 'N') | KeyCode::Esc => Vec::new(),
                _ => {
                    self.popup = Some(Popup::ConfirmExpire(silence));
                    Vec::new()
                }
            },
            Popup::Silence(mut form) => {
                if let Some(silence) = form.confirming.take() {
                    return match key.code {
                        KeyCode::Char('y' | 'Y') => {
                            vec![Action::Fetch(Command::CreateSilence(silence))]
                        }
                        KeyCode::Esc => Vec::new(),
                        _ => {
                            // Back to editing.
                            self.popup = Some(Popup::Silence(form));
                            Vec::new()
                        }
                    };
                }
                match key.code {
                    KeyCode::Esc => return Vec::new(),
                    KeyCode::Tab | KeyCode::Down
                        if form.field != SilenceField::Matchers || key.code == KeyCode::Tab =>
                    {
                        form.field = next_field(&form.field);
                    }
                    KeyCode::BackTab => form.field = prev_field(&form.field),
                    KeyCode::Enter => match validate(&form) {
                        Ok(silence) => {
                            form.error = None;
                            form.confirming = Some(silence);
                        }
                        Err(e) => form.error = Some(e),
                    },
                    code => edit_field(&mut form, code),
                }
                self.popup = Some(Popup::Silence(form));
                Vec::new()
            }
        }
    }
}

fn next_field(field: &SilenceField) -> SilenceField {
    match field {
        SilenceField::Matchers => SilenceField::Duration,
        SilenceField::Duration => SilenceField::Comment,
        SilenceField::Comment => SilenceField::Author,
        SilenceField::Author => SilenceField::Matchers,
    }
}

fn prev_field(field: &SilenceField) -> SilenceField {
    match field {
        SilenceField::Matchers => SilenceField::Author,
        SilenceField::Duration => SilenceField::Matchers,
        SilenceField::Comment => SilenceField::Duration,
        SilenceField::Author => SilenceField::Comment,
    }
}

fn edit_field(form: &mut SilenceForm, code: KeyCode) {
    let text = match form.field {
        SilenceField::Matchers => {
            match code {
                KeyCode::Up | KeyCode::Char('k') => form.cursor = form.cursor.saturating_sub(1),
                KeyCode::Down | KeyCode::Char('j') => {
                    form.cursor = (form.cursor + 1).min(form.matchers.len().saturating_sub(1))
                }
                KeyCode::Char(' ') => {
                    if let Some((_, on)) = form.matchers.get_mut(form.cursor) {
                        *on = !*on;
                    }
                }
                _ => {}
            }
            return;
        }
        SilenceField::Duration => &mut form.duration,
        SilenceField::Comment => &mut form.comment,
        SilenceField::Author => &mut form.author,
    };
    match code {
        KeyCode::Backspace => {
            text.pop();
        }
        KeyCode::Char(c) if text.len() < 500 => text.push(c),
        _ => {}
    }
}

/// The form as a silence, or what is wrong with it.
pub fn validate(form: &SilenceForm) -> Result<NewSilence, String> {
    let matchers: Vec<Matcher> = form
        .matchers
        .iter()
        .filter(|(_, on)| *on)
        .map(|(m, _)| m.clone())
        .collect();
    if matchers.is_empty() {
        return Err("switch on at least one matcher (space)".into());
    }
    let seconds = humantime::parse_duration(form.duration.trim())
        .map_err(|e| format!("duration {:?}: {e}", form.duration))?
        .as_secs();
    if seconds < 60 {
        return Err("duration: at least 1m".into());
    }
    if seconds > 30 * 86_400 {
        return Err("duration: at most 30d".into());
    }
    if form.comment.trim().is_empty() {
        return Err("comment: say why (it is what the next on-call reads)".into());
    }
    if form.author.trim().is_empty() {
        return Err("created by: who silences this".into());
    }
    Ok(NewSilence {
        matchers,
        seconds,
        comment: form.comment.trim().to_string(),
        created_by: form.author.trim().to_string(),
    })
}
