//! Recordings: every update the panel's fetchers delivered, when it arrived and for which
//! context, in one gzip-compressed, versioned file — and replay: the store as it was at any
//! moment of one, so the same views explain an incident afterwards.
//!
//! File: gzip around `SURGEREC`, a CBOR header (format version first) and one CBOR entry per
//! update. CBOR keeps NaN and infinities, which metric values may be. The writer flushes at
//! most once a second, so a file cut short (a crash, a full disk) replays up to its last
//! whole update, losing at most the last second, and the replay says where it ends.
//!
//! A recording is a file someone may hand you: reading one trusts nothing in it. The inflated
//! stream and the number of updates are capped (at what a recorder ever writes: it stops at
//! the same caps), every update passes the live panel's limits (series per source, label
//! count and sizes), and files are written owner-only (0600): they hold what the panel saw.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;

use flate2::Compression;
use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

use crate::fetch::Update;
use crate::model::{AlertState, Metrics};
use crate::store::Store;

/// The format this build writes and the newest it reads.
pub const FORMAT_VERSION: u32 = 1;
const MAGIC: &[u8; 8] = b"SURGEREC";
/// Default cap on a recording's size on disk.
pub const DEFAULT_CAP_BYTES: u64 = 256 << 20;
/// Most bytes a recording inflates to, and most updates in it. A recorder stops at either, so
/// a file past them was not written by surge (a gzip bomb inflates a few MiB to many GiB).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub inflated_bytes: u64,
    pub entries: u64,
}

pub const LIMITS: Limits = Limits {
    inflated_bytes: 1 << 30,
    entries: 2_000_000,
};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    /// Format version: a reader refuses newer ones by name.
    pub version: u32,
    /// The surge that wrote it.
    pub surge: String,
    /// Context names, by the index entries carry.
    pub contexts: Vec<String>,
    /// Unix seconds when recording began.
    pub started: f64,
    /// Seconds without a good fetch after which the live panel called a source stale, so the
    /// replay marks the same moments stale.
    pub stale_after: f64,
}

/// One update as the panel received it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    /// Unix seconds when it arrived.
    pub at: f64,
    /// Index into the header's contexts.
    pub context: usize,
    pub update: Update,
}

