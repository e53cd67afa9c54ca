//! `--web.config.file`: TLS, client certificates, basic auth and response headers for
//! `/metrics`, in the Prometheus exporter-toolkit format, so the web config a team already
//! uses for node_exporter works here unchanged (fields surge-exporter cannot honour are
//! refused by name, never ignored).
//!
//! The file is read at start (a bad one is a startup error) and again on SIGHUP or when it or
//! a certificate, key or CA file it names changes (a renewed certificate applies without a
//! signal). A reload fails closed: an empty or unreadable file, or one that would turn off TLS,
//! client certificates or basic auth that are on now, is refused, logged at error, and the
//! running config stays (an editor or config tool truncates the file before writing it anew;
//! a moment's empty file must not become an open endpoint). Dropping protection takes a
//! restart.

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
    /// What this config protects with, to refuse a reload that would drop any of it.
    guards: Guards,
    /// The certificate, key and CA files it read, watched for renewal.
    files: Vec<PathBuf>,
    /// Outcomes of bcrypt checks already made under this config.
    checked: auth::Checked,
}

impl Loaded {
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }
    pub fn requires_auth(&self) -> bool {
        !self.users.is_empty()
    }
}

/// The protections a config turns on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Guards {
    tls: bool,
    client_cert_required: bool,
    client_cert_verified: bool,
    basic_auth: bool,
}

impl Guards {
    /// The protections `self` has that `next` would drop, by their config names.
    fn dropped_by(&self, next: &Guards) -> Vec<&'static str> {
        [
            (self.tls && !next.tls, "TLS"),
            (
                self.client_cert_required && !next.client_cert_required,
                "required client certificates",
            ),
            (
                self.client_cert_verified && !next.client_cert_verified,
                "client certificates verified against client_ca_file",
            ),
            (self.basic_auth && !next.basic_auth, "basic_auth_users"),
        ]
        .into_iter()
        .filter_map(|(dropped, name)| dropped.then_some(name))
        .collect()
    }
}

/// bcrypt costs the exporter-toolkit accepts (Go's bcrypt: 4 to 31)…
const TOOLKIT_COSTS: std::ops::RangeInclusive<u32> = 4..=31;
/// …and the highest surge-exporter runs: each step doubles a check's time, and a check holds
/// the only checker, so a cost far above the common 10–12 would stall every login behind it.
const MAX_COST: u32 = 14;

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

/// [`load`] for a reload over `running`: also refuses an empty file and any file that would
/// drop a protection `running` has.
fn load_over(path: &Path, running: &Loaded) -> Result<Loaded, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("reading it: {e}"))?;
    if text.trim().is_empty() {
        return Err("the file is empty (a reload never turns TLS or authentication off; restart surge-exporter to serve without them)".into());
    }
    let next = parse(&text, path.parent().unwrap_or(Path::new(".")))?;
    let dropped = running.guards.dropped_by(&next.guards);
    if !dropped.is_empty() {
        return Err(format!(
            "it would turn off {} (a reload never drops a protection; restart surge-exporter to serve without it)",
            dropped.join(", ")
        ));
    }
    Ok(next)
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
            // The YAML error may name the field already.
            if at == "." || inner.starts_with(&format!("{at}: ")) {
                inner
            } else {
                format!("{at}: {inner}")
            }
        })?
    };
    let mut files = Vec::new();
    let mut guards = Guards::default();
    let tls = match &file.tls_server_config {
        Some(section) => match tls::server_config(section, dir, &mut files)? {
            Some((config, client_auth)) => {
                guards.tls = true;
                guards.client_cert_required = client_auth.required();
                guards.client_cert_verified = client_auth.verified();
                Some(Arc::new(config))
            }
            None => None,
        },
        None => None,
    };
    let mut users = BTreeMap::new();
    for (user, hash) in file.basic_auth_users.unwrap_or_default() {
        let Ok(parts) = hash.parse::<bcrypt::HashParts>() else {
            return Err(format!(
                "basic_auth_users.{user}: not a bcrypt hash (make one with `htpasswd -nBC 10 {user}`)"
            ));
        };
        let cost = parts.get_cost();
        if !TOOLKIT_COSTS.contains(&cost) {
            return Err(format!(
                "basic_auth_users.{user}: bcrypt cost {cost} is outside 4 to 31"
            ));
        }
        if cost > MAX_COST {
            return Err(format!(
                "basic_auth_users.{user}: bcrypt cost {cost} is above {MAX_COST}, the highest surge-exporter checks (each step doubles a check's time; make one with `htpasswd -nBC 10 {user}`)"
            ));
        }
        users.insert(user, hash);
    }
    guards.basic_auth = !users.is_empty();
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
        guards,
        files,
        checked: auth::Checked::default(),
    })
}

