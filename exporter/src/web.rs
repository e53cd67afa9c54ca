//! `--web.config.file`: TLS, client certificates, basic auth and response headers for
//! `/metrics`, in the Prometheus exporter-toolkit format, so the web config a team already
//! uses for node_exporter works here unchanged (fields surge-exporter cannot honour are
//! refused by name, never ignored).
//!
//! The file is read at start (a bad one is a startup error) and again on SIGHUP or when its
//! modification time or size changes; a bad reload keeps the last good config and is logged.
//! The certificate and key files are re-read with it.

mod auth;
mod serve;
mod tls;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use axum::http::{HeaderName, HeaderValue};
use serde::Deserialize;

pub use serve::serve;

/// The file as written (exporter-toolkit's schema).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    tls_server_config: Option<tls::Section>,
    http_server_config: Option<HttpSection>,
    basic_auth_users: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpSection {
    /// Accepted for compatibility; surge-exporter speaks HTTP/1.1 only (Prometheus scrapes
    /// over HTTP/1.1 unless told otherwise).
    #[allow(dead_code)]
    http2: Option<bool>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
}

/// A checked config, ready to serve with.
pub struct Loaded {
    /// `None`: plain HTTP.
    tls: Option<Arc<rustls::ServerConfig>>,
    /// User → bcrypt hash; empty means no authentication.
    users: BTreeMap<String, String>,
    headers: Vec<(HeaderName, HeaderValue)>,
    /// Passwords already verified for this config, so bcrypt (slow on purpose) runs once per
    /// user and password, not once per scrape.
    verified: Mutex<BTreeMap<String, Vec<u8>>>,
}

impl Loaded {
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }
    pub fn requires_auth(&self) -> bool {
        !self.users.is_empty()
    }
}

/// Headers the exporter-toolkit allows, and the values it allows for the two restricted ones.
fn check_header(name: &str, value: &str) -> Result<(HeaderName, HeaderValue), String> {
    let allowed: Option<&[&str]> = match name {
        "Strict-Transport-Security" | "X-XSS-Protection" | "Content-Security-Policy" => Some(&[]),
        "X-Content-Type-Options" => Some(&["nosniff"]),
        "X-Frame-Options" => Some(&["deny", "sameorigin"]),
        _ => None,
    };
    let Some(values) = allowed else {
        return Err(format!(
            "http_server_config.headers: HTTP header {name:?} can not be configured"
        ));
    };
    if !values.is_empty() && !values.iter().any(|v| v.eq_ignore_ascii_case(value)) {
        return Err(format!(
            "http_server_config.headers.{name}: {value:?} is not one of {}",
            values.join(", ")
        ));
    }
    Ok((
        HeaderName::from_bytes(name.as_bytes()).map_err(|e| format!("{name}: {e}"))?,
        HeaderValue::from_str(value)
            .map_err(|e| format!("http_server_config.headers.{name}: {e}"))?,
    ))
}

/// Read and check the file at `path` (relative file names in it are relative to its folder).
pub fn load(path: &Path) -> Result<Loaded, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("reading it: {e}"))?;
    parse(&text, path.parent().unwrap_or(Path::new(".")))
}

fn parse(text: &str, dir: &Path) -> Result<Loaded, String> {
    let file: File = if text.trim().is_empty() {
        File::default()
    } else {
        let de = serde_yaml_ng::Deserializer::from_str(text);
        serde_path_to_error::deserialize(de).map_err(|e| {
            let at = e.path().to_string();
            let inner = e.into_inner().to_string();
            let inner = inner.lines().next().unwrap_or_default().to_string();
            if at == "." {
                inner
            } else {
                format!("{at}: {inner}")
            }
        })?
    };
    let tls = match &file.tls_server_config {
        Some(section) => tls::server_config(section, dir)?.map(Arc::new),
        None => None,
    };
    let mut users = BTreeMap::new();
    for (user, hash) in file.basic_auth_users.unwrap_or_default() {
        if hash.parse::<bcrypt::HashParts>().is_err() {
            return Err(format!(
                "basic_auth_users.{user}: not a bcrypt hash (make one with `htpasswd -nBC 10 {user}`)"
            ));
        }
        users.insert(user, hash);
    }
    let headers = file
        .http_server_config
        .unwrap_or_default()
        .headers
        .iter()
        .map(|(name, value)| check_header(name, value))
        .collect::<Result<_, _>>()?;
    Ok(Loaded {
        tls,
        users,
        headers,
        verified: Mutex::default(),
    })
}

/// The config in use, reloaded when the file changes or on SIGHUP.
pub struct WebConfig {
    path: PathBuf,
    current: RwLock<Arc<Loaded>>,
    /// Modification time and size of the file last read.
    stamp: Mutex<Option<(SystemTime, u64)>>,
}

/// How often the file's modification time and size are compared with the last read.
const POLL: Duration = Duration::from_secs(1);

fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

impl WebConfig {
    /// Load `path`; an error names the problem in one line.
    pub fn open(path: &Path) -> Result<Arc<WebConfig>, String> {
        let stamp_now = stamp(path);
        let loaded = load(path)?;
        Ok(Arc::new(WebConfig {
            path: path.to_path_buf(),
            current: RwLock::new(Arc::new(loaded)),
            stamp: Mutex::new(stamp_now),
        }))
    }

