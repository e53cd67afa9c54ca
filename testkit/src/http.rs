//! Scraping exposition text and reading series out of it, as tests check what `/metrics`
//! said.

/// GET `/metrics` from `addr` (`host:port`); an error unless it answers 200.
pub fn scrape(addr: &str) -> anyhow::Result<String> {
    let (status, _, body) = surge_servers::http::get(addr, "/metrics", None)?;
    anyhow::ensure!(status == 200, "scrape of {addr} answered {status}");
    Ok(body)
}

/// The value of the series whose text (name and labels, as written) is `series`.
pub fn series_value(body: &str, series: &str) -> Option<f64> {
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// `surge_source_up` of one source target, if the exposition has it.
pub fn source_up(body: &str, source: &str, target: &str) -> Option<bool> {
    series_value(
        body,
        &format!("surge_source_up{{source=\"{source}\",target=\"{target}\"}}"),
    )
    .map(|v| v >= 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_are_found_by_their_exact_text() {
        let body = "surge_source_up{source=\"kafka\",target=\"shop\"} 1\n\
                    surge_source_up{source=\"kafka\",target=\"shop2\"} 0\n";
        assert_eq!(source_up(body, "kafka", "shop"), Some(true));
        assert_eq!(source_up(body, "kafka", "shop2"), Some(false));
        assert_eq!(source_up(body, "kafka", "sho"), None);
    }
}