/// The config in use, reloaded when the file changes or on SIGHUP.
pub struct WebConfig {
    /// `None`: plain HTTP with no authentication, nothing to watch.
    path: Option<PathBuf>,
    current: RwLock<Arc<Loaded>>,
    /// Identity of the file and of each file it names, as last read.
    stamp: Mutex<Vec<Stamp>>,
    max_connections: usize,
}

/// How often the files' identities are compared with the last read.
const POLL: Duration = Duration::from_secs(1);

/// Connections served at once unless `--web.max-connections` says otherwise.
pub const DEFAULT_MAX_CONNECTIONS: u16 = 64;

/// A file's modification time, size and inode (a file replaced by rename, as Kubernetes does
/// with mounted secrets, changes its inode even when the rest matches).
type Stamp = Option<(SystemTime, u64, u64)>;

fn stamp(path: &Path) -> Stamp {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len(), meta.ino()))
}

fn stamps(path: &Path, loaded: &Loaded) -> Vec<Stamp> {
    std::iter::once(path)
        .chain(loaded.files.iter().map(PathBuf::as_path))
        .map(stamp)
        .collect()
}

impl WebConfig {
    /// Load `path`; an error names the problem in one line.
    pub fn open(path: &Path) -> Result<WebConfig, String> {
        let loaded = load(path)?;
        Ok(WebConfig {
            path: Some(path.to_path_buf()),
            stamp: Mutex::new(stamps(path, &loaded)),
            current: RwLock::new(Arc::new(loaded)),
            max_connections: usize::from(DEFAULT_MAX_CONNECTIONS),
        })
    }

    /// Plain HTTP with no authentication (no `--web.config.file`).
    pub fn plain() -> WebConfig {
        WebConfig {
            path: None,
            stamp: Mutex::default(),
            current: RwLock::new(Arc::new(Loaded {
                tls: None,
                users: BTreeMap::new(),
                headers: Vec::new(),
                guards: Guards::default(),
                files: Vec::new(),
                checked: auth::Checked::default(),
            })),
            max_connections: usize::from(DEFAULT_MAX_CONNECTIONS),
        }
    }

    /// At most `max` connections are served at once; more wait to be accepted.
    pub fn with_max_connections(mut self, max: usize) -> Self {
        self.max_connections = max.max(1);
        self
    }

    pub fn max_connections(&self) -> usize {
        self.max_connections
    }

    pub fn current(&self) -> Arc<Loaded> {
        Arc::clone(&self.current.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Read the file again; on error the config in use stays.
    pub fn reload(&self) -> Result<(), String> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let running = self.current();
        let loaded = load_over(path, &running)?;
        *self.stamp.lock().unwrap_or_else(|e| e.into_inner()) = stamps(path, &loaded);
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(loaded);
        Ok(())
    }

    fn changed_on_disk(&self) -> bool {
        let Some(path) = &self.path else {
            return false;
        };
        let last = self.stamp.lock().unwrap_or_else(|e| e.into_inner()).clone();
        stamps(path, &self.current()) != last
    }

    /// Reload on SIGHUP and when a file changes, until the runtime ends.
    pub async fn watch(self: Arc<Self>) {
        let Some(path) = self.path.clone() else {
            return;
        };
        let mut hangup =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        let mut poll = tokio::time::interval(POLL);
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
                    tracing::info!(file = %path.display(), why, "web config reloaded");
                }
                Err(error) => {
                    // Do not re-read a broken file every second (nor log it again): wait for
                    // the next change.
                    *self.stamp.lock().unwrap_or_else(|e| e.into_inner()) =
                        stamps(&path, &self.current());
                    tracing::error!(file = %path.display(), why, %error, "web config not reloaded; the previous one stays in use");
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
