//! What the docs say about the suite is what the code and the last full run say: the tables
//! in RELIABILITY.md are generated from a kept run that has every drill the code has, and the
//! drills' time compression is stated as the harness sets it.

use std::path::Path;

use surge_tests::alerting::repo;

/// Relative link targets of the Markdown in `text`, with any `#anchor` cut off.
fn relative_links(text: &str) -> Vec<String> {
    let link = regex::Regex::new(r"\]\(([^)\s]+)\)").expect("regex");
    link.captures_iter(text)
        .map(|c| c[1].split('#').next().unwrap_or_default().to_owned())
        .filter(|t| !t.is_empty() && !t.contains("://") && !t.starts_with("mailto:"))
        .collect()
}

/// The README is the front page, not the guide: at most 250 lines, and every file it links
/// to exists (the guide's own links are checked by `mdbook build docs`, which scripts/test
/// runs with mdbook-linkcheck2).
#[test]
fn readme_is_short_and_its_links_resolve() -> anyhow::Result<()> {
    let root = repo();
    let readme = std::fs::read_to_string(root.join("README.md"))?;
    let lines = readme.lines().count();
    assert!(lines <= 250, "README.md has {lines} lines");
    let links = relative_links(&readme);
    assert!(links.len() >= 10, "{links:?}");
    for target in &links {
        assert!(
            Path::new(&root).join(target).exists(),
            "README.md links to {target}, which does not exist"
        );
    }
    // The pages the guide includes from the README are there.
    for anchor in ["install", "cluster"] {
        assert!(
            readme.contains(&format!("<!-- ANCHOR: {anchor} -->"))
                && readme.contains(&format!("<!-- ANCHOR_END: {anchor} -->")),
            "README.md lost the {anchor} part the guide includes"
        );
    }
    Ok(())
}

#[test]
fn relative_links_are_found_and_web_links_skipped() {
    assert_eq!(
        relative_links("[a](docs/x.md#y) [b](https://e.org) [c](LICENSE)"),
        ["docs/x.md", "LICENSE"]
    );
}
use surge_tests::drill::{FAST, drill_timing};

#[test]
fn reliability_tables_are_those_of_the_last_kept_run() -> anyhow::Result<()> {
    let out = std::process::Command::new("python3")
        .arg(repo().join("scripts/doc-tables"))
        .arg("--check")
        .output()?;
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

#[test]
fn reliability_states_the_drills_time_compression_as_the_harness_sets_it() -> anyhow::Result<()> {
    let doc = std::fs::read_to_string(repo().join("RELIABILITY.md"))?;
    let timing = drill_timing();
    let secs = |d: std::time::Duration| {
        let s = d.as_secs_f64();
        if s.fract() == 0.0 {
            format!("{s:.0} s")
        } else {
            format!("{s} s")
        }
    };
    let sentences = [
        format!("every rule's `for` (and `keep_firing_for`) is divided by {FAST}"),
        format!(
            "Prometheus scrapes and evaluates every {}; surge-exporter collects every {} (timeout {}), calls a group stalled after {}",
            secs(timing.scrape),
            secs(timing.collect),
            secs(timing.timeout),
            secs(timing.stall_after)
        ),
        format!("and trends over {}", secs(timing.lag_window)),
    ];
    let flat = doc.split_whitespace().collect::<Vec<_>>().join(" ");
    let missing: Vec<&String> = sentences
        .iter()
        .filter(|s| !flat.contains(s.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "RELIABILITY.md does not say: {missing:#?}"
    );
    Ok(())
}