/// An update as stored: instant values the same as the last ones from their source (most
/// refreshes between two Prometheus scrapes) are stored as a reference to those.
#[derive(Debug, Clone, Serialize, Deserialize)]
enum Stored {
    Update(Update),
    Batch(Vec<Stored>),
    /// `Update::Metrics` from `source` at `at`, with the values it last sent.
    Unchanged {
        source: String,
        at: f64,
    },
    /// `Update::Metrics` from `source` at `at`: the families in `kept` as it last sent them,
    /// the others in `changed` (a family in neither is gone).
    Changed {
        source: String,
        at: f64,
        kept: Vec<String>,
        changed: Metrics,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredEntry {
    at: f64,
    context: usize,
    stored: Stored,
}

/// The last instant values per (context, source), to store repeats as references.
type LastMetrics = std::collections::HashMap<(usize, String), Metrics>;

fn store_update(update: &Update, context: usize, last: &mut LastMetrics) -> Stored {
    match update {
        Update::Batch(list) => Stored::Batch(
            list.iter()
                .map(|u| store_update(u, context, last))
                .collect(),
        ),
        Update::Metrics {
            source,
            metrics,
            at,
        } => {
            let key = (context, source.clone());
            let Some(before) = last.get(&key) else {
                last.insert(key, metrics.clone());
                return Stored::Update(update.clone());
            };
            if before.same_as(metrics) {
                return Stored::Unchanged {
                    source: source.clone(),
                    at: *at,
                };
            }
            // Most families (limits, requests, configuration) change far less often than a
            // scrape: only the ones that did are stored.
            let mut kept = Vec::new();
            let mut changed = Metrics::default();
            for (name, points) in metrics.families() {
                match before.family(name) {
                    Some(old) if Arc::ptr_eq(old, points) || old == points => {
                        kept.push(name.clone());
                    }
                    _ => changed.set_family(name.clone(), Arc::clone(points)),
                }
            }
            last.insert(key, metrics.clone());
            Stored::Changed {
                source: source.clone(),
                at: *at,
                kept,
                changed,
            }
        }
        other => Stored::Update(other.clone()),
    }
}

fn load_update(stored: Stored, context: usize, last: &mut LastMetrics) -> Result<Update, String> {
    Ok(match stored {
        Stored::Batch(list) => Update::Batch(
            list.into_iter()
                .map(|s| load_update(s, context, last))
                .collect::<Result<_, _>>()?,
        ),
        Stored::Unchanged { source, at } => {
            let metrics = last
                .get(&(context, source.clone()))
                .cloned()
                .ok_or_else(|| format!("a repeat of {source}'s values before any"))?;
            Update::Metrics {
                source,
                metrics,
                at,
            }
        }
        Stored::Changed {
            source,
            at,
            kept,
            changed,
        } => {
            let key = (context, source.clone());
            let before = last
                .get(&key)
                .ok_or_else(|| format!("a change of {source}'s values before any"))?;
            let mut metrics = changed;
            for name in kept {
                let points = before
                    .family(&name)
                    .ok_or_else(|| format!("{source}'s family {name} kept but never stored"))?;
                metrics.set_family(name, Arc::clone(points));
            }
            last.insert(key, metrics.clone());
            Update::Metrics {
                source,
                metrics,
                at,
            }
        }
        Stored::Update(update) => {
            if let Update::Metrics {
                source, metrics, ..
            } = &update
            {
                last.insert((context, source.clone()), metrics.clone());
            }
            update
        }
    })
}

/// Counts what reaches the file, for the cap.
struct Counted<W> {
    inner: W,
    bytes: u64,
}

impl<W: Write> Write for Counted<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Writes a recording; stops (and says why, once) at the size cap or on a write error.
pub struct Recorder {
    out: Option<GzEncoder<Counted<File>>>,
    path: String,
    cap: u64,
    entries: u64,
    /// Bytes before compression, against `limits`.
    inflated: u64,
    limits: Limits,
    last_flush: f64,
    last: LastMetrics,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("path", &self.path)
            .field("entries", &self.entries)
            .finish()
    }
}

impl Recorder {
    /// Start a recording at `path` (replaced if it exists), at most `cap` bytes on disk.
    pub fn create(
        path: &Path,
        contexts: Vec<String>,
        started: f64,
        stale_after: f64,
        cap: u64,
    ) -> Result<Recorder, String> {
        let shown = path.display().to_string();
        let file = owner_only(path).map_err(|e| format!("cannot record to {shown}: {e}"))?;
        let mut out = GzEncoder::new(
            Counted {
                inner: file,
                bytes: 0,
            },
            Compression::fast(),
        );
        let header = Header {
            version: FORMAT_VERSION,
            surge: env!("CARGO_PKG_VERSION").to_string(),
            contexts,
            started,
            stale_after,
        };
        out.write_all(MAGIC)
            .map_err(|e| format!("cannot record to {shown}: {e}"))?;
        ciborium::into_writer(&header, &mut out)
            .map_err(|e| format!("cannot record to {shown}: {e}"))?;
        out.flush()
            .map_err(|e| format!("cannot record to {shown}: {e}"))?;
        Ok(Recorder {
            out: Some(out),
            path: shown,
            cap,
            entries: 0,
            inflated: 0,
            limits: LIMITS,
            last_flush: started,
            last: LastMetrics::new(),
        })
    }

