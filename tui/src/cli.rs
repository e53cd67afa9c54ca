//! Flags, merged over the config file into `Settings`. Exit codes: 0 fine; 1 a source failed
//! in `--once`; 2 bad flags or config (one line naming the problem).

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Parser, Subcommand};
use surge_client::fetch::signals::Selector;

use surge_client::fetch::with_scheme;
use surge_client::fetch::{Endpoint, Endpoints};
use surge_client::model::Range;

use crate::config::{self, Config, ThemeName};

#[derive(Debug, Parser)]
#[command(
    name = "surge",
    version = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("SURGE_GIT_COMMIT"), ")"),
    about = "The on-call panel: scaling, Kafka lag and replicas on one screen, alerts you can act on."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Sub>,
    /// Prometheus base URL (e.g. http://127.0.0.1:9090).
    #[arg(long, value_name = "URL", global = true)]
    pub prometheus: Option<String>,
    /// Alertmanager base URL: alerts with silences, and silence create/expire.
    #[arg(long, value_name = "URL", global = true)]
    pub alertmanager: Option<String>,
    /// surge-exporter to scrape directly, no Prometheus needed (repeatable).
    #[arg(long, value_name = "URL", global = true)]
    pub exporter: Vec<String>,
    /// Kafka bootstrap servers, for the dead-letter view (:dlq) and redrives (credentials go
    /// in the config file's [sources.kafka]).
    #[arg(long, value_name = "HOST:PORT", global = true)]
    pub kafka: Option<String>,
    /// Grafana base URL: each action taken from the panel is posted there as an annotation
    /// (a token goes in the config file's [sources.grafana]).
    #[arg(long, value_name = "URL", global = true)]
    pub grafana: Option<String>,
    /// Reach Prometheus and Alertmanager in this kubeconfig context's cluster, through the
    /// API server's service proxy with the kubeconfig's credentials.
    #[arg(long, value_name = "NAME", global = true, conflicts_with_all = ["prometheus", "alertmanager"])]
    pub kube_context: Option<String>,
    /// With --kube-context: the Prometheus service as NAMESPACE/NAME:PORT (default: found by
    /// prometheus-operator's prometheus-operated, else the app.kubernetes.io/name label).
    #[arg(
        long,
        value_name = "NS/NAME:PORT",
        global = true,
        requires = "kube_context"
    )]
    pub kube_prometheus: Option<String>,
    /// With --kube-context: the Alertmanager service as NAMESPACE/NAME:PORT (default: found
    /// like Prometheus).
    #[arg(
        long,
        value_name = "NS/NAME:PORT",
        global = true,
        requires = "kube_context"
    )]
    pub kube_alertmanager: Option<String>,
    /// Config file (default: $XDG_CONFIG_HOME/surge/config.toml when it exists).
    #[arg(long, value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
    /// Start in this context of the config file (`[contexts.NAME]`; `default` is `[sources]`).
    #[arg(long, value_name = "NAME", global = true)]
    pub context: Option<String>,
    /// Time between refreshes (e.g. 1s).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, global = true)]
    pub refresh: Option<Duration>,
    /// Per-request timeout.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, global = true)]
    pub timeout: Option<Duration>,
    /// No silences and no actions: look, don't touch.
    #[arg(long)]
    pub readonly: bool,
    /// Where actions taken from the panel are logged, one JSON line each
    /// [default: ~/.local/state/surge/audit.jsonl].
    #[arg(long, value_name = "FILE", global = true)]
    pub audit_log: Option<PathBuf>,
    /// default, high-contrast or mono (NO_COLOR selects mono unless a theme is given).
    #[arg(long, value_name = "NAME", value_parser = parse_theme, global = true)]
    pub theme: Option<ThemeName>,
    /// History range: 5m, 1h or 6h.
    #[arg(long, value_name = "RANGE", value_parser = Range::parse, global = true)]
    pub range: Option<Range>,
    /// Render one frame as text to stdout and exit (1 if a source failed).
    #[arg(long, global = true)]
    pub once: bool,
    /// Frame size for --once, WIDTHxHEIGHT.
    #[arg(long, value_name = "WxH", default_value = "160x48", value_parser = parse_size, global = true)]
    pub size: (u16, u16),
    /// View for --once: overview, kafka, pg, alerts, contexts, or svc:NAME.
    #[arg(long, value_name = "VIEW", default_value = "overview", global = true)]
    pub view: String,
    /// Label matchers added to every series asked of Prometheus (e.g. 'cluster="eu-1"').
    #[arg(long, value_name = "MATCHERS", global = true)]
    pub selector: Option<String>,
    /// With --once: show this moment from Prometheus (an RFC 3339 time or Unix seconds);
    /// Alertmanager and exporters, which keep no past, are not asked.
    #[arg(long, value_name = "TIME")]
    pub at: Option<String>,
    /// With --once, wait at most this long for every source's first answer.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub wait: Duration,
    /// Log file (default: $XDG_STATE_HOME/surge/surge.log). Never the terminal.
    #[arg(long, value_name = "FILE", global = true)]
    pub log: Option<PathBuf>,
    /// Directory for snapshots (default: current directory).
    #[arg(long, value_name = "DIR", global = true)]
    pub snapshot_dir: Option<PathBuf>,
    /// Record every update the panel receives to FILE (replay it with `surge replay FILE`).
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,
    /// Stop recording when the file reaches this many MiB.
    #[arg(long, value_name = "MIB", default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=65536), global = true)]
    pub record_cap: u64,
}

