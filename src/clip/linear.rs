//! Linear layers: `Dense` (kept transposed at inference) and the fused query/key/value
//! projection, each with a training path.

use candle_core::{DType, IndexOp, Result, Tensor};
use candle_nn::VarBuilder;

use super::{train_ops, transpose};

/// Whether a weight is one that `Dense` keeps transposed at inference (a `Linear` weight of
/// CLIP or SigLIP, q/k/v included), so a file reader can hand it out already transposed.
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
/// At inference the weight is kept transposed, (in, out) and contiguous: gemm then reads it in
/// place, where the stored (out, in) layout made it repack the whole matrix on every call. In
/// training the weight stays the variable itself (a transposed copy would not follow optimiser
/// updates). candle-nn's `Linear` is not used because it broadcasts the weight over the batch,
/// which makes its weight gradient a per-sample tensor summed afterwards.
#[derive(Debug, Clone)]
pub(super) struct Dense {
    /// (out, in) in training, (in, out) contiguous at inference.
    pub(super) weight: Tensor,
    pub(super) bias: Option<Tensor>,
    transposed: bool,
}

impl Dense {
    /// `weight` is (out, in) as stored; at inference (`train` false) it is transposed once here.
    pub(super) fn new(weight: Tensor, bias: Option<Tensor>, train: bool) -> Result<Self> {
        if train {
            return Ok(Self {
                weight,
                bias,
                transposed: false,
            });
        }
        Ok(Self {
            weight: transpose::transposed(&weight)?,
            bias,
            transposed: true,
        })
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
        if self.transposed || self.bias.is_some() {
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
        if self.transposed {
            if let Some(out) = super::skinny::matmul(&x, &self.weight, self.bias.as_ref())? {
                let mut shape = lead.to_vec();
                shape.push(self.weight.dim(1)?);
                return out.reshape(shape);
            }
        }
        let (mut out, out_dim) = if self.transposed {
            (x.matmul(&self.weight)?, self.weight.dim(1)?)
        } else {
            (x.matmul(&self.weight.t()?)?, self.weight.dim(0)?)
        };
        if let Some(b) = &self.bias {
            out = if self.transposed {
                out.broadcast_add(b)?
            } else {
                train_ops::add_bias(&out, b)?
            };
        }
        let mut shape = lead.to_vec();
        shape.push(out_dim);
        out.reshape(shape)
    }
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
        Self::from_transposed(&transpose::transposed(weight)?, bias, scale)
    }

    /// From the (dim, 3·dim) transpose of the packed weights, contiguous, and the biases.
    pub(super) fn from_transposed(weight_t: &Tensor, bias: &Tensor, scale: f64) -> Result<Self> {
        let factors = Self::factors(weight_t.dim(0)?, scale, weight_t)?;
        Ok(Self::Fused(Dense {
            weight: weight_t.broadcast_mul(&factors.unsqueeze(0)?)?,
            bias: Some(bias.mul(&factors)?),
            transposed: true,
        }))
    }

    /// From the (in, dim) transposes of the q, k and v weights, contiguous, and their biases:
    /// joined and scaled in one pass (`transpose::joined_scaled`).
    pub(super) fn from_transposed_parts(
        weights_t: &[Tensor; 3],
        biases: &[Tensor],
        scale: f64,
    ) -> Result<Self> {
        let dim = weights_t[0].dim(1)?;
        let factors = Self::factors(dim, scale, &weights_t[0])?;
        Ok(Self::Fused(Dense {
            weight: transpose::joined_scaled(weights_t, &[scale as f32, 1.0, 1.0])?,
            bias: Some(Tensor::cat(biases, 0)?.mul(&factors)?),
            transposed: true,
        }))
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
