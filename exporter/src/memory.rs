//! Giving memory back: a collection cycle frees what it allocated (hundreds of thousands of
//! label strings at Kafka scale), but glibc keeps freed pages inside its arenas, so the
//! resident set would stay at the cycle's peak. Trimming after each cycle returns them.

/// Return freed heap pages to the system (glibc's `malloc_trim`); elsewhere a no-op.
#[allow(unsafe_code)]
pub(crate) fn give_back() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory held by the allocator; it touches no
    // live allocation and is thread-safe.
    unsafe {
        libc::malloc_trim(0);
    }
}
