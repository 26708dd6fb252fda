//! QuickGELU, x·σ(1.702·x), as one parallel pass over contiguous f32 data (inference only).
//!
//! Composed from candle ops it takes three passes over the activations, and candle's sigmoid runs
//! on one thread; on the B/16 MLPs that was a visible part of each forward pass.

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// Elements per parallel task: large enough that scheduling costs nothing next to the math.
const CHUNK: usize = 1 << 14;

/// The forward kernel; the training op (`train_ops`) runs it too and adds the gradient.
pub(super) struct QuickGelu;

impl CustomOp1 for QuickGelu {
    fn name(&self) -> &'static str {
        "quick-gelu"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let CpuStorage::F32(data) = storage else {
            candle_core::bail!("quick-gelu: f32 only");
        };
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("quick-gelu: contiguous input only");
        };
        let src = &data[start..end];
        let mut out = vec![0f32; src.len()];
        out.par_chunks_mut(CHUNK)
            .zip(src.par_chunks(CHUNK))
            .for_each(|(o, s)| super::exp::quick_gelu(s, o));
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }
}

/// QuickGELU of a contiguous f32 tensor (no gradient: not for training).
pub fn quick_gelu(xs: &Tensor) -> Result<Tensor> {
    xs.apply_op1_no_bwd(&QuickGelu)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn matches_the_composed_form() {
        let xs = Tensor::randn(0f32, 3.0, (3, 40_000), &Device::Cpu).unwrap();
        let composed = (&xs * candle_nn::ops::sigmoid(&(&xs * 1.702).unwrap()).unwrap()).unwrap();
        let fused = quick_gelu(&xs).unwrap();
        let diff = (fused - composed)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap();
        assert!(diff.to_scalar::<f32>().unwrap() < 1e-5);
        assert!(
            quick_gelu(&xs.t().unwrap()).is_err(),
            "a strided view must be refused"
        );
    }
}
