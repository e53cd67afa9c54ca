//! `surge-client`: everything the panel knows, without a terminal. Data flows one way:
//! fetchers ([`fetch`], one per source, each with its own loop) → [`fetch::Update`]s down a
//! channel → the [`store`] absorbs them and derives the rows each view shows. [`model`] is
//! the plain data in between. The panel (`surge-tui`) draws from the store; tests and drills
//! query Prometheus and Alertmanager through the same code.
//!
//! The API is what these modules re-export: the fetchers' internals (request plans, HTTP,
//! each source's parsing) are private, reached through [`fetch`]'s `pub use`s and
//! [`fetch::parse`]; the store's rows and verdicts through [`store`]'s; the store is read and
//! set through its methods, never its fields.

pub mod act;
pub mod fetch;
pub mod model;
pub mod recording;
pub mod store;

pub use fetch::queries;
