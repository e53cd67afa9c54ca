//! Telling the people who were not at the keyboard: each action's audit line as a Grafana
//! annotation (`POST /api/annotations`, tagged `surge` and the action), so it shows on every
//! board's graphs at the moment it happened. Alertmanager has no place for a free-form note
//! short of a silence, which would mute what the team needs to see, so it gets none.

use serde_json::json;

use super::audit::Entry;
use crate::fetch::SourceClient;

/// The annotation for `entry`: its time in milliseconds, its tags and its one-line summary.
pub fn annotation(entry: &Entry) -> Result<serde_json::Value, String> {
    let at: jiff::Timestamp = entry
        .at
        .parse()
        .map_err(|e| format!("audit entry time {:?}: {e}", entry.at))?;
    let verb = entry.action.verb().replace(' ', "-");
    Ok(json!({
        "time": at.as_millisecond(),
        "tags": ["surge", verb, format!("context:{}", entry.context)],
        "text": format!("surge: {}", entry.summary()),
    }))
}

/// Post `entry` as an annotation to the Grafana at `base`.
pub async fn to_grafana(client: &SourceClient, base: &str, entry: &Entry) -> Result<(), String> {
    let url = format!("{}/api/annotations", base.trim_end_matches('/'));
    let request = client
        .request(reqwest::Method::POST, &url)?
        .json(&annotation(entry)?);
    let response = client.send(request).await?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let said = response.text().await.unwrap_or_default();
    Err(format!(
        "Grafana {url}: {status}: {}",
        crate::fetch::one_line(&said)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::act::audit::{Outcome, example};

    #[test]
    fn an_entry_becomes_an_annotation_at_its_time() {
        let entry = example(Outcome::Done);
        let a = annotation(&entry).expect("annotation");
        assert_eq!(a["time"], 1_796_679_607_000_i64);
        assert_eq!(a["tags"], json!(["surge", "set-bounds", "context:prod"]));
        assert_eq!(
            a["text"],
            "surge: alice (os: al) set bounds horizontalpodautoscaler shop/payment: maxReplicas: 10 → 16"
        );
        let bad = Entry {
            at: "yesterday".into(),
            ..entry
        };
        assert!(
            annotation(&bad)
                .expect_err("bad time")
                .contains("yesterday")
        );
    }
}
