//! The pipeline's topics are the same everywhere: the shop creates them, the Kubernetes
//! manifests declare them (`KafkaTopic`), and every consumed topic has its dead-letter topic.

use std::collections::BTreeSet;

use serde::Deserialize;
use surge_shop::topics;
use surge_tests::alerting::repo;

#[test]
fn manifests_declare_exactly_the_shops_topics_and_each_consumed_topic_has_a_dlq()
-> anyhow::Result<()> {
    let path = repo().join("stack/k8s/base/kafka.yaml");
    let text = std::fs::read_to_string(&path)?;
    let mut declared = BTreeSet::new();
    for doc in serde_yaml_ng::Deserializer::from_str(&text) {
        let doc = serde_yaml_ng::Value::deserialize(doc)?;
        if doc["kind"] == "KafkaTopic" {
            declared.extend(doc["spec"]["topicName"].as_str().map(str::to_string));
        }
    }
    let created: BTreeSet<String> = topics::ALL.iter().map(|t| (*t).to_string()).collect();
    assert_eq!(declared, created, "{}", path.display());
    for consumed in [
        topics::ORDER_PLACED,
        topics::PAYMENT_PROCESSED,
        topics::SHIPPING_REQUEST,
    ] {
        assert!(
            created.contains(&format!("{consumed}.dlq")),
            "{consumed} has no dead-letter topic"
        );
    }
    Ok(())
}
