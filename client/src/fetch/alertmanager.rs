//! Alertmanager API v2: alerts (with silenced and inhibited ones, marked), silences (list,
//! create, expire).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::mpsc;

use super::access::SourceClient;
use super::clock::{now, ticker};
use super::http::{FetchError, get_body, one_line, read_text, status_reason};
use super::prometheus::{alert, unix_seconds};
use super::update::{Command, Update};
use crate::model::{Alert, AlertState, Labels, Matcher, NewSilence, Silence};

#[derive(Debug, Clone)]
pub struct Alertmanager {
    base: String,
    http: SourceClient,
}

#[derive(Deserialize)]
struct RawAlert {
    labels: Labels,
    #[serde(default)]
    annotations: Labels,
    #[serde(rename = "startsAt")]
    starts_at: Option<String>,
    status: RawStatus,
}

#[derive(Deserialize)]
struct RawStatus {
    state: String,
    #[serde(default, rename = "silencedBy")]
    silenced_by: Vec<String>,
    #[serde(default, rename = "inhibitedBy")]
    inhibited_by: Vec<String>,
}

#[derive(Deserialize, Serialize)]
struct RawMatcher {
    name: String,
    value: String,
    #[serde(rename = "isRegex")]
    is_regex: bool,
    #[serde(default = "yes", rename = "isEqual")]
    is_equal: bool,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
struct RawSilence {
    id: String,
    matchers: Vec<RawMatcher>,
    #[serde(rename = "endsAt")]
    ends_at: String,
    #[serde(default, rename = "createdBy")]
    created_by: String,
    #[serde(default)]
    comment: String,
    status: RawSilenceStatus,
}

#[derive(Deserialize)]
struct RawSilenceStatus {
    state: String,
}

impl Alertmanager {
    pub fn new(base: &str, http: impl Into<SourceClient>) -> Self {
        Alertmanager {
            base: base.trim_end_matches('/').to_string(),
            http: http.into(),
        }
    }

    pub async fn alerts(&self) -> Result<Vec<Alert>, FetchError> {
        let url = format!("{}/api/v2/alerts", self.base);
        let params = [
            ("active", "true".to_string()),
            ("silenced", "true".to_string()),
            ("inhibited", "true".to_string()),
        ];
        let body = get_body(&self.http, &url, &params).await?;
        parse_alerts(&body).map_err(|e| FetchError::new(&url, e))
    }

    pub async fn silences(&self) -> Result<Vec<Silence>, FetchError> {
        let url = format!("{}/api/v2/silences", self.base);
        let body = get_body(&self.http, &url, &[]).await?;
        parse_silences(&body).map_err(|e| FetchError::new(&url, e))
    }

    /// Create a silence starting now; returns its id.
    pub async fn create_silence(
        &self,
        silence: &NewSilence,
        now: f64,
    ) -> Result<String, FetchError> {
        let url = format!("{}/api/v2/silences", self.base);
        let body = silence_body(silence, now).map_err(|e| FetchError::new(&url, e))?;
        let request = self
            .http
            .request(reqwest::Method::POST, &url)
            .map_err(|e| FetchError::new(&url, e))?
            .json(&body);
        let response = self
            .http
            .send(request)
            .await
            .map_err(|e| FetchError::new(&url, e))?;
        let status = response.status();
        let text = read_text(&url, response).await?;
        if !status.is_success() {
            return Err(FetchError::new(
                &url,
                format!("{}: {}", status_reason(status, &self.http), one_line(&text)),
            ));
        }
        let answer: Value = serde_json::from_str(&text)
            .map_err(|e| FetchError::new(&url, format!("invalid JSON: {e}")))?;
        answer
            .get("silenceID")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| FetchError::new(&url, "answer has no silenceID".into()))
    }

    pub async fn expire_silence(&self, id: &str) -> Result<(), FetchError> {
        let url = format!("{}/api/v2/silence/{id}", self.base);
        let request = self
            .http
            .request(reqwest::Method::DELETE, &url)
            .map_err(|e| FetchError::new(&url, e))?;
        let response = self
            .http
            .send(request)
            .await
            .map_err(|e| FetchError::new(&url, e))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            let text = read_text(&url, response).await.unwrap_or_default();
            Err(FetchError::new(
                &url,
                format!("{}: {}", status_reason(status, &self.http), one_line(&text)),
            ))
        }
    }
}

