//! The local stack and `stack/k8s`, kept one: what the Deployments request (the local replicas
//! ask for the same), rendering an overlay with `kubectl kustomize`, and the Kubernetes
//! objects generated from the repository's single sources, so a cluster gets the same
//! alerting as the local stack: the `PrometheusRule` from `alerts/rules.yml` (its groups
//! unchanged) and the `AlertmanagerConfig` from `alerts/alertmanager.yml` (the same routes,
//! inhibitions and receivers, with secrets where the file names local paths and URLs).
//! `surge-stack manifests` writes them; a test fails when a committed copy is stale.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, anyhow, bail};
use k8s_openapi::api::apps::v1::Deployment;
use serde::Deserialize;
use serde_yaml_ng::{Mapping, Value};
use surge_metrics::hpa::Resources;
use surge_metrics::quantity::{parse_bytes, parse_cpu_millis};

/// What each Deployment in a multi-document YAML file asks for, by name (summed over its
/// containers). Every container must request CPU: an HPA cannot scale without it.
pub fn deployment_resources(path: &Path) -> anyhow::Result<BTreeMap<String, Resources>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = BTreeMap::new();
    for document in serde_yaml_ng::Deserializer::from_str(&text) {
        let value =
            Value::deserialize(document).with_context(|| format!("parsing {}", path.display()))?;
        if value.get("kind").and_then(Value::as_str) != Some("Deployment") {
            continue;
        }
        let deployment: Deployment = serde_yaml_ng::from_value(value)
            .with_context(|| format!("{}: not a valid Deployment", path.display()))?;
        let name = deployment.metadata.name.clone().unwrap_or_default();
        let at = |what: &str| format!("{}: Deployment {name}: {what}", path.display());
        let containers = deployment
            .spec
            .and_then(|s| s.template.spec)
            .map(|s| s.containers)
            .unwrap_or_default();
        let mut resources = Resources {
            cpu_request_millis: 0,
            memory_request_bytes: Some(0),
            memory_limit_bytes: Some(0),
        };
        for container in &containers {
            let get = |limits: bool, resource: &str| {
                let r = container.resources.as_ref()?;
                let side = if limits {
                    r.limits.as_ref()
                } else {
                    r.requests.as_ref()
                };
                side?.get(resource).map(|q| q.0.clone())
            };
            let cpu = get(false, "cpu").with_context(|| at("a container without a CPU request"))?;
            resources.cpu_request_millis += parse_cpu_millis(&cpu).map_err(|e| anyhow!(at(&e)))?;
            // Memory: known only if every container says.
            let add = |sum: Option<i64>, q: Option<String>| -> anyhow::Result<Option<i64>> {
                Ok(match (sum, q) {
                    (Some(s), Some(q)) => Some(s + parse_bytes(&q).map_err(|e| anyhow!(at(&e)))?),
                    _ => None,
                })
            };
            resources.memory_request_bytes =
                add(resources.memory_request_bytes, get(false, "memory"))?;
            resources.memory_limit_bytes = add(resources.memory_limit_bytes, get(true, "memory"))?;
        }
        if containers.is_empty() {
            bail!(at("no containers"));
        }
        out.insert(name, resources);
    }
    if out.is_empty() {
        bail!("{}: no Deployment found", path.display());
    }
    Ok(out)
}

