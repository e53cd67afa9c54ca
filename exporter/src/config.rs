//! The exporter's TOML configuration. Each source owns its section: the section's serde struct
//! and its typed settings live in the source's own file, and are parsed and checked once here.
//!
//! Every error is one line that names the offending field, e.g.
//! `postgres.targets[1].interval: invalid duration "15x"`.

use std::net::SocketAddr;
use std::path::Path;

use serde::Deserialize;

pub use crate::check::ConfigError;
use crate::check::one_line;
use crate::sources::{kafka, kubernetes, postgres, processes};

/// The whole file as written.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct File {
    /// `[exporter]`: where `/metrics` is served.
    #[serde(default)]
    exporter: ExporterSection,
    /// `[postgres]`: PostgreSQL replication and connections.
    postgres: Option<postgres::Section>,
    /// `[kubernetes]`: pod CPU and memory against requests, and HPA state, from the Kubernetes API.
    kubernetes: Option<kubernetes::Section>,
    /// `[processes]`: CPU and memory of local processes as pods (the bundled stack).
    processes: Option<processes::Section>,
    /// `[kafka]`: Kafka consumer lag.
    kafka: Option<kafka::Section>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct ExporterSection {
    /// Address `/metrics` is served on; `--listen` overrides it.
    #[serde(default = "default_listen")]
    listen: SocketAddr,
}

impl Default for ExporterSection {
    fn default() -> Self {
        ExporterSection {
            listen: default_listen(),
        }
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9917))
}

/// The config file's schema: every section and key with its type, default, description and
/// example (the configuration reference in the guide is written from it).
pub fn schema() -> schemars::Schema {
    schemars::schema_for!(File)
}

/// A parsed and checked configuration: each configured source's typed settings.
#[derive(Debug, Clone)]
pub struct Config {
    pub(crate) listen: SocketAddr,
    pub(crate) postgres: Option<postgres::Settings>,
    pub(crate) kafka: Option<kafka::Settings>,
    pub(crate) kubernetes: Option<kubernetes::Settings>,
    pub(crate) processes: Option<processes::Settings>,
}

impl Config {
    /// Settings accepted but unsafe against a network attacker, one line each, to log at
    /// start (a kubeconfig's `insecure-skip-tls-verify` is reported when it is loaded).
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        if let Some(kafka) = &self.kafka {
            warnings.extend(kafka.warnings());
        }
        if let Some(postgres) = &self.postgres {
            warnings.extend(postgres.warnings());
        }
        warnings
    }

    /// Read and check a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("cannot read {}: {e}", path.display())))?;
        Config::parse(&text)
    }

    /// Parse and check config text.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let deserializer =
            toml::Deserializer::parse(text).map_err(|e| ConfigError(syntax_message(text, &e)))?;
        let file: File = serde_path_to_error::deserialize(deserializer).map_err(|e| {
            let path = e.path().to_string();
            let message = one_line(e.inner().message());
            if path == "." {
                ConfigError(message)
            } else {
                ConfigError::field(path, message)
            }
        })?;
        if file.postgres.is_none()
            && file.kubernetes.is_none()
            && file.processes.is_none()
            && file.kafka.is_none()
        {
            return Err(ConfigError(
                "no source configured: add a [postgres], [kafka], [kubernetes] or [processes] section"
                    .into(),
            ));
        }
        Ok(Config {
            listen: file.exporter.listen,
            kafka: file.kafka.map(kafka::Section::settings).transpose()?,
            postgres: file.postgres.map(postgres::Section::settings).transpose()?,
            kubernetes: file
                .kubernetes
                .map(kubernetes::Section::settings)
                .transpose()?,
            processes: file
                .processes
                .map(processes::Section::settings)
                .transpose()?,
        })
    }

    /// Where `/metrics` is served unless `--listen` says otherwise.
    pub fn listen(&self) -> SocketAddr {
        self.listen
    }
}

