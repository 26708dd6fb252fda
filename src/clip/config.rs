//! The `config.json` of a Hugging Face `CLIPModel`, read with serde (unknown fields ignored).

use serde::{Deserialize, Serialize};

use crate::error::ModelError;

/// The activation of the MLP blocks, as named by `hidden_act`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Activation {
    /// `x * sigmoid(1.702 x)`: OpenAI checkpoints.
    #[serde(rename = "quick_gelu")]
    QuickGelu,
    /// Exact (erf) GELU: TinyCLIP and many OpenCLIP exports.
    #[serde(rename = "gelu")]
    Gelu,
    /// The tanh approximation of GELU.
    #[serde(rename = "gelu_new", alias = "gelu_pytorch_tanh", alias = "gelu_fast")]
    GeluTanh,
}

impl Activation {
    fn parse(name: &str) -> Result<Self, ModelError> {
        match name {
            "quick_gelu" => Ok(Self::QuickGelu),
            "gelu" => Ok(Self::Gelu),
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Ok(Self::GeluTanh),
            other => Err(ModelError::Config(format!(
                "unknown hidden_act \"{other}\" (supported: quick_gelu, gelu, gelu_new, gelu_pytorch_tanh)"
            ))),
        }
    }
}

/// Sizes of the text tower.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TextConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub max_position_embeddings: usize,
    pub layer_norm_eps: f64,
    pub hidden_act: Activation,
    pub bos_token_id: u32,
    pub eos_token_id: u32,
}

/// Sizes of the vision tower.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VisionConfig {
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_channels: usize,
    pub image_size: usize,
    pub patch_size: usize,
    pub layer_norm_eps: f64,
    pub hidden_act: Activation,
}

impl VisionConfig {
    /// Patches per side: the heatmap grid is `grid_side × grid_side`.
    pub fn grid_side(&self) -> usize {
        self.image_size / self.patch_size
    }
}

/// The whole `CLIPModel` configuration.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClipConfig {
    pub text: TextConfig,
    pub vision: VisionConfig,
    pub projection_dim: usize,
    pub logit_scale_init_value: f64,
}

// Raw serde mirrors: every field optional, defaults as in `transformers`' CLIP configs.
#[derive(Deserialize)]
struct RawText {
    vocab_size: Option<usize>,
    hidden_size: Option<usize>,
    intermediate_size: Option<usize>,
    num_hidden_layers: Option<usize>,
    num_attention_heads: Option<usize>,
    max_position_embeddings: Option<usize>,
    layer_norm_eps: Option<f64>,
    hidden_act: Option<String>,
    bos_token_id: Option<u32>,
    eos_token_id: Option<u32>,
}

#[derive(Deserialize)]
struct RawVision {
    hidden_size: Option<usize>,
    intermediate_size: Option<usize>,
    num_hidden_layers: Option<usize>,
    num_attention_heads: Option<usize>,
    num_channels: Option<usize>,
    image_size: Option<usize>,
    patch_size: Option<usize>,
    layer_norm_eps: Option<f64>,
    hidden_act: Option<String>,
}

#[derive(Deserialize)]
struct RawConfig {
    text_config: Option<RawText>,
    vision_config: Option<RawVision>,
    projection_dim: Option<usize>,
    logit_scale_init_value: Option<f64>,
}

