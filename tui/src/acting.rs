//! Running the actions the user confirmed: plans and applies off the input loop, each
//! ending in an audit line written to the audit log and sent down the context's update
//! channel (so the store shows it and a recording keeps it).

use std::path::PathBuf;

use tokio::sync::mpsc;

use surge_client::act::audit::{AuditLog, Entry, Outcome, Who};
use surge_client::act::workload::Workloads;
use surge_client::act::{Action as Act, Plan};
use surge_client::fetch::Update;

use crate::cli::Settings;

/// Now, to the second, as RFC 3339 in UTC (what a restart writes, when an entry happened).
fn now() -> String {
    jiff::Timestamp::now()
        .round(jiff::Unit::Second)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// The cluster context `index` acts on: the one its sources are reached through.
fn workloads(settings: &Settings, index: usize) -> Result<Workloads, String> {
    let (name, endpoints) = settings
        .contexts
        .get(index)
        .ok_or_else(|| "no such context".to_string())?;
    endpoints
        .named()
        .into_iter()
        .find_map(|(_, e)| e.access.cluster.clone())
        .map(Workloads::new)
        .ok_or_else(|| {
            format!(
                "context {name} reaches no Kubernetes API: actions need one (surge --kube-context NAME)"
            )
        })
}

/// Plan `act` in the background; the plan (or why not) arrives on `plans`.
pub(crate) fn plan(
    settings: &Settings,
    index: usize,
    act: Act,
    plans: mpsc::Sender<Result<Plan, String>>,
) {
    let workloads = workloads(settings, index);
    tokio::spawn(async move {
        let result = match workloads {
            Ok(w) => w.plan(&act, &now()).await,
            Err(e) => Err(e),
        };
        let _ = plans.send(result).await;
    });
}

/// Apply a confirmed plan in the background; its audit line goes to the log and, as an
/// update, to context `index`.
pub(crate) fn apply(
    settings: &Settings,
    index: usize,
    plan: Plan,
    updates: mpsc::Sender<(usize, Update)>,
) {
    let workloads = workloads(settings, index);
    let context = settings
        .contexts
        .get(index)
        .map(|(n, _)| n.clone())
        .unwrap_or_default();
    let log = settings.audit_log.clone();
    tokio::spawn(async move {
        let mut entry = Entry {
            at: now(),
            who: Who {
                user: None,
                os_user: Who::os_user(),
            },
            context,
            target: plan.action.target(),
            action: plan.action.clone(),
            changes: plan.changes.clone(),
            outcome: Outcome::Done,
        };
        match workloads {
            Err(e) => entry.outcome = Outcome::Failed { error: e },
            Ok(w) => {
                entry.who.user = w.who().await;
                if w.context() != entry.context {
                    entry.context = format!("{} (kube context {})", entry.context, w.context());
                }
                if !plan.missing.is_empty() {
                    entry.outcome = Outcome::Refused {
                        missing: plan.missing.clone(),
                    };
                } else {
                    match w.apply(&plan, &entry.at).await {
                        Ok(applied) => entry.changes = applied.changes,
                        Err(error) => entry.outcome = Outcome::Failed { error },
                    }
                }
            }
        }
        let _ = updates.send((index, audited(log, entry))).await;
    });
}

/// The entry written to the audit log, as the update the store takes; a log that cannot be
/// written is said in the entry's notice, never swallowed.
fn audited(log: Option<PathBuf>, entry: Entry) -> Update {
    let written = match log {
        Some(path) => AuditLog::at(path).append(&entry),
        None => Err("no audit log (HOME is unset and --audit-log not given)".into()),
    };
    match written {
        Ok(()) => Update::Acted(Box::new(entry)),
        Err(e) => Update::Batch(vec![
            Update::Acted(Box::new(entry)),
            Update::Notice(format!("action done but not audited: {e}")),
        ]),
    }
}
