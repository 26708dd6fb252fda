//! The dense CLIP engine: configuration, weights, preprocessing, tokenizer and the forward pass.

pub mod clip;
pub mod config;
pub mod preprocess;
pub mod source;
pub mod tokenizer;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use std::path::{Path, PathBuf};
use std::time::Instant;

pub use clip::Clip;
pub use config::ClipConfig;
pub use preprocess::{CropRect, PreprocessConfig, Preprocessed};
pub use source::{ModelSource, Progress};
pub use tokenizer::{ClipTokenizer, Tokenized, Word};

use crate::dcsm::{self, Matrix};

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
}

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
        Self::from_parts(clip, source::embedded::NAME)
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
        let config = ClipConfig::from_file(&dir.join("config.json"))?;
        let weights = source::weights_file(dir)?;
        let device = Device::Cpu;
        // SAFETY: the file is mapped read-only and not modified while the model lives; candle
        // copies each tensor out of the map when it is built.
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[&weights], DType::F32, &device) }
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
        Ok(Self {
            clip,
            tokenizer,
            preprocess,
            name: name.to_string(),
            device,
        })
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
            Device::Cpu => format!("CPU ({} threads)", candle_core::utils::get_num_threads()),
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

    /// Runs the text tower on a batch of prompts (padded with EOS; the causal mask keeps every
    /// position up to a prompt's own EOS independent of the padding).
    pub fn encode_prompts(&self, prompts: &[String]) -> Result<EncodedPrompts, ModelError> {
        if prompts.is_empty() {
            return Err(ModelError::Prompt("no prompts given".into()));
        }
        let tokenized = prompts
            .iter()
            .map(|p| self.tokenize(p))
            .collect::<Result<Vec<_>, _>>()?;
        // Batches of bounded size keep peak memory flat for a thousand prompts at once.
        let mut tokens = Vec::with_capacity(tokenized.len());
        for chunk in tokenized.chunks(TEXT_BATCH) {
            let ids = tokenizer::pad_ids(chunk, self.tokenizer.eos_id(), &self.device)?;
            let all = self.clip.text_tokens(&ids)?;
            for (b, t) in chunk.iter().enumerate() {
                tokens.push(all.get(b)?.narrow(0, 0, t.ids.len())?);
            }
        }
        Ok(EncodedPrompts { tokenized, tokens })
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
            });
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