/// `kubectl kustomize <dir>`: every rendered object. Needs `kubectl` on PATH
/// (`scripts/install-deps` provides one).
pub fn render(dir: &Path) -> anyhow::Result<Vec<serde_json::Value>> {
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(dir)
        .output()
        .map_err(|e| anyhow!("kubectl not found ({e}); run scripts/install-deps"))?;
    if !out.status.success() {
        bail!(
            "kubectl kustomize {}: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8(out.stdout)?;
    let mut objects = Vec::new();
    for document in serde_yaml_ng::Deserializer::from_str(&text) {
        let object = serde_json::Value::deserialize(document)?;
        if !object.is_null() {
            objects.push(object);
        }
    }
    Ok(objects)
}

/// Where the generated objects live (beside their sources, listed by alerts/kustomization.yaml).
pub const PROMETHEUS_RULE: &str = "alerts/prometheusrule.yaml";
pub const ALERTMANAGER_CONFIG: &str = "alerts/alertmanagerconfig.yaml";

/// The Secret holding the PagerDuty Events API v2 routing key (key `routing-key`).
pub const PAGERDUTY_SECRET: &str = "surge-pagerduty";
/// The Secret holding each webhook receiver's URL, keyed by receiver name.
pub const WEBHOOK_SECRET: &str = "surge-alert-webhooks";

/// Label Prometheus' rule and Alertmanager's config selectors can match.
const SELECTOR_LABEL: (&str, &str) = ("surge.dev/monitoring", "true");

fn header(source: &str) -> String {
    format!(
        "# Generated from {source} by `surge-stack manifests`: edit that file and run it again.\n\
         # A test fails while this copy differs from what the source generates.\n"
    )
}

fn object(api_version: &str, kind: &str, name: &str, spec: Value) -> Value {
    let mut labels = Mapping::new();
    labels.insert(SELECTOR_LABEL.0.into(), SELECTOR_LABEL.1.into());
    let mut metadata = Mapping::new();
    metadata.insert("name".into(), name.into());
    metadata.insert("labels".into(), Value::Mapping(labels));
    let mut out = Mapping::new();
    out.insert("apiVersion".into(), api_version.into());
    out.insert("kind".into(), kind.into());
    out.insert("metadata".into(), Value::Mapping(metadata));
    out.insert("spec".into(), spec);
    Value::Mapping(out)
}

/// The namespace the shop, its PrometheusRule and its AlertmanagerConfig live in (the base
/// kustomization's `namespace`; a test holds the two equal).
pub const NAMESPACE: &str = "shop";

/// The `namespace` label every alert of the PrometheusRule carries. prometheus-operator
/// (`alertmanagerConfigMatcherStrategy: OnNamespace`, its default) routes an
/// AlertmanagerConfig's alerts, and applies its inhibitions, only to alerts with the config's
/// namespace: an alert keeps its series' namespace and takes ours where its expression has
/// none (`vector(1)`, `absent()`, sums over a database), instead of falling to the cluster's
/// default receiver.
pub fn alert_namespace_label() -> String {
    format!("{{{{ with $labels.namespace }}}}{{{{ . }}}}{{{{ else }}}}{NAMESPACE}{{{{ end }}}}")
}

/// `alerts/rules.yml` as a `PrometheusRule`: the rule groups, each alert with the `namespace`
/// label [`alert_namespace_label`] (one that sets its own keeps it).
pub fn prometheus_rule(rules_yaml: &str) -> anyhow::Result<String> {
    let rules: Value = serde_yaml_ng::from_str(rules_yaml).context("rules.yml")?;
    let mut groups = rules
        .get("groups")
        .filter(|g| g.is_sequence())
        .context("rules.yml: no `groups` list")?
        .clone();
    for group in groups.as_sequence_mut().into_iter().flatten() {
        let Some(rules) = group.get_mut("rules").and_then(Value::as_sequence_mut) else {
            continue;
        };
        for rule in rules.iter_mut().filter(|r| r.get("alert").is_some()) {
            let rule = rule
                .as_mapping_mut()
                .context("rules.yml: a rule is not a mapping")?;
            let labels = rule
                .entry("labels".into())
                .or_insert_with(|| Value::Mapping(Mapping::new()))
                .as_mapping_mut()
                .context("rules.yml: an alert's labels are not a mapping")?;
            if !labels.contains_key("namespace") {
                labels.insert("namespace".into(), alert_namespace_label().into());
            }
        }
    }
    let mut spec = Mapping::new();
    spec.insert("groups".into(), groups);
    let rule = object(
        "monitoring.coreos.com/v1",
        "PrometheusRule",
        "surge",
        Value::Mapping(spec),
    );
    Ok(header("alerts/rules.yml") + &serde_yaml_ng::to_string(&rule)?)
}

/// `alerts/alertmanager.yml` as an `AlertmanagerConfig` (monitoring.coreos.com/v1alpha1).
/// Anything the file holds that has no mapping is an error naming it, never dropped.
pub fn alertmanager_config(alertmanager_yaml: &str) -> anyhow::Result<String> {
    let config: Value = serde_yaml_ng::from_str(alertmanager_yaml).context("alertmanager.yml")?;
    let config = config
        .as_mapping()
        .context("alertmanager.yml: not a mapping")?;
    let mut pagerduty_url = None;
    for (key, value) in config {
        match key.as_str() {
            Some("global") => {
                for (k, v) in value.as_mapping().context("global: not a mapping")? {
                    match k.as_str() {
                        Some("pagerduty_url") => pagerduty_url = v.as_str().map(str::to_string),
                        // Alertmanager-wide, set on the Alertmanager resource, not per config.
                        Some("resolve_timeout") => {}
                        other => bail!("alertmanager.yml: global.{other:?} has no mapping"),
                    }
                }
            }
            Some("route" | "inhibit_rules" | "receivers") => {}
            other => bail!("alertmanager.yml: {other:?} has no mapping"),
        }
    }
    let route = config.get("route").context("alertmanager.yml: no route")?;
    let mut spec = Mapping::new();
    spec.insert("route".into(), convert_route(route, "route")?);
    let mut inhibit = Vec::new();
    for (i, rule) in seq(config.get("inhibit_rules"))?.iter().enumerate() {
        inhibit.push(convert_inhibit(rule, &format!("inhibit_rules[{i}]"))?);
    }
    spec.insert("inhibitRules".into(), Value::Sequence(inhibit));
    let mut receivers = Vec::new();
    for (i, receiver) in seq(config.get("receivers"))?.iter().enumerate() {
        receivers.push(convert_receiver(
            receiver,
            &format!("receivers[{i}]"),
            pagerduty_url.as_deref(),
        )?);
    }
    spec.insert("receivers".into(), Value::Sequence(receivers));
    let amc = object(
        "monitoring.coreos.com/v1alpha1",
        "AlertmanagerConfig",
        "surge",
        Value::Mapping(spec),
    );
    // YAML 1.1 readers (PyYAML) take a bare `=` for the "value" tag: quote the operator.
    let text = serde_yaml_ng::to_string(&amc)?.replace("matchType: =\n", "matchType: '='\n");
    Ok(header("alerts/alertmanager.yml") + &text)
}

fn seq(value: Option<&Value>) -> anyhow::Result<&[Value]> {
    match value {
        None => Ok(&[]),
        Some(v) => v
            .as_sequence()
            .map(Vec::as_slice)
            .ok_or_else(|| anyhow!("expected a list, got {v:?}")),
    }
}

fn entries<'a>(value: &'a Value, at: &str) -> anyhow::Result<Vec<(&'a str, &'a Value)>> {
    value
        .as_mapping()
        .with_context(|| format!("{at}: not a mapping"))?
        .iter()
        .map(|(k, v)| Ok((k.as_str().with_context(|| format!("{at}: key {k:?}"))?, v)))
        .collect()
}

/// One Alertmanager matcher (`severity = "page"`, `alertname =~ "A|B"`) as the CRD's
/// `{name, matchType, value}`.
pub fn matcher(text: &str) -> anyhow::Result<Value> {
    let text = text.trim();
    let name_end = text
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .with_context(|| format!("matcher {text:?}: no operator"))?;
    let (name, rest) = text.split_at(name_end);
    let rest = rest.trim_start();
    let op = ["=~", "!~", "!=", "="]
        .into_iter()
        .find(|op| rest.starts_with(op))
        .with_context(|| format!("matcher {text:?}: no operator"))?;
    let raw = rest[op.len()..].trim();
    let value = match raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        Some(quoted) => quoted.replace("\\\"", "\"").replace("\\\\", "\\"),
        None => raw.to_string(),
    };
    if name.is_empty() {
        bail!("matcher {text:?}: no label name");
    }
    let mut m = Mapping::new();
    m.insert("name".into(), name.into());
    m.insert("matchType".into(), op.into());
    m.insert("value".into(), value.into());
    Ok(Value::Mapping(m))
}

