//! The desktop visualiser (eframe/egui): UI only, talking to the engine through the worker.

mod browser;
pub mod client;
mod colour;
pub mod command;
mod compare;
pub mod demo;
mod dialogs;
mod events;
pub mod export;
mod gallery;
mod heatmap;
mod images;
mod input;
mod maps;
mod masks;
mod matrix;
mod prompts;
mod scores;
pub mod selection;
pub mod state;
mod status;
mod textures;
mod window;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::dcsm::Matrix;
use crate::engine::{ModelSource, PromptScore};
use crate::render::Scale;
use crate::worker::{ImageId, ImageRef, Job, Worker};
use client::{Clock, Debounce, EngineClient, SystemClock};
use command::Commands;
pub use gallery::Gallery;
pub use selection::Selection;
use state::*;
use textures::TextureCache;
pub use window::run;

/// The whole app: state in one struct, panels in their own files.
pub struct ClipscopeApp {
    client: EngineClient,
    ctx: egui::Context,
    /// The context the worker wakes; rebound to whichever context shows the app.
    repaint: Arc<Mutex<egui::Context>>,
    bound: bool,
    /// The images and which one is shown.
    pub gallery: Gallery,
    /// The prompt, token, patch and pins the views show.
    pub selection: Selection,
    pub prompts: Vec<String>,
    pub shown: HashMap<ImageId, Shown>,
    pub settings: Settings,
    pub model: ModelState,
    pub notices: Vec<Notice>,
    pub timings: Timings,
    /// Images the worker encoded (ImageReady events) since start: typing must not raise it.
    pub encodes: usize,
    textures: TextureCache,
    /// The file dialog in progress (system or built-in).
    dialogs: dialogs::Dialogs,
    stats_printed: Instant,
    /// When the app was created (for the time to the first maps).
    started: Instant,
    /// Where prompts, images and settings are saved (none in tests).
    state_file: Option<std::path::PathBuf>,
    /// How long the frame that sends a scoring request waits for its answer (`SAME_FRAME_WAIT`).
    pub same_frame_wait: Duration,
}

/// The frame that sends a scoring request waits this long for the answer, when the last answer
/// took less, so the maps are drawn in the frame that asked for them rather than the next one
/// (a whole frame later: about 17 ms at 60 Hz, more than the default model's scoring takes). It
/// is under one frame, so a slow model costs a frame at most, once.
pub const SAME_FRAME_WAIT: Duration = Duration::from_millis(14);

impl ClipscopeApp {
    /// The app with its worker, restoring `persisted` (or the demo scenes on a first run).
    pub fn new(ctx: &egui::Context, persisted: Option<Persisted>) -> Self {
        let model = persisted
            .as_ref()
            .and_then(|p| p.model.clone())
            .unwrap_or(ModelSource::Embedded);
        let mut app = Self::with_model(ctx, model);
        match persisted {
            Some(p) => {
                app.settings = p.settings;
                app.prompts = p.prompts;
                for path in p.image_paths {
                    if path.is_file() {
                        app.add_path(path);
                    }
                }
                if app.gallery.images.is_empty() {
                    app.add_demos();
                }
            }
            None => app.add_demos(),
        }
        if app.prompts.is_empty() {
            app.prompts.push("a red circle".into());
        }
        app
    }

    /// An app with no images or prompts that loads `model`.
    pub fn with_model(ctx: &egui::Context, model: ModelSource) -> Self {
        Self::with_model_and_clock(ctx, model, Box::new(SystemClock))
    }

    /// As `with_model`, with the debounce on `clock` (tests move a manual clock instead of
    /// sleeping).
    pub fn with_model_and_clock(
        ctx: &egui::Context,
        model: ModelSource,
        clock: Box<dyn Clock>,
    ) -> Self {
        let repaint = Arc::new(Mutex::new(ctx.clone()));
        let target = repaint.clone();
        let worker = Worker::spawn(move || {
            if let Ok(ctx) = target.lock() {
                ctx.request_repaint();
            }
        });
        let mut app = Self {
            client: EngineClient::new(worker, clock),
            ctx: ctx.clone(),
            repaint,
            bound: false,
            gallery: Gallery::default(),
            prompts: Vec::new(),
            selection: Selection::default(),
            shown: HashMap::new(),
            settings: Settings::default(),
            model: ModelState::default(),
            notices: Vec::new(),
            timings: Timings::default(),
            encodes: 0,
            textures: TextureCache::default(),
            dialogs: dialogs::Dialogs::default(),
            stats_printed: Instant::now(),
            started: Instant::now(),
            state_file: None,
            same_frame_wait: SAME_FRAME_WAIT,
        };
        app.load_model(model);
        app
    }

