//! Products of a few rows by a weight kept (in, out), as a prompt's 30 text tokens or B/32's 50
//! image tokens meet every projection: the weight streamed once, unpacked, the bias added in the
//! same pass. Whether it beats gemm on this CPU, and up to how many rows, is measured once per
//! process (`chosen`, `limit`).
//!
//! gemm packs the weight before every product; with 30 rows each packed value is used 30 times,
//! so packing is a large share of the work, and gemm ran those shapes at 79-108 GFLOP/s where it
//! reaches 172-186 on 197 or 616 rows (AMD EPYC 25/17, 2 threads).
//!
//! On AVX2 the register tile is 6 rows × 2 vectors (it was 6 × 4, whose 24 accumulators do not
//! fit 16 registers), and each tile asks for its weight rows `AHEAD` steps early. Best of 40
//! products, each on another weight so that all come from memory, AMD EPYC 25/1, 2 threads, two
//! rounds alternating: 5×512×2048 0.69-0.83 → 0.40-0.60 ms, 15×512×2048 0.92-0.93 → 0.54-0.55,
//! 32×512×2048 1.56-1.60 → 1.03-1.05, 30×768×3072 2.75-2.82 → 2.20-2.50. At 15 rows that is 4 MB
//! of weights in 0.55 ms: the memory, not the arithmetic, is now what bounds a prompt's pass.

use std::sync::OnceLock;
use std::time::Instant;

use candle_core::{DType, Result, Storage, Tensor};
use pulp::{Arch, Simd, WithSimd};
use rayon::prelude::*;

/// At most this many rows take this path.
pub const MAX_ROWS: usize = 128;
/// Output columns per parallel task; widths that are not a multiple take gemm's path. Every
/// tile width (2 or 4 vectors of 1, 4, 8 or 16 lanes) divides it, so a task is whole tiles.
const BLOCK: usize = 128;
/// Rows per register tile.
const ROWS: usize = 6;
/// SIMD vectors of output columns per register tile where the ISA has 32 vector registers
/// (AVX-512, NEON): 6 × 4 accumulators fit beside the weight vectors.
const VECS_WIDE: usize = 4;
/// The same with 16 registers (AVX2, SSE): 6 × 2 accumulators, two weight vectors and the
/// broadcast row value fit; 6 × 4 would spill accumulators to the stack on every step.
const VECS_NARROW: usize = 2;

/// Whether `rows × k` by `k × n` should take this path: few rows (up to `limit`), a width it
/// tiles, and this kernel chosen on this CPU.
pub(super) fn serves(rows: usize, n: usize) -> bool {
    rows > 0 && rows <= limit() && n % BLOCK == 0
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

/// What the first call measured (`measure`): this kernel's and gemm's ms on a 32 × 512 × 2048
/// product and, only where this kernel holds there, on a `MAX_ROWS` × 512 × 2048 one; the best
/// of 5 runs each after one warm-up.
#[derive(Debug, Clone, Copy)]
pub struct Measured {
    pub few: (f64, f64),
    pub many: Option<(f64, f64)>,
}

pub fn measured() -> Measured {
    *MEASURED.get_or_init(|| {
        let few = measure(FEW);
        let many = holds(few).then(|| measure(MAX_ROWS));
        Measured { few, many }
    })
}

/// Whether this kernel's time (ms) is within `MARGIN` of gemm's.
fn holds((ours, gemm): (f64, f64)) -> bool {
    ours <= MARGIN * gemm
}

static MEASURED: OnceLock<Measured> = OnceLock::new();

/// Rows of the first measured product.
const FEW: usize = 32;

/// Whether products of few rows take the streamed kernel in this process. It is kept unless gemm
/// measured clearly faster: the measurement reuses one weight that stays in cache, which hides
/// the cost of gemm's packing, where a text pass reads every weight from memory once (on the AMD
/// EPYC 25/17 the two measured within 2 % of each other in some starts, while the B/16 prompt
/// edit took 24-30 ms streamed and 35-41 ms on gemm).
pub fn chosen() -> bool {
    holds(measured().few)
}

/// The most rows this kernel takes in this process: none unless `chosen`; `MAX_ROWS` where it
/// also holds against gemm at that many rows, else half of it. Where gemm's packing is shared by
/// enough rows it can win: on the AMD EPYC 25/1, weights from memory, 120 × 512 × 2048 took 5.7
/// ms streamed and 3.3 on gemm, while 96 rows took 4.4 and 5.3 and 64 rows 3.5 and 3.7 (8
/// prompts of 15 tokens are 120 rows).
pub fn limit() -> usize {
    let m = measured();
    match (holds(m.few), m.many.map(holds)) {
        (true, Some(true)) => MAX_ROWS,
        (true, _) => MAX_ROWS / 2,
        (false, _) => 0,
    }
}

/// How much slower than gemm the streamed kernel may measure and still be chosen.
const MARGIN: f64 = 1.1;

/// (this kernel's ms, gemm's ms) on an `m` × 512 × 2048 product.
fn measure(m: usize) -> (f64, f64) {
    let (k, n) = (512, 2048);
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
    tracing::debug!("{m}-row products: this kernel {ours:.3} ms, gemm {gemm:.3} ms");
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
        // AVX2 has 16 vector registers of 8 lanes; AVX-512 and NEON have 32.
        if S::F32_LANES == 8 || (S::F32_LANES == 4 && cfg!(target_arch = "x86_64")) {
            self.tiles::<S, VECS_NARROW>(simd);
        } else {
            self.tiles::<S, VECS_WIDE>(simd);
        }
    }
}

