//! Helpers for the cross-crate scenarios in `tests/tests/`.

pub mod alerting;
pub mod fuzz;
pub mod panel;
pub mod pipeline;
pub mod stack;
