//! The desktop UI driven headless with egui_kittest, on a real worker and a tiny real model.
#![cfg(feature = "gui")]

mod common;
#[path = "common/raster.rs"]
mod raster;
#[path = "common/ui.rs"]
mod ui;

use clipscope::app::state::View;
use clipscope::app::ClipscopeApp;
use egui_kittest::kittest::Queryable;
use egui_kittest::Harness;
use ui::{app, app_on, fixture, harness, harness_of, pass_debounce, settle};

#[test]
fn add_type_select_switch_and_compare() {
    let mut h = harness(
        &["a red circle", "a blue square"],
        &["wide.png", "tall.png"],
    );
    assert!(
        h.state().score_of(0).is_some(),
        "the first prompt was scored"
    );

    // Add a prompt and type into it.
    h.get_by_label("+ Add prompt").click();
    h.run_steps(2);
    assert_eq!(h.state().prompts.len(), 3);
    assert_eq!(h.state().selection.prompt, 2);
    let edits = h.get_all_by_role(egui::accesskit::Role::TextInput).count();
    assert_eq!(edits, 3, "one text field per prompt");
    h.get_all_by_role(egui::accesskit::Role::TextInput)
        .nth(2)
        .unwrap()
        .focus();
    h.step();
    h.get_all_by_role(egui::accesskit::Role::TextInput)
        .nth(2)
        .unwrap()
        .type_text("a dog without a collar");
    settle(&mut h);
    assert_eq!(h.state().prompts[2], "a dog without a collar");
    let score = h
        .state()
        .score_of(2)
        .expect("the typed prompt was scored")
        .clone();
    assert_eq!(
        score.tokenized.labels.first().map(String::as_str),
        Some("SOS")
    );

    // The token chips of the typed prompt are shown; clicking one selects it.
    h.get_by_label("collar").click();
    h.step();
    let collar = score
        .tokenized
        .labels
        .iter()
        .position(|l| l == "collar")
        .unwrap();
    assert_eq!(h.state().selection.token, Some(collar));
    h.get_by_label("EOS").click();
    h.step();
    assert_eq!(
        h.state().selection.token,
        Some(score.tokenized.ids.len() - 1)
    );

    // Switch images by clicking the second thumbnail's name.
    let second = h.state().gallery.images[1].id;
    h.get_by_label("tall.png").click();
    settle(&mut h);
    assert_eq!(h.state().gallery.current, Some(second));
    assert!(h.state().score_of(0).is_some(), "the new image was scored");

    // Pin two prompts: the compare view opens with both maps and their difference.
    h.get_all_by_label("A").next().unwrap().click();
    h.step();
    h.get_all_by_label("B").nth(2).unwrap().click();
    settle(&mut h);
    assert_eq!(h.state().selection.pinned, [Some(0), Some(2)]);
    assert_eq!(h.state().settings.view, View::Compare);
    assert_eq!(
        h.get_all_by_label("A − B").count(),
        2,
        "the difference map's title and its colour bar"
    );
    h.get_by_label_contains("A: a red circle");

    // The other views render their widgets.
    h.get_by_label("Token grid").click();
    h.step();
    assert_eq!(h.state().settings.view, View::Grid);
    h.get_by_label("Matrix").click();
    h.step();
    assert_eq!(h.state().settings.view, View::Matrix);
}

#[test]
fn typing_does_not_re_encode_the_image() {
    let mut h = harness(&["a"], &["wide.png"]);
    assert_eq!(h.state().encodes, 1);
    let first = h.state().current_shown().unwrap().results.generation;
    let field = || egui::accesskit::Role::TextInput;
    h.get_all_by_role(field()).next().unwrap().focus();
    h.step();
    for c in [" ", "r", "e", "d"] {
        h.get_all_by_role(field()).next().unwrap().type_text(c);
        h.step();
        pass_debounce();
    }
    settle(&mut h);
    let shown = h.state().current_shown().unwrap();
    assert_eq!(shown.results.prompts[0].tokenized.text, "a red");
    assert!(shown.results.generation > first, "the edit was scored");
    assert!(shown.results.image_cached, "scored from the cached image");
    assert_eq!(h.state().encodes, 1, "typing must not re-encode the image");
}

