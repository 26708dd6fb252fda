//! The dense CLIP engine: configuration, weights, preprocessing, tokenizer and the forward pass.

mod cache;
pub mod clip;
pub mod config;
pub mod interpolate;
pub mod preprocess;
mod quick_gelu;
pub mod source;
pub mod tokenizer;
pub(crate) mod weights;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use std::path::{Path, PathBuf};
use std::time::Instant;

pub use clip::Clip;
pub use config::ClipConfig;
pub use preprocess::{CropRect, PreprocessConfig, Preprocessed};
pub use source::{ModelSource, Progress};
pub use tokenizer::{ClipTokenizer, Tokenized, Word};

use crate::dcsm::scorer::{self, Replacement, Scorer};
use crate::dcsm::{self, Matrix};
use crate::smartclip::{self, MaskNet};

/// Prompts run through the text tower at once.
const TEXT_BATCH: usize = 64;

/// Everything that can go wrong in the engine, each with a message a person can act on.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{path}: {message}")]
    Io { path: PathBuf, message: String },
    #[error("model config: {0}")]
    Config(String),
    #[error("model weights: {0}")]
    Weights(String),
    #[error("image: {0}")]
    Image(String),
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("prompt: {0}")]
    Prompt(String),
    #[error("{0}")]
    Hub(String),
    #[error("model computation failed: {0}")]
    Candle(#[from] candle_core::Error),
}

/// A loaded CLIP checkpoint with its tokenizer and preprocessing.
pub struct LoadedModel {
    clip: Clip,
    tokenizer: ClipTokenizer,
    preprocess: PreprocessConfig,
    name: String,
    device: Device,
    /// DCSM scorers trained for this backbone; the first is the one shown.
    scorers: Vec<Scorer>,
    /// SmartCLIP's mask network, when the checkpoint has one.
    smartclip: Option<MaskNet>,
    /// Text encodings of recent prompts (emptied whenever a head changes).
    text_cache: std::sync::Mutex<cache::TextCache>,
}

/// Scorer checkpoints a model folder may hold, by file stem.
pub const SCORER_STEMS: [&str; 2] = ["scorer", "scorer-grid"];

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

/// Prompts through SmartCLIP's mask network.
#[derive(Debug, Clone)]
pub struct SmartPrompts {
    /// (K, width) mask logits.
    pub logits: Tensor,
    /// (K, projection_dim) pooled text embeddings, unnormalised.
    pub texts: Tensor,
}

/// SmartCLIP's verdict on one prompt.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SmartScore {
    /// Cosine of the masked image embedding with the text embedding.
    pub score: f32,
    /// Fraction of dimensions kept.
    pub mask_kept: f32,
    /// The sigmoid of every dimension's logit (kept where ≥ the threshold).
    pub mask: Vec<f32>,
    pub threshold: f32,
}

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

impl ScorerColumns {
    fn new(tokenizer: &ClipTokenizer, tokenized: Vec<Tokenized>, normalized: Tensor) -> Self {
        let word_starts = tokenized
            .iter()
            .map(|t| scorer::word_token_starts(tokenizer, &t.text))
            .collect();
        Self {
            tokenized,
            word_starts,
            normalized,
        }
    }
}

/// Per prompt: every scorer's score, and the shown scorer's replaced columns.
type DcsmVerdicts = (Vec<Vec<ScorerScore>>, Vec<Vec<Replacement>>);

/// One scorer's verdict on one prompt.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ScorerScore {
    /// `dcsm` (the paper's architecture) or `dcsm-grid`.
    pub scorer: &'static str,
    /// The CNN's raw output. It depends on the other prompts scored with it: the maps are
    /// z-scored together.
    pub score: f32,
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
    /// SmartCLIP's score and mask, when the model has a mask network.
    pub smartclip: Option<SmartScore>,
}

impl PromptScore {
    /// The shown scorer's score, when the model has a scorer.
    pub fn dcsm_score(&self) -> Option<f32> {
        self.dcsm_scores.first().map(|s| s.score)
    }
}

