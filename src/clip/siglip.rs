//! SigLIP (Hugging Face `SiglipModel`, transformers' `modeling_siglip.py`) with dense outputs:
//! candle-transformers' `siglip` configuration, and towers built from the layers CLIP uses where
//! candle-transformers keeps what a dense view needs private or runs slowly.
//!
//! What candle-transformers 0.11 serves and what it does not:
//! - `siglip::Config` reads `config.json` with transformers' defaults: used as it is.
//! - `VisionModel` without its head gives every patch after `post_layernorm`, correctly (the
//!   tests match ours against it), but its linear layers broadcast and transpose their weights
//!   on every call: SigLIP base encoded at 1.7 × PyTorch with it. `SiglipVision` is the same
//!   trunk on our encoder layers (fused q/k/v, weights kept transposed), as CLIP's.
//! - The attention-pooling head (`MultiheadAttentionPoolingHead`) is private and only returns
//!   the pooled row, so the dense patch tokens (below) cannot go through it: our `PoolingHead`
//!   loads the same weights.
//! - `TextTransformer` returns only the last position through its head, and its encoder is
//!   private: per-token text states need our `SiglipText` (the weight names are the same;
//!   SigLIP's text attention is bidirectional, with no mask).
//!
//! Dense image tokens (no CLS row): each patch goes through the head's value and output
//! projections, layer norm and MLP as if it attended only to itself (one key, so the softmax is
//! 1): `y = out_proj(v_proj(x))`, `token = y + mlp(layernorm(y))` (the MaskCLIP trick applied to
//! the pooling head). The pooled embedding is the head's output with its learnt probe as query.

use candle_core::{IndexOp, Module, Result, Tensor, D};
use candle_nn::{Embedding, VarBuilder};

use super::config::{Activation, ClipConfig, TextConfig, VisionConfig};
use super::layers::{activate, Encoder, EncoderSizes, Norm};
use super::linear::Dense;
use super::patches;
use crate::error::ModelError;

/// A SigLIP `config.json`: the text head's width, the pad id and the sizes in the form the rest
/// of clipscope reads (`ClipConfig`).
#[derive(Debug, Clone)]
pub struct SiglipConfig {
    /// The text head's output width (`text_config.projection_size`, default the text width).
    pub projection: usize,
    /// `text_config.pad_token_id`, for tokenizers that name no pad token.
    pub pad_token_id: u32,
    /// The same sizes as a `ClipConfig` (context, grid, widths) for the engine and the app.
    pub sizes: ClipConfig,
}

/// The top-level `model_type` of a `config.json`, when it has one.
pub fn model_type(config_json: &str) -> Option<String> {
    serde_json::from_str::<serde_json::Value>(config_json)
        .ok()?
        .get("model_type")?
        .as_str()
        .map(str::to_string)
}

// Raw serde mirrors, every field optional: `SiglipTextConfig` / `SiglipVisionConfig`'s defaults
// (transformers' configuration_siglip.py) fill what a file leaves out or writes as null.
#[derive(serde::Deserialize, Default)]
struct RawText {
    vocab_size: Option<usize>,
    hidden_size: Option<usize>,
    intermediate_size: Option<usize>,
    num_hidden_layers: Option<usize>,
    num_attention_heads: Option<usize>,
    max_position_embeddings: Option<usize>,
    hidden_act: Option<String>,
    layer_norm_eps: Option<f64>,
    pad_token_id: Option<u32>,
    projection_size: Option<usize>,
}

#[derive(serde::Deserialize, Default)]
struct RawVision {
    hidden_size: Option<usize>,
    intermediate_size: Option<usize>,
    num_hidden_layers: Option<usize>,
    num_attention_heads: Option<usize>,
    num_channels: Option<usize>,
    image_size: Option<usize>,
    patch_size: Option<usize>,
    hidden_act: Option<String>,
    layer_norm_eps: Option<f64>,
    vision_use_head: Option<bool>,
}

#[derive(serde::Deserialize)]
struct RawConfig {
    text_config: Option<RawText>,
    vision_config: Option<RawVision>,
}

fn activation(name: Option<&str>) -> std::result::Result<Activation, ModelError> {
    match name.unwrap_or("gelu_pytorch_tanh") {
        "gelu_pytorch_tanh" | "gelu_new" | "gelu_fast" => Ok(Activation::GeluTanh),
        "gelu" => Ok(Activation::Gelu),
        other => Err(ModelError::Config(format!(
            "SigLIP hidden_act {other:?} is not supported (gelu_pytorch_tanh, gelu_new, gelu)"
        ))),
    }
}