    /// Whether it still records.
    pub fn recording(&self) -> bool {
        self.out.is_some()
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    /// Updates written so far.
    pub fn entries(&self) -> u64 {
        self.entries
    }

    /// Bytes on disk so far (what has been flushed).
    pub fn bytes(&self) -> u64 {
        self.out.as_ref().map_or(0, |o| o.get_ref().bytes)
    }

    /// Write `update` as it arrived at `at` for `context` (no copy of it is kept). `Err`
    /// once, with the reason, when recording stops (cap or error); after that, updates are
    /// dropped.
    pub fn record(&mut self, at: f64, context: usize, update: &Update) -> Result<(), String> {
        let Some(out) = self.out.as_mut() else {
            return Ok(());
        };
        let stored = StoredEntry {
            at,
            context,
            stored: store_update(update, context, &mut self.last),
        };
        let mut encoded = Vec::new();
        let written = ciborium::into_writer(&stored, &mut encoded)
            .map_err(|e| e.to_string())
            .and_then(|()| {
                let limits = self.limits;
                if self.inflated + encoded.len() as u64 > limits.inflated_bytes
                    || self.entries >= limits.entries
                {
                    return Err(format!(
                        "it holds the most a recording may ({} MiB inflated, {} updates)",
                        limits.inflated_bytes >> 20,
                        limits.entries
                    ));
                }
                self.inflated += encoded.len() as u64;
                out.write_all(&encoded).map_err(|e| e.to_string())
            })
            .and_then(|()| {
                if at - self.last_flush >= 1.0 {
                    self.last_flush = at;
                    out.flush().map_err(|e| e.to_string())
                } else {
                    Ok(())
                }
            });
        if let Err(e) = written {
            let _ = self.finish();
            return Err(format!("recording to {} stopped: {e}", self.path));
        }
        self.entries += 1;
        if out.get_ref().bytes >= self.cap {
            self.finish()?;
            return Err(format!(
                "recording to {} stopped at its cap of {} MiB ({} updates)",
                self.path,
                self.cap >> 20,
                self.entries
            ));
        }
        Ok(())
    }

    /// Close the file properly (the gzip trailer).
    pub fn finish(&mut self) -> Result<(), String> {
        if let Some(out) = self.out.take() {
            out.finish()
                .and_then(|mut c| c.flush())
                .map_err(|e| format!("recording to {}: {e}", self.path))?;
        }
        Ok(())
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}

/// A recording read back.
#[derive(Debug, Clone)]
pub struct Recording {
    pub header: Header,
    pub entries: Vec<Entry>,
    /// Set when the file ends mid-update: why, after how many whole ones.
    pub truncated: Option<String>,
}

impl Recording {
    /// When a recording cut short ends: the moment of its last whole update (or its start).
    pub fn cut_after(&self) -> Option<f64> {
        self.truncated.as_ref()?;
        Some(self.entries.last().map_or(self.header.started, |e| e.at))
    }
}

/// Create (or replace) `path` readable by its owner only: recordings and snapshots hold what
/// the panel saw (names, hosts, alert texts).
pub fn owner_only(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    // A file that existed keeps its mode on open.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    Ok(file)
}

/// Counts what is read through it, so inflating stops at the cap.
struct Inflated<R> {
    inner: R,
    bytes: u64,
    cap: u64,
}

impl<R: Read> Read for Inflated<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.bytes >= self.cap {
            return Err(std::io::Error::other(format!(
                "inflates past {} MiB, more than surge ever writes",
                self.cap >> 20
            )));
        }
        let room = usize::try_from(self.cap - self.bytes).unwrap_or(usize::MAX);
        let len = buf.len().min(room);
        let n = self.inner.read(&mut buf[..len])?;
        self.bytes += n as u64;
        Ok(n)
    }
}

/// The live panel's limits, applied to a recorded update (a recording is input like any
/// answer).
fn check_update(update: &Update) -> Result<(), String> {
    match update {
        Update::Metrics {
            source, metrics, ..
        } => {
            let mut series = 0;
            for name in metrics.names() {
                for point in metrics.points(name) {
                    crate::model::check_label_sizes(&point.labels)
                        .map_err(|e| format!("{source}: {name}: {e}"))?;
                    series += 1;
                }
            }
            if series > crate::fetch::exposition::MAX_SERIES {
                return Err(format!(
                    "{source}: {series} series at once (at most {})",
                    crate::fetch::exposition::MAX_SERIES
                ));
            }
        }
        Update::History { metric, series } => {
            if series.len() > crate::fetch::exposition::MAX_SERIES {
                return Err(format!("{metric}: {} series", series.len()));
            }
            for (labels, _) in series {
                crate::model::check_label_sizes(labels).map_err(|e| format!("{metric}: {e}"))?;
            }
        }
        Update::Alerts { source, alerts } => {
            for alert in alerts {
                crate::model::check_label_sizes(&alert.labels)
                    .map_err(|e| format!("{source}: alert {}: {e}", alert.name))?;
            }
        }
        Update::Batch(list) => {
            for update in list {
                check_update(update)?;
            }
        }
        Update::Providers(providers) => {
            if providers.len() > 16 {
                return Err(format!("{} signal providers", providers.len()));
            }
        }
        Update::Thresholds { .. }
        | Update::Silences(_)
        | Update::Failed { .. }
        | Update::Notice(_)
        | Update::Acted(_)
        | Update::DeadLetters(_) => {}
    }
    Ok(())
}

/// Read a recording; the error is one line naming the file and the problem.
pub fn read(path: &Path) -> Result<Recording, String> {
    read_within(path, LIMITS)
}

fn read_within(path: &Path, limits: Limits) -> Result<Recording, String> {
    let shown = path.display().to_string();
    let file = File::open(path).map_err(|e| format!("{shown}: {e}"))?;
    let mut input = BufReader::new(Inflated {
        inner: MultiGzDecoder::new(BufReader::new(file)),
        bytes: 0,
        cap: limits.inflated_bytes,
    });
    let mut magic = [0u8; 8];
    if input.read_exact(&mut magic).is_err() || &magic != MAGIC {
        return Err(format!("{shown}: not a surge recording"));
    }
    // The version first, before the rest of the header is trusted to have today's shape.
    let raw: ciborium::Value = ciborium::from_reader(&mut input)
        .map_err(|e| format!("{shown}: unreadable recording header: {e}"))?;
    let version = raw
        .as_map()
        .and_then(|m| {
            m.iter()
                .find(|(k, _)| k.as_text() == Some("version"))
                .and_then(|(_, v)| v.as_integer())
        })
        .and_then(|v| u32::try_from(v).ok())
        .ok_or_else(|| format!("{shown}: recording header has no format version"))?;
    if version > FORMAT_VERSION {
        let by = raw
            .as_map()
            .and_then(|m| m.iter().find(|(k, _)| k.as_text() == Some("surge")))
            .and_then(|(_, v)| v.as_text().map(str::to_string))
            .unwrap_or_else(|| "a newer surge".into());
        return Err(format!(
            "{shown}: recorded by surge {by} in format {version}; this surge ({}) reads format {FORMAT_VERSION} — replay it with a newer surge",
            env!("CARGO_PKG_VERSION")
        ));
    }
    let header: Header = raw
        .deserialized()
        .map_err(|e| format!("{shown}: bad recording header: {e}"))?;
    let mut entries = Vec::new();
    let mut truncated = None;
    let mut last = LastMetrics::new();
    loop {
        match input.fill_buf() {
            Ok([]) => break,
            Ok(_) => {}
            Err(e) => {
                if input.get_ref().bytes >= limits.inflated_bytes {
                    return Err(format!("{shown}: {e} (refused)"));
                }
                truncated = Some(format!("{e} after {} whole updates", entries.len()));
                break;
            }
        }
        if entries.len() as u64 >= limits.entries {
            return Err(format!(
                "{shown}: more than {} updates, more than surge ever writes (refused)",
                limits.entries
            ));
        }
        match ciborium::from_reader::<StoredEntry, _>(&mut input) {
            Ok(stored) => {
                let update = load_update(stored.stored, stored.context, &mut last)
                    .map_err(|e| format!("{shown}: {e}"))?;
                check_update(&update)
                    .map_err(|e| format!("{shown}: update {} refused: {e}", entries.len() + 1))?;
                entries.push(Entry {
                    at: stored.at,
                    context: stored.context,
                    update,
                });
            }
            Err(e) => {
                if input.get_ref().bytes >= limits.inflated_bytes {
                    return Err(format!(
                        "{shown}: inflates past {} MiB, more than surge ever writes (refused)",
                        limits.inflated_bytes >> 20
                    ));
                }
                truncated = Some(format!(
                    "cut short ({e}) after {} whole updates",
                    entries.len()
                ));
                break;
            }
        }
    }
    Ok(Recording {
        header,
        entries,
        truncated,
    })
}

/// Entries applied between two saved stores when scrubbing.
const CHECKPOINT_EVERY: usize = 512;

/// A store positioned in a replay.
#[derive(Debug, Clone)]
pub struct Cursor {
    pub store: Store,
    /// Updates applied.
    applied: usize,
}

/// A recording of one context, and the store at any moment of it.
#[derive(Debug)]
pub struct Replay {
    entries: Vec<Entry>,
    /// Stores after the first `n` entries, every [`CHECKPOINT_EVERY`].
    checkpoints: Vec<(usize, Store)>,
}

impl Replay {
    /// Replay `context` of `recording` onto stores made like `template` (empty of data).
    pub fn new(recording: &Recording, context: usize, template: Store) -> Replay {
        let entries: Vec<Entry> = recording
            .entries
            .iter()
            .filter(|e| e.context == context)
            .cloned()
            .collect();
        let mut checkpoints = vec![(0, template.clone())];
        let mut store = template;
        for (i, chunk) in entries.chunks(CHECKPOINT_EVERY).enumerate() {
            let n = (i + 1) * CHECKPOINT_EVERY;
            if n > entries.len() {
                break;
            }
            for entry in chunk {
                store.absorb_at(entry.update.clone(), entry.at);
            }
            checkpoints.push((n, store.clone()));
        }
        Replay {
            entries,
            checkpoints,
        }
    }

