//! The server's memory allocator: mimalloc for Rust's allocations, glibc malloc for
//! SQLite's (a C library calls `malloc` directly).
//!
//! glibc malloc and free were a third of the server's instructions per SCIM read
//! (callgrind, 8,333 existence checks on PostgreSQL: `_int_free`, `_int_malloc`,
//! `malloc`, `malloc_consolidate` ...): every request parses, builds and drops JSON
//! values, headers and strings. mimalloc (the `rollcall` binary's global allocator)
//! serves those from per-thread free lists. At its defaults it held more memory
//! (idle 28 MB against 19, peak 72 against 63 at 100,000 members; issue 13), so
//! [`configure`] sets the two options that keep it at glibc's: freed pages go back
//! to the system at once (`purge_delay` 0) and its arena is committed as it is used
//! (`arena_eager_commit` 0).
//!
//! glibc gives threads their own heaps ("arenas", up to eight per core), and memory
//! freed in one arena serves only that arena; it also keeps freed memory rather than
//! returning it. SQLite's page caches and statements still live there, so glibc is
//! held to four arenas (two per core: with two, threads waited on each other's
//! arena lock; docs/performance.md, 2026-12-02) and trimmed now and then.

/// mimalloc's option numbers (`mi_option_t` in mimalloc.h, v2 and v3 alike; the
/// Rust binding does not name these two). `tests::options_are_the_ones_meant`
/// checks them against the environment variables mimalloc reads.
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
const ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;

/// Set both allocators up, before any thread starts and before mimalloc reads its
/// settings (the `rollcall` binary calls it from a load-time constructor).
pub fn configure() {
    // SAFETY: mi_option_set only changes an allocator setting.
    unsafe {
        libmimalloc_sys::mi_option_set(PURGE_DELAY, 0);
        libmimalloc_sys::mi_option_set(ARENA_EAGER_COMMIT, 0);
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes an allocator setting.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 4);
    }
}

/// Return freed memory to the operating system (run now and then).
pub fn trim() {
    // SAFETY: both only release free memory.
    unsafe {
        libmimalloc_sys::mi_collect(true);
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// mimalloc reads `MIMALLOC_<OPTION>` when it starts: a child process started
    /// with both set reports them under the numbers used above.
    #[test]
    fn options_are_the_ones_meant() {
        if std::env::var_os("ROLLCALL_ALLOC_CHILD").is_some() {
            // SAFETY: reads a setting.
            let got = unsafe {
                (
                    libmimalloc_sys::mi_option_get(PURGE_DELAY),
                    libmimalloc_sys::mi_option_get(ARENA_EAGER_COMMIT),
                )
            };
            assert_eq!(got, (1234, 3), "option numbers");
            return;
        }
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "alloc::tests::options_are_the_ones_meant"])
            .env("ROLLCALL_ALLOC_CHILD", "1")
            .env("MIMALLOC_PURGE_DELAY", "1234")
            .env("MIMALLOC_ARENA_EAGER_COMMIT", "3")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // The child ran the test rather than finding nothing to run.
        assert!(String::from_utf8_lossy(&out.stdout).contains("1 passed"));
    }
}
