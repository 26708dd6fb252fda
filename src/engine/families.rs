//! Checkpoints of other layouts in the engine: OpenCLIP folders onto our CLIP towers, and SigLIP
//! `SiglipModel` folders with their text pass (prompts padded to the model's context, pooled at
//! the last position).

use candle_core::Device;
use std::path::Path;

use super::types::EncodedPrompts;
use super::{Backbone, LoadedModel, TEXT_BATCH};
use crate::clip::siglip::{Siglip, SiglipConfig};
use crate::clip::{Clip, ClipConfig};
use crate::error::ModelError;
use crate::io::preprocess::PreprocessConfig;
use crate::io::source;
use crate::io::tokenizer::{self, ClipTokenizer, Tokenized};

impl LoadedModel {
    /// An OpenCLIP folder (`open_clip_config.json` + `open_clip_model.safetensors`), with
    /// OpenAI's preprocessing and text clean-up as open_clip runs them.
    pub(super) fn from_openclip(dir: &Path, name: &str) -> Result<Self, ModelError> {
        let device = Device::Cpu;
        let oc = crate::io::openclip::read(dir, &device)?;
        let config = ClipConfig::from_json(&oc.config_json)?;
        let (clip, tokenizer) = super::load::beside_tokenizer(ClipTokenizer::bundled, || {
            Clip::new(&config, false, oc.weights).map_err(|e| {
                ModelError::Weights(format!(
                    "{} does not fit {}: {e}",
                    dir.join(crate::io::openclip::WEIGHTS).display(),
                    crate::io::openclip::CONFIG
                ))
            })
        })?;
        Ok(Self {
            backbone: Backbone::Clip(Box::new(clip)),
            tokenizer: tokenizer.with_clean(oc.pipeline.text),
            preprocess: oc.preprocess,
            name: name.to_string(),
            device,
            scorers: Vec::new(),
            smartclip: None,
            id: super::next_id(),
        })
    }

    /// A transformers `SiglipModel` folder: `config.json`, `model.safetensors`, a tokenizer
    /// (`tokenizer.json`, else `spiece.model`) and `preprocessor_config.json`.
    pub(super) fn from_siglip(
        dir: &Path,
        name: &str,
        config_text: &str,
    ) -> Result<Self, ModelError> {
        let config = SiglipConfig::from_json(config_text)?;
        let weights = source::weights_file(dir)?;
        let device = Device::Cpu;
        let vb = super::load::tower_weights(&weights)?;
        let tok_config = dir.join("tokenizer_config.json");
        let tok_config = if tok_config.is_file() {
            Some(crate::io::read_small(
                &tok_config,
                crate::io::MAX_SETTINGS_BYTES,
            )?)
        } else {
            None
        };
        let (json, spiece) = (dir.join("tokenizer.json"), dir.join("spiece.model"));
        let pad = Some(config.pad_token_id);
        let (siglip, tokenizer) = super::load::beside_tokenizer(
            || {
                if json.is_file() {
                    ClipTokenizer::from_sentencepiece_json(&json, tok_config.as_deref(), pad)
                } else if spiece.is_file() {
                    ClipTokenizer::from_spiece(&spiece, tok_config.as_deref())
                } else {
                    Err(ModelError::File {
                        path: dir.to_path_buf(),
                        message: "a SigLIP folder needs tokenizer.json or spiece.model".into(),
                    })
                }
            },
            || {
                Siglip::new(&config, vb).map_err(|e| {
                    ModelError::Weights(format!(
                        "{} does not fit config.json (SigLIP): {e}",
                        weights.display()
                    ))
                })
            },
        )?;
        super::check_vocabulary(&tokenizer, config.sizes.text.vocab_size)?;
        let side = config.sizes.vision.image_size;
        let pre_file = dir.join("preprocessor_config.json");
        let preprocess = if pre_file.is_file() {
            let text = crate::io::read_small(&pre_file, crate::io::MAX_SETTINGS_BYTES)?;
            PreprocessConfig::siglip_from_json(&text, side)?
        } else {
            PreprocessConfig::siglip(side)
        };
        Ok(Self {
            backbone: Backbone::Siglip(Box::new(siglip)),
            tokenizer,
            preprocess,
            name: name.to_string(),
            device,
            scorers: Vec::new(),
            smartclip: None,
            id: super::next_id(),
        })
    }

    /// SigLIP's text pass: every prompt padded to the full context (as SigLIP was trained), no
    /// attention mask; the shown tokens are the prompt's own, the pooled one the last position.
    pub(super) fn encode_prompts_siglip(
        &self,
        siglip: &Siglip,
        tokenized: Vec<Tokenized>,
    ) -> Result<EncodedPrompts, ModelError> {
        let context = self.config().text.max_position_embeddings;
        let pad = self.tokenizer.pad_id();
        let mut tokens = Vec::with_capacity(tokenized.len());
        let mut pooled = Vec::with_capacity(tokenized.len());
        for chunk in tokenized.chunks(TEXT_BATCH) {
            let ids = tokenizer::pad_ids(chunk, pad, context, &self.device)?;
            let all = siglip.text_tokens(&ids)?;
            for (b, t) in chunk.iter().enumerate() {
                let row = all.get(b)?;
                tokens.push(row.narrow(0, 0, t.ids.len())?);
                pooled.push(row.get(context - 1)?);
            }
        }
        Ok(EncodedPrompts {
            tokenized,
            tokens,
            pooled,
            columns: None,
            smart: None,
        })
    }
}