    /// Time of the first and the last update (0 for an empty recording).
    pub fn span(&self) -> (f64, f64) {
        (
            self.entries.first().map_or(0.0, |e| e.at),
            self.entries.last().map_or(0.0, |e| e.at),
        )
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// How many updates had arrived by `at`.
    pub fn position(&self, at: f64) -> usize {
        self.entries.partition_point(|e| e.at <= at)
    }

    /// Arrival time of update `n` (0-based), if there is one.
    pub fn time_of(&self, n: usize) -> Option<f64> {
        self.entries.get(n).map(|e| e.at)
    }

    /// A store at the start of the replay, to move along it with [`Replay::seek`].
    pub fn cursor(&self) -> Cursor {
        Cursor {
            store: self.checkpoints[0].1.clone(),
            applied: 0,
        }
    }

    /// Move `cursor` to `at`: every update that had arrived by then applied, the rows derived
    /// for that moment. Forward applies only the updates in between; back (or far forward)
    /// starts again from the nearest checkpoint.
    pub fn seek(&self, cursor: &mut Cursor, at: f64) {
        let n = self.position(at);
        if n < cursor.applied || n - cursor.applied > CHECKPOINT_EVERY {
            let (k, store) = self
                .checkpoints
                .iter()
                .rev()
                .find(|(k, _)| *k <= n)
                .unwrap_or(&self.checkpoints[0]);
            cursor.store = store.clone();
            cursor.applied = *k;
        }
        for entry in &self.entries[cursor.applied..n] {
            cursor.store.absorb_at(entry.update.clone(), entry.at);
        }
        cursor.applied = n;
        cursor.store.rebuild(at);
    }

    /// The store as the panel had it at `at`.
    pub fn store_at(&self, at: f64) -> Store {
        let mut cursor = self.cursor();
        self.seek(&mut cursor, at);
        cursor.store
    }

    /// When the alerts shown next change after `after`: an alert starts or stops firing
    /// or pending, by any source.
    pub fn next_alert_change(&self, after: f64) -> Option<f64> {
        let mut last: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        for entry in &self.entries {
            for (source, signature) in alert_signatures(&entry.update) {
                let changed = last.get(&source).is_some_and(|old| *old != signature);
                if entry.at > after && changed {
                    return Some(entry.at);
                }
                last.insert(source, signature);
            }
        }
        None
    }
}

/// Each alerts update in `update`: its source and what it says fires, sorted.
fn alert_signatures(update: &Update) -> Vec<(String, Vec<String>)> {
    match update {
        Update::Batch(list) => list.iter().flat_map(alert_signatures).collect(),
        Update::Alerts { source, alerts } => {
            let mut signature: Vec<String> = alerts
                .iter()
                .map(|a| {
                    let state = match a.state {
                        AlertState::Firing => "firing",
                        AlertState::Pending => "pending",
                    };
                    format!("{state} {} {:?}", a.name, a.labels)
                })
                .collect();
            signature.sort();
            vec![(source.clone(), signature)]
        }
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Alert, Labels, Metrics};

    fn metrics(replicas: f64) -> Update {
        let mut m = Metrics::default();
        let labels: Labels = [("namespace", "shop"), ("workload", "orders")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        m.insert("surge_hpa_current_replicas", labels.clone(), replicas);
        m.insert("surge_kafka_group_topic_lag_seconds", labels, f64::NAN);
        Update::Metrics {
            source: "prometheus".into(),
            metrics: m,
            at: 0.0,
        }
    }

    fn alerts(firing: &[&str]) -> Update {
        Update::Alerts {
            source: "alertmanager".into(),
            alerts: firing
                .iter()
                .map(|name| Alert {
                    name: name.to_string(),
                    state: AlertState::Firing,
                    severity: "page".into(),
                    labels: Labels::new(),
                    summary: String::new(),
                    description: String::new(),
                    runbook: String::new(),
                    active_at: None,
                    muted: false,
                })
                .collect(),
        }
    }

    fn write(path: &Path, entries: &[(f64, Update)]) -> Result<(), String> {
        let mut recorder =
            Recorder::create(path, vec!["default".into()], 100.0, 30.0, DEFAULT_CAP_BYTES)?;
        for (at, update) in entries {
            recorder.record(*at, 0, update)?;
        }
        recorder.finish()
    }

    #[test]
    fn a_recording_reads_back_with_nan_and_replays_each_moment()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("r.surge");
        write(
            &path,
            &[
                (100.0, metrics(2.0)),
                (101.0, alerts(&[])),
                (102.0, metrics(4.0)),
                (103.0, alerts(&["KafkaConsumerLagGrowing"])),
                (104.0, alerts(&["KafkaConsumerLagGrowing"])),
                (105.0, alerts(&[])),
            ],
        )?;
        let recording = read(&path)?;
        assert_eq!(recording.header.version, FORMAT_VERSION);
        assert_eq!(recording.entries.len(), 6);
        assert!(recording.truncated.is_none());
        let replay = Replay::new(&recording, 0, Store::new(30.0));
        assert_eq!(replay.span(), (100.0, 105.0));
        let replicas = |at: f64| {
            replay
                .store_at(at)
                .metrics
                .value(
                    "surge_hpa_current_replicas",
                    &[("namespace", "shop"), ("workload", "orders")],
                )
                .unwrap_or(-1.0)
        };
        assert_eq!(
            (replicas(99.0), replicas(100.5), replicas(102.0)),
            (-1.0, 2.0, 4.0)
        );
        let lag = replay
            .store_at(105.0)
            .metrics
            .value("surge_kafka_group_topic_lag_seconds", &[])
            .ok_or("no lag")?;
        assert!(lag.is_nan(), "NaN survives the file");
        assert_eq!(replay.next_alert_change(100.0), Some(103.0));
        assert_eq!(replay.next_alert_change(103.0), Some(105.0));
        assert_eq!(replay.next_alert_change(105.0), None);
        let shown = replay.store_at(103.5).alertmanager_alerts.len();
        assert_eq!(shown, 1);
        Ok(())
    }

    #[test]
    fn an_action_taken_is_in_the_recording_and_the_replayed_store()
    -> Result<(), Box<dyn std::error::Error>> {
        use crate::act::audit::{Outcome, example};
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("acted.surge");
        let entry = example(Outcome::Done);
        write(
            &path,
            &[
                (100.0, metrics(2.0)),
                (102.0, Update::Acted(Box::new(entry.clone()))),
                (104.0, metrics(4.0)),
            ],
        )?;
        let replay = Replay::new(&read(&path)?, 0, Store::new(30.0));
        assert_eq!(replay.store_at(101.0).actions().count(), 0);
        let later = replay.store_at(104.0);
        assert_eq!(later.actions().collect::<Vec<_>>(), vec![&entry]);
        Ok(())
    }

    #[test]
    fn repeated_values_are_stored_once_and_read_back_whole()
    -> Result<(), Box<dyn std::error::Error>> {
        let mut last = LastMetrics::new();
        let first = Update::Batch(vec![metrics(2.0), alerts(&[])]);
        assert!(matches!(
            store_update(&first, 0, &mut last),
            Stored::Batch(ref b) if matches!(b[0], Stored::Update(_))
        ));
        assert!(matches!(
            store_update(&first, 0, &mut last),
            Stored::Batch(ref b) if matches!(b[0], Stored::Unchanged { .. })
        ));
        // New values in one family: only that family is stored, the other is kept.
        let mut m = Metrics::default();
        m.insert("surge_hpa_current_replicas", Labels::new(), 5.0);
        m.insert("surge_hpa_max_replicas", Labels::new(), 10.0);
        let first = |m: &Metrics| Update::Metrics {
            source: "prometheus".into(),
            metrics: m.clone(),
            at: 0.0,
        };
        store_update(&first(&m), 2, &mut last);
        let mut next = Metrics::default();
        next.insert("surge_hpa_current_replicas", Labels::new(), 6.0);
        next.insert("surge_hpa_max_replicas", Labels::new(), 10.0);
        let stored = store_update(&first(&next), 2, &mut last);
        let Stored::Changed { kept, changed, .. } = &stored else {
            return Err(format!("{stored:?}").into());
        };
        assert_eq!(kept, &["surge_hpa_max_replicas".to_string()]);
        assert_eq!(changed.len(), 1);
        let mut reading = LastMetrics::new();
        load_update(
            store_update(&first(&m), 3, &mut LastMetrics::new()),
            3,
            &mut reading,
        )?;
        let Update::Metrics { metrics: back, .. } = load_update(stored, 3, &mut reading)? else {
            return Err("not metrics".into());
        };
        assert!(back.same_as(&next), "{back:?}");
        // Another context's identical values are its own.
        assert!(matches!(
            store_update(&metrics(2.0), 1, &mut last),
            Stored::Update(_)
        ));
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("repeats.surge");
        let entries: Vec<(f64, Update)> = (0..50)
            .map(|i| (100.0 + i as f64, metrics(if i < 30 { 2.0 } else { 3.0 })))
            .collect();
        write(&path, &entries)?;
        let recording = read(&path)?;
        assert_eq!(recording.entries.len(), 50);
        for (entry, (at, _)) in recording.entries.iter().zip(&entries) {
            let Update::Metrics { metrics: m, .. } = &entry.update else {
                return Err("not metrics".into());
            };
            let want = if *at < 130.0 { 2.0 } else { 3.0 };
            assert_eq!(m.value("surge_hpa_current_replicas", &[]), Some(want));
        }
        Ok(())
    }

    #[test]
    fn checkpoints_give_the_same_store_as_applying_everything()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("long.surge");
        let entries: Vec<(f64, Update)> = (0..CHECKPOINT_EVERY * 2 + 7)
            .map(|i| (1000.0 + i as f64, metrics(i as f64)))
            .collect();
        write(&path, &entries)?;
        let replay = Replay::new(&read(&path)?, 0, Store::new(30.0));
        assert_eq!(replay.checkpoints.len(), 3, "checkpoints were taken");
        for at in [1000.0, 1511.0, 1512.0, 1700.5, 2030.0] {
            let value = replay
                .store_at(at)
                .metrics
                .value("surge_hpa_current_replicas", &[]);
            assert_eq!(value, Some((at - 1000.0).floor()), "at {at}");
        }
        // One cursor moved forward, back and far forward agrees with a fresh store each time.
        let mut cursor = replay.cursor();
        for at in [1003.0, 1010.0, 1700.5, 1200.0, 2030.0, 1000.0] {
            replay.seek(&mut cursor, at);
            let value = cursor
                .store
                .metrics
                .value("surge_hpa_current_replicas", &[]);
            assert_eq!(value, Some((at - 1000.0).floor()), "cursor at {at}");
        }
        Ok(())
    }

