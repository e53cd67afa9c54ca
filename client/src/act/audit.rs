//! The audit trail: one JSON line per action tried, in a local file the user owns — who (the
//! API server's name for the credentials and the OS user), when, what, before and after, and
//! how it ended. Appended, never rewritten, so a crash loses at most the line being written.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Action, Change, Missing};

/// Who acted.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Who {
    /// The cluster's name for the credentials (or the kubeconfig user), when acting on one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The OS user running the panel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_user: Option<String>,
}

impl Who {
    /// The OS user, from `USER` or `LOGNAME`.
    pub fn os_user() -> Option<String> {
        ["USER", "LOGNAME"]
            .iter()
            .find_map(|v| std::env::var(v).ok().filter(|u| !u.is_empty()))
    }

    /// `alice (os: al)`, `al`, or `unknown`.
    pub fn label(&self) -> String {
        match (&self.user, &self.os_user) {
            (Some(user), Some(os)) if user != os => format!("{user} (os: {os})"),
            (Some(user), _) => user.clone(),
            (None, Some(os)) => os.clone(),
            (None, None) => "unknown".into(),
        }
    }
}

/// How an action ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum Outcome {
    /// Done; `changes` hold the values read back.
    Done,
    /// Not allowed: the permissions missing (nothing was written).
    Refused { missing: Vec<Missing> },
    /// Tried and failed (or stopped part-way, for a redrive): the error.
    Failed { error: String },
}

/// One line of the trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// When it was applied, RFC 3339 in UTC.
    pub at: String,
    pub who: Who,
    /// Where: the panel's context name (and the kube context, when they differ).
    pub context: String,
    pub target: String,
    #[serde(flatten)]
    pub action: Action,
    pub changes: Vec<Change>,
    #[serde(flatten)]
    pub outcome: Outcome,
}

impl Entry {
    /// One line for lists: `21:40:07 alice set bounds horizontalpodautoscaler shop/payment:
    /// maxReplicas: 10 → 16`.
    pub fn summary(&self) -> String {
        let changed: Vec<String> = self
            .changes
            .iter()
            .filter(|c| c.changes())
            .map(ToString::to_string)
            .collect();
        let ended = match &self.outcome {
            Outcome::Done => String::new(),
            Outcome::Refused { missing } => format!(
                " — refused: {}",
                missing
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            Outcome::Failed { error } => format!(" — failed: {error}"),
        };
        format!(
            "{} {} {}: {}{ended}",
            self.who.label(),
            self.action.verb(),
            self.target,
            if changed.is_empty() {
                "no change".to_owned()
            } else {
                changed.join(", ")
            }
        )
    }
}

/// The trail's file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditLog {
    path: PathBuf,
}

impl AuditLog {
    pub fn at(path: impl Into<PathBuf>) -> AuditLog {
        AuditLog { path: path.into() }
    }

    /// `$XDG_STATE_HOME/surge/audit.jsonl`, else `~/.local/state/surge/audit.jsonl`.
    pub fn default_path() -> Option<PathBuf> {
        let state = std::env::var_os("XDG_STATE_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".local/state"))
            })?;
        Some(state.join("surge/audit.jsonl"))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Append `entry` as one line (the file made, readable by its owner only, when new).
    pub fn append(&self, entry: &Entry) -> Result<(), String> {
        let fail = |e: std::io::Error| format!("audit log {}: {e}", self.path.display());
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(fail)?;
        }
        let mut options = std::fs::OpenOptions::new();
        options.create(true).append(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&self.path).map_err(fail)?;
        let mut line = serde_json::to_string(entry).map_err(|e| e.to_string())?;
        line.push('\n');
        // One write call per line: appends from two panels do not interleave mid-line.
        file.write_all(line.as_bytes()).map_err(fail)
    }

    /// Every entry, oldest first; a line that does not parse is an error naming it.
    pub fn read(&self) -> Result<Vec<Entry>, String> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(format!("audit log {}: {e}", self.path.display())),
        };
        text.lines()
            .enumerate()
            .filter(|(_, line)| !line.trim().is_empty())
            .map(|(n, line)| {
                serde_json::from_str(line)
                    .map_err(|e| format!("audit log {} line {}: {e}", self.path.display(), n + 1))
            })
            .collect()
    }
}

/// One entry, for the tests of what is built from entries (the log, annotations, recordings).
#[cfg(test)]
pub(crate) fn example(outcome: Outcome) -> Entry {
    Entry {
        at: "2026-12-07T21:40:07Z".into(),
        who: Who {
            user: Some("alice".into()),
            os_user: Some("al".into()),
        },
        context: "prod".into(),
        target: "horizontalpodautoscaler shop/payment".into(),
        action: Action::HpaBounds {
            namespace: "shop".into(),
            name: "payment".into(),
            min: None,
            max: Some(16),
        },
        changes: vec![
            Change::new("minReplicas", 2, 2),
            Change::new("maxReplicas", 10, 16),
        ],
        outcome,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(outcome: Outcome) -> Entry {
        example(outcome)
    }

    #[test]
    fn entries_round_trip_one_line_each_and_summarise() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = AuditLog::at(dir.path().join("nested/audit.jsonl"));
        assert_eq!(log.read().expect("absent is empty"), vec![]);
        let done = entry(Outcome::Done);
        let refused = entry(Outcome::Refused {
            missing: vec![Missing {
                verb: "patch".into(),
                resource: "horizontalpodautoscalers.autoscaling".into(),
                namespace: "shop".into(),
                reason: String::new(),
            }],
        });
        log.append(&done).expect("append");
        log.append(&refused).expect("append");
        let text = std::fs::read_to_string(log.path()).expect("read");
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(text.contains(r#""action":"hpa-bounds""#), "{text}");
        assert_eq!(
            log.read().expect("parses"),
            vec![done.clone(), refused.clone()]
        );
        assert_eq!(
            done.summary(),
            "alice (os: al) set bounds horizontalpodautoscaler shop/payment: maxReplicas: 10 → 16"
        );
        assert!(
            refused.summary().ends_with(
                "refused: may not patch horizontalpodautoscalers.autoscaling in namespace shop"
            ),
            "{}",
            refused.summary()
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(log.path())
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(log.path(), "{not json\n").expect("write");
        let e = log.read().expect_err("bad line");
        assert!(e.contains("line 1"), "{e}");
    }
}
