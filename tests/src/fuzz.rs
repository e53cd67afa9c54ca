//! Bodies of the fuzz targets in `fuzz/` (cargo-fuzz, libFuzzer), kept here so the same
//! checks also run on stable in the test suite (`tests/tests/fuzz_smoke.rs`) over the
//! committed corpora and deterministic mutations of them.
//!
//! Each body feeds untrusted bytes to a parser that sees outside input and checks what the
//! project promises about bad input: no panic, and an error is one line.

/// An input's error must be one non-empty line.
fn one_line_error(what: &str, error: &str) {
    assert!(!error.trim().is_empty(), "{what}: empty error");
    assert!(
        !error.contains('\n') && !error.contains('\r'),
        "{what}: error is not one line: {error:?}"
    );
}

/// Exposition text as `surge --exporter URL` (direct mode) reads it.
pub fn exposition(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    match surge_client::fetch::parse::exposition(&text) {
        Ok(parsed) => {
            // Skipped lines are counted, never guessed; a sample count can't exceed lines.
            assert!(parsed.skipped <= text.lines().count());
        }
        Err(e) => one_line_error("exposition", &e),
    }
}

/// Prometheus HTTP API bodies: instant vectors, ranges, alerts, rules.
pub fn prometheus_api(data: &[u8]) {
    use surge_client::fetch::parse as p;
    if let Err(e) = p::parse_vector(data) {
        one_line_error("vector", &e);
    }
    if let Err(e) = p::parse_matrix(data) {
        one_line_error("matrix", &e);
    }
    if let Err(e) = p::prometheus_alerts(data) {
        one_line_error("alerts", &e);
    }
    if let Err(e) = p::parse_rules(data) {
        one_line_error("rules", &e);
    }
}

/// Alertmanager API v2 bodies: alerts and silences.
pub fn alertmanager_api(data: &[u8]) {
    use surge_client::fetch::parse as am;
    if let Err(e) = am::alertmanager_alerts(data) {
        one_line_error("am alerts", &e);
    }
    if let Err(e) = am::parse_silences(data) {
        one_line_error("silences", &e);
    }
}

/// The two config files: `surge`'s and `surge-exporter`'s.
pub fn configs(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return; // both are read with read_to_string, which refuses non-UTF-8 first
    };
    if let Err(e) = surge_tui::config::Config::parse(text) {
        one_line_error("surge config", &e);
    }
    if let Err(e) = surge_exporter::config::Config::parse(text) {
        one_line_error("exporter config", &e.to_string());
    }
}

/// A broker's answer to a request surge-exporter's Kafka client sends (the first two bytes
/// pick the API and version), read and decoded as the client does: hostile lengths and counts
/// must end in a one-line error, never a panic or an abort.
pub fn kafka_answer(data: &[u8]) {
    if let Err(e) = surge_exporter::fuzzing::kafka_answer(data) {
        one_line_error("kafka answer", &e);
    }
}

/// A fuzz target's body.
pub type Target = fn(&[u8]);

/// The targets by name, as in `fuzz/fuzz_targets/`.
pub const TARGETS: [(&str, Target); 5] = [
    ("exposition", exposition),
    ("prometheus_api", prometheus_api),
    ("alertmanager_api", alertmanager_api),
    ("configs", configs),
    ("kafka_answer", kafka_answer),
];

/// A small deterministic mutator (xorshift), for the stable smoke run: byte flips, inserts
/// of interesting bytes, deletions, truncation, duplication and splices between seeds.
pub struct Mutator {
    state: u64,
}

const INTERESTING: &[&[u8]] = &[
    b"\"",
    b"\\",
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b"=",
    b"\n",
    b"#",
    b"NaN",
    b"+Inf",
    b"-1",
    b"1e308",
    b"\xff",
    b"\xc3",
    b"\xe2\x82",
    b"null",
    b"0x",
    b"9999999999999999999999",
    b"\"\\u0000\"",
    b"'",
    b"[[",
    b"]]",
    b"\t",
    b"\r\n",
];

impl Mutator {
    pub fn new(seed: u64) -> Self {
        Mutator { state: seed.max(1) }
    }

    fn next(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.state = x;
        x
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }

    /// One mutant of `seed` (`other` is spliced in sometimes).
    pub fn mutate(&mut self, seed: &[u8], other: &[u8]) -> Vec<u8> {
        let mut out = seed.to_vec();
        for _ in 0..1 + self.below(4) {
            let at = self.below(out.len() + 1);
            match self.below(6) {
                0 if !out.is_empty() => {
                    let i = self.below(out.len());
                    out[i] ^= 1 << self.below(8);
                }
                1 => {
                    let piece = INTERESTING[self.below(INTERESTING.len())];
                    out.splice(at..at, piece.iter().copied());
                }
                2 if !out.is_empty() => {
                    let end = (at + 1 + self.below(16)).min(out.len());
                    out.drain(at.min(end)..end);
                }
                3 => out.truncate(at),
                4 if !out.is_empty() => {
                    let end = (at + 1 + self.below(64)).min(out.len());
                    let piece: Vec<u8> = out[at.min(end)..end].to_vec();
                    out.splice(at..at, piece);
                }
                _ if !other.is_empty() => {
                    let from = self.below(other.len());
                    let end = (from + 1 + self.below(128)).min(other.len());
                    out.splice(at..at, other[from..end].iter().copied());
                }
                _ => {}
            }
        }
        out
    }
}
