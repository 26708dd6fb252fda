//! Trains the default CLIP on the shapes world: CLIP loss plus a FILIP-style token-level loss.

use candle_core::{DType, Device, IndexOp, Result, Tensor};
use candle_nn::{loss::cross_entropy, VarMap};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::path::Path;

use super::data;
use super::losses::{
    composition_loss, ground_loss, negative_loss, object_loss, token_level_loss, vocabulary_loss,
};
use super::optim::AdamW;
use crate::clip::config::ClipConfig;
use crate::clip::{l2_normalize, Clip};
use crate::world::Split;

pub use super::options::{default_config, Options, StepReport, TextSide};

/// The losses of one batch.
struct Losses {
    total: Tensor,
    clip: Tensor,
    token: Tensor,
    negative: Tensor,
    ground: Tensor,
    vocabulary: Tensor,
    object: Tensor,
    composition: Tensor,
    patch_shape: Tensor,
    colour_field: Tensor,
    recoloured: Tensor,
    paired: Tensor,
}

/// The losses of one batch, weighted into their total. Images are contrasted with every caption
/// of the batch, hard negatives included; captions (true ones only) with every image.
fn losses(model: &Clip, batch: &data::Batch, options: &Weights) -> Result<Losses> {
    let b = batch.scenes.len();
    let img = match &batch.kept {
        Some(rows) => model.image_tokens_kept(&batch.pixels, rows)?, // (B, 1+K, D)
        None => model.image_tokens(&batch.pixels)?,                  // (B, 1+P, D)
    };
    // (B + M, T, D); a frozen text tower is never updated, so backpropagation need not reach it.
    let all_txt = match options.text {
        TextSide::Learns => model.text_tokens(&batch.ids)?,
        TextSide::Frozen => model.text_tokens(&batch.ids)?.detach(),
        TextSide::Projection => model.project_text(&model.text_hidden(&batch.ids)?.detach())?,
    };
    let (n, t, d) = all_txt.dims3()?;
    let flat_index: Vec<u32> = batch
        .eos
        .iter()
        .enumerate()
        .map(|(i, e)| (i * t + e) as u32)
        .collect();
    let pooled_txt = all_txt
        .reshape((n * t, d))?
        .index_select(&Tensor::new(flat_index, all_txt.device())?, 0)?;
    let pooled_img = img.i((.., 0, ..))?;
    let scale = model.logit_scale().exp()?.clamp(1.0, 100.0)?;
    let targets = Tensor::arange(0u32, b as u32, img.device())?;
    let all_logits = l2_normalize(&pooled_img)?
        .matmul(&l2_normalize(&pooled_txt)?.t()?)?
        .broadcast_mul(&scale)?; // (B, B + M + V)
    let logits = all_logits.narrow(1, 0, batch.vocabulary_start)?; // (B, B + M)
    let clip_loss = ((cross_entropy(&logits, &targets)?
        + cross_entropy(&logits.narrow(1, 0, b)?.t()?, &targets)?)?
        * 0.5)?;
    let negative = negative_loss(&logits, &batch.negatives)?;

    let txt = all_txt.narrow(0, 0, b)?;
    let patches = l2_normalize(&img.narrow(1, 1, img.dim(1)? - 1)?.contiguous()?)?; // (B, P, D)
    let words = l2_normalize(&txt)?; // (B, T, D)
    let token_loss = if options.token > 0.0 {
        token_level_loss(&patches, &words, &batch.word_mask.narrow(0, 0, b)?, &scale)?
    } else {
        Tensor::zeros((), DType::F32, img.device())?
    };
    let ground = ground_loss(&patches, &words, batch, &scale)?;
    let (vocabulary, object) = match &batch.vocabulary_mask {
        Some(mask) => {
            let v = mask.dim(1)?;
            let vocab_logits = all_logits.narrow(1, batch.vocabulary_start, v)?;
            let object = match options.object > 0.0 {
                true => object_loss(&vocab_logits, &data::object_ranks(&batch.scenes))?,
                false => Tensor::zeros((), DType::F32, img.device())?,
            };
            let vocabulary = vocabulary_loss(&vocab_logits, mask, data::VOCABULARY_PAIRS)?;
            (vocabulary, object)
        }
        None => (
            Tensor::zeros((), DType::F32, img.device())?,
            Tensor::zeros((), DType::F32, img.device())?,
        ),
    };
    let composition = if options.composition > 0.0 && batch.vocabulary_mask.is_some() {
        let phrases = pooled_txt.narrow(0, batch.vocabulary_start, data::VOCABULARY_PAIRS)?;
        composition_loss(&l2_normalize(&phrases)?, &options.quads)?
    } else {
        Tensor::zeros((), DType::F32, img.device())?
    };
    let zero = || Tensor::zeros((), DType::F32, img.device());
    let s = match batch.vocabulary_mask {
        Some(_) => {
            let start = batch.vocabulary_start + data::VOCABULARY_PAIRS;
            let shapes = l2_normalize(&pooled_txt.narrow(0, start, crate::world::SHAPES.len())?)?;
            super::shapes::shape_losses(model, batch, options, &patches, &shapes, &scale)?
        }
        None => super::shapes::ShapeLosses {
            patch_shape: zero()?,
            colour_field: zero()?,
            recoloured: zero()?,
            paired: zero()?,
        },
    };
    let total = (((&clip_loss + (&token_loss * options.token)?)? + (&ground * options.ground)?)?
        + (&negative * options.negative)?)?;
    let total =
        ((total + (&vocabulary * options.vocabulary)?)? + (&composition * options.composition)?)?;
    let total = (total + (&object * options.object)?)?;
    let dense =
        ((&s.patch_shape * options.patch_shape)? + (&s.colour_field * options.colour_field)?)?;
    let total = ((total + dense)? + (&s.recoloured * options.recoloured)?)?;
    let total = (total + (&s.paired * options.paired)?)?;
    Ok(Losses {
        total,
        clip: clip_loss,
        token: token_loss,
        negative,
        ground,
        vocabulary,
        object,
        composition,
        patch_shape: s.patch_shape,
        colour_field: s.colour_field,
        recoloured: s.recoloured,
        paired: s.paired,
    })
}

