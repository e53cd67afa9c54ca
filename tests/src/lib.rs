//! Helpers for the cross-crate scenarios in `tests/tests/`.

pub mod alerting;
pub mod drill;
pub mod fuzz;
pub mod panel;
pub mod pipeline;
pub mod run;
pub mod stack;