impl SiglipConfig {
    /// Parses a SigLIP `config.json`.
    pub fn from_json(json: &str) -> std::result::Result<Self, ModelError> {
        let bad = |m: String| ModelError::Config(format!("SigLIP config.json: {m}"));
        let raw: RawConfig = serde_json::from_str(json).map_err(|e| ModelError::Json {
            what: "SigLIP config.json is not valid".to_string(),
            source: e,
        })?;
        let (rt, rv) = (
            raw.text_config.unwrap_or_default(),
            raw.vision_config.unwrap_or_default(),
        );
        if rv.vision_use_head == Some(false) {
            return Err(bad(
                "a vision tower without its pooling head has no image embedding".into(),
            ));
        }
        let t = TextConfig {
            vocab_size: rt.vocab_size.unwrap_or(32000),
            hidden_size: rt.hidden_size.unwrap_or(768),
            intermediate_size: rt.intermediate_size.unwrap_or(3072),
            num_hidden_layers: rt.num_hidden_layers.unwrap_or(12),
            num_attention_heads: rt.num_attention_heads.unwrap_or(12),
            max_position_embeddings: rt.max_position_embeddings.unwrap_or(64),
            layer_norm_eps: rt.layer_norm_eps.unwrap_or(1e-6),
            hidden_act: activation(rt.hidden_act.as_deref())?,
            bos_token_id: 49406,
            eos_token_id: 49407,
        };
        let v = VisionConfig {
            hidden_size: rv.hidden_size.unwrap_or(768),
            intermediate_size: rv.intermediate_size.unwrap_or(3072),
            num_hidden_layers: rv.num_hidden_layers.unwrap_or(12),
            num_attention_heads: rv.num_attention_heads.unwrap_or(12),
            num_channels: rv.num_channels.unwrap_or(3),
            image_size: rv.image_size.unwrap_or(224),
            patch_size: rv.patch_size.unwrap_or(16),
            layer_norm_eps: rv.layer_norm_eps.unwrap_or(1e-6),
            hidden_act: activation(rv.hidden_act.as_deref())?,
        };
        let projection = rt.projection_size.unwrap_or(t.hidden_size);
        let pad_token_id = rt.pad_token_id.unwrap_or(1);
        let (v, t) = (&v, &t);
        if projection != v.hidden_size {
            return Err(bad(format!(
                "the text head gives {projection} values but the image embedding has {}",
                v.hidden_size
            )));
        }
        for (what, width, heads) in [
            ("vision", v.hidden_size, v.num_attention_heads),
            ("text", t.hidden_size, t.num_attention_heads),
        ] {
            if heads == 0 || width % heads != 0 {
                return Err(bad(format!(
                    "{what} width {width} is not a multiple of {heads} heads"
                )));
            }
        }
        if v.patch_size == 0 || v.image_size % v.patch_size != 0 || v.image_size == 0 {
            return Err(bad(format!(
                "image_size {} is not a multiple of patch_size {}",
                v.image_size, v.patch_size
            )));
        }
        if t.max_position_embeddings < 2 {
            return Err(bad("the text context must hold at least 2 tokens".into()));
        }
        let sizes = ClipConfig {
            text: t.clone(),
            vision: v.clone(),
            projection_dim: projection,
            logit_scale_init_value: 0.0,
        };
        Ok(Self {
            projection,
            pad_token_id,
            sizes,
        })
    }
}

/// `SiglipVisionEmbeddings` + encoder + `post_layernorm`: patches (a convolution with a bias)
/// plus positions, no CLS token.
#[derive(Debug, Clone)]
struct SiglipVision {
    /// The patch convolution as a matrix from 3·p·p pixels to hidden, with its bias.
    patch_embedding: Dense,
    /// (grid², hidden).
    position_embedding: Tensor,
    encoder: Encoder,
    post_norm: Norm,
    patch: usize,
    grid: usize,
    hidden: usize,
}

