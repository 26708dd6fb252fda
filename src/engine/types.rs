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
    /// (1 + patches, projection_dim) for CLIP (row 0 the CLS token), (patches, projection_dim)
    /// for SigLIP (no CLS row); unnormalised.
    pub tokens: Tensor,
    /// The same rows, L2-normalised.
    pub normalized: Tensor,
    /// (1, projection_dim): the pooled image embedding (CLIP: the CLS row; SigLIP: the
    /// attention-pooling head's output), unnormalised.
    pub pooled: Tensor,
    /// Whether row 0 of `tokens` is CLS.
    pub cls_row: bool,
    /// Patch grid (rows, cols).
    pub grid: (usize, usize),
    pub crop: CropRect,
    pub original: (u32, u32),
}

impl EncodedImage {
    /// Bytes its tensors hold (for caches sized by bytes).
    pub fn bytes(&self) -> usize {
        tensor_bytes(&self.tokens) + tensor_bytes(&self.normalized) + tensor_bytes(&self.pooled)
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
    /// One (projection_dim,) pooled embedding per prompt (CLIP: at the first EOS; SigLIP: the
    /// last position of the padded context).
    pub pooled: Vec<Tensor>,
    /// The scorers' view of the prompts, when the model has scorers.
    pub columns: Option<ScorerColumns>,
    /// SmartCLIP's view, when the model has a mask network.
    pub smart: Option<SmartPrompts>,
}

/// Everything known about one prompt against one image, as plain data.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PromptScore {
    pub tokenized: Tokenized,
    /// (1 + patches) × tokens cosines, row 0 CLS (`dcsm.cls_row`); SigLIP: patches × tokens.
    pub dcsm: Matrix,
    /// Cosine of the pooled embeddings.
    pub clip_cosine: f32,
    /// CLIP: softmax over the scored prompts of `exp(logit_scale) · cosine`. SigLIP: this
    /// prompt's own `sigmoid(exp(logit_scale) · cosine + logit_bias)` (see `ScoreKind`).
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

/// The model family a checkpoint belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// CLIP (OpenAI, OpenCLIP, …): CLS row, pooled at EOS, softmax over prompts.
    Clip,
    /// SigLIP and SigLIP 2: no CLS row, an attention-pooling head, a sigmoid per prompt.
    Siglip,
}

impl Family {
    /// How the pooled score turns into a probability.
    pub fn score_kind(self) -> ScoreKind {
        match self {
            Self::Clip => ScoreKind::Softmax,
            Self::Siglip => ScoreKind::Sigmoid,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Clip => "CLIP",
            Self::Siglip => "SigLIP",
        }
    }
}

/// What `PromptScore::clip_prob` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ScoreKind {
    /// `softmax(exp(logit_scale) · cos)` over the scored prompts: they compete.
    Softmax,
    /// `sigmoid(exp(logit_scale) · cos + logit_bias)` per prompt: each stands alone.
    Sigmoid,
}
