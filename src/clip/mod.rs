//! The CLIP towers in candle, in the Hugging Face `CLIPModel` weight layout, with dense outputs.

use candle_core::{DType, Device, IndexOp, Module, Result, Tensor, D};
use candle_nn::{Embedding, VarBuilder};

pub mod config;
mod exp;
pub mod interpolate;
mod layers;
mod limits;
mod linear;
mod panels;
mod quick_gelu;
pub mod siglip;
pub mod skinny;
pub mod sources;
mod text_kv;
pub mod train_ops;
mod transpose;

pub use config::ClipConfig;
use config::{TextConfig, VisionConfig};
pub(crate) use layers::EncoderLayer;
use layers::{Encoder, EncoderSizes, Norm};
pub use linear::kept_transposed;
use linear::Dense;
pub use sources::MapSource;
pub use text_kv::TextKv;

impl EncoderSizes {
    pub(super) fn vision(c: &VisionConfig) -> Self {
        Self {
            dim: c.hidden_size,
            mlp: c.intermediate_size,
            layers: c.num_hidden_layers,
            heads: c.num_attention_heads,
            eps: c.layer_norm_eps,
            act: c.hidden_act,
        }
    }

    pub(super) fn text(c: &TextConfig) -> Self {
        Self {
            dim: c.hidden_size,
            mlp: c.intermediate_size,
            layers: c.num_hidden_layers,
            heads: c.num_attention_heads,
            eps: c.layer_norm_eps,
            act: c.hidden_act,
        }
    }
}

/// (B, C, S, S) pixels → (B·g·g, C·p·p): the non-overlapping p×p patches (g = S / p, any
/// remainder cut), row-major, each flattened as a stride-p convolution's kernel reads it.
pub(crate) fn patches(pixels: &Tensor, p: usize) -> Result<Tensor> {
    let (b, c, s, _) = pixels.dims4()?;
    let g = s / p;
    let side = g * p;
    pixels
        .narrow(2, 0, side)?
        .narrow(3, 0, side)?
        .reshape((b, c, g, p, g, p))?
        .permute((0, 2, 4, 1, 3, 5))?
        .reshape((b * g * g, c * p * p))
}

/// The vision transformer up to `post_layernorm`, applied to every token.
#[derive(Debug, Clone)]
struct VisionTower {
    /// The patch convolution as a matrix from 3·p·p pixels to hidden.
    patch_embedding: Dense,
    class_embedding: Tensor,
    position_embedding: Tensor,
    pre_norm: Norm,
    encoder: Encoder,
    post_norm: Norm,
    patch: usize,
    grid: usize,
    hidden: usize,
}

impl VisionTower {
    fn new(c: &VisionConfig, train: bool, vb: VarBuilder) -> Result<Self> {
        let (h, p, grid) = (c.hidden_size, c.patch_size, c.grid_side());
        let emb = vb.pp("embeddings");
        let init = candle_nn::Init::Randn {
            mean: 0.0,
            stdev: 0.02,
        };
        let patch_weight = emb
            .get_with_hints((h, c.num_channels, p, p), "patch_embedding.weight", init)?
            .reshape((h, c.num_channels * p * p))?;
        let patch_embedding = Dense::new(patch_weight, None, train)?;
        let sizes = EncoderSizes::vision(c);
        Ok(Self {
            patch_embedding,
            class_embedding: emb.get_with_hints(h, "class_embedding", init)?,
            position_embedding: emb.get_with_hints(
                (grid * grid + 1, h),
                "position_embedding.weight",
                init,
            )?,
            pre_norm: Norm::new(h, c.layer_norm_eps, train, vb.pp("pre_layrnorm"))?,
            encoder: Encoder::new(&sizes, train, vb.pp("encoder"))?,
            post_norm: Norm::new(h, c.layer_norm_eps, train, vb.pp("post_layernorm"))?,
            patch: p,
            grid,
            hidden: h,
        })
    }

