//! Products of a few rows by a weight kept in panels (`panels`), as a prompt's 30 text tokens
//! meet every projection: each panel streamed once, unpacked, the bias added in the same pass.
//! Whether it beats gemm per panel on this CPU, and up to how many rows, is measured once per
//! process (`chosen`, `limit`).
//!
//! gemm packs the weight before every product; with 30 rows each packed value is used 30 times,
//! so packing is a large share of the work, and gemm ran those shapes at 79-108 GFLOP/s where it
//! reaches 172-186 on 197 or 616 rows (AMD EPYC 25/17, 2 threads). Since the weights are kept in
//! panels, gemm reads each panel in place, and the two measure close at 32 rows.
//!
//! On AVX2 the register tile is 6 rows × 2 vectors (it was 6 × 4, whose 24 accumulators do not
//! fit 16 registers), and each tile asks for its weight rows `AHEAD` steps early.

use std::sync::OnceLock;
use std::time::Instant;

use pulp::{Arch, Simd, WithSimd};
use rayon::prelude::*;

/// At most this many rows take this path.
pub const MAX_ROWS: usize = 128;
/// Output columns per parallel task: one panel (`panels::WIDTH`). Every tile width (2 or 4
/// vectors of 1, 4, 8 or 16 lanes) divides it, so a task is whole tiles.
const BLOCK: usize = super::panels::WIDTH;
/// Rows per register tile.
const ROWS: usize = 6;
/// SIMD vectors of output columns per register tile where the ISA has 32 vector registers
/// (AVX-512, NEON): 6 × 4 accumulators fit beside the weight vectors.
const VECS_WIDE: usize = 4;
/// The same with 16 registers (AVX2, SSE): 6 × 2 accumulators, two weight vectors and the
/// broadcast row value fit; 6 × 4 would spill accumulators to the stack on every step.
const VECS_NARROW: usize = 2;

/// Whether `rows` rows should take this path: few (up to `limit`), and this kernel chosen on this
/// CPU.
pub(super) fn serves(rows: usize) -> bool {
    rows > 0 && rows <= limit()
}

/// `x` (m × k, row-major) times the weight in panels (`transpose::panelled` of the n × k weight),
/// plus `bias` (n) → m × n row-major: one task per panel, each panel read as one sequential stream.
pub(super) fn product(
    x: &[f32],
    panels: &[f32],
    bias: Option<&[f32]>,
    m: usize,
    k: usize,
) -> Vec<f32> {
    let n = panels.len() / k.max(1);
    let blocks: Vec<Vec<f32>> = (0..n / BLOCK)
        .into_par_iter()
        .map(|b| {
            let mut out = vec![0f32; m * BLOCK];
            Arch::new().dispatch(Block {
                x,
                w: &panels[b * k * BLOCK..][..k * BLOCK],
                bias: bias.map(|v| &v[b * BLOCK..][..BLOCK]),
                out: &mut out,
                k,
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
/// per panel measured clearly faster (the measurement reuses one weight, which stays in cache).
pub fn chosen() -> bool {
    holds(measured().few)
}

/// The most rows this kernel takes in this process: none unless `chosen`; `MAX_ROWS` where it
/// also holds against gemm at that many rows, else half of it. Where gemm's packing of the input
/// is shared by enough output columns it wins: on the AMD EPYC 25/1, weights from memory, gemm per
/// panel took 1.7-2.6 ms at 64 × 512 × 2048 where this kernel took 2.1-3.5 (8 prompts of 15
/// tokens are 120 rows).
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

/// (this kernel's ms, gemm's ms) on an `m` × 512 × 2048 product, both on packed panels
/// (`panels::product` for gemm).
fn measure(m: usize) -> (f64, f64) {
    let (k, n) = (512, 2048);
    let x: Vec<f32> = (0..m * k).map(|i| ((i % 17) as f32 - 8.0) * 0.01).collect();
    let w: Vec<f32> = (0..n * k).map(|i| ((i % 13) as f32 - 6.0) * 0.01).collect();
    let Some(w) = crate::transpose::panelled(&w, n, k) else {
        return (f64::INFINITY, 0.0);
    };
    let best = |f: &dyn Fn() -> Vec<f32>| {
        (0..6)
            .map(|_| {
                let t = Instant::now();
                std::hint::black_box(f());
                t.elapsed().as_secs_f64() * 1e3
            })
            .skip(1)
            .fold(f64::INFINITY, f64::min)
    };
    let ours = best(&|| product(&x, &w, None, m, k));
    let gemm = best(&|| super::panels::product(&x, &w, None, m, k));
    tracing::debug!("{m}-row products: this kernel {ours:.3} ms, gemm {gemm:.3} ms");
    (ours, gemm)
}

/// One task: every row of `x` against one panel's `BLOCK` weight columns.
struct Block<'a> {
    x: &'a [f32],
    /// k × BLOCK, row-major.
    w: &'a [f32],
    bias: Option<&'a [f32]>,
    /// m × BLOCK.
    out: &'a mut [f32],
    k: usize,
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
        let (k, n) = (self.k, BLOCK);
        let init: [S::f32s; V] = std::array::from_fn(|v| match self.bias {
            Some(b) => simd.partial_load_f32s(&b[col + v * lanes..][..lanes]),
            None => simd.splat_f32s(0.0),
        });
        let mut acc = [init; R];
        let xs: [&[f32]; R] = std::array::from_fn(|r| &self.x[(g + r) * k..][..k]);
        let first = col;
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

/// How many weight rows ahead a tile asks for its next cache lines. A tile reads one line of each
/// panel row, 512 bytes apart, and the hardware prefetchers do not always fetch them in time.
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

    #[test]
    fn equals_the_plain_product_on_every_row_count() {
        for case in [
            (1, 3, 128),
            (5, 77, 256),
            (6, 64, 128),
            (30, 512, 384),
            (64, 40, 128),
        ] {
            let worst = super::super::panels::worst_against_plain(product, case);
            assert!(worst < 1e-5, "{case:?}: {worst}");
        }
    }

    #[test]
    fn takes_only_what_it_tiles() {
        assert!(!serves(0));
        assert!(!serves(MAX_ROWS + 1));
        let m = measured();
        let (ours, gemm) = m.few;
        assert!(ours > 0.0 && gemm > 0.0, "both were timed: {ours} {gemm}");
        assert_eq!(serves(30), ours <= MARGIN * gemm);
        // 128 rows are timed only where the kernel holds at 32.
        assert_eq!(m.many.is_some(), ours <= MARGIN * gemm);
        let many = m.many.is_some_and(|(o, g)| {
            assert!(o > ours && g > 0.0, "{m:?}");
            o <= MARGIN * g
        });
        assert_eq!(serves(MAX_ROWS), many);
        assert_eq!(serves(MAX_ROWS / 2), serves(30));
    }
}
