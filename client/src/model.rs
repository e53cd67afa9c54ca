//! Plain data the fetchers produce and the store keeps: instant values, history, alerts,
//! silences, source health, the history ranges. No I/O, no locks.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub type Labels = BTreeMap<String, String>;

/// Most labels one series may carry, and longest label name or value (bytes), in anything the
/// panel reads (expositions, Prometheus answers). Real series have a handful of short labels;
/// past these an input is broken or hostile and is refused with the reason.
pub const MAX_LABELS: usize = 64;
pub const MAX_LABEL_BYTES: usize = 4096;

/// Whether a series' labels are within [`MAX_LABELS`] and [`MAX_LABEL_BYTES`]; the error
/// names the label (cut short).
pub fn check_label_sizes(labels: &Labels) -> Result<(), String> {
    if labels.len() > MAX_LABELS {
        return Err(format!(
            "a series with {} labels (at most {MAX_LABELS})",
            labels.len()
        ));
    }
    for (name, value) in labels {
        // Only on the way to an error: this runs for every label of every answer.
        let shown = || name.chars().take(40).collect::<String>();
        if name.len() > MAX_LABEL_BYTES {
            return Err(format!(
                "a label name of {} bytes ({}...; at most {MAX_LABEL_BYTES})",
                name.len(),
                shown()
            ));
        }
        if value.len() > MAX_LABEL_BYTES {
            return Err(format!(
                "label {} has a value of {} bytes (at most {MAX_LABEL_BYTES})",
                shown(),
                value.len()
            ));
        }
    }
    Ok(())
}

/// One series' value at one moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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

/// Instant values by metric name (what one refresh saw). A family's points are shared
/// between copies until one is changed: merging the sources of a refresh copies no point of a
/// family only one source has.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    by_name: HashMap<String, Arc<Vec<Point>>>,
}

impl Metrics {
    pub fn insert(&mut self, name: &str, labels: Labels, value: f64) {
        let points = match self.by_name.get_mut(name) {
            Some(points) => points,
            None => self.by_name.entry(name.to_string()).or_default(),
        };
        Arc::make_mut(points).push(Point { labels, value });
    }

    /// Add `points` to the family `name` (shared if the family is new here).
    fn extend(&mut self, name: &str, points: &Arc<Vec<Point>>) {
        match self.by_name.get_mut(name) {
            Some(held) => Arc::make_mut(held).extend(points.iter().cloned()),
            None => {
                self.by_name.insert(name.to_string(), Arc::clone(points));
            }
        }
    }

    /// Whether `other` holds the same points: families shared with it are not compared
    /// point by point.
    pub fn same_as(&self, other: &Metrics) -> bool {
        self.by_name.len() == other.by_name.len()
            && self.by_name.iter().all(|(name, points)| {
                other
                    .by_name
                    .get(name)
                    .is_some_and(|o| Arc::ptr_eq(points, o) || points == o)
            })
    }

    /// Each family's points, shared.
    pub(crate) fn families(&self) -> impl Iterator<Item = (&String, &Arc<Vec<Point>>)> {
        self.by_name.iter()
    }

    pub(crate) fn family(&self, name: &str) -> Option<&Arc<Vec<Point>>> {
        self.by_name.get(name)
    }

    /// Set one family's points (shared, not copied).
    pub(crate) fn set_family(&mut self, name: String, points: Arc<Vec<Point>>) {
        self.by_name.insert(name, points);
    }

    /// Keep only the points `keep` says yes to (given the family's name).
    pub(crate) fn retain_points(&mut self, keep: impl Fn(&str, &Point) -> bool) {
        for (name, points) in &mut self.by_name {
            if points.iter().all(|p| keep(name, p)) {
                continue;
            }
            Arc::make_mut(points).retain(|p| keep(name, p));
        }
        self.by_name.retain(|_, points| !points.is_empty());
    }

    /// Add every point of `other` (several sources side by side).
    pub fn append(&mut self, other: &Metrics) {
        for (name, points) in &other.by_name {
            self.extend(name, points);
        }
    }