    pub fn load_model(&mut self, source: ModelSource) {
        self.model.loading = Some(source.clone());
        self.model.progress = None;
        self.client.send(Job::LoadModel { source });
    }

    /// The current image's texture and encoding, once both exist; the grid and crop are those
    /// of the maps shown (another view's: a finer grid, or the whole image with tiles).
    pub fn current_view(&self) -> Option<(egui::TextureHandle, crate::worker::ImageInfo)> {
        let e = self.current_entry()?;
        Some((e.texture.clone()?, self.map_geometry(e.info()?)))
    }

    /// `info` with the grid and region of the current maps.
    pub fn map_geometry(&self, info: &crate::worker::ImageInfo) -> crate::worker::ImageInfo {
        let mut out = info.clone();
        if let Some(s) = self
            .current_shown()
            .filter(|s| s.results.image_id == info.id)
        {
            out.grid = s.results.map_grid;
            out.crop = s.results.map_region;
        }
        out
    }

    pub fn current_entry(&self) -> Option<&ImageEntry> {
        self.gallery.current_entry()
    }

    /// Prompts changed (or the image): score again after the debounce.
    pub fn mark_dirty(&mut self) {
        self.client.mark_dirty();
    }

    /// Whether an edit is waiting for the debounce.
    pub fn debouncing(&self) -> bool {
        self.client.debouncing()
    }

    /// Blocks up to `timeout` for the worker's next event and applies it; false if none came.
    pub fn wait_for_worker(&mut self, timeout: Duration) -> bool {
        match self.client.wait_event(timeout) {
            Some(event) => {
                self.on_event(event);
                true
            }
            None => false,
        }
    }

    /// Whether a scoring request is on its way.
    pub fn busy(&self) -> bool {
        self.client.busy() || self.model.loading.is_some()
    }

    /// The results currently shown for the current image.
    pub fn current_shown(&self) -> Option<&Shown> {
        self.gallery.current.and_then(|id| self.shown.get(&id))
    }

    /// Whether the shown results' verdicts (DCSM scorer, SmartCLIP) are still on their way.
    pub fn verdicts_pending(&self) -> bool {
        self.current_shown()
            .is_some_and(|s| s.results.verdicts_pending)
    }

    /// The score of prompt `index` (an index into `self.prompts`), if scored.
    /// The view the maps are asked in: the saved one, or the plain view for a model whose
    /// family has only that (SigLIP), so the saved view survives a switch of models.
    pub fn map_view(&self) -> crate::engine::MapView {
        match self.family() {
            crate::engine::Family::Clip => self.settings.maps,
            crate::engine::Family::Siglip => crate::engine::MapView::default(),
        }
    }

    /// The loaded model's family (CLIP until a model says otherwise).
    pub fn family(&self) -> crate::engine::Family {
        self.model
            .info
            .as_ref()
            .map_or(crate::engine::Family::Clip, |i| i.family)
    }

    pub fn score_of(&self, index: usize) -> Option<&PromptScore> {
        let shown = self.current_shown()?;
        let pos = shown.prompt_index.iter().position(|i| *i == index)?;
        shown.results.prompts.get(pos)
    }

    /// The selected token: the user's choice, else the first content word of the selected
    /// prompt ("circle"'s colour in "a red circle", not SOS), so a map that means something shows.
    pub fn selected_token(&self) -> usize {
        self.selection.token.unwrap_or_else(|| {
            self.score_of(self.selection.prompt)
                .and_then(|s| s.tokenized.first_content_token())
                .unwrap_or(0)
        })
    }

    /// The token whose map is displayed: hovered, else selected (clamped to the prompt).
    pub fn active_token(&self) -> Option<usize> {
        let score = self.score_of(self.selection.prompt)?;
        let n = score.tokenized.ids.len();
        Some(
            self.selection
                .hovered_token
                .unwrap_or(self.selected_token())
                .min(n.saturating_sub(1)),
        )
    }

