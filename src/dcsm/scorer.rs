//! The DCSM scorer of "Is CLIP ideal? No. Can we fix it? Yes!": functional-word columns, a global
//! z-score and a small CNN over each caption's (rows × 30) cosine map.

use candle_core::{DType, Device, Result, Tensor};
use candle_nn::{Conv2d, Conv2dConfig, Linear, Module, VarBuilder};
use serde::{Deserialize, Serialize};
use std::path::Path;

use crate::error::ModelError;
use crate::io::tokenizer::ClipTokenizer;

mod dots;
mod infer;

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

/// How the CNN sees a map.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Architecture {
    /// The paper's: 3×3 convolutions over the (rows × columns) map, rows in flattened patch
    /// order, so vertically adjacent rows are not always neighbouring patches.
    #[default]
    Paper,
    /// Ours: each text column's patch rows laid out as the 2-D patch grid and convolved there,
    /// with the columns on either side as two more input channels (shared kernels); the CLS row
    /// goes straight into the first dense layer. Without the neighbouring columns (each column
    /// alone) it did not learn spatial relations at all: loss at ln 2 for 1,000 steps.
    Grid,
}

/// The functional words of the paper, in the order of its embedding table.
pub const FUNCTIONAL_WORDS: [&str; 11] = [
    "above", "below", "left", "right", "small", "big", "not", "no", "without", "but", "absent",
];

/// `scorer.json`: the mode and sizes of a scorer checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScorerConfig {
    pub mode: ColumnMode,
    #[serde(default)]
    pub architecture: Architecture,
    /// Image rows of the map: 1 + patches of the backbone.
    pub rows: usize,
    /// Text positions (30 in the paper), padded with `pad_id`.
    pub columns: usize,
    /// Functional words in the order of the embedding table's rows.
    pub functional_words: Vec<String>,
    pub pad_id: u32,
}

