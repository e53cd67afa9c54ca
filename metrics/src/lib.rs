//! Surge's metric contract, shared by everything that writes or reads `surge_*` series: the
//! exporter, the local stack's autoscaler and the panel.
//!
//! - [`catalogue`]: every family (name, type, unit, labels, help) declared once; the statics
//!   and the list the lint, rule, board and panel tests walk come from that one declaration.
//! - [`state`]: the values of the `state` labels (lag state, pod state, group state).
//! - [`hpa`] and [`quantity`]: the HPA controller's CPU arithmetic and Kubernetes quantities.
//! - Behind features: `proc` (the `/proc` CPU sampler), `store` (the latest snapshot and its
//!   encoder) and `http` (`/metrics` for a store).

pub mod catalogue;
mod family;
pub mod hpa;
pub mod quantity;
pub mod state;

#[cfg(feature = "store")]
mod exposition;
#[cfg(feature = "http")]
pub mod http;
#[cfg(feature = "proc")]
pub mod proc;
#[cfg(feature = "store")]
pub mod selector;
#[cfg(feature = "store")]
pub mod store;

pub use family::{Family, Kind, Labels, Sample, SampleRef, SampleSet, SampleSetBuilder};