fn matchers(value: &Value, at: &str) -> anyhow::Result<Value> {
    let list = value
        .as_sequence()
        .with_context(|| format!("{at}: not a list"))?;
    list.iter()
        .map(|m| matcher(m.as_str().with_context(|| format!("{at}: not a string"))?))
        .collect::<anyhow::Result<Vec<_>>>()
        .map(Value::Sequence)
        .with_context(|| at.to_string())
}

fn convert_route(route: &Value, at: &str) -> anyhow::Result<Value> {
    let mut out = Mapping::new();
    for (key, value) in entries(route, at)? {
        let (name, converted) = match key {
            "receiver" => ("receiver", value.clone()),
            "group_by" => ("groupBy", value.clone()),
            "group_wait" => ("groupWait", value.clone()),
            "group_interval" => ("groupInterval", value.clone()),
            "repeat_interval" => ("repeatInterval", value.clone()),
            "continue" => ("continue", value.clone()),
            "matchers" => ("matchers", matchers(value, &format!("{at}.matchers"))?),
            "routes" => {
                let mut children = Vec::new();
                for (i, child) in seq(Some(value))?.iter().enumerate() {
                    children.push(convert_route(child, &format!("{at}.routes[{i}]"))?);
                }
                ("routes", Value::Sequence(children))
            }
            other => bail!("alertmanager.yml: {at}.{other} has no mapping"),
        };
        out.insert(name.into(), converted);
    }
    Ok(Value::Mapping(out))
}