impl SiglipVision {
    fn new(c: &VisionConfig, vb: VarBuilder) -> Result<Self> {
        let (h, p, grid) = (c.hidden_size, c.patch_size, c.grid_side());
        let emb = vb.pp("embeddings");
        let weight = emb
            .get((h, c.num_channels, p, p), "patch_embedding.weight")?
            .reshape((h, c.num_channels * p * p))?;
        let bias = emb.get(h, "patch_embedding.bias")?;
        let sizes = EncoderSizes::vision(c);
        Ok(Self {
            patch_embedding: Dense::new(weight, Some(bias), false)?,
            position_embedding: emb.get((grid * grid, h), "position_embedding.weight")?,
            encoder: Encoder::new(&sizes, false, vb.pp("encoder"))?,
            post_norm: Norm::new(h, c.layer_norm_eps, false, vb.pp("post_layernorm"))?,
            patch: p,
            grid,
            hidden: h,
        })
    }

    /// (B, 3, S, S) at the model's size → (B, grid², hidden) after `post_layernorm`.
    fn forward(&self, pixels: &Tensor) -> Result<Tensor> {
        let (b, g) = (pixels.dim(0)?, self.grid);
        // A stride-p convolution with a p×p kernel is a matmul over non-overlapping patches.
        let x = self
            .patch_embedding
            .forward(&patches(pixels, self.patch)?)?
            .reshape((b, g * g, self.hidden))?
            .broadcast_add(&self.position_embedding.unsqueeze(0)?)?;
        self.post_norm.forward(&self.encoder.forward(&x, None)?)
    }
}

/// `SiglipMultiheadAttentionPoolingHead`: a learnt probe attends over the patches, then a
/// residual MLP (torch's `nn.MultiheadAttention` weights: packed `in_proj`, `out_proj`).
#[derive(Debug, Clone)]
struct PoolingHead {
    probe: Tensor,
    q: Dense,
    k: Dense,
    v: Dense,
    out: Dense,
    norm: Norm,
    fc1: Dense,
    fc2: Dense,
    heads: usize,
    act: Activation,
}

impl PoolingHead {
    fn new(c: &VisionConfig, vb: VarBuilder) -> Result<Self> {
        let h = c.hidden_size;
        let att = vb.pp("attention");
        let w = att.get((3 * h, h), "in_proj_weight")?;
        let b = att.get(3 * h, "in_proj_bias")?;
        let part =
            |i: usize| Dense::new(w.narrow(0, i * h, h)?, Some(b.narrow(0, i * h, h)?), false);
        let mlp = vb.pp("mlp");
        Ok(Self {
            probe: vb.get((1, 1, h), "probe")?,
            q: part(0)?,
            k: part(1)?,
            v: part(2)?,
            out: Dense::load(h, h, true, false, att.pp("out_proj"))?,
            norm: Norm::new(h, c.layer_norm_eps, false, vb.pp("layernorm"))?,
            fc1: Dense::load(h, c.intermediate_size, true, false, mlp.pp("fc1"))?,
            fc2: Dense::load(c.intermediate_size, h, true, false, mlp.pp("fc2"))?,
            heads: c.num_attention_heads,
            act: c.hidden_act,
        })
    }

    /// `y + mlp(layernorm(y))`.
    fn residual_mlp(&self, y: &Tensor) -> Result<Tensor> {
        let hidden = activate(
            self.act,
            &self.fc1.forward(&self.norm.forward(y)?)?,
            true,
            false,
        )?;
        y + self.fc2.forward(&hidden)?
    }

    /// (B, P, H) patches → (B, H): the probe's attention over them, then the residual MLP.
    fn pooled(&self, xs: &Tensor) -> Result<Tensor> {
        let (b, p, h) = xs.dims3()?;
        let hd = h / self.heads;
        let split = |x: Tensor, t: usize| -> Result<Tensor> {
            x.reshape((b, t, self.heads, hd))?
                .transpose(1, 2)?
                .contiguous()
        };
        let probe = self.probe.repeat((b, 1, 1))?;
        let q = split((self.q.forward(&probe)? / (hd as f64).sqrt())?, 1)?;
        let k = split(self.k.forward(xs)?, p)?;
        let v = split(self.v.forward(xs)?, p)?;
        let weights = candle_nn::ops::softmax_last_dim(&q.matmul(&k.t()?.contiguous()?)?)?;
        let attended = weights.matmul(&v)?.transpose(1, 2)?.reshape((b, 1, h))?;
        self.residual_mlp(&self.out.forward(&attended)?)?.i((.., 0))
    }

    /// (B, P, H) patches → (B, P, H): each patch as if it were the only key.
    fn dense(&self, xs: &Tensor) -> Result<Tensor> {
        self.residual_mlp(&self.out.forward(&self.v.forward(xs)?)?)
    }
}

