//! `surge`: the on-call panel. Its engine is `surge-client` (fetchers → updates → store, no
//! UI); this crate adds the config and flags (`config`, `cli`), what the user sees and asks
//! for (`app/`, keys → view state or actions, no I/O), the render functions (`ui/`, pure
//! functions of app, store, theme and time), the Markdown snapshot, and the loops that run
//! them (`run` live, `replay` from a recording).

mod acting;
pub mod app;
pub mod cli;
pub mod config;
pub mod replay;
pub mod run;
pub mod snapshot;
pub mod ui;
