//! Linear layers: `Dense` (kept transposed at inference) and the fused query/key/value
//! projection, each with a training path.

use candle_core::{DType, IndexOp, Result, Tensor};
use candle_nn::VarBuilder;

use super::{panels, train_ops, transpose};

/// Whether a weight is one that `Dense` lays out at inference (a `Linear` weight of CLIP or
/// SigLIP, q/k/v included), so a file reader can hand it out already laid out: in panels, or
/// transposed where its outputs make no whole panels.
pub fn kept_transposed(name: &str) -> bool {
    let mut parts = name.rsplit('.');
    parts.next() == Some("weight")
        && parts.next().is_some_and(|m| {
            matches!(
                m,
                "q_proj"
                    | "k_proj"
                    | "v_proj"
                    | "out_proj"
                    | "fc1"
                    | "fc2"
                    | "visual_projection"
                    | "text_projection"
            )
        })
}

/// A linear layer applied as one 2-D matmul over all leading dimensions.
///
/// At inference the weight is kept transposed, (in, out), and where its width allows as packed
/// panels (`panels`): gemm then reads it in place, where the stored (out, in) layout made it
/// repack the whole matrix on every call, and each panel is one sequential read. In training the
/// weight stays the variable itself (a transposed copy would not follow optimiser updates).
/// candle-nn's `Linear` is not used because it broadcasts the weight over the batch, which makes
/// its weight gradient a per-sample tensor summed afterwards.
#[derive(Debug, Clone)]
pub(super) struct Dense {
    /// (out, in) in training; (in, out) contiguous, or (out / WIDTH, in, WIDTH) panels, at
    /// inference (`layout`).
    pub(super) weight: Tensor,
    pub(super) bias: Option<Tensor>,
    layout: Layout,
}

/// How a `Dense` weight is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// (out, in), the variable itself.
    Train,
    /// (in, out), contiguous.
    Plain,
    /// `transpose::panelled` of the (out, in) weight: out / WIDTH panels of (in, WIDTH).
    Panels { k: usize, n: usize },
}

impl Dense {
    /// `weight` is (out, in) as stored, or already in panels as a file reader hands it out
    /// (`kept_transposed`: (out / WIDTH, in, WIDTH)). At inference (`train` false) it is laid
    /// out here, once: as panels in one pass where the width allows.
    pub(super) fn new(weight: Tensor, bias: Option<Tensor>, train: bool) -> Result<Self> {
        if let [p, k, w] = *weight.dims() {
            if train || w != panels::WIDTH || weight.dtype() != DType::F32 {
                return Err(candle_core::Error::Msg(format!(
                    "a weight in panels ({p}, {k}, {w}) is for f32 inference only"
                )));
            }
            return Ok(Self {
                weight: weight.contiguous()?,
                bias,
                layout: Layout::Panels { k, n: p * w },
            });
        }
        if train {
            return Ok(Self {
                weight,
                bias,
                layout: Layout::Train,
            });
        }
        let (n, k) = weight.dims2()?;
        if weight.dtype() == DType::F32 && weight.is_contiguous() {
            if let Some(p) = with_f32s(&weight, |w| crate::transpose::panelled(w, n, k))? {
                return Ok(Self {
                    weight: Tensor::from_vec(
                        p,
                        (n / panels::WIDTH, k, panels::WIDTH),
                        weight.device(),
                    )?,
                    bias,
                    layout: Layout::Panels { k, n },
                });
            }
        }
        Ok(Self::plain_inference(transpose::transposed(&weight)?, bias))
    }

    /// The inference weight in panels, (out / WIDTH, in, WIDTH), if it is kept so.
    pub(super) fn panels(&self) -> Option<&Tensor> {
        matches!(self.layout, Layout::Panels { .. }).then_some(&self.weight)
    }

    /// The inference weight as (in, out), contiguous, if it is kept so.
    pub(super) fn plain(&self) -> Option<&Tensor> {
        (self.layout == Layout::Plain).then_some(&self.weight)
    }

    /// An inference layer from the (in, out) weight, contiguous, kept as it is.
    fn plain_inference(weight_t: Tensor, bias: Option<Tensor>) -> Self {
        Self {
            weight: weight_t,
            bias,
            layout: Layout::Plain,
        }
    }

