//! Exposition text (Prometheus 0.0.4 or OpenMetrics) → `Metrics`, for direct mode.
//!
//! `prometheus-parse` splits lines (`LineInfo::parse`); everything it gets wrong is corrected
//! here, each with a test: its label parser splits on every `,` and `=` and never unescapes
//! (`group="a,b"` or `pay\"ment` would come back wrong), it reads `Nan`/`+Inf` only in Go's
//! spelling, and `Scrape::parse` drops counter types for OpenMetrics. So labels are parsed
//! here with proper quoting and escapes, values accept every spelling the formats allow,
//! `_created` series (timestamps, not values) are skipped, and a line that cannot be read
//! exactly is skipped and counted — never turned into a wrong number.

use prometheus_parse::LineInfo;

use crate::model::{Labels, Metrics};

/// What one scrape yielded.
#[derive(Debug, Default)]
pub struct Parsed {
    pub metrics: Metrics,
    /// Lines that were neither comments nor readable samples.
    pub skipped: usize,
    pub first_bad_line: Option<String>,
}

/// Parse a `{...}` label body: `a="x",b="y\"z"` (trailing comma allowed).
pub fn parse_labels(body: &str) -> Result<Labels, String> {
    let mut labels = Labels::new();
    let bytes = body.as_bytes();
    let mut i = 0;
    loop {
        while i < bytes.len() && (bytes[i] == b' ' || bytes[i] == b',') {
            i += 1;
        }
        if i >= bytes.len() {
            return Ok(labels);
        }
        let start = i;
        while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
            i += 1;
        }
        let name = &body[start..i];
        if name.is_empty() || name.as_bytes()[0].is_ascii_digit() {
            return Err(format!("bad label name at {:?}", &body[start..]));
        }
        while i < bytes.len() && bytes[i] == b' ' {
            i += 1;
        }
        if bytes.get(i) != Some(&b'=') {
            return Err(format!("label {name}: expected '='"));
        }
        i += 1;
        while i < bytes.len() && bytes[i] == b' ' {
            i += 1;
        }
        if bytes.get(i) != Some(&b'"') {
            return Err(format!("label {name}: expected a quoted value"));
        }
        i += 1;
        let mut value = String::new();
        let mut chars = body[i..].char_indices();
        let mut closed = false;
        while let Some((offset, c)) = chars.next() {
            match c {
                '"' => {
                    i += offset + 1;
                    closed = true;
                    break;
                }
                '\\' => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, other)) => {
                        value.push('\\');
                        value.push(other);
                    }
                    None => return Err(format!("label {name}: dangling escape")),
                },
                c => value.push(c),
            }
        }
        if !closed {
            return Err(format!("label {name}: unterminated value"));
        }
        if labels.insert(name.to_string(), value).is_some() {
            return Err(format!("label {name} given twice"));
        }
    }
}

/// A sample value in either format's spelling.
pub fn parse_value(text: &str) -> Result<f64, String> {
    match text {
        "NaN" | "Nan" | "nan" => Ok(f64::NAN),
        "+Inf" | "Inf" | "inf" | "+inf" => Ok(f64::INFINITY),
        "-Inf" | "-inf" => Ok(f64::NEG_INFINITY),
        other => other
            .parse::<f64>()
            .map_err(|_| format!("bad value {other:?}")),
    }
}

/// Parse a whole exposition. Fails only when nothing in it is a sample or a comment.
/// Most series one exposition may carry: direct mode keeps a history per series, so an
/// answer past this is refused rather than allowed to grow the panel's memory without bound.
pub const MAX_SERIES: usize = 100_000;

