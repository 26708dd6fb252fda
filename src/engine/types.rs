//! What the engine hands out: encoded images and prompts, and every score of a prompt.

use candle_core::Tensor;

use crate::dcsm::scorer::Replacement;
use crate::dcsm::{Matrix, ScorerColumns, ScorerScore};
use crate::io::preprocess::CropRect;
use crate::io::tokenizer::Tokenized;
use crate::smartclip::{SmartPrompts, SmartScore};

/// One image through the vision tower: its projected tokens, raw and L2-normalised.
#[derive(Debug, Clone)]
pub struct EncodedImage {
    /// (1 + patches, projection_dim), unnormalised.
    pub tokens: Tensor,
    /// The same rows, L2-normalised.
    pub normalized: Tensor,
    /// Patch grid (rows, cols).
    pub grid: (usize, usize),
    pub crop: CropRect,
    pub original: (u32, u32),
}

impl EncodedImage {
    /// Bytes its tensors hold (for caches sized by bytes).
    pub fn bytes(&self) -> usize {
        tensor_bytes(&self.tokens) + tensor_bytes(&self.normalized)
    }
}

/// Bytes a tensor's elements take.
pub fn tensor_bytes(t: &Tensor) -> usize {
    t.elem_count() * t.dtype().size_in_bytes()
}

/// Prompts through the text tower.
#[derive(Debug, Clone)]
pub struct EncodedPrompts {
    pub tokenized: Vec<Tokenized>,
    /// One (T_i, projection_dim) tensor per prompt, unnormalised, SOS … EOS.
    pub tokens: Vec<Tensor>,
    /// The scorers' view of the prompts, when the model has scorers.
    pub columns: Option<ScorerColumns>,
    /// SmartCLIP's view, when the model has a mask network.
    pub smart: Option<SmartPrompts>,
}

/// Everything known about one prompt against one image, as plain data.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PromptScore {
    pub tokenized: Tokenized,
    /// (1 + patches) × tokens cosines; row 0 is CLS.
    pub dcsm: Matrix,
    /// Cosine of the pooled embeddings.
    pub clip_cosine: f32,
    /// Softmax over the scored prompts of `exp(logit_scale) · cosine`.
    pub clip_prob: f32,
    /// One entry per scorer of the model (the shown one first).
    pub dcsm_scores: Vec<ScorerScore>,
    /// Columns the shown scorer replaced with functional-word vectors.
    pub functional: Vec<Replacement>,
    /// The text the DCSM scorers read, when it differs from the prompt (the paper's rewriting
    /// of "behind", "in front of", "top" and "bottom" in `paper` mode).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dcsm_text: Option<String>,
    /// SmartCLIP's score and mask, when the model has a mask network.
    pub smartclip: Option<SmartScore>,
}

impl PromptScore {
    /// The shown scorer's score, when the model has a scorer.
    pub fn dcsm_score(&self) -> Option<f32> {
        self.dcsm_scores.first().map(|s| s.score)
    }
}
