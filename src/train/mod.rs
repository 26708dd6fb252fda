//! Training loops for the models shipped with clipscope.

pub mod clip;
pub mod data;
pub mod dcsm;
pub mod smartclip;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use std::collections::HashMap;
use std::path::Path;

use crate::model::LoadedModel;
use crate::world::{self, Scene};

/// Renders scenes and runs the model's vision tower: (N, 1 + patches, D) projected tokens.
pub fn image_tokens(model: &LoadedModel, scenes: &[Scene]) -> anyhow::Result<Tensor> {
    let mut pixels = Vec::new();
    let mut side = 0;
    for s in scenes {
        let pre = model.preprocess(&image::DynamicImage::ImageRgb8(world::render(s)));
        side = pre.side;
        pixels.extend_from_slice(&pre.pixels);
    }
    let x = Tensor::from_vec(pixels, (scenes.len(), 3, side, side), &Device::Cpu)?;
    Ok(model.clip().image_tokens(&x)?)
}

/// Writes a variable map (plus `extra` tensors) as safetensors, atomically, in `dtype`.
pub fn save_vars(
    varmap: &VarMap,
    extra: &[(&str, &Tensor)],
    path: &Path,
    dtype: DType,
) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut tensors: HashMap<String, Tensor> = {
        let data = varmap
            .data()
            .lock()
            .map_err(|_| anyhow::anyhow!("variable map poisoned"))?;
        data.iter()
            .map(|(k, v)| Ok((k.clone(), v.as_tensor().to_dtype(dtype)?)))
            .collect::<candle_core::Result<_>>()?
    };
    for (name, t) in extra {
        tensors.insert((*name).to_string(), t.to_dtype(dtype)?);
    }
    crate::atomic::write_with(path, |tmp| {
        candle_core::safetensors::save(&tensors, tmp).map_err(std::io::Error::other)
    })?;
    Ok(())
}