pub fn parse(text: &str) -> Result<Parsed, String> {
    let mut out = Parsed::default();
    let mut understood = 0usize;
    let mut series = 0usize;
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.is_empty() {
            continue;
        }
        if trimmed.starts_with('#') {
            understood += 1;
            continue;
        }
        let sample = match LineInfo::parse(trimmed) {
            LineInfo::Sample {
                metric_name,
                labels,
                value,
                ..
            } => (|| -> Result<(String, Labels, f64), String> {
                let labels = match labels {
                    Some(body) => parse_labels(body)?,
                    None => Labels::new(),
                };
                crate::model::check_label_sizes(&labels)?;
                // The regex stops a label body at the first '}': if the line has more braces
                // than we accounted for, a value contained one and the split is wrong.
                let braces = trimmed.matches('}').count();
                let quoted_braces: usize = labels.values().map(|v| v.matches('}').count()).sum();
                if braces != usize::from(trimmed.contains('{')) + quoted_braces {
                    return Err("a label value contains '}'".into());
                }
                Ok((metric_name.to_string(), labels, parse_value(value)?))
            })(),
            _ => Err("not a sample".into()),
        };
        match sample {
            Ok((name, _, _)) if name.ends_with("_created") => understood += 1,
            Ok((name, labels, value)) => {
                understood += 1;
                series += 1;
                if series > MAX_SERIES {
                    return Err(format!(
                        "more than {MAX_SERIES} series in one exposition, refused"
                    ));
                }
                out.metrics.insert(&name, labels, value);
            }
            Err(reason) => {
                out.skipped += 1;
                if out.first_bad_line.is_none() {
                    // Control characters replaced: the line ends up in a one-line error.
                    let shown: String = trimmed
                        .chars()
                        .take(120)
                        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
                        .collect();
                    out.first_bad_line = Some(format!("{reason}: {shown}"));
                }
            }
        }
    }
    if understood == 0 && out.skipped > 0 {
        return Err(format!(
            "not a Prometheus exposition ({})",
            out.first_bad_line.clone().unwrap_or_default()
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn more_series_than_the_cap_are_refused_in_one_line() {
        let lines = |n: usize| -> String {
            (0..n)
                .map(|i| format!("surge_kafka_group_lag{{partition=\"{i}\"}} 1\n"))
                .collect()
        };
        let at_cap =
            parse(&lines(MAX_SERIES)).map(|p| p.metrics.points("surge_kafka_group_lag").len());
        assert_eq!(at_cap, Ok(MAX_SERIES));
        let error = parse(&lines(MAX_SERIES + 1)).err().unwrap_or_default();
        assert_eq!(error, "more than 100000 series in one exposition, refused");
    }

    #[test]
    fn series_with_oversized_labels_are_skipped_with_the_reason() -> Result<(), String> {
        let long = "x".repeat(crate::model::MAX_LABEL_BYTES + 1);
        let many: String = (0..=crate::model::MAX_LABELS)
            .map(|i| format!("l{i}=\"v\""))
            .collect::<Vec<_>>()
            .join(",");
        let text = format!(
            "surge_kafka_group_lag{{group=\"ok\"}} 1\n\
             surge_kafka_group_lag{{group=\"{long}\"}} 2\n\
             surge_kafka_group_lag{{{many}}} 3\n"
        );
        let parsed = parse(&text)?;
        assert_eq!(parsed.metrics.points("surge_kafka_group_lag").len(), 1);
        assert_eq!(parsed.skipped, 2);
        let first = parsed.first_bad_line.unwrap_or_default();
        assert!(
            first.starts_with("label group has a value of 4097 bytes (at most 4096)"),
            "{first}"
        );
        let at_limit = format!(
            "surge_kafka_group_lag{{group=\"{}\"}} 1\n",
            "x".repeat(crate::model::MAX_LABEL_BYTES)
        );
        assert_eq!(parse(&at_limit)?.skipped, 0);
        Ok(())
    }

    #[test]
    fn openmetrics_counters_units_eof_and_created() -> Result<(), String> {
        let text = "# HELP surge_source_errors Failed collections.\n# TYPE surge_source_errors counter\n\
                    surge_source_errors_total{source=\"kafka\",target=\"shop\"} 3\n\
                    surge_source_errors_created{source=\"kafka\",target=\"shop\"} 1.7e9\n\
                    # TYPE surge_kafka_group_topic_lag_seconds gauge\n# UNIT surge_kafka_group_topic_lag_seconds seconds\n\
                    surge_kafka_group_topic_lag_seconds{group=\"payment\",topic=\"order-placed\"} 12.5\n# EOF\n";
        let p = parse(text)?;
        assert_eq!(p.skipped, 0);
        assert_eq!(
            p.metrics
                .value("surge_source_errors_total", &[("source", "kafka")]),
            Some(3.0)
        );
        assert!(p.metrics.points("surge_source_errors_created").is_empty());
        assert_eq!(
            p.metrics.value(
                "surge_kafka_group_topic_lag_seconds",
                &[("group", "payment")]
            ),
            Some(12.5)
        );
        Ok(())
    }

    #[test]
    fn escaped_and_awkward_label_values_come_back_exact() -> Result<(), String> {
        let text = r#"m{group="pay\"ment\\x",topic="a,b=c",note="line\nbreak"} 1"#;
        let p = parse(text)?;
        let point = &p.metrics.points("m")[0];
        assert_eq!(point.labels["group"], "pay\"ment\\x");
        assert_eq!(point.labels["topic"], "a,b=c");
        assert_eq!(point.labels["note"], "line\nbreak");
        Ok(())
    }

    #[test]
    fn special_values() -> Result<(), String> {
        let p = parse("a NaN\nb +Inf\nc -Inf\nd 1e-3\ne Nan\n")?;
        assert!(p.metrics.value("a", &[]).is_some_and(f64::is_nan));
        assert_eq!(p.metrics.value("b", &[]), Some(f64::INFINITY));
        assert_eq!(p.metrics.value("c", &[]), Some(f64::NEG_INFINITY));
        assert_eq!(p.metrics.value("d", &[]), Some(0.001));
        assert!(p.metrics.value("e", &[]).is_some_and(f64::is_nan));
        Ok(())
    }

    #[test]
    fn unreadable_lines_are_skipped_and_counted_never_guessed() -> Result<(), String> {
        let text = "good{a=\"1\"} 2\nbad{a=\"1} 3\nworse{a=\"x}y\"} 4\nalso bad here\nok 5\n";
        let p = parse(text)?;
        assert_eq!(p.metrics.value("good", &[]), Some(2.0));
        assert_eq!(p.metrics.value("ok", &[]), Some(5.0));
        assert!(p.metrics.points("bad").is_empty());
        assert!(
            p.metrics.points("worse").is_empty(),
            "a '}}' in a value must not yield a number"
        );
        assert_eq!(p.skipped, 3);
        Ok(())
    }

    #[test]
    fn garbage_is_an_error_and_long_lines_within_the_limits_are_fine() {
        assert!(parse("<html><body>502 Bad Gateway</body></html>").is_err());
        assert!(parse("\u{0}\u{1}binary\u{2}").is_err());
        // 60 labels of 2 KiB each: a 120 KiB line within every limit.
        let labels: Vec<String> = (0..60)
            .map(|i| format!("l{i}=\"{}\"", "x".repeat(2048)))
            .collect();
        let long = format!("m{{{}}} 1\n", labels.join(","));
        assert_eq!(parse(&long).map(|p| p.metrics.points("m").len()), Ok(1));
        assert!(parse("").is_ok_and(|p| p.metrics.is_empty()));
    }
}
