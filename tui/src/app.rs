//! What the user sees and asks for: the view stack, selection, filter, command line, popups.
//! Keys change this state or become `Action`s (a fetcher command, a snapshot); nothing here
//! does I/O, so every key path is unit-tested.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use crate::fetch::Command;
use crate::fetch::alertmanager::NewSilence;
use crate::model::{Alert, Matcher, Silence};
use crate::store::{GroupRow, PartitionRow, PodRow, ServerRow, ServiceRow, Store, firing};
use crate::ui::theme::Theme;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum View {
    Overview,
    Service {
        namespace: String,
        workload: String,
    },
    Kafka,
    Partitions {
        cluster: String,
        group: String,
        topic: String,
    },
    Postgres,
    Alerts,
}

impl View {
    pub fn title(&self) -> String {
        match self {
            View::Overview => "Overview".into(),
            View::Service {
                namespace,
                workload,
            } => format!("Service {namespace}/{workload}"),
            View::Kafka => "Kafka".into(),
            View::Partitions { group, topic, .. } => format!("Partitions {group} on {topic}"),
            View::Postgres => "PostgreSQL".into(),
            View::Alerts => "Alerts".into(),
        }
    }
}

/// History ranges the views offer.
pub const RANGES: [(f64, &str); 3] = [(300.0, "5m"), (3600.0, "1h"), (21_600.0, "6h")];

/// Which list of the Alerts view has the cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertsFocus {
    Alerts,
    Silences,
}

/// The bottom line's input mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    Normal,
    Command(String),
    Filter(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SilenceField {
    Matchers,
    Duration,
    Comment,
    Author,
}

/// The silence form: matchers from the alert (each can be switched off), duration, comment.
#[derive(Debug, Clone, PartialEq)]
pub struct SilenceForm {
    pub alert: String,
    pub matchers: Vec<(Matcher, bool)>,
    pub cursor: usize,
    pub duration: String,
    pub comment: String,
    pub author: String,
    pub field: SilenceField,
    /// Validated and waiting for `y`.
    pub confirming: Option<NewSilence>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Popup {
    Help,
    Silence(Box<SilenceForm>),
    ConfirmExpire(Silence),
}

/// What a key asks the outside world to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Quit,
    Fetch(Command),
    /// Write the Markdown snapshot; also to the clipboard (OSC 52) when true.
    Snapshot {
        clipboard: bool,
    },
    /// The views need different data (partitions, range): tell the fetchers.
    WantChanged,
}

#[derive(Debug, Clone)]
pub struct App {
    pub view: View,
    pub back: Vec<View>,
    /// Cursor per view kind.
    pub cursor: [usize; 6],
    pub filter: String,
    pub input: Input,
    pub popup: Option<Popup>,
    pub readonly: bool,
    pub range: usize,
    pub alerts_focus: AlertsFocus,
    pub theme: Theme,
    /// A one-line message from the app itself (filter cleared, read-only refusal...).
    pub message: Option<String>,
    pub user: String,
}

fn slot(view: &View) -> usize {
    match view {
        View::Overview => 0,
        View::Service { .. } => 1,
        View::Kafka => 2,
        View::Partitions { .. } => 3,
        View::Postgres => 4,
        View::Alerts => 5,
    }
}

fn matches(filter: &str, fields: &[&str]) -> bool {
    if filter.is_empty() {
        return true;
    }
    let needle = filter.to_lowercase();
    fields.iter().any(|f| f.to_lowercase().contains(&needle))
}

/// The rows each view lists, filtered: the one definition of "row N" for drawing and keys.
pub fn services<'a>(store: &'a Store, filter: &str) -> Vec<&'a ServiceRow> {
    store
        .derived
        .services
        .iter()
        .filter(|s| matches(filter, &[&s.namespace, &s.workload]))
        .collect()
}

pub fn groups<'a>(store: &'a Store, filter: &str) -> Vec<&'a GroupRow> {
    store
        .derived
        .groups
        .iter()
        .filter(|g| matches(filter, &[&g.group, &g.topic, &g.cluster, &g.state]))
        .collect()
}

pub fn servers<'a>(store: &'a Store, filter: &str) -> Vec<&'a ServerRow> {
    store
        .derived
        .servers
        .iter()
        .filter(|s| matches(filter, &[&s.target, &s.role]))
        .collect()
}