/// The weights of the losses besides the CLIP loss.
pub(super) struct Weights {
    pub(super) token: f64,
    pub(super) ground: f64,
    pub(super) negative: f64,
    pub(super) vocabulary: f64,
    pub(super) object: f64,
    pub(super) composition: f64,
    pub(super) patch_shape: f64,
    pub(super) colour_field: f64,
    pub(super) recoloured: f64,
    pub(super) paired: f64,
    /// `data::composition_quads()`, computed once.
    pub(super) quads: Vec<[u32; 4]>,
    /// What of the text side learns (`Options::text`): no gradient flows into the rest.
    pub(super) text: TextSide,
}

/// What a progress callback sees after each step: the numbers, and the state to checkpoint.
pub struct Progress<'a> {
    pub report: StepReport,
    pub varmap: &'a VarMap,
    pub optimizer: &'a AdamW,
}

impl Progress<'_> {
    /// Writes the whole training state (weights, moments, step) to one safetensors file.
    pub fn save_state(&self, path: &Path) -> anyhow::Result<()> {
        super::save_state(self.varmap, self.optimizer, &[], path)
    }
}

/// Trains (from random weights, `init` or a resumed state); `report` sees every step and may
/// save checkpoints. Returns the trained variables.
pub fn train(
    options: &Options,
    mut report: impl FnMut(&Progress),
) -> anyhow::Result<(VarMap, Clip)> {
    crate::alloc::keep_all_freed_memory();
    let device = Device::Cpu;
    let varmap = VarMap::new();
    let vb = super::seeded::var_builder(&varmap, options.seed, DType::F32, &device);
    let model = Clip::new(&options.config, true, vb)?;
    let mut opt = AdamW::new(&varmap, options.lr, 0.05)?;
    let held: &[&str] = match options.text {
        TextSide::Learns => &[],
        TextSide::Frozen => &["text_model.", "text_projection."],
        TextSide::Projection => &["text_model."],
    };
    if !held.is_empty() {
        let held = opt.freeze(held);
        tracing::info!("text side frozen ({:?}): {held} values", options.text);
    }
    if let Some(path) = &options.resume {
        super::restore_state(&varmap, &mut opt, path)?;
    } else if let Some(init) = &options.init {
        load_init(&varmap, init, &options.config, options.seed)?;
    } else if options.whiten_patches {
        let w = super::whiten::whiten_patches(&varmap, &options.config, options.seed)?;
        tracing::info!(
            "patch embedding whitened from {} patches: largest eigenvalue {:.3e}, epsilon {:.3e}",
            w.patches,
            w.largest,
            w.cutoff
        );
    }
    let mut batcher = data::Batcher::new(&options.config, options.seed)?;
    batcher.shape_words = options.shape_words;
    batcher.vocabulary = options.vocabulary_weight > 0.0
        || options.object_weight > 0.0
        || options.composition_weight > 0.0
        || options.patch_shape_weight > 0.0
        || options.colour_field_weight > 0.0
        || options.recoloured_weight > 0.0
        || options.paired_weight > 0.0;
    if options.colour_field_weight > 0.0 {
        batcher.fields = options.fields;
    }
    if options.recoloured_weight > 0.0 || options.paired_weight > 0.0 {
        batcher.recoloured = options.recoloured;
        batcher.recoloured_small = options.recoloured_small;
        batcher.paired = options.paired_weight > 0.0;
    }
    batcher.keep_tokens = options.keep_tokens;
    let weights = Weights {
        token: options.token_weight,
        ground: options.ground_weight,
        negative: options.negative_weight,
        vocabulary: options.vocabulary_weight,
        object: options.object_weight,
        composition: options.composition_weight,
        patch_shape: options.patch_shape_weight,
        colour_field: options.colour_field_weight,
        recoloured: options.recoloured_weight,
        paired: options.paired_weight,
        quads: data::composition_quads(),
        text: options.text,
    };
    let end = options.stop_at.unwrap_or(options.steps).min(options.steps);
    for step in opt.steps..end {
        opt.lr = schedule(options, step);
        let mut rng = super::step_rng(options.seed, step);
        let start = (step * options.batch) as u64;
        let t0 = std::time::Instant::now();
        let batch = batcher.batch(Split::Train, start, options.batch, &mut rng)?;
        let t1 = std::time::Instant::now();
        let l = losses(&model, &batch, &weights)?;
        let t2 = std::time::Instant::now();
        opt.backward_step(&l.total)?;
        let t3 = std::time::Instant::now();
        let numbers = StepReport {
            step,
            loss: l.total.to_scalar()?,
            clip_loss: l.clip.to_scalar()?,
            token_loss: l.token.to_scalar()?,
            negative_loss: l.negative.to_scalar()?,
            ground_loss: l.ground.to_scalar()?,
            vocabulary_loss: l.vocabulary.to_scalar()?,
            object_loss: l.object.to_scalar()?,
            composition_loss: l.composition.to_scalar()?,
            patch_shape_loss: l.patch_shape.to_scalar()?,
            colour_field_loss: l.colour_field.to_scalar()?,
            recoloured_loss: l.recoloured.to_scalar()?,
            paired_loss: l.paired.to_scalar()?,
            data_seconds: (t1 - t0).as_secs_f32(),
            forward_seconds: (t2 - t1).as_secs_f32(),
            backward_seconds: (t3 - t2).as_secs_f32(),
        };
        report(&Progress {
            report: numbers,
            varmap: &varmap,
            optimizer: &opt,
        });
    }
    Ok((varmap, model))
}

