//! Running the actions the user confirmed: plans and applies off the input loop, each
//! ending in an audit line written to the audit log and sent down the context's update
//! channel (so the store shows it and a recording keeps it).

use std::path::PathBuf;

use tokio::sync::mpsc;

use std::sync::Arc;
use std::time::Duration;

use surge_client::act::announce;
use surge_client::act::audit::{AuditLog, Entry, Outcome, Who};
use surge_client::fetch::{Endpoint, SourceClient};

use surge_client::act::dead_letters::broker::Broker;
use surge_client::act::workload::Workloads;
use surge_client::act::{Action as Act, Change, Plan};
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

/// The broker context `index` redrives through.
fn broker(settings: &Settings, index: usize) -> Result<Broker, String> {
    let (name, endpoints) = settings
        .contexts
        .get(index)
        .ok_or_else(|| "no such context".to_string())?;
    endpoints
        .kafka
        .as_ref()
        .map(|k| Broker::new(k, endpoints.timeout))
        .ok_or_else(|| {
            format!(
                "context {name} has no Kafka broker: redrives need one (--kafka or [sources.kafka])"
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
    if let Act::Redrive {
        topic,
        selection,
        rate,
    } = act
    {
        let broker = broker(settings, index);
        tokio::spawn(async move {
            let result = match broker {
                Ok(b) => b.plan_redrive(&topic, &selection, rate).await,
                Err(e) => Err(e),
            };
            let _ = plans.send(result).await;
        });
        return;
    }
    let workloads = workloads(settings, index);
    tokio::spawn(async move {
        let result = match workloads {
            Ok(w) => w.plan(&act, &now()).await,
            Err(e) => Err(e),
        };
        let _ = plans.send(result).await;
    });
}

/// Run a confirmed redrive, its progress as notices, its end as the audit line.
fn redrive(
    broker: Result<Broker, String>,
    plan: Plan,
    mut entry: Entry,
    index: usize,
    trail: Trail,
    updates: mpsc::Sender<(usize, Update)>,
) {
    tokio::spawn(async move {
        let Act::Redrive {
            topic,
            selection,
            rate,
        } = &plan.action
        else {
            return;
        };
        let by = entry.who.label();
        let progress_updates = updates.clone();
        let result = match broker {
            Err(e) => Err(e),
            Ok(b) => {
                b.redrive(topic, selection, *rate, &by, Arc::default(), |p| {
                    // Best effort: a full channel skips a progress line, never the result.
                    let _ = progress_updates.try_send((
                        index,
                        Update::Notice(format!(
                            "redrive from {topic}: {} republished, {} to go",
                            p.moved,
                            p.left()
                        )),
                    ));
                })
                .await
            }
        };
        match result {
            Ok(progress) => {
                entry.changes = progress
                    .to
                    .iter()
                    .map(|(source, n)| Change::new(&format!("republished to {source}"), 0, n))
                    .collect();
                if entry.changes.is_empty() {
                    entry.changes.push(Change::new("republished", 0, 0));
                }
                if progress.already > 0 {
                    entry.changes.push(Change::new(
                        "skipped, redriven before",
                        progress.already,
                        progress.already,
                    ));
                }
            }
            Err(error) => entry.outcome = Outcome::Failed { error },
        }
        let _ = updates.send((index, trail.audited(entry).await)).await;
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
    let trail = Trail {
        log: settings.audit_log.clone(),
        grafana: settings
            .contexts
            .get(index)
            .and_then(|(_, e)| e.grafana.clone()),
        timeout: settings
            .contexts
            .get(index)
            .map_or(Duration::from_secs(5), |(_, e)| e.timeout),
    };
    // Done unless said otherwise; the changes are what was read back (planned until then).
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
    if matches!(plan.action, Act::Redrive { .. }) {
        entry.changes.clear();
        redrive(broker(settings, index), plan, entry, index, trail, updates);
        return;
    }
    tokio::spawn(async move {
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
        let _ = updates.send((index, trail.audited(entry).await)).await;
    });
}

/// Where an action's audit line goes: the local log, and Grafana where configured.
struct Trail {
    log: Option<PathBuf>,
    grafana: Option<Endpoint>,
    timeout: Duration,
}

impl Trail {
    /// The entry written to the audit log and posted to Grafana, as the update the store
    /// takes; a log or an annotation that fails is said in a notice, never swallowed.
    async fn audited(self, entry: Entry) -> Update {
        let Trail {
            log,
            grafana,
            timeout,
        } = self;
        let mut failures = Vec::new();
        let written = match log {
            Some(path) => AuditLog::at(path).append(&entry),
            None => Err("no audit log (HOME is unset and --audit-log not given)".into()),
        };
        if let Err(e) = written {
            failures.push(format!("not audited: {e}"));
        }
        if let Some(grafana) = grafana {
            let posted = match SourceClient::new(&grafana.access, timeout) {
                Ok(client) => announce::to_grafana(&client, &grafana.url, &entry).await,
                Err(e) => Err(e),
            };
            if let Err(e) = posted {
                failures.push(format!("no Grafana annotation: {e}"));
            }
        }
        if failures.is_empty() {
            return Update::Acted(Box::new(entry));
        }
        Update::Batch(vec![
            Update::Acted(Box::new(entry)),
            Update::Notice(format!("action done; {}", failures.join("; "))),
        ])
    }
}
