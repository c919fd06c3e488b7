//! The process's memory allocator: jemalloc, set up here for every binary built on this
//! library (the `icsync` binary, the benches and the tests alike, so a bench measures the
//! allocator the product ships with), and the call that gives freed memory back.
//!
//! Why not glibc's malloc: its malloc and free were 18% of the daemon's samples while it
//! synced, and jemalloc took the daemon's CPU a synced record from 205-241 us to 169-206 us
//! (docs/benchmarks.md, "jemalloc"). Why not mimalloc: it kept what sled's recovery frees at
//! start-up, and idle RSS with 1M records went over 100 MB.
//!
//! The tuning: freed pages go back to the system after a second of disuse
//! (`dirty_decay_ms`), skipping jemalloc's lazily freed stage (`muzzy_decay_ms:0`), on its
//! own background thread so that an idle daemon returns them too. With jemalloc's defaults
//! (10 s) the 1M-row drop peaked at 153 MB, over its 150 MB goal; with these, 118 MB.
//!
//! It owns nothing else: no module allocates differently because of it.

#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// A C string for jemalloc to read at start-up (`malloc_conf`).
#[cfg(not(target_env = "msvc"))]
#[repr(transparent)]
pub struct MallocConf(*const std::ffi::c_char);

// SAFETY: it points at a static string that nothing writes.
#[cfg(not(target_env = "msvc"))]
unsafe impl Sync for MallocConf {}

/// jemalloc's options, read once before its first allocation (see the module docs).
#[cfg(not(target_env = "msvc"))]
#[export_name = "_rjem_malloc_conf"]
pub static MALLOC_CONF: MallocConf =
    MallocConf(c"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0".as_ptr());

/// Hands memory freed so far back to the system now, rather than after the decay. Called
/// after start-up: sled's recovery reads its whole page-table snapshot into short-lived
/// allocations interleaved with the page table it keeps. glibc's heap is trimmed too, for
/// what C code (zstd's contexts) allocates there.
pub fn release_freed() {
    #[cfg(not(target_env = "msvc"))]
    // SAFETY: a NUL-terminated name of a command that reads and writes no value
    // (`arena.<MALLCTL_ARENAS_ALL>.purge`: every arena's unused pages).
    unsafe {
        tikv_jemalloc_sys::mallctl(
            c"arena.4096.purge".as_ptr(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            0,
        );
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes no pointer and only works on the allocator's own free lists;
    // glibc makes it safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(all(test, not(target_env = "msvc")))]
mod tests {
    /// The options are read: jemalloc reports them back, so a misspelt symbol or option
    /// (which jemalloc ignores silently) fails here.
    #[test]
    fn jemalloc_runs_with_the_options_set_here() {
        /// An option's value, read as a `T` of the option's C type.
        fn read<T: Copy>(name: &std::ffi::CStr, mut value: T) -> T {
            let mut len = std::mem::size_of::<T>();
            // SAFETY: `value` and `len` are a `T` and its size, which the callers match to
            // each option's C type (bool, ssize_t); jemalloc writes at most `len` bytes.
            let rc = unsafe {
                tikv_jemalloc_sys::mallctl(
                    name.as_ptr(),
                    (&mut value as *mut T).cast(),
                    &mut len,
                    std::ptr::null_mut(),
                    0,
                )
            };
            assert_eq!(rc, 0, "mallctl {name:?}");
            assert_eq!(len, std::mem::size_of::<T>(), "mallctl {name:?}");
            value
        }
        // A first allocation through the global allocator, so jemalloc is initialised.
        let boxed = std::hint::black_box(Box::new([0u8; 64]));
        drop(boxed);
        assert!(read(c"opt.background_thread", false));
        assert_eq!(read(c"opt.dirty_decay_ms", -2isize), 1000);
        assert_eq!(read(c"opt.muzzy_decay_ms", -2isize), 0);
        super::release_freed();
    }
}