    /// The colour scale of one map under the current settings.
    pub fn scale_for(&self, map: &[f32]) -> Scale {
        match self.settings.scale {
            ScaleMode::PerMap => Scale::span(map),
            ScaleMode::Locked => self.locked_scale(),
        }
    }

    /// One symmetric scale over every patch value of every prompt shown for the current image.
    pub fn locked_scale(&self) -> Scale {
        match self.current_shown() {
            Some(s) => {
                Scale::symmetric(s.results.prompts.iter().flat_map(|p| patch_values(&p.dcsm)))
            }
            None => Scale { lo: -1.0, hi: 1.0 },
        }
    }

    /// Drains worker events and sends a debounced scoring request. Runs once per frame.
    pub fn pump(&mut self) {
        while let Some(event) = self.client.try_event() {
            self.on_event(event);
        }
        self.upload_previews();
        match self.client.debounce() {
            Debounce::Due => {
                self.send_score();
                self.await_quick_answer();
            }
            Debounce::Wait(left) => self.ctx.request_repaint_after(left),
            Debounce::Idle => {}
        }
        self.notices
            .retain(|n| n.error || n.at.elapsed() < Duration::from_secs(6));
    }

    /// Waits within this frame, up to `same_frame_wait`, for the answers in flight, when the last
    /// answer was computed in under that time (so this one likely comes in time too).
    fn await_quick_answer(&mut self) {
        let budget = self.same_frame_wait;
        let quick = self
            .timings
            .score_ms
            .is_some_and(|ms| ms < budget.as_secs_f64() * 1e3);
        if !quick {
            return;
        }
        let deadline = Instant::now() + budget;
        while self.client.awaiting() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || !self.wait_for_worker(left) {
                return;
            }
        }
    }

    fn send_score(&mut self) {
        let Some(entry) = self.current_entry() else {
            return;
        };
        if matches!(entry.status, ImageStatus::Failed(_) | ImageStatus::NoModel) {
            return;
        }
        let image = ImageRef {
            id: entry.id,
            input: entry.input.clone(),
        };
        let prompt_index: Vec<usize> = (0..self.prompts.len())
            .filter(|i| !self.prompts[*i].trim().is_empty())
            .collect();
        if prompt_index.is_empty() {
            return;
        }
        let prompts = prompt_index
            .iter()
            .map(|i| self.prompts[*i].clone())
            .collect();
        self.client
            .score(image, prompts, prompt_index, self.map_view());
    }

    /// The whole UI (the eframe app and the tests both call this).
    pub fn show(&mut self, ui: &mut egui::Ui) {
        let start = Instant::now();
        if !self.bound {
            self.bound = true;
            self.ctx = ui.ctx().clone();
            if let Ok(mut target) = self.repaint.lock() {
                *target = self.ctx.clone();
            }
        }
        self.pump();
        self.handle_input(ui.ctx());
        let mut commands = Commands::default();
        commands.append(status::top_bar(self, ui));
        commands.append(status::bottom_bar(self, ui));
        commands.append(gallery::show(&self.gallery, ui));
        commands.append(prompts::show(self, ui));
        let view = egui::CentralPanel::default()
            .show(ui, |ui| match self.settings.view {
                View::Overlay => heatmap::overlay_view(self, ui),
                View::Grid => heatmap::grid_view(self, ui),
                View::Matrix => matrix::show(self, ui),
                View::Compare => compare::show(self, ui),
                View::Masks => masks::show(self, ui),
            })
            .inner;
        commands.append(view);
        gallery::drop_overlay(ui);
        if let Some(answer) = self.dialogs.poll(ui.ctx()) {
            self.on_dialog(answer);
        }
        self.apply(commands);
        self.timings.push_frame(start.elapsed().as_secs_f32() * 1e3);
    }

    /// What persists between runs.
    pub fn persisted(&self) -> Persisted {
        Persisted {
            prompts: self.prompts.clone(),
            image_paths: self
                .gallery
                .images
                .iter()
                .filter_map(|e| e.path().cloned())
                .collect(),
            settings: self.settings.clone(),
            model: self
                .model
                .source
                .clone()
                .or_else(|| self.model.loading.clone()),
        }
    }
}

/// Patch rows of a DCSM (CLS excluded).
pub fn patch_values(m: &Matrix) -> impl Iterator<Item = &f32> {
    m.data[(m.first_patch_row() * m.cols).min(m.data.len())..].iter()
}
