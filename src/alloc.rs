//! glibc malloc settings for a long-running server (no-ops elsewhere).
//!
//! glibc gives threads their own heaps ("arenas", up to eight per core), and memory
//! freed in one arena serves only that arena; it also keeps freed memory rather than
//! returning it. Left alone, the 10-minute soak's resident size stepped up by 20 MB
//! in the first five minutes and stayed there, while what SQLite and the rest of the
//! server held stayed level. Too few arenas cost time instead: threads sharing one
//! wait for its lock. With two, the SQLite reads on the async workers spent 17 % of
//! the server's time in malloc's lock (futex wait and wake) against 3 % with four,
//! and read throughput fell by a third (docs/performance.md, 2026-12-02). Four
//! (two per core) keeps both: the reads' speed, and peak memory below what two gave.
//!
//! mimalloc was measured against this (issue 13): faster, but with more memory at
//! its defaults (idle 28 MB against 19, peak 72 against 63 at 100,000 members).

/// At most four arenas. Call first thing in `main`, before any thread starts.
pub fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes an allocator setting.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 4);
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
