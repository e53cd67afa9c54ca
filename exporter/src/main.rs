//! `surge-exporter` binary: all logic lives in the library so tests drive the same code.

fn main() -> std::process::ExitCode {
    tune_allocator();
    surge_exporter::cli::main()
}

/// glibc keeps one malloc arena per thread and raises its mmap threshold after big frees,
/// so the multi-megabyte buffers of a large exposition or Kafka cycle would stay resident
/// after use. Two arenas and a fixed 1 MiB mmap threshold return them to the system.
#[allow(unsafe_code)]
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only adjusts allocator parameters; called before any other thread
    // exists. A failure (return 0) leaves the defaults, which is harmless.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}