    pub(super) fn load(
        in_dim: usize,
        out_dim: usize,
        bias: bool,
        train: bool,
        vb: VarBuilder,
    ) -> Result<Self> {
        let weight = vb.get_with_hints(
            (out_dim, in_dim),
            "weight",
            candle_nn::init::DEFAULT_KAIMING_NORMAL,
        )?;
        let bias = if bias {
            let bound = 1. / (in_dim as f64).sqrt();
            let init = candle_nn::Init::Uniform {
                lo: -bound,
                up: bound,
            };
            Some(vb.get_with_hints(out_dim, "bias", init)?)
        } else {
            None
        };
        Self::new(weight, bias, train)
    }

    /// As `forward` for a 2-D input that needs no gradient (pixels): in training only the weight
    /// gets one (`train_ops::linear_of_constant`).
    pub(super) fn forward_constant(&self, xs: &Tensor) -> Result<Tensor> {
        if self.layout != Layout::Train || self.bias.is_some() {
            return self.forward(xs);
        }
        train_ops::linear_of_constant(xs, &self.weight)
    }

    pub(super) fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let dims = xs.dims().to_vec();
        let (last, lead) = dims
            .split_last()
            .ok_or_else(|| candle_core::Error::Msg("empty shape".into()))?;
        let rows: usize = lead.iter().product();
        let x = xs.reshape((rows, *last))?;
        let (out, out_dim) = match self.layout {
            Layout::Panels { k, n } => (self.panel_product(&x, rows, k, n)?, n),
            Layout::Plain => {
                let out = x.matmul(&self.weight)?;
                let out = match &self.bias {
                    Some(b) => out.broadcast_add(b)?,
                    None => out,
                };
                (out, self.weight.dim(1)?)
            }
            Layout::Train => {
                let out = x.matmul(&self.weight.t()?)?;
                let out = match &self.bias {
                    Some(b) => train_ops::add_bias(&out, b)?,
                    None => out,
                };
                (out, self.weight.dim(0)?)
            }
        };
        let mut shape = lead.to_vec();
        shape.push(out_dim);
        out.reshape(shape)
    }

    /// `x` (rows, k) by the packed weight, plus the bias: the streamed kernel for few rows
    /// (`skinny`), gemm per panel for more.
    fn panel_product(&self, x: &Tensor, rows: usize, k: usize, n: usize) -> Result<Tensor> {
        if x.dtype() != DType::F32 || x.dim(1)? != k {
            return Err(candle_core::Error::Msg(format!(
                "a packed {k} × {n} weight takes (rows, {k}) f32 inputs, not {:?} {:?}",
                x.dims(),
                x.dtype()
            )));
        }
        let x = x.contiguous()?;
        let bias = self.bias.as_ref().map(Tensor::to_vec1::<f32>).transpose()?;
        let out = with_f32s(&x, |xv| {
            with_f32s(&self.weight, |w| match super::skinny::serves(rows) {
                true => super::skinny::product(xv, w, bias.as_deref(), rows, k),
                false => panels::product(xv, w, bias.as_deref(), rows, k),
            })
        })??;
        Tensor::from_vec(out, (rows, n), x.device())
    }
}

/// `f` on the values of a contiguous f32 CPU tensor.
fn with_f32s<T>(t: &Tensor, f: impl FnOnce(&[f32]) -> T) -> Result<T> {
    let (storage, layout) = t.storage_and_layout();
    let candle_core::Storage::Cpu(cpu) = &*storage else {
        return Err(candle_core::Error::Msg(
            "packed weights live on the CPU".into(),
        ));
    };
    let start = layout.start_offset();
    Ok(f(&cpu.as_slice::<f32>()?[start..][..t.elem_count()]))
}

/// The query, key and value projections: one fused (in, 3·dim) matmul at inference, with the
/// attention scale folded into the query part; three variables in training.
#[derive(Debug, Clone)]
pub(super) enum Qkv {
    Fused(Dense),
    Separate { q: Dense, k: Dense, v: Dense },
}

impl Qkv {
    /// From (3·dim, dim) packed weights and (3·dim) biases, q then k then v.
    pub(super) fn from_packed(
        weight: &Tensor,
        bias: &Tensor,
        scale: f64,
        train: bool,
    ) -> Result<Self> {
        let dim = weight.dim(1)?;
        if train {
            let part = |i: usize| {
                Dense::new(
                    weight.narrow(0, i * dim, dim)?,
                    Some(bias.narrow(0, i * dim, dim)?),
                    true,
                )
            };
            return Ok(Self::Separate {
                q: part(0)?,
                k: part(1)?,
                v: part(2)?,
            });
        }
        // The query's rows scaled, then laid out for inference like any weight.
        let factors = Self::factors(dim, scale, weight)?;
        Ok(Self::Fused(Dense::new(
            weight.broadcast_mul(&factors.unsqueeze(1)?)?,
            Some(bias.mul(&factors)?),
            false,
        )?))
    }

