//! Dense image tokens from other forms of the vision tower's last block (MaskCLIP, SCLIP,
//! ClearCLIP, NACLIP) or from any block ("logit lens"), as tools/MAP_SOURCES.md specifies them
//! from each method's official code.

use candle_core::{Module, Result, Tensor};
use candle_nn::ops::softmax_last_dim;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

use super::Clip;

/// NACLIP's Gaussian σ, in patches (its `gaussian_std` default).
pub const NACLIP_SIGMA: f64 = 5.0;

/// Where a display map's image tokens come from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum MapSource {
    /// The last block as trained: the DCSM paper's maps.
    #[default]
    Raw,
    /// MaskCLIP (ECCV'22): the last block's attention replaced by its value path.
    MaskClip,
    /// SCLIP: softmax(q·qᵀ) + softmax(k·kᵀ) in the last block.
    Sclip,
    /// ClearCLIP: q·qᵀ attention, no residual, no feed-forward.
    ClearClip,
    /// NACLIP: k·kᵀ attention plus a Gaussian neighbourhood, no residual, no feed-forward.
    NaClip,
    /// The tokens after block N (from 1) through post_layernorm and the projection.
    Layer(usize),
}

impl MapSource {
    /// Every source of a tower of `layers` blocks, in menu order.
    pub fn all(layers: usize) -> Vec<Self> {
        let mut out = vec![
            Self::Raw,
            Self::MaskClip,
            Self::Sclip,
            Self::ClearClip,
            Self::NaClip,
        ];
        out.extend((1..layers).map(Self::Layer));
        out
    }

    /// One line on what it is, and its paper.
    pub fn explain(&self) -> &'static str {
        match self {
            Self::Raw => "the last block's tokens as trained (the DCSM paper's maps)",
            Self::MaskClip => {
                "MaskCLIP (Zhou et al., ECCV 2022): the last attention replaced by its value path"
            }
            Self::Sclip => {
                "SCLIP (Wang et al., arXiv 2312.01597): softmax(q·qᵀ) + softmax(k·kᵀ) attention"
            }
            Self::ClearClip => {
                "ClearCLIP (Lan et al., arXiv 2407.12442): q·qᵀ attention, no residual, no MLP"
            }
            Self::NaClip => {
                "NACLIP (Hajimiri et al., arXiv 2404.08181): k·kᵀ attention with a Gaussian \
                 neighbourhood (σ = 5 patches), no residual, no MLP"
            }
            Self::Layer(_) => {
                "logit lens: an earlier block's tokens through the final layer norm and projection"
            }
        }
    }
}

impl fmt::Display for MapSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Raw => f.write_str("raw"),
            Self::MaskClip => f.write_str("maskclip"),
            Self::Sclip => f.write_str("sclip"),
            Self::ClearClip => f.write_str("clearclip"),
            Self::NaClip => f.write_str("naclip"),
            Self::Layer(n) => write!(f, "layer:{n}"),
        }
    }
}

impl FromStr for MapSource {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Ok(match s {
            "raw" => Self::Raw,
            "maskclip" => Self::MaskClip,
            "sclip" => Self::Sclip,
            "clearclip" => Self::ClearClip,
            "naclip" => Self::NaClip,
            _ => match s.strip_prefix("layer:").map(str::parse::<usize>) {
                Some(Ok(n)) if n >= 1 => Self::Layer(n),
                _ => {
                    return Err(format!(
                        "unknown map source {s:?}: raw, maskclip, sclip, clearclip, naclip or \
                         layer:N (N from 1)"
                    ))
                }
            },
        })
    }
}

impl From<MapSource> for String {
    fn from(s: MapSource) -> Self {
        s.to_string()
    }
}

impl TryFrom<String> for MapSource {
    type Error = String;
    fn try_from(s: String) -> std::result::Result<Self, String> {
        s.parse()
    }
}

/// NACLIP's bias Ω over (1 + rows·cols) tokens: zero to and from CLS, a Gaussian of the grid
/// distance between patches.
fn neighbourhood(rows: usize, cols: usize, device: &candle_core::Device) -> Result<Tensor> {
    let n = 1 + rows * cols;
    let mut omega = vec![0f32; n * n];
    let two_var = 2.0 * NACLIP_SIGMA * NACLIP_SIGMA;
    for a in 0..rows * cols {
        for b in 0..rows * cols {
            let dr = (a / cols) as f64 - (b / cols) as f64;
            let dc = (a % cols) as f64 - (b % cols) as f64;
            omega[(1 + a) * n + 1 + b] = (-(dr * dr + dc * dc) / two_var).exp() as f32;
        }
    }
    Tensor::from_vec(omega, (1, 1, n, n), device)
}

impl Clip {
    /// The vision tower's hidden states for (B, 3, S, S) pixels: `h_0` (after `pre_layrnorm`)
    /// and the output of every block, L + 1 tensors of (B, 1 + (S/p)², hidden).
    pub fn vision_states(&self, pixels: &Tensor) -> Result<Vec<Tensor>> {
        let v = &self.vision;
        let mut states = vec![v.pre_norm.forward(&v.embed(pixels)?)?];
        for layer in v.encoder.layers() {
            let next = layer.forward(&states[states.len() - 1], None)?;
            states.push(next);
        }
        Ok(states)
    }

    /// Projected, unnormalised image tokens (B, 1 + P, D) of `source` from `vision_states`.
    pub fn source_tokens(&self, states: &[Tensor], source: MapSource) -> Result<Tensor> {
        let layers = states.len() - 1;
        let z = match source {
            MapSource::Raw => states[layers].clone(),
            MapSource::Layer(n) if n >= 1 && n <= layers => states[n].clone(),
            MapSource::Layer(n) => {
                candle_core::bail!("layer:{n} does not exist: the tower has {layers} blocks")
            }
            other => self.last_block(&states[layers - 1], other)?,
        };
        self.visual_projection
            .forward(&self.vision.post_norm.forward(&z)?)
    }

    /// The last block in the form a source gives it, on `x = h_{L-1}`.
    fn last_block(&self, x: &Tensor, source: MapSource) -> Result<Tensor> {
        let layers = self.vision.encoder.layers();
        let block = &layers[layers.len() - 1];
        let (q, k, v) = block.qkv(x)?;
        let s = block.scale();
        match source {
            MapSource::MaskClip => {
                let u = (x + block.value_path(&v)?)?;
                &u + block.mlp(&u)?
            }
            MapSource::Sclip => {
                // q arrives already times s: (q·s)(q·s)ᵀ / s = q·qᵀ·s.
                let qq = softmax_last_dim(&(q.matmul(&q.t()?)? / s)?)?;
                let kk = softmax_last_dim(&(k.matmul(&k.t()?)? * s)?)?;
                let u = (x + block.attend(&(qq + kk)?, &v)?)?;
                &u + block.mlp(&u)?
            }
            MapSource::ClearClip => {
                let qq = softmax_last_dim(&(q.matmul(&q.t()?)? / s)?)?;
                block.attend(&qq, &v)
            }
            MapSource::NaClip => {
                let n = x.dim(1)? - 1;
                let side = (n as f64).sqrt().round() as usize;
                let omega = neighbourhood(side, side, x.device())?;
                let logits = (k.matmul(&k.t()?)? * s)?.broadcast_add(&omega)?;
                block.attend(&softmax_last_dim(&logits)?, &v)
            }
            MapSource::Raw | MapSource::Layer(_) => block.forward(x, None),
        }
    }
}