pub fn alerts<'a>(store: &'a Store, filter: &str) -> Vec<&'a Alert> {
    store
        .derived
        .alerts
        .iter()
        .filter(|a| {
            let labels: Vec<&str> = a.labels.values().map(String::as_str).collect();
            matches(
                filter,
                &[&[a.name.as_str(), &a.severity, &a.summary][..], &labels].concat(),
            )
        })
        .collect()
}

pub fn silences<'a>(store: &'a Store, filter: &str) -> Vec<&'a Silence> {
    store
        .silences
        .iter()
        .filter(|s| s.state != "expired")
        .filter(|s| {
            let values: Vec<&str> = s.matchers.iter().map(|m| m.value.as_str()).collect();
            matches(
                filter,
                &[&[s.comment.as_str(), &s.created_by][..], &values].concat(),
            )
        })
        .collect()
}

pub fn pods(store: &Store, namespace: &str, workload: &str, filter: &str) -> Vec<PodRow> {
    store
        .pods(namespace, workload)
        .into_iter()
        .filter(|p| matches(filter, &[&p.pod]))
        .collect()
}

pub fn partitions(store: &Store, group: &str, topic: &str, filter: &str) -> Vec<PartitionRow> {
    store
        .partitions(group, topic)
        .into_iter()
        .filter(|p| matches(filter, &[&p.partition]))
        .collect()
}

/// Labels a silence should not pin by default: they change with the scrape target, not
/// with the problem.
const LOOSE_LABELS: [&str; 3] = ["instance", "job", "severity"];

impl App {
    pub fn new(theme: Theme, readonly: bool, user: &str) -> Self {
        App {
            view: View::Overview,
            back: Vec::new(),
            cursor: [0; 6],
            filter: String::new(),
            input: Input::Normal,
            popup: None,
            readonly,
            range: 0,
            alerts_focus: AlertsFocus::Alerts,
            theme,
            message: None,
            user: user.to_string(),
        }
    }

    pub fn range_seconds(&self) -> f64 {
        RANGES[self.range].0
    }

    pub fn cursor(&self) -> usize {
        self.cursor[slot(&self.view)]
    }

    /// Rows in the current view's focused list.
    pub fn rows(&self, store: &Store) -> usize {
        let f = self.filter.as_str();
        match &self.view {
            View::Overview => services(store, f).len(),
            View::Service {
                namespace,
                workload,
            } => pods(store, namespace, workload, f).len(),
            View::Kafka => groups(store, f).len(),
            View::Partitions { group, topic, .. } => partitions(store, group, topic, f).len(),
            View::Postgres => servers(store, f).len(),
            View::Alerts => match self.alerts_focus {
                AlertsFocus::Alerts => alerts(store, f).len(),
                AlertsFocus::Silences => silences(store, f).len(),
            },
        }
    }

    /// The partition drill-in the fetchers should load, if any.
    pub fn wanted_partitions(&self) -> Option<(String, String, String)> {
        match &self.view {
            View::Partitions {
                cluster,
                group,
                topic,
            } => Some((cluster.clone(), group.clone(), topic.clone())),
            _ => None,
        }
    }

    fn go(&mut self, view: View) -> Vec<Action> {
        if view == self.view {
            return Vec::new();
        }
        let had_partitions = self.wanted_partitions();
        let previous = std::mem::replace(&mut self.view, view);
        self.back.push(previous);
        if self.back.len() > 32 {
            self.back.remove(0);
        }
        self.filter.clear();
        self.cursor[slot(&self.view)] = 0;
        self.want_if_changed(had_partitions)
    }

    fn back(&mut self) -> Vec<Action> {
        let had_partitions = self.wanted_partitions();
        if let Some(view) = self.back.pop() {
            self.view = view;
            self.filter.clear();
        }
        self.want_if_changed(had_partitions)
    }

    fn want_if_changed(&self, before: Option<(String, String, String)>) -> Vec<Action> {
        if before == self.wanted_partitions() {
            Vec::new()
        } else {
            vec![Action::WantChanged]
        }
    }

