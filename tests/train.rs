//! A short training run on a tiny configuration lowers the loss on held-back scenes, and a run
//! stopped and resumed ends where an unbroken one does, and a deepened or widened tower starts
//! where the smaller one stood.

mod common;

use candle_core::{DType, Device};
use candle_nn::{VarBuilder, VarMap};
use clipscope::clip::config::ClipConfig;
use clipscope::clip::Clip;
use clipscope::train::clip::{default_config, train, validation_loss, Options, TextSide};
use common::weights;

fn tiny() -> ClipConfig {
    let mut c = default_config();
    c.vision.image_size = 64;
    c.vision.patch_size = 16;
    for (hidden, layers) in [
        (&mut c.vision.hidden_size, &mut c.vision.num_hidden_layers),
        (&mut c.text.hidden_size, &mut c.text.num_hidden_layers),
    ] {
        *hidden = 32;
        *layers = 1;
    }
    c.vision.intermediate_size = 64;
    c.text.intermediate_size = 64;
    c.vision.num_attention_heads = 2;
    c.text.num_attention_heads = 2;
    c.projection_dim = 32;
    c
}

/// Two steps of 8 scenes on `tiny()` with every loss on, from random weights.
fn two_steps_of_every_loss(seed: u64) -> Options {
    Options {
        config: tiny(),
        steps: 2,
        batch: 8,
        lr: 3e-3,
        seed,
        token_weight: 1.0,
        ground_weight: 1.0,
        negative_weight: 1.0,
        shape_words: true,
        vocabulary_weight: 1.0,
        object_weight: 1.0,
        composition_weight: 1.0,
        patch_shape_weight: 1.0,
        colour_field_weight: 1.0,
        fields: 2,
        recoloured_weight: 1.0,
        recoloured: 2,
        recoloured_small: 0.5,
        paired_weight: 1.0,
        warmup: 1,
        init: None,
        resume: None,
        stop_at: None,
        text: TextSide::Learns,
        keep_tokens: 0,
        whiten_patches: false,
    }
}

#[test]
fn a_short_run_lowers_the_validation_loss() {
    let config = tiny();
    let untrained = Clip::new(
        &config,
        true,
        VarBuilder::from_varmap(&VarMap::new(), DType::F32, &Device::Cpu),
    )
    .unwrap();
    let before = validation_loss(&untrained, &config, 5, 32).unwrap();
    let options = Options {
        config: config.clone(),
        steps: 60,
        batch: 32,
        lr: 3e-3,
        seed: 3,
        token_weight: 1.0,
        ground_weight: 0.0,
        negative_weight: 0.0,
        shape_words: false,
        vocabulary_weight: 0.0,
        object_weight: 0.0,
        composition_weight: 0.0,
        patch_shape_weight: 0.0,
        colour_field_weight: 0.0,
        fields: 0,
        recoloured_weight: 0.0,
        recoloured: 0,
        recoloured_small: 0.0,
        paired_weight: 0.0,
        warmup: 5,
        init: None,
        resume: None,
        stop_at: None,
        text: TextSide::Learns,
        keep_tokens: 0,
        whiten_patches: false,
    };
    let mut losses = Vec::new();
    let (_, model) = train(&options, |p| losses.push(p.report.loss)).unwrap();
    let after = validation_loss(&model, &config, 5, 32).unwrap();
    assert_eq!(losses.len(), 60);
    assert!(after < before - 0.3, "validation loss {before} → {after}");
}

#[test]
fn a_run_stopped_and_resumed_ends_where_an_unbroken_run_ends() {
    stopped_and_resumed(0);
}

#[test]
fn a_run_that_drops_tokens_resumes_where_it_stood() {
    // 64 px at patch 16 is 16 patches; 6 go through the tower each step, which changes what is
    // learnt.
    let dropped = stopped_and_resumed(6);
    assert_ne!(weights(&dropped), weights(&stopped_and_resumed(0)));
}

/// Trains `tiny()` 6 steps with every loss on, unbroken and stopped at step 3 then resumed, and
/// checks both end on the same weights, which it returns.
fn stopped_and_resumed(keep_tokens: usize) -> VarMap {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.safetensors");
    let options = Options {
        config: tiny(),
        steps: 6,
        batch: 8,
        lr: 3e-3,
        seed: 9,
        token_weight: 1.0,
        ground_weight: 1.0,
        negative_weight: 1.0,
        shape_words: true,
        vocabulary_weight: 1.0,
        object_weight: 1.0,
        composition_weight: 1.0,
        patch_shape_weight: 1.0,
        colour_field_weight: 1.0,
        fields: 2,
        recoloured_weight: 1.0,
        recoloured: 2,
        recoloured_small: 0.5,
        paired_weight: 1.0,
        warmup: 2,
        init: None,
        resume: None,
        stop_at: None,
        text: TextSide::Learns,
        keep_tokens,
        whiten_patches: false,
    };
    // The unbroken run saves its state after step 2, as `train-clip` does every N steps.
    let mut paired = Vec::new();
    let (whole, _) = train(&options, |p| {
        paired.push(p.report.paired_loss);
        if p.report.step == 2 {
            p.save_state(&state).unwrap();
        }
    })
    .unwrap();
    // A recoloured object and its twin in its own colour differ in their shape odds at the
    // random start; the divergence is never negative beyond rounding.
    assert!(paired[0] > 1e-3, "{paired:?}");
    assert!(
        paired.iter().all(|&l| l > -1e-6 && l.is_finite()),
        "{paired:?}"
    );
    // A run told to stop at step 3 ends there.
    let mut seen = Vec::new();
    let stopped = Options {
        stop_at: Some(3),
        ..options.clone()
    };
    train(&stopped, |p| seen.push(p.report.step)).unwrap();
    assert_eq!(seen, vec![0, 1, 2]);
    let resumed = Options {
        resume: Some(state),
        ..options
    };
    let mut steps = Vec::new();
    let (rest, _) = train(&resumed, |p| steps.push(p.report.step)).unwrap();
    assert_eq!(steps, vec![3, 4, 5]);
    assert_eq!(weights(&whole), weights(&rest));
    whole
}

