//! The DCSM scorer of "Is CLIP ideal? No. Can we fix it? Yes!": functional-word columns, a global
//! z-score and a small CNN over each caption's (rows × 30) cosine map.

use candle_core::{DType, Device, Result, Tensor};
use candle_nn::{Conv2d, Conv2dConfig, Linear, Module, VarBuilder};
use serde::{Deserialize, Serialize};
use std::path::Path;

use crate::model::{ClipTokenizer, ModelError};

/// Where a functional word's fixed vector goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnMode {
    /// As the reference code: column = the word's index in `caption.split(' ')` (column 0 is SOS,
    /// so this is the token before the word, further off after multi-piece words).
    Paper,
    /// The word's own first token column.
    Aligned,
}

/// `scorer.json`: the mode and sizes of a scorer checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScorerConfig {
    pub mode: ColumnMode,
    /// Image rows of the map: 1 + patches of the backbone.
    pub rows: usize,
    /// Text positions (30 in the paper), padded with `pad_id`.
    pub columns: usize,
    /// Functional words in the order of the embedding table's rows.
    pub functional_words: Vec<String>,
    pub pad_id: u32,
}

/// One replaced column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Replacement {
    pub table_index: usize,
    pub word_index: usize,
    pub column: usize,
}

/// The scorer network with its functional-word table.
pub struct Scorer {
    conv1: Conv2d,
    conv2: Conv2d,
    fc1: Linear,
    fc2: Linear,
    /// (functional words, rows).
    table: Tensor,
    pub config: ScorerConfig,
}

impl Scorer {
    /// Builds the network; weights named as the reference's state dict (`conv1`, `conv2`, `fc1`,
    /// `fc2`) plus `functional_embeddings`.
    pub fn new(config: ScorerConfig, vb: VarBuilder) -> Result<Self> {
        let conv = Conv2dConfig {
            padding: 1,
            ..Default::default()
        };
        let (r, c) = (config.rows, config.columns);
        Ok(Self {
            conv1: candle_nn::conv2d(1, 4, 3, conv, vb.pp("conv1"))?,
            conv2: candle_nn::conv2d(4, 4, 3, conv, vb.pp("conv2"))?,
            fc1: candle_nn::linear(4 * r * c, 128, vb.pp("fc1"))?,
            fc2: candle_nn::linear(128, 1, vb.pp("fc2"))?,
            table: vb.get((config.functional_words.len(), r), "functional_embeddings")?,
            config,
        })
    }

    /// Loads `scorer.json` + `scorer.safetensors` from a folder.
    pub fn load(dir: &Path) -> std::result::Result<Self, ModelError> {
        let json_path = dir.join("scorer.json");
        let text = std::fs::read_to_string(&json_path).map_err(|e| ModelError::Io {
            path: json_path.clone(),
            message: e.to_string(),
        })?;
        let config: ScorerConfig = serde_json::from_str(&text)
            .map_err(|e| ModelError::Config(format!("{}: {e}", json_path.display())))?;
        let weights = dir.join("scorer.safetensors");
        // SAFETY: mapped read-only; tensors are copied out when built.
        let vb =
            unsafe { VarBuilder::from_mmaped_safetensors(&[&weights], DType::F32, &Device::Cpu) }
                .map_err(|e| ModelError::Weights(format!("{}: {e}", weights.display())))?;
        Self::new(config, vb)
            .map_err(|e| ModelError::Weights(format!("{}: {e}", weights.display())))
    }

    /// The columns a caption's functional words replace, in table order. `word_starts[i]` is the
    /// first token column of space-separated word `i` (used in `Aligned` mode).
    pub fn replacements(&self, caption: &str, word_starts: &[usize]) -> Vec<Replacement> {
        let words: Vec<&str> = caption.split(' ').collect();
        let c = self.config.columns;
        self.config
            .functional_words
            .iter()
            .enumerate()
            .filter_map(|(table_index, fw)| {
                let word_index = words.iter().position(|w| w == fw)?;
                let column = match self.config.mode {
                    ColumnMode::Paper => word_index,
                    ColumnMode::Aligned => *word_starts.get(word_index)?,
                };
                // A column past the last word token was truncated away.
                let limit = match self.config.mode {
                    ColumnMode::Paper => c,
                    ColumnMode::Aligned => c - 1,
                };
                (column < limit).then_some(Replacement {
                    table_index,
                    word_index,
                    column,
                })
            })
            .collect()
    }

    /// (K, rows, columns) maps with functional-word columns replaced.
    pub fn replace(&self, maps: &Tensor, replacements: &[Vec<Replacement>]) -> Result<Tensor> {
        let (k, r, c) = maps.dims3()?;
        let mut data = maps.flatten_all()?.to_vec1::<f32>()?;
        let table = self.table.to_vec2::<f32>()?;
        for (i, reps) in replacements.iter().enumerate().take(k) {
            for rep in reps {
                for row in 0..r {
                    data[(i * r + row) * c + rep.column] = table[rep.table_index][row];
                }
            }
        }
        Tensor::from_vec(data, (k, r, c), maps.device())
    }

    /// The raw CNN output for (K, rows, columns) standardised maps: (K,).
    pub fn network(&self, maps: &Tensor) -> Result<Tensor> {
        let (k, r, c) = maps.dims3()?;
        let x = maps.reshape((k, 1, r, c))?;
        let x = self.conv1.forward(&x)?.relu()?;
        let x = self.conv2.forward(&x)?.relu()?;
        let x = self.fc1.forward(&x.flatten_from(1)?)?.relu()?;
        self.fc2.forward(&x)?.squeeze(1)
    }

    /// Scores K captions of one image: replace, z-score over all K maps together, CNN.
    pub fn score(&self, maps: &Tensor, replacements: &[Vec<Replacement>]) -> Result<Tensor> {
        self.network(&global_zscore(&self.replace(maps, replacements)?)?)
    }
}

/// One mean and one (unbiased) standard deviation over the whole tensor, as the reference does.
pub fn global_zscore(x: &Tensor) -> Result<Tensor> {
    let n = x.elem_count();
    let mean = x.mean_all()?;
    let centred = x.broadcast_sub(&mean)?;
    let var = (centred.sqr()?.sum_all()? / (n.saturating_sub(1).max(1)) as f64)?;
    centred.broadcast_div(&var.sqrt()?)
}

/// First token column of every space-separated word of `caption` (SOS is column 0): 1 + the
/// number of BPE tokens of the words before it.
pub fn word_token_starts(tokenizer: &ClipTokenizer, caption: &str) -> Vec<usize> {
    let mut column = 1;
    caption
        .split(' ')
        .map(|w| {
            let start = column;
            column += tokenizer
                .encode(w, usize::MAX)
                .map_or(0, |t| t.ids.len().saturating_sub(2));
            start
        })
        .collect()
}
