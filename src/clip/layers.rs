//! The transformer layers both towers are made of: layer norm, dense, attention, the residual
//! block (`CLIPEncoderLayer`) and the encoder stack, each with a training path.

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::VarBuilder;
use rayon::prelude::*;

use super::config::Activation;
use super::linear::Dense;
use super::linear::Qkv;
use super::{quick_gelu, train_ops};

/// A layer norm that takes candle's fused kernel at inference and ours, which has a backward
/// pass, in training.
#[derive(Debug, Clone)]
pub(super) struct Norm {
    weight: Tensor,
    bias: Tensor,
    eps: f64,
    train: bool,
}

impl Norm {
    pub(super) fn new(size: usize, eps: f64, train: bool, vb: VarBuilder) -> Result<Self> {
        let weight = vb.get_with_hints(size, "weight", candle_nn::Init::Const(1.0))?;
        let bias = vb.get_with_hints(size, "bias", candle_nn::Init::Const(0.0))?;
        Ok(Self {
            weight,
            bias,
            eps,
            train,
        })
    }
}

impl Module for Norm {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        if self.train {
            train_ops::layer_norm(xs, &self.weight, &self.bias, self.eps as f32)
        } else if !xs.is_contiguous() {
            candle_nn::ops::layer_norm_slow(xs, &self.weight, &self.bias, self.eps as f32)
        } else {
            candle_nn::ops::layer_norm(xs, &self.weight, &self.bias, self.eps as f32)
        }
    }
}

/// The MLP activation; `fused` takes the one-pass QuickGELU kernel (inference, contiguous f32),
/// `train` the one with a backward pass.
pub(super) fn activate(act: Activation, xs: &Tensor, fused: bool, train: bool) -> Result<Tensor> {
    match act {
        Activation::QuickGelu if train => train_ops::quick_gelu(xs),
        Activation::QuickGelu if fused && xs.is_contiguous() && xs.dtype() == DType::F32 => {
            quick_gelu::quick_gelu(xs)
        }
        Activation::QuickGelu => xs * candle_nn::ops::sigmoid(&(xs * 1.702)?)?,
        Activation::Gelu => xs.gelu_erf(),
        Activation::GeluTanh => xs.gelu(),
    }
}

#[derive(Debug, Clone)]
struct Attention {
    qkv: Qkv,
    out: Dense,
    heads: usize,
    head_dim: usize,
    /// Whether this layer is trained (its projections are then the variables themselves).
    train: bool,
}

impl Attention {
    pub(super) fn new(dim: usize, heads: usize, train: bool, vb: VarBuilder) -> Result<Self> {
        let head_dim = dim / heads;
        let load = |name: &str, train: bool| Dense::load(dim, dim, true, train, vb.pp(name));
        let qkv = if train {
            Qkv::Separate {
                q: load("q_proj", true)?,
                k: load("k_proj", true)?,
                v: load("v_proj", true)?,
            }
        } else {
            // Each laid out for inference (in panels where the width allows), then joined once.
            let parts = [
                load("q_proj", false)?,
                load("k_proj", false)?,
                load("v_proj", false)?,
            ];
            Qkv::from_inference_parts(parts, scale(head_dim))?
        };
        Ok(Self {
            qkv,
            out: Dense::load(dim, dim, true, train, vb.pp("out_proj"))?,
            heads,
            head_dim,
            train,
        })
    }

    pub(super) fn forward(&self, xs: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        let (b, t, dim) = xs.dims3()?;
        let (q, k, v) = self.qkv.forward(xs, self.heads, scale(self.head_dim))?;
        let mut weights = q.matmul(&k.t()?)?;
        if let Some(mask) = mask {
            weights = weights.broadcast_add(mask)?;
        }
        // One pass with a vectorised exp (candle's runs libm's per value); its backward pass
        // is recorded only where something tracks gradients, so inference pays nothing for it.
        let weights = train_ops::softmax_last_dim(&weights)?;
        let attended = weights.matmul(&v)?.transpose(1, 2)?.reshape((b, t, dim))?;
        self.out.forward(&attended)
    }
}

fn scale(head_dim: usize) -> f64 {
    (head_dim as f64).powf(-0.5)
}

#[derive(Debug, Clone)]
pub(crate) struct EncoderLayer {
    attn: Attention,
    norm1: Norm,
    fc1: Dense,
    fc2: Dense,
    norm2: Norm,
    act: Activation,
}

