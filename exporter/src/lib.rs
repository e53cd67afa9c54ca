//! `surge-exporter`: pod CPU against the HPA target, Kafka consumer lag and PostgreSQL
//! replication lag, collected in the background and served to Prometheus.
//!
//! Data flows one way: [`sources`] collect → [`store::Store`] holds the latest snapshot →
//! [`server`] encodes it per scrape.

pub mod cli;
pub mod config;
pub mod cpu;
pub mod quantity;
pub mod schedule;
pub mod server;
pub mod source;
pub mod sources;
pub mod store;
pub mod sync;
