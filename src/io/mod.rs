//! Reading what a model is made of: weights, model sources (folders, the hub, the embedded
//! default), the tokenizer and image preprocessing.

pub mod decode;
pub mod ftfy;
pub mod html;
pub mod openclip;
pub mod pillow;
pub mod pipeline;
pub mod preprocess;
pub mod presets;
pub mod source;
pub mod sp_tokenizer;
pub mod spiece;
pub mod tokenizer;
pub mod weights;

use std::io::Read;
use std::path::Path;

use crate::error::ModelError;

/// A JSON settings file (`config.json`, `preprocessor_config.json`) larger than this is refused
/// unread: real ones are a few kilobytes.
pub const MAX_SETTINGS_BYTES: u64 = 1 << 20;

/// Reads a file of at most `limit` bytes; a larger one is refused before it is read.
pub fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>, ModelError> {
    let io = |source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let size = file.metadata().map_err(io)?.len();
    if size > limit {
        return Err(ModelError::File {
            path: path.to_path_buf(),
            message: format!("{size} bytes is too large for this file (at most {limit})"),
        });
    }
    let mut bytes = Vec::new();
    // `take` also bounds a file that grows while it is read.
    file.take(limit).read_to_end(&mut bytes).map_err(io)?;
    Ok(bytes)
}

/// Reads a UTF-8 text file of at most `limit` bytes (see [`read_bounded`]).
pub fn read_small(path: &Path, limit: u64) -> Result<String, ModelError> {
    String::from_utf8(read_bounded(path, limit)?).map_err(|e| ModelError::Io {
        path: path.to_path_buf(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
    })
}
