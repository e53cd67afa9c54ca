//! External metrics for the local autoscaler, read from Prometheus with the query the
//! prometheus-adapter rule in `stack/k8s/prometheus-adapter/` defines, so the local HPA and a
//! cluster's see the same number for the same HPA manifest.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use anyhow::{Context, anyhow, bail};
use serde::Deserialize;

use crate::hpa::ExternalMetric;

/// One `externalRules` entry: the metric it serves, its series and its query template.
#[derive(Debug, Clone, PartialEq)]
struct Rule {
    name: String,
    series: String,
    metrics_query: String,
}

/// The adapter's external rules.
#[derive(Debug, Clone, PartialEq)]
pub struct AdapterRules {
    rules: Vec<Rule>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConfigFile {
    #[serde(default)]
    external_rules: Vec<RuleFile>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RuleFile {
    series_query: String,
    metrics_query: String,
    #[serde(default)]
    name: Option<NameFile>,
}

#[derive(Deserialize)]
struct NameFile {
    #[serde(rename = "as")]
    as_: Option<String>,
}

impl AdapterRules {
    /// The rules in the adapter's configuration (`config.yaml`).
    pub fn parse(config_yaml: &str) -> anyhow::Result<AdapterRules> {
        let file: ConfigFile =
            serde_yaml_ng::from_str(config_yaml).context("prometheus-adapter config")?;
        let mut rules = Vec::new();
        for rule in file.external_rules {
            let series = rule
                .series_query
                .split('{')
                .next()
                .unwrap_or_default()
                .trim()
                .to_string();
            if series.is_empty() {
                bail!(
                    "externalRules: seriesQuery {:?} names no series",
                    rule.series_query
                );
            }
            rules.push(Rule {
                name: rule
                    .name
                    .and_then(|n| n.as_)
                    .unwrap_or_else(|| series.clone()),
                series,
                metrics_query: rule.metrics_query,
            });
        }
        Ok(AdapterRules { rules })
    }

    /// The rules in the adapter's config file (what its ConfigMap's `config.yaml` holds), or
    /// in a ConfigMap manifest carrying it.
    pub fn load(manifest: &Path) -> anyhow::Result<AdapterRules> {
        let text = std::fs::read_to_string(manifest)
            .with_context(|| format!("reading {}", manifest.display()))?;
        if !text.contains("kind: ConfigMap") {
            return AdapterRules::parse(&text).with_context(|| manifest.display().to_string());
        }
        for document in serde_yaml_ng::Deserializer::from_str(&text) {
            let value = serde_yaml_ng::Value::deserialize(document)?;
            if value["kind"].as_str() == Some("ConfigMap")
                && let Some(config) = value["data"]["config.yaml"].as_str()
            {
                return AdapterRules::parse(config).with_context(|| manifest.display().to_string());
            }
        }
        bail!("{}: no ConfigMap with config.yaml", manifest.display())
    }

    /// The PromQL the adapter runs for `metric`: its rule's template with the series and the
    /// HPA's selector as label matchers.
    pub fn query(&self, metric: &ExternalMetric) -> anyhow::Result<String> {
        let rule = self
            .rules
            .iter()
            .find(|r| r.name == metric.name)
            .ok_or_else(|| anyhow!("no prometheus-adapter rule serves {}", metric.name))?;
        let matchers: Vec<String> = metric
            .selector
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"")))
            .collect();
        let query = rule
            .metrics_query
            .replace("<<.Series>>", &rule.series)
            .replace("<<.LabelMatchers>>", &matchers.join(","));
        if query.contains("<<") {
            bail!(
                "{}: the local autoscaler renders only <<.Series>> and <<.LabelMatchers>>: {}",
                metric.name,
                rule.metrics_query
            );
        }
        Ok(query)
    }
}

/// External metric values from Prometheus at `addr` (`host:port`, set once Prometheus runs).
pub struct PrometheusMetrics {
    pub addr: Arc<OnceLock<String>>,
    pub rules: AdapterRules,
}

impl PrometheusMetrics {
    /// The metric's value now, or `None` when Prometheus is not up, the query fails or returns
    /// nothing (the controller's "metric unavailable").
    pub fn value(&self, metric: &ExternalMetric) -> Option<f64> {
        let addr = self.addr.get()?;
        let query = match self.rules.query(metric) {
            Ok(q) => q,
            Err(error) => {
                tracing::warn!(%error, "external metric");
                return None;
            }
        };
        let path = format!(
            "/api/v1/query?{}",
            form_urlencoded::Serializer::new(String::new())
                .append_pair("query", &query)
                .finish()
        );
        match surge_servers::http::get(addr, &path, None) {
            Ok((200, _, body)) => vector_sum(&body),
            Ok((status, _, body)) => {
                tracing::warn!(status, body = %body.chars().take(200).collect::<String>(), "external metric query");
                None
            }
            Err(error) => {
                tracing::debug!(%error, "external metric query");
                None
            }
        }
    }
}

/// The sum of an instant vector answer, `None` when it holds no sample.
pub fn vector_sum(body: &str) -> Option<f64> {
    let answer: serde_json::Value = serde_json::from_str(body).ok()?;
    let result = answer["data"]["result"].as_array()?;
    let values: Vec<f64> = result
        .iter()
        .filter_map(|s| s["value"][1].as_str()?.parse().ok())
        .filter(|v: &f64| v.is_finite())
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use surge_metrics::state::TargetType;

    use super::*;

    const CONFIG: &str = r#"
externalRules:
  - seriesQuery: 'surge_kafka_group_topic_lag{group!="",topic!=""}'
    resources:
      namespaced: false
    name:
      as: surge_kafka_group_topic_lag
    metricsQuery: 'sum by (group, topic) (<<.Series>>{<<.LabelMatchers>>})'
"#;

    fn lag(group: &str, topic: &str) -> ExternalMetric {
        ExternalMetric {
            name: "surge_kafka_group_topic_lag".into(),
            selector: BTreeMap::from([
                ("group".to_string(), group.to_string()),
                ("topic".to_string(), topic.to_string()),
            ]),
            target_type: TargetType::AverageValue,
            target: 1000.0,
        }
    }

    #[test]
    fn the_query_is_the_adapter_rule_with_the_hpa_selector() -> anyhow::Result<()> {
        let rules = AdapterRules::parse(CONFIG)?;
        assert_eq!(
            rules.query(&lag("payment", "order-placed"))?,
            r#"sum by (group, topic) (surge_kafka_group_topic_lag{group="payment",topic="order-placed"})"#
        );
        let mut other = lag("payment", "order-placed");
        other.name = "requests_per_second".into();
        assert!(rules.query(&other).is_err());
        let grouped = AdapterRules::parse(&CONFIG.replace("<<.Series>>", "<<.GroupBy>>"))?;
        assert!(grouped.query(&lag("a", "b")).is_err());
        Ok(())
    }

    #[test]
    fn answers_sum_or_are_unavailable() {
        let answer = |result: &str| {
            format!(r#"{{"status":"success","data":{{"resultType":"vector","result":{result}}}}}"#)
        };
        assert_eq!(
            vector_sum(&answer(r#"[{"metric":{},"value":[1,"4200"]}]"#)),
            Some(4200.0)
        );
        assert_eq!(vector_sum(&answer("[]")), None);
        assert_eq!(
            vector_sum(&answer(r#"[{"metric":{},"value":[1,"NaN"]}]"#)),
            None
        );
        assert_eq!(vector_sum("not json"), None);
    }
}
