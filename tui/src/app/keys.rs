//! Keys: what each key does in each view and input mode, and drilling in from a row.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use surge_client::model::Alert;
use surge_client::store::Store;

use super::rows::{alerts, dead_letter_topics, groups, letters, services};
use super::state::{Action, AlertsFocus, App, Input, Popup, View, slot};

impl App {
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
            KeyCode::Char('0') if self.contexts.len() > 1 => return self.go(View::Contexts),
            KeyCode::Char('t') => {
                self.range = self.range.next();
                return vec![Action::WantChanged];
            }
            KeyCode::Char('s') => return vec![Action::Snapshot { clipboard: false }],
            KeyCode::Char('y') => return vec![Action::Snapshot { clipboard: true }],
            KeyCode::Char('R') => return vec![Action::ToggleRecording],
            KeyCode::Tab | KeyCode::BackTab if self.view == View::Alerts => {
                self.alerts_focus = match self.alerts_focus {
                    AlertsFocus::Alerts => AlertsFocus::Silences,
                    AlertsFocus::Silences => AlertsFocus::Alerts,
                };
                self.cursor[slot(&View::Alerts)] = 0;
            }
            KeyCode::Char('m') if self.view == View::Alerts => return self.open_silence(store),
            KeyCode::Char(' ') if matches!(self.view, View::DeadLetters { topic: Some(_) }) => {
                self.pick(store);
            }
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

    /// Pick the letter under the cursor for a redrive, or put it back; the cursor moves on.
    fn pick(&mut self, store: &Store) {
        let View::DeadLetters { topic: Some(topic) } = &self.view else {
            return;
        };
        let rows = letters(store, topic, &self.filter);
        let i = self.cursor();
        if let Some(letter) = rows.get(i) {
            if !self.picked.remove(&letter.id) {
                self.picked.insert(letter.id);
            }
            self.cursor[slot(&self.view)] = (i + 1).min(rows.len().saturating_sub(1));
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
            View::DeadLetters { topic: None } => match dead_letter_topics(store, &f).get(i) {
                Some(t) => {
                    let view = View::DeadLetters {
                        topic: Some(t.name.clone()),
                    };
                    self.go(view)
                }
                None => Vec::new(),
            },
            View::DeadLetters { topic: Some(_) } => {
                self.letter_open = !self.letter_open;
                Vec::new()
            }
            View::Contexts => match self.contexts_table().get(i).copied() {
                Some((c, None)) => self.switch_context(c),
                Some((c, Some(j))) => {
                    let line = self.context_rows[c].service_lines[j].clone();
                    let mut actions = self.switch_context(c);
                    actions.extend(self.go(View::Service {
                        namespace: line.namespace,
                        workload: line.workload,
                    }));
                    actions
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
                        .derived()
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
