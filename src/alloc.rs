//! Tunes glibc's allocator so that the large buffers each forward pass frees and asks for again
//! stay in the process, instead of going back to the kernel and faulting in anew on the next call.
//!
//! glibc serves blocks above its mmap threshold with fresh mappings and returns free heap past its
//! trim threshold; both thresholds adapt, but only up to the largest block freed so far, so a model
//! whose activations are a few MiB each keeps mapping, unmapping and zero-filling pages. In the
//! SmartCLIP mask at B/16's shape (8 × 77 × 512), `perf` put 38 % of the samples in the kernel
//! (page faults, `brk`); with `keep_freed_blocks` it went from 35.7 to 17.5 ms in the interleaved
//! comparison (bench/2026-12-02-amd-epyc-26-2.json, then -2.json).
//!
//! A model load writes each weight once into a fresh buffer, a page fault per 4 KiB where
//! transparent huge pages are set to `madvise` (as on many distributions). `f32_capacity` hands out
//! those buffers advised as 2 MiB pages, and `LoadPad` grows the heap in large steps while a load
//! runs, so that most weights land in one advised stretch: a B/16 load here took 156-161 ms
//! without either and 90-111 ms with both (`clipscope bench --models vit-b16`, AMD EPYC 26/2), and
//! one `clipscope score` run took 69 k page faults instead of 168 k.

use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};

/// For inference (the app and the command line): blocks under 32 MiB, glibc's ceiling for this
/// threshold, come from the heap, up to 256 MiB of free heap is kept before it is returned, and
/// the heap grows 8 MiB past what is asked (`INFERENCE_TOP_PAD`).
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
    RESTING_PAD.store(INFERENCE_TOP_PAD, Ordering::SeqCst);
    set_top_pad(INFERENCE_TOP_PAD);
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

/// Buffers at least this large (bytes) are asked to be backed by 2 MiB pages.
const HUGE_MIN: usize = 1 << 20;

/// An empty `Vec<f32>` with room for `n` values, not yet written. Where it is large, its
/// 2 MiB-aligned pages are advised to the kernel as huge pages (`MADV_HUGEPAGE`), so that writing
/// it faults once per 2 MiB instead of once per 4 KiB.
pub(crate) fn f32_capacity(n: usize) -> Vec<f32> {
    let values: Vec<f32> = Vec::with_capacity(n);
    let bytes = n.saturating_mul(4);
    if bytes >= HUGE_MIN {
        let start = values.as_ptr() as usize;
        advise_huge(start, heap_room(start, bytes));
    }
    values
}

/// `bytes` from `start`, or for a block of the main heap everything from `start` to the heap's
/// end: the free top of the heap, which the next blocks are cut from (untouched pages, so
/// advising them costs no memory). Most weights are a few MiB, too small for a 2 MiB-aligned page
/// to fit inside their own block.
fn heap_room(start: usize, bytes: usize) -> usize {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: sbrk(0) only reads the current program break.
        let brk = unsafe { libc::sbrk(0) } as usize;
        if start < brk && start + bytes <= brk {
            return brk - start;
        }
    }
    bytes
}

/// A hint only: where the kernel has no transparent huge pages the call fails and is ignored.
fn advise_huge(start: usize, len: usize) {
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        let lo = start.next_multiple_of(HUGE);
        let hi = (start + len) / HUGE * HUGE;
        if hi > lo {
            // SAFETY: MADV_HUGEPAGE changes no contents, and the range lies inside memory this
            // process's allocator owns.
            unsafe { libc::madvise(lo as *mut libc::c_void, hi - lo, libc::MADV_HUGEPAGE) };
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (start, len);
}

/// Loads under way; the heap's top pad is large while this is above zero.
static LOADS: AtomicUsize = AtomicUsize::new(0);

/// While one is alive, the heap grows 64 MiB at a time (`M_TOP_PAD`) instead of glibc's 128 KiB,
/// so a load's weights are cut from a few long stretches that `f32_capacity` advises whole. Only
/// for the load: kept for inference too, it raised a B/16 bench's peak memory (below).
#[derive(Debug)]
pub(crate) struct LoadPad(());

impl LoadPad {
    pub(crate) fn new() -> Self {
        if LOADS.fetch_add(1, Ordering::SeqCst) == 0 {
            set_top_pad(64 << 20);
        }
        LoadPad(())
    }
}

impl Drop for LoadPad {
    fn drop(&mut self) {
        if LOADS.fetch_sub(1, Ordering::SeqCst) == 1 {
            set_top_pad(RESTING_PAD.load(Ordering::SeqCst));
        }
    }
}

/// glibc's own `M_TOP_PAD` (`DEFAULT_TOP_PAD`).
const GLIBC_TOP_PAD: i32 = 128 << 10;

/// The top pad between loads for inference (`keep_freed_blocks`). A B/16 model loaded eight times
/// in one process (`clipscope bench --models vit-b16 --runs 8`, three runs each, AMD EPYC 26/2):
/// 104-140 ms a load at glibc's 128 KiB, 90-111 ms at 8 MiB, 84-89 ms at 64 MiB; peak memory
/// 756-759, 756-761 and 783-812 MB.
const INFERENCE_TOP_PAD: i32 = 8 << 20;

/// The top pad to go back to when the last load ends.
static RESTING_PAD: AtomicI32 = AtomicI32::new(GLIBC_TOP_PAD);

fn set_top_pad(bytes: i32) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt takes the main arena's lock; it only changes how far the heap grows.
    unsafe {
        libc::mallopt(libc::M_TOP_PAD, bytes);
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = bytes;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f32_capacity_is_empty_with_room_for_n_and_keeps_what_is_written() {
        for n in [0, 1, 1000, (HUGE_MIN / 4) + 17, 3 << 20] {
            let mut v = f32_capacity(n);
            assert!(v.is_empty());
            assert!(v.capacity() >= n, "capacity {} < {n}", v.capacity());
            v.extend((0..n).map(|i| i as f32));
            assert_eq!(v.len(), n);
            assert!(v.iter().enumerate().all(|(i, &x)| x == i as f32));
        }
    }

    #[test]
    fn heap_room_never_shrinks_the_block() {
        let v = f32_capacity(HUGE_MIN);
        let start = v.as_ptr() as usize;
        assert!(heap_room(start, HUGE_MIN * 4) >= HUGE_MIN * 4);
    }
}
