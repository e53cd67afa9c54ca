//! Plain data the fetchers produce and the store keeps: instant values, history, alerts,
//! silences, source health. No I/O, no locks.

use std::collections::{BTreeMap, HashMap, VecDeque};

pub type Labels = BTreeMap<String, String>;

/// One series' value at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub labels: Labels,
    pub value: f64,
}

impl Point {
    /// Whether the labels include every `(name, value)` of `want`.
    pub fn matches(&self, want: &[(&str, &str)]) -> bool {
        want.iter()
            .all(|(k, v)| self.labels.get(*k).map(String::as_str) == Some(*v))
    }

    pub fn label(&self, name: &str) -> &str {
        self.labels.get(name).map_or("", String::as_str)
    }
}

/// Instant values by metric name (what one refresh saw).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metrics {
    by_name: HashMap<String, Vec<Point>>,
}

impl Metrics {
    pub fn insert(&mut self, name: &str, labels: Labels, value: f64) {
        self.by_name
            .entry(name.to_string())
            .or_default()
            .push(Point { labels, value });
    }

    /// Add every point of `other` (several sources side by side).
    pub fn append(&mut self, other: &Metrics) {
        for (name, points) in &other.by_name {
            self.by_name
                .entry(name.clone())
                .or_default()
                .extend(points.iter().cloned());
        }
    }

    /// The first point of `name` whose labels include `want`.
    pub fn point(&self, name: &str, want: &[(&str, &str)]) -> Option<&Point> {
        self.points(name).iter().find(|p| p.matches(want))
    }

    /// Points of `name` keyed by their values of `keys`, for joins without rescanning
    /// (points lacking a key are left out; the first of duplicates wins).
    pub fn index<'a>(&'a self, name: &str, keys: &[&str]) -> HashMap<Vec<&'a str>, &'a Point> {
        let mut out = HashMap::new();
        for p in self.points(name) {
            let key: Option<Vec<&str>> = keys
                .iter()
                .map(|k| p.labels.get(*k).map(String::as_str))
                .collect();
            if let Some(key) = key {
                out.entry(key).or_insert(p);
            }
        }
        out
    }

    /// Number of series.
    pub fn len(&self) -> usize {
        self.by_name.values().map(Vec::len).sum()
    }

    pub fn points(&self, name: &str) -> &[Point] {
        self.by_name.get(name).map_or(&[], Vec::as_slice)
    }

    /// The value of the one series of `name` whose labels include `want`.
    pub fn value(&self, name: &str, want: &[(&str, &str)]) -> Option<f64> {
        self.point(name, want).map(|p| p.value)
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    pub fn names(&self) -> impl Iterator<Item = &String> {
        self.by_name.keys()
    }
}

/// A series' identity for history: metric name plus the labels that matter.
pub type SeriesKey = (String, Labels);

/// Recent values per series (oldest first), bounded in points.
#[derive(Debug, Clone, Default)]
pub struct History {
    series: HashMap<SeriesKey, VecDeque<(f64, f64)>>,
}

/// Most points kept per series.
pub const HISTORY_POINTS: usize = 720;

impl History {
    pub fn push(&mut self, key: SeriesKey, t: f64, v: f64) {
        let points = self.series.entry(key).or_default();
        if points.back().is_some_and(|(last, _)| *last >= t) {
            return;
        }
        points.push_back((t, v));
        while points.len() > HISTORY_POINTS {
            points.pop_front();
        }
    }

    /// Replace every series of `name` with a range query's result (series it lacks are gone).
    pub fn replace_metric(&mut self, name: &str, series: RangeSeries) {
        self.series.retain(|(n, _), _| n != name);
        for (labels, points) in series {
            let mut deque: VecDeque<(f64, f64)> = points.into_iter().collect();
            while deque.len() > HISTORY_POINTS {
                deque.pop_front();
            }
            self.series.insert((name.to_string(), labels), deque);
        }
    }

    pub fn get(&self, name: &str, labels: &Labels) -> Option<&VecDeque<(f64, f64)>> {
        self.series.get(&(name.to_string(), labels.clone()))
    }

    /// Points since `since` (Unix seconds), oldest first.
    pub fn since(&self, name: &str, labels: &Labels, since: f64) -> Vec<(f64, f64)> {
        self.get(name, labels)
            .map(|d| d.iter().filter(|(t, _)| *t >= since).copied().collect())
            .unwrap_or_default()
    }

    /// Every series of one metric.
    pub fn named<'a>(
        &'a self,
        name: &'a str,
    ) -> impl Iterator<Item = (&'a Labels, &'a VecDeque<(f64, f64)>)> + 'a {
        self.series
            .iter()
            .filter(move |((n, _), _)| n == name)
            .map(|((_, labels), points)| (labels, points))
    }

    /// Drop points older than `before`.
    pub fn trim(&mut self, before: f64) {
        for points in self.series.values_mut() {
            while points.front().is_some_and(|(t, _)| *t < before) {
                points.pop_front();
            }
        }
        self.series.retain(|_, p| !p.is_empty());
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AlertState {
    Firing,
    Pending,
}

/// An alert, from Prometheus (firing/pending) or Alertmanager (firing, maybe silenced).
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    pub name: String,
    pub state: AlertState,
    pub severity: String,
    pub labels: Labels,
    pub summary: String,
    pub description: String,
    pub runbook: String,
    /// Unix seconds since when it is active.
    pub active_at: Option<f64>,
    /// Silenced or inhibited in Alertmanager.
    pub muted: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Matcher {
    pub name: String,
    pub value: String,
    pub is_regex: bool,
    pub is_equal: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Silence {
    pub id: String,
    pub matchers: Vec<Matcher>,
    pub comment: String,
    pub created_by: String,
    pub ends_at: String,
    /// `active`, `pending`, `expired`.
    pub state: String,
}

/// One source's recent health.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Health {
    /// Unix seconds of the last successful fetch.
    pub last_ok: Option<f64>,
    pub error: Option<String>,
}

/// One range query's result: series with their points.
pub type RangeSeries = Vec<(Labels, Vec<(f64, f64)>)>;
