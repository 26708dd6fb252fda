//! The app's state: images, prompts, results and view settings, and what persists between runs.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use crate::engine::ModelSource;
use crate::worker::{ImageId, ImageInfo, ImageInput, ModelInfo, Results};

/// Which big view the central panel shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum View {
    Overlay,
    Grid,
    Matrix,
    Compare,
    /// SmartCLIP's mask activations.
    Masks,
}

/// How map values become colours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ScaleMode {
    /// One symmetric scale over every map of every prompt (colours compare across maps).
    Locked,
    /// Each map stretched to its own range.
    PerMap,
}

/// Settings that persist.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Settings {
    pub view: View,
    pub scale: ScaleMode,
    pub opacity: f32,
    pub smooth: bool,
    pub show_crop: bool,
    /// Encode, score and frame times in the status bar (off: a steady picture for snapshots
    /// and demos). Saved states from before this setting show them.
    #[serde(default = "shown")]
    pub show_timings: bool,
    /// How the maps are made: source, surgery, resolution, tiles.
    #[serde(default)]
    pub maps: crate::engine::MapView,
}

fn shown() -> bool {
    true
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            view: View::Overlay,
            scale: ScaleMode::Locked,
            opacity: 0.6,
            smooth: false,
            show_crop: true,
            show_timings: true,
            maps: crate::engine::MapView::default(),
        }
    }
}

/// Where the app keeps its state: `state.json` in eframe's storage folder for "clipscope".
pub fn state_file() -> Option<PathBuf> {
    eframe::storage_dir("clipscope").map(|d| d.join("state.json"))
}

/// Reads the saved state; no file is no state, an unreadable one is an error to report.
pub fn load_state(path: &std::path::Path) -> Result<Option<Persisted>, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| e.to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

/// Writes the state atomically (temporary file + rename), creating the folder if needed.
pub fn save_state(path: &std::path::Path, state: &Persisted) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let json = serde_json::to_vec_pretty(state).map_err(std::io::Error::other)?;
    crate::atomic::write(path, &json)
}

/// What is saved between runs.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Persisted {
    pub prompts: Vec<String>,
    pub image_paths: Vec<PathBuf>,
    pub settings: Settings,
    pub model: Option<ModelSource>,
}

/// Where an image is in its life.
#[derive(Debug, Clone)]
pub enum ImageStatus {
    Encoding,
    Ready(ImageInfo),
    Failed(String),
    /// It could not be encoded because no model is loaded (a load failed); encoded again when
    /// one is.
    NoModel,
}

/// One image of the gallery.
pub struct ImageEntry {
    pub id: ImageId,
    pub name: String,
    pub input: ImageInput,
    pub status: ImageStatus,
    /// The preview as a texture, kept only while the image is the current one.
    pub texture: Option<egui::TextureHandle>,
    /// The gallery's small copy as a texture.
    pub thumbnail: Option<egui::TextureHandle>,
    /// Starter prompts for built-in scenes.
    pub starters: Vec<String>,
}

impl ImageEntry {
    pub fn info(&self) -> Option<&ImageInfo> {
        match &self.status {
            ImageStatus::Ready(info) => Some(info),
            _ => None,
        }
    }

    pub fn path(&self) -> Option<&PathBuf> {
        match &self.input {
            ImageInput::Path(p) => Some(p),
            _ => None,
        }
    }
}

/// The newest results shown for an image, with which prompt each belongs to.
pub struct Shown {
    pub results: Arc<Results>,
    /// `results.prompts[i]` scores `prompts[prompt_index[i]]`.
    pub prompt_index: Vec<usize>,
    /// While `results.verdicts_pending`: the DCSM scorer's and SmartCLIP's scores shown before
    /// for the same prompt slots, drawn greyed until the new ones come, so an edit moves the
    /// bars instead of blanking them.
    pub stale: Vec<StaleVerdicts>,
}

/// The verdicts a prompt slot showed before an edit (`Shown::stale`).
#[derive(Debug, Clone, Copy, Default)]
pub struct StaleVerdicts {
    pub dcsm: Option<f32>,
    pub smartclip: Option<f32>,
}

impl Shown {
    /// `results` for the prompts at `prompt_index`, replacing `before` (what the image showed):
    /// while the verdicts are on their way, each slot keeps the verdicts it showed.
    pub fn new(results: Results, prompt_index: Vec<usize>, before: Option<&Shown>) -> Self {
        let stale = match (results.verdicts_pending, before) {
            (true, Some(old)) => prompt_index
                .iter()
                .map(|&i| old.verdicts_of(i).unwrap_or_default())
                .collect(),
            _ => Vec::new(),
        };
        Self {
            results: Arc::new(results),
            prompt_index,
            stale,
        }
    }

