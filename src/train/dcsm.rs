//! Trains a DCSM scorer on a frozen CLIP with the shapes world's hard negatives: images and their
//! opposite images against captions and opposite captions, symmetric cross-entropy, Adam.

use candle_core::{DType, Device, Tensor};
use candle_nn::{loss::cross_entropy, VarMap};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::Path;

use super::optim::AdamW;
use crate::dcsm::scorer::{
    self, global_zscore, Architecture, ColumnMode, Replacement, Scorer, ScorerConfig,
    FUNCTIONAL_WORDS,
};
use crate::engine::{clip::l2_normalize, LoadedModel};
use crate::world::{self, contrast, Split};

/// Text columns of the scorer (the paper's 30).
pub const COLUMNS: usize = 30;

/// Training settings.
#[derive(Debug, Clone)]
pub struct Options {
    pub architecture: Architecture,
    pub mode: ColumnMode,
    pub steps: usize,
    /// Scenes per step; each brings its opposite, so the logit matrix is (2n × 2n).
    pub scenes: usize,
    pub lr: f64,
    pub seed: u64,
    /// Score each image only against its own caption and its opposite (2 × 2 per scene)
    /// instead of every caption of the batch: the hard negatives alone, 2n/4 times cheaper a
    /// scene, so many more scenes a step.
    pub pairs: bool,
    /// Probe families the contrasts are drawn from, uniformly over this list (repeat a family
    /// to weigh it up). Must not be empty.
    pub families: Vec<crate::world::Family>,
    /// With `pairs`: z-score each image's two maps together (as `score` does for a probe's
    /// captions) instead of the whole batch at once (the paper's training).
    pub zscore_per_image: bool,
    /// Start from this scorer's weights (a `scorer*.safetensors` of the same shape).
    pub init: Option<std::path::PathBuf>,
    /// Continue from a training state written by `save_state` (weights, table, moments, step).
    pub resume: Option<std::path::PathBuf>,
}

/// One step's numbers.
#[derive(Debug, Clone, Copy)]
pub struct StepReport {
    pub step: usize,
    pub loss: f32,
    /// Fraction of images whose own caption scored highest in the batch.
    pub accuracy: f32,
}

/// The scorer's configuration for a backbone.
pub fn config_for(model: &LoadedModel, options: &Options) -> ScorerConfig {
    let (gr, gc) = model.grid();
    ScorerConfig {
        mode: options.mode,
        architecture: options.architecture,
        rows: 1 + gr * gc,
        columns: COLUMNS.min(model.config().text.max_position_embeddings),
        functional_words: FUNCTIONAL_WORDS.iter().map(|w| w.to_string()).collect(),
        pad_id: model.tokenizer().eos_id(),
    }
}

/// One batch: standardised maps, image-major: (2n·2n, rows, columns), or with `pairs`
/// (n·2·2, rows, columns) ordered scene, image (own, opposite), caption (own, opposite).
struct Batch {
    maps: Tensor,
    images: usize,
}

/// Renders `n` training scenes and their opposites, encodes both sides with the frozen model
/// and builds every image × caption map with functional-word columns replaced.
fn batch(
    model: &LoadedModel,
    scorer: &Scorer,
    first_scene: u64,
    n: usize,
    options: &Options,
    rng: &mut ChaCha8Rng,
) -> anyhow::Result<Batch> {
    let seed = options.seed;
    let mut scenes = Vec::with_capacity(2 * n);
    let mut captions = Vec::with_capacity(2 * n);
    let (mut opposites, mut opposite_captions) = (Vec::new(), Vec::new());
    let mut index = first_scene;
    while scenes.len() < n {
        // The family first (a family listed twice is drawn twice as often), then a scene
        // that supports it.
        let family = options.families[rng.random_range(0..options.families.len())];
        loop {
            let scene = world::scene(seed, Split::Train, index);
            index += 1;
            if let Some(c) = contrast::contrast_of(&scene, rng, false, &[family]) {
                scenes.push(scene);
                captions.push(c.caption);
                opposites.push(c.opposite);
                opposite_captions.push(c.opposite_caption);
                break;
            }
        }
    }
    scenes.extend(opposites);
    captions.extend(opposite_captions);
    let images = l2_normalize(&super::image_tokens(model, &scenes)?)?; // (2n, R, D)
    let c = &scorer.config;
    let cols = model.encode_columns(&captions, c.columns, c.pad_id)?;
    let k = captions.len();
    let (r, d) = (images.dim(1)?, images.dim(2)?);
    let maps = images
        .reshape((k * r, d))?
        .matmul(&cols.normalized.reshape((k * c.columns, d))?.t()?)?
        .reshape((k, r, k, c.columns))?
        .transpose(1, 2)?
        .contiguous()?
        .reshape((k * k, r, c.columns))?;
    let reps: Vec<Vec<Replacement>> = cols
        .tokenized
        .iter()
        .zip(&cols.word_starts)
        .map(|(t, starts)| scorer.replacements(&t.text, starts))
        .collect();
    // (image, caption) of every map used.
    let pairs: Vec<(usize, usize)> = if options.pairs {
        (0..n)
            .flat_map(|i| {
                [i, n + i]
                    .into_iter()
                    .flat_map(move |img| [(img, i), (img, n + i)])
            })
            .collect()
    } else {
        (0..k).flat_map(|i| (0..k).map(move |j| (i, j))).collect()
    };
    let maps = if options.pairs {
        let index: Vec<u32> = pairs.iter().map(|(i, j)| (i * k + j) as u32).collect();
        let len = index.len();
        maps.index_select(&Tensor::from_vec(index, len, &Device::Cpu)?, 0)?
    } else {
        maps
    };
    let per_map: Vec<Vec<Replacement>> = pairs.iter().map(|(_, j)| reps[*j].clone()).collect();
    let maps = scorer.replace(&maps, &per_map)?;
    let maps = if options.pairs && options.zscore_per_image {
        // Each image with its two captions, as an eval probe scores them.
        let (m, r, c) = maps.dims3()?;
        let groups = (0..m / 2)
            .map(|g| global_zscore(&maps.narrow(0, 2 * g, 2)?))
            .collect::<candle_core::Result<Vec<_>>>()?;
        Tensor::cat(&groups, 0)?.reshape((m, r, c))?
    } else {
        global_zscore(&maps)?
    };
    Ok(Batch { maps, images: k })
}

