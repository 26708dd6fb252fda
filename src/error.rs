//! The crate's error type: everything that can go wrong below the app and the CLI.

use std::path::PathBuf;

/// Everything that can go wrong in the engine, each with a message a person can act on.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{path}: {message}")]
    Io { path: PathBuf, message: String },
    #[error("model config: {0}")]
    Config(String),
    #[error("model weights: {0}")]
    Weights(String),
    #[error("image: {0}")]
    Image(String),
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("prompt: {0}")]
    Prompt(String),
    #[error("{0}")]
    Hub(String),
    #[error("model computation failed: {0}")]
    Candle(#[from] candle_core::Error),
}
