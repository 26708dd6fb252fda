//! Training loops for the models shipped with clipscope.

pub mod clip;
pub mod data;
pub mod dcsm;
pub mod fields;
pub mod ground;
pub mod grow;
pub mod keep;
mod losses;
pub mod optim;
mod options;
pub mod recolour;
mod seeded;
mod shapes;
pub mod smartclip;
pub mod whiten;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use std::collections::HashMap;
use std::path::Path;

use crate::engine::LoadedModel;
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
    Ok(model.clip()?.image_tokens(&x)?)
}

/// Sets every variable of `varmap` from a safetensors file, converting each tensor to the
/// variable's dtype (the shipped models are f16, training runs in f32). Every variable must be in
/// the file with its shape.
pub fn load_vars(varmap: &VarMap, path: &Path) -> anyhow::Result<()> {
    set_vars(varmap, &read_tensors(path)?, path)
}

/// Every tensor of a safetensors file we start training from.
pub fn read_tensors(path: &Path) -> anyhow::Result<HashMap<String, Tensor>> {
    candle_core::safetensors::load(path, &Device::Cpu)
        .map_err(|e| anyhow::anyhow!("cannot start from {}: {e}", path.display()))
}

/// As `load_vars`, from tensors already read from `path`.
pub fn set_vars(
    varmap: &VarMap,
    tensors: &HashMap<String, Tensor>,
    path: &Path,
) -> anyhow::Result<()> {
    let data = varmap
        .data()
        .lock()
        .map_err(|_| anyhow::anyhow!("variable map poisoned"))?;
    for (name, var) in data.iter() {
        let t = tensors.get(name).ok_or_else(|| {
            anyhow::anyhow!("cannot start from {}: it has no {name}", path.display())
        })?;
        var.set(&t.to_dtype(var.dtype())?)
            .map_err(|e| anyhow::anyhow!("cannot start from {}: {name}: {e}", path.display()))?;
    }
    Ok(())
}

/// The name under which a training state stores its step count.
const STEPS_KEY: &str = "adam.steps";

/// Writes a whole training state to one safetensors file: the variables, `extra` tensors the
/// trainer needs back, the optimiser's moments and its step count. A run resumed from it with
/// `restore_state` continues exactly where this one stood.
pub fn save_state(
    varmap: &VarMap,
    optimizer: &optim::AdamW,
    extra: &[(&str, &Tensor)],
    path: &Path,
) -> anyhow::Result<()> {
    let moments = optimizer.state()?;
    // Stored as f32 like every tensor of the file (exact up to 2^24 steps).
    let steps = Tensor::new(&[optimizer.steps as f32], &Device::Cpu)?;
    let mut all: Vec<(&str, &Tensor)> = extra.to_vec();
    all.extend(moments.iter().map(|(k, t)| (k.as_str(), t)));
    all.push((STEPS_KEY, &steps));
    save_vars(varmap, &all, path, DType::F32)
}

/// Reads a state written by `save_state` into `varmap` and `optimizer`; returns every tensor of
/// the file (for the trainer's extras).
pub fn restore_state(
    varmap: &VarMap,
    optimizer: &mut optim::AdamW,
    path: &Path,
) -> anyhow::Result<HashMap<String, Tensor>> {
    let tensors = read_tensors(path)?;
    set_vars(varmap, &tensors, path)?;
    let steps = tensors
        .get(STEPS_KEY)
        .ok_or_else(|| anyhow::anyhow!("{} is not a training state", path.display()))?
        .to_dtype(DType::F32)?
        .to_vec1::<f32>()?
        .first()
        .map_or(0, |s| s.round() as usize);
    optimizer
        .restore(&tensors, steps)
        .map_err(|e| anyhow::anyhow!("cannot resume from {}: {e}", path.display()))?;
    Ok(tensors)
}

/// The random generator of one training step: the same for a step whether the run went through
/// or was resumed there.
pub fn step_rng(seed: u64, step: usize) -> rand_chacha::ChaCha8Rng {
    use rand::SeedableRng;
    rand_chacha::ChaCha8Rng::seed_from_u64(
        seed ^ (step as u64 + 1).wrapping_mul(0xA24B_AED4_963E_E407),
    )
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

#[cfg(test)]
mod tests {
    use super::*;
    use candle_nn::{Init, VarBuilder};

    fn vars(value: f64) -> VarMap {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        vb.get_with_hints((2, 3), "a.weight", Init::Const(value))
            .unwrap();
        varmap
    }

    #[test]
    fn starts_from_an_f16_file_and_names_what_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.safetensors");
        save_vars(&vars(0.25), &[], &path, DType::F16).unwrap();
        let target = vars(0.0);
        load_vars(&target, &path).unwrap();
        let loaded = target.data().lock().unwrap()["a.weight"]
            .as_tensor()
            .clone();
        assert_eq!(loaded.dtype(), DType::F32);
        assert_eq!(loaded.to_vec2::<f32>().unwrap(), vec![vec![0.25f32; 3]; 2]);

        let other = VarMap::new();
        let vb = VarBuilder::from_varmap(&other, DType::F32, &Device::Cpu);
        vb.get_with_hints(4, "b.bias", Init::Const(0.0)).unwrap();
        let err = load_vars(&other, &path).unwrap_err().to_string();
        assert!(err.contains("b.bias"), "{err}");
    }
}
