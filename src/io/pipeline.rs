//! Which reference pipeline a model folder follows around the maths: image preprocessing and
//! text clean-up (`config.json` → `"pipeline"`, written by the converters).

use serde::{Deserialize, Serialize};

use crate::error::ModelError;

/// How an image becomes pixels.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageConvention {
    /// `CLIPImageProcessor`: convert to RGB first, resize, crop offset floored.
    #[default]
    Transformers,
    /// OpenAI's torchvision transform: resize in the file's own mode (RGBA premultiplied, palette
    /// images nearest-neighbour), crop offset rounded half to even, RGB after.
    Openai,
}

/// What the text goes through before BPE.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TextConvention {
    /// The fast tokenizer as `CLIPProcessor` runs it: no clean-up.
    #[default]
    Transformers,
    /// OpenAI's `simple_tokenizer`: ftfy, `html.unescape` twice, strip.
    Openai,
}

/// The two conventions of a model folder; Hugging Face folders (no `"pipeline"` key) keep
/// `transformers`' ones.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pipeline {
    #[serde(default)]
    pub image: ImageConvention,
    #[serde(default)]
    pub text: TextConvention,
}

impl Pipeline {
    /// The `"pipeline"` object of a `config.json`, or the default when it has none.
    pub fn from_config_json(json: &str) -> Result<Self, ModelError> {
        let value: serde_json::Value =
            serde_json::from_str(json).map_err(|e| ModelError::Json {
                what: "config.json".into(),
                source: e,
            })?;
        match value.get("pipeline") {
            None => Ok(Self::default()),
            Some(p) => serde_json::from_value(p.clone()).map_err(|e| {
                ModelError::Config(format!(
                    "config.json: \"pipeline\" must be {{\"image\": \"transformers\"|\"openai\", \
                     \"text\": \"transformers\"|\"openai\"}} ({e})"
                ))
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_from_config_json() {
        let p =
            Pipeline::from_config_json(r#"{"pipeline": {"image": "openai", "text": "openai"}}"#)
                .unwrap();
        assert_eq!(p.image, ImageConvention::Openai);
        assert_eq!(p.text, TextConvention::Openai);
        assert_eq!(
            Pipeline::from_config_json("{}").unwrap(),
            Pipeline::default()
        );
        let err = Pipeline::from_config_json(r#"{"pipeline": {"image": "pil"}}"#).unwrap_err();
        assert!(err.to_string().contains("pipeline"), "{err}");
    }
}