/// One replaced column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Replacement {
    /// The functional word.
    pub word: String,
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
        let table = vb.get(
            (config.functional_words.len(), config.rows),
            "functional_embeddings",
        )?;
        Self::with_table(config, vb, table)
    }

    /// Builds the network from `vb` around a given functional-word table (training keeps the
    /// table out of the trained variables: the reference never trains it).
    pub fn with_table(config: ScorerConfig, vb: VarBuilder, table: Tensor) -> Result<Self> {
        let conv = Conv2dConfig {
            padding: 1,
            ..Default::default()
        };
        let (r, c) = (config.rows, config.columns);
        if table.dims() != [config.functional_words.len(), r] {
            candle_core::bail!(
                "functional_embeddings is {:?}, expected ({}, {r})",
                table.dims(),
                config.functional_words.len()
            );
        }
        let features = match config.architecture {
            Architecture::Paper => 4 * r * c,
            Architecture::Grid => {
                grid_side(r)?;
                4 * (r - 1) * c + c
            }
        };
        Ok(Self {
            conv1: candle_nn::conv2d(
                match config.architecture {
                    Architecture::Paper => 1,
                    Architecture::Grid => 3,
                },
                4,
                3,
                conv,
                vb.pp("conv1"),
            )?,
            conv2: candle_nn::conv2d(4, 4, 3, conv, vb.pp("conv2"))?,
            fc1: candle_nn::linear(features, 128, vb.pp("fc1"))?,
            fc2: candle_nn::linear(128, 1, vb.pp("fc2"))?,
            table,
            config,
        })
    }

    /// Loads `scorer.json` + `scorer.safetensors` from a folder.
    pub fn load(dir: &Path) -> std::result::Result<Self, ModelError> {
        Self::load_named(dir, "scorer")
    }

    /// Loads `<stem>.json` + `<stem>.safetensors` from a folder.
    pub fn load_named(dir: &Path, stem: &str) -> std::result::Result<Self, ModelError> {
        let json_path = dir.join(format!("{stem}.json"));
        let text = std::fs::read_to_string(&json_path).map_err(|e| ModelError::Io {
            path: json_path.clone(),
            source: e,
        })?;
        let weights = dir.join(format!("{stem}.safetensors"));
        let vb = crate::io::weights::var_builder(&weights, DType::F32, &Device::Cpu)?;
        Self::from_json_and_weights(&text, vb).map_err(|e| match e {
            ModelError::WeightsRead { what, source } => ModelError::WeightsRead {
                what: format!("{}: {what}", weights.display()),
                source,
            },
            other => other,
        })
    }

    /// Builds a scorer from the text of its JSON and a weight source.
    pub fn from_json_and_weights(
        json: &str,
        vb: VarBuilder,
    ) -> std::result::Result<Self, ModelError> {
        let config: ScorerConfig = serde_json::from_str(json).map_err(|e| ModelError::Json {
            what: "scorer.json".into(),
            source: e,
        })?;
        if config.columns < 2 || config.rows < 1 {
            return Err(ModelError::Config(format!(
                "scorer.json: a {}×{} map is too small",
                config.rows, config.columns
            )));
        }
        Self::new(config, vb).map_err(|e| ModelError::WeightsRead {
            what: "scorer weights".into(),
            source: e,
        })
    }

    /// The name of this scorer in reports: `dcsm` (paper architecture) or `dcsm-grid`.
    pub fn label(&self) -> &'static str {
        match self.config.architecture {
            Architecture::Paper => "dcsm",
            Architecture::Grid => "dcsm-grid",
        }
    }

    /// The functional-word table, (words, rows).
    pub fn table(&self) -> &Tensor {
        &self.table
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
                (column < limit).then(|| Replacement {
                    word: fw.clone(),
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
        let features = match self.config.architecture {
            Architecture::Paper => {
                // Channel-major (channels, K, rows, columns) through the convolutions.
                let x = maps.reshape((1, k, r, c))?;
                let x = conv3x3(&self.conv1, &x)?.relu()?;
                let x = conv3x3(&self.conv2, &x)?.relu()?;
                x.transpose(0, 1)?.contiguous()?.reshape((k, 4 * r * c))?
            }
            Architecture::Grid => {
                let g = grid_side(r)?;
                // (K, g², C) → (3, K·C, g, g): every column's patch map as an image, the
                // columns before and after it (zeros past the ends) as channels 0 and 2.
                let patches = maps
                    .narrow(1, 1, r - 1)?
                    .transpose(1, 2)?
                    .contiguous()?
                    .pad_with_zeros(1, 1, 1)?;
                let patches = Tensor::stack(
                    &[
                        patches.narrow(1, 0, c)?,
                        patches.narrow(1, 1, c)?,
                        patches.narrow(1, 2, c)?,
                    ],
                    0,
                )?
                .reshape((3, k * c, g, g))?;
                let x = conv3x3(&self.conv1, &patches)?.relu()?;
                let x = conv3x3(&self.conv2, &x)?.relu()?;
                let x = x
                    .transpose(0, 1)?
                    .contiguous()?
                    .reshape((k, c * 4 * g * g))?;
                let cls = maps.narrow(1, 0, 1)?.reshape((k, c))?;
                Tensor::cat(&[&x, &cls], 1)?
            }
        };
        self.head(&features)
    }

    /// The dense layers on (K, features) convolution outputs: (K,).
    fn head(&self, features: &Tensor) -> Result<Tensor> {
        self.after_fc1(&weight_first(&self.fc1, features)?)
    }

    /// ReLU and fc2 on fc1's (K, 128) output, its bias added: (K,).
    fn after_fc1(&self, fc1: &Tensor) -> Result<Tensor> {
        self.fc2.forward(&fc1.relu()?)?.squeeze(1)
    }

    /// Scores K captions of one image: replace, z-score over all K maps together, CNN. The
    /// paper architecture takes the plain-number pass of `infer` (same maths, about
    /// 2.6 times as fast); training calls `network` for its gradients.
    pub fn score(&self, maps: &Tensor, replacements: &[Vec<Replacement>]) -> Result<Tensor> {
        match self.config.architecture {
            Architecture::Paper => infer::score(self, maps, replacements),
            Architecture::Grid => self.network(&global_zscore(&self.replace(maps, replacements)?)?),
        }
    }
}

/// A linear layer on a few rows `x` (N, in) computed as (W · xᵀ)ᵀ. gemm reads the stored (out, in)
/// weight in place this way, where `x · Wᵀ` made it repack the whole weight on every call (the
/// B/16 scorer's fc1 is 12 MB). Same values; differentiable, so training uses it too.
fn weight_first(layer: &Linear, x: &Tensor) -> Result<Tensor> {
    let out = layer.weight().matmul(&x.t()?)?.t()?;
    match layer.bias() {
        Some(b) => out.broadcast_add(b),
        None => Ok(out),
    }
}

/// A 3×3, padding-1 convolution on channel-major input (C_in, N, H, W) → (C_out, N, H, W), as
/// nine shifted copies and one matrix product. Same result as `Conv2d`, about twice as fast at
/// inference here (`clipscope bench`, B/16 scorer on 8 maps: 5.7 → 3.0 ms).
fn conv3x3(conv: &Conv2d, x: &Tensor) -> Result<Tensor> {
    let (cin, n, h, w) = x.dims4()?;
    let weight = conv.weight();
    let cout = weight.dim(0)?;
    let padded = x.pad_with_zeros(2, 1, 1)?.pad_with_zeros(3, 1, 1)?;
    let mut shifts = Vec::with_capacity(9);
    for dy in 0..3 {
        for dx in 0..3 {
            shifts.push(padded.narrow(2, dy, h)?.narrow(3, dx, w)?);
        }
    }
    // (C_in, 9, N, H, W): row (ci, ky·3 + kx) matches the weight layout (C_out, C_in, 3, 3).
    let cols = Tensor::stack(&shifts, 1)?.reshape((cin * 9, n * h * w))?;
    let mut out = weight.reshape((cout, cin * 9))?.matmul(&cols)?;
    if let Some(b) = conv.bias() {
        out = out.broadcast_add(&b.reshape((cout, 1))?)?;
    }
    out.reshape((cout, n, h, w))
}

/// The side of the square patch grid of a map with `rows` rows (CLS + g²).
fn grid_side(rows: usize) -> Result<usize> {
    let patches = rows.saturating_sub(1);
    let g = (patches as f64).sqrt().round() as usize;
    if g == 0 || g * g != patches {
        candle_core::bail!("{rows} rows are not CLS + a square patch grid");
    }
    Ok(g)
}

/// A functional-word table as the reference initialises it (and never trains it):
/// `(normalize(randn) + 1) / 3` per word, so values lie in [0, 2/3].
pub fn init_table(words: usize, rows: usize, rng: &mut impl rand::Rng) -> Vec<f32> {
    let mut out = Vec::with_capacity(words * rows);
    for _ in 0..words {
        let v: Vec<f32> = (0..rows).map(|_| standard_normal(rng)).collect();
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
        out.extend(v.iter().map(|x| (x / norm + 1.0) / 3.0));
    }
    out
}

/// One standard normal draw (Box–Muller).
fn standard_normal(rng: &mut impl rand::Rng) -> f32 {
    let u1: f64 = rng.random_range(f64::MIN_POSITIVE..1.0);
    let u2: f64 = rng.random();
    ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
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
