//! Display maps from another view of an image: a map source, CLIP Surgery, a higher input
//! resolution, or tiles over the whole picture (tools/MAP_SOURCES.md). Plain CLIP scores, the
//! DCSM scorer and SmartCLIP always read the raw tokens of the centre crop.

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use super::tiles::{combine, window_pixels};
use super::types::{EncodedImage, EncodedPrompts};
use super::LoadedModel;
use crate::clip::{self, MapSource};
use crate::dcsm::{self, Matrix};
use crate::error::ModelError;
use crate::io::preprocess::{self, CropRect, Decoded};

pub use super::tiles::Layout;

/// The largest input side a view may ask for (B/16 at 1024 px is 4,097 tokens).
pub const MAX_RESOLUTION: u32 = 1024;

/// How display maps are made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MapView {
    pub source: MapSource,
    /// CLIP Surgery's feature surgery over the prompts of the image.
    pub surgery: bool,
    /// Input side in pixels (a multiple of the patch); `None` is the model's own size.
    pub resolution: Option<u32>,
    /// Windows over the whole image instead of the centre crop.
    pub tiles: bool,
}

impl MapView {
    /// The raw centre-crop maps the scores come with.
    pub fn is_plain(&self) -> bool {
        *self == Self::default()
    }

    /// A short label: `clearclip + surgery, 448 px, tiles`.
    pub fn label(&self) -> String {
        let mut s = self.source.to_string();
        if self.surgery {
            s.push_str(" + surgery");
        }
        if let Some(r) = self.resolution {
            s.push_str(&format!(", {r} px"));
        }
        if self.tiles {
            s.push_str(", tiles");
        }
        s
    }
}

/// One window's normalised tokens of a source and its normalised raw CLS row.
type WindowTokens = (Tensor, Tensor);

/// The vision tower's states for one image under one resolution and tiling, one set per
/// window: switching the source re-runs at most the last block.
#[derive(Debug)]
pub struct DenseImage {
    pub resolution: Option<u32>,
    pub layout: Layout,
    windows: Vec<Vec<Tensor>>,
    /// The last source's normalised tokens and the raw CLS row, per window: prompt edits under
    /// the same view run no tower at all.
    last: std::sync::Mutex<Option<(MapSource, Vec<WindowTokens>)>>,
}

impl DenseImage {
    /// Bytes its tensors hold.
    pub fn bytes(&self) -> usize {
        self.windows
            .iter()
            .flatten()
            .map(super::types::tensor_bytes)
            .sum()
    }
}

/// Display maps of a view: one (1 + rows·cols) × T matrix per prompt, row 0 the CLS row (with
/// tiles, the mean of the windows' CLS rows).
#[derive(Debug, Clone, Serialize)]
pub struct ViewMaps {
    pub view: MapView,
    pub grid: (usize, usize),
    pub region: CropRect,
    pub windows: Vec<CropRect>,
    pub maps: Vec<Matrix>,
}

impl LoadedModel {
    /// Each window's normalised tokens of `source` and normalised raw CLS row, from the cache
    /// when the last call asked for the same source.
    fn window_tokens(
        &self,
        dense: &DenseImage,
        source: MapSource,
    ) -> Result<Vec<WindowTokens>, ModelError> {
        let mut last = dense
            .last
            .lock()
            .map_err(|_| ModelError::Config("internal: a view cache was poisoned".into()))?;
        if let Some((s, tokens)) = last.as_ref() {
            if *s == source {
                return Ok(tokens.clone());
            }
        }
        let mut out = Vec::with_capacity(dense.windows.len());
        for states in &dense.windows {
            let tokens =
                clip::l2_normalize(&self.clip_for("a map view")?.source_tokens(states, source)?)?
                    .squeeze(0)?;
            let raw = if source == MapSource::Raw {
                tokens.clone()
            } else {
                clip::l2_normalize(
                    &self
                        .clip_for("a map view")?
                        .source_tokens(states, MapSource::Raw)?,
                )?
                .squeeze(0)?
            };
            out.push((tokens, raw.narrow(0, 0, 1)?));
        }
        *last = Some((source, out.clone()));
        Ok(out)
    }