    /// A gzip bomb: a valid header, then a stream that inflates without end. Reading stops at
    /// the cap (1 MiB here; the recorder's own cap otherwise) and refuses the file.
    #[test]
    fn a_recording_that_inflates_past_the_cap_is_refused() -> Result<(), Box<dyn std::error::Error>>
    {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("bomb.surge");
        write(&path, &[(100.0, metrics(1.0))])?;
        let limits = Limits {
            inflated_bytes: 1 << 20,
            entries: 1_000_000,
        };
        assert!(read_within(&path, limits).is_ok());
        // A second gzip member (MultiGzDecoder reads on): one valid update repeated to 8 MiB,
        // which compresses to a few KiB.
        let mut one = Vec::new();
        ciborium::into_writer(
            &StoredEntry {
                at: 101.0,
                context: 0,
                stored: Stored::Update(metrics(2.0)),
            },
            &mut one,
        )?;
        let mut bomb = GzEncoder::new(Vec::new(), Compression::best());
        for _ in 0..(8 << 20) / one.len() {
            bomb.write_all(&one)?;
        }
        let bomb = bomb.finish()?;
        assert!(bomb.len() < 64 << 10, "{} bytes", bomb.len());
        let mut file = std::fs::OpenOptions::new().append(true).open(&path)?;
        file.write_all(&bomb)?;
        drop(file);
        let e = read_within(&path, limits).err().unwrap_or_default();
        assert!(
            e.contains("inflates past 1 MiB") && e.contains("(refused)"),
            "{e}"
        );
        assert_eq!(e.lines().count(), 1);
        Ok(())
    }

