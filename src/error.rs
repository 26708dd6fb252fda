//! The crate's error type: everything that can go wrong below the app and the CLI.

use std::path::PathBuf;

/// Everything that can go wrong in the engine, each with a message a person can act on and,
/// where another library failed, that library's error as the source.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// Reading a file failed.
    #[error("{}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A path that is missing or not what it must be.
    #[error("{}: {message}", path.display())]
    File { path: PathBuf, message: String },
    #[error("model config: {0}")]
    Config(String),
    /// A JSON file that does not parse as what it should be.
    #[error("{what}")]
    Json {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("model weights: {0}")]
    Weights(String),
    /// Weights that cannot be read, or do not fit the model they are loaded into.
    #[error("model weights: {what}")]
    WeightsRead {
        what: String,
        #[source]
        source: candle_core::Error,
    },
    #[error("image: {0}")]
    Image(String),
    /// An image the `image` crate cannot read.
    #[error("image: {what}")]
    Decode {
        what: String,
        #[source]
        source: image::ImageError,
    },
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// A tokenizer the `tokenizers` crate cannot load or run.
    #[error("tokenizer: {what}")]
    TokenizerLoad {
        what: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("prompt: {0}")]
    Prompt(String),
    #[error("{0}")]
    Hub(String),
    #[error("model computation failed")]
    Candle(#[from] candle_core::Error),
}

/// An error and its causes on one line, joined with ": ". Only the first line of each is kept:
/// candle appends a backtrace to its messages when one was captured.
pub fn one_line(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(error);
    while let Some(e) = next {
        let text = e.to_string();
        let first = text.lines().next().unwrap_or("").trim().to_string();
        if !first.is_empty() && parts.last() != Some(&first) {
            parts.push(first);
        }
        next = e.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_join_on_one_line() {
        let e = ModelError::Io {
            path: PathBuf::from("/x/config.json"),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
        };
        assert_eq!(one_line(&e), "/x/config.json: no such file");
        let e = ModelError::WeightsRead {
            what: "model.safetensors".into(),
            source: candle_core::Error::Msg("shape mismatch\n   0: backtrace line".into()),
        };
        assert_eq!(
            one_line(&e),
            "model weights: model.safetensors: shape mismatch"
        );
    }
}
