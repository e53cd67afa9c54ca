//! Basic auth against the config's bcrypt hashes, as the exporter-toolkit does it: bcrypt
//! runs one at a time (it is slow on purpose; a flood of guesses must not take every core),
//! a password verified once is remembered for this config, and an unknown user costs a bcrypt
//! like a known one, so timing does not tell which users exist.

use std::sync::OnceLock;

use axum::http::HeaderValue;
use base64::Engine;
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;

use super::Loaded;

static BCRYPT_GATE: Semaphore = Semaphore::const_new(1);

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

/// Whether the request's credentials match a user of `loaded`.
pub(super) async fn authorized(loaded: &Loaded, header: Option<&HeaderValue>) -> bool {
    let Some((user, password)) = credentials(header) else {
        return false;
    };
    let known = loaded.users.get(&user);
    if let Some(remembered) = loaded
        .verified
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&user)
        && known.is_some()
        && bool::from(remembered.as_slice().ct_eq(&password))
    {
        return true;
    }
    let hash = known.cloned().unwrap_or_else(|| dummy_hash().to_string());
    let Ok(_permit) = BCRYPT_GATE.acquire().await else {
        return false;
    };
    let checked = password.clone();
    let ok = tokio::task::spawn_blocking(move || bcrypt::verify(&checked, &hash).unwrap_or(false))
        .await
        .unwrap_or(false);
    if ok && known.is_some() {
        loaded
            .verified
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(user, password);
        return true;
    }
    false
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
        assert!(authorized(&loaded, Some(&ok)).await);
        // Remembered: the second time does not need bcrypt, and still checks the password.
        assert!(authorized(&loaded, Some(&ok)).await);
        for bad in [
            basic("prometheus:wrong"),
            basic("prometheus:s3cret2"),
            basic("nobody:s3cret"),
            basic("prometheus"),
            HeaderValue::from_static("Bearer s3cret"),
            HeaderValue::from_static("Basic !!!"),
        ] {
            assert!(!authorized(&loaded, Some(&bad)).await, "{bad:?}");
        }
        assert!(!authorized(&loaded, None).await);
        Ok(())
    }
}
