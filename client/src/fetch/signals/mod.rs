//! Where each signal comes from in a Prometheus that does not hold Surge's own series: the
//! exporters most clusters already run. Each provider is a set of recipes, PromQL that
//! answers with series in the shape of a Surge family (its name, its labels, its unit), so
//! the store, the verdicts and the views stay one path whatever the source.
//!
//! Signals are grouped as their exporters are: Kubernetes (HPAs, pods' CPU and memory),
//! Kafka (consumer lag) and PostgreSQL (replication, connections). Each group's provider is
//! detected from the metric names Prometheus holds (Surge's exporter first: it computes what
//! the others cannot), or set per context in the config.
//!
//! Where a provider lacks what Surge's exporter computes, a recipe derives what PromQL
//! honestly can and tags its series with the rule ([`DERIVED_LABEL`], [`RULES`]); what
//! cannot be derived has no recipe, and the view shows "—".

mod kafka;
mod kube;
mod postgres;
pub mod promql;

use std::collections::BTreeSet;
use std::fmt;

use surge_metrics::Family;

pub use self::promql::Selector;

/// The label naming the Surge family a recipe's series stand for; the parser makes it the
/// series' name and drops it.
pub const FAMILY_LABEL: &str = "surge_family";

/// The label a derived series carries: the key of its rule in [`RULES`].
pub const DERIVED_LABEL: &str = "surge_derived";

/// The groups of signals, one provider each per context.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Group {
    Kubernetes,
    Kafka,
    Postgres,
}

impl Group {
    pub const ALL: [Group; 3] = [Group::Kubernetes, Group::Kafka, Group::Postgres];

    pub fn label(self) -> &'static str {
        match self {
            Group::Kubernetes => "kubernetes",
            Group::Kafka => "kafka",
            Group::Postgres => "postgres",
        }
    }
}

/// Who provides a group's signals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Provider {
    /// surge-exporter: every signal, trends at commit instants.
    Surge,
    /// kube-state-metrics with cAdvisor (the kubelet's `/metrics/cadvisor`).
    KubeStateMetrics,
    /// danielqsj/kafka_exporter (as Strimzi deploys it).
    KafkaExporter,
    /// redpanda-data/kminion.
    Kminion,
    /// prometheus-community/postgres_exporter.
    PostgresExporter,
    /// CloudNativePG's instance exporter.
    CloudNativePg,
}

impl Provider {
    pub const ALL: [Provider; 6] = [
        Provider::Surge,
        Provider::KubeStateMetrics,
        Provider::KafkaExporter,
        Provider::Kminion,
        Provider::PostgresExporter,
        Provider::CloudNativePg,
    ];

    /// The name used in the config and on screen.
    pub fn name(self) -> &'static str {
        match self {
            Provider::Surge => "surge",
            Provider::KubeStateMetrics => "kube-state-metrics",
            Provider::KafkaExporter => "kafka_exporter",
            Provider::Kminion => "kminion",
            Provider::PostgresExporter => "postgres_exporter",
            Provider::CloudNativePg => "cloudnative-pg",
        }
    }

    /// The groups it can provide.
    pub fn groups(self) -> &'static [Group] {
        match self {
            Provider::Surge => &Group::ALL,
            Provider::KubeStateMetrics => &[Group::Kubernetes],
            Provider::KafkaExporter | Provider::Kminion => &[Group::Kafka],
            Provider::PostgresExporter | Provider::CloudNativePg => &[Group::Postgres],
        }
    }

    /// The series whose presence says this provider serves `group`.
    fn marker(self, group: Group) -> Option<&'static str> {
        use surge_metrics::catalogue::{hpa, kafka, postgres};
        Some(match (self, group) {
            (Provider::Surge, Group::Kubernetes) => hpa::CURRENT.exposed,
            (Provider::Surge, Group::Kafka) => kafka::TOPIC_LAG.exposed,
            (Provider::Surge, Group::Postgres) => postgres::IS_REPLICA.exposed,
            (Provider::KubeStateMetrics, Group::Kubernetes) => {
                "kube_horizontalpodautoscaler_status_current_replicas"
            }
            (Provider::KafkaExporter, Group::Kafka) => "kafka_consumergroup_lag",
            (Provider::Kminion, Group::Kafka) => "kminion_kafka_consumer_group_topic_lag",
            (Provider::PostgresExporter, Group::Postgres) => "pg_up",
            (Provider::CloudNativePg, Group::Postgres) => "cnpg_collector_up",
            _ => return None,
        })
    }

    pub fn parse(text: &str) -> Result<Provider, String> {
        Provider::ALL
            .into_iter()
            .find(|p| p.name() == text)
            .ok_or_else(|| {
                let names: Vec<&str> = Provider::ALL.iter().map(|p| p.name()).collect();
                format!("unknown source {text:?} ({})", names.join(", "))
            })
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A context's choice per group: detected, or set in the config.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Choice {
    pub kubernetes: Option<Provider>,
    pub kafka: Option<Provider>,
    pub postgres: Option<Provider>,
}

