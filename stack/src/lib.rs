//! `surge-stack`: the bundled shop and everything around it on one machine, on the real
//! servers `surge-servers` starts, plus a local HPA that applies the Kubernetes manifests to
//! local replicas (with the HPA arithmetic and `/metrics` of `surge-metrics`).

pub mod api;
pub mod autoscaler;
pub mod external;
pub mod hpa;
pub mod k8s;
pub mod replicas;
pub mod stack;

pub use stack::{MonitoringTiming, Stack, StackOptions};

use std::sync::{Mutex, MutexGuard, PoisonError};

/// The fleet's lock. Every critical section is a whole scale or publish that leaves the
/// replica sets valid between steps, so a panic in another holder is no reason to stop.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
