//! Batches of shapes-world scenes as model input: pixels, padded caption ids, EOS positions.

use candle_core::{Device, Result, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::keep::Kept;
pub use super::recolour::Recoloured;

use crate::engine::{preprocess, ClipConfig, ClipTokenizer, PreprocessConfig};
use crate::io::tokenizer::{self, Tokenized};
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
    /// Index of the first vocabulary caption (`captions.len()` without them): the training
    /// colour-shape phrases, then the shape words, appended after the hard negatives.
    pub vocabulary_start: usize,
    /// (B, V) 0 where the vocabulary caption is true of the image (the scene holds that object,
    /// or that shape), −10⁴ where it is not; `None` without vocabulary captions.
    pub vocabulary_mask: Option<Tensor>,
    /// Dense shape labels: (image × patches + patch, index in `SHAPES`) for every patch that
    /// lies inside exactly one object (`ground::shape_labels`).
    pub shape_patches: Vec<(u32, u32)>,
    /// (F, 3, S, S) colour fields (`fields::field`), `None` when the batcher draws none.
    pub fields: Option<Tensor>,
    /// One-object scenes in off-palette colours (`recolour::recoloured`), `None` when the
    /// batcher draws none.
    pub recoloured: Option<Recoloured>,
    /// With token dropping (`Batcher::keep_tokens`), the rows of the embedded image tokens that
    /// go through the vision tower (`keep::Kept::rows`); `ground` and `shape_patches` number
    /// the kept patches then.
    pub kept: Option<Tensor>,
}

/// Mixed into the seed of the generator that picks the kept tokens.
const KEEP_SALT: u64 = 0x6b65_6570_746f_6b73;

/// How many vocabulary captions name a colour-shape pair (the rest name a shape alone).
pub const VOCABULARY_PAIRS: usize =
    world::COLOURS.len() * world::SHAPES.len() - world::HELD_OUT.len();

/// The colour-shape pairs seen in training, in the vocabulary's order.
fn training_pairs() -> impl Iterator<Item = (world::Colour, world::Shape)> {
    world::COLOURS
        .iter()
        .flat_map(|&c| world::SHAPES.iter().map(move |&s| (c, s)))
        .filter(|pair| !world::HELD_OUT.contains(pair))
}

/// Every parallelogram of the training colour-shape pairs, as indices into `vocabulary()`:
/// `[(c, s), (c, s'), (c', s), (c', s')]` for two colours and two shapes whose four pairs are
/// all seen in training (a held-out pair is never one of them).
pub fn composition_quads() -> Vec<[u32; 4]> {
    let pairs: Vec<_> = training_pairs().collect();
    let at = |c, s| pairs.iter().position(|&p| p == (c, s)).map(|i| i as u32);
    let (colours, shapes) = (world::COLOURS, world::SHAPES);
    let mut quads = Vec::new();
    for (i, &c) in colours.iter().enumerate() {
        for &c2 in &colours[i + 1..] {
            for (j, &s) in shapes.iter().enumerate() {
                for &s2 in &shapes[j + 1..] {
                    if let (Some(a), Some(b), Some(x), Some(y)) =
                        (at(c, s), at(c, s2), at(c2, s), at(c2, s2))
                    {
                        quads.push([a, b, x, y]);
                    }
                }
            }
        }
    }
    quads
}

/// The vocabulary captions: "a red circle" for every colour-shape pair seen in training (never a
/// held-out one; `VOCABULARY_PAIRS` of them), then "a circle" for every shape.
pub fn vocabulary() -> Vec<String> {
    training_pairs()
        .map(|(c, s)| world::phrase(None, c, s))
        .chain(world::SHAPES.iter().map(|s| format!("a {}", s.word())))
        .collect()
}

/// The per-object ranking of `losses::object_loss`: for every object of every scene whose
/// colour-shape pair is in the vocabulary, (image, the pair's column, the columns it is ranked
/// against: its colour with every other shape in the vocabulary, leaving out shapes the scene
/// also holds in that colour, which are true too). Objects with no rival are skipped.
pub fn object_ranks(scenes: &[Scene]) -> Vec<(u32, u32, Vec<u32>)> {
    let pairs: Vec<_> = training_pairs().collect();
    let column = |c, s| pairs.iter().position(|&p| p == (c, s)).map(|i| i as u32);
    let mut out = Vec::new();
    for (image, scene) in scenes.iter().enumerate() {
        for o in &scene.objects {
            let Some(own) = column(o.colour, o.shape) else {
                continue;
            };
            let rivals: Vec<u32> = world::SHAPES
                .iter()
                .filter(|&&s| s != o.shape && !scene.has(o.colour, s))
                .filter_map(|&s| column(o.colour, s))
                .collect();
            if !rivals.is_empty() {
                out.push((image as u32, own, rivals));
            }
        }
    }
    out
}

