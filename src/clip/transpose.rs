//! A cache-blocked, multi-threaded transpose of 2-D f32 weights, done once per layer at load.
//!
//! candle's `t().contiguous()` walks the source with a stride, one element at a time on one
//! thread; for ViT-B/16's 85 M linear weights that was most of a model's load time (`perf`:
//! `copy_strided_src_` 39 % of a load-and-score run). Here 32 × 32 tiles keep both sides in cache
//! and rayon splits the output rows.

use candle_core::{DType, Result, Storage, Tensor};
use rayon::prelude::*;

/// Tile side: 32 × 32 f32 is 4 KiB per side, well inside L1.
const TILE: usize = 32;

/// Below this many elements the plain strided copy is as fast and not worth a thread.
const SMALL: usize = 1 << 14;

/// `x` (rows, cols) as a contiguous (cols, rows) tensor with the same values as
/// `x.t()?.contiguous()?`.
pub(crate) fn transposed(x: &Tensor) -> Result<Tensor> {
    let (rows, cols) = x.dims2()?;
    if x.dtype() != DType::F32 || !x.is_contiguous() || rows * cols < SMALL {
        return x.t()?.contiguous();
    }
    let out = {
        let (storage, layout) = x.storage_and_layout();
        let Storage::Cpu(cpu) = &*storage else {
            return x.t()?.contiguous();
        };
        let start = layout.start_offset();
        let src = &cpu.as_slice::<f32>()?[start..start + rows * cols];
        transpose_slice(src, rows, cols)
    };
    Tensor::from_vec(out, (cols, rows), x.device())
}

/// Side of the blocks moved through registers: 8 × 8 f32 are 8 loads of 8 contiguous values.
const BLOCK: usize = 8;

/// `src` (rows × cols, row-major) → (cols × rows, row-major), written straight into fresh
/// memory (no zero-fill first: at B/16 that fill was a tenth of a load). Within each thread's
/// TILE output rows, 8 × 8 blocks are read row by row and written column by column (a third
/// faster than one element at a time down a column).
fn transpose_slice(src: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let n = rows * cols;
    let mut out: Vec<f32> = Vec::with_capacity(n);
    // Each chunk is TILE output rows (= TILE source columns), all source rows.
    out.spare_capacity_mut()[..n]
        .par_chunks_mut(TILE * rows)
        .enumerate()
        .for_each(|(tile, chunk)| {
            let c0 = tile * TILE;
            let width = chunk.len() / rows;
            let mut r = 0;
            while r + BLOCK <= rows {
                let mut c = 0;
                while c + BLOCK <= width {
                    let mut block = [[0f32; BLOCK]; BLOCK];
                    for (i, row) in block.iter_mut().enumerate() {
                        let s = (r + i) * cols + c0 + c;
                        row.copy_from_slice(&src[s..s + BLOCK]);
                    }
                    for j in 0..BLOCK {
                        let o = (c + j) * rows + r;
                        for (dst, row) in chunk[o..o + BLOCK].iter_mut().zip(&block) {
                            dst.write(row[j]);
                        }
                    }
                    c += BLOCK;
                }
                for c in c..width {
                    for i in r..r + BLOCK {
                        chunk[c * rows + i].write(src[i * cols + c0 + c]);
                    }
                }
                r += BLOCK;
            }
            for r in r..rows {
                for c in 0..width {
                    chunk[c * rows + r].write(src[r * cols + c0 + c]);
                }
            }
        });
    // SAFETY: the chunks tile 0..n (TILE output rows of `rows` each, the last shorter), and
    // every element of every chunk was written above: rows 0..r in 8-blocks (columns in
    // 8-blocks, then one at a time), rows r..rows one at a time, each over all `width` columns.
    unsafe { out.set_len(n) };
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn equals_candles_transpose_on_ragged_shapes() {
        for (r, c) in [(3, 5), (130, 257), (512, 768), (77, 1000), (1, 20000)] {
            let x = Tensor::randn(0f32, 1.0, (r, c), &Device::Cpu).unwrap();
            let ours = transposed(&x).unwrap();
            let theirs = x.t().unwrap().contiguous().unwrap();
            assert_eq!(ours.dims(), theirs.dims());
            assert_eq!(
                ours.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                theirs.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                "{r}×{c}"
            );
        }
    }

    #[test]
    fn a_view_with_an_offset_is_transposed_from_its_own_start() {
        let x = Tensor::arange(0f32, (200 * 300) as f32, &Device::Cpu)
            .unwrap()
            .reshape((200, 300))
            .unwrap();
        let view = x.narrow(0, 50, 100).unwrap();
        assert!(view.is_contiguous());
        let ours = transposed(&view).unwrap();
        let theirs = view.t().unwrap().contiguous().unwrap();
        assert_eq!(
            ours.to_vec2::<f32>().unwrap(),
            theirs.to_vec2::<f32>().unwrap()
        );
    }
}
