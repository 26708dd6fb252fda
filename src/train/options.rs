//! What a `train-clip` run is asked for (`Options`, the starting shape) and what each of its
//! steps reports.

use crate::clip::config::{Activation, ClipConfig, TextConfig, VisionConfig};

/// The shape `train-clip` starts from: 4-layer, width-128 towers, patch 16 on 224 px (14×14
/// patches, the DCSM paper's 197 image rows); the shipped model widened its vision tower to 256
/// (`--vision-width`).
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
            patch_size: 16,
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
    /// patches of their own image, the patches on the object the target (0: off).
    pub ground_weight: f64,
    /// Weight of the hard-negative loss: each image against its true caption and its hard
    /// negative alone (a two-way cross-entropy), so that one wrong word is not diluted among
    /// every other caption of the batch (0: off; the negatives still join the CLIP loss).
    pub negative_weight: f64,
    /// Mix in captions that name shapes without colours ("a star and a circle").
    pub shape_words: bool,
    /// Weight of the vocabulary loss: every image classified among the 25 training colour-shape
    /// phrases and among the 5 shape words (0: off, and no vocabulary captions are encoded).
    pub vocabulary_weight: f64,
    /// Weight of the per-object loss (`losses::object_loss`): every object's phrase ranked above
    /// its colour with the other shapes (0: off). It encodes the vocabulary.
    pub object_weight: f64,
    /// Weight of the composition loss: the training colour-shape phrases' text embeddings asked
    /// to be colour + shape (`losses::composition_loss`; 0: off). It encodes the vocabulary.
    pub composition_weight: f64,
    /// Weight of the dense shape loss: every patch inside one object classified among the shape
    /// words ("a circle", …) by its token (`losses::patch_shape_loss`; 0: off). It encodes the
    /// vocabulary.
    pub patch_shape_weight: f64,
    /// Weight of the colour-field loss (`losses::colour_field_loss`): on images of an object
    /// colour with no shape, every shape word must score alike, so that no colour stands for a
    /// shape (0: off). It encodes the vocabulary and draws `fields` fields a step.
    pub colour_field_weight: f64,
    pub fields: usize,
    /// Weight of the recoloured-shape loss: `recoloured` one-object scenes a step in colours no
    /// object has (`recolour`), their pooled and patch tokens classified among the shape words,
    /// which only the outline can answer there (0: off). It encodes the vocabulary.
    pub recoloured_weight: f64,
    pub recoloured: usize,
    /// Share of the recoloured scenes whose object is shrunk (`recolour::shrunk`).
    pub recoloured_small: f64,
    /// Weight of the paired loss (`shapes::paired_loss`): each recoloured scene's twin in the
    /// object's own colour asked for the recoloured scene's odds among the shape words, so that
    /// an object colour moves no shape word (0: off). It draws `recoloured` scenes and twins.
    pub paired_weight: f64,
    pub warmup: usize,
    /// Start from these weights (a model.safetensors of the same towers; a position table of
    /// another grid is resized bicubically) instead of random ones.
    pub init: Option<std::path::PathBuf>,
    /// Continue from a training state written by `save_state` (weights, moments, step).
    pub resume: Option<std::path::PathBuf>,
    /// Stop after this many steps (the schedule still runs to `steps`), to train a stage in
    /// slices with different loss weights, each resumed from the last.
    pub stop_at: Option<usize>,
    /// What of the text side learns (`TextSide`).
    pub text: TextSide,
    /// Patches of each image that go through the vision tower in training (`keep::Kept`: those
    /// on objects first, then background at random; 0: all of them). Inference sees every patch.
    pub keep_tokens: usize,
    /// From random weights only: start the patch embedding from the training patches' whitened
    /// principal components (`whiten::whiten_patches`) instead of noise.
    pub whiten_patches: bool,
}

/// What of the text side learns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TextSide {
    /// The whole text tower and its projection.
    #[default]
    Learns,
    /// Nothing: the tower and its projection stay as `init` left them, so the words keep what
    /// they meant (held-out colour-shape pairs included) while the image side learns shapes.
    Frozen,
    /// Only `text_projection`: the tower stays as `init` left it, and one linear map (the same
    /// for every phrase, held-out ones included) may move the phrases apart.
    Projection,
}

impl TextSide {
    /// Whether the tower below the projection is held.
    pub fn tower_frozen(self) -> bool {
        self != TextSide::Learns
    }
}

/// One step's numbers, for progress reports.
#[derive(Debug, Clone, Copy)]
pub struct StepReport {
    pub step: usize,
    pub loss: f32,
    pub clip_loss: f32,
    pub token_loss: f32,
    pub negative_loss: f32,
    pub ground_loss: f32,
    pub vocabulary_loss: f32,
    pub object_loss: f32,
    pub composition_loss: f32,
    pub patch_shape_loss: f32,
    pub colour_field_loss: f32,
    pub recoloured_loss: f32,
    pub paired_loss: f32,
    /// Seconds spent drawing the batch (rendering, preprocessing, tokenising).
    pub data_seconds: f32,
    /// Seconds spent in the forward pass, and in backpropagation plus the update.
    pub forward_seconds: f32,
    pub backward_seconds: f32,
}
