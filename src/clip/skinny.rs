//! Products of a few rows by a weight kept (in, out), as a prompt's 30 text tokens or B/32's 50
//! image tokens meet every projection: the weight streamed once, unpacked, the bias added in the
//! same pass. Whether it beats gemm on this CPU is measured once per process (`chosen`).
//!
//! gemm packs the weight before every product; with 30 rows each packed value is used 30 times,
//! so packing is a large share of the work, and gemm ran those shapes at 79-108 GFLOP/s where it
//! reaches 172-186 on 197 or 616 rows (AMD EPYC 25/17, 2 threads).

use std::sync::OnceLock;
use std::time::Instant;

use candle_core::{DType, Result, Storage, Tensor};
use pulp::{Arch, Simd, WithSimd};
use rayon::prelude::*;

/// At most this many rows take this path.
pub(super) const MAX_ROWS: usize = 128;
/// Output columns per parallel task; widths that are not a multiple take gemm's path. Every
/// tile width (`VECS` × 1, 4, 8 or 16 lanes) divides it, so a task is whole tiles.
const BLOCK: usize = 128;
/// Rows per register tile.
const ROWS: usize = 6;
/// SIMD vectors of output columns per register tile.
const VECS: usize = 4;

/// Whether `rows × k` by `k × n` should take this path: few rows, a width it tiles, and this
/// kernel chosen on this CPU (`chosen`).
pub(super) fn serves(rows: usize, n: usize) -> bool {
    rows > 0 && rows <= MAX_ROWS && n % BLOCK == 0 && chosen()
}

/// `x` (m, k) · `w` (k, n) + `bias` when this path serves the shape and all are contiguous
/// f32 on the CPU; `None` otherwise (the caller takes gemm).
pub(super) fn matmul(x: &Tensor, w: &Tensor, bias: Option<&Tensor>) -> Result<Option<Tensor>> {
    let (m, k) = x.dims2()?;
    let (k2, n) = w.dims2()?;
    let plain = |t: &Tensor| t.is_contiguous() && t.dtype() == DType::F32;
    if k != k2 || k == 0 || !plain(x) || !plain(w) || !bias.is_none_or(plain) {
        return Ok(None);
    }
    if bias.is_some_and(|b| b.dims() != [n]) || !serves(m, n) {
        return Ok(None);
    }
    let (xs, xl) = x.storage_and_layout();
    let (ws, wl) = w.storage_and_layout();
    let (Storage::Cpu(xc), Storage::Cpu(wc)) = (&*xs, &*ws) else {
        return Ok(None);
    };
    let xv = &xc.as_slice::<f32>()?[xl.start_offset()..][..m * k];
    let wv = &wc.as_slice::<f32>()?[wl.start_offset()..][..k * n];
    let bias = bias.map(Tensor::to_vec1::<f32>).transpose()?;
    let out = product(xv, wv, bias.as_deref(), m, k);
    Tensor::from_vec(out, (m, n), x.device()).map(Some)
}

/// `x` (m × k, row-major) times `w` (k × n, row-major), plus `bias` (n) → m × n row-major.
pub(super) fn product(x: &[f32], w: &[f32], bias: Option<&[f32]>, m: usize, k: usize) -> Vec<f32> {
    let n = w.len() / k.max(1);
    let blocks: Vec<Vec<f32>> = (0..n / BLOCK)
        .into_par_iter()
        .map(|b| {
            let mut out = vec![0f32; m * BLOCK];
            Arch::new().dispatch(Block {
                x,
                w,
                bias: bias.map(|v| &v[b * BLOCK..][..BLOCK]),
                out: &mut out,
                start: b * BLOCK,
                k,
                n,
            });
            out
        })
        .collect();
    let mut out = crate::alloc::f32_capacity(m * n);
    for i in 0..m {
        for block in &blocks {
            out.extend_from_slice(&block[i * BLOCK..][..BLOCK]);
        }
    }
    out
}

/// What the first call measured: (this kernel's ms, gemm's ms) on a 32 × 512 × 2048 product,
/// the best of 5 runs each after one warm-up.
pub fn measured() -> (f64, f64) {
    *MEASURED.get_or_init(measure)
}

static MEASURED: OnceLock<(f64, f64)> = OnceLock::new();

/// Whether products of few rows take the streamed kernel in this process. It is kept unless gemm
/// measured clearly faster: the measurement reuses one weight that stays in cache, which hides
/// the cost of gemm's packing, where a text pass reads every weight from memory once (on the AMD
/// EPYC 25/17 the two measured within 2 % of each other in some starts, while the B/16 prompt
/// edit took 24-30 ms streamed and 35-41 ms on gemm).
pub fn chosen() -> bool {
    let (ours, gemm) = measured();
    ours <= MARGIN * gemm
}

/// How much slower than gemm the streamed kernel may measure and still be chosen.
const MARGIN: f64 = 1.1;

