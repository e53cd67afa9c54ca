//! Basic auth against the config's bcrypt hashes. bcrypt is slow on purpose, so a flood of
//! guesses must cost the flooder, not the scraper:
//! - one check runs at a time, and at most [`MAX_WAITING`] wait for it; beyond that a request
//!   is answered 429 at once (no queue that grows with the flood);
//! - every outcome is remembered for the config it was made under, keyed by a salted SHA-256 of
//!   the user and password: a scraper's credentials run bcrypt once, and a repeated wrong guess
//!   costs no check (remembered failures are bounded; successes are at most one per user);
//! - an unknown user costs a bcrypt like a known one, so timing does not tell which users exist.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use axum::http::HeaderValue;
use base64::Engine;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use super::Loaded;

static BCRYPT_GATE: Semaphore = Semaphore::const_new(1);
static WAITING: AtomicUsize = AtomicUsize::new(0);

/// Requests that may wait for the bcrypt check at once.
pub(super) const MAX_WAITING: usize = 8;
/// Wrong credentials remembered per config; past this the memory starts over.
const MAX_REMEMBERED_FAILURES: usize = 4096;

/// The outcome of a request's credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    Allowed,
    Denied,
    /// Too many checks waiting: answer 429 without checking.
    Busy,
}

/// Checks already made under one config.
pub(super) struct Checked {
    salt: [u8; 16],
    outcomes: Mutex<Outcomes>,
}

#[derive(Default)]
struct Outcomes {
    /// Users whose password was verified, with the key of that password.
    passed: HashMap<String, [u8; 32]>,
    failed: HashSet<[u8; 32]>,
}

impl Default for Checked {
    fn default() -> Self {
        let mut salt = [0u8; 16];
        // Without randomness the salt stays zero: the keys are still hashes, only
        // precomputable, and only in this process's memory.
        let _ = getrandom::getrandom(&mut salt);
        Checked {
            salt,
            outcomes: Mutex::default(),
        }
    }
}

impl Checked {
    fn key(&self, user: &str, password: &[u8]) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.salt);
        h.update((user.len() as u64).to_be_bytes());
        h.update(user.as_bytes());
        h.update(password);
        h.finalize().into()
    }

    fn remembered(&self, user: &str, key: &[u8; 32]) -> Option<bool> {
        let outcomes = self.outcomes.lock().unwrap_or_else(|e| e.into_inner());
        if outcomes.passed.get(user) == Some(key) {
            return Some(true);
        }
        outcomes.failed.contains(key).then_some(false)
    }

    fn remember(&self, user: String, key: [u8; 32], passed: bool) {
        let mut outcomes = self.outcomes.lock().unwrap_or_else(|e| e.into_inner());
        if passed {
            outcomes.passed.insert(user, key);
        } else {
            if outcomes.failed.len() >= MAX_REMEMBERED_FAILURES {
                outcomes.failed.clear();
            }
            outcomes.failed.insert(key);
        }
    }
}

/// A hash to check unknown users against (made once, at the toolkit's default cost).
fn dummy_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| bcrypt::hash("surge-exporter: no such user", 10).unwrap_or_default())
}

/// `user:password` from an `Authorization: Basic …` header.
fn credentials(header: Option<&HeaderValue>) -> Option<(String, Vec<u8>)> {
    let value = header?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let colon = decoded.iter().position(|b| *b == b':')?;
    let user = String::from_utf8(decoded[..colon].to_vec()).ok()?;
    Some((user, decoded[colon + 1..].to_vec()))
}

/// Leaves the waiting count when dropped (also when the request is dropped mid-wait).
struct Waiting;

impl Waiting {
    fn enter() -> Option<Waiting> {
        WAITING
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_WAITING).then_some(n + 1)
            })
            .ok()
            .map(|_| Waiting)
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        WAITING.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Whether the request's credentials match a user of `loaded`.
pub(super) async fn check(loaded: &Loaded, header: Option<&HeaderValue>) -> Verdict {
    let Some((user, password)) = credentials(header) else {
        return Verdict::Denied;
    };
    let key = loaded.checked.key(&user, &password);
    match loaded.checked.remembered(&user, &key) {
        Some(true) => return Verdict::Allowed,
        Some(false) => return Verdict::Denied,
        None => {}
    }
    let known = loaded.users.get(&user);
    let hash = known.cloned();
    let Some(_waiting) = Waiting::enter() else {
        return Verdict::Busy;
    };
    let Ok(_permit) = BCRYPT_GATE.acquire().await else {
        return Verdict::Denied;
    };
    // The dummy hash is made on first use, a bcrypt itself: under the gate, off the workers.
    let passed = tokio::task::spawn_blocking(move || {
        let hash = hash.as_deref().unwrap_or_else(|| dummy_hash());
        bcrypt::verify(&password, hash).unwrap_or(false)
    })
    .await
    .unwrap_or(false)
        && known.is_some();
    loaded.checked.remember(user, key, passed);
    if passed {
        Verdict::Allowed
    } else {
        Verdict::Denied
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(text: &str) -> HeaderValue {
        let encoded = base64::engine::general_purpose::STANDARD.encode(text);
        HeaderValue::from_str(&format!("Basic {encoded}")).unwrap_or(HeaderValue::from_static(""))
    }

    #[tokio::test]
    async fn only_the_right_password_of_a_known_user_passes() -> Result<(), String> {
        let hash = bcrypt::hash("s3cret", 4).map_err(|e| e.to_string())?;
        let loaded = super::super::parse(
            &format!("basic_auth_users:\n  prometheus: '{hash}'\n"),
            std::path::Path::new("."),
        )?;
        let ok = basic("prometheus:s3cret");
        assert_eq!(check(&loaded, Some(&ok)).await, Verdict::Allowed);
        // Remembered: the second time does not need bcrypt, and still checks the password.
        assert_eq!(check(&loaded, Some(&ok)).await, Verdict::Allowed);
        for bad in [
            basic("prometheus:wrong"),
            basic("prometheus:s3cret2"),
            basic("nobody:s3cret"),
            basic("prometheus"),
            HeaderValue::from_static("Bearer s3cret"),
            HeaderValue::from_static("Basic !!!"),
        ] {
            assert_eq!(check(&loaded, Some(&bad)).await, Verdict::Denied, "{bad:?}");
            // Remembered failures stay failures.
            assert_eq!(check(&loaded, Some(&bad)).await, Verdict::Denied, "{bad:?}");
        }
        assert_eq!(check(&loaded, Some(&ok)).await, Verdict::Allowed);
        assert_eq!(check(&loaded, None).await, Verdict::Denied);
        Ok(())
    }
}
