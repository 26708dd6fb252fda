//! The engine: a loaded checkpoint with its heads (DCSM scorers, SmartCLIP mask), encoding and
//! scoring; it keeps no state between calls (the caller owns the text cache).

mod cache;
mod encode;
mod families;
mod load;
mod score;
mod tiles;
mod types;
mod view;

use candle_core::{DType, Device};
use std::path::Path;
use std::time::Instant;

pub use crate::clip::siglip::{Siglip, SiglipConfig};
pub use crate::clip::{self, Clip, ClipConfig, MapSource};
pub use crate::error::ModelError;
pub use crate::io::pipeline::{ImageConvention, Pipeline, TextConvention};
pub use crate::io::preprocess::{self, CropRect, Decoded, PreprocessConfig, Preprocessed};
pub use crate::io::source::{self, ModelSource, Progress};
pub use crate::io::tokenizer::{self, ClipTokenizer, Tokenized, Word};

pub use crate::dcsm::{ScorerColumns, ScorerScore};
pub use crate::smartclip::{SmartPrompts, SmartScore};
pub use cache::{Part, TextCache};
pub use types::{EncodedImage, EncodedPrompts, Family, PromptScore, ScoreKind};
pub use view::{DenseImage, Layout, MapView, ViewMaps};

use crate::dcsm::scorer::Scorer;
use crate::smartclip::{self, MaskNet};
use std::sync::atomic::{AtomicU64, Ordering};

/// Prompts run through the text tower at once.
const TEXT_BATCH: usize = 64;

/// The towers of a checkpoint.
/// Both boxed: a loaded model is one allocation either way, and the enum stays small.
enum Backbone {
    Clip(Box<Clip>),
    Siglip(Box<Siglip>),
}

/// A loaded CLIP or SigLIP checkpoint with its tokenizer and preprocessing.
pub struct LoadedModel {
    backbone: Backbone,
    tokenizer: ClipTokenizer,
    preprocess: PreprocessConfig,
    name: String,
    device: Device,
    /// DCSM scorers trained for this backbone; the first is the one shown.
    scorers: Vec<Scorer>,
    /// SmartCLIP's mask network, when the checkpoint has one.
    smartclip: Option<MaskNet>,
    /// Names this model with its heads: changes whenever a head changes, so that a text cache
    /// filled before knows its encodings are stale.
    id: u64,
}