#[derive(Debug, Subcommand)]
pub enum Sub {
    /// Record what the panel would receive, with no terminal, until the time is up, Ctrl-C,
    /// SIGTERM or the size cap (every context of the config, each source as the panel reads it).
    Record {
        /// Where to write (replaced if it exists).
        file: PathBuf,
        /// Stop after this long (e.g. 10m); default: until stopped.
        #[arg(long = "for", value_name = "DURATION", value_parser = parse_duration)]
        duration: Option<Duration>,
    },
    /// Replay a recording with the whole panel: space play/pause, + and - speed (1x-60x),
    /// left/right 10 s, , and . one update, n the next alert change.
    Replay {
        /// A file written by `surge --record`.
        file: PathBuf,
        /// Start at (with --once: show) this moment: an RFC 3339 time, an offset from the
        /// start (90s, 5m), start or end.
        #[arg(long, value_name = "TIME")]
        at: Option<String>,
    },
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| format!("{e} (e.g. 1s, 500ms)"))
}

/// Unix seconds of an RFC 3339 time or a number of seconds.
fn parse_time(text: &str) -> Result<f64, String> {
    text.parse::<f64>()
        .ok()
        .filter(|t| t.is_finite() && *t >= 0.0)
        .or_else(|| surge_client::fetch::unix_seconds(text))
        .ok_or_else(|| format!("{text:?} is neither an RFC 3339 time nor Unix seconds"))
}

fn parse_theme(text: &str) -> Result<ThemeName, String> {
    ThemeName::parse(text)
}

fn parse_size(text: &str) -> Result<(u16, u16), String> {
    let (w, h) = text
        .split_once(['x', 'X'])
        .ok_or("expected WIDTHxHEIGHT, e.g. 160x48")?;
    let w: u16 = w.parse().map_err(|_| format!("bad width {w:?}"))?;
    let h: u16 = h.parse().map_err(|_| format!("bad height {h:?}"))?;
    if !(20..=1000).contains(&w) || !(6..=500).contains(&h) {
        return Err(format!("{w}x{h} is outside 20x6 ..= 1000x500"));
    }
    Ok((w, h))
}

/// Everything the program runs with, flags over file over defaults.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The current context's sources.
    pub endpoints: Endpoints,
    /// Every context by name (`default` is `[sources]` and the flags), in order; `context`
    /// indexes the current one. One context when the config file has none.
    pub contexts: Vec<(String, Endpoints)>,
    pub context: usize,
    pub stale_after: f64,
    /// The moment shown (`--at`), instead of now.
    pub at: Option<f64>,
    pub readonly: bool,
    /// Where actions are logged (`None`: nowhere to write, said when acting).
    pub audit_log: Option<PathBuf>,
    pub theme: Option<ThemeName>,
    pub range: Range,
    pub snapshot_dir: PathBuf,
    pub log: Option<PathBuf>,
    pub service_groups: std::collections::BTreeMap<String, Vec<String>>,
    /// How dead-letter topics are named (empty: the default).
    pub dead_letters: Vec<String>,
    /// The lines the config sets, and its CPU line.
    pub lines: (surge_client::store::SetLines, Option<f64>),
    /// Per service, the database servers it uses (where configured).
    pub service_databases: std::collections::BTreeMap<String, Vec<String>>,
    /// Record every update to this file, up to this many bytes.
    pub record: Option<(PathBuf, u64)>,
    /// The cap for a recording started with `R` (bytes).
    pub record_cap: u64,
    /// The context asked for by name (`--context`, `[ui] context`).
    pub context_name: Option<String>,
    /// The kubeconfig context whose cluster's Prometheus and Alertmanager are to be found
    /// (`--kube-context`); [`Settings::resolve_kube`] fills in its context's sources.
    pub kube: Option<KubeSources>,
    /// The kubeconfig's contexts, listed by `:ctx` beside the config's.
    pub kube_contexts: Vec<String>,
}

