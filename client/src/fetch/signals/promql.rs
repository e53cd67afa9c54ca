//! Small PromQL builders the recipes are written with: every series selector gets the
//! context's label selector, labels are renamed with `label_replace`, and each recipe's
//! answer is tagged with the Surge family it stands for.

/// The label a recipe's series carry to say which Surge family they are (taken off again by
/// the parser: see [`super::FAMILY_LABEL`]).
use super::{DERIVED_LABEL, FAMILY_LABEL};

/// What every series selector of a context's queries gets: `cluster="eu-1"`, or nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector(String);

impl Selector {
    /// A context's selector: label matchers as PromQL writes them inside braces
    /// (`cluster="eu-1",env=~"prod|staging"`). Checked for the shape of matchers, not
    /// against Prometheus: an error names what is wrong.
    pub fn parse(text: &str) -> Result<Selector, String> {
        let text = text
            .trim()
            .trim_start_matches('{')
            .trim_end_matches('}')
            .trim();
        if text.is_empty() {
            return Ok(Selector::default());
        }
        let mut rest = text;
        while !rest.is_empty() {
            let name_end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            let name = &rest[..name_end];
            if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
                return Err(format!(
                    "selector {text:?}: expected a label name at {rest:?}"
                ));
            }
            rest = rest[name_end..].trim_start();
            let op = ["=~", "!~", "!=", "="]
                .into_iter()
                .find(|op| rest.starts_with(op))
                .ok_or_else(|| {
                    format!("selector {text:?}: expected =, !=, =~ or !~ after {name}")
                })?;
            rest = rest[op.len()..].trim_start();
            let quote = rest
                .chars()
                .next()
                .filter(|c| *c == '"' || *c == '\'')
                .ok_or_else(|| format!("selector {text:?}: the value of {name} must be quoted"))?;
            let mut escaped = false;
            let close = rest[1..]
                .char_indices()
                .find(|&(_, c)| {
                    let end = c == quote && !escaped;
                    escaped = c == '\\' && !escaped;
                    end
                })
                .map(|(i, _)| i + 1)
                .ok_or_else(|| format!("selector {text:?}: the value of {name} is not closed"))?;
            rest = rest[close + 1..].trim_start();
            if let Some(after) = rest.strip_prefix(',') {
                rest = after.trim_start();
            } else if !rest.is_empty() {
                return Err(format!(
                    "selector {text:?}: expected a comma before {rest:?}"
                ));
            }
        }
        Ok(Selector(text.trim_end_matches(',').to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `metric{matchers,selector}`.
    pub fn series(&self, metric: &str, matchers: &str) -> String {
        let parts: Vec<&str> = [matchers, self.0.as_str()]
            .into_iter()
            .filter(|p| !p.is_empty())
            .collect();
        if parts.is_empty() {
            metric.to_string()
        } else {
            format!("{metric}{{{}}}", parts.join(","))
        }
    }
}

/// `label_replace(expr, to, "$1", from, "(.+)")`: `to` takes `from`'s value where it has one.
pub fn copy_label(expr: &str, to: &str, from: &str) -> String {
    format!("label_replace({expr}, \"{to}\", \"$1\", \"{from}\", \"(.+)\")")
}

/// `expr` with the label `name` set to `value` on every series.
pub fn set_label(expr: &str, name: &str, value: &str) -> String {
    format!("label_replace({expr}, \"{name}\", \"{value}\", \"\", \"\")")
}

/// `expr` with the label `name` set to `value`, any value (quoted, `$` kept literal).
pub fn set_literal(expr: &str, name: &str, value: &str) -> String {
    let value = crate::fetch::plan::quote(&value.replace('$', "$$"));
    format!("label_replace({expr}, \"{name}\", {value}, \"\", \"\")")
}

/// `max by (labels) (expr)`: one series per key, duplicates (two scrapes of one exporter,
/// two replicas of kube-state-metrics) folded.
pub fn max_by(labels: &[&str], expr: &str) -> String {
    format!("max by ({}) ({expr})", labels.join(", "))
}

pub fn sum_by(labels: &[&str], expr: &str) -> String {
    format!("sum by ({}) ({expr})", labels.join(", "))
}

/// Per scrape target (`job`, `instance`, and `pod` where there is one) that has served
/// `marker` in the last hour: Prometheus' own `up` for it. When an exporter stops answering,
/// its series end at once (Prometheus marks them stale) and only `up` says why.
pub fn scrape_up(sel: &Selector, marker: &str) -> String {
    format!(
        "max by (job, instance, pod) ({}) and on (job, instance, pod) group by (job, instance, pod) (last_over_time({}[1h]))",
        sel.series("up", ""),
        sel.series(marker, "")
    )
}

/// A recipe's answer tagged with the family it stands for (and, when derived, its rule).
pub fn tagged(expr: &str, family: &str, derived: Option<&str>) -> String {
    let named = set_label(expr, FAMILY_LABEL, family);
    match derived {
        Some(rule) => set_label(&named, DERIVED_LABEL, rule),
        None => named,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_are_checked_and_added_to_every_series() {
        let s = Selector::parse(r#"cluster="eu-1", env=~'prod|staging'"#).expect("good");
        assert_eq!(
            s.series("up", r#"job="x""#),
            r#"up{job="x",cluster="eu-1", env=~'prod|staging'}"#
        );
        assert_eq!(Selector::parse("{}").expect("good").series("up", ""), "up");
        assert_eq!(
            Selector::parse(r#"{a="b\"c"}"#).expect("good").as_str(),
            r#"a="b\"c""#
        );
        for (bad, says) in [
            ("cluster", "expected =, !=, =~ or !~ after cluster"),
            ("cluster=eu", "must be quoted"),
            (r#"cluster="eu"#, "is not closed"),
            (r#"cluster="eu" env="x""#, "expected a comma"),
            (r#"="x""#, "expected a label name"),
            (r#"1a="x""#, "expected a label name"),
        ] {
            let err = Selector::parse(bad).expect_err("refused");
            assert!(err.contains(says), "{bad}: {err}");
        }
    }
}