    pub fn current(&self) -> Arc<Loaded> {
        Arc::clone(&self.current.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Read the file again; on error the config in use stays. Returns whether it changed.
    pub fn reload(&self) -> Result<(), String> {
        let stamp_now = stamp(&self.path);
        let loaded = load(&self.path)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(loaded);
        *self.stamp.lock().unwrap_or_else(|e| e.into_inner()) = stamp_now;
        Ok(())
    }

    fn changed_on_disk(&self) -> bool {
        let last = *self.stamp.lock().unwrap_or_else(|e| e.into_inner());
        stamp(&self.path) != last
    }

    /// Reload on SIGHUP and when the file changes, until the runtime ends.
    pub async fn watch(self: Arc<Self>) {
        let mut hangup =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        let mut poll = tokio::time::interval(POLL);
        // A file left broken is reported once, not every second.
        let mut failing: Option<String> = None;
        loop {
            let signalled = async {
                match hangup.as_mut() {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            let why = tokio::select! {
                _ = signalled => "SIGHUP",
                _ = poll.tick() => {
                    if !self.changed_on_disk() {
                        continue;
                    }
                    "file changed"
                }
            };
            match self.reload() {
                Ok(()) => {
                    failing = None;
                    tracing::info!(file = %self.path.display(), why, "web config reloaded");
                }
                Err(error) => {
                    // Do not re-read a broken file every second; wait for the next change.
                    *self.stamp.lock().unwrap_or_else(|e| e.into_inner()) = stamp(&self.path);
                    if failing.as_deref() != Some(error.as_str()) {
                        tracing::error!(file = %self.path.display(), why, %error, "web config not reloaded; the previous one stays in use");
                    }
                    failing = Some(error);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(text: &str) -> String {
        parse(text, Path::new("/nonexistent"))
            .err()
            .unwrap_or_default()
    }

    #[test]
    fn an_empty_file_is_plain_http_without_auth() -> Result<(), String> {
        let loaded = parse("", Path::new("."))?;
        assert!(!loaded.is_tls() && !loaded.requires_auth() && loaded.headers.is_empty());
        let loaded = parse("tls_server_config: {}\n", Path::new("."))?;
        assert!(!loaded.is_tls());
        Ok(())
    }

    #[test]
    fn bad_files_are_one_line_naming_the_field() {
        let cases = [
            ("rate_limit: {burst: 1}\n", "unknown field `rate_limit`"),
            (
                "basic_auth_users:\n  prometheus: hunter2\n",
                "basic_auth_users.prometheus: not a bcrypt hash",
            ),
            (
                "http_server_config:\n  headers:\n    X-Powered-By: surge\n",
                "HTTP header \"X-Powered-By\" can not be configured",
            ),
            (
                "http_server_config:\n  headers:\n    X-Frame-Options: allow\n",
                "X-Frame-Options: \"allow\" is not one of deny, sameorigin",
            ),
            (
                "tls_server_config:\n  cert_file: a.pem\n",
                "tls_server_config: key_file is missing",
            ),
            (
                "tls_server_config:\n  key_file: a.pem\n",
                "tls_server_config: cert_file is missing",
            ),
            (
                "tls_server_config:\n  cert_file: a.pem\n  key_file: b.pem\n  client_auth_type: Sometimes\n",
                "tls_server_config.client_auth_type: \"Sometimes\" is not one of",
            ),
            (
                "tls_server_config:\n  cert_file: a.pem\n  key_file: b.pem\n  min_version: TLS10\n",
                "tls_server_config.min_version: TLS10 is not supported",
            ),
            (
                "tls_server_config:\n  cert_file: a.pem\n  key_file: b.pem\n  client_ca_file: ca.pem\n",
                "client_ca_file is set but client_auth_type is NoClientCert",
            ),
            (
                "tls_server_config:\n  cert_file: a.pem\n  key_file: b.pem\n",
                "tls_server_config.cert_file: reading /nonexistent/a.pem",
            ),
            (
                "tls_server_config:\n  client_allowed_sans: [a]\n",
                "client_allowed_sans is not supported",
            ),
            (
                "tls_server_config: [1]\n",
                "tls_server_config: invalid type",
            ),
        ];
        for (text, expected) in cases {
            let e = error(text);
            assert!(e.contains(expected), "{text:?}: {e}");
            assert_eq!(e.lines().count(), 1, "{e}");
        }
    }

    #[test]
    fn allowed_headers_and_bcrypt_users_load() -> Result<(), String> {
        let hash = bcrypt::hash("s3cret", 4).map_err(|e| e.to_string())?;
        let loaded = parse(
            &format!(
                "basic_auth_users:\n  prometheus: '{hash}'\nhttp_server_config:\n  http2: false\n  headers:\n    X-Frame-Options: deny\n    Strict-Transport-Security: max-age=31536000\n"
            ),
            Path::new("."),
        )?;
        assert!(loaded.requires_auth());
        assert_eq!(loaded.headers.len(), 2);
        Ok(())
    }
}
