//! The panel's view state: which view, the way back, cursors, filter, input line, popup, and
//! the navigation between views.

use surge_client::fetch::Command;
use surge_client::fetch::Want;
use surge_client::model::{Matcher, NewSilence, Range, Silence};
use surge_client::store::{ContextSummary, Store};

use super::rows::{
    alerts, dead_letter_topics, groups, letters, partitions, pods, servers, services, silences,
};
use surge_client::act::dead_letters::LetterId;
use surge_client::fetch::DeadLetterWant;

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
    /// Every context side by side (`:ctx`).
    Contexts,
    /// The dead-letter topics (`topic: None`, `:dlq`), or one topic's letters (`:dlq TOPIC`).
    DeadLetters {
        topic: Option<String>,
    },
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
            View::Contexts => "Contexts".into(),
            View::DeadLetters { topic: None } => "Dead letters".into(),
            View::DeadLetters { topic: Some(t) } => format!("Dead letters in {t}"),
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
    /// An action's plan, waiting for confirmation.
    Act(Box<super::act::ActForm>),
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
    /// Show the context with this index (its store and fetchers kept running meanwhile).
    SwitchContext(usize),
    /// Start recording what the panel receives, or stop the recording under way.
    ToggleRecording,
    /// Read the target and check permissions: what the action would change.
    Plan(surge_client::act::Action),
    /// Apply a confirmed plan.
    Apply(Box<surge_client::act::Plan>),
}

#[derive(Debug, Clone)]
pub struct App {
    pub view: View,
    pub back: Vec<View>,
    /// Cursor per view kind.
    pub cursor: [usize; 9],
    pub filter: String,
    pub input: Input,
    pub popup: Option<Popup>,
    pub readonly: bool,
    pub range: Range,
    pub alerts_focus: AlertsFocus,
    /// A one-line message from the app itself (filter cleared, read-only refusal...).
    pub message: Option<String>,
    pub user: String,
    /// Context names (one, `default`, without `[contexts]`) and the current one.
    pub contexts: Vec<String>,
    pub context: usize,
    /// Each context's summary, in `contexts` order, for the all-contexts view.
    pub context_rows: Vec<ContextSummary>,
    /// The kubeconfig's other contexts, which `surge --kube-context NAME` opens.
    pub kube_contexts: Vec<String>,
    /// First help line shown (the help scrolls on small screens).
    pub help_scroll: u16,
    /// Replaying a recording: where, how fast (the header says so).
    pub replay: Option<super::ReplayClock>,
    /// Recording to this file (`--record`; the header says so).
    pub recording: Option<String>,
    /// Letters picked (space) for a redrive, in the dead-letter topic shown.
    pub picked: std::collections::BTreeSet<LetterId>,
    /// The letter under the cursor shows its message.
    pub letter_open: bool,
}

/// The cursor slot of a view kind.
pub(super) fn slot(view: &View) -> usize {
    match view {
        View::Overview => 0,
        View::Service { .. } => 1,
        View::Kafka => 2,
        View::Partitions { .. } => 3,
        View::Postgres => 4,
        View::Alerts => 5,
        View::Contexts => 6,
        View::DeadLetters { topic: None } => 7,
        View::DeadLetters { topic: Some(_) } => 8,
    }
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

impl App {
    pub fn new(readonly: bool, user: &str) -> Self {
        App {
            view: View::Overview,
            back: Vec::new(),
            cursor: [0; 9],
            filter: String::new(),
            input: Input::Normal,
            popup: None,
            readonly,
            range: Range::default(),
            alerts_focus: AlertsFocus::Alerts,
            message: None,
            user: user.to_string(),
            contexts: vec!["default".to_string()],
            kube_contexts: Vec::new(),
            context: 0,
            context_rows: Vec::new(),
            help_scroll: 0,
            replay: None,
            recording: None,
            picked: std::collections::BTreeSet::new(),
            letter_open: false,
        }
    }

    /// What the fetchers should load for the views as they are now.
    pub fn want(&self) -> Want {
        Want {
            partitions: self.wanted_partitions(),
            range: self.range,
            dead_letters: self.wanted_dead_letters(),
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
            View::Contexts => self.contexts_table().len(),
            View::DeadLetters { topic: None } => dead_letter_topics(store, f).len(),
            View::DeadLetters { topic: Some(t) } => letters(store, t, f).len(),
        }
    }

    /// What the dead-letter view wants of the broker.
    pub fn wanted_dead_letters(&self) -> DeadLetterWant {
        match &self.view {
            View::DeadLetters { topic: None } => DeadLetterWant::Topics,
            View::DeadLetters { topic: Some(t) } => DeadLetterWant::Letters(t.clone()),
            _ => DeadLetterWant::Nothing,
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

    /// The all-contexts view's rows: each context `(i, None)` followed by its services
    /// `(i, Some(j))`, those matching the filter (by context, namespace or workload name).
    pub fn contexts_table(&self) -> Vec<(usize, Option<usize>)> {
        let f = self.filter.as_str();
        let mut rows = Vec::new();
        for (i, name) in self.contexts.iter().enumerate() {
            rows.push((i, None));
            let Some(summary) = self.context_rows.get(i) else {
                continue;
            };
            for (j, line) in summary.service_lines.iter().enumerate() {
                if f.is_empty()
                    || name.contains(f)
                    || line.workload.contains(f)
                    || line.namespace.contains(f)
                {
                    rows.push((i, Some(j)));
                }
            }
        }
        rows
    }

    /// Show context `index`: its Overview, the other contexts keep collecting.
    pub(super) fn switch_context(&mut self, index: usize) -> Vec<Action> {
        if index >= self.contexts.len() {
            return Vec::new();
        }
        self.context = index;
        self.message = Some(format!("context {}", self.contexts[index]));
        let mut actions = vec![Action::SwitchContext(index)];
        self.back.clear();
        self.view = View::Overview;
        actions.push(Action::WantChanged);
        actions
    }

    pub(super) fn go(&mut self, view: View) -> Vec<Action> {
        if view == self.view {
            return Vec::new();
        }
        let had_partitions = (self.wanted_partitions(), self.wanted_dead_letters());
        let previous = std::mem::replace(&mut self.view, view);
        self.back.push(previous);
        if self.back.len() > 32 {
            self.back.remove(0);
        }
        self.filter.clear();
        self.picked.clear();
        self.letter_open = false;
        self.cursor[slot(&self.view)] = 0;
        self.want_if_changed(had_partitions)
    }

    pub(super) fn back(&mut self) -> Vec<Action> {
        let had_partitions = (self.wanted_partitions(), self.wanted_dead_letters());
        if let Some(view) = self.back.pop() {
            self.view = view;
            self.filter.clear();
            self.picked.clear();
            self.letter_open = false;
        }
        self.want_if_changed(had_partitions)
    }

    fn want_if_changed(
        &self,
        before: (Option<(String, String, String)>, DeadLetterWant),
    ) -> Vec<Action> {
        if before == (self.wanted_partitions(), self.wanted_dead_letters()) {
            Vec::new()
        } else {
            vec![Action::WantChanged]
        }
    }
}