fn convert_inhibit(rule: &Value, at: &str) -> anyhow::Result<Value> {
    let mut out = Mapping::new();
    for (key, value) in entries(rule, at)? {
        let (name, converted) = match key {
            "source_matchers" => ("sourceMatch", matchers(value, &format!("{at}.{key}"))?),
            "target_matchers" => ("targetMatch", matchers(value, &format!("{at}.{key}"))?),
            "equal" => ("equal", value.clone()),
            other => bail!("alertmanager.yml: {at}.{other} has no mapping"),
        };
        out.insert(name.into(), converted);
    }
    Ok(Value::Mapping(out))
}

fn secret_key(name: &str, key: &str) -> Value {
    let mut m = Mapping::new();
    m.insert("name".into(), name.into());
    m.insert("key".into(), key.into());
    Value::Mapping(m)
}

fn convert_receiver(
    receiver: &Value,
    at: &str,
    pagerduty_url: Option<&str>,
) -> anyhow::Result<Value> {
    let name = receiver
        .get("name")
        .and_then(Value::as_str)
        .with_context(|| format!("{at}: no name"))?;
    let mut out = Mapping::new();
    out.insert("name".into(), name.into());
    for (key, value) in entries(receiver, at)? {
        match key {
            "name" => {}
            "pagerduty_configs" => {
                let mut configs = Vec::new();
                for (i, pd) in seq(Some(value))?.iter().enumerate() {
                    configs.push(convert_pagerduty(
                        pd,
                        &format!("{at}.{key}[{i}]"),
                        pagerduty_url,
                    )?);
                }
                out.insert("pagerdutyConfigs".into(), Value::Sequence(configs));
            }
            "webhook_configs" => {
                let mut configs = Vec::new();
                for (i, hook) in seq(Some(value))?.iter().enumerate() {
                    let hook_at = format!("{at}.{key}[{i}]");
                    let mut c = Mapping::new();
                    for (k, v) in entries(hook, &hook_at)? {
                        match k {
                            // A cluster's chat bridge is not the local one: its URL comes
                            // from a Secret, keyed by the receiver's name.
                            "url" => {
                                c.insert("urlSecret".into(), secret_key(WEBHOOK_SECRET, name));
                            }
                            "send_resolved" => {
                                c.insert("sendResolved".into(), v.clone());
                            }
                            other => bail!("alertmanager.yml: {hook_at}.{other} has no mapping"),
                        }
                    }
                    configs.push(Value::Mapping(c));
                }
                out.insert("webhookConfigs".into(), Value::Sequence(configs));
            }
            other => bail!("alertmanager.yml: {at}.{other} has no mapping"),
        }
    }
    Ok(Value::Mapping(out))
}

