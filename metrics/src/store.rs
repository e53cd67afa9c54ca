//! The latest result of every (source, target) pair, and its encoding for `/metrics`.
//!
//! Collection writes here once per target per cycle; scrapes only read. A scrape never
//! waits on a source: it copies `Arc`s under a short read lock and encodes outside it.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use crate::catalogue::exporter::{
    BUILD_INFO, SOURCE_DURATION, SOURCE_ERRORS, SOURCE_INTERVAL, SOURCE_LAST_SUCCESS,
    SOURCE_SERIES, SOURCE_UP,
};
pub use crate::exposition::Format;
use crate::exposition::{end, header, series};
use crate::family::{Family, Labels, SampleSet};
use crate::selector::Selectors;

// Every critical section here is a single assignment or a read, so a panic in another holder
// cannot leave the data half-written: take the lock even if poisoned rather than stop serving.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(PoisonError::into_inner)
}

/// State of one (source, target) pair.
#[derive(Debug, Clone, Default)]
pub struct TargetState {
    /// Samples of the last successful cycle; empty while the target is down, so a down
    /// target shows `surge_source_up 0` and no stale values.
    pub samples: Arc<SampleSet>,
    pub up: bool,
    pub last_success: Option<SystemTime>,
    pub last_duration: Duration,
    pub errors: u64,
    pub last_error: Option<String>,
    /// At least one collection finished (before that, only the interval is exported).
    pub collected: bool,
    /// The configured time between collections, once announced with [`Store::expect`].
    pub interval: Option<Duration>,
}

/// How an exposition is sent: as it is, or gzip-compressed (Prometheus asks for gzip).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Identity,
    Gzip,
}

/// One kept encoding. A text is dropped when the store changes, keeping only its size (the
/// next encoding's starting capacity), so a stale 17 MB copy holds no memory; a compressed
/// one (a twentieth of that) stays until the next replaces it, to answer scrapes that come
/// while the next is being encoded.
#[derive(Debug, Default)]
struct Cached {
    generation: u64,
    bytes: Option<Bytes>,
    len: usize,
    /// When `bytes` were encoded.
    at: Option<Instant>,
}

impl Cached {
    fn current(&self, generation: u64) -> Option<Bytes> {
        self.bytes.clone().filter(|_| self.generation == generation)
    }

    /// Sized like the last encoding: a 17 MB exposition grown by doubling would pass through
    /// 32 MB of capacity and leave the heap fragmented.
    fn capacity(&self) -> usize {
        self.len + self.len / 16
    }
}

/// Shared, cheaply readable store of the latest results.
#[derive(Debug, Default)]
pub struct Store {
    targets: RwLock<BTreeMap<(String, String), TargetState>>,
    /// Bumped by every `record`, so an encoded exposition knows when it is stale.
    generation: AtomicU64,
    /// The last encoding per format and content encoding: scrapes between two collections
    /// reuse it, so scrape cost does not grow with the number of scrapers.
    encoded: Mutex<[Cached; 4]>,
    /// One encoding of a slot at a time: a scrape arriving while [`Store::prepare`] encodes
    /// gets the previous encoding, or waits for this one, instead of making a second beside it.
    encoding: [Mutex<()>; 4],
    /// When each slot was last asked for by a scrape: [`Store::prepare`] encodes those asked
    /// for lately.
    asked: Mutex<[Option<Instant>; 4]>,
}

/// A slot asked for within this long is encoded after every collection. Prometheus scrapes
/// every 15 s to 2 min; a one-off `curl` stops costing encodings after this.
const ASKED_LATELY: Duration = Duration::from_secs(300);

/// Slots in the order [`Store::prepare`] encodes them: each text before its gzip, which is
/// compressed from the kept text when there is one.
const SLOTS: [(Format, Encoding); 4] = [
    (Format::PrometheusText, Encoding::Identity),
    (Format::OpenMetrics, Encoding::Identity),
    (Format::PrometheusText, Encoding::Gzip),
    (Format::OpenMetrics, Encoding::Gzip),
];

fn slot_of(format: Format, encoding: Encoding) -> usize {
    let text = match format {
        Format::PrometheusText => 0,
        Format::OpenMetrics => 1,
    };
    match encoding {
        Encoding::Identity => text,
        Encoding::Gzip => text + 2,
    }
}

