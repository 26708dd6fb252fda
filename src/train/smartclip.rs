//! Trains SmartCLIP's mask network on a frozen CLIP with the paper's losses, over shapes-world
//! captions made of one sentence per object (partial captions name a subset of the objects).

use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::path::Path;

use super::optim::AdamW;
use crate::engine::{tokenizer, Clip, LoadedModel, Tokenized};
use crate::smartclip::{self, MaskNet, SmartConfig};
use crate::world::{self, Scene, Split};

/// Training settings.
#[derive(Debug, Clone)]
pub struct Options {
    pub steps: usize,
    /// Image-caption pairs per step.
    pub batch: usize,
    /// Training scenes encoded once and drawn from.
    pub pool: usize,
    pub lr: f64,
    pub seed: u64,
    /// Continue from a training state written by `Progress::save_state`.
    pub resume: Option<std::path::PathBuf>,
}

/// One step's numbers.
#[derive(Debug, Clone, Copy)]
pub struct StepReport {
    pub step: usize,
    pub total: f32,
    pub sparse: f32,
    pub sidm: f32,
    pub dism: f32,
}

/// The mask network's settings for a backbone (width = text width, a head per 64 dimensions).
pub fn config_for(model: &LoadedModel) -> anyhow::Result<SmartConfig> {
    let c = model.config();
    let w = c.text.hidden_size;
    if w != c.projection_dim {
        anyhow::bail!(
            "SmartCLIP masks the embedding with a text-width mask: text width {w} must equal \
             the embedding size {}",
            c.projection_dim
        );
    }
    Ok(SmartConfig {
        mask_width: w,
        mask_heads: (w / 64).max(1),
        mask_layers: 1,
        text_pad_id: model.tokenizer().eos_id(),
        score_scale: 100.0,
        mask_threshold: 0.5,
    })
}

/// A caption naming a random non-empty subset of the scene's objects, one sentence each.
pub fn partial_caption(scene: &Scene, rng: &mut ChaCha8Rng) -> String {
    let mut sentences: Vec<String> = scene
        .objects
        .iter()
        .map(|o| format!("{}.", world::phrase(o.size_word(), o.colour, o.shape)))
        .collect();
    sentences.shuffle(rng);
    let keep = rng.random_range(1..=sentences.len());
    sentences.truncate(keep);
    sentences.join(" ")
}

/// Unnormalised pooled image embeddings (N, E) of training scenes `0..n`.
fn encode_pool(model: &LoadedModel, seed: u64, n: usize) -> anyhow::Result<(Vec<Scene>, Tensor)> {
    let scenes: Vec<Scene> = (0..n as u64)
        .map(|i| world::scene(seed, Split::Train, i))
        .collect();
    let mut parts = Vec::new();
    for chunk in scenes.chunks(64) {
        let tokens = super::image_tokens(model, chunk)?;
        parts.push(tokens.narrow(1, 0, 1)?.squeeze(1)?);
    }
    Ok((scenes, Tensor::cat(&parts, 0)?.contiguous()?))
}

/// What a progress callback sees after each step: the numbers and the state to checkpoint.
pub struct Progress<'a> {
    pub report: StepReport,
    pub net: &'a MaskNet,
    pub varmap: &'a VarMap,
    pub optimizer: &'a AdamW,
}

impl Progress<'_> {
    /// Writes the whole training state (weights, moments, step) to one file.
    pub fn save_state(&self, path: &Path) -> anyhow::Result<()> {
        super::save_state(self.varmap, self.optimizer, &[], path)
    }
}

/// Trains the mask network; `report` sees every step.
pub fn train(
    model: &LoadedModel,
    options: &Options,
    mut report: impl FnMut(&Progress),
) -> anyhow::Result<(MaskNet, VarMap)> {
    let config = config_for(model)?;
    let (scenes, images) = encode_pool(model, options.seed, options.pool.max(options.batch))?;
    let varmap = VarMap::new();
    let vb = super::seeded::var_builder(&varmap, options.seed, DType::F32, &Device::Cpu);
    let net = MaskNet::new(config.clone(), true, vb.pp("mask_net"))?;
    let mut opt = AdamW::new(&varmap, options.lr, 0.0)?;
    if let Some(path) = &options.resume {
        super::restore_state(&varmap, &mut opt, path)?;
    }
    let context = model.config().text.max_position_embeddings;
    for step in opt.steps..options.steps {
        let mut rng = super::step_rng(options.seed, step);
        let mut order: Vec<usize> = (0..scenes.len()).collect();
        order.shuffle(&mut rng);
        let picked = &order[..options.batch];
        let captions: Vec<Tokenized> = picked
            .iter()
            .map(|&i| model.tokenize(&partial_caption(&scenes[i], &mut rng)))
            .collect::<Result<_, _>>()?;
        let ids = tokenizer::pad_ids(&captions, config.text_pad_id, context, &Device::Cpu)?;
        let hidden = model.clip()?.text_hidden(&ids)?.detach();
        let eos: Vec<usize> = captions.iter().map(Tokenized::eos_index).collect();
        let texts = model
            .clip()?
            .project_text(&Clip::pool_text(&hidden, &eos)?)?
            .detach();
        let idx = Tensor::from_vec(
            picked.iter().map(|&i| i as u32).collect::<Vec<_>>(),
            picked.len(),
            &Device::Cpu,
        )?;
        let batch_images = images.index_select(&idx, 0)?;
        let masks = smartclip::hard_mask(&net.forward(&hidden)?, config.mask_threshold)?;
        let l = smartclip::losses(&batch_images, &masks, &texts, f64::from(config.score_scale))?;
        opt.backward_step(&l.total)?;
        report(&Progress {
            report: StepReport {
                step,
                total: l.total.to_scalar()?,
                sparse: l.sparse.to_scalar()?,
                sidm: l.sidm.to_scalar()?,
                dism: l.dism.to_scalar()?,
            },
            net: &net,
            varmap: &varmap,
            optimizer: &opt,
        });
    }
    Ok((net, varmap))
}

/// Writes `smartclip.json` + `smartclip.safetensors` (`mask_net.*`, f32) into `dir`.
pub fn save(net: &MaskNet, varmap: &VarMap, dir: &Path) -> anyhow::Result<()> {
    super::save_vars(varmap, &[], &dir.join("smartclip.safetensors"), DType::F32)?;
    let json = serde_json::to_string_pretty(&net.config)?;
    crate::atomic::write(&dir.join("smartclip.json"), json.as_bytes())?;
    Ok(())
}
