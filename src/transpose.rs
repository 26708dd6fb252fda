//! The transpose of a row-major f32 matrix into fresh memory (`alloc::f32_capacity`: 2 MiB pages):
//! 8×8 tiles in AVX registers where the CPU has AVX, the output's rows split over two threads for
//! large matrices.
//!
//! A leaf on plain slices, for `io` (every `Linear` weight read from a file, 490 MB at ViT-B/16)
//! and `clip` (weights handed in untransposed). Element by element, the file reader's transpose
//! was 46 % of `perf`'s samples in a B/16 load on an AMD EPYC 26/2; a tile in registers moves
//! eight values per instruction, and the output's two halves are written side by side.

use std::mem::MaybeUninit;

/// Matrices at least this large (values) are transposed on two threads.
const PARALLEL_MIN: usize = 1 << 18;

/// Rows of the source walked per block: 32 rows of every output row's 8-column tile are written
/// before moving on, a whole 128-byte run of each output row.
const ROW_BLOCK: usize = 32;

/// The transpose of `src` (`rows` × `cols`, row-major): `cols` × `rows` values, written straight
/// into fresh memory (no zero-fill first).
///
/// # Panics
/// If `src` does not hold `rows * cols` values.
pub(crate) fn transposed(src: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let n = rows * cols;
    let mut out = crate::alloc::f32_capacity(n);
    transpose_into(src, rows, cols, &mut out.spare_capacity_mut()[..n]);
    // SAFETY: transpose_into writes all n values.
    unsafe { out.set_len(n) };
    out
}

/// Columns of output per panel (`panelled`).
pub(crate) const PANEL: usize = 128;

/// The transpose of `src` (`rows` × `cols`, row-major) as `rows / PANEL` panels, each the
/// (`cols` × `PANEL`) transpose of `PANEL` consecutive source rows, one after the other: the
/// layout the inference kernels read a weight in (`clip::panels`). `None` unless `rows` is a
/// multiple of `PANEL`. One pass, as `transposed`, the panels split over two threads.
pub(crate) fn panelled(src: &[f32], rows: usize, cols: usize) -> Option<Vec<f32>> {
    if rows == 0 || rows % PANEL != 0 || src.len() != rows * cols {
        return None;
    }
    let n = rows * cols;
    let mut out = crate::alloc::f32_capacity(n);
    let slab = PANEL * cols;
    let fill = |from: usize, out: &mut [MaybeUninit<f32>]| {
        for (i, panel) in out.chunks_exact_mut(slab).enumerate() {
            let p = from + i;
            columns(&src[p * slab..][..slab], PANEL, cols, 0, panel);
        }
    };
    let spare = &mut out.spare_capacity_mut()[..n];
    let panels = rows / PANEL;
    if n >= PARALLEL_MIN && panels >= 2 {
        let (left, right) = spare.split_at_mut(panels / 2 * slab);
        rayon::join(|| fill(0, left), || fill(panels / 2, right));
    } else {
        fill(0, spare);
    }
    // SAFETY: every panel of the n values was written by `columns`.
    unsafe { out.set_len(n) };
    Some(out)
}

/// Writes the transpose of `src` (`rows` × `cols`, row-major) into `out` (`cols` × `rows`):
/// `out[c * rows + r] = src[r * cols + c]`. Every value of `out` is written.
///
/// # Panics
/// If `src` or `out` does not hold `rows * cols` values.
fn transpose_into(src: &[f32], rows: usize, cols: usize, out: &mut [MaybeUninit<f32>]) {
    assert_eq!(src.len(), rows * cols, "source is not rows × cols");
    assert_eq!(out.len(), rows * cols, "output is not cols × rows");
    if rows * cols >= PARALLEL_MIN && cols >= 16 {
        // Output rows 0..half and half..cols: two disjoint runs of `out`.
        let half = (cols / 2).div_ceil(8) * 8;
        let (left, right) = out.split_at_mut(half * rows);
        rayon::join(
            || columns(src, rows, cols, 0, left),
            || columns(src, rows, cols, half, right),
        );
    } else {
        columns(src, rows, cols, 0, out);
    }
}

/// Output rows `c0..c0 + out.len() / rows` (source columns) of the transpose.
fn columns(src: &[f32], rows: usize, cols: usize, c0: usize, out: &mut [MaybeUninit<f32>]) {
    if rows == 0 {
        return;
    }
    let width = out.len() / rows;
    debug_assert!(c0 + width <= cols && width * rows == out.len());
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx") {
        // SAFETY: the CPU has AVX, checked just above.
        unsafe { avx::columns(src, rows, cols, c0, width, out) };
        return;
    }
    scalar(src, rows, cols, c0, 0..width, 0..rows, out);
}

