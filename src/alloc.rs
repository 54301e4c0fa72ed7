//! glibc malloc settings for a long-running server (no-ops elsewhere).
//!
//! glibc gives threads their own heaps ("arenas", up to eight per core), and memory
//! freed in one arena serves only that arena; it also keeps freed memory rather than
//! returning it. Rollcall allocates on the async workers, on sqlx's thread per SQLite
//! connection, on the writer thread and on blocking threads: in the 10-minute soak
//! the resident size stepped up by 20 MB in the first five minutes and stayed there,
//! while what SQLite and the rest of the server held stayed level.

/// At most two arenas. Call first thing in `main`, before any thread starts.
pub fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes an allocator setting.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Return freed memory to the operating system (run now and then).
pub fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory.
    unsafe {
        libc::malloc_trim(0);
    }
}
