//! The transpose of a 2-D f32 weight tensor, done once per layer at load (`crate::transpose`).
//!
//! candle's `t().contiguous()` walks the source with a stride, one element at a time on one
//! thread; for ViT-B/16's 85 M linear weights that was most of a model's load time (`perf`:
//! `copy_strided_src_` 39 % of a load-and-score run).

use candle_core::{DType, Result, Storage, Tensor};
use rayon::prelude::*;

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
        crate::transpose::transposed(src, rows, cols)
    };
    Tensor::from_vec(out, (cols, rows), x.device())
}

/// Below this many values the row-by-row join runs on one thread.
const PARALLEL_JOIN: usize = 1 << 18;

/// Contiguous (rows, c_i) f32 tensors side by side, part i times `factors[i]`, as one contiguous
/// (rows, Σ c_i) tensor: `Tensor::cat(parts, 1)` and a broadcast multiply in one pass over fresh
/// memory (the two took two passes and an intermediate the size of the result). Other dtypes
/// and layouts go through candle.
pub(crate) fn joined_scaled(parts: &[Tensor], factors: &[f32]) -> Result<Tensor> {
    let plain = parts
        .iter()
        .all(|p| p.dtype() == DType::F32 && p.is_contiguous() && p.rank() == 2);
    let rows = parts.first().map(|p| p.dim(0)).transpose()?.unwrap_or(0);
    if !plain || parts.len() != factors.len() || parts.iter().any(|p| p.dims()[0] != rows) {
        let scaled = parts
            .iter()
            .zip(factors)
            .map(|(p, &f)| p.affine(f64::from(f), 0.0))
            .collect::<Result<Vec<_>>>()?;
        return Tensor::cat(&scaled, 1);
    }
    let guards: Vec<_> = parts.iter().map(|p| p.storage_and_layout()).collect();
    let mut slices = Vec::with_capacity(parts.len());
    for (storage, layout) in &guards {
        let Storage::Cpu(cpu) = &**storage else {
            return Err(candle_core::Error::Msg(
                "joined_scaled: not a CPU tensor".into(),
            ));
        };
        let len = layout.shape().elem_count();
        let start = layout.start_offset();
        slices.push(&cpu.as_slice::<f32>()?[start..start + len]);
    }
    let widths: Vec<usize> = parts.iter().map(|p| p.dims()[1]).collect();
    let width: usize = widths.iter().sum();
    let n = rows * width;
    let mut out: Vec<f32> = crate::alloc::f32_capacity(n);
    let fill = |(r, row): (usize, &mut [std::mem::MaybeUninit<f32>])| {
        let mut at = 0;
        for ((src, &w), &f) in slices.iter().zip(&widths).zip(factors) {
            for (dst, &v) in row[at..at + w].iter_mut().zip(&src[r * w..(r + 1) * w]) {
                dst.write(v * f);
            }
            at += w;
        }
    };
    if width > 0 {
        let chunks = &mut out.spare_capacity_mut()[..n];
        if n >= PARALLEL_JOIN {
            chunks.par_chunks_mut(width).enumerate().for_each(fill);
        } else {
            chunks.chunks_mut(width).enumerate().for_each(fill);
        }
    }
    // SAFETY: every output row's `width` values were written, part by part.
    unsafe { out.set_len(n) };
    drop(guards);
    Tensor::from_vec(out, (rows, width), parts[0].device())
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
    fn joined_scaled_equals_cat_of_scaled_parts() {
        // Large enough for the threads, and small; a part that is a view with an offset.
        for rows in [3, 700] {
            let a = Tensor::randn(0f32, 1.0, (rows, 512), &Device::Cpu).unwrap();
            let b = Tensor::randn(0f32, 1.0, (rows, 7), &Device::Cpu).unwrap();
            let wide = Tensor::randn(0f32, 1.0, (rows * 2, 300), &Device::Cpu).unwrap();
            let c = wide.narrow(0, rows, rows).unwrap();
            let parts = [a, b, c];
            let ours = joined_scaled(&parts, &[0.125, 1.0, -2.0]).unwrap();
            let theirs = Tensor::cat(
                &[
                    (&parts[0] * 0.125).unwrap(),
                    parts[1].clone(),
                    (&parts[2] * -2.0).unwrap(),
                ],
                1,
            )
            .unwrap();
            assert_eq!(
                ours.to_vec2::<f32>().unwrap(),
                theirs.to_vec2::<f32>().unwrap(),
                "{rows} rows"
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
