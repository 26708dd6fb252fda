//! Inference weights kept as panels of `WIDTH` output columns, each (in, `WIDTH`) row-major and
//! contiguous, and the product of many rows by them: gemm on one thread per panel, the panels
//! spread over the threads.
//!
//! In the plain (in, out) layout a product's task walks its columns down rows that lie 2-12 KB
//! apart, each on its own page, which the hardware prefetchers do not follow; reading a panel is
//! one sequential stream. Throwaway timings, AMD EPYC 25/1, 2 threads, 20 weights cycled so all
//! come from memory: 128-column blocks read at 5-8 GB/s strided against 14-15 GB/s packed, and
//! gemm per panel against candle's one gemm over the (in, out) matrix took 10-11 against 13 ms at
//! 197 × 768 × 3072, 2.2 against 2.9 ms at 120 × 512 × 2048 and 1.8 against 3.8 ms at 64 rows.

use rayon::prelude::*;

/// Output columns per panel. `skinny`'s task is one panel.
pub const WIDTH: usize = crate::transpose::PANEL;

/// `x` (m × k, row-major) times the weight in panels (`transpose::panelled` of the n × k weight),
/// plus `bias` (n) → m × n row-major: each panel's product is one single-threaded gemm call
/// writing its columns in place.
pub(super) fn product(
    x: &[f32],
    panels: &[f32],
    bias: Option<&[f32]>,
    m: usize,
    k: usize,
) -> Vec<f32> {
    let n = panels.len() / k.max(1);
    let mut out = crate::alloc::f32_capacity(m * n);
    // With a bias, each row starts as it and gemm adds the product; without, gemm writes every
    // value (it reads nothing there) and the buffer is not filled first.
    if let Some(b) = bias {
        (0..m).for_each(|_| out.extend_from_slice(b));
    }
    let count = n / WIDTH;
    let threads = rayon::current_num_threads().clamp(1, count.max(1));
    // Whole panels per task, as evenly as they divide.
    let per = count.div_ceil(threads);
    let dst = SendPtr(out.as_mut_ptr());
    (0..count.div_ceil(per)).into_par_iter().for_each(|t| {
        let dst = &dst;
        for p in t * per..((t + 1) * per).min(count) {
            let panel = &panels[p * k * WIDTH..][..k * WIDTH];
            // SAFETY: `out` has room for m × n values and outlives the loop; each panel writes
            // only its own WIDTH columns of every row (from p × WIDTH, rows n apart), and no two
            // tasks share a panel, so the writes never overlap. Without a bias, gemm does not read
            // the (unwritten) destination. `x` holds m × k values, `panel` k × WIDTH.
            unsafe {
                gemm::gemm(
                    m,
                    WIDTH,
                    k,
                    dst.0.add(p * WIDTH),
                    1,
                    n as isize,
                    bias.is_some(),
                    x.as_ptr(),
                    1,
                    k as isize,
                    panel.as_ptr(),
                    1,
                    WIDTH as isize,
                    1.0,
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                );
            }
        }
    });
    // SAFETY: every panel's gemm wrote its WIDTH columns of all m rows: m × n values in all.
    unsafe { out.set_len(m * n) };
    out
}

/// The output pointer, shared by tasks that write disjoint columns.
struct SendPtr(*mut f32);
// SAFETY: the tasks write disjoint panels' columns (`product`).
unsafe impl Sync for SendPtr {}

/// For the tests of products on panels: the largest difference, relative to 1 + |value|, of
/// `product` (`x`, panels, bias, m, k) from the product in f64, on an m × k × n case, with and
/// without a bias.
#[cfg(test)]
pub(super) fn worst_against_plain(
    product: impl Fn(&[f32], &[f32], Option<&[f32]>, usize, usize) -> Vec<f32>,
    (m, k, n): (usize, usize, usize),
) -> f32 {
    let x: Vec<f32> = (0..m * k)
        .map(|i| ((i * 7 % 23) as f32 - 11.0) * 0.1)
        .collect();
    // The (n, k) weight as a file stores it, read into panels.
    let w: Vec<f32> = (0..n * k)
        .map(|i| ((i * 5 % 19) as f32 - 9.0) * 0.1)
        .collect();
    let panels = crate::transpose::panelled(&w, n, k).expect("whole panels");
    let b: Vec<f32> = (0..n).map(|i| i as f32 * 0.01 - 0.5).collect();
    let mut worst = 0f32;
    for bias in [None, Some(b.as_slice())] {
        let ours = product(&x, &panels, bias, m, k);
        for i in 0..m {
            for j in 0..n {
                let mut s = bias.map_or(0.0, |b| b[j] as f64);
                for t in 0..k {
                    s += x[i * k + t] as f64 * w[j * k + t] as f64;
                }
                let d = (ours[i * n + j] - s as f32).abs() / (1.0 + s.abs() as f32);
                worst = worst.max(d);
            }
        }
    }
    worst
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equals_the_plain_product() {
        for case in [(1, 3, 128), (7, 77, 256), (130, 64, 384), (200, 40, 640)] {
            let worst = worst_against_plain(product, case);
            assert!(worst < 1e-5, "{case:?}: {worst}");
        }
    }
}