/// The JSON body of `POST /api/v2/silences`.
pub fn silence_body(silence: &NewSilence, now: f64) -> Result<Value, String> {
    if silence.matchers.is_empty() {
        return Err("a silence needs at least one matcher".into());
    }
    if silence.comment.trim().is_empty() {
        return Err("a silence needs a comment".into());
    }
    let stamp = |t: f64| {
        jiff::Timestamp::from_millisecond((t * 1000.0) as i64)
            .map(|ts| ts.to_string())
            .map_err(|e| format!("bad time: {e}"))
    };
    let matchers: Vec<RawMatcher> = silence
        .matchers
        .iter()
        .map(|m| RawMatcher {
            name: m.name.clone(),
            value: m.value.clone(),
            is_regex: m.is_regex,
            is_equal: m.is_equal,
        })
        .collect();
    Ok(serde_json::json!({
        "matchers": matchers,
        "startsAt": stamp(now)?,
        "endsAt": stamp(now + silence.seconds as f64)?,
        "createdBy": silence.created_by,
        "comment": silence.comment,
    }))
}

pub fn parse_alerts(body: &[u8]) -> Result<Vec<Alert>, String> {
    let raw: Vec<RawAlert> =
        serde_json::from_slice(body).map_err(|e| one_line(&format!("bad alerts: {e}")))?;
    for a in &raw {
        crate::model::check_label_sizes(&a.labels)
            .and_then(|()| crate::model::check_label_sizes(&a.annotations))
            .map_err(|e| one_line(&format!("bad alerts: {e}")))?;
    }
    Ok(raw
        .into_iter()
        .filter(|a| a.status.state != "unprocessed")
        .map(|a| {
            let muted = a.status.state == "suppressed"
                || !a.status.silenced_by.is_empty()
                || !a.status.inhibited_by.is_empty();
            let active = a.starts_at.as_deref().and_then(unix_seconds);
            alert(a.labels, &a.annotations, AlertState::Firing, active, muted)
        })
        .collect())
}

pub fn parse_silences(body: &[u8]) -> Result<Vec<Silence>, String> {
    let raw: Vec<RawSilence> =
        serde_json::from_slice(body).map_err(|e| one_line(&format!("bad silences: {e}")))?;
    let mut silences: Vec<Silence> = raw
        .into_iter()
        .map(|s| Silence {
            id: s.id,
            matchers: s
                .matchers
                .into_iter()
                .map(|m| Matcher {
                    name: m.name,
                    value: m.value,
                    is_regex: m.is_regex,
                    is_equal: m.is_equal,
                })
                .collect(),
            comment: s.comment,
            created_by: s.created_by,
            ends_at: s.ends_at,
            state: s.status.state,
        })
        .collect();
    // Active first, then pending, then expired; newest end first within each.
    let rank = |s: &Silence| match s.state.as_str() {
        "active" => 0,
        "pending" => 1,
        _ => 2,
    };
    silences.sort_by(|a, b| {
        rank(a)
            .cmp(&rank(b))
            .then_with(|| b.ends_at.cmp(&a.ends_at))
    });
    Ok(silences)
}

/// The Alertmanager fetcher: alerts and silences every refresh, and the silence commands the
/// user gives, one at a time.
pub async fn run(
    source: Alertmanager,
    refresh: Duration,
    updates: mpsc::Sender<Update>,
    mut commands: mpsc::Receiver<Command>,
) {
    let mut interval = ticker(refresh);
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            command = commands.recv() => {
                let Some(command) = command else { return };
                let notice = match command {
                    Command::CreateSilence(silence) => match source.create_silence(&silence, now()).await {
                        Ok(id) => format!("silence {id} created for {}", humantime::format_duration(Duration::from_secs(silence.seconds))),
                        Err(e) => format!("silence not created: {e}"),
                    },
                    Command::ExpireSilence(id) => match source.expire_silence(&id).await {
                        Ok(()) => format!("silence {id} expired"),
                        Err(e) => format!("silence {id} not expired: {e}"),
                    },
                };
                if updates.send(Update::Notice(notice)).await.is_err() {
                    return;
                }
                // Fall through: show the change at once.
            }
        }
        let (alerts, silences) = tokio::join!(source.alerts(), source.silences());
        // One batch per refresh: one store rebuild, one redraw.
        let mut batch = Vec::new();
        let mut failure = None;
        match alerts {
            Ok(alerts) => batch.push(Update::Alerts {
                source: "alertmanager".into(),
                alerts,
            }),
            Err(e) => failure = Some(e),
        }
        match silences {
            Ok(silences) => batch.push(Update::Silences(silences)),
            Err(e) => failure = failure.or(Some(e)),
        }
        if let Some(e) = failure {
            batch.push(Update::Failed {
                source: "alertmanager".into(),
                error: e.to_string(),
            });
        }
        if updates.send(Update::Batch(batch)).await.is_err() {
            return;
        }
    }
}

