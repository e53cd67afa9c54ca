//! Scenarios live in `tests/tests/`.