#[test]
fn bad_input_gives_messages_and_the_app_keeps_working() {
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("notes.png");
    std::fs::write(&fake, "plain text, not a picture").unwrap();
    let long = "a red circle ".repeat(100);
    let mut h = harness(
        &[
            "a red circle",
            "   ",
            &long,
            "a dog <|endoftext|> with a hat",
        ],
        &["wide.png"],
    );
    // Empty, over-long and early-pooled prompts are flagged where the person looks.
    h.get_by_label_contains("empty prompt: not scored");
    h.get_by_label_contains("truncated:");
    assert!(h.state().score_of(2).unwrap().tokenized.truncated);
    h.get_by_label_contains("pooled at the <|endoftext|> typed at token 3");

    h.state_mut().add_path(fake);
    settle(&mut h);
    let failed = h
        .state()
        .gallery
        .images
        .iter()
        .find(|e| e.name == "notes.png")
        .unwrap();
    assert!(matches!(
        failed.status,
        clipscope::app::state::ImageStatus::Failed(_)
    ));
    assert!(
        h.get_all_by_label_contains("not an image").count() >= 1,
        "the reason is on screen"
    );

    // A 20000×20000 image is refused from its header, with the reason on screen.
    let huge = dir.path().join("huge.png");
    std::fs::write(&huge, common::png_claiming(20_000, 20_000)).unwrap();
    h.state_mut().add_path(huge);
    settle(&mut h);
    assert!(
        h.get_all_by_label_contains("20000×20000").count() >= 1,
        "the size is named"
    );

    // Still working: another image scores.
    let id = h.state_mut().add_path(fixture("images/tall.png"));
    h.state_mut().set_current(id);
    settle(&mut h);
    assert!(h.state().score_of(0).is_some());
}

#[test]
fn exports_write_png_and_csv() {
    let h = harness(&["a red circle", "a blue square"], &["wide.png"]);
    let dir = tempfile::tempdir().unwrap();
    use clipscope::app::export::{export, What};
    let score = h.state().score_of(0).unwrap();
    let (rows, cols) = (score.dcsm.rows as u32, score.dcsm.cols as u32);
    for (what, name, size) in [
        (What::Overlay, "o.png", (336, 336)),
        (
            What::Grid,
            "g.png",
            (cols.min(6) * 224, cols.div_ceil(6) * 224),
        ),
        (What::MatrixPng, "m.png", (cols * 12, rows * 12)),
    ] {
        export(h.state(), what, &dir.path().join(name)).unwrap();
        let img = image::open(dir.path().join(name)).unwrap();
        assert_eq!((img.width(), img.height()), size, "{name}");
    }
    export(h.state(), What::MatrixCsv, &dir.path().join("m.csv")).unwrap();
    let csv = std::fs::read_to_string(dir.path().join("m.csv")).unwrap();
    assert_eq!(
        csv.lines().count(),
        1 + score.dcsm.rows,
        "a header and one line per image row"
    );
    assert_eq!(
        csv.lines().next().unwrap().split(',').count(),
        1 + score.dcsm.cols
    );
    assert!(csv.lines().nth(1).unwrap().starts_with("CLS,"));
}

#[test]
fn prompts_images_and_settings_persist() {
    let mut h = harness(&["a red circle", "a dog"], &["wide.png", "tall.png"]);
    h.state_mut().settings.opacity = 0.25;
    h.state_mut().settings.view = View::Matrix;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("clipscope/state.json");
    use clipscope::app::state::{load_state, save_state};
    save_state(&file, &h.state().persisted()).unwrap();
    let back = load_state(&file).unwrap().expect("a saved state");
    let restored = ClipscopeApp::new(&egui::Context::default(), Some(back));
    assert_eq!(restored.prompts, vec!["a red circle", "a dog"]);
    assert_eq!(restored.gallery.images.len(), 2);
    assert_eq!(restored.gallery.images[1].name, "tall.png");
    assert_eq!(restored.settings.opacity, 0.25);
    assert_eq!(restored.settings.view, View::Matrix);
}

#[test]
fn missing_or_corrupt_state_is_not_fatal() {
    use clipscope::app::state::load_state;
    let dir = tempfile::tempdir().unwrap();
    assert!(load_state(&dir.path().join("none.json")).unwrap().is_none());
    let bad = dir.path().join("state.json");
    std::fs::write(&bad, "{\"prompts\": [\"half a wri").unwrap();
    assert!(
        load_state(&bad).is_err(),
        "reported, so the app can say so and start fresh"
    );
}