/// Without Alertmanager, silences cannot be made: say so instead of dropping the request.
pub async fn refuse_commands(mut commands: mpsc::Receiver<Command>, updates: mpsc::Sender<Update>) {
    while commands.recv().await.is_some() {
        let notice =
            Update::Notice("no Alertmanager configured (--alertmanager): silences need one".into());
        if updates.send(notice).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn alerts_with_oversized_labels_are_refused_with_the_reason() {
        let alert = |labels: serde_json::Value, annotations: serde_json::Value| {
            json!([{"labels": labels, "annotations": annotations,
                "startsAt": "2026-11-28T08:00:00Z",
                "status": {"state": "active", "silencedBy": [], "inhibitedBy": []}}])
            .to_string()
        };
        let at = "x".repeat(crate::model::MAX_LABEL_BYTES);
        let past = "x".repeat(crate::model::MAX_LABEL_BYTES + 1);
        // At the limit: read.
        let fine = alert(
            json!({"alertname": "A", "job": at}),
            json!({at.clone(): "s"}),
        );
        assert_eq!(parse_alerts(fine.as_bytes()).map(|a| a.len()), Ok(1));
        // One past, in a label value, an annotation, a label name: refused.
        let value = alert(json!({"alertname": "A", "job": past}), json!({}));
        assert_eq!(
            parse_alerts(value.as_bytes()).err().as_deref(),
            Some("bad alerts: label job has a value of 4097 bytes (at most 4096)")
        );
        let annotation = alert(json!({"alertname": "A"}), json!({"summary": past}));
        assert_eq!(
            parse_alerts(annotation.as_bytes()).err().as_deref(),
            Some("bad alerts: label summary has a value of 4097 bytes (at most 4096)")
        );
        let name = alert(json!({"alertname": "A", past.clone(): "v"}), json!({}));
        assert!(
            parse_alerts(name.as_bytes())
                .is_err_and(|e| e.starts_with("bad alerts: a label name of 4097 bytes")),
        );
        let many: serde_json::Map<String, serde_json::Value> = (0..=crate::model::MAX_LABELS)
            .map(|i| (format!("l{i}"), json!("v")))
            .collect();
        assert_eq!(
            parse_alerts(alert(json!(many), json!({})).as_bytes())
                .err()
                .as_deref(),
            Some("bad alerts: a series with 65 labels (at most 64)")
        );
    }

    #[test]
    fn silenced_and_inhibited_alerts_are_marked_muted() -> Result<(), String> {
        let body = json!([
            {"labels":{"alertname":"A","severity":"page"},"annotations":{"summary":"s"},
             "startsAt":"2026-11-28T08:00:00.000Z","endsAt":"2026-11-28T09:00:00.000Z","fingerprint":"1",
             "status":{"state":"active","silencedBy":[],"inhibitedBy":[]},"receivers":[{"name":"pagerduty"}]},
            {"labels":{"alertname":"B"},"startsAt":"2026-11-28T08:00:00Z",
             "status":{"state":"suppressed","silencedBy":["x"],"inhibitedBy":[]}},
            {"labels":{"alertname":"C"},"status":{"state":"unprocessed"}}
        ]);
        let alerts = parse_alerts(body.to_string().as_bytes())?;
        assert_eq!(alerts.len(), 2);
        assert!(!alerts[0].muted && alerts[1].muted);
        assert_eq!(alerts[0].active_at, unix_seconds("2026-11-28T08:00:00Z"));
        assert!(parse_alerts(json!({"data":[]}).to_string().as_bytes()).is_err());
        Ok(())
    }

    #[test]
    fn silences_parse_and_sort_and_bodies_validate() -> Result<(), String> {
        let body = json!([
            {"id":"old","matchers":[{"name":"alertname","value":"A","isRegex":false}],"startsAt":"x",
             "endsAt":"2026-11-28T07:00:00Z","createdBy":"me","comment":"c","status":{"state":"expired"}},
            {"id":"now","matchers":[{"name":"alertname","value":"A","isRegex":false,"isEqual":true}],
             "startsAt":"x","endsAt":"2026-11-28T10:00:00Z","createdBy":"me","comment":"c","status":{"state":"active"}}
        ]);
        let silences = parse_silences(body.to_string().as_bytes())?;
        assert_eq!(silences[0].id, "now");
        assert!(
            silences[1].matchers[0].is_equal,
            "isEqual defaults to true (older Alertmanagers)"
        );

        let new = NewSilence {
            matchers: vec![Matcher {
                name: "alertname".into(),
                value: "A".into(),
                is_regex: false,
                is_equal: true,
            }],
            seconds: 3600,
            comment: "flash sale, scaling by hand".into(),
            created_by: "oncall".into(),
        };
        let body = silence_body(&new, 1_800_000_000.0)?;
        assert_eq!(body["startsAt"], "2027-01-15T08:00:00Z");
        assert_eq!(body["endsAt"], "2027-01-15T09:00:00Z");
        assert_eq!(body["matchers"][0]["isRegex"], false);
        assert!(
            silence_body(
                &NewSilence {
                    comment: " ".into(),
                    ..new.clone()
                },
                0.0
            )
            .is_err()
        );
        assert!(
            silence_body(
                &NewSilence {
                    matchers: vec![],
                    ..new
                },
                0.0
            )
            .is_err()
        );
        Ok(())
    }
}
