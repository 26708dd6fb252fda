//! The typed messages between the UI (or any client) and the engine's worker thread.

use std::path::PathBuf;
use std::sync::Arc;

use crate::engine::{CropRect, MapView, ModelSource, Pipeline, Progress, PromptScore};

/// Identifies an image for the whole session; the client picks it.
pub type ImageId = u64;

/// Where an image's bytes come from.
#[derive(Debug, Clone)]
pub enum ImageInput {
    /// A file to decode (on the worker, never on the UI thread).
    Path(PathBuf),
    /// Encoded bytes (a file's content, e.g. a built-in scene).
    Bytes(Arc<Vec<u8>>),
    /// Decoded RGBA pixels (e.g. pasted from the clipboard).
    Rgba {
        width: u32,
        height: u32,
        pixels: Arc<Vec<u8>>,
    },
}

/// An image and its id.
#[derive(Debug, Clone)]
pub struct ImageRef {
    pub id: ImageId,
    pub input: ImageInput,
}

/// Work for the worker.
#[derive(Debug, Clone)]
pub enum Job {
    /// Load a model; replaces the current one and empties the image cache.
    LoadModel { source: ModelSource },
    /// Decode and encode an image (cached by id); answers with `ImageReady`.
    EncodeImage { image: ImageRef },
    /// Score prompts against an image (encoding it first if it is not cached). A newer `Score`
    /// for the same image supersedes queued older ones.
    Score {
        image: ImageRef,
        prompts: Vec<String>,
        generation: u64,
        /// How the display maps are made (scores always read the raw centre crop).
        view: MapView,
    },
    /// Drop an image from the cache.
    Forget { image_id: ImageId },
    /// Panics inside the worker (to prove panic recovery; tests only).
    #[cfg(any(test, feature = "test-hooks"))]
    Panic,
}

/// A downscaled RGBA copy of an image for display.
#[derive(Debug, Clone, PartialEq)]
pub struct Preview {
    pub width: u32,
    pub height: u32,
    pub rgba: Vec<u8>,
}

/// What a loaded model is, for status bars and menus.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelInfo {
    /// What was loaded, so a client with two loads in flight knows which one answered.
    pub source: ModelSource,
    pub name: String,
    /// CLIP or SigLIP: whether maps have a CLS row, how scores are read, which heads exist.
    pub family: crate::engine::Family,
    pub device: String,
    pub grid: (usize, usize),
    pub image_size: usize,
    pub projection_dim: usize,
    pub context: usize,
    /// Blocks of the vision tower (the `layer:N` map sources).
    pub vision_layers: usize,
    /// The reference conventions it follows around the maths (preprocessing, text clean-up).
    pub pipeline: Pipeline,
    /// The label of the DCSM scorer whose verdicts are shown, if the model has one.
    pub scorer: Option<&'static str>,
    /// Whether the model has a SmartCLIP mask network.
    pub smartclip: bool,
    pub load_ms: f64,
}

/// An encoded image, announced once.
#[derive(Debug, Clone)]
pub struct ImageInfo {
    pub id: ImageId,
    pub preview: Arc<Preview>,
    /// A small copy for the gallery (longest side `THUMBNAIL_SIDE`).
    pub thumbnail: Arc<Preview>,
    /// Size of the decoded image (after EXIF rotation).
    pub original: (u32, u32),
    /// The square the model saw, in original pixels.
    pub crop: CropRect,
    pub grid: (usize, usize),
    pub encode_ms: f64,
}

/// Scores of one `Score` job.
#[derive(Debug, Clone)]
pub struct Results {
    pub image_id: ImageId,
    pub generation: u64,
    pub prompts: Vec<PromptScore>,
    /// Whether the image came from the cache (no vision forward pass for this job).
    pub image_cached: bool,
    pub score_ms: f64,
    /// The view the maps in `prompts[..].dcsm` come from.
    pub view: MapView,
    /// Their patch grid (rows, cols) and the part of the image they cover, in original pixels.
    pub map_grid: (usize, usize),
    pub map_region: CropRect,
    /// Verdicts are still to come: the maps and CLIP's scores were sent without waiting for
    /// the DCSM scorers' columns and SmartCLIP's full-context text pass over new prompts. The
    /// same results with `dcsm_scores` and `smartclip` filled in follow (same image and
    /// generation, this `false`) unless a newer `Score` for the image supersedes them.
    pub verdicts_pending: bool,
}

/// What the worker reports.
#[derive(Debug, Clone)]
pub enum Event {
    Progress(Progress),
    ModelReady(ModelInfo),
    /// A model could not be loaded. The previous model is gone too (it is dropped before a load
    /// so that two never share memory): until a load succeeds there is no model.
    ModelFailed {
        source: ModelSource,
        message: String,
    },
    ImageReady(ImageInfo),
    Results(Results),
    /// A job failed; the worker keeps serving.
    Error {
        image_id: Option<ImageId>,
        generation: Option<u64>,
        message: String,
    },
}