    #[test]
    fn more_updates_than_a_recorder_writes_are_refused_and_a_recorder_stops_there()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("many.surge");
        let limits = Limits {
            inflated_bytes: 1 << 30,
            entries: 50,
        };
        let mut recorder = Recorder::create(
            &path,
            vec!["default".into()],
            100.0,
            30.0,
            DEFAULT_CAP_BYTES,
        )?;
        recorder.limits = limits;
        let mut stopped = None;
        for i in 0..60 {
            if let Err(e) = recorder.record(100.0 + f64::from(i), 0, &metrics(f64::from(i))) {
                stopped = Some((i, e));
                break;
            }
        }
        let (at, why) = stopped.ok_or("the recorder did not stop at 50 updates")?;
        assert_eq!(at, 50, "{why}");
        assert!(why.contains("holds the most a recording may"), "{why}");
        assert_eq!(read_within(&path, limits)?.entries.len(), 50);
        // One more than the reader's limit: refused, not truncated.
        let fewer = Limits {
            entries: 49,
            ..limits
        };
        let e = read_within(&path, fewer).err().unwrap_or_default();
        assert!(
            e.contains("more than 49 updates") && e.contains("(refused)"),
            "{e}"
        );
        Ok(())
    }

    /// A recorded update goes through the live limits: a series with more labels than any
    /// answer may carry is refused, naming the update.
    #[test]
    fn a_recorded_update_past_the_live_limits_is_refused() -> Result<(), Box<dyn std::error::Error>>
    {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("wide.surge");
        let mut wide = Metrics::default();
        let labels: Labels = (0..=crate::model::MAX_LABELS)
            .map(|i| (format!("l{i}"), "v".to_string()))
            .collect();
        wide.insert("surge_hpa_current_replicas", labels, 1.0);
        let long: Labels = [(
            "l".to_string(),
            "x".repeat(crate::model::MAX_LABEL_BYTES + 1),
        )]
        .into_iter()
        .collect();
        let alerts_update = vec![crate::model::Alert {
            name: "A".into(),
            state: AlertState::Firing,
            severity: "page".into(),
            labels: long,
            summary: String::new(),
            description: String::new(),
            runbook: String::new(),
            active_at: None,
            muted: false,
        }];
        let cases = [
            (
                Update::Metrics {
                    source: "prometheus".into(),
                    metrics: wide,
                    at: 101.0,
                },
                "update 2 refused: prometheus: surge_hpa_current_replicas: a series with 65 labels",
            ),
            (
                Update::Batch(vec![Update::Alerts {
                    source: "alertmanager".into(),
                    alerts: alerts_update,
                }]),
                "update 2 refused: alertmanager: alert A: label l has a value of 4097 bytes",
            ),
        ];
        let mut refused = 0;
        for (update, expected) in cases {
            write(&path, &[(100.0, metrics(1.0)), (101.0, update)])?;
            let e = read(&path).err().unwrap_or_default();
            assert!(e.contains(expected), "{e}");
            refused += 1;
        }
        assert_eq!(refused, 2);
        Ok(())
    }