fn convert_pagerduty(pd: &Value, at: &str, url: Option<&str>) -> anyhow::Result<Value> {
    let mut out = Mapping::new();
    if let Some(url) = url {
        out.insert("url".into(), url.into());
    }
    for (key, value) in entries(pd, at)? {
        match key {
            "routing_key_file" => {
                out.insert(
                    "routingKey".into(),
                    secret_key(PAGERDUTY_SECRET, "routing-key"),
                );
            }
            "send_resolved" => {
                out.insert("sendResolved".into(), value.clone());
            }
            "severity" | "description" | "component" | "group" | "class" => {
                out.insert(key.into(), value.clone());
            }
            "details" => {
                let mut details = Vec::new();
                for (k, v) in entries(value, &format!("{at}.details"))? {
                    let mut d = Mapping::new();
                    d.insert("key".into(), k.into());
                    d.insert("value".into(), v.clone());
                    details.push(Value::Mapping(d));
                }
                out.insert("details".into(), Value::Sequence(details));
            }
            "links" => {
                let mut links = Vec::new();
                for (i, link) in seq(Some(value))?.iter().enumerate() {
                    let link_at = format!("{at}.links[{i}]");
                    let mut l = Mapping::new();
                    for (k, v) in entries(link, &link_at)? {
                        match k {
                            "href" => l.insert("href".into(), v.clone()),
                            "text" => l.insert("alt".into(), v.clone()),
                            other => bail!("alertmanager.yml: {link_at}.{other} has no mapping"),
                        };
                    }
                    links.push(Value::Mapping(l));
                }
                out.insert("pagerDutyLinkConfigs".into(), Value::Sequence(links));
            }
            other => bail!("alertmanager.yml: {at}.{other} has no mapping"),
        }
    }
    Ok(Value::Mapping(out))
}

