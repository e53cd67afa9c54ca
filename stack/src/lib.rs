//! `surge-stack`: the bundled shop and everything around it on one machine, from the test
//! harness, plus a local HPA that applies the Kubernetes manifests to local replicas.

pub mod autoscaler;
pub mod hpa;
pub mod replicas;
pub mod stack;

pub use stack::{MonitoringTiming, Stack, StackOptions};