/// Formatted lines are handed to the output (a vector, or the gzip encoder) in chunks of about
/// this size, so a compressed exposition never holds its whole text.
const CHUNK: usize = 64 * 1024;

impl Store {
    pub fn new() -> Arc<Self> {
        Arc::new(Store::default())
    }

    /// Announce a target and its collection interval before its first collection, so a
    /// target that never finishes one is visible (`surge_source_interval_seconds`).
    pub fn expect(&self, source: &str, target: &str, interval: Duration) {
        let mut targets = write(&self.targets);
        self.generation.fetch_add(1, Ordering::AcqRel);
        targets
            .entry((source.to_string(), target.to_string()))
            .or_default()
            .interval = Some(interval);
        drop(targets);
        self.release_encodings();
    }

    /// Make `targets` the targets `source` has now: ones it no longer has are forgotten (their
    /// series leave the exposition instead of standing there, never updated), new ones are
    /// announced with `interval` as [`Store::expect`] does. A source whose targets are
    /// discovered (PostgreSQL instances of a CloudNativePG cluster) calls this every cycle;
    /// for a fixed list it changes nothing.
    pub fn set_targets(&self, source: &str, targets: &[String], interval: Duration) {
        let mut all = write(&self.targets);
        let before = all.len();
        all.retain(|(s, t), _| s != source || targets.contains(t));
        let mut changed = all.len() != before;
        for target in targets {
            let key = (source.to_string(), target.clone());
            if !all.contains_key(&key) {
                all.entry(key).or_default().interval = Some(interval);
                changed = true;
            }
        }
        drop(all);
        if changed {
            self.generation.fetch_add(1, Ordering::AcqRel);
            self.release_encodings();
        }
    }

    /// Record the outcome of one collection of one target.
    pub fn record(
        &self,
        source: &str,
        target: &str,
        outcome: Result<impl Into<SampleSet>, String>,
        duration: Duration,
    ) {
        let mut targets = write(&self.targets);
        self.generation.fetch_add(1, Ordering::AcqRel);
        let state = targets
            .entry((source.to_string(), target.to_string()))
            .or_default();
        state.last_duration = duration;
        state.collected = true;
        match outcome {
            Ok(samples) => {
                state.samples = Arc::new(samples.into());
                state.up = true;
                state.last_success = Some(SystemTime::now());
                state.last_error = None;
            }
            Err(error) => {
                state.samples = Arc::new(SampleSet::default());
                state.up = false;
                state.errors += 1;
                state.last_error = Some(error);
            }
        }
        drop(targets);
        self.release_encodings();
    }

    /// Drop the kept texts once the store changed: a 17 MB exposition nobody will serve again
    /// would otherwise stay until that format is asked for again. Compressed ones stay, to
    /// answer scrapes that come while the next is encoded.
    fn release_encodings(&self) {
        for (slot, cached) in lock(&self.encoded).iter_mut().enumerate() {
            if SLOTS[slot].1 == Encoding::Identity {
                cached.bytes = None;
            }
        }
    }

    /// The shortest collection interval of any target (15 s when none is known).
    fn shortest_interval(&self) -> Duration {
        read(&self.targets)
            .values()
            .filter_map(|t| t.interval)
            .min()
            .unwrap_or(Duration::from_secs(15))
    }

    /// Whether the target was up after its last collection (`None` before the first one).
    pub fn is_up(&self, source: &str, target: &str) -> Option<bool> {
        let targets = read(&self.targets);
        targets
            .get(&(source.to_string(), target.to_string()))
            .filter(|state| state.collected)
            .map(|state| state.up)
    }