/// Spread of the noise that sets a widened tower's copied units apart, relative to each weight's.
const WIDEN_NOISE: f32 = 0.2;

/// Sets the variables from a model.safetensors of the same towers; a vision position table
/// made for another patch grid is resized bicubically (as `interpolate_pos_encoding`), and a
/// narrower or shallower vision tower is grown to the config's (`grow::widen_vision`, then
/// `grow::deepen_vision`; `seed` draws the widening's noise).
fn load_init(varmap: &VarMap, path: &Path, config: &ClipConfig, seed: u64) -> anyhow::Result<()> {
    let mut tensors = super::read_tensors(path)?;
    let width = config.vision.hidden_size;
    super::grow::widen_vision(&mut tensors, width, WIDEN_NOISE, seed)?;
    super::grow::deepen_vision(&mut tensors, varmap, config.vision.num_hidden_layers)?;
    let key = "vision_model.embeddings.position_embedding.weight";
    if let Some(table) = tensors.get(key) {
        let side = config.vision.grid_side();
        let resized = crate::clip::interpolate::position_table(table, side)?;
        tensors.insert(key.to_string(), resized);
    }
    super::set_vars(varmap, &tensors, path)
}

/// Linear warm-up, then cosine decay to 5% of the peak.
fn schedule(options: &Options, step: usize) -> f64 {
    if step < options.warmup {
        return options.lr * (step + 1) as f64 / options.warmup as f64;
    }
    let t = (step - options.warmup) as f64 / (options.steps - options.warmup).max(1) as f64;
    options.lr * (0.05 + 0.95 * 0.5 * (1.0 + (std::f64::consts::PI * t).cos()))
}

/// Writes the model as a Hugging Face `CLIPModel` folder (config.json + model.safetensors).
pub fn save(varmap: &VarMap, config: &ClipConfig, dir: &Path, dtype: DType) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    super::save_vars(varmap, &[], &dir.join("model.safetensors"), dtype)?;
    let json = serde_json::to_string_pretty(&config.to_hf_json())?;
    crate::atomic::write(&dir.join("config.json"), json.as_bytes())?;
    Ok(())
}

/// Loss after training vs before, on one fixed validation batch (for tests and reports).
pub fn validation_loss(
    model: &Clip,
    config: &ClipConfig,
    seed: u64,
    size: usize,
) -> anyhow::Result<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let batch = data::Batcher::new(config, seed)?.batch(Split::Validation, 0, size, &mut rng)?;
    let weights = Weights {
        token: 1.0,
        ground: 0.0,
        negative: 0.0,
        vocabulary: 0.0,
        object: 0.0,
        composition: 0.0,
        patch_shape: 0.0,
        colour_field: 0.0,
        recoloured: 0.0,
        paired: 0.0,
        quads: Vec::new(),
        text: TextSide::Learns,
    };
    Ok(losses(model, &batch, &weights)?.total.to_scalar()?)
}
