//! Acting on what the panel shows: raise or lower an HPA's bounds, scale a workload no HPA
//! scales, restart a workload, redrive dead letters. Every action goes the same way:
//!
//! 1. **plan** — read the target as it is now, check the caller may make the change (a
//!    `SelfSubjectAccessReview` per verb and resource, before anything is written), and say
//!    exactly what will change ([`Plan`]);
//! 2. the user confirms (the panel asks; a destructive plan wants its target's name typed);
//! 3. **apply** — make the change and read back what it became ([`Applied`]);
//! 4. **audit** — one line per action, with who, when, what, before and after ([`audit`]).
//!
//! The pure parts (what a change is, whether it is destructive, how to undo it) live here;
//! [`workload`] talks to the Kubernetes API, [`dead_letters`] to the Kafka broker.

pub mod announce;
pub mod audit;
pub mod dead_letters;
pub mod workload;

use serde::{Deserialize, Serialize};

/// A workload kind the actions reach (both have a `scale` subresource and a pod template).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkloadKind {
    Deployment,
    StatefulSet,
}

impl WorkloadKind {
    /// The resource name kubectl and RBAC use.
    pub fn resource(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "deployments",
            WorkloadKind::StatefulSet => "statefulsets",
        }
    }

    /// `deployment`, `statefulset`: as `kubectl rollout restart deployment/x` names it.
    pub fn singular(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "deployment",
            WorkloadKind::StatefulSet => "statefulset",
        }
    }
}

/// What the user asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Action {
    /// Set an HPA's minReplicas and/or maxReplicas (`None` keeps the current value).
    HpaBounds {
        namespace: String,
        name: String,
        min: Option<i32>,
        max: Option<i32>,
    },
    /// Set the replicas of a workload no HPA scales (the `scale` subresource).
    Scale {
        namespace: String,
        kind: WorkloadKind,
        name: String,
        replicas: i32,
    },
    /// A rollout restart: the pod template's `kubectl.kubernetes.io/restartedAt` annotation
    /// set to now, so every pod is replaced by the workload's own rollout.
    Restart {
        namespace: String,
        kind: WorkloadKind,
        name: String,
    },
    /// Republish dead letters to their source topics.
    Redrive {
        /// The dead-letter topic.
        topic: String,
        /// Which letters: a filter, or the ones picked.
        selection: dead_letters::Selection,
        /// Letters per second.
        rate: u32,
    },
}

impl Action {
    /// The target in kubectl's `kind/name` form, namespaced: `horizontalpodautoscaler
    /// shop/payment`, `topic order-placed.dlq`.
    pub fn target(&self) -> String {
        match self {
            Action::HpaBounds {
                namespace, name, ..
            } => format!("horizontalpodautoscaler {namespace}/{name}"),
            Action::Scale {
                namespace,
                kind,
                name,
                ..
            }
            | Action::Restart {
                namespace,
                kind,
                name,
            } => format!("{} {namespace}/{name}", kind.singular()),
            Action::Redrive { topic, .. } => format!("topic {topic}"),
        }
    }

    /// The name a destructive action wants typed to confirm it: the object's own name.
    pub fn name(&self) -> &str {
        match self {
            Action::HpaBounds { name, .. }
            | Action::Scale { name, .. }
            | Action::Restart { name, .. } => name,
            Action::Redrive { topic, .. } => topic,
        }
    }

    /// A short verb phrase for lists and the audit: `set bounds`, `scale`, `restart`.
    pub fn verb(&self) -> &'static str {
        match self {
            Action::HpaBounds { .. } => "set bounds",
            Action::Scale { .. } => "scale",
            Action::Restart { .. } => "restart",
            Action::Redrive { .. } => "redrive",
        }
    }
}

/// One field an action changes, as text: `maxReplicas: 10 → 16`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub field: String,
    pub before: String,
    pub after: String,
}

impl Change {
    pub fn new(field: &str, before: impl ToString, after: impl ToString) -> Change {
        Change {
            field: field.to_owned(),
            before: before.to_string(),
            after: after.to_string(),
        }
    }

    /// Whether the field actually changes.
    pub fn changes(&self) -> bool {
        self.before != self.after
    }
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {} → {}", self.field, self.before, self.after)
    }
}

/// A permission the caller lacks: `patch horizontalpodautoscalers.autoscaling in shop`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Missing {
    pub verb: String,
    pub resource: String,
    pub namespace: String,
    /// The API server's reason, when it gave one.
    pub reason: String,
}

impl std::fmt::Display for Missing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "may not {} {} in namespace {}",
            self.verb, self.resource, self.namespace
        )?;
        if !self.reason.is_empty() {
            write!(f, " ({})", self.reason)?;
        }
        Ok(())
    }
}

/// What an action will do, read from the target as it is now: shown before the user confirms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub action: Action,
    pub changes: Vec<Change>,
    /// Takes away capacity or replaces pods: confirmed by typing the target's name.
    pub destructive: bool,
    /// Permissions the caller lacks; a plan with any is not applied.
    pub missing: Vec<Missing>,
    /// What the user should know before confirming (e.g. the partition cap).
    pub notes: Vec<String>,
    /// How to undo it, in words.
    pub undo: String,
}

impl Plan {
    /// Whether applying it would change anything and is allowed.
    pub fn ready(&self) -> bool {
        self.missing.is_empty() && self.changes.iter().any(Change::changes)
    }

    /// What the user must type to confirm, for a destructive plan.
    pub fn confirm_word(&self) -> Option<&str> {
        self.destructive.then(|| self.action.name())
    }
}

/// What an applied action became, read back from the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    pub action: Action,
    pub changes: Vec<Change>,
}