impl Block<'_> {
    /// Every row against every column of the block, in register tiles of `V` vectors.
    #[inline(always)]
    fn tiles<S: Simd, const V: usize>(&mut self, simd: S) {
        let width = V * S::F32_LANES;
        let m = self.x.len() / self.k;
        let mut col = 0;
        while col + width <= BLOCK {
            let mut g = 0;
            while g < m {
                let rows = (m - g).min(ROWS);
                match rows {
                    6 => self.tile::<S, 6, V>(simd, g, col),
                    5 => self.tile::<S, 5, V>(simd, g, col),
                    4 => self.tile::<S, 4, V>(simd, g, col),
                    3 => self.tile::<S, 3, V>(simd, g, col),
                    2 => self.tile::<S, 2, V>(simd, g, col),
                    _ => self.tile::<S, 1, V>(simd, g, col),
                }
                g += rows;
            }
            col += width;
        }
    }

    /// Rows `g .. g + R` against the `V` vectors of columns from `col` (within the block),
    /// accumulators in registers.
    // Indexed loops over the constants R and V, which the compiler unrolls into registers.
    #[allow(clippy::needless_range_loop)]
    #[inline(always)]
    fn tile<S: Simd, const R: usize, const V: usize>(&mut self, simd: S, g: usize, col: usize) {
        let lanes = S::F32_LANES;
        let (k, n) = (self.k, self.n);
        let init: [S::f32s; V] = std::array::from_fn(|v| match self.bias {
            Some(b) => simd.partial_load_f32s(&b[col + v * lanes..][..lanes]),
            None => simd.splat_f32s(0.0),
        });
        let mut acc = [init; R];
        let xs: [&[f32]; R] = std::array::from_fn(|r| &self.x[(g + r) * k..][..k]);
        let first = self.start + col;
        for t in 0..k {
            if t + AHEAD < k {
                for line in (0..V * lanes).step_by(16) {
                    prefetch(self.w.as_ptr().wrapping_add((t + AHEAD) * n + first + line));
                }
            }
            let row = &self.w[t * n + first..][..V * lanes];
            let (wv, _) = S::as_simd_f32s(row);
            for r in 0..R {
                let xv = simd.splat_f32s(xs[r][t]);
                for v in 0..V {
                    acc[r][v] = simd.mul_add_e_f32s(wv[v], xv, acc[r][v]);
                }
            }
        }
        for (r, vecs) in acc.iter().enumerate() {
            let out = &mut self.out[(g + r) * BLOCK + col..][..V * lanes];
            let (ov, _) = S::as_mut_simd_f32s(out);
            ov.copy_from_slice(vecs);
        }
    }
}

/// How many weight rows ahead a tile asks for its next cache lines. The rows lie `n` floats
/// apart (2-8 KB), so each is on its own page every other step or more often, and the hardware
/// prefetchers, which follow strides within a page, do not fetch them in time.
const AHEAD: usize = 16;

/// Asks the CPU to bring the cache line at `p` into L1 (a hint; a no-op off x86-64).
#[inline(always)]
fn prefetch(p: *const f32) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch never faults and reads nothing the program sees, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
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
        let m = measured();
        let (ours, gemm) = m.few;
        assert!(ours > 0.0 && gemm > 0.0, "both were timed: {ours} {gemm}");
        assert_eq!(serves(30, 512), ours <= MARGIN * gemm);
        // 128 rows are timed only where the kernel holds at 32.
        assert_eq!(m.many.is_some(), ours <= MARGIN * gemm);
        let many = m.many.is_some_and(|(o, g)| {
            assert!(o > ours && g > 0.0, "{m:?}");
            o <= MARGIN * g
        });
        assert_eq!(serves(MAX_ROWS, 512), many);
        assert_eq!(serves(MAX_ROWS / 2, 512), serves(30, 512));
    }
}
