//! Numbers as an on-call engineer reads them: short, unit-bearing, never a fake zero.

/// Shown for a value the sources did not give.
pub const NONE: &str = "—";

/// `0.873` → `87%`.
pub fn percent(ratio: Option<f64>) -> String {
    match ratio {
        Some(r) if r.is_finite() => format!("{:.0}%", r * 100.0),
        Some(_) => "?".into(),
        None => NONE.into(),
    }
}

/// Counts with k/M/G: `12345` → `12.3k`.
pub fn count(value: Option<f64>) -> String {
    let Some(v) = value else { return NONE.into() };
    if !v.is_finite() {
        return "?".into();
    }
    let a = v.abs();
    let (scaled, unit) = match a {
        a if a >= 1e9 => (v / 1e9, "G"),
        a if a >= 1e6 => (v / 1e6, "M"),
        a if a >= 1e4 => (v / 1e3, "k"),
        _ => (v, ""),
    };
    if unit.is_empty() {
        if (v - v.round()).abs() < 1e-9 {
            format!("{v:.0}")
        } else {
            format!("{v:.1}")
        }
    } else if scaled.abs() >= 100.0 {
        format!("{scaled:.0}{unit}")
    } else {
        format!("{scaled:.1}{unit}")
    }
}

/// A rate per second, `12.3/s`.
pub fn rate(value: Option<f64>) -> String {
    match value {
        Some(v) if v.is_finite() => format!("{}/s", count(Some(v))),
        Some(_) => "?".into(),
        None => NONE.into(),
    }
}

/// Bytes in IEC units: `1.2 MiB`.
pub fn bytes(value: Option<f64>) -> String {
    let Some(v) = value else { return NONE.into() };
    if !v.is_finite() {
        return "?".into();
    }
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut scaled = v;
    let mut unit = 0;
    while scaled.abs() >= 1024.0 && unit < UNITS.len() - 1 {
        scaled /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{scaled:.0} B")
    } else {
        format!("{scaled:.1} {}", UNITS[unit])
    }
}

/// Seconds as `45s`, `3m05s`, `2h10m`, `3d4h`; sub-second as `0.25s`.
pub fn duration(seconds: Option<f64>) -> String {
    let Some(s) = seconds else { return NONE.into() };
    if s.is_nan() || s < 0.0 {
        return "?".into();
    }
    if s.is_infinite() {
        return "∞".into();
    }
    if s < 10.0 && s.fract() != 0.0 {
        return format!("{s:.1}s");
    }
    let total = s.round() as u64;
    let (d, h, m, sec) = (
        total / 86_400,
        total / 3600 % 24,
        total / 60 % 60,
        total % 60,
    );
    match (d, h, m) {
        (0, 0, 0) => format!("{sec}s"),
        (0, 0, _) => format!("{m}m{sec:02}s"),
        (0, _, _) => format!("{h}h{m:02}m"),
        _ => format!("{d}d{h}h"),
    }
}

/// A value with at most `width` characters, cut with `…`.
pub fn fit(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    if width == 0 {
        return String::new();
    }
    let mut out: String = text.chars().take(width - 1).collect();
    out.push('…');
    out
}

/// `text` word-wrapped to `width` columns in at most `max_lines` lines (the last cut with `…`
/// if more remains); continuation lines start with `indent`.
pub fn wrap(text: &str, width: usize, max_lines: usize, indent: &str) -> Vec<String> {
    if text.chars().count() <= width {
        return vec![text.to_string()];
    }
    let rest = text.trim_start();
    let mut line = text[..text.len() - rest.len()].to_string();
    let mut has_word = false;
    let mut lines: Vec<String> = Vec::new();
    for word in rest.split_whitespace() {
        if has_word && line.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::replace(&mut line, indent.to_string()));
            has_word = false;
        }
        if has_word {
            line.push(' ');
        }
        line.push_str(word);
        has_word = true;
    }
    if has_word {
        lines.push(line);
    }
    if lines.len() > max_lines {
        let tail = lines.split_off(max_lines - 1);
        let joined = tail
            .iter()
            .map(|l| l.trim_start())
            .collect::<Vec<_>>()
            .join(" ");
        lines.push(format!("{indent}{joined}"));
    }
    lines.into_iter().map(|l| fit(&l, width)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(percent(Some(0.873)), "87%");
        assert_eq!(percent(None), "—");
        assert_eq!(count(Some(12345.0)), "12.3k");
        assert_eq!(count(Some(950.0)), "950");
        assert_eq!(count(Some(2.5)), "2.5");
        assert_eq!(count(Some(123_456_789.0)), "123M");
        assert_eq!(rate(Some(1500.0)), "1500/s");
        assert_eq!(bytes(Some(1_572_864.0)), "1.5 MiB");
        assert_eq!(bytes(Some(512.0)), "512 B");
        assert_eq!(duration(Some(45.0)), "45s");
        assert_eq!(duration(Some(185.0)), "3m05s");
        assert_eq!(duration(Some(7800.0)), "2h10m");
        assert_eq!(duration(Some(0.25)), "0.2s");
        assert_eq!(duration(Some(f64::INFINITY)), "∞");
        assert_eq!(duration(Some(-1.0)), "?");
        assert_eq!(fit("order-placed", 6), "order…");
    }

    #[test]
    fn wrap_breaks_at_words_indents_and_caps() {
        let text = " ⚠ prometheus is failing: unauthorized (HTTP 401): check user oncall and the password in /run/secrets/prometheus";
        let lines = wrap(text, 40, 2, "   ");
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines.iter().all(|l| l.chars().count() <= 40), "{lines:?}");
        assert!(
            lines[1].starts_with("   ") && lines[1].ends_with('…'),
            "{lines:?}"
        );
        assert_eq!(wrap("short", 40, 2, "   "), ["short"]);
        let all = wrap(text, 200, 2, "   ");
        assert_eq!(all, [text]);
    }
}
