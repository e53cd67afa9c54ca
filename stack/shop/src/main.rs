//! `shop <service>`: run one service of the bundled shop (config from `SHOP_*` env vars).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "shop", version, about = "The bundled scaled shop's services.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Register, log in, log out (JWT + Redis revocation list).
    Auth,
    /// Products: reads from replicas, writes to the primary.
    Catalog,
    /// Place orders (outbox → order-placed) and read their status.
    Orders,
    /// Consume order-placed, charge, publish payment-processed.
    Payment,
    /// Consume payment-processed, ship.
    Shipping,
    /// Apply database migrations and create the Kafka topics, then exit.
    Setup {
        /// Only the migrations: the topics are managed elsewhere (Strimzi KafkaTopics).
        #[arg(long)]
        migrations_only: bool,
    },
}

/// Each argon2 hash (auth's logins) works in a 19 MiB buffer on a blocking-pool thread. glibc
/// raises its mmap threshold after the first such buffer is freed, so later ones come from
/// per-thread arenas and stay resident: the 1-hour soak saw one auth replica grow 38 MiB.
/// A fixed threshold below the buffer keeps every one of them mmapped and returned on free;
/// two arenas bound what the many blocking threads keep.
#[allow(unsafe_code)]
fn return_large_buffers() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; called first thing in main, before any
    // other thread exists. A failure (0) leaves the defaults, which is harmless.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

fn main() -> ExitCode {
    return_large_buffers();
    let cli = Cli::parse();
    use std::io::IsTerminal;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SHOP_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
    let config = match surge_shop::config::Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("shop: {e:#}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("shop: cannot start runtime: {e}");
            return ExitCode::from(1);
        }
    };
    use surge_shop::services::{auth, catalog, orders, payment, shipping};
    let result = runtime.block_on(async {
        match cli.command {
            Command::Auth => auth::run(config).await,
            Command::Catalog => catalog::run(config).await,
            Command::Orders => orders::run(config).await,
            Command::Payment => payment::run(config).await,
            Command::Shipping => shipping::run(config).await,
            Command::Setup { migrations_only } => {
                surge_shop::data::migrate(
                    &config.database_url,
                    config.database_password.as_ref().map(|p| p.0.as_str()),
                )
                .await?;
                if migrations_only {
                    return Ok(());
                }
                surge_shop::kafka::create_topics(config.require_kafka()?).await
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("shop: {e:#}");
            ExitCode::from(1)
        }
    }
}
