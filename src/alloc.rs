//! Tunes glibc's allocator so that the large buffers each forward pass frees and asks for again
//! stay in the process, instead of going back to the kernel and faulting in anew on the next call.
//!
//! glibc serves blocks above its mmap threshold with fresh mappings and returns free heap past its
//! trim threshold; both thresholds adapt, but only up to the largest block freed so far, so a model
//! whose activations are a few MiB each keeps mapping, unmapping and zero-filling pages. In the
//! SmartCLIP mask at B/16's shape (8 × 77 × 512), `perf` put 38 % of the samples in the kernel
//! (page faults, `brk`); with `keep_freed_blocks` it went from 35.7 to 17.5 ms in the interleaved
//! comparison (bench/2026-12-02-amd-epyc-26-2.json, then -2.json).

/// For inference (the app and the command line): blocks under 32 MiB, glibc's ceiling for this
/// threshold, come from the heap, and up to 256 MiB of free heap is kept before it is returned.
/// Larger blocks (a vocabulary table) are still mapped and unmapped on their own, and the app's
/// worker still hands free memory back at most every 2 s (`worker::release_freed_memory`).
pub fn keep_freed_blocks() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only tunes the allocator's thresholds; it is called at start, before any
    // other thread allocates.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20);
    }
}

/// For training, which frees and asks for blocks larger than 32 MiB every step: no block is
/// mapped on its own (`M_MMAP_MAX` 0), and free heap is never returned (`M_TRIM_THRESHOLD` −1).
/// A step of the default model's recipe peaks at about 4 GB; with trimming past 1 GiB, the heap
/// gave back gigabytes at the end of each step and faulted them in (zero-filled) in the next:
/// 1.64 M page faults in 3 steps, 28 % of `perf`'s samples in `clear_page_erms`. Never trimming:
/// 1.17 M faults (nearly all in the first step), 5.4 → 5.1-5.2 s a step on an Intel Xeon 6/167.
pub fn keep_all_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: as above; called before training starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_MAX, 0);
        libc::mallopt(libc::M_TRIM_THRESHOLD, -1);
    }
}
