//! Direct mode at fleet size: 1,000 consumer groups × 50 partitions (about 170,000 series)
//! from the exporter's own store and `/metrics`. Everything at once passes the panel's
//! 100,000-series limit and is refused; asked for what the panel shows (`match[]`), every
//! group is there, and a group's partitions come only while they are drilled into.

use std::time::Duration;

use surge_client::fetch::{Exporter, Update, Want};
use surge_client::store::Store;
use surge_testkit::fleet::{self, Size};

const SIZE: Size = Size {
    groups: 1000,
    topics: 100,
    partitions: 50,
};

fn client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_mode_shows_a_thousand_groups_and_one_groups_partitions_when_drilled()
-> anyhow::Result<()> {
    let samples = fleet::kafka_samples("fleet", SIZE);
    let total = samples.len();
    assert!(total > 150_000, "{total} series");
    let served = fleet::serve(vec![("fleet".into(), samples)]).await?;
    let exporter = Exporter::new(&served.addr.to_string(), client()?);

    let everything = exporter
        .scrape()
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        everything.contains("more than 100000 series in one exposition, refused"),
        "{everything}"
    );

    let mut want = Want::default();
    let parsed = exporter.scrape_for(&want).await?;
    assert_eq!(parsed.skipped, 0);
    let lag_series = parsed
        .metrics
        .points(surge_metrics::catalogue::kafka::LAG.exposed)
        .len();
    assert_eq!(
        lag_series, 0,
        "per-partition lag asked for without a drill-in"
    );
    let mut store = Store::new(60.0);
    store.apply(
        Update::Metrics {
            source: exporter.name.clone(),
            metrics: parsed.metrics,
            at: 1.0,
        },
        1.0,
    );
    let groups: std::collections::BTreeSet<&str> = store
        .derived()
        .groups
        .iter()
        .map(|g| g.group.as_str())
        .collect();
    assert_eq!(groups.len(), SIZE.groups);

    let (group, topic) = (fleet::group(421), fleet::topic(21));
    want.partitions = Some(("fleet".into(), group.clone(), topic.clone()));
    let parsed = exporter.scrape_for(&want).await?;
    let lags = parsed
        .metrics
        .points(surge_metrics::catalogue::kafka::LAG.exposed);
    assert_eq!(lags.len(), SIZE.partitions);
    store.apply(
        Update::Metrics {
            source: exporter.name.clone(),
            metrics: parsed.metrics,
            at: 2.0,
        },
        2.0,
    );
    let partitions = store.partitions(&group, &topic);
    assert_eq!(partitions.len(), SIZE.partitions);
    assert!(
        partitions.iter().all(|p| p.lag == Some(7.0)),
        "{partitions:?}"
    );
    assert_eq!(store.derived().groups.len(), SIZE.groups);
    Ok(())
}