/// `--kube-context` and the services named for it.
#[derive(Debug, Clone, PartialEq)]
pub struct KubeSources {
    pub context: String,
    pub prometheus: Option<String>,
    pub alertmanager: Option<String>,
}

impl Settings {
    /// Connect to the `--kube-context` cluster and find its Prometheus (required) and
    /// Alertmanager (optional) behind the API server's service proxy.
    pub async fn resolve_kube(&mut self) -> Result<(), String> {
        use surge_client::fetch::kube::{Cluster, Kind};
        let Some(kube) = self.kube.clone() else {
            return Ok(());
        };
        let Some(index) = self.contexts.iter().position(|(n, _)| *n == kube.context) else {
            return Ok(());
        };
        let timeout = self.contexts[index].1.timeout;
        let cluster = Cluster::connect(&kube.context, timeout).await?;
        let through = |url: String| Endpoint {
            url,
            access: surge_client::fetch::Access {
                cluster: Some(cluster.clone()),
                ..Default::default()
            },
        };
        let prometheus = cluster
            .find(Kind::Prometheus, kube.prometheus.as_deref())
            .await?
            .map_err(|tried| {
                format!(
                    "kube context {}: no Prometheus found: {tried} (name it with --kube-prometheus NAMESPACE/NAME:PORT)",
                    kube.context
                )
            })?;
        let alertmanager = match cluster
            .find(Kind::Alertmanager, kube.alertmanager.as_deref())
            .await?
        {
            Ok(url) => Some(through(url)),
            Err(tried) => {
                tracing::warn!(
                    "kube context {}: no Alertmanager found ({tried}); alerts come from Prometheus, silences are off",
                    kube.context
                );
                None
            }
        };
        let endpoints = &mut self.contexts[index].1;
        endpoints.prometheus = Some(through(prometheus));
        endpoints.alertmanager = alertmanager;
        if index == self.context {
            self.endpoints = endpoints.clone();
        }
        Ok(())
    }
}

