//! Test variants of `alerts/` derived from the real files — never hand-copied: the rules with
//! every `for` / `keep_firing_for` divided by a factor, and the Alertmanager config pointed at
//! loopback stand-ins with short waits.

use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow};
use serde_yaml_ng::Value;

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A Prometheus duration (`5m`, `1h30m`, `15s`) in seconds.
pub fn seconds(text: &str) -> anyhow::Result<u64> {
    let mut total = 0u64;
    let mut number = String::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_ascii_digit() {
            number.push(c);
            i += 1;
            continue;
        }
        let unit: String = if c == 'm' && chars.get(i + 1) == Some(&'s') {
            i += 2;
            "ms".into()
        } else {
            i += 1;
            c.to_string()
        };
        let n: u64 = number
            .parse()
            .with_context(|| format!("bad duration {text:?}"))?;
        number.clear();
        total += match unit.as_str() {
            "ms" => 0,
            "s" => n,
            "m" => n * 60,
            "h" => n * 3600,
            "d" => n * 86_400,
            _ => return Err(anyhow!("bad duration unit in {text:?}")),
        };
    }
    if !number.is_empty() {
        return Err(anyhow!("duration {text:?} lacks a unit"));
    }
    Ok(total)
}

/// `alerts/rules.yml` with `for` and `keep_firing_for` divided by `factor` (at least 1 s).
pub fn scaled_rules(factor: u64) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(repo().join("alerts/rules.yml"))?;
    let mut doc: Value = serde_yaml_ng::from_str(&text)?;
    let groups = doc
        .get_mut("groups")
        .and_then(Value::as_sequence_mut)
        .context("rules.yml: no groups")?;
    for group in groups {
        for rule in group
            .get_mut("rules")
            .and_then(Value::as_sequence_mut)
            .into_iter()
            .flatten()
        {
            for key in ["for", "keep_firing_for"] {
                if let Some(value) = rule.get_mut(key) {
                    let original = value.as_str().context("duration is not a string")?;
                    let scaled = (seconds(original)? / factor).max(1);
                    *value = Value::String(format!("{scaled}s"));
                }
            }
        }
    }
    Ok(serde_yaml_ng::to_string(&doc)?)
}

/// `alerts/alertmanager.yml` pointed at the stand-ins: PagerDuty URL and routing key file,
/// every webhook at `webhook(receiver name)`, and one-second waits.
pub fn test_alertmanager(
    pagerduty_url: &str,
    routing_key_file: &Path,
    webhook: impl Fn(&str) -> String,
) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(repo().join("alerts/alertmanager.yml"))?;
    let mut doc: Value = serde_yaml_ng::from_str(&text)?;
    doc["global"]["pagerduty_url"] = Value::String(pagerduty_url.into());
    fn shorten(route: &mut Value) {
        for key in ["group_wait", "group_interval"] {
            if route.get(key).is_some() {
                route[key] = Value::String("1s".into());
            }
        }
        for child in route
            .get_mut("routes")
            .and_then(Value::as_sequence_mut)
            .into_iter()
            .flatten()
        {
            shorten(child);
        }
    }
    shorten(&mut doc["route"]);
    for receiver in doc["receivers"].as_sequence_mut().context("no receivers")? {
        let name = receiver["name"].as_str().unwrap_or_default().to_string();
        for pd in receiver
            .get_mut("pagerduty_configs")
            .and_then(Value::as_sequence_mut)
            .into_iter()
            .flatten()
        {
            pd["routing_key_file"] = Value::String(routing_key_file.display().to_string());
        }
        for hook in receiver
            .get_mut("webhook_configs")
            .and_then(Value::as_sequence_mut)
            .into_iter()
            .flatten()
        {
            hook["url"] = Value::String(webhook(&name));
        }
    }
    Ok(serde_yaml_ng::to_string(&doc)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() -> anyhow::Result<()> {
        assert_eq!(seconds("5m")?, 300);
        assert_eq!(seconds("1h30m")?, 5400);
        assert_eq!(seconds("15s")?, 15);
        assert!(seconds("5").is_err());
        Ok(())
    }

    #[test]
    fn scaling_keeps_everything_but_durations() -> anyhow::Result<()> {
        let original: Value =
            serde_yaml_ng::from_str(&std::fs::read_to_string(repo().join("alerts/rules.yml"))?)?;
        let scaled: Value = serde_yaml_ng::from_str(&scaled_rules(60)?)?;
        let rules = |v: &Value| -> Vec<Value> {
            v["groups"]
                .as_sequence()
                .into_iter()
                .flatten()
                .flat_map(|g| g["rules"].as_sequence().cloned().unwrap_or_default())
                .collect()
        };
        let (a, b) = (rules(&original), rules(&scaled));
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x["expr"], y["expr"]);
            assert_eq!(x["labels"], y["labels"]);
            assert_eq!(x["annotations"], y["annotations"]);
            if let (Some(f), Some(g)) = (x["for"].as_str(), y["for"].as_str()) {
                assert_eq!((seconds(f)? / 60).max(1), seconds(g)?);
            }
        }
        Ok(())
    }
}
