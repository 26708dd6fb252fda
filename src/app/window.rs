//! The native window: eframe's start-up with the saved state, the per-frame hook (frame
//! statistics), saving and exit.

use std::time::{Duration, Instant};

use super::{state, ClipscopeApp};

/// Starts the desktop app.
pub fn run() -> anyhow::Result<()> {
    leave_a_core_for_the_ui();
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title("clipscope")
            .with_inner_size([1360.0, 860.0])
            .with_drag_and_drop(true),
        ..Default::default()
    };
    eframe::run_native(
        "clipscope",
        options,
        Box::new(|cc| {
            let path = state::state_file();
            let (persisted, problem) = match path.as_deref().map(state::load_state) {
                Some(Ok(p)) => (p, None),
                Some(Err(e)) => (None, Some(e)),
                None => (None, None),
            };
            let mut app = ClipscopeApp::new(&cc.egui_ctx, persisted);
            app.state_file = path;
            if let Some(e) = problem {
                app.notice(
                    format!("the saved state could not be read ({e}); starting fresh"),
                    true,
                );
            }
            Ok(Box::new(app))
        }),
    )
    .map_err(|e| anyhow::anyhow!("the window could not start: {e}"))
}

/// The worker's math (candle's matmuls, rayon) would otherwise take every core and starve the UI
/// thread for a frame now and then; unless the user chose, keep one core free. Runs before any
/// other thread exists.
fn leave_a_core_for_the_ui() {
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        std::env::set_var(
            "RAYON_NUM_THREADS",
            cores.saturating_sub(1).max(1).to_string(),
        );
    }
}

impl eframe::App for ClipscopeApp {
    fn ui(&mut self, ui: &mut egui::Ui, frame: &mut eframe::Frame) {
        if let Some(cpu) = frame.info().cpu_usage {
            let busy = self.busy();
            self.timings.push_full_frame(cpu * 1e3, busy);
        }
        self.show(ui);
        if self.stats_printed.elapsed() > Duration::from_secs(5)
            && tracing::enabled!(target: "clipscope::frames", tracing::Level::DEBUG)
        {
            self.stats_printed = Instant::now();
            tracing::debug!(target: "clipscope::frames", "{}", self.timings.report());
        }
    }

    fn save(&mut self, _storage: &mut dyn eframe::Storage) {
        // Our own file, written atomically: eframe rewrites its app.ron in place.
        if let Some(path) = &self.state_file {
            if let Err(e) = state::save_state(path, &self.persisted()) {
                self.notice(
                    format!("could not save the app state to {}: {e}", path.display()),
                    true,
                );
            }
        }
    }

    fn on_exit(&mut self, _gl: Option<&eframe::glow::Context>) {
        tracing::debug!(target: "clipscope::frames", "{}", self.timings.report());
    }
}
