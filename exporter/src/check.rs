//! What every config section needs to turn its TOML into typed settings: one-line errors that
//! name the field, the shared checks, and secrets read from the environment or a file.

use std::path::PathBuf;
use std::time::Duration;

/// A configuration problem, rendered as a single line naming the field.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl ConfigError {
    pub(crate) fn field(path: impl std::fmt::Display, message: impl std::fmt::Display) -> Self {
        ConfigError(format!("{path}: {message}"))
    }
}

/// The collection interval of a section that does not set one (processes: its own, shorter).
pub(crate) fn default_interval() -> Duration {
    Duration::from_secs(15)
}

/// The per-target timeout of a section that does not set one.
pub(crate) fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

/// Interval and timeout of a section: both above 0, the timeout within the interval.
pub(crate) fn timing(
    section: &str,
    interval: Duration,
    timeout: Duration,
) -> Result<(), ConfigError> {
    if interval.is_zero() {
        return Err(ConfigError::field(
            format!("{section}.interval"),
            "must be greater than 0",
        ));
    }
    if timeout.is_zero() {
        return Err(ConfigError::field(
            format!("{section}.timeout"),
            "must be greater than 0",
        ));
    }
    if timeout > interval {
        return Err(ConfigError::field(
            format!("{section}.timeout"),
            format!(
                "{} is longer than the interval {}",
                humantime::format_duration(timeout),
                humantime::format_duration(interval)
            ),
        ));
    }
    Ok(())
}

/// A label value from the config (target, cluster, namespace names): not blank.
pub(crate) fn label_value(field: &str, value: &str) -> Result<(), ConfigError> {
    if value.trim().is_empty() {
        return Err(ConfigError::field(field, "must not be empty"));
    }
    Ok(())
}

/// The names of a list's entries (`postgres.targets`, `kafka.clusters`): at least one entry,
/// every name a non-blank label value, no two alike. `entry` says what an entry is.
pub(crate) fn names(list: &str, entry: &str, names: &[&str]) -> Result<(), ConfigError> {
    if names.is_empty() {
        return Err(ConfigError::field(
            list,
            format!("at least one {entry} is required"),
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for (i, name) in names.iter().enumerate() {
        let at = format!("{list}[{i}].name");
        label_value(&at, name)?;
        if !seen.insert(*name) {
            return Err(ConfigError::field(
                at,
                format!("duplicate {entry} name {name:?}"),
            ));
        }
    }
    Ok(())
}

/// Text from a library (regex, TOML) as one line.
pub(crate) fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A regex from the config, or an error naming the field.
pub(crate) fn regex(field: &str, pattern: &str) -> Result<regex::Regex, ConfigError> {
    regex::Regex::new(pattern).map_err(|e| {
        ConfigError::field(
            field,
            format!("invalid regex: {}", one_line(&e.to_string())),
        )
    })
}

/// A value kept out of the config file: an environment variable, or a file whose trailing
/// newline is ignored. Read when the exporter starts, so a missing one is a start-up error
/// naming the field, and never echoed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Secret {
    Env { field: String, var: String },
    File { field: String, path: PathBuf },
}

impl Secret {
    /// From a section's `<name>_env` / `<name>_file` pair, of which at most one may be set.
    /// `at` turns a field name into its full path (`postgres.targets[0].password_env`).
    pub(crate) fn from_pair(
        at: impl Fn(&str) -> String,
        name: &str,
        env: Option<String>,
        file: Option<PathBuf>,
    ) -> Result<Option<Secret>, ConfigError> {
        let (env_field, file_field) = (at(&format!("{name}_env")), at(&format!("{name}_file")));
        match (env, file) {
            (Some(_), Some(_)) => Err(ConfigError::field(
                file_field,
                format!("set either {name}_env or {name}_file, not both"),
            )),
            (Some(var), None) => Ok(Some(Secret::Env {
                field: env_field,
                var,
            })),
            (None, Some(path)) => Ok(Some(Secret::File {
                field: file_field,
                path,
            })),
            (None, None) => Ok(None),
        }
    }

    /// The config field the secret was named in.
    pub(crate) fn field(&self) -> &str {
        match self {
            Secret::Env { field, .. } | Secret::File { field, .. } => field,
        }
    }

    pub(crate) fn read(&self) -> Result<String, ConfigError> {
        match self {
            Secret::Env { field, var } => std::env::var(var).map_err(|_| {
                ConfigError::field(field, format!("environment variable {var} is not set"))
            }),
            Secret::File { field, path } => std::fs::read_to_string(path)
                .map(|text| text.trim_end_matches(['\n', '\r']).to_string())
                .map_err(|e| {
                    ConfigError::field(field, format!("cannot read {}: {e}", path.display()))
                }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_come_from_one_place_and_errors_name_the_field() {
        let at = |f: &str| format!("kafka.clusters[0].{f}");
        let both = Secret::from_pair(at, "sasl_password", Some("A".into()), Some("/x".into()));
        assert!(both.is_err_and(|e| {
            e.0.starts_with("kafka.clusters[0].sasl_password_file: set either")
        }));
        assert_eq!(
            Secret::from_pair(at, "sasl_password", None, None).ok(),
            Some(None)
        );
        let missing = Secret::from_pair(
            at,
            "sasl_password",
            Some("SURGE_TEST_UNSET_VAR".into()),
            None,
        )
        .ok()
        .flatten()
        .map(|s| s.read());
        assert!(
            matches!(missing, Some(Err(e)) if e.0 == "kafka.clusters[0].sasl_password_env: environment variable SURGE_TEST_UNSET_VAR is not set")
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("pw");
        std::fs::write(&path, "s3cret\n").expect("write");
        let file = Secret::from_pair(at, "sasl_password", None, Some(path))
            .ok()
            .flatten();
        assert_eq!(
            file.map(|s| s.read().ok()),
            Some(Some("s3cret".to_string()))
        );
    }
}
