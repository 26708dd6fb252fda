//! One-pass kernels with hand-written gradients for training on the CPU: layer norm, softmax
//! over the last dimension, QuickGELU and bias addition.
//!
//! Composed from candle ops, each of these is 5-10 passes over the activations forwards and as
//! many again backwards, each with a fresh allocation; on the default model's towers that was
//! most of a training step. Each op here is one parallel pass forwards and one backwards, and
//! its gradient is checked against the composed form in the tests below.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// Rows per parallel task at least (rows are short: 50-512 values).
const MIN_ROWS: usize = 64;
const CHUNK: usize = 1 << 14;

/// The contiguous f32 data of an operand, or an error naming the op.
fn data<'a>(op: &str, s: &'a CpuStorage, l: &Layout) -> Result<&'a [f32]> {
    let CpuStorage::F32(d) = s else {
        candle_core::bail!("{op}: f32 only");
    };
    let Some((a, b)) = l.contiguous_offsets() else {
        candle_core::bail!("{op}: contiguous input only");
    };
    Ok(&d[a..b])
}

fn last_dim(op: &str, l: &Layout) -> Result<usize> {
    match l.dims().last() {
        Some(&n) if n > 0 => Ok(n),
        _ => candle_core::bail!("{op}: empty last dimension"),
    }
}

/// Softmax over the last dimension.
struct Softmax;

impl CustomOp1 for Softmax {
    fn name(&self) -> &'static str {
        "train-softmax"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = data(self.name(), s, l)?;
        let n = last_dim(self.name(), l)?;
        let mut out = vec![0f32; x.len()];
        out.par_chunks_mut(n)
            .zip(x.par_chunks(n))
            .with_min_len(MIN_ROWS)
            .for_each(|(o, x)| {
                let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let mut sum = 0.0;
                for (o, &v) in o.iter_mut().zip(x) {
                    *o = (v - max).exp();
                    sum += *o;
                }
                let inv = 1.0 / sum;
                o.iter_mut().for_each(|v| *v *= inv);
            });
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }

    fn bwd(&self, _arg: &Tensor, res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(
            res.apply_op2_no_bwd(&grad.contiguous()?, &SoftmaxGrad)?,
        ))
    }
}

/// dx = y ⊙ (g − Σ g⊙y) per row, from the softmax's output y and the gradient g.
struct SoftmaxGrad;

impl CustomOp2 for SoftmaxGrad {
    fn name(&self) -> &'static str {
        "train-softmax-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (y, g) = (data(self.name(), s1, l1)?, data(self.name(), s2, l2)?);
        let n = last_dim(self.name(), l1)?;
        let mut out = vec![0f32; y.len()];
        out.par_chunks_mut(n)
            .zip(y.par_chunks(n).zip(g.par_chunks(n)))
            .with_min_len(MIN_ROWS)
            .for_each(|(o, (y, g))| {
                let dot: f32 = y.iter().zip(g).map(|(a, b)| a * b).sum();
                for ((o, &y), &g) in o.iter_mut().zip(y).zip(g) {
                    *o = y * (g - dot);
                }
            });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

/// QuickGELU, x·σ(1.702·x).
struct QuickGelu;

impl CustomOp1 for QuickGelu {
    fn name(&self) -> &'static str {
        "train-quick-gelu"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = data(self.name(), s, l)?;
        let mut out = vec![0f32; x.len()];
        out.par_chunks_mut(CHUNK)
            .zip(x.par_chunks(CHUNK))
            .for_each(|(o, x)| {
                for (o, &x) in o.iter_mut().zip(x) {
                    *o = x / (1.0 + (-1.702 * x).exp());
                }
            });
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(
            arg.apply_op2_no_bwd(&grad.contiguous()?, &QuickGeluGrad)?,
        ))
    }
}

/// dx = g · (σ + 1.702·x·σ·(1 − σ)), σ = σ(1.702·x).
struct QuickGeluGrad;

impl CustomOp2 for QuickGeluGrad {
    fn name(&self) -> &'static str {
        "train-quick-gelu-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, g) = (data(self.name(), s1, l1)?, data(self.name(), s2, l2)?);
        let mut out = vec![0f32; x.len()];
        out.par_chunks_mut(CHUNK)
            .zip(x.par_chunks(CHUNK).zip(g.par_chunks(CHUNK)))
            .for_each(|(o, (x, g))| {
                for ((o, &x), &g) in o.iter_mut().zip(x).zip(g) {
                    let s = 1.0 / (1.0 + (-1.702 * x).exp());
                    *o = g * (s + 1.702 * x * s * (1.0 - s));
                }
            });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

/// Layer norm over the last dimension with weight and bias.
struct LayerNorm {
    eps: f32,
}

/// Per row of `x`: its mean and 1/σ.
fn moments(x: &[f32], eps: f32) -> (f32, f32) {
    let n = x.len() as f32;
    let mean = x.iter().sum::<f32>() / n;
    let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
    (mean, 1.0 / (var + eps).sqrt())
}

impl CustomOp3 for LayerNorm {
    fn name(&self) -> &'static str {
        "train-layer-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = data(self.name(), s1, l1)?;
        let (w, b) = (data(self.name(), s2, l2)?, data(self.name(), s3, l3)?);
        let n = last_dim(self.name(), l1)?;
        if w.len() != n || b.len() != n {
            candle_core::bail!(
                "{}: weight and bias must match the last dimension",
                self.name()
            );
        }
        let mut out = vec![0f32; x.len()];
        out.par_chunks_mut(n)
            .zip(x.par_chunks(n))
            .with_min_len(MIN_ROWS)
            .for_each(|(o, x)| {
                let (mean, inv) = moments(x, self.eps);
                for (((o, &x), &w), &b) in o.iter_mut().zip(x).zip(w).zip(b) {
                    *o = (x - mean) * inv * w + b;
                }
            });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let n = x.dim(candle_core::D::Minus1)?;
        let grad = grad.contiguous()?;
        // One pass gives each row's dx and g ⊙ x̂ side by side: (rows, 2n).
        let both = x.apply_op3_no_bwd(w, &grad, &LayerNormGrad { eps: self.eps })?;
        let rows = x.elem_count() / n;
        let both = both.reshape((rows, 2 * n))?;
        let dx = both.narrow(1, 0, n)?.reshape(x.shape())?;
        let dw = column_sums(&both)?.narrow(0, n, n)?;
        let db = column_sums(&grad)?;
        Ok((Some(dx), Some(dw), Some(db)))
    }
}