/// Scorer checkpoints a model folder may hold, by file stem.
pub const SCORER_STEMS: [&str; 2] = ["scorer", "scorer-grid"];

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

    /// Loads `config.json` + `model.safetensors` (+ optional `tokenizer.json`,
    /// `preprocessor_config.json`) from `dir`.
    pub fn from_folder(dir: &Path, name: &str) -> Result<Self, ModelError> {
        if !dir.is_dir() {
            return Err(ModelError::File {
                path: dir.to_path_buf(),
                message: "model folder does not exist".into(),
            });
        }
        if crate::io::openclip::is_openclip(dir) {
            return Self::from_openclip(dir, name);
        }
        let config_path = dir.join("config.json");
        let config_text = crate::io::read_small(&config_path, crate::io::MAX_SETTINGS_BYTES)?;
        match crate::clip::siglip::model_type(&config_text).as_deref() {
            Some("siglip") => return Self::from_siglip(dir, name, &config_text),
            Some(t @ ("siglip2" | "siglip_vision_model" | "siglip_text_model")) => {
                return Err(ModelError::Config(format!(
                    "config.json is a {t} model: clipscope reads SigLIP and fixed-resolution \
                     SigLIP 2 `SiglipModel` folders (model_type \"siglip\"), not NaFlex or \
                     single towers"
                )))
            }
            _ => {}
        }
        let config = ClipConfig::from_json(&config_text)?;
        let pipeline = Pipeline::from_config_json(&config_text)?;
        let weights = source::weights_file(dir)?;
        let device = Device::Cpu;
        let vb = load::tower_weights(&weights)?;
        let tokenizer_file = dir.join("tokenizer.json");
        let (clip, tokenizer) = load::beside_tokenizer(
            || {
                if tokenizer_file.is_file() {
                    ClipTokenizer::from_file(&tokenizer_file)
                } else {
                    ClipTokenizer::bundled()
                }
            },
            || {
                Clip::new(&config, false, vb).map_err(|e| {
                    ModelError::Weights(format!(
                        "{} does not fit config.json: {e}",
                        weights.display()
                    ))
                })
            },
        )?;
        let tokenizer = tokenizer.with_clean(pipeline.text);
        check_vocabulary(&tokenizer, config.text.vocab_size)?;
        let pre_file = dir.join("preprocessor_config.json");
        let preprocess = if pre_file.is_file() {
            let text = crate::io::read_small(&pre_file, crate::io::MAX_SETTINGS_BYTES)?;
            PreprocessConfig::from_json(&text, config.vision.image_size)?
        } else {
            PreprocessConfig::openai(config.vision.image_size)
        }
        .with_convention(pipeline.image);
        // A converted SmartCLIP checkpoint keeps the mask's settings in config.json.
        let smart_section = serde_json::from_str::<serde_json::Value>(&config_text)
            .ok()
            .and_then(|v| v.get("smartclip").cloned());
        let mut model = Self {
            backbone: Backbone::Clip(Box::new(clip)),
            tokenizer,
            preprocess,
            name: name.to_string(),
            device,
            scorers: Vec::new(),
            smartclip: None,
            id: next_id(),
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
        self.require_clip("a DCSM scorer")?;
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
        self.id = next_id();
        Ok(())
    }

    /// The DCSM scorers; the first is the one shown.
    pub fn scorers(&self) -> &[Scorer] {
        &self.scorers
    }

    /// Removes and returns the scorers (benchmarks time the model with and without them).
    pub fn take_scorers(&mut self) -> Vec<Scorer> {
        self.id = next_id();
        std::mem::take(&mut self.scorers)
    }

    /// Wraps an already built model (training, benchmarks, tests) with the bundled tokenizer.
    pub fn from_parts(clip: Clip, name: &str) -> Result<Self, ModelError> {
        Ok(Self::from_parts_with(clip, ClipTokenizer::bundled()?, name))
    }

    /// As `from_parts`, with a tokenizer already loaded.
    fn from_parts_with(clip: Clip, tokenizer: ClipTokenizer, name: &str) -> Self {
        let preprocess = PreprocessConfig::openai(clip.config().vision.image_size);
        Self {
            backbone: Backbone::Clip(Box::new(clip)),
            tokenizer,
            preprocess,
            name: name.into(),
            device: Device::Cpu,
            scorers: Vec::new(),
            smartclip: None,
            id: next_id(),
        }
    }

    /// Sets SmartCLIP's mask network after checking it fits this backbone.
    pub fn set_smartclip(&mut self, net: MaskNet) -> Result<(), ModelError> {
        self.require_clip("a SmartCLIP mask")?;
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
        self.id = next_id();
        Ok(())
    }

    /// Removes and returns the mask network (benchmarks time the model with and without it).
    pub fn take_smartclip(&mut self) -> Option<MaskNet> {
        self.id = next_id();
        self.smartclip.take()
    }

    /// SmartCLIP's mask network, when present.
    pub fn smartclip(&self) -> Option<&MaskNet> {
        self.smartclip.as_ref()
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The towers' sizes (for SigLIP, its sizes in CLIP's terms: context, grid, widths).
    pub fn config(&self) -> &ClipConfig {
        match &self.backbone {
            Backbone::Clip(c) => c.config(),
            Backbone::Siglip(s) => &s.config().sizes,
        }
    }

    pub fn family(&self) -> Family {
        match self.backbone {
            Backbone::Clip(_) => Family::Clip,
            Backbone::Siglip(_) => Family::Siglip,
        }
    }

    /// The CLIP towers; other families are refused with a message naming `what` needs them.
    pub fn clip_for(&self, what: &str) -> Result<&Clip, ModelError> {
        match &self.backbone {
            Backbone::Clip(c) => Ok(c),
            Backbone::Siglip(_) => Err(ModelError::Config(format!(
                "{what} needs a CLIP model; {} is SigLIP",
                self.name
            ))),
        }
    }

    fn require_clip(&self, what: &str) -> Result<(), ModelError> {
        self.clip_for(what).map(|_| ())
    }

    /// The CLIP towers (training, benchmarks); `Err` for another family.
    pub fn clip(&self) -> Result<&Clip, ModelError> {
        self.clip_for("this")
    }

    /// The SigLIP towers, when this is a SigLIP model.
    pub fn siglip(&self) -> Option<&Siglip> {
        match &self.backbone {
            Backbone::Siglip(s) => Some(s),
            Backbone::Clip(_) => None,
        }
    }

    /// The reference conventions this model's folder follows.
    pub fn pipeline(&self) -> Pipeline {
        Pipeline {
            image: self.preprocess.convention,
            text: self.tokenizer.clean(),
        }
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

    /// `exp(logit_scale)`, the temperature of the softmax over prompts (SigLIP: of its sigmoid).
    pub fn logit_scale_exp(&self) -> Result<f32, ModelError> {
        match &self.backbone {
            Backbone::Clip(c) => Ok(c
                .logit_scale()
                .to_dtype(DType::F32)?
                .to_scalar::<f32>()?
                .exp()),
            Backbone::Siglip(s) => Ok(s.logit_scale_and_bias()?.0.exp()),
        }
    }

    /// SigLIP's `logit_bias` (0 for CLIP, whose softmax over prompts has none).
    pub fn logit_bias(&self) -> Result<f32, ModelError> {
        match &self.backbone {
            Backbone::Clip(_) => Ok(0.0),
            Backbone::Siglip(s) => Ok(s.logit_scale_and_bias()?.1),
        }
    }
}

/// Refuses a tokenizer that knows more tokens than the model has embeddings for.
fn check_vocabulary(tokenizer: &ClipTokenizer, model_vocab: usize) -> Result<(), ModelError> {
    if tokenizer.vocab_size() > model_vocab {
        return Err(ModelError::Tokenizer(format!(
            "the tokenizer knows {} tokens but the model only {model_vocab}",
            tokenizer.vocab_size()
        )));
    }
    Ok(())
}

/// A fresh model id (see `LoadedModel::id`).
fn next_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Milliseconds since `start`.
pub fn elapsed_ms(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1e3
}
