//! Cross-crate scenarios live in `tests/tests/`; this crate has no library code.