/// Every generated file under `repo`: (path, content).
pub fn generated(repo: &Path) -> anyhow::Result<Vec<(PathBuf, String)>> {
    let read =
        |p: &str| std::fs::read_to_string(repo.join(p)).with_context(|| format!("reading {p}"));
    Ok(vec![
        (
            repo.join(PROMETHEUS_RULE),
            prometheus_rule(&read("alerts/rules.yml")?)?,
        ),
        (
            repo.join(ALERTMANAGER_CONFIG),
            alertmanager_config(&read("alerts/alertmanager.yml")?)?,
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(text: &str) -> Value {
        serde_yaml_ng::from_str(text).unwrap_or(Value::Null)
    }

    #[test]
    fn matchers_parse_every_operator_and_quoting() -> anyhow::Result<()> {
        for (text, name, op, value) in [
            (r#"severity = "page""#, "severity", "=", "page"),
            (r#"alertname =~ "A|B""#, "alertname", "=~", "A|B"),
            ("job!=x", "job", "!=", "x"),
            (r#"topic !~ ".+[.]dlq""#, "topic", "!~", ".+[.]dlq"),
            (r#"summary = "say \"hi\"""#, "summary", "=", r#"say "hi""#),
        ] {
            let m = matcher(text)?;
            assert_eq!(
                (
                    m["name"].as_str(),
                    m["matchType"].as_str(),
                    m["value"].as_str()
                ),
                (Some(name), Some(op), Some(value)),
                "{text}"
            );
        }
        assert!(matcher("no operator here").is_err());
        assert!(matcher(r#"= "x""#).is_err());
        Ok(())
    }

    #[test]
    fn receivers_map_secrets_details_and_links() -> anyhow::Result<()> {
        let text = alertmanager_config(
            r#"
global: {pagerduty_url: "https://events.example/v2/enqueue", resolve_timeout: 5m}
route:
  receiver: chat
  group_by: [alertname]
  routes:
    - receiver: pager
      matchers: ['severity = "page"']
inhibit_rules:
  - source_matchers: ['alertname = "A"']
    target_matchers: ['alertname = "B"']
    equal: [job]
receivers:
  - name: pager
    pagerduty_configs:
      - routing_key_file: /etc/key
        send_resolved: true
        severity: critical
        details: {firing: "1", runbook: "r"}
        links: [{href: "h", text: "t"}]
  - name: chat
    webhook_configs: [{url: "http://127.0.0.1:1/x", send_resolved: true}]
  - name: nowhere
"#,
        )?;
        let amc = yaml(&text);
        let spec = &amc["spec"];
        assert_eq!(spec["route"]["groupBy"], yaml("[alertname]"));
        assert_eq!(
            spec["route"]["routes"][0]["matchers"][0],
            yaml("{name: severity, matchType: '=', value: page}")
        );
        assert_eq!(
            spec["inhibitRules"][0],
            yaml(
                "{sourceMatch: [{name: alertname, matchType: '=', value: A}], \
                 targetMatch: [{name: alertname, matchType: '=', value: B}], equal: [job]}"
            )
        );
        let pd = &spec["receivers"][0]["pagerdutyConfigs"][0];
        assert_eq!(
            pd["routingKey"],
            yaml("{name: surge-pagerduty, key: routing-key}")
        );
        assert_eq!(pd["url"], yaml("https://events.example/v2/enqueue"));
        assert_eq!(
            pd["details"],
            yaml("[{key: firing, value: '1'}, {key: runbook, value: r}]")
        );
        assert_eq!(pd["pagerDutyLinkConfigs"], yaml("[{href: h, alt: t}]"));
        let hook = &spec["receivers"][1]["webhookConfigs"][0];
        assert_eq!(
            hook,
            &yaml("{urlSecret: {name: surge-alert-webhooks, key: chat}, sendResolved: true}")
        );
        assert_eq!(spec["receivers"][2], yaml("{name: nowhere}"));
        Ok(())
    }

    #[test]
    fn what_has_no_mapping_is_an_error_naming_it() {
        for (text, named) in [
            (
                "route: {receiver: a, mute_time_intervals: [x]}",
                "mute_time_intervals",
            ),
            (
                "route: {receiver: a}\nreceivers: [{name: a, email_configs: [{to: x}]}]",
                "email_configs",
            ),
            ("route: {receiver: a}\nglobal: {smtp_from: x}", "smtp_from"),
            ("route: {receiver: a}\ntemplates: [x]", "templates"),
        ] {
            let error = alertmanager_config(text)
                .err()
                .map(|e| format!("{e:#}"))
                .unwrap_or_default();
            assert!(error.contains(named), "{text}: {error:?}");
        }
    }

    #[test]
    fn the_rule_groups_pass_through_with_the_namespace_label() -> anyhow::Result<()> {
        let rules = "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: |\n          up == 0\n          and on (job) x\n        for: 5m\n      - record: r\n        expr: up\n      - alert: B\n        expr: up\n        labels: {namespace: elsewhere, severity: page}\n";
        let rule = yaml(&prometheus_rule(rules)?);
        let mut want = yaml(rules)["groups"].clone();
        want[0]["rules"][0]["labels"] =
            yaml(&format!("{{namespace: '{}'}}", alert_namespace_label()));
        assert_eq!(rule["spec"]["groups"], want);
        assert_eq!(rule["kind"], yaml("PrometheusRule"));
        Ok(())
    }
}
