//! SmartCLIP on prompts and an image: mask logits and pooled text embeddings per prompt, then
//! the image embedding under each prompt's hard mask.

use candle_core::{DType, Device, Tensor};
use serde::Serialize;

use super::{masked_cosines, MaskNet};
use crate::clip::Clip;
use crate::error::ModelError;
use crate::io::tokenizer::{pad_ids, Tokenized};

/// Prompts through SmartCLIP's mask network.
#[derive(Debug, Clone)]
pub struct SmartPrompts {
    /// (K, width) mask logits.
    pub logits: Tensor,
    /// (K, projection_dim) pooled text embeddings, unnormalised.
    pub texts: Tensor,
}

/// SmartCLIP's verdict on one prompt.
#[derive(Debug, Clone, Serialize)]
pub struct SmartScore {
    /// Cosine of the masked image embedding with the text embedding.
    pub score: f32,
    /// Fraction of dimensions kept.
    pub mask_kept: f32,
    /// The sigmoid of every dimension's logit (kept where ≥ the threshold).
    pub mask: Vec<f32>,
    pub threshold: f32,
}

/// Mask logits and pooled text embeddings: each prompt padded to the full context with the
/// mask network's pad id (causal attention only, as OpenAI's text tower), `batch` at a time.
pub fn encode_prompts(
    net: &MaskNet,
    clip: &Clip,
    tokenized: &[Tokenized],
    batch: usize,
) -> Result<SmartPrompts, ModelError> {
    let context = clip.config().text.max_position_embeddings;
    let (mut logits, mut texts) = (Vec::new(), Vec::new());
    for chunk in tokenized.chunks(batch.max(1)) {
        let ids = pad_ids(chunk, net.config.text_pad_id, context, &Device::Cpu)?;
        let hidden = clip.text_hidden(&ids)?;
        logits.push(net.forward(&hidden)?);
        let eos: Vec<usize> = chunk.iter().map(Tokenized::eos_index).collect();
        texts.push(clip.project_text(&Clip::pool_text(&hidden, &eos)?)?);
    }
    Ok(SmartPrompts {
        logits: Tensor::cat(&logits, 0)?,
        texts: Tensor::cat(&texts, 0)?,
    })
}

/// SmartCLIP scores: the image's (1, D) CLS embedding under each prompt's hard mask.
pub fn scores(
    net: &MaskNet,
    image_cls: &Tensor,
    smart: &SmartPrompts,
) -> Result<Vec<SmartScore>, ModelError> {
    let threshold = net.config.mask_threshold;
    let sig = candle_nn::ops::sigmoid(&smart.logits)?;
    let hard = sig.ge(f64::from(threshold))?.to_dtype(DType::F32)?;
    let cos = masked_cosines(image_cls, &hard, &smart.texts)?
        .squeeze(0)?
        .to_vec1::<f32>()?;
    let sig = sig.to_vec2::<f32>()?;
    Ok(cos
        .into_iter()
        .zip(sig)
        .map(|(score, mask)| {
            let kept = mask.iter().filter(|v| **v >= threshold).count();
            SmartScore {
                score,
                mask_kept: kept as f32 / mask.len().max(1) as f32,
                mask,
                threshold,
            }
        })
        .collect())
}
