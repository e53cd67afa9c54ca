//! Real servers on loopback for tests, the local stack and the demo.
//!
//! Every server is a child process with its own free port and a directory under one
//! temporary root. Guards stop servers on drop (also when a test panics), and children ask
//! the kernel to kill them if the process that started them dies, so nothing outlives a run.

pub mod http;
pub mod kafka;
pub mod kube_api;
pub mod pagerduty;
pub mod ports;
pub mod postgres;
pub mod process;
pub mod promtool;
pub mod servers;
pub mod tmux;
pub mod wait;
pub mod workdir;

pub use ports::free_port;
pub use postgres::{PgCluster, PgNode};
pub use process::ServerProcess;
pub use wait::wait_until;
pub use workdir::Workdir;