    /// (B, 3, S, S) pixels → (B, 1 + grid², hidden) after `post_layernorm`; with `rows`, only
    /// those rows of the (B · (1 + grid²), hidden) embedded tokens go through the encoder, the
    /// same number for each image (token dropping in training: the rest are never seen).
    fn forward(&self, pixels: &Tensor, rows: Option<&Tensor>) -> Result<Tensor> {
        let tokens = match rows {
            Some(rows) => self.embed_rows(pixels, rows)?,
            None => self.embed(pixels)?,
        };
        let hidden = self
            .encoder
            .forward(&self.pre_norm.forward(&tokens)?, None)?;
        self.post_norm.forward(&hidden)
    }

    /// (B, 3, S, S) pixels → (B, 1 + (S/p)², hidden): patch and class embeddings plus positions,
    /// the position table resized bicubically when S is not the native size (as `transformers`
    /// with `interpolate_pos_encoding=True`).
    fn embed(&self, pixels: &Tensor) -> Result<Tensor> {
        let (b, _, s, _) = pixels.dims4()?;
        let p = self.patch;
        let g = s / p;
        let positions = self.positions(g)?;
        // A stride-p convolution with a p×p kernel is a matmul over non-overlapping patches.
        let patch_tokens = self
            .patch_embedding
            .forward_constant(&patches(pixels, p)?)?
            .reshape((b, g * g, self.hidden))?;
        let cls = self
            .class_embedding
            .reshape((1, 1, self.hidden))?
            .repeat((b, 1, 1))?;
        Tensor::cat(&[&cls, &patch_tokens], 1)?.broadcast_add(&positions.unsqueeze(0)?)
    }

    /// The position table for a `g`×`g` grid: (1 + g², hidden).
    fn positions(&self, g: usize) -> Result<Tensor> {
        if g == self.grid {
            Ok(self.position_embedding.clone())
        } else {
            interpolate::position_table(&self.position_embedding, g)
        }
    }

    /// `embed`'s rows `rows` of its (B · (1 + g²), hidden) tokens, as (B, rows / B, hidden): only
    /// the kept patches go through the patch embedding (token dropping keeps about a quarter).
    fn embed_rows(&self, pixels: &Tensor, rows: &Tensor) -> Result<Tensor> {
        let (b, _, s, _) = pixels.dims4()?;
        let (p, h) = (self.patch, self.hidden);
        let g = s / p;
        let stride = 1 + g * g;
        let rows: Vec<u32> = rows.to_vec1()?;
        // Each row's patch (a row of `patches`), its place in [class, embedded patches...] and
        // its position.
        let (mut picked, mut order, mut slots) = (Vec::new(), Vec::new(), Vec::new());
        for &r in &rows {
            let (image, slot) = (r as usize / stride, r as usize % stride);
            if image >= b {
                candle_core::bail!("token row {r} is past the batch's {} rows", b * stride);
            }
            slots.push(slot as u32);
            if slot == 0 {
                order.push(0);
            } else {
                picked.push((image * g * g + slot - 1) as u32);
                order.push(picked.len() as u32);
            }
        }
        let dev = pixels.device();
        let n = rows.len();
        let pixels = patches(pixels, p)?.index_select(&Tensor::new(picked, dev)?, 0)?;
        let embedded = self.patch_embedding.forward_constant(&pixels)?;
        let table = Tensor::cat(&[&self.class_embedding.reshape((1, h))?, &embedded], 0)?;
        let positions = self
            .positions(g)?
            .index_select(&Tensor::new(slots, dev)?, 0)?;
        (table.index_select(&Tensor::new(order, dev)?, 0)? + positions)?.reshape((
            b,
            n / b.max(1),
            h,
        ))
    }
}

/// The causal text transformer up to `final_layer_norm`, applied to every position.
#[derive(Debug, Clone)]
struct TextTower {
    token_embedding: Embedding,
    position_embedding: Tensor,
    encoder: Encoder,
    final_norm: Norm,
}

