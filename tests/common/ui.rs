//! Helpers of the UI tests: the app on the tiny fixture model with a manual clock, in a kittest
//! harness, and stepping it until the worker has answered.
#![allow(dead_code)]

use clipscope::app::client::{ManualClock, DEBOUNCE};
use clipscope::app::state::ImageStatus;
use clipscope::app::ClipscopeApp;
use clipscope::engine::ModelSource;
use egui::{Event, Pos2, Rect};
use egui_kittest::kittest::Queryable;
use egui_kittest::Harness;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The harness of a UI test.
pub type H = Harness<'static, ClipscopeApp>;

/// The window the UI tests draw in.
pub const SCREEN: Rect = Rect::from_min_max(Pos2::ZERO, Pos2::new(1300.0, 850.0));

/// A file or folder under `tests/fixtures/parity`.
pub fn fixture(path: &str) -> PathBuf {
    crate::common::parity(path)
}

thread_local! {
    /// The debounce's clock of this test's app (each test runs on its own thread).
    static CLOCK: ManualClock = ManualClock::default();
}

/// Moves this test's clock on by `by`.
pub fn advance(by: Duration) {
    CLOCK.with(|c| c.advance(by));
}

/// Moves this test's clock past the debounce.
pub fn pass_debounce() {
    advance(DEBOUNCE + Duration::from_millis(1));
}

/// The app on the tiny fixture model and this test's clock, with `prompts` and `images` added.
pub fn app(prompts: &[&str], images: &[&str]) -> ClipscopeApp {
    app_on(
        ModelSource::Folder(fixture("tiny_quick_gelu")),
        prompts,
        images,
    )
}

/// `app` on another model.
pub fn app_on(model: ModelSource, prompts: &[&str], images: &[&str]) -> ClipscopeApp {
    let mut app = ClipscopeApp::with_model_and_clock(
        &egui::Context::default(),
        model,
        Box::new(CLOCK.with(ManualClock::clone)),
    );
    app.prompts = prompts.iter().map(|s| s.to_string()).collect();
    for i in images {
        app.add_path(fixture(&format!("images/{i}")));
    }
    // Nothing has been drained from the worker yet: every image added is still encoding.
    assert_eq!(app.gallery.encoding(), images.len());
    app
}

/// `app(prompts, images)` in a 1300×850 harness, settled.
pub fn harness(prompts: &[&str], images: &[&str]) -> H {
    harness_of(app(prompts, images))
}

/// A settled 1300×850 harness around `app`.
pub fn harness_of(app: ClipscopeApp) -> H {
    let mut h = Harness::builder()
        .with_size(SCREEN.size())
        .build_ui_state(|ui, app: &mut ClipscopeApp| app.show(ui), app);
    settle(&mut h);
    h
}

/// Steps the UI until the worker has answered everything asked of it: edits waiting for the
/// debounce get the clock moved past it, outstanding requests are waited for (no sleeps).
pub fn settle(h: &mut H) {
    loop {
        h.step();
        // Verdicts on shown results may still be on their way.
        let verdicts_due = h
            .state()
            .current_shown()
            .is_some_and(|s| s.results.verdicts_pending);
        if !h.state().busy()
            && !verdicts_due
            && h.state()
                .gallery
                .images
                .iter()
                .all(|e| !matches!(e.status, ImageStatus::Encoding))
        {
            h.step();
            return;
        }
        if h.state().debouncing() {
            pass_debounce();
        } else {
            assert!(
                h.state_mut().wait_for_worker(Duration::from_secs(60)),
                "the worker did not answer within a minute"
            );
        }
    }
}

/// Whether a widget whose label contains `needle` is on the screen.
pub fn on_screen(h: &H, needle: &str) -> bool {
    h.query_all_by_label_contains(needle)
        .any(|n| SCREEN.intersects(n.rect()))
}

/// A pointer click at `pos` as a person makes it: move there, press, release.
pub fn click_at(h: &H, pos: Pos2) {
    h.event(Event::PointerMoved(pos));
    for pressed in [true, false] {
        h.event(Event::PointerButton {
            pos,
            button: egui::PointerButton::Primary,
            pressed,
            modifiers: egui::Modifiers::NONE,
        });
    }
}

/// A file dropped on the window: kittest has no drop, but egui's raw input takes any
/// `DroppedFile`, so the app's own handling of drops runs.
#[derive(Debug)]
pub struct Dropped(pub PathBuf);

impl egui::DroppedFile for Dropped {
    fn path(&self) -> &Path {
        &self.0
    }
    fn bytes(&self) -> Result<Vec<u8>, String> {
        std::fs::read(&self.0).map_err(|e| e.to_string())
    }
}

/// Drops `path` on the window in the next frame.
pub fn drop_file(h: &mut H, path: &Path) {
    let file = Arc::new(Dropped(path.to_path_buf()));
    h.input_mut().dropped_files.push(file);
}