    pub fn handle_key(&mut self, key: KeyEvent, store: &Store) -> Vec<Action> {
        if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
            return vec![Action::Quit];
        }
        self.message = None;
        if let Some(popup) = self.popup.take() {
            return self.popup_key(popup, key);
        }
        match std::mem::replace(&mut self.input, Input::Normal) {
            Input::Command(text) => return self.command_key(text, key, store),
            Input::Filter(text) => {
                self.filter_key(text, key);
                return Vec::new();
            }
            Input::Normal => {}
        }
        let rows = self.rows(store);
        let cursor = &mut self.cursor[slot(&self.view)];
        match key.code {
            KeyCode::Char('q') => return vec![Action::Quit],
            KeyCode::Char('j') | KeyCode::Down => {
                *cursor = (*cursor + 1).min(rows.saturating_sub(1))
            }
            KeyCode::Char('k') | KeyCode::Up => *cursor = cursor.saturating_sub(1),
            KeyCode::Char('g') | KeyCode::Home => *cursor = 0,
            KeyCode::Char('G') | KeyCode::End => *cursor = rows.saturating_sub(1),
            KeyCode::PageDown => *cursor = (*cursor + 10).min(rows.saturating_sub(1)),
            KeyCode::PageUp => *cursor = cursor.saturating_sub(10),
            KeyCode::Char(':') => self.input = Input::Command(String::new()),
            KeyCode::Char('/') => self.input = Input::Filter(self.filter.clone()),
            KeyCode::Char('?') => self.popup = Some(Popup::Help),
            KeyCode::Char('1') => return self.go(View::Overview),
            KeyCode::Char('2') => return self.go(View::Kafka),
            KeyCode::Char('3') => return self.go(View::Postgres),
            KeyCode::Char('4') => return self.go(View::Alerts),
            KeyCode::Char('t') => {
                self.range = (self.range + 1) % RANGES.len();
                return vec![Action::WantChanged];
            }
            KeyCode::Char('s') => return vec![Action::Snapshot { clipboard: false }],
            KeyCode::Char('y') => return vec![Action::Snapshot { clipboard: true }],
            KeyCode::Tab | KeyCode::BackTab if self.view == View::Alerts => {
                self.alerts_focus = match self.alerts_focus {
                    AlertsFocus::Alerts => AlertsFocus::Silences,
                    AlertsFocus::Silences => AlertsFocus::Alerts,
                };
                self.cursor[slot(&View::Alerts)] = 0;
            }
            KeyCode::Char('m') if self.view == View::Alerts => return self.open_silence(store),
            KeyCode::Char('e') | KeyCode::Delete if self.view == View::Alerts => {
                return self.ask_expire(store);
            }
            KeyCode::Enter => return self.drill(store),
            KeyCode::Esc => {
                if !self.filter.is_empty() {
                    self.filter.clear();
                } else {
                    return self.back();
                }
            }
            _ => {}
        }
        Vec::new()
    }

    fn filter_key(&mut self, mut text: String, key: KeyEvent) {
        match key.code {
            KeyCode::Enter => self.filter = text,
            KeyCode::Esc => {}
            KeyCode::Backspace => {
                text.pop();
                self.filter = text.clone();
                self.input = Input::Filter(text);
            }
            KeyCode::Char(c) => {
                text.push(c);
                // Live: the list narrows as you type, like k9s.
                self.filter = text.clone();
                self.input = Input::Filter(text);
            }
            _ => self.input = Input::Filter(text),
        }
        self.cursor[slot(&self.view)] = 0;
    }

    fn command_key(&mut self, mut text: String, key: KeyEvent, store: &Store) -> Vec<Action> {
        match key.code {
            KeyCode::Enter => self.run_command(text.trim(), store),
            KeyCode::Esc => Vec::new(),
            KeyCode::Backspace => {
                if text.pop().is_some() {
                    self.input = Input::Command(text);
                }
                Vec::new()
            }
            KeyCode::Tab => {
                // Complete a view or service name.
                if let Some(done) = complete(&text, store) {
                    text = done;
                }
                self.input = Input::Command(text);
                Vec::new()
            }
            KeyCode::Char(c) => {
                text.push(c);
                self.input = Input::Command(text);
                Vec::new()
            }
            _ => {
                self.input = Input::Command(text);
                Vec::new()
            }
        }
    }

    /// `:kafka`, `:pg`, `:alerts`, `:overview`, `:svc NAME`, `:range 1h`, `:q`.
    pub fn run_command(&mut self, text: &str, store: &Store) -> Vec<Action> {
        let mut words = text.split_whitespace();
        let verb = words.next().unwrap_or("");
        let arg = words.next();
        match (verb, arg) {
            ("", _) => Vec::new(),
            ("q" | "quit" | "q!", _) => vec![Action::Quit],
            ("overview" | "o" | "home", _) => self.go(View::Overview),
            ("kafka" | "k" | "lag", None) => self.go(View::Kafka),
            ("kafka" | "k" | "lag", Some(group)) => {
                let actions = self.go(View::Kafka);
                self.filter = group.to_string();
                actions
            }
            ("pg" | "postgres" | "db", _) => self.go(View::Postgres),
            ("alerts" | "a", _) => self.go(View::Alerts),
            ("svc" | "service" | "s", Some(name)) => {
                let found = store
                    .derived
                    .services
                    .iter()
                    .find(|s| {
                        s.workload == name || format!("{}/{}", s.namespace, s.workload) == name
                    })
                    .map(|s| (s.namespace.clone(), s.workload.clone()));
                match found {
                    Some((namespace, workload)) => self.go(View::Service {
                        namespace,
                        workload,
                    }),
                    None => {
                        self.message = Some(format!("no service {name:?}"));
                        Vec::new()
                    }
                }
            }
            ("svc" | "service" | "s", None) => self.go(View::Overview),
            ("range", Some(r)) => match RANGES.iter().position(|(_, label)| *label == r) {
                Some(i) => {
                    self.range = i;
                    vec![Action::WantChanged]
                }
                None => {
                    self.message = Some(format!("range {r:?}: use 5m, 1h or 6h"));
                    Vec::new()
                }
            },
            ("snapshot", _) => vec![Action::Snapshot { clipboard: false }],
            ("help" | "h", _) => {
                self.popup = Some(Popup::Help);
                Vec::new()
            }
            (other, _) => {
                self.message = Some(format!(
                    "unknown command :{other} (try :kafka :pg :alerts :svc NAME :range 1h)"
                ));
                Vec::new()
            }
        }
    }

    fn drill(&mut self, store: &Store) -> Vec<Action> {
        let f = self.filter.clone();
        let i = self.cursor();
        match &self.view {
            View::Overview => match services(store, &f).get(i) {
                Some(s) => {
                    let view = View::Service {
                        namespace: s.namespace.clone(),
                        workload: s.workload.clone(),
                    };
                    self.go(view)
                }
                None => Vec::new(),
            },
            View::Kafka => match groups(store, &f).get(i) {
                Some(g) => {
                    let view = View::Partitions {
                        cluster: g.cluster.clone(),
                        group: g.group.clone(),
                        topic: g.topic.clone(),
                    };
                    self.go(view)
                }
                None => Vec::new(),
            },
            View::Alerts if self.alerts_focus == AlertsFocus::Alerts => {
                match alerts(store, &f).get(i) {
                    Some(a) => {
                        let a = (*a).clone();
                        self.jump_to(&a, store)
                    }
                    None => Vec::new(),
                }
            }
            _ => Vec::new(),
        }
    }

    /// From an alert to what it is about: its service, its group, or the replicas.
    fn jump_to(&mut self, alert: &Alert, store: &Store) -> Vec<Action> {
        let label = |k: &str| alert.labels.get(k).cloned();
        if let Some(workload) = label("workload") {
            let namespace = label("namespace")
                .or_else(|| {
                    store
                        .derived
                        .services
                        .iter()
                        .find(|s| s.workload == workload)
                        .map(|s| s.namespace.clone())
                })
                .unwrap_or_default();
            return self.go(View::Service {
                namespace,
                workload,
            });
        }
        if let Some(group) = label("group") {
            if let (Some(cluster), Some(topic)) = (label("cluster"), label("topic")) {
                return self.go(View::Partitions {
                    cluster,
                    group,
                    topic,
                });
            }
            let actions = self.go(View::Kafka);
            self.filter = group;
            return actions;
        }
        if let Some(topic) = label("topic") {
            let actions = self.go(View::Kafka);
            self.filter = topic;
            return actions;
        }
        if label("replica").is_some() || alert.name.starts_with("Postgres") {
            return self.go(View::Postgres);
        }
        self.message = Some(format!(
            "{}: no service, group or replica label to jump to",
            alert.name
        ));
        Vec::new()
    }

    fn open_silence(&mut self, store: &Store) -> Vec<Action> {
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

    fn ask_expire(&mut self, store: &Store) -> Vec<Action> {
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

    fn popup_key(&mut self, popup: Popup, key: KeyEvent) -> Vec<Action> {
        match popup {
            Popup::Help => {
                if !matches!(
                    key.code,
                    KeyCode::Esc | KeyCode::Char('?' | 'q') | KeyCode::Enter
                ) {
                    self.popup = Some(Popup::Help);
                }
                Vec::new()
            }
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

/// Tab completion of the command line: view names, then service names after `svc `.
fn complete(text: &str, store: &Store) -> Option<String> {
    if let Some(prefix) = text.strip_prefix("svc ") {
        let names: Vec<&str> = store
            .derived
            .services
            .iter()
            .map(|s| s.workload.as_str())
            .filter(|w| w.starts_with(prefix))
            .collect();
        return (names.len() == 1).then(|| format!("svc {}", names[0]));
    }
    let verbs = [
        "overview", "kafka", "pg", "alerts", "svc ", "range ", "snapshot", "help", "quit",
    ];
    let found: Vec<&&str> = verbs.iter().filter(|v| v.starts_with(text)).collect();
    (found.len() == 1).then(|| found[0].to_string())
}

/// Firing, unmuted alerts about a service (for its detail view and the Overview).
pub fn alerts_for_service<'a>(store: &'a Store, workload: &str) -> Vec<&'a Alert> {
    firing(&store.derived.alerts)
        .filter(|a| a.labels.get("workload").map(String::as_str) == Some(workload))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AlertState, Labels, Metrics};
    use crate::store::Update;
    use crate::ui::theme::ThemeName;

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    fn typed(app: &mut App, store: &Store, text: &str) -> Vec<Action> {
        let mut actions = Vec::new();
        for c in text.chars() {
            actions.extend(app.handle_key(key(KeyCode::Char(c)), store));
        }
        actions
    }

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect()
    }

    fn store() -> Store {
        let mut m = Metrics::default();
        for w in ["auth", "payment", "shipping"] {
            m.insert(
                "surge_hpa_current_replicas",
                labels(&[("namespace", "shop"), ("workload", w)]),
                2.0,
            );
        }
        let gt = labels(&[
            ("cluster", "shop"),
            ("group", "payment"),
            ("topic", "order-placed"),
        ]);
        m.insert("surge_kafka_group_topic_lag", gt, 10.0);
        let mut store = Store::new(30.0);
        store.apply(
            Update::Metrics {
                source: "p".into(),
                metrics: m,
                at: 0.0,
            },
            0.0,
        );
        let alert = Alert {
            name: "KafkaConsumerLagGrowing".into(),
            state: AlertState::Firing,
            severity: "page".into(),
            labels: labels(&[
                ("alertname", "KafkaConsumerLagGrowing"),
                ("cluster", "shop"),
                ("group", "payment"),
                ("topic", "order-placed"),
                ("instance", "x:1"),
            ]),
            summary: String::new(),
            description: String::new(),
            runbook: String::new(),
            active_at: None,
            muted: false,
        };
        store.apply(
            Update::Alerts {
                source: "alertmanager".into(),
                alerts: vec![alert],
            },
            0.0,
        );
        store
    }

    fn app() -> App {
        App::new(Theme::new(ThemeName::Mono), false, "oncall")
    }

    #[test]
    fn commands_switch_views_and_esc_goes_back() {
        let store = store();
        let mut app = app();
        typed(&mut app, &store, ":kafka");
        assert_eq!(app.input, Input::Command("kafka".into()));
        app.handle_key(key(KeyCode::Enter), &store);
        assert_eq!(app.view, View::Kafka);
        typed(&mut app, &store, ":svc payment");
        app.handle_key(key(KeyCode::Enter), &store);
        assert_eq!(
            app.view,
            View::Service {
                namespace: "shop".into(),
                workload: "payment".into()
            }
        );
        typed(&mut app, &store, ":svc nope");
        app.handle_key(key(KeyCode::Enter), &store);
        assert!(app.message.as_deref().is_some_and(|m| m.contains("nope")));
        app.handle_key(key(KeyCode::Esc), &store);
        assert_eq!(app.view, View::Kafka);
        app.handle_key(key(KeyCode::Esc), &store);
        assert_eq!(app.view, View::Overview);
        typed(&mut app, &store, ":bogus");
        app.handle_key(key(KeyCode::Enter), &store);
        assert!(
            app.message
                .as_deref()
                .is_some_and(|m| m.starts_with("unknown command :bogus"))
        );
        assert_eq!(typed(&mut app, &store, "q"), vec![Action::Quit]);
    }

    #[test]
    fn filter_narrows_and_selection_is_clamped() {
        let store = store();
        let mut app = app();
        for _ in 0..10 {
            app.handle_key(key(KeyCode::Char('j')), &store);
        }
        assert_eq!(app.cursor(), 2, "3 services: the cursor stops at the last");
        typed(&mut app, &store, "/pay");
        assert_eq!(services(&store, &app.filter).len(), 1);
        app.handle_key(key(KeyCode::Enter), &store);
        assert_eq!(app.input, Input::Normal);
        app.handle_key(key(KeyCode::Enter), &store);
        assert_eq!(
            app.view,
            View::Service {
                namespace: "shop".into(),
                workload: "payment".into()
            }
        );
    }

    #[test]
    fn drill_into_partitions_changes_what_is_fetched() {
        let store = store();
        let mut app = app();
        typed(&mut app, &store, "2");
        assert_eq!(
            app.handle_key(key(KeyCode::Enter), &store),
            vec![Action::WantChanged]
        );
        assert_eq!(
            app.wanted_partitions(),
            Some(("shop".into(), "payment".into(), "order-placed".into()))
        );
        assert_eq!(
            app.handle_key(key(KeyCode::Esc), &store),
            vec![Action::WantChanged]
        );
        assert_eq!(app.wanted_partitions(), None);
        assert_eq!(typed(&mut app, &store, "t"), vec![Action::WantChanged]);
        assert_eq!(app.range_seconds(), 3600.0);
    }

    #[test]
    fn alert_jumps_to_its_group_and_silence_form_validates_then_confirms() {
        let store = store();
        let mut app = app();
        typed(&mut app, &store, "4");
        app.handle_key(key(KeyCode::Enter), &store);
        assert!(matches!(app.view, View::Partitions { ref group, .. } if group == "payment"));
        app.handle_key(key(KeyCode::Esc), &store);
        assert_eq!(app.view, View::Alerts);

        typed(&mut app, &store, "m");
        let Some(Popup::Silence(form)) = &app.popup else {
            panic!("no form: {:?}", app.popup)
        };
        // instance is off by default; alertname, cluster, group, topic on.
        let on: Vec<&str> = form
            .matchers
            .iter()
            .filter(|(_, on)| *on)
            .map(|(m, _)| m.name.as_str())
            .collect();
        assert_eq!(on, ["alertname", "cluster", "group", "topic"]);
        // No comment yet: Enter says why not.
        app.handle_key(key(KeyCode::Enter), &store);
        let Some(Popup::Silence(form)) = &app.popup else {
            panic!()
        };
        assert!(
            form.error
                .as_deref()
                .is_some_and(|e| e.starts_with("comment"))
        );
        typed(&mut app, &store, "scaling payment by hand");
        app.handle_key(key(KeyCode::Enter), &store);
        let actions = app.handle_key(key(KeyCode::Char('y')), &store);
        let [Action::Fetch(Command::CreateSilence(silence))] = actions.as_slice() else {
            panic!("{actions:?}")
        };
        assert_eq!(
            (silence.seconds, silence.created_by.as_str()),
            (7200, "oncall")
        );
        assert_eq!(silence.matchers.len(), 4);
        assert!(app.popup.is_none());
    }

    #[test]
    fn readonly_refuses_silences() {
        let store = store();
        let mut app = App::new(Theme::new(ThemeName::Mono), true, "oncall");
        typed(&mut app, &store, "4m");
        assert!(app.popup.is_none());
        assert!(
            app.message
                .as_deref()
                .is_some_and(|m| m.starts_with("read-only"))
        );
    }
}
