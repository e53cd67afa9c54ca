//! What the user sees and asks for: the view stack, selection, filter, command line, popups.
//! Keys change this state or become `Action`s (a fetcher command, a snapshot); nothing here
//! does I/O, so every key path is unit-tested.
//!
//! `mod.rs` navigates (views, cursor, drill-in, back); `rows` is the one definition of the
//! rows each view lists; `command` is the `:` line; `silence` the silence form and popups.

mod command;
mod rows;
mod silence;

pub use rows::{alerts, alerts_for_service, groups, partitions, pods, servers, services, silences};
pub use silence::{SilenceField, SilenceForm, validate};

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use surge_client::fetch::Command;
use surge_client::fetch::plan::Want;
use surge_client::model::{Alert, Range, Silence};
use surge_client::store::Store;

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
    pub range: Range,
    pub alerts_focus: AlertsFocus,
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

impl App {
    pub fn new(readonly: bool, user: &str) -> Self {
        App {
            view: View::Overview,
            back: Vec::new(),
            cursor: [0; 6],
            filter: String::new(),
            input: Input::Normal,
            popup: None,
            readonly,
            range: Range::default(),
            alerts_focus: AlertsFocus::Alerts,
            message: None,
            user: user.to_string(),
        }
    }

    /// What the fetchers should load for the views as they are now.
    pub fn want(&self) -> Want {
        Want {
            partitions: self.wanted_partitions(),
            range: self.range,
        }
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
                self.range = self.range.next();
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use surge_client::fetch::Update;
    use surge_client::model::{AlertState, Labels, Metrics};

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
        App::new(false, "oncall")
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
        assert_eq!(app.range, Range::OneHour);
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
        let mut app = App::new(true, "oncall");
        typed(&mut app, &store, "4m");
        assert!(app.popup.is_none());
        assert!(
            app.message
                .as_deref()
                .is_some_and(|m| m.starts_with("read-only"))
        );
    }
}
