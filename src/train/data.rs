//! Batches of shapes-world scenes as model input: pixels, padded caption ids, EOS positions.

use candle_core::{Device, Result, Tensor};
use rand_chacha::ChaCha8Rng;

use crate::model::tokenizer::{self, Tokenized};
use crate::model::{preprocess, ClipConfig, ClipTokenizer, PreprocessConfig};
use crate::world::{self, Scene, Split};

/// A training batch.
pub struct Batch {
    /// (B, 3, S, S) normalised pixels.
    pub pixels: Tensor,
    /// (B + M, T) ids padded with EOS: the B true captions, then M hard negatives.
    pub ids: Tensor,
    /// EOS position of each caption.
    pub eos: Vec<usize>,
    /// (B + M, T) 1 for word tokens (between SOS and EOS), else 0.
    pub word_mask: Tensor,
    pub scenes: Vec<Scene>,
    /// The B true captions, then the M hard negatives (each false of its own scene).
    pub captions: Vec<String>,
    /// (image, caption index) of every hard negative: the caption is false of that image.
    pub negatives: Vec<(usize, usize)>,
    /// Grounding targets: (caption, target) for every object a caption names.
    pub ground: Vec<(usize, super::ground::Target)>,
}

/// Normalised CHW pixels of a rendered scene.
pub fn scene_pixels(scene: &Scene, config: &PreprocessConfig) -> Vec<f32> {
    let image = image::DynamicImage::ImageRgb8(world::render(scene));
    preprocess::preprocess(&image, config).pixels
}

/// Tokenises captions and pads them into one (B, T) id tensor with a word mask; also returns the
/// EOS positions and the tokenised captions.
pub fn pad_captions(
    tokenizer: &ClipTokenizer,
    captions: &[String],
    context: usize,
    device: &Device,
) -> Result<(Tensor, Vec<usize>, Tensor, Vec<Tokenized>)> {
    let tokenized: Vec<_> = captions
        .iter()
        .map(|c| {
            tokenizer
                .encode(c, context)
                .map_err(candle_core::Error::wrap)
        })
        .collect::<Result<_>>()?;
    let ids = tokenizer::pad_ids(&tokenized, tokenizer.eos_id(), 0, device)?;
    let width = ids.dim(1)?;
    let mut mask = Vec::with_capacity(width * tokenized.len());
    for t in &tokenized {
        let n = t.ids.len();
        mask.extend((0..width).map(|i| if i > 0 && i + 1 < n { 1f32 } else { 0.0 }));
    }
    let eos = tokenized.iter().map(Tokenized::eos_index).collect();
    let mask = Tensor::from_vec(mask, (tokenized.len(), width), device)?;
    Ok((ids, eos, mask, tokenized))
}

/// Makes batches of fresh scenes for one model.
pub struct Batcher {
    pub seed: u64,
    pub tokenizer: ClipTokenizer,
    pub pre: PreprocessConfig,
    pub context: usize,
    /// Patches per side of the image grid.
    pub grid: usize,
    /// Also draw captions that name shapes without colours (see `Scene::training_caption`).
    pub shape_words: bool,
    pub device: Device,
}

impl Batcher {
    pub fn new(config: &ClipConfig, seed: u64) -> anyhow::Result<Self> {
        Ok(Self {
            seed,
            tokenizer: ClipTokenizer::bundled()?,
            pre: PreprocessConfig::openai(config.vision.image_size),
            context: config.text.max_position_embeddings,
            grid: config.vision.image_size / config.vision.patch_size,
            shape_words: false,
            device: Device::Cpu,
        })
    }

    /// Scenes `start..start+size` of `split`, one true caption each, then the hard negatives.
    pub fn batch(
        &self,
        split: Split,
        start: u64,
        size: usize,
        rng: &mut ChaCha8Rng,
    ) -> Result<Batch> {
        let scenes: Vec<Scene> = (0..size as u64)
            .map(|i| world::scene(self.seed, split, start + i))
            .collect();
        let drawn: Vec<_> = scenes
            .iter()
            .map(|s| s.training_caption(rng, self.shape_words))
            .collect();
        let mut captions: Vec<String> = drawn.iter().map(|c| c.text.clone()).collect();
        let mut negatives = Vec::new();
        for (i, c) in drawn.into_iter().enumerate() {
            if let Some(n) = c.negative {
                negatives.push((i, captions.len()));
                captions.push(n);
            }
        }
        let side = self.pre.crop as usize;
        let per_scene: Vec<Vec<f32>> = {
            use rayon::prelude::*;
            scenes
                .par_iter()
                .map(|s| scene_pixels(s, &self.pre))
                .collect()
        };
        let pixels: Vec<f32> = per_scene.concat();
        let pixels = Tensor::from_vec(pixels, (size, 3, side, side), &self.device)?;
        let (ids, eos, word_mask, tokenized) =
            pad_captions(&self.tokenizer, &captions, self.context, &self.device)?;
        let ground = scenes
            .iter()
            .zip(&tokenized)
            .enumerate()
            .flat_map(|(i, (scene, t))| {
                super::ground::targets(scene, &t.words, self.grid)
                    .into_iter()
                    .map(move |g| (i, g))
            })
            .collect();
        Ok(Batch {
            pixels,
            ids,
            eos,
            word_mask,
            scenes,
            captions,
            negatives,
            ground,
        })
    }
}