/// clap's multi-line error as one line.
pub fn one_line_clap_error(text: &str) -> String {
    let body = text.split("\n\nUsage:").next().unwrap_or(text);
    let body = body.split("\n\n  tip:").next().unwrap_or(body);
    let body = body.trim().trim_start_matches("error:").trim();
    body.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl Cli {
    /// Merge with the config file; the error is one line.
    pub fn settings(&self) -> Result<Settings, String> {
        let path = self
            .config
            .clone()
            .or_else(|| config::default_path().filter(|p| p.exists()));
        let file = match &path {
            Some(path) => {
                Config::load(path).map_err(|e| format!("config {}: {e}", path.display()))?
            }
            None => Config::default(),
        };
        let config_dir = path
            .as_deref()
            .and_then(Path::parent)
            .map(Path::to_path_buf);
        for (flag, url) in [
            ("--prometheus", &self.prometheus),
            ("--alertmanager", &self.alertmanager),
        ] {
            if let Some(url) = url {
                config::check_url(url).map_err(|e| format!("{flag}: {e}"))?;
            }
        }
        for url in &self.exporter {
            config::check_url(url).map_err(|e| format!("--exporter: {e}"))?;
        }
        // File names in the config are relative to its folder; a flag replaces the source
        // (its URL only: credentials live in the config file, never on argv).
        let dir = config_dir.unwrap_or_else(|| PathBuf::from("."));
        let from_file = |s: &Option<config::SourceSetting>| s.as_ref().map(|s| s.endpoint(&dir));
        let prometheus = match &self.prometheus {
            Some(url) => Some(Endpoint::plain(&with_scheme(url))),
            None => from_file(&file.sources.prometheus),
        };
        let alertmanager = match &self.alertmanager {
            Some(url) => Some(Endpoint::plain(&with_scheme(url))),
            None => from_file(&file.sources.alertmanager),
        };
        // With --kube-context the flags' exporters go with the cluster's context.
        let exporters: Vec<Endpoint> = if self.exporter.is_empty() || self.kube_context.is_some() {
            file.sources
                .exporters
                .iter()
                .map(|e| e.endpoint(&dir))
                .collect()
        } else {
            self.exporter.iter().map(|u| Endpoint::plain(u)).collect()
        };
        let refresh = self.refresh.unwrap_or(file.sources.refresh);
        if refresh < Duration::from_millis(100) {
            return Err("--refresh: at least 100ms".into());
        }
        let timeout = self.timeout.unwrap_or(file.sources.timeout);
        if timeout.is_zero() {
            return Err("--timeout: must be more than 0".into());
        }
        let at = match &self.at {
            None => None,
            Some(_) if !self.once => return Err("--at: only with --once".into()),
            Some(text) => Some(parse_time(text).map_err(|e| format!("--at: {e}"))?),
        };
        if let Some(selector) = &self.selector {
            Selector::parse(selector).map_err(|e| format!("--selector: {e}"))?;
        }
        // The file's settings were checked when it was loaded, the flag's just now.
        let signals_of =
            |table: &config::SignalsTable,
             selector: Option<&str>,
             queries: &std::collections::BTreeMap<String, String>| {
                table.signals(self.selector.as_deref().or(selector), queries)
            };
        let patterns = file.kafka.dead_letters.clone().unwrap_or_default();
        let kafka_of = |table: &Option<config::KafkaSource>| {
            table.as_ref().map(|k| k.access(&dir)).transpose()
        };
        let flagged_kafka = match &self.kafka {
            Some(bootstrap) => Some(surge_client::act::dead_letters::broker::KafkaAccess {
                bootstrap: bootstrap.clone(),
                properties: Vec::new(),
            }),
            None => kafka_of(&file.sources.kafka)?,
        };
        let flagged_grafana = match &self.grafana {
            Some(url) => Some(Endpoint::plain(&with_scheme(url))),
            None => from_file(&file.sources.grafana),
        };
        let endpoints_of = |prometheus, alertmanager, exporters, signals, kafka, grafana| {
            let mut e = Endpoints {
                prometheus,
                alertmanager,
                exporters,
                kafka,
                grafana,
                dead_letter_patterns: patterns.clone(),
                refresh,
                timeout,
                signals,
                at,
            };
            if at.is_some() {
                // Only Prometheus keeps the past.
                e.alertmanager = None;
                e.exporters.clear();
            }
            e
        };
        let mut contexts = Vec::new();
        if prometheus.is_some()
            || alertmanager.is_some()
            || !exporters.is_empty()
            || (self.kube_context.is_none() && flagged_kafka.is_some())
        {
            let signals = signals_of(
                &file.sources.signals,
                file.sources.selector.as_deref(),
                &file.sources.queries,
            )
            .map_err(|e| format!("sources.{e}"))?;
            contexts.push((
                "default".to_string(),
                endpoints_of(
                    prometheus,
                    alertmanager,
                    exporters,
                    signals,
                    flagged_kafka.clone(),
                    flagged_grafana.clone(),
                ),
            ));
        }
        for (name, c) in &file.contexts {
            let signals = signals_of(&c.signals, c.selector.as_deref(), &c.queries)
                .map_err(|e| format!("contexts.{name}.{e}"))?;
            contexts.push((
                name.clone(),
                endpoints_of(
                    from_file(&c.prometheus),
                    from_file(&c.alertmanager),
                    c.exporters.iter().map(|e| e.endpoint(&dir)).collect(),
                    signals,
                    kafka_of(&c.kafka).map_err(|e| format!("contexts.{name}.{e}"))?,
                    from_file(&c.grafana),
                ),
            ));
        }
        if let Some(name) = &self.kube_context {
            if contexts.iter().any(|(n, _)| n == name) {
                return Err(format!(
                    "--kube-context {name}: the config file has a context of that name too"
                ));
            }
            let signals = signals_of(
                &file.sources.signals,
                file.sources.selector.as_deref(),
                &file.sources.queries,
            )
            .map_err(|e| format!("sources.{e}"))?;
            // Its Prometheus and Alertmanager are found in the cluster (resolve_kube).
            let flagged = self.exporter.iter().map(|u| Endpoint::plain(u)).collect();
            contexts.insert(
                0,
                (
                    name.clone(),
                    endpoints_of(
                        None,
                        None,
                        flagged,
                        signals,
                        flagged_kafka.clone(),
                        flagged_grafana.clone(),
                    ),
                ),
            );
        }
        let replaying = matches!(self.command, Some(Sub::Replay { .. }));
        if replaying {
            // The recording says which contexts there were; sources are not contacted.
            contexts = vec![("default".to_string(), Endpoints::default())];
        }
        if contexts.is_empty() {
            // Say what was looked at, so the fix is obvious.
            let flags = "no --prometheus URL, --alertmanager URL, --exporter URL or --kube-context NAME given";
            let kube = match surge_client::fetch::kube::kubeconfig_contexts() {
                Ok(Some(k)) => match k.current {
                    Some(current) => format!(
                        "; the kubeconfig's current context is {current}: try --kube-context {current}"
                    ),
                    None => format!(
                        "; the kubeconfig's contexts: {} (try --kube-context NAME)",
                        k.names.join(", ")
                    ),
                },
                Ok(_) => "; no kubeconfig".to_string(),
                Err(e) => format!("; {e}"),
            };
            return Err(match (&path, config::default_path()) {
                (Some(read), _) => format!(
                    "no source: {flags}, and {} has no [sources] or [contexts.NAME] with one{kube}",
                    read.display()
                ),
                (None, Some(looked)) => format!(
                    "no source: {flags}, and no config file at {} (write [sources] prometheus = \"URL\" there, or give --config FILE){kube}",
                    looked.display()
                ),
                (None, None) => {
                    format!("no source: {flags}, and no config file (give --config FILE){kube}")
                }
            });
        }
        let asked = self
            .context
            .as_ref()
            .or(self.kube_context.as_ref())
            .or(file.ui.context.as_ref());
        let context = match asked {
            // A replay picks its context among the recording's.
            _ if replaying => 0,
            None => 0,
            Some(name) => contexts
                .iter()
                .position(|(n, _)| n == name)
                .ok_or_else(|| {
                    let known: Vec<&str> = contexts.iter().map(|(n, _)| n.as_str()).collect();
                    format!(
                        "--context {name}: no such context (known: {})",
                        known.join(", ")
                    )
                })?,
        };
        let stale_after = file
            .sources
            .stale_after
            .unwrap_or_else(|| (refresh * 3).max(Duration::from_secs(10)))
            .as_secs_f64();
        let theme = match (self.theme, &file.ui.theme) {
            (Some(t), _) => Some(t),
            (None, Some(name)) => Some(ThemeName::parse(name)?),
            (None, None) => None,
        };
        let range = match (self.range, &file.ui.range) {
            (Some(r), _) => r,
            (None, Some(text)) => Range::parse(text)?,
            (None, None) => Range::default(),
        };
        Ok(Settings {
            endpoints: contexts[context].1.clone(),
            contexts,
            context,
            stale_after,
            at,
            readonly: self.readonly || file.ui.readonly,
            audit_log: self
                .audit_log
                .clone()
                .or_else(surge_client::act::audit::AuditLog::default_path),
            theme,
            range,
            snapshot_dir: self
                .snapshot_dir
                .clone()
                .or(file.snapshot.dir)
                .unwrap_or_else(|| PathBuf::from(".")),
            log: self.log.clone().or_else(config::default_log_path),
            lines: file.lines.lines()?,
            dead_letters: file.kafka.dead_letters.clone().unwrap_or_default(),
            service_databases: file
                .services
                .iter()
                .filter_map(|(k, v)| v.databases.clone().map(|d| (k.clone(), d)))
                .collect(),
            service_groups: file
                .services
                .into_iter()
                .map(|(k, v)| (k, v.groups))
                .collect(),
            record: match &self.command {
                Some(Sub::Record { file, .. }) => Some((file.clone(), self.record_cap << 20)),
                _ => self
                    .record
                    .clone()
                    .map(|path| (path, self.record_cap << 20)),
            },
            context_name: self
                .context
                .clone()
                .or(self.kube_context.clone())
                .or(file.ui.context.clone()),
            record_cap: self.record_cap << 20,
            kube: match (&self.kube_context, replaying) {
                (Some(context), false) => Some(KubeSources {
                    context: context.clone(),
                    prometheus: self.kube_prometheus.clone(),
                    alertmanager: self.kube_alertmanager.clone(),
                }),
                _ => None,
            },
            // An unreadable kubeconfig matters only to --kube-context, which says so.
            kube_contexts: surge_client::fetch::kube::kubeconfig_contexts()
                .ok()
                .flatten()
                .map(|k| k.names)
                .unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli(args: &[&str]) -> Result<Cli, String> {
        let mut all = vec!["surge", "--config", "/dev/null"];
        all.extend_from_slice(args);
        Cli::try_parse_from(all).map_err(|e| one_line_clap_error(&e.to_string()))
    }

    #[test]
    fn flags_are_checked_in_one_line() {
        for (args, want) in [
            (&["--size", "10x10", "--exporter", "x:1"][..], "--size"),
            (&["--refresh", "fast"], "--refresh"),
            (&["--theme", "neon"], "unknown theme"),
            (&["--range", "2h"], "--range"),
            (&["--bogus"], "--bogus"),
        ] {
            match cli(args) {
                Ok(c) => panic!("{args:?} parsed: {c:?}"),
                Err(e) => assert!(e.contains(want) && !e.contains('\n'), "{args:?}: {e}"),
            }
        }
    }

    #[test]
    fn sources_are_required_and_checked() -> Result<(), String> {
        let none = cli(&[])?.settings();
        assert!(none.is_err_and(|e| e.starts_with("no source")));
        let bad = cli(&["--prometheus", "gopher://x"])?.settings();
        assert!(bad.is_err_and(|e| e.starts_with("--prometheus")));
        let good = cli(&[
            "--exporter",
            "127.0.0.1:9187",
            "--refresh",
            "1s",
            "--range",
            "1h",
        ])?
        .settings()?;
        assert_eq!(
            (good.endpoints.exporters.len(), good.range, good.stale_after),
            (1, Range::OneHour, 10.0)
        );
        Ok(())
    }

    #[test]
    fn record_and_replay_take_their_files_and_the_panels_flags() -> Result<(), String> {
        let record = cli(&[
            "record",
            "out.surge",
            "--for",
            "10m",
            "--prometheus",
            "p:9090",
        ])?;
        assert!(matches!(
            record.command,
            Some(Sub::Record { duration: Some(d), .. }) if d == Duration::from_secs(600)
        ));
        let settings = record.settings()?;
        assert_eq!(
            settings.record,
            Some((PathBuf::from("out.surge"), 256 << 20))
        );
        // A live panel records with --record (and its cap); no file, no recording.
        let live = cli(&[
            "--prometheus",
            "p:9090",
            "--record",
            "x.surge",
            "--record-cap",
            "8",
        ])?;
        assert_eq!(
            live.settings()?.record,
            Some((PathBuf::from("x.surge"), 8 << 20))
        );
        assert_eq!(cli(&["--prometheus", "p:9090"])?.settings()?.record, None);
        // A replay needs no source; the panel's flags go before or after its file.
        let replay = cli(&[
            "--once", "replay", "in.surge", "--at", "end", "--view", "kafka",
        ])?;
        assert!(replay.once && replay.view == "kafka");
        assert!(replay.settings().is_ok());
        assert!(
            cli(&["record", "x", "--record-cap", "0"]).is_err_and(|e| e.contains("--record-cap"))
        );
        Ok(())
    }

    #[test]
    fn contexts_come_from_the_file_and_the_flags_pick_one() -> Result<(), String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let path = dir.path().join("config.toml");
        std::fs::write(
            &path,
            "[sources]\nprometheus = \"http://eu:9090\"\n[ui]\ncontext = \"us\"\n\
             [contexts.us]\nprometheus = \"http://us:9090\"\nalertmanager = \"http://us:9093\"\n\
             [contexts.apac]\nexporters = [\"apac:9917\"]\n",
        )
        .map_err(|e| e.to_string())?;
        let config = path.display().to_string();
        let with = |extra: &[&str]| -> Result<Settings, String> {
            let mut args = vec!["surge", "--config", config.as_str()];
            args.extend_from_slice(extra);
            Cli::try_parse_from(args)
                .map_err(|e| e.to_string())?
                .settings()
        };
        let s = with(&[])?;
        let names: Vec<&str> = s.contexts.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["default", "apac", "us"]);
        // [ui] context picks the start, and `endpoints` are that context's.
        assert_eq!(s.context, 2);
        assert_eq!(
            s.endpoints.alertmanager.map(|a| a.url),
            Some("http://us:9093".to_string())
        );
        assert_eq!(with(&["--context", "default"])?.context, 0);
        let e = with(&["--context", "mars"]).err().unwrap_or_default();
        assert_eq!(
            e,
            "--context mars: no such context (known: default, apac, us)"
        );
        Ok(())
    }
}
