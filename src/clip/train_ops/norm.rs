//! Layer norm and bias addition, with their weight gradients summed over rows in one pass.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::{data, last_dim, MIN_ROWS};

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

/// Layer norm over the last dimension, differentiable in all three (f32 on the CPU).
pub fn layer_norm(xs: &Tensor, weight: &Tensor, bias: &Tensor, eps: f32) -> Result<Tensor> {
    xs.contiguous()?.apply_op3(weight, bias, LayerNorm { eps })
}