fn measure() -> (f64, f64) {
    let (m, k, n) = (32, 512, 2048);
    let x: Vec<f32> = (0..m * k).map(|i| ((i % 17) as f32 - 8.0) * 0.01).collect();
    let w: Vec<f32> = (0..k * n).map(|i| ((i % 13) as f32 - 6.0) * 0.01).collect();
    let best = |f: &dyn Fn()| {
        (0..6)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_secs_f64() * 1e3
            })
            .skip(1)
            .fold(f64::INFINITY, f64::min)
    };
    let ours = best(&|| {
        std::hint::black_box(product(&x, &w, None, m, k));
    });
    let dev = candle_core::Device::Cpu;
    let tensors = (
        candle_core::Tensor::from_slice(&x, (m, k), &dev),
        candle_core::Tensor::from_slice(&w, (k, n), &dev),
    );
    let gemm = match tensors {
        (Ok(a), Ok(b)) => best(&|| {
            let _ = std::hint::black_box(a.matmul(&b));
        }),
        _ => f64::INFINITY,
    };
    tracing::debug!("few-row products: this kernel {ours:.3} ms, gemm {gemm:.3} ms");
    (ours, gemm)
}

/// One task: every row of `x` against the `BLOCK` weight columns from `start`.
struct Block<'a> {
    x: &'a [f32],
    w: &'a [f32],
    bias: Option<&'a [f32]>,
    /// m × BLOCK.
    out: &'a mut [f32],
    start: usize,
    k: usize,
    n: usize,
}

impl WithSimd for Block<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(mut self, simd: S) {
        let lanes = S::F32_LANES;
        let width = VECS * lanes;
        let m = self.x.len() / self.k;
        let mut col = 0;
        while col + width <= BLOCK {
            let mut g = 0;
            while g < m {
                let rows = (m - g).min(ROWS);
                match rows {
                    6 => self.tile::<S, 6>(simd, g, col),
                    5 => self.tile::<S, 5>(simd, g, col),
                    4 => self.tile::<S, 4>(simd, g, col),
                    3 => self.tile::<S, 3>(simd, g, col),
                    2 => self.tile::<S, 2>(simd, g, col),
                    _ => self.tile::<S, 1>(simd, g, col),
                }
                g += rows;
            }
            col += width;
        }
    }
}

impl Block<'_> {
    /// Rows `g .. g + R` against the `VECS` vectors of columns from `col` (within the block),
    /// accumulators in registers.
    // Indexed loops over the constant R and VECS, which the compiler unrolls into registers.
    #[allow(clippy::needless_range_loop)]
    #[inline(always)]
    fn tile<S: Simd, const R: usize>(&mut self, simd: S, g: usize, col: usize) {
        let lanes = S::F32_LANES;
        let (k, n) = (self.k, self.n);
        let init: [S::f32s; VECS] = std::array::from_fn(|v| match self.bias {
            Some(b) => simd.partial_load_f32s(&b[col + v * lanes..][..lanes]),
            None => simd.splat_f32s(0.0),
        });
        let mut acc = [init; R];
        let xs: [&[f32]; R] = std::array::from_fn(|r| &self.x[(g + r) * k..][..k]);
        let first = self.start + col;
        for t in 0..k {
            let row = &self.w[t * n + first..][..VECS * lanes];
            let (wv, _) = S::as_simd_f32s(row);
            for r in 0..R {
                let xv = simd.splat_f32s(xs[r][t]);
                for v in 0..VECS {
                    acc[r][v] = simd.mul_add_e_f32s(wv[v], xv, acc[r][v]);
                }
            }
        }
        for (r, vecs) in acc.iter().enumerate() {
            let out = &mut self.out[(g + r) * BLOCK + col..][..VECS * lanes];
            let (ov, _) = S::as_mut_simd_f32s(out);
            ov.copy_from_slice(vecs);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(x: &[f32], w: &[f32], bias: Option<&[f32]>, m: usize, k: usize) -> Vec<f32> {
        let n = w.len() / k;
        let mut out = vec![0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                let mut s = bias.map_or(0.0, |b| b[j] as f64);
                for t in 0..k {
                    s += x[i * k + t] as f64 * w[t * n + j] as f64;
                }
                out[i * n + j] = s as f32;
            }
        }
        out
    }

    #[test]
    fn equals_the_plain_product_on_every_row_count() {
        for (m, k, n) in [
            (1, 3, 128),
            (5, 77, 256),
            (6, 64, 128),
            (30, 512, 384),
            (64, 40, 128),
        ] {
            let x: Vec<f32> = (0..m * k)
                .map(|i| ((i * 7 % 23) as f32 - 11.0) * 0.1)
                .collect();
            let w: Vec<f32> = (0..k * n)
                .map(|i| ((i * 5 % 19) as f32 - 9.0) * 0.1)
                .collect();
            let b: Vec<f32> = (0..n).map(|i| i as f32 * 0.01 - 0.5).collect();
            for bias in [None, Some(b.as_slice())] {
                let ours = product(&x, &w, bias, m, k);
                let want = reference(&x, &w, bias, m, k);
                let worst = ours
                    .iter()
                    .zip(&want)
                    .map(|(a, b)| (a - b).abs() / (1.0 + b.abs()))
                    .fold(0f32, f32::max);
                assert!(worst < 1e-5, "{m}×{k}×{n}: {worst}");
            }
        }
    }

    #[test]
    fn takes_only_what_it_tiles() {
        assert!(!serves(0, 128));
        assert!(!serves(MAX_ROWS + 1, 512));
        assert!(!serves(30, 100));
        let (ours, gemm) = measured();
        assert!(ours > 0.0 && gemm > 0.0, "both were timed: {ours} {gemm}");
        assert_eq!(serves(30, 512), ours <= MARGIN * gemm);
    }
}
