//! SmartCLIP: a mask network reads a caption's text tokens and keeps only the image-embedding
//! dimensions that carry the caption's concepts; the caption is matched on those alone.

use candle_core::{DType, Device, Module, Result, Tensor, D};
use candle_nn::{Linear, VarBuilder};
use serde::{Deserialize, Serialize};
use std::path::Path;

use crate::clip::{l2_normalize, EncoderLayer};
use crate::error::ModelError;

mod verdict;
pub use verdict::{encode_prompts, scores, SmartPrompts, SmartScore};

/// The mask network's settings: the `smartclip` object of a converted config.json, or
/// `smartclip.json` beside a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SmartConfig {
    /// Text width = the image-embedding dimensions masked.
    pub mask_width: usize,
    pub mask_heads: usize,
    #[serde(default = "one")]
    pub mask_layers: usize,
    /// The id text is padded with up to the full context (0 in Long-CLIP).
    pub text_pad_id: u32,
    #[serde(default = "hundred")]
    pub score_scale: f32,
    #[serde(default = "half")]
    pub mask_threshold: f32,
}

fn one() -> usize {
    1
}
fn hundred() -> f32 {
    100.0
}
fn half() -> f32 {
    0.5
}

/// Residual attention blocks over all text positions (no mask), then an attention pool:
/// `Linear(width → 1)` scores, softmax over positions, weighted sum → one logit per dimension.
pub struct MaskNet {
    blocks: Vec<EncoderLayer>,
    pool: Linear,
    pub config: SmartConfig,
}

impl MaskNet {
    /// Weights named as the release under `mask_net.`: `resblocks.N.*`, `attn_pool.attention`.
    pub fn new(config: SmartConfig, train: bool, vb: VarBuilder) -> Result<Self> {
        let w = config.mask_width;
        if config.mask_heads == 0 || w % config.mask_heads != 0 {
            candle_core::bail!(
                "mask width {w} does not split into {} heads",
                config.mask_heads
            );
        }
        let blocks = (0..config.mask_layers)
            .map(|i| {
                EncoderLayer::openai(w, config.mask_heads, train, vb.pp(format!("resblocks.{i}")))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            blocks,
            pool: candle_nn::linear(w, 1, vb.pp("attn_pool.attention"))?,
            config,
        })
    }

    /// (B, T, width) `ln_final` outputs of every position → (B, width) mask logits.
    pub fn forward(&self, hidden: &Tensor) -> Result<Tensor> {
        let mut x = hidden.clone();
        for b in &self.blocks {
            x = b.forward_unmasked(&x)?;
        }
        let (bsz, t, w) = x.dims3()?;
        let scores = self
            .pool
            .forward(&x.reshape((bsz * t, w))?)?
            .reshape((bsz, t, 1))?;
        let weights = candle_nn::ops::softmax(&scores, 1)?;
        x.broadcast_mul(&weights)?.sum(1)
    }
}

/// `sigmoid(logits) ≥ threshold` as 0/1, with the sigmoid's gradient (straight-through).
pub fn hard_mask(logits: &Tensor, threshold: f32) -> Result<Tensor> {
    let soft = candle_nn::ops::sigmoid(logits)?;
    let hard = soft.ge(f64::from(threshold))?.to_dtype(DType::F32)?;
    (soft.detach() * -1.0)?.add(&soft)?.add(&hard)
}

/// S[i, j] = cos(image_i ⊙ mask_j, text_j) for unnormalised image embeddings (I, E), masks
/// (J, E) and text embeddings (J, E): (I, J). The text embedding is not masked.
pub fn masked_cosines(images: &Tensor, masks: &Tensor, texts: &Tensor) -> Result<Tensor> {
    let masked = images.unsqueeze(1)?.broadcast_mul(&masks.unsqueeze(0)?)?; // (I, J, E)
    let masked = l2_normalize(&masked)?;
    let texts = l2_normalize(texts)?.unsqueeze(0)?;
    masked.broadcast_mul(&texts)?.sum(D::Minus1)
}

/// The mask network of a model folder: `smartclip.json` + `smartclip.safetensors` beside it, or
/// the `smartclip` section of a converted checkpoint's config.json with its weights.
pub fn load(
    dir: &Path,
    section: Option<serde_json::Value>,
) -> std::result::Result<Option<MaskNet>, ModelError> {
    let side = dir.join("smartclip.json");
    let (config, weights) = if side.is_file() {
        let text = std::fs::read_to_string(&side).map_err(|e| ModelError::Io {
            path: side.clone(),
            source: e,
        })?;
        let config = parse_config(&text, &side.display().to_string())?;
        (config, dir.join("smartclip.safetensors"))
    } else if let Some(v) = section {
        let config = parse_config(&v.to_string(), "config.json smartclip")?;
        (config, crate::io::source::weights_file(dir)?)
    } else {
        return Ok(None);
    };
    let vb = crate::io::weights::var_builder(&weights, DType::F32, &Device::Cpu)?;
    build(config, vb, &weights.display().to_string()).map(Some)
}

/// Parses mask settings; `what` names the source in the error.
pub fn parse_config(json: &str, what: &str) -> std::result::Result<SmartConfig, ModelError> {
    serde_json::from_str(json).map_err(|e| ModelError::Json {
        what: what.to_string(),
        source: e,
    })
}

/// An inference mask network from weights holding `mask_net.*`; `what` names them in errors.
pub fn build(
    config: SmartConfig,
    vb: VarBuilder,
    what: &str,
) -> std::result::Result<MaskNet, ModelError> {
    from_weights(config, vb.pp("mask_net")).map_err(|e| ModelError::WeightsRead {
        what: format!("{what}: mask_net"),
        source: e,
    })
}

/// Builds an inference mask network from a weight source already at `mask_net`.
pub fn from_weights(config: SmartConfig, vb: VarBuilder) -> Result<MaskNet> {
    MaskNet::new(config, false, vb)
}

/// SmartCLIP's training losses for B paired images and captions.
pub struct Losses {
    /// Mean of the masks (fewer kept dimensions is better).
    pub sparse: Tensor,
    /// Same image, each caption under its own mask: cross-entropy over captions.
    pub sidm: Tensor,
    /// One caption's mask on every image: cross-entropy over images.
    pub dism: Tensor,
    /// 2 · sparse + 10 · (sidm + dism), as the paper's trainer.
    pub total: Tensor,
}

/// Losses of image embeddings (B, E, unnormalised), straight-through masks (B, E) and text
/// embeddings (B, E), image i paired with caption i; logits are `scale` · cosine.
pub fn losses(images: &Tensor, masks: &Tensor, texts: &Tensor, scale: f64) -> Result<Losses> {
    let b = images.dim(0)?;
    let s = (masked_cosines(images, masks, texts)? * scale)?; // [image, caption]
    let targets = Tensor::arange(0u32, b as u32, images.device())?;
    let sidm = candle_nn::loss::cross_entropy(&s, &targets)?;
    let dism = candle_nn::loss::cross_entropy(&s.t()?.contiguous()?, &targets)?;
    let sparse = masks.abs()?.mean_all()?;
    let total = ((&sparse * 2.0)? + ((&sidm + &dism)? * 10.0)?)?;
    Ok(Losses {
        sparse,
        sidm,
        dism,
        total,
    })
}
