//! `surge`: the on-call panel. Data flows one way: fetchers (`fetch/`) → channel → the store
//! (`store.rs`, plain data) → render functions (`ui/`, no I/O). Input (`app.rs`) changes only
//! what is shown, or asks a fetcher to act (silences).

pub mod app;
pub mod cli;
pub mod config;
pub mod fetch;
pub mod model;
pub mod run;
pub mod snapshot;
pub mod store;
pub mod ui;
