//! A linear map of an input that needs no gradient (the pixels' patches), differentiable in its
//! weight alone.
//!
//! candle's matmul backward computes both operands' gradients, each into a zero-filled tensor
//! it then adds to: for the patch embedding that was a (patches, 3·p·p) gradient nobody reads,
//! as costly as the forward product.

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};

use super::data;

/// x · Wᵀ for a fixed x; the op's one operand is W (out, in).
struct ConstantInput {
    /// (rows, in), contiguous.
    x: Tensor,
}

impl CustomOp1 for ConstantInput {
    fn name(&self) -> &'static str {
        "train-linear-of-constant"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let Ok((out, inputs)) = l.shape().dims2() else {
            candle_core::bail!("{}: the weight must be (out, in)", self.name());
        };
        let weight = Tensor::from_slice(data(self.name(), s, l)?, (out, inputs), self.x.device())?;
        let y = self.x.matmul(&weight.t()?)?;
        let shape = y.shape().clone();
        Ok((CpuStorage::F32(y.flatten_all()?.to_vec1()?), shape))
    }

    fn bwd(&self, _weight: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(grad.t()?.matmul(&self.x)?))
    }
}

/// x · Wᵀ, (rows, in) × (out, in) → (rows, out), differentiable in `weight` only (f32 on the
/// CPU). `x` is treated as a constant: no gradient reaches it.
pub fn linear_of_constant(x: &Tensor, weight: &Tensor) -> Result<Tensor> {
    let x = x.detach().contiguous()?;
    weight.contiguous()?.apply_op1(ConstantInput { x })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clip::max_diff;
    use candle_core::{Device, Var};

    #[test]
    fn same_product_and_weight_gradient_as_a_matmul() {
        let dev = Device::Cpu;
        let x = Tensor::randn(0f32, 1.0, (37, 24), &dev).unwrap();
        let w = Var::randn(0f32, 1.0, (5, 24), &dev).unwrap();
        let mix = Tensor::randn(0f32, 1.0, (37, 5), &dev).unwrap();
        let a = linear_of_constant(&x, w.as_tensor()).unwrap();
        let b = x.matmul(&w.as_tensor().t().unwrap()).unwrap();
        assert!(max_diff(&a, &b) < 1e-5);
        let grad = |y: &Tensor| {
            let loss = (y * &mix).unwrap().sum_all().unwrap();
            loss.backward().unwrap().get(w.as_tensor()).unwrap().clone()
        };
        assert!(max_diff(&grad(&a), &grad(&b)) < 1e-4);
    }
}
