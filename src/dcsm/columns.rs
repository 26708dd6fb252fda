//! Prompts as the DCSM scorers read them (padded columns), their maps against an image, and
//! every scorer's verdict on them.

use candle_core::Tensor;
use serde::Serialize;

use super::scorer::{word_token_starts, Replacement, Scorer};
use crate::error::ModelError;
use crate::io::tokenizer::{ClipTokenizer, Tokenized};

/// Prompts as the DCSM scorer reads them: truncated to its column count and padded with its
/// pad id, the padding keys masked out.
#[derive(Debug, Clone)]
pub struct ScorerColumns {
    pub tokenized: Vec<Tokenized>,
    /// Per prompt, the first token column of each space-separated word (functional words are
    /// found by these), worked out once at encoding.
    pub word_starts: Vec<Vec<usize>>,
    /// (K, columns, projection_dim), L2-normalised.
    pub normalized: Tensor,
}

/// The DCSM paper's caption rewriting (`run_evals.py`): 3-D relations become the 2-D words whose
/// functional vectors apply. Plain substring replacement, in the reference's order, so
/// " topaz" becomes " abovez" there as here.
pub fn paper_rewrite(caption: &str) -> String {
    caption
        .replace(" behind ", " above ")
        .replace(" in front of ", " below ")
        .replace(" bottom", " below")
        .replace(" top", " above")
}

impl ScorerColumns {
    /// Columns of tokenised prompts, their word starts found with `tokenizer`.
    pub fn new(tokenizer: &ClipTokenizer, tokenized: Vec<Tokenized>, normalized: Tensor) -> Self {
        let word_starts = tokenized
            .iter()
            .map(|t| word_token_starts(tokenizer, &t.text))
            .collect();
        Self {
            tokenized,
            word_starts,
            normalized,
        }
    }
}

/// One scorer's verdict on one prompt.
#[derive(Debug, Clone, Serialize)]
pub struct ScorerScore {
    /// `dcsm` (the paper's architecture) or `dcsm-grid`.
    pub scorer: &'static str,
    /// The CNN's raw output. It depends on the other prompts scored with it: the maps are
    /// z-scored together.
    pub score: f32,
}

/// Per prompt: every scorer's score, and the shown scorer's replaced columns.
pub type Verdicts = (Vec<Vec<ScorerScore>>, Vec<Vec<Replacement>>);

/// (K, rows, columns) scorer maps of the prompts against an image's (rows, D) L2-normalised
/// tokens.
pub fn maps(image_normalized: &Tensor, columns: &ScorerColumns) -> Result<Tensor, ModelError> {
    let k = columns.normalized.dim(0)?;
    let img = image_normalized.unsqueeze(0)?.repeat((k, 1, 1))?;
    Ok(img.matmul(&columns.normalized.transpose(1, 2)?.contiguous()?)?)
}

/// Every scorer's scores of the prompts (z-scored together), and the first (shown) scorer's
/// functional-word replacements per prompt.
pub fn verdicts(
    scorers: &[Scorer],
    image_normalized: &Tensor,
    columns: &ScorerColumns,
) -> Result<Verdicts, ModelError> {
    let k = columns.tokenized.len();
    let maps = maps(image_normalized, columns)?;
    let mut scores = vec![Vec::with_capacity(scorers.len()); k];
    let mut shown = vec![Vec::new(); k];
    for (n, s) in scorers.iter().enumerate() {
        let reps: Vec<Vec<Replacement>> = columns
            .tokenized
            .iter()
            .zip(&columns.word_starts)
            .map(|(t, st)| s.replacements(&t.text, st))
            .collect();
        let out = s.score(&maps, &reps)?.to_vec1::<f32>()?;
        for (i, v) in out.into_iter().enumerate() {
            scores[i].push(ScorerScore {
                scorer: s.label(),
                score: v,
            });
        }
        if n == 0 {
            shown = reps;
        }
    }
    Ok((scores, shown))
}