impl ClipConfig {
    /// Parses and validates the text of a `config.json`.
    pub fn from_json(json: &str) -> Result<Self, ModelError> {
        let raw: RawConfig = serde_json::from_str(json).map_err(|e| ModelError::Json {
            what: "config.json is not valid".to_string(),
            source: e,
        })?;
        let t = raw.text_config.ok_or_else(|| {
            ModelError::Config("config.json has no text_config: not a CLIPModel config".into())
        })?;
        let v = raw.vision_config.ok_or_else(|| {
            ModelError::Config("config.json has no vision_config: not a CLIPModel config".into())
        })?;
        let eos = t.eos_token_id.unwrap_or(49407);
        let config = ClipConfig {
            text: TextConfig {
                vocab_size: t.vocab_size.unwrap_or(49408),
                hidden_size: t.hidden_size.unwrap_or(512),
                intermediate_size: t.intermediate_size.unwrap_or(2048),
                num_hidden_layers: t.num_hidden_layers.unwrap_or(12),
                num_attention_heads: t.num_attention_heads.unwrap_or(8),
                max_position_embeddings: t.max_position_embeddings.unwrap_or(77),
                layer_norm_eps: t.layer_norm_eps.unwrap_or(1e-5),
                hidden_act: Activation::parse(t.hidden_act.as_deref().unwrap_or("quick_gelu"))?,
                bos_token_id: t.bos_token_id.unwrap_or(49406),
                // Legacy OpenAI configs say 2 and pool at argmax(ids), which is the EOS id 49407.
                eos_token_id: if eos == 2 { 49407 } else { eos },
            },
            vision: VisionConfig {
                hidden_size: v.hidden_size.unwrap_or(768),
                intermediate_size: v.intermediate_size.unwrap_or(3072),
                num_hidden_layers: v.num_hidden_layers.unwrap_or(12),
                num_attention_heads: v.num_attention_heads.unwrap_or(12),
                num_channels: v.num_channels.unwrap_or(3),
                image_size: v.image_size.unwrap_or(224),
                patch_size: v.patch_size.unwrap_or(32),
                layer_norm_eps: v.layer_norm_eps.unwrap_or(1e-5),
                hidden_act: Activation::parse(v.hidden_act.as_deref().unwrap_or("quick_gelu"))?,
            },
            projection_dim: raw.projection_dim.unwrap_or(512),
            logit_scale_init_value: raw.logit_scale_init_value.unwrap_or(2.6592),
        };
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ModelError> {
        let bad = |m: String| Err(ModelError::Config(m));
        let (t, v) = (&self.text, &self.vision);
        if t.num_attention_heads == 0 || t.hidden_size % t.num_attention_heads != 0 {
            return bad(format!(
                "text hidden_size {} is not divisible by num_attention_heads {}",
                t.hidden_size, t.num_attention_heads
            ));
        }
        if v.num_attention_heads == 0 || v.hidden_size % v.num_attention_heads != 0 {
            return bad(format!(
                "vision hidden_size {} is not divisible by num_attention_heads {}",
                v.hidden_size, v.num_attention_heads
            ));
        }
        if v.patch_size == 0 || v.image_size < v.patch_size {
            return bad(format!(
                "vision patch_size {} does not fit image_size {}",
                v.patch_size, v.image_size
            ));
        }
        if v.num_channels != 3 {
            return bad(format!(
                "num_channels is {}, only RGB (3) is supported",
                v.num_channels
            ));
        }
        if t.max_position_embeddings < 2 {
            return bad("text max_position_embeddings must be at least 2".into());
        }
        if self.projection_dim == 0 || t.hidden_size == 0 || v.hidden_size == 0 {
            return bad("sizes must be positive".into());
        }
        self.within_limits()
    }

    /// ViT-B/32 as released by OpenAI (`openai/clip-vit-base-patch32`).
    pub fn vit_b32() -> Self {
        Self::openai(768, 12, 12, 3072, 32, 512, 512, 8, 2048)
    }

    /// ViT-B/16 as released by OpenAI (`openai/clip-vit-base-patch16`).
    pub fn vit_b16() -> Self {
        Self::openai(768, 12, 12, 3072, 16, 512, 512, 8, 2048)
    }

    /// ViT-L/14 as released by OpenAI (`openai/clip-vit-large-patch14`).
    pub fn vit_l14() -> Self {
        Self::openai(1024, 24, 16, 4096, 14, 768, 768, 12, 3072)
    }

    #[allow(clippy::too_many_arguments)]
    fn openai(
        v_hidden: usize,
        v_layers: usize,
        v_heads: usize,
        v_mlp: usize,
        patch: usize,
        proj: usize,
        t_hidden: usize,
        t_heads: usize,
        t_mlp: usize,
    ) -> Self {
        ClipConfig {
            text: TextConfig {
                vocab_size: 49408,
                hidden_size: t_hidden,
                intermediate_size: t_mlp,
                num_hidden_layers: 12,
                num_attention_heads: t_heads,
                max_position_embeddings: 77,
                layer_norm_eps: 1e-5,
                hidden_act: Activation::QuickGelu,
                bos_token_id: 49406,
                eos_token_id: 49407,
            },
            vision: VisionConfig {
                hidden_size: v_hidden,
                intermediate_size: v_mlp,
                num_hidden_layers: v_layers,
                num_attention_heads: v_heads,
                num_channels: 3,
                image_size: 224,
                patch_size: patch,
                layer_norm_eps: 1e-5,
                hidden_act: Activation::QuickGelu,
            },
            projection_dim: proj,
            logit_scale_init_value: 2.6592,
        }
    }

    /// The config as Hugging Face writes it, so a model we create loads in `transformers` too.
    pub fn to_hf_json(&self) -> serde_json::Value {
        let act = |a: Activation| match a {
            Activation::QuickGelu => "quick_gelu",
            Activation::Gelu => "gelu",
            Activation::GeluTanh => "gelu_new",
        };
        let (t, v) = (&self.text, &self.vision);
        serde_json::json!({
            "architectures": ["CLIPModel"],
            "model_type": "clip",
            "projection_dim": self.projection_dim,
            "logit_scale_init_value": self.logit_scale_init_value,
            "text_config": {
                "model_type": "clip_text_model",
                "vocab_size": t.vocab_size, "hidden_size": t.hidden_size,
                "intermediate_size": t.intermediate_size, "num_hidden_layers": t.num_hidden_layers,
                "num_attention_heads": t.num_attention_heads,
                "max_position_embeddings": t.max_position_embeddings,
                "layer_norm_eps": t.layer_norm_eps, "hidden_act": act(t.hidden_act),
                "bos_token_id": t.bos_token_id, "eos_token_id": t.eos_token_id,
                "pad_token_id": t.eos_token_id, "projection_dim": self.projection_dim
            },
            "vision_config": {
                "model_type": "clip_vision_model",
                "hidden_size": v.hidden_size, "intermediate_size": v.intermediate_size,
                "num_hidden_layers": v.num_hidden_layers, "num_attention_heads": v.num_attention_heads,
                "num_channels": v.num_channels, "image_size": v.image_size,
                "patch_size": v.patch_size, "layer_norm_eps": v.layer_norm_eps,
                "hidden_act": act(v.hidden_act), "projection_dim": self.projection_dim
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_sizes_and_ignores_unknown_fields() {
        let json = r#"{"text_config": {"hidden_size": 64, "num_attention_heads": 4, "hidden_act": "gelu",
            "max_position_embeddings": 33, "whatever": [1,2]},
            "vision_config": {"hidden_size": 96, "num_attention_heads": 6, "image_size": 60, "patch_size": 10,
            "layer_norm_eps": 1e-6}, "projection_dim": 40, "torch_dtype": "float16"}"#;
        let c = ClipConfig::from_json(json).unwrap();
        assert_eq!(c.text.hidden_size, 64);
        assert_eq!(c.text.hidden_act, Activation::Gelu);
        assert_eq!(c.text.max_position_embeddings, 33);
        assert_eq!(c.vision.grid_side(), 6);
        assert_eq!(c.vision.layer_norm_eps, 1e-6);
        assert_eq!(c.vision.hidden_act, Activation::QuickGelu);
        assert_eq!(c.projection_dim, 40);
    }

    #[test]
    fn legacy_eos_id_two_means_the_eos_token() {
        let json = r#"{"text_config": {"eos_token_id": 2}, "vision_config": {}}"#;
        assert_eq!(
            ClipConfig::from_json(json).unwrap().text.eos_token_id,
            49407
        );
    }

    #[test]
    fn clear_errors_for_bad_configs() {
        let err = ClipConfig::from_json(r#"{"text_config": {}}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("vision_config"), "{err}");
        let err = ClipConfig::from_json(
            r#"{"text_config": {"hidden_act": "swish"}, "vision_config": {}}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("unknown hidden_act \"swish\""), "{err}");
        let err = ClipConfig::from_json("{not json").unwrap_err().to_string();
        assert!(err.contains("not valid"), "{err}");
        let err = ClipConfig::from_json(
            r#"{"text_config": {"hidden_size": 10, "num_attention_heads": 3}, "vision_config": {}}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("divisible"), "{err}");
    }

    #[test]
    fn hf_json_round_trips() {
        for c in [
            ClipConfig::vit_b32(),
            ClipConfig::vit_b16(),
            ClipConfig::vit_l14(),
        ] {
            let back = ClipConfig::from_json(&c.to_hf_json().to_string()).unwrap();
            assert_eq!(back, c);
        }
    }
}
