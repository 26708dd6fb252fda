//! Trains the default CLIP on the shapes world: CLIP loss plus a FILIP-style token-level loss.

use candle_core::{DType, Device, IndexOp, Result, Tensor};
use candle_nn::{loss::cross_entropy, AdamW, Optimizer, ParamsAdamW, VarBuilder, VarMap};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::path::Path;

use super::data;
use crate::model::clip::{l2_normalize, Clip};
use crate::model::config::{Activation, ClipConfig, TextConfig, VisionConfig};
use crate::world::Split;

/// The default model's shape: 4-layer, width-128 towers, patch 32 on 224 px (7×7 patches).
pub fn default_config() -> ClipConfig {
    ClipConfig {
        text: TextConfig {
            vocab_size: 49408,
            hidden_size: 128,
            intermediate_size: 512,
            num_hidden_layers: 4,
            num_attention_heads: 4,
            max_position_embeddings: 32,
            layer_norm_eps: 1e-5,
            hidden_act: Activation::QuickGelu,
            bos_token_id: 49406,
            eos_token_id: 49407,
        },
        vision: VisionConfig {
            hidden_size: 128,
            intermediate_size: 512,
            num_hidden_layers: 4,
            num_attention_heads: 4,
            num_channels: 3,
            image_size: 224,
            patch_size: 32,
            layer_norm_eps: 1e-5,
            hidden_act: Activation::QuickGelu,
        },
        projection_dim: 128,
        logit_scale_init_value: (1.0f64 / 0.07).ln(),
    }
}

/// Training settings.
#[derive(Debug, Clone)]
pub struct Options {
    pub config: ClipConfig,
    pub steps: usize,
    pub batch: usize,
    pub lr: f64,
    pub seed: u64,
    /// Weight of the token-level (FILIP-style) loss; 0 trains with the CLIP loss alone.
    pub token_weight: f64,
    /// Weight of the grounding loss: each named object's colour and shape tokens against the
    /// patches of their own image, the object's patch the target (0: off).
    pub ground_weight: f64,
    pub warmup: usize,
    /// Start from these weights (a model.safetensors of the same shape) instead of random ones.
    pub init: Option<std::path::PathBuf>,
}

/// One step's numbers, for progress reports.
#[derive(Debug, Clone, Copy)]
pub struct StepReport {
    pub step: usize,
    pub loss: f32,
    pub clip_loss: f32,
    pub token_loss: f32,
    pub ground_loss: f32,
}

/// The losses of one batch.
struct Losses {
    total: Tensor,
    clip: Tensor,
    token: Tensor,
    ground: Tensor,
}

/// The losses of one batch, weighted into their total.
fn losses(
    model: &Clip,
    batch: &data::Batch,
    token_weight: f64,
    ground_weight: f64,
) -> Result<Losses> {
    let b = batch.eos.len();
    let img = model.image_tokens(&batch.pixels)?; // (B, 1+P, D)
    let txt = model.text_tokens(&batch.ids)?; // (B, T, D)
    let (_, t, d) = txt.dims3()?;
    let flat_index: Vec<u32> = batch
        .eos
        .iter()
        .enumerate()
        .map(|(i, e)| (i * t + e) as u32)
        .collect();
    let pooled_txt = txt
        .reshape((b * t, d))?
        .index_select(&Tensor::new(flat_index, txt.device())?, 0)?;
    let pooled_img = img.i((.., 0, ..))?;
    let scale = model.logit_scale().exp()?.clamp(1.0, 100.0)?;
    let targets = Tensor::arange(0u32, b as u32, img.device())?;
    let logits = l2_normalize(&pooled_img)?
        .matmul(&l2_normalize(&pooled_txt)?.t()?)?
        .broadcast_mul(&scale)?;
    let clip_loss =
        ((cross_entropy(&logits, &targets)? + cross_entropy(&logits.t()?, &targets)?)? * 0.5)?;

    // Token level: every patch against every word token of every caption in the batch.
    let patches = l2_normalize(&img.narrow(1, 1, img.dim(1)? - 1)?.contiguous()?)?; // (B, P, D)
    let p = patches.dim(1)?;
    let words = l2_normalize(&txt)?; // (B, T, D)
    let sims = patches
        .reshape((b * p, d))?
        .matmul(&words.reshape((b * t, d))?.t()?)?
        .reshape((b, p, b, t))?; // [image i, patch, caption j, token]
    let mask = batch.word_mask.reshape((1, 1, b, t))?;
    let counts = batch
        .word_mask
        .sum(1)?
        .clamp(1.0, f64::MAX)?
        .reshape((1, b))?; // per caption
                           // Caption → image: mean over the caption's words of their best patch.
    let best_patch = sims.max(1)?; // (B_i, B_j, T)
    let t2i = (best_patch
        .broadcast_mul(&mask.reshape((1, b, t))?)?
        .sum(2)?)
    .broadcast_div(&counts)?; // (B_i, B_j)
                              // Image → caption: mean over patches of their best word.
    let masked = sims.broadcast_add(&((mask - 1.0)? * 1e4)?)?;
    let i2t = masked.max(3)?.mean(1)?; // (B_i, B_j)
    let t2i = t2i.broadcast_mul(&scale)?;
    let i2t = i2t.broadcast_mul(&scale)?;
    let token_loss =
        ((cross_entropy(&i2t, &targets)? + cross_entropy(&t2i.t()?, &targets)?)? * 0.5)?;
    let ground = ground_loss(&patches, &words, batch, &scale)?;
    let total = ((&clip_loss + (&token_loss * token_weight)?)? + (&ground * ground_weight)?)?;
    Ok(Losses {
        total,
        clip: clip_loss,
        token: token_loss,
        ground,
    })
}

