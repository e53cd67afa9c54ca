//! `match[]` on `/metrics`: series selectors as Prometheus' `/federate` takes them
//! (`name{label="value",other=~"re"}`), so a reader asks for only the series it shows. The
//! four matchers (`=`, `!=`, `=~`, `!~`) over the name (`__name__`) and labels, a label the
//! series lacks reading as empty, regexes anchored, as in PromQL.

use regex::Regex;

use crate::family::Family;

/// How one label is compared.
#[derive(Debug, Clone)]
enum Op {
    Equal(String),
    NotEqual(String),
    Matches(Regex),
    NotMatches(Regex),
}

impl Op {
    fn admits(&self, value: &str) -> bool {
        match self {
            Op::Equal(v) => value == v,
            Op::NotEqual(v) => value != v,
            Op::Matches(r) => r.is_match(value),
            Op::NotMatches(r) => !r.is_match(value),
        }
    }
}

/// One parsed selector: every matcher must hold.
#[derive(Debug, Clone)]
pub struct Selector {
    name: Vec<Op>,
    labels: Vec<(String, Op)>,
}

/// Series selectors, any of which admits a series (a union, as `match[]` is in Prometheus).
#[derive(Debug, Clone, Default)]
pub struct Selectors(Vec<Selector>);

impl Selectors {
    /// Parse every `match[]` value; an error names the selector and what is wrong with it.
    pub fn parse<'a>(texts: impl IntoIterator<Item = &'a str>) -> Result<Selectors, String> {
        texts
            .into_iter()
            .map(|t| Selector::parse(t).map_err(|e| format!("match[] {t:?}: {e}")))
            .collect::<Result<Vec<_>, _>>()
            .map(Selectors)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The selectors that may admit a series of `family` (those whose name matchers hold).
    pub(crate) fn for_family(&self, family: &Family) -> Vec<&Selector> {
        self.0
            .iter()
            .filter(|s| s.name.iter().all(|op| op.admits(family.exposed)))
            .collect()
    }
}

impl Selector {
    /// Whether a series of a family this selector was picked for has these labels.
    pub(crate) fn admits<'n, 'v>(
        &self,
        labels: impl Iterator<Item = (&'n str, &'v str)> + Clone,
    ) -> bool {
        self.labels.iter().all(|(name, op)| {
            let value = labels
                .clone()
                .find(|(n, _)| n == name)
                .map_or("", |(_, v)| v);
            op.admits(value)
        })
    }

    fn parse(text: &str) -> Result<Selector, String> {
        let mut chars = Cursor { text, at: 0 };
        chars.skip_space();
        let mut selector = Selector {
            name: Vec::new(),
            labels: Vec::new(),
        };
        let name = chars.identifier(true);
        if !name.is_empty() {
            selector.name.push(Op::Equal(name.to_string()));
        }
        chars.skip_space();
        if chars.eat('{') {
            loop {
                chars.skip_space();
                if chars.eat('}') {
                    break;
                }
                let label = chars.identifier(false);
                if label.is_empty() {
                    return Err(format!("a label name expected at {}", chars.where_()));
                }
                chars.skip_space();
                let op = chars.operator()?;
                chars.skip_space();
                let value = chars.string()?;
                let op = match op {
                    "=" => Op::Equal(value),
                    "!=" => Op::NotEqual(value),
                    regex => {
                        let anchored = Regex::new(&format!("^(?:{value})$")).map_err(|e| {
                            // The regex crate's message draws the pattern over lines.
                            let e = e.to_string();
                            let why = e.lines().last().unwrap_or_default().trim().to_string();
                            format!("label {label}: bad regex: {why}")
                        })?;
                        if regex == "=~" {
                            Op::Matches(anchored)
                        } else {
                            Op::NotMatches(anchored)
                        }
                    }
                };
                if label == "__name__" {
                    selector.name.push(op);
                } else {
                    selector.labels.push((label.to_string(), op));
                }
                chars.skip_space();
                if chars.eat(',') {
                    continue;
                }
                if chars.eat('}') {
                    break;
                }
                return Err(format!("`,` or `}}` expected at {}", chars.where_()));
            }
        }
        chars.skip_space();
        if !chars.rest().is_empty() {
            return Err(format!(
                "unexpected {:?} at {}",
                chars.rest(),
                chars.where_()
            ));
        }
        if selector.name.is_empty() && selector.labels.is_empty() {
            return Err("an empty selector (give a metric name or a matcher)".into());
        }
        Ok(selector)
    }
}