impl LoadedModel {
    /// Loads a checkpoint from a folder, the hub or the embedded default.
    pub fn load(
        source: &ModelSource,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Self, ModelError> {
        if *source == ModelSource::Embedded {
            return Self::embedded();
        }
        let dir = source.resolve(progress)?;
        Self::from_folder(&dir, &source.to_string())
    }

    /// The shapes-world model compiled into the binary.
    pub fn embedded() -> Result<Self, ModelError> {
        let config = ClipConfig::from_json(source::embedded::CONFIG)?;
        let device = Device::Cpu;
        let vb = VarBuilder::from_slice_safetensors(source::embedded::WEIGHTS, DType::F32, &device)
            .map_err(|e| ModelError::Weights(format!("embedded model: {e}")))?;
        let clip = Clip::new(&config, false, vb).map_err(|e| {
            ModelError::Weights(format!("embedded model does not fit its config: {e}"))
        })?;
        let mut model = Self::from_parts(clip, source::embedded::NAME)?;
        for (json, weights) in source::embedded::SCORERS {
            let vb = VarBuilder::from_slice_safetensors(weights, DType::F32, &device)
                .map_err(|e| ModelError::Weights(format!("embedded scorer: {e}")))?;
            model.add_scorer(Scorer::from_json_and_weights(json, vb)?)?;
        }
        let (json, weights) = source::embedded::SMARTCLIP;
        let config = smartclip::parse_config(json, "embedded smartclip.json")?;
        let vb = VarBuilder::from_slice_safetensors(weights, DType::F32, &device)
            .map_err(|e| ModelError::Weights(format!("embedded SmartCLIP mask: {e}")))?;
        model.set_smartclip(smartclip::build(config, vb, "embedded SmartCLIP mask")?)?;
        Ok(model)
    }

    /// Loads `config.json` + `model.safetensors` (+ optional `tokenizer.json`,
    /// `preprocessor_config.json`) from `dir`.
    pub fn from_folder(dir: &Path, name: &str) -> Result<Self, ModelError> {
        if !dir.is_dir() {
            return Err(ModelError::Io {
                path: dir.to_path_buf(),
                message: "model folder does not exist".into(),
            });
        }
        let config_path = dir.join("config.json");
        let config_text = std::fs::read_to_string(&config_path).map_err(|e| ModelError::Io {
            path: config_path.clone(),
            message: e.to_string(),
        })?;
        let config = ClipConfig::from_json(&config_text)?;
        let weights = source::weights_file(dir)?;
        let device = Device::Cpu;
        let vb = weights::var_builder(&weights, DType::F32, &device)
            .map_err(|e| ModelError::Weights(format!("{}: {e}", weights.display())))?;
        let clip = Clip::new(&config, false, vb).map_err(|e| {
            ModelError::Weights(format!(
                "{} does not fit config.json: {e}",
                weights.display()
            ))
        })?;
        let tokenizer_file = dir.join("tokenizer.json");
        let tokenizer = if tokenizer_file.is_file() {
            ClipTokenizer::from_file(&tokenizer_file)?
        } else {
            ClipTokenizer::bundled()?
        };
        if tokenizer.vocab_size() > config.text.vocab_size {
            return Err(ModelError::Tokenizer(format!(
                "the tokenizer knows {} tokens but the model only {}",
                tokenizer.vocab_size(),
                config.text.vocab_size
            )));
        }
        let pre_file = dir.join("preprocessor_config.json");
        let preprocess = if pre_file.is_file() {
            let text = std::fs::read_to_string(&pre_file).map_err(|e| ModelError::Io {
                path: pre_file.clone(),
                message: e.to_string(),
            })?;
            PreprocessConfig::from_json(&text, config.vision.image_size)?
        } else {
            PreprocessConfig::openai(config.vision.image_size)
        };
        // A converted SmartCLIP checkpoint keeps the mask's settings in config.json.
        let smart_section = serde_json::from_str::<serde_json::Value>(&config_text)
            .ok()
            .and_then(|v| v.get("smartclip").cloned());
        let mut model = Self {
            clip,
            tokenizer,
            preprocess,
            name: name.to_string(),
            device,
            scorers: Vec::new(),
            smartclip: None,
            text_cache: Default::default(),
        };
        if let Some(net) = smartclip::load(dir, smart_section)? {
            model.set_smartclip(net)?;
        }
        for stem in SCORER_STEMS {
            if dir.join(format!("{stem}.json")).is_file() {
                model.add_scorer(Scorer::load_named(dir, stem)?)?;
            }
        }
        Ok(model)
    }

    /// Adds a DCSM scorer after checking it fits this backbone.
    pub fn add_scorer(&mut self, scorer: Scorer) -> Result<(), ModelError> {
        let c = &scorer.config;
        let rows = 1 + self.grid().0 * self.grid().1;
        let context = self.config().text.max_position_embeddings;
        if c.rows != rows {
            return Err(ModelError::Config(format!(
                "the DCSM scorer reads {} image rows but this model has {rows} (1 + patches)",
                c.rows
            )));
        }
        if c.columns > context {
            return Err(ModelError::Config(format!(
                "the DCSM scorer reads {} text columns but the model's context is {context}",
                c.columns
            )));
        }
        if let Some(first) = self.scorers.first() {
            if first.config.columns != c.columns || first.config.pad_id != c.pad_id {
                return Err(ModelError::Config(
                    "the model's DCSM scorers disagree on columns or pad id".into(),
                ));
            }
        }
        self.scorers.retain(|s| s.label() != scorer.label());
        self.scorers.push(scorer);
        self.clear_text_cache();
        Ok(())
    }

    /// The DCSM scorers; the first is the one shown.
    pub fn scorers(&self) -> &[Scorer] {
        &self.scorers
    }

    /// Removes and returns the scorers (benchmarks time the model with and without them).
    pub fn take_scorers(&mut self) -> Vec<Scorer> {
        self.clear_text_cache();
        std::mem::take(&mut self.scorers)
    }

    /// Wraps an already built model (training, benchmarks, tests) with the bundled tokenizer.
    pub fn from_parts(clip: Clip, name: &str) -> Result<Self, ModelError> {
        let preprocess = PreprocessConfig::openai(clip.config().vision.image_size);
        Ok(Self {
            clip,
            tokenizer: ClipTokenizer::bundled()?,
            preprocess,
            name: name.into(),
            device: Device::Cpu,
            scorers: Vec::new(),
            smartclip: None,
            text_cache: Default::default(),
        })
    }

    /// Sets SmartCLIP's mask network after checking it fits this backbone.
    pub fn set_smartclip(&mut self, net: MaskNet) -> Result<(), ModelError> {
        let c = self.config();
        let w = net.config.mask_width;
        if w != c.text.hidden_size || w != c.projection_dim {
            return Err(ModelError::Config(format!(
                "the SmartCLIP mask is {w} wide but the model's text width is {} and its \
                 embedding {}",
                c.text.hidden_size, c.projection_dim
            )));
        }
        self.smartclip = Some(net);
        self.clear_text_cache();
        Ok(())
    }

    /// Removes and returns the mask network (benchmarks time the model with and without it).
    pub fn take_smartclip(&mut self) -> Option<MaskNet> {
        self.clear_text_cache();
        self.smartclip.take()
    }

    /// SmartCLIP's mask network, when present.
    pub fn smartclip(&self) -> Option<&MaskNet> {
        self.smartclip.as_ref()
    }

    /// Mask logits and pooled text embeddings: each prompt padded to the full context with the
    /// mask network's pad id (causal attention only, as OpenAI's text tower).
    pub fn smart_prompts(
        &self,
        net: &MaskNet,
        tokenized: &[Tokenized],
    ) -> Result<SmartPrompts, ModelError> {
        let context = self.config().text.max_position_embeddings;
        let (mut logits, mut texts) = (Vec::new(), Vec::new());
        for chunk in tokenized.chunks(TEXT_BATCH) {
            let ids = tokenizer::pad_ids(chunk, net.config.text_pad_id, context, &self.device)?;
            let hidden = self.clip.text_hidden(&ids)?;
            logits.push(net.forward(&hidden)?);
            let eos: Vec<usize> = chunk.iter().map(Tokenized::eos_index).collect();
            texts.push(self.clip.project_text(&Clip::pool_text(&hidden, &eos)?)?);
        }
        Ok(SmartPrompts {
            logits: Tensor::cat(&logits, 0)?,
            texts: Tensor::cat(&texts, 0)?,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn config(&self) -> &ClipConfig {
        self.clip.config()
    }

    pub fn clip(&self) -> &Clip {
        &self.clip
    }

    pub fn tokenizer(&self) -> &ClipTokenizer {
        &self.tokenizer
    }

    pub fn preprocess_config(&self) -> &PreprocessConfig {
        &self.preprocess
    }

    /// A short description of where the model runs.
    pub fn device_name(&self) -> String {
        match self.device {
            Device::Cpu => match candle_core::utils::get_num_threads() {
                1 => "CPU (1 thread)".to_string(),
                n => format!("CPU ({n} threads)"),
            },
            _ => "accelerator".into(),
        }
    }

    /// The patch grid (rows, cols).
    pub fn grid(&self) -> (usize, usize) {
        let g = self.config().vision.grid_side();
        (g, g)
    }

    /// `exp(logit_scale)`, the temperature of the softmax over prompts.
    pub fn logit_scale_exp(&self) -> Result<f32, ModelError> {
        Ok(self
            .clip
            .logit_scale()
            .to_dtype(DType::F32)?
            .to_scalar::<f32>()?
            .exp())
    }

    /// Preprocesses an image the way this model expects.
    pub fn preprocess(&self, image: &image::DynamicImage) -> Preprocessed {
        preprocess::preprocess(image, &self.preprocess)
    }

    /// Runs the vision tower on a preprocessed image.
    pub fn encode_pixels(&self, pre: &Preprocessed) -> Result<EncodedImage, ModelError> {
        let s = pre.side;
        let pixels = Tensor::from_slice(&pre.pixels, (1, 3, s, s), &self.device)?;
        let tokens = self.clip.image_tokens(&pixels)?.squeeze(0)?;
        let normalized = clip::l2_normalize(&tokens)?;
        Ok(EncodedImage {
            tokens,
            normalized,
            grid: self.grid(),
            crop: pre.crop,
            original: pre.original,
        })
    }

    /// Decodes nothing: preprocesses and encodes an already decoded image.
    pub fn encode_image(&self, image: &image::DynamicImage) -> Result<EncodedImage, ModelError> {
        self.encode_pixels(&self.preprocess(image))
    }

    /// Tokenises (truncating to the context) without running the model.
    pub fn tokenize(&self, prompt: &str) -> Result<Tokenized, ModelError> {
        self.tokenizer
            .encode(prompt, self.config().text.max_position_embeddings)
    }

    /// Encodes prompts, reusing the encodings of prompts seen recently: after an edit only the
    /// changed prompt runs through the text tower.
    pub fn encode_prompts(&self, prompts: &[String]) -> Result<EncodedPrompts, ModelError> {
        if prompts.is_empty() {
            return Err(ModelError::Prompt("no prompts given".into()));
        }
        let mut cache = self
            .text_cache
            .lock()
            .map_err(|_| ModelError::Prompt("internal: the text cache is poisoned".into()))?;
        let misses = cache.misses(prompts);
        if !misses.is_empty() {
            let fresh = self.encode_prompts_uncached(&misses)?;
            cache.insert(&misses, &fresh)?;
        }
        let out = cache.assemble(prompts);
        cache.trim();
        out
    }

    fn clear_text_cache(&mut self) {
        if let Ok(c) = self.text_cache.get_mut() {
            c.clear();
        }
    }

    /// Runs the text tower on a batch of prompts (padded; the padding keys are masked, so every
    /// position up to a prompt's own EOS is independent of the padding). With scorers, the same
    /// pass yields their padded columns; prompts longer than the scorer's columns get a second,
    /// truncated pass.
    pub fn encode_prompts_uncached(
        &self,
        prompts: &[String],
    ) -> Result<EncodedPrompts, ModelError> {
        if prompts.is_empty() {
            return Err(ModelError::Prompt("no prompts given".into()));
        }
        let tokenized = prompts
            .iter()
            .map(|p| self.tokenize(p))
            .collect::<Result<Vec<_>, _>>()?;
        let scorer_cfg = self
            .scorers
            .first()
            .map(|s| (s.config.columns, s.config.pad_id));
        let (columns, pad) = scorer_cfg.unwrap_or((0, self.tokenizer.eos_id()));
        // Batches of bounded size keep peak memory flat for a thousand prompts at once.
        let mut tokens = Vec::with_capacity(tokenized.len());
        let mut scorer_cols: Vec<Option<Tensor>> = Vec::with_capacity(tokenized.len());
        for chunk in tokenized.chunks(TEXT_BATCH) {
            let all = self.text_pass(chunk, pad, columns)?;
            for (b, t) in chunk.iter().enumerate() {
                let row = all.get(b)?;
                tokens.push(row.narrow(0, 0, t.ids.len())?);
                let fits = scorer_cfg.is_some() && t.full_len <= columns;
                scorer_cols.push(fits.then(|| row.narrow(0, 0, columns)).transpose()?);
            }
        }
        let columns = match scorer_cfg {
            None => None,
            Some((c, pad)) => {
                Some(self.scorer_columns(prompts, &tokenized, scorer_cols, c, pad)?)
            }
        };
        let smart = match &self.smartclip {
            Some(net) => Some(self.smart_prompts(net, &tokenized)?),
            None => None,
        };
        Ok(EncodedPrompts {
            tokenized,
            tokens,
            columns,
            smart,
        })
    }

    /// (B, max(longest, min_width), D) text tokens of tokenised prompts padded with `pad`.
    fn text_pass(
        &self,
        chunk: &[Tokenized],
        pad: u32,
        min_width: usize,
    ) -> Result<Tensor, ModelError> {
        let ids = tokenizer::pad_ids(chunk, pad, min_width, &self.device)?;
        let lengths: Vec<usize> = chunk.iter().map(|t| t.ids.len()).collect();
        Ok(self.clip.text_tokens_padded(&ids, &lengths)?)
    }

    /// The scorer's columns of every prompt: taken from the shared pass where the prompt fits,
    /// else from a pass over the prompt truncated to the scorer's columns.
    fn scorer_columns(
        &self,
        prompts: &[String],
        display: &[Tokenized],
        shared: Vec<Option<Tensor>>,
        columns: usize,
        pad: u32,
    ) -> Result<ScorerColumns, ModelError> {
        let long: Vec<String> = prompts
            .iter()
            .zip(&shared)
            .filter(|(_, c)| c.is_none())
            .map(|(p, _)| p.clone())
            .collect();
        let cut = if long.is_empty() {
            None
        } else {
            Some(self.encode_columns(&long, columns, pad)?)
        };
        let (mut tokenized, mut word_starts, mut cols) = (Vec::new(), Vec::new(), Vec::new());
        let mut next_long = 0;
        for (t, c) in display.iter().zip(shared) {
            match (c, &cut) {
                (Some(c), _) => {
                    tokenized.push(t.clone());
                    word_starts.push(scorer::word_token_starts(&self.tokenizer, &t.text));
                    cols.push(clip::l2_normalize(&c)?);
                }
                (None, cut) => {
                    // `cut` holds every prompt without shared columns.
                    let cut = cut.as_ref().ok_or_else(|| {
                        ModelError::Prompt("internal: a prompt has no scorer columns".into())
                    })?;
                    tokenized.push(cut.tokenized[next_long].clone());
                    word_starts.push(cut.word_starts[next_long].clone());
                    cols.push(cut.normalized.get(next_long)?);
                    next_long += 1;
                }
            }
        }
        Ok(ScorerColumns {
            tokenized,
            word_starts,
            normalized: Tensor::stack(&cols, 0)?,
        })
    }

    /// Prompts as a scorer reads them: tokenised to `columns` tokens, padded with `pad`
    /// (padding keys masked), projected and L2-normalised: (K, columns, D).
    pub fn encode_columns(
        &self,
        prompts: &[String],
        columns: usize,
        pad: u32,
    ) -> Result<ScorerColumns, ModelError> {
        let tokenized = prompts
            .iter()
            .map(|p| self.tokenizer.encode(p, columns))
            .collect::<Result<Vec<_>, _>>()?;
        let mut parts = Vec::new();
        for chunk in tokenized.chunks(TEXT_BATCH) {
            parts.push(self.text_pass(chunk, pad, columns)?);
        }
        Ok(ScorerColumns::new(
            &self.tokenizer,
            tokenized,
            clip::l2_normalize(&Tensor::cat(&parts, 0)?)?,
        ))
    }

    /// (K, rows, columns) scorer maps of the prompts against the image.
    pub fn scorer_maps(
        &self,
        image: &EncodedImage,
        columns: &ScorerColumns,
    ) -> Result<Tensor, ModelError> {
        let k = columns.normalized.dim(0)?;
        let img = image.normalized.unsqueeze(0)?.repeat((k, 1, 1))?;
        Ok(img.matmul(&columns.normalized.transpose(1, 2)?.contiguous()?)?)
    }

    /// SmartCLIP scores: the image's CLS embedding under each prompt's hard mask.
    fn smart_scores(
        &self,
        net: &MaskNet,
        image: &EncodedImage,
        smart: &SmartPrompts,
    ) -> Result<Vec<SmartScore>, ModelError> {
        let threshold = net.config.mask_threshold;
        let sig = candle_nn::ops::sigmoid(&smart.logits)?;
        let hard = sig.ge(f64::from(threshold))?.to_dtype(DType::F32)?;
        let img = image.tokens.narrow(0, 0, 1)?;
        let cos = smartclip::masked_cosines(&img, &hard, &smart.texts)?
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

    /// Every scorer's scores of the prompts (z-scored together), and the shown scorer's
    /// functional-word replacements per prompt.
    fn dcsm_scores(
        &self,
        image: &EncodedImage,
        prompts: &EncodedPrompts,
    ) -> Result<DcsmVerdicts, ModelError> {
        let k = prompts.tokens.len();
        let Some(columns) = &prompts.columns else {
            return Ok((vec![Vec::new(); k], vec![Vec::new(); k]));
        };
        let maps = self.scorer_maps(image, columns)?;
        let mut scores = vec![Vec::with_capacity(self.scorers.len()); k];
        let mut shown = Vec::new();
        for (n, s) in self.scorers.iter().enumerate() {
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

    /// DCSMs, pooled cosines and softmax probabilities of the prompts against the image.
    pub fn score(
        &self,
        image: &EncodedImage,
        prompts: &EncodedPrompts,
    ) -> Result<Vec<PromptScore>, ModelError> {
        let scale = self.logit_scale_exp()?;
        let mut out = Vec::with_capacity(prompts.tokens.len());
        for (tok, t) in prompts.tokenized.iter().zip(&prompts.tokens) {
            let text_n = clip::l2_normalize(t)?;
            let map = dcsm::cosine_map(&image.normalized, &text_n)?;
            // Pooled cosine: CLS row against the EOS column.
            let clip_cosine = map.get(0, tok.eos_index());
            out.push(PromptScore {
                tokenized: tok.clone(),
                dcsm: map,
                clip_cosine,
                clip_prob: 0.0,
                dcsm_scores: Vec::new(),
                functional: Vec::new(),
                smartclip: None,
            });
        }
        if let (Some(net), Some(smart)) = (&self.smartclip, &prompts.smart) {
            for (s, v) in out.iter_mut().zip(self.smart_scores(net, image, smart)?) {
                s.smartclip = Some(v);
            }
        }
        let (scores, functional) = self.dcsm_scores(image, prompts)?;
        for ((s, sc), f) in out.iter_mut().zip(scores).zip(functional) {
            s.dcsm_scores = sc;
            s.functional = f;
        }
        let logits: Vec<f32> = out.iter().map(|s| s.clip_cosine * scale).collect();
        for (s, p) in out.iter_mut().zip(dcsm::softmax(&logits)) {
            s.clip_prob = p;
        }
        Ok(out)
    }
}

/// Milliseconds since `start`.
pub fn elapsed_ms(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1e3
}
