//! OpenCLIP checkpoints as the hub's LAION repositories ship them (`open_clip_config.json` +
//! `open_clip_model.safetensors`, open_clip's key names), read onto our Hugging Face-layout
//! towers: fused `in_proj` split into q/k/v, `proj` and `text_projection` transposed.

use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::VarBuilder;
use serde::Deserialize;
use std::path::Path;

use super::pipeline::{ImageConvention, Pipeline, TextConvention};
use super::preprocess::PreprocessConfig;
use super::weights::{expect_shape, FileWeights};
use crate::error::ModelError;

/// The config file that marks an OpenCLIP folder.
pub const CONFIG: &str = "open_clip_config.json";
/// Its weights.
pub const WEIGHTS: &str = "open_clip_model.safetensors";

/// Whether `dir` holds an OpenCLIP checkpoint (and no Hugging Face `config.json`).
pub fn is_openclip(dir: &Path) -> bool {
    dir.join(CONFIG).is_file() && !dir.join("config.json").is_file()
}

#[derive(Deserialize)]
struct File {
    model_cfg: ModelCfg,
    #[serde(default)]
    preprocess_cfg: Option<PreprocessCfg>,
}

#[derive(Deserialize)]
struct ModelCfg {
    embed_dim: usize,
    #[serde(default)]
    quick_gelu: bool,
    vision_cfg: VisionCfg,
    text_cfg: TextCfg,
    #[serde(default)]
    init_logit_bias: Option<f64>,
}

#[derive(Deserialize)]
struct VisionCfg {
    image_size: usize,
    layers: usize,
    width: usize,
    patch_size: usize,
    #[serde(default = "head_width")]
    head_width: usize,
    #[serde(default = "mlp_ratio")]
    mlp_ratio: f64,
    #[serde(default)]
    ls_init_value: Option<f64>,
    #[serde(default)]
    attentional_pool: bool,
    #[serde(default)]
    no_ln_pre: bool,
    #[serde(default)]
    final_ln_after_pool: bool,
    #[serde(default)]
    pool_type: Option<String>,
    #[serde(default)]
    timm_model_name: Option<String>,
}

#[derive(Deserialize)]
struct TextCfg {
    #[serde(default = "context")]
    context_length: usize,
    #[serde(default = "vocab")]
    vocab_size: usize,
    width: usize,
    heads: usize,
    layers: usize,
    #[serde(default = "mlp_ratio")]
    mlp_ratio: f64,
    #[serde(default)]
    ls_init_value: Option<f64>,
    #[serde(default)]
    hf_model_name: Option<String>,
    #[serde(default)]
    embed_cls: bool,
    #[serde(default)]
    no_causal_mask: bool,
    #[serde(default)]
    pool_type: Option<String>,
    #[serde(default)]
    proj_bias: bool,
}

#[derive(Deserialize)]
struct PreprocessCfg {
    mean: Option<[f32; 3]>,
    std: Option<[f32; 3]>,
    interpolation: Option<String>,
    resize_mode: Option<String>,
}

fn head_width() -> usize {
    64
}
fn mlp_ratio() -> f64 {
    4.0
}
fn context() -> usize {
    77
}
fn vocab() -> usize {
    49408
}

/// What an OpenCLIP folder becomes: the equivalent Hugging Face `config.json` text, its weights
/// under our names, its preprocessing and pipeline.
pub struct OpenClip {
    pub config_json: String,
    pub weights: VarBuilder<'static>,
    pub preprocess: PreprocessConfig,
    pub pipeline: Pipeline,
}