/// Cross-entropy of each grounded token over its own image's patches, the named object's patch
/// the target: (B, P, D) normalised patches, (B, T, D) normalised tokens. Zero without targets.
fn ground_loss(
    patches: &Tensor,
    words: &Tensor,
    batch: &data::Batch,
    scale: &Tensor,
) -> Result<Tensor> {
    if batch.ground.is_empty() {
        return Tensor::zeros((), DType::F32, patches.device());
    }
    let (b, p, _) = patches.dims3()?;
    let t = words.dim(1)?;
    let own = words
        .matmul(&patches.transpose(1, 2)?)?
        .reshape((b * t, p))?; // [caption·token, patch]
    let rows: Vec<u32> = batch
        .ground
        .iter()
        .map(|(i, g)| (i * t + g.token) as u32)
        .collect();
    let targets: Vec<u32> = batch.ground.iter().map(|(_, g)| g.patch as u32).collect();
    let n = rows.len();
    let logits = own
        .index_select(&Tensor::from_vec(rows, n, patches.device())?, 0)?
        .broadcast_mul(scale)?;
    cross_entropy(&logits, &Tensor::from_vec(targets, n, patches.device())?)
}

/// Keeps freed memory in the process: training allocates and frees the same large tensors every
/// step, and glibc's default of returning them to the system makes every step page-fault anew
/// (measured: 2.4 s → 1.5 s a step at batch 128).
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only tunes the allocator's thresholds; it is called before training starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 30);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}

/// Trains from scratch; `report` sees every step and may save checkpoints from the variables.
/// Returns the trained variables.
pub fn train(
    options: &Options,
    mut report: impl FnMut(StepReport, &VarMap),
) -> anyhow::Result<(VarMap, Clip)> {
    keep_freed_memory();
    let device = Device::Cpu;
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &device);
    let model = Clip::new(&options.config, true, vb)?;
    if let Some(init) = &options.init {
        super::load_vars(&varmap, init)?;
    }
    train_from(options, varmap, model, &mut report)
}

fn train_from(
    options: &Options,
    varmap: VarMap,
    model: Clip,
    report: &mut impl FnMut(StepReport, &VarMap),
) -> anyhow::Result<(VarMap, Clip)> {
    let batcher = data::Batcher::new(&options.config, options.seed)?;
    let params = ParamsAdamW {
        lr: options.lr,
        weight_decay: 0.05,
        ..Default::default()
    };
    let mut opt = AdamW::new(varmap.all_vars(), params)?;
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
    for step in 0..options.steps {
        let lr = schedule(options, step);
        opt.set_learning_rate(lr);
        let start = (step * options.batch) as u64;
        let batch = batcher.batch(Split::Train, start, options.batch, &mut rng)?;
        let l = losses(&model, &batch, options.token_weight, options.ground_weight)?;
        opt.backward_step(&l.total)?;
        let numbers = StepReport {
            step,
            loss: l.total.to_scalar()?,
            clip_loss: l.clip.to_scalar()?,
            token_loss: l.token.to_scalar()?,
            ground_loss: l.ground.to_scalar()?,
        };
        report(numbers, &varmap);
    }
    Ok((varmap, model))
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
    Ok(losses(model, &batch, 1.0, 0.0)?.total.to_scalar()?)
}