    /// From the (in, dim) transposes of the q, k and v weights, contiguous, and their biases:
    /// joined and scaled in one pass (`transpose::joined_scaled`).
    fn from_transposed_parts(
        weights_t: &[Tensor; 3],
        biases: &[Tensor],
        scale: f64,
    ) -> Result<Self> {
        let dim = weights_t[0].dim(1)?;
        let factors = Self::factors(dim, scale, &weights_t[0])?;
        Ok(Self::Fused(Dense::plain_inference(
            transpose::joined_scaled(weights_t, &[scale as f32, 1.0, 1.0])?,
            Some(Tensor::cat(biases, 0)?.mul(&factors)?),
        )))
    }

    /// From the q, k and v inference layers: their panels joined, the query's scaled (one pass),
    /// where all three are kept in panels; else their (in, dim) weights
    /// (`from_transposed_parts`).
    pub(super) fn from_inference_parts(parts: [Dense; 3], scale: f64) -> Result<Self> {
        let biases = parts
            .iter()
            .map(|p| p.bias.clone())
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| candle_core::Error::Msg("missing bias".into()))?;
        let factors = [scale as f32, 1.0, 1.0];
        if let [Some(q), Some(k), Some(v)] = parts.each_ref().map(Dense::panels) {
            let (p, rows, w) = q.dims3()?;
            let dim = p * w;
            // Each part as one row: side by side they are q's panels, then k's, then v's.
            let row = |t: &Tensor| t.reshape((1, p * rows * w));
            let joined = transpose::joined_scaled(&[row(q)?, row(k)?, row(v)?], &factors)?;
            let weight = joined.reshape((3 * p, rows, w))?;
            let bias = Tensor::cat(&biases, 0)?.mul(&Self::factors(dim, scale, &biases[0])?)?;
            return Ok(Self::Fused(Dense::new(weight, Some(bias), false)?));
        }
        let plain = parts.each_ref().map(|p| {
            p.plain()
                .cloned()
                .ok_or_else(|| candle_core::Error::Msg("mixed layouts".into()))
        });
        let [q, k, v] = plain;
        Self::from_transposed_parts(&[q?, k?, v?], &biases, scale)
    }

    /// The attention scale for the query's `dim` outputs, then 1 for the key's and value's.
    fn factors(dim: usize, scale: f64, like: &Tensor) -> Result<Tensor> {
        Tensor::cat(
            &[
                Tensor::full(scale as f32, dim, like.device())?,
                Tensor::ones(2 * dim, DType::F32, like.device())?,
            ],
            0,
        )?
        .to_dtype(like.dtype())
    }

    /// (B, T, dim) → q (scaled), k, v, each (B, heads, T, head_dim) and contiguous.
    pub(super) fn forward(
        &self,
        xs: &Tensor,
        heads: usize,
        scale: f64,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        let (b, t, dim) = xs.dims3()?;
        let hd = dim / heads;
        match self {
            Self::Fused(qkv) => {
                let all = qkv
                    .forward(xs)?
                    .reshape((b, t, 3, heads, hd))?
                    .permute((2, 0, 3, 1, 4))?
                    .contiguous()?;
                Ok((all.i(0)?, all.i(1)?, all.i(2)?))
            }
            Self::Separate { q, k, v } => {
                let split = |x: Tensor| -> Result<Tensor> {
                    x.reshape((b, t, heads, hd))?.transpose(1, 2)?.contiguous()
                };
                Ok((
                    split((q.forward(xs)? * scale)?)?,
                    split(k.forward(xs)?)?,
                    split(v.forward(xs)?)?,
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_linear_weights_are_picked_to_be_read_transposed() {
        for name in [
            "vision_model.encoder.layers.3.self_attn.q_proj.weight",
            "text_model.encoder.layers.0.mlp.fc2.weight",
            "visual_projection.weight",
            "head.mlp.fc1.weight",
        ] {
            assert!(kept_transposed(name), "{name}");
        }
        for name in [
            "vision_model.encoder.layers.3.self_attn.q_proj.bias",
            "vision_model.embeddings.patch_embedding.weight",
            "text_model.embeddings.token_embedding.weight",
            "vision_model.post_layernorm.weight",
            "head.attention.in_proj_weight",
            "fc1.weight.extra",
        ] {
            assert!(!kept_transposed(name), "{name}");
        }
    }
}
