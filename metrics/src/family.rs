//! A metric family's static description, and one sample of it.

/// Whether a family is a gauge or a counter (the only two kinds Surge exports).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Gauge,
    Counter,
}

/// Static description of one metric family, declared once in [`crate::catalogue`].
#[derive(Debug, PartialEq, Eq)]
pub struct Family {
    /// The family name; for counters without the `_total` the exposition appends.
    pub name: &'static str,
    /// The sample name as it appears in the exposition and in PromQL (counters end in `_total`).
    pub exposed: &'static str,
    pub kind: Kind,
    /// When set, `name` ends in `_<unit>`.
    pub unit: Option<&'static str>,
    /// Label names of every sample, in the order they are written.
    pub labels: &'static [&'static str],
    pub help: &'static str,
}

impl Family {
    /// The name without its unit suffix, as `prometheus-client` wants it (it appends the unit).
    pub fn base_name(&self) -> &'static str {
        match self.unit {
            Some(unit) => self
                .name
                .strip_suffix(unit)
                .and_then(|n| n.strip_suffix('_'))
                .unwrap_or(self.name),
            None => self.name,
        }
    }
}

/// Label pairs of one sample, in the order they are written.
pub type Labels = Vec<(&'static str, String)>;

/// One value of one series at the end of a collection cycle.
///
/// The label values are held in one string, their names in the family: at 50,000
/// group-partitions a sample holding a `Labels` (a vector and a string per label) took about
/// three times the memory.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub family: &'static Family,
    /// The label values in the family's label order, one after another.
    values: Box<str>,
    /// Where each value ends in `values`.
    ends: Box<[u32]>,
    pub value: f64,
}

impl Sample {
    /// A sample of `family`. Its label names must be the family's, in order: debug builds (and
    /// so every test) check it, so a series can never drift from the catalogue.
    pub fn new(family: &'static Family, labels: Labels, value: f64) -> Self {
        debug_assert!(
            labels
                .iter()
                .map(|(k, _)| *k)
                .eq(family.labels.iter().copied()),
            "{} takes labels {:?}, got {:?}",
            family.name,
            family.labels,
            labels.iter().map(|(k, _)| *k).collect::<Vec<_>>()
        );
        let mut values = String::with_capacity(labels.iter().map(|(_, v)| v.len()).sum());
        let ends = labels
            .iter()
            .map(|(_, v)| {
                values.push_str(v);
                // A label value is far below 4 GiB; saturating keeps even an absurd one from
                // wrapping into another label's bytes.
                u32::try_from(values.len()).unwrap_or(u32::MAX)
            })
            .collect();
        Sample {
            family,
            values: values.into_boxed_str(),
            ends,
            value,
        }
    }

    /// The label pairs, in the family's order.
    pub fn labels(&self) -> impl Iterator<Item = (&'static str, &str)> + Clone + '_ {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        self.family
            .labels
            .iter()
            .zip(starts.zip(self.ends.iter().copied()))
            .map(|(name, (start, end))| {
                let value = self.values.get(start as usize..end as usize).unwrap_or("");
                (*name, value)
            })
    }

    /// Value of a label, for tests and lookups.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels().find(|(k, _)| *k == key).map(|(_, v)| v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static PAIRS: Family = Family {
        name: "surge_test_pairs",
        exposed: "surge_test_pairs",
        kind: Kind::Gauge,
        unit: None,
        labels: &["cluster", "group", "topic", "partition"],
        help: "Test.",
    };

    #[test]
    fn label_values_come_back_as_given() {
        let given = vec![
            ("cluster", "local".to_string()),
            ("group", String::new()),
            ("topic", "zahlungen-\u{e4}\u{f6}\u{fc}".to_string()),
            ("partition", "7".to_string()),
        ];
        let sample = Sample::new(&PAIRS, given.clone(), 2.5);
        let back: Vec<(&str, String)> = sample.labels().map(|(k, v)| (k, v.to_string())).collect();
        assert_eq!(back, given);
        assert_eq!(sample.label("topic"), Some("zahlungen-\u{e4}\u{f6}\u{fc}"));
        assert_eq!(sample.label("group"), Some(""));
        assert_eq!(sample.label("partition"), Some("7"));
        assert_eq!(sample.label("missing"), None);
    }
}
