//! One-pass kernels with hand-written gradients for training on the CPU: layer norm, softmax
//! over the last dimension, QuickGELU, bias addition, and a linear map of a constant input.
//!
//! Composed from candle ops, each of these is 5-10 passes over the activations forwards and as
//! many again backwards, each with a fresh allocation; on the default model's towers that was
//! most of a training step. Each op here is one parallel pass forwards and one backwards, and
//! its gradient is checked against the composed form in the tests below.

use candle_core::{CpuStorage, Layout, Result};

mod constant_input;
mod norm;
mod pointwise;

pub use constant_input::linear_of_constant;
pub use norm::{add_bias, layer_norm};
pub use pointwise::{quick_gelu, softmax_last_dim};

/// Rows per parallel task at least (rows are short: 50-512 values).
pub(super) const MIN_ROWS: usize = 64;
pub(super) const CHUNK: usize = 1 << 14;

/// The contiguous f32 data of an operand, or an error naming the op.
pub(super) fn data<'a>(op: &str, s: &'a CpuStorage, l: &Layout) -> Result<&'a [f32]> {
    let CpuStorage::F32(d) = s else {
        candle_core::bail!("{op}: f32 only");
    };
    let Some((a, b)) = l.contiguous_offsets() else {
        candle_core::bail!("{op}: contiguous input only");
    };
    Ok(&d[a..b])
}

pub(super) fn last_dim(op: &str, l: &Layout) -> Result<usize> {
    match l.dims().last() {
        Some(&n) if n > 0 => Ok(n),
        _ => candle_core::bail!("{op}: empty last dimension"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clip::max_diff;
    use candle_core::{Device, Tensor, Var};

    /// Values and gradients (of a weighted sum, so every output matters differently) of the
    /// fused op and the composed one agree.
    fn agree(
        fused: impl Fn(&[Tensor]) -> Result<Tensor>,
        composed: impl Fn(&[Tensor]) -> Result<Tensor>,
        shapes: &[&[usize]],
    ) {
        let dev = Device::Cpu;
        let vars: Vec<Var> = shapes
            .iter()
            .map(|s| Var::randn(0f32, 1.0, *s, &dev).unwrap())
            .collect();
        let ts: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
        let a = fused(&ts).unwrap();
        let b = composed(&ts).unwrap();
        assert!(max_diff(&a, &b) < 1e-5, "values differ");
        let weights = Tensor::randn(0f32, 1.0, a.shape(), &dev).unwrap();
        let ga = (&a * &weights)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let gb = (&b * &weights)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        // Relative to the gradient's size: a bias gradient sums hundreds of rows, and the two
        // forms add them in different orders.
        for t in &ts {
            let (x, y) = (ga.get(t).unwrap(), gb.get(t).unwrap());
            let size = y.abs().unwrap().flatten_all().unwrap().max(0).unwrap();
            let size = size.to_scalar::<f32>().unwrap().max(1.0);
            let d = max_diff(x, y) / size;
            assert!(d < 1e-5, "gradients differ by {d} of their size");
        }
    }

    #[test]
    fn softmax_matches_the_composed_form() {
        agree(
            |t| softmax_last_dim(&t[0]),
            |t| candle_nn::ops::softmax(&t[0], candle_core::D::Minus1),
            &[&[3, 5, 50]],
        );
    }

    #[test]
    fn quick_gelu_matches_the_composed_form() {
        agree(
            |t| quick_gelu(&t[0]),
            |t| &t[0] * candle_nn::ops::sigmoid(&(&t[0] * 1.702)?)?,
            &[&[4, 7, 33]],
        );
    }

    #[test]
    fn layer_norm_matches_the_composed_form() {
        agree(
            |t| layer_norm(&t[0], &t[1], &t[2], 1e-5),
            |t| candle_nn::ops::layer_norm_slow(&t[0], &t[1], &t[2], 1e-5),
            &[&[2, 9, 48], &[48], &[48]],
        );
    }

    #[test]
    fn add_bias_matches_the_broadcast_form() {
        agree(
            |t| add_bias(&t[0], &t[1]),
            |t| t[0].broadcast_add(&t[1]),
            &[&[300, 7, 24], &[24]],
        );
    }

    #[test]
    fn strided_and_other_dtypes_are_handled_or_refused() {
        let x = Tensor::randn(0f32, 1.0, (6, 4), &Device::Cpu).unwrap();
        // A transposed view is made contiguous first.
        let t = x.t().unwrap();
        let a = softmax_last_dim(&t).unwrap();
        let b = candle_nn::ops::softmax(&t, candle_core::D::Minus1).unwrap();
        assert!(max_diff(&a, &b) < 1e-6);
        assert!(quick_gelu(&x.to_dtype(candle_core::DType::F64).unwrap()).is_err());
    }
}
