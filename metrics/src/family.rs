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

/// One collection's samples as a store keeps them: every label value in one string, each
/// sample a family, a value and where its labels end in that string, grouped by family (in
/// the order they came within a family). About half the memory of the samples one by one (no
/// allocation per sample): at 179,000 series that is the difference between 23 and 12 MB, held
/// while the next collection's samples are built.
#[derive(Debug, Default)]
pub struct SampleSet {
    text: String,
    /// Each label's end in `text`; a sample's labels start where the one before it ended.
    ends: Vec<u32>,
    rows: Vec<Row>,
    /// Each family with its rows, in the order the families first came.
    families: Vec<(&'static Family, std::ops::Range<usize>)>,
}

#[derive(Debug, Clone, Copy)]
struct Row {
    family: &'static Family,
    value: f64,
    /// Index of its first label in `ends`.
    first: u32,
}

/// A [`SampleSet`] being built, sample by sample (a source builds its collection in one, so
/// the samples of a cycle never exist one by one, each with its own allocations).
#[derive(Debug, Default)]
pub struct SampleSetBuilder {
    set: SampleSet,
}

impl SampleSetBuilder {
    /// Add `sample` (whose own allocations are freed at once).
    pub fn push(&mut self, sample: Sample) {
        let set = &mut self.set;
        let first = u32::try_from(set.ends.len()).unwrap_or(u32::MAX);
        for (_, value) in sample.labels() {
            set.text.push_str(value);
            // Saturating, as in `Sample`: an absurd size cannot wrap into another label's
            // bytes.
            set.ends
                .push(u32::try_from(set.text.len()).unwrap_or(u32::MAX));
        }
        set.rows.push(Row {
            family: sample.family,
            value: sample.value,
            first,
        });
    }

    /// The set, its samples grouped by family (each family's in the order they came, the
    /// families in the order they first came), shrunk to fit.
    pub fn finish(self) -> SampleSet {
        let mut set = self.set;
        let mut order: Vec<&'static str> = Vec::new();
        for row in &set.rows {
            if !order.contains(&row.family.name) {
                order.push(row.family.name);
            }
        }
        // A stable sort: rows keep their order within a family. A row's labels are found by
        // `first`, which does not move with it.
        set.rows
            .sort_by_key(|row| order.iter().position(|n| *n == row.family.name));
        let mut start = 0;
        while start < set.rows.len() {
            let family = set.rows[start].family;
            let end = set.rows[start..]
                .iter()
                .position(|r| r.family.name != family.name)
                .map_or(set.rows.len(), |n| start + n);
            set.families.push((family, start..end));
            start = end;
        }
        set.text.shrink_to_fit();
        set.ends.shrink_to_fit();
        set.rows.shrink_to_fit();
        set
    }
}

/// One sample of a [`SampleSet`].
#[derive(Debug, Clone, Copy)]
pub struct SampleRef<'a> {
    pub family: &'static Family,
    pub value: f64,
    set: &'a SampleSet,
    first: usize,
}

impl<'a> SampleRef<'a> {
    /// The label pairs, in the family's order.
    pub fn labels(self) -> impl Iterator<Item = (&'static str, &'a str)> + Clone + 'a {
        let set = self.set;
        let first = self.first;
        let start = |i: usize| if i == 0 { 0 } else { set.ends[i - 1] as usize };
        self.family.labels.iter().enumerate().map(move |(k, name)| {
            let i = first + k;
            let value = set
                .text
                .get(start(i)..set.ends[i] as usize)
                .unwrap_or_default();
            (*name, value)
        })
    }

    pub fn to_sample(&self) -> Sample {
        Sample::new(
            self.family,
            self.labels().map(|(k, v)| (k, v.to_string())).collect(),
            self.value,
        )
    }
}

impl SampleSet {
    pub fn builder() -> SampleSetBuilder {
        SampleSetBuilder::default()
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Each family and its samples.
    pub fn families(
        &self,
    ) -> impl Iterator<Item = (&'static Family, impl Iterator<Item = SampleRef<'_>> + '_)> {
        self.families.iter().map(move |(family, rows)| {
            let family: &'static Family = family;
            let samples = self.rows[rows.clone()].iter().map(move |row| SampleRef {
                family,
                value: row.value,
                set: self,
                first: row.first as usize,
            });
            (family, samples)
        })
    }

    /// Every sample, family by family.
    pub fn iter(&self) -> impl Iterator<Item = SampleRef<'_>> + '_ {
        self.families().flat_map(|(_, samples)| samples)
    }

    pub fn to_vec(&self) -> Vec<Sample> {
        self.iter().map(|s| s.to_sample()).collect()
    }
}

impl From<Vec<Sample>> for SampleSet {
    fn from(samples: Vec<Sample>) -> SampleSet {
        let mut builder = SampleSet::builder();
        for sample in samples {
            builder.push(sample);
        }
        builder.finish()
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

    #[test]
    fn a_sample_set_gives_back_every_sample_grouped_by_family() {
        static OTHER: Family = Family {
            name: "surge_test_other",
            exposed: "surge_test_other",
            kind: Kind::Gauge,
            unit: None,
            labels: &[],
            help: "Test.",
        };
        let pairs = |g: &str, p: &str| -> Labels {
            vec![
                ("cluster", "c".to_string()),
                ("group", g.to_string()),
                ("topic", "t-\u{e4}".to_string()),
                ("partition", p.to_string()),
            ]
        };
        let samples = vec![
            Sample::new(&PAIRS, pairs("a", "0"), 1.0),
            Sample::new(&OTHER, Vec::new(), 9.0),
            Sample::new(&PAIRS, pairs("", "1"), 2.0),
            Sample::new(&PAIRS, pairs("b", "2"), 3.0),
        ];
        let set = SampleSet::from(samples.clone());
        assert_eq!(set.len(), 4);
        let back = set.to_vec();
        let want = vec![
            samples[0].clone(),
            samples[2].clone(),
            samples[3].clone(),
            samples[1].clone(),
        ];
        assert_eq!(back, want);
        let families: Vec<(&str, usize)> =
            set.families().map(|(f, s)| (f.name, s.count())).collect();
        assert_eq!(families, [("surge_test_pairs", 3), ("surge_test_other", 1)]);
        assert!(SampleSet::from(Vec::new()).is_empty());
    }
}
