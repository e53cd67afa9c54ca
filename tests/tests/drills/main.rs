//! Fault drills on the whole local stack with real servers, one family of faults per file; the
//! harness is `surge_tests::drill`. Each drill prints one `DRILL` line and records what it
//! measured in the run's `drills.jsonl` (RELIABILITY.md's table is generated from it).

mod exporter;
mod kafka;
mod postgres;
mod redis;
mod scaling;