#[test]
fn a_frozen_text_side_stays_put_while_the_vision_side_learns() {
    let dir = tempfile::tempdir().unwrap();
    let base = two_steps_of_every_loss(4);
    let (start, _) = train(&base, |_| {}).unwrap();
    clipscope::train::clip::save(&start, &tiny(), dir.path(), DType::F32).unwrap();
    let value = |m: &VarMap, name: &str| {
        let data = m.data().lock().unwrap();
        data[name].flatten_all().unwrap().to_vec1::<f32>().unwrap()
    };
    let tower = [
        "text_model.embeddings.token_embedding.weight",
        "text_model.encoder.layers.0.mlp.fc1.weight",
    ];
    let vision = [
        "vision_model.encoder.layers.0.mlp.fc1.weight",
        "visual_projection.weight",
    ];
    for text in [TextSide::Frozen, TextSide::Projection] {
        let frozen = Options {
            init: Some(dir.path().join("model.safetensors")),
            text,
            keep_tokens: 0,
            whiten_patches: false,
            seed: 5,
            ..base.clone()
        };
        let (after, _) = train(&frozen, |_| {}).unwrap();
        for name in tower {
            assert_eq!(
                value(&start, name),
                value(&after, name),
                "{text:?}: {name} moved"
            );
        }
        let projection = "text_projection.weight";
        let moved = value(&start, projection) != value(&after, projection);
        assert_eq!(
            moved,
            text == TextSide::Projection,
            "{text:?}: {projection}"
        );
        for name in vision {
            assert_ne!(
                value(&start, name),
                value(&after, name),
                "{text:?}: {name} did not learn"
            );
        }
    }
}

/// A `tiny()` model trained two steps, then grown into `config` through `--init` with no step
/// taken.
struct Grown {
    vars: VarMap,
    options: Options,
    /// The largest gap between the small and the grown model's image tokens.
    worst: f32,
    _dir: tempfile::TempDir,
}

fn grown(seed: u64, config: ClipConfig) -> Grown {
    let dir = tempfile::tempdir().unwrap();
    let base = two_steps_of_every_loss(seed);
    let (small_vars, small) = train(&base, |_| {}).unwrap();
    clipscope::train::clip::save(&small_vars, &tiny(), dir.path(), DType::F32).unwrap();
    let options = Options {
        config,
        init: Some(dir.path().join("model.safetensors")),
        stop_at: Some(0),
        ..base
    };
    let (vars, big) = train(&options, |_| {}).unwrap();
    let pixels = candle_core::Tensor::randn(0f32, 1.0, (2, 3, 64, 64), &Device::Cpu).unwrap();
    let tokens = |m: &Clip| {
        m.image_tokens(&pixels)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    };
    let (a, b) = (tokens(&small), tokens(&big));
    assert_eq!(a.len(), b.len());
    let worst = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    Grown {
        vars,
        options,
        worst,
        _dir: dir,
    }
}

impl Grown {
    /// A run continued from the grown weights moves them.
    fn assert_training_moves_it(self) {
        let continued = Options {
            stop_at: None,
            ..self.options
        };
        let (after, _) = train(&continued, |_| {}).unwrap();
        assert_ne!(weights(&self.vars), weights(&after));
    }
}

#[test]
fn a_deepened_vision_tower_computes_what_the_shallow_one_did() {
    let mut deep_config = tiny();
    deep_config.vision.num_hidden_layers = 3;
    let deep = grown(6, deep_config);
    assert!(
        deep.worst < 1e-5,
        "deepened tower differs by {}",
        deep.worst
    );
    // The new layers are real layers that can learn, not copies: their first projection is set.
    let data = deep.vars.data().lock().unwrap();
    for (name, zero) in [
        (
            "vision_model.encoder.layers.1.self_attn.out_proj.weight",
            true,
        ),
        ("vision_model.encoder.layers.1.mlp.fc2.weight", true),
        ("vision_model.encoder.layers.1.mlp.fc1.weight", false),
    ] {
        let sum = data[name].as_tensor().abs().unwrap().sum_all().unwrap();
        let sum = sum.to_scalar::<f32>().unwrap();
        assert_eq!(sum == 0.0, zero, "{name}: |w| sums to {sum}");
    }
    drop(data);
    deep.assert_training_moves_it();
}

#[test]
fn a_widened_and_deepened_vision_tower_computes_what_the_narrow_one_did() {
    let mut wide_config = tiny();
    wide_config.vision.hidden_size = 64;
    wide_config.vision.num_attention_heads = 4;
    wide_config.vision.intermediate_size = 128;
    wide_config.vision.num_hidden_layers = 2;
    let wide = grown(7, wide_config);
    assert!(wide.worst < 1e-4, "widened tower differs by {}", wide.worst);
    // The copies of a unit are set apart by noise: the two halves of a reading weight differ.
    let data = wide.vars.data().lock().unwrap();
    let fc1 = data["vision_model.encoder.layers.0.mlp.fc1.weight"].as_tensor();
    let (left, right) = (
        fc1.narrow(1, 0, 32).unwrap(),
        fc1.narrow(1, 32, 32).unwrap(),
    );
    let apart = (left - right).unwrap().abs().unwrap().sum_all().unwrap();
    assert!(
        apart.to_scalar::<f32>().unwrap() > 0.0,
        "the copies are identical"
    );
    drop(data);
    wide.assert_training_moves_it();
}