impl EncoderLayer {
    /// A pre-norm residual attention block in OpenAI's layout (`ln_1`, `attn.in_proj_*` packed
    /// q/k/v, `attn.out_proj`, `ln_2`, `mlp.c_fc`, `mlp.c_proj`), QuickGELU, as SmartCLIP's mask
    /// network uses.
    pub(crate) fn openai(dim: usize, heads: usize, train: bool, vb: VarBuilder) -> Result<Self> {
        let init = candle_nn::init::DEFAULT_KAIMING_NORMAL;
        let packed_w = vb.get_with_hints((3 * dim, dim), "attn.in_proj_weight", init)?;
        let packed_b =
            vb.get_with_hints(3 * dim, "attn.in_proj_bias", candle_nn::Init::Const(0.0))?;
        let head_dim = dim / heads;
        Ok(Self {
            attn: Attention {
                qkv: Qkv::from_packed(&packed_w, &packed_b, scale(head_dim), train)?,
                out: Dense::load(dim, dim, true, train, vb.pp("attn.out_proj"))?,
                heads,
                head_dim,
                train,
            },
            norm1: Norm::new(dim, 1e-5, train, vb.pp("ln_1"))?,
            fc1: Dense::load(dim, 4 * dim, true, train, vb.pp("mlp.c_fc"))?,
            fc2: Dense::load(4 * dim, dim, true, train, vb.pp("mlp.c_proj"))?,
            norm2: Norm::new(dim, 1e-5, train, vb.pp("ln_2"))?,
            act: Activation::QuickGelu,
        })
    }

    /// Full (unmasked) attention over every position, then the MLP.
    pub(crate) fn forward_unmasked(&self, xs: &Tensor) -> Result<Tensor> {
        self.forward(xs, None)
    }

    pub(super) fn forward(&self, xs: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        let h = (xs + self.attn.forward(&self.norm1.forward(xs)?, mask)?)?;
        &h + self.mlp(&h)?
    }

    /// `fc2(act(fc1(LN2(h))))`: the feed-forward branch without its residual.
    pub(super) fn mlp(&self, h: &Tensor) -> Result<Tensor> {
        let m = activate(
            self.act,
            &self.fc1.forward(&self.norm2.forward(h)?)?,
            !self.attn.train,
            self.attn.train,
        )?;
        self.fc2.forward(&m)
    }

    /// q, k, v of `LN1(xs)`, each (B, heads, T, head_dim), q already times `scale()`.
    pub(super) fn qkv(&self, xs: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
        self.attn
            .qkv
            .forward(&self.norm1.forward(xs)?, self.attn.heads, self.scale())
    }

    /// The attention scale `head_dim^-0.5`.
    pub(super) fn scale(&self) -> f64 {
        scale(self.attn.head_dim)
    }

    /// Attention weights (B, heads, T, T) applied to `v`, heads merged, through `out_proj`.
    pub(super) fn attend(&self, weights: &Tensor, v: &Tensor) -> Result<Tensor> {
        self.value_path(&weights.matmul(v)?)
    }

    /// `out_proj` of per-head values (B, heads, T, head_dim), heads merged; on `v` itself, every
    /// token attending only to itself.
    pub(super) fn value_path(&self, v: &Tensor) -> Result<Tensor> {
        let (b, h, t, hd) = v.dims4()?;
        let merged = v.transpose(1, 2)?.reshape((b, t, h * hd))?;
        self.attn.out.forward(&merged)
    }
}

/// Sizes shared by the two encoders.
pub(super) struct EncoderSizes {
    pub(super) dim: usize,
    pub(super) mlp: usize,
    pub(super) layers: usize,
    pub(super) heads: usize,
    pub(super) eps: f64,
    pub(super) act: Activation,
}

#[derive(Debug, Clone)]
pub(super) struct Encoder {
    layers: Vec<EncoderLayer>,
}

impl Encoder {
    pub(super) fn new(s: &EncoderSizes, train: bool, vb: VarBuilder) -> Result<Self> {
        let vb = vb.pp("layers");
        // Layers are built in parallel: at inference each one transposes its weights.
        let layers = (0..s.layers)
            .into_par_iter()
            .map(|i| {
                let vb = vb.pp(i.to_string());
                Ok(EncoderLayer {
                    attn: Attention::new(s.dim, s.heads, train, vb.pp("self_attn"))?,
                    norm1: Norm::new(s.dim, s.eps, train, vb.pp("layer_norm1"))?,
                    fc1: Dense::load(s.dim, s.mlp, true, train, vb.pp("mlp.fc1"))?,
                    fc2: Dense::load(s.mlp, s.dim, true, train, vb.pp("mlp.fc2"))?,
                    norm2: Norm::new(s.dim, s.eps, train, vb.pp("layer_norm2"))?,
                    act: s.act,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { layers })
    }

    pub(super) fn forward(&self, xs: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        let mut xs = xs.clone();
        for layer in &self.layers {
            xs = layer.forward(&xs, mask)?;
        }
        Ok(xs)
    }

    pub(super) fn layers(&self) -> &[EncoderLayer] {
        &self.layers
    }
}