/// Reads an OpenCLIP folder; architectures our towers do not have are refused by name.
pub fn read(dir: &Path, device: &Device) -> Result<OpenClip, ModelError> {
    let path = dir.join(CONFIG);
    let text = super::read_small(&path, super::MAX_SETTINGS_BYTES)?;
    let file: File = serde_json::from_str(&text).map_err(|e| ModelError::Json {
        what: format!("{}: not an OpenCLIP config", path.display()),
        source: e,
    })?;
    let m = file.model_cfg;
    let (v, t) = (&m.vision_cfg, &m.text_cfg);
    let refuse = |what: &str| {
        Err(ModelError::Config(format!(
            "{}: {what} is not supported (clipscope's towers are OpenAI-style ViTs)",
            path.display()
        )))
    };
    if v.timm_model_name.is_some() || t.hf_model_name.is_some() {
        return refuse("a timm or Hugging Face tower");
    }
    if m.init_logit_bias.is_some() {
        return refuse("a sigmoid (SigLIP-style) loss with logit_bias");
    }
    if v.ls_init_value.is_some() || t.ls_init_value.is_some() {
        return refuse("layer scale (ls_init_value)");
    }
    if v.attentional_pool || v.no_ln_pre || v.final_ln_after_pool {
        return refuse("attentional pooling, no ln_pre or final_ln_after_pool");
    }
    if v.pool_type.as_deref().is_some_and(|p| p != "tok") {
        return refuse("a vision pool_type other than \"tok\"");
    }
    if t.embed_cls || t.no_causal_mask || t.proj_bias {
        return refuse("embed_cls, no_causal_mask or a text projection bias");
    }
    if t.pool_type.as_deref().is_some_and(|p| p != "argmax") {
        return refuse("a text pool_type other than \"argmax\"");
    }
    let act = if m.quick_gelu { "quick_gelu" } else { "gelu" };
    let hf = serde_json::json!({
        "projection_dim": m.embed_dim,
        "vision_config": {
            "hidden_size": v.width,
            "intermediate_size": (v.width as f64 * v.mlp_ratio) as usize,
            "num_hidden_layers": v.layers,
            "num_attention_heads": v.width / v.head_width.max(1),
            "image_size": v.image_size,
            "patch_size": v.patch_size,
            "hidden_act": act,
            "layer_norm_eps": 1e-5,
        },
        "text_config": {
            "hidden_size": t.width,
            "intermediate_size": (t.width as f64 * t.mlp_ratio) as usize,
            "num_hidden_layers": t.layers,
            "num_attention_heads": t.heads,
            "max_position_embeddings": t.context_length,
            "vocab_size": t.vocab_size,
            "hidden_act": act,
            "layer_norm_eps": 1e-5,
        },
    });
    let mut preprocess = PreprocessConfig::openai(v.image_size);
    if let Some(p) = file.preprocess_cfg {
        if p.interpolation.as_deref().is_some_and(|i| i != "bicubic")
            || p.resize_mode.as_deref().is_some_and(|r| r != "shortest")
        {
            return refuse("preprocessing other than a bicubic resize of the shortest side");
        }
        preprocess.mean = p.mean.unwrap_or(preprocess.mean);
        preprocess.std = p.std.unwrap_or(preprocess.std);
    }
    let pipeline = Pipeline {
        image: ImageConvention::Openai,
        text: TextConvention::Openai,
    };
    let weights_path = dir.join(WEIGHTS);
    let inner = FileWeights::open(&weights_path).map_err(|message| ModelError::File {
        path: weights_path.clone(),
        message,
    })?;
    let backend = Renamed {
        inner,
        vision_width: v.width,
        text_width: t.width,
    };
    Ok(OpenClip {
        config_json: hf.to_string(),
        weights: VarBuilder::from_backend(Box::new(backend), DType::F32, device.clone()),
        preprocess: preprocess.with_convention(ImageConvention::Openai),
        pipeline,
    })
}

/// How a Hugging Face tensor is made from an open_clip one.
enum From {
    Same(String),
    Transposed(String),
    /// Rows `part·width .. (part+1)·width` of a fused `in_proj` tensor.
    Part(String, usize),
}