    /// Add the points of `other` that `covering` does not already hold: a point is held when
    /// a point of the same family in `covering` carries all of its labels with the same values
    /// (Prometheus adds `job`, `instance` and relabeled labels to what an exporter exposes), so
    /// an exporter given beside the Prometheus that scrapes it does not show every row twice.
    pub fn append_uncovered(&mut self, other: &Metrics, covering: &Metrics) {
        for (name, points) in &other.by_name {
            let held = covering.points(name);
            // Projections of the covering points onto each label-name set asked about.
            let mut projections: HashMap<Vec<&str>, std::collections::HashSet<Vec<&str>>> =
                HashMap::new();
            let fresh: Vec<Point> = points
                .iter()
                .filter(|p| {
                    if held.is_empty() {
                        return true;
                    }
                    let keys: Vec<&str> = p.labels.keys().map(String::as_str).collect();
                    let values: Vec<&str> = p.labels.values().map(String::as_str).collect();
                    let known = projections.entry(keys.clone()).or_insert_with(|| {
                        held.iter()
                            .filter_map(|h| {
                                keys.iter()
                                    .map(|k| h.labels.get(*k).map(String::as_str))
                                    .collect::<Option<Vec<&str>>>()
                            })
                            .collect()
                    });
                    !known.contains(&values)
                })
                .cloned()
                .collect();
            if !fresh.is_empty() {
                self.extend(name, &Arc::new(fresh));
            }
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
        self.by_name.values().map(|p| p.len()).sum()
    }

    pub fn points(&self, name: &str) -> &[Point] {
        self.by_name.get(name).map_or(&[], |p| p.as_slice())
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

/// Recent values per series (oldest first), bounded in points: by metric name, then labels,
/// so a refresh finds its series without building a key.
#[derive(Debug, Clone, Default)]
pub struct History {
    series: HashMap<String, HashMap<Labels, VecDeque<(f64, f64)>>>,
}

/// Most points kept per series.
pub const HISTORY_POINTS: usize = 720;

impl History {
    pub fn push(&mut self, name: &str, labels: &Labels, t: f64, v: f64) {
        let metric = match self.series.get_mut(name) {
            Some(metric) => metric,
            None => self.series.entry(name.to_string()).or_default(),
        };
        let points = match metric.get_mut(labels) {
            Some(points) => points,
            None => metric.entry(labels.clone()).or_default(),
        };
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
        let metric = self.series.entry(name.to_string()).or_default();
        metric.clear();
        for (labels, points) in series {
            let mut deque: VecDeque<(f64, f64)> = points.into_iter().collect();
            while deque.len() > HISTORY_POINTS {
                deque.pop_front();
            }
            metric.insert(labels, deque);
        }
    }

    pub fn get(&self, name: &str, labels: &Labels) -> Option<&VecDeque<(f64, f64)>> {
        self.series.get(name)?.get(labels)
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
        self.series.get(name).into_iter().flatten()
    }

    /// Drop points older than `before`.
    pub fn trim(&mut self, before: f64) {
        for metric in self.series.values_mut() {
            for points in metric.values_mut() {
                while points.front().is_some_and(|(t, _)| *t < before) {
                    points.pop_front();
                }
            }
            metric.retain(|_, p| !p.is_empty());
        }
        self.series.retain(|_, m| !m.is_empty());
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum AlertState {
    Firing,
    Pending,
}

/// How much history the views show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Range {
    #[default]
    FiveMinutes,
    OneHour,
    SixHours,
}

impl Range {
    /// Every range, in the order `t` cycles through them.
    pub const ALL: [Range; 3] = [Range::FiveMinutes, Range::OneHour, Range::SixHours];

    pub fn seconds(self) -> f64 {
        match self {
            Range::FiveMinutes => 300.0,
            Range::OneHour => 3600.0,
            Range::SixHours => 21_600.0,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Range::FiveMinutes => "5m",
            Range::OneHour => "1h",
            Range::SixHours => "6h",
        }
    }

    /// `5m`, `1h` or `6h`.
    pub fn parse(text: &str) -> Result<Range, String> {
        Range::ALL
            .into_iter()
            .find(|r| r.label() == text)
            .ok_or_else(|| format!("{text:?} is not one of 5m, 1h, 6h"))
    }

    /// The next range, wrapping around.
    pub fn next(self) -> Range {
        let i = Range::ALL.iter().position(|r| *r == self).unwrap_or(0);
        Range::ALL[(i + 1) % Range::ALL.len()]
    }
}

/// An alert, from Prometheus (firing/pending) or Alertmanager (firing, maybe silenced).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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

/// Who and what an alert is about, from its labels.
pub fn subject(labels: &Labels) -> String {
    let l = |k: &str| labels.get(k).map(String::as_str);
    if let Some(w) = l("workload") {
        return l("namespace").map_or(w.to_string(), |ns| format!("{ns}/{w}"));
    }
    match (l("group"), l("topic")) {
        (Some(g), Some(t)) => return format!("{g} on {t}"),
        (Some(g), None) => return g.to_string(),
        (None, Some(t)) => return t.to_string(),
        (None, None) => {}
    }
    if let Some(r) = l("replica") {
        return r.to_string();
    }
    // An exporter source's own alert (SurgeSourceDown): which source, which target.
    match (l("source"), l("target")) {
        (Some(s), Some(t)) => format!("{s} {t}"),
        (Some(s), None) => s.to_string(),
        (None, Some(t)) => t.to_string(),
        (None, None) => l("job").unwrap_or("").to_string(),
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Matcher {
    pub name: String,
    pub value: String,
    pub is_regex: bool,
    pub is_equal: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Silence {
    pub id: String,
    pub matchers: Vec<Matcher>,
    pub comment: String,
    pub created_by: String,
    pub ends_at: String,
    /// `active`, `pending`, `expired`.
    pub state: String,
}

/// A silence to create.
#[derive(Debug, Clone, PartialEq)]
pub struct NewSilence {
    pub matchers: Vec<Matcher>,
    pub seconds: u64,
    pub comment: String,
    pub created_by: String,
}

/// One source's recent health.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Health {
    /// Unix seconds of the last successful fetch.
    pub last_ok: Option<f64>,
    pub error: Option<String>,
}

/// One range query's result: series with their points.
pub type RangeSeries = Vec<(Labels, Vec<(f64, f64)>)>;

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` labels `l0`.. with values of `bytes` bytes.
    fn labels(n: usize, bytes: usize) -> Labels {
        (0..n)
            .map(|i| (format!("l{i}"), "v".repeat(bytes)))
            .collect()
    }

    #[test]
    fn label_limits_hold_at_the_limit_and_refuse_one_past() {
        assert_eq!(
            check_label_sizes(&labels(MAX_LABELS, MAX_LABEL_BYTES)),
            Ok(())
        );
        assert_eq!(
            check_label_sizes(&labels(MAX_LABELS + 1, 1)),
            Err("a series with 65 labels (at most 64)".into())
        );
        assert_eq!(
            check_label_sizes(&labels(1, MAX_LABEL_BYTES + 1)),
            Err("label l0 has a value of 4097 bytes (at most 4096)".into())
        );
        let at_limit: Labels = [("n".repeat(MAX_LABEL_BYTES), "v".to_string())].into();
        assert_eq!(check_label_sizes(&at_limit), Ok(()));
        let past: Labels = [("n".repeat(MAX_LABEL_BYTES + 1), "v".to_string())].into();
        assert_eq!(
            check_label_sizes(&past),
            Err(format!(
                "a label name of 4097 bytes ({}...; at most 4096)",
                "n".repeat(40)
            ))
        );
    }

    #[test]
    fn history_keeps_the_newest_points_up_to_its_bound() {
        let mut history = History::default();
        let labels = Labels::new();
        for t in 0..HISTORY_POINTS + 10 {
            history.push("m", &labels, t as f64, 1.0);
        }
        let kept = history
            .get("m", &labels)
            .map(|d| d.iter().copied().collect::<Vec<_>>());
        let kept = kept.unwrap_or_default();
        assert_eq!(kept.len(), 720);
        assert_eq!(kept.first(), Some(&(10.0, 1.0)));
    }

    #[test]
    fn ranges_parse_and_cycle() {
        assert_eq!(Range::parse("1h"), Ok(Range::OneHour));
        assert!(Range::parse("2h").is_err_and(|e| e.contains("5m, 1h, 6h")));
        assert_eq!(Range::SixHours.next(), Range::FiveMinutes);
        assert_eq!(Range::default().seconds(), 300.0);
    }
}
