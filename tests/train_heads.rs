//! The DCSM scorer and SmartCLIP mask trainers: short runs on the embedded backbone learn,
//! and what they save loads back into the engine.

use clipscope::dcsm::scorer::{Architecture, ColumnMode};
use clipscope::model::LoadedModel;
use clipscope::train::{dcsm, smartclip};
use clipscope::world::Family;

fn model_folder(dir: &std::path::Path) {
    let assets = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/default-model");
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(assets.join(f), dir.join(f)).unwrap();
    }
}

#[test]
fn a_short_scorer_run_learns_the_size_contrast_and_loads_back() {
    let model = LoadedModel::embedded().unwrap();
    let options = dcsm::Options {
        architecture: Architecture::Grid,
        mode: ColumnMode::Aligned,
        steps: 30,
        scenes: 8,
        lr: 1e-3,
        seed: 3,
        pairs: true,
        // Size ("small" vs "big" over one object) is the quickest contrast to learn.
        families: vec![Family::Size],
        init: None,
        zscore_per_image: false,
    };
    let mut losses = Vec::new();
    let (scorer, vars) = dcsm::train(&model, &options, |r, _, _| losses.push(r.loss)).unwrap();
    let first: f32 = losses[..3].iter().sum::<f32>() / 3.0;
    let last: f32 = losses[20..].iter().sum::<f32>() / 10.0;
    assert!(last < first - 0.05, "loss {first} → {last}");

    let dir = tempfile::tempdir().unwrap();
    model_folder(dir.path());
    dcsm::save(&scorer, &vars, dir.path(), "scorer-grid").unwrap();
    let loaded = LoadedModel::from_folder(dir.path(), "with scorer").unwrap();
    assert_eq!(loaded.scorers().len(), 1);
    assert_eq!(loaded.scorers()[0].label(), "dcsm-grid");
    let image = loaded
        .encode_image(&image::DynamicImage::new_rgb8(224, 224))
        .unwrap();
    let prompts = ["a small red circle".to_string(), "a big red circle".into()];
    let scores = loaded
        .score(&image, &loaded.encode_prompts(&prompts).unwrap())
        .unwrap();
    assert!(scores.iter().all(|s| s.dcsm_score().is_some()));
    assert_eq!(scores[0].functional[0].word, "small");
    assert_eq!(scores[0].functional[0].column, 2);
}

#[test]
fn a_short_mask_run_keeps_part_of_the_dimensions_and_loads_back() {
    let model = LoadedModel::embedded().unwrap();
    let options = smartclip::Options {
        steps: 30,
        batch: 16,
        pool: 64,
        lr: 1e-3,
        seed: 1,
    };
    let mut reports = Vec::new();
    let (net, vars) = smartclip::train(&model, &options, |r| reports.push(r)).unwrap();
    assert!(reports.iter().all(|r| r.total.is_finite()));
    let dir = tempfile::tempdir().unwrap();
    model_folder(dir.path());
    smartclip::save(&net, &vars, dir.path()).unwrap();
    let loaded = LoadedModel::from_folder(dir.path(), "with mask").unwrap();
    assert!(loaded.smartclip().is_some());
    let image = loaded
        .encode_image(&image::DynamicImage::new_rgb8(224, 224))
        .unwrap();
    let prompts = ["a red circle.".to_string(), "a blue square.".into()];
    let scores = loaded
        .score(&image, &loaded.encode_prompts(&prompts).unwrap())
        .unwrap();
    for s in &scores {
        let m = s.smartclip.as_ref().unwrap();
        assert_eq!(m.mask.len(), 128);
        assert!(m.score.is_finite());
    }
}
