//! The `:` command line: `:kafka`, `:pg`, `:alerts`, `:svc NAME`, `:ctx [NAME]`,
//! `:range 1h`, with Tab completion of views, services and contexts.

use crossterm::event::{KeyCode, KeyEvent};
use surge_client::model::Range;
use surge_client::store::Store;

use super::state::{Action, App, Input, Popup, View};

impl App {
    pub(super) fn command_key(
        &mut self,
        mut text: String,
        key: KeyEvent,
        store: &Store,
    ) -> Vec<Action> {
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
                let known: Vec<String> = self
                    .contexts
                    .iter()
                    .chain(&self.kube_contexts)
                    .cloned()
                    .collect();
                if let Some(done) = complete(&text, store, &known) {
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
                    .derived()
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
            ("range", Some(r)) => match Range::parse(r) {
                Ok(range) => {
                    self.range = range;
                    vec![Action::WantChanged]
                }
                Err(_) => {
                    self.message = Some(format!("range {r:?}: use 5m, 1h or 6h"));
                    Vec::new()
                }
            },
            ("ctx" | "context", None | Some("all")) => self.go(View::Contexts),
            ("ctx" | "context", Some(name)) => match self.contexts.iter().position(|c| c == name) {
                Some(i) => self.switch_context(i),
                None if self.kube_contexts.iter().any(|k| k == name) => {
                    self.message = Some(format!(
                        "{name} is a kubeconfig context: open it with surge --kube-context {name}"
                    ));
                    Vec::new()
                }
                None => {
                    self.message = Some(format!(
                        "no context {name:?} (known: {})",
                        self.contexts.join(", ")
                    ));
                    Vec::new()
                }
            },
            ("dlq" | "dead-letters", topic) => self.go(View::DeadLetters {
                topic: topic.map(str::to_owned),
            }),
            ("redrive", rate) => self.redrive_command(rate),
            ("max" | "min" | "bounds" | "scale" | "restart", _) => {
                let args: Vec<&str> = text.split_whitespace().skip(1).collect();
                self.act_command(verb, &args)
            }
            ("snapshot", _) => vec![Action::Snapshot { clipboard: false }],
            ("help" | "h", _) => {
                self.popup = Some(Popup::Help);
                Vec::new()
            }
            (other, _) => {
                self.message = Some(format!(
                    "unknown command :{other} (try :kafka :pg :alerts :svc NAME :ctx NAME :range 1h)"
                ));
                Vec::new()
            }
        }
    }
}

/// Tab completion of the command line: view names, then service names after `svc ` and
/// context names after `ctx `.
fn complete(text: &str, store: &Store, contexts: &[String]) -> Option<String> {
    if let Some(prefix) = text.strip_prefix("ctx ") {
        let names: Vec<&String> = contexts.iter().filter(|c| c.starts_with(prefix)).collect();
        return (names.len() == 1).then(|| format!("ctx {}", names[0]));
    }
    if let Some(prefix) = text.strip_prefix("svc ") {
        let names: Vec<&str> = store
            .derived()
            .services
            .iter()
            .map(|s| s.workload.as_str())
            .filter(|w| w.starts_with(prefix))
            .collect();
        return (names.len() == 1).then(|| format!("svc {}", names[0]));
    }
    let verbs = [
        "overview", "kafka", "pg", "alerts", "svc ", "ctx ", "range ", "snapshot", "help", "quit",
        "max ", "min ", "bounds ", "scale ", "restart", "dlq", "redrive",
    ];
    let found: Vec<&&str> = verbs.iter().filter(|v| v.starts_with(text)).collect();
    (found.len() == 1).then(|| found[0].to_string())
}