    /// A copy of every target's state, taken under a short read lock.
    pub fn snapshot(&self) -> Vec<((String, String), TargetState)> {
        let targets = read(&self.targets);
        targets
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// The exposition in `format`, sent as `encoding`, for a scrape: the kept one if the
    /// store has not changed since it was encoded, else encoded now and kept for the scrapes
    /// that follow. The slot is remembered as asked for, so [`Store::prepare`] encodes it
    /// after the next collection.
    pub fn exposition(
        self: &Arc<Self>,
        format: Format,
        encoding: Encoding,
    ) -> Result<Bytes, std::fmt::Error> {
        let slot = slot_of(format, encoding);
        lock(&self.asked)[slot] = Some(Instant::now());
        self.encoded_slot(slot)
    }

    /// Encode, off the request path, what scrapers asked for lately, so the first scrape after
    /// a collection finds it ready. Call after recording a collection; it blocks for the
    /// encoding (milliseconds to tens of them at 100,000 series).
    pub fn prepare(self: &Arc<Self>) -> Result<(), std::fmt::Error> {
        let asked = *lock(&self.asked);
        // Slot order: each text before its gzip, compressed from the kept text if there is one.
        for (slot, at) in asked.iter().enumerate() {
            if at.is_some_and(|at| at.elapsed() < ASKED_LATELY) {
                self.encoded_slot(slot)?;
            }
        }
        Ok(())
    }

    fn encoded_slot(self: &Arc<Self>, slot: usize) -> Result<Bytes, std::fmt::Error> {
        let (format, encoding) = SLOTS[slot];
        let text_slot = slot_of(format, Encoding::Identity);
        // Read before encoding: a record racing with us makes what we encode look older than
        // it is, which only costs one extra encoding later.
        let generation = self.generation.load(Ordering::Acquire);
        if let Some(bytes) = lock(&self.encoded)[slot].current(generation) {
            return Ok(bytes);
        }
        let _one_at_a_time = match self.encoding[slot].try_lock() {
            Ok(guard) => guard,
            Err(std::sync::TryLockError::Poisoned(e)) => e.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => {
                // The collection that made it stale is being encoded now (by
                // [`Store::prepare`]): the last encoding answers at once instead of waiting,
                // if it is the previous collection's — no older than two collection
                // intervals (one interval apart, give or take how long each took).
                let previous = {
                    let encoded = lock(&self.encoded);
                    let kept = &encoded[slot];
                    kept.bytes.clone().filter(|_| {
                        kept.at
                            .is_some_and(|at| at.elapsed() <= 2 * self.shortest_interval())
                    })
                };
                match previous {
                    Some(bytes) => return Ok(bytes),
                    None => lock(&self.encoding[slot]),
                }
            }
        };
        let generation = self.generation.load(Ordering::Acquire);
        let (capacity, kept_text) = {
            let encoded = lock(&self.encoded);
            if let Some(bytes) = encoded[slot].current(generation) {
                return Ok(bytes);
            }
            (
                encoded[slot].capacity(),
                encoded[text_slot].current(generation),
            )
        };
        let bytes = match (encoding, kept_text) {
            (Encoding::Gzip, Some(text)) => gzip(&text, capacity)?,
            // A scraper that only takes gzip (Prometheus) never has the whole text in memory:
            // it is compressed chunk by chunk as it is written.
            _ => self.encoded_as(format, encoding, None, capacity)?,
        };
        let bytes = Bytes::from(bytes);
        let mut encoded = lock(&self.encoded);
        let kept = &mut encoded[slot];
        kept.len = bytes.len();
        // Kept only if nothing was recorded meanwhile (a record releases what is kept).
        if self.generation.load(Ordering::Acquire) == generation {
            kept.generation = generation;
            kept.bytes = Some(bytes.clone());
            kept.at = Some(Instant::now());
        }
        Ok(bytes)
    }

    /// Encode everything in the Prometheus text format (0.0.4).
    pub fn encode_prometheus_text(self: &Arc<Self>) -> Result<String, std::fmt::Error> {
        self.encode(Format::PrometheusText)
    }

    /// Encode everything in the OpenMetrics text format (ends with `# EOF`).
    pub fn encode_openmetrics(self: &Arc<Self>) -> Result<String, std::fmt::Error> {
        self.encode(Format::OpenMetrics)
    }

    fn encode(self: &Arc<Self>, format: Format) -> Result<String, std::fmt::Error> {
        let text = self.encoded_as(format, Encoding::Identity, None, 0)?;
        String::from_utf8(text).map_err(|_| std::fmt::Error)
    }

    /// Only the series `selectors` admit (`match[]`), in `format`, sent as `encoding`: encoded
    /// for this request, never kept (each reader asks for its own).
    pub fn exposition_matching(
        &self,
        format: Format,
        encoding: Encoding,
        selectors: &Selectors,
    ) -> Result<Bytes, std::fmt::Error> {
        self.encoded_as(format, encoding, Some(selectors), 0)
            .map(Bytes::from)
    }

    /// The exposition (only what `selectors` admit, if given) in `format`, sent as
    /// `encoding`, in a buffer of `capacity` to start with.
    fn encoded_as(
        &self,
        format: Format,
        encoding: Encoding,
        selectors: Option<&Selectors>,
        capacity: usize,
    ) -> Result<Vec<u8>, std::fmt::Error> {
        // Writing into a vector cannot fail; the error type is only the writer trait's.
        match encoding {
            Encoding::Identity => {
                let mut out = Vec::with_capacity(capacity);
                self.write(format, selectors, &mut out)
                    .map_err(|_| std::fmt::Error)?;
                Ok(out)
            }
            Encoding::Gzip => {
                let mut encoder = gzip_encoder(capacity);
                self.write(format, selectors, &mut encoder)
                    .map_err(|_| std::fmt::Error)?;
                encoder.finish().map_err(|_| std::fmt::Error)
            }
        }
    }

    /// Write the exposition to `sink` in chunks of about [`CHUNK`]: the exporter's own series
    /// first, then every source's samples, each family described once across targets; with
    /// `selectors`, only the series they admit (a family none of them admits is left out,
    /// header and all).
    fn write(
        &self,
        format: Format,
        selectors: Option<&Selectors>,
        sink: &mut impl Write,
    ) -> std::io::Result<()> {
        let snapshot = self.snapshot();
        let mut buffer = Vec::with_capacity(CHUNK + 4096);
        for (family, rows) in own_series(&snapshot).values() {
            let rows = rows
                .iter()
                .map(|(labels, value)| (labels.iter().map(|(k, v)| (*k, v.as_str())), *value));
            write_family(&mut buffer, family, format, selectors, rows, sink)?;
        }
        // Source samples, grouped by family across targets so each family is described once.
        let mut by_family = BTreeMap::new();
        for (_, state) in &snapshot {
            for (family, samples) in state.samples.families() {
                by_family
                    .entry(family.name)
                    .or_insert_with(|| (family, Vec::new()))
                    .1
                    .push(samples);
            }
        }
        for (family, parts) in by_family.into_values() {
            let rows = parts.into_iter().flatten().map(|s| (s.labels(), s.value));
            write_family(&mut buffer, family, format, selectors, rows, sink)?;
        }
        end(&mut buffer, format);
        flush(&mut buffer, sink, 0)
    }
}

/// One family: its header and its rows, or with `selectors` only the rows they admit (and no
/// header when none is admitted).
fn write_family<'v, L>(
    buffer: &mut Vec<u8>,
    family: &Family,
    format: Format,
    selectors: Option<&Selectors>,
    rows: impl Iterator<Item = (L, f64)>,
    sink: &mut impl Write,
) -> std::io::Result<()>
where
    L: Iterator<Item = (&'static str, &'v str)> + Clone,
{
    let picked = selectors.map(|s| s.for_family(family));
    if picked.as_ref().is_some_and(Vec::is_empty) {
        return Ok(());
    }
    let mut described = false;
    for (labels, value) in rows {
        if let Some(picked) = &picked
            && !picked.iter().any(|s| s.admits(labels.clone()))
        {
            continue;
        }
        if !described {
            header(buffer, family, format);
            described = true;
        }
        series(buffer, family, labels, value);
        flush(buffer, sink, CHUNK)?;
    }
    Ok(())
}

