//! `clipscope bench` for SigLIP base patch16-224 on random weights: load, image and text encode,
//! DCSM and a prompt edit (it has no DCSM scorer, SmartCLIP mask or other map views).

use anyhow::{Context, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use std::path::{Path, PathBuf};

use super::measure::{time, Row, PROMPTS};
use crate::clip::siglip::{Siglip, SiglipConfig};
use crate::engine::LoadedModel;

/// google/siglip-base-patch16-224's `config.json`: transformers' defaults.
const CONFIG: &str = r#"{"model_type": "siglip", "text_config": {"model_type": "siglip_text_model"}, "vision_config": {"model_type": "siglip_vision_model", "patch_size": 16}}"#;

/// The small SentencePiece model of the SigLIP fixtures: tokenising costs nothing beside the
/// towers, so any Unigram model of the right kind times the same path.
const SPIECE: &str = "tests/fixtures/siglip/A/spiece.model";

/// The random-weight SigLIP folder (written once).
pub(super) fn model_dir(cache: &Path) -> Result<PathBuf> {
    let dir = cache.join("siglip-b16");
    if dir.join("model.safetensors").is_file() {
        return Ok(dir);
    }
    eprintln!("writing random siglip-b16 weights to {}", dir.display());
    std::fs::create_dir_all(&dir)?;
    let config = SiglipConfig::from_json(CONFIG)?;
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    Siglip::new(&config, vb)?;
    for var in varmap.all_vars() {
        var.set(&Tensor::randn(0f32, 0.02, var.shape(), &Device::Cpu)?)?;
    }
    varmap.save(dir.join("model.safetensors"))?;
    crate::atomic::write(&dir.join("config.json"), CONFIG.as_bytes())?;
    std::fs::copy(SPIECE, dir.join("spiece.model")).with_context(|| {
        format!("the SigLIP bench reads its tokenizer from {SPIECE} (run it from the source tree)")
    })?;
    Ok(dir)
}

/// The SigLIP rows, measured as `bench_model` measures CLIP's.
pub(super) fn rows(cache: &Path, warmup: usize, runs: usize) -> Result<Vec<Row>> {
    let name = "siglip-b16";
    let dir = model_dir(cache)?;
    let load = || Ok(LoadedModel::from_folder(&dir, name)?);
    let mut rows = vec![time(name, "load", 1, (runs / 4).max(3), load)?];
    let model = load()?;
    let siglip = model
        .siglip()
        .context("the SigLIP bench folder did not load as SigLIP")?;
    let side = model.config().vision.image_size;
    let pixels = Tensor::randn(0f32, 1.0, (1, 3, side, side), &Device::Cpu)?;
    rows.push(time(name, "image_encode", warmup, runs, || {
        Ok(siglip.image(&pixels)?)
    })?);
    let prompts: Vec<String> = PROMPTS.iter().map(|p| p.to_string()).collect();
    rows.push(time(name, "text_encode_8", warmup, runs, || {
        Ok(model.encode_prompts(&prompts)?)
    })?);
    let pre = model.preprocess(&image::DynamicImage::new_rgb8(side as u32, side as u32));
    let image = model.encode_pixels(&pre)?;
    let encoded = model.encode_prompts(&prompts)?;
    rows.push(time(name, "dcsm_8", warmup, runs, || {
        Ok(model.score(&image, &encoded)?)
    })?);
    rows.push(time(name, "prompt_edit_8", warmup, runs, || {
        let p = model.encode_prompts(&prompts)?;
        Ok(model.score(&image, &p)?)
    })?);
    let mut edit = prompts.clone();
    let mut serial = 0;
    let mut cache = crate::engine::TextCache::default();
    rows.push(time(name, "prompt_edit_1_of_8", warmup, runs, || {
        serial += 1;
        edit[7] = format!("{} {serial}", PROMPTS[7]);
        let p = model.encode_prompts_cached(&edit, &mut cache)?;
        Ok(model.score(&image, &p)?)
    })?);
    Ok(rows)
}