#[test]
fn a_lesson_opens_its_scene_with_the_first_content_word_and_a_pinned_pair() {
    let mut h = harness(&[], &[]);
    // A first run: the demo scenes, opened on the first lesson.
    h.state_mut().add_demos();
    settle(&mut h);
    let lessons = clipscope::app::demo::scenes();
    assert!(lessons.len() >= 4);
    let first = &lessons[0];
    assert_eq!(h.state().current_entry().unwrap().name, first.name);
    assert_eq!(h.state().prompts[0], first.prompts[0]);
    assert_eq!(
        h.state().selection.pinned,
        [Some(0), Some(1)],
        "compare is never empty"
    );
    // The map shown is the first content word's ("red" of "a red circle"), not SOS.
    let score = h.state().score_of(0).unwrap().clone();
    let shown = h.state().active_token().unwrap();
    assert_eq!(score.tokenized.labels[shown], "red");

    // The Starters menu lists every lesson; picking "Spatial" switches scene and prompts.
    h.get_by_label("Starters").click();
    h.run_steps(3);
    for d in &lessons {
        h.get_by_label(d.lesson);
    }
    h.get_by_label("Spatial").click();
    settle(&mut h);
    let spatial = lessons.iter().find(|d| d.lesson == "Spatial").unwrap();
    assert_eq!(h.state().current_entry().unwrap().name, spatial.name);
    assert_eq!(h.state().prompts[1], spatial.prompts[1]);
    assert_eq!(
        h.state().selection.token,
        None,
        "back to the first content word"
    );
}

/// One snapshot per view on the tiny fixture model, drawn by the CPU renderer; the pictures are
/// in tests/snapshots (`UPDATE_SNAPSHOTS=1 cargo test --release --test app` renews them after a
/// deliberate change of the UI).
#[test]
fn every_view_matches_its_snapshot() {
    let mut app = app(
        &["a red circle", "a red circle and no blue square"],
        &["wide.png"],
    );
    app.settings.show_timings = false;
    let mut h = Harness::builder()
        .with_size([1300.0, 850.0])
        .renderer(raster::CpuRenderer::default())
        .build_ui_state(|ui, app: &mut ClipscopeApp| app.show(ui), app);
    settle(&mut h);
    let mut pictures = Vec::new();
    for (view, name) in [
        (View::Overlay, "view_overlay"),
        (View::Grid, "view_grid"),
        (View::Matrix, "view_matrix"),
        (View::Masks, "view_masks"),
    ] {
        h.state_mut().settings.view = view;
        h.state_mut().notices.clear();
        h.run_steps(2);
        pictures.push(h.render().expect("the CPU renderer draws"));
        h.snapshot(name);
    }
    h.get_all_by_label("A").next().unwrap().click();
    h.step();
    h.get_all_by_label("B").nth(1).unwrap().click();
    settle(&mut h);
    assert_eq!(h.state().settings.view, View::Compare);
    h.state_mut().notices.clear();
    h.run_steps(2);
    pictures.push(h.render().expect("the CPU renderer draws"));
    h.snapshot("view_compare");
    // The views differ from each other (a renderer that drew nothing would match itself).
    for (i, a) in pictures.iter().enumerate() {
        for b in &pictures[i + 1..] {
            assert_ne!(a.as_raw(), b.as_raw(), "two views drew the same picture");
        }
    }
}

/// Found by the monkey test: after a failed load the worker has no model, so images added then
/// could not be encoded and stayed "cannot read" for good, and the status bar still named the
/// old model.
#[test]
fn after_a_failed_load_images_wait_for_the_next_model() {
    use clipscope::app::state::ImageStatus;
    use clipscope::engine::ModelSource;
    let mut h = harness(&["a red circle"], &["wide.png"]);
    let broken = tempfile::tempdir().unwrap();
    std::fs::write(broken.path().join("config.json"), "{ not json").unwrap();
    h.state_mut()
        .load_model(ModelSource::Folder(broken.path().to_path_buf()));
    settle(&mut h);
    assert!(h.state().model.info.is_none(), "no model is loaded now");
    h.get_by_label("no model");
    h.state_mut().add_path(fixture("images/tall.png"));
    settle(&mut h);
    assert!(
        h.state()
            .gallery
            .images
            .iter()
            .all(|e| matches!(e.status, ImageStatus::NoModel)),
        "waiting, not failed"
    );
    h.get_by_label_contains("No model is loaded");

    h.state_mut()
        .load_model(ModelSource::Folder(fixture("tiny_quick_gelu")));
    settle(&mut h);
    assert!(
        h.state().gallery.images.iter().all(|e| e.info().is_some()),
        "every image encoded by the new model"
    );
    assert!(h.state().score_of(0).is_some());
}