    /// Runs the vision tower for a view's resolution and tiling and keeps every block's states.
    pub fn dense_image(
        &self,
        image: &Decoded,
        resolution: Option<u32>,
        tiles: bool,
    ) -> Result<DenseImage, ModelError> {
        if self.family() != super::Family::Clip {
            return Err(ModelError::Config(format!(
                "map sources, resolutions and tiles need a CLIP vision tower; {} is {} and shows \
                 its dense head path at its own size only",
                self.name(),
                self.family().name()
            )));
        }
        let patch = self.config().vision.patch_size as u32;
        let side = resolution.unwrap_or(self.config().vision.image_size as u32);
        if side % patch != 0 || side < patch || side > MAX_RESOLUTION {
            return Err(ModelError::Config(format!(
                "resolution {side} px: it must be a multiple of the patch ({patch} px), at most \
                 {MAX_RESOLUTION}"
            )));
        }
        let mut config = self.preprocess_config().clone();
        // At the model's own size the centre crop is exactly the scores' (a folder may resize to
        // a longer shortest edge than it crops); other sizes and the tiles resize to the window.
        if resolution.is_some() || tiles {
            config.shortest_edge = side;
            config.crop = side;
        }
        let (w, h) = (image.image.width(), image.image.height());
        let states = |pixels: &[f32]| -> Result<Vec<Tensor>, ModelError> {
            let s = side as usize;
            let t = Tensor::from_slice(pixels, (1, 3, s, s), &self.device)?;
            Ok(self.clip_for("a map view")?.vision_states(&t)?)
        };
        if !tiles {
            let pre = preprocess::preprocess_decoded(image, &config);
            let layout = Layout {
                window: side,
                patch,
                resized: preprocess::resized_size(w, h, side),
                offsets: vec![0],
                wide: w >= h,
                tiles: false,
                original: (w, h),
                crop: pre.crop,
            };
            return Ok(DenseImage {
                resolution,
                layout,
                windows: vec![states(&pre.pixels)?],
                last: Default::default(),
            });
        }
        let (full, (rw, rh)) = preprocess::resized_full(image, &config);
        let wide = rw >= rh;
        let long = rw.max(rh);
        let stride = side / 2;
        let n = if long == side {
            1
        } else {
            (long - side).div_ceil(stride) + 1
        };
        let offsets: Vec<u32> = (0..n).map(|k| (k * stride).min(long - side)).collect();
        let mut windows = Vec::with_capacity(offsets.len());
        for &o in &offsets {
            windows.push(states(&window_pixels(&full, (rw, rh), side, o, wide))?);
        }
        let layout = Layout {
            window: side,
            patch,
            resized: (rw, rh),
            offsets,
            wide,
            tiles: true,
            original: (w, h),
            crop: CropRect {
                x: 0.0,
                y: 0.0,
                w: w as f32,
                h: h as f32,
            },
        };
        Ok(DenseImage {
            resolution,
            layout,
            windows,
            last: Default::default(),
        })
    }

    /// The plain encoding (raw tokens of the centre crop) of an image whose states `dense` holds
    /// at the model's own size: the same tokens `encode_image` gives, without a second pass.
    pub fn encoded_from_dense(&self, dense: &DenseImage) -> Result<EncodedImage, ModelError> {
        if dense.resolution.is_some() || dense.layout.tiles {
            return Err(ModelError::Config(
                "internal: only untiled states at the model's size encode the scores' image".into(),
            ));
        }
        let tokens = self
            .clip_for("a map view")?
            .source_tokens(&dense.windows[0], MapSource::Raw)?
            .squeeze(0)?;
        Ok(EncodedImage {
            normalized: clip::l2_normalize(&tokens)?,
            pooled: tokens.narrow(0, 0, 1)?,
            cls_row: true,
            tokens,
            grid: self.grid(),
            crop: dense.layout.crop,
            original: dense.layout.original,
        })
    }

