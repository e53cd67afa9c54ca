//! `~/.config/surge/config.toml` (or `$XDG_CONFIG_HOME/surge/config.toml`, or `--config`):
//! one serde struct per section, unknown fields refused, errors in one line naming the field.
//! Flags override the file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use surge_client::model::Range;

/// The colour themes (`[ui] theme`, `--theme`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThemeName {
    Default,
    HighContrast,
    Mono,
}

impl ThemeName {
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "default" => Ok(ThemeName::Default),
            "high-contrast" => Ok(ThemeName::HighContrast),
            "mono" => Ok(ThemeName::Mono),
            other => Err(format!(
                "unknown theme {other:?} (default, high-contrast, mono)"
            )),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub sources: Sources,
    #[serde(default)]
    pub ui: Ui,
    #[serde(default)]
    pub snapshot: Snapshot,
    /// Per service (workload name): which consumer groups are its own.
    #[serde(default)]
    pub services: BTreeMap<String, Service>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Sources {
    pub prometheus: Option<String>,
    pub alertmanager: Option<String>,
    #[serde(default)]
    pub exporters: Vec<String>,
    #[serde(default = "default_refresh", with = "humantime_serde")]
    pub refresh: Duration,
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// A source is shown stale after this long without a good answer (default: 3 refreshes,
    /// at least 10 s).
    #[serde(default, with = "humantime_serde")]
    pub stale_after: Option<Duration>,
}

impl Default for Sources {
    fn default() -> Self {
        Sources {
            prometheus: None,
            alertmanager: None,
            exporters: Vec::new(),
            refresh: default_refresh(),
            timeout: default_timeout(),
            stale_after: None,
        }
    }
}

fn default_refresh() -> Duration {
    Duration::from_secs(2)
}

fn default_timeout() -> Duration {
    Duration::from_secs(5)
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Ui {
    /// `default`, `high-contrast` or `mono`.
    pub theme: Option<String>,
    #[serde(default)]
    pub readonly: bool,
    /// `5m`, `1h` or `6h`.
    pub range: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    /// Where `s` writes snapshots (default: the current directory).
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Service {
    #[serde(default)]
    pub groups: Vec<String>,
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl Config {
    pub fn parse(text: &str) -> Result<Config, String> {
        let deserializer = toml::Deserializer::parse(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
            match line {
                Some(line) => format!("line {line}: {}", one_line(e.message())),
                None => one_line(e.message()),
            }
        })?;
        let config: Config = serde_path_to_error::deserialize(deserializer).map_err(|e| {
            let path = e.path().to_string();
            let message = one_line(e.inner().message());
            if path == "." {
                message
            } else {
                format!("{path}: {message}")
            }
        })?;
        config.validate()?;
        Ok(config)
    }

    pub fn load(path: &Path) -> Result<Config, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read it: {e}"))?;
        Config::parse(&text)
    }

    fn validate(&self) -> Result<(), String> {
        let s = &self.sources;
        for (field, url) in [
            ("sources.prometheus", &s.prometheus),
            ("sources.alertmanager", &s.alertmanager),
        ] {
            if let Some(url) = url {
                check_url(url).map_err(|e| format!("{field}: {e}"))?;
            }
        }
        for (i, url) in s.exporters.iter().enumerate() {
            check_url(url).map_err(|e| format!("sources.exporters[{i}]: {e}"))?;
        }
        if s.refresh < Duration::from_millis(100) {
            return Err("sources.refresh: at least 100ms".into());
        }
        if s.timeout.is_zero() {
            return Err("sources.timeout: must be more than 0".into());
        }
        if let Some(theme) = &self.ui.theme {
            ThemeName::parse(theme).map_err(|e| format!("ui.theme: {e}"))?;
        }
        if let Some(range) = &self.ui.range {
            Range::parse(range).map_err(|e| format!("ui.range: {e}"))?;
        }
        Ok(())
    }
}

/// `http(s)://host:port[/path]` or `host:port`.
pub fn check_url(url: &str) -> Result<(), String> {
    let rest = match url.split_once("://") {
        Some(("http" | "https", rest)) => rest,
        Some((scheme, _)) => {
            return Err(format!("{url:?}: scheme {scheme:?} is not http or https"));
        }
        None => url,
    };
    let authority = rest.split('/').next().unwrap_or("");
    if authority.is_empty() || authority.contains(char::is_whitespace) {
        return Err(format!("{url:?} is not a URL (expected http://host:port)"));
    }
    Ok(())
}

/// `$XDG_CONFIG_HOME/surge/config.toml`, else `~/.config/surge/config.toml`.
pub fn default_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("surge").join("config.toml"))
}

/// `$XDG_STATE_HOME/surge/surge.log`, else `~/.local/state/surge/surge.log`.
pub fn default_log_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_STATE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))?;
    Some(base.join("surge").join("surge.log"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_config_parses() -> Result<(), String> {
        let c = Config::parse(
            "[sources]\nprometheus = \"http://127.0.0.1:9090\"\nexporters = [\"127.0.0.1:9187\"]\nrefresh = \"1s\"\n\
             [ui]\ntheme = \"high-contrast\"\nrange = \"1h\"\n[services.payment]\ngroups = [\"payment\", \"payment-retry\"]\n",
        )?;
        assert_eq!(c.sources.refresh, Duration::from_secs(1));
        assert_eq!(c.services["payment"].groups.len(), 2);
        assert_eq!(Config::parse("")?, Config::default());
        Ok(())
    }

    #[test]
    fn errors_are_one_line_and_name_the_field() {
        let cases = [
            ("[sources]\nrefresh = \"soon\"", "sources.refresh"),
            (
                "[sources]\nprometheus = \"ftp://x\"",
                "sources.prometheus: \"ftp://x\": scheme \"ftp\"",
            ),
            ("[ui]\ntheme = \"neon\"", "ui.theme: unknown theme \"neon\""),
            ("[ui]\nrange = \"2h\"", "ui.range"),
            ("[ui]\ncolour = true", "unknown field `colour`"),
            ("[sources\n", "line 1"),
            ("[sources]\nexporters = [\"a b\"]", "sources.exporters[0]"),
        ];
        for (text, want) in cases {
            match Config::parse(text) {
                Ok(c) => panic!("{text:?} parsed: {c:?}"),
                Err(e) => {
                    assert!(e.contains(want), "{text:?}: {e}");
                    assert!(!e.contains('\n'), "{e}");
                }
            }
        }
    }
}
