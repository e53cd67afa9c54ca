//! One file per source; each owns its config section (`Section` as written, `Settings` once
//! checked) and turns one target into samples per cycle.

pub(crate) mod kafka;
pub(crate) mod kubernetes;
pub(crate) mod postgres;
pub(crate) mod processes;
