//! Render functions: `(app, store, theme, now) → frame`. No I/O, no locks, no clocks: `now`
//! comes in, so a frame is a pure function of its inputs (and snapshot-testable). One file
//! per view; `widgets` and `cells` hold what several views draw the same way.

pub mod alerts;
pub mod cells;
pub mod charts;
pub mod chrome;
pub mod contexts;
pub mod ctx;
pub mod dead_letters;
pub mod format;
mod frame;
pub mod kafka;
pub mod overview;
pub mod popup;
pub mod postgres;
pub mod service;
pub mod spark;
pub mod table;
pub mod theme;
pub mod widgets;

pub use ctx::Ctx;
pub use frame::{buffer_text, draw, render_text};
