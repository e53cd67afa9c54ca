//! What the docs say about the suite is what the code and the last full run say: the tables
//! in RELIABILITY.md are generated from a kept run that has every drill the code has, and the
//! drills' time compression is stated as the harness sets it.

use surge_tests::alerting::repo;
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
