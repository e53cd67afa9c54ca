//! Every family the exporter can emit follows Prometheus naming conventions and passes
//! `promtool check metrics`, including families the real-server tests may not produce.

use std::collections::HashSet;
use std::time::Duration;

use surge_exporter::source::{Kind, Sample};
use surge_exporter::store::Store;

#[test]
fn every_family_is_well_named_and_lint_clean() -> anyhow::Result<()> {
    let families = surge_exporter::sources::all_families();
    let mut names = HashSet::new();
    for f in &families {
        assert!(names.insert(f.name), "{} declared twice", f.name);
        assert!(f.name.starts_with("surge_"), "{}", f.name);
        assert!(
            f.name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
            "{}",
            f.name
        );
        assert!(
            f.help.ends_with('.') || f.help.ends_with(')'),
            "{}: help should be a sentence",
            f.name
        );
        if let Some(unit) = f.unit {
            assert!(
                f.name.ends_with(&format!("_{unit}")),
                "{} must end in its unit {unit}",
                f.name
            );
        }
        if f.kind == Kind::Counter {
            assert!(
                !f.name.ends_with("_total"),
                "{}: the encoder appends _total",
                f.name
            );
        }
        for banned in [
            "_milliseconds",
            "_millicores",
            "_percent",
            "_kilobytes",
            "_megabytes",
        ] {
            assert!(!f.name.contains(banned), "{}: use base units", f.name);
        }
    }

    let store = Store::new();
    // The store writes its own families itself; give every other family one sample.
    let own: HashSet<&str> = surge_exporter::store::SELF_FAMILIES
        .iter()
        .map(|f| f.name)
        .collect();
    let samples: Vec<Sample> = families
        .iter()
        .filter(|f| !own.contains(f.name))
        .map(|f| Sample::new(f, vec![("target", "t".to_string())], 1.0))
        .collect();
    store.record("all", "t", Ok(samples), Duration::ZERO);
    let text = store.encode_prometheus_text()?;
    for f in &families {
        assert!(
            text.contains(&format!("# TYPE {} ", f.sample_name())),
            "{} not encoded",
            f.name
        );
    }
    let report = surge_harness::promtool::check_metrics(&text)?;
    assert!(report.trim().is_empty(), "promtool:\n{report}\n{text}");
    Ok(())
}
