//! Real servers on loopback, for the local stack, the demo and the tests: PostgreSQL (a
//! primary with streaming replicas), the Kafka-protocol broker (tansu), Redis, nginx,
//! Prometheus and Alertmanager.
//!
//! Every server is a child process with its own port and directory. Guards stop servers on
//! drop, and children ask the kernel to kill them if the thread that started them dies, so
//! nothing outlives a run. Every raw system call is in [`sys`].

pub mod alertmanager;
pub mod http;
pub mod kafka;
mod launch;
pub mod nginx;
pub mod ports;
pub mod postgres;
pub mod process;
pub mod prometheus;
pub mod redis;
pub mod secret;
pub mod sys;
pub mod tls;
pub mod wait;
pub mod workdir;

pub use alertmanager::Alertmanager;
pub use kafka::KafkaBroker;
pub use launch::{Configured, WebConfig};
pub use nginx::Nginx;
pub use ports::free_port;
pub use postgres::{PgCluster, PgNode};
pub use process::ServerProcess;
pub use prometheus::Prometheus;
pub use redis::Redis;
pub use sys::Signal;
pub use wait::wait_until;
pub use workdir::Workdir;