/// What a progress callback sees after each step: the numbers and the state to checkpoint.
pub struct Progress<'a> {
    pub report: StepReport,
    pub scorer: &'a Scorer,
    pub varmap: &'a VarMap,
    pub optimizer: &'a AdamW,
}

impl Progress<'_> {
    /// Writes the whole training state (weights, table, moments, step) to one file.
    pub fn save_state(&self, path: &Path) -> anyhow::Result<()> {
        let table = [("functional_embeddings", self.scorer.table())];
        super::save_state(self.varmap, self.optimizer, &table, path)
    }
}

/// Trains a scorer for `model`; `report` sees every step with the scorer so far (to save
/// checkpoints). Returns the scorer and its variables.
pub fn train(
    model: &LoadedModel,
    options: &Options,
    mut report: impl FnMut(&Progress),
) -> anyhow::Result<(Scorer, VarMap)> {
    if options.families.is_empty() {
        anyhow::bail!("no probe families to train on");
    }
    let config = config_for(model, options);
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
    let table = scorer::init_table(config.functional_words.len(), config.rows, &mut rng);
    let mut table = Tensor::from_vec(
        table,
        (config.functional_words.len(), config.rows),
        &Device::Cpu,
    )?;
    // The starting file is read once: its table before the network exists, then its variables.
    let init = match options.resume.as_ref().or(options.init.as_ref()) {
        Some(path) => {
            let tensors = super::read_tensors(path)?;
            if let Some(t) = tensors.get("functional_embeddings") {
                table = t.to_dtype(DType::F32)?;
            }
            Some((path, tensors))
        }
        None => None,
    };
    let varmap = VarMap::new();
    let vb = super::seeded::var_builder(&varmap, options.seed, DType::F32, &Device::Cpu);
    let scorer = Scorer::with_table(config, vb, table)?;
    let mut opt = AdamW::new(&varmap, options.lr, 0.0)?;
    if let Some((path, tensors)) = init {
        super::set_vars(&varmap, &tensors, path)?;
        if options.resume.is_some() {
            super::restore_state(&varmap, &mut opt, path)?;
        }
    }
    for step in opt.steps..options.steps {
        let mut rng = super::step_rng(options.seed, step);
        let first = (step * options.scenes * 2) as u64;
        let b = batch(model, &scorer, first, options.scenes, options, &mut rng)?;
        let k = b.images;
        let scores = scorer.network(&b.maps)?;
        let (logits, by_caption, targets) = if options.pairs {
            // (scene, image, caption) → rows per image over its 2 captions, and per caption.
            let n = k / 2;
            let cube = scores.reshape((n, 2, 2))?;
            let t: Vec<u32> = (0..n).flat_map(|_| [0u32, 1]).collect();
            let targets = Tensor::from_vec(t, k, &Device::Cpu)?;
            let by_caption = cube.transpose(1, 2)?.contiguous()?.reshape((k, 2))?;
            (cube.reshape((k, 2))?, by_caption, targets)
        } else {
            let logits = scores.reshape((k, k))?; // [image, caption]
            let by_caption = logits.t()?.contiguous()?;
            let targets = Tensor::arange(0u32, k as u32, &Device::Cpu)?;
            (logits, by_caption, targets)
        };
        let loss =
            ((cross_entropy(&logits, &targets)? + cross_entropy(&by_caption, &targets)?)? * 0.5)?;
        opt.backward_step(&loss)?;
        let best = logits.argmax(1)?.to_vec1::<u32>()?;
        let want = targets.to_vec1::<u32>()?;
        let right = best.iter().zip(&want).filter(|(b, w)| b == w).count();
        let numbers = StepReport {
            step,
            loss: loss.to_scalar()?,
            accuracy: right as f32 / k as f32,
        };
        report(&Progress {
            report: numbers,
            scorer: &scorer,
            varmap: &varmap,
            optimizer: &opt,
        });
    }
    Ok((scorer, varmap))
}

/// Writes `<stem>.json` + `<stem>.safetensors` (f32) into `dir`.
pub fn save(scorer: &Scorer, varmap: &VarMap, dir: &Path, stem: &str) -> anyhow::Result<()> {
    let weights = dir.join(format!("{stem}.safetensors"));
    let table = [("functional_embeddings", scorer.table())];
    super::save_vars(varmap, &table, &weights, DType::F32)?;
    let json = serde_json::to_string_pretty(&scorer.config)?;
    crate::atomic::write(&dir.join(format!("{stem}.json")), json.as_bytes())?;
    Ok(())
}