impl TextTower {
    fn new(c: &TextConfig, train: bool, vb: VarBuilder) -> Result<Self> {
        let emb = vb.pp("embeddings");
        let init = candle_nn::Init::Randn {
            mean: 0.0,
            stdev: 0.02,
        };
        let h = c.hidden_size;
        let sizes = EncoderSizes::text(c);
        Ok(Self {
            token_embedding: Embedding::new(
                emb.get_with_hints((c.vocab_size, h), "token_embedding.weight", init)?,
                h,
            ),
            position_embedding: emb.get_with_hints(
                (c.max_position_embeddings, h),
                "position_embedding.weight",
                init,
            )?,
            encoder: Encoder::new(&sizes, train, vb.pp("encoder"))?,
            final_norm: Norm::new(h, c.layer_norm_eps, train, vb.pp("final_layer_norm"))?,
        })
    }

    /// (B, T) ids → (B, T, hidden) after `final_layer_norm`. With `lengths`, the keys at or past
    /// `lengths[b]` are padding: no position attends to them (as `attention_mask` in
    /// transformers), so a padding position sees only the real tokens.
    fn forward(&self, ids: &Tensor, lengths: Option<&[usize]>) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        let x = self.embed(ids, 0)?;
        let mask = match lengths {
            Some(lengths) if lengths.len() == b => padded_causal_mask(t, lengths, x.device())?,
            Some(lengths) => candle_core::bail!("{} lengths for {b} sequences", lengths.len()),
            None => causal_mask(t, x.device())?,
        };
        self.final_norm
            .forward(&self.encoder.forward(&x, Some(&mask))?)
    }

    /// (B, T) ids at positions `start..start + T` → (B, T, hidden): token plus position
    /// embeddings.
    fn embed(&self, ids: &Tensor, start: usize) -> Result<Tensor> {
        let t = ids.dims2()?.1;
        self.token_embedding
            .forward(ids)?
            .broadcast_add(&self.position_embedding.narrow(0, start, t)?.unsqueeze(0)?)
    }
}

fn causal_mask(t: usize, device: &Device) -> Result<Tensor> {
    let values: Vec<f32> = (0..t)
        .flat_map(|i| (0..t).map(move |j| if j > i { f32::NEG_INFINITY } else { 0.0 }))
        .collect();
    Tensor::from_vec(values, (1, 1, t, t), device)
}

/// (B, 1, T, T): causal, and keys at or past each row's length masked out.
fn padded_causal_mask(t: usize, lengths: &[usize], device: &Device) -> Result<Tensor> {
    let values: Vec<f32> = lengths
        .iter()
        .flat_map(|&len| {
            (0..t).flat_map(move |i| {
                (0..t).map(move |j| {
                    if j > i || j >= len.max(1) {
                        f32::NEG_INFINITY
                    } else {
                        0.0
                    }
                })
            })
        })
        .collect();
    Tensor::from_vec(values, (lengths.len(), 1, t, t), device)
}

/// A CLIP model whose outputs keep every token.
#[derive(Debug, Clone)]
pub struct Clip {
    vision: VisionTower,
    text: TextTower,
    visual_projection: Dense,
    text_projection: Dense,
    logit_scale: Tensor,
    config: ClipConfig,
}

