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
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub family: &'static Family,
    pub labels: Labels,
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
        Sample {
            family,
            labels,
            value,
        }
    }

    /// Value of a label, for tests and lookups.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
    }
}