impl Choice {
    pub fn get(&self, group: Group) -> Option<Provider> {
        match group {
            Group::Kubernetes => self.kubernetes,
            Group::Kafka => self.kafka,
            Group::Postgres => self.postgres,
        }
    }

    pub fn set(&mut self, group: Group, provider: Option<Provider>) {
        match group {
            Group::Kubernetes => self.kubernetes = provider,
            Group::Kafka => self.kafka = provider,
            Group::Postgres => self.postgres = provider,
        }
    }

    /// Groups served by a provider other than Surge's exporter, with it.
    pub fn foreign(&self) -> impl Iterator<Item = (Group, Provider)> + '_ {
        Group::ALL
            .into_iter()
            .filter_map(|g| self.get(g).map(|p| (g, p)))
            .filter(|(_, p)| *p != Provider::Surge)
    }

    /// `kubernetes: kube-state-metrics, kafka: surge, postgres: none`.
    pub fn describe(&self) -> String {
        Group::ALL
            .iter()
            .map(|g| {
                format!(
                    "{}: {}",
                    g.label(),
                    self.get(*g).map_or("none", Provider::name)
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The group a Surge family belongs to (`None`: the exporter's own health).
pub fn group_of(exposed: &str) -> Option<Group> {
    use surge_metrics::catalogue::{hpa, kafka, postgres, workload};
    let within = |all: &[&Family]| all.iter().any(|f| f.exposed == exposed);
    if within(hpa::ALL) || within(workload::ALL) {
        Some(Group::Kubernetes)
    } else if within(kafka::ALL) {
        Some(Group::Kafka)
    } else if within(postgres::ALL) {
        Some(Group::Postgres)
    } else {
        None
    }
}

/// What a context's config fixes: a provider per group, or detection (`None`), the label
/// selector, and the team's own PromQL for any family.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Signals {
    pub fixed: Choice,
    pub selector: Selector,
    pub overrides: Overrides,
}

/// The team's own PromQL per Surge family (`[sources.queries]`): it replaces every provider's
/// reading of that family, and must answer with the family's labels.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides(Vec<Recipe>);

impl Overrides {
    /// `(family name, PromQL)` pairs; an unknown family is refused, naming it.
    pub fn new(pairs: &[(String, String)]) -> Result<Overrides, String> {
        let mut out = Vec::new();
        for (name, expr) in pairs {
            let family = surge_metrics::catalogue::find(name)
                .ok_or_else(|| format!("{name}: not a Surge family (the families are listed in metrics/src/catalogue.rs)"))?;
            if expr.trim().is_empty() {
                return Err(format!("{name}: empty query"));
            }
            out.push(Recipe::plain(family, expr.trim().to_string()));
        }
        Ok(Overrides(out))
    }

    pub fn recipes(&self) -> &[Recipe] {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `family` (its exposed name) is overridden.
    pub fn covers(&self, exposed: &str) -> bool {
        self.0.iter().any(|r| r.family.exposed == exposed)
    }

    /// The first series of `metrics` (an override's answer) missing a label its family has,
    /// said in one line.
    pub fn check(&self, metrics: &crate::model::Metrics) -> Result<(), String> {
        for recipe in &self.0 {
            let family = recipe.family;
            for point in metrics.points(family.exposed) {
                if let Some(missing) = family
                    .labels
                    .iter()
                    .find(|l| !point.labels.contains_key(**l))
                {
                    let has: Vec<&str> = point.labels.keys().map(String::as_str).collect();
                    return Err(format!(
                        "query for {}: a series without label {missing} (it must return {}; this one has {})",
                        family.exposed,
                        family.labels.join(", "),
                        if has.is_empty() {
                            "none".to_string()
                        } else {
                            has.join(", ")
                        }
                    ));
                }
            }
        }
        Ok(())
    }
}

impl Signals {
    /// The series selector that tells which providers a Prometheus holds: its marker names,
    /// asked of the label-values API from an hour back (Prometheus answers per block, so a
    /// name seen in the last hours counts): an exporter that just stopped answering still
    /// counts, and its silence is reported rather than its groups dropped.
    pub fn detect_selector(&self) -> String {
        let names: BTreeSet<&str> = Provider::ALL
            .iter()
            .flat_map(|p| p.groups().iter().filter_map(move |g| p.marker(*g)))
            .collect();
        let names: Vec<&str> = names.into_iter().collect();
        let matcher = format!("__name__=~\"{}\"", names.join("|"));
        format!("{{{}}}", {
            let s = self.selector.series("", &matcher);
            s.trim_start_matches('{').trim_end_matches('}').to_string()
        })
    }

    /// The providers per group: as fixed, else the first present of Surge's exporter and then
    /// the others in [`Provider::ALL`] order.
    pub fn choose(&self, present: &BTreeSet<String>) -> Choice {
        let mut choice = Choice::default();
        for group in Group::ALL {
            let chosen = self.fixed.get(group).or_else(|| {
                Provider::ALL
                    .into_iter()
                    .find(|p| p.marker(group).is_some_and(|name| present.contains(name)))
            });
            choice.set(group, chosen);
        }
        choice
    }
}

/// One recipe: PromQL answering in the shape of `family`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipe {
    pub family: &'static Family,
    pub expr: String,
    /// The key in [`RULES`] of the rule it derives by, when it is not a plain reading.
    pub derived: Option<&'static str>,
}

impl Recipe {
    fn plain(family: &'static Family, expr: String) -> Recipe {
        Recipe {
            family,
            expr,
            derived: None,
        }
    }

    fn derived(family: &'static Family, rule: &'static str, expr: String) -> Recipe {
        Recipe {
            family,
            expr,
            derived: Some(rule),
        }
    }

    /// The recipe as sent: its answer tagged with its family (and rule).
    pub fn query(&self) -> String {
        promql::tagged(&self.expr, self.family.exposed, self.derived)
    }
}

/// The recipes of `provider` for `group` (none for Surge's exporter: its series are read by
/// name).
pub fn recipes(provider: Provider, group: Group, selector: &Selector) -> Vec<Recipe> {
    match (provider, group) {
        (Provider::KubeStateMetrics, Group::Kubernetes) => kube::recipes(selector),
        (Provider::KafkaExporter, Group::Kafka) => kafka::recipes(&kafka::KAFKA_EXPORTER, selector),
        (Provider::Kminion, Group::Kafka) => kafka::recipes(&kafka::KMINION, selector),
        (Provider::PostgresExporter, Group::Postgres) => postgres::postgres_exporter(selector),
        (Provider::CloudNativePg, Group::Postgres) => postgres::cloudnative_pg(selector),
        _ => Vec::new(),
    }
}

/// One instant query for all of a group's recipes.
pub fn instant_query(recipes: &[Recipe]) -> String {
    recipes
        .iter()
        .map(Recipe::query)
        .collect::<Vec<_>>()
        .join(" or ")
}

/// The per-partition series of one group on one topic (the Kafka drill-in) from `provider`.
pub fn partitions_query(
    provider: Provider,
    selector: &Selector,
    cluster: &str,
    group: &str,
    topic: &str,
) -> String {
    use surge_metrics::catalogue::kafka::{COMMITTED, HAS_COMMIT, LAG, LOG_END};
    let only = |pairs: &[(&str, &str)]| {
        let mut out = "vector(1)".to_string();
        for (name, value) in pairs {
            out = promql::set_literal(&out, name, value);
        }
        let names: Vec<&str> = pairs.iter().map(|(n, _)| *n).collect();
        format!("on ({}) {out}", names.join(", "))
    };
    recipes(provider, Group::Kafka, selector)
        .into_iter()
        .filter(|r| [&LAG, &COMMITTED, &HAS_COMMIT, &LOG_END].contains(&r.family))
        .map(|r| {
            let filter = if r.family == &LOG_END {
                only(&[("cluster", cluster), ("topic", topic)])
            } else {
                only(&[("cluster", cluster), ("group", group), ("topic", topic)])
            };
            Recipe {
                expr: format!("({}) and {filter}", r.expr),
                ..r
            }
            .query()
        })
        .collect::<Vec<_>>()
        .join(" or ")
}

/// The derivation rules, by key, as the help shows them.
pub const RULES: &[(&str, &str)] = &[
    (
        kube::CPU_RULE,
        "CPU/REQ: cAdvisor usage rate over 2m / kube-state-metrics requests, summed over the ready pods that have both (the HPA's ratio of sums; metrics-server samples a shorter window)",
    ),
    (
        kafka::STATE_RULE,
        "TREND: idle = no lag, log end still 10m; stalled = lag, no commit for 5m (unless the group commits 1-5 times in 30m: a rare committer); growing/draining = the lowest (highest) lag of the last 5m above (below) that of the 5m before by 5%, with commits in both halves; else ok",
    ),
    (
        kafka::ETA_RULE,
        "ETA: lag / (consume rate - produce rate) over 2m, while draining",
    ),
    (
        postgres::TIMESTAMP_LAG_RULE,
        "DB LAG: postgres_exporter's pg_replication_lag (now - last replayed commit): grows while the primary is idle",
    ),
];

/// What cannot be derived from each provider, shown as "—" with this reason in the help.
pub fn missing(provider: Provider) -> &'static [&'static str] {
    match provider {
        Provider::Surge => &[],
        Provider::KubeStateMetrics => &[
            "scaling metrics other than CPU (kube-state-metrics does not say their type)",
            "pods without a CPU request",
        ],
        Provider::KafkaExporter => &[
            "TIME lag (needs log-end offsets by time)",
            "group state (not exported)",
        ],
        Provider::Kminion => &[
            "TIME lag (needs log-end offsets by time)",
            "committed offset per partition (kminion sums them per topic)",
        ],
        Provider::PostgresExporter => &[
            "WAL receiver and paused replay (not exported by default)",
            "longest idle transaction and lock wait",
        ],
        Provider::CloudNativePg => &[
            "paused replay (not exported)",
            "longest idle transaction and lock wait",
        ],
    }
}

/// The guide's table of providers (docs/src/prometheus.md): the series each reads, the Surge families it gives, what
/// is derived and what cannot be (generated from the recipes; a test keeps the guide's copy
/// equal).
pub fn providers_table() -> String {
    let mut out = String::from(
        "| source | reads | gives | derived (marked `*`) | not available (`—`) |\n|---|---|---|---|---|\n",
    );
    let rules: std::collections::BTreeMap<&str, &str> = RULES.iter().copied().collect();
    for provider in Provider::ALL.into_iter().filter(|p| *p != Provider::Surge) {
        let mut reads: BTreeSet<String> = BTreeSet::new();
        let mut gives = BTreeSet::new();
        let mut derived = BTreeSet::new();
        for group in provider.groups() {
            for recipe in recipes(provider, *group, &Selector::default()) {
                gives.insert(recipe.family.exposed);
                derived.extend(recipe.derived.and_then(|r| rules.get(r)).copied());
                reads.extend(metric_names(&recipe.expr).map(str::to_string));
            }
        }
        let code = |set: &mut dyn Iterator<Item = &str>| {
            set.map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
        };
        let derived: Vec<&str> = derived.into_iter().collect();
        let name = match provider {
            Provider::KubeStateMetrics => "kube-state-metrics + cAdvisor",
            other => other.name(),
        };
        out.push_str(&format!(
            "| {name} | {} | {} | {} | {} |\n",
            code(&mut reads.iter().map(String::as_str)),
            code(&mut gives.iter().copied()),
            if derived.is_empty() {
                "—".to_string()
            } else {
                derived.join("; ")
            },
            missing(provider).join("; "),
        ));
    }
    out
}

/// The exporters' metric names in a recipe (what Prometheus must scrape for it).
fn metric_names(expr: &str) -> impl Iterator<Item = &str> {
    const PREFIXES: [&str; 6] = ["kube_", "container_", "kafka_", "kminion_", "pg_", "cnpg_"];
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| PREFIXES.iter().any(|p| w.starts_with(p)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_readme_lists_each_provider_as_the_recipes_read_it() {
        let readme = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/src/prometheus.md"),
        )
        .expect("docs/src/prometheus.md");
        let table = providers_table();
        assert_eq!(table.lines().count(), 2 + Provider::ALL.len() - 1);
        assert!(
            readme.contains(&table),
            "docs/src/prometheus.md's providers table differs from providers_table(): copy it over\n{table}"
        );
    }

    #[test]
    fn a_query_of_ones_own_must_answer_with_its_familys_labels() {
        let overrides = Overrides::new(&[(
            "surge_kafka_group_topic_lag".into(),
            "sum by (topic) (x)".into(),
        )])
        .expect("good");
        let mut answer = crate::model::Metrics::default();
        let labels = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        answer.insert(
            "surge_kafka_group_topic_lag",
            labels(&[("cluster", "c"), ("group", "g"), ("topic", "t")]),
            1.0,
        );
        assert_eq!(overrides.check(&answer), Ok(()));
        answer.insert(
            "surge_kafka_group_topic_lag",
            labels(&[("topic", "t")]),
            1.0,
        );
        assert_eq!(
            overrides.check(&answer),
            Err("query for surge_kafka_group_topic_lag: a series without label cluster (it must return cluster, group, topic; this one has topic)".into())
        );
        assert!(
            Overrides::new(&[("lag".into(), "x".into())])
                .expect_err("refused")
                .starts_with("lag: not a Surge family")
        );
    }

    #[test]
    fn surge_wins_and_the_rest_are_taken_in_order() {
        let present = |names: &[&str]| names.iter().map(|n| n.to_string()).collect();
        let signals = Signals::default();
        let choice = signals.choose(&present(&[
            "kube_horizontalpodautoscaler_status_current_replicas",
            "surge_kafka_group_topic_lag",
            "kafka_consumergroup_lag",
            "kminion_kafka_consumer_group_topic_lag",
        ]));
        assert_eq!(choice.kubernetes, Some(Provider::KubeStateMetrics));
        assert_eq!(choice.kafka, Some(Provider::Surge));
        assert_eq!(choice.postgres, None);
        let choice = signals.choose(&present(&[
            "kminion_kafka_consumer_group_topic_lag",
            "cnpg_collector_up",
            "pg_up",
        ]));
        assert_eq!(choice.kafka, Some(Provider::Kminion));
        assert_eq!(choice.postgres, Some(Provider::PostgresExporter));
        let fixed = Signals {
            fixed: Choice {
                postgres: Some(Provider::CloudNativePg),
                ..Choice::default()
            },
            ..Signals::default()
        };
        assert_eq!(
            fixed.choose(&present(&["pg_up"])).postgres,
            Some(Provider::CloudNativePg)
        );
        assert_eq!(
            choice.describe(),
            "kubernetes: none, kafka: kminion, postgres: postgres_exporter"
        );
    }

    #[test]
    fn the_detection_query_asks_for_every_marker_once() {
        let q = Signals {
            selector: Selector::parse(r#"cluster="eu""#).expect("good"),
            ..Signals::default()
        }
        .detect_selector();
        assert!(q.starts_with("{__name__=~\""), "{q}");
        assert!(q.ends_with(r#"",cluster="eu"}"#), "{q}");
        for p in Provider::ALL {
            for g in p.groups() {
                let marker = p.marker(*g).expect("good");
                assert_eq!(q.matches(marker).count(), 1, "{marker} in {q}");
            }
        }
    }

    #[test]
    fn every_provider_but_surge_has_recipes_for_its_groups_and_every_rule_is_explained() {
        let mut rules_used = BTreeSet::new();
        for p in Provider::ALL {
            for g in p.groups() {
                let recipes = recipes(p, *g, &Selector::default());
                assert_eq!(recipes.is_empty(), p == Provider::Surge, "{p} {g:?}");
                for r in &recipes {
                    assert!(
                        r.expr.matches('(').count() == r.expr.matches(')').count(),
                        "{p} {}: {}",
                        r.family.name,
                        r.expr
                    );
                    rules_used.extend(r.derived);
                }
            }
        }
        let explained: BTreeSet<&str> = RULES.iter().map(|(k, _)| *k).collect();
        assert_eq!(rules_used, explained);
        assert!(Provider::parse("kminion").is_ok());
        assert!(
            Provider::parse("burrow")
                .expect_err("refused")
                .contains("surge, kube-state-metrics")
        );
    }
}