    #[test]
    fn recordings_are_written_owner_only() -> Result<(), Box<dyn std::error::Error>> {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("r.surge");
        std::fs::write(&path, "old")?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))?;
        write(&path, &[(100.0, metrics(1.0))])?;
        assert_eq!(std::fs::metadata(&path)?.mode() & 0o777, 0o600);
        Ok(())
    }

    #[test]
    fn a_truncated_file_replays_up_to_its_last_whole_update()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("cut.surge");
        let entries: Vec<(f64, Update)> = (0..200)
            .map(|i| (100.0 + i as f64, metrics(i as f64)))
            .collect();
        write(&path, &entries)?;
        let bytes = std::fs::read(&path)?;
        std::fs::write(&path, &bytes[..bytes.len() * 2 / 3])?;
        let recording = read(&path)?;
        let n = recording.entries.len();
        assert!(n > 0 && n < 200, "{n} entries");
        assert!(recording.truncated.is_some());
        let last = &recording.entries[n - 1];
        assert_eq!(last.at, 100.0 + (n - 1) as f64, "whole entries, in order");
        assert_eq!(recording.cut_after(), Some(last.at));
        Ok(())
    }

    #[test]
    fn a_newer_format_or_a_foreign_file_is_refused_in_one_line()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let newer = dir.path().join("newer.surge");
        let mut out = GzEncoder::new(File::create(&newer)?, Compression::fast());
        out.write_all(MAGIC)?;
        #[derive(Serialize)]
        struct Future {
            version: u32,
            surge: &'static str,
            shape: &'static str,
        }
        ciborium::into_writer(
            &Future {
                version: FORMAT_VERSION + 1,
                surge: "9.0.0",
                shape: "different",
            },
            &mut out,
        )?;
        out.finish()?;
        let error = read(&newer).err().unwrap_or_default();
        assert!(
            error.contains("recorded by surge 9.0.0 in format 2")
                && error.contains("reads format 1")
                && !error.contains('\n'),
            "{error}"
        );
        let foreign = dir.path().join("notes.txt");
        std::fs::write(&foreign, "hello")?;
        assert!(
            read(&foreign)
                .err()
                .unwrap_or_default()
                .ends_with("notes.txt: not a surge recording")
        );
        Ok(())
    }

    #[test]
    fn the_cap_stops_recording_once_with_the_reason() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("capped.surge");
        let mut recorder = Recorder::create(&path, vec!["default".into()], 0.0, 30.0, 4096)?;
        let mut stopped = None;
        for i in 0..100_000 {
            if let Err(e) = recorder.record(i as f64, 0, &metrics(i as f64)) {
                stopped = Some((i, e));
                break;
            }
        }
        let (at, reason) = stopped.ok_or("the cap was never reached")?;
        assert!(reason.contains("stopped at its cap"), "{reason}");
        assert!(!recorder.recording());
        let size = std::fs::metadata(&path)?.len();
        assert!((4096..4096 + 8192).contains(&size), "{size} bytes");
        assert_eq!(read(&path)?.entries.len(), at + 1);
        Ok(())
    }
}