/// A position in a selector's text.
struct Cursor<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Cursor<'a> {
    fn rest(&self) -> &'a str {
        &self.text[self.at..]
    }

    fn where_(&self) -> String {
        format!("offset {}", self.at)
    }

    fn skip_space(&mut self) {
        let rest = self.rest();
        self.at += rest.len() - rest.trim_start().len();
    }

    fn eat(&mut self, c: char) -> bool {
        if self.rest().starts_with(c) {
            self.at += c.len_utf8();
            true
        } else {
            false
        }
    }

    /// A metric name (`[a-zA-Z_:][a-zA-Z0-9_:]*`) or, without colons, a label name.
    fn identifier(&mut self, metric: bool) -> &'a str {
        let rest = self.rest();
        let ok = |i: usize, c: char| {
            c.is_ascii_alphabetic()
                || c == '_'
                || (metric && c == ':')
                || (i > 0 && c.is_ascii_digit())
        };
        let len = rest
            .char_indices()
            .find(|(i, c)| !ok(*i, *c))
            .map_or(rest.len(), |(i, _)| i);
        self.at += len;
        &rest[..len]
    }

    fn operator(&mut self) -> Result<&'static str, String> {
        for op in ["=~", "!~", "!=", "="] {
            if self.rest().starts_with(op) {
                self.at += op.len();
                return Ok(op);
            }
        }
        Err(format!("one of = != =~ !~ expected at {}", self.where_()))
    }

    /// A quoted string (`"…"` or `'…'`) with PromQL's escapes (`\\`, `\"`, `\'`, `\n`, `\t`).
    fn string(&mut self) -> Result<String, String> {
        let start = self.where_();
        let quote = match self.rest().chars().next() {
            Some(q @ ('"' | '\'')) => q,
            _ => return Err(format!("a quoted value expected at {start}")),
        };
        self.at += 1;
        let mut out = String::new();
        let mut chars = self.rest().char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, 'n')) => out.push('\n'),
                    Some((_, 't')) => out.push('\t'),
                    Some((_, e @ ('\\' | '"' | '\''))) => out.push(e),
                    Some((_, other)) => {
                        return Err(format!("unknown escape \\{other} in the value at {start}"));
                    }
                    None => break,
                },
                c if c == quote => {
                    self.at += i + 1;
                    return Ok(out);
                }
                c => out.push(c),
            }
        }
        Err(format!("the value at {start} is not closed"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::kafka::{LAG, TOPIC_LAG};

    fn admits(selectors: &Selectors, family: &Family, labels: &[(&str, &str)]) -> bool {
        selectors
            .for_family(family)
            .iter()
            .any(|s| s.admits(labels.iter().copied()))
    }

    #[test]
    fn selectors_match_as_promql_does() -> Result<(), String> {
        let lag = [
            ("cluster", "shop"),
            ("group", "payment"),
            ("topic", "order-placed"),
            ("partition", "3"),
        ];
        let cases: [(&str, bool); 12] = [
            ("surge_kafka_group_lag", true),
            ("surge_kafka_group_topic_lag", false),
            (
                "{__name__=~\"surge_kafka_group_(lag|committed_offset)\"}",
                true,
            ),
            ("{__name__=~\"surge_kafka_group\"}", false),
            ("surge_kafka_group_lag{group=\"payment\"}", true),
            ("surge_kafka_group_lag{group='shipping'}", false),
            (
                "surge_kafka_group_lag{group!=\"shipping\", topic=~\"order-.*\",}",
                true,
            ),
            ("surge_kafka_group_lag{topic!~\"order-.*\"}", false),
            ("{group=\"payment\"}", true),
            // A label the series lacks reads as empty.
            ("{member=\"\"}", true),
            ("{member=~\".+\"}", false),
            ("  surge_kafka_group_lag  { partition = \"3\" }  ", true),
        ];
        for (text, want) in cases {
            let s = Selectors::parse([text])?;
            assert_eq!(admits(&s, &LAG, &lag), want, "{text}");
        }
        // A union: either selector admits.
        let s = Selectors::parse([
            "surge_kafka_group_topic_lag",
            "surge_kafka_group_lag{partition=\"3\"}",
        ])?;
        assert!(admits(&s, &LAG, &lag));
        assert!(admits(&s, &TOPIC_LAG, &[("cluster", "shop")]));
        Ok(())
    }

    #[test]
    fn a_bad_selector_is_one_line_naming_it() {
        let cases = [
            ("", "an empty selector"),
            ("{}", "an empty selector"),
            ("lag{group}", "one of = != =~ !~ expected at offset 9"),
            ("lag{group=payment}", "a quoted value expected at offset 10"),
            ("lag{group=\"payment}", "is not closed"),
            ("lag{group=~\"(\"}", "bad regex"),
            (
                "lag{group=\"a\" topic=\"b\"}",
                "`,` or `}` expected at offset 14",
            ),
            ("lag extra", "unexpected \"extra\""),
            ("lag{=\"a\"}", "a label name expected"),
            ("lag{a=\"\\q\"}", "unknown escape \\q"),
        ];
        for (text, want) in cases {
            let error = Selectors::parse([text]).err().unwrap_or_default();
            assert!(error.contains(want), "{text:?}: {error}");
            assert!(error.starts_with(&format!("match[] {text:?}: ")), "{error}");
            assert_eq!(error.lines().count(), 1, "{error}");
        }
    }
}