/// Per row: dx = (1/σ)·(ĝ − mean(ĝ) − x̂·mean(ĝ ⊙ x̂)) with ĝ = g ⊙ w, beside g ⊙ x̂.
struct LayerNormGrad {
    eps: f32,
}

impl CustomOp3 for LayerNormGrad {
    fn name(&self) -> &'static str {
        "train-layer-norm-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = data(self.name(), s1, l1)?;
        let (w, g) = (data(self.name(), s2, l2)?, data(self.name(), s3, l3)?);
        let n = last_dim(self.name(), l1)?;
        let mut out = vec![0f32; 2 * x.len()];
        out.par_chunks_mut(2 * n)
            .zip(x.par_chunks(n).zip(g.par_chunks(n)))
            .with_min_len(MIN_ROWS)
            .for_each(|(o, (x, g))| {
                let (mean, inv) = moments(x, self.eps);
                let (dx, gx) = o.split_at_mut(n);
                let (mut sum_g, mut sum_gx) = (0f32, 0f32);
                for i in 0..n {
                    let xh = (x[i] - mean) * inv;
                    let gh = g[i] * w[i];
                    sum_g += gh;
                    sum_gx += gh * xh;
                    gx[i] = g[i] * xh;
                }
                let (mg, mgx) = (sum_g / n as f32, sum_gx / n as f32);
                for i in 0..n {
                    let xh = (x[i] - mean) * inv;
                    dx[i] = inv * (g[i] * w[i] - mg - xh * mgx);
                }
            });
        let mut dims = l1.dims().to_vec();
        if let Some(last) = dims.last_mut() {
            *last *= 2;
        }
        Ok((CpuStorage::F32(out), Shape::from(dims)))
    }
}

/// Sums over all leading dimensions, one value per position of the last: each thread adds up
/// whole rows of its share (candle's sum over dimension 0 walks the data with a stride).
struct ColumnSums;

impl CustomOp1 for ColumnSums {
    fn name(&self) -> &'static str {
        "train-column-sums"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = data(self.name(), s, l)?;
        let n = last_dim(self.name(), l)?;
        let rows = x.len() / n;
        let share = rows.div_ceil(rayon::current_num_threads().max(1)).max(1);
        let out = x
            .par_chunks(share * n)
            .map(|part| {
                let mut acc = vec![0f32; n];
                for row in part.chunks(n) {
                    acc.iter_mut().zip(row).for_each(|(a, v)| *a += v);
                }
                acc
            })
            .reduce(
                || vec![0f32; n],
                |mut a, b| {
                    a.iter_mut().zip(&b).for_each(|(a, b)| *a += b);
                    a
                },
            );
        Ok((CpuStorage::F32(out), Shape::from(n)))
    }
}

fn column_sums(xs: &Tensor) -> Result<Tensor> {
    xs.contiguous()?.apply_op1_no_bwd(&ColumnSums)
}

/// x + b, the bias broadcast over the rows of the last dimension.
struct AddBias;

impl CustomOp2 for AddBias {
    fn name(&self) -> &'static str {
        "train-add-bias"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, b) = (data(self.name(), s1, l1)?, data(self.name(), s2, l2)?);
        let n = last_dim(self.name(), l1)?;
        if b.len() != n {
            candle_core::bail!("{}: the bias must match the last dimension", self.name());
        }
        let mut out = vec![0f32; x.len()];
        out.par_chunks_mut(n)
            .zip(x.par_chunks(n))
            .with_min_len(MIN_ROWS)
            .for_each(|(o, x)| {
                for ((o, &x), &b) in o.iter_mut().zip(x).zip(b) {
                    *o = x + b;
                }
            });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        _x: &Tensor,
        _b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        Ok((Some(grad.clone()), Some(column_sums(grad)?)))
    }
}

/// x + b over the last dimension, differentiable in both (f32 on the CPU).
pub fn add_bias(xs: &Tensor, bias: &Tensor) -> Result<Tensor> {
    xs.contiguous()?.apply_op2(&bias.contiguous()?, AddBias)
}

/// Softmax over the last dimension, differentiable (f32 on the CPU).
pub fn softmax_last_dim(xs: &Tensor) -> Result<Tensor> {
    xs.contiguous()?.apply_op1(Softmax)
}

/// QuickGELU, differentiable (f32 on the CPU).
pub fn quick_gelu(xs: &Tensor) -> Result<Tensor> {
    xs.contiguous()?.apply_op1(QuickGelu)
}

/// Layer norm over the last dimension, differentiable in all three (f32 on the CPU).
pub fn layer_norm(xs: &Tensor, weight: &Tensor, bias: &Tensor, eps: f32) -> Result<Tensor> {
    xs.contiguous()?.apply_op3(weight, bias, LayerNorm { eps })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }

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
        for t in &ts {
            let (x, y) = (ga.get(t).unwrap(), gb.get(t).unwrap());
            assert!(
                max_diff(x, y) < 1e-4,
                "gradients differ: {}",
                max_diff(x, y)
            );
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