    /// What prompt `index` (into the app's prompts) shows for each verdict: its own, else,
    /// while they are on their way, the stale one.
    pub fn verdicts_of(&self, index: usize) -> Option<StaleVerdicts> {
        let pos = self.prompt_index.iter().position(|i| *i == index)?;
        let own = self.results.prompts.get(pos)?;
        let stale = self.stale.get(pos).copied().unwrap_or_default();
        Some(StaleVerdicts {
            dcsm: own.dcsm_score().or(stale.dcsm),
            smartclip: own.smartclip.as_ref().map(|s| s.score).or(stale.smartclip),
        })
    }
}

/// A scoring request in flight.
pub struct InFlight {
    pub generation: u64,
    pub image_id: ImageId,
    pub prompt_index: Vec<usize>,
    pub edited_at: Instant,
}

/// Model loading state.
#[derive(Default)]
pub struct ModelState {
    pub info: Option<ModelInfo>,
    pub loading: Option<ModelSource>,
    pub progress: Option<(String, u64, Option<u64>)>,
    pub source: Option<ModelSource>,
}

/// A message for the person, shown until dismissed or timed out.
pub struct Notice {
    pub text: String,
    pub error: bool,
    pub at: Instant,
}

/// Frames left out of the frame-time figures at start-up.
const WARM_UP_FRAMES: usize = 10;

/// Rolling timing figures for the status bar and the closing measurements.
#[derive(Default, Clone)]
pub struct Timings {
    pub encode_ms: Option<f64>,
    pub score_ms: Option<f64>,
    /// From the keystroke (after debounce) to the results arriving.
    pub edit_to_maps_ms: Option<f64>,
    /// CPU time of the last frames' UI code.
    pub frame_ms: Vec<f32>,
    /// eframe's whole-frame CPU time (UI, tessellation, painting) of recent frames.
    pub full_frame_ms: Vec<f32>,
    /// The same, only for frames drawn while the worker had a request in flight.
    pub busy_frame_ms: Vec<f32>,
    pub frames_seen: usize,
    pub edits: Vec<f64>,
    /// From the app's creation to the first scores arriving (model load, image encode, score).
    pub first_results_ms: Option<f64>,
}

impl Timings {
    pub fn push_frame(&mut self, ms: f32) {
        push_recent(&mut self.frame_ms, ms);
    }

    pub fn push_full_frame(&mut self, ms: f32, busy: bool) {
        // The first frames build the window, the font atlas and textures: not steady state.
        self.frames_seen += 1;
        if self.frames_seen <= WARM_UP_FRAMES {
            return;
        }
        push_recent(&mut self.full_frame_ms, ms);
        if busy {
            push_recent(&mut self.busy_frame_ms, ms);
        }
    }

    /// (median, max) of the recorded UI-code frame times.
    pub fn frame_summary(&self) -> Option<(f32, f32)> {
        median_max(&self.frame_ms)
    }

    /// A line with every figure, logged at debug level (`RUST_LOG=clipscope::frames=debug`).
    pub fn report(&self) -> String {
        let f = |v: &[f32]| match (median_max(v), percentile(v, 0.95)) {
            (Some((m, x)), Some(p)) => format!("median {m:.2} ms, p95 {p:.2} ms, max {x:.2} ms"),
            _ => "–".into(),
        };
        let edits: Vec<f32> = self.edits.iter().map(|e| *e as f32).collect();
        format!(
            "first maps {} after start; frames {}: ui code {}; whole frame {}; {} frames while the worker was busy: {}; edit-to-maps over {} edits: {}",
            self.first_results_ms.map_or("–".into(), |m| format!("{m:.0} ms")),
            self.frame_ms.len(),
            f(&self.frame_ms),
            f(&self.full_frame_ms),
            self.busy_frame_ms.len(),
            f(&self.busy_frame_ms),
            edits.len(),
            f(&edits)
        )
    }
}

/// Appends a timing, keeping only the most recent 600.
fn push_recent(list: &mut Vec<f32>, ms: f32) {
    if list.len() >= 600 {
        list.remove(0);
    }
    list.push(ms);
}

/// (median, max) of a list of timings.
pub fn median_max(values: &[f32]) -> Option<(f32, f32)> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f32::total_cmp);
    Some((v[v.len() / 2], v[v.len() - 1]))
}

/// The `q` quantile (0..=1) of a list of timings.
pub fn percentile(values: &[f32], q: f32) -> Option<f32> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f32::total_cmp);
    Some(v[((v.len() - 1) as f32 * q).round() as usize])
}
