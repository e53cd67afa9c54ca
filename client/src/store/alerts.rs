//! Alerts as the views show them: Alertmanager's and Prometheus' merged, worst first.

use crate::model::{Alert, AlertState, Labels};

/// The always-firing dead man's switch (alerts/rules.yml).
pub const WATCHDOG: &str = "Watchdog";

/// The labels that identify an alert on the timeline: all but Prometheus' `alertstate`.
pub fn timeline_key(alert: &Alert) -> Labels {
    let mut labels = alert.labels.clone();
    labels.remove("alertstate");
    labels
}

/// Alertmanager knows silences and inhibitions; Prometheus knows pending alerts. Prefer
/// Alertmanager's view of a firing alert, add Prometheus-only alerts (pending, or when no
/// Alertmanager is configured).
pub fn merge_alerts(prometheus: &[Alert], alertmanager: &[Alert]) -> Vec<Alert> {
    let mut out: Vec<Alert> = alertmanager.to_vec();
    for a in prometheus {
        let known = out.iter().any(|b| b.labels == a.labels && b.name == a.name);
        if !known {
            out.push(a.clone());
        }
    }
    out
}

/// The alerts the views list, worst first, without the Watchdog; and whether the Watchdog
/// fires (alerting works end to end, to where we read it).
pub(super) fn shown(prometheus: &[Alert], alertmanager: &[Alert]) -> (Vec<Alert>, bool) {
    let mut alerts = merge_alerts(prometheus, alertmanager);
    // The dead man's switch fires by design: it proves the pipeline, it is not a problem.
    let watchdog = alerts
        .iter()
        .any(|a| a.name == WATCHDOG && a.state == AlertState::Firing);
    alerts.retain(|a| a.name != WATCHDOG);
    alerts.sort_by(|a, b| {
        (severity_rank(&a.severity), a.state, &a.name).cmp(&(
            severity_rank(&b.severity),
            b.state,
            &b.name,
        ))
    });
    (alerts, watchdog)
}

fn severity_rank(severity: &str) -> u8 {
    match severity {
        "page" | "critical" => 0,
        "warning" => 1,
        "info" => 2,
        _ => 3,
    }
}

/// Alerts firing (not muted) right now, for banners and snapshots.
pub fn firing(alerts: &[Alert]) -> impl Iterator<Item = &Alert> {
    alerts
        .iter()
        .filter(|a| a.state == AlertState::Firing && !a.muted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect()
    }

    #[test]
    fn alertmanager_view_wins_and_pending_come_from_prometheus() {
        let alert = |name: &str, state: AlertState, muted: bool| Alert {
            name: name.into(),
            state,
            severity: "page".into(),
            labels: labels(&[("alertname", name)]),
            summary: String::new(),
            description: String::new(),
            runbook: String::new(),
            active_at: None,
            muted,
        };
        let merged = merge_alerts(
            &[
                alert("A", AlertState::Firing, false),
                alert("B", AlertState::Pending, false),
            ],
            &[alert("A", AlertState::Firing, true)],
        );
        assert_eq!(merged.len(), 2);
        assert!(merged.iter().any(|a| a.name == "A" && a.muted));
        assert_eq!(firing(&merged).count(), 0);
    }
}