/// Hand `buffer` to `sink` once it holds `at_least` bytes.
fn flush(buffer: &mut Vec<u8>, sink: &mut impl Write, at_least: usize) -> std::io::Result<()> {
    if buffer.len() >= at_least {
        sink.write_all(buffer)?;
        buffer.clear();
    }
    Ok(())
}

fn gzip_encoder(capacity: usize) -> flate2::write::GzEncoder<Vec<u8>> {
    flate2::write::GzEncoder::new(Vec::with_capacity(capacity), flate2::Compression::fast())
}

/// `text` gzip-compressed at the fastest level: an exposition is label names and values
/// repeated line after line, which even that level shrinks about twentyfold, and a scrape
/// that finds no cached copy waits for it.
fn gzip(text: &[u8], capacity: usize) -> Result<Vec<u8>, std::fmt::Error> {
    let mut encoder = gzip_encoder(capacity);
    // Writing into a vector cannot fail; the error type is only the writer trait's.
    encoder.write_all(text).map_err(|_| std::fmt::Error)?;
    encoder.finish().map_err(|_| std::fmt::Error)
}

/// Self-observability series of one family.
type OwnFamily = (&'static Family, Vec<(Labels, f64)>);

/// The exporter's own series, one per (source, target), by family name.
fn own_series(snapshot: &[((String, String), TargetState)]) -> BTreeMap<&'static str, OwnFamily> {
    let mut own: BTreeMap<&'static str, OwnFamily> = BTreeMap::new();
    let mut push = |family: &'static Family, labels: Labels, value: f64| {
        own.entry(family.name)
            .or_insert_with(|| (family, Vec::new()))
            .1
            .push((labels, value));
    };
    push(
        &BUILD_INFO,
        vec![("version", env!("CARGO_PKG_VERSION").to_string())],
        1.0,
    );
    for ((source, target), state) in snapshot {
        let labels = || -> Labels { vec![("source", source.clone()), ("target", target.clone())] };
        if let Some(interval) = state.interval {
            push(&SOURCE_INTERVAL, labels(), interval.as_secs_f64());
        }
        if !state.collected {
            continue;
        }
        push(&SOURCE_UP, labels(), if state.up { 1.0 } else { 0.0 });
        push(
            &SOURCE_DURATION,
            labels(),
            state.last_duration.as_secs_f64(),
        );
        push(&SOURCE_ERRORS, labels(), state.errors as f64);
        if let Some(at) = state.last_success {
            let secs = at
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0);
            push(&SOURCE_LAST_SUCCESS, labels(), secs);
        }
        if state.up {
            push(&SOURCE_SERIES, labels(), state.samples.len() as f64);
        }
    }
    own
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::family::{Kind, Sample};

    static LAG: Family = Family {
        name: "surge_test_lag_bytes",
        exposed: "surge_test_lag_bytes",
        kind: Kind::Gauge,
        unit: Some("bytes"),
        labels: &["target"],
        help: "Test lag.",
    };

    /// The Prometheus text exposition as a scraper taking `encoding` gets it.
    fn scrape(store: &Arc<Store>, encoding: Encoding) -> Bytes {
        store
            .exposition(Format::PrometheusText, encoding)
            .expect("encode")
    }

    fn gunzip(bytes: &[u8]) -> String {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(bytes), &mut text)
            .expect("gunzip");
        text
    }

    fn sample(target: &str, value: f64) -> Sample {
        Sample::new(&LAG, vec![("target", target.to_string())], value)
    }

    /// `match[]`: only the series a selector admits, families with none left out whole, the
    /// exporter's own series filtered like any other; gzip the same text compressed.
    #[test]
    fn a_matched_exposition_holds_only_what_the_selectors_admit() -> Result<(), String> {
        let store = Store::new();
        store.record(
            "pg",
            "a",
            Ok(vec![sample("a", 1.0), sample("b", 2.0), sample("c", 3.0)]),
            Duration::ZERO,
        );
        let matched = |texts: &[&str]| -> Result<String, String> {
            let selectors = Selectors::parse(texts.iter().copied())?;
            let text = store
                .exposition_matching(Format::PrometheusText, Encoding::Identity, &selectors)
                .map_err(|e| e.to_string())?;
            let gzip = store
                .exposition_matching(Format::PrometheusText, Encoding::Gzip, &selectors)
                .map_err(|e| e.to_string())?;
            let text = String::from_utf8_lossy(&text).into_owned();
            assert_eq!(gunzip(&gzip), text);
            Ok(text)
        };
        let text = matched(&["surge_test_lag_bytes{target=~\"a|c\"}"])?;
        assert_eq!(
            text,
            "# HELP surge_test_lag_bytes Test lag.\n# TYPE surge_test_lag_bytes gauge\n\
             surge_test_lag_bytes{target=\"a\"} 1.0\nsurge_test_lag_bytes{target=\"c\"} 3.0\n"
        );
        let text = matched(&["surge_source_up", "surge_test_lag_bytes{target=\"b\"}"])?;
        assert_eq!(
            text.lines()
                .filter(|l| !l.starts_with('#'))
                .collect::<Vec<_>>(),
            [
                "surge_source_up{source=\"pg\",target=\"a\"} 1.0",
                "surge_test_lag_bytes{target=\"b\"} 2.0"
            ]
        );
        assert_eq!(matched(&["surge_test_lag_bytes{target=\"z\"}"])?, "");
        Ok(())
    }

    #[test]
    fn failed_target_drops_only_its_own_series() {
        let store = Store::new();
        store.record(
            "pg",
            "a",
            Ok(vec![sample("a", 1.0)]),
            Duration::from_millis(5),
        );
        store.record(
            "pg",
            "b",
            Ok(vec![sample("b", 2.0)]),
            Duration::from_millis(5),
        );
        store.record(
            "pg",
            "b",
            Err::<Vec<Sample>, _>("connection refused".into()),
            Duration::from_millis(5),
        );
        let text = store.encode_prometheus_text().expect("encode");
        assert!(
            text.contains("surge_test_lag_bytes{target=\"a\"} 1"),
            "{text}"
        );
        assert!(!text.contains("target=\"b\"} 2"), "{text}");
        assert!(
            text.contains("surge_source_up{source=\"pg\",target=\"b\"} 0"),
            "{text}"
        );
        assert!(
            text.contains("surge_source_up{source=\"pg\",target=\"a\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("surge_source_errors_total{source=\"pg\",target=\"b\"} 1"),
            "{text}"
        );
        // Recovery brings the series back and keeps the error count.
        store.record(
            "pg",
            "b",
            Ok(vec![sample("b", 3.0)]),
            Duration::from_millis(5),
        );
        let text = store.encode_prometheus_text().expect("encode");
        assert!(
            text.contains("surge_test_lag_bytes{target=\"b\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("surge_source_errors_total{source=\"pg\",target=\"b\"} 1"),
            "{text}"
        );
    }

    #[test]
    fn each_family_is_described_once_across_targets() {
        let store = Store::new();
        store.record("pg", "a", Ok(vec![sample("a", 1.0)]), Duration::ZERO);
        store.record("pg", "b", Ok(vec![sample("b", 2.0)]), Duration::ZERO);
        let text = store.encode_prometheus_text().expect("encode");
        assert_eq!(
            text.matches("# TYPE surge_test_lag_bytes gauge").count(),
            1,
            "{text}"
        );
        let om = store.encode_openmetrics().expect("encode");
        assert!(om.ends_with("# EOF\n"), "{om}");
        assert!(om.contains("# UNIT surge_test_lag_bytes bytes"), "{om}");
    }

    #[test]
    fn encoding_is_cached_until_the_next_record() {
        let store = Store::new();
        store.record("pg", "a", Ok(vec![sample("a", 1.0)]), Duration::ZERO);
        let first = scrape(&store, Encoding::Identity);
        let again = scrape(&store, Encoding::Identity);
        assert_eq!(first.as_ptr(), again.as_ptr(), "second scrape re-encoded");
        store.record("pg", "a", Ok(vec![sample("a", 2.0)]), Duration::ZERO);
        let fresh = scrape(&store, Encoding::Identity);
        assert!(String::from_utf8_lossy(&fresh).contains("target=\"a\"} 2"));
        let om = store
            .exposition(Format::OpenMetrics, Encoding::Identity)
            .expect("encode");
        assert!(om.ends_with(b"# EOF\n"));
    }

    #[test]
    fn gzip_is_the_cached_text_compressed_and_cached_itself() {
        let store = Store::new();
        let samples: Vec<Sample> = (0..500)
            .map(|i| sample(&format!("t{i}"), i.into()))
            .collect();
        store.record("pg", "a", Ok(samples), Duration::ZERO);
        let text = scrape(&store, Encoding::Identity);
        let gz = scrape(&store, Encoding::Gzip);
        let again = scrape(&store, Encoding::Gzip);
        assert_eq!(gz.as_ptr(), again.as_ptr(), "second scrape re-compressed");
        assert!(
            gz.len() * 4 < text.len(),
            "{} of {} bytes",
            gz.len(),
            text.len()
        );
        assert_eq!(gunzip(&gz).as_bytes(), &text[..]);
        store.record("pg", "a", Ok(vec![sample("a", 2.0)]), Duration::ZERO);
        let fresh = scrape(&store, Encoding::Gzip);
        let unzipped = gunzip(&fresh);
        assert!(unzipped.contains("target=\"a\"} 2"), "{unzipped}");
        assert!(!unzipped.contains("t499"), "{unzipped}");
    }

    #[test]
    fn a_gzip_only_scraper_leaves_no_text_cached() {
        let store = Store::new();
        store.record("pg", "a", Ok(vec![sample("a", 1.0)]), Duration::ZERO);
        scrape(&store, Encoding::Gzip);
        let encoded = lock(&store.encoded);
        assert!(encoded[0].bytes.is_none(), "text kept beside its gzip");
        assert!(encoded[2].bytes.is_some(), "gzip not kept");
    }

    /// The exposition reaches its output (a vector, or the gzip encoder) in chunks of about
    /// [`CHUNK`], so a compressed one never holds its whole text.
    #[test]
    fn the_exposition_is_written_in_chunks() {
        struct Largest(Vec<usize>);
        impl Write for Largest {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.push(buf.len());
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let store = Store::new();
        let samples: Vec<Sample> = (0..20_000)
            .map(|i| sample(&format!("target-{i:05}"), f64::from(i)))
            .collect();
        store.record("pg", "a", Ok(samples), Duration::ZERO);
        let mut sink = Largest(Vec::new());
        store
            .write(Format::PrometheusText, None, &mut sink)
            .expect("write");
        let total: usize = sink.0.iter().sum();
        assert!(total > 10 * CHUNK, "{total} bytes");
        assert!(sink.0.len() >= 10, "{} writes", sink.0.len());
        let largest = sink.0.iter().max().copied().unwrap_or(0);
        assert!(largest < CHUNK + 4096, "a write of {largest} bytes");
    }

    /// What scrapers asked for is encoded after a collection, before the next scrape comes;
    /// what nobody asked for (or not for five minutes) is not.
    #[test]
    fn prepare_encodes_what_was_asked_for_lately_and_nothing_else() {
        let store = Store::new();
        store.record("pg", "a", Ok(vec![sample("a", 1.0)]), Duration::ZERO);
        store.prepare().expect("prepare");
        assert!(
            lock(&store.encoded).iter().all(|c| c.bytes.is_none()),
            "encoded what nobody asked for"
        );
        scrape(&store, Encoding::Gzip);
        scrape(&store, Encoding::Identity);
        store.record("pg", "a", Ok(vec![sample("a", 2.0)]), Duration::ZERO);
        store.prepare().expect("prepare");
        let generation = store.generation.load(Ordering::Acquire);
        {
            let encoded = lock(&store.encoded);
            let text = encoded[0].current(generation).expect("text ready");
            assert!(String::from_utf8_lossy(&text).contains("} 2.0\n"));
            let gzip = encoded[2].current(generation).expect("gzip ready");
            assert_eq!(gunzip(&gzip).as_bytes(), &text[..]);
            assert!(encoded[1].bytes.is_none() && encoded[3].bytes.is_none());
        }
        // Asked for six minutes ago: no longer encoded ahead.
        let long_ago = Instant::now().checked_sub(Duration::from_secs(360));
        *lock(&store.asked) = [long_ago; 4];
        store.record("pg", "a", Ok(vec![sample("a", 3.0)]), Duration::ZERO);
        store.prepare().expect("prepare");
        let generation = store.generation.load(Ordering::Acquire);
        assert!(
            lock(&store.encoded)
                .iter()
                .all(|c| c.current(generation).is_none())
        );
    }

    #[test]
    fn a_record_releases_what_was_encoded_and_keeps_its_size() {
        let store = Store::new();
        store.record("pg", "a", Ok(vec![sample("a", 1.0)]), Duration::ZERO);
        let text = scrape(&store, Encoding::Identity);
        scrape(&store, Encoding::Gzip);
        store.record("pg", "a", Ok(vec![sample("a", 2.0)]), Duration::ZERO);
        let encoded = lock(&store.encoded);
        assert!(encoded[0].bytes.is_none(), "stale text kept");
        assert_eq!(encoded[0].len, text.len());
        // The compressed copy stays (stale) for scrapes that come while the next is encoded.
        let generation = store.generation.load(Ordering::Acquire);
        assert!(encoded[2].bytes.is_some() && encoded[2].current(generation).is_none());
    }

    /// A scrape that comes while the collection it follows is being encoded gets the last
    /// encoding at once; once that encoding is done, the new one.
    #[test]
    fn a_scrape_during_the_encoding_gets_the_last_one_at_once() {
        let store = Store::new();
        store.expect("pg", "a", Duration::from_secs(15));
        store.record("pg", "a", Ok(vec![sample("a", 1.0)]), Duration::ZERO);
        scrape(&store, Encoding::Gzip);
        store.record("pg", "a", Ok(vec![sample("a", 2.0)]), Duration::ZERO);
        let encoding = lock(&store.encoding[2]);
        let (sent, answered) = std::sync::mpsc::channel();
        {
            let store = Arc::clone(&store);
            std::thread::spawn(move || sent.send(gunzip(&scrape(&store, Encoding::Gzip))));
        }
        let during = answered
            .recv_timeout(Duration::from_secs(10))
            .expect("the scrape waited for the encoding");
        assert!(during.contains("} 1.0\n"), "{during}");
        drop(encoding);
        let after = gunzip(&scrape(&store, Encoding::Gzip));
        assert!(after.contains("} 2.0\n"), "{after}");
        // No older than two collection intervals: past that, the scrape waits for the encoding.
        store.record("pg", "a", Ok(vec![sample("a", 3.0)]), Duration::ZERO);
        lock(&store.encoded)[2].at = Instant::now().checked_sub(Duration::from_secs(31));
        let encoding = lock(&store.encoding[2]);
        let waiting = {
            let store = Arc::clone(&store);
            std::thread::spawn(move || gunzip(&scrape(&store, Encoding::Gzip)))
        };
        std::thread::sleep(Duration::from_millis(50));
        assert!(
            !waiting.is_finished(),
            "answered with an encoding older than the interval"
        );
        drop(encoding);
        let late = waiting.join().expect("scrape");
        assert!(late.contains("} 3.0\n"), "{late}");
    }

    #[test]
    fn an_expected_target_shows_its_interval_and_no_health_until_collected() {
        let store = Store::new();
        store.expect("pg", "a", Duration::from_secs(15));
        let text = store.encode_prometheus_text().expect("encode");
        assert!(
            text.contains("surge_source_interval_seconds{source=\"pg\",target=\"a\"} 15"),
            "{text}"
        );
        assert!(!text.contains("surge_source_up{"), "{text}");
        assert_eq!(store.is_up("pg", "a"), None);
        store.record(
            "pg",
            "a",
            Err::<Vec<Sample>, _>("refused".into()),
            Duration::ZERO,
        );
        let text = store.encode_prometheus_text().expect("encode");
        assert!(
            text.contains("surge_source_up{source=\"pg\",target=\"a\"} 0"),
            "{text}"
        );
        assert!(text.contains("surge_source_interval_seconds{"), "{text}");
        assert_eq!(store.is_up("pg", "a"), Some(false));
    }

    #[test]
    fn label_values_are_escaped() {
        let store = Store::new();
        let odd = Sample::new(&LAG, vec![("target", "a\"b\\c\nd".to_string())], 1.0);
        store.record("pg", "odd", Ok(vec![odd]), Duration::ZERO);
        let text = store.encode_prometheus_text().expect("encode");
        assert!(text.contains(r#"target="a\"b\\c\nd""#), "{text}");
    }
}