/// Whether each vocabulary caption is true of the scene, in `vocabulary()`'s order.
fn vocabulary_truth(scene: &Scene) -> Vec<bool> {
    let pairs = training_pairs().map(|(c, s)| scene.has(c, s));
    let shapes = world::SHAPES
        .iter()
        .map(|&s| scene.objects.iter().any(|o| o.shape == s));
    pairs.chain(shapes).collect()
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
    /// Append the vocabulary captions to every batch (see `vocabulary`).
    pub vocabulary: bool,
    /// Colour fields to draw beside every batch (0: none).
    pub fields: usize,
    /// Off-palette one-object scenes to draw beside every batch (0: none).
    pub recoloured: usize,
    /// Share of them shrunk to a small object (`recolour::shrunk`).
    pub recoloured_small: f64,
    /// Draw each recoloured scene's twin in its object's own colour too (`Recoloured::twins`).
    pub paired: bool,
    /// Patches of each image that go through the vision tower (`keep::Kept`; 0: all of them).
    pub keep_tokens: usize,
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
            vocabulary: false,
            fields: 0,
            recoloured: 0,
            recoloured_small: 0.0,
            paired: false,
            keep_tokens: 0,
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
        let vocabulary_start = captions.len();
        let vocabulary_mask = if self.vocabulary {
            captions.extend(vocabulary());
            let mask: Vec<f32> = scenes
                .iter()
                .flat_map(vocabulary_truth)
                .map(|t| if t { 0.0 } else { -1e4 })
                .collect();
            let v = mask.len() / size.max(1);
            Some(Tensor::from_vec(mask, (size, v), &self.device)?)
        } else {
            None
        };
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
        let mut ground: Vec<(usize, super::ground::Target)> = scenes
            .iter()
            .zip(&tokenized)
            .enumerate()
            .flat_map(|(i, (scene, t))| {
                super::ground::targets(scene, &t.words, self.grid)
                    .into_iter()
                    .map(move |g| (i, g))
            })
            .collect();
        let fields = if self.fields > 0 {
            let images: Vec<image::RgbImage> = (0..self.fields)
                .map(|_| super::fields::field(rng))
                .collect();
            let pixels: Vec<f32> = images
                .into_iter()
                .flat_map(|i| {
                    preprocess::preprocess(&image::DynamicImage::ImageRgb8(i), &self.pre).pixels
                })
                .collect();
            Some(Tensor::from_vec(
                pixels,
                (self.fields, 3, side, side),
                &self.device,
            )?)
        } else {
            None
        };
        let mut shape_patches = self.shape_patches(&scenes);
        // Token dropping draws from its own generator, so the scenes and captions of a run are
        // the same with it as without.
        let mut keep_rng = ChaCha8Rng::seed_from_u64(self.seed ^ KEEP_SALT ^ start);
        let kept = self.kept(&scenes, &mut keep_rng);
        if let Some(k) = &kept {
            ground = k.targets(ground);
            shape_patches = k.labels(&shape_patches);
        }
        let recoloured = match self.recoloured > 0 {
            true => Some(self.recoloured_part(rng, &mut keep_rng)?),
            false => None,
        };
        Ok(Batch {
            pixels,
            ids,
            eos,
            word_mask,
            scenes,
            captions,
            negatives,
            ground,
            vocabulary_start,
            vocabulary_mask,
            shape_patches,
            fields,
            recoloured,
            kept: self.rows(kept.as_ref())?,
        })
    }

    /// The patches each scene keeps under token dropping (`None` without it).
    pub(super) fn kept(&self, scenes: &[Scene], rng: &mut ChaCha8Rng) -> Option<Kept> {
        Kept::draw(scenes, self.grid, self.keep_tokens, rng)
    }

    /// `Kept::rows` as a tensor.
    pub(super) fn rows(&self, kept: Option<&Kept>) -> Result<Option<Tensor>> {
        kept.map(|k| Tensor::new(k.rows(), &self.device))
            .transpose()
    }

    /// `ground::shape_labels` of every scene, each patch numbered across the batch.
    pub(super) fn shape_patches(&self, scenes: &[Scene]) -> Vec<(u32, u32)> {
        let per_image = self.grid * self.grid;
        (scenes.iter().enumerate())
            .flat_map(|(i, scene)| {
                super::ground::shape_labels(scene, self.grid)
                    .into_iter()
                    .map(move |(p, s)| ((i * per_image + p) as u32, s as u32))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_vocabulary_marks_exactly_what_each_scene_holds() {
        let captions = vocabulary();
        let pairs = VOCABULARY_PAIRS;
        assert_eq!(pairs, world::COLOURS.len() * world::SHAPES.len() - 5);
        assert_eq!(captions.len(), pairs + world::SHAPES.len());
        assert_eq!(training_pairs().count(), pairs);
        for i in 0..50 {
            let scene = world::scene(4, Split::Train, i);
            let truth = vocabulary_truth(&scene);
            for (caption, true_of_scene) in captions.iter().zip(&truth) {
                let named = scene
                    .objects
                    .iter()
                    .any(|o| *caption == o.phrase() || *caption == format!("a {}", o.shape.word()));
                assert_eq!(*true_of_scene, named, "{caption:?} in scene {i}");
            }
        }
        let batcher = Batcher {
            vocabulary: true,
            ..Batcher::new(&crate::train::clip::default_config(), 4).unwrap()
        };
        let mut rng = <ChaCha8Rng as rand::SeedableRng>::seed_from_u64(1);
        let batch = batcher.batch(Split::Train, 0, 6, &mut rng).unwrap();
        assert_eq!(
            batch.captions.len(),
            batch.vocabulary_start + captions.len()
        );
        let mask = batch.vocabulary_mask.unwrap().to_vec2::<f32>().unwrap();
        assert_eq!(mask.len(), 6);
        assert!(mask
            .iter()
            .all(|row| row.contains(&0.0) && row.contains(&-1e4)));
    }

    #[test]
    fn each_object_is_ranked_against_shapes_its_colour_lacks_in_the_scene() {
        let captions = vocabulary();
        let mut seen = 0;
        for i in 0..50 {
            let scene = world::scene(4, Split::Train, i);
            for (image, own, rivals) in object_ranks(std::slice::from_ref(&scene)) {
                assert_eq!(image, 0);
                let own = &captions[own as usize];
                let o = scene.objects.iter().find(|o| o.phrase() == *own).unwrap();
                for r in &rivals {
                    let rival = &captions[*r as usize];
                    assert!((*r as usize) < VOCABULARY_PAIRS, "{rival}");
                    let same_colour = world::SHAPES
                        .iter()
                        .any(|&s| s != o.shape && *rival == world::phrase(None, o.colour, s));
                    assert!(same_colour, "{own} against {rival}");
                    assert!(
                        !scene.objects.iter().any(|x| x.phrase() == *rival),
                        "{rival}"
                    );
                }
                seen += 1;
            }
        }
        assert!(seen > 50, "{seen} objects ranked");
    }

    #[test]
    fn composition_quads_are_parallelograms_of_training_pairs() {
        let captions = vocabulary();
        let quads = composition_quads();
        // 15 colour pairs × 10 shape pairs, less those touching one of the 5 held-out pairs.
        assert!(
            quads.len() > 50 && quads.len() < 150,
            "{} quads",
            quads.len()
        );
        let words = |i: u32| -> (String, String) {
            let w: Vec<&str> = captions[i as usize].split(' ').collect();
            (w[w.len() - 2].to_string(), w[w.len() - 1].to_string())
        };
        for q in quads {
            assert!(q.iter().all(|&i| (i as usize) < VOCABULARY_PAIRS));
            let [(c, s), (c_b, s2), (c2, s_x), (c2_y, s2_y)] = q.map(words);
            assert_eq!((&c, &c2), (&c_b, &c2_y), "{q:?}");
            assert_eq!((&s, &s2), (&s_x, &s2_y), "{q:?}");
            assert!(c != c2 && s != s2, "{q:?}");
        }
    }
}