fn syntax_message(text: &str, error: &toml::de::Error) -> String {
    let line = error
        .span()
        .map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1);
    match line {
        Some(line) => format!("line {line}: {}", one_line(error.message())),
        None => one_line(error.message()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Each setting open to a network attacker is one warning line naming the target; safe
    /// ones and loopback hosts are not warned about.
    #[test]
    fn insecure_settings_are_warned_about_one_line_each() -> Result<(), ConfigError> {
        let c = Config::parse(
            r#"
            [[postgres.targets]]
            name = "required"
            dsn = "postgres://surge@db.shop.svc:5432/app?sslmode=require"
            [[postgres.targets]]
            name = "defaulted"
            dsn = "postgres://surge@db.shop.svc:5432/app"
            [[postgres.targets]]
            name = "verified"
            dsn = "postgres://surge@db.shop.svc:5432/app?sslmode=verify-full&sslrootcert=/ca.crt"
            [[postgres.targets]]
            name = "local"
            dsn = "postgres://surge@127.0.0.1:5432/app?sslmode=disable"

            [[kafka.clusters]]
            name = "plain"
            bootstrap_servers = "kafka:9092"
            sasl_password_env = "P"
            [kafka.clusters.properties]
            "security.protocol" = "SASL_PLAINTEXT"
            "sasl.mechanism" = "PLAIN"
            "sasl.username" = "surge"
            [[kafka.clusters]]
            name = "tls"
            bootstrap_servers = "kafka:9093"
            sasl_password_env = "P"
            [kafka.clusters.properties]
            "security.protocol" = "SASL_SSL"
            "sasl.mechanism" = "PLAIN"
            "sasl.username" = "surge"
            "#,
        )?;
        let warnings = c.warnings();
        let expected = [
            "kafka.clusters[plain]: SASL PLAIN over plaintext: the password crosses the network in the clear; use security.protocol = sasl_ssl",
            "postgres.targets[required] (db.shop.svc): sslmode=require encrypts but checks no certificate",
            "postgres.targets[defaulted] (db.shop.svc): sslmode=prefer (the default)",
        ];
        assert_eq!(warnings.len(), expected.len(), "{warnings:#?}");
        for (warning, expected) in warnings.iter().zip(expected) {
            assert!(warning.starts_with(expected), "{warning}");
            assert_eq!(warning.lines().count(), 1);
        }
        Ok(())
    }

    #[test]
    fn minimal_postgres_config_gets_defaults() {
        let c = Config::parse(
            r#"
            [[postgres.targets]]
            name = "primary"
            dsn = "postgres://surge@127.0.0.1:5432/postgres"
            "#,
        )
        .expect("valid");
        let pg = c.postgres.expect("postgres");
        assert_eq!(pg.interval, Duration::from_secs(15));
        assert_eq!(c.listen, default_listen());
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (
                "[postgres]\ninterval = \"15x\"\ntargets = []",
                "postgres.interval",
            ),
            (
                "[[postgres.targets]]\nname = \"a\"\ndsn = \"postgres://x\"\n[[postgres.targets]]\nname = \"a\"\ndsn = \"postgres://y\"",
                "postgres.targets[1].name: duplicate",
            ),
            (
                "[[postgres.targets]]\nname = \"a\"\nhost = \"x\"",
                "unknown field `host`",
            ),
            ("[exporter]\nlisten = \"nope\"", "exporter.listen"),
            (
                "[[postgres.targets]]\nname = \"a\"",
                "postgres.targets[0].dsn: missing",
            ),
            (
                "[kubernetes]\nnamespaces = [\"Shop\"]",
                "kubernetes.namespaces[0]",
            ),
            ("", "no source configured"),
            ("[postgres\n", "line 1:"),
        ];
        for (text, expected) in cases {
            let err = Config::parse(text).expect_err(text).to_string();
            assert!(
                err.contains(expected),
                "{text:?} gave {err:?}, wanted {expected:?}"
            );
            assert!(!err.contains('\n'), "multi-line error: {err:?}");
        }
    }
}
