//! Command line: `--config FILE [--listen ADDR:PORT] [--once] [--web.config.file FILE]
//! [--web.max-connections N]`.
//!
//! Exit codes: 0 success; 1 a source failed in `--once` or the server stopped on an error;
//! 2 bad flags or config (one line naming the problem on stderr).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;

use crate::config::Config;
use crate::exporter::Exporter;

#[derive(Debug, Parser)]
#[command(
    name = "surge-exporter",
    version = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("SURGE_GIT_COMMIT"), ")"),
    about = "Pod CPU vs HPA target, Kafka consumer lag and PostgreSQL replication lag for Prometheus."
)]
struct Cli {
    /// TOML config file (see exporter/surge-exporter.example.toml).
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// Address to serve /metrics on (overrides exporter.listen).
    #[arg(long, value_name = "ADDR:PORT")]
    listen: Option<SocketAddr>,
    /// Collect every source once, print the exposition to stdout and exit (1 if any failed).
    #[arg(long)]
    once: bool,
    /// TLS, client certificates, basic auth and headers for /metrics, in the Prometheus
    /// exporter-toolkit format; reloaded on SIGHUP and when the file changes.
    #[arg(long = "web.config.file", value_name = "FILE")]
    web_config_file: Option<PathBuf>,
    /// Connections served at once; more wait to be accepted until one ends.
    #[arg(long = "web.max-connections", value_name = "N", default_value_t = crate::web::DEFAULT_MAX_CONNECTIONS, value_parser = clap::value_parser!(u16).range(1..))]
    web_max_connections: u16,
}

/// The command line as clap sees it: what the man page and shell completions are written from.
pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                print!("{e}");
                return ExitCode::SUCCESS;
            }
            eprintln!("surge-exporter: {}", one_line_clap_error(&e.to_string()));
            return ExitCode::from(2);
        }
    };
    init_logging();
    let config = match Config::load(&cli.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("surge-exporter: config {}: {e}", cli.config.display());
            return ExitCode::from(2);
        }
    };
    for warning in config.warnings() {
        tracing::warn!("{warning}");
    }
    let web = match cli
        .web_config_file
        .as_deref()
        .map(crate::web::WebConfig::open)
    {
        None => None,
        Some(Ok(web)) => Some(web),
        Some(Err(e)) => {
            let path = cli.web_config_file.clone().unwrap_or_default();
            eprintln!("surge-exporter: web config {}: {e}", path.display());
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("surge-exporter: cannot start runtime: {e}");
            return ExitCode::from(1);
        }
    };
    // Sources create clients that need the runtime's context.
    let _context = runtime.enter();
    let exporter = match Exporter::new(&config) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("surge-exporter: config {}: {e}", cli.config.display());
            return ExitCode::from(2);
        }
    };
    if cli.once {
        let ok = runtime.block_on(async {
            exporter.start().await;
            exporter.collect().await
        });
        print!(
            "{}",
            exporter
                .store()
                .encode_prometheus_text()
                .unwrap_or_default()
        );
        return if ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        };
    }
    let listen = cli.listen.unwrap_or(config.listen());
    let served = runtime.block_on(async {
        let listener = surge_metrics::http::bind(listen).await?;
        let web = Arc::new(
            web.unwrap_or_else(crate::web::WebConfig::plain)
                .with_max_connections(usize::from(cli.web_max_connections)),
        );
        let scheme = if web.current().is_tls() {
            "https"
        } else {
            "http"
        };
        tracing::info!(%listen, scheme, "serving /metrics");
        exporter
            .serve_with(listener, Some(web), shutdown_signal())
            .await
    });
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("surge-exporter: {e}");
            ExitCode::from(1)
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SURGE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}

/// clap's message without the usage block and tips, on one line.
fn one_line_clap_error(text: &str) -> String {
    let body = text.split("\n\nUsage:").next().unwrap_or(text);
    let body = body.split("\n\n  tip:").next().unwrap_or(body);
    let body = body.trim().trim_start_matches("error:").trim();
    body.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clap_errors_become_one_line_naming_the_flag() {
        let e =
            Cli::try_parse_from(["surge-exporter", "--config", "x", "--bogus"]).expect_err("bogus");
        let line = one_line_clap_error(&e.to_string());
        assert!(line.contains("--bogus"), "{line}");
        assert!(!line.contains('\n'));
        let e = Cli::try_parse_from(["surge-exporter"]).expect_err("missing");
        let line = one_line_clap_error(&e.to_string());
        assert!(line.contains("--config"), "{line}");
        let e = Cli::try_parse_from(["surge-exporter", "--config", "x", "--listen", "nowhere"])
            .expect_err("listen");
        let line = one_line_clap_error(&e.to_string());
        assert!(line.contains("--listen"), "{line}");
    }
}