    /// Refuses a source this model does not have (`layer:N` past its last block).
    pub fn check_source(&self, source: MapSource) -> Result<(), ModelError> {
        let layers = self.config().vision.num_hidden_layers;
        match source {
            MapSource::Layer(n) if n == 0 || n > layers => Err(ModelError::Config(format!(
                "map source layer:{n} does not exist: the vision tower has {layers} blocks \
                 (layer:1 to layer:{layers})"
            ))),
            _ => Ok(()),
        }
    }

    /// The unnormalised image tokens (1 + P, D) of `source`, one per window.
    pub fn view_tokens(
        &self,
        dense: &DenseImage,
        source: MapSource,
    ) -> Result<Vec<Tensor>, ModelError> {
        self.check_source(source)?;
        dense
            .windows
            .iter()
            .map(|states| {
                Ok(self
                    .clip_for("a map view")?
                    .source_tokens(states, source)?
                    .squeeze(0)?)
            })
            .collect()
    }

    /// The display maps of `view` for the prompts, from `dense` (made for the view's resolution
    /// and tiling).
    pub fn view_maps(
        &self,
        dense: &DenseImage,
        view: &MapView,
        prompts: &EncodedPrompts,
    ) -> Result<ViewMaps, ModelError> {
        self.check_source(view.source)?;
        if dense.resolution != view.resolution || dense.layout.tiles != view.tiles {
            return Err(ModelError::Config(
                "internal: the image states were made for another view".into(),
            ));
        }
        let texts = prompts
            .tokens
            .iter()
            .map(clip::l2_normalize)
            .collect::<Result<Vec<_>, _>>()?;
        let pooled: Vec<Tensor> = texts
            .iter()
            .zip(&prompts.tokenized)
            .map(|(t, tok)| t.get(tok.eos_index()))
            .collect::<Result<_, _>>()?;
        let pooled = Tensor::stack(&pooled, 0)?;
        let windows = self.window_tokens(dense, view.source)?;
        let mut per_window: Vec<Vec<Matrix>> = Vec::with_capacity(windows.len());
        for (tokens, cls) in &windows {
            let maps = texts
                .iter()
                .map(|t| dcsm::cosine_map(tokens, t))
                .collect::<Result<Vec<_>, _>>()?;
            per_window.push(if view.surgery {
                surgery(maps, tokens, cls, &pooled)?
            } else {
                maps
            });
        }
        let layout = &dense.layout;
        let maps = if layout.tiles {
            (0..texts.len())
                .map(|p| {
                    combine(
                        layout,
                        &per_window.iter().map(|w| &w[p]).collect::<Vec<_>>(),
                    )
                })
                .collect()
        } else {
            per_window.swap_remove(0)
        };
        Ok(ViewMaps {
            view: *view,
            grid: layout.grid(),
            region: layout.region(),
            windows: layout.windows(),
            maps,
        })
    }
}

/// CLIP Surgery's feature surgery on every prompt's map (tools/MAP_SOURCES.md §8):
/// `w = K·softmax(2·ĉ·ê)`, `map_p = w_p·map_p − (1/K) Σ_j w_j (x̂·ê_j)`.
fn surgery(
    maps: Vec<Matrix>,
    tokens: &Tensor,
    raw_cls: &Tensor,
    pooled: &Tensor,
) -> Result<Vec<Matrix>, ModelError> {
    let k = maps.len();
    let logits: Vec<f32> = raw_cls
        .matmul(&pooled.t()?)?
        .flatten_all()?
        .to_vec1::<f32>()?
        .iter()
        .map(|v| 2.0 * v)
        .collect();
    let w: Vec<f32> = dcsm::softmax(&logits)
        .iter()
        .map(|p| p * k as f32)
        .collect();
    let against = tokens.matmul(&pooled.t()?)?.to_vec2::<f32>()?; // (N, K)
    let redundant: Vec<f32> = against
        .iter()
        .map(|row| row.iter().zip(&w).map(|(c, w)| w * c).sum::<f32>() / k as f32)
        .collect();
    Ok(maps
        .into_iter()
        .zip(&w)
        .map(|(mut m, wp)| {
            let cols = m.cols.max(1);
            for (row, r) in m.data.chunks_mut(cols).zip(&redundant) {
                row.iter_mut().for_each(|v| *v = wp * *v - r);
            }
            m
        })
        .collect())
}
