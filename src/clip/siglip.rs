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
use candle_transformers::models::siglip as ct;

use super::config::{Activation, ClipConfig, TextConfig, VisionConfig};
use super::layers::{activate, Dense, Encoder, EncoderSizes, Norm};
use crate::error::ModelError;

/// A SigLIP `config.json`: candle-transformers' reading, the text head's width and the sizes
/// in the form the rest of clipscope reads (`ClipConfig`).
#[derive(Debug, Clone)]
pub struct SiglipConfig {
    pub model: ct::Config,
    /// The text head's output width (`text_config.projection_size`, default the text width).
    pub projection: usize,
    /// The same sizes as a `ClipConfig` (context, grid, widths) for the engine and the app.
    pub sizes: ClipConfig,
}

/// Whether a `config.json` text describes a SigLIP model (`"model_type": "siglip"`).
pub fn is_siglip(config_json: &str) -> bool {
    model_type(config_json).as_deref() == Some("siglip")
}

/// The top-level `model_type` of a `config.json`, when it has one.
pub fn model_type(config_json: &str) -> Option<String> {
    serde_json::from_str::<serde_json::Value>(config_json)
        .ok()?
        .get("model_type")?
        .as_str()
        .map(str::to_string)
}

fn activation(a: candle_nn::Activation) -> std::result::Result<Activation, ModelError> {
    match a {
        candle_nn::Activation::GeluPytorchTanh | candle_nn::Activation::NewGelu => {
            Ok(Activation::GeluTanh)
        }
        candle_nn::Activation::Gelu => Ok(Activation::Gelu),
        other => Err(ModelError::Config(format!(
            "SigLIP hidden_act {other:?} is not supported (gelu_pytorch_tanh, gelu_new, gelu)"
        ))),
    }
}

impl SiglipConfig {
    /// Parses a SigLIP `config.json`.
    pub fn from_json(json: &str) -> std::result::Result<Self, ModelError> {
        let bad = |m: String| ModelError::Config(format!("SigLIP config.json: {m}"));
        let invalid = |e| ModelError::Json {
            what: "SigLIP config.json is not valid".to_string(),
            source: e,
        };
        let mut raw: serde_json::Value = serde_json::from_str(json).map_err(invalid)?;
        // transformers 5 writes unset ids as null; candle-transformers' defaults stand for them.
        for tower in ["text_config", "vision_config"] {
            if let Some(t) = raw
                .get_mut(tower)
                .and_then(serde_json::Value::as_object_mut)
            {
                t.retain(|_, v| !v.is_null());
            }
        }
        let model: ct::Config = serde_json::from_value(raw.clone()).map_err(invalid)?;
        let text_raw = raw.get("text_config");
        let projection = text_raw
            .and_then(|t| t.get("projection_size"))
            .and_then(serde_json::Value::as_u64)
            .map_or(model.text_config.hidden_size, |p| p as usize);
        if raw
            .get("vision_config")
            .and_then(|v| v.get("vision_use_head"))
            .and_then(serde_json::Value::as_bool)
            == Some(false)
        {
            return Err(bad(
                "a vision tower without its pooling head has no image embedding".into(),
            ));
        }
        let (v, t) = (&model.vision_config, &model.text_config);
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
            text: TextConfig {
                vocab_size: t.vocab_size,
                hidden_size: t.hidden_size,
                intermediate_size: t.intermediate_size,
                num_hidden_layers: t.num_hidden_layers,
                num_attention_heads: t.num_attention_heads,
                max_position_embeddings: t.max_position_embeddings,
                layer_norm_eps: t.layer_norm_eps,
                hidden_act: activation(t.hidden_act)?,
                bos_token_id: t.bos_token_id,
                eos_token_id: t.eos_token_id,
            },
            vision: VisionConfig {
                hidden_size: v.hidden_size,
                intermediate_size: v.intermediate_size,
                num_hidden_layers: v.num_hidden_layers,
                num_attention_heads: v.num_attention_heads,
                num_channels: v.num_channels,
                image_size: v.image_size,
                patch_size: v.patch_size,
                layer_norm_eps: v.layer_norm_eps,
                hidden_act: activation(v.hidden_act)?,
            },
            projection_dim: projection,
            logit_scale_init_value: 0.0,
        };
        Ok(Self {
            model,
            projection,
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
        let sizes = EncoderSizes {
            dim: h,
            mlp: c.intermediate_size,
            layers: c.num_hidden_layers,
            heads: c.num_attention_heads,
            eps: c.layer_norm_eps,
            act: c.hidden_act,
        };
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
        let (b, c, _, _) = pixels.dims4()?;
        let (p, g) = (self.patch, self.grid);
        // A stride-p convolution with a p×p kernel is a matmul over non-overlapping patches.
        let patches = pixels
            .reshape((b, c, g, p, g, p))?
            .permute((0, 2, 4, 1, 3, 5))?
            .reshape((b * g * g, c * p * p))?;
        let x = self
            .patch_embedding
            .forward(&patches)?
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
        let sizes = EncoderSizes {
            dim: h,
            mlp: c.intermediate_size,
            layers: c.num_hidden_layers,
            heads: c.num_attention_heads,
            eps: c.layer_norm_eps,
            act: c.hidden_act,
        };
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