impl Clip {
    /// Builds the model from weights named as in Hugging Face's `CLIPModel`.
    /// `train` picks differentiable layer norms (for training with a `VarMap`).
    pub fn new(config: &ClipConfig, train: bool, vb: VarBuilder) -> Result<Self> {
        let p = config.projection_dim;
        let init = candle_nn::Init::Const(config.logit_scale_init_value);
        let logit_scale = vb.get_with_hints((), "logit_scale", init)?;
        // The towers load one after the other: loading them side by side (rayon::join) took
        // B/16's load from about 255 to 215 ms but left the default model's peak memory at
        // 211-215 MB instead of 136-137 (`clipscope bench`; a second allocator arena keeps what it
        // frees).
        Ok(Self {
            vision: VisionTower::new(&config.vision, train, vb.pp("vision_model"))?,
            text: TextTower::new(&config.text, train, vb.pp("text_model"))?,
            visual_projection: Dense::load(
                config.vision.hidden_size,
                p,
                false,
                train,
                vb.pp("visual_projection"),
            )?,
            text_projection: Dense::load(
                config.text.hidden_size,
                p,
                false,
                train,
                vb.pp("text_projection"),
            )?,
            logit_scale,
            config: config.clone(),
        })
    }

    pub fn config(&self) -> &ClipConfig {
        &self.config
    }

    /// (B, 3, S, S) → (B, 1 + patches, projection_dim): row 0 is CLS (the pooled image embedding),
    /// then the patches in row-major order.
    pub fn image_tokens(&self, pixels: &Tensor) -> Result<Tensor> {
        self.visual_projection
            .forward(&self.vision.forward(pixels, None)?)
    }

    /// As `image_tokens`, for the kept `rows` of the (B · (1 + patches)) embedded tokens alone
    /// (`train::keep::Kept::rows`): (B, rows / B, projection_dim), in the order of `rows`.
    pub fn image_tokens_kept(&self, pixels: &Tensor, rows: &Tensor) -> Result<Tensor> {
        self.visual_projection
            .forward(&self.vision.forward(pixels, Some(rows))?)
    }

    /// (B, T) ids → (B, T, projection_dim): every position, projected.
    pub fn text_tokens(&self, ids: &Tensor) -> Result<Tensor> {
        self.text_projection.forward(&self.text.forward(ids, None)?)
    }

    /// As `text_tokens`, for rows padded past `lengths[b]` whose padding keys are masked out.
    pub fn text_tokens_padded(&self, ids: &Tensor, lengths: &[usize]) -> Result<Tensor> {
        self.text_projection
            .forward(&self.text.forward(ids, Some(lengths))?)
    }

    /// Projects `final_layer_norm` outputs (…, text hidden) → (…, projection_dim).
    pub fn project_text(&self, hidden: &Tensor) -> Result<Tensor> {
        self.text_projection.forward(hidden)
    }

    /// (B, T) ids → (B, T, text hidden): `final_layer_norm` outputs before the projection.
    pub fn text_hidden(&self, ids: &Tensor) -> Result<Tensor> {
        self.text.forward(ids, None)
    }

    /// The raw `logit_scale` parameter (the logits use its exponential).
    pub fn logit_scale(&self) -> &Tensor {
        &self.logit_scale
    }

    /// The pooled text embeddings: each row's text token at its first EOS (`eos_index[b]`).
    pub fn pool_text(tokens: &Tensor, eos_index: &[usize]) -> Result<Tensor> {
        let rows = eos_index
            .iter()
            .enumerate()
            .map(|(b, &i)| tokens.i((b, i)))
            .collect::<Result<Vec<_>>>()?;
        Tensor::stack(&rows, 0)
    }
}

/// The largest absolute difference between two tensors of one shape (for tests).
#[cfg(test)]
pub(crate) fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .and_then(|d| d.abs()?.max_all()?.to_scalar::<f32>())
        .expect("tensors of one shape")
}

/// Row-wise L2 normalisation over the last dimension.
pub fn l2_normalize(xs: &Tensor) -> Result<Tensor> {
    let norm = xs.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?;
    xs.broadcast_div(&norm.clamp(1e-12, f64::MAX)?)
}

/// A model on zero weights of a given configuration (shape checks, benchmarks).
pub fn zeros(config: &ClipConfig) -> Result<Clip> {
    let vb = VarBuilder::zeros(DType::F32, &Device::Cpu);
    Clip::new(config, false, vb)
}
