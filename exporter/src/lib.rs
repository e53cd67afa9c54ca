//! `surge-exporter`: pod CPU against the HPA target, Kafka consumer lag and PostgreSQL
//! replication lag, collected in the background and served to Prometheus.
//!
//! Data flows one way: sources (one file each under `sources/`) collect → the store
//! (`surge_metrics::store`) holds the latest snapshot → `/metrics` encodes it per scrape.
//! [`Exporter`] is the one entry point from a [`config::Config`] to all of that.

mod check;
pub mod cli;
pub mod config;
mod exporter;
mod memory;
mod schedule;
mod source;
mod sources;
mod sync;
pub mod web;

pub use exporter::{Exporter, Running};

/// For the fuzz targets (`fuzz/`) and their smoke run: what the exporter's Kafka client does
/// with a broker's answer, and real answers to start from.
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::sources::kafka::{
        fuzz_answer as kafka_answer, fuzz_answer_seeds as kafka_answer_seeds,
    };
}