/// `SiglipTextTransformer` up to its head, applied to every position.
#[derive(Debug, Clone)]
struct SiglipText {
    token_embedding: Embedding,
    position_embedding: Tensor,
    encoder: Encoder,
    final_norm: Norm,
    head: Dense,
}

impl SiglipText {
    fn new(c: &TextConfig, projection: usize, vb: VarBuilder) -> Result<Self> {
        let emb = vb.pp("embeddings");
        let h = c.hidden_size;
        let sizes = EncoderSizes::text(c);
        Ok(Self {
            token_embedding: Embedding::new(
                emb.get((c.vocab_size, h), "token_embedding.weight")?,
                h,
            ),
            position_embedding: emb
                .get((c.max_position_embeddings, h), "position_embedding.weight")?,
            encoder: Encoder::new(&sizes, false, vb.pp("encoder"))?,
            final_norm: Norm::new(h, c.layer_norm_eps, false, vb.pp("final_layer_norm"))?,
            head: Dense::load(h, projection, true, false, vb.pp("head"))?,
        })
    }

    /// (B, T) ids → (B, T, projection): every position after `final_layer_norm` and the head.
    fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        let t = ids.dim(1)?;
        let x = self
            .token_embedding
            .forward(ids)?
            .broadcast_add(&self.position_embedding.narrow(0, 0, t)?.unsqueeze(0)?)?;
        let hidden = self.final_norm.forward(&self.encoder.forward(&x, None)?)?;
        self.head.forward(&hidden)
    }
}

/// A SigLIP model whose outputs keep every token.
#[derive(Debug, Clone)]
pub struct Siglip {
    vision: SiglipVision,
    head: PoolingHead,
    text: SiglipText,
    logit_scale: Tensor,
    logit_bias: Tensor,
    config: SiglipConfig,
}

/// One image batch through the vision side.
#[derive(Debug, Clone)]
pub struct SiglipImage {
    /// (B, P, D) dense patch tokens, row-major over the grid.
    pub dense: Tensor,
    /// (B, D) pooled image embeddings.
    pub pooled: Tensor,
}

impl Siglip {
    /// Builds the model from weights named as in transformers' `SiglipModel`.
    pub fn new(config: &SiglipConfig, vb: VarBuilder) -> Result<Self> {
        let v = vb.pp("vision_model");
        Ok(Self {
            vision: SiglipVision::new(&config.sizes.vision, v.clone())?,
            head: PoolingHead::new(&config.sizes.vision, v.pp("head"))?,
            text: SiglipText::new(&config.sizes.text, config.projection, vb.pp("text_model"))?,
            logit_scale: vb.get(1, "logit_scale")?,
            logit_bias: vb.get(1, "logit_bias")?,
            config: config.clone(),
        })
    }

    pub fn config(&self) -> &SiglipConfig {
        &self.config
    }

    /// (B, P, H) patch states after `post_layernorm`.
    pub fn vision_hidden(&self, pixels: &Tensor) -> Result<Tensor> {
        self.vision.forward(pixels)
    }

    /// (B, 3, S, S) pixels at the model's own size → dense tokens and pooled embeddings.
    pub fn image(&self, pixels: &Tensor) -> Result<SiglipImage> {
        let s = pixels.dim(D::Minus1)?;
        let native = self.config.sizes.vision.image_size;
        if s != native || pixels.dim(2)? != native {
            candle_core::bail!("SigLIP runs at its own {native} px only, not {s}");
        }
        let hidden = self.vision_hidden(pixels)?;
        Ok(SiglipImage {
            dense: self.head.dense(&hidden)?,
            pooled: self.head.pooled(&hidden)?,
        })
    }

    /// (B, T) ids, padded to the model's context → (B, T, D): every position through the final
    /// layer norm and the text head. The pooled embedding is the last position's.
    pub fn text_tokens(&self, ids: &Tensor) -> Result<Tensor> {
        self.text.forward(ids)
    }

    /// The raw `logit_scale` (the logits use its exponential) and `logit_bias`.
    pub fn logit_scale_and_bias(&self) -> Result<(f32, f32)> {
        let read = |t: &Tensor| -> Result<f32> {
            t.to_dtype(candle_core::DType::F32)?
                .flatten_all()?
                .i(0)?
                .to_scalar::<f32>()
        };
        Ok((read(&self.logit_scale)?, read(&self.logit_bias)?))
    }
}
