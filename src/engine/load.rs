//! The embedded model's loader, and the tokenizer built on a second thread beside every loader's towers.

use candle_core::{DType, Device};
use candle_nn::VarBuilder;

use super::{source, Clip, ClipConfig, ClipTokenizer, LoadedModel, ModelError, Scorer};
use crate::smartclip;

/// A model file's weights, f32 on the CPU, each `Linear` weight handed out already transposed
/// (`clip::kept_transposed`), as the towers keep it.
pub(super) fn tower_weights(weights: &std::path::Path) -> Result<VarBuilder<'static>, ModelError> {
    crate::io::weights::var_builder_transposing(
        weights,
        DType::F32,
        &Device::Cpu,
        crate::clip::kept_transposed,
    )
}

/// Runs `towers` here and `tokenizer` on a second thread at the same time: parsing CLIP's BPE
/// (49,408 tokens, 48,894 merges) costs about as much as reading the embedded model's weights.
/// The towers' error is reported first.
pub(super) fn beside_tokenizer<T: Send>(
    tokenizer: impl FnOnce() -> Result<ClipTokenizer, ModelError> + Send,
    towers: impl FnOnce() -> Result<T, ModelError>,
) -> Result<(T, ClipTokenizer), ModelError> {
    std::thread::scope(|s| {
        let handle = s.spawn(tokenizer);
        let built = towers();
        let tokenizer = handle
            .join()
            .map_err(|_| ModelError::Tokenizer("the tokenizer's loading thread panicked".into()))?;
        Ok((built?, tokenizer?))
    })
}

impl LoadedModel {
    /// The shapes-world model compiled into the binary.
    pub fn embedded() -> Result<Self, ModelError> {
        let device = Device::Cpu;
        let (clip, tokenizer) = beside_tokenizer(ClipTokenizer::bundled, || {
            let config = ClipConfig::from_json(source::embedded::CONFIG)?;
            let vb =
                VarBuilder::from_slice_safetensors(source::embedded::WEIGHTS, DType::F32, &device)
                    .map_err(|e| ModelError::WeightsRead {
                        what: "embedded model".to_string(),
                        source: e,
                    })?;
            Clip::new(&config, false, vb).map_err(|e| ModelError::WeightsRead {
                what: "embedded model does not fit its config".to_string(),
                source: e,
            })
        })?;
        let mut model = Self::from_parts_with(clip, tokenizer, source::embedded::NAME);
        for (json, weights) in source::embedded::SCORERS {
            let vb =
                VarBuilder::from_slice_safetensors(weights, DType::F32, &device).map_err(|e| {
                    ModelError::WeightsRead {
                        what: "embedded scorer".to_string(),
                        source: e,
                    }
                })?;
            model.add_scorer(Scorer::from_json_and_weights(json, vb)?)?;
        }
        let (json, weights) = source::embedded::SMARTCLIP;
        let config = smartclip::parse_config(json, "embedded smartclip.json")?;
        let vb = VarBuilder::from_slice_safetensors(weights, DType::F32, &device).map_err(|e| {
            ModelError::WeightsRead {
                what: "embedded SmartCLIP mask".to_string(),
                source: e,
            }
        })?;
        model.set_smartclip(smartclip::build(config, vb, "embedded SmartCLIP mask")?)?;
        Ok(model)
    }
}