/// The plain loop, for what the tiles leave over (and CPUs without AVX): output rows `cs`
/// (relative to `c0`) × source rows `rs`.
fn scalar(
    src: &[f32],
    rows: usize,
    cols: usize,
    c0: usize,
    cs: std::ops::Range<usize>,
    rs: std::ops::Range<usize>,
    out: &mut [MaybeUninit<f32>],
) {
    for c in cs {
        let row = &mut out[c * rows..(c + 1) * rows];
        for r in rs.clone() {
            row[r].write(src[r * cols + c0 + c]);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx {
    use super::{scalar, ROW_BLOCK};
    use std::arch::x86_64::*;
    use std::mem::MaybeUninit;

    /// As `super::columns`, with 8×8 tiles in registers and the edges by `scalar`.
    #[target_feature(enable = "avx")]
    pub(super) fn columns(
        src: &[f32],
        rows: usize,
        cols: usize,
        c0: usize,
        width: usize,
        out: &mut [MaybeUninit<f32>],
    ) {
        let (tw, tr) = (width / 8 * 8, rows / 8 * 8);
        for r_block in (0..tr).step_by(ROW_BLOCK) {
            let r_end = (r_block + ROW_BLOCK).min(tr);
            for c in (0..tw).step_by(8) {
                for r in (r_block..r_end).step_by(8) {
                    // In bounds: source rows r..r + 8 < rows hold columns c0 + c..c0 + c + 8 <=
                    // cols, and output rows c..c + 8 <= width hold positions r..r + 8 <= rows.
                    let from = &src[r * cols + c0 + c..(r + 7) * cols + c0 + c + 8];
                    let to = &mut out[c * rows + r..(c + 7) * rows + r + 8];
                    // SAFETY: `from` holds the 8 runs of 8 values at stride `cols` and `to` the 8
                    // runs at stride `rows` (the slices above end at the last run's end).
                    unsafe { tile(from.as_ptr(), cols, to.as_mut_ptr().cast(), rows) };
                }
            }
        }
        scalar(src, rows, cols, c0, tw..width, 0..rows, out);
        scalar(src, rows, cols, c0, 0..tw, tr..rows, out);
    }

    /// Transposes the 8×8 block at `src` (row stride `ss`) into `dst` (row stride `ds`).
    ///
    /// # Safety
    /// AVX is available; `src + i * ss + j` and `dst + i * ds + j` are valid for i, j < 8.
    #[target_feature(enable = "avx")]
    unsafe fn tile(src: *const f32, ss: usize, dst: *mut f32, ds: usize) {
        unsafe {
            macro_rules! r {
                ($i:expr) => {
                    _mm256_loadu_ps(src.add($i * ss))
                };
            }
            let (a0, a1, a2, a3) = (r!(0), r!(1), r!(2), r!(3));
            let (a4, a5, a6, a7) = (r!(4), r!(5), r!(6), r!(7));
            let (t0, t1) = (_mm256_unpacklo_ps(a0, a1), _mm256_unpackhi_ps(a0, a1));
            let (t2, t3) = (_mm256_unpacklo_ps(a2, a3), _mm256_unpackhi_ps(a2, a3));
            let (t4, t5) = (_mm256_unpacklo_ps(a4, a5), _mm256_unpackhi_ps(a4, a5));
            let (t6, t7) = (_mm256_unpacklo_ps(a6, a7), _mm256_unpackhi_ps(a6, a7));
            let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
            let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
            let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
            let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
            let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
            let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
            let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
            let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
            macro_rules! w {
                ($i:expr, $v:expr) => {
                    _mm256_storeu_ps(dst.add($i * ds), $v)
                };
            }
            w!(0, _mm256_permute2f128_ps::<0x20>(u0, u4));
            w!(1, _mm256_permute2f128_ps::<0x20>(u1, u5));
            w!(2, _mm256_permute2f128_ps::<0x20>(u2, u6));
            w!(3, _mm256_permute2f128_ps::<0x20>(u3, u7));
            w!(4, _mm256_permute2f128_ps::<0x31>(u0, u4));
            w!(5, _mm256_permute2f128_ps::<0x31>(u1, u5));
            w!(6, _mm256_permute2f128_ps::<0x31>(u2, u6));
            w!(7, _mm256_permute2f128_ps::<0x31>(u3, u7));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transposed_of(rows: usize, cols: usize) -> (Vec<f32>, Vec<f32>) {
        let src: Vec<f32> = (0..rows * cols).map(|i| i as f32 * 0.5 - 3.0).collect();
        let out = transposed(&src, rows, cols);
        (src, out)
    }

    #[test]
    fn every_shape_comes_out_as_its_transpose() {
        // Tiles only, ragged edges both ways, one row, one column, the two-thread split (with an
        // odd number of tiles) and a block of rows that ends inside a tile.
        for (rows, cols) in [
            (8, 8),
            (16, 24),
            (13, 21),
            (1, 9),
            (9, 1),
            (0, 5),
            (37, 3),
            (515, 771),
            (768, 520),
            (44, 9000),
        ] {
            let (src, out) = transposed_of(rows, cols);
            for r in 0..rows {
                for c in 0..cols {
                    assert_eq!(
                        out[c * rows + r],
                        src[r * cols + c],
                        "{rows}×{cols} at {r},{c}"
                    );
                }
            }
        }
    }

    #[test]
    fn panels_are_the_transposes_of_row_slabs() {
        let (rows, cols) = (3 * PANEL, 37);
        let src: Vec<f32> = (0..rows * cols).map(|i| i as f32).collect();
        let out = panelled(&src, rows, cols).unwrap();
        for (r, c) in [(0, 0), (5, 3), (PANEL + 7, 36), (rows - 1, 20)] {
            let (p, j) = (r / PANEL, r % PANEL);
            assert_eq!(
                out[p * PANEL * cols + c * PANEL + j],
                src[r * cols + c],
                "{r} {c}"
            );
        }
        let big = 4 * PANEL * 600;
        let src: Vec<f32> = (0..big).map(|i| (i % 1013) as f32).collect();
        let out = panelled(&src, 4 * PANEL, 600).unwrap();
        let whole = transposed(&src, 4 * PANEL, 600);
        for p in 0..4 {
            for c in 0..600 {
                assert_eq!(
                    out[p * PANEL * 600 + c * PANEL..][..PANEL],
                    whole[c * 4 * PANEL + p * PANEL..][..PANEL]
                );
            }
        }
        assert!(panelled(&src[..100 * 7], 100, 7).is_none());
    }
}
