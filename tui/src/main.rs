//! `surge`: see the crate docs (lib.rs) and `surge --help`.

use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use surge_tui::cli::{Cli, one_line_clap_error};

fn init_logging(path: Option<&std::path::Path>) -> Option<String> {
    let path = path?;
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let file = match std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        Ok(f) => f,
        Err(e) => {
            return Some(format!(
                "surge: cannot open log {}: {e}; logging off",
                path.display()
            ));
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("SURGE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(std::sync::Mutex::new(file))
        .init();
    None
}

fn main() -> ExitCode {
    let started = Instant::now();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                print!("{e}");
                return ExitCode::SUCCESS;
            }
            eprintln!("surge: {}", one_line_clap_error(&e.to_string()));
            return ExitCode::from(2);
        }
    };
    let mut settings = match cli.settings() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("surge: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(warning) = init_logging(settings.log.as_deref()) {
        eprintln!("{warning}");
    }
    // One thread: the panel waits on the network and the keyboard, it does not compute.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("surge: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    // --kube-context: find Prometheus and Alertmanager in the cluster before anything starts;
    // a cluster without Prometheus is said in one line, like a bad flag.
    if let Err(e) = runtime.block_on(settings.resolve_kube()) {
        eprintln!("surge: {e}");
        return ExitCode::from(2);
    }
    if let Some(surge_tui::cli::Sub::Record { duration, .. }) = &cli.command {
        return match runtime.block_on(surge_tui::run::record_headless(&settings, *duration)) {
            Ok(line) => {
                println!("{line}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("surge: {e}");
                ExitCode::from(1)
            }
        };
    }
    if let Some(surge_tui::cli::Sub::Replay { file, at }) = &cli.command {
        if cli.once {
            return match surge_tui::replay::once(
                &settings,
                file,
                at.as_deref(),
                &cli.view,
                cli.size,
            ) {
                Ok(frame) => {
                    print!("{frame}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("surge: {e}");
                    ExitCode::from(2)
                }
            };
        }
        return match runtime.block_on(surge_tui::replay::interactive(
            &settings,
            file,
            at.as_deref(),
        )) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("surge: {e}");
                ExitCode::from(1)
            }
        };
    }
    if cli.once {
        return match runtime.block_on(surge_tui::run::once(
            &settings, &cli.view, cli.size, cli.wait,
        )) {
            Ok((frame, all_ok)) => {
                print!("{frame}");
                if all_ok {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(1)
                }
            }
            Err(e) => {
                eprintln!("surge: {e}");
                ExitCode::from(2)
            }
        };
    }
    match runtime.block_on(surge_tui::run::interactive(&settings, started)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("surge: {e}");
            ExitCode::from(1)
        }
    }
}