/// Found by the monkey test: with two loads in flight, the first answer was credited to the
/// second load, and the second answer left the app with no model source at all.
#[test]
fn two_loads_in_flight_end_on_the_second() {
    use clipscope::engine::ModelSource;
    let mut h = harness(&["a red circle"], &["wide.png"]);
    let copy = tempfile::tempdir().unwrap();
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(
            fixture(&format!("tiny_quick_gelu/{f}")),
            copy.path().join(f),
        )
        .unwrap();
    }
    let second = ModelSource::Folder(copy.path().to_path_buf());
    // The worker is idle, so it usually takes the first load before the second is queued (when
    // it sees both, it drops the first as superseded, and the answer is the same).
    h.state_mut()
        .load_model(ModelSource::Folder(fixture("tiny_quick_gelu")));
    h.state_mut().load_model(second.clone());
    settle(&mut h);
    assert_eq!(h.state().model.source.as_ref(), Some(&second));
    assert_eq!(h.state().persisted().model, Some(second));
    assert!(h.state().model.loading.is_none());
    assert!(h.state().score_of(0).is_some());
}

#[test]
fn the_map_source_and_the_whole_image_switch_live_and_say_which_they_are() {
    let mut h = harness(&["a red circle", "a blue square"], &["wide.png"]);
    let plain = h.state().current_shown().unwrap().results.map_grid;
    assert_eq!(plain, (5, 5));
    h.get_by_label_contains("maps:");
    // ClearCLIP over the whole wide image: a 5 × 8 map of the whole picture.
    h.state_mut().settings.maps.source = clipscope::engine::MapSource::ClearClip;
    h.state_mut().settings.maps.tiles = true;
    h.state_mut().mark_dirty();
    settle(&mut h);
    let shown = &h.state().current_shown().unwrap().results;
    assert_eq!(shown.map_grid, (5, 8));
    assert_eq!(shown.view.source, clipscope::engine::MapSource::ClearClip);
    assert_eq!(shown.map_region.x, 0.0);
    let cosine = h.state().score_of(0).unwrap().clip_cosine;
    h.get_by_label_contains("shown: clearclip, tiles, 5×8");
    // Twice the resolution: 10 × 10 patches; the CLIP score does not move.
    h.state_mut().settings.maps = clipscope::engine::MapView {
        resolution: Some(80),
        ..Default::default()
    };
    h.state_mut().mark_dirty();
    settle(&mut h);
    assert_eq!(
        h.state().current_shown().unwrap().results.map_grid,
        (10, 10)
    );
    assert_eq!(h.state().score_of(0).unwrap().clip_cosine, cosine);
    assert_eq!(h.state().score_of(0).unwrap().dcsm.rows, 101);
    // Surgery with one prompt says what it needs.
    h.state_mut().prompts.truncate(1);
    h.state_mut().settings.maps.surgery = true;
    h.state_mut().mark_dirty();
    settle(&mut h);
    h.get_by_label_contains("surgery needs two or more prompts");
}

#[test]
fn a_siglip_model_shows_sigmoid_scores_patch_rows_only_and_greys_out_its_missing_heads() {
    let model = clipscope::engine::ModelSource::Folder(common::fixture("siglip", "A"));
    let mut h = harness_of(app_on(
        model,
        &["a red circle", "a blue square"],
        &["wide.png"],
    ));
    let s = h
        .state()
        .score_of(0)
        .expect("the SigLIP model scored the first prompt")
        .clone();
    assert!(!s.dcsm.cls_row, "a SigLIP map has no CLS row");
    assert_eq!(s.dcsm.rows, 16, "4×4 patches");
    assert!(s.dcsm_scores.is_empty() && s.smartclip.is_none());
    assert!(ui::on_screen(&h, "SigLIP probability (sigmoid"));
    assert!(ui::on_screen(&h, "not for SigLIP"));
    assert!(ui::on_screen(&h, "SigLIP: the head's dense path"));
    h.state_mut().settings.view = View::Masks;
    h.run_steps(2);
    assert!(ui::on_screen(&h, "SigLIP has no mask network"));
}