/// The open_clip source of a Hugging Face `CLIPModel` tensor name.
fn source(name: &str) -> Option<From> {
    let same = |s: &str| Some(From::Same(s.to_string()));
    match name {
        "vision_model.embeddings.class_embedding" => return same("visual.class_embedding"),
        "vision_model.embeddings.patch_embedding.weight" => return same("visual.conv1.weight"),
        "vision_model.embeddings.position_embedding.weight" => {
            return same("visual.positional_embedding")
        }
        "visual_projection.weight" => return Some(From::Transposed("visual.proj".into())),
        "text_projection.weight" => return Some(From::Transposed("text_projection".into())),
        "text_model.embeddings.token_embedding.weight" => return same("token_embedding.weight"),
        "text_model.embeddings.position_embedding.weight" => return same("positional_embedding"),
        "logit_scale" => return same("logit_scale"),
        _ => {}
    }
    let norms = [
        ("vision_model.pre_layrnorm.", "visual.ln_pre."),
        ("vision_model.post_layernorm.", "visual.ln_post."),
        ("text_model.final_layer_norm.", "ln_final."),
    ];
    for (hf, oc) in norms {
        if let Some(rest) = name.strip_prefix(hf) {
            return same(&format!("{oc}{rest}"));
        }
    }
    let (prefix, rest) = if let Some(r) = name.strip_prefix("vision_model.encoder.layers.") {
        ("visual.transformer.resblocks.", r)
    } else {
        (
            "transformer.resblocks.",
            name.strip_prefix("text_model.encoder.layers.")?,
        )
    };
    let (layer, rest) = rest.split_once('.')?;
    let block = format!("{prefix}{layer}.");
    for (i, q) in ["q_proj.", "k_proj.", "v_proj."].iter().enumerate() {
        if let Some(kind) = rest
            .strip_prefix("self_attn.")
            .and_then(|r| r.strip_prefix(q))
        {
            return Some(From::Part(format!("{block}attn.in_proj_{kind}"), i));
        }
    }
    let parts = [
        ("self_attn.out_proj.", "attn.out_proj."),
        ("layer_norm1.", "ln_1."),
        ("layer_norm2.", "ln_2."),
        ("mlp.fc1.", "mlp.c_fc."),
        ("mlp.fc2.", "mlp.c_proj."),
    ];
    parts.iter().find_map(|(hf, oc)| {
        rest.strip_prefix(hf)
            .map(|kind| From::Same(format!("{block}{oc}{kind}")))
    })
}

/// open_clip's tensors served under our names.
struct Renamed {
    inner: FileWeights,
    vision_width: usize,
    text_width: usize,
}

impl Renamed {
    fn fetch(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        let missing = || candle_core::Error::CannotFindTensor { path: name.into() };
        match source(name).ok_or_else(missing)? {
            From::Same(s) => self.inner.read(&s, dtype, dev),
            From::Transposed(s) => self.inner.read(&s, dtype, dev)?.t()?.contiguous(),
            From::Part(s, i) => {
                let width = if name.starts_with("vision_model.") {
                    self.vision_width
                } else {
                    self.text_width
                };
                self.inner
                    .read(&s, dtype, dev)?
                    .narrow(0, i * width, width)?
                    .contiguous()
            }
        }
    }
}

impl SimpleBackend for Renamed {
    fn get(
        &self,
        s: Shape,
        name: &str,
        _: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let what = format!("{name} (from the OpenCLIP checkpoint)");
        expect_shape(self.fetch(name, dtype, dev)?, s, &what)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        self.fetch(name, dtype, dev)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        match source(name) {
            Some(From::Same(s) | From::Transposed(s) | From::Part(s, _)) => {
                self.inner.contains_tensor(&s)
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_onto_open_clips() {
        let name = |n: &str| match source(n) {
            Some(From::Same(s)) => format!("same {s}"),
            Some(From::Transposed(s)) => format!("t {s}"),
            Some(From::Part(s, i)) => format!("part {i} {s}"),
            None => "none".into(),
        };
        assert_eq!(
            name("vision_model.encoder.layers.3.self_attn.k_proj.bias"),
            "part 1 visual.transformer.resblocks.3.attn.in_proj_bias"
        );
        assert_eq!(
            name("text_model.encoder.layers.0.mlp.fc2.weight"),
            "same transformer.resblocks.0.mlp.c_proj.weight"
        );
        assert_eq!(name("visual_projection.weight"), "t visual.proj");
        assert_eq!(
            name("vision_model.pre_layrnorm.bias"),
            "same visual.ln_pre.bias"
        );
        assert_eq!(name("something.else"), "none");
    }
}
